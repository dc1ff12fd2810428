# Regenerates tests/reference/published_petpeese.json: the PET-PEESE example of JASP's
# meta-analysis module (jasp-stats/jaspMetaAnalysis, tests/testthat/test-petpeese.R at commit
# 6ff9d7cb00f2a233f6d98289218d33471a30f8bb; JASP's implementation follows the supplementary
# code of Carter et al. 2019): 100 studies drawn with set.seed(1); es = runif(100, .1, .5);
# se = runif(100, .1, .2). The published (JASP) values are copied below by hand; this script only
# regenerates the dataset (R's Mersenne-Twister) and, as a second check, base R's lm() fits of
# PET (es ~ se) and PEESE (es ~ se^2) with weights 1/se^2 on dat.hackshaw1998.
# Usage, from the repository root: Rscript validation/metafor/make_petpeese_reference.R
suppressMessages({library(metafor)})
source("validation/metafor/json_exact.R")
set.seed(1)
dataset <- data.frame(es = runif(100, .1, .5), se = runif(100, .1, .2))
fits <- function(y, se) {
  out <- list()
  for (nm in c("pet", "peese")) {
    x <- if (nm == "pet") se else se^2
    f <- summary(lm(y ~ x, weights = 1 / se^2))
    cf <- f$coefficients
    out[[nm]] <- list(estimate = cf[1, 1], se = cf[1, 2], t = cf[1, 3], p = cf[1, 4],
                      slope = cf[2, 1], slope_se = cf[2, 2], df = f$df[2])
  }
  out
}
d <- dat.hackshaw1998
writeLines(to_json(list(
  generated_by = "validation/metafor/make_petpeese_reference.R",
  jasp = list(
    source = paste0("jasp-stats/jaspMetaAnalysis tests/testthat/test-petpeese.R ",
                    "(commit 6ff9d7cb00f2a233f6d98289218d33471a30f8bb), 'normal input'"),
    es = arr(dataset$es), se = arr(dataset$se),
    published = list(
      pet = list(estimate = 0.34337131183395, se = 0.0575685744994455, t = 5.96456165224757,
                 p = 3.89620858572912e-08, df = 98, slope = -0.243521024582982,
                 slope_se = 0.399081540970924, slope_t = -0.610203679154192,
                 slope_p = 0.543139330140677),
      peese = list(estimate = 0.320866166951152, se = 0.0301072258608448, t = 10.6574471003802,
                   p = 4.55340539661329e-18, df = 98, slope = -0.577782641339283,
                   slope_se = 1.35405385598765, slope_t = -0.426705805521928,
                   slope_p = 0.670529544485013)),
    lm = fits(dataset$es, dataset$se)),
  hackshaw = list(yi = arr(d$yi), vi = arr(d$vi), lm = fits(d$yi, sqrt(d$vi)))
)), "tests/reference/published_petpeese.json")
