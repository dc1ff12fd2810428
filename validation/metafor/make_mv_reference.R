# Regenerates tests/reference/metafor_mv.json: metafor's multilevel / multivariate models
# (rma.mv), their profile-likelihood confidence intervals (confint), predictions, likelihood
# ratio tests (anova) and vcalc(), on published datasets (metadat) and seeded simulated data.
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_mv_reference.R
#
# How the references are made tight. rma.mv maximises the (restricted) likelihood numerically;
# its default optimiser (nlminb) stops ~1e-7 (relative) from the maximum. Each model is
# therefore fitted with several optimisers at tight tolerances (OPTIMISERS below) and the fit
# with the highest log-likelihood is kept ("metafor": its estimates, log-likelihood, optimiser).
# That fit is then *polished*: Newton steps on metafor's own (restricted) log-likelihood as a
# function of the free variance/correlation components (evaluated by rma.mv with every
# component fixed at the given values), with the gradient and Hessian from numDeriv
# (Richardson extrapolation), until a step changes no component by more than 1e-11
# (relative). Components at a bound (a variance below 1e-8 times the largest, a correlation
# within 1e-6 of +-1) are not polished. The polished record ("polished") holds metafor's
# output with the components fixed at the polished values (coefficients, SEs, tests, log-
# likelihood); tests compare ketameta with it, and check that ketameta's log-likelihood is at
# least the best metafor optimiser's.
#
# The confint entries here come from the tight-control fits, whose profile refits often fail in
# metafor (NA bounds); the tests read tests/reference/metafor_mv_confint.json instead
# (make_mv_confint_reference.R: default optimiser settings, root finder at 1e-10).
#
# The multilevel I^2 (Viechtbauer, "I^2 for multilevel and multivariate models",
# metafor-project.org; Cheung 2014) is computed here from the polished fit:
#   P = W - W X (X'WX)^-1 X'W with W = V^-1; I^2_l = 100 sigma2_l / (sum(sigma2) + (k-p)/tr(P)).
suppressMessages({
  library(metafor)
  library(numDeriv)
})
source("validation/metafor/json_exact.R")

OPTIMISERS <- list(
  nlminb = list(),
  nlminb_tight = list(rel.tol = 1e-12, x.tol = 1e-12, iter.max = 10000, eval.max = 10000),
  bfgs = list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-15, maxit = 10000),
  nelder_mead = list(optimizer = "optim", optmethod = "Nelder-Mead", reltol = 1e-15,
                     maxit = 100000),
  bobyqa = list(optimizer = "bobyqa"),
  nlm = list(optimizer = "nlm", gradtol = 1e-14, steptol = 1e-14, iterlim = 10000)
)
CONFINT_CTRL <- list(tol = 1e-12, maxiter = 10000)

num <- function(x) as.numeric(x)
quiet <- function(expr) suppressWarnings(suppressMessages(expr))

# Fits `args` (a list for rma.mv) with every optimiser; returns the fit with the highest
# log-likelihood and the name of its optimiser.
best_fit <- function(args) {
  best <- NULL
  name <- NULL
  for (opt in names(OPTIMISERS)) {
    r <- tryCatch(quiet(do.call(rma.mv, c(args, list(control = OPTIMISERS[[opt]])))),
                  error = function(e) NULL)
    if (is.null(r)) next
    if (is.null(best) || logLik(r) > logLik(best)) {
      best <- r
      name <- opt
    }
  }
  list(fit = best, optimiser = name)
}

# The free components of a fit, as a named vector (sigma2.1, tau2.1, rho.1, gamma2.1, phi.1)
free_components <- function(r) {
  out <- c()
  for (what in c("sigma2", "tau2", "rho", "gamma2", "phi")) {
    vals <- r[[what]]
    fix <- r$vc.fix[[what]]
    if (is.null(vals) || all(is.na(fix))) next
    for (i in seq_along(vals)) {
      if (!isTRUE(fix[i])) out[paste0(what, ".", i)] <- vals[i]
    }
  }
  out
}

