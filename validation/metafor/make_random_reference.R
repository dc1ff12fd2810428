# Regenerates tests/reference/metafor_random.json with R's metafor (Debian:
# apt-get install -y r-cran-metafor). Not run in CI: the JSON is committed. Usage, from the
# repository root:
#   Rscript validation/metafor/make_random_reference.R
# Simulated datasets (seeded) over the ranges where estimators part ways: k from 2 to 40,
# variances over 3.5 orders of magnitude times a common scale from 0.1 to 10, effects near 0
# or near +-100 with true tau^2 from 0 to 1. Every tau^2 estimator with the z and the
# Knapp-Hartung test, to tight convergence (PM and EB are roots found by uniroot: `tol`
# matters there, metafor's default eps^0.25 leaves errors of ~1e-4 in tau^2).
suppressMessages({library(metafor); library(jsonlite)})
set.seed(20261125)
ctrl <- list(threshold=1e-13, maxiter=100000, tol=1e-13)
methods <- c("EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB")

cases <- list()
for (i in 1:60) {
  k <- sample(2:40, 1)
  vi <- 10^runif(k, -3, 0.5) * sample(c(0.1, 1, 10), 1)
  yi <- rnorm(k, rnorm(1, 0, 2) * sample(c(1, 100), 1),
              sqrt(vi + sample(c(0, 0.01, 0.1, 1), 1)))
  fits <- list()
  for (m in methods) for (t in c("z", "knha")) {
    r <- tryCatch(suppressWarnings(rma(yi, vi, method=m, test=t, control=ctrl)),
                  error=function(e) NULL)
    if (is.null(r)) next  # metafor's Fisher scoring did not converge: no reference
    p <- predict(r)
    fits[[paste(m, t)]] <- list(
      tau2=r$tau2, se_tau2=if (is.null(r$se.tau2)) NA else r$se.tau2,
      estimate=as.numeric(r$beta), se=r$se, pvalue=r$pval, ci_lower=r$ci.lb,
      ci_upper=r$ci.ub, q=r$QE, q_pvalue=r$QEp, i2=r$I2, h2=r$H2,
      pred_lower=if (is.null(p$pi.lb)) NA else p$pi.lb,
      pred_upper=if (is.null(p$pi.ub)) NA else p$pi.ub)
  }
  cases[[i]] <- list(yi=yi, vi=vi, fits=fits)
}
out <- list(
  generated_by="validation/metafor/make_random_reference.R",
  metafor_version=as.character(packageVersion("metafor")),
  r_version=R.version.string,
  call="rma(yi, vi, method=m, test=t, control=list(threshold=1e-13, maxiter=100000, tol=1e-13)); predict()",
  cases=cases)
write_json(out, "tests/reference/metafor_random.json", digits=NA, auto_unbox=TRUE,
           pretty=FALSE, na="null")
