# Regenerates tests/reference/metafor_metareg.json: metafor's meta-regression (rma with mods=),
# anova(btt=), predict(newmods=), predict(), confint() and subgroup analyses, on real datasets
# (metadat, and the data of metafor's analysis examples) and on seeded simulated datasets.
# The schema of the JSON is described in tests/reference/README_metareg.md.
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_metareg_reference.R
# With KETAMETA_HEX_LOG=DIR it also writes DIR/metafor_metareg.hex (sprintf("%a") of every number),
# which validation/metafor/check_json_roundtrip.py compares with the JSON bit for bit.
suppressMessages({library(metafor)})
source("validation/metafor/json_exact.R")

CTRL <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)
CTRL_STR <- "list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)"
CONFINT_CTRL <- list(tol = 1e-13, maxiter = 10000)
METHODS <- c("EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB")
TESTS <- c("z", "t", "knha", "adhoc")
# fits that also get predict(newmods=); predict() (fitted values with CI/PI); confint()
DETAIL_FITS <- c("REML z", "REML knha", "DL z", "DL knha", "EE z", "PM adhoc", "ML t")
FITTED_FITS <- c("REML z", "DL knha")
CONFINT_FITS <- c("REML z", "DL z", "PM z")

num <- function(x) as.numeric(x)
nul <- function(x) if (is.null(x) || length(x) == 0) NULL else x

# Runs expr, returning its value (or an error object) and every warning text it raised.
capture <- function(expr) {
  warns <- character()
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) structure(list(message = conditionMessage(e)), class = "fit_error")),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  list(value = value, warnings = unique(warns))
}
failed <- function(x) inherits(x, "fit_error")

# ---------------------------------------------------------------------------------------------
# Independent checks of convergence: the size of one more Newton / Fisher-scoring step at the
# reported tau^2 (from the estimating equations, Viechtbauer 2005; Paule & Mandel 1982), which
# bounds the distance to the exact root. At a boundary estimate (tau^2 < 1e-10) a step that
# points below zero is reported as 0. metafor estimates tau^2 from the mean-centred outcomes
# (which matters only for designs whose column space does not hold the constant: see the
# README), so the check does too.
conv_step <- function(method, yi, vi, X, tau2) {
  if (!method %in% c("REML", "ML", "PM", "EB")) return(NULL)
  k <- length(yi); p <- ncol(X)
  yi <- yi - mean(yi)
  w <- 1 / (vi + tau2)
  # P = W - W X (X'WX)^-1 X'W = W^1/2 (I - QQ') W^1/2, Q from the QR of W^1/2 X (stable for
  # the ill-conditioned designs below)
  Q <- qr.Q(qr(sqrt(w) * X))
  M <- diag(k) - tcrossprod(Q)
  P <- sqrt(w) * t(sqrt(w) * M)
  Py <- P %*% yi
  yPy <- sum(yi * Py); yPPy <- sum(Py^2)
  step <- switch(method,
    REML = (yPPy - sum(diag(P))) / sum(P * P),
    ML = (yPPy - sum(w)) / sum(w^2),
    PM = (yPy - (k - p)) / yPPy,
    EB = (yPy * k / (k - p) - k) / sum(w))
  if (tau2 < 1e-10 && step <= 0) step <- 0
  step
}

# ---------------------------------------------------------------------------------------------
# Datasets. Each: id, source, prep (R code that built `dat` from public data), data (data frame
# with yi, vi and the raw moderator columns), formula (string), notes.
datasets <- list()
add_dataset <- function(id, source, prep, data, formula, notes = NULL) {
  datasets[[length(datasets) + 1]] <<- list(id = id, source = source, prep = prep, data = data,
                                            formula = formula, notes = notes)
}

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg_d <- data.frame(yi = num(bcg$yi), vi = num(bcg$vi), ablat = bcg$ablat, year = bcg$year,
                    alloc = bcg$alloc, stringsAsFactors = FALSE)