# rma.mv with the components `values` (named as free_components) fixed, the others as in r
fixed_args <- function(args, r, values) {
  fix <- list()
  for (what in c("sigma2", "tau2", "rho", "gamma2", "phi")) {
    vals <- r[[what]]
    if (is.null(vals) || all(is.na(r$vc.fix[[what]]))) next
    v <- vals
    for (i in seq_along(vals)) {
      key <- paste0(what, ".", i)
      if (key %in% names(values)) v[i] <- values[[key]]
    }
    fix[[what]] <- v
  }
  args[names(fix)] <- fix
  args
}

loglik_at <- function(args, r, values, ctl) {
  f <- tryCatch(quiet(do.call(rma.mv, c(fixed_args(args, r, values), list(control = ctl)))),
                error = function(e) NULL)
  if (is.null(f)) return(-Inf)
  num(logLik(f))
}

polish <- function(args, r, ctl) {
  theta <- free_components(r)
  if (length(theta) == 0) return(list(values = theta, steps = 0))
  scale <- max(abs(theta[grepl("sigma2|tau2|gamma2", names(theta))]), 1e-300)
  inner <- names(theta)[ifelse(grepl("rho|phi", names(theta)), abs(theta) < 1 - 1e-6,
                               theta > 1e-8 * scale)]
  steps <- 0
  for (it in 1:20) {
    if (length(inner) == 0) break
    f <- function(x) {
      v <- theta
      v[inner] <- x
      loglik_at(args, r, as.list(v), ctl)
    }
    g <- grad(f, theta[inner], method = "Richardson")
    h <- hessian(f, theta[inner])
    # a singular or not negative definite Hessian (a flat direction): stop polishing
    step <- tryCatch(-solve(h, g), error = function(e) NULL)
    if (is.null(step) || any(!is.finite(step)) ||
        any(eigen(h, symmetric = TRUE, only.values = TRUE)$values >= 0)) break
    theta[inner] <- theta[inner] + step
    steps <- steps + 1
    if (max(abs(step) / pmax(abs(theta[inner]), 1e-12)) < 1e-11) break
  }
  list(values = theta, steps = steps)
}

record <- function(r) {
  out <- list(
    beta = arr(num(r$beta)), se = arr(num(r$se)), zval = arr(num(r$zval)),
    pval = arr(num(r$pval)), ci_lb = arr(num(r$ci.lb)), ci_ub = arr(num(r$ci.ub)),
    vb = unname(r$vb), names = arr(rownames(r$beta)),
    sigma2 = if (r$withS) arr(num(r$sigma2)) else NULL,
    tau2 = if (r$withG) arr(num(r$tau2)) else NULL,
    rho = if (r$withG) arr(num(r$rho)) else NULL,
    gamma2 = if (r$withH) arr(num(r$gamma2)) else NULL,
    phi = if (r$withH) arr(num(r$phi)) else NULL,
    QE = num(r$QE), QEp = num(r$QEp), QE_df = r$k - r$p,
    QM = num(r$QM), QMp = num(r$QMp), QMdf = arr(num(r$QMdf)), btt = arr(r$btt),
    ddf = arr(num(r$ddf)),
    logLik = num(logLik(r)), k = r$k, p = r$p
  )
  out$fit_stats <- setNames(lapply(rownames(r$fit.stats), function(n)
    num(r$fit.stats[n, ifelse(r$method == "REML", "REML", "ML")])), rownames(r$fit.stats))
  if (r$withS) {
    out$s_names <- arr(r$s.names)
    out$s_nlevels <- arr(r$s.nlevels)
  }
  if (r$withG) {
    out$g_names <- arr(r$g.names)
    out$g_levels <- arr(as.character(r$g.levels.f[[1]]))
  }
  out
}

