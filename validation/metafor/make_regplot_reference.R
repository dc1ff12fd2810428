# Regenerates tests/reference/metafor_regplot.json: what metafor's regplot() draws for BCG
# meta-regressions (the points, and the regression line with its CI and PI bounds), so that
# ketameta.plot.bubble can be checked against it (tests/test_plot.py).
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_regplot_reference.R
# regplot() returns the points it drew (xi, yi, psize) but not its lines: the lines are
# recorded by tracing graphics::lines while regplot draws (in the order metafor draws them:
# ci.lb, ci.ub, pi.lb, pi.ub, pred). predlim = the range of the moderator, so the line runs
# over the data (metafor's default extends it to the x-axis limits). Only the first and
# last vertex of each line are stored, with the predictions of predict() there for
# comparison (the marginal line: the other columns of the design at their means).
suppressMessages({library(metafor)})
source("validation/metafor/json_exact.R")

CTRL <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)

got <- list()
trace_regplot <- function(res, mod) {
  got <<- list()
  trace(graphics::lines, quote({
    a <- list(...)
    got[[length(got) + 1]] <<- list(x = x, y = a[[1]])
  }), print = FALSE, where = asNamespace("metafor"))
  on.exit(untrace(graphics::lines, where = asNamespace("metafor")))
  pdf(NULL)
  xcol <- model.matrix(res)[, mod]
  r <- regplot(res, mod = mod, pi = TRUE, predlim = range(xcol))
  dev.off()
  ends <- function(g) arr(c(g$y[1], g$y[length(g$y)]))
  cm <- colMeans(model.matrix(res))
  newX <- rbind(cm, cm)
  newX[, mod] <- range(xcol)
  p <- predict(res, newmods = newX[, -1, drop = FALSE])
  list(
    mod = mod,
    line_x = arr(c(got[[5]]$x[1], got[[5]]$x[length(got[[5]]$x)])),
    line_pred = ends(got[[5]]), line_ci_lb = ends(got[[1]]), line_ci_ub = ends(got[[2]]),
    line_pi_lb = ends(got[[3]]), line_pi_ub = ends(got[[4]]),
    colmeans = arr(unname(cm)),
    predict_at_colmeans = list(pred = arr(p$pred), ci_lb = arr(p$ci.lb), ci_ub = arr(p$ci.ub),
                               pi_lb = arr(p$pi.lb), pi_ub = arr(p$pi.ub)),
    xi = arr(r$xi), yi = arr(r$yi), psize = arr(r$psize), weights = arr(unname(weights(res)))
  )
}

cases <- list()
add <- function(id, formula, mod) {
  res <- rma(yi, vi, mods = as.formula(formula), data = dat, control = CTRL)
  cases[[length(cases) + 1]] <<- c(list(id = id, formula = formula), trace_regplot(res, mod))
}
add("bcg ~ ablat", "~ ablat", "ablat")
add("bcg ~ ablat + factor(alloc)", "~ ablat + factor(alloc)", "ablat")
add("bcg ~ ablat + year", "~ ablat + year", "year")

out <- list(
  generated_by = "validation/metafor/make_regplot_reference.R",
  metafor_version = as.character(packageVersion("metafor")),
  r_version = R.version.string,
  data = 'dat.bcg, escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg); rma(yi, vi, mods=, method="REML")',
  call = 'regplot(res, mod=, pi=TRUE, predlim=range(model.matrix(res)[, mod]))',
  cases = cases
)
writeLines(to_json(out), "tests/reference/metafor_regplot.json")
