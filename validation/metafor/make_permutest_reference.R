# Regenerates tests/reference/metafor_permutest.json: metafor's permutest() (exact permutation
# tests on small datasets, and a few random-permutation tests with a seed). The schema and the
# definition of metafor's permutation p-values are in tests/reference/README_metareg.md.
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_permutest_reference.R
# With KETAMETA_HEX_LOG=DIR it also writes DIR/metafor_permutest.hex (sprintf("%a") of every number),
# which validation/metafor/check_json_roundtrip.py compares with the JSON bit for bit.
suppressMessages({library(metafor)})
source("validation/metafor/json_exact.R")

CTRL <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)
CTRL_STR <- "list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)"
COMPTOL <- .Machine$double.eps^0.5  # permutest's default control$comptol
num <- function(x) as.numeric(x)
MAX_DIST <- 256  # permutation distributions are stored for exact tests with at most this many

datasets <- list()
add <- function(id, source, data, formula) {
  datasets[[id]] <<- list(id = id, source = source, data = data, formula = formula)
}

# Hine et al. (1989), risk differences, k = 6 (used in metafor's own permutest tests)
hine <- escalc(measure = "RD", n1i = n1i, n2i = n2i, ai = ai, ci = ci, data = dat.hine1989)
hine_d <- data.frame(yi = num(hine$yi), vi = num(hine$vi), mod = c(3, 1, 2, 2, 4, 5))
add("hine1989", 'dat.hine1989, escalc(measure="RD")', hine_d, NULL)
add("hine1989 ~ mod", 'dat.hine1989, escalc(measure="RD"), with the made-up moderator mod = c(3,1,2,2,4,5) (tied rows)',
    hine_d, "~ mod")

