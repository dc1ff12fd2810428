"""Forest, funnel and bubble plots (matplotlib, from the ``plot`` extra, imported only when
drawing).

References
----------
.. [1] Lewis, S., & Clarke, M. (2001). Forest plots: trying to see the wood and the trees.
   BMJ, 322(7300), 1479-1480. https://doi.org/10.1136/bmj.322.7300.1479
.. [2] Sterne, J. A. C., & Egger, M. (2001). Funnel plots for detecting bias in
   meta-analysis: Guidelines on choice of axis. Journal of Clinical Epidemiology, 54(10),
   1046-1055. https://doi.org/10.1016/S0895-4356(01)00377-8
.. [4] Röver, C. (2020). Bayesian random-effects meta-analysis using the bayesmeta R
   package. Journal of Statistical Software, 93(6), 1-51.
   https://doi.org/10.18637/jss.v093.i06
.. [3] Peters, J. L., Sutton, A. J., Jones, D. R., Abrams, K. R., & Rushton, L. (2008).
   Contour-enhanced meta-analysis funnel plots help distinguish publication bias from
   other causes of asymmetry. Journal of Clinical Epidemiology, 61(10), 991-996.
   https://doi.org/10.1016/j.jclinepi.2007.11.010
.. [5] Thompson, S. G., & Higgins, J. P. T. (2002). How should meta-regression analyses be
   undertaken and interpreted? Statistics in Medicine, 21(11), 1559-1573.
   https://doi.org/10.1002/sim.1187
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from . import _forest, _transf
from ._typing import IntArray
from ._validation import check_level, critical_value
from .bias import TrimFillResult
from .binary import GLMMResult, MHResult, PetoResult
from .metareg import MetaRegResult
from .pooling import PoolResult
from .sensitivity import CumulativeResult, LeaveOneOutResult
from .subgroups import SubgroupResult, subgroups

__all__ = ["bayes_forest", "bubble", "forest", "funnel", "posterior", "selection"]

#: with transf="exp", log ratios are drawn within ±log(1e100)
_LOG_CAP = _forest.LOG_CAP
_MAX_LABEL = 32  # (bubble plots only: labels beside the circles)
_UNSET: Any = object()


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = "plots need matplotlib: pip install 'ketameta[plot]'"
        raise ImportError(msg) from exc
    return plt


def _transform(transform: Any, name: str = "transform") -> Callable[[Any], Any]:
    """A back-transformation by name (the registry of :mod:`ketameta._transf`, with the
    aliases "expit", "inv_logit", "tanh") or a function; None: none."""
    if transform is None:
        return lambda x: np.asarray(x, dtype=float)
    if callable(transform):
        return transform  # type: ignore[no-any-return]
    try:
        resolved = _transf.resolve(transform, None)
    except ValueError:
        msg = f"unknown `{name}` {transform!r}; use one of {_transform_names()} or a function"
        raise ValueError(msg) from None
    if resolved.needs_n or transform == "auto":
        msg = f"unknown `{name}` {transform!r}; use one of {_transform_names()} or a function"
        raise ValueError(msg)
    return lambda x: resolved(x)


def _transform_names() -> list[str]:
    names = {*_transf.TRANSFORMS, *_transf.ALIASES} - {"ipft", "inv_freeman_tukey"}
    return sorted(names)


def _short(label: str) -> str:
    label = str(label)
    return label if len(label) <= _MAX_LABEL else label[: _MAX_LABEL - 1] + "…"


# -- forest plots -----------------------------------------------------------------------------


def _scale(
    result: Any, transf: Any, transform: Any, digits: int, core: Sequence[float]
) -> tuple[_forest.Scale, str, Any]:
    """The drawing scale of a forest: the back-transformation `transf` resolved against the
    result's measure, the window of the axis, the name of the scale and the null."""
    name = "transf"
    if transform is not _UNSET:  # (the earlier name of `transf`)
        transf, name = transform, "transform"
    measure = getattr(result, "measure", None)
    if measure not in _transf.SCALES:
        measure = None
    if isinstance(transf, str) and transf != "auto":
        _transform(transf, name)  # (the names a plot accepts)
    resolved = _transf.resolve(transf, measure)
    exp = resolved.name == "exp"
    sc = _forest.Scale(
        resolved,
        exp=exp,
        digits=_check_digits(digits),
        window=_forest.window(core, exp),
        ratio=exp or resolved.scale in ("proportion", "incidence rate"),
    )
    null = _transf.scale(measure).null if measure is not None else 0.0
    return sc, resolved.scale, null


def _check_digits(digits: Any) -> int:
    if (
        isinstance(digits, bool)
        or not isinstance(digits, int | np.integer)
        or not 0 <= digits <= 6
    ):
        msg = f"`digits` must be an integer from 0 to 6, got {digits!r}"
        raise ValueError(msg)
    return int(digits)


def _refline(refline: Any, null: float | None, sc: _forest.Scale) -> float | None:
    value = null if isinstance(refline, str) and refline == "auto" else refline
    if value is None:
        return None
    if not (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(value)
    ):
        msg = f"`refline` must be a finite number on the analysis scale or None, got {refline!r}"
        raise ValueError(msg)
    return sc.draw(float(value))


def _favours(favours: Any) -> tuple[str, str] | None:
    if favours is None:
        return None
    if isinstance(favours, str) or len(favours) != 2:
        msg = (
            "`favours` must be two labels (left of the null, right of it), "
            "e.g. ('Favours treatment', 'Favours control')"
        )
        raise ValueError(msg)
    return (str(favours[0]), str(favours[1]))


def _arms(arms: Any) -> tuple[str, str]:
    if arms is None:
        return _forest.ARMS
    if isinstance(arms, str) or len(arms) != 2:
        msg = "`arms` must name the two groups, e.g. ('Vaccinated', 'Not vaccinated')"
        raise ValueError(msg)
    return (str(arms[0]), str(arms[1]))


def _labels_for(
    given: Any, n_input: int, used: Sequence[int] | IntArray, default: Sequence[str]
) -> list[str]:
    """One label per input study: `given` for every input study or for the studies used
    (then the omitted ones keep their default labels), or the result's own."""
    if given is None:
        return list(default)
    names = [str(x) for x in given]
    if len(names) == n_input:
        return names
    if len(names) == len(used):
        out = list(default)
        for i, name in zip(used, names, strict=True):
            out[int(i)] = name
        return out
    counts = f"{len(used)}" if len(used) == n_input else f"{len(used)} (or {n_input} with omitted)"
    msg = f"`labels` has {len(names)} entries but the model has {counts} studies"
    raise ValueError(msg)


def _model_name(res: Any) -> tuple[str, str]:
    """The pooled row's label and the model in the column header ("IV, Random")."""
    if getattr(res, "method", "EE") == "EE":
        return "Common-effect model", "IV, Common"
    return "Random-effects model", "IV, Random"


def _heterogeneity(res: Any, *, tau2: bool = True, extra: str = "") -> str:
    parts = []
    if tau2 and getattr(res, "method", "EE") != "EE":
        parts.append(f"τ² = {_forest.sig_text(res.tau2)}{extra}")
    df = res.q_df
    parts.append(f"Q = {_forest.stat_text(res.q)}, df = {df} ({_forest.p_text(res.q_pvalue)})")
    parts.append(f"I² = {res.i2:.0f}%")
    return "Heterogeneity: " + "; ".join(parts)


def _overall_test(res: Any) -> str:
    df = math.inf if getattr(res, "test", "z") == "z" else getattr(res, "df", math.inf)
    return _test_line(res.statistic, df, res.pvalue)


def _test_line(statistic: float, df: float, pvalue: float) -> str:
    """The test for the overall effect: z without degrees of freedom, else t with them."""
    if math.isfinite(df):
        stat = f"t = {_forest.stat_text(statistic)}, df = {df:g}"
    else:
        stat = f"z = {_forest.stat_text(statistic)}"
    return f"Test for overall effect: {stat} ({_forest.p_text(pvalue)})"


def _effect_header(scale_name: str, model: str, level: float) -> str:
    name = scale_name[:1].upper() + scale_name[1:]
    return f"{name}\n{model}, {100 * level:g}% CI"


def _effect_columns(data: list[Any], header: str, *, show_weights: bool) -> list[_forest.Column]:
    """The columns of a forest of studies: label, data, effect [CI] and (optionally) weight."""
    columns = [
        _forest.Column("study", "Study"),
        *data,
        _forest.Column("effect", header, side="right", parts=3),
    ]
    if show_weights:
        columns.append(_forest.Column("weight", "Weight", side="right", align="right"))
    return columns


