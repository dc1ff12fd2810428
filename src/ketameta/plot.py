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

import numpy as np
from scipy import special

from ._results import format_p
from ._validation import check_level, critical_value
from .bias import TrimFillResult
from .binary import MHResult, PetoResult
from .metareg import MetaRegResult
from .pooling import PoolResult
from .sensitivity import CumulativeResult, LeaveOneOutResult
from .subgroups import SubgroupResult, subgroups

__all__ = ["bayes_forest", "bubble", "forest", "funnel", "posterior", "selection"]

_TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "exp": np.exp,
    "expit": special.expit,
    "inv_logit": special.expit,  # the name MetaRegResult.predict(transf=) uses
    "tanh": np.tanh,
}
_MAX_LABEL = 32
#: with transform="exp", log ratios are drawn within ±log(1e100): their exponentials
#: overflow from 709.8 on, and a log axis needs room for its margins and tick decades
_LOG_CAP = math.log(1e100)


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = "plots need matplotlib: pip install 'ketameta[plot]'"
        raise ImportError(msg) from exc
    return plt


def _transform(
    transform: str | Callable[[Any], Any] | None, name: str = "transform"
) -> Callable[[Any], Any]:
    if transform is None:
        return lambda x: np.asarray(x, dtype=float)
    if callable(transform):
        return transform
    if transform not in _TRANSFORMS:
        msg = f"unknown `{name}` {transform!r}; use one of {sorted(_TRANSFORMS)} or a function"
        raise ValueError(msg)
    return _TRANSFORMS[transform]


def _number(value: float, *, ratio: bool = False) -> str:
    """A printed estimate: 2 decimals; scientific notation from 1e5 on, and for ratios
    below 0.005 (which 2 decimals would print as 0.00)."""
    if not math.isfinite(value):
        return "NA"
    if abs(value) < 1e5 and (not ratio or value == 0 or abs(value) >= 0.005):
        return f"{value:.2f}"
    return f"{value:.2e}"


def _ratio(log_value: float) -> str:
    """exp(log_value) printed as :func:`_number` would, from the logarithm (no overflow)."""
    if not math.isfinite(log_value):
        return "NA"
    if abs(log_value) < 700:
        return _number(math.exp(log_value), ratio=True)
    decimal = log_value / math.log(10)
    exponent = math.floor(decimal)
    mantissa = round(10 ** (decimal - exponent), 2)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.2f}e{exponent:+d}"


def _short(label: str) -> str:
    label = str(label)
    return label if len(label) <= _MAX_LABEL else label[: _MAX_LABEL - 1] + "…"


def _figure(n_rows: int, ax: Any) -> tuple[Any, Any]:
    plt = _pyplot()
    if ax is not None:
        return ax.figure, ax
    height = 1.4 + 0.25 * max(n_rows, 1)  # a fixed row height: no overlap for 1-60 studies
    fig, new_ax = plt.subplots(figsize=(9.0, height), layout="constrained")
    return fig, new_ax


def _diamond(ax: Any, y: float, est: float, lo: float, hi: float, color: str) -> None:
    ax.fill(
        [lo, est, hi, est], [y, y + 0.35, y, y - 0.35], color=color, zorder=3, label="_diamond"
    )


