# Regenerates tests/reference/metafor_binary.json: metafor's rma.mh() and rma.peto() on
# public datasets (metadat) and on simulated rare-event / zero-cell tables, with every
# option that changes the numbers (measure, add/to/drop00 for the study-level effects and
# inside the pooled estimate, correct, level). Not run in CI: the JSON is committed.
# Usage, from the repository root:
#   Rscript validation/metafor/make_binary_reference.R
# The datasets are stored with the answers, so the tests need no R.
suppressMessages({library(metafor); library(jsonlite)})
set.seed(20261217)

num <- function(x) { x <- as.numeric(x); x[!is.finite(x)] <- NA; x }

datasets <- list()
add_data <- function(name, cols, labels, note) {
  datasets[[name]] <<- c(lapply(cols, num), list(labels=as.character(labels), note=note))
}

# ---- public datasets ----
b <- dat.bcg
add_data("bcg", list(ai=b$tpos, bi=b$tneg, ci=b$cpos, di=b$cneg),
         paste(b$author, b$year), "dat.bcg (Colditz et al. 1994)")
e <- dat.egger2001
add_data("egger2001", list(ai=e$ai, n1i=e$n1i, ci=e$ci, n2i=e$n2i),
         paste(e$study, e$year), "dat.egger2001 (magnesium in MI; one zero cell)")
for (tab in c("6", "9", "10", "11", "12a", "12b")) {
  y <- dat.yusuf1985[dat.yusuf1985$table == tab, ]
  add_data(paste0("yusuf1985_table", tab), list(ai=y$ai, n1i=y$n1i, ci=y$ci, n2i=y$n2i),
           y$trial, sprintf("dat.yusuf1985, table %s (Yusuf et al. 1985; NA rows, zeros)", tab))
}
ca <- dat.collins1985a
add_data("collins1985a_bleeding", list(ai=ca$b.xti, n1i=ca$nti, ci=ca$b.xci, n2i=ca$nci),
         ca$trial, "dat.collins1985a, bleeding (NA rows, zero cells)")
add_data("collins1985a_death", list(ai=ca$d.xti, n1i=ca$nti, ci=ca$d.xci, n2i=ca$nci),
         ca$trial, "dat.collins1985a, death (NA rows, zeros, double zeros)")
cb <- dat.collins1985b
add_data("collins1985b", list(ai=cb$pre.xti, n1i=cb$pre.nti, ci=cb$pre.xci, n2i=cb$pre.nci),
         cb$author, "dat.collins1985b, pre-eclampsia")
l <- dat.li2007
add_data("li2007", list(ai=l$ai, n1i=l$n1i, ci=l$ci, n2i=l$n2i), paste(l$study, l$year),
         "dat.li2007 (magnesium; single zero cells)")
nw <- dat.nielweise2007
add_data("nielweise2007", list(ai=nw$ai, n1i=nw$n1i, ci=nw$ci, n2i=nw$n2i), nw$author,
         "dat.nielweise2007 (catheters; one double-zero study)")
add_data("rothman_15_1", list(ai=c(8, 22), bi=c(98, 76), ci=c(5, 16), di=c(115, 69)),
         c("Age <55", "Age 55+"), "Rothman, Greenland & Lash (2008), Table 15-1")
add_data("rothman_15_5", list(ai=c(3, 1), bi=c(9, 3), ci=c(104, 5), di=c(1059, 86)),
         c("<35", "35+"), "Rothman, Greenland & Lash (2008), Table 15-5")
h <- dat.hart1999
add_data("hart1999", list(x1i=h$x1i, t1i=h$t1i, x2i=h$x2i, t2i=h$t2i), h$study,
         "dat.hart1999 (warfarin; person-years)")
add_data("rothman_15_2", list(x1i=c(32, 104, 206, 186, 102),
                              t1i=c(52407, 43248, 28612, 12663, 5317) / 10000,
                              x2i=c(2, 12, 28, 28, 31),
                              t2i=c(18790, 10673, 5710, 2585, 1462) / 10000),
         c("35-44", "45-54", "55-64", "65-74", "75-84"),
         "Rothman, Greenland & Lash (2008), Table 15-2 (10^4 person-years)")

