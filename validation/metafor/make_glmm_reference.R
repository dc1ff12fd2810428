# Regenerates tests/reference/metafor_glmm.json: metafor's rma.glmm() (measures OR, IRR, PLO,
# IRLN; models UM.FS, UM.RS, CM.EL, CM.AL; methods EE and ML) on public datasets, run with
# tight control and the most quadrature points lme4 allows (nAGQ = 25), and, as an oracle of
# the likelihood itself, the marginal log-likelihood at metafor's estimates computed by R's
# integrate() (relative tolerance 1e-12), maximised over the nuisance parameters the
# estimates do not fix (the fixed study effects of UM.FS).
# Needs lme4 and BiasedUrn (CM.EL; Debian: apt-get install r-cran-biasedurn). Not run in CI.
# Usage, from the repository root:
#   Rscript validation/metafor/make_glmm_reference.R
#
# Which algorithm metafor 3.8-1 uses (its documentation, ?rma.glmm): glm() for the
# equal-effects and saturated UM.FS/CM.AL models; lme4::glmer() with adaptive Gauss-Hermite
# quadrature (nAGQ) for the random-effects UM.FS, CM.AL, PLO, IRLN and IRR CM models, and for
# every UM.RS model, where glmer allows only nAGQ = 1 (the Laplace approximation) once both
# random effects are in (UM.RS with method="ML"); its own likelihood with nlminb() and
# integrate() (adaptive Gauss-Kronrod) for CM.EL with measure="OR".
suppressMessages({library(metafor); library(jsonlite); library(lme4)})

num <- function(x) { x <- as.numeric(x); x[!is.finite(x)] <- NA; x }
datasets <- list()
add_data <- function(name, cols, labels, note) {
  datasets[[name]] <<- c(lapply(cols, num), list(labels=as.character(labels), note=note))
}
b <- dat.bcg
add_data("bcg", list(ai=b$tpos, bi=b$tneg, ci=b$cpos, di=b$cneg), paste(b$author, b$year),
         "dat.bcg (Colditz et al. 1994)")
nw <- dat.nielweise2007
add_data("nielweise2007", list(ai=nw$ai, n1i=nw$n1i, ci=nw$ci, n2i=nw$n2i), nw$author,
         "dat.nielweise2007 (zero cells; one double zero)")
add_data("nielweise2007_control", list(xi=nw$ci, ni=nw$n2i), nw$author,
         "dat.nielweise2007, control groups (Stijnen et al. 2010, Table II)")
add_data("nielweise2007_treated", list(xi=nw$ai, ni=nw$n1i), nw$author,
         "dat.nielweise2007, treated groups (Stijnen et al. 2010, Table II)")
add_data("rothman_15_1", list(ai=c(8, 22), bi=c(98, 76), ci=c(5, 16), di=c(115, 69)),
         c("Age <55", "Age 55+"), "Rothman, Greenland & Lash (2008), Table 15-1")
add_data("rothman_15_5", list(ai=c(3, 1), bi=c(9, 3), ci=c(104, 5), di=c(1059, 86)),
         c("<35", "35+"), "Rothman, Greenland & Lash (2008), Table 15-5")
add_data("rothman_15_2", list(x1i=c(32, 104, 206, 186, 102),
                              t1i=c(52407, 43248, 28612, 12663, 5317) / 10000,
                              x2i=c(2, 12, 28, 28, 31),
                              t2i=c(18790, 10673, 5710, 2585, 1462) / 10000),
         c("35-44", "45-54", "55-64", "65-74", "75-84"),
         "Rothman, Greenland & Lash (2008), Table 15-2")
h <- dat.hart1999
add_data("hart1999", list(x1i=h$x1i, t1i=h$t1i, x2i=h$x2i, t2i=h$t2i), h$study,
         "dat.hart1999 (warfarin; person-years)")
add_data("hart1999_control", list(xi=h$x2i, ti=h$t2i), h$study,
         "dat.hart1999, control groups (log incidence rates)")
n8 <- dat.nielweise2008
add_data("nielweise2008", list(x1i=n8$x1i, t1i=n8$t1i / 1000, x2i=n8$x2i, t2i=n8$t2i / 1000),
         n8$study, "dat.nielweise2008 (catheter infections per 1000 days; Stijnen et al. 2010)")
add_data("nielweise2008_control", list(xi=n8$x2i, ti=n8$t2i / 1000), n8$study,
         "dat.nielweise2008, control groups (Stijnen et al. 2010, Table VII)")
