# Regenerates tests/reference/metafor_modelmatrix.json: the design matrices metafor builds
# from `mods` (res$X, its column names, which studies it keeps, which columns it drops as
# redundant and the warnings it gives), and R's full model.matrix (na.action = na.pass)
# before metafor removes anything. Not run in CI: the JSON is committed. Usage, from the
# repository root:
#   Rscript validation/metafor/make_modelmatrix_reference.R
# Strings are sorted in the C locale (R's factor levels follow the collation of the
# locale; ketameta sorts by code point, which is the C locale's order).
invisible(Sys.setlocale("LC_COLLATE", "C"))
suppressMessages({library(metafor); library(jsonlite)})
set.seed(1313)

# --- data -------------------------------------------------------------------------------
bcg <- escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
bcg <- data.frame(year=bcg$year, ablat=bcg$ablat, alloc=bcg$alloc, yi=as.numeric(bcg$yi),
                  vi=as.numeric(bcg$vi))
bcg$one <- 1
bcg$z <- 0
bcg$c5 <- 5
bcg$ablat1 <- bcg$ablat + 1
bcg$near <- bcg$ablat + 1e-9 * rnorm(13)  # collinear with ablat within lm's tol (1e-7)

k <- 12
syn <- data.frame(
  x = round(rnorm(k, 10, 3), 2),
  z = round(runif(k, 0, 5), 2),
  g = c("a", "b", "c", "a", "c", "b", "b", "a", "c", "c", "a", "b"),
  h = c("u", "v", "v", "u", "u", "v", "u", "v", "u", "v", "v", "u"),
  h2 = c(rep(c("p", "q"), 5), "w", "p"),  # level "w" only in study 10, whose yi is NA
  f = factor(c("lo", "mid", "hi", "hi", "lo", "mid", "mid", "lo", "hi", "lo", "hi", "mid"),
             levels=c("mid", "lo", "hi", "unused")),
  b = c(TRUE, FALSE, TRUE, TRUE, FALSE, FALSE, TRUE, FALSE, TRUE, FALSE, FALSE, TRUE),
  n = as.integer(c(1, 2, 3, 2, 1, 3, 2, 2, 1, 3, 1, 2)),
  stringsAsFactors = FALSE)
syn$x[3] <- NA
syn$g[5] <- NA
syn$b[7] <- NA
syn$vi <- round(runif(k, 0.01, 0.2), 4)
syn$yi <- round(rnorm(k, 0.2 + 0.05 * syn$z, sqrt(syn$vi + 0.05)), 4)
syn$yi[11] <- NA
datasets <- list(bcg=bcg, syn=syn)

column_json <- function(v) {
  if (is.factor(v)) return(list(type="factor", levels=levels(v), values=as.character(v)))
  if (is.logical(v)) return(list(type="logical", values=v))
  if (is.character(v)) return(list(type="character", values=v))
  if (is.integer(v)) return(list(type="integer", values=v))
  list(type="double", values=v)
}

# --- cases ------------------------------------------------------------------------------
# R's mods (as text), the dataset, intercept= (for matrices), and the equivalent ketameta
# inputs: py_formula (formula strings), py_columns (a mapping of these columns),
# py_array (an unnamed array of these columns; 1 column given as a vector)
cases <- list()
add <- function(id, data, mods, intercept=TRUE, py_formula=NULL, py_columns=NULL,
                py_array=NULL, note="") {
  cases[[length(cases) + 1]] <<- list(id=id, data=data, mods=mods, intercept=intercept,
                                      py_formula=py_formula, py_columns=py_columns,
                                      py_array=py_array, note=note)
}
add("ablat", "bcg", "~ ablat", py_formula="~ ablat", py_columns="ablat")
add("vector", "bcg", "ablat", py_array="ablat", note="a vector: metafor names it mods")
add("matrix", "bcg", "unname(cbind(ablat, year))", py_array=c("ablat", "year"),
    note="an unnamed matrix: metafor names the columns .1, .2 (py_array: unnamed)")
add("cbind-named", "bcg", "cbind(ablat, year)", py_columns=c("ablat", "year"))
add("factor", "bcg", "~ ablat + factor(alloc)",
    py_formula=c("~ ablat + C(alloc)", "~ ablat + factor(alloc)"))
