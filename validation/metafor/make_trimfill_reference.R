# Regenerates tests/reference/metafor_trimfill.json: metafor's trimfill() with every
# estimator (L0, R0, Q0), side (chosen by metafor, left, right) and model (DL, REML, EE),
# recording the number of missing studies k0, its standard error se.k0 (Duval & Tweedie's
# variance of the rank statistic at the unrounded estimate), the side, the pooled estimate
# on the filled data (refitted to tight convergence), and metafor's error where it stops
# (Q0 undefined: "missing value where TRUE/FALSE needed"; R0 without a negative deviation).
#
# Data: the datasets of tests/reference/metafor_bias.json (BCG, magnesium, four simulated)
# plus simulated funnels with k = 5 to 60 and strong one-sided selection.
# Usage, from the repository root: Rscript validation/metafor/make_trimfill_reference.R
suppressMessages({library(metafor); library(jsonlite)})
set.seed(1402)
ctrl <- list(threshold=1e-13, maxiter=10000, tol=1e-13)

bias <- fromJSON("tests/reference/metafor_bias.json", simplifyVector=TRUE)
datasets <- lapply(bias$datasets, function(d) list(yi=d$yi, vi=d$vi, note=d$note))
for (k in c(5, 8, 15, 30, 60)) {
  for (shape in c("selected", "steep")) {
    vi <- signif(runif(k, 0.005, 0.4), 12)
    yi <- signif(rnorm(k, 0.2 + (if (shape == "steep") 3 else 1.2) * sqrt(vi), sqrt(vi)), 12)
    datasets[[sprintf("%s_k%d", shape, k)]] <- list(
      yi=yi, vi=vi, note=sprintf("simulated, k=%d, effects rising with the SE (%s)", k, shape))
  }
}

cases <- list()
for (nm in names(datasets)) {
  d <- datasets[[nm]]
  for (m in c("DL", "REML", "EE")) for (est in c("L0", "R0", "Q0")) for (side in c("auto", "left", "right")) {
    fit <- rma(d$yi, d$vi, method=m, control=ctrl)
    warned <- character(0)
    tf <- withCallingHandlers(
      tryCatch(if (side == "auto") trimfill(fit, estimator=est) else trimfill(fit, estimator=est, side=side),
               error=function(e) conditionMessage(e)),
      warning=function(w) { warned <<- c(warned, conditionMessage(w)); invokeRestart("muffleWarning") })
    call <- sprintf("trimfill(rma(yi, vi, method='%s'), estimator='%s'%s)", m, est,
                    if (side == "auto") "" else sprintf(", side='%s'", side))
    if (is.character(tf)) {
      cases[[length(cases) + 1]] <- list(dataset=nm, method=m, estimator=est, side=side, call=call,
                                         error=tf, warnings=warned)
      next
    }
    final <- rma(tf$yi, tf$vi, method=m, control=ctrl)
    cases[[length(cases) + 1]] <- list(
      dataset=nm, method=m, estimator=est, side=side, call=call, error=NULL, warnings=warned,
      value=list(k0=tf$k0, se_k0=if (is.na(tf$se.k0)) "NaN" else tf$se.k0, side=tf$side,
                 estimate=as.numeric(final$b), filled_yi=as.numeric(tf$yi[tf$fill])))
  }
}
write(toJSON(list(generated_by="validation/metafor/make_trimfill_reference.R",
                  r_version=R.version.string,
                  metafor_version=as.character(packageVersion("metafor")),
                  datasets=datasets, cases=cases),
             auto_unbox=TRUE, digits=NA, null="null"),
      "tests/reference/metafor_trimfill.json")
cat("wrote", length(cases), "cases\n")
