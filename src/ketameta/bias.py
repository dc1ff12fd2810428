"""Small-study effects: Egger's regression test, Begg's rank test, trim-and-fill and
fail-safe N (metafor's ``regtest``, ``ranktest``, ``trimfill`` and ``fsn``).

References
----------
.. [1] Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in
   meta-analysis detected by a simple, graphical test. BMJ, 315(7109), 629-634.
   https://doi.org/10.1136/bmj.315.7109.629
.. [2] Sterne, J. A. C., & Egger, M. (2005). Regression methods to detect publication
   and other bias in meta-analysis. In Publication Bias in Meta-Analysis (pp. 99-110).
   Wiley. https://doi.org/10.1002/0470870168.ch6
.. [3] Sterne, J. A. C., et al. (2011). Recommendations for examining and interpreting
   funnel plot asymmetry in meta-analyses of randomised controlled trials. BMJ, 343,
   d4002. https://doi.org/10.1136/bmj.d4002
.. [4] Stanley, T. D., & Doucouliagos, H. (2014). Meta-regression approximations to
   reduce publication selection bias. Research Synthesis Methods, 5(1), 60-78.
   https://doi.org/10.1002/jrsm.1095
.. [5] Begg, C. B., & Mazumdar, M. (1994). Operating characteristics of a rank
   correlation test for publication bias. Biometrics, 50(4), 1088-1101.
   https://doi.org/10.2307/2533446
.. [6] Duval, S., & Tweedie, R. (2000). Trim and fill: A simple funnel-plot-based method
   of testing and adjusting for publication bias in meta-analysis. Biometrics, 56(2),
   455-463. https://doi.org/10.1111/j.0006-341X.2000.00455.x
.. [7] Duval, S., & Tweedie, R. (2000). A nonparametric "trim and fill" method of
   accounting for publication bias in meta-analysis. JASA, 95(449), 89-98.
   https://doi.org/10.1080/01621459.2000.10473905
.. [8] Rosenthal, R. (1979). The file drawer problem and tolerance for null results.
   Psychological Bulletin, 86(3), 638-641. https://doi.org/10.1037/0033-2909.86.3.638
.. [9] Orwin, R. G. (1983). A fail-safe N for effect size in meta-analysis. Journal of
   Educational Statistics, 8(2), 157-159. https://doi.org/10.3102/10769986008002157
.. [10] Rosenberg, M. S. (2005). The file-drawer problem revisited: A general weighted
   method for calculating fail-safe numbers in meta-analysis. Evolution, 59(2), 464-468.
   https://doi.org/10.1111/j.0014-3820.2005.tb01004.x
.. [11] Kendall, M. G. (1938). A new measure of rank correlation. Biometrika, 30(1/2),
   81-93. https://doi.org/10.1093/biomet/30.1-2.81
.. [12] Kendall, M. G., & Gibbons, J. D. (1990). Rank Correlation Methods (5th ed.),
   ch. 4. Edward Arnold.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any

import attrs
import numpy as np
from scipy import special

from . import _engine, _transf
from ._fitted import MODEL_DEFAULTS, model_options, studies_and_settings
from ._results import RecordResult, array_field, format_p
from ._validation import (
    as_float_array,
    as_number,
    check_choice,
    check_length,
    check_level,
    check_positive,
    check_positive_int,
    default_labels,
    strings,
)
from ._warnings import DegenerateDataWarning, SmallSampleWarning
from .effect_sizes import EffectSizes
from .metareg import MetaRegResult
from .pooling import (
    PoolResult,
    _indices,
    omitted_lines,
    pool,
)

__all__ = [
    "BeggResult",
    "EggerResult",
    "FailSafeResult",
    "TrimFillResult",
    "begg_test",
    "egger_test",
    "fail_safe_n",
    "trim_and_fill",
]

PREDICTORS = ("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")


def _omitted_tail(result: Any) -> list[str]:
    """The omitted studies of a test's summary, by label."""
    labels = result.labels or default_labels(max(result.omitted, default=-1) + 1)
    lines = omitted_lines(result.omitted, result.omitted_reasons, labels)
    return ["", *lines] if lines else []


def _short_repr(result: Any, **items: Any) -> str:
    """``Name(measure='RR', k=13, key=value, ...)``: numbers with 4 significant digits,
    the omitted studies counted (the full record: ``to_dict()``)."""

    def text(value: Any) -> str:
        if isinstance(value, list):
            return "[" + ", ".join(text(v) for v in value) + "]"
        if isinstance(value, float):
            return f"{value:.4g}"
        return repr(value)

    head = [] if result.measure is None else [f"measure={result.measure!r}"]
    k = result.k if hasattr(result, "k") else result.pooled.k - result.k0  # (the observed)
    head.append(f"k={k}")
    if result.omitted:
        head.append(f"omitted={len(result.omitted)}")
    body = [f"{key}={text(value)}" for key, value in items.items()]
    return f"{type(result).__name__}({', '.join(head + body)})"


def _study_fields(prep: Any) -> dict[str, Any]:
    f = prep.fields()
    return {key: f[key] for key in ("measure", "labels", "omitted", "omitted_reasons")}


