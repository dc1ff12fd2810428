"""The τ² estimators: one registry (name → estimate, standard error, definition, citation)
and one root finder for the iterative ones.

Every estimator is written once for the mixed-effects model ``y = Xβ + u + ε`` with
``u ~ N(0, τ²I)``, ``ε ~ N(0, V)``; the random-effects model is its intercept-only case
(``p = 1``), where the formulas reduce to the familiar ones. Definitions follow metafor's
documentation of ``rma.uni`` and the publications cited in each entry; ``k`` is the number
of studies and ``p`` the number of coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from .._typing import BoolArray, FloatArray
from .._warnings import ConvergenceError
from . import _num as nm
from . import workspace
from ._num import Flag, Num
from .design import Design, _col, rowsum
from .kernels import kernels
from .kernels import solve as solve_kernel
from .moments import Moments, checked_trace, dominated, projected_trace_sq, single_sums
from .scalarize import scalarize

Estimate = tuple[Num, Flag, Num]  # (τ², converged, iterations)

DEFAULT_CONTROL: dict[str, Any] = {
    "maxiter": 1000,  # iterations of the τ² root finders
    "threshold": 1e-10,  # convergence: |Δτ²| ≤ threshold · max(1, τ²) (or tighter)
    "tau2_init": None,  # starting value for ML/REML (default: Hedges' estimate)
}


@attrs.frozen
class Tau2Estimator:
    """An entry of :data:`TAU2_ESTIMATORS`.

    `estimate(design, ee, control)` returns (τ², converged, iterations) from the design and
    its moments at τ² = 0 (`ee`); `standard_error(design, tau2, ee, mom)` the standard error
    of the estimate (`mom`: the moments at `tau2`, whose weight powers up to `se_powers`
    are computed). `definition` and `reference` document it.
    """

    name: str
    label: str
    definition: str
    reference: str
    estimate: Callable[[Design, Moments, dict[str, Any]], Estimate]
    standard_error: Callable[[Design, Num, Moments, Moments], Num]
    se_powers: int = 1
    likelihood: bool = False


def _df(design: Design) -> Num:
    return design.k - design.p


def _truncate(design: Design, raw: Num) -> Num:
    """``max(0, raw)`` where the model leaves residual degrees of freedom, else 0."""
    return nm.where(design.k > design.p, nm.maximum(raw, 0.0), 0.0)


def _done(design: Design) -> tuple[Flag, Num]:
    return design.flag(True), design.full(0.0)


# -- the estimators ------------------------------------------------------------------------


def _ee(design: Design, ee: Moments, control: dict[str, Any]) -> Estimate:
    return (design.full(0.0), *_done(design))


def _nan_se(design: Design, tau2: Num, ee: Moments, mom: Moments) -> Num:
    return design.full(math.nan)


def _dl(design: Design, ee: Moments, control: dict[str, Any]) -> Estimate:
    raw = nm.div(ee.q() - _df(design), ee.trace_p())
    return (_truncate(design, raw), *_done(design))


def _q_variance(design: Design, tau2: Num, ee: Moments) -> Num:
    """``Var(Q_E) = 2 tr((P₀(V + τ²I))²) = 2(k-p) + 4τ² tr P₀ + 2τ⁴ tr P₀²``
    (``P₀VP₀ = P₀`` for the equal-effects projector ``P₀``)."""
    t = nm.maximum(tau2, 0.0)
    return 2.0 * _df(design) + 4.0 * t * ee.trace_p() + 2.0 * t * t * ee.trace_pp()


def _dl_se(design: Design, tau2: Num, ee: Moments, mom: Moments) -> Num:
    return nm.div(nm.sqrt(_q_variance(design, tau2, ee)), ee.trace_p())


def _hs(design: Design, ee: Moments, control: dict[str, Any]) -> Estimate:
    raw = nm.div(ee.q() - design.k, ee.sw)
    return (_truncate(design, raw), *_done(design))


def _hs_se(design: Design, tau2: Num, ee: Moments, mom: Moments) -> Num:
    return nm.div(nm.sqrt(_q_variance(design, tau2, ee)), ee.sw)


def _row_sum(design: Design, x: FloatArray) -> Num:
    return float(np.add.reduce(x)) if design.single else rowsum(x)


def _he(design: Design, ee: Moments, control: dict[str, Any]) -> Estimate:
    # Hedges (1983): the residual sum of squares of the unweighted least-squares fit minus
    # its expectation under τ² = 0, tr((I - H)V) = Σv - tr((XᵀX)⁻¹XᵀVX)
    lay = design.layout
    if design.single:  # the sums of the unit weights and of v, taken with the data
        unit, xvx = design.sums0[0], design.sums0[4]
    else:
        unit, xvx = design.sums([design.mask(np.ones_like(design.y)), design.mask(design.v)])
    k = kernels(design.p, design.intercept)
    inv, delta = solve_kernel(k, unit)
    resid = design.mask(design.y - design.fitted(delta))
    rss = _row_sum(design, resid * resid)
    tr_pv = xvx[lay.ones] - k.trace(inv, xvx)
    if design.p > 1 or not design.intercept:  # (without cancellation where it would)
        unit_w = design.mask(np.ones_like(design.y))
        tr_pv = checked_trace(design, unit, inv, tr_pv, unit_w, design.mask(design.v), 0)
    raw = nm.div(rss - tr_pv, _df(design))
    return (_truncate(design, raw), *_done(design))


def _he_se(design: Design, tau2: Num, ee: Moments, mom: Moments) -> Num:
    # Var = 2 tr(((I - H)(V + τ²I))²)/(k-p)²
    ones = design.mask(np.ones_like(design.y))
    d = design.mask(design.v + _col(nm.maximum(tau2, 0.0)))
    return nm.div(nm.sqrt(2.0 * projected_trace_sq(design, ones, d)), _df(design))


def _sj_start(design: Design) -> Num:
    """Sidik & Jonkman's starting value ``Σ(y - ȳ)²/k`` (unweighted, intercept only)."""
    y = design.y  # centred at the equal-effects fit: add it back (a constant shift of
    if design.basis is not None:  # the intercept-only model changes nothing)
        y = design.mask(y + design.fitted(design.beta0))
    mean = nm.div(_row_sum(design, y), design.k)
    dev = design.mask(y - _col(mean))
    return nm.div(_row_sum(design, dev * dev), design.k)