def forest(
    result: object,
    *,
    labels: Sequence[str] | None = None,
    groups: Sequence[Any] | None = None,
    transform: str | Callable[[Any], Any] | None = None,
    xlabel: str | None = None,
    refline: float | None = 0.0,
    show_weights: bool = True,
    ax: Any = None,
) -> Any:
    """Forest plot of a pooled result, a subgroup analysis, a leave-one-out or a cumulative
    analysis [1]_.

    Each study is a square (area proportional to its weight) with its confidence
    interval; the pooled estimate is a diamond with the prediction interval as a line
    through it, and the heterogeneity statistics are printed beneath. Estimates, intervals
    and weights are printed on the right. A subgroup analysis is drawn as one block per
    subgroup (its studies and its diamond), then the overall diamond and the test for
    subgroup differences (Q, df, p).

    Parameters
    ----------
    result : PoolResult, SubgroupResult, MHResult, PetoResult, LeaveOneOutResult, CumulativeResult
        What to draw. Mantel-Haenszel and Peto results add the events/total (or
        events/person-time) of both groups beside each study.
    labels : sequence of str, optional
        Study labels (default "Study 1", ...); long labels are shortened with "…". For a
        SubgroupResult, one per study used (input order, omitted studies left out).
    groups : sequence, optional
        A subgroup label per study of a PoolResult: the studies are analysed by
        :func:`ketameta.subgroups` with the model's settings (separate τ²) and drawn as
        for a SubgroupResult.
    transform : {"exp", "expit", "tanh"} or callable, optional
        Back-transform for display (``"exp"`` for log ratios, on a log axis; ``"expit"``
        for logits; ``"tanh"`` for Fisher's z). With ``"exp"``, a log ratio beyond
        ±230 (a ratio beyond 1e±100: a study with almost no information, whose ratio
        would overflow) is drawn to the edge of the axis and its interval ends in an
        arrow; the numbers on the right are exact (scientific notation, from the logs).
    xlabel : str, optional
        Label of the effect axis.
    refline : float or None
        Position of the vertical reference line (on the analysis scale; ``None``: none).
    show_weights : bool
        Print the weights (%).
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. [1] Lewis & Clarke (2001), BMJ 322(7300):1479-1480.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import ketameta
    >>> from ketameta.plot import forest
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> fig = forest(ketameta.pool(es), transform="exp", xlabel="Risk ratio")
    >>> fig.axes[0].get_xscale()     # the second Axes holds the numbers on the right
    'log'
    """
    back = _transform(transform)
    if refline is not None and not (isinstance(refline, int | float) and math.isfinite(refline)):
        msg = f"`refline` must be a finite number on the analysis scale or None, got {refline!r}"
        raise ValueError(msg)

    def text(x: float) -> str:
        return _ratio(float(x)) if transform == "exp" else _number(float(back(x)))

    counts_title = ""
    if isinstance(result, SubgroupResult):
        if groups is not None:
            msg = "`groups` cannot be given with a SubgroupResult (it has its subgroups)"
            raise ValueError(msg)
        rows = _subgroup_rows(result, labels)
    elif isinstance(result, PoolResult):
        rows = _pool_rows(result, labels, groups)
    elif isinstance(result, LeaveOneOutResult | CumulativeResult):
        rows = _sensitivity_rows(result, labels)
    elif isinstance(result, MHResult | PetoResult):
        if groups is not None:
            msg = "`groups` is not supported for Mantel-Haenszel and Peto results"
            raise ValueError(msg)
        rows, counts_title = _binary_rows(result, labels)
    else:
        msg = f"cannot draw a forest plot of {type(result).__name__}"
        raise TypeError(msg)
    # a column header on top; the heterogeneity line of each pooled row beneath it
    weight_title = "  Weight" if show_weights and any("weight" in r for r in rows) else ""
    expanded: list[dict[str, Any]] = [
        {
            "kind": "colhead",
            "label": "",
            "est": np.nan,
            "lo": np.nan,
            "hi": np.nan,
            "right": f"{counts_title}Estimate [{100 * _level(result):g}% CI]{weight_title}",
        }
    ]
    for row in rows:
        expanded.append(row)
        if row.get("note"):
            expanded.append(
                {"kind": "note", "label": row["note"], "est": np.nan, "lo": np.nan, "hi": np.nan}
            )
    window = _window(rows, transform == "exp")

    def f(x: Any) -> Any:  # the drawing position of a value on the analysis scale
        return back(np.clip(np.asarray(x, dtype=float), *window))

    fig, ax = _figure(len(expanded), ax)
    n = len(expanded)
    ypos = np.arange(n, 0, -1, dtype=float)  # top to bottom
    lows: list[float] = []
    highs: list[float] = []
    left_labels, right_labels = [], []
    for y, row in zip(ypos, expanded, strict=True):
        kind = row["kind"]
        est, lo, hi = (float(f(row[key])) for key in ("est", "lo", "hi"))
        left_labels.append(row["label"] if kind in ("note", "test") else _short(row["label"]))
        if kind in ("header", "note", "colhead", "test"):
            right_labels.append(row.get("right", ""))
            continue
        if not np.isfinite(est):  # a study without an effect (e.g. no events in either group)
            right_labels.append(row.get("counts", "") + "not estimable")
            continue
        lows.append(lo)
        highs.append(hi)
        if kind == "study":
            ax.plot([lo, hi], [y, y], color="black", lw=1.0, zorder=2)
            # an interval reaching beyond the axis ends in an arrow at its edge
            for end, marker, outside in (
                (row["lo"], "<", float(row["lo"]) < window[0]),
                (row["hi"], ">", float(row["hi"]) > window[1]),
            ):
                if outside:
                    ax.plot([float(f(end))], [y], marker=marker, color="black", ms=5, zorder=3)
            size = 4.0 + 10.0 * np.sqrt(max(row.get("weight", 10.0), 0.0) / 100.0)
            ax.plot(
                [est],
                [y],
                marker="s",
                color="black",
                markersize=min(size, 14.0),
                linestyle="none",
                zorder=3,
            )
        else:  # pooled or subgroup diamond, with the prediction interval
            if row.get("pred") is not None:
                plo, phi = (float(f(p)) for p in row["pred"])
                ax.plot([plo, phi], [y, y], color="dimgray", lw=1.0, linestyle=":", zorder=2)
                lows.append(plo)
                highs.append(phi)
            _diamond(ax, y, est, lo, hi, "black" if kind == "pooled" else "gray")
        right = (
            row.get("counts", "") + f"{text(row['est'])} [{text(row['lo'])}, {text(row['hi'])}]"
        )
        if show_weights and "weight" in row:
            right += f" {row['weight']:5.1f}%"
        right_labels.append(right)
    ax.set_ylim(0.4, n + 0.6)
    ax.set_yticks(ypos, left_labels)
    ax.tick_params(axis="y", length=0)
    right_ax = ax.twinx()
    right_ax.set_ylim(ax.get_ylim())
    right_ax.set_yticks(ypos, right_labels, family="monospace")
    right_ax.tick_params(axis="y", length=0)
    for tick, row in zip(ax.get_yticklabels(), expanded, strict=True):
        if row["kind"] in ("header", "pooled", "subgroup"):
            tick.set_fontweight("bold")
        elif row["kind"] == "note":
            tick.set_fontsize("small")
            tick.set_color("dimgray")
    right_ax.get_yticklabels()[0].set_fontweight("bold")
    for a in (ax, right_ax):
        for side in ("left", "right", "top"):
            a.spines[side].set_visible(False)
    if refline is not None:
        ax.axvline(float(f(refline)), color="gray", lw=0.8, linestyle="--", zorder=1)
    if transform == "exp":
        ax.set_xscale("log")
    finite = [x for x in lows + highs if np.isfinite(x)]
    if finite:
        low, high = min(finite), max(finite)
        if transform == "exp":
            ax.set_xlim(low / 1.1, high * 1.1)
        else:
            pad = 0.05 * (high - low) if high > low else 0.1
            ax.set_xlim(low - pad, high + pad)
    if xlabel:
        ax.set_xlabel(xlabel)
    return fig


