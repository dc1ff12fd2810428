# Regenerates tests/reference/metafor_metadat_metareg.json: meta-regressions on the real
# moderators of every metadat dataset with yi/vi columns or escalc-able data (the first numeric
# moderator with >= 3 distinct values, and the first factor with 2-6 levels), through rma with
# the nine tau^2 estimators x four tests. Not run in CI: the JSON is committed. Usage:
#   Rscript validation/metafor/make_metadat_metareg_reference.R
suppressMessages({library(metafor); library(metadat); library(jsonlite)})
ctrl <- list(threshold=1e-13, maxiter=10000, tol=1e-13)
methods <- c("EE","DL","REML","ML","PM","HE","SJ","HS","EB")
tests <- c("z","t","knha","adhoc")
skip <- c("yi","vi","sei","ni","n1i","n2i","ai","bi","ci","di","m1i","m2i","sd1i","sd2i","ri","xi",
          "mi","tpos","tneg","cpos","cneg","id","study","trial","author","es.id","study.id","esid")
num <- function(x) if (is.null(x)) NA else as.numeric(x)
out <- list()
fit_all <- function(name, yi, vi, mod, kind) {
  ok <- is.finite(yi) & is.finite(vi) & !is.na(mod)
  yi <- yi[ok]; vi <- vi[ok]; mod <- mod[ok]
  if (length(yi) < 5 || length(yi) > 600 || any(vi <= 0)) return()
  if (kind == "factor") { mod <- as.character(mod); if (length(unique(mod)) < 2 || min(table(mod)) < 2) return() }
  else if (length(unique(mod)) < 3) return()
  fits <- list()
  for (m in methods) for (tt in tests) {
    r <- tryCatch(suppressWarnings(if (kind == "factor") rma(yi, vi, mods=~factor(mod), method=m, test=tt, control=ctrl)
                                   else rma(yi, vi, mods=~mod, method=m, test=tt, control=ctrl)), error=function(e) NULL)
    if (is.null(r)) next
    fits[[paste(m, tt)]] <- list(coef=unname(as.numeric(r$b)), se=unname(r$se), stat=unname(r$zval),
      p=unname(r$pval), ci_lower=unname(r$ci.lb), ci_upper=unname(r$ci.ub), tau2=r$tau2,
      tau2_se=num(r$se.tau2), i2=r$I2, h2=r$H2, r2=num(r$R2), qe=r$QE, qe_p=r$QEp, qm=r$QM, qm_p=r$QMp)
  }
  message(name, " ", length(yi), " ", length(fits))
  out[[length(out)+1]] <<- list(name=name, kind=kind, yi=yi, vi=vi,
    mod=if (kind == "factor") mod else as.numeric(mod), fits=fits)
}
scan_mods <- function(name, x, yi, vi) {
  cand <- setdiff(names(x), skip)
  nm <- Filter(function(c) is.numeric(x[[c]]) && length(unique(na.omit(x[[c]]))) >= 3, cand)
  fc <- Filter(function(c) (is.character(x[[c]]) || is.factor(x[[c]])) && length(unique(na.omit(x[[c]]))) %in% 2:6, cand)
  if (length(nm)) fit_all(paste0(name, " ~ ", nm[1]), yi, vi, x[[nm[1]]], "numeric")
  if (length(fc)) fit_all(paste0(name, " ~ ", fc[1]), yi, vi, x[[fc[1]]], "factor")
}
ds <- data(package="metadat")$results[, "Item"]
for (d in ds) { x <- get(d); if (!is.data.frame(x)) next; nm <- names(x)
  e <- NULL
  if (all(c("yi","vi") %in% nm)) e <- x
  else if (all(c("ai","bi","ci","di") %in% nm)) e <- tryCatch(escalc("OR", ai=ai, bi=bi, ci=ci, di=di, data=x), error=function(err) NULL)
  else if (all(c("ai","n1i","ci","n2i") %in% nm)) e <- tryCatch(escalc("OR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=x), error=function(err) NULL)
  else if (all(c("tpos","tneg","cpos","cneg") %in% nm)) e <- escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=x)
  else if (all(c("m1i","sd1i","n1i","m2i","sd2i","n2i") %in% nm)) e <- escalc("SMD", m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i, data=x)
  else if (all(c("ri","ni") %in% nm)) e <- escalc("ZCOR", ri=ri, ni=ni, data=x)
  else if (all(c("xi","ni") %in% nm)) e <- escalc("PLO", xi=xi, ni=ni, data=x)
  if (!is.null(e)) scan_mods(d, as.data.frame(e), as.numeric(e$yi), as.numeric(e$vi))
}
writeLines(toJSON(out, digits=NA, auto_unbox=TRUE, na="null"), "tests/reference/metafor_metadat_metareg.json")
cat(length(out), "entries\n")