i2_levels <- function(r) {
  if (!r$withS || r$withG) return(NULL)
  W <- solve(r$V)
  X <- model.matrix(r)
  P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W
  vt <- (r$k - r$p) / sum(diag(P))
  list(total = 100 * sum(r$sigma2) / (sum(r$sigma2) + vt),
       levels = arr(100 * r$sigma2 / (sum(r$sigma2) + vt)), typical_v = vt)
}

confint_record <- function(r) {
  ci <- tryCatch(quiet(confint(r, control = CONFINT_CTRL)), error = function(e) NULL)
  if (is.null(ci)) return(NULL)
  if (inherits(ci, "confint.rma")) ci <- list(ci)
  out <- list()
  for (part in ci) {
    if (!inherits(part, "confint.rma")) next
    tab <- part$random
    for (i in seq_len(nrow(tab))) {
      out[[rownames(tab)[i]]] <- arr(num(tab[i, ]))
    }
  }
  out
}

FITS <- list()
DATA <- list()

add_fit <- function(id, dataset, spec, args, confint = FALSE, predict = NULL, notes = NULL) {
  cat(id, "\n")
  b <- best_fit(args)
  r <- b$fit
  ctl <- OPTIMISERS[[b$optimiser]]
  entry <- list(id = id, dataset = dataset, spec = spec, optimiser = b$optimiser,
                metafor = record(r))
  pol <- polish(args, r, ctl)
  if (length(pol$values)) {
    rp <- quiet(do.call(rma.mv, c(fixed_args(args, r, as.list(pol$values)),
                                  list(control = ctl))))
    entry$polished <- record(rp)
    entry$polished$components <- as.list(pol$values)
    entry$polished$newton_steps <- pol$steps
    # fit statistics count the estimated components: keep the unconstrained fit's
    entry$polished$fit_stats <- NULL
  } else {
    rp <- r
    entry$polished <- record(r)
  }
  entry$i2 <- i2_levels(rp)
  if (confint) entry$confint <- confint_record(r)
  if (!is.null(predict)) entry$predict <- predict(rp)
  if (!is.null(notes)) entry$notes <- notes
  FITS[[length(FITS) + 1]] <<- entry
  invisible(r)
}

pred_record <- function(p) {
  p <- as.data.frame(p)
  out <- list(pred = arr(num(p$pred)), se = arr(num(p$se)), ci_lb = arr(num(p$ci.lb)),
              ci_ub = arr(num(p$ci.ub)), pi_lb = arr(num(p$pi.lb)), pi_ub = arr(num(p$pi.ub)))
  if (!is.null(p$tau2.level)) out$tau2_level <- arr(as.character(p$tau2.level))
  out
}

# ---- Konstantopoulos (2011): 56 effects, schools in 11 districts ------------------------------
kon <- dat.konstantopoulos2011
DATA$konstantopoulos2011 <- list(
  source = "metadat::dat.konstantopoulos2011 (Konstantopoulos 2011, Res Synth Methods 2:61-76)",
  columns = list(district = arr(kon$district), school = arr(kon$school), study = arr(kon$study),
                 year = arr(kon$year), yi = arr(kon$yi), vi = arr(kon$vi)))
base_k <- list(yi = kon$yi, V = kon$vi, data = kon)
add_fit("konstantopoulos REML ~1|district/school", "konstantopoulos2011",
        list(V = "vi", random = arr("~ 1 | district/school"), method = "REML"),
        c(base_k, list(random = ~ 1 | district / school, method = "REML")),
        confint = TRUE, predict = function(r) pred_record(predict(r)))
add_fit("konstantopoulos ML ~1|district/school", "konstantopoulos2011",
        list(V = "vi", random = arr("~ 1 | district/school"), method = "ML"),
        c(base_k, list(random = ~ 1 | district / school, method = "ML")),
        confint = TRUE)
add_fit("konstantopoulos REML ~1|district/school t", "konstantopoulos2011",
        list(V = "vi", random = arr("~ 1 | district/school"), method = "REML", test = "t"),
        c(base_k, list(random = ~ 1 | district / school, method = "REML", test = "t")),
        predict = function(r) pred_record(predict(r)))
