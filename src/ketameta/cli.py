"""The ``ketameta`` command line.

``ketameta crps``           the analyses of the bundled CRPS ketamine dataset (default)
``ketameta example``        worked example on the bundled BCG vaccine trials
``ketameta pool FILE.csv``  effect sizes (``--measure``) or ``yi``/``vi`` columns, pooled
                            (``--model mh|peto|glmm``: the cells pooled directly;
                            ``--by COLUMN``: a subgroup analysis with the test for
                            subgroup differences, ``--tau2 separate|common``)
``ketameta egger FILE.csv`` Egger's regression test
``ketameta funnel FILE.csv -o funnel.png``

CSV columns use escalc's argument names (``ai, bi, ci, di``, ``m1i, sd1i, n1i, ...``) or
``yi`` with ``vi`` or ``sei``; an optional ``study`` (or ``label``) column names the rows.
Empty cells are missing values. Errors print one line naming the file, row and column and
exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from ._warnings import KetametaWarning, OmittedStudiesWarning
from .bias import egger_test
from .effect_sizes import MEASURES, EffectSizes, escalc
from .pooling import METHODS, TESTS, PoolResult, pool

_LABEL_COLUMNS = ("study", "label", "author")


class UsageError(Exception):
    """A problem with the command's input, reported in one line with exit status 2."""


class Table:
    """The columns of a CSV file, with the file line on which each data row starts."""

    def __init__(self, path: str, columns: dict[str, list[str]], lines: list[int]) -> None:
        self.path = path
        self.columns = columns
        self.lines = lines

    def __len__(self) -> int:
        return len(self.lines)

    def subset(self, rows: Sequence[int]) -> Table:
        """The rows `rows` (indices into this table), keeping their file lines."""
        return Table(
            self.path,
            {name: [values[i] for i in rows] for name, values in self.columns.items()},
            [self.lines[i] for i in rows],
        )

    def where(self, message: str) -> str:
        """A message naming studies by index (0-based, in this table) with file lines."""

        def lines(match: re.Match[str]) -> str:
            numbers = [str(self.lines[int(i)]) for i in re.findall(r"\d+", match[1])]
            return f"line{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"

        message = re.sub(r"\bstudies \[([\d, ]*)\]", lines, message)
        return re.sub(r"\bstudy (\d+)", lambda m: f"line {self.lines[int(m[1])]}", message)


#: the csv module refuses fields over 131,072 characters by default; a study label may be
#: longer (the file's size bounds it anyway)
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


