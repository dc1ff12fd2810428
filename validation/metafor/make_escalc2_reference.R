# Regenerates tests/reference/metafor_escalc2.json: metafor's escalc() for the measures
# added in issue #14 -- PHI (vtype LS/CS/ST), YUQ, YUY, OR2DN, OR2DL (2x2 tables, with
# zero cells under every add/to/drop00 setting), UCOR (vtype LS/UB/AV), COR (vtype AV)
# and ARAW -- on public datasets (metadat) and on constructed inputs stored with the
# answers. Not run in CI: the JSON is committed. Usage, from the repository root:
#   Rscript validation/metafor/make_escalc2_reference.R
# (UCOR needs the gsl package, as metafor does.)
suppressMessages({library(metafor); library(jsonlite)})

cases <- list()
add_case <- function(measure, args, extra=list(), source) {
  e <- suppressWarnings(do.call(escalc, c(list(measure=measure), args, extra)))
  opts <- if (length(extra)) paste0(", ", paste(names(extra), sapply(extra, deparse), sep="=",
                                                collapse=", ")) else ""
  cases[[length(cases) + 1]] <<- list(
    measure=measure, inputs=args, options=extra, source=source,
    call=sprintf("escalc('%s', ...%s) [%s]", measure, opts, source),
    yi=as.numeric(e$yi), vi=as.numeric(e$vi))
}

# ---- 2x2 tables: constructed, with zero cells (one table is all-zero in a column) ----
tab <- list(ai=c(0, 3, 12, 5, 0, 20, 7, 1, 9, 0), bi=c(20, 17, 30, 0, 15, 80, 7, 40, 0, 0),
            ci=c(2, 0, 15, 6, 0, 30, 3, 4, 11, 6), di=c(18, 23, 28, 4, 20, 70, 11, 37, 0, 5))
for (m in c("PHI", "YUQ", "YUY", "OR2DN", "OR2DL")) {
  src <- "constructed tables with zero cells"
  add_case(m, tab, source=src)
  for (to in c("all", "if0all", "none")) add_case(m, tab, list(to=to), source=src)
  add_case(m, tab, list(drop00=TRUE), source=src)
  add_case(m, tab, list(add=0.25), source=src)
  add_case(m, tab, list(add=0.5, to="all"), source=src)
  add_case(m, tab, list(add=0), source=src)
}
for (vt in c("LS", "CS", "ST")) {
  add_case("PHI", tab, list(vtype=vt), source="constructed tables with zero cells")
  add_case("PHI", tab, list(vtype=vt, add=0.5), source="constructed tables with zero cells")
}
# (group totals must be positive in this form: the all-zero first row of table 10 is left out)
keep <- 1:9
tabn <- list(ai=tab$ai[keep], n1i=(tab$ai + tab$bi)[keep], ci=tab$ci[keep],
             n2i=(tab$ci + tab$di)[keep])
for (m in c("PHI", "YUQ", "YUY", "OR2DN", "OR2DL"))
  add_case(m, tabn, source="constructed tables given as ai, n1i, ci, n2i")

# a table with a missing cell
tabna <- list(ai=c(4, NA, 10), bi=c(16, 12, 30), ci=c(8, 6, 11), di=c(12, 14, 29))
for (m in c("PHI", "YUQ", "YUY", "OR2DN", "OR2DL")) add_case(m, tabna, source="missing cell")

# ---- dat.bourassa1996: handedness x eyedness, cross-sectional 2x2 tables ----
b <- dat.bourassa1996
bt <- list(ai=b$lh.le, bi=b$lh.re, ci=b$rh.le, di=b$rh.re)
for (m in c("YUQ", "YUY")) add_case(m, bt, source="dat.bourassa1996")
for (vt in c("CS", "ST")) add_case("PHI", bt, list(vtype=vt), source="dat.bourassa1996")

