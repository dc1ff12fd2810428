# Regenerates tests/reference/metafor_pool.json and tests/reference/metafor_escalc.json
# with R's metafor (Debian: apt-get install -y r-cran-metafor). Not run in CI: the JSON
# is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_reference.R
# Datasets are simulated here (seeded) and stored with the answers, so the tests need no R.
suppressMessages({library(metafor); library(jsonlite)})
set.seed(20261125)
ctrl <- list(threshold=1e-13, maxiter=10000, tol=1e-13)   # tight convergence, see README
methods <- c("EE","DL","REML","ML","PM","HE","SJ","HS","EB")
tests <- c("z","t","knha","adhoc")

fit_values <- function(res) {
  pr <- predict(res)
  list(estimate=res$b[1], se=res$se, statistic=res$zval, pvalue=res$pval,
       ci_lower=res$ci.lb, ci_upper=res$ci.ub, tau2=res$tau2,
       tau2_se=if (is.null(res$se.tau2) || is.na(res$se.tau2)) NULL else res$se.tau2,
       i2=res$I2, h2=res$H2, q=res$QE, q_pvalue=res$QEp,
       pred_lower=pr$pi.lb, pred_upper=pr$pi.ub, weights=unname(weights(res)))
}

datasets <- list()
add <- function(name, yi, vi, note) datasets[[name]] <<- list(yi=yi, vi=vi, note=note)
dat <- escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
add("bcg_logRR", as.numeric(dat$yi), as.numeric(dat$vi), "dat.bcg, escalc('RR')")
for (i in 1:6) {
  k <- sample(c(3, 5, 8, 12, 20, 40), 1)
  vi <- rchisq(k, 5) / 5 * runif(1, 0.01, 0.5)
  tau2 <- sample(c(0, 0.02, 0.1, 0.5), 1)
  yi <- rnorm(k, runif(1, -1, 1), sqrt(vi + tau2))
  add(sprintf("sim%d", i), yi, vi, sprintf("simulated: k=%d, true tau2=%g", k, tau2))
}
add("k2", c(0.2, 0.9), c(0.04, 0.09), "k = 2")
add("k2_homog", c(0.2, 0.25), c(0.04, 0.09), "k = 2, no excess heterogeneity")
add("identical", rep(0.3, 5), c(0.01, 0.02, 0.03, 0.04, 0.05), "identical effects")
add("boundary", c(0.10, 0.12, 0.08, 0.11, 0.09, 0.10), c(0.02, 0.03, 0.025, 0.04, 0.02, 0.03),
    "tau2 truncated at 0")
add("wide_variances", c(0.5, 0.1, -0.3, 1.2, 0.4, 0.8, -0.1),
    c(1e-8, 1e-4, 0.01, 1, 10, 100, 0.5), "variances spanning 1e-8 to 1e2")
add("large_effects", c(1000, 1003, 997, 1010, 995, 1001), c(4, 9, 2, 16, 1, 5),
    "effects of size 1e3")

cases <- list()
for (nm in names(datasets)) {
  d <- datasets[[nm]]
  for (m in methods) for (tt in tests) {
    res <- tryCatch(rma(d$yi, d$vi, method=m, test=tt, control=ctrl), error=function(e) NULL)
    if (is.null(res)) next
    cases[[length(cases) + 1]] <- list(
      dataset=nm, method=m, test=tt,
      call=sprintf("rma(yi, vi, method='%s', test='%s', control=list(threshold=1e-13, maxiter=10000))", m, tt),
      value=fit_values(res))
  }
  if (length(d$yi) > 1) {
    res <- rma(d$yi, d$vi, method="REML", control=ctrl)
    ci <- confint(res, control=list(tol=1e-13))$random
    cases[[length(cases) + 1]] <- list(
      dataset=nm, method="REML", test="z", kind="confint",
      call="confint(rma(yi, vi, method='REML'), control=list(tol=1e-13))",
      value=list(tau2=unname(ci[1, ]), tau=unname(ci[2, ]), i2=unname(ci[3, ]), h2=unname(ci[4, ])))
  }
}
for (m in methods) {
  res <- rma(datasets$sim1$yi, datasets$sim1$vi, method=m, tau2=0.05)
  cases[[length(cases) + 1]] <- list(dataset="sim1", method=m, test="z", tau2_fixed=0.05,
    call=sprintf("rma(yi, vi, method='%s', tau2=0.05)", m), value=fit_values(res))
}
res <- rma(datasets$sim1$yi, datasets$sim1$vi, level=90, method="DL", test="knha")
cases[[length(cases) + 1]] <- list(dataset="sim1", method="DL", test="knha", level=0.90,
  call="rma(yi, vi, method='DL', test='knha', level=90)", value=fit_values(res))