def read_table(path: str) -> Table:
    """The columns of a CSV file as lists of strings (header row required), with the line
    each row starts on (blank lines are skipped but counted)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        msg = f"{path}: no such file"
        raise UsageError(msg) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the file ({exc})"
        raise UsageError(msg) from exc
    previous_limit = csv.field_size_limit(_FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
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
    return Table(path, columns, lines)


def numeric_column(table: Table, name: str) -> list[float]:
    """A column as floats (empty cells and NA are NaN); a bad cell names its line and column."""
    path = table.path
    if name not in table.columns:
        msg = f"{path}: no column {name!r} (columns: {', '.join(table.columns)})"
        raise UsageError(msg)
    values = []
    for line, cell in zip(table.lines, table.columns[name], strict=True):
        if cell == "" or cell.upper() in ("NA", "NAN"):
            values.append(math.nan)
            continue
        try:
            value = float(cell)
        except ValueError as exc:
            msg = f"{path}, line {line}, column {name!r}: {cell!r} is not a number"
            raise UsageError(msg) from exc
        if not math.isfinite(value):
            shown = cell if len(cell) <= 40 else f"{cell[:20]}...({len(cell)} characters)"
            what = (
                "is not finite"
                if cell.lstrip("+-").lower() in ("inf", "infinity")
                else "is beyond the double-precision range (±1.8e308)"
            )
            msg = f"{path}, line {line}, column {name!r}: {shown!r} {what}"
            raise UsageError(msg)
        values.append(value)
    return values


def effect_sizes(args: argparse.Namespace, table: Table) -> tuple[Any, Any, Any, list[str]]:
    """(yi or EffectSizes, vi, sei, labels) from the rows of `table`."""
    path = table.path
    columns = table.columns
    label_column = next((c for c in _LABEL_COLUMNS if c in columns), None)
    labels = (
        columns[label_column] if label_column else [f"Study {i + 1}" for i in range(len(table))]
    )
    if args.measure is None:
        if "yi" not in columns:
            msg = f"{path}: give --measure, or columns 'yi' and 'vi' (or 'sei')"
            raise UsageError(msg)
        yi = numeric_column(table, "yi")
        if "vi" in columns:
            return yi, numeric_column(table, "vi"), None, labels
        if "sei" in columns:
            return yi, None, numeric_column(table, "sei"), labels
        msg = f"{path}: column 'yi' needs 'vi' or 'sei' beside it"
        raise UsageError(msg)
    given: dict[str, Any] = {
        name: numeric_column(table, name) for name in columns if name in _ESCALC_COLUMNS
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", KetametaWarning)
            es = escalc(args.measure, **given)
    except KetametaWarning as exc:
        msg = f"{path}: {table.where(str(exc))}"
        raise UsageError(msg) from exc
    except (TypeError, ValueError) as exc:
        msg = f"{path}: {table.where(str(exc))}"
        raise UsageError(msg) from exc
    return es, None, None, labels


_ESCALC_COLUMNS = frozenset(
    [
        "m1i",
        "sd1i",
        "n1i",
        "m2i",
        "sd2i",
        "n2i",
        "ai",
        "bi",
        "ci",
        "di",
        "xi",
        "ni",
        "ri",
        "x1i",
        "t1i",
        "x2i",
        "t2i",
        "ti",
    ]
)


def _run(table: Table, call: Any, what: str | Callable[[str], str] = "") -> Any:
    """Run an analysis on the rows of `table`: errors and ketameta's warnings (omitted
    studies, small samples) are reported with the CSV lines of the studies they name.
    `what` says more about the analysis (e.g. its group), or is a function giving that
    from an error's message."""
    prefix = f"{table.path}{what if isinstance(what, str) else ''}: "
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KetametaWarning)
        try:
            result = call()
        except (TypeError, ValueError) as exc:
            context = what if isinstance(what, str) else what(str(exc))
            msg = f"{table.path}{context}: {table.where(str(exc))}"
            raise UsageError(msg) from exc
    for w in caught:
        if issubclass(w.category, OmittedStudiesWarning):
            # (every list of studies: missing yi/vi, a missing group label, ...)
            found = re.findall(r"\[([\d, ]*)\]", str(w.message))
            numbers = [
                str(table.lines[int(i)])
                for i in sorted({int(i) for group in found for i in re.findall(r"\d+", group)})
            ]
            what = (
                f"line {numbers[0]} has a missing value and was left out"
                if len(numbers) == 1
                else f"lines {', '.join(numbers)} have missing values and were left out"
            )
            print(f"ketameta: warning: {prefix}{what}", file=sys.stderr)
        elif issubclass(w.category, KetametaWarning):
            print(f"ketameta: warning: {prefix}{table.where(str(w.message))}", file=sys.stderr)
        else:  # not ours: let Python report it as usual
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _pool(args: argparse.Namespace, table: Table, what: str = "") -> PoolResult:
    yi, vi, sei, labels = effect_sizes(args, table)
    # (the CSV's labels: the summary and the forest name the studies, omitted ones too)
    options = {"method": args.method, "test": args.test, "level": args.level, "labels": labels}

    def fit() -> PoolResult:
        if isinstance(yi, EffectSizes):
            return pool(yi, **options)
        return pool(yi, vi, sei=sei, **options)

    result: PoolResult = _run(table, fit, what)
    return result


def _pool_cells(args: argparse.Namespace) -> Any:
    """``--model mh|peto|glmm``: pool the cells of the CSV directly (Mantel-Haenszel, Peto
    or a GLMM) instead of their effect sizes."""
    from .binary import pool_glmm, pool_mh, pool_peto

    table = read_table(args.file)
    columns = table.columns
    label_column = next((c for c in _LABEL_COLUMNS if c in columns), None)
    labels = (
        columns[label_column] if label_column else [f"Study {i + 1}" for i in range(len(table))]
    )
    cells = ("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i", "xi", "ni", "ti")
    given: dict[str, Any] = {
        name: numeric_column(table, name) for name in cells if name in columns
    }
    options: dict[str, Any] = {"level": args.level, "labels": labels}
    if args.measure is not None:
        options["measure"] = args.measure
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KetametaWarning)
            if args.model == "mh":
                return pool_mh(**given, **options)
            if args.model == "peto":
                options.pop("measure", None)
                return pool_peto(**given, **options)
            method = "EE" if args.method in ("EE", "FE", "CE") else "ML"
            return pool_glmm(**given, **options, method=method)
    except (TypeError, ValueError) as exc:
        msg = f"{args.file}: {table.where(str(exc))}"
        raise UsageError(msg) from exc