bcg_prep <- 'dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)'
bcg_src <- "dat.bcg (Colditz et al., 1994), log risk ratios"
for (f in c("~ ablat", "~ ablat + year", "~ factor(alloc)", "~ alloc", "~ ablat + alloc",
            "~ year - 1", "~ ablat - 1", "~ 0 + alloc", "~ factor(alloc) - 1", "~ ablat * year")) {
  add_dataset(paste0("bcg ", f), bcg_src, bcg_prep, bcg_d, f)
}

# Berkey et al. (1995): smoothed sampling variances, latitude centred at 33.46 (metafor's
# analysis example berkey1995; tests/testthat/test_analysis_example_berkey1995.r).
berkey <- bcg_d
berkey$vi <- with(bcg, sum(tneg / tpos) / (13 * (tneg + tpos)) + sum(cneg / cpos) / (13 * (cneg + cpos)))
add_dataset("berkey1995 ~ I(ablat - 33.46)",
            "Berkey et al. (1995) as in metafor's analysis example berkey1995: dat.bcg, smoothed vi",
            paste(bcg_prep, 'dat$vi <- with(dat, sum(tneg/tpos)/(13*(tneg+tpos)) + sum(cneg/cpos)/(13*(cneg+cpos)))', sep = "; "),
            berkey, "~ I(ablat - 33.46)",
            notes = "Berkey et al. (1995, p. 408) report EB: b = (-0.6304, -0.0268), se = (0.1591, 0.0110), tau2 = 0.157; EE: b = (-0.5950, -0.0282)")

# Raudenbush (2009): teacher expectancy, weeks capped at 3 (metafor analysis example raudenbush2009).
rd <- dat.raudenbush1985
rd_d <- data.frame(yi = num(rd$yi), vi = num(rd$vi), weeks = rd$weeks, tester = rd$tester,
                   setting = rd$setting, stringsAsFactors = FALSE)
rd_d$weeks.c <- ifelse(rd_d$weeks > 3, 3, rd_d$weeks)
add_dataset("raudenbush2009 ~ weeks.c", "Raudenbush (2009), dat.raudenbush1985, weeks capped at 3",
            "dat <- dat.raudenbush1985; dat$weeks.c <- ifelse(dat$weeks > 3, 3, dat$weeks)", rd_d, "~ weeks.c",
            notes = "Raudenbush (2009, Table 16.2): REML tau2 = 0, b = (0.407, -0.157), QE = 16.57, z = (4.68, -4.39)")
add_dataset("raudenbush1985 ~ weeks + tester", "dat.raudenbush1985 (Raudenbush, 1984)",
            "dat <- dat.raudenbush1985", rd_d, "~ weeks + tester")

# Lipsey & Wilson (2001), Table 7.1 (p. 130): no metadat dataset ships it; the 10 studies are
# typed in as in metafor's analysis example lipsey2001.
lw <- data.frame(yi = c(-0.33, 0.32, 0.39, 0.31, 0.17, 0.64, -0.33, 0.15, -0.02, 0.00),
                 vi = c(0.084, 0.035, 0.017, 0.034, 0.072, 0.117, 0.102, 0.093, 0.012, 0.067),
                 random = c(0, 0, 0, 0, 0, 0, 1, 1, 1, 1), intensity = c(7, 3, 7, 5, 7, 7, 4, 4, 5, 6))
lw_prep <- "dat <- data.frame(yi, vi, random, intensity) typed from Lipsey & Wilson (2001), Table 7.1"
add_dataset("lipsey2001 ~ random", "Lipsey & Wilson (2001), Table 7.1 (Exhibit 7.4: EE analog to the ANOVA)",
            lw_prep, lw, "~ random")
add_dataset("lipsey2001 ~ random + intensity",
            "Lipsey & Wilson (2001), Table 7.1 (Exhibits 7.6 EE and 7.7 DL)", lw_prep, lw, "~ random + intensity")

# Viechtbauer (2007b): St John's wort, dat.linde2005 subset (metafor analysis example viechtbauer2007b).
ln <- escalc(measure = "RR", ai = ai, ci = ci, n1i = n1i, n2i = n2i, data = dat.linde2005)
ln <- ln[c(7:10, 13:25), ]
ln_d <- data.frame(yi = num(ln$yi), vi = num(ln$vi), dosage = ln$dosage * 7 / 1000 * ln$duration,
                   baseline = ln$baseline, duration = ln$duration)