# Follmann & Proschan (1999), Table 1, k = 8, Peto log odds ratios
fp <- read.table(header = TRUE, text = "
ai n1i ci n2i
173 5331 210 5296
157 1906 193 1900
131 4541 121 4516
56 2051 84 2030
52 424 65 422
36 1149 42 1129
62 6582 20 1663
2 88 2 30")
fp <- escalc(measure = "PETO", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = fp)
add("follmann1999", 'Follmann & Proschan (1999), Table 1, escalc(measure="PETO")',
    data.frame(yi = num(fp$yi), vi = num(fp$vi)), NULL)

set.seed(31337)
k <- 6
add("sim k=6 ~ x", "simulated (seed 31337), k = 6, continuous moderator without ties",
    data.frame(yi = rnorm(k, 0.2, 0.4), vi = runif(k, 0.02, 0.2), x = round(rnorm(k), 3)), "~ x")
k <- 7
x <- round(rnorm(k), 3)
add("sim k=7 ~ x", "simulated (seed 31337), k = 7, continuous moderator without ties",
    data.frame(yi = 0.3 * x + rnorm(k, 0, 0.4), vi = runif(k, 0.02, 0.2), x = x), "~ x")
k <- 7
add("sim k=7 ~ x1 + x2", "simulated (seed 31337), k = 7, two continuous moderators",
    data.frame(yi = rnorm(k, 0.2, 0.4), vi = runif(k, 0.02, 0.2), x1 = round(rnorm(k), 3),
               x2 = round(runif(k, 0, 10), 2)), "~ x1 + x2")
k <- 8
g <- sample(rep(c("a", "b"), 4))
add("sim k=8 ~ g (2 levels)", "simulated (seed 31337), k = 8, factor with 2 levels of 4 studies",
    data.frame(yi = rnorm(k, ifelse(g == "b", 0.5, 0), 0.3), vi = runif(k, 0.02, 0.2), g = g,
               stringsAsFactors = FALSE), "~ g")
k <- 8
g <- sample(rep(c("a", "b", "c"), c(3, 3, 2)))
add("sim k=8 ~ g (3 levels)", "simulated (seed 31337), k = 8, factor with 3 levels of 3/3/2 studies",
    data.frame(yi = rnorm(k, c(a = 0, b = 0.3, c = 0.6)[g], 0.3), vi = runif(k, 0.02, 0.2), g = g,
               stringsAsFactors = FALSE), "~ g")
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg_d <- data.frame(yi = num(bcg$yi), vi = num(bcg$vi), ablat = bcg$ablat, year = bcg$year)
add("bcg[1:8] ~ ablat", 'dat.bcg rows 1-8, escalc(measure="RR"); ablat has two tied pairs',
    bcg_d[1:8, ], "~ ablat")
add("bcg", 'dat.bcg, escalc(measure="RR")', bcg_d, NULL)
add("bcg ~ ablat", 'dat.bcg, escalc(measure="RR")', bcg_d, "~ ablat")
add("bcg ~ ablat + year", 'dat.bcg, escalc(measure="RR")', bcg_d, "~ ablat + year")

# (dataset, method, test, exact, iter, seed)
runs <- list()
run <- function(ds, method, test, exact = TRUE, iter = NULL, seed = NULL)
  runs[[length(runs) + 1]] <<- list(ds = ds, method = method, test = test, exact = exact, iter = iter, seed = seed)
for (mt in list(c("REML", "z"), c("REML", "knha"), c("DL", "z"), c("DL", "knha"), c("EE", "z")))
  run("hine1989", mt[1], mt[2])
for (mt in list(c("REML", "z"), c("REML", "knha"), c("DL", "z"), c("DL", "knha")))
  run("follmann1999", mt[1], mt[2])
six <- list(c("REML", "z"), c("REML", "knha"), c("DL", "z"), c("DL", "knha"), c("EE", "z"), c("EE", "knha"))
for (ds in c("hine1989 ~ mod", "sim k=6 ~ x", "sim k=7 ~ x", "sim k=8 ~ g (2 levels)", "sim k=8 ~ g (3 levels)"))
  for (mt in six) run(ds, mt[1], mt[2])
for (mt in list(c("REML", "z"), c("REML", "knha"))) run("sim k=7 ~ x1 + x2", mt[1], mt[2])
run("bcg[1:8] ~ ablat", "REML", "z")
run("bcg", "REML", "knha", exact = FALSE, iter = 5000, seed = 1234)
run("bcg ~ ablat", "REML", "z", exact = FALSE, iter = 5000, seed = 1234)
run("bcg ~ ablat + year", "DL", "knha", exact = FALSE, iter = 5000, seed = 4321)

results <- lapply(runs, function(rn) {
  ds <- datasets[[rn$ds]]
  message(rn$ds, " ", rn$method, " ", rn$test)
  dat <- ds$data
  res <- if (is.null(ds$formula)) {
    rma(yi, vi, data = dat, method = rn$method, test = rn$test, control = CTRL)
  } else {
    rma(yi, vi, mods = as.formula(ds$formula), data = dat, method = rn$method, test = rn$test, control = CTRL)
  }
  fit_call <- sprintf('rma(yi, vi, %sdata = dat, method = "%s", test = "%s", control = %s)',
                      if (is.null(ds$formula)) "" else paste0("mods = ", ds$formula, ", "),
                      rn$method, rn$test, CTRL_STR)
  if (rn$exact) {
    pt <- suppressWarnings(permutest(res, exact = TRUE, progbar = FALSE))
    perm_call <- "permutest(res, exact = TRUE, progbar = FALSE)"
  } else {
    set.seed(rn$seed)
    pt <- suppressWarnings(permutest(res, iter = rn$iter, progbar = FALSE))
    perm_call <- sprintf("set.seed(%d); permutest(res, iter = %d, progbar = FALSE)", rn$seed, rn$iter)
  }
  zp <- as.matrix(pt$zval.perm)
  n_valid <- sum(!is.na(pt$QM.perm))
  # the numerators of metafor's p-values, recomputed from the permutation distribution
  count_ge <- vapply(seq_len(ncol(zp)), function(j)
    sum(abs(zp[, j]) >= abs(res$zval[j]) - COMPTOL, na.rm = TRUE), 0)
  qm_count <- sum(pt$QM.perm >= res$QM - COMPTOL, na.rm = TRUE)
  stopifnot(isTRUE(all.equal(num(pt$pval), count_ge / n_valid, tolerance = 0)),
            isTRUE(all.equal(pt$QMp, qm_count / n_valid, tolerance = 0)))
  rec <- list(
    dataset = rn$ds, method = rn$method, test = rn$test,
    fit_call = fit_call, permutest_call = perm_call,
    exact = rn$exact, iter = rn$iter, seed = rn$seed,
    intercept_only = res$int.only,
    exact_iter = pt$exact.iter,
    n_permutations = length(pt$QM.perm), n_failed = sum(is.na(pt$QM.perm)),
    coef_names = arr(rownames(res$beta)),
    b = arr(num(res$beta)), se = arr(num(res$se)), zval = arr(num(res$zval)),
    pval_model = arr(num(res$pval)), QM = res$QM, QMdf = arr(num(res$QMdf)), QMp_model = res$QMp,
    tau2 = res$tau2, btt = arr(res$btt),
    pval = arr(num(pt$pval)), QMp = pt$QMp,
    count_ge = arr(count_ge), QM_count_ge = qm_count)
  if (rn$exact && length(pt$QM.perm) <= MAX_DIST) {
    rec$QM_perm_sorted <- arr(sort(pt$QM.perm, na.last = TRUE))
    rec$abs_zval_perm_sorted <- lapply(seq_len(ncol(zp)), function(j) arr(sort(abs(zp[, j]), na.last = TRUE)))
  }
  rec
})

data_out <- lapply(datasets, function(ds) {
  X <- if (is.null(ds$formula)) NULL else model.matrix(as.formula(ds$formula), data = ds$data)
  list(id = ds$id, source = ds$source, formula = ds$formula,
       yi = arr(num(ds$data$yi)), vi = arr(num(ds$data$vi)),
       moderators = lapply(ds$data[setdiff(names(ds$data), c("yi", "vi"))], arr),
       X = if (is.null(X)) NULL else unname(X),
       X_colnames = if (is.null(X)) NULL else arr(sub("(Intercept)", "intrcpt", colnames(X), fixed = TRUE)))
})
names(data_out) <- NULL

out <- list(
  generated_by = "validation/metafor/make_permutest_reference.R",
  metafor_version = as.character(packageVersion("metafor")),
  r_version = R.version.string,
  control = CTRL, comptol = COMPTOL,
  schema = "tests/reference/README_metareg.md",
  datasets = data_out,
  permutests = results)
txt <- to_json(out)
writeLines(txt, "tests/reference/metafor_permutest.json")
hexdir <- Sys.getenv("KETAMETA_HEX_LOG")
if (nzchar(hexdir)) writeLines(json_hex(out), file.path(hexdir, "metafor_permutest.hex"))
message(sprintf("wrote %d permutests, %.2f MB", length(results), nchar(txt) / 2^20))
