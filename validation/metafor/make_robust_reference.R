# Regenerates tests/reference/robust_reference.json: cluster-robust inference for dependent
# effect sizes, from three R packages run on the same data:
#   - metafor's robust() (CR1 with the factor m/(m - p), CR0, and clubSandwich = TRUE),
#   - clubSandwich's vcovCR() (types CR0, CR1, CR1p, CR1S, CR2, CR3) with coef_test()
#     (Satterthwaite and "naive-tp" degrees of freedom) and Wald_test() (HTZ, Naive-Fp, chi-sq),
#   - robumeta's robu() (correlated- and hierarchical-effects weights, small = TRUE/FALSE).
# on rma.uni fits (every tau^2 estimator, intercept-only and with moderators), on rma.mv fits
# (three-level models, to check the protocol by which ketameta.robust takes multilevel
# results) and on real (metadat, robumeta) and seeded simulated data with unbalanced clusters,
# clusters of one effect, and one effect per cluster.
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_robust_reference.R
# With KETAMETA_HEX_LOG=DIR it also writes DIR/robust_reference.hex (sprintf("%a") of every number),
# which validation/metafor/check_json_roundtrip.py compares with the JSON bit for bit.
#
# Schema (numbers as doubles that round-trip exactly; matrices as arrays of rows):
#   datasets: {id: {source, yi, vi, cluster, columns: {name: values}}}
#   uni: [{id, dataset, method, test, formula, X, tau2, coef, names,
#          metafor: {adjust_true | adjust_false | clubSandwich: {vb, se, tval, df, pval, ci_lb,
#                    ci_ub, QM, QMdf, QMp, btt}},
#          clubSandwich: {CR0 | CR1 | CR1p | CR1S | CR2 | CR3: {vcov, se, tstat, df_satt,
#                    p_satt, df_tp, p_tp, wald: {btt | all: {constraints (1-based), tests:
#                    {HTZ | Naive-Fp | chi-sq: {Fstat, delta, df_num, df_denom, p_val}}}}}}}]
#   mv: [{id, dataset, formula, X, sigma2, structure, coef, vb_model, metafor: {...},
#         clubSandwich: {...}}]   (M = diag(vi + sigma2[2]) + sigma2[1] * [same cluster])
#   robu: [{id, dataset, formula, modelweights, rho, small, X, coef, se, t, dfs, prob, ci_l,
#           ci_u, vcov, tau2, omega2, I2, weights (input order), n_clusters, k,
#           clubSandwich_wald (CR2, HTZ, all but the intercept, when p >= 2)}]
suppressMessages({library(metafor); library(clubSandwich); library(robumeta)})
source("validation/metafor/json_exact.R")

CTRL <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)
METHODS <- c("EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB")
CR_TYPES <- c("CR0", "CR1", "CR1p", "CR1S", "CR2", "CR3")
WALD_TESTS <- c("HTZ", "Naive-Fp", "chi-sq")
num <- function(x) as.numeric(x)

datasets <- list()
add_data <- function(id, source, yi, vi, cluster, columns = list()) {
  datasets[[id]] <<- list(source = source, yi = arr(num(yi)), vi = arr(num(vi)),
                          cluster = arr(cluster),
                          columns = lapply(columns, function(x) arr(if (is.character(x)) x else num(x))))
}

# ---- data -----------------------------------------------------------------------------------
k11 <- dat.konstantopoulos2011
add_data("konstantopoulos2011", "metadat::dat.konstantopoulos2011 (cluster = district)",
         k11$yi, k11$vi, num(k11$district),
         list(year = k11$year, year_c = k11$year - round(mean(k11$year)), school = k11$school))
a16 <- dat.assink2016
add_data("assink2016", "metadat::dat.assink2016 (cluster = study)", a16$yi, a16$vi, num(a16$study),
         list(year = a16$year, deltype = a16$deltype, esid = a16$esid))
bd <- dat.bangertdrowns2004
add_data("bangertdrowns2004",
         "metadat::dat.bangertdrowns2004 (cluster = grade; feedback has missing values)",
         bd$yi, bd$vi, num(bd$grade), list(wic = bd$wic, feedback = bd$feedback))
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
add_data("bcg", 'metadat::dat.bcg, escalc(measure = "RR") (cluster = alloc)', bcg$yi, bcg$vi,
         as.character(bcg$alloc), list(ablat = bcg$ablat))