add_data("nielweise2008_treated", list(xi=n8$x1i, ti=n8$t1i / 1000), n8$study,
         "dat.nielweise2008, treated groups (Stijnen et al. 2010, Table VII)")
e <- dat.egger2001
add_data("egger2001", list(ai=e$ai, n1i=e$n1i, ci=e$ci, n2i=e$n2i), paste(e$study, e$year),
         "dat.egger2001 (magnesium; a zero cell, ISIS-4 with 4000+ events)")

# (tighter settings make glm() or nlminb() report non-convergence: glm's default epsilon
# 1e-8 and nlminb's rel.tol 1e-10 are the tightest that converge on every case here)
glmer_ctrl <- list(optimizer="bobyqa", optCtrl=list(rhoend=1e-12, maxfun=1e6))
ctrl <- list(glmerCtrl=glmer_ctrl, intCtrl=list(rel.tol=1e-12, subdivisions=2000),
             optCtrl=list(rel.tol=1e-10, iter.max=10000, eval.max=10000))

# ---- the oracle: marginal log-likelihoods by integrate() at metafor's estimates ----
lint <- function(f, limit=Inf) log(integrate(f, -limit, limit, rel.tol=1e-12, subdivisions=2000)$value)
oracle <- function(d, measure, model, theta, tau) {
  if (!is.finite(tau) || tau <= 0 || model == "UM.RS") return(NA)
  dens <- function(b) dnorm(b, 0, tau)
  ll <- 0
  if (measure == "OR") {
    a <- d$ai; n1 <- if (!is.null(d$n1i)) d$n1i else d$ai + d$bi
    c <- d$ci; n2 <- if (!is.null(d$n2i)) d$n2i else d$ci + d$di
    keep <- !((a == 0 & c == 0) | (a == n1 & c == n2))
    a <- a[keep]; n1 <- n1[keep]; c <- c[keep]; n2 <- n2[keep]
    for (i in seq_along(a)) {
      if (model == "UM.FS") {
        prof <- function(al) -lint(function(b) exp(dbinom(a[i], n1[i], plogis(al + (theta + b) / 2), log=TRUE)
                                                     + dbinom(c[i], n2[i], plogis(al - (theta + b) / 2), log=TRUE)) * dens(b))
        start <- qlogis((a[i] + c[i] + 0.5) / (n1[i] + n2[i] + 1))
        o <- optimize(prof, c(start - 8, start + 8), tol=1e-12)
        ll <- ll - o$objective
      } else if (model == "CM.AL") {
        m1 <- a[i] + c[i]
        ll <- ll + lint(function(b) exp(dbinom(a[i], m1, plogis(log(n1[i] / n2[i]) + theta + b), log=TRUE)) * dens(b))
      } else {  # CM.EL
        m1 <- a[i] + c[i]
        # (BiasedUrn needs finite odds: the normal density is below 1e-49 beyond 15 tau)
        ll <- ll + lint(function(b) sapply(b, function(bb) BiasedUrn::dFNCHypergeo(a[i], n1[i], n2[i], m1, exp(theta + bb))) * dens(b),
                        limit=15 * tau)
      }
    }
  } else if (measure == "IRR") {
    keep <- !(d$x1i == 0 & d$x2i == 0)
    x1 <- d$x1i[keep]; x2 <- d$x2i[keep]; t1 <- d$t1i[keep]; t2 <- d$t2i[keep]
    for (i in seq_along(x1)) {
      if (model == "UM.FS") {
        prof <- function(al) -lint(function(b) exp(dpois(x1[i], t1[i] * exp(al + (theta + b) / 2), log=TRUE)
                                                     + dpois(x2[i], t2[i] * exp(al - (theta + b) / 2), log=TRUE)) * dens(b))
        start <- log((x1[i] + x2[i] + 0.5) / (t1[i] + t2[i]))
        o <- optimize(prof, c(start - 8, start + 8), tol=1e-12)
        ll <- ll - o$objective
      } else {
        ev <- x1[i] + x2[i]
        ll <- ll + lint(function(b) exp(dbinom(x1[i], ev, plogis(log(t1[i] / t2[i]) + theta + b), log=TRUE)) * dens(b))
      }
    }
  } else if (measure == "PLO") {
    for (i in seq_along(d$xi))
      ll <- ll + lint(function(b) exp(dbinom(d$xi[i], d$ni[i], plogis(theta + b), log=TRUE)) * dens(b))
  } else {  # IRLN
    for (i in seq_along(d$xi))
      ll <- ll + lint(function(b) exp(dpois(d$xi[i], d$ti[i] * exp(theta + b), log=TRUE)) * dens(b))
  }
  ll
}