def _omitted_text(inputs: Any, row: int) -> str:
    if inputs is not None and inputs.size and np.isfinite(inputs[row]).all():
        return "not estimable"
    return "missing data"


class _Builder:
    """Rows of a forest of studies with a pooled result (PoolResult, subgroups): the
    studies of `res` (its weights, inputs and labels; NaN at the omitted ones), drawn on
    the scale of `scaled`'s measure (default `res`'s) in a window around `core`."""

    def __init__(
        self,
        res: Any,
        core: list[float],
        *,
        scaled: Any = None,
        labels: Any,
        transf: Any,
        transform: Any,
        digits: int,
        arms: Any,
        show_data: bool,
        show_weights: bool,
        show_omitted: bool,
    ) -> None:
        self.res = res
        n_input = res.k + len(res.omitted)
        used = res.used
        self.names = _labels_for(labels, n_input, used, res.study_labels)
        self.y, self.v, self.w = (np.full(n_input, np.nan) for _ in range(3))
        self.y[used], self.v[used], self.w[used] = res.yi, res.vi, res.weights
        self.crit = float(critical_value(res.level))
        self.sc, scale_name, self.null = _scale(
            res if scaled is None else scaled, transf, transform, digits, core
        )
        self.label, model = _model_name(res)
        self.header = _effect_header(scale_name, model, res.level)
        self.inputs = res.inputs if res.input_names else None
        self.input_names = tuple(res.input_names)
        cols, self.data_cells, self.data_kind = (
            _forest.data_columns(self.input_names, _arms(arms), res.inputs)
            if show_data and self.input_names
            else ([], (lambda x: {}), "")
        )
        self.show_weights = show_weights
        self.show_omitted = show_omitted
        self.columns = _effect_columns(cols, self.header, show_weights=show_weights)
        _, self.ni = res._transf_n()

    def table(self, rows: list[Any]) -> _forest.Table:
        return _forest.Table(self.columns, rows, panel_header=self.header)

    def study(self, i: int) -> Any:
        """Input study `i`: its square and interval, or a grey line if it was omitted."""
        y, v, w = self.y[i], self.v[i], self.w[i]
        n = None if self.ni is None else self.ni[i]
        cells: dict[str, Any] = {"study": self.names[i]}
        if self.inputs is not None:
            cells.update(self.data_cells(self.inputs[i]))
        if not math.isfinite(y):
            cells["effect"] = (_omitted_text(self.inputs, i), "", "")
            return _forest.Row("text", cells=cells, color="0.45")
        half = self.crit * math.sqrt(v)
        cells["effect"] = self.sc.cell(y, y - half, y + half, n)
        if self.show_weights and math.isfinite(w):
            cells["weight"] = f"{w:.1f}%"
        return self.sc.row("study", y, y - half, y + half, n, cells=cells, weight=w)

    def pooled(
        self,
        fit: Any,
        label: str,
        rows: Sequence[int] | IntArray,
        *,
        weight: float | None,
        pi: bool,
        het: str,
        test: str,
        shade: str = "black",
        est: tuple[float, float, float] | None = None,
    ) -> list[Any]:
        n_pooled = fit._transf_n()[0] if hasattr(fit, "_transf_n") else None
        e, lo, hi = est if est is not None else (fit.estimate, fit.ci_lower, fit.ci_upper)
        n_tot, e_tot = _forest.totals(self.data_kind, self.input_names, self.inputs, rows)
        cells: dict[str, Any] = {
            "study": label,
            **n_tot,
            "effect": self.sc.cell(e, lo, hi, n_pooled),
        }
        if self.show_weights and weight is not None:
            cells["weight"] = f"{weight:.1f}%"
        out = [self.sc.row("diamond", e, lo, hi, n_pooled, cells=cells, bold=True, shade=shade)]
        if e_tot:
            out.append(_forest.Row("text", cells={"study": "Total events", **e_tot}))
        if pi and math.isfinite(fit.pred_lower):
            lo_p, hi_p = fit.pred_lower, fit.pred_upper
            t = self.sc
            out.append(
                t.row(
                    "pi",
                    math.nan,
                    lo_p,
                    hi_p,
                    n_pooled,
                    cells={
                        "study": "Prediction interval",
                        "effect": (
                            "",
                            f"[{t.text(lo_p, n_pooled)},",
                            f"{t.text(hi_p, n_pooled)}]",
                        ),
                    },
                )
            )
        if het:
            out.append(_forest.Row("span", text=het))
        if test:
            out.append(_forest.Row("span", text=test))
        return out

    def overall(self, fit: Any, label: str) -> list[Any]:
        """The pooled model of all studies: its diamond, prediction interval (random
        effects), heterogeneity and test (when the scale has a null)."""
        random = fit.method != "EE"
        return self.pooled(
            fit,
            label,
            self.res.used,
            weight=100.0,
            pi=random,
            het=_heterogeneity(fit, extra=f" ({fit.method})" if random else ""),
            test=_overall_test(fit) if self.null is not None else "",
        )


def _pool_table(res: PoolResult, **options: Any) -> tuple[_forest.Table, float | None]:
    core = [*res.yi, res.ci_lower, res.ci_upper]
    if res.method != "EE":
        core += [res.pred_lower, res.pred_upper]
    b = _Builder(res, core, **options)
    rows = [b.study(i) for i in range(len(b.y)) if b.show_omitted or math.isfinite(b.y[i])]
    rows += b.overall(res, b.label)
    return b.table(rows), b.null


def _subgroup_table(sub: SubgroupResult, **options: Any) -> tuple[_forest.Table, float | None]:
    full = attrs.evolve(
        sub.overall,
        omitted=sub.omitted,
        omitted_reasons=sub.omitted_reasons,
        labels=sub.study_labels,
        inputs=sub.inputs,
        input_names=sub.input_names,
    )
    est, _, lo, hi = sub._estimates()
    core = [*sub.yi, *lo, *hi, full.ci_lower, full.ci_upper]
    if sub.method != "EE":
        core += [full.pred_lower, full.pred_upper]
    b = _Builder(full, core, scaled=sub, **options)
    group_of = np.full(len(b.y), -1)
    group_of[sub.used] = sub.group
    rows: list[Any] = []
    common = sub.common
    for g, name in enumerate(sub.level_names):
        fit = sub.per_group[g]
        members = np.flatnonzero(group_of == g)
        rows.append(_forest.Row("header", text=name, bold=True))
        rows += [b.study(int(i)) for i in members]
        if common is not None:
            het = _heterogeneity(fit, tau2=False)
            test = _test_line(
                float(common.statistic[g]), float(common.df), float(common.pvalue[g])
            )
        else:
            het = _heterogeneity(fit) if fit.k > 1 else "Heterogeneity: not applicable (one study)"
            test = _overall_test(fit) if b.null is not None else ""
        rows += b.pooled(
            fit,
            f"Subtotal ({fit.k} {'study' if fit.k == 1 else 'studies'})",
            members,
            weight=float(np.nansum(b.w[members])),
            pi=False,
            het=het,
            test=test,
            shade="0.45",
            est=(est[g], lo[g], hi[g]),
        )
        rows.append(_forest.Row("text"))
    omitted_rows = np.flatnonzero(group_of < 0)
    if b.show_omitted and omitted_rows.size:
        rows.append(_forest.Row("header", text="Omitted", bold=True, color="0.45"))
        rows += [b.study(int(i)) for i in omitted_rows]
        rows.append(_forest.Row("text"))
    tau_note = ""
    if common is not None:
        tau_note = f" (common to the subgroups: {_forest.sig_text(common.tau2)})"
    rows += b.overall(full, f"{b.label} (all studies)")
    rows.append(_forest.Row("span", text=_subgroup_test(sub) + tau_note))
    return b.table(rows), b.null


def _subgroup_test(sub: SubgroupResult) -> str:
    """The test for subgroup differences as a journal prints it."""
    if len(sub.levels) == 1:
        return "Test for subgroup differences: not applicable (one subgroup)"
    if math.isnan(sub.q_between):
        return "Test for subgroup differences: undefined (a standard error of 0)"
    p = _forest.p_text(sub.q_between_pvalue)
    if sub.q_between_distribution == "F":
        stat = (
            f"F = {_forest.stat_text(sub.q_between)}, df = {sub.q_between_df}, "
            f"{sub.q_between_df_residual:g}"
        )
    else:
        stat = f"Q = {_forest.stat_text(sub.q_between)}, df = {sub.q_between_df}"
    return f"Test for subgroup differences: {stat} ({p})"


