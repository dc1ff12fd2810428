"""Publication bias beyond funnel asymmetry: selection models (metafor's ``selmodel``) and
the PET-PEESE procedure.

References
----------
.. [1] Hedges, L. V. (1992). Modeling publication selection effects in meta-analysis.
   Statistical Science, 7(2), 246-255. https://doi.org/10.1214/ss/1177011364
.. [2] Vevea, J. L., & Hedges, L. V. (1995). A general linear model for estimating effect
   size in the presence of publication bias. Psychometrika, 60(3), 419-435.
   https://doi.org/10.1007/BF02294384
.. [3] Vevea, J. L., & Woods, C. M. (2005). Publication bias in research synthesis:
   Sensitivity analysis using a priori weight functions. Psychological Methods, 10(4),
   428-443. https://doi.org/10.1037/1082-989X.10.4.428
.. [4] Citkowicz, M., & Vevea, J. L. (2017). A parsimonious weight function for modeling
   publication bias. Psychological Methods, 22(1), 28-41.
   https://doi.org/10.1037/met0000119
.. [5] Preston, C., Ashby, D., & Smyth, R. (2004). Adjusting for publication bias:
   Modelling the selection process. Journal of Evaluation in Clinical Practice, 10(2),
   313-322. https://doi.org/10.1111/j.1365-2753.2003.00457.x
.. [6] Stanley, T. D., & Doucouliagos, H. (2014). Meta-regression approximations to
   reduce publication selection bias. Research Synthesis Methods, 5(1), 60-78.
   https://doi.org/10.1002/jrsm.1095
.. [7] Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
   Journal of Statistical Software, 36(3), 1-48. https://doi.org/10.18637/jss.v036.i03
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from scipy import special

from . import _engine
from ._engine import selection as _sel
from ._engine.inference import chi2_sf, critical_z, two_sided_normal_p
from ._fitted import MODEL_DEFAULTS, model_options, studies_and_settings
from ._results import RecordResult, array_field, format_p, table_lines
from ._typing import FloatArray
from ._validation import as_number, bools, check_choice, floats, ints, strings
from ._warnings import ConvergenceError, DegenerateDataWarning, SmallSampleWarning
from .metareg import MetaRegResult, metareg
from .pooling import PoolResult

__all__ = [
    "SELECTION_TYPES",
    "VEVEA_WOODS_2005",
    "PetPeeseResult",
    "SelectionModelResult",
    "pet_peese",
    "selection_model",
]

#: the selection functions of :func:`selection_model` (metafor's ``type=`` values)
SELECTION_TYPES: tuple[str, ...] = tuple(_sel.SELECTION_TYPES)

#: The a priori weight functions of Vevea & Woods (2005), Table 1: p-value cut-points
#: (one-sided p-values) and the weights of moderate and severe one- and two-tailed
#: selection, "merely examples and [...] not canonical" (Vevea & Woods 2005, p. 431).
#: Pass a key as ``delta=`` to :func:`selection_model` (its ``steps`` are then these).
VEVEA_WOODS_2005: dict[str, tuple[float, ...]] = {
    "steps": (0.005, 0.01, 0.05, 0.10, 0.25, 0.35, 0.50, 0.65, 0.75, 0.90, 0.95, 0.99, 0.995, 1),
    "moderate_one_tailed": (
        1, 0.99, 0.95, 0.80, 0.75, 0.65, 0.60, 0.55, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50,
    ),
    "severe_one_tailed": (
        1, 0.99, 0.90, 0.75, 0.60, 0.50, 0.40, 0.35, 0.30, 0.25, 0.10, 0.10, 0.10, 0.10,
    ),
    "moderate_two_tailed": (
        1, 0.99, 0.95, 0.90, 0.80, 0.75, 0.60, 0.60, 0.75, 0.80, 0.90, 0.95, 0.99, 1.00,
    ),
    "severe_two_tailed": (
        1, 0.99, 0.90, 0.75, 0.60, 0.50, 0.25, 0.25, 0.50, 0.60, 0.75, 0.90, 0.99, 1.00,
    ),
}  # fmt: skip

_ALTERNATIVES = ("greater", "less", "two.sided")
_CONTROL_KEYS = ("delta_min", "delta_max", "pval_min", "tau2tol", "deltatol", "maxiter", "starts")


@attrs.frozen(kw_only=True)
class SelectionModelResult(RecordResult):
    """A fitted selection model (see :func:`selection_model`).

    Attributes
    ----------
    coef, se, statistic, pvalue, ci_lower, ci_upper : ndarray, shape (p,)
        The selection-adjusted coefficients (the pooled effect for a :func:`~ketameta.pool`
        result), their standard errors (from the inverse Hessian of the log-likelihood),
        z statistics, two-sided p-values and Wald confidence limits.
    names : tuple of str
        Coefficient names (``"intrcpt"``, moderators as in the input fit).
    vcov : ndarray, shape (p, p)
        Covariance matrix of the coefficients.
    tau2, tau2_se, tau : float
        Adjusted (residual) τ², its standard error, τ (0 and NaN for an equal-effects fit).
    delta, delta_se, delta_statistic, delta_pvalue, delta_ci_lower, delta_ci_upper : ndarray
        The selection parameters δ, their standard errors, the z statistics of
        ``δ = δ_null``, two-sided p-values and Wald limits truncated to the parameter's
        bounds; NaN where δ is fixed (the step function's δ₁ = 1, values given in `delta`)
        or estimated below ``deltatol``.
    delta_vcov : ndarray
        Covariance matrix of all δ (rows and columns of fixed δ are NaN).
    delta_estimated : tuple of bool
        Which δ were estimated.
    delta_null : float
        The value of δ under no selection (1 for the step function, beta and truncated
        models, 0 for the others).
    lrt, lrt_df, lrt_pvalue : float, int, float
        Likelihood-ratio test of no selection (all estimated δ at `delta_null`) against the
        ML fit of the model without selection.
    lrt_tau2, lrt_tau2_pvalue : float
        Likelihood-ratio test of τ² = 0 within the selection model (NaN for EE).
    qm, qm_df, qm_pvalue : float, int, float
        Wald test of the moderators (all coefficients but the intercept; NaN without).
    loglik, loglik_unadjusted : float
        Log-likelihood of the selection model and of the ML fit without selection.
    counts : tuple of int
        Number of studies whose p-value falls in each interval (step functions; the
        intervals below and above the threshold for a weight function with `steps`).
    pvalues : ndarray
        The studies' p-values (one- or two-sided as `alternative`).
    type, alternative, steps, level, method, k, yi, vi, X, iterations
        The settings and data used (`method` is the input fit's: ``"EE"`` or a
        random-effects fit, always refitted by ML).
    """

    coef: FloatArray = array_field()
    se: FloatArray = array_field()
    statistic: FloatArray = array_field()
    pvalue: FloatArray = array_field()
    ci_lower: FloatArray = array_field()
    ci_upper: FloatArray = array_field()
    names: tuple[str, ...] = attrs.field(converter=strings)
    vcov: FloatArray = array_field()
    intercept: bool
    tau2: float
    tau2_se: float
    tau: float
    delta: FloatArray = array_field()
    delta_se: FloatArray = array_field()
    delta_statistic: FloatArray = array_field()
    delta_pvalue: FloatArray = array_field()
    delta_ci_lower: FloatArray = array_field()
    delta_ci_upper: FloatArray = array_field()
    delta_vcov: FloatArray = array_field()
    delta_estimated: tuple[bool, ...] = attrs.field(converter=bools)
    delta_null: float
    lrt: float
    lrt_df: int
    lrt_pvalue: float
    lrt_tau2: float
    lrt_tau2_pvalue: float
    qm: float
    qm_df: int
    qm_pvalue: float
    loglik: float
    loglik_unadjusted: float
    counts: tuple[int, ...] = attrs.field(converter=ints)
    pvalues: FloatArray = array_field()
    type: str
    alternative: str
    steps: tuple[float, ...] = attrs.field(converter=floats)
    level: float
    method: str
    k: int
    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    X: FloatArray = array_field()
    iterations: int

    # -- the intercept-only view -----------------------------------------------------------

    @property
    def estimate(self) -> float:
        """The adjusted pooled effect (the first coefficient)."""
        return float(self.coef[0])

    @property
    def estimate_se(self) -> float:
        """Standard error of :attr:`estimate`."""
        return float(self.se[0])

    def weight_function(self, p: Any) -> FloatArray:
        """The estimated selection function ``w(p)`` at p-values `p` (relative likelihood of
        publication; for ``type="trunc"``, `p` are effect sizes ``y``)."""
        pv = np.asarray(p, dtype=np.float64)
        kind = _sel.SELECTION_TYPES[self.type]
        d = np.asarray(self.delta)
        if self.type == "stepfun":
            idx = np.minimum(np.searchsorted(np.asarray(self.steps), pv, side="left"), d.size - 1)
            return np.asarray(d[idx])
        if self.type == "trunc":
            yc = self.steps[0]
            above = pv > yc if self.alternative == "greater" else pv < yc
            return np.asarray(np.where(above, 1.0, d[0]))
        assert kind.weight is not None
        pmin = kind.pval_min
        q = np.clip(pv, pmin, 1 - pmin) if pmin > 0 else pv
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            w = kind.weight(q, d, np.asarray(self.steps))
        if self.steps:
            a = np.array([self.steps[0]])
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                wa = kind.weight(a, d, a)[0]
            w = np.where(q <= self.steps[0], 1.0, w / wa)
        return np.asarray(w, dtype=np.float64)

    def weight_function_ci(self, p: Any) -> tuple[FloatArray, FloatArray]:
        """Pointwise Wald limits of :meth:`weight_function` at `p`: the δ limits for a
        step function, else ``w ± z·SE`` with the SE by the delta method from the δ
        covariance (lower limits truncated at 0)."""
        pv = np.asarray(p, dtype=np.float64)
        if self.type in ("stepfun", "trunc"):
            lo_d = np.where(np.isnan(self.delta_ci_lower), self.delta, self.delta_ci_lower)
            hi_d = np.where(np.isnan(self.delta_ci_upper), self.delta, self.delta_ci_upper)
            lo = attrs.evolve(self, delta=lo_d).weight_function(pv)
            hi = attrs.evolve(self, delta=hi_d).weight_function(pv)
            return lo, hi
        w = self.weight_function(pv)
        est = [j for j in range(self.delta.size) if not math.isnan(self.delta_se[j])]
        grads = []
        for j in est:
            h = 1e-6 * max(1.0, abs(float(self.delta[j])))
            up = self.delta.copy()
            up[j] += h
            dn = self.delta.copy()
            dn[j] = max(dn[j] - h, 0.0)
            grads.append(
                (
                    attrs.evolve(self, delta=up).weight_function(pv)
                    - attrs.evolve(self, delta=dn).weight_function(pv)
                )
                / (up[j] - dn[j])
            )
        if not grads:
            return w.copy(), w.copy()
        g = np.stack(grads)
        cov = self.delta_vcov[np.ix_(est, est)]
        se = np.sqrt(np.maximum(np.einsum("in,ij,jn->n", g, cov, g), 0.0))
        crit = critical_z(self.level)
        return np.maximum(w - crit * se, 0.0), w + crit * se

    def summary(self) -> str:
        """The printed summary, laid out as metafor's ``print(selmodel(...))``."""
        mods = self.X.shape[1] > 1 or not self.intercept
        lines: list[str] = []
        if self.method == "EE":
            lines.append(f"Equal-Effects Model (k = {self.k})")
        else:
            kind = "Mixed-Effects Model" if mods else "Random-Effects Model"
            what = "residual" if mods else "total"
            lines.append(f"{kind} (k = {self.k}; tau^2 estimator: ML)")
            lines.append("")
            width = 56 if mods else 49
            lines.append(
                f"{f'tau^2 (estimated amount of {what} heterogeneity):':{width}s}"
                f"{self.tau2:.4f} (SE = {_fmt(self.tau2_se)})"
            )
            lines.append(f"{'tau (square root of estimated tau^2 value):':{width}s}{self.tau:.4f}")
            if not math.isnan(self.lrt_tau2):  # (NaN: tau^2 was fixed in the input fit)
                lines.append("")
                lines.append(
                    "Test for Residual Heterogeneity:" if mods else "Test for Heterogeneity:"
                )
                lines.append(
                    f"LRT(df = 1) = {self.lrt_tau2:.4f}, p-val {_p_sign(self.lrt_tau2_pvalue)}"
                )
        lines.append("")
        if mods and self.qm_df > 0:
            which = f"coefficient {2}" if self.qm_df == 1 else f"coefficients {2}:{self.qm_df + 1}"
            lines.append(f"Test of Moderators ({which}):")
            lines.append(f"QM(df = {self.qm_df}) = {self.qm:.4f}, p-val {_p_sign(self.qm_pvalue)}")
            lines.append("")
        lines.append("Model Results:")
        lines.append("")
        rows = [
            [
                _fmt(self.coef[i]),
                _fmt(self.se[i]),
                _fmt(self.statistic[i]),
                format_p(float(self.pvalue[i])),
                _fmt(self.ci_lower[i]),
                _fmt(self.ci_upper[i]),
                _stars(float(self.pvalue[i])),
            ]
            for i in range(self.coef.size)
        ]
        labels = list(self.names) if mods else [""]
        lines += _table(["estimate", "se", "zval", "pval", "ci.lb", "ci.ub", ""], labels, rows)
        lines.append("")
        lines.append("Test for Selection Model Parameters:")
        lines.append(f"LRT(df = {self.lrt_df}) = {self.lrt:.4f}, p-val {_p_sign(self.lrt_pvalue)}")
        lines.append("")
        lines.append("Selection Model Results:")
        lines.append("")
        drows = []
        for j in range(self.delta.size):
            est = self.delta_estimated[j] and math.isfinite(float(self.delta_se[j]))
            dash = "---"
            drows.append(
                [
                    _fmt(self.delta[j]),
                    _fmt(self.delta_se[j]) if est else dash,
                    _fmt(self.delta_statistic[j]) if est else dash,
                    format_p(float(self.delta_pvalue[j])) if est else dash,
                    _fmt(self.delta_ci_lower[j]) if est else dash,
                    _fmt(self.delta_ci_upper[j]) if est else dash,
                    _stars(float(self.delta_pvalue[j])) if est else "",
                ]
            )
        header = ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub", ""]
        if self.type == "stepfun":
            labels = self._interval_labels()
            drows = [[str(c), *r] for c, r in zip(self.counts, drows, strict=True)]
            header = ["k", *header]
        else:
            labels = [f"delta.{j + 1}" for j in range(self.delta.size)]
            if self.delta.size == 1:  # metafor prints a single delta without a label
                labels = [""]
        lines += _table(header, labels, drows)
        lines.append("")
        lines.append("---")
        lines.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
        return "\n".join(lines)

    def _interval_labels(self) -> list[str]:
        left = ["0", *(_r_num(s) for s in self.steps[:-1])]
        right = [_r_num(s) for s in self.steps]
        width = max(len(s) for s in left)
        return [f"{a:<{width}s} < p <= {b}" for a, b in zip(left, right, strict=True)]

    def __repr__(self) -> str:
        return (
            f"SelectionModelResult(type={self.type!r}, k={self.k}, "
            f"estimate={self.estimate:.4g}, se={self.estimate_se:.4g}, tau2={self.tau2:.4g}, "
            f"delta={np.round(self.delta, 4).tolist()}, lrt_pvalue={self.lrt_pvalue:.4g})"
        )


def _r_num(x: float) -> str:
    """A number as R's ``as.character`` writes it (15 significant digits)."""
    return f"{x:.15g}"


def _fmt(x: Any) -> str:
    v = float(x)
    return "NA" if math.isnan(v) else f"{v:.4f}"


def _p_sign(p: float) -> str:
    text = format_p(p)
    return "< .0001" if text.startswith("<") else f"= {text}"


def _stars(p: float) -> str:
    if not math.isfinite(p):
        return ""
    for cut, s in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return s
    return ""


def _table(header: list[str], labels: list[str], rows: list[list[str]]) -> list[str]:
    """Right-aligned columns under a header, as wide as their values, two spaces apart and
    after the row labels (left-aligned; none for an intercept-only model), as metafor
    prints ``selmodel`` results."""
    cols = list(zip(header, *rows, strict=True))
    widths = [max(len(c) for c in col) for col in cols]
    lw = max(len(s) for s in labels)
    lead = [f"{s:<{lw}s}  " if lw else "" for s in ["", *labels]]
    out = [
        start + "  ".join(f"{c:>{w}s}" for c, w in zip(row, widths, strict=True))
        for start, row in zip(lead, [header, *rows], strict=True)
    ]
    return [s.rstrip() for s in out]


# -- argument checks -----------------------------------------------------------------------


def _check_control(control: Any) -> dict[str, Any]:
    if control is None:
        return {}
    if not isinstance(control, Mapping):
        msg = f"`control` must be a dict, got {type(control).__name__}"
        raise TypeError(msg)
    bad = [k for k in control if k not in _CONTROL_KEYS]
    if bad:
        msg = f"unknown `control` key(s) {bad}; known: {list(_CONTROL_KEYS)}"
        raise ValueError(msg)
    return dict(control)


def _check_steps(steps: Any, type_: str) -> FloatArray:
    if steps is None:
        if type_ == "stepfun":
            return np.array([0.025, 1.0])
        if type_ == "trunc":
            return np.array([0.0])
        return np.empty(0)
    if isinstance(steps, str) or not isinstance(steps, Sequence | np.ndarray):
        steps = [steps]
    vals = np.array([as_number(s, "steps") for s in steps], dtype=np.float64)
    if vals.size == 0:
        msg = "`steps` must hold at least one cut-point"
        raise ValueError(msg)
    if not np.all(np.isfinite(vals)):
        msg = f"`steps` must be finite, got {list(vals)}"
        raise ValueError(msg)
    if type_ == "trunc":
        if vals.size != 1:
            msg = f"type='trunc' takes one cut-point y_c in `steps`, got {vals.size}"
            raise ValueError(msg)
        return vals
    if np.any(np.diff(vals) <= 0):
        msg = f"`steps` must be strictly increasing, got {list(vals)}"
        raise ValueError(msg)
    if vals[0] <= 0 or vals[-1] > 1:
        msg = f"`steps` are p-value cut-points in (0, 1], got {list(vals)}"
        raise ValueError(msg)
    if type_ == "stepfun":
        return vals if vals[-1] == 1.0 else np.append(vals, 1.0)
    if vals.size != 1 or vals[0] >= 1:
        msg = (
            f"type={type_!r} takes at most one threshold alpha in (0, 1) in `steps` "
            f"(w(p) = 1 for p <= alpha), got {list(vals)}"
        )
        raise ValueError(msg)
    return vals


def _check_delta(delta: Any, n: int, type_: str) -> FloatArray:
    if delta is None:
        out = np.full(n, np.nan)
    else:
        if isinstance(delta, str) or not isinstance(delta, Sequence | np.ndarray):
            delta = [delta]
        vals = []
        for i, d in enumerate(delta):
            if d is None:
                vals.append(math.nan)
                continue
            v = as_number(d, f"delta[{i}]")
            vals.append(v)
        out = np.array(vals, dtype=np.float64)
        if out.size != n:
            msg = (
                f"`delta` must have one value per selection parameter ({n} for "
                f"type={type_!r}), got {out.size}"
            )
            raise ValueError(msg)
    if type_ == "stepfun":
        if not (math.isnan(out[0]) or out[0] == 1.0):
            msg = f"the step function's delta[0] is fixed at 1 (the reference), got {out[0]}"
            raise ValueError(msg)
        out[0] = 1.0
    return out


def _preset(delta: str, steps: Any) -> tuple[FloatArray, Any]:
    keys = [k for k in VEVEA_WOODS_2005 if k != "steps"]
    if delta not in keys:
        msg = f"`delta` must be numbers or one of the Vevea & Woods (2005) presets {keys}"
        raise ValueError(msg)
    if steps is not None and tuple(_check_steps(steps, "stepfun")) != VEVEA_WOODS_2005["steps"]:
        msg = f"the preset delta={delta!r} has its own `steps`: leave `steps` out"
        raise ValueError(msg)
    return np.array(VEVEA_WOODS_2005[delta], dtype=np.float64), VEVEA_WOODS_2005["steps"]


# -- the model -------------------------------------------------------------------------------


def selection_model(
    result: PoolResult | MetaRegResult,
    *,
    type: str = "stepfun",
    steps: Any = None,
    alternative: str = "greater",
    delta: Any = None,
    control: dict[str, Any] | None = None,
) -> SelectionModelResult:
    """Selection model for publication bias (metafor's ``selmodel``) [1]_ [2]_.

    The model of the fit `result` (random-effects, equal-effects or a meta-regression) is
    refitted by maximum likelihood with each study weighted by the relative probability
    ``w(p_i)`` that a study with its p-value is published. The estimates are those of the
    population of studies before selection, *if* the selection model describes how the
    studies were selected.

    Parameters
    ----------
    result : PoolResult or MetaRegResult
        A fit of :func:`~ketameta.pool` or :func:`~ketameta.metareg`. An equal-effects fit
        (``method="EE"``) gives an equal-effects selection model; any other τ² estimator a
        random-effects one (τ² is re-estimated by ML with the selection parameters). Its
        confidence level is the selection model's (metafor's ``selmodel`` has no `level`
        either; refit with ``pool(..., level=)`` to change it).
    type : str
        The selection function: ``"stepfun"`` (default; Hedges 1992, Vevea & Hedges 1995),
        ``"beta"`` (Citkowicz & Vevea 2017 [4]_), ``"halfnorm"``, ``"negexp"``,
        ``"logistic"``, ``"power"`` (Preston et al. 2004 [5]_), ``"negexppow"`` or
        ``"trunc"`` (selection on the effect size: ``w(y) = 1`` above the cut-point
        ``y_c``, δ below). See Notes for the formulas.
    steps : float or sequence of float, optional
        ``"stepfun"``: the p-value cut-points α₁ < ... < α_c (1 is appended if missing);
        default ``(0.025,)``, the three-parameter selection model (3PSM). ``"trunc"``:
        the cut-point ``y_c`` (default 0). Other types: an optional threshold α with
        ``w(p) = 1`` for ``p ≤ α`` and ``w(p)/w(α)`` above (metafor's extension).
    alternative : {"greater", "less", "two.sided"}
        The p-values selection acts on: one-sided for positive (``"greater"``) or negative
        effects, or two-sided.
    delta : sequence of float or str, optional
        Fixed values of the selection parameters (NaN or None: estimated): the sensitivity
        analysis with a priori weights of Vevea & Woods (2005) [3]_. A string picks one of
        their weight functions in :data:`VEVEA_WOODS_2005` (``"moderate_one_tailed"``,
        ``"severe_one_tailed"``, ``"moderate_two_tailed"``, ``"severe_two_tailed"``) with
        their cut-points.
    control : dict, optional
        ``delta_min``, ``delta_max`` (bounds of δ: default 0 and 100; 1e-5 for the beta
        model's minimum), ``pval_min`` (p-values censored to ``[pval_min, 1 - pval_min]``:
        1e-5 for the beta and power models, else 0), ``tau2tol`` (τ̂² below it is treated as
        0 for the standard errors; default ``min(1e-4, min(v)/10)``), ``deltatol`` (δ̂
        below it gets no standard error; 1e-4), ``maxiter``, ``starts`` (further starting
        values of δ) — metafor's defaults and meanings.

    Returns
    -------
    SelectionModelResult

    Raises
    ------
    ValueError
        An interval of a step function (or the side of a threshold) without a study whose
        δ would be estimated: the model is not identified (metafor's estimates then drift
        to 0 or infinity); collapse intervals.
    ConvergenceError
        The likelihood could not be maximised.

    Notes
    -----
    With ``s_i² = v_i + τ²``, ``μ_i = x_iᵀβ`` and ``p_i`` the one-sided
    (``1 - Φ(y_i/√v_i)`` for ``"greater"``, ``Φ(y_i/√v_i)`` for ``"less"``) or two-sided
    p-value, the log-likelihood is [2]_

    .. math:: \\ell = \\sum_i \\left[\\log \\phi\\!\\left(\\frac{y_i-\\mu_i}{s_i}\\right)
              - \\log s_i + \\log w(p_i) - \\log A_i\\right],\\quad
              A_i = \\int w(p(y))\\, \\frac{1}{s_i}\\phi\\!\\left(\\frac{y-\\mu_i}{s_i}
              \\right) dy .

    Weight functions (metafor's parameterisations): step function ``w(p) = δ_j`` for
    ``α_{j-1} < p ≤ α_j`` with δ₁ = 1 [1]_ [2]_ (``A_i`` a sum of normal probabilities);
    beta ``p^{δ₁-1}(1-p)^{δ₂-1}`` [4]_; half-normal ``exp(-δp²)``, negative-exponential
    ``exp(-δp)``, logistic ``2exp(-δp)/(1+exp(-δp))`` [5]_, power ``(1-p)^δ``,
    negative-exponential-power ``exp(-δ₁p^{1/δ₂})``; truncated ``w(y) = 1`` for
    ``y > y_c``, δ otherwise. Other ``A_i`` are integrals, computed by Gauss-Legendre
    quadrature on panels split where ``w`` has kinks (accurate to ~1e-14).

    Standard errors are the square roots of the inverse Hessian of ``-ℓ`` over
    (β, τ², estimated δ), by central differences with Richardson extrapolation; Wald tests
    and intervals use the normal distribution; δ's limits are truncated to its bounds. The
    likelihood-ratio test of no selection compares ``ℓ`` with the ML fit of the model
    without selection (df = number of estimated δ).

    With few studies the selection parameters are barely identified: the likelihood is flat
    in δ, the intervals are wide, and the adjusted estimate depends on the assumed weight
    function more than on the data. Treat a selection model as a sensitivity analysis.

    References
    ----------
    .. [1] Hedges (1992), Statistical Science 7(2):246-255.
       https://doi.org/10.1214/ss/1177011364
    .. [2] Vevea & Hedges (1995), Psychometrika 60(3):419-435.
       https://doi.org/10.1007/BF02294384
    .. [3] Vevea & Woods (2005), Psychological Methods 10(4):428-443.
       https://doi.org/10.1037/1082-989X.10.4.428
    .. [4] Citkowicz & Vevea (2017), Psychological Methods 22(1):28-41.
       https://doi.org/10.1037/met0000119
    .. [5] Preston, Ashby & Smyth (2004), J Eval Clin Pract 10(2):313-322.
       https://doi.org/10.1111/j.1365-2753.2003.00457.x

    Examples
    --------
    >>> import numpy as np, ketameta
    >>> y = np.array([0.61, 0.12, 0.45, 0.05, 0.33, 0.70, 0.21, -0.10, 0.52, 0.28])
    >>> v = np.array([0.04, 0.02, 0.05, 0.01, 0.03, 0.08, 0.02, 0.02, 0.06, 0.03])
    >>> fit = ketameta.pool(y, v, method="ML")
    >>> sel = ketameta.selection_model(fit, type="stepfun", steps=(0.025,))
    >>> sel.counts
    (4, 6)
    >>> print(f"{fit.estimate:.3f} -> {sel.estimate:.3f}")
    0.249 -> 0.107
    """
    given: object = result  # (checked: callers without type checking pass anything)
    if not isinstance(given, PoolResult | MetaRegResult):
        msg = (
            "`result` must be a fit of ketameta.pool or ketameta.metareg, "
            f"got {given.__class__.__name__}"
        )
        raise TypeError(msg)
    type_ = check_choice(type, "type", SELECTION_TYPES)
    alt = check_choice(alternative, "alternative", _ALTERNATIVES)
    if type_ == "trunc" and alt == "two.sided":
        msg = "type='trunc' needs alternative 'greater' or 'less'"
        raise ValueError(msg)
    lv = result.level  # as metafor's selmodel (no `level`): the fit's
    ctl = _check_control(control)
    kind = _sel.SELECTION_TYPES[type_]
    if isinstance(delta, str):
        if type_ != "stepfun":
            msg = "the Vevea & Woods (2005) presets are step functions: use type='stepfun'"
            raise ValueError(msg)
        delta, steps = _preset(delta, steps)
    cuts = _check_steps(steps, type_)
    n_delta = cuts.size if type_ == "stepfun" else kind.n_delta
    dfix = _check_delta(delta, n_delta, type_)
    est = np.isnan(dfix)

    y = np.asarray(result.yi, dtype=np.float64)
    v = np.asarray(result.vi, dtype=np.float64)
    if isinstance(result, MetaRegResult):
        X = np.asarray(result.X, dtype=np.float64)
        names = tuple(result.names)
        has_intercept = bool(result.intercept)
    else:
        X = np.ones((y.size, 1))
        names = ("intrcpt",)
        has_intercept = True
    if np.any(v <= 0):
        msg = "a selection model needs positive sampling variances `vi`"
        raise ValueError(msg)
    random = result.method != "EE"
    # a tau^2 fixed in the fit stays fixed (only beta and delta are estimated)
    tau2_value = float(result.tau2) if result.tau2_fixed and random else None
    est_tau2 = random and tau2_value is None
    pval_min = float(ctl.get("pval_min", kind.pval_min))
    lower = np.broadcast_to(
        np.asarray(ctl.get("delta_min", kind.lower), dtype=np.float64), (n_delta,)
    ).copy()
    upper = np.broadcast_to(
        np.asarray(ctl.get("delta_max", kind.upper), dtype=np.float64), (n_delta,)
    ).copy()
    prob = _sel.make_problem(y, v, X, kind, alt, cuts, pval_min)
    counts = _counts(prob, cuts, type_, est)

    # the fit without selection (ML; EE stays EE)
    base = metareg(
        y, v, mods=X, intercept=False, method="EE" if not random else "ML", tau2=tau2_value
    )
    ll0 = base.fit_statistics()["ML"]["ll"]
    starts = [np.where(est, _start(type_), dfix)]
    for s in ctl.get("starts", ()):
        starts.append(np.where(est, np.asarray(s, dtype=np.float64), dfix))
    if type_ != "stepfun" and est.any():
        for alt_start in _extra_starts(type_):
            starts.append(np.where(est, alt_start, dfix))
    maxiter = int(ctl.get("maxiter", 1000))
    fit = _sel.fit_selection(
        prob,
        random=random,
        beta0=np.asarray(base.coef),
        tau20=float(base.tau2),
        delta_fixed=dfix,
        lower=lower,
        upper=upper,
        starts=starts,
        maxiter=maxiter,
        tau2_value=tau2_value,
    )
    if not fit.converged or not math.isfinite(fit.loglik):
        what = f"selection model ({type_})"
        raise ConvergenceError(what, fit.iterations, "the likelihood was not maximised")
    # standard errors from the Hessian of -loglik over (beta, tau2, estimated delta)
    tau2tol = float(ctl.get("tau2tol", min(1e-4, float(np.min(v)) / 10.0)))
    deltatol = float(ctl.get("deltatol", 1e-4 if type_ in ("stepfun", "beta") else 0.0))
    p = X.shape[1]
    # tau^2 below tau2tol is treated as 0 (left out of the Hessian), as metafor
    with_tau2 = est_tau2 and fit.tau2 >= tau2tol
    use_delta = est & (fit.delta >= deltatol) if deltatol > 0 else est.copy()
    off = p + int(with_tau2)
    theta = np.concatenate([fit.beta, [fit.tau2] if with_tau2 else [], fit.delta[use_delta]])

    def nll(t: FloatArray) -> float:
        d = fit.delta.copy()
        d[use_delta] = t[off:]
        val = _sel.loglik(prob, t[:p], float(t[p]) if with_tau2 else 0.0, d)
        return -val

    max_step = np.full(theta.size, np.inf)
    max_step[:p] = 0.5 * _sel.param_scale(prob, False, fit.tau2, np.zeros(0, bool))[:p]
    if with_tau2:
        max_step[p] = 0.25 * (float(np.min(v)) + fit.tau2)
    dd = fit.delta[use_delta]
    max_step[off:] = np.maximum(np.where(dd > 0, 0.5 * (dd - lower[use_delta]), np.inf), 1e-6)
    hess = _sel.hessian(nll, theta, levels=4, max_step=max_step)
    try:
        cov = np.linalg.inv(hess)
        if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = np.full(hess.shape, np.nan)
    vb = np.asarray(cov[:p, :p], dtype=np.float64)
    se = np.sqrt(np.diag(vb))
    z = fit.beta / se
    crit = critical_z(lv)
    tau2_se = math.sqrt(cov[p, p]) if with_tau2 else math.nan
    d_se = np.full(n_delta, np.nan)
    d_se[use_delta] = np.sqrt(np.diag(cov)[off:])
    d_cov = np.full((n_delta, n_delta), np.nan)
    d_cov[np.ix_(use_delta, use_delta)] = cov[off:, off:]
    null = kind.null
    dz = (fit.delta - null) / d_se
    d_lo = np.maximum(fit.delta - crit * d_se, lower)
    d_hi = np.minimum(fit.delta + crit * d_se, upper)

    # likelihood-ratio tests
    lrt = max(2.0 * (fit.loglik - ll0), 0.0)
    lrt_df = int(est.sum())
    if type_ == "stepfun" and est[0]:
        lrt_df -= 1
    lrt_p = float(chi2_sf(float(lrt_df), lrt)) if lrt_df > 0 else math.nan
    if est_tau2:
        fit0 = _sel.fit_selection(
            prob,
            random=random,
            beta0=fit.beta,
            tau20=0.0,
            delta_fixed=dfix,
            lower=lower,
            upper=upper,
            starts=[np.where(est, fit.delta, dfix)],
            tau2_zero=True,
            maxiter=maxiter,
        )
        lrt_tau2 = max(2.0 * (fit.loglik - fit0.loglik), 0.0)
        lrt_tau2_p = float(chi2_sf(1.0, lrt_tau2))
    else:
        lrt_tau2 = lrt_tau2_p = math.nan
    qm, qm_df, qm_p = _moderator_test(fit.beta, vb, has_intercept)
    return SelectionModelResult(
        coef=fit.beta,
        se=se,
        statistic=z,
        pvalue=np.array([two_sided_normal_p(float(x)) for x in z]),
        ci_lower=fit.beta - crit * se,
        ci_upper=fit.beta + crit * se,
        names=names,
        vcov=vb,
        intercept=has_intercept,
        tau2=fit.tau2,
        tau2_se=tau2_se,
        tau=math.sqrt(fit.tau2),
        delta=fit.delta,
        delta_se=d_se,
        delta_statistic=dz,
        delta_pvalue=np.array([two_sided_normal_p(float(x)) for x in dz]),
        delta_ci_lower=np.where(np.isnan(d_se), np.nan, d_lo),
        delta_ci_upper=np.where(np.isnan(d_se), np.nan, d_hi),
        delta_vcov=d_cov,
        delta_estimated=est,
        delta_null=null,
        lrt=lrt,
        lrt_df=lrt_df,
        lrt_pvalue=lrt_p,
        lrt_tau2=lrt_tau2,
        lrt_tau2_pvalue=lrt_tau2_p,
        qm=qm,
        qm_df=qm_df,
        qm_pvalue=qm_p,
        loglik=fit.loglik,
        loglik_unadjusted=ll0,
        counts=counts,
        pvalues=_sel.pvalues(y, v, alt),
        type=type_,
        alternative=alt,
        steps=tuple(cuts),
        level=lv,
        method=result.method,
        k=int(y.size),
        yi=y,
        vi=v,
        X=X,
        iterations=fit.iterations,
    )


def _start(type_: str) -> float:
    return 1.0


def _extra_starts(type_: str) -> list[FloatArray]:
    if type_ == "beta":
        return [np.array([0.5, 2.0]), np.array([2.0, 0.5])]
    if type_ == "negexppow":
        return [np.array([3.0, 1.0]), np.array([1.0, 3.0])]
    return [np.array([5.0]), np.array([0.1])]


def _counts(prob: Any, cuts: FloatArray, type_: str, est: Any) -> tuple[int, ...]:
    """Studies per p-value interval; an interval that identifies an estimated δ must hold
    one."""
    if type_ == "stepfun":
        counts = np.bincount(prob.interval, minlength=cuts.size)
        left = ["0", *(_r_num(s) for s in cuts[:-1])]
        for j, c in enumerate(counts):
            needed = est[j] or (j == 0 and bool(np.any(est)))
            if c == 0 and needed:
                msg = (
                    f"no study has a p-value in the interval {left[j]} < p <= "
                    f"{_r_num(cuts[j])}: its selection weight is not identified (its estimate "
                    "would drift to "
                    f"{'infinity for the others' if j == 0 else '0'}); merge it with a "
                    "neighbouring interval via `steps`, or fix its weight with `delta`"
                )
                raise ValueError(msg)
        return tuple(int(c) for c in counts)
    if type_ == "trunc":
        yc = float(cuts[0])
        below = (
            int(np.sum(prob.y <= yc))
            if prob.alternative == "greater"
            else int(np.sum(prob.y >= yc))
        )
        return (prob.y.size - below, below)
    if cuts.size:
        a = float(cuts[0])
        below = int(np.sum(prob.p_obs <= a))
        for c, side in ((below, f"p <= {_r_num(a)}"), (prob.y.size - below, f"p > {_r_num(a)}")):
            if c == 0 and np.any(est):
                msg = (
                    f"no study has a p-value with {side}: the selection function with the "
                    f"threshold steps={_r_num(a)} is not identified"
                )
                raise ValueError(msg)
        return (below, prob.y.size - below)
    return ()


def _moderator_test(beta: FloatArray, vb: FloatArray, intercept: bool) -> tuple[float, int, float]:
    idx = list(range(1 if intercept else 0, beta.size))
    if not idx or (intercept and beta.size == 1):
        return math.nan, 0, math.nan
    b = beta[idx]
    try:
        qm = float(b @ np.linalg.solve(vb[np.ix_(idx, idx)], b))
    except np.linalg.LinAlgError:
        return math.nan, len(idx), math.nan
    return qm, len(idx), float(chi2_sf(float(len(idx)), qm))


# -- PET-PEESE -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PetPeeseResult(RecordResult):
    """The PET-PEESE procedure (see :func:`pet_peese`).

    Attributes
    ----------
    pet_estimate, pet_se, pet_statistic, pet_pvalue, pet_ci_lower, pet_ci_upper : float
        PET: the intercept of the regression of the effects on their standard errors (the
        effect of a study with SE → 0), its SE, t (``model="lm"``) or z statistic,
        p-value of the test of `alternative` and confidence limits.
    pet_slope, pet_slope_se : float
        PET's coefficient of the standard error (Egger's asymmetry coefficient).
    peese_estimate, peese_se, peese_statistic, peese_pvalue, peese_ci_lower,
    peese_ci_upper, peese_slope, peese_slope_se : float
        The same for PEESE (the regression on the sampling variances).
    selected : str
        ``"PEESE"`` when PET's test of θ = 0 rejects at `alpha`, else ``"PET"``.
    estimate, se, ci_lower, ci_upper : float
        The selected fit's estimate, SE and interval.
    df : float
        Degrees of freedom of the t tests (k - 2; ``inf`` for ``model="rma"`` with ``test="z"``).
    k, alpha, alternative, level, model, method
        The data size and settings.
    """

    pet_estimate: float
    pet_se: float
    pet_statistic: float
    pet_pvalue: float
    pet_ci_lower: float
    pet_ci_upper: float
    pet_slope: float
    pet_slope_se: float
    peese_estimate: float
    peese_se: float
    peese_statistic: float
    peese_pvalue: float
    peese_ci_lower: float
    peese_ci_upper: float
    peese_slope: float
    peese_slope_se: float
    selected: str
    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    df: float
    k: int
    alpha: float
    alternative: str
    level: float
    model: str
    method: str

    def summary(self) -> str:
        """A summary of both fits and the procedure's choice."""
        stat = "t" if math.isfinite(self.df) else "z"
        pct = f"{100 * self.level:g}%"
        lines = [
            f"PET-PEESE (Stanley & Doucouliagos 2014; k = {self.k}; "
            + ("weighted least squares" if self.model == "lm" else f"rma, {self.method}")
            + ")",
            "",
        ]
        fields = ("estimate", "se", "statistic", "pvalue", "ci_lower", "ci_upper", "slope")
        rows = [
            [
                format_p(v) if f == "pvalue" else f"{v:.4f}" if math.isfinite(v) else "NA"
                for f, v in ((f, getattr(self, f"{name}_{f}")) for f in fields)
            ]
            for name in ("pet", "peese")
        ]
        lines += table_lines(
            ["estimate", "se", stat + "val", "pval", "ci.lb", "ci.ub", "slope"],
            rows,
            [10, 9, 9, 9, 9, 9, 9],
            stub=["PET   ", "PEESE "],
        )
        side = {"two.sided": "two-sided", "greater": "one-sided, > 0", "less": "one-sided, < 0"}
        verdict = "rejects" if self.selected == "PEESE" else "does not reject"
        if math.isnan(self.pet_pvalue):
            verdict = "is undefined (an exact fit)"
        lines += [
            "",
            f"PET's test of theta = 0 ({side[self.alternative]}, alpha = {self.alpha:g}) "
            f"{verdict}: {self.selected} is selected.",
            f"Estimate: {self.estimate:.4f} (SE = {_na(self.se)}; {pct} CI: "
            f"{_na(self.ci_lower)} to {_na(self.ci_upper)})",
        ]
        return "\n".join(lines)


def _na(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "NA"


def pet_peese(
    yi: Any,
    vi: Any = None,
    *,
    sei: Any = None,
    alpha: float = 0.05,
    alternative: str = "two.sided",
    model: str = "lm",
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    control: dict[str, Any] | None = None,
) -> PetPeeseResult:
    """The PET-PEESE procedure of Stanley & Doucouliagos (2014) [6]_.

    PET (precision-effect test) regresses the effects on their standard errors,
    ``y_i = b_0 + b_1 √v_i``; PEESE (precision-effect estimate with standard error) on their
    variances, ``y_i = b_0 + b_1 v_i``; both by weighted least squares with weights
    ``1/v_i``. ``b_0`` is the effect of a hypothetical study with SE 0. The conditional
    procedure reports PEESE's ``b_0`` when PET's test of ``b_0 = 0`` rejects at `alpha`
    (there is an effect: PEESE's curvature is then less biased), else PET's.

    Parameters
    ----------
    yi, vi, sei
        Effect sizes with variances or (keyword) standard errors, or an
        :class:`~ketameta.EffectSizes`, or a model fitted by :func:`ketameta.pool`: its
        studies and its method, test, level and control (giving `vi`, `sei` or a setting
        with it is a ``TypeError``, as for :func:`~ketameta.egger_test`).
    alpha : float
        Level of PET's test of θ = 0 that decides between the two.
    alternative : {"two.sided", "greater", "less"}
        The side of PET's test (Stanley & Doucouliagos 2014 use a one-sided test in the
        expected direction of the effect; two-sided is the common choice in psychology,
        e.g. Carter et al. 2019).
    model : {"lm", "rma"}
        ``"lm"`` (default, as Stanley & Doucouliagos): weighted least squares with a
        multiplicative dispersion and t tests on k - 2 df (Egger's regression,
        ``egger_test(model="lm")``); ``"rma"``: random-effects meta-regressions with τ²
        estimator `method` and `test` (``egger_test(model="rma")``).
    method, test, level, control
        As in :func:`ketameta.pool` (defaults ``"REML"``, ``"z"``, 0.95; `method`, `test`
        for ``model="rma"``; a fitted model's own).

    Returns
    -------
    PetPeeseResult

    Notes
    -----
    With ``w_i = 1/v_i`` and design ``[1, x_i]`` (``x_i = √v_i`` for PET, ``v_i`` for PEESE),
    ``b = (XᵀWX)⁻¹XᵀWy`` and ``Var(b) = s²(XᵀWX)⁻¹`` with
    ``s² = Σ w_i(y_i - x_iᵀb)²/(k - 2)`` [6]_. PET-PEESE is biased when the effects are
    heterogeneous and the studies few or similar in size (Stanley 2017 [8]_; Carter et
    al. 2019 [9]_): read it as a sensitivity analysis, next to a selection model.

    References
    ----------
    .. [6] Stanley & Doucouliagos (2014), Res Synth Methods 5(1):60-78.
       https://doi.org/10.1002/jrsm.1095
    .. [8] Stanley, T. D. (2017). Limitations of PET-PEESE and other meta-analysis methods.
       Social Psychological and Personality Science, 8(5), 581-591.
       https://doi.org/10.1177/1948550617693062
    .. [9] Carter, E. C., Schönbrodt, F. D., Gervais, W. M., & Hilgard, J. (2019).
       Correcting for bias in psychology: A comparison of meta-analytic methods. Advances in
       Methods and Practices in Psychological Science, 2(2), 115-144.
       https://doi.org/10.1177/2515245919847196

    Examples
    --------
    >>> import ketameta
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> res = ketameta.pet_peese(es)
    >>> res.selected, round(res.estimate, 4)
    ('PET', -0.1909)
    """
    mdl = check_choice(model, "model", ("lm", "rma"))
    alt = check_choice(alternative, "alternative", _ALTERNATIVES)
    a = as_number(alpha, "alpha")
    if not 0 < a < 1:
        msg = f"`alpha` must be in (0, 1), got {alpha!r}"
        raise ValueError(msg)
    prep, settings, _ = studies_and_settings(
        yi,
        function="pet_peese",
        data={"vi": vi, "sei": sei},
        settings={"method": method, "test": test, "level": level, "control": control},
        defaults=MODEL_DEFAULTS,
        refits=mdl == "rma",
    )
    method, test, lv, ctl = model_options(settings)
    y, v = prep.yi, prep.vi
    k = int(y.size)
    if k < 3:
        msg = f"PET-PEESE needs at least 3 studies, got k = {k}"
        raise ValueError(msg)
    if np.any(v <= 0):
        msg = "PET-PEESE needs positive sampling variances `vi`"
        raise ValueError(msg)
    if k < 10:
        warnings.warn(
            f"only {k} studies: PET and PEESE are regressions on 2 parameters and are "
            "unreliable with fewer than 10 studies",
            SmallSampleWarning,
            stacklevel=2,
        )
    fits = {}
    for name, x in (("pet", np.sqrt(v)), ("peese", v)):
        design = np.column_stack([np.ones(k), x])
        try:
            out = _engine.fit(
                y,
                v,
                design,
                padded=False,
                intercept=True,
                method="EE" if mdl == "lm" else method,
                test="knha" if mdl == "lm" else test,
                level=lv,
                control=ctl,
            )
        except np.linalg.LinAlgError:
            msg = "the standard errors are (nearly) all equal: PET and PEESE are undefined"
            raise ValueError(msg) from None
        if out["exact_fit"] and (mdl == "lm" or test in ("knha", "adhoc")):
            # the residuals are rounding noise (e.g. identical effects): the dispersion
            # the standard errors are scaled by is 0, so tests and intervals are undefined
            # (as egger_test)
            warnings.warn(
                f"the {name.upper()} regression fits the studies exactly (the residuals are "
                "rounding noise, e.g. identical effects): the dispersion is 0 and its test "
                "is undefined; its standard errors, statistics, p-values and intervals are NaN",
                DegenerateDataWarning,
                stacklevel=2,
            )
            for field in ("se", "statistic", "pvalue", "ci_lower", "ci_upper"):
                out[field] = [math.nan] * len(out[field])
        fits[name] = out
    df = float(fits["pet"]["df"])
    res: dict[str, float] = {}
    for name, out in fits.items():
        b, se = float(out["coef"][0]), float(out["se"][0])
        stat = b / se if se > 0 else math.nan  # (NaN: an exact fit, above)
        if alt == "two.sided":
            pv = float(out["pvalue"][0])
        else:
            tail = stat if alt == "greater" else -stat
            pv = (
                float(special.stdtr(df, -tail))
                if math.isfinite(df)
                else float(special.ndtr(-tail))
            )
        res |= {
            f"{name}_estimate": b,
            f"{name}_se": se,
            f"{name}_statistic": stat,
            f"{name}_pvalue": pv,
            f"{name}_ci_lower": float(out["ci_lower"][0]),
            f"{name}_ci_upper": float(out["ci_upper"][0]),
            f"{name}_slope": float(out["coef"][1]),
            f"{name}_slope_se": float(out["se"][1]),
        }
    chosen = "peese" if res["pet_pvalue"] < a else "pet"
    return PetPeeseResult(
        **res,
        selected=chosen.upper(),
        estimate=res[f"{chosen}_estimate"],
        se=res[f"{chosen}_se"],
        ci_lower=res[f"{chosen}_ci_lower"],
        ci_upper=res[f"{chosen}_ci_upper"],
        df=df,
        k=k,
        alpha=a,
        alternative=alt,
        level=lv,
        model=mdl,
        method="EE" if mdl == "lm" else method,
    )
