# Regenerates tests/reference/robust_target_reference.json: clubSandwich's CR2 with a target
# (working model) other than the model's, its saddlepoint t tests, and robumeta's user weights:
#   - target: vcovCR(fit, cluster, type, target = ...) for rma.uni fits (target = vi, target = 1)
#     and an rma.mv fit with a vcalc V (target = V, target = vi); coef_test (Satterthwaite and
#     saddlepoint), Wald_test (HTZ);
#   - saddlepoint: coef_test(test = "saddlepoint") with the model as target (rma.uni, rma.mv);
#   - robu(..., userweights = w) (small = TRUE and FALSE) on robumeta's corrdat and hierdat and
#     on Konstantopoulos (2011), with clubSandwich's vcovCR of the same fit.
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_robust_target_reference.R
#
# Schema:
#   datasets: {id: {source, yi, vi, cluster, columns: {name: values}}}
#   club: [{id, dataset, model: "rma.uni" | "rma.mv", formula, method, random?, V?: "vcalc rho=0.6",
#           tau2 | sigma2, coef, target: "model" | "vi" | "one" | "V", types: {CR0 | CR1 | CR2: {vcov,
#           se, tstat, df_satt, p_satt, saddlepoint, p_saddle, wald: {btt: {constraints (1-based),
#           Fstat, delta, df_num, df_denom, p_val}}}}}]
#   robu: [{id, dataset, formula, weights (userweights, input order), small, coef, se, t, dfs, prob,
#           ci_l, ci_u, vcov, club_CR2: {df_satt}}]
# Note: clubSandwich solves the saddlepoint with uniroot's default tolerance (about 1e-4), so its
# saddlepoints and p-values are accurate to about 1e-5 only.
suppressMessages({library(metafor); library(metadat); library(clubSandwich); library(robumeta)})
source("validation/metafor/json_exact.R")
num <- function(x) as.numeric(x)
CTRL <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)

datasets <- list()
add_data <- function(id, source, yi, vi, cluster, columns = list()) {
  datasets[[id]] <<- list(source = source, yi = arr(num(yi)), vi = arr(num(vi)), cluster = arr(cluster),
                          columns = lapply(columns, function(x) arr(if (is.character(x)) x else num(x))))
}
kon <- dat.konstantopoulos2011
add_data("konstantopoulos2011", "metadat::dat.konstantopoulos2011 (cluster = district)", kon$yi, kon$vi,
         num(kon$district), list(year_c = kon$year - 1985, school = kon$school))
asn <- dat.assink2016
add_data("assink2016", "metadat::dat.assink2016 (cluster = study)", asn$yi, asn$vi, num(asn$study),
         list(esid = asn$esid, deltype = asn$deltype, year = asn$year))
data(corrdat); data(hierdat)
add_data("corrdat", "robumeta::corrdat (cluster = studyid)", corrdat$effectsize, corrdat$var,
         num(corrdat$studyid), list(males = corrdat$males, college = corrdat$college, binge = corrdat$binge))
add_data("hierdat", "robumeta::hierdat (cluster = studyid)", hierdat$effectsize, hierdat$var,
         num(hierdat$studyid), list(binge = hierdat$binge, followup = hierdat$followup,
                                    sreport = hierdat$sreport, age = hierdat$age))

club_types <- function(fit, cluster, target, p, btt) {
  out <- list()
  for (type in c("CR0", "CR1", "CR2")) {
    V <- if (is.null(target)) vcovCR(fit, cluster = cluster, type = type)
         else vcovCR(fit, cluster = cluster, type = type, target = target)
    ct <- coef_test(fit, vcov = V, test = c("Satterthwaite", "saddlepoint"))
    wald <- setNames(list(), character(0))
    if (length(btt)) {
      wt <- Wald_test(fit, constraints = constrain_zero(btt), vcov = V, test = "HTZ")
      wald$btt <- list(constraints = arr(btt), Fstat = num(wt$Fstat), delta = num(wt$delta),
                       df_num = num(wt$df_num), df_denom = num(wt$df_denom), p_val = num(wt$p_val))
    }
    out[[type]] <- list(vcov = matrix(num(V), nrow(V)), se = arr(num(ct$SE)), tstat = arr(num(ct$tstat)),
                        df_satt = arr(num(ct$df_Satt)), p_satt = arr(num(ct$p_Satt)),
                        saddlepoint = arr(num(ct$saddlepoint)), p_saddle = arr(num(ct$p_saddle)), wald = wald)
  }
  out
}