@attrs.frozen(kw_only=True, repr=False)
class EggerResult(RecordResult):
    """Regression test for funnel-plot asymmetry (see :func:`egger_test`).

    ``intercept`` is the asymmetry coefficient: Egger's intercept (the coefficient of the
    standard error in ``y ~ sei``, equal to the intercept of the standard normal deviate
    regressed on precision), or the coefficient of the chosen predictor. ``limit_estimate``
    is the fitted effect where the predictor is 0 (PET for ``"sei"``, PEESE for ``"vi"``),
    i.e. for an infinitely large study; it is NaN for ``"ni"`` and ``"sqrtni"``, which do
    not vanish as studies grow (as metafor).
    """

    intercept: float
    se: float
    statistic: float
    df: float
    pvalue: float
    ci_lower: float
    ci_upper: float
    limit_estimate: float
    limit_ci_lower: float
    limit_ci_upper: float
    tau2: float
    k: int
    model: str
    predictor: str
    method: str
    test: str
    level: float
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())
    moderators: tuple[str, ...] = attrs.field(converter=strings, default=())

    def __repr__(self) -> str:
        return _short_repr(
            self,
            model=self.model,
            predictor=self.predictor,
            intercept=self.intercept,
            se=self.se,
            pvalue=self.pvalue,
        )

    def summary(self) -> str:
        """A metafor-like summary of the test (and the omitted studies by label)."""
        kind = (
            "weighted regression with multiplicative dispersion"
            if self.model == "lm"
            else f"mixed-effects meta-regression model (tau^2 estimator: {self.method})"
        )
        name = "t" if math.isfinite(self.df) else "z"
        df = f", df = {self.df:g}" if math.isfinite(self.df) else ""
        limit = [
            f"Limit Estimate (as {self.predictor} -> 0): b = {self.limit_estimate:.4f} "
            f"(CI: {self.limit_ci_lower:.4f}, {self.limit_ci_upper:.4f})"
            + ("" if self.measure is None else f" ({_transf.scale(self.measure).name})")
        ]
        moderators = [f"Moderators: {', '.join(self.moderators)}"] if self.moderators else []
        return "\n".join(
            [
                "Regression Test for Funnel Plot Asymmetry",
                "",
                f"Model:     {kind}",
                f"Predictor: {self.predictor}",
                *moderators,
                "",
                f"Test for Funnel Plot Asymmetry: {name} = {self.statistic:.4f}{df}, "
                f"p = {format_p(self.pvalue)}",
                f"Asymmetry coefficient: {self.intercept:.4f} (SE = {self.se:.4f}; "
                f"{100 * self.level:g}% CI: {self.ci_lower:.4f} to {self.ci_upper:.4f})",
                *([] if self.moderators else limit),
                *_omitted_tail(self),
            ]
        )


def _predictor_values(predictor: str, vi: np.ndarray[Any, Any], ni: Any) -> Any:
    if predictor == "sei":
        return np.sqrt(vi)
    if predictor == "vi":
        return vi
    if ni is None:
        msg = f"predictor={predictor!r} needs the sample sizes `ni`"
        raise TypeError(msg)
    n = ni
    return {"ni": n, "ninv": 1.0 / n, "sqrtni": np.sqrt(n), "sqrtninv": 1.0 / np.sqrt(n)}[
        predictor
    ]