def _sj(design: Design, ee: Moments, control: dict[str, Any]) -> Estimate:
    # Sidik & Jonkman (2005): one weighted step τ0² Q(τ0²)/(k-p) from τ0² = Σ(y - ȳ)²/k
    tau0 = _sj_start(design)
    raw = nm.div(tau0 * Moments(design, tau0, powers=1).q(), _df(design))
    tau2 = nm.where((design.k > design.p) & (tau0 > 0.0), raw, 0.0)
    return (tau2, *_done(design))


def _sj_se(design: Design, tau2: Num, ee: Moments, mom: Moments) -> Num:
    # τ̂² = τ0² yᵀP0y/(k-p), P0 the projector at τ0²: Var = 2 τ0⁴ tr((P0 D)²)/(k-p)²
    tau0 = _sj_start(design)
    u = design.weights(tau0)
    d = design.mask(design.v + _col(nm.maximum(tau2, 0.0)))
    return nm.div(tau0 * nm.sqrt(2.0 * projected_trace_sq(design, u, d)), _df(design))


def _pm(design: Design, ee: Moments, control: dict[str, Any]) -> Estimate:
    # Paule & Mandel (1982); Morris (1983): Q(τ²) = k - p. Q(τ²) decreases, so the root
    # is unique; DL (a one-step approximation) starts close.
    start, _, _ = _dl(design, ee, control)
    return solve(
        design,
        "Q",
        start,
        control=control,
        method=_method_of(control, "PM"),
        target=_df(design) + 0.0 * start,
    )