cases <- list()
run <- function(dname, measure, model, method, nAGQ=25) {
  d <- datasets[[dname]]
  cells <- d[intersect(names(d), c("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i", "xi", "ni", "ti"))]
  args <- c(cells, list(measure=measure, model=model, method=method, nAGQ=nAGQ, control=ctrl))
  t0 <- Sys.time()
  res <- tryCatch(suppressWarnings(do.call(rma.glmm, args)), error=function(e) e)
  secs <- as.numeric(Sys.time() - t0, units="secs")
  if (inherits(res, "error")) {
    value <- list(error=conditionMessage(res))
  } else {
    fs <- res$fit.stats
    value <- list(estimate=res$beta[1], se=res$se, statistic=res$zval, pvalue=res$pval,
                  ci_lower=res$ci.lb, ci_upper=res$ci.ub, tau2=res$tau2,
                  sigma2=if (is.null(res$sigma2)) NA else res$sigma2,
                  qe_wald=res$QE.Wld, qe_wald_pvalue=res$QEp.Wld, qe_lrt=res$QE.LRT,
                  qe_lrt_pvalue=res$QEp.LRT, i2=res$I2, h2=res$H2, k=res$k,
                  metafor_loglik=fs["ll", "ML"], metafor_deviance=fs["dev", "ML"],
                  metafor_aic=fs["AIC", "ML"], metafor_bic=fs["BIC", "ML"],
                  nagq_used=if (model == "UM.RS" && method == "ML") 1 else if (model == "CM.EL" && measure == "OR") NA else nAGQ,
                  seconds=secs)
    if (method == "ML")
      value$oracle_loglik <- oracle(d, measure, model, res$beta[1], sqrt(res$tau2))
  }
  algo <- if (model == "CM.EL" && measure == "OR") "nlminb + integrate (metafor's own)" else
    if (method == "EE" && model %in% c("UM.FS", "CM.AL")) "glm" else
    if (model == "UM.RS" && method == "ML") "glmer, Laplace (nAGQ = 1)" else sprintf("glmer, nAGQ = %d", nAGQ)
  cases[[length(cases) + 1]] <<- list(dataset=dname, measure=measure, model=model, method=method,
                                      algorithm=algo, value=value)
  cat(dname, measure, model, method, format(secs, digits=3), "\n")
}

for (dn in c("bcg", "nielweise2007")) for (m in c("UM.FS", "UM.RS", "CM.AL", "CM.EL"))
  for (me in c("EE", "ML")) run(dn, "OR", m, me)
for (dn in c("rothman_15_1", "rothman_15_5")) for (m in c("UM.FS", "CM.EL", "CM.AL"))
  run(dn, "OR", m, "EE")
run("rothman_15_1", "OR", "UM.FS", "ML")
run("egger2001", "OR", "UM.FS", "ML")
run("egger2001", "OR", "CM.EL", "ML")
for (dn in c("hart1999", "rothman_15_2")) for (m in c("UM.FS", "UM.RS", "CM.EL"))
  for (me in c("EE", "ML")) run(dn, "IRR", m, me)
for (dn in c("nielweise2007_control", "nielweise2007_treated")) for (me in c("EE", "ML"))
  run(dn, "PLO", "UM.FS", me)
for (me in c("EE", "ML")) run("hart1999_control", "IRLN", "UM.FS", me)
for (dn in c("nielweise2008_control", "nielweise2008_treated")) run(dn, "IRLN", "UM.FS", "ML")
for (m in c("UM.FS", "CM.EL")) run("nielweise2008", "IRR", m, "ML")

out <- list(generated_by="validation/metafor/make_glmm_reference.R",
            r_version=R.version.string, metafor_version=as.character(packageVersion("metafor")),
            lme4_version=as.character(packageVersion("lme4")),
            biasedurn_version=as.character(packageVersion("BiasedUrn")),
            control="glm default (epsilon 1e-8); glmer bobyqa rhoend 1e-12, nAGQ 25 (UM.RS ML: 1, forced by metafor); CM.EL: nlminb rel.tol 1e-10, integrate rel.tol 1e-12",
            oracle="marginal log-likelihood at metafor's (theta, tau), UM.FS fixed study effects profiled out, by integrate(rel.tol = 1e-12) and optimize(tol = 1e-12)",
            datasets=datasets, cases=cases)
write(toJSON(out, auto_unbox=TRUE, digits=NA, null="null", na="null", pretty=FALSE),
      "tests/reference/metafor_glmm.json")
cat(length(cases), "cases written\n")