def _window(rows: list[dict[str, Any]], log_ratios: bool) -> tuple[float, float]:
    """The range of the effect axis, on the analysis scale.

    It holds every study estimate and every pooled interval (CI and prediction interval);
    study intervals may reach twice that span beyond it, and are clipped there (drawn with
    an arrow), so that one uninformative study (a huge interval) cannot shrink the others
    to a point. Log ratios stay within ±log(1e100), well inside the double range.
    """
    core: list[float] = []
    for row in rows:
        if row["kind"] in ("header", "test"):
            continue
        core.append(float(row["est"]))
        if row["kind"] != "study" or row.get("pooled_interval"):
            core += [float(row["lo"]), float(row["hi"])]
            core += [float(x) for x in row.get("pred") or ()]
    values = [x for x in core if math.isfinite(x)]
    if not values:
        return (-math.inf, math.inf)
    low, high = min(values), max(values)
    width = high - low if high > low else max(abs(low), 1.0)
    low, high = low - 2 * width, high + 2 * width
    if log_ratios:
        low, high = max(low, -_LOG_CAP), min(high, _LOG_CAP)
    return (low, high)


def _level(result: Any) -> float:
    return float(getattr(result, "level", 0.95))


def _study_ci(y: np.ndarray[Any, Any], v: np.ndarray[Any, Any], level: float) -> Any:
    crit = float(critical_value(level))
    half = crit * np.sqrt(v)
    return y - half, y + half


