# The heterogeneity tests of rma.glmm(model = "UM.RS") (random study effects): which
# saturated model metafor 3.8-1 compares with, and how reproducible its Wald statistic is.
# Fits candidate saturated models with lme4::glmer directly (no metafor code is read) and
# records, per dataset and nAGQ, metafor's QE.Wld / QE.LRT beside
#   - the LRT against the equal-effects fit for the saturated model with the study-specific
#     group effects dummy coded (1 = first group) and with +-1/2 coding, and
#   - the Wald test of equal study-specific effects from vcov() with use.hessian = TRUE
#     (lme4's stored finite-difference Hessian), use.hessian = FALSE (RX: conditional on
#     sigma) and numDeriv's Richardson Hessian of the same deviance function.
# Writes tests/reference/metafor_glmm_umrs_saturated.json. Usage, from the repository root:
#   Rscript validation/metafor/check_umrs_saturated.R
suppressMessages({library(metafor); library(lme4); library(jsonlite)})

long_of <- function(y1, n1, y2, n2, family) {
  k <- length(y1)
  d <- data.frame(study=factor(rep(seq_len(k), each=2)), grp=rep(c(0.5, -0.5), k),
                  y=c(rbind(y1, y2)), n=c(rbind(n1, n2)))
  d$g1 <- d$grp + 0.5
  d
}

fit_one <- function(d, family, nagq, coding) {
  d$gg <- if (coding == "dummy") d$g1 else d$grp
  X <- model.matrix(~ grp + study:gg, data=d)
  X <- X[, -ncol(X)]  # aliased with the intercept/group columns
  ctrl <- glmerControl(optimizer="bobyqa", optCtrl=list(rhoend=1e-12))
  if (family == "binomial") {
    s <- suppressWarnings(glmer(cbind(y, n - y) ~ X - 1 + (1 | study), data=d, family=binomial,
                                nAGQ=nagq, control=ctrl))
    e <- suppressWarnings(glmer(cbind(y, n - y) ~ grp + (1 | study), data=d, family=binomial,
                                nAGQ=nagq, control=ctrl))
  } else {
    s <- suppressWarnings(glmer(y ~ X - 1 + offset(log(n)) + (1 | study), data=d,
                                family=poisson, nAGQ=nagq, control=ctrl))
    e <- suppressWarnings(glmer(y ~ grp + offset(log(n)) + (1 | study), data=d,
                                family=poisson, nAGQ=nagq, control=ctrl))
  }
  k <- nlevels(d$study)
  idx <- 3:(k + 1)
  bb <- fixef(s)[idx]
  wald <- function(V) c(t(bb) %*% solve(V[idx, idx]) %*% bb)
  out <- list(lrt=2 * c(logLik(s) - logLik(e)),
              wald_hessian=wald(as.matrix(suppressWarnings(vcov(s, use.hessian=TRUE)))),
              wald_rx=wald(as.matrix(suppressWarnings(vcov(s, use.hessian=FALSE)))))
  if (nagq == 1) {
    dev <- update(s, devFunOnly=TRUE)
    H <- numDeriv::hessian(dev, c(getME(s, "theta"), fixef(s)))
    V <- 2 * solve(H)[-1, -1]
    out$wald_numderiv <- wald(V)
  }
  out
}

cases <- list()
run <- function(name, y1, n1, y2, n2, family, measure, args) {
  d <- long_of(y1, n1, y2, n2, family)
  for (method in c("EE", "ML")) {
    nagq <- if (method == "ML") 1 else 25
    res <- suppressWarnings(do.call(rma.glmm, c(args, list(measure=measure, model="UM.RS",
                                                           method=method, nAGQ=nagq))))
    cases[[length(cases) + 1]] <<- list(
      dataset=name, measure=measure, method=method, nagq=nagq,
      metafor=list(qe_wald=res$QE.Wld, qe_lrt=res$QE.LRT),
      dummy=fit_one(d, family, nagq, "dummy"), half=fit_one(d, family, nagq, "half"))
    cat(name, method, "\n")
  }
}
b <- dat.bcg
run("bcg", b$tpos, b$tpos + b$tneg, b$cpos, b$cpos + b$cneg, "binomial", "OR",
    list(ai=b$tpos, bi=b$tneg, ci=b$cpos, di=b$cneg))
h <- dat.hart1999
run("hart1999", h$x1i, h$t1i, h$x2i, h$t2i, "poisson", "IRR",
    list(x1i=h$x1i, t1i=h$t1i, x2i=h$x2i, t2i=h$t2i))

out <- list(generated_by="validation/metafor/check_umrs_saturated.R",
            r_version=R.version.string, metafor_version=as.character(packageVersion("metafor")),
            lme4_version=as.character(packageVersion("lme4")),
            note="UM.RS heterogeneity tests: metafor's values beside glmer fits of candidate saturated models (dummy: study-specific first-group effects coded 1/0; half: coded +-1/2); Wald from lme4's stored Hessian, RX, and numDeriv's Hessian of the deviance",
            cases=cases)
write(toJSON(out, auto_unbox=TRUE, digits=NA, null="null", na="null", pretty=TRUE),
      "tests/reference/metafor_glmm_umrs_saturated.json")