def _pm_se(design: Design, tau2: Num, ee: Moments, mom: Moments) -> Num:
    # Morris (1983): Var ≈ 2k²/((k-p)(Σw)²)
    return nm.sqrt(nm.div(2.0, _df(design))) * nm.div(design.k, mom.sw)


def _likelihood(kind: str) -> Callable[[Design, Moments, dict[str, Any]], Estimate]:
    def estimate(design: Design, ee: Moments, control: dict[str, Any]) -> Estimate:
        start, _, _ = _he(design, ee, control)
        found = solve(design, kind, start, control=control, method=kind)
        init = control.get("tau2_init")
        if init is None:
            return found
        given = solve(design, kind, design.full(float(init)), control=control, method=kind)
        return _start_independent(design, kind, ee, control, found, given, float(init))

    return estimate


def log_likelihood_gain(design: Design, tau2: Num, kind: str, ee: Moments, mom: Moments) -> Num:
    """``2 (ll(τ²) - ll(0))`` of the (restricted) likelihood, β profiled out.

    Up to a constant, ``-2 ll(τ²) = Σ log(v_i + τ²) + yᵀPy`` for ML, plus ``log det XᵀWX``
    for REML (Viechtbauer 2005, eqs. 5 and 7), so the gain is
    ``-(Σ log(1 + τ²/v_i) + Q(τ²) - Q(0) (+ log det A(τ²) - log det A(0)))``. `ee` and
    `mom` are the moments at 0 and at `tau2` (absent studies of a batch, ``v = inf``, add 0).
    """
    rest = mom.q() - ee.q()
    if kind == "REML":
        rest = rest + (mom.logdet() - ee.logdet())
    if design.single:
        return -(float(np.log1p(float(tau2) / design.v).sum()) + float(rest))
    t = np.asarray(tau2)
    # (log1p(τ²/v) in a recycled buffer: fresh memory would be faulted in by each chunk)
    ratio = np.divide(t[:, None], design.v, out=workspace.like(design.v))
    gain: FloatArray = -(rowsum(np.log1p(ratio, out=ratio)) + rest)
    return gain


def _start_independent(
    design: Design,
    kind: str,
    ee: Moments,
    control: dict[str, Any],
    found: Estimate,
    given: Estimate,
    init: float,
) -> Estimate:
    """The estimate whatever ``control["tau2_init"]`` is (issue #14): the root of the score
    reached from the default start (Hedges' estimate, as metafor). A given start that
    reaches another root shows that the likelihood has several maxima: a
    :class:`~ketameta.LocalMaximumWarning` reports both, with the difference of their
    log-likelihoods, and the estimate stays the default one (the fit's check of τ² = 0
    follows as usual)."""
    import warnings

    from .._warnings import LocalMaximumWarning

    tau2, converged, iterations = found
    other = given[0]
    threshold = float(control["threshold"])
    t, o = np.asarray(tau2, dtype=float), np.asarray(other, dtype=float)
    apart = np.abs(t - o) > 100.0 * threshold * np.maximum(1.0, np.maximum(t, o))
    if apart.any():
        gain = np.asarray(log_likelihood_gain(design, tau2, kind, ee, Moments(design, tau2, 1)))
        gain_other = np.asarray(
            log_likelihood_gain(design, other, kind, ee, Moments(design, other, 1))
        )
        i = int(np.flatnonzero(apart.reshape(-1))[0])
        where = "" if design.single else f" (analysis {i}; {int(apart.sum())} in all)"
        diff = float((gain_other.reshape(-1)[i] - gain.reshape(-1)[i]) / 2.0)
        warnings.warn(
            f"the {kind} likelihood has several maxima{where}: from control['tau2_init'] = "
            f"{init:g} the score reaches tau^2 = {o.reshape(-1)[i]:.6g}, whose "
            f"log-likelihood is {abs(diff):.3g} {'above' if diff > 0 else 'below'} that at "
            f"the default start's root tau^2 = {t.reshape(-1)[i]:.6g}; the estimate is the "
            "default start's root, so that it does not depend on the start "
            "(check the likelihood profile)",
            LocalMaximumWarning,
            stacklevel=6,
        )
    return tau2, converged, iterations + given[2]


