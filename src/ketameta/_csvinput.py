"""The input side of the ``ketameta`` command: CSV files as people have them.

- The column separator (comma, semicolon, tab or ``|``) and the decimal mark (point or
  comma) are detected from the file (``--sep`` / ``--decimal`` override); a UTF-8 or
  UTF-16 byte-order mark is skipped, a file that is not UTF-8 is read as Windows-1252 (with
  a note); quoted numbers, blanks around cells and the minus sign U+2212 are read.
- Input names (escalc's ``ai``, ``n1i``, ..., ``yi``, ``vi``, ``sei``, ``study``) are
  matched to the header case-insensitively (an exact match first); ``--col NAME=COLUMN``
  maps the rest. Columns no analysis uses are named in a note, not an error.
- Effects come from escalc's columns (``--measure``), from ``yi`` with ``vi`` or ``sei``,
  or from ``yi`` with confidence limits (``--ci-lower`` / ``--ci-upper``), as papers print
  them: ratio measures on their natural scale, log-transformed here.

Every problem is a :class:`UsageError` whose message names the file, the line and the
column as written in the file; the command prints it on one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._warnings import KetametaWarning
from .convert import se_from_ci
from .effect_sizes import _REGISTRY, escalc


class UsageError(Exception):
    """A problem with the command's input, reported in one line with exit status 2."""


#: notes of the running command, printed when it succeeds (an error is one line alone)
_NOTES: list[str] = []


def note(message: str) -> None:
    """Keep a note (something the user may want to know, not a problem) for stderr."""
    _NOTES.append(message)


def print_notes(*, discard: bool = False) -> None:
    """Print the notes kept (or drop them, when the command failed) and forget them."""
    if not discard:
        for message in _NOTES:
            print(f"ketameta: note: {message}", file=sys.stderr)
    _NOTES.clear()


#: the label column, by the names it is looked for under (in this order)
_LABEL_COLUMNS = ("study", "label", "author")

#: ratio measures: their estimates and confidence limits are ratios on the natural scale
#: (an odds ratio of 1.37, CI 1.03 to 1.82), analysed as logarithms
RATIO_MEASURES = frozenset({"OR", "RR", "HR", "IRR", "ROM", "PETO"})
#: measures analysed on a transformed scale other than the logarithm of a ratio: their
#: confidence limits cannot be taken as printed (give them on the analysis scale instead)
_TRANSFORMED = frozenset({"PLN", "PLO", "PAS", "PFT", "IRLN", "ZCOR", "AS"})
#: measures accepted with confidence limits only (escalc cannot compute them from columns)
CI_ONLY_MEASURES = frozenset({"HR"})

#: every input name a column can be mapped to with --col
INPUT_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *(
                name
                for spec in _REGISTRY.values()
                for group in (spec.required, *spec.alternatives, spec.optional)
                for name in group
            ),
            "yi",
            "vi",
            "sei",
            "study",
        ]
    )
)

_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "'|'"}
_MISSING = frozenset({"", "NA", "NAN", "N/A"})
_MINUS = str.maketrans({"\u2212": "-"})  # the minus sign papers print

#: the csv module refuses fields over 131,072 characters by default; a study label may be
#: longer (the file's size bounds it anyway)
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)

