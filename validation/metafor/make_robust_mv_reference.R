# Regenerates tests/reference/robust_mv_reference.json: cluster-robust inference on rma.mv fits
# beyond the three-level model (robust_reference.json): a non-diagonal V from vcalc (Assink et al.
# 2016, rho = 0.6), the multivariate UN model (Berkey et al. 1998, V from the trials' 2x2
# covariance matrices), the longitudinal AR(1) model (Ishak et al. 2007, V from vcalc(time1, phi)),
# and an ML three-level model with a moderator (Konstantopoulos 2011). Each model is fitted by
# rma.mv at tight convergence; the JSON holds its variance components (the tests refit
# ketameta.pool_mv with them fixed, so the comparison does not depend on either optimiser),
# metafor's robust() (adjust = TRUE/FALSE, clubSandwich = TRUE) and clubSandwich's vcovCR
# (CR0, CR1, CR1p, CR1S, CR2) with coef_test (Satterthwaite) and Wald_test (HTZ).
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_robust_mv_reference.R
#
# Schema: fits: [{id, source, data: {column: values}, V: k x k or null (then vi), random,
#   struct, formula, method, cluster (column), rel_tol (nlminb's), components: {sigma2, tau2, rho}, coef, names,
#   vb_model, metafor: {adjust_true | adjust_false | clubSandwich: {vb, se, tval, df, pval, ci_lb,
#   ci_ub, QM, QMdf, QMp}}, clubSandwich: {CR0 | CR1 | CR1p | CR1S | CR2: {vcov, se, tstat,
#   df_satt, p_satt, wald: {name: {constraints (1-based), tests: {HTZ: {Fstat, delta, df_num,
#   df_denom, p_val}}}}}}]
suppressMessages({library(metafor); library(metadat); library(clubSandwich)})
source("validation/metafor/json_exact.R")
num <- function(x) as.numeric(x)
CTRL <- list(rel.tol = 1e-14, eval.max = 10000, iter.max = 10000)
CR_TYPES <- c("CR0", "CR1", "CR1p", "CR1S", "CR2")

club <- function(fit, cluster, p) {
  out <- list()
  for (type in CR_TYPES) {
    V <- vcovCR(fit, cluster = cluster, type = type)
    ct <- coef_test(fit, vcov = V, test = "Satterthwaite")
    wald <- setNames(list(), character(0))
    if (p >= 2) {
      sets <- list(all = 1:p)
      if (!("intrcpt" %in% rownames(fit$beta)) || p >= 3) sets$two <- 1:2
      if ("intrcpt" %in% rownames(fit$beta)) sets$btt <- 2:p
      for (nm in names(sets)) {
        wt <- tryCatch(Wald_test(fit, constraints = constrain_zero(sets[[nm]]), vcov = V, test = "HTZ"),
                       error = function(e) {message("  ", type, " ", nm, ": ", conditionMessage(e)); NULL})
        if (is.null(wt)) next  # (clubSandwich's Cholesky of C V C' failed: singular)
        wald[[nm]] <- list(constraints = arr(sets[[nm]]),
                           tests = list(HTZ = list(Fstat = num(wt$Fstat), delta = num(wt$delta),
                                                   df_num = num(wt$df_num), df_denom = num(wt$df_denom),
                                                   p_val = num(wt$p_val))))
      }
    }
    out[[type]] <- list(vcov = matrix(num(V), nrow(V)), se = arr(num(ct$SE)), tstat = arr(num(ct$tstat)),
                        df_satt = arr(num(ct$df_Satt)), p_satt = arr(num(ct$p_Satt)), wald = wald)
  }
  out
}

metafor_robust <- function(fit, cluster) {
  one <- function(r) list(vb = unname(as.matrix(r$vb)), se = arr(num(r$se)), tval = arr(num(r$zval)),
                          df = arr(num(r$ddf)), pval = arr(num(r$pval)), ci_lb = arr(num(r$ci.lb)),
                          ci_ub = arr(num(r$ci.ub)),
                          QM = if (fit$p > 1 && length(r$QM)) num(r$QM) else NULL,
                          QMdf = arr(num(r$QMdf)), QMp = if (fit$p > 1 && length(r$QMp)) num(r$QMp) else NULL)
  list(adjust_true = one(robust(fit, cluster = cluster, adjust = TRUE)),
       adjust_false = one(robust(fit, cluster = cluster, adjust = FALSE)),
       clubSandwich = one(robust(fit, cluster = cluster, clubSandwich = TRUE)))
}