def _ml_se(design: Design, tau2: Num, ee: Moments, mom: Moments) -> Num:
    return nm.sqrt(nm.div(2.0, mom.s[1][design.layout.ones]))  # inverse Fisher information, 2/Σw²


def _reml_se(design: Design, tau2: Num, ee: Moments, mom: Moments) -> Num:
    return nm.sqrt(nm.div(2.0, mom.trace_pp()))  # 2/tr P²


def _method_of(control: dict[str, Any], default: str) -> str:
    return str(control.get("_method", default))


TAU2_ESTIMATORS: dict[str, Tau2Estimator] = {
    e.name: e
    for e in (
        Tau2Estimator(
            "EE",
            "equal-effects model",
            "τ² = 0 (a common effect; aliases FE, CE)",
            "Hedges & Olkin (1985), Statistical Methods for Meta-Analysis, Academic Press.",
            _ee,
            _nan_se,
        ),
        Tau2Estimator(
            "DL",
            "DerSimonian-Laird",
            "max(0, (Q_E - (k - p)) / tr P₀), Q_E and P₀ with weights 1/v",
            "DerSimonian & Laird (1986), Control Clin Trials 7(3):177-188, "
            "https://doi.org/10.1016/0197-2456(86)90046-2; Raudenbush (2009).",
            _dl,
            _dl_se,
        ),
        Tau2Estimator(
            "HE",
            "Hedges",
            "max(0, (Σ r_OLS² - tr((I - H)V)) / (k - p)), r_OLS the unweighted residuals",
            "Hedges (1983), Psychol Bull 93(2):388-395, https://doi.org/10.1037/0033-2909.93.2.388.",
            _he,
            _he_se,
        ),
        Tau2Estimator(
            "HS",
            "Hunter-Schmidt",
            "max(0, (Q_E - k) / Σ(1/v))",
            "Hunter & Schmidt (2004), Methods of Meta-Analysis, 2nd ed., Sage.",
            _hs,
            _hs_se,
        ),
        Tau2Estimator(
            "SJ",
            "Sidik-Jonkman",
            "τ₀² Q(τ₀²) / (k - p) with τ₀² = Σ(y - ȳ)² / k",
            "Sidik & Jonkman (2005), J R Stat Soc C 54(2):367-384, "
            "https://doi.org/10.1111/j.1467-9876.2005.00489.x.",
            _sj,
            _sj_se,
        ),
        Tau2Estimator(
            "PM",
            "Paule-Mandel",
            "the root of Q(τ²) = yᵀPy = k - p",
            "Paule & Mandel (1982), J Res Natl Bur Stand 87(5):377-385, "
            "https://doi.org/10.6028/jres.087.022.",
            _pm,
            _pm_se,
        ),
        Tau2Estimator(
            "EB",
            "empirical Bayes",
            "the root of Q(τ²) = k - p (identical to Paule-Mandel)",
            "Morris (1983), JASA 78(381):47-55, https://doi.org/10.1080/01621459.1983.10477920; "
            "Berkey et al. (1995), Stat Med 14(4):395-411.",
            _pm,
            _pm_se,
        ),
        Tau2Estimator(
            "ML",
            "maximum likelihood",
            "the root of the likelihood score Σw²r² - Σw = 0 (or 0)",
            "Viechtbauer (2005), J Educ Behav Stat 30(3):261-293, "
            "https://doi.org/10.3102/10769986030003261.",
            _likelihood("ML"),
            _ml_se,
            se_powers=2,
            likelihood=True,
        ),
        Tau2Estimator(
            "REML",
            "restricted maximum likelihood",
            "the root of the restricted likelihood score yᵀP²y - tr P = 0 (or 0)",
            "Viechtbauer (2005), J Educ Behav Stat 30(3):261-293, "
            "https://doi.org/10.3102/10769986030003261.",
            _likelihood("REML"),
            _reml_se,
            se_powers=3,
            likelihood=True,
        ),
    )
}
#: τ² estimators in metafor's spelling; "FE" and "CE" are aliases of "EE"
TAU2_METHODS = ("EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB")
METHOD_ALIASES = {"FE": "EE", "CE": "EE"}


