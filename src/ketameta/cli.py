"""The ``ketameta`` command line.

``ketameta crps``           the analyses of the bundled CRPS ketamine dataset (default)
``ketameta example``        worked example on the bundled BCG vaccine trials
``ketameta pool FILE.csv``  effect sizes (``--measure``) or ``yi``/``vi`` columns, pooled
                            (``--model mh|peto|glmm``: the cells pooled directly;
                            ``--by COLUMN``: a subgroup analysis with the test for
                            subgroup differences, ``--tau2 separate|common``)
``ketameta metareg FILE.csv --mods "~ ablat + C(alloc)"``  meta-regression
``ketameta egger FILE.csv`` Egger's regression test
``ketameta funnel FILE.csv -o funnel.png``

CSV columns use escalc's argument names (``ai, bi, ci, di``, ``m1i, sd1i, n1i, ...``) or
``yi`` with ``vi``, ``sei`` or confidence limits (``--ci-lower``/``--ci-upper``); an
optional ``study`` (or ``label``) column names the rows. Names are matched in any case and
``--col NAME=COLUMN`` maps the others; the separator and decimal mark are detected
(``--sep``, ``--decimal``). Empty cells are missing values. Errors print one line naming
the file, row and column and exit with status 2 (reading: :mod:`ketameta._csvinput`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from . import datasets
from ._csvinput import (
    CI_ONLY_MEASURES,
    RATIO_MEASURES,
    Table,
    UsageError,
    cells,
    effect_sizes,
    group_labels,
    labels_of,
    moderators,
    numeric_column,
    parse_mapping,
    parse_sep,
    print_notes,
    read_table,
)
from ._warnings import KetametaWarning, OmittedStudiesWarning
from .bias import egger_test
from .effect_sizes import MEASURES, EffectSizes, escalc
from .pooling import METHODS, TESTS, PoolResult, pool

#: the axis names of the ratio measures' forest plots
_RATIO_NAMES = {
    "OR": "Odds ratio",
    "RR": "Risk ratio",
    "HR": "Hazard ratio",
    "IRR": "Incidence rate ratio",
    "ROM": "Ratio of means",
    "PETO": "Peto odds ratio",
}

__all__ = ["Table", "UsageError", "build_parser", "main", "numeric_column", "read_table"]


def _table(args: argparse.Namespace) -> Table:
    """The CSV file of a command, read with its --sep, --decimal and --col options."""
    return read_table(
        args.file,
        sep=getattr(args, "sep", None),
        decimal=getattr(args, "decimal", None),
        mapping=getattr(args, "col", None) or (),
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
            found = re.findall(r"\(index (\d+)\)", str(w.message))
            numbers = [str(table.lines[i]) for i in sorted({int(i) for i in found})]
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


def _summary(table: Table, result: Any) -> str:
    """A result's summary for the terminal, its omitted studies named by CSV line and
    label (the result's own lines name them by row index or label, which the file's
    reader cannot look up)."""
    text: str = result.summary()
    omitted = [int(i) for i in getattr(result, "omitted", ())]
    if not omitted:
        return text
    reasons = [str(r) for r in getattr(result, "omitted_reasons", ())]
    if len(reasons) != len(omitted):
        reasons = ["missing values"] * len(omitted)
    groups: dict[str, list[int]] = {}
    for i, reason in zip(omitted, reasons, strict=True):
        groups.setdefault(reason, []).append(i)
    labels = labels_of(table)
    named = []
    for reason, rows in groups.items():
        s = "s" if len(rows) > 1 else ""
        where = ", ".join(f"{table.lines[i]} ({labels[i]})" for i in rows)
        named.append(f"Omitted studies ({reason}): line{s} {where} of {table.path}")
    lines = text.splitlines()
    at = next((n for n, line in enumerate(lines) if line.startswith("Omitted studies (")), None)
    kept = [line for line in lines if not line.startswith("Omitted studies (")]
    if at is None:
        return "\n".join([*kept, *named])
    return "\n".join([*kept[:at], *named, *kept[at:]])


def _forest_scale(measure: str | None) -> dict[str, Any]:
    """The forest plot's scale: a ratio measure back-transformed (ratios on a log axis),
    named on the axis; another measure named on the axis."""
    if measure in RATIO_MEASURES:
        name = _RATIO_NAMES.get(measure, measure)
        return {"transform": "exp", "xlabel": f"{name} (log scale)"}
    if measure in MEASURES:  # on the analysis scale ("Risk difference", "Logit proportion")
        return {"xlabel": _axis_name(measure)}
    return {}


def _axis_name(measure: str | None) -> str | None:
    """The name of the analysis scale of `measure` for a plot axis ("Log risk ratio")."""
    if measure is None:
        return None
    if measure == "HR":
        return "Log hazard ratio"
    name = re.split(r" \(|;|,", MEASURES[measure])[0]
    return name[:1].upper() + name[1:]


def _pool(args: argparse.Namespace, table: Table, what: str = "") -> PoolResult:
    yi, vi, sei, labels = effect_sizes(args, table)
    table.note_unused()
    # (the CSV's labels: the summary and the forest name the studies, omitted ones too)
    options = {"method": args.method, "test": args.test, "level": args.level, "labels": labels}

    def fit() -> PoolResult:
        if isinstance(yi, EffectSizes):
            return pool(yi, **options)
        return pool(yi, vi, sei=sei, **options)

    result: PoolResult = _run(table, fit, what)
    return result


def _pool_cells(args: argparse.Namespace) -> tuple[Table, Any]:
    """``--model mh|peto|glmm``: pool the cells of the CSV directly (Mantel-Haenszel, Peto
    or a GLMM) instead of their effect sizes."""
    from .binary import pool_glmm, pool_mh, pool_peto

    table = _table(args)
    labels = labels_of(table)
    names = ("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i", "xi", "ni", "ti")
    given: dict[str, Any] = cells(table, names)
    table.note_unused()
    options: dict[str, Any] = {"level": args.level, "labels": labels}
    if args.measure is not None:
        options["measure"] = args.measure

    def fit() -> Any:
        if args.model == "mh":
            return pool_mh(**given, **options)
        if args.model == "peto":
            options.pop("measure", None)
            return pool_peto(**given, **options)
        method = "EE" if args.method in ("EE", "FE", "CE") else "ML"
        return pool_glmm(**given, **options, method=method)

    # (studies left out, zero cells: reported with their CSV lines, never silently)
    return table, _run(table, fit)


def cmd_pool(args: argparse.Namespace) -> int:
    if args.model != "rma":
        if args.by:
            msg = "--by works with --model rma only"
            raise UsageError(msg)
        table, res = _pool_cells(args)
        print(json.dumps(res.to_dict(), indent=2) if args.json else _summary(table, res))
        if args.forest:
            from .plot import forest

            scale = _forest_scale(getattr(res, "measure", None) or args.measure)
            if getattr(res, "is_ratio", False):  # (IRR of counts, OR of tables, ...)
                scale["transform"] = "exp"
            _save(forest(res, **scale), args.forest)
        return 0
    if args.by:
        return _pool_by(args)
    table = _table(args)
    result = _pool(args, table)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(_summary(table, result))
    if args.forest:
        from .plot import forest

        _save(forest(result, **_forest_scale(args.measure)), args.forest)
    return 0


def _pool_by(args: argparse.Namespace) -> int:
    """``--by COLUMN``: the subgroup analysis (each group pooled, all studies pooled, the
    test for subgroup differences), printed as a table or as JSON."""
    from .subgroups import subgroups

    table = _table(args)
    by = table.column(args.by, " to group by")
    keys = table.columns[by]
    labels = group_labels(table, by)
    yi, vi, sei, study_labels = effect_sizes(args, table)
    table.note_unused()
    options = {
        "groups": by,
        "data": {by: labels},
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
        return f" (group {by} = {keys[int(found[1])]!r})" if found else ""

    result = _run(table, fit, group_of)
    print(json.dumps(result.to_dict(), indent=2) if args.json else _summary(table, result))
    if args.forest:
        from .plot import forest

        _save(forest(result, **_forest_scale(args.measure)), args.forest)
    return 0


def cmd_egger(args: argparse.Namespace) -> int:
    table = _table(args)
    yi, vi, sei, labels = effect_sizes(args, table)
    table.note_unused()
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
    print(json.dumps(res.to_dict(), indent=2) if args.json else _summary(table, res))
    return 0


def cmd_metareg(args: argparse.Namespace) -> int:
    """``ketameta metareg FILE --mods SPEC``: meta-regression (metafor's
    ``rma(yi, vi, mods = ...)``) on moderator columns or a formula."""
    from .metareg import metareg

    table = _table(args)
    yi, vi, sei, _ = effect_sizes(args, table)
    mods, data = moderators(table, args.mods)
    table.note_unused()
    btt: Any = None
    if args.btt is not None:
        btt = [int(b) if b.strip().isdigit() else b.strip() for b in args.btt.split(",")]
    options: dict[str, Any] = {
        "mods": mods,
        "data": data,
        "method": args.method,
        "test": args.test,
        "level": args.level,
        "btt": btt,
    }

    def fit() -> Any:
        if isinstance(yi, EffectSizes):
            return metareg(yi, **options)
        return metareg(yi, vi, sei=sei, **options)

    result = _run(table, fit)
    print(json.dumps(result.to_dict(), indent=2) if args.json else _summary(table, result))
    return 0


def cmd_funnel(args: argparse.Namespace) -> int:
    from .plot import funnel

    result = _pool(args, _table(args))
    _save(funnel(result, xlabel=_axis_name(args.measure)), args.output)
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
_DEFAULTS = {"method": "REML", "test": "z", "level": 0.95, "json": False, "ci_level": 0.95}

#: the measures ``--measure`` takes: escalc's, and those read from confidence limits only
_MEASURE_CHOICES = sorted({*MEASURES, *CI_ONLY_MEASURES})


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file",
        help="CSV file: escalc's column names (with --measure), or yi with vi, sei or "
        "confidence limits (--ci-lower/--ci-upper); a 'study' column labels the rows",
    )
    p.add_argument(
        "--measure",
        choices=_MEASURE_CHOICES,
        metavar="MEASURE",
        help="effect size computed from the columns (escalc's measures: OR, RR, RD, SMD, "
        "MD, ...); with --ci-lower/--ci-upper, what the estimates are (HR there only)",
    )
    p.add_argument("--method", choices=METHODS, help="tau^2 estimator (REML)")
    p.add_argument("--test", choices=TESTS, help="test for the pooled effect (z)")
    p.add_argument("--level", type=_level, help="confidence level of the results (0.95)")
    p.add_argument("--json", action="store_true", default=None, help="print the result as JSON")
    g = p.add_argument_group("reading the CSV file")
    g.add_argument(
        "--sep",
        type=parse_sep,
        metavar="SEP",
        help="column separator: ',', ';', 'tab' or '|' (default: detected from the file)",
    )
    g.add_argument(
        "--decimal",
        choices=(".", ","),
        metavar="MARK",
        help="decimal mark, '.' or ',' (default: detected; a decimal comma is detected in "
        "files separated by ';' or tabs)",
    )
    g.add_argument(
        "--col",
        type=parse_mapping,
        action="append",
        metavar="NAME=COLUMN",
        help="read input NAME (ai, bi, ci, di, n1i, m1i, sd1i, yi, vi, sei, study, ...) from "
        "the file's column COLUMN; repeat for each. Without it, inputs are found by name "
        "in any case; other columns are ignored (a note names them)",
    )
    g = p.add_argument_group(
        "effects with confidence limits",
        "An estimate per study (column yi, or --col yi=COLUMN) with its confidence limits, "
        "as papers print them. With a ratio --measure (OR, RR, HR, IRR, ROM, PETO) the "
        "estimate and limits are ratios on their natural scale (e.g. 1.37, CI 1.03 to "
        "1.82) and are log-transformed; otherwise they are used as given (e.g. MD, SMD, "
        "RD, or log ratios without --measure). The standard error is the width of the "
        "interval on the analysis scale over 2 z; an interval not around its estimate is "
        "refused.",
    )
    g.add_argument("--ci-lower", metavar="COLUMN", help="column of the lower limits")
    g.add_argument("--ci-upper", metavar="COLUMN", help="column of the upper limits")
    g.add_argument(
        "--ci-level", type=_level, metavar="LEVEL", help="level of those intervals (0.95)"
    )


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


def _require(module: str, extra: str, what: str) -> None:
    """Refuse early, in one line, an option whose optional dependency is missing."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        msg = f"{what} needs {module}: pip install 'ketameta[{extra}]'"
        raise UsageError(msg) from exc