# ---- dat.gibson2002: the studies reporting 2x2 tables ----
g <- dat.gibson2002[!is.na(dat.gibson2002$ai), ]
gt <- list(ai=g$ai, n1i=g$n1i, ci=g$ci, n2i=g$n2i)
for (m in c("OR2DN", "OR2DL")) add_case(m, gt, source="dat.gibson2002")

# ---- correlations ----
mc <- dat.mcdaniel1994
mct <- list(ri=mc$ri, ni=mc$ni)
for (vt in c("LS", "UB", "AV")) add_case("UCOR", mct, list(vtype=vt), source="dat.mcdaniel1994")
add_case("COR", mct, list(vtype="AV"), source="dat.mcdaniel1994")
ml <- dat.molloy2014
mlt <- list(ri=ml$ri, ni=ml$ni)
for (vt in c("LS", "UB", "AV")) add_case("UCOR", mlt, list(vtype=vt), source="dat.molloy2014")
add_case("COR", mlt, list(vtype="AV"), source="dat.molloy2014")
corr <- list(ri=c(-0.5, 0, 0.2, 0.45, 0.9, 0.33, -0.1, 0.7, 1, -1, 0.99, -0.02),
             ni=c(10, 25, 40, 100, 15, 60, 200, 8, 12, 30, 7, 6))
# (metafor is off by more than 1e-10 against 50-digit mpmath for |r| near 1 with vtype UB
# -- 7e-10 at r = 0.999, n = 7: r_u^2 - rho^2_u cancels -- and, through gsl's 2F1, for
# tiny |r| at small n; such inputs are tested against mpmath in
# tests/test_escalc_measures.py)
for (vt in c("LS", "UB", "AV")) add_case("UCOR", corr, list(vtype=vt), source="constructed")
add_case("COR", corr, list(vtype="AV"), source="constructed")
corrna <- list(ri=c(0.5, NA, 0.2, 0.35), ni=c(10, 20, 30, NA))
for (vt in c("LS", "UB", "AV")) add_case("UCOR", corrna, list(vtype=vt), source="missing values")
add_case("COR", corrna, list(vtype="AV"), source="missing values")
# sample sizes where the hypergeometric series converges slowly (z = 1 - r^2 near 1)
small <- list(ri=c(0.05, -0.1, 0.15, 0.3, 0.02, 0.5, -0.25, 0.08, 0.12, 0.6),
              ni=c(5, 6, 7, 8, 9, 10, 11, 13, 17, 21))
for (vt in c("LS", "UB")) add_case("UCOR", small, list(vtype=vt), source="constructed small ni")
big <- list(ri=c(0.01, 0.2, -0.35, 0.5, 0.05), ni=c(500, 1000, 2500, 4000, 20000))
for (vt in c("LS", "UB")) add_case("UCOR", big, list(vtype=vt), source="constructed large ni")

# ---- Cronbach's alpha ----
bo <- dat.bonett2010
add_case("ARAW", list(ai=bo$ai, mi=bo$mi, ni=bo$ni), source="dat.bonett2010")
add_case("ARAW", list(ai=c(0.8, 0.7, 0.92, 0.5, -0.2, 0.99, 0.65, NA),
                      mi=c(10, 5, 20, 2, 4, 40, 3.5, 8), ni=c(100, 50, 300, 10, 25, 1000, 3, 60)),
         source="constructed")

write(toJSON(list(generated_by="validation/metafor/make_escalc2_reference.R",
                  r_version=R.version.string,
                  metafor_version=as.character(packageVersion("metafor")),
                  gsl_version=as.character(packageVersion("gsl")),
                  note="metafor returns vi for a study whose yi is NA (e.g. ri missing); ketameta marks the study missing as a whole",
                  cases=cases),
             auto_unbox=TRUE, digits=NA, null="null", na="null"),
      "tests/reference/metafor_escalc2.json")
cat("wrote", length(cases), "escalc cases\n")
