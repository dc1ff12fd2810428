# Regenerates tests/reference/metafor_mv_confint.json: metafor's profile-likelihood confidence
# intervals of the variance components of rma.mv fits (confint), for the fits of
# make_mv_reference.R marked there with confint = TRUE (same ids, same data, same models).
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_mv_confint_reference.R
#
# Why a separate script. confint() refits the model with each component fixed at trial values,
# with the control settings of the fit it is given. With the tight optimiser settings of
# make_mv_reference.R those refits often fail to converge and confint returns NA for a bound
# ("Cannot obtain upper bound of profile likelihood CI due to convergence problems"). Here each
# interval is computed from the fit with metafor's default optimiser settings and, failing
# that, from a fit with nlminb at rel.tol = 1e-12; per bound the first non-NA value is kept.
# The root finder's tolerance is tightened from its default (tol = .Machine$double.eps^0.25,
# ~1e-4: bounds that move in the 4th digit) to 1e-10; the profiled log-likelihoods are
# maximised by nlminb (relative tolerance 1e-10), so the bounds are accurate to ~1e-6 relative.
suppressMessages(library(metafor))
source("validation/metafor/json_exact.R")

num <- function(x) as.numeric(x)
quiet <- function(expr) suppressWarnings(suppressMessages(expr))
CONTROLS <- list(default = list(),
                 tight = list(rel.tol = 1e-12, x.tol = 1e-12, iter.max = 10000, eval.max = 10000))
CI_TOL <- 1e-10

records <- function(r) {
  ci <- tryCatch(quiet(confint(r, control = list(tol = CI_TOL))), error = function(e) NULL)
  if (is.null(ci)) return(list())
  if (inherits(ci, "confint.rma")) ci <- list(ci)
  out <- list()
  for (part in ci) {
    if (!inherits(part, "confint.rma")) next
    tab <- part$random
    for (i in seq_len(nrow(tab))) out[[rownames(tab)[i]]] <- num(tab[i, ])
  }
  out
}

OUT <- list()
add <- function(id, args) {
  cat(id, "\n")
  merged <- list()
  used <- list()
  for (ctl in names(CONTROLS)) {
    r <- tryCatch(quiet(do.call(rma.mv, c(args, list(control = CONTROLS[[ctl]])))),
                  error = function(e) NULL)
    if (is.null(r)) next
    rec <- records(r)
    for (name in names(rec)) {
      if (is.null(merged[[name]])) {
        merged[[name]] <- rec[[name]]
        used[[name]] <- arr(rep(ctl, 3))
        next
      }
      for (j in 2:3) {
        if (is.na(merged[[name]][j]) && !is.na(rec[[name]][j])) {
          merged[[name]][j] <- rec[[name]][j]
          used[[name]][j] <- ctl
        }
      }
    }
  }
  OUT[[length(OUT) + 1]] <<- list(id = id, confint = lapply(merged, arr), control_used = used)
}

kon <- dat.konstantopoulos2011
base_k <- list(yi = kon$yi, V = kon$vi, data = kon)
add("konstantopoulos REML ~1|district/school",
    c(base_k, list(random = ~ 1 | district / school, method = "REML")))
add("konstantopoulos ML ~1|district/school",
    c(base_k, list(random = ~ 1 | district / school, method = "ML")))
add("konstantopoulos REML ~school|district CS",
    c(base_k, list(random = ~ school | district, struct = "CS", method = "REML")))

ber <- dat.berkey1998
Vb <- quiet(vcalc(vi = 1, cluster = author, rvars = c(v1i, v2i), data = ber))
base_b <- list(yi = ber$yi, V = Vb, data = ber, mods = ~ outcome - 1)
add("berkey REML UN", c(base_b, list(random = ~ outcome | trial, struct = "UN", method = "REML")))
add("berkey REML CS", c(base_b, list(random = ~ outcome | trial, struct = "CS", method = "REML")))

ish <- dat.ishak2007
ish_long <- reshape(ish, direction = "long", idvar = "study", v.names = c("yi", "vi"),
                    varying = list(c(2, 4, 6, 8), c(3, 5, 7, 9)))
ish_long <- ish_long[order(ish_long$study, ish_long$time), ]
ish_long <- ish_long[!is.na(ish_long$yi), ]
add("ishak REML AR", list(yi = ish_long$yi, V = ish_long$vi, data = ish_long,
                          mods = ~ factor(time) - 1, random = ~ time | study, struct = "AR",
                          method = "REML"))

asn <- dat.assink2016
add("assink REML ~1|study/esid", list(yi = asn$yi, V = asn$vi, data = asn,
                                      random = ~ 1 | study / esid, method = "REML"))

# the seeded simulations of make_mv_reference.R (same seed and draws)
set.seed(20181)
for (s in 1:4) {
  n_study <- c(30, 12, 40, 25)[s]
  sizes <- sample(1:6, n_study, replace = TRUE)
  study <- rep(seq_len(n_study), sizes)
  es <- sequence(sizes)
  k <- length(study)
  s2 <- c(0.05, 0.02, 0.1, 0.03)[s]
  s3 <- c(0.02, 0, 0.05, 0)[s]
  vi <- rchisq(k, 20) / 20 * c(0.02, 0.04, 0.01, 0.05)[s]
  x <- rnorm(k)
  yi <- 0.3 + 0.1 * x + rnorm(n_study, 0, sqrt(s2))[study] + rnorm(k, 0, sqrt(s3)) +
    rnorm(k, 0, sqrt(vi))
  d <- data.frame(study = study, es = es, yi = yi, vi = vi, x = x)
  if (s <= 2) {
    add(paste0("sim", s, " REML ~1|study/es x"),
        list(yi = d$yi, V = d$vi, data = d, random = ~ 1 | study / es, mods = ~ x,
             method = "REML"))
  }
}

out <- list(generated_by = "validation/metafor/make_mv_confint_reference.R",
            metafor_version = as.character(packageVersion("metafor")),
            R_version = R.version.string, confint_tol = CI_TOL, fits = OUT)
writeLines(to_json(out), "tests/reference/metafor_mv_confint.json")
cat("wrote tests/reference/metafor_mv_confint.json\n")