FITS <- list()
col_json <- function(x) if (is.character(x) || is.factor(x)) arr(as.character(x)) else arr(num(x))
add_fit <- function(id, source, d, V, formula, random, struct, method, cluster, columns) {
  args <- list(as.formula(formula), V = V, random = as.formula(random), data = d, method = method,
               control = CTRL)
  if (!is.null(struct)) args$struct <- struct
  # (the tightest tolerance nlminb reaches; the tests fix the components at these values)
  fit <- NULL
  for (tol in c(1e-14, 1e-12, 1e-10, 1e-8)) {
    args$control$rel.tol <- tol
    fit <- tryCatch(do.call(rma.mv, args), error = function(e) NULL)
    if (!is.null(fit)) break
  }
  cl <- d[[cluster]]
  p <- fit$p
  comps <- list(sigma2 = if (fit$withS) arr(num(fit$sigma2)) else NULL,
                tau2 = if (fit$withG) arr(num(fit$tau2)) else NULL,
                rho = if (fit$withG && !is.null(fit$rho)) arr(num(fit$rho)) else NULL)
  FITS[[length(FITS) + 1]] <<- list(
    id = id, source = source, data = lapply(d[columns], col_json),
    V = if (is.matrix(V)) unname(V) else NULL, random = random, struct = struct, formula = formula,
    method = method, cluster = cluster, rel_tol = args$control$rel.tol, components = comps, logLik = num(logLik(fit)),
    coef = arr(num(fit$beta)), names = arr(rownames(fit$beta)), vb_model = unname(as.matrix(fit$vb)),
    metafor = metafor_robust(fit, cl), clubSandwich = club(fit, cl, p))
}

# Assink et al. (2016): 100 effects in 17 studies, V by vcalc with rho = 0.6
asn <- dat.assink2016
Va <- vcalc(vi, cluster = study, obs = esid, data = asn, rho = 0.6)
add_fit("assink vcalc ~ deltype", "metadat::dat.assink2016; V = vcalc(vi, study, obs = esid, rho = 0.6)",
        asn, Va, "yi ~ deltype", "~ 1 | study/esid", NULL, "REML", "study",
        c("yi", "vi", "study", "esid", "deltype"))
add_fit("assink vcalc ~ 1", "metadat::dat.assink2016; V = vcalc(vi, study, obs = esid, rho = 0.6)",
        asn, Va, "yi ~ 1", "~ 1 | study/esid", NULL, "REML", "study",
        c("yi", "vi", "study", "esid", "deltype"))

# Berkey et al. (1998): two outcomes in 5 trials, UN
ber <- dat.berkey1998
Vb <- suppressWarnings(vcalc(vi = 1, cluster = author, rvars = c(v1i, v2i), data = ber))
ber$year_c <- ber$year - 1983
add_fit("berkey UN ~ outcome - 1", "metadat::dat.berkey1998; V from v1i, v2i (vcalc rvars)", ber, Vb,
        "yi ~ outcome - 1", "~ outcome | trial", "UN", "REML", "trial",
        c("yi", "vi", "trial", "outcome", "year_c"))
add_fit("berkey UN ~ outcome + year_c - 1", "metadat::dat.berkey1998; V from v1i, v2i", ber, Vb,
        "yi ~ outcome + year_c - 1", "~ outcome | trial", "UN", "REML", "trial",
        c("yi", "vi", "trial", "outcome", "year_c"))

# Ishak et al. (2007): up to 4 time points in 46 studies, AR(1) (the ?vcalc example's V)
ish <- dat.ishak2007
ish <- reshape(ish, direction = "long", idvar = "study", v.names = c("yi", "vi"),
               varying = list(c(2, 4, 6, 8), c(3, 5, 7, 9)))
ish <- ish[order(ish$study, ish$time), ]
ish <- ish[!is.na(ish$yi), ]
ish$ftime <- paste0("t", ish$time)
Vi <- vcalc(vi, cluster = study, time1 = time, phi = 0.97, data = ish)
add_fit("ishak AR ~ ftime - 1", "metadat::dat.ishak2007 (long); V = vcalc(vi, study, time1 = time, phi = 0.97)",
        ish, Vi, "yi ~ ftime - 1", "~ time | study", "AR", "REML", "study",
        c("yi", "vi", "study", "time", "ftime"))

# Konstantopoulos (2011): ML three-level model with a centred year
kon <- dat.konstantopoulos2011
kon$year_c <- kon$year - 1985
add_fit("konstantopoulos ML ~ year_c", "metadat::dat.konstantopoulos2011", kon, kon$vi,
        "yi ~ year_c", "~ 1 | district/school", NULL, "ML", "district",
        c("yi", "vi", "district", "school", "year_c"))

out <- list(
  generated_by = "validation/metafor/make_robust_mv_reference.R",
  metafor_version = as.character(packageVersion("metafor")),
  clubSandwich_version = as.character(packageVersion("clubSandwich")),
  R_version = R.version.string,
  control = "rma.mv(control = list(rel.tol = 1e-14, eval.max = 10000, iter.max = 10000))",
  fits = FITS)
writeLines(to_json(out), "tests/reference/robust_mv_reference.json")
cat("wrote tests/reference/robust_mv_reference.json with", length(FITS), "fits\n")