def cmd_pool(args: argparse.Namespace) -> int:
    if args.model != "rma":
        if args.by:
            msg = "--by works with --model rma only"
            raise UsageError(msg)
        res = _pool_cells(args)
        print(json.dumps(res.to_dict(), indent=2) if args.json else res.summary())
        if args.forest:
            from .plot import forest

            transform = "exp" if getattr(res, "is_ratio", False) else None
            _save(forest(res, transform=transform), args.forest)
        return 0
    if args.by:
        return _pool_by(args)
    table = read_table(args.file)
    result = _pool(args, table)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
    if args.forest:
        from .plot import forest

        _save(forest(result), args.forest)
    return 0


def group_labels(cells: Sequence[str]) -> list[Any]:
    """The labels of a grouping column, in one pass: empty cells and ``NA`` are missing
    (None); a column of finite numbers only is numeric (as R's ``read.csv`` reads it), so
    its groups are ordered numerically."""
    labels: list[Any] = []
    numbers: list[float] | None = []
    for cell in cells:
        if cell == "" or cell.upper() == "NA":
            labels.append(None)
            if numbers is not None:
                numbers.append(math.nan)
            continue
        labels.append(cell)
        if numbers is not None:
            try:
                value = float(cell)
            except ValueError:
                numbers = None
                continue
            if not math.isfinite(value):
                numbers = None
                continue
            numbers.append(value)
    if numbers is not None and any(not math.isnan(x) for x in numbers):
        return numbers
    return labels


def _pool_by(args: argparse.Namespace) -> int:
    """``--by COLUMN``: the subgroup analysis (each group pooled, all studies pooled, the
    test for subgroup differences), printed as a table or as JSON."""
    from .subgroups import subgroups

    table = read_table(args.file)
    if args.by not in table.columns:
        msg = f"{args.file}: no column {args.by!r} to group by"
        raise UsageError(msg)
    keys = table.columns[args.by]
    labels = group_labels(keys)
    yi, vi, sei, study_labels = effect_sizes(args, table)
    options = {
        "groups": args.by,
        "data": {args.by: labels},
        "method": args.method,
        "test": args.test,
        "level": args.level,
        "tau2": args.tau2 or "separate",
        "labels": study_labels,
    }

    def fit() -> Any:
        if isinstance(yi, EffectSizes):
            return subgroups(yi, **options)
        return subgroups(yi, vi, sei=sei, **options)

    def group_of(message: str) -> str:
        """The group of the study an error names."""
        found = re.search(r"\bstudy (\d+)", message)
        return f" (group {args.by} = {keys[int(found[1])]!r})" if found else ""

    result = _run(table, fit, group_of)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    if args.forest:
        from .plot import forest

        _save(forest(result), args.forest)
    return 0


def cmd_egger(args: argparse.Namespace) -> int:
    table = read_table(args.file)
    yi, vi, sei, labels = effect_sizes(args, table)
    res = _run(
        table,
        lambda: egger_test(
            yi,
            vi,
            sei=sei,
            labels=labels,
            model=args.model,
            predictor=args.predictor,
            method=args.method,
            test=args.test,
            level=args.level,
        ),
    )
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.summary())
    return 0


def cmd_funnel(args: argparse.Namespace) -> int:
    from .plot import funnel

    result = _pool(args, read_table(args.file))
    _save(funnel(result), args.output)
    print(f"funnel plot of {result.k} studies written to {args.output}")
    return 0


def _save(fig: Any, path: str) -> None:
    try:
        fig.savefig(path, dpi=150)
    except (OSError, ValueError) as exc:
        msg = f"cannot write {path}: {exc}"
        raise UsageError(msg) from exc


def cmd_example(args: argparse.Namespace) -> int:
    data = datasets.bcg()
    es = escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    print("BCG vaccine trials (Colditz et al. 1994): log risk ratios of tuberculosis,")
    print(f"{len(es)} trials; random-effects model (REML), as metafor's rma(yi, vi).\n")
    result = pool(es, method="REML")
    print(result.summary())
    print("\nQ-profile confidence intervals for the heterogeneity:")
    print(result.tau2_ci())
    kh = pool(es, method="REML", test="knha")
    print("\nKnapp-Hartung adjusted:")
    print(
        f"estimate {kh.estimate:.4f}, {100 * kh.level:g}% CI [{kh.ci_lower:.4f}, "
        f"{kh.ci_upper:.4f}], p = {kh.pvalue:.4f} (t, df = {kh.df:g})"
    )
    print(
        f"\nPooled risk ratio {np.exp(result.estimate):.3f} "
        f"(95% CI {np.exp(result.ci_lower):.3f} to {np.exp(result.ci_upper):.3f})"
    )
    return 0