# -- the root finder -----------------------------------------------------------------------


def score(design: Design, tau2: Num, kind: str, target: Num) -> tuple[Num, Num, Num]:
    """(score, its derivative, Fisher information) of the equation solved for τ², scaled
    (see :func:`ketameta._engine.kernels.source`): ``Q(τ²) - target`` (PM, EB, Q-profile),
    or the (restricted) likelihood score (Viechtbauer 2005, eqs. 11 and 13: ML
    ``Σw²r² - Σw``, information ``Σw²``; REML ``yᵀP²y - tr P``, information ``tr P²``;
    derivatives ``information - 2 yᵀP³y``), by the generated kernels."""
    mom: Moments | None = None
    if design.single:  # the sums only (fit_design makes the moments where the solver stopped)
        w, s = single_sums(design, float(tau2))
        design.last = (tau2, w, s)
    else:  # (the likelihood scores never read yᵀWy: a batch skips that sum)
        mom = Moments(design, tau2, 2 if kind == "Q" else 3, scores=True, r2=kind == "Q")
        s = mom.s
    a = design.v_harmonic + tau2
    k = design.kernels
    if kind == "Q":
        result = k.score_q(s[0], s[1], a, target)
    elif kind == "ML":
        result = k.score_ml(s[0], s[1], s[2], a, target)
    else:  # REML: tr P and tr P² without cancellation where one weight dominates
        traces = None
        if dominated(design, s):
            if mom is None:
                mom = Moments.of_sums(design, tau2, w, s)
            traces = (mom.trace_p(), mom.trace_pp())
        result = k.score_reml(s[0], s[1], s[2], a, target, traces)
    return result  # type: ignore[no-any-return]