def _pooled_row(res: PoolResult, label: str, kind: str = "pooled") -> dict[str, Any]:
    model = "EE model" if res.method == "EE" else f"RE model ({res.method})"
    p_text = format_p(res.q_pvalue)
    note = (
        f"tau² = {res.tau2:.3g}, I² = {res.i2:.0f}%, Q({res.q_df}) = {res.q:.2f}, "
        f"p {'<' if p_text.startswith('<') else '='} {p_text.lstrip('<')}"
    )
    pred = None if res.method == "EE" else (res.pred_lower, res.pred_upper)
    return {
        "kind": kind,
        "label": label or model,
        "est": res.estimate,
        "lo": res.ci_lower,
        "hi": res.ci_upper,
        "pred": pred,
        "note": note,
    }


def _study_rows(
    yi: Any, vi: Any, weights: Any, level: float, labels: Sequence[str] | None
) -> list[dict[str, Any]]:
    k = len(yi)
    names = list(labels) if labels is not None else [f"Study {i + 1}" for i in range(k)]
    if len(names) != k:
        msg = f"`labels` has {len(names)} entries but the model has {k} studies"
        raise ValueError(msg)
    lo, hi = _study_ci(yi, vi, level)
    return [
        {
            "kind": "study",
            "label": names[i],
            "est": yi[i],
            "lo": lo[i],
            "hi": hi[i],
            "weight": float(weights[i]),
        }
        for i in range(k)
    ]


def _pool_rows(
    res: PoolResult, labels: Sequence[str] | None, groups: Sequence[Any] | None
) -> list[dict[str, Any]]:
    if groups is None:
        return [*_study_rows(res.yi, res.vi, res.weights, res.level, labels), _pooled_row(res, "")]
    g = list(groups) if not hasattr(groups, "shape") else groups
    if len(g) != res.k:
        msg = f"`groups` has {len(g)} entries but the model has {res.k} studies"
        raise ValueError(msg)
    if labels is not None and len(labels) != res.k:
        msg = f"`labels` has {len(labels)} entries but the model has {res.k} studies"
        raise ValueError(msg)
    sub = subgroups(
        res.yi,
        res.vi,
        groups=g,
        method=res.method,
        test=res.test,
        level=res.level,
        tau2=res.tau2 if res.tau2_fixed else "separate",
        control=res.control,
    )
    if labels is not None and sub.omitted:  # (studies without a group label)
        labels = [lab for i, lab in enumerate(labels) if i not in set(sub.omitted)]
    return _subgroup_rows(sub, labels)


def _subgroup_rows(sub: SubgroupResult, labels: Sequence[str] | None) -> list[dict[str, Any]]:
    """A block per subgroup (a header, its studies in input order, its diamond with the
    heterogeneity beneath), the overall diamond and the test for subgroup differences."""
    overall = sub.overall
    studies = _study_rows(sub.yi, sub.vi, overall.weights, sub.level, labels)
    common = sub.common
    rows: list[dict[str, Any]] = []
    for g, name in enumerate(sub.level_names):
        fit = sub.per_group[g]
        rows.append({"kind": "header", "label": name, "est": np.nan, "lo": np.nan, "hi": np.nan})
        rows.extend(studies[i] for i in np.flatnonzero(sub.group == g))
        if common is not None:
            row = {
                "kind": "subgroup",
                "label": f"Subgroup {name}",
                "est": float(common.estimate[g]),
                "lo": float(common.ci_lower[g]),
                "hi": float(common.ci_upper[g]),
                "pred": None,
                "note": f"tau² = {common.tau2:.3g} (common), {_q_note(fit)}",
            }
        else:
            row = _pooled_row(fit, f"Subgroup {name}", kind="subgroup")
        if fit.k == 1:
            row.update(label=f"Subgroup {name} (1 study)", pred=None, note="")
        rows.append(row)
    rows.append(_pooled_row(overall, ""))
    rows.append(
        {"kind": "test", "label": _test_note(sub), "est": np.nan, "lo": np.nan, "hi": np.nan}
    )
    return rows


def _q_note(res: PoolResult) -> str:
    p_text = format_p(res.q_pvalue)
    return f"Q({res.q_df}) = {res.q:.2f}, p {'<' if p_text.startswith('<') else '='} " + (
        p_text.lstrip("<")
    )


