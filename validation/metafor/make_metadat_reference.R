# Regenerates tests/reference/metafor_metadat.json: every dataset of R's metadat package whose
# layout ketameta reads (yi/vi columns, 2x2 tables, means and SDs, correlations, proportions),
# through rma (9 estimators x 4 tests), confint, regtest, ranktest, trimfill, leave1out,
# rma.mh and rma.peto. Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_metadat_reference.R
# Datasets with more than 600 usable rows are skipped (metafor's k x k algebra makes them slow).
suppressMessages({library(metafor); library(metadat); library(jsonlite)})
ctrl <- list(threshold=1e-13, maxiter=10000, tol=1e-13)
methods <- c("EE","DL","REML","ML","PM","HE","SJ","HS","EB")
tests <- c("z","t","knha","adhoc")
ds <- data(package="metadat")$results[, "Item"]
out <- list()
num <- function(x) if (is.null(x)) NA else as.numeric(x)
fitv <- function(res) { pr <- predict(res)
  list(estimate=res$b[1], se=res$se, statistic=res$zval, pvalue=res$pval, ci_lower=res$ci.lb,
       ci_upper=res$ci.ub, tau2=res$tau2, tau2_se=num(res$se.tau2), i2=res$I2, h2=res$H2,
       q=res$QE, q_pvalue=res$QEp, pred_lower=pr$pi.lb, pred_upper=pr$pi.ub) }
add_yivi <- function(name, yi, vi) {
  message(name, " ", length(yi), " ", format(Sys.time(), "%T"))
  ok <- is.finite(yi) & is.finite(vi)
  yi <- as.numeric(yi[ok]); vi <- as.numeric(vi[ok])
  if (length(yi) > 600) return()
  if (length(yi) < 2 || any(vi <= 0)) return()
  fits <- list()
  for (m in methods) for (tt in tests) {
    r <- tryCatch(suppressWarnings(rma(yi, vi, method=m, test=tt, control=ctrl)), error=function(e) NULL)
    if (!is.null(r)) fits[[paste(m, tt)]] <- fitv(r) }
  extra <- list()
  r <- tryCatch(suppressWarnings(rma(yi, vi, method="REML", control=ctrl)), error=function(e) NULL)
  if (!is.null(r) && length(yi) > 2 && length(yi) <= 150) {
    ci <- tryCatch(confint(r, control=list(tol=1e-13))$random, error=function(e) NULL)
    if (!is.null(ci)) extra$confint <- list(tau2=unname(ci[1,]), i2=unname(ci[3,]))
    rt <- tryCatch(regtest(r), error=function(e) NULL)
    if (!is.null(rt)) extra$regtest <- list(z=rt$zval, p=rt$pval)
    rk <- tryCatch(ranktest(r), error=function(e) NULL)
    if (!is.null(rk)) extra$ranktest <- list(tau=unname(rk$tau), p=rk$pval)
    # trimfill refits the trimmed and the filled data with metafor's default convergence
    # threshold whatever the model's control says, so only its closed-form estimators are
    # exact references: DL and EE (REML differs by up to ~1e-2 relative, see trim_and_fill)
    for (tm in c("DL", "EE")) {
      tf <- tryCatch(trimfill(rma(yi, vi, method=tm)), error=function(e) NULL)
      if (!is.null(tf)) extra[[paste0("trimfill_", tm)]] <- list(k0=tf$k0, k0_se=tf$se.k0,
        estimate=tf$b[1], se=tf$se, tau2=tf$tau2, side=tf$side)
    }
    l1 <- tryCatch(suppressWarnings(leave1out(r)), error=function(e) NULL)
    if (!is.null(l1)) extra$leave1out <- list(estimate=l1$estimate, se=l1$se, tau2=l1$tau2, i2=l1$I2)
  }
  out[[length(out)+1]] <<- list(name=name, yi=yi, vi=vi, fits=fits, extra=extra)
}
add_2x2 <- function(name, ai, bi, ci, di) {
  ok <- is.finite(ai) & is.finite(bi) & is.finite(ci) & is.finite(di)
  ai <- ai[ok]; bi <- bi[ok]; ci <- ci[ok]; di <- di[ok]
  for (ms in c("OR","RR","RD")) {
    e <- tryCatch(suppressWarnings(escalc(ms, ai=ai, bi=bi, ci=ci, di=di)), error=function(e) NULL)
    if (!is.null(e)) add_yivi(paste0(name, ":", ms), e$yi, e$vi)
    mh <- tryCatch(suppressWarnings(rma.mh(ai=ai, bi=bi, ci=ci, di=di, measure=ms)), error=function(e) NULL)
    if (!is.null(mh)) out[[length(out)+1]] <<- list(name=paste0(name, ":MH:", ms), ai=ai, bi=bi, ci=ci, di=di, measure=ms,
      mh=list(estimate=mh$b[1], se=mh$se, pvalue=mh$pval, ci_lower=mh$ci.lb, ci_upper=mh$ci.ub, q=mh$QE, q_pvalue=mh$QEp, i2=mh$I2,
              cmh=num(mh$MH), cmh_p=num(mh$MHp), tarone=num(mh$TA), tarone_p=num(mh$TAp)))
  }
  pe <- tryCatch(suppressWarnings(rma.peto(ai=ai, bi=bi, ci=ci, di=di)), error=function(e) NULL)
  if (!is.null(pe)) out[[length(out)+1]] <<- list(name=paste0(name, ":PETO"), ai=ai, bi=bi, ci=ci, di=di, measure="PETO",
      mh=list(estimate=pe$b[1], se=pe$se, pvalue=pe$pval, ci_lower=pe$ci.lb, ci_upper=pe$ci.ub, q=pe$QE, q_pvalue=pe$QEp, i2=pe$I2))
}
for (d in ds) { x <- get(d); if (!is.data.frame(x)) next; nm <- names(x)
  if (all(c("yi","vi") %in% nm)) add_yivi(paste0(d, ":yivi"), x$yi, x$vi)
  if (all(c("ai","bi","ci","di") %in% nm)) add_2x2(d, x$ai, x$bi, x$ci, x$di)
  else if (all(c("ai","n1i","ci","n2i") %in% nm)) add_2x2(d, x$ai, x$n1i - x$ai, x$ci, x$n2i - x$ci)
  else if (all(c("tpos","tneg","cpos","cneg") %in% nm)) add_2x2(d, x$tpos, x$tneg, x$cpos, x$cneg)
  if (all(c("m1i","sd1i","n1i","m2i","sd2i","n2i") %in% nm)) for (ms in c("SMD","MD","ROM")) {
    e <- tryCatch(suppressWarnings(escalc(ms, m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i, data=x)), error=function(e) NULL)
    if (!is.null(e)) add_yivi(paste0(d, ":", ms), e$yi, e$vi) }
  if (all(c("ri","ni") %in% nm)) { e <- escalc("ZCOR", ri=ri, ni=ni, data=x); add_yivi(paste0(d, ":ZCOR"), e$yi, e$vi) }
  if (all(c("xi","ni") %in% nm)) for (ms in c("PLO","PFT")) {
    e <- tryCatch(suppressWarnings(escalc(ms, xi=xi, ni=ni, data=x)), error=function(e) NULL)
    if (!is.null(e)) add_yivi(paste0(d, ":", ms), e$yi, e$vi) }
}
writeLines(toJSON(out, digits=NA, auto_unbox=TRUE, na="null"), "tests/reference/metafor_metadat.json")
cat(length(out), "entries\n")
