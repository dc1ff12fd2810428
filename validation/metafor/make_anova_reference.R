# Regenerates tests/reference/metafor_anova.json: metafor's anova(full, reduced) of two
# rma.uni fits (the likelihood-ratio test with AIC, BIC, AICc, logLik, QE, tau^2 and the
# pseudo R^2 it prints), on the BCG trials (escalc "RR"). ketameta's MetaRegResult.anova(other)
# / PoolResult.anova(other) are checked against it (tests/test_anova_lrt.py).
# Usage, from the repository root: Rscript validation/metafor/make_anova_reference.R
suppressMessages({library(metafor)})
source("validation/metafor/json_exact.R")
ctrl <- list(threshold=1e-13, maxiter=10000)
dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
fit <- function(mods, method, tau2=NULL) {
  if (is.null(mods)) rma(yi, vi, data=dat, method=method, tau2=tau2, control=ctrl)
  else rma(yi, vi, mods=mods, data=dat, method=method, tau2=tau2, control=ctrl)
}
spec <- function(mods, method, tau2=NULL)
  list(mods=if (is.null(mods)) "~ 1" else deparse(mods), method=method, tau2=tau2)
cases <- list()
add <- function(name, f, r) {
  a <- anova(fit(f$mods, f$method, f$tau2), fit(r$mods, r$method, r$tau2))
  st <- function(x) list(ll=x[["ll"]], dev=x[["dev"]], AIC=x[["AIC"]], BIC=x[["BIC"]],
                         AICc=x[["AICc"]])
  cases[[length(cases) + 1]] <<- list(
    name=name, full=spec(f$mods, f$method, f$tau2), reduced=spec(r$mods, r$method, r$tau2),
    value=list(df_full=a$parms.f, df_reduced=a$parms.r, fit_full=st(a$fit.stats.f),
               fit_reduced=st(a$fit.stats.r), LRT=a$LRT, pval=a$pval, QE_full=a$QE.f,
               QE_reduced=a$QE.r, tau2_full=a$tau2.f, tau2_reduced=a$tau2.r, R2=a$R2))
}
m <- function(mods, method, tau2=NULL) list(mods=mods, method=method, tau2=tau2)
add("ML ablat+year vs ablat", m(~ ablat + year, "ML"), m(~ ablat, "ML"))
add("ML ablat vs intercept", m(~ ablat, "ML"), m(NULL, "ML"))
add("ML ablat+year vs intercept", m(~ ablat + year, "ML"), m(NULL, "ML"))
add("ML ablat vs EE intercept", m(~ ablat, "ML"), m(NULL, "EE"))
add("EE ablat vs EE intercept", m(~ ablat, "EE"), m(NULL, "EE"))
add("REML intercept vs tau2=0", m(NULL, "REML"), m(NULL, "REML", 0))
add("REML ablat vs tau2=0", m(~ ablat, "REML"), m(~ ablat, "REML", 0))
out <- list(source=paste("metafor", packageVersion("metafor"), "anova.rma of two rma.uni fits,",
                         "dat.bcg escalc('RR'), control threshold 1e-13"),
            yi=arr(as.numeric(dat$yi)), vi=arr(as.numeric(dat$vi)),
            ablat=arr(as.numeric(dat$ablat)), year=arr(as.numeric(dat$year)), cases=cases)
writeLines(to_json(out), "tests/reference/metafor_anova.json")
