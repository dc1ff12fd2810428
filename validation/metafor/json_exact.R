# Writes R objects as compact JSON whose numbers round-trip exactly to the doubles R holds
# (jsonlite's digits=NA keeps only 15 significant digits, which does not round-trip).
# Sourced by make_metareg_reference.R and make_permutest_reference.R.
#
# Conventions:
#   - a named list is an object, an unnamed list an array;
#   - a numeric/logical/character vector of length 1 is a scalar, unless wrapped in arr()
#     (class "json_array"), which always writes an array (also for length 0 or 1);
#   - a matrix is an array of rows (row-major);
#   - NULL, NA, NaN and +-Inf are written as null;
#   - a double is written with 17 significant digits (C's printf, exact), which any correctly
#     rounding parser (Python's float, for one) reads back as the same double; shorter forms are
#     not chosen by testing them in R, because R's own parser is not correctly rounded (a
#     16-digit string R reads back as x can be read as x's neighbour by Python);
#     integer-valued doubles below 2^53 in magnitude are written as integers.
# json_hex(x) lists sprintf("%a") of every finite number to_json(x) writes, in document order, so
# that validation/metafor/check_json_roundtrip.py can confirm the round trip bit for bit.

json_hex <- function(x) {
  if (is.null(x)) return(character())
  if (is.matrix(x)) x <- as.vector(t(x))
  if (is.data.frame(x)) x <- as.list(x)
  if (is.list(x)) return(unlist(lapply(x, json_hex), use.names = FALSE))
  if (is.numeric(x) && !is.factor(x)) {
    x <- as.numeric(x)
    return(sprintf("%a", x[is.finite(x)]))
  }
  character()
}

arr <- function(x) structure(x, class = c("json_array", class(x)))

.json_num <- function(x) {
  x <- as.numeric(x)
  s <- character(length(x))
  fin <- is.finite(x)
  s[!fin] <- "null"
  xi <- x[fin]
  out <- sprintf("%.17g", xi)
  intlike <- xi == round(xi) & abs(xi) < 2^53
  out[intlike] <- sprintf("%.0f", xi[intlike])
  s[fin] <- out
  s
}

.json_str <- function(x) {
  vapply(x, function(s) if (is.na(s)) "null" else as.character(jsonlite::toJSON(s, auto_unbox = TRUE)),
         character(1), USE.NAMES = FALSE)
}

.json_atomic <- function(x) {
  if (is.factor(x)) x <- as.character(x)
  if (is.logical(x)) return(ifelse(is.na(x), "null", ifelse(x, "true", "false")))
  if (is.character(x)) return(.json_str(x))
  if (is.integer(x)) {
    return(.json_num(as.numeric(x)))
  }
  if (is.numeric(x)) return(.json_num(x))
  stop("cannot serialise type ", typeof(x))
}

to_json <- function(x) {
  if (is.null(x)) return("null")
  force_array <- inherits(x, "json_array")
  if (force_array) class(x) <- setdiff(class(x), "json_array")
  if (is.matrix(x)) {
    rows <- vapply(seq_len(nrow(x)), function(i) to_json(arr(unname(x[i, ]))), character(1))
    return(paste0("[", paste(rows, collapse = ","), "]"))
  }
  if (is.data.frame(x)) x <- as.list(x)
  if (is.list(x)) {
    if (!is.null(names(x)) && length(x) > 0) {
      parts <- vapply(seq_along(x), function(i)
        paste0(.json_str(names(x)[i]), ":", to_json(x[[i]])), character(1))
      return(paste0("{", paste(parts, collapse = ","), "}"))
    }
    if (length(x) == 0 && !force_array && !is.null(names(x))) return("{}")
    parts <- vapply(x, to_json, character(1))
    return(paste0("[", paste(parts, collapse = ","), "]"))
  }
  x <- unname(x)
  vals <- .json_atomic(x)
  if (length(x) == 1 && !force_array) return(vals)
  paste0("[", paste(vals, collapse = ","), "]")
}