def _sensitivity_table(
    res: LeaveOneOutResult | CumulativeResult,
    *,
    labels: Any,
    transf: Any,
    transform: Any,
    digits: int,
) -> tuple[_forest.Table, float | None, float | None]:
    loo = isinstance(res, LeaveOneOutResult)
    n_input = len(res.study_labels)
    names = _labels_for(labels, n_input, res.study.tolist(), res.study_labels)
    overall = res.overall if isinstance(res, LeaveOneOutResult) else None
    core = [*res.estimate, *res.ci_lower, *res.ci_upper]
    if overall is not None:
        core += [overall.ci_lower, overall.ci_upper]
    sc, scale_name, null = _scale(res, transf, transform, digits, core)
    pct = f"{100 * res.level:g}%"
    name = scale_name[:1].upper() + scale_name[1:]
    columns = [
        _forest.Column("study", "Study left out" if loo else "Study added"),
        _forest.Column("effect", f"{name}\n[{pct} CI]", side="right", parts=3),
        _forest.Column("p", "p", side="right", align="right"),
        _forest.Column("tau2", "τ²", side="right", align="right"),
        _forest.Column("i2", "I²", side="right", align="right"),
    ]
    if not loo:
        columns.insert(1, _forest.Column("k", "k", side="left", align="right"))
    if overall is not None:  # the weight of the study left out, in the model of all studies
        columns.append(_forest.Column("weight", "Weight", side="right", align="right"))
    tau2_texts = _forest.column_texts(
        [*np.asarray(res.tau2, dtype=float).tolist(), *([overall.tau2] if overall else [])]
    )
    rows = []
    for j, s in enumerate(res.study.tolist()):
        cells: dict[str, Any] = {
            "study": ("" if loo else "+ ") + names[s],
            "effect": sc.cell(res.estimate[j], res.ci_lower[j], res.ci_upper[j]),
            "p": _forest.p_text(float(res.pvalue[j])).removeprefix("p = ").replace("p < ", "< "),
            "tau2": tau2_texts[j],
            "i2": f"{float(res.i2[j]):.0f}%",
        }
        if not loo:
            cells["k"] = str(int(res.k[j]))  # type: ignore[union-attr]
        if overall is not None:
            cells["weight"] = f"{float(overall.weights[j]):.1f}%"
        rows.append(
            sc.row("marker", res.estimate[j], res.ci_lower[j], res.ci_upper[j], cells=cells)
        )
    line = None
    if overall is not None:
        cells = {
            "study": f"All studies (k = {overall.k})",
            "effect": sc.cell(overall.estimate, overall.ci_lower, overall.ci_upper),
            "p": _forest.p_text(overall.pvalue).removeprefix("p = ").replace("p < ", "< "),
            "tau2": tau2_texts[-1],
            "i2": f"{overall.i2:.0f}%",
            "weight": "100.0%",
        }
        rows.append(_forest.Row("text"))
        rows.append(
            sc.row(
                "diamond",
                overall.estimate,
                overall.ci_lower,
                overall.ci_upper,
                cells=cells,
                bold=True,
            )
        )
        line = sc.draw(overall.estimate)
    elif len(res.estimate):
        line = sc.draw(float(res.estimate[-1]))
    omitted = _omitted_spans(res.omitted, res.omitted_reasons, res.study_labels)
    rows += omitted
    model = "common effect" if res.method == "EE" else f"random effects ({res.method})"
    what = (
        "each study left out in turn (weight: the study's in the model of all studies)"
        if loo
        else "studies added one at a time"
    )
    rows.append(_forest.Row("span", text=f"Model: {model}; {what}", italic=True))
    table = _forest.Table(columns, rows, panel_header=f"{name}\n{pct} CI")
    return table, null, line


def _omitted_spans(
    omitted: Sequence[int], reasons: Sequence[str], labels: Sequence[str]
) -> list[Any]:
    from .pooling import omitted_lines

    return [
        _forest.Row("span", text=line, color="0.35")
        for line in omitted_lines(omitted, reasons, labels)
    ]


def _binary_table(
    res: Any,
    *,
    labels: Any,
    transf: Any,
    transform: Any,
    digits: int,
    arms: Any,
    show_data: bool,
    show_weights: bool,
    show_omitted: bool,
) -> tuple[_forest.Table, float | None]:
    glmm = isinstance(res, GLMMResult)
    n_input = len(res.labels)
    used = [i for i in range(n_input) if i not in set(res.omitted)]
    names = _labels_for(labels, n_input, used, res.labels)
    lo_s, hi_s = _study_interval(res)
    core = [*res.yi[np.isfinite(res.yi)], res.ci_lower, res.ci_upper]
    sc, scale_name, null = _scale(res, transf, transform, digits, core)
    if glmm:
        model = f"GLMM, {'Common' if res.method == 'EE' else 'Random'}"
        label = f"GLMM ({res.model}, {res.method})"
    elif isinstance(res, PetoResult):
        model, label = "Peto, Common", "Peto model (common effect)"
    else:
        model, label = "M-H, Common", "Mantel-Haenszel model (common effect)"
    cols, data_cells, kind = (
        _forest.data_columns(res.cell_names, _arms(arms), res.cells)
        if show_data
        else ([], lambda x: {}, "")
    )
    weights = None if glmm else res.weights
    header = _effect_header(scale_name, model, res.level)
    columns = _effect_columns(cols, header, show_weights=show_weights and weights is not None)
    notes = res.notes() if hasattr(res, "notes") else [""] * n_input
    rows = []
    for i in range(n_input):
        cells: dict[str, Any] = {"study": names[i], **data_cells(res.cells[i])}
        y = float(res.yi[i])
        if i in set(res.omitted) or not math.isfinite(y):
            if not show_omitted and i in set(res.omitted):
                continue
            note = notes[i].split(":")[0] if notes[i] else "not estimable"
            cells["effect"] = (
                {"omitted": "missing data", "no study-level effect": "not estimable"}.get(
                    note, note
                ),
                "",
                "",
            )
            if weights is not None and show_weights and math.isfinite(weights[i]):
                cells["weight"] = f"{weights[i]:.1f}%"
            rows.append(_forest.Row("text", cells=cells, color="0.45"))
            continue
        cells["effect"] = sc.cell(y, lo_s[i], hi_s[i])
        w = None if weights is None else float(weights[i])
        if w is not None and show_weights:
            cells["weight"] = f"{w:.1f}%"
        rows.append(
            sc.row(
                "study" if w is not None else "marker", y, lo_s[i], hi_s[i], cells=cells, weight=w
            )
        )
    n_tot, e_tot = _forest.totals(kind, res.cell_names, res.cells, used)
    cells = {"study": label, **n_tot, "effect": sc.cell(res.estimate, res.ci_lower, res.ci_upper)}
    if weights is not None and show_weights:
        cells["weight"] = "100.0%"
    rows.append(
        sc.row("diamond", res.estimate, res.ci_lower, res.ci_upper, cells=cells, bold=True)
    )
    if e_tot:
        rows.append(_forest.Row("text", cells={"study": "Total events", **e_tot}))
    if glmm:
        parts = []
        if res.method != "EE":
            parts.append(f"τ² = {_forest.sig_text(res.tau2)}")
        parts.append(
            f"Wald Q = {_forest.stat_text(res.qe_wald)}, LRT = {_forest.stat_text(res.qe_lrt)}, "
            f"df = {res.qe_df} ({_forest.p_text(res.qe_lrt_pvalue)})"
        )
        parts.append(f"I² = {res.i2:.0f}%")
        het = "Heterogeneity: " + "; ".join(parts)
    else:
        het = _heterogeneity(res, tau2=False)
    rows.append(_forest.Row("span", text=het))
    if null is not None:
        rows.append(_forest.Row("span", text=_overall_test(res)))
    tail = list(getattr(res, "double_zero", ()))
    if tail:
        rows.append(
            _forest.Row(
                "span",
                text="Double zero (no events in either group): " + ", ".join(tail),
                color="0.35",
            )
        )
    dropped = list(getattr(res, "dropped", ()))
    if dropped:
        rows.append(
            _forest.Row("span", text="Dropped (double zero): " + ", ".join(dropped), color="0.35")
        )
    table = _forest.Table(columns, rows, panel_header=header)
    return table, null


def _study_interval(res: Any) -> tuple[Any, Any]:
    crit = float(critical_value(res.level))
    with np.errstate(invalid="ignore"):
        half = crit * np.sqrt(res.vi)
    return res.yi - half, res.yi + half