# simulated: unbalanced clusters (sizes 1 to max_size, some of one effect), an effect-level and
# a cluster-level moderator, between-cluster and within-cluster heterogeneity
simulate <- function(seed, m, max_size) {
  set.seed(seed)
  sizes <- sample(1:max_size, m, replace = TRUE)
  sizes[1:2] <- c(1, max_size)
  cl <- rep(seq_len(m), sizes)
  k <- length(cl)
  x1 <- round(rnorm(k), 3)
  x2 <- rep(rbinom(m, 1, 0.5), sizes)
  if (length(unique(x2)) < 2) x2[1] <- 1 - x2[1]
  vi <- round(runif(k, 0.01, 0.2), 4)
  yi <- 0.2 + 0.15 * x1 + 0.3 * x2 + rep(rnorm(m, 0, 0.25), sizes) + rnorm(k, 0, 0.1) +
    rnorm(k, 0, sqrt(vi))
  list(yi = round(yi, 4), vi = vi, cluster = cl, x1 = x1, x2 = x2)
}
for (spec in list(c(20240611, 6, 5), c(777, 15, 8), c(4242, 40, 12))) {
  s <- simulate(spec[1], spec[2], spec[3])
  add_data(sprintf("sim seed=%d m=%d", spec[1], spec[2]),
           sprintf("simulated (seed %d): %d clusters of 1-%d effects", spec[1], spec[2], spec[3]),
           s$yi, s$vi, s$cluster, list(x1 = s$x1, x2 = s$x2))
}
s1 <- simulate(99, 25, 1)
add_data("sim one effect per cluster", "simulated (seed 99): 25 clusters of one effect each",
         s1$yi, s1$vi, seq_along(s1$yi), list(x1 = s1$x1))

getd <- function(id) {
  d <- datasets[[id]]
  out <- data.frame(yi = num(d$yi), vi = num(d$vi), stringsAsFactors = FALSE)
  out$cluster <- as.vector(unclass(d$cluster))
  for (nm in names(d$columns)) out[[nm]] <- as.vector(unclass(d$columns[[nm]]))
  out
}

# ---- clubSandwich and metafor's robust() on one fit -------------------------------------------
wald_sets <- function(p) {
  if (p < 2) return(list())
  sets <- list(btt = 2:p, all = 1:p)
  if (p >= 3) sets$pair <- 2:3
  sets
}

club <- function(fit, cluster, p) {
  out <- list()
  for (type in CR_TYPES) {
    V <- tryCatch(vcovCR(fit, cluster = cluster, type = type), error = function(e) {
      message("  ", type, ": ", conditionMessage(e)); NULL})
    if (is.null(V)) next  # (CR3: I - H_jj singular, a cluster fits its effects exactly)
    ct <- coef_test(fit, vcov = V, test = c("Satterthwaite", "naive-tp"))
    wald <- setNames(list(), character(0))  # (written as {} when empty)
    for (nm in names(wald_sets(p))) {
      idx <- wald_sets(p)[[nm]]
      wt <- tryCatch(Wald_test(fit, constraints = constrain_zero(idx), vcov = V, test = WALD_TESTS),
                     error = function(e) NULL)
      if (is.null(wt)) next  # (clubSandwich's Cholesky of a near-singular C V C' failed)
      tests <- list()
      for (i in seq_len(nrow(wt))) {
        tests[[as.character(wt$test[i])]] <- list(Fstat = num(wt$Fstat[i]), delta = num(wt$delta[i]),
                                                  df_num = num(wt$df_num[i]), df_denom = num(wt$df_denom[i]),
                                                  p_val = num(wt$p_val[i]))
      }
      wald[[nm]] <- list(constraints = arr(idx), tests = tests)
    }
    out[[type]] <- list(vcov = matrix(num(V), nrow(V)), se = arr(num(ct$SE)),
                        tstat = arr(num(ct$tstat)), df_satt = arr(num(ct$df_Satt)),
                        p_satt = arr(num(ct$p_Satt)), df_tp = arr(num(ct$df_tp)),
                        p_tp = arr(num(ct$p_tp)), wald = wald)
  }
  out
}