add("character", "bcg", "~ alloc", py_formula="~ alloc", py_columns="alloc")
add("interaction", "bcg", "~ ablat * year", py_formula="~ ablat * year")
add("no-intercept", "bcg", "~ 0 + alloc", py_formula=c("~ 0 + alloc", "~ alloc - 1"))
add("no-intercept-2", "bcg", "~ 0 + alloc + ablat", py_formula="~ 0 + alloc + ablat")
add("I-shift", "bcg", "~ I(year - 1950)", py_formula="~ I(year - 1950)")
add("I-power", "bcg", "~ I(year^2)", py_formula="~ I(year**2)")
add("log", "bcg", "~ log(ablat)", py_formula=c("~ np.log(ablat)", "~ log(ablat)"))
add("I-misc", "bcg", "~ I(ablat/10) + exp(ablat/100) + sqrt(ablat) + I(ablat %% 7)",
    py_formula="~ I(ablat/10) + np.exp(ablat/100) + np.sqrt(ablat) + I(ablat % 7)")
add("I-logical", "bcg", "~ I(ablat > 30)", py_formula="~ I(ablat > 30)")
add("I-logical-0", "bcg", "~ 0 + I(ablat > 30)", py_formula="~ 0 + I(ablat > 30)")
add("factor-numeric", "bcg", "~ factor(year)", py_formula="~ C(year)")
add("char-by-num", "bcg", "~ alloc:ablat", py_formula="~ alloc:ablat")
add("char-times-num", "bcg", "~ alloc * ablat", py_formula="~ alloc * ablat")
add("poly", "bcg", "~ poly(ablat, 2)", py_formula="~ poly(ablat, 2)",
    note="orthogonal polynomials: formulaic's agree with R's")
add("poly-raw", "bcg", "~ poly(ablat, 2, raw=TRUE)", py_formula="~ poly(ablat, 2, raw=True)")
add("collinear", "bcg", "~ ablat + I(2*ablat) + year", py_formula="~ ablat + I(2*ablat) + year",
    note="the later of two collinear columns is dropped")
add("collinear-3", "bcg", "~ ablat + I(-ablat) + I((ablat + 1) * 2) + year",
    py_formula="~ ablat + I(-ablat) + I((ablat + 1) * 2) + year")
add("near-collinear", "bcg", "cbind(ablat, near)", py_columns=c("ablat", "near"),
    note="near = ablat + 1e-9 noise: redundant within lm's tol = 1e-7")
add("constant", "bcg", "~ ablat + c5", py_formula="~ ablat + c5", py_columns=c("ablat", "c5"),
    note="a constant column beside the intercept is dropped as redundant")
add("zero-column", "bcg", "cbind(ablat, z)", py_columns=c("ablat", "z"))
add("ones-no-intercept", "bcg", "cbind(ablat, one)", intercept=FALSE,
    py_columns=c("ablat", "one"),
    note="a column of ones becomes the intercept, moved first and named intrcpt")
add("ones-no-intercept-array", "bcg", "unname(cbind(ablat, one))", intercept=FALSE,
    py_array=c("ablat", "one"))
add("one-column-matrix", "bcg", "cbind(ablat)", py_columns="ablat")
add("ones-redundant-first", "bcg", "cbind(ablat, ablat1, one)", intercept=FALSE,
    py_columns=c("ablat", "ablat1", "one"), note="redundancy is checked before the ones column is made the intercept")
add("ones-formula", "bcg", "~ ablat + one", py_formula="~ ablat + one")
add("ones-formula-0", "bcg", "~ 0 + ablat + one", py_formula="~ 0 + ablat + one")
add("matrix-no-intercept", "bcg", "cbind(ablat, year)", intercept=FALSE,
    py_columns=c("ablat", "year"))
add("matrix-no-intercept-array", "bcg", "unname(cbind(ablat, year))", intercept=FALSE,
    py_array=c("ablat", "year"))
add("constant-no-intercept", "bcg", "cbind(ablat, c5)", intercept=FALSE,
    py_columns=c("ablat", "c5"))
add("missing", "syn", "~ x + g", py_formula="~ x + g", py_columns=c("x", "g"))
add("columns", "syn", "~ x + g + b + f", py_formula="~ x + g + b + f",
    py_columns=c("x", "g", "b", "f"))
add("columns-0", "syn", "~ 0 + x + g + b + f", py_formula="~ 0 + x + g + b + f")
add("factor-levels", "syn", "~ f", py_formula="~ f", py_columns="f",
    note="a factor's level order is kept; its unused level gives a zero column, dropped")