def newton_step(
    t: FloatArray,
    value: FloatArray,
    deriv: FloatArray,
    info: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    prev: FloatArray,
    v_scale: Num,
    threshold: float,
) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray, FloatArray]:
    """One safeguarded Newton step of :func:`solve` for every row of a batch (and, as
    :data:`newton_step_scalar`, generated from this source, for one analysis).

    `value`, `deriv`, `info`: the score at `t`, its derivative and the Fisher information;
    `lo`/`hi`: the bracket so far (``lo = -1``: no point left of the root evaluated yet);
    `prev`: the size of the previous step if it was a Newton step, else inf. Returns the
    next τ², the updated bracket, whether converged and this step's size (inf unless a
    Newton step). Converged: the step is within the tolerance, or two successive Newton
    steps ``s₁ > s₂`` predict (quadratic convergence, next step ``≈ s₂³/s₁²``) that the
    next would be below ``threshold · τ² / 10``.
    """
    o = nm.ArrayOps
    at_zero = (t == 0.0) & (value <= 0.0)  # boundary solution
    lo = o.where(value > 0.0, o.maximum(lo, t), lo)
    hi = o.where(value < 0.0, o.minimum(hi, t), hi)
    new = t + o.div(value, o.where(deriv < 0.0, -deriv, info))
    # a Newton step that overflows gives way to Fisher's, and that to an expansion step
    new = o.where(o.isfinite(new), new, t + o.div(value, info))
    new = o.where(o.isfinite(new) | o.isfinite(hi), new, 2.0 * t + v_scale)
    # bisection point; τ² = 0 while no point left of the root is known (lo < 0): the
    # boundary is either the answer or the bracket's left end; while no point right of it
    # is known (hi = inf) there is no midpoint: expand as above (reached when rounding
    # made the information negative, so that the Fisher step fell below 0 with a positive
    # score)
    ahead = o.where(o.isfinite(hi), 0.5 * (lo + hi), 2.0 * lo + v_scale)
    mid = o.where(lo >= 0.0, ahead, 0.0)
    # a step below 0, onto or beyond a point already evaluated, or where the likelihood
    # is not concave (no Newton step; Fisher steps can crawl): bisect once the root is
    # bracketed; below 0, try τ² = 0 unless 0 is known to lie left of the root
    below = new < 0.0
    outside = (new <= lo) | (new >= hi) | o.negate(o.isfinite(new)) | (deriv >= 0.0)
    newton = o.negate(below) & o.negate(outside)
    new = o.where(below | (outside & o.isfinite(hi)), mid, new)
    exact = at_zero | (value == 0.0)
    new = o.where(exact, t, new)
    step = o.where(newton & o.negate(exact), abs(new - t), math.inf)
    tol = threshold * o.minimum(o.maximum(1.0, new), o.maximum(new, v_scale))
    width = hi - o.maximum(lo, 0.0)
    # (the predicted step is held to a relative tolerance, with a margin of 10 for the
    # prediction's own error: never looser than the step rule; only once the previous step
    # was within 10% of τ², where Newton's convergence is quadratic -- a first step from a
    # start far away predicts nothing)
    predicted = (
        (prev <= 0.1 * new)
        & (step < prev)
        & (step * step * step <= 0.1 * threshold * new * prev * prev)
    )
    done = exact | (o.isfinite(new) & ((abs(new - t) <= tol) | (width <= tol) | predicted))
    return new, lo, hi, done, step


#: :func:`newton_step` for one analysis's Python floats (generated from its source)
newton_step_scalar = scalarize(newton_step)


#: the fewest converged rows of a batch for which :func:`solve` copies the others out
_MIN_CUT = 512