def forest(
    result: object,
    *,
    labels: Sequence[str] | None = None,
    groups: Sequence[Any] | None = None,
    transf: Any = "auto",
    xlabel: str | None = None,
    refline: Any = "auto",
    favours: Sequence[str] | None = None,
    arms: Sequence[str] | None = None,
    show_data: bool = True,
    show_weights: bool = True,
    show_omitted: bool = True,
    digits: int = 2,
    ax: Any = None,
    transform: Any = _UNSET,
) -> Any:
    """Forest plot for a paper (the layout of RevMan and meta's ``forest.meta``) [1]_.

    A table of columns around the plot: the studies (by label, never cut: the figure grows
    to fit), the data each study contributes (events and totals per group for 2×2 tables,
    mean, SD and total per group for continuous outcomes, events and person-time for
    rates — when the effect sizes came from :func:`ketameta.escalc` or a 2×2 model), the
    effect with its confidence interval on the natural scale, and the weight. Each study
    is a square of area proportional to its weight, with its interval; the pooled
    estimate is a diamond, with the totals of the data columns and a "Total events" row;
    the prediction interval has its own row (a bar, and its limits printed); beneath, the
    heterogeneity (τ², Q, df, p, I²) and the test for the overall effect. Ratio measures
    are drawn on a log axis ticked at 0.1, 0.2, 0.5, 1, 2, 5, 10; `favours` labels go
    under the axis, left and right of the null.

    A subgroup analysis is drawn as one block per subgroup (its studies, a subtotal
    diamond with its heterogeneity and test), then all studies pooled and the test for
    subgroup differences. A leave-one-out analysis shows each fit with its p-value, τ²
    and I², and the model with all studies as a diamond (its estimate a dashed line); a
    cumulative analysis the number of studies of each fit.

    Parameters
    ----------
    result : PoolResult, SubgroupResult, LeaveOneOutResult, CumulativeResult or a 2x2 fit
        What to draw: also MHResult, PetoResult and GLMMResult (:func:`bayes_forest`
        draws a BayesPoolResult). A leave-one-out forest adds the weight each study had
        in the model of all studies.
    labels : sequence of str, optional
        Study labels, one per input study (or one per study used); default the result's
        own (from :func:`ketameta.escalc`'s `labels`, or "Study 1", ...).
    groups : sequence, optional
        A subgroup label per input study of a PoolResult: the studies are analysed by
        :func:`ketameta.subgroups` with the model's settings (separate τ²) and drawn as
        for a SubgroupResult.
    transf : "auto", None, str or callable
        The scale of the plot and of the printed numbers: ``"auto"`` (default) back-
        transforms as the measure asks (ratios for OR, RR, IRR, ROM on a log axis;
        proportions for logit, arcsine and Freeman-Tukey proportions; correlations for
        Fisher's z), ``None`` keeps the analysis scale; ``"exp"``, ``"ilogit"``,
        ``"iarcsin"``, ``"ztor"`` (or ``"expit"``, ``"tanh"``) or a function choose one.
        With exp, a log ratio beyond ±230 (a study with almost no information) is drawn
        to the edge of the axis and its interval ends in an arrow; the printed numbers
        stay exact (scientific notation, from the logs).
    xlabel : str, optional
        A title under the axis (the column headers name the measure already).
    refline : "auto", float or None
        The null, on the analysis scale (``"auto"``: 0 for differences and log ratios,
        none for proportions and rates); ``None``: no line.
    favours : (str, str), optional
        Labels under the axis, left and right of the null, e.g. ``("Favours
        vaccine", "Favours control")``.
    arms : (str, str), optional
        Names of the two groups over the data columns (default "Experimental",
        "Control").
    show_data, show_weights, show_omitted : bool
        Show the data columns, the weight column, and the studies left out (greyed, with
        "missing data" or "not estimable").
    digits : int
        Decimals of the printed effects (2).
    ax : matplotlib Axes, optional
        Draw into this Axes' box: the columns at its sides, the plot panel between them
        (the figure grows wider when the box cannot hold both; nothing is cut). By
        default a new figure is made, sized to its rows and columns.
    transform : optional
        The earlier name of `transf`.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    The squares' areas are exactly proportional to the weights (their sides to the square
    roots; the largest fills 82% of a row), except that no square is drawn smaller than
    3 points, so that the estimate of a study with a tiny weight stays visible. Study
    intervals are Wald intervals ``yi ± z sqrt(vi)`` at the model's level. Every artist
    carries a ``gid`` (``"square"``, ``"diamond"``, ``"pi"``, ``"ci"``, ``"refline"``,
    ``"cell:effect:0"``, ...).

    References
    ----------
    .. [1] Lewis & Clarke (2001), BMJ 322(7300):1479-1480.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import ketameta
    >>> from ketameta.plot import forest
    >>> dat = ketameta.datasets.bcg()
    >>> es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg",
    ...                      labels="author")
    >>> fig = forest(ketameta.pool(es), favours=("Favours vaccine", "Favours control"),
    ...              arms=("Vaccinated", "Control"))
    >>> ax = fig.axes[0]
    >>> ax.get_xscale(), [t.get_text() for t in ax.get_xticklabels()]
    ('log', ['0.1', '0.2', '0.5', '1', '2', '5'])
    """
    opts = {"labels": labels, "transf": transf, "transform": transform, "digits": digits}
    full = {
        **opts,
        "arms": arms,
        "show_data": show_data,
        "show_weights": show_weights,
        "show_omitted": show_omitted,
    }
    line = None
    if isinstance(result, SubgroupResult):
        if groups is not None:
            msg = "`groups` cannot be given with a SubgroupResult (it has its subgroups)"
            raise ValueError(msg)
        table, null = _subgroup_table(result, **full)
    elif isinstance(result, PoolResult):
        if groups is not None:
            result = _subgroups_of(result, groups)
            table, null = _subgroup_table(result, **full)
        else:
            table, null = _pool_table(result, **full)
    elif isinstance(result, LeaveOneOutResult | CumulativeResult):
        table, null, line = _sensitivity_table(result, **opts)
    elif isinstance(result, MHResult | PetoResult | GLMMResult):
        if groups is not None:
            msg = "`groups` is not supported for Mantel-Haenszel, Peto and GLMM results"
            raise ValueError(msg)
        table, null = _binary_table(result, **full)
    else:
        msg = f"cannot draw a forest plot of {type(result).__name__}"
        raise TypeError(msg)
    sc, _, _ = _scale(result, transf, transform, digits, [])
    table.log_axis = sc.exp
    table.refline = _refline(refline, null, sc)
    table.overall_line = line
    table.favours = _favours(favours)
    table.xlabel = xlabel
    return _forest.draw(table, ax)


def _subgroups_of(res: PoolResult, groups: Any) -> SubgroupResult:
    """The subgroup analysis of a pooled result's studies by `groups` (one label per input
    study, or one per study used), with the model's settings (separate τ² unless fixed)."""
    g = list(groups) if not hasattr(groups, "shape") else groups
    n_input = res.k + len(res.omitted)
    if len(g) not in (n_input, res.k):
        msg = f"`groups` has {len(g)} entries but the model has {res.k} studies"
        raise ValueError(msg)
    used = res.used
    if len(g) == n_input and res.omitted:
        g = [g[int(i)] for i in used]
    settings: dict[str, Any] = {
        "groups": g,
        "method": res.method,
        "test": res.test,
        "level": res.level,
        "tau2": res.tau2 if res.tau2_fixed else "separate",
        "control": res.control,
    }
    labels = [res.study_labels[int(i)] for i in used]
    if not res.input_names:
        sub = subgroups(res.yi, res.vi, labels=labels, measure=res.measure, **settings)
    else:
        from .effect_sizes import EffectSizes

        es = EffectSizes(
            yi=res.yi,
            vi=res.vi,
            measure=res.measure or "MD",
            ni=np.full(len(used), np.nan),
            labels=labels,
            inputs=res.inputs[used],
            input_names=res.input_names,
        )
        sub = attrs.evolve(subgroups(es, **settings), measure=res.measure)
    # the studies the pooled model left out are drawn as in a subgroup analysis of all of
    # them: greyed under "Omitted", by their input index and label
    return attrs.evolve(
        sub,
        omitted=res.omitted,
        omitted_reasons=res.omitted_reasons,
        labels=res.study_labels,
        inputs=res.inputs if res.input_names else sub.inputs,
    )


# -- funnel plots -----------------------------------------------------------------------------

#: metafor's y axes of a funnel plot: the title and whether the axis is inverted
_FUNNEL_Y = {
    "sei": ("Standard error", True),
    "vi": ("Sampling variance", True),
    "seinv": ("Inverse standard error (precision)", False),
    "vinv": ("Inverse sampling variance", False),
    "ni": ("Sample size", False),
    "ninv": ("Inverse sample size", True),
    "sqrtni": ("Square root of the sample size", False),
    "sqrtninv": ("Inverse square root of the sample size", True),
    "lni": ("Log sample size", False),
    "wi": ("Weight (in %)", False),
}