def cmd_crps(args: argparse.Namespace) -> int:
    from .crps import analyse_crps, forest_plots, render
    from .datasets import load_crps

    try:
        data = load_crps()
    except (OSError, ValueError, KeyError) as exc:  # a damaged or edited installation
        msg = f"the bundled CRPS dataset cannot be used: {exc}"
        raise UsageError(msg) from exc
    report = analyse_crps(data)
    if args.forest:
        try:
            report["forest_plots"] = forest_plots(report, args.forest)
        except OSError as exc:
            msg = f"cannot write the forest plots to {args.forest}: {exc}"
            raise UsageError(msg) from exc
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
        for path in report.get("forest_plots", []):
            print(f"forest plot written to {path}")
    return 0


#: options every command that reads a CSV file accepts, with their defaults (None in the
#: parser, so that an option given to a command that cannot use it is refused)
_DEFAULTS = {"method": "REML", "test": "z", "level": 0.95, "json": False}


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="CSV file (escalc column names, or yi and vi/sei)")
    p.add_argument("--measure", choices=sorted(MEASURES), help="effect size to compute")
    p.add_argument("--method", choices=METHODS, help="tau^2 estimator (REML)")
    p.add_argument("--test", choices=TESTS, help="test for the pooled effect (z)")
    p.add_argument("--level", type=_level, help="confidence level (0.95)")
    p.add_argument("--json", action="store_true", default=None, help="print the result as JSON")


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        msg = f"not a number: {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if not 0 < value < 1:
        msg = f"must be in (0, 1), e.g. 0.95; got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _options(args: argparse.Namespace) -> argparse.Namespace:
    """Refuse the options a command cannot use (instead of ignoring them); fill defaults."""
    unused: list[str] = []
    if args.command == "egger" and getattr(args, "model", "lm") == "lm":
        # the classic test is a weighted regression with its own t test
        unused += [f"--{o}" for o in ("method", "test") if getattr(args, o) is not None]
        if unused:
            unused[-1] += " (used only with --model rma)"
    if args.command == "pool" and args.tau2 is not None and not args.by:
        unused.append("--tau2 (used only with --by)")
    if args.command == "funnel":
        unused += [f"--{o}" for o in ("test", "json") if getattr(args, o) is not None]
    if unused:
        msg = f"ketameta {args.command} cannot use {', '.join(unused)}"
        raise UsageError(msg)
    for name, default in _DEFAULTS.items():
        if getattr(args, name, default) is None:
            setattr(args, name, default)
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ketameta", description="Meta-analysis primitives, exact to metafor."
    )
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("crps", help="analyses of the bundled CRPS ketamine dataset (default)")
    p.add_argument("--forest", metavar="DIR", help="write the forest plots into DIR")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    sub.add_parser("example", help="worked example on the BCG vaccine trials")
    p = sub.add_parser("pool", help="pool the studies of a CSV file")
    _add_input(p)
    p.add_argument("--forest", metavar="PNG", help="write a forest plot")
    p.add_argument(
        "--by",
        metavar="COLUMN",
        help="subgroup analysis: one meta-analysis per value of COLUMN, all studies pooled, "
        "and the test for subgroup differences",
    )
    p.add_argument(
        "--tau2",
        choices=("separate", "common"),
        help="with --by: a separate tau^2 per subgroup (default) or one common tau^2 "
        "(the meta-regression on the groups)",
    )
    p.add_argument(
        "--model",
        default="rma",
        choices=("rma", "mh", "peto", "glmm"),
        help="rma: inverse-variance pooling of effect sizes (default); mh, peto, glmm: "
        "Mantel-Haenszel, Peto or a GLMM on the cells of 2x2 tables or counts",
    )
    p = sub.add_parser("egger", help="Egger's regression test")
    _add_input(p)
    p.add_argument("--model", default="lm", choices=("lm", "rma"))
    p.add_argument(
        "--predictor", default="sei", choices=("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")
    )
    p = sub.add_parser("funnel", help="write a funnel plot")
    _add_input(p)
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="output image")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ketameta`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {
        "example": cmd_example,
        "pool": cmd_pool,
        "egger": cmd_egger,
        "funnel": cmd_funnel,
        "crps": cmd_crps,
    }
    if args.command is None:  # the main job: the bundled CRPS dataset
        args = parser.parse_args(["crps"])
    try:
        return commands[args.command](_options(args))
    except UsageError as exc:
        print(f"ketameta: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `ketameta | head`
        return 0