metafor_robust <- function(fit, cluster) {
  one <- function(r) list(vb = unname(as.matrix(r$vb)), se = arr(num(r$se)), tval = arr(num(r$zval)),
                          df = arr(num(r$ddf)), pval = arr(num(r$pval)), ci_lb = arr(num(r$ci.lb)),
                          ci_ub = arr(num(r$ci.ub)), QM = if (length(r$btt) && fit$p > 1) num(r$QM) else NULL,
                          QMdf = arr(num(r$QMdf)), QMp = if (fit$p > 1) num(r$QMp) else NULL,
                          btt = arr(num(r$btt)))
  list(adjust_true = one(robust(fit, cluster = cluster, adjust = TRUE)),
       adjust_false = one(robust(fit, cluster = cluster, adjust = FALSE)),
       clubSandwich = one(robust(fit, cluster = cluster, clubSandwich = TRUE)))
}

# ---- rma.uni fits -----------------------------------------------------------------------------
uni <- list()
add_uni <- function(dataset, method, formula, test = "z") {
  d <- getd(dataset)
  fit <- if (is.null(formula)) {
    rma(yi, vi, data = d, method = method, test = test, control = CTRL)
  } else {
    rma(as.formula(paste("yi", formula)), vi, data = d, method = method, test = test, control = CTRL)
  }
  cluster <- d$cluster[fit$not.na]
  p <- fit$p
  id <- sprintf("%s %s %s%s", dataset, method, if (is.null(formula)) "~ 1" else formula,
                if (test == "z") "" else paste0(" test=", test))
  message(id)
  uni[[length(uni) + 1]] <<- list(
    id = id, dataset = dataset, method = method, test = test, formula = formula,
    not_na = arr(fit$not.na), X = unname(fit$X), tau2 = num(fit$tau2), coef = arr(num(fit$beta)),
    names = arr(rownames(fit$beta)), s2w = num(fit$s2w),
    metafor = metafor_robust(fit, d$cluster),
    clubSandwich = club(fit, cluster, p))
}

for (method in METHODS) {
  add_uni("konstantopoulos2011", method, NULL)
  add_uni("konstantopoulos2011", method, "~ year")
  add_uni("assink2016", method, "~ year + deltype")
}
add_uni("konstantopoulos2011", "REML", "~ year", test = "knha")
# the same models with the year centred: the tests of both coefficients are the same
# hypotheses as for "~ year", whose (intercept, year) covariance is too ill-conditioned for
# clubSandwich's Wald_test to be accurate (ketameta works in an orthonormal basis)
add_uni("konstantopoulos2011", "REML", "~ year_c")
add_uni("konstantopoulos2011", "EE", "~ year_c")
add_uni("assink2016", "REML", NULL)
add_uni("bangertdrowns2004", "REML", "~ wic + feedback")
add_uni("bangertdrowns2004", "DL", NULL)
add_uni("bcg", "REML", "~ ablat")
for (id in grep("^sim seed", names(datasets), value = TRUE)) {
  add_uni(id, "REML", NULL)
  add_uni(id, "REML", "~ x1 + x2")
  add_uni(id, "DL", "~ x1")
}
add_uni("sim one effect per cluster", "REML", "~ x1")
add_uni("sim one effect per cluster", "EE", NULL)

# ---- rma.mv fits (three-level models; the cluster is the top level) ----------------------------
mv <- list()
add_mv <- function(dataset, formula, random, inner) {
  d <- getd(dataset)
  fit <- rma.mv(as.formula(paste("yi", formula)), vi, random = random, data = d, method = "REML")
  p <- fit$p
  mv[[length(mv) + 1]] <<- list(
    id = sprintf("%s rma.mv %s", dataset, formula), dataset = dataset, formula = formula,
    structure = sprintf("random = ~ 1 | cluster/%s: M = diag(vi + sigma2[2]) + sigma2[1] * [same cluster]", inner),
    X = unname(fit$X), sigma2 = arr(num(fit$sigma2)), coef = arr(num(fit$beta)),
    names = arr(rownames(fit$beta)), vb_model = unname(as.matrix(fit$vb)),
    metafor = metafor_robust(fit, d$cluster),
    clubSandwich = club(fit, d$cluster, p))
}
add_mv("konstantopoulos2011", "~ 1", ~ 1 | cluster/school, "school")
add_mv("konstantopoulos2011", "~ year", ~ 1 | cluster/school, "school")
add_mv("konstantopoulos2011", "~ year_c", ~ 1 | cluster/school, "school")
add_mv("assink2016", "~ deltype", ~ 1 | cluster/esid, "esid")

