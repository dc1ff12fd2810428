"""Common-effect and random-effects meta-analysis: :func:`pool` and its result.

References
----------
.. [1] DerSimonian, R., & Laird, N. (1986). Meta-analysis in clinical trials.
   Controlled Clinical Trials, 7(3), 177-188. https://doi.org/10.1016/0197-2456(86)90046-2
.. [2] Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance estimators
   in the random-effects model. Journal of Educational and Behavioral Statistics,
   30(3), 261-293. https://doi.org/10.3102/10769986030003261
.. [3] Paule, R. C., & Mandel, J. (1982). Consensus values and weighting factors.
   Journal of Research of the National Bureau of Standards, 87(5), 377-385.
   https://doi.org/10.6028/jres.087.022
.. [4] Hedges, L. V. (1983). A random effects model for effect sizes. Psychological
   Bulletin, 93(2), 388-395. https://doi.org/10.1037/0033-2909.93.2.388
.. [5] Sidik, K., & Jonkman, J. N. (2005). Simple heterogeneity variance estimation
   for meta-analysis. Journal of the Royal Statistical Society C, 54(2), 367-384.
   https://doi.org/10.1111/j.1467-9876.2005.00489.x
.. [6] Hunter, J. E., & Schmidt, F. L. (2004). Methods of Meta-Analysis (2nd ed.). Sage.
.. [7] Morris, C. N. (1983). Parametric empirical Bayes inference: Theory and
   applications. Journal of the American Statistical Association, 78(381), 47-55.
   https://doi.org/10.1080/01621459.1983.10477920
.. [8] Knapp, G., & Hartung, J. (2003). Improved tests for a random effects
   meta-regression with a single covariate. Statistics in Medicine, 22(17), 2693-2710.
   https://doi.org/10.1002/sim.1482
.. [9] Higgins, J. P. T., & Thompson, S. G. (2002). Quantifying heterogeneity in a
   meta-analysis. Statistics in Medicine, 21(11), 1539-1558.
   https://doi.org/10.1002/sim.1186
.. [10] Viechtbauer, W. (2007). Confidence intervals for the amount of heterogeneity in
   meta-analysis. Statistics in Medicine, 26(1), 37-52. https://doi.org/10.1002/sim.2514
.. [11] Riley, R. D., Higgins, J. P. T., & Deeks, J. J. (2011). Interpretation of
   random effects meta-analyses. BMJ, 342, d549. https://doi.org/10.1136/bmj.d549
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import attrs
import numpy as np

from . import _engine, _transf
from ._results import (
    Owned,
    array_eq,
    array_field,
    format_p,
    format_p_with_sign,
    import_pandas,
    plain,
    readonly,
    table_lines,
    trusted_constructor,
)
from ._typing import ArrayLike, FloatArray
from ._validation import (
    MAX_ABS_EFFECT,
    VARIANCE_RANGE,
    as_float_array,
    as_number,
    check_choice,
    check_finite,
    check_level,
    check_magnitudes,
    check_positive,
    check_same_length,
    critical_value,
    default_labels,
    fixed_tau2,
    merged_control,
    name_studies,
    sei_to_variance,
    strings,
    study_labels,
)
from ._warnings import LocalMaximumWarning, OmittedStudiesWarning, SmallSampleWarning
from .effect_sizes import EffectSizes

__all__ = ["METHODS", "TESTS", "PoolResult", "Tau2Interval", "pool"]

#: τ² estimators accepted by :func:`pool` (``"FE"`` and ``"CE"`` are aliases of ``"EE"``)
METHODS = (*_engine.TAU2_METHODS, *_engine.METHOD_ALIASES)
#: tests (and interval types) for the pooled estimate
TESTS = _engine.TESTS
#: per-analysis float statistics of the numeric core (``_core.fit``), shared by the batch engine
CORE_FLOAT_FIELDS = (
    "estimate",
    "se",
    "statistic",
    "pvalue",
    "ci_lower",
    "ci_upper",
    "df",
    "tau2",
    "tau2_se",
    "tau",
    "i2",
    "h2",
    "q",
    "q_pvalue",
    "pred_lower",
    "pred_upper",
    "v_typical",
)
#: per-analysis counts and flags of the numeric core
CORE_COUNT_FIELDS = ("q_df", "k", "converged", "iterations")

_METHOD_NAMES = {
    "EE": "Equal-effects model",
    "DL": "DerSimonian-Laird",
    "REML": "restricted maximum likelihood",
    "ML": "maximum likelihood",
    "PM": "Paule-Mandel",
    "HE": "Hedges",
    "SJ": "Sidik-Jonkman",
    "HS": "Hunter-Schmidt",
    "EB": "empirical Bayes",
}


def _indices(x: Any) -> tuple[int, ...]:
    if type(x) is tuple and not x:  # (nothing omitted: the usual case)
        return ()
    return tuple(int(i) for i in x) if len(x) else ()


_NO_INPUTS = np.empty((0, 0))
_NO_INPUTS.setflags(write=False)


def _no_inputs() -> FloatArray:
    return Owned(_NO_INPUTS)  # type: ignore[return-value]  # (readonly() unwraps it)


def omitted_lines(
    omitted: Sequence[int], reasons: Sequence[str], labels: Sequence[str]
) -> list[str]:
    """ "Omitted studies (missing yi or vi): Stein 1953, Smith 1960": the omitted studies
    of a summary by label, one line per reason."""
    if not omitted:
        return []
    why = list(reasons) if len(reasons) == len(omitted) else ["missing values"] * len(omitted)
    groups: dict[str, list[str]] = {}
    for i, reason in zip(omitted, why, strict=True):
        groups.setdefault(reason, []).append(labels[i] if i < len(labels) else f"Study {i + 1}")
    return [f"Omitted studies ({reason}): {', '.join(names)}" for reason, names in groups.items()]


def study_info(
    yi: Any, labels: Any, measure: Any, n: int, data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The study fields every result built on a set of studies carries (``measure``,
    ``labels``, ``inputs``, ``input_names``): from an :class:`~ketameta.EffectSizes`, the
    `labels` and `measure` arguments, or the defaults (written once)."""
    code = _transf.check_measure(measure)
    if isinstance(yi, EffectSizes):
        if code is not None and code != yi.measure:
            msg = (
                f"`measure`={measure!r} contradicts the EffectSizes, which hold {yi.measure!r} "
                "effect sizes; leave `measure` out"
            )
            raise ValueError(msg)
        return {
            "measure": yi.measure,
            "labels": yi.labels if labels is None else study_labels(labels, n, data),
            "inputs": yi.inputs,
            "input_names": yi.input_names,
        }
    return {"measure": code, "labels": study_labels(labels, n, data)}


