# Regenerates tests/reference/metafor_ranktest.json: metafor's ranktest() (Begg & Mazumdar's
# rank correlation test) on simulated funnels with k = 3 to 200 studies, without ties (exact
# p-value: ranktest calls cor.test(method = "kendall", exact = TRUE) for any k) and with ties
# (tie-corrected normal approximation).
#
# R's exact Kendall distribution divides the Mahonian counts by gamma(k + 1), which overflows
# from k = 171 on, so metafor returns NaN there. For every case without ties the script also
# records the exact p-value computed here independently, from the permutation distribution of
# the number of concordant pairs built by direct convolution of normalised probabilities
# (stats::filter; no cumulative sums); it is checked against cor.test wherever R has one.
#
# Usage, from the repository root: Rscript validation/metafor/make_ranktest_reference.R
suppressMessages({library(metafor); library(jsonlite)})
set.seed(20250114)

# P(C = c), c = 0..k(k-1)/2, for the concordant pairs C of k untied pairs under independence:
# C is the sum of independent uniforms on 0..j-1, j = 1..k
kendall_density <- function(k) {
  p <- 1
  for (j in seq_len(k)[-1]) {
    padded <- c(p, rep(0, j - 1))
    p <- as.numeric(stats::filter(padded, rep(1 / j, j), sides = 1, circular = FALSE))
    p[is.na(p)] <- 0
    # filter leaves the first j - 1 entries NA (incomplete windows): their sums by hand
    for (d in seq_len(j - 1) - 1) p[d + 1] <- sum(padded[1:(d + 1)]) / j
  }
  p
}
exact_p <- function(k, tau) {
  n_pairs <- k * (k - 1) / 2
  q <- round((tau + 1) * n_pairs / 2)  # concordant pairs
  dens <- kendall_density(k)
  lower <- sum(dens[seq_len(q + 1)])                 # P(C <= q)
  upper <- sum(dens[(q + 1):(n_pairs + 1)])          # P(C >= q)
  min(1, 2 * min(lower, upper))
}

ks <- c(3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 49, 50, 51, 60, 75, 100, 120, 150, 170,
        171, 185, 200)
cases <- list()
for (k in ks) {
  for (shape in c("null", "moderate", "strong", "reverse", "ties_vi", "ties_both")) {
    if (shape == "ties_both" && k < 4) next
    vi <- signif(runif(k, 0.01, 0.5), 12)
    slope <- switch(shape, null = 0, moderate = 1, strong = 4, reverse = -4, ties_vi = 1,
                    ties_both = 1)
    yi <- signif(rnorm(k, slope * sqrt(vi), sqrt(vi)), 12)
    if (shape == "ties_vi") vi <- pmax(round(vi, 1), 0.1)  # reported to one decimal: ties
    if (shape == "ties_both") {                 # a duplicated study: ties in both rankings
      yi[2] <- yi[1]; vi[2] <- vi[1]
    }
    r <- suppressWarnings(ranktest(yi, vi))
    wi <- 1 / vi
    theta <- sum(wi * yi) / sum(wi)
    dev <- (yi - theta) / sqrt(vi - 1 / sum(wi))
    ties <- length(unique(dev)) < k || length(unique(vi)) < k
    ref <- if (ties) NULL else exact_p(k, as.numeric(r$tau))
    if (!ties && k <= 170 && abs(ref - r$pval) > 1e-10 * r$pval + 1e-11)
      stop(sprintf("independent exact p disagrees with cor.test at k = %d: %.17g vs %.17g", k, ref, r$pval))
    cases[[length(cases) + 1]] <- list(
      k = k, shape = shape, ties = ties, yi = yi, vi = vi,
      call = "ranktest(yi, vi)",
      tau = as.numeric(r$tau), pvalue = if (is.na(r$pval)) "NaN" else r$pval,
      pvalue_exact = ref)
  }
}
write(toJSON(list(generated_by = "validation/metafor/make_ranktest_reference.R",
                  r_version = R.version.string,
                  metafor_version = as.character(packageVersion("metafor")),
                  note = paste("pvalue: metafor's ranktest (NaN from k = 171: R's exact Kendall",
                               "distribution overflows); pvalue_exact: the exact p-value computed",
                               "by this script (cases without ties)"),
                  cases = cases),
           auto_unbox = TRUE, digits = NA, null = "null"),
      "tests/reference/metafor_ranktest.json")
cat("wrote", length(cases), "cases\n")
