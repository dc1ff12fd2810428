# Regenerates tests/reference/metafor_selmodel.json: metafor's selmodel() (selection models)
# on the examples of its documentation (Hackshaw 1998 step functions; Citkowicz & Vevea 2017's
# beta model on dat.baskerville2012; Preston et al. 2004's models on dat.hahn2001; the
# Vevea & Woods 2005 a priori weight functions on dat.cohen1981) and further cases.
# Each fit is run to tight convergence: BFGS (reltol 1e-13) and nlminb (rel.tol 1e-12), the fit
# with the larger log-likelihood kept; integrals with rel.tol 1e-12. (optim's and nlminb's
# finite-difference gradients limit metafor's maximum to ~1e-10 in the log-likelihood, i.e.
# ~1e-5 of a standard error in the estimates: the tests compare accordingly.)
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_selmodel_reference.R [CASE_REGEX [OUTPUT]]
# (optional: only the cases whose name matches CASE_REGEX, written to OUTPUT)
suppressMessages({library(metafor)})
source("validation/metafor/json_exact.R")

INT <- list(rel.tol = 1e-12, subdivisions = 2000L)

fit_best <- function(res, args, default_control = FALSE) {
  c1 <- c(list(optimizer = "BFGS", reltol = 1e-13, maxit = 100000L, intCtrl = INT), args$control)
  c2 <- c(list(optimizer = "nlminb", rel.tol = 1e-12, iter.max = 10000L, eval.max = 10000L,
               intCtrl = INT), args$control)
  controls <- list(c1, c2)
  # The beta model's tau^2 goes to the boundary 0 on dat.baskerville2012: with tight settings
  # BFGS on log(tau^2) crawls towards -Inf (no result after 35 minutes), and with tight
  # integrals it fails; these cases use metafor's default control (as ?selmodel's example),
  # which stops at tau^2 ~ 2e-6 with a log-likelihood 1.1e-4 below the maximum at tau^2 = 0.
  if (default_control) controls <- list(c(list(optimizer = "BFGS"), args$control))
  fits <- list()
  for (ctl in controls) {
    a <- args
    a$control <- ctl
    f <- tryCatch(suppressWarnings(do.call(selmodel, c(list(res), a))), error = function(e) NULL)
    if (!is.null(f)) fits[[length(fits) + 1]] <- f
  }
  lls <- sapply(fits, function(f) f$ll)
  message("  ll: ", paste(sprintf("%.15g", lls), collapse = " "))
  fits[[which.max(lls)]]
}

ARGS <- commandArgs(trailingOnly = TRUE)
PATTERN <- if (length(ARGS) >= 1) ARGS[1] else "."
OUTPUT <- if (length(ARGS) >= 2) ARGS[2] else "tests/reference/metafor_selmodel.json"
cases <- list()
add <- function(name, yi, vi, mods = NULL, method = "ML", args, data_name, note = "",
                default_control = FALSE) {
  if (!grepl(PATTERN, name)) return(invisible(NULL))
  if (is.null(mods)) {
    res <- rma(yi, vi, method = method)
    X <- matrix(1, length(yi), 1)
  } else {
    res <- rma(yi, vi, mods = mods, method = method)
    X <- model.matrix(res)
  }
  message(name, " ", format(Sys.time()))
  sel <- fit_best(res, args, default_control)
  out <- capture.output(print(sel))
  pt <- sel$ptable
  cases[[length(cases) + 1]] <<- list(
    name = name, data = data_name, note = note, method = method,
    type = args$type, alternative = if (is.null(args$alternative)) "greater" else args$alternative,
    steps = if (is.null(args$steps)) NULL else arr(args$steps),
    delta_fixed = if (is.null(args$delta)) NULL else arr(args$delta),
    yi = arr(as.numeric(yi)), vi = arr(as.numeric(vi)), X = X,
    beta = arr(as.numeric(sel$beta)), se = arr(sel$se), zval = arr(sel$zval), pval = arr(sel$pval),
    ci_lb = arr(sel$ci.lb), ci_ub = arr(sel$ci.ub), vb = unclass(sel$vb),
    tau2 = sel$tau2, se_tau2 = sel$se.tau2,
    delta = arr(sel$delta), se_delta = arr(sel$se.delta), zval_delta = arr(sel$zval.delta),
    pval_delta = arr(sel$pval.delta), ci_lb_delta = arr(sel$ci.lb.delta),
    ci_ub_delta = arr(sel$ci.ub.delta),
    LRT = sel$LRT, LRTdf = sel$LRTdf, LRTp = sel$LRTp, LRT_tau2 = sel$LRT.tau2,
    LRTp_tau2 = sel$LRTp.tau2, ll = sel$ll, ll0 = as.numeric(logLik(rma(yi, vi, mods = X, intercept = FALSE,
      method = if (method == "EE") "EE" else "ML"))),
    QM = sel$QM, QMp = sel$QMp,
    ptable_k = if (is.data.frame(pt)) arr(pt$k) else NULL,
    printed = arr(out))
}