# ---- simulated rare-event tables: zeros, double zeros (none and all events) ----
for (i in 1:6) {
  k <- sample(c(3, 6, 10, 20, 30), 1)
  n1 <- sample(10:400, k, replace=TRUE); n2 <- sample(10:400, k, replace=TRUE)
  p2 <- runif(1, 0.005, 0.08); or <- exp(rnorm(1, -0.3, 0.5))
  p1 <- or * p2 / (1 - p2 + or * p2)
  ai <- rbinom(k, n1, p1); ci <- rbinom(k, n2, p2)
  ai[1] <- 0; ci[1] <- 0                      # a double-zero study
  if (k > 3) ai[2] <- 0                       # a single zero
  if (i %% 2 == 0) { ai[k] <- n1[k]; ci[k] <- n2[k] }   # only events in both groups
  add_data(sprintf("rare%d", i), list(ai=ai, n1i=n1, ci=ci, n2i=n2), sprintf("Trial %d", 1:k),
           sprintf("simulated rare events, k=%d (double zeros%s)", k,
                   if (i %% 2 == 0) ", an all-events table" else ""))
}
add_data("noninteger", list(ai=c(2.5, 4, 0.5, 7), bi=c(20, 18.5, 30, 25), ci=c(5, 6.5, 3, 9),
                            di=c(17, 16, 27.5, 22)), sprintf("S%d", 1:4),
         "non-integer cells (e.g. imputed counts)")
for (i in 1:3) {
  k <- sample(c(4, 8, 15), 1)
  t1 <- round(runif(k, 50, 2000), 1); t2 <- round(runif(k, 50, 2000), 1)
  rate <- runif(1, 0.001, 0.02)
  x1 <- rpois(k, t1 * rate * exp(rnorm(1, -0.4, 0.3))); x2 <- rpois(k, t2 * rate)
  x1[1] <- 0; x2[1] <- 0; x1[2] <- 0
  add_data(sprintf("pt_rare%d", i), list(x1i=x1, t1i=t1, x2i=x2, t2i=t2),
           sprintf("Cohort %d", 1:k), sprintf("simulated person-time, k=%d, zero events", k))
}

# ---- the fits ----
mh_values <- function(r) {
  fs <- r$fit.stats
  list(estimate=r$beta[1], se=r$se, statistic=r$zval, pvalue=r$pval, ci_lower=r$ci.lb,
       ci_upper=r$ci.ub, q=r$QE, q_pvalue=r$QEp, i2=r$I2, h2=r$H2, k=r$k, k_yi=r$k.yi,
       cmh=r$MH, cmh_pvalue=r$MHp, cochran=r$CO, cochran_pvalue=r$COp,
       tarone=r$TA, tarone_pvalue=r$TAp, breslow_day=r$BD, breslow_day_pvalue=r$BDp,
       yi=num(r$yi.f), vi=num(r$vi.f), weights=num(weights(r)),
       loglik=fs["ll", "ML"], deviance=fs["dev", "ML"], aic=fs["AIC", "ML"],
       bic=fs["BIC", "ML"], aicc=fs["AICc", "ML"], loglik_reml=fs["ll", "REML"])
}
peto_values <- function(r) {
  fs <- r$fit.stats
  list(estimate=r$beta[1], se=r$se, statistic=r$zval, pvalue=r$pval, ci_lower=r$ci.lb,
       ci_upper=r$ci.ub, q=r$QE, q_pvalue=r$QEp, i2=r$I2, h2=r$H2, k=r$k, k_yi=r$k.yi,
       yi=num(r$yi.f), vi=num(r$vi.f), weights=num(weights(r)),
       loglik=fs["ll", "ML"], deviance=fs["dev", "ML"], aic=fs["AIC", "ML"],
       bic=fs["BIC", "ML"], aicc=fs["AICc", "ML"], loglik_reml=fs["ll", "REML"])
}