add_fit("konstantopoulos REML year t", "konstantopoulos2011",
        list(V = "vi", random = arr("~ 1 | district/school"), mods = "~ I(year - 2000)",
             method = "REML", test = "t"),
        c(base_k, list(random = ~ 1 | district / school, mods = ~ I(year - 2000),
                       method = "REML", test = "t")),
        predict = function(r) pred_record(predict(r, newmods = c(-25, -10, 0))))
add_fit("konstantopoulos ML year", "konstantopoulos2011",
        list(V = "vi", random = arr("~ 1 | district/school"), mods = "~ I(year - 2000)",
             method = "ML"),
        c(base_k, list(random = ~ 1 | district / school, mods = ~ I(year - 2000), method = "ML")))
add_fit("konstantopoulos REML ~school|district CS", "konstantopoulos2011",
        list(V = "vi", random = arr("~ school | district"), struct = arr("CS"), method = "REML"),
        c(base_k, list(random = ~ school | district, struct = "CS", method = "REML")),
        confint = TRUE)
add_fit("konstantopoulos REML crossed district + study", "konstantopoulos2011",
        list(V = "vi", random = arr(c("~ 1 | district", "~ 1 | study")), method = "REML"),
        c(base_k, list(random = list(~ 1 | district, ~ 1 | study), method = "REML")))
add_fit("konstantopoulos REML sigma2.1 = 0", "konstantopoulos2011",
        list(V = "vi", random = arr("~ 1 | district/school"), method = "REML",
             sigma2 = arr(c(0, NA))),
        c(base_k, list(random = ~ 1 | district / school, method = "REML", sigma2 = c(0, NA))))
add_fit("konstantopoulos REML ~1|district", "konstantopoulos2011",
        list(V = "vi", random = arr("~ 1 | district"), method = "REML"),
        c(base_k, list(random = ~ 1 | district, method = "REML")))
add_fit("konstantopoulos FE", "konstantopoulos2011",
        list(V = "vi", random = NULL, method = "REML"),
        c(base_k, list(method = "REML")))

# ---- Berkey et al. (1998): 5 trials, 2 correlated outcomes -------------------------------------
ber <- dat.berkey1998
Vb <- quiet(vcalc(vi = 1, cluster = author, rvars = c(v1i, v2i), data = ber))
DATA$berkey1998 <- list(
  source = "metadat::dat.berkey1998 (Berkey et al. 1998, Stat Med 17:2537-2550); V from the v1i, v2i columns (vcalc rvars)",
  columns = list(trial = arr(ber$trial), author = arr(ber$author), year = arr(ber$year),
                 ni = arr(ber$ni), outcome = arr(as.character(ber$outcome)), yi = arr(ber$yi),
                 vi = arr(ber$vi), v1i = arr(ber$v1i), v2i = arr(ber$v2i)),
  V = unname(Vb))
base_b <- list(yi = ber$yi, V = Vb, data = ber, mods = ~ outcome - 1)
for (st in c("UN", "CS", "HCS", "DIAG", "ID")) {
  for (m in c("REML", "ML")) {
    if (m == "ML" && st %in% c("DIAG", "ID")) next
    add_fit(paste("berkey", m, st), "berkey1998",
            list(V = "V", random = arr("~ outcome | trial"), struct = arr(st),
                 mods = "~ outcome - 1", method = m),
            c(base_b, list(random = ~ outcome | trial, struct = st, method = m)),
            confint = (m == "REML" && st %in% c("UN", "CS")),
            predict = if (st == "UN" && m == "REML")
              function(r) pred_record(predict(r, newmods = diag(2), tau2.levels = c("AL", "PD"))))
  }
}
add_fit("berkey REML UN year", "berkey1998",
        list(V = "V", random = arr("~ outcome | trial"), struct = arr("UN"),
             mods = "~ outcome + outcome:I(year - 1983) - 1", method = "REML"),
        c(list(yi = ber$yi, V = Vb, data = ber, mods = ~ outcome + outcome:I(year - 1983) - 1),
          list(random = ~ outcome | trial, struct = "UN", method = "REML")))