# ---- robumeta -----------------------------------------------------------------------------------
robus <- list()
add_robu <- function(dataset, data, formula, modelweights, rho = 0.8, small = TRUE) {
  fit <- robu(as.formula(paste("effectsize", formula)), data = data, studynum = studyid,
              var.eff.size = var, modelweights = modelweights, rho = rho, small = small)
  ord <- order(order(fit$study_orig_id))  # sorted (by study) -> input order
  p <- ncol(fit$Xreg)
  wald <- NULL
  if (p >= 2) {
    wt <- Wald_test(fit, constraints = constrain_zero(2:p), vcov = "CR2", test = "HTZ")
    wald <- list(constraints = arr(2:p), Fstat = num(wt$Fstat), delta = num(wt$delta),
                 df_num = num(wt$df_num), df_denom = num(wt$df_denom), p_val = num(wt$p_val))
  }
  rt <- fit$reg_table
  robus[[length(robus) + 1]] <<- list(
    id = sprintf("%s %s %s rho=%g small=%s", dataset, modelweights, formula, rho, small),
    dataset = dataset, formula = formula, modelweights = modelweights, rho = rho, small = small,
    X = unname(fit$Xreg[ord, , drop = FALSE]), coef = arr(num(rt$b.r)), se = arr(num(rt$SE)),
    t = arr(num(rt$t)), dfs = arr(num(rt$dfs)), prob = arr(num(rt$prob)),
    ci_l = arr(num(rt$CI.L)), ci_u = arr(num(rt$CI.U)), vcov = unname(as.matrix(fit$VR.r)),
    tau2 = num(fit$mod_info$tau.sq), omega2 = if (is.null(fit$mod_info$omega.sq)) NULL else num(fit$mod_info$omega.sq),
    I2 = if (is.null(fit$mod_info$I.2)) NULL else num(fit$mod_info$I.2),
    weights = arr(num(fit$data.full$r.weights[ord])), n_clusters = fit$N, k = fit$M,
    clubSandwich_wald = wald)
}
data(corrdat); data(hierdat)
add_data("corrdat", "robumeta::corrdat (cluster = studyid)", corrdat$effectsize, corrdat$var,
         num(corrdat$studyid), list(males = corrdat$males, college = corrdat$college, binge = corrdat$binge))
add_data("hierdat", "robumeta::hierdat (cluster = studyid)", hierdat$effectsize, hierdat$var,
         num(hierdat$studyid), list(binge = hierdat$binge, followup = hierdat$followup,
                                    sreport = hierdat$sreport, age = hierdat$age))
for (small in c(TRUE, FALSE)) {
  add_robu("corrdat", corrdat, "~ males + college + binge", "CORR", 0.8, small)
  add_robu("corrdat", corrdat, "~ 1", "CORR", 0.8, small)
  add_robu("hierdat", hierdat, "~ binge + followup + sreport + age", "HIER", small = small)
  add_robu("hierdat", hierdat, "~ 1", "HIER", small = small)
}
for (rho in c(0, 0.5, 1)) add_robu("corrdat", corrdat, "~ males + college + binge", "CORR", rho, TRUE)
sim <- getd("sim seed=4242 m=40")
simr <- data.frame(effectsize = sim$yi, var = sim$vi, studyid = sim$cluster, x1 = sim$x1, x2 = sim$x2)
for (mw in c("CORR", "HIER")) for (small in c(TRUE, FALSE))
  add_robu("sim seed=4242 m=40", simr, "~ x1 + x2", mw, 0.8, small)

out <- list(
  generated_by = "validation/metafor/make_robust_reference.R",
  R_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  clubSandwich_version = as.character(packageVersion("clubSandwich")),
  robumeta_version = as.character(packageVersion("robumeta")),
  control = "rma: list(threshold = 1e-13, maxiter = 10000, tol = 1e-13); rma.mv: metafor's defaults (the tests build M from the sigma2 written here)",
  datasets = datasets, uni = uni, mv = mv, robu = robus)
writeLines(to_json(out), "tests/reference/robust_reference.json")
hexdir <- Sys.getenv("KETAMETA_HEX_LOG")
if (nzchar(hexdir)) writeLines(json_hex(out), file.path(hexdir, "robust_reference.hex"))
cat("wrote tests/reference/robust_reference.json:", length(uni), "rma.uni fits,", length(mv),
    "rma.mv fits,", length(robus), "robu fits\n")
