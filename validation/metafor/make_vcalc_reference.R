# Regenerates tests/reference/metafor_vcalc.json: metafor's vcalc() with time points (time1,
# time2 with phi: autocorrelated and within-subject contrasts), shared groups with sizes, and
# correlation matrices given as rho (for obs, for type, and the within/between pair with both),
# on published data (metadat: dat.ishak2007 in long format, dat.knapp2017 with the correlation
# matrix of metafor's ?vcalc example, dat.kalaian1996) and on seeded generated clusters.
# Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_vcalc_reference.R
#
# Schema:
#   cases: [{id, source, data: {column: values}, args: {argument: column name}, phi?,
#            rho?: number | {labels, matrix} | [within, between] (each number or matrix),
#            V: k x k matrix (rows)}]
# Label columns are written as strings; a matrix's labels are its row (= column) names.
suppressMessages({library(metafor); library(metadat)})
source("validation/metafor/json_exact.R")
quiet <- function(expr) suppressWarnings(suppressMessages(expr))

CASES <- list()
rho_json <- function(r) {
  if (is.null(r)) return(NULL)
  if (is.list(r)) return(lapply(r, rho_json))
  if (is.matrix(r)) return(list(labels = arr(rownames(r)), matrix = unname(r)))
  r
}
# args: named character vector argument -> column of d
add_case <- function(id, source, d, args, rho = NULL, phi = NULL) {
  call_args <- lapply(args, function(col) d[[col]])
  call_args$rho <- rho
  call_args$phi <- phi
  V <- quiet(do.call(vcalc, call_args))
  cols <- unique(unname(args))
  data <- lapply(setNames(cols, cols), function(col) {
    x <- d[[col]]
    if (is.character(x) || is.factor(x)) arr(as.character(x)) else arr(as.numeric(x))
  })
  CASES[[length(CASES) + 1]] <<- list(id = id, source = source, data = data, args = as.list(args),
                                      rho = rho_json(rho), phi = phi, V = unname(as.matrix(V)))
}

# ---- hand-made designs ---------------------------------------------------------------------
d1 <- data.frame(vi = c(0.10, 0.20, 0.30, 0.12, 0.25, 0.40, 0.15, 0.22, 0.18),
                 cl = c(1, 1, 1, 2, 2, 2, 3, 3, 3),
                 t = c(1, 2, 4, 0, 1, 3, 1, 1, 2), t2 = c(0, 0, 0, 0, 0, 1, 1, 0, 0),
                 g1 = c("A", "A", "A", "A", "B", "A", "T1", "T2", "T1"),
                 g2 = c("A", "A", "A", "C", "C", "A", "C", "C", "C"),
                 w1 = c(20, 18, 15, 30, 25, 28, 12, 14, 11), w2 = c(20, 20, 20, 40, 40, 30, 16, 16, 15),
                 obs = c("x", "y", "x", "x", "y", "z", "x", "x", "y"),
                 type = c(1, 1, 2, 1, 2, 2, 1, 2, 2),
                 h1 = c("T1", "T2", "T3", "T1", "T2", "T1", "T1", "T2", "T1"),
                 h2 = c("C", "C", "C", "C", "C", "T2", "C", "C", "C"))
for (phi in c(0.9, 0.5, 0, -0.6)) {
  add_case(sprintf("time1 phi %g", phi), "hand-made", d1, c(vi = "vi", cluster = "cl", time1 = "t"),
           phi = phi)
}
add_case("time1 non-integer", "hand-made", transform(d1, t = t * 0.7),
         c(vi = "vi", cluster = "cl", time1 = "t"), phi = 0.8)
add_case("within-subject time2", "hand-made", d1,
         c(vi = "vi", cluster = "cl", grp1 = "g1", grp2 = "g2", time1 = "t", time2 = "t2"), phi = 0.7)
add_case("within-subject time2 weights", "hand-made", d1,
         c(vi = "vi", cluster = "cl", grp1 = "g1", grp2 = "g2", time1 = "t", time2 = "t2",
           w1 = "w1", w2 = "w2"), phi = 0.6)
add_case("groups time1 only", "hand-made", d1,
         c(vi = "vi", cluster = "cl", grp1 = "h1", grp2 = "h2", time1 = "t", w1 = "w1", w2 = "w2"),
         phi = 0.8)
add_case("time2 + obs", "hand-made", d1,
         c(vi = "vi", cluster = "cl", grp1 = "g1", grp2 = "g2", time1 = "t", time2 = "t2", obs = "obs"),
         rho = 0.5, phi = 0.7)
add_case("time2 + type + obs", "hand-made", d1,
         c(vi = "vi", cluster = "cl", grp1 = "g1", grp2 = "g2", time1 = "t", time2 = "t2",
           obs = "obs", type = "type"), rho = c(0.6, 0.3), phi = 0.7)