out <- list(generated_by="validation/metafor/make_reference.R",
            r_version=R.version.string, metafor_version=as.character(packageVersion("metafor")),
            control="threshold=1e-13, maxiter=10000; confint tol=1e-13",
            datasets=datasets, cases=cases)
write(toJSON(out, auto_unbox=TRUE, digits=NA, null="null", pretty=FALSE),
      "tests/reference/metafor_pool.json")

# ---- escalc on simulated inputs of every measure ----
set.seed(7)
k <- 8
esc <- list()
addesc <- function(measure, args, extra=list()) {
  e <- do.call(escalc, c(list(measure=measure), args, extra))
  esc[[length(esc) + 1]] <<- list(measure=measure, inputs=args, options=extra,
    call=sprintf("escalc('%s', ...%s)", measure,
                 if (length(extra)) paste0(", ", paste(names(extra), extra, sep="=", collapse=", ")) else ""),
    yi=as.numeric(e$yi), vi=as.numeric(e$vi))
}
two <- list(m1i=round(rnorm(k, 10, 3), 2), sd1i=round(runif(k, 1, 5), 2), n1i=sample(5:60, k),
            m2i=round(rnorm(k, 8, 3), 2), sd2i=round(runif(k, 1, 5), 2), n2i=sample(5:60, k))
for (vt in c("LS", "UB", "LS2")) addesc("SMD", two, list(vtype=vt))
addesc("MD", two); addesc("MD", two, list(vtype="HO")); addesc("SMDH", two); addesc("ROM", two)
pp <- list(m1i=round(rnorm(k, 6, 1), 2), m2i=round(rnorm(k, 4, 1), 2), sd1i=round(runif(k, 1, 3), 2),
           sd2i=round(runif(k, 1, 3), 2), ni=sample(6:40, k), ri=round(runif(k, 0.1, 0.8), 2))
addesc("MC", pp); addesc("SMCC", pp); addesc("SMCR", pp[c("m1i","m2i","sd1i","ni","ri")])
tab <- list(ai=c(0, 3, 12, 5, 0, 20, 7, 1), bi=c(20, 17, 30, 0, 15, 80, 7, 40),
            ci=c(2, 0, 15, 6, 0, 30, 3, 4), di=c(18, 23, 28, 4, 20, 70, 11, 37))
for (m in c("OR", "RR", "RD", "AS", "PETO")) {
  addesc(m, tab)
  for (to in c("all", "if0all", "none")) addesc(m, tab, list(to=to))
  addesc(m, tab, list(drop00=TRUE)); addesc(m, tab, list(add=0.25))
}
tabn <- list(ai=tab$ai, n1i=tab$ai + tab$bi, ci=tab$ci, n2i=tab$ci + tab$di)
addesc("OR", tabn)
prp <- list(xi=c(0, 3, 10, 25, 40, 7, 50, 1), ni=c(10, 20, 10, 50, 40, 30, 60, 8))
for (m in c("PR", "PLN", "PLO", "PAS", "PFT")) { addesc(m, prp); addesc(m, prp, list(to="all")) }
corr <- list(ri=c(-0.5, 0, 0.2, 0.45, 0.9, 0.33, -0.1, 0.7), ni=c(10, 25, 40, 100, 15, 60, 200, 8))
addesc("COR", corr); addesc("ZCOR", corr)
rt <- list(xi=c(0, 4, 10, 25, 3, 7, 1, 60), ti=c(100, 250, 80, 1000, 30, 70, 12, 900))
addesc("IR", rt); addesc("IRLN", rt)
rt2 <- list(x1i=c(0, 4, 10, 25, 3, 7, 1, 60), t1i=c(100, 250, 80, 1000, 30, 70, 12, 900),
            x2i=c(2, 0, 12, 30, 3, 9, 4, 45), t2i=c(110, 200, 90, 950, 35, 60, 15, 800))
addesc("IRR", rt2); addesc("IRD", rt2)
write(toJSON(list(generated_by="validation/metafor/make_reference.R", r_version=R.version.string,
                  metafor_version=as.character(packageVersion("metafor")), cases=esc),
             auto_unbox=TRUE, digits=NA, null="null"), "tests/reference/metafor_escalc.json")
cat("wrote", length(cases), "pool cases and", length(esc), "escalc cases\n")