def egger_test(
    yi: Any,
    vi: Any = None,
    *,
    sei: Any = None,
    ni: Any = None,
    model: str | None = None,
    predictor: str = "sei",
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    control: dict[str, Any] | None = None,
    labels: Any = None,
    measure: str | None = None,
) -> EggerResult:
    """Egger's regression test for funnel-plot asymmetry (metafor's ``regtest``).

    Parameters
    ----------
    yi, vi, sei
        Effect sizes with variances or (keyword) standard errors, or an
        :class:`~ketameta.EffectSizes` (whose ``ni`` is used for n-based predictors), or
        a model fitted by :func:`ketameta.pool` (metafor's ``regtest(res)``): its studies
        (the omitted ones stay omitted) and its method, test, level and control are used;
        giving `vi`, `sei`, `labels`, `measure` or a setting with it is a ``TypeError``.
        A meta-regression (:func:`ketameta.metareg`) gets the predictor added to its
        moderators, as metafor's ``regtest``: ``moderators`` names them, and there is no
        limit estimate (NaN).
    ni : array_like, optional
        Total sample sizes, needed for the predictors ``"ni"``, ``"ninv"``, ``"sqrtni"``
        and ``"sqrtninv"`` (one per input study, also with a fitted model).
    model : {"lm", "rma"}, optional
        ``"lm"`` (the default for effect sizes): the classic test of Egger et al. (1997)
        [1]_, weighted least squares of ``yi`` on the predictor with weights ``1/vi`` and a
        multiplicative dispersion parameter, t-test on k - 2 df. ``"rma"`` (the default
        for a fitted model, as metafor's ``regtest(res)``): a random-effects
        meta-regression on the predictor with τ² estimator `method` and `test` (``"z"``
        or ``"knha"``) [2]_.
    predictor : str
        ``"sei"`` (Egger; limit estimate = PET), ``"vi"`` (PEESE [4]_), ``"ni"``,
        ``"ninv"``, ``"sqrtni"``, ``"sqrtninv"``.
    method, test, level, control
        As in :func:`ketameta.pool` (defaults ``"REML"``, ``"z"``, 0.95; used by
        ``model="rma"``; a fitted model's own).
    labels, measure
        As in :func:`ketameta.pool`: they name the studies (omitted ones in the summary)
        and the scale.

    Returns
    -------
    EggerResult

    Notes
    -----
    With weights :math:`w_i = 1/v_i` the classic test fits :math:`y_i = b_0 + b_1 x_i`
    and tests :math:`b_1 = 0` with :math:`SE(b_1)^2 = s^2 [(X^T W X)^{-1}]_{11}`,
    :math:`s^2 = \\sum w_i (y_i - \\hat y_i)^2/(k-2)`. For :math:`x_i = \\sqrt{v_i}` this
    is identical to Egger's regression of :math:`y_i/\\sqrt{v_i}` on :math:`1/\\sqrt{v_i}`,
    whose intercept is :math:`b_1` [1]_. Fewer than 10 studies give a
    :class:`~ketameta.SmallSampleWarning`: the test then has too little power to
    distinguish chance from real asymmetry [3]_.

    References
    ----------
    .. [1] Egger et al. (1997), BMJ 315(7109):629-634.
    .. [2] Sterne & Egger (2005), in Publication Bias in Meta-Analysis, 99-110.
    .. [3] Sterne et al. (2011), BMJ 343:d4002.
    .. [4] Stanley & Doucouliagos (2014), Res Synth Methods 5(1):60-78.

    Examples
    --------
    >>> import ketameta
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> res = ketameta.egger_test(es)
    >>> round(res.intercept, 4), round(res.pvalue, 4)
    (-2.112, 0.1887)
    """
    if model is not None or not isinstance(yi, PoolResult | MetaRegResult):
        model = check_choice("lm" if model is None else model, "model", ("lm", "rma"))
    predictor = check_choice(predictor, "predictor", PREDICTORS)
    if isinstance(yi, EffectSizes) and ni is None and not np.isnan(yi.ni).all():
        ni = yi.ni
    prep, settings, fitted = studies_and_settings(
        yi,
        function="egger_test",
        data={"vi": vi, "sei": sei, "labels": labels, "measure": measure},
        settings={"method": method, "test": test, "level": level, "control": control},
        defaults=MODEL_DEFAULTS,
        refits=model != "lm",
        moderators=True,
    )
    if model is None:  # metafor's regtest(res): the model's random-effects regression
        model = "rma"
    method, test, lv, ctl = model_options(settings)
    y, v, kept, omitted = prep.yi, prep.vi, prep.kept, prep.omitted
    n = None
    if ni is not None:
        n_all = as_float_array(ni, "ni")
        check_length(n_all, "ni", len(kept) + len(omitted))
        n = n_all[kept]
        check_positive(n, "ni")
        if np.isnan(n).any() and predictor not in ("sei", "vi"):
            i = int(kept[np.flatnonzero(np.isnan(n))[0]])
            msg = f"`ni` is missing for study {i}, needed by predictor={predictor!r}"
            raise ValueError(msg)
    x = _predictor_values(predictor, v, n)
    k = len(y)
    if k < 3:
        msg = f"the regression test needs at least 3 studies, got k = {k}"
        raise ValueError(msg)
    # a meta-regression: the predictor added to its moderators (metafor's regtest on a
    # model with moderators; then there is no limit estimate)
    reg = fitted if isinstance(fitted, MetaRegResult) else None
    base = np.ones((k, 1)) if reg is None else np.asarray(reg.X, dtype=np.float64)
    design = np.column_stack([base, x])
    # model="lm": weighted least squares with a multiplicative dispersion, i.e. the
    # equal-effects meta-regression with the Knapp-Hartung variance
    fit_method, fit_test = ("EE", "t") if model == "lm" else (method, test)
    try:
        out = _engine.fit(
            y,
            v,
            design,
            padded=False,
            intercept=True if reg is None else bool(reg.intercept),
            method=fit_method,
            test="knha" if model == "lm" else test,
            level=lv,
            control=ctl,
        )
    except np.linalg.LinAlgError:  # (nearly) constant: no slope to estimate
        msg = (
            f"the predictor {predictor!r} is (nearly) the same for all studies"
            + ("" if reg is None else " or collinear with the moderators")
            + ", so the regression test is undefined"
        )
        raise ValueError(msg) from None
    if k < 10:
        warnings.warn(
            f"only {k} studies: tests for funnel-plot asymmetry have low power with fewer "
            "than 10 studies (Sterne et al. 2011)",
            SmallSampleWarning,
            stacklevel=2,
        )
    if out["exact_fit"]:
        warnings.warn(
            "the regression fits the studies exactly (the residuals are rounding noise, e.g. "
            "identical effects): the dispersion is 0 and the test is undefined; its "
            "statistic, p-value and intervals are NaN",
            DegenerateDataWarning,
            stacklevel=2,
        )
        for name in ("se", "statistic", "pvalue", "ci_lower", "ci_upper"):
            out[name] = [math.nan] * len(out[name])
    # a limit estimate exists where the predictor vanishes for infinitely large studies
    has_limit = predictor not in ("ni", "sqrtni") and reg is None
    limit = [float(out[f][0]) if has_limit else math.nan for f in ("coef", "ci_lower", "ci_upper")]
    return EggerResult(
        intercept=float(out["coef"][-1]),
        se=float(out["se"][-1]),
        statistic=float(out["statistic"][-1]),
        df=float(out["df"]),
        pvalue=float(out["pvalue"][-1]),
        ci_lower=float(out["ci_lower"][-1]),
        ci_upper=float(out["ci_upper"][-1]),
        limit_estimate=limit[0],
        limit_ci_lower=limit[1],
        limit_ci_upper=limit[2],
        tau2=float(out["tau2"]),
        k=k,
        model=model,
        predictor=predictor,
        method=fit_method,
        test=fit_test,
        level=lv,
        **_study_fields(prep),
        moderators=() if reg is None else tuple(n for n in reg.names if n != "intrcpt"),
    )


