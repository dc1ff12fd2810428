"""The ``ketameta`` command line.

``ketameta crps``           the analyses of the bundled CRPS ketamine dataset (default)
``ketameta example``        worked example on the bundled BCG vaccine trials
``ketameta pool FILE.csv``  effect sizes (``--measure``) or ``yi``/``vi`` columns, pooled
                            (``--model mh|peto|glmm``: the cells pooled directly)
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
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from ._warnings import KetametaWarning
from .bias import egger_test
from .effect_sizes import MEASURES, EffectSizes, escalc
from .pooling import METHODS, TESTS, PoolResult, pool

_LABEL_COLUMNS = ("study", "label", "author")


class UsageError(Exception):
    """A problem with the command's input, reported in one line with exit status 2."""


def read_table(path: str) -> dict[str, list[str]]:
    """The columns of a CSV file as lists of strings (header row required)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        msg = f"{path}: no such file"
        raise UsageError(msg) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the file ({exc})"
        raise UsageError(msg) from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows or not any(cell.strip() for cell in rows[0]):
        msg = f"{path}: empty file (a header row naming the columns is required)"
        raise UsageError(msg)
    header = [h.strip() for h in rows[0]]
    columns: dict[str, list[str]] = {h: [] for h in header}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            msg = f"{path}, line {line_no}: {len(row)} fields, but the header has {len(header)}"
            raise UsageError(msg)
        for name, cell in zip(header, row, strict=True):
            columns[name].append(cell.strip())
    return columns


def numeric_column(columns: dict[str, list[str]], name: str, path: str) -> list[float]:
    """A column as floats (empty cells are NaN); a bad cell names its line and column."""
    if name not in columns:
        msg = f"{path}: no column {name!r} (columns: {', '.join(columns)})"
        raise UsageError(msg)
    values = []
    for i, cell in enumerate(columns[name]):
        if cell == "" or cell.upper() == "NA":
            values.append(math.nan)
            continue
        try:
            values.append(float(cell))
        except ValueError as exc:
            msg = f"{path}, line {i + 2}, column {name!r}: {cell!r} is not a number"
            raise UsageError(msg) from exc
    return values


def effect_sizes(
    args: argparse.Namespace, columns: dict[str, list[str]] | None = None
) -> tuple[Any, Any, Any, list[str]]:
    """(yi or EffectSizes, vi, sei, labels) from the CSV named in `args` (or its `columns`)."""
    path = args.file
    if columns is None:
        columns = read_table(path)
    n = len(next(iter(columns.values())))
    label_column = next((c for c in _LABEL_COLUMNS if c in columns), None)
    labels = columns[label_column] if label_column else [f"Study {i + 1}" for i in range(n)]
    if args.measure is None:
        if "yi" not in columns:
            msg = f"{path}: give --measure, or columns 'yi' and 'vi' (or 'sei')"
            raise UsageError(msg)
        yi = numeric_column(columns, "yi", path)
        if "vi" in columns:
            return yi, numeric_column(columns, "vi", path), None, labels
        if "sei" in columns:
            return yi, None, numeric_column(columns, "sei", path), labels
        msg = f"{path}: column 'yi' needs 'vi' or 'sei' beside it"
        raise UsageError(msg)
    known = {
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
    }
    given: dict[str, Any] = {
        name: numeric_column(columns, name, path) for name in columns if name in known
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", KetametaWarning)
            es = escalc(args.measure, **given)
    except KetametaWarning as exc:
        msg = f"{path}: {exc}"
        raise UsageError(msg) from exc
    except (TypeError, ValueError) as exc:
        msg = f"{path}: {_rows_one_based(str(exc))}"
        raise UsageError(msg) from exc
    return es, None, None, labels


def _rows_one_based(message: str) -> str:
    """escalc names 0-based study indices; on the command line, name the CSV line."""
    import re

    return re.sub(r"study (\d+)", lambda m: f"line {int(m.group(1)) + 2}", message)


def _pool(args: argparse.Namespace, columns: dict[str, list[str]] | None = None) -> PoolResult:
    yi, vi, sei, _ = effect_sizes(args, columns)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KetametaWarning)
            if isinstance(yi, EffectSizes):
                return pool(yi, method=args.method, test=args.test, level=args.level)
            return pool(yi, vi, sei=sei, method=args.method, test=args.test, level=args.level)
    except (TypeError, ValueError) as exc:
        msg = f"{args.file}: {_rows_one_based(str(exc))}"
        raise UsageError(msg) from exc


def _progress(done: int, total: int) -> None:
    """A progress bar on stderr, only on a terminal."""
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _pool_cells(args: argparse.Namespace) -> Any:
    """``--model mh|peto|glmm``: pool the cells of the CSV directly (Mantel-Haenszel, Peto
    or a GLMM) instead of their effect sizes."""
    from .binary import pool_glmm, pool_mh, pool_peto

    columns = read_table(args.file)
    n = len(next(iter(columns.values())))
    label_column = next((c for c in _LABEL_COLUMNS if c in columns), None)
    labels = columns[label_column] if label_column else [f"Study {i + 1}" for i in range(n)]
    cells = ("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i", "xi", "ni", "ti")
    given: dict[str, Any] = {
        name: numeric_column(columns, name, args.file) for name in cells if name in columns
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
        msg = f"{args.file}: {_rows_one_based(str(exc))}"
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
    result = _pool(args)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
    if args.forest:
        from .plot import forest

        _, _, _, labels = effect_sizes(args)
        kept = [lab for i, lab in enumerate(labels) if i not in set(result.omitted)]
        _save(forest(result, labels=kept), args.forest)
    return 0


def _pool_by(args: argparse.Namespace) -> int:
    columns = read_table(args.file)
    if args.by not in columns:
        msg = f"{args.file}: no column {args.by!r} to group by"
        raise UsageError(msg)
    keys = columns[args.by]
    groups = list(dict.fromkeys(keys))
    out: dict[str, Any] = {}
    for done, key in enumerate(groups, start=1):
        rows = [i for i, k in enumerate(keys) if k == key]
        out[key] = _pool(
            args, {name: [values[i] for i in rows] for name, values in columns.items()}
        )
        _progress(done, len(groups))
    if args.json:
        print(json.dumps({key: res.to_dict() for key, res in out.items()}, indent=2))
    else:
        print(f"{'group':20s} {'k':>3s} {'estimate':>9s} {'ci.lb':>8s} {'ci.ub':>8s} {'tau2':>8s}")
        for key, res in out.items():
            print(
                f"{key[:20]:20s} {res.k:3d} {res.estimate:9.4f} {res.ci_lower:8.4f} "
                f"{res.ci_upper:8.4f} {res.tau2:8.4f}"
            )
    return 0


def cmd_egger(args: argparse.Namespace) -> int:
    yi, vi, sei, _ = effect_sizes(args)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KetametaWarning)
            res = egger_test(
                yi,
                vi,
                sei=sei,
                model=args.model,
                predictor=args.predictor,
                method=args.method,
                test=args.test,
            )
    except (TypeError, ValueError) as exc:
        msg = f"{args.file}: {exc}"
        raise UsageError(msg) from exc
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.summary())
    return 0


def cmd_funnel(args: argparse.Namespace) -> int:
    from .plot import funnel

    result = _pool(args)
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

    report = analyse_crps()
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


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="CSV file (escalc column names, or yi and vi/sei)")
    p.add_argument("--measure", choices=sorted(MEASURES), help="effect size to compute")
    p.add_argument("--method", default="REML", choices=METHODS, help="tau^2 estimator")
    p.add_argument("--test", default="z", choices=TESTS, help="test for the pooled effect")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (0.95)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")


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
    p.add_argument("--by", metavar="COLUMN", help="one meta-analysis per value of COLUMN")
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
        return commands[args.command](args)
    except UsageError as exc:
        print(f"ketameta: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `ketameta | head`
        return 0