def _test_note(sub: SubgroupResult) -> str:
    """The test for subgroup differences as a journal prints it."""
    if len(sub.levels) == 1 or math.isnan(sub.q_between):
        return sub.test_text()
    p_text = format_p(sub.q_between_pvalue)
    p = f"p {'<' if p_text.startswith('<') else '='} {p_text.lstrip('<')}"
    if sub.q_between_distribution == "F":
        stat = f"F({sub.q_between_df}, {sub.q_between_df_residual:g}) = {sub.q_between:.2f}"
    else:
        stat = f"Q({sub.q_between_df}) = {sub.q_between:.2f}"
    return f"Test for subgroup differences: {stat}, {p}"


def _binary_rows(
    res: MHResult | PetoResult, labels: Sequence[str] | None
) -> tuple[list[dict[str, Any]], str]:
    """Rows of a Mantel-Haenszel or Peto result: every study that was not omitted, with its
    events/total (events/person-time) per group, its study-level effect and its weight in
    the pooled estimate; the pooled diamond with the heterogeneity line."""
    used = [i for i in range(len(res.labels)) if i not in set(res.omitted)]
    names = [res.labels[i] for i in used] if labels is None else list(labels)
    if len(names) != len(used):
        msg = f"`labels` has {len(names)} entries but the model has {len(used)} studies"
        raise ValueError(msg)
    lo, hi = res.study_ci()
    cells = res.cells
    if res.cell_names[1] == "t1i":  # events / person-time
        group1 = [f"{cells[i, 0]:g}/{cells[i, 1]:g}" for i in used]
        group2 = [f"{cells[i, 2]:g}/{cells[i, 3]:g}" for i in used]
    else:  # events / total
        group1 = [f"{cells[i, 0]:g}/{cells[i, 0] + cells[i, 1]:g}" for i in used]
        group2 = [f"{cells[i, 2]:g}/{cells[i, 2] + cells[i, 3]:g}" for i in used]
    title = "Events/Time" if res.cell_names[1] == "t1i" else "Events/N"
    width = max(len(title) + 2, *(len(g) for g in group1 + group2))
    rows: list[dict[str, Any]] = [
        {
            "kind": "study",
            "label": name,
            "est": res.yi[i],
            "lo": lo[i],
            "hi": hi[i],
            "weight": float(res.weights[i]),
            "counts": f"{g1:>{width}s} {g2:>{width}s}  ",
        }
        for name, i, g1, g2 in zip(names, used, group1, group2, strict=True)
    ]
    method = "Peto" if isinstance(res, PetoResult) else "Mantel-Haenszel"
    p_text = format_p(res.q_pvalue)
    note = (
        f"Q({res.q_df}) = {res.q:.2f}, p {'<' if p_text.startswith('<') else '='} "
        f"{p_text.lstrip('<')}, I² = {res.i2:.0f}%"
    )
    rows.append(
        {
            "kind": "pooled",
            "label": f"{method} (EE model)",
            "est": res.estimate,
            "lo": res.ci_lower,
            "hi": res.ci_upper,
            "pred": None,
            "note": note,
            "counts": " " * (2 * width + 3),
        }
    )
    header = f"{title + ' 1':>{width}s} {title + ' 2':>{width}s}  "
    return rows, header


def _sensitivity_rows(
    res: LeaveOneOutResult | CumulativeResult, labels: Sequence[str] | None
) -> list[dict[str, Any]]:
    n = len(res.estimate)
    names = list(labels) if labels is not None else [f"Study {int(s) + 1}" for s in res.study]
    if len(names) != n:
        msg = f"`labels` has {len(names)} entries but the result has {n} rows"
        raise ValueError(msg)
    prefix = "Omitting " if isinstance(res, LeaveOneOutResult) else "+ "
    return [
        {
            "kind": "study",
            "label": prefix + names[i],
            "est": res.estimate[i],
            "lo": res.ci_lower[i],
            "hi": res.ci_upper[i],
            "pooled_interval": True,  # a pooled result's CI: part of the axis range
        }
        for i in range(n)
    ]