add_fit("berkey REML FE", "berkey1998",
        list(V = "V", random = NULL, mods = "~ outcome - 1", method = "REML"),
        c(base_b, list(method = "REML")))

# ---- Gleser & Olkin (2009): multiple-treatment studies, shared control arm -----------------------
# (the data of published.json's gleser_olkin2009_multiple_treatment_effect_sizes); covariances
# of effects sharing the control arm (Gleser & Olkin 2009, eqs 19.9-19.11 and Table 19.2)
gl <- data.frame(study = c(1, 1, 2, 3, 3, 3), trt = c(1, 2, 1, 1, 2, 3),
                 ai = c(40, 40, 10, 150, 150, 150), n1i = c(1000, 1000, 200, 2000, 2000, 2000),
                 ci = c(100, 150, 15, 40, 80, 50), n2i = c(4000, 4000, 400, 1000, 1000, 1000))
pc <- gl$ai / gl$n1i
pt <- gl$ci / gl$n2i
gl$rd <- pc - pt
gl$lor <- log(pc / (1 - pc)) - log(pt / (1 - pt))
v_rd_c <- pc * (1 - pc) / gl$n1i
v_lor_c <- 1 / (gl$n1i * pc * (1 - pc))
gl$v_rd <- v_rd_c + pt * (1 - pt) / gl$n2i
gl$v_lor <- v_lor_c + 1 / (gl$n2i * pt * (1 - pt))
shared <- outer(gl$study, gl$study, "==")
V_rd <- shared * outer(sqrt(v_rd_c), sqrt(v_rd_c))
diag(V_rd) <- gl$v_rd
V_lor <- shared * outer(sqrt(v_lor_c), sqrt(v_lor_c))
diag(V_lor) <- gl$v_lor
DATA$gleser2009 <- list(
  source = "Gleser & Olkin (2009), Handbook of Research Synthesis and Meta-Analysis 2nd ed., Table 19.2; ai/n1i is the shared control arm",
  columns = lapply(as.list(gl), arr), V_rd = V_rd, V_lor = V_lor)
add_fit("gleser RD FE", "gleser2009",
        list(V = "V_rd", yi = "rd", random = NULL, mods = "~ factor(trt) - 1", method = "REML"),
        list(yi = gl$rd, V = V_rd, data = gl, mods = ~ factor(trt) - 1))
add_fit("gleser logOR FE", "gleser2009",
        list(V = "V_lor", yi = "lor", random = NULL, mods = "~ factor(trt) - 1",
             method = "REML"),
        list(yi = gl$lor, V = V_lor, data = gl, mods = ~ factor(trt) - 1))
add_fit("gleser logOR REML ~1|study", "gleser2009",
        list(V = "V_lor", yi = "lor", random = arr("~ 1 | study"), mods = "~ factor(trt) - 1",
             method = "REML"),
        list(yi = gl$lor, V = V_lor, data = gl, mods = ~ factor(trt) - 1, random = ~ 1 | study))

# ---- Ishak et al. (2007): longitudinal, AR(1) over time points ---------------------------------
ish <- dat.ishak2007
ish_long <- reshape(ish, direction = "long", idvar = "study", v.names = c("yi", "vi"),
                    varying = list(c(2, 4, 6, 8), c(3, 5, 7, 9)))
ish_long <- ish_long[order(ish_long$study, ish_long$time), ]
ish_long <- ish_long[!is.na(ish_long$yi), ]
rownames(ish_long) <- NULL
DATA$ishak2007 <- list(
  source = "metadat::dat.ishak2007 (Ishak et al. 2007, Clin Trials 4:525-539), long format (time = 1..4), rows with missing yi dropped",
  columns = list(study = arr(as.character(ish_long$study)), time = arr(ish_long$time),
                 yi = arr(ish_long$yi), vi = arr(ish_long$vi), mdur = arr(ish_long$mdur),
                 mbase = arr(ish_long$mbase)))