add("logical", "syn", "~ b", py_formula="~ b", py_columns="b")
add("logical-0", "syn", "~ 0 + b", py_formula="~ 0 + b")
add("logical-by-num", "syn", "~ b:x", py_formula="~ b:x")
add("two-factors", "syn", "~ g * h", py_formula="~ g * h")
add("cells", "syn", "~ g:h", py_formula="~ g:h", note="rank-deficient: R codes both fully")
add("cells-0", "syn", "~ 0 + g:h", py_formula="~ 0 + g:h")
add("nested", "syn", "~ h + g:h", py_formula="~ h + g:h")
add("var-order-1", "syn", "~ x + g:x", py_formula="~ x + g:x")
add("var-order-2", "syn", "~ g:x + x", py_formula="~ g:x + x")
add("no-int-3", "syn", "~ 0 + x + g + h", py_formula="~ 0 + x + g + h")
add("no-int-slopes", "syn", "~ 0 + x:g + x:h", py_formula="~ 0 + x:g + x:h")
add("no-int-subset", "syn", "~ 0 + x + x:g", py_formula="~ 0 + x + x:g")
add("minus-main", "syn", "~ x * g - x", py_formula="~ x * g - x")
add("power", "syn", "~ (x + g + h)^2", py_formula=c("~ (x + g + h)^2", "~ (x + g + h)**2"))
add("nesting-slash", "syn", "~ g/x", py_formula="~ g/x")
add("three-way", "syn", "~ g:h:x + g", py_formula="~ g:h:x + g")
add("integer-factor", "syn", "~ factor(n) + z", py_formula="~ C(n) + z")
add("level-only-in-omitted", "syn", "~ z + h2", py_formula="~ z + h2",
    py_columns=c("z", "h2"),
    note="level w occurs only in a study omitted for its missing yi: an all-zero column")

# --- run --------------------------------------------------------------------------------
fit <- function(cs) {
  d <- datasets[[cs$data]]
  mods_expr <- parse(text=cs$mods)[[1]]
  formula_mods <- startsWith(cs$mods, "~")
  warns <- character(0)
  err <- NULL
  res <- tryCatch(withCallingHandlers(
    if (formula_mods) {
      rma(yi, vi, mods=as.formula(cs$mods), data=d, control=list(threshold=1e-10))
    } else {
      m <- eval(mods_expr, d)
      rma(d$yi, d$vi, mods=m, intercept=cs$intercept, control=list(threshold=1e-10))
    },
    warning=function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    }), error=function(e) { err <<- conditionMessage(e); NULL })
  # the full design before metafor removes studies or columns
  if (formula_mods) {
    f <- as.formula(cs$mods)
    mf <- model.frame(f, d, na.action=na.pass)
    full <- model.matrix(f, mf)
  } else {
    m <- eval(mods_expr, d)
    if (is.null(dim(m))) m <- cbind(mods=m)
    if (is.null(colnames(m))) colnames(m) <- paste0(".", seq_len(ncol(m)))
    full <- if (cs$intercept) cbind(intrcpt=1, m) else m
  }
  full_names <- colnames(full)
  full_names[full_names == "(Intercept)"] <- "intrcpt"
  rows_of <- function(m) unname(lapply(seq_len(nrow(m)), function(i) m[i, ]))
  base <- list(
    id=cs$id, data=cs$data, mods=cs$mods, intercept=cs$intercept,
    py_formula=cs$py_formula, py_columns=cs$py_columns, py_array=cs$py_array, note=cs$note,
    full_names=full_names, full_x=rows_of(full), warnings=warns)
  if (!is.null(err)) return(c(base, list(error=err)))
  dropped <- names(res$coef.na)[res$coef.na]
  dropped <- sub("^X", "", dropped)
  dropped[dropped == "(Intercept)"] <- "intrcpt"
  c(base, list(
    names=colnames(res$X), x=rows_of(res$X), rows=which(res$not.na) - 1, dropped=dropped,
    int_incl=res$int.incl))
}
out_cases <- lapply(cases, fit)

out <- list(
  generated_by="validation/metafor/make_modelmatrix_reference.R",
  metafor_version=as.character(packageVersion("metafor")),
  r_version=R.version.string,
  collate=Sys.getlocale("LC_COLLATE"),
  call=paste("rma(yi, vi, mods=, data=) -> res$X, colnames, not.na, coef.na, int.incl;",
             "model.matrix(f, model.frame(f, data, na.action=na.pass))"),
  data=lapply(datasets, function(d) lapply(d, column_json)),
  cases=out_cases)
write_json(out, "tests/reference/metafor_modelmatrix.json", digits=NA, auto_unbox=TRUE,
           pretty=FALSE, na="null", null="null")
cat("wrote", length(out_cases), "cases\n")