def _sample_sizes(res: Any) -> Any:
    """Total sample size of each study used, from the escalc inputs (None if unknown)."""
    names = tuple(getattr(res, "input_names", ()))
    if not names:
        return None
    idx = {n: j for j, n in enumerate(names)}
    x = np.asarray(res.inputs, dtype=float)[res.used]
    if "ni" in idx:
        return x[:, idx["ni"]]
    if {"n1i", "n2i"} <= set(idx):
        return x[:, idx["n1i"]] + x[:, idx["n2i"]]
    if {"ai", "bi", "ci", "di"} <= set(idx):
        return x[:, [idx[c] for c in ("ai", "bi", "ci", "di")]].sum(axis=1)
    return None


def _funnel_y(yaxis: str, v: Any, n: Any) -> Any:
    v = np.asarray(v, dtype=float)
    if yaxis == "sei":
        return np.sqrt(v)
    if yaxis == "vi":
        return v
    if yaxis == "seinv":
        return 1.0 / np.sqrt(v)
    if yaxis == "vinv":
        return 1.0 / v
    n = np.asarray(n, dtype=float)
    return {
        "ni": n,
        "ninv": 1.0 / n,
        "sqrtni": np.sqrt(n),
        "sqrtninv": 1.0 / np.sqrt(n),
        "lni": np.log(n),
    }[yaxis]


def _band_label(p_low: float, p_high: float | None) -> str:
    """A contour band as the range of p-values it holds: "0.05 < p < 0.10"."""

    def fmt(p: float) -> str:
        text = f"{p:.3f}".rstrip("0")
        return text + "0" if text.endswith(".") or len(text.split(".")[1]) < 2 else text

    if p_high is None:
        return f"p < {fmt(p_low)}"
    return f"{fmt(p_low)} < p < {fmt(p_high)}"


def funnel(
    result: object,
    *,
    contours: Sequence[float] | None = (0.90, 0.95, 0.99),
    yaxis: str = "sei",
    xlabel: str | None = None,
    ylabel: str | None = None,
    legend: bool = True,
    ax: Any = None,
) -> Any:
    """Funnel plot: the effect sizes against their standard errors (or another measure of
    precision, as metafor's ``yaxis``) [2]_.

    The pseudo-confidence region ``μ̂ ± z·SE`` (dashed) is drawn around the pooled
    estimate (a vertical line). With `contours`, the regions where a study's two-sided
    p-value against 0 falls between the given significance levels are shaded and
    labelled as the ranges they are, "0.05 < p < 0.10", "0.01 < p < 0.05", "p < 0.01"
    (contour-enhanced funnel plot [3]_). For a trim-and-fill result the filled studies are
    drawn as hollow circles and the region is centred on the filled estimate. The legend
    sits beside the axes, never over a study.

    Parameters
    ----------
    result : PoolResult or TrimFillResult
    contours : sequence of float or None
        Confidence levels of the shaded contours (e.g. 0.90, 0.95, 0.99), each in
        (0, 1) (a ``ValueError`` otherwise); ``None``: none.
    yaxis : str
        ``"sei"`` (standard error, default; inverted: the most precise studies on top),
        ``"vi"`` (variance), ``"seinv"`` (precision), ``"vinv"`` (inverse variance), or,
        when the effect sizes came from :func:`ketameta.escalc` with sample sizes,
        ``"ni"``, ``"ninv"``, ``"sqrtni"``, ``"sqrtninv"``, ``"lni"``; or ``"wi"``, the
        weights (%) in the model (with the filled studies of a trim and fill) (metafor's
        choices; the pseudo-confidence region and the contours need a standard-error
        axis, so they are not drawn for the sample-size and weight axes).
    xlabel, ylabel : str, optional
        Axis titles (default: the measure, e.g. "Log risk ratio", and the y axis's name).
    legend : bool
        Draw the legend (beside the axes).
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. [2] Sterne & Egger (2001), J Clin Epidemiol 54(10):1046-1055.
    .. [3] Peters et al. (2008), J Clin Epidemiol 61(10):991-996.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import ketameta
    >>> from ketameta.plot import funnel
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> fig = funnel(ketameta.trim_and_fill(es))
    >>> ax = fig.axes[0]
    >>> bool(ax.yaxis_inverted()), ax.get_xlabel()
    (True, 'Log risk ratio')
    """
    if isinstance(result, TrimFillResult):
        pooled = result.pooled
        k_obs = pooled.k - result.k0  # (the observed studies first, then the filled)
        y_obs, v_obs = pooled.yi[:k_obs], pooled.vi[:k_obs]
        y_fill, v_fill = result.filled_yi, result.filled_vi
        measure = result.measure
        n_obs = None
    elif isinstance(result, PoolResult):
        pooled = result
        y_obs, v_obs = pooled.yi, pooled.vi
        y_fill = v_fill = np.array([])
        measure = result.measure
        n_obs = _sample_sizes(result)
        k_obs = pooled.k
    else:
        msg = f"cannot draw a funnel plot of {type(result).__name__}"
        raise TypeError(msg)
    if yaxis not in _FUNNEL_Y:
        msg = f"unknown `yaxis` {yaxis!r}; use one of {list(_FUNNEL_Y)}"
        raise ValueError(msg)
    by_n = yaxis not in ("sei", "vi", "seinv", "vinv")
    if by_n and yaxis != "wi" and n_obs is None:
        msg = (
            f"yaxis={yaxis!r} needs the studies' sample sizes: pool the EffectSizes of "
            "escalc (with ni, n1i/n2i or the cells of 2x2 tables)"
        )
        raise ValueError(msg)
    if contours is not None and np.ndim(contours) == 0:
        contours = [contours]  # type: ignore[list-item]  # one level given as a number
    edges = sorted(check_level(c, "contours") for c in contours) if contours else []
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    else:
        fig = ax.figure
    handles: list[Any] = []
    se_max = float(np.sqrt(max(np.max(v_obs), np.max(v_fill) if v_fill.size else 0.0))) * 1.05
    se_min = float(np.sqrt(min(np.min(v_obs), np.min(v_fill) if v_fill.size else np.inf)))
    crit = float(critical_value(pooled.level))
    all_y = np.concatenate([y_obs, y_fill])
    if not by_n:
        # the y axis as a function of the SE, on a grid from the smallest to the largest
        se_lo = 0.0 if yaxis in ("sei", "vi") else se_min / 1.05
        se = np.linspace(max(se_lo, 1e-12 if yaxis in ("seinv", "vinv") else 0.0), se_max, 200)
        yy = _funnel_y(yaxis, se**2, None)
        half_region = max(float(np.max(np.abs(all_y - pooled.estimate))), crit * se_max) * 1.12
        x_half = max(half_region, float(np.max(np.abs(all_y))) * 1.05)
        x_lo, x_hi = pooled.estimate - half_region, pooled.estimate + half_region
        x_lo, x_hi = min(x_lo, -0.02 * x_half), max(x_hi, 0.02 * x_half)
        if edges:
            z = [float(critical_value(c)) for c in edges]
            shades = ["0.93", "0.84", "0.74", "0.64"]
            handles.append(
                _patch(
                    facecolor="white",
                    edgecolor="0.6",
                    lw=0.6,
                    label=f"p > {_band_label(1 - edges[0], None)[4:]}",
                )
            )
            for i, zc in enumerate(z):
                p_low = 1 - edges[i + 1] if i + 1 < len(z) else None
                label = (
                    _band_label(1 - edges[i], None)
                    if p_low is None
                    else _band_label(p_low, 1 - edges[i])
                )
                if p_low is None:
                    label = _band_label(1 - edges[i], None)
                color = shades[i % len(shades)]
                for sign in (-1.0, 1.0):
                    inner = sign * zc * se
                    outer = sign * (z[i + 1] * se if i + 1 < len(z) else np.full_like(se, 1e6))
                    ax.fill_betweenx(yy, inner, outer, color=color, lw=0, zorder=0, gid="contour")
                handles.append(_patch(facecolor=color, edgecolor="none", label=label))
        for sign in (-1.0, 1.0):
            ax.plot(
                pooled.estimate + sign * crit * se,
                yy,
                color="black",
                lw=0.8,
                ls="--",
                zorder=1,
                gid="region",
            )
        handles.append(
            _line(
                color="black",
                lw=0.8,
                ls="--",
                label=f"{100 * pooled.level:g}% pseudo-confidence region",
            )
        )
        ax.set_xlim(x_lo, x_hi)
        y_obs_plot = _funnel_y(yaxis, v_obs, None)
        y_fill_plot = _funnel_y(yaxis, v_fill, None)
        ax.set_ylim(float(yy.min()), float(yy.max()))
    elif yaxis == "wi":  # the weights (%) in the model (with the filled studies)
        weights = np.asarray(pooled.weights, dtype=float)
        y_obs_plot, y_fill_plot = weights[:k_obs], weights[k_obs:]
        pad = 0.1 * float(np.ptp(all_y) or 1.0)
        ax.set_xlim(float(all_y.min()) - pad, float(all_y.max()) + pad)
        ax.margins(y=0.08)
    else:
        y_obs_plot = _funnel_y(yaxis, v_obs, n_obs)
        y_fill_plot = np.array([])
        pad = 0.1 * float(np.ptp(all_y) or 1.0)
        ax.set_xlim(float(all_y.min()) - pad, float(all_y.max()) + pad)
        ax.margins(y=0.08)
    ax.axvline(pooled.estimate, color="black", lw=0.9, zorder=1, gid="estimate")
    ax.scatter(y_obs, y_obs_plot, color="black", s=24, zorder=3, gid="studies")
    handles.insert(0, _marker_dot("studies", filled=True))
    if y_fill.size:
        ax.scatter(
            y_fill,
            y_fill_plot,
            facecolors="white",
            edgecolors="black",
            s=24,
            zorder=3,
            gid="filled",
        )
        handles.insert(1, _marker_dot("filled (trim and fill)", filled=False))
    if _FUNNEL_Y[yaxis][1]:
        ax.invert_yaxis()
    scale = _transf.scale(measure)
    name = scale.name if measure is not None else "effect size"
    ax.set_xlabel(xlabel or name[:1].upper() + name[1:])
    ax.set_ylabel(ylabel or _FUNNEL_Y[yaxis][0])
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    if legend:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            frameon=False,
            fontsize="small",
            borderaxespad=0.0,
        )
    return fig