CLUB <- list()
add_uni <- function(dataset, formula, method, target_name) {
  d <- datasets[[dataset]]
  dd <- data.frame(yi = num(d$yi), vi = num(d$vi), cluster = num(d$cluster))
  for (nm in names(d$columns)) dd[[nm]] <- as.vector(unclass(d$columns[[nm]]))
  fit <- rma(as.formula(paste("yi", formula)), vi, data = dd, method = method, control = CTRL)
  target <- switch(target_name, model = NULL, vi = dd$vi, one = rep(1, nrow(dd)))
  btt <- if (fit$p > 1) 2:fit$p else integer(0)
  CLUB[[length(CLUB) + 1]] <<- list(
    id = sprintf("%s rma.uni %s %s target=%s", dataset, formula, method, target_name), dataset = dataset,
    model = "rma.uni", formula = formula, method = method, tau2 = num(fit$tau2), coef = arr(num(fit$beta)),
    target = target_name, types = club_types(fit, dd$cluster, target, fit$p, btt))
}
for (tg in c("model", "vi", "one")) {
  add_uni("konstantopoulos2011", "~ year_c", "REML", tg)
  add_uni("corrdat", "~ males + college", "DL", tg)
}
add_uni("konstantopoulos2011", "~ 1", "REML", "vi")

# rma.mv with a vcalc V; sigma2 written for the tests to fix
Va <- vcalc(vi, cluster = study, obs = esid, data = asn, rho = 0.6)
add_mv <- function(formula, target_name) {
  fit <- rma.mv(as.formula(paste("yi", formula)), Va, random = ~ 1 | study/esid, data = asn)
  target <- switch(target_name, model = NULL, vi = asn$vi, V = Va)
  btt <- if (fit$p > 1) 2:fit$p else integer(0)
  CLUB[[length(CLUB) + 1]] <<- list(
    id = sprintf("assink2016 rma.mv %s target=%s", formula, target_name), dataset = "assink2016",
    model = "rma.mv", formula = formula, method = "REML", random = "~ 1 | cluster/esid",
    V = "vcalc(vi, cluster, obs = esid, rho = 0.6)", sigma2 = arr(num(fit$sigma2)),
    coef = arr(num(fit$beta)), target = target_name, types = club_types(fit, asn$study, target, fit$p, btt))
}
for (tg in c("model", "vi", "V")) add_mv("~ deltype", tg)

# robumeta user weights
ROBU <- list()
add_robu <- function(id, dataset, data, formula, w, small) {
  data$uw <- w
  fit <- robu(as.formula(paste("effectsize", formula)), data = data, studynum = studyid,
              var.eff.size = var, userweights = uw, small = small)
  ord <- order(order(fit$study_orig_id))
  tab <- fit$reg_table
  cl2 <- if (small) {
    V <- vcovCR(fit, type = "CR2")
    list(se = arr(num(sqrt(diag(V)))), df_satt = arr(num(coef_test(fit, vcov = V)$df_Satt)))
  } else NULL
  ROBU[[length(ROBU) + 1]] <<- list(
    id = id, dataset = dataset, formula = formula, weights = arr(num(w)), small = small,
    coef = arr(num(tab$b.r)), se = arr(num(tab$SE)), t = arr(num(tab$t)), dfs = arr(num(tab$dfs)),
    prob = arr(num(tab$prob)), ci_l = arr(num(tab$CI.L)), ci_u = arr(num(tab$CI.U)),
    vcov = unname(as.matrix(fit$VR.r)), club_CR2 = cl2)
}
kd <- data.frame(effectsize = kon$yi, var = kon$vi, studyid = kon$district, year_c = kon$year - 1985)
kw <- 1 / (kon$vi + 0.05) * (1 + kon$school %% 3)
for (small in c(TRUE, FALSE)) {
  add_robu(sprintf("konstantopoulos2011 ~ year_c small=%s", small), "konstantopoulos2011", kd,
           "~ year_c", kw, small)
  add_robu(sprintf("corrdat ~ males + college + binge 1/var small=%s", small), "corrdat", corrdat,
           "~ males + college + binge", 1 / corrdat$var, small)
  add_robu(sprintf("hierdat ~ binge + followup unit small=%s", small), "hierdat", hierdat,
           "~ binge + followup", rep(1, nrow(hierdat)), small)
}
add_robu("corrdat ~ 1 sqrt-weights small=TRUE", "corrdat", corrdat, "~ 1", sqrt(1 / corrdat$var), TRUE)

out <- list(
  generated_by = "validation/metafor/make_robust_target_reference.R",
  metafor_version = as.character(packageVersion("metafor")),
  clubSandwich_version = as.character(packageVersion("clubSandwich")),
  robumeta_version = as.character(packageVersion("robumeta")),
  R_version = R.version.string,
  datasets = datasets, club = CLUB, robu = ROBU)
writeLines(to_json(out), "tests/reference/robust_target_reference.json")
cat("wrote tests/reference/robust_target_reference.json:", length(CLUB), "clubSandwich fits,",
    length(ROBU), "robu fits\n")
