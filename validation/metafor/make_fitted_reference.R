# Regenerates tests/reference/metafor_fitted.json: metafor's methods called on a fitted model
# (regtest(res), ranktest(res), trimfill(res), leave1out(res), cumul(res)), on models with
# studies omitted for missing values, knha and a 90% level: the settings these functions take
# from the model. ketameta's egger_test(res), begg_test(res), trim_and_fill(res),
# leave_one_out(res) and cumulative(res) are checked against them (tests/test_fitted.py).
# Usage, from the repository root: Rscript validation/metafor/make_fitted_reference.R
suppressMessages({library(metafor)})
source("validation/metafor/json_exact.R")
ctrl <- list(threshold=1e-13, maxiter=10000)
num <- function(x) as.numeric(x)

datasets <- list()
bcg <- escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
yi <- num(bcg$yi); yi[c(3, 9)] <- NA  # two studies omitted by rma (na.omit)
datasets$bcg_omitted <- list(yi=arr(yi), vi=arr(num(bcg$vi)),
                             note="dat.bcg, escalc('RR'), yi of studies 3 and 9 set to NA")
mg <- escalc("OR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.egger2001)
datasets$magnesium <- list(yi=arr(num(mg$yi)), vi=arr(num(mg$vi)),
                           note="dat.egger2001 (magnesium trials), escalc('OR')")

cases <- list()
add <- function(...) cases[[length(cases) + 1]] <<- list(...)
for (nm in names(datasets)) {
  d <- datasets[[nm]]
  y <- as.numeric(d$yi); v <- as.numeric(d$vi)
  for (m in c("REML", "DL", "EE")) for (tt in c("z", "knha")) for (lv in c(95, 90)) {
    res <- suppressWarnings(rma(y, v, method=m, test=tt, level=lv, control=ctrl))
    model <- list(method=m, test=tt, level=lv / 100)
    r <- regtest(res)
    add(dataset=nm, fn="regtest", model=model, call="regtest(res)",
        value=list(statistic=r$zval, pvalue=r$pval, df=if (is.null(r$dfs)) NULL else r$dfs,
                   limit_estimate=r$est, limit_ci_lower=r$ci.lb, limit_ci_upper=r$ci.ub,
                   slope=num(r$fit$b[2]), slope_se=num(r$fit$se[2]), tau2=r$fit$tau2))
    r <- regtest(res, model="lm")
    add(dataset=nm, fn="regtest_lm", model=model, call="regtest(res, model='lm')",
        value=list(statistic=r$zval, pvalue=r$pval, df=r$dfs, limit_estimate=r$est,
                   limit_ci_lower=r$ci.lb, limit_ci_upper=r$ci.ub))
    r <- ranktest(res)
    add(dataset=nm, fn="ranktest", model=model, call="ranktest(res)",
        value=list(tau=num(r$tau), pvalue=r$pval))
    tf <- trimfill(res)
    add(dataset=nm, fn="trimfill", model=model, call="trimfill(res)",
        value=list(k0=tf$k0, side=tf$side, estimate=num(tf$b), se=tf$se, tau2=tf$tau2,
                   ci_lower=tf$ci.lb, ci_upper=tf$ci.ub, pvalue=tf$pval))
    l <- leave1out(res)
    add(dataset=nm, fn="leave1out", model=model, call="leave1out(res)",
        value=list(estimate=arr(num(l$estimate)), se=arr(num(l$se)), pvalue=arr(num(l$pval)),
                   ci_lower=arr(num(l$ci.lb)), ci_upper=arr(num(l$ci.ub)), q=arr(num(l$Q)),
                   tau2=arr(num(l$tau2))))
    cm <- cumul(res)
    add(dataset=nm, fn="cumul", model=model, call="cumul(res)",
        value=list(estimate=arr(num(cm$estimate)), se=arr(num(cm$se)), pvalue=arr(num(cm$pval)),
                   ci_lower=arr(num(cm$ci.lb)), ci_upper=arr(num(cm$ci.ub)),
                   tau2=arr(num(cm$tau2))))
  }
}
# regtest on a meta-regression: the predictor added to the model's moderators (no limit
# estimate); ablat of dat.bcg (studies 3 and 9 without yi), and ablat + year
ablat <- num(dat.bcg$ablat); year <- num(dat.bcg$year)
datasets$bcg_omitted$ablat <- arr(ablat)
datasets$bcg_omitted$year <- arr(year)
y <- as.numeric(datasets$bcg_omitted$yi); v <- as.numeric(datasets$bcg_omitted$vi)
for (mods in c("ablat", "ablat + year")) for (m in c("REML", "DL", "EE")) for (tt in c("z", "knha")) {
  res <- suppressWarnings(rma(y, v, mods=as.formula(paste("~", mods)), method=m, test=tt,
                              control=ctrl))
  model <- list(method=m, test=tt, level=0.95, mods=mods)
  for (mdl in c("rma", "lm")) {
    r <- regtest(res, model=mdl)
    add(dataset="bcg_omitted", fn=paste0("regtest_mods_", mdl), model=model,
        call=sprintf("regtest(rma(yi, vi, mods=~%s), model='%s')", mods, mdl),
        value=list(statistic=r$zval, pvalue=r$pval, df=if (is.null(r$dfs)) NULL else r$dfs,
                   limit_estimate=if (is.null(r$est)) NULL else r$est,
                   slope=if (mdl == "rma") num(r$fit$b[length(r$fit$b)]) else NULL,
                   tau2=if (mdl == "rma") r$fit$tau2 else NULL))
  }
}
out <- list(generated_by="validation/metafor/make_fitted_reference.R",
            r_version=R.version.string, metafor_version=as.character(packageVersion("metafor")),
            note=paste("metafor's methods on a fitted rma(yi, vi, method, test, level,",
                       "control=list(threshold=1e-13)); trimfill, leave1out and cumul refit",
                       "with metafor's default threshold 1e-5 (REML accurate to ~1e-5)"),
            datasets=datasets, cases=cases)
writeLines(to_json(out), "tests/reference/metafor_fitted.json")
cat("wrote", length(cases), "cases\n")