base_i <- list(yi = ish_long$yi, V = ish_long$vi, data = ish_long, mods = ~ factor(time) - 1)
for (st in c("AR", "CS", "HCS")) {
  add_fit(paste("ishak REML", st), "ishak2007",
          list(V = "vi", random = arr("~ time | study"), struct = arr(st),
               mods = "~ factor(time) - 1", method = "REML"),
          c(base_i, list(random = ~ time | study, struct = st, method = "REML")),
          confint = (st == "AR"))
}
add_fit("ishak ML AR", "ishak2007",
        list(V = "vi", random = arr("~ time | study"), struct = arr("AR"),
             mods = "~ factor(time) - 1", method = "ML"),
        c(base_i, list(random = ~ time | study, struct = "AR", method = "ML")))

# ---- Assink et al. (2016): 100 effects in 17 studies; V by vcalc --------------------------------
asn <- dat.assink2016
Va <- vcalc(vi, cluster = study, obs = esid, data = asn, rho = 0.6)
DATA$assink2016 <- list(
  source = "metadat::dat.assink2016 (Assink et al. 2016, J Youth Adolesc 45:1795-1812 via Assink & Wibbelink 2016)",
  columns = list(study = arr(asn$study), esid = arr(asn$esid), id = arr(asn$id), yi = arr(asn$yi),
                 vi = arr(asn$vi), pubstatus = arr(asn$pubstatus), year = arr(asn$year),
                 deltype = arr(as.character(asn$deltype))))
base_a <- list(yi = asn$yi, data = asn)
add_fit("assink REML ~1|study/esid", "assink2016",
        list(V = "vi", random = arr("~ 1 | study/esid"), method = "REML"),
        c(base_a, list(V = asn$vi, random = ~ 1 | study / esid, method = "REML")),
        confint = TRUE)
add_fit("assink REML ~1|study/esid deltype t", "assink2016",
        list(V = "vi", random = arr("~ 1 | study/esid"), mods = "~ deltype", method = "REML",
             test = "t"),
        c(base_a, list(V = asn$vi, random = ~ 1 | study / esid, mods = ~ deltype,
                       method = "REML", test = "t")))
add_fit("assink REML vcalc rho 0.6", "assink2016",
        list(V = "vcalc(vi, cluster = study, obs = esid, rho = 0.6)",
             random = arr("~ 1 | study/esid"), method = "REML"),
        c(base_a, list(V = Va, random = ~ 1 | study / esid, method = "REML")))
add_fit("assink ML ~1|study/esid", "assink2016",
        list(V = "vi", random = arr("~ 1 | study/esid"), method = "ML"),
        c(base_a, list(V = asn$vi, random = ~ 1 | study / esid, method = "ML")))
add_fit("assink REML deltype|study HCS + id", "assink2016",
        list(V = "vi", random = arr(c("~ deltype | study", "~ 1 | id")), struct = arr("HCS"),
             method = "REML"),
        c(base_a, list(V = asn$vi, random = list(~ deltype | study, ~ 1 | id), struct = "HCS",
                       method = "REML")))

# ---- Bornmann et al. (2007): 66 effects in 21 studies ------------------------------------------
bor <- escalc(measure = "OR", ai = waward, n1i = wtotal, ci = maward, n2i = mtotal,
              data = dat.bornmann2007)
DATA$bornmann2007 <- list(
  source = "metadat::dat.bornmann2007 (Bornmann et al. 2007, J Informetr 1:226-238), escalc(OR, ai=waward, n1i=wtotal, ci=maward, n2i=mtotal)",
  columns = list(study = arr(as.character(bor$study)), obs = arr(bor$obs),
                 type = arr(as.character(bor$type)), yi = arr(num(bor$yi)),
                 vi = arr(num(bor$vi))))
add_fit("bornmann REML ~1|study/obs type", "bornmann2007",
        list(V = "vi", random = arr("~ 1 | study/obs"), mods = "~ type", method = "REML"),
        list(yi = num(bor$yi), V = num(bor$vi), data = bor, random = ~ 1 | study / obs,
             mods = ~ type, method = "REML"))