def funnel(
    result: object,
    *,
    contours: Sequence[float] | None = (0.90, 0.95, 0.99),
    xlabel: str | None = None,
    ax: Any = None,
) -> Any:
    """Funnel plot: effect sizes against their standard errors (axis inverted) [2]_.

    The pseudo-confidence region ``μ̂ ± z·SE`` is drawn around the pooled estimate; with
    `contours`, the regions where a study's two-sided p-value against 0 falls between the
    given significance levels are shaded (contour-enhanced funnel plot [3]_). For a
    trim-and-fill result the filled studies are drawn as hollow circles and the region is
    centred on the filled estimate.

    Parameters
    ----------
    result : PoolResult or TrimFillResult
    contours : sequence of float or None
        Confidence levels of the shaded contours (e.g. 0.90, 0.95, 0.99), each in
        (0, 1) (a ``ValueError`` otherwise); ``None``: none.
    xlabel : str, optional
        Label of the effect axis.
    ax : matplotlib Axes, optional

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
    >>> bool(fig.axes[0].yaxis_inverted())
    True
    """
    if isinstance(result, TrimFillResult):
        pooled = result.pooled
        k_obs = pooled.k - result.k0
        y_obs, v_obs = pooled.yi[:k_obs], pooled.vi[:k_obs]
        y_fill, v_fill = result.filled_yi, result.filled_vi
    elif isinstance(result, PoolResult):
        pooled = result
        y_obs, v_obs = pooled.yi, pooled.vi
        y_fill = v_fill = np.array([])
    else:
        msg = f"cannot draw a funnel plot of {type(result).__name__}"
        raise TypeError(msg)
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 5.0), layout="constrained")
    else:
        fig = ax.figure
    se_max = float(np.sqrt(max(np.max(v_obs), np.max(v_fill) if v_fill.size else 0.0))) * 1.05
    se = np.linspace(0.0, se_max, 100)
    if contours is not None and np.ndim(contours) == 0:
        contours = [contours]  # type: ignore[list-item]  # one level given as a number
    if contours:
        shades = ["0.92", "0.82", "0.72", "0.62"]
        edges = sorted(check_level(c, "contours") for c in contours)
        z = [float(critical_value(c)) for c in edges]
        for i, zc in enumerate(z):
            z_next = z[i + 1] if i + 1 < len(z) else None
            outer = se * z_next if z_next is not None else np.full_like(se, np.inf)
            for sign in (-1.0, 1.0):
                inner_x = sign * zc * se
                outer_x = sign * (outer if z_next is not None else np.full_like(se, 1e6))
                ax.fill_betweenx(
                    se,
                    inner_x,
                    outer_x,
                    color=shades[i % len(shades)],
                    zorder=0,
                    linewidth=0,
                    label=f"p < {1 - edges[i]:.2g}" if sign > 0 else None,
                )
    crit = float(critical_value(pooled.level))
    ax.plot(pooled.estimate - crit * se, se, color="black", lw=0.8, linestyle="--")
    ax.plot(pooled.estimate + crit * se, se, color="black", lw=0.8, linestyle="--")
    ax.axvline(pooled.estimate, color="black", lw=0.8)
    ax.scatter(y_obs, np.sqrt(v_obs), color="black", s=22, zorder=3, label="studies")
    if y_fill.size:
        ax.scatter(
            y_fill,
            np.sqrt(v_fill),
            facecolors="white",
            edgecolors="black",
            s=22,
            zorder=3,
            label="filled (trim and fill)",
        )
    all_y = np.concatenate([y_obs, y_fill])
    half = max(float(np.max(np.abs(all_y - pooled.estimate))), crit * se_max) * 1.1
    ax.set_xlim(pooled.estimate - half, pooled.estimate + half)
    ax.set_ylim(se_max, 0.0)
    ax.set_ylabel("Standard error")
    ax.set_xlabel(xlabel or "Effect size")
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    return fig


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