_POINT_NUMBER = re.compile(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?")
_COMMA_NUMBER = re.compile(r"[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?")
#: an integer with thousands separators (1,000 or 1.250.000): ambiguous on its own
_GROUPED = {
    ",": re.compile(r"[+-]?[1-9]\d{0,2}(,\d{3})+"),
    ".": re.compile(r"[+-]?[1-9]\d{0,2}(\.\d{3})+"),
}


class Table:
    """The columns of a CSV file, with the file line on which each data row starts.

    `columns` maps each header name to its cells (strings, blanks stripped); `aliases`
    maps input names given with ``--col`` to header names; `decimal` is the decimal mark.
    :meth:`find` looks an input name up (``--col`` first, then the exact header name, then
    the header name in any case); :meth:`used` records which columns an analysis read.
    """

    def __init__(
        self,
        path: str,
        columns: dict[str, list[str]],
        lines: list[int],
        *,
        decimal: str = ".",
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.columns = columns
        self.lines = lines
        self.decimal = decimal
        self.aliases = dict(aliases or {})
        self._used: set[str] = set()

    def __len__(self) -> int:
        return len(self.lines)

    # -- columns ------------------------------------------------------------------------
    def header(self) -> str:
        """The header names, for messages."""
        return ", ".join(self.columns) if self.columns else "(none)"

    def column(self, name: str, purpose: str = "") -> str:
        """The header name of a column named by the user (exactly, else in any case)."""
        found = self._lookup(name)
        if found is None:
            msg = (
                f"{self.path}: no column {name!r}{purpose} (the file has columns: {self.header()})"
            )
            raise UsageError(msg)
        return found

    def _lookup(self, name: str) -> str | None:
        if name in self.columns:
            return name
        folded = [c for c in self.columns if c.casefold() == name.casefold()]
        if len(folded) > 1:
            msg = (
                f"{self.path}: columns {', '.join(map(repr, folded))} differ only in case; "
                f"name the one to use with --col {name}=COLUMN"
            )
            raise UsageError(msg)
        return folded[0] if folded else None

    def find(self, name: str) -> str | None:
        """The header name holding input `name` (``--col`` mapping, exact name, or the
        name in another case), or None."""
        if name in self.aliases:
            return self.aliases[name]
        if name == "study":
            for candidate in _LABEL_COLUMNS:
                found = self._lookup(candidate)
                if found is not None and found not in self.aliases.values():
                    return found
            return None
        found = self._lookup(name)
        # a column mapped to another input is that input's, not this one's
        return None if found in self.aliases.values() else found

    def used(self, *names: str) -> None:
        """Record header names as read by the analysis."""
        self._used.update(names)

    def unused(self) -> list[str]:
        """The header names no analysis read, in file order."""
        return [c for c in self.columns if c not in self._used]

    def note_unused(self) -> None:
        """Name the columns the analysis did not read (a note, not an error)."""
        unused = self.unused()
        if unused:
            s = "s" if len(unused) > 1 else ""
            note(f"{self.path}: column{s} not used: {', '.join(unused)}")

    def describe(self, name: str) -> str:
        """How an input is named in messages: the header name, and the input it feeds
        when the two differ (``'events_treat' (ai)``)."""
        found = self.aliases.get(name, name)
        return f"{found!r}" if found == name else f"{found!r} ({name})"

    # -- messages -----------------------------------------------------------------------
    def where(self, message: str) -> str:
        """A message naming studies by index (0-based, in this table) with file lines, and
        inputs mapped with ``--col`` by their columns."""

        def lines(match: re.Match[str]) -> str:
            numbers = [str(self.lines[int(i)]) for i in re.findall(r"\d+", match[1])]
            return f"line{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"

        message = re.sub(r"\bstudies \[([\d, ]*)\]", lines, message)
        message = re.sub(r"\bstudy (\d+)", lambda m: f"line {self.lines[int(m[1])]}", message)
        for name, column in self.aliases.items():
            if column != name:
                message = message.replace(f"`{name}`", f"`{name}` (column {column!r})")
        return message

    # -- cells --------------------------------------------------------------------------
    def number(self, cell: str) -> float | None:
        """A cell as a number (NaN when missing), or None when it is not one."""
        if cell.upper() in _MISSING:
            return math.nan
        text = cell.translate(_MINUS)
        if self.decimal == ",":
            if "." in text:
                return None
            text = text.replace(",", ".")
        try:
            return float(text)
        except ValueError:
            return None


def _decode(path: str) -> str:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        msg = f"{path}: no such file"
        raise UsageError(msg) from exc
    except OSError as exc:
        msg = f"{path}: cannot read the file ({exc})"
        raise UsageError(msg) from exc
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")  # Excel's "Unicode text"
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            msg = f"{path}: cannot read the file: not UTF-8 text ({exc}); save it as CSV UTF-8"
            raise UsageError(msg) from exc
        note(f"{path}: not UTF-8; read as Windows-1252 (save it as CSV UTF-8 to be sure)")
        return text


def sniff_delimiter(text: str) -> str:
    """The separator that splits the first 100 rows into the same number (at least 2) of
    fields most consistently (ties: more fields, then comma, semicolon, tab, ``|``);
    comma when none splits the header."""
    best, best_score = ",", (0.0, 0)
    for delimiter in _DELIMITERS:
        counts = []
        try:
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
                if any(cell.strip() for cell in row):
                    counts.append(len(row))
                    if len(counts) == 100:
                        break
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        score = (sum(c == counts[0] for c in counts) / len(counts), counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def sniff_decimal(path: str, rows: Iterable[tuple[int, list[str]]], delimiter: str) -> str:
    """The decimal mark of the numbers in `rows`: a comma only in files separated by
    semicolons or tabs (as spreadsheets write them where the comma is the decimal mark),
    when cells such as ``0,25`` occur and none such as ``0.25``; an integer with
    thousands separators alone (``1,000``) decides nothing: a file with only such numbers
    is refused (give ``--decimal``)."""
    point = comma = None
    grouped: dict[str, tuple[int, str] | None] = {",": None, ".": None}
    for line, row in rows:
        for cell in row:
            cell = cell.strip().translate(_MINUS)
            if _COMMA_NUMBER.fullmatch(cell):
                if _GROUPED[","].fullmatch(cell):
                    grouped[","] = grouped[","] or (line, cell)
                else:
                    comma = comma or (line, cell)
            elif _POINT_NUMBER.fullmatch(cell):
                if _GROUPED["."].fullmatch(cell):
                    grouped["."] = grouped["."] or (line, cell)
                else:
                    point = point or (line, cell)
    if delimiter == ",":
        return "."
    if comma and point:
        msg = (
            f"{path}: numbers with a decimal comma (line {comma[0]}: {comma[1]!r}) and a "
            f"decimal point (line {point[0]}: {point[1]!r}); give --decimal , or --decimal ."
        )
        raise UsageError(msg)
    if comma or point:
        return "," if comma else "."
    ambiguous = grouped[","] or grouped["."]
    if ambiguous:
        msg = (
            f"{path}: line {ambiguous[0]}: is {ambiguous[1]!r} a number with a thousands "
            "separator or a decimal mark? give --decimal , or --decimal ."
        )
        raise UsageError(msg)
    return "."


def read_table(
    path: str,
    *,
    sep: str | None = None,
    decimal: str | None = None,
    mapping: Sequence[tuple[str, str]] = (),
) -> Table:
    """The columns of a CSV file as lists of strings (header row required), with the line
    each row starts on (blank lines are skipped but counted); the separator and decimal
    mark detected unless given; `mapping` the ``--col NAME=COLUMN`` pairs."""
    text = _decode(path)
    delimiter = sep or sniff_delimiter(text)
    previous_limit = csv.field_size_limit(_FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        records, last = [], 0
        for row in reader:
            records.append((last + 1, row))  # a quoted field may span several lines
            last = reader.line_num
    except csv.Error as exc:
        msg = f"{path}, line {last + 1}: not a valid CSV row ({exc})"
        raise UsageError(msg) from exc
    finally:
        csv.field_size_limit(previous_limit)
    if not records or not any(cell.strip() for cell in records[0][1]):
        msg = f"{path}: empty file (a header row naming the columns is required)"
        raise UsageError(msg)
    header = [h.strip() for h in records[0][1]]
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name and name in seen:
            msg = (
                f"{path}, line {records[0][0]}: the header names column {name!r} twice "
                f"(columns {seen[name]} and {position}); rename one of them"
            )
            raise UsageError(msg)
        seen.setdefault(name, position)
    cells: list[list[str]] = [[] for _ in header]
    lines = []
    for line_no, row in records[1:]:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            msg = f"{path}, line {line_no}: {len(row)} fields, but the header has {len(header)}"
            if sep is None:
                msg += f" (read as {_DELIMITER_NAMES[delimiter]}-separated; see --sep)"
            raise UsageError(msg)
        for values, cell in zip(cells, row, strict=True):
            values.append(cell.strip())
        lines.append(line_no)
    columns: dict[str, list[str]] = {}
    for position, (name, values) in enumerate(zip(header, cells, strict=True), start=1):
        if not name:
            if any(values):
                i = next(i for i, v in enumerate(values) if v)
                msg = f"{path}, line {lines[i]}: column {position} has values but no name"
                raise UsageError(msg)
            continue  # an unnamed, empty column (a trailing comma)
        columns[name] = values
    if decimal is None:
        data_rows = ((line, row) for line, row in records[1:])
        decimal = sniff_decimal(path, data_rows, delimiter)
        if delimiter not in (",", "\t") or decimal != ".":
            mark = "decimal comma" if decimal == "," else "decimal point"
            note(
                f"{path}: read as {_DELIMITER_NAMES[delimiter]}-separated with a {mark} "
                "(--sep and --decimal override)"
            )
    table = Table(path, columns, lines, decimal=decimal)
    table.aliases = _aliases(table, mapping)
    return table


def _aliases(table: Table, mapping: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The ``--col NAME=COLUMN`` pairs checked against the input names and the header."""
    aliases: dict[str, str] = {}
    for name, column in mapping:
        if name in aliases:
            msg = f"--col {name}= given twice ({aliases[name]!r} and {column!r})"
            raise UsageError(msg)
        found = table._lookup(column)
        if found is None:
            msg = (
                f"{table.path}: no column {column!r} (--col {name}={column}); the file has "
                f"columns: {table.header()}"
            )
            raise UsageError(msg)
        for other, taken in aliases.items():
            if taken == found:
                msg = f"--col {other}= and --col {name}= name the same column {found!r}"
                raise UsageError(msg)
        aliases[name] = found
    return aliases


def parse_mapping(text: str) -> tuple[str, str]:
    """``NAME=COLUMN`` (argparse type of ``--col``)."""
    name, sep, column = text.partition("=")
    name, column = name.strip(), column.strip()
    if not sep or not name or not column:
        msg = f"expected NAME=COLUMN (e.g. ai=events_treated), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    if name not in INPUT_NAMES:
        msg = f"unknown input {name!r}; inputs are: {', '.join(INPUT_NAMES)}"
        raise argparse.ArgumentTypeError(msg)
    return name, column


def parse_sep(text: str) -> str:
    """The column separator (argparse type of ``--sep``)."""
    named = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
    sep = named.get(text.lower(), text)
    if sep not in _DELIMITERS:
        msg = f"expected ',', ';', 'tab' or '|', got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return sep


def numeric_column(table: Table, name: str) -> list[float]:
    """Input `name` as floats (empty cells and NA are NaN); a bad cell names its line and
    column. Marks the column used."""
    column = table.find(name)
    if column is None:
        msg = f"{table.path}: no column {name!r} (the file has columns: {table.header()})"
        raise UsageError(msg)
    return _numbers(table, column, table.describe(name) if column != name else repr(column))


def _numbers(table: Table, column: str, shown_name: str) -> list[float]:
    table.used(column)
    values = []
    for line, cell in zip(table.lines, table.columns[column], strict=True):
        value = table.number(cell)
        if value is None:
            msg = f"{table.path}, line {line}, column {shown_name}: {_not_a_number(table, cell)}"
            raise UsageError(msg)
        if math.isinf(value):
            shown = cell if len(cell) <= 40 else f"{cell[:20]}...({len(cell)} characters)"
            what = (
                "is not finite"
                if cell.lstrip("+-\u2212").lower() in ("inf", "infinity")
                else "is beyond the double-precision range (±1.8e308)"
            )
            msg = f"{table.path}, line {line}, column {shown_name}: {shown!r} {what}"
            raise UsageError(msg)
        values.append(value)
    return values


def _not_a_number(table: Table, cell: str) -> str:
    shown = cell if len(cell) <= 40 else f"{cell[:20]}...({len(cell)} characters)"
    if table.decimal == "," and _POINT_NUMBER.fullmatch(cell.translate(_MINUS)):
        return (
            f"{shown!r} is not a number with a decimal comma, as the file was read "
            "(--decimal . reads decimal points; thousands separators are not read)"
        )
    if table.decimal == "." and _COMMA_NUMBER.fullmatch(cell.translate(_MINUS)):
        return (
            f"{shown!r} is not a number with a decimal point, as the file was read "
            "(--decimal , reads decimal commas; thousands separators are not read)"
        )
    return f"{shown!r} is not a number"


def values(table: Table, column: str, *, use: bool = True) -> list[Any]:
    """A column as numbers (NaN where missing) when every cell is one, else as strings
    (None where missing): as R's ``read.csv`` reads a column. Marks it used."""
    if use:
        table.used(column)
    cells = table.columns[column]
    numbers = [table.number(cell) for cell in cells]
    if all(x is not None and not math.isinf(x) for x in numbers) and any(
        x is not None and not math.isnan(x) for x in numbers
    ):
        return numbers
    return [None if cell.upper() in _MISSING else cell for cell in cells]


def group_labels(table: Table, column: str) -> list[Any]:
    """The labels of a grouping column (missing: None); a column of finite numbers only
    is numeric (as R's ``read.csv`` reads it), so its groups are ordered numerically."""
    return values(table, column)


def labels_of(table: Table) -> list[str]:
    """The study labels: the ``study`` (or ``label``, ``author``) column, else "Study i"."""
    column = table.find("study")
    if column is None:
        return [f"Study {i + 1}" for i in range(len(table))]
    table.used(column)
    return table.columns[column]


def _missing_columns(table: Table, measure: str, sets: list[tuple[str, ...]]) -> UsageError:
    present = [[n for n in s if table.find(n) is not None] for s in sets]
    best = max(range(len(sets)), key=lambda i: (len(present[i]), -i))
    missing = [n for n in sets[best] if n not in present[best]]
    needs = ", ".join(sets[0])
    if len(sets) > 1:
        needs += "".join(f" (or {', '.join(s)})" for s in sets[1:])
    hint = ""
    if table.find("yi") is not None:
        hint = "; effects already computed (yi) are read without --measure"
    which = "none is in the file" if not present[best] else f"missing: {', '.join(missing)}"
    msg = (
        f"{table.path}: --measure {measure} needs columns {needs}; {which}. The file has "
        f"columns: {table.header()} (map a column with --col {missing[0]}=COLUMN){hint}"
    )
    return UsageError(msg)


def effect_sizes(args: argparse.Namespace, table: Table) -> tuple[Any, Any, Any, list[str]]:
    """(yi or EffectSizes, vi, sei, labels) from the rows of `table`, by the input mode:
    escalc's columns with ``--measure``; ``yi`` with confidence limits; ``yi`` with ``vi``
    or ``sei``. Records the columns read."""
    path = table.path
    labels = labels_of(table)
    measure = getattr(args, "measure", None)
    if getattr(args, "ci_lower", None) is not None:
        yi, sei = effects_from_ci(args, table)
        return yi, None, sei, labels
    if measure is None:
        if table.find("yi") is None:
            msg = (
                f"{path}: no effect sizes: give --measure with the columns it needs (e.g. "
                "ai, bi, ci, di for OR), or columns yi and vi (or sei), or yi with "
                f"--ci-lower/--ci-upper. The file has columns: {table.header()}"
            )
            raise UsageError(msg)
        yi = numeric_column(table, "yi")
        for name in ("vi", "sei"):
            if table.find(name) is not None:
                spread = numeric_column(table, name)
                return (
                    yi,
                    spread if name == "vi" else None,
                    spread if name == "sei" else None,
                    labels,
                )
        msg = (
            f"{path}: column {table.describe('yi')} needs 'vi' or 'sei' beside it (or "
            f"its confidence limits: --ci-lower/--ci-upper). The file has columns: "
            f"{table.header()}"
        )
        raise UsageError(msg)
    if measure in CI_ONLY_MEASURES:
        msg = (
            f"--measure {measure} is read from estimates with confidence limits "
            "(--ci-lower/--ci-upper), not computed from columns"
        )
        raise UsageError(msg)
    spec = _REGISTRY[measure]
    sets = [spec.required, *spec.alternatives]
    chosen = next((s for s in sets if all(table.find(n) is not None for n in s)), None)
    if chosen is None:
        raise _missing_columns(table, measure, sets)
    names = [*chosen, *(n for n in spec.optional if table.find(n) is not None)]
    given: dict[str, Any] = {name: numeric_column(table, name) for name in names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", KetametaWarning)
            es = escalc(measure, **given)
    except (KetametaWarning, TypeError, ValueError) as exc:
        msg = f"{path}: {table.where(str(exc))}"
        raise UsageError(msg) from exc
    return es, None, None, labels


def effects_from_ci(args: argparse.Namespace, table: Table) -> tuple[list[float], list[float]]:
    """(yi, sei) from estimates with confidence limits as papers print them: for a ratio
    measure the three are ratios, analysed as logarithms; the standard error is the width
    of the interval on the analysis scale over ``2 z`` (:func:`ketameta.convert.se_from_ci`).
    A study whose interval is not around its estimate, or has no width, is refused."""
    measure = args.measure
    if measure in _TRANSFORMED:
        msg = (
            f"--ci-lower/--ci-upper with --measure {measure}: the limits of a {measure} are "
            "not a log-ratio's; give the estimate and limits on the analysis scale and leave "
            "out --measure"
        )
        raise UsageError(msg)
    ratio = measure in RATIO_MEASURES
    if table.find("yi") is None:
        msg = (
            f"{table.path}: --ci-lower/--ci-upper need the estimates too: a column 'yi', or "
            f"--col yi=COLUMN. The file has columns: {table.header()}"
        )
        raise UsageError(msg)
    lower_column = table.column(args.ci_lower, " (--ci-lower)")
    upper_column = table.column(args.ci_upper, " (--ci-upper)")
    est = numeric_column(table, "yi")
    lower = _numbers(table, lower_column, repr(lower_column))
    upper = _numbers(table, upper_column, repr(upper_column))
    est_name = table.describe("yi")
    yi: list[float] = []
    rows: list[int] = []  # the studies with all three values
    for i, (e, lo, hi) in enumerate(zip(est, lower, upper, strict=True)):
        where = f"{table.path}, line {table.lines[i]}"
        if math.isnan(e) or math.isnan(lo) or math.isnan(hi):
            yi.append(math.nan)  # a missing value: the study is left out with a warning
            continue
        interval = f"[{lo:g}, {hi:g}]"
        if lo > hi:
            msg = (
                f"{where}: the lower limit {lo:g} is above the upper limit {hi:g} "
                "(are --ci-lower and --ci-upper swapped?)"
            )
            raise UsageError(msg)
        if ratio:
            named = ((e, est_name), (lo, repr(lower_column)), (hi, repr(upper_column)))
            for value, column in named:
                if value <= 0:
                    msg = (
                        f"{where}, column {column}: {value:g} is not a ratio; --measure "
                        f"{measure} takes estimates and limits as printed (e.g. 1.37, CI "
                        "1.03 to 1.82) and log-transforms them (log ratios: leave out "
                        "--measure)"
                    )
                    raise UsageError(msg)
            log_e, log_lo, log_hi = math.log(e), math.log(lo), math.log(hi)
        else:
            log_e, log_lo, log_hi = e, lo, hi
        if not log_lo < log_hi:
            msg = f"{where}: the confidence interval {interval} has no width"
            raise UsageError(msg)
        if not log_lo <= log_e <= log_hi:
            msg = f"{where}: the estimate {e:g} is not inside its confidence interval {interval}"
            raise UsageError(msg)
        yi.append(log_e)
        rows.append(i)
    sei = [math.nan] * len(yi)
    if rows:
        try:
            se = se_from_ci(
                [lower[i] for i in rows], [upper[i] for i in rows], level=args.ci_level, log=ratio
            )
        except ValueError as exc:  # an interval too narrow for a standard error
            msg = f"{table.path}: {exc}"
            raise UsageError(msg) from exc
        for i, s in zip(rows, se.tolist(), strict=True):
            sei[i] = s
    return yi, sei


def cells(table: Table, names: Iterable[str]) -> dict[str, list[float]]:
    """The columns of 2×2 tables or counts present in `table`, as numbers."""
    return {name: numeric_column(table, name) for name in names if table.find(name) is not None}


def moderators(table: Table, spec: str) -> tuple[Any, dict[str, list[Any]]]:
    """``--mods``: a formula (``"~ ablat + C(alloc)"``, evaluated on every column) or
    column names separated by commas; the columns read as R's ``read.csv`` reads them
    (numbers, else strings: factors)."""
    if "~" in spec:
        data = {name: values(table, name, use=False) for name in table.columns}
        rhs = spec.split("~", 1)[1]
        for name in table.columns:  # the columns the formula names (as far as a note goes)
            if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", rhs):
                table.used(name)
        return spec, data
    names = [n.strip() for n in spec.split(",")]
    if not all(names):
        msg = f"--mods {spec!r}: expected column names separated by commas, or a formula '~ ...'"
        raise UsageError(msg)
    columns = [table.column(n, " (--mods)") for n in names]
    return columns, {c: values(table, c) for c in columns}