add_dataset("viechtbauer2007b ~ I(dosage - 34) * I(baseline - 20)",
            "Viechtbauer (2007b), dat.linde2005 rows c(7:10,13:25), log relative rates",
            paste('dat <- escalc(measure="RR", ai=ai, ci=ci, n1i=n1i, n2i=n2i, data=dat.linde2005)[c(7:10,13:25),]',
                  "dat$dosage <- dat$dosage * 7 / 1000 * dat$duration", sep = "; "),
            ln_d, "~ I(dosage - 34) * I(baseline - 20)",
            notes = "Viechtbauer (2007b, p. 112-113): DL tau2 = 0.0475, R2 = 47.38%")

# More metadat datasets with moderators.
bd <- dat.bangertdrowns2004
bd_d <- data.frame(yi = num(bd$yi), vi = num(bd$vi), length = bd$length, grade = bd$grade,
                   info = bd$info, pers = bd$pers, imag = bd$imag, meta = bd$meta)
add_dataset("bangertdrowns2004 ~ length", "dat.bangertdrowns2004 (2 studies with missing length)",
            "dat <- dat.bangertdrowns2004", bd_d, "~ length")
add_dataset("bangertdrowns2004 ~ factor(grade)", "dat.bangertdrowns2004", "dat <- dat.bangertdrowns2004",
            bd_d, "~ factor(grade)")
add_dataset("bangertdrowns2004 ~ info + pers + imag + meta",
            "dat.bangertdrowns2004 (studies with missing moderators omitted)", "dat <- dat.bangertdrowns2004",
            bd_d, "~ info + pers + imag + meta")

ks <- dat.konstantopoulos2011
ks_d <- data.frame(yi = num(ks$yi), vi = num(ks$vi), year = ks$year)
add_dataset("konstantopoulos2011 ~ year", "dat.konstantopoulos2011, multilevel structure ignored",
            "dat <- dat.konstantopoulos2011", ks_d, "~ year")

ml <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
ml_d <- data.frame(yi = num(ml$yi), vi = num(ml$vi), meanage = ml$meanage, quality = ml$quality,
                   controls = ml$controls, design = ml$design, stringsAsFactors = FALSE)
add_dataset("molloy2014 ~ meanage + controls", "dat.molloy2014, Fisher z of correlations",
            'dat <- escalc(measure="ZCOR", ri=ri, ni=ni, data=dat.molloy2014)', ml_d, "~ meanage + controls")

ct <- escalc(measure = "ROM", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
             data = dat.curtis1998)
ct_d <- data.frame(yi = num(ct$yi), vi = num(ct$vi), fungrp = ct$fungrp, method = ct$method,
                   time = ct$time, stringsAsFactors = FALSE)
add_dataset("curtis1998 ~ fungrp + method + time", "dat.curtis1998, log ratio of means (k = 102)",
            'dat <- escalc(measure="ROM", m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i, data=dat.curtis1998)',
            ct_d, "~ fungrp + method + time")