def _line(**kwargs: Any) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], **kwargs)


def _marker_dot(label: str, *, filled: bool) -> Any:
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        marker="o",
        ls="none",
        markersize=5.5,
        markerfacecolor="black" if filled else "white",
        markeredgecolor="black",
        label=label,
    )


# -- Bayesian forest --------------------------------------------------------------------------


def bayes_forest(
    result: Any,
    *,
    labels: Sequence[str] | None = None,
    transf: Any = "auto",
    xlabel: str | None = None,
    refline: Any = "auto",
    favours: Sequence[str] | None = None,
    digits: int = 2,
    ax: Any = None,
    transform: Any = _UNSET,
) -> Any:
    """Forest plot of a :func:`ketameta.bayes_pool` result with the shrinkage estimates [4]_.

    Each study shows its estimate with its confidence interval (black square) and, just
    beneath in grey, the posterior median and central credible interval of its own effect
    θ_i (the shrinkage estimate); both are printed on the right. The diamond is the
    posterior median and central credible interval of μ; the bar beneath it, on its own
    row, the interval for the effect in a new study. The τ prior and the posterior of τ
    are printed underneath.

    Parameters
    ----------
    result : BayesPoolResult
    labels : sequence of str, optional
        Study labels (one per input study or per study used; default: the result's).
    transf, xlabel, refline, favours, digits, ax, transform
        As in :func:`forest` (a monotone back-transformation carries medians and central
        intervals over exactly).

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. [4] Röver (2020), J Stat Softw 93(6):1-51.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import ketameta
    >>> from ketameta.plot import bayes_forest
    >>> from ketameta.priors import HalfNormal
    >>> res = ketameta.bayes_pool([0.1, 0.5, 0.3], [0.02, 0.03, 0.05], tau_prior=HalfNormal(0.5))
    >>> fig = bayes_forest(res, labels=["A", "B", "C"])
    >>> [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "cell:study"][:2]
    ['A', 'B']
    """
    from .bayes import BayesPoolResult

    if not isinstance(result, BayesPoolResult):
        msg = f"bayes_forest() draws a BayesPoolResult, got {type(result).__name__}"
        raise TypeError(msg)
    k = result.k
    n_input = k + len(result.omitted)
    keep = np.ones(n_input, dtype=bool)
    keep[list(result.omitted)] = False
    used = np.flatnonzero(keep)
    names = _labels_for(labels, n_input, used, result.study_labels)
    lv = result.level
    crit = float(critical_value(lv))
    lo_i = result.yi - crit * np.sqrt(result.vi)
    hi_i = result.yi + crit * np.sqrt(result.vi)
    core = [
        *result.yi,
        *result.theta_ci_lower,
        *result.theta_ci_upper,
        result.mu_ci_lower,
        result.mu_ci_upper,
        result.pred_lower,
        result.pred_upper,
    ]
    sc, scale_name, null = _scale(result, transf, transform, digits, core)
    name = scale_name[:1].upper() + scale_name[1:]
    pct = f"{100 * lv:g}%"
    columns = [
        _forest.Column("study", "Study"),
        _forest.Column("effect", f"{name}\n[{pct} CI]", side="right", parts=3),
        _forest.Column("shrink", f"Shrinkage estimate\n[{pct} CrI]", side="right", parts=3),
    ]
    rows = []
    for j, i in enumerate(used):
        cells = {
            "study": names[int(i)],
            "effect": sc.cell(result.yi[j], lo_i[j], hi_i[j]),
            "shrink": sc.cell(
                result.theta_median[j], result.theta_ci_lower[j], result.theta_ci_upper[j]
            ),
        }
        row = sc.row("marker", result.yi[j], lo_i[j], hi_i[j], cells=cells)
        row.second = (
            sc.draw(result.theta_median[j]),
            sc.draw(result.theta_ci_lower[j]),
            sc.draw(result.theta_ci_upper[j]),
        )
        rows.append(row)
    mu = (result.mu_median, result.mu_ci_lower, result.mu_ci_upper)
    rows.append(
        sc.row(
            "diamond", *mu, cells={"study": "Overall effect μ", "shrink": sc.cell(*mu)}, bold=True
        )
    )
    rows.append(
        sc.row(
            "pi",
            math.nan,
            result.pred_lower,
            result.pred_upper,
            cells={
                "study": "Effect in a new study",
                "shrink": sc.cell(result.pred_median, result.pred_lower, result.pred_upper),
            },
        )
    )
    tau = (
        f"τ = {_forest.sig_text(result.tau_median)} "
        f"[{_forest.sig_text(result.tau_ci_lower)}, {_forest.sig_text(result.tau_ci_upper)}]"
    )
    rows.append(
        _forest.Row("span", text=f"Heterogeneity: {tau}; prior: {result.tau_prior.describe()}")
    )
    rows.append(
        _forest.Row(
            "span",
            text=f"Posterior medians and central {pct} credible intervals (grey: shrinkage)",
            italic=True,
        )
    )
    rows += _omitted_spans(result.omitted, result.omitted_reasons, result.study_labels)
    table = _forest.Table(columns, rows, panel_header=f"{name}\n{pct} CI / CrI")
    table.log_axis = sc.exp
    table.refline = _refline(refline, null, sc)
    table.favours = _favours(favours)
    table.xlabel = xlabel
    return _forest.draw(table, ax)