@attrs.frozen(kw_only=True, repr=False)
class BeggResult(RecordResult):
    """Begg and Mazumdar's rank correlation test (see :func:`begg_test`).

    ``tau`` is Kendall's τ (τ_b when there are ties), ``statistic`` Kendall's score
    ``S`` (concordant minus discordant pairs), ``pvalue`` the two-sided p-value, exact
    (``exact=True``: from the permutation distribution of ``S``) or from the normal
    approximation with the tie-corrected variance.
    """

    tau: float
    statistic: float
    pvalue: float
    k: int
    exact: bool
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())

    def __repr__(self) -> str:
        return _short_repr(self, tau=self.tau, pvalue=self.pvalue, exact=self.exact)

    def summary(self) -> str:
        """A metafor-like summary (and the omitted studies by label)."""
        return "\n".join(
            [
                "Rank Correlation Test for Funnel Plot Asymmetry",
                "",
                f"Kendall's tau = {self.tau:.4f}, p = {format_p(self.pvalue)}"
                f"{' (exact)' if self.exact else ' (normal approximation)'}",
                *_omitted_tail(self),
            ]
        )


#: the exact distribution is held scaled by 2**_SCALE: probabilities far below the smallest
#: double (1/k! for k > 170) stay representable, and the largest (at most 1) cannot overflow
_SCALE = 1000