d <- dat.hackshaw1998
add("hackshaw_stepfun_doc", d$yi, d$vi, args = list(type = "stepfun", alternative = "greater",
    steps = c(.025, .10, .50, 1)), data_name = "dat.hackshaw1998",
    note = "metafor ?selmodel example")
add("hackshaw_3psm", d$yi, d$vi, args = list(type = "stepfun", steps = c(.025)),
    data_name = "dat.hackshaw1998")
add("hackshaw_stepfun_test", d$yi, d$vi, args = list(type = "stepfun",
    steps = c(.05, .10, .50, 1)), data_name = "dat.hackshaw1998",
    note = "steps of metafor's test_misc_selmodel.r (which starts from REML; selmodel is ML)")
add("hackshaw_two_sided", d$yi, d$vi, args = list(type = "stepfun", alternative = "two.sided",
    steps = c(.05, .5)), data_name = "dat.hackshaw1998")
add("hackshaw_less", d$yi, d$vi, args = list(type = "stepfun", alternative = "less",
    steps = c(.5)), data_name = "dat.hackshaw1998")
add("hackshaw_ee_3psm", d$yi, d$vi, method = "EE", args = list(type = "stepfun",
    steps = c(.025)), data_name = "dat.hackshaw1998")
add("hackshaw_fixed_delta", d$yi, d$vi, args = list(type = "stepfun", steps = c(.025, .5),
    delta = c(1, .5, NA)), data_name = "dat.hackshaw1998", note = "delta_2 fixed, delta_3 estimated")
b <- dat.bcg
b <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = b)
add("bcg_mods_3psm_less", b$yi, b$vi, mods = ~ b$ablat, args = list(type = "stepfun",
    alternative = "less", steps = c(.025)), data_name = "dat.bcg (log RR), mods = ablat")
s <- dat.baskerville2012
add("baskerville_beta", s$smd, s$se^2, args = list(type = "beta"),
    data_name = "dat.baskerville2012", note = "Citkowicz & Vevea 2017 example in ?selmodel",
    default_control = TRUE)
add("baskerville_beta_blind", s$smd, s$se^2, mods = ~ s$blind, args = list(type = "beta"),
    data_name = "dat.baskerville2012, mods = blind", note = "?selmodel example",
    default_control = TRUE)
# (the beta model on dat.hackshaw1998 has an interior maximum, but metafor 3.8.1 fails with
# tight settings, and with its default ones its integrals (rel.tol 1.2e-4) leave its SEs
# uncertain at ~1%: not referenced)
add("baskerville_3psm", s$smd, s$se^2, args = list(type = "stepfun", steps = c(.025)),
    data_name = "dat.baskerville2012")
h <- escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.hahn2001,
            drop00 = TRUE)
h <- h[!is.na(h$yi), ]
for (ty in c("halfnorm", "negexp", "logistic", "power")) {
  add(paste0("hahn_", ty), h$yi, h$vi, method = "EE", args = list(type = ty, alternative = "less"),
      data_name = "dat.hahn2001 (log OR, drop00)", note = "Preston et al. 2004 example in ?selmodel")
}
for (ty in c("halfnorm", "negexp", "logistic", "power", "negexppow")) {
  add(paste0("hackshaw_", ty), d$yi, d$vi, args = list(type = ty),
      data_name = "dat.hackshaw1998")
}
# (type = "trunc" is not in metafor 3.8.1: it came with metafor 4; not referenced here)
add("hackshaw_halfnorm_steps", d$yi, d$vi, args = list(type = "halfnorm", steps = 0.05),
    data_name = "dat.hackshaw1998", note = "w(p) = 1 below the threshold")
c81 <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.cohen1981)
tab <- data.frame(
  steps = c(0.005, 0.01, 0.05, 0.10, 0.25, 0.35, 0.50, 0.65, 0.75, 0.90, 0.95, 0.99, 0.995, 1),
  delta.mod.1 = c(1, 0.99, 0.95, 0.80, 0.75, 0.65, 0.60, 0.55, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50),
  delta.sev.1 = c(1, 0.99, 0.90, 0.75, 0.60, 0.50, 0.40, 0.35, 0.30, 0.25, 0.10, 0.10, 0.10, 0.10),
  delta.mod.2 = c(1, 0.99, 0.95, 0.90, 0.80, 0.75, 0.60, 0.60, 0.75, 0.80, 0.90, 0.95, 0.99, 1.00),
  delta.sev.2 = c(1, 0.99, 0.90, 0.75, 0.60, 0.50, 0.25, 0.25, 0.50, 0.60, 0.75, 0.90, 0.99, 1.00))
for (nm in names(tab)[-1]) {
  add(paste0("cohen_", nm), c81$yi, c81$vi, args = list(type = "stepfun", steps = tab$steps,
      delta = tab[[nm]]), data_name = "dat.cohen1981 (ZCOR)",
      note = "Vevea & Woods 2005 a priori weights, ?selmodel example")
}

writeLines(to_json(list(
  generated_by = "validation/metafor/make_selmodel_reference.R",
  metafor = as.character(packageVersion("metafor")), R = R.version.string,
  cases = cases)), OUTPUT)