add_fit("bornmann REML two inner|outer", "bornmann2007",
        list(V = "vi", random = arr(c("~ type | study", "~ obs | study")),
             struct = arr(c("CS", "ID")), method = "REML"),
        list(yi = num(bor$yi), V = num(bor$vi), data = bor,
             random = list(~ type | study, ~ obs | study), struct = c("CS", "ID"),
             method = "REML"))

# ---- simulated three-level data (seeded) ------------------------------------------------------
set.seed(20181)
sim <- list()
for (s in 1:4) {
  n_study <- c(30, 12, 40, 25)[s]
  sizes <- sample(1:6, n_study, replace = TRUE)
  study <- rep(seq_len(n_study), sizes)
  es <- sequence(sizes)
  k <- length(study)
  s2 <- c(0.05, 0.02, 0.1, 0.03)[s]
  s3 <- c(0.02, 0, 0.05, 0)[s]
  vi <- rchisq(k, 20) / 20 * c(0.02, 0.04, 0.01, 0.05)[s]
  x <- rnorm(k)
  yi <- 0.3 + 0.1 * x + rnorm(n_study, 0, sqrt(s2))[study] + rnorm(k, 0, sqrt(s3)) +
    rnorm(k, 0, sqrt(vi))
  d <- data.frame(study = study, es = es, yi = yi, vi = vi, x = x)
  id <- paste0("sim", s)
  DATA[[id]] <- list(source = sprintf("simulated in make_mv_reference.R (seed 20181, set %d)", s),
                     columns = lapply(as.list(d), arr))
  add_fit(paste(id, "REML ~1|study/es x"), id,
          list(V = "vi", random = arr("~ 1 | study/es"), mods = "~ x", method = "REML"),
          list(yi = d$yi, V = d$vi, data = d, random = ~ 1 | study / es, mods = ~ x,
               method = "REML"), confint = (s <= 2))
  add_fit(paste(id, "ML ~1|study/es"), id,
          list(V = "vi", random = arr("~ 1 | study/es"), method = "ML"),
          list(yi = d$yi, V = d$vi, data = d, random = ~ 1 | study / es, method = "ML"))
}

# ---- likelihood-ratio tests (anova of two fits) ---------------------------------------------
LRT <- list()
add_lrt <- function(id, full, reduced) {
  a <- quiet(anova(full, reduced))
  LRT[[length(LRT) + 1]] <<- list(id = id, full = full$id, reduced = reduced$id,
    df = arr(c(a$parms.f, a$parms.r)), logLik = arr(c(a$fit.stats.f["ll"], a$fit.stats.r["ll"])),
    LRT = num(a$LRT), pval = num(a$pval), AIC = arr(c(a$fit.stats.f["AIC"], a$fit.stats.r["AIC"])),
    BIC = arr(c(a$fit.stats.f["BIC"], a$fit.stats.r["BIC"])),
    AICc = arr(c(a$fit.stats.f["AICc"], a$fit.stats.r["AICc"])), QE = arr(c(a$QE.f, a$QE.r)))
}
fit_named <- function(id, args) {
  r <- best_fit(args)$fit
  r$id <- id
  r
}
k3 <- fit_named("konstantopoulos REML ~1|district/school",
                c(base_k, list(random = ~ 1 | district / school, method = "REML")))
k2 <- fit_named("konstantopoulos REML sigma2.1 = 0",
                c(base_k, list(random = ~ 1 | district / school, method = "REML", sigma2 = c(0, NA))))
add_lrt("konstantopoulos three-level vs two-level", k3, k2)
bu <- fit_named("berkey REML UN", c(base_b, list(random = ~ outcome | trial, struct = "UN",
                                                 method = "REML")))
bc <- fit_named("berkey REML CS", c(base_b, list(random = ~ outcome | trial, struct = "CS",
                                                 method = "REML")))
