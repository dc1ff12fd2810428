# Regenerates tests/reference/metafor_bias.json: metafor's regtest, ranktest, trimfill, fsn,
# leave1out, cumul and influence on public and simulated datasets (stored with the answers).
# Usage, from the repository root: Rscript validation/metafor/make_bias_reference.R
suppressMessages({library(metafor); library(jsonlite)})
set.seed(4242)
ctrl <- list(threshold=1e-13, maxiter=10000, tol=1e-13)
num <- function(x) as.numeric(x)

datasets <- list()
dat <- escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
datasets$bcg <- list(yi=num(dat$yi), vi=num(dat$vi), ni=num(dat$tpos + dat$tneg + dat$cpos + dat$cneg),
                     note="dat.bcg, escalc('RR')")
eg <- escalc("OR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.egger2001)
datasets$magnesium <- list(yi=num(eg$yi), vi=num(eg$vi), ni=num(eg$n1i + eg$n2i),
                           note="dat.egger2001 (magnesium trials), escalc('OR')")
for (i in 1:4) {
  k <- c(8, 12, 20, 30)[i]
  ni <- sample(20:400, k)
  vi <- 4 / ni * runif(k, 0.8, 1.2)
  yi <- rnorm(k, 0.3 + 2 * sqrt(vi) * (i %% 2), sqrt(vi + c(0, 0.05)[1 + (i > 2)]))
  datasets[[sprintf("sim%d", i)]] <- list(yi=yi, vi=vi, ni=ni, note=sprintf("simulated, k=%d", k))
}

cases <- list()
add <- function(...) cases[[length(cases) + 1]] <<- list(...)
for (nm in names(datasets)) {
  d <- datasets[[nm]]
  for (pred in c("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")) {
    r <- regtest(d$yi, d$vi, ni=d$ni, model="lm", predictor=pred)
    add(dataset=nm, fn="regtest", model="lm", predictor=pred, method="EE", test="t",
        call=sprintf("regtest(yi, vi, ni=ni, model='lm', predictor='%s')", pred),
        value=list(statistic=r$zval, pvalue=r$pval, df=r$dfs, limit_estimate=r$est,
                   limit_ci_lower=r$ci.lb, limit_ci_upper=r$ci.ub,
                   intercept=num(coef(r$fit)[2]), intercept_se=num(sqrt(diag(vcov(r$fit)))[2])))
    for (m in c("REML", "DL", "ML", "EE")) for (tt in c("z", "knha")) {
      fit <- rma(d$yi, d$vi, method=m, test=tt, control=ctrl)
      r <- regtest(fit, ni=d$ni, predictor=pred)
      add(dataset=nm, fn="regtest", model="rma", predictor=pred, method=m, test=tt,
          call=sprintf("regtest(rma(yi, vi, method='%s', test='%s'), ni=ni, predictor='%s')", m, tt, pred),
          value=list(statistic=r$zval, pvalue=r$pval, df=if (is.null(r$dfs)) NULL else r$dfs,
                     limit_estimate=r$est, limit_ci_lower=r$ci.lb, limit_ci_upper=r$ci.ub,
                     slope=num(r$fit$b[2]), slope_se=num(r$fit$se[2]), tau2=r$fit$tau2))
    }
  }
  r <- ranktest(d$yi, d$vi)
  add(dataset=nm, fn="ranktest", call="ranktest(yi, vi)", value=list(tau=num(r$tau), pvalue=r$pval))
  for (m in c("DL", "REML", "EE")) for (est in c("L0", "R0", "Q0")) for (side in c("auto", "left", "right")) {
    fit <- rma(d$yi, d$vi, method=m, control=ctrl)
    tf <- tryCatch(if (side == "auto") trimfill(fit, estimator=est) else trimfill(fit, estimator=est, side=side),
                   error=function(e) NULL)
    if (is.null(tf)) next  # metafor 3.8 fails when R0 finds no negative deviation
    # trimfill's own final fit uses metafor's default threshold (1e-5): refit the filled
    # data to tight convergence for the pooled values
    final <- rma(tf$yi, tf$vi, method=m, control=ctrl)
    add(dataset=nm, fn="trimfill", method=m, estimator=est, side=side,
        call=sprintf("trimfill(rma(yi, vi, method='%s'), estimator='%s'%s); rma(filled data)", m, est,
                     if (side == "auto") "" else sprintf(", side='%s'", side)),
        value=list(k0=tf$k0, side=tf$side, estimate=num(final$b), se=final$se, tau2=final$tau2,
                   filled_yi=num(tf$yi[tf$fill]), filled_vi=num(tf$vi[tf$fill])))
  }
  for (type in c("Rosenthal", "Orwin", "Rosenberg")) {
    f <- fsn(d$yi, d$vi, type=type)
    add(dataset=nm, fn="fsn", type=type, call=sprintf("fsn(yi, vi, type='%s')", type),
        value=list(fsnum=f$fsnum, pvalue=if (is.null(f$pval)) NULL else f$pval,
                   mean_effect=if (is.null(f$meanes)) NULL else f$meanes,
                   target=if (is.null(f$target)) NULL else f$target))
  }
  for (m in c("REML", "DL")) for (tt in c("z", "knha")) {
    fit <- rma(d$yi, d$vi, method=m, test=tt, control=ctrl)
    l <- leave1out(fit)
    add(dataset=nm, fn="leave1out", method=m, test=tt,
        call=sprintf("leave1out(rma(yi, vi, method='%s', test='%s'))", m, tt),
        value=list(estimate=num(l$estimate), se=num(l$se), statistic=num(l$zval), pvalue=num(l$pval),
                   ci_lower=num(l$ci.lb), ci_upper=num(l$ci.ub), q=num(l$Q), q_pvalue=num(l$Qp),
                   tau2=num(l$tau2), i2=num(l$I2), h2=num(l$H2)))
    ord <- order(-d$yi)
    cm <- cumul(fit, order=ord)
    add(dataset=nm, fn="cumul", method=m, test=tt, order=ord - 1,
        call=sprintf("cumul(rma(yi, vi, method='%s', test='%s'), order=order(-yi))", m, tt),
        value=list(estimate=num(cm$estimate), se=num(cm$se), pvalue=num(cm$pval),
                   ci_lower=num(cm$ci.lb), ci_upper=num(cm$ci.ub), q=num(cm$Q),
                   tau2=num(cm$tau2), i2=num(cm$I2)))
  }
  for (m in c("REML", "DL")) {
    fit <- rma(d$yi, d$vi, method=m, control=ctrl)
    inf <- influence(fit)
    add(dataset=nm, fn="influence", method=m, call=sprintf("influence(rma(yi, vi, method='%s'))", m),
        value=list(rstudent=num(inf$inf$rstudent), dffits=num(inf$inf$dffits), cook_d=num(inf$inf$cook.d),
                   cov_r=num(inf$inf$cov.r), tau2_del=num(inf$inf$tau2.del), q_del=num(inf$inf$QE.del),
                   hat=num(inf$inf$hat), weight=num(inf$inf$weight), dfbetas=num(inf$dfbs[[1]]),
                   influential=as.logical(inf$is.infl)))
  }
}
write(toJSON(list(generated_by="validation/metafor/make_bias_reference.R", r_version=R.version.string,
                  metafor_version=as.character(packageVersion("metafor")), datasets=datasets, cases=cases),
             auto_unbox=TRUE, digits=NA, null="null"), "tests/reference/metafor_bias.json")
cat("wrote", length(cases), "cases\n")