def _kendall_lower_tail(n: int, m: int) -> float:
    """P(D ≤ m) for D the number of inversions of a uniformly random permutation of n items.

    D is the number of discordant pairs of n untied pairs under independence (the number of
    concordant pairs has the same, symmetric, distribution on 0..n(n-1)/2). Its counts are
    the Mahonian numbers, whose generating function is the product of
    ``1 + x + ... + x^(j-1)`` over j = 1..n (Kendall 1938 [11]_): each step adds a uniform
    increment on 0..j-1, so ``P_j(d) = (1/j) Σ_{i<j} P_{j-1}(d - i)``. Only ``d ≤ m`` is
    needed; the window sums are differences of cumulative sums taken where the
    distribution still rises (``d ≤ N_j/2``, so there is no cancellation) and the rest
    follows from the symmetry ``P_j(d) = P_j(N_j - d)``. Cost O(n·m): well under a second
    at n = 500.
    """
    total = n * (n - 1) // 2
    if m < 0:
        return 0.0
    if m >= total:
        return 1.0
    p = np.zeros(m + 1)
    p[0] = math.ldexp(1.0, _SCALE)
    for j in range(2, n + 1):
        top = min(m, j * (j - 1) // 2)  # support of P_j within 0..m
        half = min(top, j * (j - 1) // 4)  # the rising half
        cumulative = np.cumsum(p[: half + 1])
        if half >= j:
            cumulative[j:] -= cumulative[: half + 1 - j].copy()
        p[: half + 1] = cumulative / j
        if top > half:  # reflect the falling part
            n_j = j * (j - 1) // 2
            p[half + 1 : top + 1] = p[n_j - top : n_j - half][::-1]
    return math.ldexp(math.fsum(p), -_SCALE)


def _kendall_exact_pvalue(n: int, concordant: int) -> float:
    """Two-sided exact p-value of `concordant` pairs among n untied pairs, as R's
    ``cor.test(method = "kendall", exact = TRUE)``: ``min(1, 2 min(P(C ≤ c), P(C ≥ c)))``."""
    total = n * (n - 1) // 2
    return min(1.0, 2.0 * _kendall_lower_tail(n, min(concordant, total - concordant)))


def _tie_sizes(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    counts = np.unique(x, return_counts=True)[1]
    return counts[counts > 1].astype(float)


def _kendall_normal_pvalue(tau_b: float, x: Any, y: Any) -> tuple[float, float]:
    """Kendall's score S and its two-sided p from the normal approximation with the
    tie-corrected variance (Kendall 1970 [12]_, as R's ``cor.test``; no continuity
    correction)."""
    n = len(x)
    n0 = n * (n - 1) / 2
    tx, ty = _tie_sizes(x), _tie_sizes(y)
    score = tau_b * math.sqrt((n0 - np.sum(tx * (tx - 1)) / 2) * (n0 - np.sum(ty * (ty - 1)) / 2))
    var = (
        (
            n * (n - 1) * (2 * n + 5)
            - np.sum(tx * (tx - 1) * (2 * tx + 5))
            - np.sum(ty * (ty - 1) * (2 * ty + 5))
        )
        / 18
        + np.sum(tx * (tx - 1)) * np.sum(ty * (ty - 1)) / (2 * n * (n - 1))
        + np.sum(tx * (tx - 1) * (tx - 2))
        * np.sum(ty * (ty - 1) * (ty - 2))
        / (9 * n * (n - 1) * (n - 2))
    )
    return score, float(2 * special.ndtr(-abs(score) / math.sqrt(var)))


def begg_test(
    yi: Any,
    vi: Any = None,
    *,
    sei: Any = None,
    exact: bool = True,
    labels: Any = None,
    measure: str | None = None,
) -> BeggResult:
    """Begg and Mazumdar's (1994) rank correlation test for funnel-plot asymmetry [5]_.

    Kendall's τ between the standardised deviates
    :math:`(y_i - \\hat\\theta)/\\sqrt{v_i - 1/\\sum w}` (with :math:`\\hat\\theta` the
    equal-effects estimate, :math:`w = 1/v`) and the variances :math:`v_i`, as metafor's
    ``ranktest``.

    Parameters
    ----------
    yi, vi, sei
        Effect sizes and variances (or standard errors, by keyword), or an EffectSizes,
        or a model fitted by :func:`ketameta.pool` (metafor's ``ranktest(res)``: its
        studies; the test itself does not depend on the model's settings).
    exact : bool
        ``True`` (default, as metafor): the p-value comes from the exact permutation
        distribution of Kendall's score whenever there are no ties, for any k; with ties
        (or ``exact=False``) from the normal approximation with the tie-corrected
        variance [12]_. The exact distribution takes O(k³) operations: about 0.2 s at
        k = 500 and 1 s at k = 1000.
    labels, measure
        As in :func:`ketameta.pool`.

    Returns
    -------
    BeggResult

    Notes
    -----
    With C concordant pairs among the :math:`N = k(k-1)/2` pairs, the exact two-sided
    p-value is :math:`\\min(1, 2\\min\\{P(C' \\le C), P(C' \\ge C)\\})` under the
    permutation distribution of :math:`C'` (that of R's ``cor.test``), computed from the
    Mahonian numbers [11]_ to full double precision for any k (R itself returns NaN
    from k = 171, where k! overflows). Without ties :math:`\\tau = (2C - N)/N`; with
    ties, τ is Kendall's :math:`\\tau_b`.

    References
    ----------
    .. [5] Begg & Mazumdar (1994), Biometrics 50(4):1088-1101.
    .. [11] Kendall, M. G. (1938). A new measure of rank correlation. Biometrika,
       30(1/2), 81-93. https://doi.org/10.1093/biomet/30.1-2.81
    .. [12] Kendall, M. G., & Gibbons, J. D. (1990). Rank Correlation Methods (5th ed.),
       ch. 4. Edward Arnold.

    Examples
    --------
    >>> import ketameta
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> res = ketameta.begg_test(es)
    >>> round(res.tau, 4), round(res.pvalue, 4)
    (0.0256, 0.9524)
    """
    from scipy import stats  # heavy: imported only here

    if type(exact) not in (bool, np.bool_):  # not 0/1 or a string
        msg = f"`exact` must be True or False, got {exact!r}"
        raise TypeError(msg)
    prep = studies_and_settings(
        yi,
        function="begg_test",
        data={"vi": vi, "sei": sei, "labels": labels, "measure": measure},
        refits=False,
    )[0]
    y, v, kept = prep.yi, prep.vi, prep.kept
    k = len(y)
    if k < 3:
        msg = f"the rank correlation test needs at least 3 studies, got k = {k}"
        raise ValueError(msg)
    w = 1.0 / v
    theta = float(np.sum(w * y) / np.sum(w))
    spread = v - 1.0 / np.sum(w)  # variance of y_i - θ̂
    if not np.all(spread > 0):
        i = int(kept[np.flatnonzero(spread <= 0)[0]])
        msg = (
            f"`vi`: study {i} carries all the weight (vi - 1/Σw ≤ 0 to machine precision), "
            "so the standardised deviates of the rank test are undefined"
        )
        raise ValueError(msg)
    if np.ptp(v) == 0:
        msg = (
            "`vi`: all studies have the same variance, so Kendall's tau between the "
            "deviates and the variances (the rank test) is undefined"
        )
        raise ValueError(msg)
    deviates = (y - theta) / np.sqrt(spread)
    if np.ptp(deviates) == 0:
        msg = (
            "`yi`: the standardised deviates of all studies are equal (every effect equals "
            "the pooled estimate), so Kendall's tau (the rank test) is undefined"
        )
        raise ValueError(msg)
    tau = float(stats.kendalltau(deviates, v, method="asymptotic").statistic)
    ties = len(np.unique(deviates)) < k or len(np.unique(v)) < k
    n_pairs = k * (k - 1) // 2
    if exact and not ties:
        concordant = round((tau + 1.0) * n_pairs / 2.0)
        score, pvalue = float(2 * concordant - n_pairs), _kendall_exact_pvalue(k, concordant)
    else:
        score, pvalue = _kendall_normal_pvalue(tau, deviates, v)
    return BeggResult(
        tau=tau,
        statistic=score,
        pvalue=pvalue,
        k=k,
        exact=bool(exact and not ties),
        **_study_fields(prep),
    )


@attrs.frozen(kw_only=True, repr=False)
class TrimFillResult(RecordResult):
    """Trim-and-fill (see :func:`trim_and_fill`): the filled studies and the pooled result
    on the augmented data (``pooled``).

    ``k0`` is the estimated number of missing studies and ``k0_se`` its standard error
    (Duval and Tweedie's, at the unrounded estimate; NaN where their variance formula is
    negative, as metafor).
    """

    k0: int
    k0_se: float
    side: str
    estimator: str
    filled_yi: Any = array_field()
    filled_vi: Any = array_field()
    pooled: PoolResult
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())

    def __repr__(self) -> str:
        return _short_repr(
            self,
            k0=self.k0,
            side=self.side,
            estimator=self.estimator,
            estimate=self.estimate,
            ci=[self.pooled.ci_lower, self.pooled.ci_upper],
        )

    @property
    def estimate(self) -> float:
        """The pooled estimate after filling."""
        return self.pooled.estimate

    def summary(self) -> str:
        """The pooled summary with the number of filled studies."""
        return "\n".join(
            [
                f"Estimated number of missing studies on the {self.side} side: {self.k0} "
                f"(SE = {_na(self.k0_se)}; estimator {self.estimator})",
                "",
                self.pooled.summary(),
                *_omitted_tail(self),
            ]
        )


def _na(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "NA"


def _rank_statistic_variance(k: int, k0: float) -> float:
    """Duval & Tweedie's (2000) variance of the Wilcoxon statistic T of k studies of which
    k0 are unmatched on one side [7]_ (``k0`` unrounded, as metafor)."""
    return (
        k * (k + 1) * (2 * k + 1)
        + 10 * k0**3
        + 27 * k0**2
        + 17 * k0
        - 18 * k * k0**2
        - 18 * k * k0
        + 6 * k**2 * k0
    ) / 24


def _trim_statistic(y_centered: np.ndarray[Any, Any], estimator: str) -> tuple[float, float]:
    """The unrounded estimate of the number of missing studies and its standard error."""
    from scipy.stats import rankdata  # heavy: imported only here

    k = len(y_centered)
    size = np.abs(y_centered)
    # |deviations| equal to 10 significant digits are ties and get mid-ranks (Wilcoxon), so
    # a mirror-symmetric funnel gives T = k(k+1)/4 whatever the rounding; metafor breaks
    # such ties by position instead (the two differ only for exactly mirrored studies)
    scale = size.max() if size.max() > 0 else 1.0
    ranks = rankdata(np.round(size / scale, 10), method="average")
    positive = y_centered > 0
    if estimator == "R0":
        negative = ~positive
        if not negative.any():
            msg = "estimator 'R0' is undefined when no study lies below the trimmed estimate"
            raise ValueError(msg)
        # γ*: the run of largest |deviations| that are all positive
        r0 = float(np.sum(ranks > ranks[negative].max()) - 1)
        return r0, math.sqrt(2 * max(0.0, r0) + 2)
    t = float(np.sum(ranks[positive]))  # Wilcoxon signed-rank statistic
    if estimator == "L0":
        l0 = (4 * t - k * (k + 1)) / (2 * k - 1)
        var_t = _rank_statistic_variance(k, l0)
        se = 4 * math.sqrt(var_t) / (2 * k - 1) if var_t >= 0 else math.nan
        return l0, se
    radicand = 2 * k * k - 4 * t + 0.25
    if radicand < 0:
        msg = (
            f"estimator 'Q0' is undefined for these data: the signed-rank statistic T = {t:g} "
            f"of the {k} studies exceeds k²/2 + 1/16 = {k * k / 2 + 1 / 16:g}, so "
            "Q0 = k - 1/2 - sqrt(2k² - 4T + 1/4) has no real value (metafor stops with an "
            "error); use estimator='L0' or 'R0'"
        )
        raise ValueError(msg)
    root = math.sqrt(radicand)
    q0 = k - 0.5 - root
    var_t = _rank_statistic_variance(k, q0)
    # delta method: dQ0/dT = 2/sqrt(2k² - 4T + 1/4)
    se = 2 * math.sqrt(var_t) / root if var_t >= 0 else math.nan
    return q0, se


def trim_and_fill(
    yi: Any,
    vi: Any = None,
    *,
    sei: Any = None,
    estimator: str = "L0",
    side: str | None = None,
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    maxiter: int = 100,
    control: dict[str, Any] | None = None,
    labels: Any = None,
    measure: str | None = None,
) -> TrimFillResult:
    """Duval and Tweedie's trim-and-fill method (metafor's ``trimfill``) [6]_ [7]_.

    The studies are sorted so that the suspected excess lies on one side; the ``k0`` most
    extreme are trimmed, the model is refitted, and ``k0`` is re-estimated from the
    signed ranks of the deviations from the trimmed estimate until it stops changing. The
    ``k0`` trimmed studies are then mirrored about the trimmed estimate and the model is
    fitted to all studies plus the filled ones.

    Parameters
    ----------
    yi, vi, sei
        Effect sizes and variances (or standard errors, by keyword), or an EffectSizes,
        or a model fitted by :func:`ketameta.pool` (metafor's ``trimfill(res)``): its
        studies, and its method, test, level and control for every refit; giving `vi`,
        `sei`, `labels`, `measure` or a setting with it is a ``TypeError``.
    estimator : {"L0", "R0", "Q0"}
        Estimator of the number of missing studies [7]_ (``round`` half to even, as R).
    side : {"left", "right"}, optional
        Side where studies are missing. By default, as metafor: ``"right"`` if the slope
        of a meta-regression of the effects on their standard errors (with `method`) is
        negative, else ``"left"``.
    method, test, level, control
        The model fitted at every step and to the filled data, as in :func:`pool`
        (defaults ``"DL"``, ``"z"``, 0.95; a fitted model's own).
    maxiter : int
        Maximum number of trimming iterations.
    labels, measure
        As in :func:`ketameta.pool`; the pooled result names the filled studies
        "Filled 1", "Filled 2", ....

    Returns
    -------
    TrimFillResult

    Notes
    -----
    Deviations of equal size (to 10 significant digits) get mid-ranks; metafor breaks
    such ties by position, which matters only for exactly mirrored studies.
    With deviations :math:`X_i` from the trimmed estimate, ranks :math:`r_i` of
    :math:`|X_i|` and :math:`T = \\sum_{X_i > 0} r_i`: :math:`L_0 = (4T - k(k+1))/(2k-1)`,
    :math:`R_0 = \\gamma^* - 1` (:math:`\\gamma^*` the length of the rightmost run of
    positive ranks), :math:`Q_0 = k - 1/2 - \\sqrt{2k^2 - 4T + 1/4}` [7]_.

    The standard error of ``k0`` (``k0_se``, as metafor) evaluates Duval and Tweedie's
    variance of :math:`T` when :math:`k_0` studies are unmatched [7]_,

    .. math:: \\operatorname{Var}(T) = \\tfrac{1}{24}\\{k(k+1)(2k+1) + 10k_0^3 + 27k_0^2
              + 17k_0 - 18kk_0^2 - 18kk_0 + 6k^2k_0\\},

    at the unrounded estimate of the last iteration: :math:`4\\sqrt{\\operatorname{Var}(T)}
    /(2k-1)` for L0, :math:`2\\sqrt{\\operatorname{Var}(T)}/\\sqrt{2k^2 - 4T + 1/4}` for Q0
    (the delta method), and :math:`\\sqrt{2\\max(0, R_0) + 2}` for R0. Where the variance
    formula is negative (only for estimates far below 0, i.e. when the excess lies on the
    other side) ``k0_se`` is NaN, as in metafor. Q0 has no real value when
    :math:`2k^2 - 4T + 1/4 < 0`; metafor then stops with an error and so does this
    function (a ``ValueError`` naming the estimator).

    References
    ----------
    .. [6] Duval & Tweedie (2000), Biometrics 56(2):455-463.
    .. [7] Duval & Tweedie (2000), JASA 95(449):89-98.

    Examples
    --------
    >>> import ketameta
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> tf = ketameta.trim_and_fill(es)
    >>> tf.k0, tf.side, round(tf.estimate, 4)
    (1, 'right', -0.6561)
    """
    estimator = check_choice(estimator, "estimator", ("L0", "R0", "Q0"))
    maxiter = check_positive_int(maxiter, "maxiter")
    if side is not None:
        side = check_choice(side, "side", ("left", "right"))
    prep, settings, _ = studies_and_settings(
        yi,
        function="trim_and_fill",
        data={"vi": vi, "sei": sei, "labels": labels, "measure": measure},
        settings={"method": method, "test": test, "level": level, "control": control},
        defaults={**MODEL_DEFAULTS, "method": "DL"},
    )
    method, test, lv, ctl = model_options(settings)
    y, v = prep.yi, prep.vi
    k = len(y)
    if k < 3:
        msg = f"trim-and-fill needs at least 3 studies, got k = {k}"
        raise ValueError(msg)
    if side is None:
        if np.ptp(v) <= 1e-8 * np.max(v):
            msg = (
                "all studies have the same variance, so the side of the missing studies "
                "cannot be estimated from the funnel; pass side='left' or side='right'"
            )
            raise ValueError(msg)
        design = np.column_stack([np.ones(k), np.sqrt(v)])
        slope = _engine.fit(
            y,
            v,
            design,
            padded=False,
            intercept=True,
            method=method,
            test="z",
            level=lv,
            control=ctl,
        )["coef"][1]
        side = "right" if slope < 0 else "left"
    sign = -1.0 if side == "right" else 1.0  # put the excess on the right
    ys = sign * y
    order = np.argsort(ys, kind="stable")
    ys, vs = ys[order], v[order]
    k0, previous = 0, -1
    theta, k0_se = 0.0, math.nan
    for _ in range(maxiter):
        if k0 == previous:
            break
        previous = k0
        trimmed = _engine.fit(
            ys[: k - k0],
            vs[: k - k0],
            padded=False,
            method=method,
            test="z",
            level=lv,
            control=ctl,
        )
        theta = float(trimmed["coef"][0])
        estimate, k0_se = _trim_statistic(ys - theta, estimator)
        # L0 ≤ k(k+1)/(2k-1) and a real Q0 ≤ k - 1 round to at most k - 1, R0 ≤ k - 2:
        # at least one study is always left to trim
        k0 = max(0, round(estimate))
    else:
        msg = f"trim-and-fill did not settle on k0 in {maxiter} iterations"
        raise ValueError(msg)
    filled_y = sign * (2 * theta - ys[k - k0 :])
    filled_v = vs[k - k0 :]
    pooled = pool(
        np.concatenate([y, filled_y]),
        np.concatenate([v, filled_v]),
        method=method,
        test=test,
        level=lv,
        control=control,
        labels=[
            *(prep.info["labels"][i] for i in prep.kept),
            *(f"Filled {j + 1}" for j in range(k0)),
        ],
        measure=prep.info["measure"],
    )
    return TrimFillResult(
        k0=k0,
        k0_se=k0_se,
        side=side,
        estimator=estimator,
        filled_yi=filled_y,
        filled_vi=filled_v,
        pooled=pooled,
        **_study_fields(prep),
    )


@attrs.frozen(kw_only=True, repr=False)
class FailSafeResult(RecordResult):
    """A fail-safe N (see :func:`fail_safe_n`)."""

    n: int
    kind: str
    alpha: float
    pvalue: float
    mean_effect: float
    target: float
    k: int
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())

    def __repr__(self) -> str:
        return _short_repr(self, kind=self.kind, n=self.n, pvalue=self.pvalue)

    def summary(self) -> str:
        """A metafor-like summary (and the omitted studies by label)."""
        return "\n".join(
            [
                f"Fail-safe N calculation using the {self.kind.capitalize()} approach: {self.n}",
                *_omitted_tail(self),
            ]
        )


def fail_safe_n(
    yi: Any,
    vi: Any = None,
    *,
    sei: Any = None,
    kind: str = "rosenthal",
    alpha: float = 0.05,
    target: float | None = None,
    labels: Any = None,
    measure: str | None = None,
) -> FailSafeResult:
    """Fail-safe N: how many unpublished null studies would overturn the result.

    * ``"rosenthal"`` [8]_: studies with z = 0 needed to make Stouffer's combined
      one-sided p exceed `alpha`: :math:`N = \\lceil (\\sum z_i / z_{1-\\alpha})^2 - k \\rceil`.
    * ``"orwin"`` [9]_: studies with effect 0 needed to bring the unweighted mean effect
      :math:`\\bar y` down to `target` (default :math:`\\bar y/2`):
      :math:`N = \\lceil k(\\bar y - t)/t \\rceil`.
    * ``"rosenberg"`` [10]_: studies with effect 0 and the average weight needed to make
      the equal-effects test non-significant at two-sided `alpha`:
      :math:`N = \\lceil k((\\sum w y)^2/(z_{1-\\alpha/2}^2 \\sum w) - 1) \\rceil`.

    N is 0 when the result is not significant to begin with (as metafor's ``fsn``).
    `labels` and `measure` name the studies and the scale, as in :func:`ketameta.pool`.
    `yi` may be effect sizes (with `vi` or `sei`), an EffectSizes, or a model fitted by
    :func:`ketameta.pool` (its studies; N does not depend on the model's settings).

    References
    ----------
    .. [8] Rosenthal (1979), Psychol Bull 86(3):638-641.
    .. [9] Orwin (1983), J Educ Stat 8(2):157-159.
    .. [10] Rosenberg (2005), Evolution 59(2):464-468.

    Examples
    --------
    >>> import ketameta
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> ketameta.fail_safe_n(es).n
    598
    """
    kind = check_choice(kind, "kind", ("rosenthal", "orwin", "rosenberg"))
    a = check_level(alpha, "alpha", example="0.05")  # any number type
    prep = studies_and_settings(
        yi,
        function="fail_safe_n",
        data={"vi": vi, "sei": sei, "labels": labels, "measure": measure},
        refits=False,
    )[0]
    y, v = prep.yi, prep.vi
    study = _study_fields(prep)
    k = len(y)
    if k < 1:
        msg = "no studies"
        raise ValueError(msg)
    nan = math.nan
    if kind == "rosenthal":
        z_sum = float(np.sum(y / np.sqrt(v)))
        pvalue = float(special.ndtr(-abs(z_sum) / math.sqrt(k)))
        z_alpha = -float(special.ndtri(a))  # z_{1-α}, accurate for α far below 1e-16
        n = 0 if pvalue >= a else _count((z_sum / z_alpha) ** 2 - k, "alpha")
        return FailSafeResult(
            n=n, kind=kind, alpha=a, pvalue=pvalue, mean_effect=nan, target=nan, k=k, **study
        )
    if kind == "orwin":
        mean = float(np.mean(y))
        t = mean / 2 if target is None else as_number(target, "target")
        if not math.isfinite(t):
            msg = f"`target` must be a finite effect size, got {target!r}"
            raise ValueError(msg)
        if t == 0 or np.sign(t) != np.sign(mean):
            msg = f"`target` must be non-zero and of the sign of the mean effect {mean:.4g}"
            raise ValueError(msg)
        with np.errstate(over="ignore"):
            raw = k * (mean - t) / t
        if math.isfinite(raw):
            n = max(0, math.ceil(raw))
        else:  # a target ~1e-300 times the mean: N beyond the double range, exactly
            exact = k * (Fraction(mean) - Fraction(t)) / Fraction(t)
            n = max(0, math.ceil(exact))
        return FailSafeResult(
            n=n, kind=kind, alpha=a, pvalue=nan, mean_effect=mean, target=t, k=k, **study
        )
    w = 1.0 / v
    sw, swy = float(np.sum(w)), float(np.sum(w * y))
    mean = swy / sw
    z_fe = swy / math.sqrt(sw)  # the equal-effects z statistic
    pvalue = float(2 * special.ndtr(-abs(z_fe)))
    z_alpha = -float(special.ndtri(a / 2))  # z_{1-α/2}
    n = 0 if pvalue >= a else _count(k * ((z_fe / z_alpha) ** 2 - 1), "alpha")
    return FailSafeResult(
        n=n, kind=kind, alpha=a, pvalue=pvalue, mean_effect=mean, target=nan, k=k, **study
    )


def _count(raw: float, name: str) -> int:
    """ceil(max(0, raw)) for a fail-safe number computed in floating point."""
    if not math.isfinite(raw):
        msg = f"the fail-safe number overflows for this `{name}`"
        raise ValueError(msg)
    return math.ceil(max(0.0, raw))
