# Regenerates tests/reference/metafor_transf.json: the pooled estimate, CI and prediction
# interval back-transformed as metafor's predict(res, transf=) gives them, and the
# per-study weights, for the measures whose back-transformation ketameta's
# summary(transf="auto") / to_frame(transf=) / studies() choose (issue #16).
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_transf_reference.R
suppressMessages({library(metafor)})
source("validation/metafor/json_exact.R")

CTRL <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)
xi <- c(3, 10, 25, 7, 12)
ni <- c(20, 40, 60, 30, 50)
ri <- c(0.2, 0.5, -0.1, 0.3)
nr <- c(50, 80, 40, 60)

case <- function(id, dat, transf, targs = NULL, transf_name) {
  res <- rma(yi, vi, data = dat, method = "REML", control = CTRL)
  p <- if (is.null(targs)) predict(res, transf = transf) else predict(res, transf = transf, targs = targs)
  list(
    id = id, transf = transf_name,
    yi = arr(as.numeric(dat$yi)), vi = arr(as.numeric(dat$vi)),
    estimate = res$b[1], ci_lb = res$ci.lb, ci_ub = res$ci.ub,
    pred = p$pred, ci_lb_t = p$ci.lb, ci_ub_t = p$ci.ub, pi_lb_t = p$pi.lb, pi_ub_t = p$pi.ub,
    weights = arr(unname(weights(res)))
  )
}

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
plo <- escalc(measure = "PLO", xi = xi, ni = ni)
pft <- escalc(measure = "PFT", xi = xi, ni = ni)
pas <- escalc(measure = "PAS", xi = xi, ni = ni)
zcor <- escalc(measure = "ZCOR", ri = ri, ni = nr)

cases <- list(
  case("bcg RR", bcg, exp, transf_name = "exp"),
  case("PLO", plo, transf.ilogit, transf_name = "transf.ilogit"),
  case("PFT", pft, transf.ipft.hm, targs = list(ni = ni), transf_name = "transf.ipft.hm(ni)"),
  case("PAS", pas, transf.iarcsin, transf_name = "transf.iarcsin"),
  case("ZCOR", zcor, transf.ztor, transf_name = "transf.ztor")
)

out <- list(
  generated_by = "validation/metafor/make_transf_reference.R",
  metafor_version = as.character(packageVersion("metafor")),
  r_version = R.version.string,
  data = "dat.bcg (RR); xi = c(3, 10, 25, 7, 12), ni = c(20, 40, 60, 30, 50) (PLO, PFT, PAS); ri = c(0.2, 0.5, -0.1, 0.3), ni = c(50, 80, 40, 60) (ZCOR)",
  call = "rma(yi, vi, method = 'REML'); predict(res, transf = ...)",
  cases = cases
)
writeLines(to_json(out), "tests/reference/metafor_transf.json")
