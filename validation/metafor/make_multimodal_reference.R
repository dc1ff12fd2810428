# Regenerates tests/reference/metafor_multimodal.json with R's metafor (Debian:
# apt-get install -y r-cran-metafor). Not run in CI: the JSON is committed. Usage, from the
# repository root:
#   Rscript validation/metafor/make_multimodal_reference.R
# Datasets whose ML or REML likelihood has several local maxima in tau^2 (variances spread
# over orders of magnitude; found on a grid of the profile), so that the estimate depends
# on which maximum the algorithm reaches from the Hedges start, and on metafor's check of
# the likelihood at tau^2 = 0 ("Fisher scoring algorithm may have gotten stuck at a local
# maximum. Setting tau^2 = 0."); also regtest(model="rma") on each (the meta-regression
# path). Simulated here (seeded) and stored with the answers.
suppressMessages({library(metafor); library(jsonlite)})
set.seed(20261126)
ctrl <- list(threshold=1e-13, maxiter=100000)

loglik <- function(t2, yi, vi, reml) {
  w <- 1 / (vi + t2)
  mu <- sum(w * yi) / sum(w)
  -0.5 * (sum(log(vi + t2)) + sum(w * (yi - mu)^2) + if (reml) log(sum(w)) else 0)
}
n_maxima <- function(yi, vi, reml) {
  grid <- c(0, exp(seq(log(1e-6), log(100 * max(var(yi), 1e-6)), length.out=3000)))
  ll <- sapply(grid, loglik, yi=yi, vi=vi, reml=reml)
  d <- diff(ll)
  # interior maxima, plus the boundary when the likelihood falls from tau^2 = 0
  sum(d[-length(d)] > 0 & d[-1] <= 0) + (d[1] < 0)
}

cases <- list()
tried <- 0
while (length(cases) < 60 && tried < 20000) {
  tried <- tried + 1
  k <- sample(3:30, 1)
  vi <- runif(k, 0.005, 0.5) * runif(1, 0.1, 10)^rnorm(k)
  yi <- rnorm(k, 0.3, sqrt(vi + sample(c(0, 0.01, 0.1, 1), 1)))
  multi <- c(ML=n_maxima(yi, vi, FALSE) > 1, REML=n_maxima(yi, vi, TRUE) > 1)
  if (!any(multi)) next
  fits <- list()
  for (m in c("ML", "REML")) {
    warned <- FALSE
    res <- withCallingHandlers(
      tryCatch(rma(yi, vi, method=m, control=ctrl), error=function(e) NULL),
      warning=function(w) {
        if (grepl("local maximum", conditionMessage(w))) warned <<- TRUE
        invokeRestart("muffleWarning")
      })
    if (is.null(res)) next
    fits[[m]] <- list(tau2=res$tau2, estimate=res$b[1], se=res$se, zeroed=warned,
                      multimodal=unname(multi[m]))
  }
  # the Egger-type meta-regression on the same data (ketameta: egger_test(model="rma"))
  reg <- tryCatch(regtest(rma(yi, vi, method="REML", control=ctrl), model="rma"),
                  error=function(e) NULL, warning=function(w) NULL)
  regtest_fit <- if (is.null(reg)) NULL else
    list(tau2=reg$fit$tau2, zval=reg$zval, pval=reg$pval, est=reg$est)
  cases[[length(cases) + 1]] <- list(
    yi=yi, vi=vi, fits=fits, regtest=regtest_fit,
    call="rma(yi, vi, method=m, control=list(threshold=1e-13, maxiter=100000))")
}
out <- list(
  generated_by="validation/metafor/make_multimodal_reference.R",
  metafor_version=as.character(packageVersion("metafor")),
  r_version=R.version.string,
  datasets_tried=tried,
  cases=cases)
write_json(out, "tests/reference/metafor_multimodal.json", digits=NA, auto_unbox=TRUE, pretty=TRUE)
cat("wrote", length(cases), "cases after", tried, "datasets\n")