# ---------------------------------------------------------------------------------------------
# Simulated datasets (seeded). Each spec: k, template, true tau2, variance scale, log10 variance
# ratio, and extras. Templates define the moderators and the formula.
set.seed(20261213)
templates <- list(
  cont1 = list(f = "~ x1"),
  cont2 = list(f = "~ x1 + x2"),
  year = list(f = "~ year"),
  yearspread = list(f = "~ yearc"),
  yearnarrow = list(f = "~ yearn"),
  fac2 = list(f = "~ g2"),
  fac3x = list(f = "~ g3 + x1"),
  fac4 = list(f = "~ g4"),
  cont4 = list(f = "~ x1 + x2 + x3 + x4"),
  mixed5 = list(f = "~ x1 + g3 + year"),
  inter = list(f = "~ x1 * g2"),
  coll_last = list(f = "~ x1 + x2 + x12"),
  coll_first = list(f = "~ x12 + x1 + x2"),
  coll_fac = list(f = "~ g3 + db"),
  cellmeans = list(f = "~ 0 + g3"),
  origin = list(f = "~ x1 - 1"),
  scale1e3 = list(f = "~ x1 + big")
)
#            k  template     tau2  vscale vratio special
specs <- read.table(header = TRUE, stringsAsFactors = FALSE, text = "
k  template    tau2  vscale vratio special
4  cont1       0.1   0.1    1      none
5  fac2        0.5   0.1    2      none
6  cont2       0     0.01   1      none
7  year        0.1   0.1    1      none
8  fac3x       1     0.1    2      none
10 cont1       0.01  0.01   4      none
12 yearspread  0.1   0.1    1      none
15 fac4        0.1   0.1    1      none
20 cont4       0.5   0.1    2      none
25 mixed5      0.1   0.01   3      none
30 inter       0.1   0.1    1      none
40 cont1       1     1      2      none
60 cont2       0.1   0.1    4      none
10 coll_last   0.1   0.1    1      none
14 coll_first  0.1   0.1    1      none
12 coll_fac    0.1   0.1    1      none
9  cellmeans   0.1   0.1    1      none
8  origin      0.1   0.1    1      none
20 scale1e3    0.1   0.1    2      none
11 cont1       0     0.1    1      resid0
16 cont2       0     0.1    2      resid0
9  fac2        0     0.01   1      resid0
13 year        0     0.1    1      resid0
18 cont1       0.1   0.1    1      na
22 fac3x       0.1   0.1    1      na
5  cont2       0.1   0.1    1      none
6  fac3x       0.5   0.1    1      none
35 fac4        1     0.1    3      none
45 cont4       0.01  0.01   2      none
50 mixed5      0.5   0.1    4      none
24 yearspread  0     0.1    1      resid0
17 yearnarrow  0.1   0.1    1      none
28 inter       0.01  0.1    2      none
33 year        0.5   1      1      none
19 scale1e3    1     1      3      none
4  fac2        0     0.1    1      none
7  cont1       1     0.1    4      none
26 fac3x       0     0.01   2      none
55 cont1       0.1   0.1    2      none
12 cont4       0.1   0.1    1      none
")

levels_of <- function(n, k) {
  base <- rep_len(letters[1:n], k)
  sample(base)
}
for (i in seq_len(nrow(specs))) {
  s <- specs[i, ]
  k <- s$k
  d <- data.frame(x1 = rnorm(k), x2 = runif(k, 0, 1000), x3 = rnorm(k, 5, 0.1),
                  x4 = rexp(k), year = sample(1995:2010, k, replace = TRUE),
                  yearc = 2000 + runif(k, -2, 2), yearn = 2000 + runif(k, -0.02, 0.02),
                  big = rnorm(k, 0, 1000),
                  g2 = levels_of(2, k), g3 = levels_of(3, k), g4 = levels_of(4, k),
                  stringsAsFactors = FALSE)
  d$x12 <- d$x1 - 2 * d$x2
  d$db <- as.numeric(d$g3 == "b")
  vi <- s$vscale * 10^runif(k, 0, s$vratio)
  f <- templates[[s$template]]$f
  mm <- model.matrix(as.formula(f), data = d)
  beta <- rnorm(ncol(mm), 0, 0.5)
  # keep the linear predictor on the scale of the effects whatever the scale of the moderator
  sds <- apply(mm, 2, sd)
  beta[sds > 0] <- beta[sds > 0] / sds[sds > 0]
  mu <- as.vector(mm %*% beta)
  # effects on the scale of real effect sizes: a year-like moderator near 2000 then gives a
  # large intercept and a small slope, as in real data, not effects in the thousands
  mu <- mu - mean(mu) + rnorm(1, 0, 0.5)
  if (s$special == "resid0") {
    yi <- mu + rnorm(k, 0, 0.3 * sqrt(vi))
  } else {
    yi <- rnorm(k, mu, sqrt(vi + s$tau2))
  }
  vars <- all.vars(as.formula(f))
  if (s$special == "na") {
    d[[vars[1]]][sample(k, 2)] <- NA
  }
  dd <- data.frame(yi = yi, vi = vi, stringsAsFactors = FALSE)
  for (v in vars) dd[[v]] <- d[[v]]
  add_dataset(sprintf("sim%02d %s", i, f),
              sprintf("simulated (seed 20261213, spec %d): k=%d, template %s, true tau2=%g, vi = %g * 10^U(0,%g), %s",
                      i, k, s$template, s$tau2, s$vscale, s$vratio, s$special),
              "simulated", dd, f)
}

# ---------------------------------------------------------------------------------------------
# One fit record.
call_template <- function(formula) {
  sprintf('rma(yi, vi, mods = %s, data = dat, method = "{method}", test = "{test}", control = %s)',
          formula, CTRL_STR)
}

fitstats_list <- function(r) {
  fs <- r$fit.stats
  lapply(list(ML = "ML", REML = "REML"), function(col)
    list(ll = fs["ll", col], dev = fs["dev", col], AIC = fs["AIC", col], BIC = fs["BIC", col],
         AICc = fs["AICc", col]))
}

choose_btt <- function(r) {
  p <- r$p
  if (r$int.incl && p >= 3) return(c(2, p))
  if (p >= 2) return(1)
  1
}

new_rows <- function(X) {
  k <- nrow(X)
  idx <- unique(c(1, ceiling(k / 2), k))
  while (length(idx) < 3) idx <- c(idx, idx[1])
  newX <- X[idx, , drop = FALSE]
  for (j in seq_len(ncol(X))) {
    col <- X[, j]
    if (all(col %in% c(0, 1))) next  # intercept and dummy columns stay
    newX[, j] <- newX[, j] + c(0.5, -0.25, 1) * sd(col)
  }
  rownames(newX) <- NULL
  newX
}

pred_record <- function(pr) {
  list(pred = arr(num(pr$pred)), se = arr(num(pr$se)), ci_lb = arr(num(pr$ci.lb)),
       ci_ub = arr(num(pr$ci.ub)),
       pi_lb = if (is.null(pr$pi.lb)) NULL else arr(num(pr$pi.lb)),
       pi_ub = if (is.null(pr$pi.ub)) NULL else arr(num(pr$pi.ub)))
}

run_dataset <- function(ds) {
  dat <- ds$data
  form <- as.formula(ds$formula)
  fits <- list()
  per_method <- structure(list(), names = character())  # written as {} even when empty
  X_info <- NULL
  for (m in METHODS) {
    zfit <- NULL
    for (t in TESTS) {
      key <- paste(m, t)
      cap <- capture(rma(yi, vi, mods = form, data = dat, method = m, test = t, control = CTRL))
      r <- cap$value
      refit <- NULL
      if (failed(r) && grepl("did not converge", r$message)) {
        # Fisher scoring can stall at ~1e-13 on ill-conditioned designs (floating-point noise in
        # the step): refit with the tightest threshold that converges and say so
        for (th in c(1e-12, 1e-11, 1e-10)) {
          cap2 <- capture(rma(yi, vi, mods = form, data = dat, method = m, test = t,
                              control = modifyList(CTRL, list(threshold = th))))
          if (!failed(cap2$value)) {
            refit <- list(first_error = r$message, threshold = th)
            cap <- cap2
            r <- cap2$value
            break
          }
        }
      }
      rec <- list(method = m, test = t, warnings = arr(cap$warnings), refit = refit)
      if (failed(r)) {
        rec$status <- "error"
        rec$error <- r$message
        fits[[length(fits) + 1]] <- rec
        next
      }
      if (is.null(X_info)) {
        X_info <- list(X = unname(r$X), colnames = arr(colnames(r$X)),
                       requested_colnames = arr(sub("^X", "", names(r$coef.na))),
                       dropped_columns = arr(sub("^X", "", names(r$coef.na)[r$coef.na])),
                       omitted_rows_0based = arr(which(!r$not.na) - 1),
                       k_all = length(r$not.na), int_incl = r$int.incl)
      }
      rec$status <- "ok"
      stopifnot(identical(rownames(r$beta), colnames(r$X)), identical(colnames(r$X), as.vector(X_info$colnames)))
      # logLik(), deviance(), AIC(), BIC(), AICc() take the REML column for REML, else the ML one
      stopifnot(isTRUE(all.equal(num(fitstats(r)), num(r$fit.stats[, if (m == "REML") "REML" else "ML"]), tolerance = 0)))
      rec <- c(rec, list(
        k = r$k, p = r$p,
        b = arr(num(r$beta)),
        se = arr(num(r$se)), zval = arr(num(r$zval)), pval = arr(num(r$pval)),
        ci_lb = arr(num(r$ci.lb)), ci_ub = arr(num(r$ci.ub)), vb = unname(r$vb),
        tau2 = r$tau2, se_tau2 = if (is.null(r$se.tau2) || is.na(r$se.tau2)) NULL else r$se.tau2,
        I2 = r$I2, H2 = r$H2, R2 = nul(r$R2),
        QE = r$QE, QEp = r$QEp, QM = r$QM, QMp = r$QMp, QMdf = arr(num(r$QMdf)),
        btt = arr(r$btt), dfs = if (is.na(r$dfs)) NULL else r$dfs,
        tau2_newton_step = conv_step(m, r$yi, r$vi, r$X, r$tau2)
      ))
      # anova(btt=) on every fit
      btt <- choose_btt(r)
      av <- capture(anova(r, btt = btt))
      rec$anova_btt <- if (failed(av$value)) list(btt = arr(btt), error = av$value$message) else
        list(btt = arr(btt), QM = av$value$QM, QMp = av$value$QMp, QMdf = arr(num(av$value$QMdf)),
             warnings = arr(av$warnings))
      if (key %in% DETAIL_FITS) {
        newX <- new_rows(r$X)
        newmods <- if (r$int.incl) newX[, -1, drop = FALSE] else newX
        pn <- capture(predict(r, newmods = newmods))
        rec$predict_newmods <- c(list(newX = newX, newmods = newmods), if (failed(pn$value))
          list(error = pn$value$message) else pred_record(pn$value))
      }
      if (key %in% FITTED_FITS) {
        pf <- capture(predict(r))
        rec$predict_fitted <- if (failed(pf$value)) list(error = pf$value$message) else pred_record(pf$value)
      }
      if (key %in% CONFINT_FITS) {
        ci <- capture(confint(r, control = CONFINT_CTRL))
        if (failed(ci$value)) {
          rec$confint <- list(error = ci$value$message, warnings = arr(ci$warnings))
        } else {
          rnd <- ci$value$random
          rec$confint <- c(lapply(setNames(c("tau^2", "tau", "I^2(%)", "H^2"), c("tau2", "tau", "I2", "H2")),
                                  function(row) list(estimate = rnd[row, "estimate"], ci_lb = rnd[row, "ci.lb"],
                                                     ci_ub = rnd[row, "ci.ub"])),
                           list(warnings = arr(ci$warnings)))
        }
      }
      if (t == "z") {
        zfit <- r
        per_method[[m]] <- list(
          tau2 = r$tau2, fit_stats = fitstats_list(r),
          fitted = arr(num(fitted(r))), residuals = arr(num(resid(r))),
          rstandard_z = arr(num(rstandard(r)$z)),
          hatvalues = arr(num(hatvalues(r))), weights = arr(num(weights(r))))
      } else if (!is.null(zfit)) {
        # the per-study quantities do not depend on the test: check it
        stopifnot(isTRUE(all.equal(num(fitted(r)), num(fitted(zfit)), tolerance = 0)),
                  isTRUE(all.equal(num(rstandard(r)$z), num(rstandard(zfit)$z), tolerance = 0)),
                  isTRUE(all.equal(num(hatvalues(r)), num(hatvalues(zfit)), tolerance = 0)),
                  isTRUE(all.equal(num(weights(r)), num(weights(zfit)), tolerance = 0)),
                  isTRUE(all.equal(r$fit.stats, zfit$fit.stats, tolerance = 0)))
      }
      fits[[length(fits) + 1]] <- rec
    }
  }
  if (is.null(X_info)) {
    # no fit succeeded: the design as R's model.matrix builds it (metafor's X is unknown)
    mf <- model.frame(form, data = dat, na.action = na.pass)
    mm <- model.matrix(form, mf)
    keep <- complete.cases(dat$yi, dat$vi, mm)
    cn <- sub("(Intercept)", "intrcpt", colnames(mm), fixed = TRUE)
    X_info <- list(X = unname(mm[keep, , drop = FALSE]), colnames = arr(cn),
                   requested_colnames = arr(colnames(mm)), dropped_columns = arr(character()),
                   omitted_rows_0based = arr(which(!keep) - 1), k_all = nrow(dat),
                   int_incl = "(Intercept)" %in% colnames(mm), X_source = "model.matrix (every fit failed)")
  }
  raw <- lapply(dat[setdiff(names(dat), c("yi", "vi"))], function(col) arr(col))
  list(id = ds$id, source = ds$source, prep = ds$prep, formula = ds$formula, notes = ds$notes,
       call_template = call_template(ds$formula),
       yi = arr(num(dat$yi)), vi = arr(num(dat$vi)), moderators = raw,
       X = X_info$X, X_colnames = X_info$colnames, X_requested_colnames = X_info$requested_colnames,
       dropped_columns = X_info$dropped_columns, omitted_rows_0based = X_info$omitted_rows_0based,
       k_all = X_info$k_all, intercept = X_info$int_incl, X_source = X_info$X_source,
       X_cond = kappa(X_info$X, exact = TRUE),
       per_method = per_method, fits = fits)
}

cases <- lapply(datasets, function(ds) {
  message(ds$id)
  run_dataset(ds)
})

# ---------------------------------------------------------------------------------------------
# Subgroups: per-group rma fits, the overall fit, the test for subgroup differences with separate
# tau^2 per group (meta's Q.b.random: an equal-effects Q across the subgroup estimates with their
# standard errors, G-1 df) and with a common tau^2 (metafor: mods = ~ factor(group), QM; and
# ~ factor(group) - 1 for the per-group estimates).
sub_datasets <- list()
sub_datasets[[1]] <- list(id = "bcg by alloc", source = bcg_src, prep = bcg_prep,
                          yi = bcg_d$yi, vi = bcg_d$vi, group = bcg_d$alloc)
set.seed(777)
mk_sub <- function(id, sizes, effects, tau2, vscale) {
  g <- rep(LETTERS[seq_along(sizes)], sizes)
  vi <- vscale * 10^runif(length(g), 0, 1.5)
  yi <- rnorm(length(g), rep(effects, sizes), sqrt(vi + tau2))
  list(id = id, source = sprintf("simulated (seed 777): group sizes %s, true effects %s, tau2 %g",
                                 paste(sizes, collapse = "/"), paste(effects, collapse = "/"), tau2),
       prep = "simulated", yi = yi, vi = vi, group = g)
}
sub_datasets[[2]] <- mk_sub("sim 2 groups", c(6, 9), c(0.2, 0.6), 0.05, 0.05)
sub_datasets[[3]] <- mk_sub("sim 5 groups, one single-study group", c(4, 1, 6, 3, 8), c(0, 0.3, 0.5, -0.2, 0.1), 0.1, 0.05)
sub_datasets[[4]] <- mk_sub("sim 3 groups", c(5, 7, 10), c(0.1, 0.1, 0.4), 0, 0.02)

grp_fit_record <- function(cap) {
  r <- cap$value
  if (failed(r)) return(list(status = "error", error = r$message, warnings = arr(cap$warnings)))
  list(status = "ok", k = r$k, estimate = num(r$beta), se = r$se, zval = r$zval, pval = r$pval,
       ci_lb = r$ci.lb, ci_ub = r$ci.ub, tau2 = r$tau2,
       se_tau2 = if (is.null(r$se.tau2) || is.na(r$se.tau2)) NULL else r$se.tau2,
       QE = r$QE, QEp = r$QEp, I2 = r$I2, H2 = r$H2, test_used = r$test,
       dfs = if (is.na(r$dfs)) NULL else r$dfs, warnings = arr(cap$warnings))
}

subgroups <- lapply(sub_datasets, function(sd) {
  message(sd$id)
  levs <- sort(unique(sd$group))
  analyses <- list()
  for (m in c("REML", "DL", "EE")) for (t in c("z", "knha")) {
    if (m == "EE" && t == "knha") next
    per_group <- lapply(setNames(levs, levs), function(g) {
      sel <- sd$group == g
      grp_fit_record(capture(rma(sd$yi[sel], sd$vi[sel], method = m, test = t, control = CTRL)))
    })
    overall <- grp_fit_record(capture(rma(sd$yi, sd$vi, method = m, test = t, control = CTRL)))
    est <- vapply(per_group, function(x) x$estimate, 0)
    ses <- vapply(per_group, function(x) x$se, 0)
    qb <- rma(est, sei = ses, method = "EE")
    G <- length(levs)
    common <- capture(rma(sd$yi, sd$vi, mods = ~ factor(group), data = data.frame(group = sd$group),
                          method = m, test = t, control = CTRL))
    cells <- capture(rma(sd$yi, sd$vi, mods = ~ factor(group) - 1, data = data.frame(group = sd$group),
                         method = m, test = t, control = CTRL))
    cr <- common$value; cl <- cells$value
    analyses[[length(analyses) + 1]] <- list(
      method = m, test = t,
      calls = list(
        per_group = sprintf('rma(yi, vi, subset = group == g, method = "%s", test = "%s", control = %s)', m, t, CTRL_STR),
        overall = sprintf('rma(yi, vi, method = "%s", test = "%s", control = %s)', m, t, CTRL_STR),
        separate_tau2_test = "rma(estimates, sei = ses, method = \"EE\")$QE with G - 1 df",
        common_tau2_test = sprintf('rma(yi, vi, mods = ~ factor(group), method = "%s", test = "%s", control = %s)', m, t, CTRL_STR),
        common_tau2_cells = sprintf('rma(yi, vi, mods = ~ factor(group) - 1, method = "%s", test = "%s", control = %s)', m, t, CTRL_STR)),
      per_group = per_group, overall = overall,
      separate_tau2 = list(Q_between = qb$QE, df = G - 1,
                           p = pchisq(qb$QE, df = G - 1, lower.tail = FALSE)),
      common_tau2 = if (failed(cr)) list(error = cr$message) else list(
        QM = cr$QM, QMdf = arr(num(cr$QMdf)), QMp = cr$QMp, tau2 = cr$tau2,
        QE = cr$QE, QEp = cr$QEp, warnings = arr(common$warnings),
        cells = if (failed(cl)) list(error = cl$message) else list(
          names = arr(rownames(cl$beta)), estimate = arr(num(cl$beta)), se = arr(num(cl$se)),
          zval = arr(num(cl$zval)), pval = arr(num(cl$pval)), ci_lb = arr(num(cl$ci.lb)),
          ci_ub = arr(num(cl$ci.ub)), tau2 = cl$tau2, QM = cl$QM, QMp = cl$QMp,
          QMdf = arr(num(cl$QMdf)), warnings = arr(cells$warnings))))
  }
  list(id = sd$id, source = sd$source, prep = sd$prep, yi = arr(num(sd$yi)), vi = arr(num(sd$vi)),
       group = arr(sd$group), levels = arr(levs), analyses = analyses)
})

out <- list(
  generated_by = "validation/metafor/make_metareg_reference.R",
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  r_version = R.version.string,
  control = CTRL,
  confint_control = CONFINT_CTRL,
  methods = arr(METHODS), tests = arr(TESTS),
  detail_fits = arr(DETAIL_FITS), fitted_fits = arr(FITTED_FITS), confint_fits = arr(CONFINT_FITS),
  schema = "tests/reference/README_metareg.md",
  cases = cases,
  subgroups = subgroups)

txt <- to_json(out)
writeLines(txt, "tests/reference/metafor_metareg.json")
hexdir <- Sys.getenv("KETAMETA_HEX_LOG")
if (nzchar(hexdir)) writeLines(json_hex(out), file.path(hexdir, "metafor_metareg.hex"))
message(sprintf("wrote %d cases, %d subgroup datasets, %.2f MB", length(cases), length(subgroups),
                nchar(txt) / 2^20))