Robs <- matrix(c(1, 0.6, 0.2, 0.6, 1, 0.4, 0.2, 0.4, 1), 3, dimnames = list(c("x", "y", "z"), c("x", "y", "z")))
Rtype <- matrix(c(1, 0.35, 0.35, 1), 2, dimnames = list(c("1", "2"), c("1", "2")))
add_case("rho matrix obs", "hand-made", d1, c(vi = "vi", cluster = "cl", obs = "obs"), rho = Robs)
add_case("rho matrix type", "hand-made", d1, c(vi = "vi", cluster = "cl", type = "type"), rho = Rtype)
add_case("rho matrix obs + time1", "hand-made", d1, c(vi = "vi", cluster = "cl", obs = "obs", time1 = "t"),
         rho = Robs, phi = 0.9)
add_case("rho list matrix, number", "hand-made", d1, c(vi = "vi", cluster = "cl", obs = "obs", type = "type"),
         rho = list(Robs, 0.25))
add_case("rho list number, matrix", "hand-made", d1, c(vi = "vi", cluster = "cl", obs = "obs", type = "type"),
         rho = list(0.7, Rtype))
add_case("rho list matrix, matrix + groups", "hand-made", d1,
         c(vi = "vi", cluster = "cl", obs = "obs", type = "type", grp1 = "h1", grp2 = "h2",
           w1 = "w1", w2 = "w2"), rho = list(Robs, Rtype))

# ---- published data ------------------------------------------------------------------------
ish <- dat.ishak2007
ish <- reshape(ish, direction = "long", idvar = "study", v.names = c("yi", "vi"),
               varying = list(c(2, 4, 6, 8), c(3, 5, 7, 9)))
ish <- ish[order(ish$study, ish$time), ]
ish <- ish[!is.na(ish$yi), ]
add_case("ishak2007 AR(1) phi 0.97", "metadat::dat.ishak2007 in long format (?vcalc example)", ish,
         c(vi = "vi", cluster = "study", time1 = "time"), phi = 0.97)
kn <- dat.knapp2017
kn$task.diff <- unlist(lapply(split(kn, kn$study), function(x) {
  task.int <- as.integer(factor(x$task))
  diff.int <- as.integer(factor(x$difficulty))
  diff.int[is.na(diff.int)] <- 1
  paste0(task.int, ".", diff.int)}))
R <- matrix(0.4, nrow = 8, ncol = 8)
R[5:8, 1:4] <- R[1:4, 5:8] <- 0.28
diag(R[1:4, 5:8]) <- 0.7
diag(R[5:8, 1:4]) <- 0.7
diag(R) <- 1
rownames(R) <- colnames(R) <- paste0(rep(1:2, each = 4), ".", 1:4)
add_case("knapp2017 groups + rho matrix", "metadat::dat.knapp2017 (?vcalc example)", kn,
         c(vi = "vi", cluster = "study", grp1 = "group1", grp2 = "group2", w1 = "n_sz", w2 = "n_hc",
           obs = "task.diff"), rho = R)
add_case("kalaian1996 type", "metadat::dat.kalaian1996 (?vcalc example)", dat.kalaian1996,
         c(vi = "vi", cluster = "study", type = "outcome"), rho = 0.66)

# ---- generated -----------------------------------------------------------------------------
set.seed(20261207)
for (rep in 1:6) {
  m <- 8
  sizes <- sample(1:6, m, replace = TRUE)
  k <- sum(sizes)
  g <- data.frame(vi = round(runif(k, 0.02, 0.5), 3), cl = rep(seq_len(m), sizes))
  g$t1 <- sample(0:4, k, replace = TRUE)
  g$t2 <- sample(0:2, k, replace = TRUE)
  g$g1 <- sample(c("a", "b", "c"), k, replace = TRUE)
  g$g2 <- sample(c("c", "d"), k, replace = TRUE)
  g$g2[g$g1 == "c" & g$t1 == g$t2] <- "d"
  g$w1 <- sample(10:60, k, replace = TRUE)
  g$w2 <- sample(10:60, k, replace = TRUE)
  g$obs <- sample(c("o1", "o2", "o3"), k, replace = TRUE)
  g$type <- sample(c("u", "v"), k, replace = TRUE)
  L <- matrix(runif(9, -0.5, 1), 3)
  S <- crossprod(L) + diag(0.3, 3)
  Ro <- cov2cor(S)
  dimnames(Ro) <- list(c("o1", "o2", "o3"), c("o1", "o2", "o3"))
  phi <- round(runif(1, -0.9, 0.95), 2)
  args <- c(vi = "vi", cluster = "cl", time1 = "t1", time2 = "t2", grp1 = "g1", grp2 = "g2",
            w1 = "w1", w2 = "w2", obs = "obs", type = "type")
  add_case(sprintf("generated %d", rep), "seeded simulation (set.seed(20261207))", g, args,
           rho = list(Ro, round(runif(1, 0, 0.6), 2)), phi = phi)
}

out <- list(
  generated_by = "validation/metafor/make_vcalc_reference.R",
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  R_version = R.version.string,
  cases = CASES)
writeLines(to_json(out), "tests/reference/metafor_vcalc.json")
cat("wrote tests/reference/metafor_vcalc.json with", length(CASES), "cases\n")