def posterior(
    result: Any,
    param: str = "tau",
    *,
    prior: bool = True,
    kind: str = "shortest",
    xlabel: str | None = None,
    xlim: tuple[float, float] | None = None,
    ax: Any = None,
) -> Any:
    """The marginal posterior density of τ or μ of a :func:`ketameta.bayes_pool` result,
    with its median (vertical line), its 95% credible interval shaded and, dashed, the
    prior density (as bayesmeta's ``plot(..., prior=TRUE)`` [4]_).

    Parameters
    ----------
    result : BayesPoolResult
        What to draw.
    param : {"tau", "mu", "theta_new"}
        The parameter.
    prior : bool
        Overlay the prior density (a flat μ prior has none to draw: the legend says so).
    kind : {"shortest", "central"}
        The credible interval shaded.
    xlabel : str, optional
        Axis label (default: the parameter's name).
    xlim : (float, float), optional
        Range drawn (default: the 0.1% to 99.5% posterior quantiles; from 0 for τ).
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. [4] Röver (2020), J Stat Softw 93(6):1-51.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import ketameta
    >>> from ketameta.plot import posterior
    >>> from ketameta.priors import HalfNormal
    >>> res = ketameta.bayes_pool([0.1, 0.5, 0.3], [0.02, 0.03, 0.05], tau_prior=HalfNormal(0.5))
    >>> fig = posterior(res, "tau")
    >>> fig.axes[0].get_xlabel()
    'heterogeneity τ'
    """
    from .bayes import BayesPoolResult
    from .priors import PointMass

    if not isinstance(result, BayesPoolResult):
        msg = f"posterior() draws a BayesPoolResult, got {type(result).__name__}"
        raise TypeError(msg)
    names = {"tau": "heterogeneity τ", "mu": "effect μ", "theta_new": "effect in a new study"}
    if param not in names:
        msg = f"unknown `param` {param!r}; use one of {sorted(names)}"
        raise ValueError(msg)
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 3.6), layout="constrained")
    else:
        fig = ax.figure
    if xlim is None:
        lo, hi = (float(q) for q in result.quantile(param, [0.001, 0.995]))
        if param == "tau":
            lo = 0.0
        pad = 0.05 * (hi - lo)
        xlim = (lo if param == "tau" else lo - pad, hi + pad)
    x = np.linspace(xlim[0], xlim[1], 401)
    dens = result.pdf(param, x)
    ax.plot(x, dens, color="black", lw=1.5, label="posterior")
    a, b = result.interval(param, kind=kind)
    inside = (x >= a) & (x <= b)
    ax.fill_between(
        x[inside],
        0,
        dens[inside],
        color="0.8",
        lw=0,
        label=f"{100 * result.level:g}% {kind} interval",
    )
    med = float(result.quantile(param, 0.5))
    ax.plot([med, med], [0, float(result.pdf(param, med))], color="black", lw=1.0)
    label_prior = None
    if prior and param == "tau":
        tp = result.tau_prior
        if tp.proper and not isinstance(tp, PointMass):
            ax.plot(x, tp.pdf(x), color="dimgray", lw=1.0, ls="--", label="prior")
        else:
            label_prior = f"prior: {tp.describe()}, not drawn"
    elif prior and param == "mu":
        if result.mu_prior is None:
            label_prior = "prior: flat (improper), not drawn"
        else:
            from scipy import stats

            ax.plot(
                x,
                stats.norm.pdf(x, result.mu_prior.mean, result.mu_prior.sd),
                color="dimgray",
                lw=1.0,
                ls="--",
                label="prior",
            )
    if label_prior:
        ax.plot([], [], " ", label=label_prior)
    ax.set_xlim(*xlim)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel or names[param])
    ax.set_ylabel("density")
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    ax.legend(frameon=False, fontsize="small")
    ax.set_title(
        f"median {med:.3g}, {100 * result.level:g}% interval {a:.3g} to {b:.3g}", fontsize="medium"
    )
    return fig


#: default y-axis titles of :func:`bubble` per back-transformation
_BUBBLE_YLABELS = {
    None: "Effect size",
    "exp": "Ratio (log scale)",
    "expit": "Proportion",
    "inv_logit": "Proportion",
    "tanh": "Correlation",
}
#: the total area (points²) of the bubbles when they are many; the largest is at most
#: _BUBBLE_MAX_AREA, so one dominant study does not hide the others
_BUBBLE_TOTAL_AREA = 2500.0
_BUBBLE_MAX_AREA = 700.0


def _moderator_column(result: MetaRegResult, mod: int | str | None) -> int:
    """The column of ``result.X`` that `mod` names (a coefficient name or a 0-based index)."""
    names = list(result.names)
    moderators = [j for j in range(result.p) if not (result.intercept and j == 0)]
    if mod is None:
        if len(moderators) != 1:
            msg = (
                f"the model has {len(moderators)} moderator coefficients: choose one with "
                f"`mod` (a name or a 0-based index), one of {[names[j] for j in moderators]}"
            )
            raise ValueError(msg)
        return moderators[0]
    if isinstance(mod, str):
        if mod not in names:
            msg = f"`mod`: no coefficient {mod!r}; the coefficients are {names}"
            raise ValueError(msg)
        j = names.index(mod)
    elif isinstance(mod, int | np.integer) and not isinstance(mod, bool | np.bool_):
        if not 0 <= int(mod) < result.p:
            msg = f"`mod` indices are 0-based in [0, {result.p}), got {mod!r}"
            raise ValueError(msg)
        j = int(mod)
    else:
        msg = f"`mod` must be a coefficient name or a 0-based index, got {mod!r}"
        raise TypeError(msg)
    if j not in moderators:
        msg = f"`mod` names the intercept; choose a moderator: {[names[i] for i in moderators]}"
        raise ValueError(msg)
    return j


def _study_labels(result: MetaRegResult, labels: Sequence[Any] | None) -> list[str] | None:
    """Labels of the studies used: given for them, or for all input studies (then the
    omitted ones are dropped, as metafor does)."""
    if labels is None:
        return None
    given = [str(x) for x in labels]
    n_input = result.k + len(result.omitted)
    if len(given) == result.k:
        return given
    if len(given) == n_input:
        dropped = set(result.omitted)
        return [label for i, label in enumerate(given) if i not in dropped]
    counts = f"{result.k}" if not result.omitted else f"{result.k} (or {n_input} with omitted)"
    msg = f"`labels` has {len(given)} entries but the model has {counts} studies"
    raise ValueError(msg)


def bubble(
    result: object,
    mod: int | str | None = None,
    *,
    ci: bool = True,
    pi: bool = True,
    transf: str | Callable[[Any], Any] | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    labels: Sequence[Any] | None = None,
    refline: float | None = 0.0,
    ax: Any = None,
) -> Any:
    """Bubble plot of a meta-regression: the effects against one moderator, with the fitted
    line (metafor's ``regplot``) [5]_.

    Each study is a circle at (its moderator value, its effect), its area proportional to
    its weight in the model. The fitted line ``ŷ(x)`` runs over the range of the
    moderator, with its confidence band and the prediction interval for the effect in a
    new study, both from :meth:`~ketameta.MetaRegResult.predict` at the model's level. A
    horizontal reference line marks the null.

    Parameters
    ----------
    result : MetaRegResult
        A fitted meta-regression (:func:`ketameta.metareg`).
    mod : str or int, optional
        The moderator on the x axis: a coefficient name (``"ablat"``,
        ``"factor(alloc)random"``) or its 0-based index among the coefficients (as `btt`).
        Optional when the model has one moderator coefficient. With several, the line is
        the *marginal* one: every other column of the design (factor indicators included)
        is held at its mean over the studies used, as metafor's ``regplot`` does. For a
        polynomial, a spline or an interaction the line is then not the model's curve: draw
        that from :meth:`~ketameta.MetaRegResult.predict`.
    ci, pi : bool
        Draw the confidence band and the prediction-interval band (the equal-effects model
        has no prediction interval: no band is drawn).
    transf : {"exp", "expit", "inv_logit", "tanh"} or callable, optional
        Back-transformation of the y axis (effects, line and bands): ``"exp"`` for log
        ratios (then a log axis ticked at 0.1, 0.2, 0.5, 1, 2, 5, ...; log ratios beyond
        ±230 are drawn at ±230), ``"expit"`` (or ``"inv_logit"``) for logits, ``"tanh"``
        for Fisher's z.
    xlabel, ylabel : str, optional
        Axis titles (default: the coefficient name; "Effect size", or "Ratio (log
        scale)", "Proportion", "Correlation" for the transformations).
    labels : sequence of str, optional
        Study labels written beside the circles (above a circle above the line, below one
        beneath it): one per study used, or one per input study (the omitted studies'
        labels are then dropped).
    refline : float or None
        The null on the analysis scale (drawn back-transformed: 0 is a ratio of 1);
        ``None``: no reference line.
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    The areas are exactly proportional to the weights ``w_i = 1/(v_i + τ̂²)`` (the largest
    circle at most 700 pt²). metafor's ``regplot`` rescales the circle sizes to the range
    ``plim = c(0.5, 3)``, so its areas are not proportional; and it extends the line to the
    edges of the x axis, where ketameta stops it at the smallest and largest moderator
    values (no extrapolation).

    References
    ----------
    .. [5] Thompson & Higgins (2002), Stat Med 21(11):1559-1573.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import ketameta
    >>> from ketameta.plot import bubble
    >>> dat = ketameta.datasets.bcg()
    >>> es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> res = ketameta.metareg(es, mods="~ ablat", data=dat)
    >>> fig = bubble(res, transf="exp", xlabel="Absolute latitude")
    >>> ax = fig.axes[0]
    >>> ax.get_yscale(), ax.get_xlabel()
    ('log', 'Absolute latitude')
    """
    if not isinstance(result, MetaRegResult):
        msg = f"bubble() draws a MetaRegResult (ketameta.metareg), got {type(result).__name__}"
        raise TypeError(msg)
    j = _moderator_column(result, mod)
    back = _transform(transf, "transf")
    names = _study_labels(result, labels)
    if refline is not None and not (
        isinstance(refline, int | float | np.integer | np.floating)
        and not isinstance(refline, bool | np.bool_)
        and math.isfinite(refline)
    ):
        msg = f"`refline` must be a finite number on the analysis scale or None, got {refline!r}"
        raise ValueError(msg)
    log_axis = transf == "exp"

    def f(y: Any) -> Any:  # a value on the analysis scale, as drawn
        y = np.asarray(y, dtype=float)
        if log_axis:
            y = np.clip(y, -_LOG_CAP, _LOG_CAP)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(back(y), dtype=float)

    x = result.X[:, j]
    lo, hi = float(np.min(x)), float(np.max(x))
    # the marginal line: the other columns of the design at their means (metafor's rule)
    grid = np.linspace(lo, hi, 201)
    rows = np.tile(result.X.mean(axis=0), (grid.shape[0], 1))
    rows[:, j] = grid
    line = result.predict(rows)

    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    else:
        fig = ax.figure
    level = f"{100 * result.level:g}%"
    handles: list[Any] = []
    has_pi = pi and bool(np.all(np.isfinite(line.pred_lower)))
    if has_pi:
        ax.fill_between(
            grid, f(line.pred_lower), f(line.pred_upper), color="0.92", lw=0, zorder=1, gid="pi"
        )
        for edge in (line.pred_lower, line.pred_upper):
            ax.plot(grid, f(edge), color="0.45", lw=0.8, ls=":", zorder=1)
        label = f"{level} prediction interval"
        handles.append(_patch(facecolor="0.92", edgecolor="0.45", ls=":", label=label))
    if ci:
        ax.fill_between(
            grid, f(line.ci_lower), f(line.ci_upper), color="0.78", lw=0, zorder=1.5, gid="ci"
        )
        handles.append(_patch(facecolor="0.78", edgecolor="none", label=f"{level} CI"))
    (fit,) = ax.plot(grid, f(line.pred), color="black", lw=1.6, zorder=2, gid="fit")
    handles.insert(0, fit)
    fit.set_label("meta-regression line")
    if refline is not None:
        ax.axhline(float(f(refline)), color="0.35", lw=0.8, ls="--", zorder=1.8, gid="refline")
    weights = np.asarray(result.weights, dtype=float)
    scale = min(_BUBBLE_TOTAL_AREA / 100.0, _BUBBLE_MAX_AREA / float(np.max(weights)))
    y = f(result.yi)
    ax.scatter(
        x,
        y,
        s=weights * scale,
        facecolors="0.55",
        edgecolors="black",
        linewidths=0.7,
        alpha=0.85,
        zorder=3,
        gid="studies",
    )
    handles.insert(
        0,
        _marker(label="studies (area ∝ weight)"),
    )
    if names is not None:
        at_x = np.interp(x, grid, line.pred)
        radius = np.sqrt(weights * scale / math.pi)  # points
        for xi, yi_, above, r, text in zip(x, y, result.yi >= at_x, radius, names, strict=True):
            ax.annotate(
                _short(text),
                (float(xi), float(yi_)),
                xytext=(0.0, (r + 2.0) * (1 if above else -1)),
                textcoords="offset points",
                ha="center",
                va="bottom" if above else "top",
                fontsize="x-small",
                zorder=4,
            )
    if log_axis:
        _ratio_axis(ax)
    ax.set_xlabel(xlabel if xlabel is not None else result.names[j])
    if ylabel is None:
        ylabel = "Transformed effect size" if callable(transf) else _BUBBLE_YLABELS[transf]
    ax.set_ylabel(ylabel)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    if names is not None:  # room for the labels of the outermost studies
        ax.margins(x=0.12)
    others = result.p - 1 - int(result.intercept)
    ax.legend(  # above the axes: never over a study
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.01),
        ncol=2,
        frameon=False,
        fontsize="small",
        title="(other moderators held at their means)" if others else None,
        title_fontsize="small",
        alignment="left",
    )
    return fig