def solve(
    design: Design,
    kind: str,
    start: Num,
    *,
    control: dict[str, Any],
    method: str,
    target: Num = 0.0,
) -> Estimate:
    """Root of a τ² equation on [0, ∞), by safeguarded Newton iteration.

    `kind` is ``"REML"`` or ``"ML"`` (zero of the (restricted) likelihood score,
    Viechtbauer 2005) or ``"Q"`` (``Q(τ²) = target``: Paule-Mandel, empirical Bayes,
    Q-profile limits). Each step is Newton's (:func:`newton_step`); the sign of the score
    brackets the root, and a step that leaves the bracket, or where the observed
    information is not positive, is replaced by bisection (by a Fisher-scoring step while
    the root is not yet bracketed from above), so the iteration cannot oscillate, crawl or
    diverge (plain Fisher scoring can, when one study dominates). A step below 0 is
    replaced by τ² = 0, which is the answer when the score there is not positive.
    Converges when ``|Δτ²| ≤ threshold · min(max(1, τ²), max(τ², v̄))`` (never looser
    than ``threshold · max(1, τ²)``, and relative to the data's scale when variances are
    small), or when two successive Newton steps predict that the next ``|Δτ²|`` would be
    below ``threshold · τ² / 10``. A batch iterates only its rows not yet converged.
    Analyses that do not converge raise :class:`ConvergenceError`, or with
    ``control["raise_on_failure"] = False`` keep their last iterate and
    ``converged = False``. Returns (τ², converged, iterations).
    """
    maxiter, threshold = int(control["maxiter"]), float(control["threshold"])
    raise_on_failure = control.get("raise_on_failure", True)
    if design.single:
        x, low, high, last = float(start), -1.0, math.inf, math.inf
        for iteration in range(1, maxiter + 1):
            f, df, fi = score(design, x, kind, target)
            x_new, low, high, stop, last = newton_step_scalar(
                x, f, df, fi, low, high, last, design.v_scale, threshold
            )
            if stop:
                return float(x_new), True, float(iteration)
            x = float(x_new)
        raise ConvergenceError(method, maxiter)
    t_all = np.array(start, dtype=np.float64)
    lo_all, hi_all = np.full_like(t_all, -1.0), np.full_like(t_all, np.inf)
    prev_all = np.full_like(t_all, np.inf)
    iterations, converged = np.zeros(t_all.shape), np.zeros(t_all.shape, dtype=bool)
    # `sub` holds the rows `rows` of the batch, of which those `active` still iterate:
    # converged rows stay (their score evaluated again, their values kept) until no more
    # than half of them iterate, when `sub` is cut down to those (copying the rows of
    # every array at each convergence would cost more than the scores saved; nor is it
    # cut for fewer than _MIN_CUT converged rows, whose scores cost less than the copies)
    rows = np.arange(t_all.size)
    active = np.ones(rows.size, dtype=bool)
    n_active = rows.size
    sub, tg = design, target
    for _ in range(maxiter):
        t = t_all[rows]
        value, deriv, info = score(sub, t, kind, tg)
        new, lo, hi, done, step = newton_step(
            t,
            np.asarray(value),
            np.asarray(deriv),
            np.asarray(info),
            lo_all[rows],
            hi_all[rows],
            prev_all[rows],
            sub.v_scale,
            threshold,
        )
        if n_active < rows.size:  # (rows that converged earlier keep their values)
            new = np.where(active, new, t)
            lo = np.where(active, lo, lo_all[rows])
            hi = np.where(active, hi, hi_all[rows])
            step = np.where(active, step, prev_all[rows])
            done_rows = np.asarray(done) & active
        else:
            done_rows = np.asarray(done)
        t_all[rows], lo_all[rows], hi_all[rows], prev_all[rows] = new, lo, hi, step
        iterations[rows] += active
        converged[rows[done_rows]] = True
        active = active & ~done_rows
        n_active = int(np.count_nonzero(active))
        if not n_active:
            return t_all, converged, iterations
        if 2 * n_active <= rows.size and rows.size - n_active >= _MIN_CUT:
            rows = rows[active]
            sub = sub.subset(active)
            tg = np.asarray(tg)[active] if np.ndim(tg) else tg
            active = np.ones(rows.size, dtype=bool)
    if not raise_on_failure:
        return t_all, converged, iterations
    raise ConvergenceError(method, maxiter)


def estimate(design: Design, method: str, control: dict[str, Any], ee: Moments) -> Estimate:
    """τ² by `method` (a key of :data:`TAU2_ESTIMATORS`); k ≤ p: τ² = 0.

    A batch solves the iterative estimators only for the rows with residual degrees of
    freedom (``k > p``).
    """
    entry = TAU2_ESTIMATORS[method]
    ctl = {**control, "_method": method}
    k = design.k
    if nm.is_scalar(k) and k <= design.p:  # (one analysis, or a batch of equal k)
        return (design.full(0.0), *_done(design))
    if design.single:
        return entry.estimate(design, ee, ctl)
    if (
        method in ("PM", "EB", "ML", "REML")
        and not nm.is_scalar(k)
        and bool(np.any(k <= design.p))
    ):
        zero = design.full(0.0)
        tau2, conv, its = zero.copy(), np.ones(zero.shape, dtype=bool), zero.copy()  # type: ignore[union-attr]
        fit = np.asarray(k > design.p)
        if fit.any():
            sub = design.subset(fit)
            t, c, i = entry.estimate(sub, Moments(sub, sub.full(0.0), w=sub.w0), ctl)
            tau2[fit], conv[fit], its[fit] = t, c, i
        return tau2, conv, its
    return entry.estimate(design, ee, ctl)