cases <- list()
run <- function(model, dname, measure, args=list()) {
  d <- datasets[[dname]]
  cells <- d[intersect(names(d), c("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i"))]
  call_args <- c(cells, args)
  if (model == "mh") call_args$measure <- measure
  fun <- if (model == "mh") rma.mh else rma.peto
  res <- tryCatch(suppressWarnings(do.call(fun, call_args)), error=function(e) e)
  if (inherits(res, "error")) {
    value <- list(error=conditionMessage(res))
  } else {
    value <- if (model == "mh") mh_values(res) else peto_values(res)
  }
  argtxt <- paste(sprintf("%s=%s", names(args), sapply(args, deparse)), collapse=", ")
  cases[[length(cases) + 1]] <<- list(
    dataset=dname, model=model, measure=measure, args=args,
    call=sprintf("%s(%s%s)", if (model == "mh") "rma.mh" else "rma.peto",
                 if (model == "mh") sprintf("measure='%s', ", measure) else "", argtxt),
    value=value)
}

tables <- c("bcg", "egger2001", paste0("yusuf1985_table", c("6", "9", "10", "11", "12a", "12b")),
            "collins1985a_bleeding", "collins1985a_death", "collins1985b", "li2007",
            "nielweise2007", "rothman_15_1", "rothman_15_5", sprintf("rare%d", 1:6), "noninteger")
for (dn in tables) {
  for (m in c("OR", "RR", "RD")) run("mh", dn, m)
  run("peto", dn, "PETO")
}
for (dn in c("hart1999", "rothman_15_2", sprintf("pt_rare%d", 1:3))) {
  for (m in c("IRR", "IRD")) run("mh", dn, m)
}
# options
for (dn in c("bcg", "rothman_15_1", "rothman_15_5", "rare2", "yusuf1985_table9")) {
  run("mh", dn, "OR", list(correct=FALSE))
  run("mh", dn, "OR", list(level=90))
}
for (dn in c("rothman_15_2", "pt_rare1")) run("mh", dn, "IRR", list(correct=FALSE, level=90))
for (dn in c("rare1", "rare2", "yusuf1985_table9", "nielweise2007")) {
  for (m in c("OR", "RR", "RD")) {
    run("mh", dn, m, list(to="all"))
    run("mh", dn, m, list(to="if0all"))
    run("mh", dn, m, list(to="none"))
    run("mh", dn, m, list(add=0.25))
    run("mh", dn, m, list(drop00=FALSE))
    run("mh", dn, m, list(add=c(0.5, 0.5), to=c("only0", "only0")))   # RevMan-style
    run("mh", dn, m, list(add=c(0.5, 0.5), to=c("only0", "all"), drop00=c(TRUE, TRUE)))
    run("mh", dn, m, list(drop00=c(TRUE, TRUE)))
  }
  run("peto", dn, "PETO", list(to="all"))
  run("peto", dn, "PETO", list(drop00=FALSE))
  run("peto", dn, "PETO", list(add=c(0.5, 0.5), to=c("only0", "only0")))
  run("peto", dn, "PETO", list(level=99))
}
for (dn in c("pt_rare2", "pt_rare3")) for (m in c("IRR", "IRD")) {
  run("mh", dn, m, list(drop00=FALSE))
  run("mh", dn, m, list(add=c(0.5, 0.5), to=c("only0", "only0")))
}

out <- list(generated_by="validation/metafor/make_binary_reference.R",
            r_version=R.version.string, metafor_version=as.character(packageVersion("metafor")),
            metadat_version=as.character(packageVersion("metadat")),
            datasets=datasets, cases=cases)
write(toJSON(out, auto_unbox=TRUE, digits=NA, null="null", na="null", pretty=FALSE),
      "tests/reference/metafor_binary.json")
cat(length(cases), "cases written\n")