def _patch(**kwargs: Any) -> Any:
    from matplotlib.patches import Patch

    return Patch(**kwargs)


def _marker(label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        marker="o",
        ls="none",
        markersize=9,
        markerfacecolor="0.55",
        markeredgecolor="black",
        markeredgewidth=0.7,
        alpha=0.85,
        label=label,
    )


def _ratio_axis(ax: Any) -> None:
    """A log y axis ticked at 1-2-5 (0.1, 0.2, 0.5, 1, 2, 5, ...), printed plainly; finer
    (1, 1.25, 1.5, 2, ...) when the data span less than a factor of 4; the axis ends at
    ticks. Over more than six decades: matplotlib's powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    ax.autoscale_view()
    low, high = ax.get_ylim()
    if high / low > 1e6:  # ratios over many decades (studies with almost no information)
        return  # matplotlib's decades, 10^n
    subs: tuple[float, ...] = (1.0, 2.0, 5.0)
    if high / low < 4.0:
        subs = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    # the axis ends at ticks: out to the nearest tick value beyond each end
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
    values = [s * 10.0**d for d in decades for s in subs]
    ax.set_ylim(max(v for v in values if v <= low), min(v for v in values if v >= high))
    ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())


def selection(
    result: Any,
    *,
    ci: bool = True,
    rug: bool = True,
    scale: bool = False,
    xlabel: str | None = None,
    ylabel: str | None = None,
    ax: Any = None,
) -> Any:
    """The estimated selection function of a :func:`ketameta.selection_model` fit: the
    relative likelihood of publication ``w(p)`` against the p-value (metafor's
    ``plot(sel)``) [6]_.

    Parameters
    ----------
    result : SelectionModelResult
        A fitted selection model.
    ci : bool
        Draw the pointwise Wald band: the δ limits for a step function, the delta-method
        band of ``w(p)`` for the other weight functions
        (:meth:`~ketameta.SelectionModelResult.weight_function_ci`).
    rug : bool
        Mark the studies' p-values (their effect sizes for ``type="trunc"``) on the x axis.
    scale : bool
        Divide ``w`` (and the band) by its largest value on the plotted range, so that the
        curve peaks at 1.
    xlabel, ylabel : str, optional
        Axis titles.
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. [6] Vevea & Hedges (1995), Psychometrika 60(3):419-435.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, ketameta
    >>> from ketameta.plot import selection
    >>> y = np.array([0.61, 0.12, 0.45, 0.05, 0.33, 0.70, 0.21, -0.10, 0.52, 0.28])
    >>> v = np.array([0.04, 0.02, 0.05, 0.01, 0.03, 0.08, 0.02, 0.02, 0.06, 0.03])
    >>> sel = ketameta.selection_model(ketameta.pool(y, v, method="ML"))
    >>> fig = selection(sel)
    >>> fig.axes[0].get_xlabel()
    'p-value'
    """
    from .selection import SelectionModelResult

    if not isinstance(result, SelectionModelResult):
        msg = f"cannot draw a selection function of {type(result).__name__}"
        raise TypeError(msg)
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 4.5), layout="constrained")
    else:
        fig = ax.figure
    trunc = result.type == "trunc"
    if trunc:
        span = float(np.ptp(result.yi)) or 1.0
        x = np.linspace(
            float(np.min(result.yi)) - 0.1 * span, float(np.max(result.yi)) + 0.1 * span, 1001
        )
    else:
        x = np.linspace(0.0, 1.0, 1001)[1:]
        if result.type == "stepfun":  # vertical jumps at the cut-points
            cuts = np.asarray(result.steps[:-1])
            x = np.sort(np.concatenate([x, cuts, np.nextafter(cuts, 2.0)]))
    w = result.weight_function(x)
    lo, hi = result.weight_function_ci(x) if ci else (w, w)
    top = float(np.nanmax(w)) if scale else 1.0
    if ci:
        ax.fill_between(
            x, lo / top, hi / top, color="0.85", linewidth=0, label=f"{100 * result.level:g}% CI"
        )
    ax.plot(x, w / top, color="black", lw=1.6, label="estimated w")
    if rug:
        pts = result.yi if trunc else result.pvalues
        ax.plot(
            pts,
            np.zeros_like(pts),
            "|",
            color="black",
            markersize=10,
            clip_on=False,
            label="studies",
        )
    ax.set_xlim(float(x[0]) if trunc else 0.0, float(x[-1]) if trunc else 1.0)
    ymax = float(np.nanmax(hi / top)) if ci else float(np.nanmax(w / top))
    ax.set_ylim(0.0, max(ymax * 1.05, 1.05))
    ax.set_xlabel(xlabel or ("Effect size" if trunc else "p-value"))
    ax.set_ylabel(ylabel or "Relative likelihood of selection")
    ax.set_title(
        f"{_sel_title(result.type)} selection model (alternative: {result.alternative})",
        fontsize="medium",
    )
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    return fig


def _sel_title(kind: str) -> str:
    from ._engine.selection import SELECTION_TYPES

    return SELECTION_TYPES[kind].title