def _options(args: argparse.Namespace) -> argparse.Namespace:
    """Refuse the options a command cannot use (instead of ignoring them), and those
    whose optional dependency is missing; fill defaults."""
    unused: list[str] = []
    given = {name for name in vars(args) if getattr(args, name) not in (None, False)}
    if args.command == "egger" and getattr(args, "model", "lm") == "lm":
        # the classic test is a weighted regression with its own t test
        unused += [f"--{o}" for o in ("method", "test") if getattr(args, o) is not None]
        if unused:
            unused[-1] += " (used only with --model rma)"
    if args.command == "pool" and args.tau2 is not None and not args.by:
        unused.append("--tau2 (used only with --by)")
    if args.command == "pool" and args.model != "rma":
        # the cells are pooled directly: no effect sizes, no tau^2 estimator but the GLMM's
        cell_unused = ["test", "ci_lower", "ci_upper", "ci_level"]
        glmm_method = args.method in (None, "EE", "FE", "CE", "ML")
        if args.model != "glmm" or not glmm_method:
            cell_unused.insert(0, "method")
        options = [f"--{o.replace('_', '-')}" for o in cell_unused if o in given]
        if options:
            why = ""
            if "method" in given:
                why = " (it takes --method ML or EE)" if args.model == "glmm" else ""
                why = why or " (no tau^2 is estimated)"
            unused.append(f"{', '.join(options)} with --model {args.model}{why}")
        if args.model == "glmm" and args.forest:  # (plot.forest has no GLMM layout)
            unused.append("--forest with --model glmm (no per-study weights)")
    if args.command == "funnel":
        unused += [f"--{o}" for o in ("test", "json") if getattr(args, o) is not None]
    if "ci_level" in given and "ci_lower" not in given and "ci_lower" not in unused:
        unused.append("--ci-level (used only with --ci-lower/--ci-upper)")
    if unused:
        msg = f"ketameta {args.command} cannot use {', '.join(unused)}"
        raise UsageError(msg)
    if ("ci_lower" in given) != ("ci_upper" in given):
        msg = "--ci-lower and --ci-upper go together (the columns of both limits)"
        raise UsageError(msg)
    measure = getattr(args, "measure", None)
    if measure in CI_ONLY_MEASURES and "ci_lower" not in given:
        msg = (
            f"--measure {measure} is read from estimates with confidence limits "
            "(--ci-lower/--ci-upper), not computed from columns"
        )
        raise UsageError(msg)
    if getattr(args, "forest", None) or args.command == "funnel":
        _require("matplotlib", "plot", "--forest" if args.command != "funnel" else "funnel")
    if args.command == "metareg" and "~" in args.mods:
        _require("formulaic", "formula", "a formula in --mods")
    for name, default in _DEFAULTS.items():
        if getattr(args, name, default) is None:
            setattr(args, name, default)
    return args


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, as the command's other errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"ketameta: error: {message} (see {self.prog} --help)\n")