add_lrt("berkey UN vs CS", bu, bc)
km <- fit_named("konstantopoulos ML year", c(base_k, list(random = ~ 1 | district / school,
                                                          mods = ~ I(year - 2000), method = "ML")))
k0 <- fit_named("konstantopoulos ML ~1|district/school", c(base_k, list(random = ~ 1 | district / school,
                                                          method = "ML")))
add_lrt("konstantopoulos ML year vs intercept", km, k0)

# ---- vcalc -------------------------------------------------------------------------------
VC <- list()
vc_data <- data.frame(vi = c(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.15, 0.25),
                      cl = c(1, 1, 1, 1, 2, 2, 3, 3), obs = c(1, 2, 3, 4, 1, 2, 1, 2),
                      type = c(1, 1, 2, 2, 1, 2, 1, 1), time = c(1, 2, 1, 2, 1, 3, 1, 2),
                      sub = c(1, 1, 2, 2, 1, 1, 1, 2),
                      g1 = c(1, 2, 3, 1, 1, 2, 1, 1), g2 = c(4, 4, 4, 2, 3, 3, 2, 2),
                      w1 = c(10, 20, 30, 10, 5, 6, 8, 8), w2 = c(40, 40, 40, 20, 7, 7, 9, 9))
add_vc <- function(id, spec, expr) {
  V <- quiet(eval(expr, vc_data))
  VC[[length(VC) + 1]] <<- list(id = id, spec = spec, V = unname(as.matrix(V)))
}
add_vc("obs", list(obs = "obs", rho = 0.6), quote(vcalc(vi, cluster = cl, obs = obs, rho = 0.6)))
add_vc("type", list(type = "type", rho = 0.4), quote(vcalc(vi, cluster = cl, type = type, rho = 0.4)))
add_vc("type+obs", list(type = "type", obs = "obs", rho = arr(c(0.6, 0.3))),
       quote(vcalc(vi, cluster = cl, type = type, obs = obs, rho = c(0.6, 0.3))))
add_vc("time1", list(time1 = "time", phi = 0.9), quote(vcalc(vi, cluster = cl, time1 = time, phi = 0.9)))
add_vc("time1+obs", list(time1 = "time", obs = "obs", rho = 0.6, phi = 0.8),
       quote(vcalc(vi, cluster = cl, time1 = time, obs = obs, rho = 0.6, phi = 0.8)))
add_vc("grp", list(grp1 = "g1", grp2 = "g2"), quote(vcalc(vi, cluster = cl, grp1 = g1, grp2 = g2)))
add_vc("grp w", list(grp1 = "g1", grp2 = "g2", w1 = "w1", w2 = "w2"),
       quote(vcalc(vi, cluster = cl, grp1 = g1, grp2 = g2, w1 = w1, w2 = w2)))
add_vc("grp+obs", list(grp1 = "g1", grp2 = "g2", obs = "obs", rho = 0.5),
       quote(vcalc(vi, cluster = cl, grp1 = g1, grp2 = g2, obs = obs, rho = 0.5)))
add_vc("subgroup+obs", list(subgroup = "sub", obs = "obs", rho = 0.7),
       quote(vcalc(vi, cluster = cl, subgroup = sub, obs = obs, rho = 0.7)))
add_vc("none", list(), quote(vcalc(vi, cluster = cl)))
add_vc("assink obs 0.6", list(dataset = "assink2016", obs = "esid", rho = 0.6, cluster = "study"),
       quote(Va))

out <- list(
  generated_by = "validation/metafor/make_mv_reference.R",
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  R_version = R.version.string,
  optimisers = lapply(OPTIMISERS, function(o) if (length(o)) o else list(optimizer = "nlminb")),
  confint_control = CONFINT_CTRL,
  vcalc_data = lapply(as.list(vc_data), arr),
  datasets = DATA, fits = FITS, lrt = LRT, vcalc = VC)
writeLines(to_json(out), "tests/reference/metafor_mv.json")
cat("wrote tests/reference/metafor_mv.json\n")