def bayes_forest(
    result: Any,
    *,
    labels: Sequence[str] | None = None,
    transform: str | Callable[[Any], Any] | None = None,
    xlabel: str | None = None,
    refline: float | None = 0.0,
    ax: Any = None,
) -> Any:
    """Forest plot of a :func:`ketameta.bayes_pool` result with shrinkage estimates [4]_.

    Each study shows its estimate with its confidence interval (black) and, just beneath in
    grey, the posterior median and credible interval of its own effect θ_i (the shrinkage
    estimate); the diamond is the posterior median and credible interval of μ and the bar
    beneath it the prediction interval for a new study.

    Parameters
    ----------
    result : BayesPoolResult
    labels : sequence of str, optional
        Study labels (default "Study 1", ...).
    transform : {"exp", "expit", "tanh"} or callable, optional
        Back-transform for display, as in :func:`forest`.
    xlabel : str, optional
    refline : float or None
        Reference line (analysis scale).
    ax : matplotlib Axes, optional

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
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()][:2]
    ['A', 'B']
    """
    from .bayes import BayesPoolResult

    if not isinstance(result, BayesPoolResult):
        msg = f"bayes_forest() draws a BayesPoolResult, got {type(result).__name__}"
        raise TypeError(msg)
    f = _transform(transform)
    k = result.k
    names = [f"Study {i + 1}" for i in range(k)] if labels is None else [str(x) for x in labels]
    if len(names) != k:
        msg = f"`labels` has {len(names)} entries but the result has {k} studies"
        raise ValueError(msg)
    lv = result.level
    lo_i, hi_i = _study_ci(result.yi, result.vi, lv)
    n_rows = k + 3
    fig, ax = _figure(n_rows, ax)
    ypos = np.arange(n_rows, 0, -1, dtype=float)
    left, right = [], []
    xs: list[float] = []
    for i in range(k):
        y = ypos[i]
        est, lo, hi = (float(f(z)) for z in (result.yi[i], lo_i[i], hi_i[i]))
        ax.plot([lo, hi], [y + 0.12, y + 0.12], color="black", lw=1.0)
        ax.plot([est], [y + 0.12], marker="s", color="black", markersize=5, linestyle="none")
        s_med = float(f(result.theta_median[i]))
        s_lo, s_hi = (float(f(z)) for z in (result.theta_ci_lower[i], result.theta_ci_upper[i]))
        ax.plot([s_lo, s_hi], [y - 0.18, y - 0.18], color="gray", lw=1.0)
        ax.plot([s_med], [y - 0.18], marker="o", color="gray", markersize=4, linestyle="none")
        xs += [lo, hi, s_lo, s_hi]
        left.append(_short(names[i]))
        right.append(f"{est:.2f} [{lo:.2f}, {hi:.2f}]")
    y_mu = ypos[k + 1]
    m, a, b = (float(f(z)) for z in (result.mu_median, result.mu_ci_lower, result.mu_ci_upper))
    _diamond(ax, y_mu, m, a, b, "black")
    p_lo, p_hi = float(f(result.pred_lower)), float(f(result.pred_upper))
    y_pred = ypos[k + 2]
    ax.plot([p_lo, p_hi], [y_pred, y_pred], color="black", lw=3.0, solid_capstyle="butt")
    xs += [a, b, p_lo, p_hi]
    left += ["", "Effect μ (posterior)", "New study (prediction)"]
    right += [
        "",
        f"{m:.2f} [{a:.2f}, {b:.2f}]",
        f"{float(f(result.pred_median)):.2f} [{p_lo:.2f}, {p_hi:.2f}]",
    ]
    ax.set_ylim(0.4, n_rows + 0.6)
    ax.set_yticks(ypos, left)
    ax.tick_params(axis="y", length=0)
    right_ax = ax.twinx()
    right_ax.set_ylim(ax.get_ylim())
    right_ax.set_yticks(ypos, right, family="monospace")
    right_ax.tick_params(axis="y", length=0)
    for tick in ax.get_yticklabels()[k + 1 :]:
        tick.set_fontweight("bold")
    for a_ in (ax, right_ax):
        for side in ("left", "right", "top"):
            a_.spines[side].set_visible(False)
    if refline is not None:
        ax.axvline(float(f(refline)), color="gray", lw=0.8, linestyle="--", zorder=1)
    if transform == "exp":
        ax.set_xscale("log")
    finite = [x for x in xs if np.isfinite(x)]
    low, high = min(finite), max(finite)
    if transform == "exp":
        ax.set_xlim(low / 1.1, high * 1.1)
    else:
        pad = 0.05 * (high - low) if high > low else 0.1
        ax.set_xlim(low - pad, high + pad)
    ax.plot([], [], color="black", marker="s", markersize=5, label="estimate (CI)")
    ax.plot([], [], color="gray", marker="o", markersize=4, label="shrinkage (credible interval)")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, fontsize="small")
    prior = result.tau_prior.describe()
    ax.set_xlabel(
        (xlabel + "\n" if xlabel else "") + f"tau prior: {prior}; central {100 * lv:g}% intervals"
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