def _one_line(message: str) -> str:
    """An error message on one line: terminal colour codes removed, line breaks joined."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ketameta",
        description="Meta-analysis primitives, exact to metafor. Without a command: the "
        "analyses of the bundled CRPS dataset (ketameta crps).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("crps", help="analyses of the bundled CRPS ketamine dataset (default)")
    p.add_argument("--forest", metavar="DIR", help="write the forest plots into DIR")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    sub.add_parser("example", help="worked example on the BCG vaccine trials")
    p = sub.add_parser("pool", help="pool the studies of a CSV file")
    _add_input(p)
    p.add_argument(
        "--forest",
        metavar="PNG",
        help="write a forest plot (with --by: by subgroup; ratio measures as ratios on a "
        "log axis)",
    )
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
    p = sub.add_parser(
        "metareg", help="meta-regression of the effect sizes on moderators (metafor's mods=)"
    )
    _add_input(p)
    p.add_argument(
        "--mods",
        required=True,
        metavar="SPEC",
        help="the moderators: column names separated by commas (ablat,year) or a formula "
        "('~ ablat + C(alloc)'; needs the formula extra); text columns are factors",
    )
    p.add_argument(
        "--btt",
        metavar="COEFS",
        help="coefficients of the test of moderators: names or 0-based indices separated "
        "by commas (default: all but the intercept)",
    )
    p = sub.add_parser("egger", help="Egger's regression test")
    _add_input(p)
    p.add_argument(
        "--model",
        default="lm",
        choices=("lm", "rma"),
        help="lm: the classic weighted regression (default); rma: the mixed-effects version "
        "(metafor's regtest default), which takes --method and --test",
    )
    p.add_argument(
        "--predictor",
        default="sei",
        choices=("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv"),
        help="the predictor of the regression (sei: standard error; ni and its "
        "transformations need --measure with sample sizes)",
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
        "metareg": cmd_metareg,
        "crps": cmd_crps,
    }
    if args.command is None:  # the main job: the bundled CRPS dataset
        args = parser.parse_args(["crps"])
    print_notes(discard=True)
    try:
        status = commands[args.command](_options(args))
    except UsageError as exc:
        print_notes(discard=True)  # the error alone, on one line
        print(f"ketameta: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `ketameta | head`
        return 0
    except ImportError as exc:  # an optional dependency (its message has the install hint)
        print_notes(discard=True)
        if "pip install" not in str(exc):
            raise
        print(f"ketameta: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    print_notes()  # notes about the input (separator, unused columns) after success
    return status