def given_labels(yi: Any, labels: Any) -> bool:
    """Whether studies have labels of their own (then messages name them)."""
    return labels is not None or (
        isinstance(yi, EffectSizes) and yi.labels != default_labels(len(yi))
    )


@attrs.frozen(kw_only=True, repr=False)
class Tau2Interval:
    """Q-profile confidence intervals for τ², τ, I² (%) and H² (metafor's ``confint()``).

    Each of `tau2`, `tau`, `i2`, `h2` is an ``(estimate, lower, upper)`` tuple of floats.
    The limits were searched in ``[0, tau2_max]``; `lower_at_limit` / `upper_at_limit`
    say that a root lay beyond it, so the reported limit is `tau2_max` (as metafor,
    which notes "outside search range").
    """

    tau2: tuple[float, float, float]
    tau: tuple[float, float, float]
    i2: tuple[float, float, float]
    h2: tuple[float, float, float]
    level: float
    tau2_max: float
    lower_at_limit: bool = False
    upper_at_limit: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (JSON-serialisable)."""
        return plain(attrs.asdict(self))  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        def f(name: str) -> str:
            est, lo, hi = getattr(self, name)
            return f"{name}={est:.4g} [{lo:.4g}, {hi:.4g}]"

        return f"Tau2Interval({f('tau2')}, {f('i2')}, level={self.level:g})"

    def __str__(self) -> str:
        rows = [f"{'':8s}{'estimate':>10s}{'ci.lb':>10s}{'ci.ub':>10s}"]
        for name, label in (("tau2", "tau^2"), ("tau", "tau"), ("i2", "I^2(%)"), ("h2", "H^2")):
            est, lo, hi = getattr(self, name)
            rows.append(f"{label:8s}{est:10.4f}{lo:10.4f}{hi:10.4f}")
        return "\n".join(rows)


@attrs.frozen(kw_only=True, repr=False)
class ModelFit:
    """The fields and methods every fitted (mixed-effects) model shares — declared once.

    :class:`PoolResult` (the intercept-only model) and :class:`~ketameta.MetaRegResult`
    (meta-regression) add their coefficients; both come from the same engine fit.

    Attributes
    ----------
    df : float
        Degrees of freedom of the t reference distribution (``inf`` for ``test="z"``).
    tau2, tau2_se, tau : float
        (Residual) between-study variance, its standard error (NaN when fixed or EE) and τ.
    i2, h2 : float
        (Residual) I² (percent) and H²; from τ² and the typical within-study variance
        (Higgins & Thompson 2002), or from Q for the EE model, as metafor.
    q, q_df, q_pvalue : float
        Cochran's Q (the residual heterogeneity statistic Q_E with a design) and its test.
    k : int
        Number of studies used.
    weights : ndarray
        Study weights in percent.
    yi, vi : ndarray
        The effect sizes and variances used (omitted studies removed).
    omitted : tuple of int
        Indices (into the input) of studies left out because of missing values.
    method, test, level, tau2_fixed, control
        The settings used.
    converged : bool
    iterations : int
    measure : str or None
        The effect-size measure (from :func:`~ketameta.escalc`, or the `measure`
        argument; None for effect sizes of unknown kind): it names the scale in
        :meth:`summary` and chooses the back-transformation of ``transf="auto"``.
    labels : tuple of str
        One label per input study, the omitted ones included (from the
        :class:`~ketameta.EffectSizes`, the `labels` argument, or "Study 1", ...).
    omitted_reasons : tuple of str
        Why each study of `omitted` was left out ("missing yi or vi", "missing moderator").
    inputs, input_names
        The input columns of :func:`~ketameta.escalc` (one row per input study; empty for
        raw effect sizes): the forest plot shows them (events/total, mean (SD)/N).
    """

    df: float
    tau2: float
    tau2_se: float
    tau: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_pvalue: float
    k: int
    weights: FloatArray = array_field()
    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    method: str
    test: str
    level: float
    tau2_fixed: bool = False
    converged: bool = True
    iterations: int = 0
    v_typical: float = attrs.field(default=math.nan, repr=False)
    control: dict[str, Any] = attrs.field(factory=dict, eq=False)
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())
    inputs: FloatArray = attrs.field(
        converter=readonly, eq=attrs.cmp_using(eq=array_eq), factory=_no_inputs
    )
    input_names: tuple[str, ...] = attrs.field(converter=strings, default=())

    @property
    def sei(self) -> FloatArray:
        """Standard errors of the studies used."""
        return np.sqrt(self.vi)

    @property
    def study_labels(self) -> tuple[str, ...]:
        """One label per input study (the defaults "Study 1", ... when none were kept)."""
        n = self.k + len(self.omitted)
        return self.labels if len(self.labels) == n else default_labels(n)

    @property
    def used(self) -> np.ndarray[Any, np.dtype[np.intp]]:
        """The input indices of the studies used, in input order."""
        keep = np.ones(self.k + len(self.omitted), dtype=bool)
        keep[list(self.omitted)] = False
        return np.flatnonzero(keep)

    def _transf_n(self) -> tuple[float, FloatArray | None]:
        """Sample sizes for a back-transformation that needs them (Freeman-Tukey): the
        harmonic mean over the studies used, and each input study's."""
        if "ni" not in self.input_names:
            return math.nan, None
        ni = self.inputs[:, self.input_names.index("ni")]
        return _transf.harmonic_mean(ni[self.used]), ni

    def back_transform(self, transf: Any = "auto") -> dict[str, Any]:
        """The pooled numbers on the scale `transf` asks for (see :meth:`summary`):
        ``estimate``, ``ci_lower``, ``ci_upper``, ``pred_lower``, ``pred_upper`` (those the
        model has), the ``scale`` they are on and the ``transf`` used (None: the
        analysis scale)."""
        t = _transf.resolve(transf, self.measure)
        n_pooled, _ = self._transf_n()
        names = ("estimate", "ci_lower", "ci_upper", "pred_lower", "pred_upper")
        out: dict[str, Any] = {}
        for name in names:
            if hasattr(self, name):
                value = getattr(self, name)
                out[name] = t(value, n_pooled if t.needs_n else None)
                out[name] = float(out[name]) if np.ndim(out[name]) == 0 else out[name]
        out.update(scale=t.scale, transf=t.name)
        return out

    def studies(self, transf: Any = None, level: float | None = None) -> Any:
        """The studies as a table for a paper: a pandas DataFrame with one row per input
        row, omitted rows included (aligned with the input's rows; requires pandas).

        Columns: ``label``, the :func:`~ketameta.escalc` input columns (when the effect
        sizes came from it), ``yi``, ``vi`` (the analysis scale), ``estimate``,
        ``ci_lower``, ``ci_upper`` (the study's effect and Wald confidence interval on
        the scale of `transf`), ``weight`` (percent), ``scale`` (the scale of
        ``estimate`` and its interval) and ``note`` (why a row was omitted; empty when
        used). Omitted rows have NaN effects and weights.

        Parameters
        ----------
        transf : "auto", None, str or callable
            Back-transformation, as :meth:`summary`'s (default: the analysis scale).
        level : float, optional
            Confidence level of the study intervals (default: the model's).
        """
        pd = import_pandas()
        lv = self.level if level is None else check_level(level)
        n = self.k + len(self.omitted)
        used = self.used
        yi, vi, weight = (np.full(n, np.nan) for _ in range(3))
        yi[used], vi[used], weight[used] = self.yi, self.vi, self.weights
        half = float(critical_value(lv)) * np.sqrt(vi)
        t = _transf.resolve(transf, self.measure)
        _, ni = self._transf_n()
        frame: dict[str, Any] = {"label": list(self.study_labels)}
        for j, name in enumerate(self.input_names):
            frame[name] = self.inputs[:, j]
        notes = [""] * n
        for i, why in zip(
            self.omitted, self.omitted_reasons or ["missing values"] * n, strict=False
        ):
            notes[i] = f"omitted: {why}"
        frame.update(
            yi=yi,
            vi=vi,
            estimate=t(yi, ni),
            ci_lower=t(yi - half, ni),
            ci_upper=t(yi + half, ni),
            weight=weight,
            scale=[t.scale] * n,
            note=notes,
        )
        return pd.DataFrame(frame)

    def _omitted_lines(self) -> list[str]:
        """The omitted studies named by label, grouped by why they were left out."""
        return omitted_lines(self.omitted, self.omitted_reasons, self.study_labels)

    def _design(self) -> tuple[FloatArray | None, bool]:
        """The design of the studies used (None: intercept only) and whether it has an
        intercept."""
        return None, True

    def tau2_ci(
        self, level: float | None = None, *, tau2_max: float | None = None
    ) -> Tau2Interval:
        """Q-profile confidence interval for τ², τ, I² and H² (Viechtbauer 2007 [10]_).

        The limits solve ``Q(τ²) = χ²_{k-p}`` quantiles, where ``Q(τ²)`` is the generalised
        (residual) Q statistic; a limit is 0 when Q at τ² = 0 is already below its
        quantile. I² and H² limits follow from the τ² limits with the typical
        within-study variance.

        Parameters
        ----------
        level : float, optional
            Confidence level; defaults to the model's `level`.
        tau2_max : float, optional
            Upper end of the search range. The default, ``max(100, 10 τ̂²)``, is
            metafor's; a root beyond it is reported as `tau2_max` with
            ``upper_at_limit=True``. Pass ``math.inf`` for the exact root.

        Returns
        -------
        Tau2Interval

        References
        ----------
        .. [10] Viechtbauer (2007), Stat Med 26(1):37-52.
        """
        lv = self.level if level is None else check_level(level)
        x, intercept = self._design()
        p = 1 if x is None else x.shape[1]
        if self.k <= p:
            msg = (
                f"a confidence interval for tau^2 needs more studies than coefficients "
                f"(k = {self.k}, p = {p})"
            )
            raise ValueError(msg)
        ctl = {**_engine.DEFAULT_CONTROL, **self.control}
        limit = max(100.0, 10.0 * self.tau2) if tau2_max is None else float(tau2_max)
        if not limit > 0:
            msg = f"`tau2_max` must be positive, got {tau2_max!r}"
            raise ValueError(msg)
        lo, hi = _engine.tau2_interval(
            self.yi, self.vi, x, level=lv, control=ctl, tau2_max=limit, intercept=intercept
        )
        t = (self.tau2, float(lo), float(hi))
        vt = self.v_typical
        return Tau2Interval(
            tau2=t,
            tau=(math.sqrt(t[0]), math.sqrt(t[1]), math.sqrt(t[2])),
            i2=(self.i2, *(100.0 * x / (x + vt) for x in t[1:])),  # type: ignore[arg-type]
            h2=(self.h2, *((x + vt) / vt for x in t[1:])),  # type: ignore[arg-type]
            level=lv,
            tau2_max=limit,
            lower_at_limit=t[1] >= limit,
            upper_at_limit=t[2] >= limit,
        )

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable; NaN/inf become ``None``)."""
        d = {f.name: getattr(self, f.name) for f in attrs.fields(type(self))}
        d.pop("v_typical")
        return plain(d)  # type: ignore[no-any-return]

    def _heterogeneity_lines(self, residual: bool) -> list[str]:
        """The τ², τ, I², H² block and the heterogeneity test of a metafor-like summary."""
        lines = []
        fixed = " (fixed)" if self.tau2_fixed else ""
        what = "residual" if residual else "total"
        width = 56 if residual else 49
        if self.method != "EE":
            se_txt = "" if math.isnan(self.tau2_se) else f" (SE = {self.tau2_se:.4f})"
            lines.append(
                f"{f'tau^2 (estimated amount of {what} heterogeneity):':{width}s}"
                f"{self.tau2:.4f}{se_txt}{fixed}"
            )
            lines.append(f"{'tau (square root of estimated tau^2 value):':{width}s}{self.tau:.4f}")
        i2_text = (
            "I^2 (residual heterogeneity / unaccounted variability):"
            if residual
            else "I^2 (total heterogeneity / total variability):"
        )
        h2_text = (
            "H^2 (unaccounted variability / sampling variability):"
            if residual
            else "H^2 (total variability / sampling variability):"
        )
        lines.append(f"{i2_text:{width}s}{self.i2:.2f}%")
        lines.append(f"{h2_text:{width}s}{self.h2:.2f}")
        return lines


@attrs.frozen(kw_only=True, repr=False)
class PoolResult(ModelFit):
    """The result of :func:`pool`: a fitted common-effect or random-effects model (the
    intercept-only case of the model; its shared fields are :class:`ModelFit`'s).

    Attributes
    ----------
    estimate, se, statistic, pvalue, ci_lower, ci_upper : float
        Pooled effect μ̂, its standard error (Knapp-Hartung-adjusted for ``test="knha"``),
        test statistic (z or t), two-sided p-value and confidence limits.
    pred_lower, pred_upper : float
        Prediction interval for the effect in a new study (metafor's default:
        ``μ̂ ± crit·sqrt(τ² + SE²)``).
    df, tau2, tau2_se, tau, i2, h2, q, q_df, q_pvalue, k, weights, yi, vi, omitted, method,
    test, level, tau2_fixed, control, converged, iterations
        As in :class:`ModelFit`.
    """

    estimate: float
    se: float
    statistic: float
    pvalue: float
    ci_lower: float
    ci_upper: float
    pred_lower: float
    pred_upper: float

    def to_frame(self, transf: Any = None) -> Any:
        """A one-row pandas DataFrame of the scalar fields (requires pandas), with a
        ``scale`` column naming the scale of the estimate and its intervals.

        With `transf` (``"auto"``, a name or a function, as :meth:`summary`), the
        estimate, the confidence and prediction limits are back-transformed and ``se`` is
        NaN (as metafor's ``predict(res, transf=)``); the test statistic and p-value stay
        those of the analysis scale.
        """
        pd = import_pandas()
        d = self.to_dict()
        scalars = {k: v for k, v in d.items() if not isinstance(v, list | dict)}
        back = self.back_transform(transf)
        if back["transf"] is not None:
            scalars.update({k: v for k, v in back.items() if k not in ("scale", "transf")})
            scalars["se"] = math.nan
        scalars["scale"] = back["scale"]
        return pd.DataFrame([scalars])

    def __repr__(self) -> str:
        measure = "" if self.measure is None else f"measure={self.measure!r}, "
        back = self.back_transform("auto")
        natural = ""
        if back["transf"] is not None:
            short = _transf.scale(self.measure).short
            natural = f" ({short} {back['estimate']:.3g})"
        omitted = f", omitted={len(self.omitted)}" if self.omitted else ""
        return (
            f"PoolResult({measure}method={self.method!r}, k={self.k}{omitted}, "
            f"estimate={self.estimate:.4g}{natural}, "
            f"ci=[{self.ci_lower:.4g}, {self.ci_upper:.4g}], tau2={self.tau2:.4g}, "
            f"i2={self.i2:.1f}%)"
        )

    def anova(self, other: Any) -> Any:
        """The likelihood-ratio test of this fit against another :func:`pool` or
        :func:`~ketameta.metareg` fit of the same studies (metafor's ``anova(full,
        reduced)``); the rules are those of :meth:`ketameta.MetaRegResult.anova`
        (a random-effects fit against the equal-effects one: ``method="ML"`` with
        ``method="EE"``, or REML with ``tau2=0``).

        Returns
        -------
        LikelihoodRatioTest
        """
        from .metareg import likelihood_ratio_test

        return likelihood_ratio_test(self, other)

    def summary(self, transf: Any = "auto") -> str:
        """A metafor-like printed summary: heterogeneity, model results, prediction interval,
        and the omitted studies by label.

        Parameters
        ----------
        transf : "auto", None, str or callable
            Back-transformation printed after the model results (metafor's
            ``predict(res, transf=)``): ``"auto"`` (default) the measure's own — exp for
            log ratios (OR, RR, IRR, ROM, Peto's OR), the inverse logit for logit
            proportions, Miller's inverse for Freeman-Tukey proportions (with the harmonic
            mean of the sample sizes), sin² for arcsine proportions, tanh for Fisher's z;
            nothing for measures without one or raw effect sizes. ``None``: the analysis
            scale only. A name (``"exp"``, ``"ilogit"``, ``"iarcsin"``, ``"ipft"``,
            ``"ztor"``) or a function of an array.
        """
        pct = f"{100 * self.level:g}%"
        lines = []
        if self.method == "EE":
            lines.append(f"Equal-effects model (k = {self.k})")
        else:
            lines.append(
                f"Random-effects model (k = {self.k}; tau^2 estimator: {self.method}, "
                f"{_METHOD_NAMES[self.method]})"
            )
        lines.append("")
        lines += self._heterogeneity_lines(residual=False)
        lines.append("")
        lines.append("Test for Heterogeneity:")
        lines.append(
            f"Q(df = {self.q_df}) = {self.q:.4f}, p-val {format_p_with_sign(self.q_pvalue)}"
        )
        lines.append("")
        stat_name = "zval" if self.test == "z" else "tval"
        notes = [] if self.measure is None else [_transf.scale(self.measure).name]
        if self.test != "z":
            notes.append(f"df = {self.df:g}; test = {self.test!r}")
        note = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"Model Results{note}:")
        lines.append("")
        row = [f"{x:.4f}" for x in (self.estimate, self.se, self.statistic)]
        row += [format_p(self.pvalue), f"{self.ci_lower:.4f}", f"{self.ci_upper:.4f}"]
        lines += table_lines(
            ["estimate", "se", stat_name, "pval", "ci.lb", "ci.ub"], [row], [9, 9, 9, 9, 9, 9]
        )
        back = self.back_transform(transf)
        if self.method != "EE":  # metafor prints no prediction interval for an EE model
            lines.append("")
            lines.append(
                f"{pct} prediction interval: [{self.pred_lower:.4f}, {self.pred_upper:.4f}]"
            )
        else:
            back = {k: v for k, v in back.items() if k not in ("pred_lower", "pred_upper")}
        lines += back_transformed_lines(back)
        omitted = self._omitted_lines()
        if omitted:
            lines += ["", *omitted]
        return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else ("NA" if math.isnan(x) else f"{x:g}")


def back_transformed_lines(back: dict[str, Any]) -> list[str]:
    """The block of a summary printing the pooled numbers back-transformed (nothing when
    no back-transformation applies)."""
    if back["transf"] is None:
        return []
    columns = [("estimate", "estimate"), ("ci_lower", "ci.lb"), ("ci_upper", "ci.ub")]
    columns += [(k, h) for k, h in (("pred_lower", "pi.lb"), ("pred_upper", "pi.ub")) if k in back]
    values = [_num(back[k]) for k, _ in columns]
    widths = [max(9 if j == 0 else 8, len(v)) for j, v in enumerate(values)]
    scale = back["scale"]
    return [
        "",
        f"{scale[:1].upper()}{scale[1:]} (back-transformed: {back['transf']}):",
        "",
        " ".join(f"{h:>{w}s}" for (_, h), w in zip(columns, widths, strict=True)),
        " ".join(f"{v:>{w}s}" for v, w in zip(values, widths, strict=True)),
    ]


def _resolve_inputs(yi: Any, vi: Any, sei: Any) -> FloatArray:
    """The effect sizes and variances as the rows of a new ``(2, k)`` float64 array."""
    if (
        type(yi) is np.ndarray
        and type(vi) is np.ndarray
        and sei is None
        and yi.dtype == vi.dtype == np.float64
        and yi.ndim == vi.ndim == 1
        and yi.shape == vi.shape
    ):  # the common case: one copy of both
        return np.array((yi, vi))
    if isinstance(yi, EffectSizes):
        if vi is not None or sei is not None:
            msg = "pass either an EffectSizes object or `yi` with `vi`/`sei`, not both"
            raise TypeError(msg)
        return np.array((yi.yi, yi.vi), dtype=np.float64)
    y = as_float_array(yi, "yi")
    if (vi is None) == (sei is None):
        msg = "give exactly one of `vi` (sampling variances) or `sei=` (standard errors)"
        raise TypeError(msg)
    if vi is not None:
        v = as_float_array(vi, "vi")
        check_same_length({"yi": y, "vi": v})
    else:
        s = as_float_array(sei, "sei")
        check_same_length({"yi": y, "sei": s})
        v = sei_to_variance(s, "sei")  # checked as given, then squared
    return np.stack((y, v))


class Prepared(NamedTuple):
    """The output of :func:`prepare_studies`."""

    yi: FloatArray
    vi: FloatArray
    kept: np.ndarray[Any, np.dtype[np.intp]]
    omitted: tuple[int, ...]
    reasons: tuple[str, ...]
    info: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        """The result fields naming the studies: ``omitted``, ``omitted_reasons`` and
        :func:`study_info`'s."""
        return {"omitted": self.omitted, "omitted_reasons": self.reasons, **self.info}


def prepare_studies(
    yi: Any,
    vi: Any,
    sei: Any,
    *,
    nan_policy: str,
    stacklevel: int,
    also_missing: Any = None,
    what: str = "moderator",
    labels: Any = None,
    measure: Any = None,
    data: Mapping[str, Any] | None = None,
) -> Prepared:
    """Validated effect sizes and variances with missing studies handled (written once).

    Returns a :class:`Prepared`: the studies used, the input indices of those studies and
    of the ones left out (NaN `yi` or `vi`, or `also_missing`: a boolean array (one per
    study) of studies missing something else, named by `what`), why each was left out,
    and the study fields of the result (:func:`study_info`: `measure`, `labels`, the
    escalc inputs). An :class:`~ketameta.OmittedStudiesWarning` names the omitted studies
    (by index, and by label when the studies have labels of their own), or
    ``nan_policy="raise"`` raises.
    """
    both = _resolve_inputs(yi, vi, sei)
    y, v = both[0], both[1]
    info = study_info(yi, labels, measure, y.shape[0], data)
    low, high = VARIANCE_RANGE
    # one quick test (NaN fails it too); the detailed checks only if it fails
    valid = False
    if y.size:
        # (the extremes of y and v in two ufunc reductions; the ndarray methods would add a
        # Python-level wrapper per call)
        (y_min, v_min), (y_max, v_max) = (
            np.minimum.reduce(both, axis=1).tolist(),
            np.maximum.reduce(both, axis=1).tolist(),
        )
        valid = (
            -MAX_ABS_EFFECT <= y_min <= y_max <= MAX_ABS_EFFECT and low <= v_min <= v_max <= high
        )
    if valid and (also_missing is None or not np.any(also_missing)):
        return Prepared(y, v, np.arange(y.shape[0]), (), (), info)
    names = info["labels"] if given_labels(yi, labels) else None  # (for the messages)
    if y.size:
        check_positive(v, "vi" if sei is None else "sei")
        check_finite(y, "yi")
        check_magnitudes(y, v, "yi", "vi" if sei is None else "sei")
    missing = np.isnan(y) | np.isnan(v)
    why = np.array([""] * y.shape[0], dtype=object)
    why[missing] = "missing yi or vi"

    def named(mask: np.ndarray[Any, Any]) -> str:
        idx = np.flatnonzero(mask).tolist()
        return f"{name_studies(idx, names)} {'has' if len(idx) == 1 else 'have'}"

    reasons = [f"{named(missing)} missing yi or vi"]
    if also_missing is not None:
        other = np.asarray(also_missing, dtype=bool) & ~missing
        reasons = reasons if missing.any() else []
        if other.any():
            reasons.append(f"{named(other)} a missing {what}")
            why[other] = f"missing {what}"
        missing = missing | other
    omitted: tuple[int, ...] = ()
    omitted_why: tuple[str, ...] = ()
    if missing.any():
        idx = np.flatnonzero(missing)
        if nan_policy == "raise":
            msg = f"{'; '.join(reasons)} (nan_policy='raise')"
            raise ValueError(msg)
        omitted = tuple(int(i) for i in idx)
        omitted_why = tuple(str(w) for w in why[idx])
        n = len(omitted)
        warnings.warn(
            f"{n} {'study' if n == 1 else 'studies'} omitted: {'; '.join(reasons)}",
            OmittedStudiesWarning,
            stacklevel=stacklevel,
        )
        y, v = y[~missing], v[~missing]
    if y.shape[0] == 0:
        msg = "no studies: `yi` is empty" + (" after omitting NaN" if omitted else "")
        raise ValueError(msg)
    return Prepared(y, v, np.flatnonzero(~missing), omitted, omitted_why, info)


def validate_options(
    method: Any, test: Any, level: Any, tau2: Any, nan_policy: Any, control: Any
) -> tuple[str, str, float, float | None, str, dict[str, Any]]:
    """Validate the options shared by :func:`pool` and the batch engine (written once)."""
    method = check_choice(method, "method", METHODS)
    method = _engine.METHOD_ALIASES.get(method, method)
    test = check_choice(test, "test", TESTS)
    lv = check_level(level)
    nan_policy = check_choice(nan_policy, "nan_policy", ("omit", "raise"))
    tau2_fixed = fixed_tau2(tau2)  # a number in [0, VARIANCE_RANGE[1]] or None
    if tau2_fixed is not None and method == "EE":
        msg = "`tau2` cannot be fixed for the equal-effects model (method='EE'): its tau^2 is 0"
        raise ValueError(msg)
    ctl = merged_control(control, _engine.DEFAULT_CONTROL)
    if control is not None:
        try:
            threshold = as_number(ctl["threshold"], "control['threshold']")
        except TypeError:
            threshold = math.nan
        if not (math.isfinite(threshold) and threshold > 0):
            msg = f"`control['threshold']` must be a positive number, got {ctl['threshold']!r}"
            raise ValueError(msg)
        ctl["threshold"] = threshold
        if ctl["tau2_init"] is not None:
            try:
                init = as_number(ctl["tau2_init"], "control['tau2_init']")
            except TypeError:
                init = math.nan
            if not (math.isfinite(init) and 0.0 <= init <= VARIANCE_RANGE[1]):
                msg = (
                    "`control['tau2_init']` (the ML/REML start) must be a number in "
                    f"[0, {VARIANCE_RANGE[1]:g}], got {ctl['tau2_init']!r}"
                )
                raise ValueError(msg)
            ctl["tau2_init"] = init
    return method, test, lv, tau2_fixed, nan_policy, ctl


def pool(
    yi: ArrayLike | EffectSizes,
    vi: ArrayLike | None = None,
    *,
    sei: ArrayLike | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    tau2: float | None = None,
    nan_policy: str = "omit",
    control: dict[str, Any] | None = None,
    labels: Any = None,
    measure: str | None = None,
) -> PoolResult:
    """Pool effect sizes with a common-effect or random-effects model (metafor's ``rma()``).

    Parameters
    ----------
    yi : array_like or EffectSizes
        Effect sizes, or the result of :func:`ketameta.escalc` (then leave `vi` out).
    vi : array_like, optional
        Sampling variances (> 0).
    sei : array_like, optional
        Standard errors instead of variances. Keyword-only on purpose, so that
        standard errors are never passed as variances by accident.
    method : str
        τ² estimator: ``"EE"`` (alias ``"FE"``, ``"CE"``; no heterogeneity), ``"DL"``
        [1]_, ``"REML"`` (default) and ``"ML"`` [2]_, ``"PM"`` [3]_, ``"HE"`` [4]_,
        ``"SJ"`` [5]_, ``"HS"`` [6]_, ``"EB"`` [7]_.
    test : str
        ``"z"`` (Wald), ``"t"`` (t with k-1 df), ``"knha"`` (Knapp-Hartung [8]_) or
        ``"adhoc"`` (Knapp-Hartung never narrower than z).
    level : float
        Confidence level in (0, 1); any number type (``Decimal``, NumPy scalars). Levels
        up to the largest double below 1 give finite intervals: critical values come from
        the tail ``1 - level``, as metafor's ``alpha``.
    tau2 : float, optional
        Fix τ² at this value instead of estimating it: a number in [0, 1e100] (the
        variance range the core accepts, ``VARIANCE_RANGE``); larger values are a
        ``ValueError``.
    nan_policy : {"omit", "raise"}
        Studies with NaN `yi` or `vi` are left out with an
        :class:`~ketameta.OmittedStudiesWarning` (indices in ``result.omitted``), or raise.
    control : dict, optional
        Iteration settings: ``maxiter`` (1000; a positive integer), ``threshold``
        (1e-10; convergence when ``|Δτ²| ≤ threshold·max(1, τ²)`` or tighter),
        ``tau2_init`` (an extra ML/REML start, a number in [0, 1e100]). The estimate
        does not depend on it: the root reached from the default start (the HE estimate)
        is kept when the given start reaches the same one; where they differ the
        likelihood has several maxima, the highest found is the estimate (a
        :class:`~ketameta.LocalMaximumWarning` says so). metafor instead ends wherever
        its ``tau2.init`` leads.
    labels : sequence of str, optional
        A label per input study (metafor's ``slab``); default: the labels of the
        :class:`~ketameta.EffectSizes`, or "Study 1", "Study 2", .... Summaries,
        warnings, :meth:`~PoolResult.studies` and forest plots name studies by them.
    measure : str, optional
        What raw `yi` are (an :func:`~ketameta.escalc` measure code such as ``"OR"``), when
        they did not come from :func:`~ketameta.escalc`: the summary then names the scale
        and back-transforms (``transf="auto"``). Taken from an EffectSizes otherwise.

    Returns
    -------
    PoolResult

    Raises
    ------
    ConvergenceError
        When an iterative estimator does not converge.

    Warns
    -----
    SmallSampleWarning
        k = 1: τ² is 0 and the test is z.
    OmittedStudiesWarning
        Studies with NaN `yi` or `vi` were left out (``nan_policy="omit"``).
    LocalMaximumWarning
        ML/REML: the likelihood has several maxima and the one reached from the start is
        lower than the likelihood at τ² = 0, so τ² is set to 0 (metafor does the same and
        warns that Fisher scoring "may have gotten stuck at a local maximum").

    Notes
    -----
    With :math:`w_i = 1/(v_i + \\hat\\tau^2)`, :math:`\\hat\\mu = \\sum w_i y_i / \\sum w_i`
    and :math:`SE(\\hat\\mu) = (\\sum w_i)^{-1/2}`. DL: :math:`\\hat\\tau^2 =
    \\max(0, (Q - (k-1)) / (\\sum w - \\sum w^2/\\sum w))` with EE weights [1]_; HE:
    :math:`\\max(0, \\sum (y_i - \\bar y)^2/(k-1) - \\bar v)` [4]_; HS:
    :math:`\\max(0, (Q-k)/\\sum w)` [6]_; SJ: one weighted step from
    :math:`\\tau_0^2 = \\sum (y_i-\\bar y)^2/k` [5]_; PM and EB solve :math:`Q(\\tau^2) =
    k - 1` [3]_ [7]_; ML and REML solve the (restricted) likelihood score equation from
    the HE estimate [2]_ by Newton steps on the score times :math:`(\\bar v_h + \\tau^2)^2`
    (:math:`\\bar v_h` the harmonic mean of the :math:`v_i`; linear in τ² when the
    :math:`v_i` are equal, so the steps stay in the start's basin, as metafor's Fisher
    scoring does), Fisher scoring where the observed information is not positive,
    safeguarded by bisection, with τ² = 0 when the score at 0 is negative; as metafor, a
    root whose likelihood is below the likelihood at τ² = 0 gives way to τ² = 0.
    Knapp-Hartung multiplies the variance of :math:`\\hat\\mu` by
    :math:`\\sum w_i (y_i - \\hat\\mu)^2 / (k-1)` and uses t with k-1 df [8]_. I² and H²
    follow Higgins & Thompson (2002) [9]_ with the typical within-study variance
    :math:`\\tilde v = (k-1)\\sum w/((\\sum w)^2 - \\sum w^2)`. The prediction interval is
    :math:`\\hat\\mu \\pm c \\sqrt{\\hat\\tau^2 + SE^2}` (z, or t with k-1 df for t-based
    tests) [11]_.

    References
    ----------
    .. [1] DerSimonian & Laird (1986), Control Clin Trials 7(3):177-188.
    .. [2] Viechtbauer (2005), J Educ Behav Stat 30(3):261-293.
    .. [3] Paule & Mandel (1982), J Res Natl Bur Stand 87(5):377-385.
    .. [4] Hedges (1983), Psychol Bull 93(2):388-395.
    .. [5] Sidik & Jonkman (2005), J R Stat Soc C 54(2):367-384.
    .. [6] Hunter & Schmidt (2004), Methods of Meta-Analysis, 2nd ed.
    .. [7] Morris (1983), JASA 78(381):47-55.
    .. [8] Knapp & Hartung (2003), Stat Med 22(17):2693-2710.
    .. [9] Higgins & Thompson (2002), Stat Med 21(11):1539-1558.
    .. [11] Riley, Higgins & Deeks (2011), BMJ 342:d549.

    Examples
    --------
    The BCG vaccine trials (Colditz et al. 1994), log risk ratios, REML:

    >>> import ketameta
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> res = ketameta.pool(es)
    >>> round(res.estimate, 4), round(res.tau2, 4)
    (-0.7145, 0.3132)
    """
    method, test, lv, tau2_fixed, nan_policy, ctl = validate_options(
        method, test, level, tau2, nan_policy, control
    )
    prep = prepare_studies(
        yi, vi, sei, nan_policy=nan_policy, stacklevel=3, labels=labels, measure=measure
    )
    y, v = prep.yi, prep.vi
    k = y.shape[0]
    if k == 1:
        notes = "tau^2 is set to 0"
        if test != "z":
            notes += f" and test={test!r} is replaced by 'z'"
            test = "z"
        warnings.warn(f"only one study (k = 1): {notes}", SmallSampleWarning, stacklevel=2)
    out = _engine.fit(
        y,
        v,
        padded=False,
        method=method,
        test=test,
        level=lv,
        tau2_fixed=tau2_fixed,
        control=ctl,
        btt=(),  # (no omnibus test of the intercept-only model)
    )
    estimate, se = out["coef"][0], out["se"][0]
    if not (math.isfinite(estimate) and math.isfinite(se) and math.isfinite(out["q"])):
        msg = (
            "`yi` or `vi` is too large: the computation overflows the floating-point range "
            f"(largest |yi| = {np.max(np.abs(y)):.3g}, largest vi = {np.max(v):.3g})"
        )
        raise ValueError(msg)
    if out["zeroed"]:
        warnings.warn(
            f"the {method} score's root reached from the start is a local maximum of the "
            "likelihood below its value at tau^2 = 0: tau^2 is set to 0 (as metafor; "
            "check the likelihood profile)",
            LocalMaximumWarning,
            stacklevel=2,
        )
    # (every value below is the engine's or the input check's, in its field's type: the
    # result is built without the public constructor's converters; tests/test_single_path.py)
    return _trusted_pool_result(  # type: ignore[no-any-return]
        estimate=estimate,
        se=se,
        statistic=out["statistic"][0],
        pvalue=out["pvalue"][0],
        ci_lower=out["ci_lower"][0],
        ci_upper=out["ci_upper"][0],
        pred_lower=out["pred_lower"],
        pred_upper=out["pred_upper"],
        df=out["df"],
        tau2=out["tau2"],
        tau2_se=out["tau2_se"],
        tau=out["tau"],
        i2=out["i2"],
        h2=out["h2"],
        q=out["q"],
        q_df=k - 1,
        q_pvalue=out["q_pvalue"],
        k=k,
        weights=out["weights"],
        yi=y,  # (prepare_studies copied the inputs; the engine made the weights)
        vi=v,
        omitted=prep.omitted,
        omitted_reasons=prep.reasons,
        method=method,
        test=test,
        level=lv,
        tau2_fixed=tau2_fixed is not None,
        converged=out["converged"],
        iterations=int(out["iterations"]),
        v_typical=out["v_typical"],
        control=dict(control) if control else {},
        measure=prep.info["measure"],
        labels=prep.info["labels"],
        inputs=prep.info.get("inputs", _NO_INPUTS),
        input_names=prep.info.get("input_names", ()),
    )


#: :class:`PoolResult` from the values of one fit, without the per-field converters
_trusted_pool_result = trusted_constructor(PoolResult, {"inputs": (_NO_INPUTS, readonly)})


def result_from_core(
    out: dict[str, Any],
    row: int | None,
    *,
    yi: FloatArray,
    vi: FloatArray,
    omitted: tuple[int, ...],
    method: str,
    test: str,
    level: float,
    tau2_fixed: bool,
    control: dict[str, Any],
    owned: bool = False,
    **study: Any,
) -> PoolResult:
    """Build the :class:`PoolResult` of the numeric core's output (of one `row` of a batch).

    ``owned=True``: `yi`, `vi` and the core's weights are fresh arrays that nothing else
    holds, which the result takes over without copying.
    """
    k = len(yi)
    scalars: dict[str, Any]
    if row is None:
        scalars = {name: float(out[name]) for name in CORE_FLOAT_FIELDS}
        weights, q_df, converged, iterations = (
            out["weights"],
            out["q_df"],
            out["converged"],
            out["iterations"],
        )
    else:
        scalars = {name: float(out[name][row]) for name in CORE_FLOAT_FIELDS}
        weights, q_df, converged, iterations = (
            out["weights"][row],
            out["q_df"][row],
            out["converged"][row],
            out["iterations"][row],
        )
    arrays: tuple[Any, ...] = (
        (Owned(weights), Owned(yi), Owned(vi)) if owned else (weights, yi, vi)
    )
    return PoolResult(
        **scalars,
        q_df=int(q_df),
        k=k,
        weights=arrays[0],
        yi=arrays[1],
        vi=arrays[2],
        omitted=omitted,
        method=method,
        test=test,
        level=level,
        tau2_fixed=tau2_fixed,
        converged=bool(converged),
        iterations=int(iterations),
        control=dict(control),
        **study,
    )
