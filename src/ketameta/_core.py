"""The numeric core shared by :func:`ketameta.pool` and the batch engine.

Every function here is *shape-agnostic*: the studies are on the last axis, and any
leading axes are independent meta-analyses. A single meta-analysis is a 1-D array
(its statistics are Python floats, whose arithmetic keeps ``pool`` fast); a batch is
``(m, k)``, fitted in chunks of rows by the batch engine (its statistics are ``(m,)``
arrays, or Python floats where they are the same for every row, such as ``k`` when no
study is absent).
An absent study in a ragged batch is encoded as ``y = 0, v = inf``: its weight
``1/(v + τ²)`` is exactly 0, so no mask is needed in the weighted sums.

No validation happens here: callers pass finite ``y`` and positive ``v`` (or ``inf``).

Notation follows Viechtbauer (2005): ``w_i = 1/(v_i + τ²)``, ``μ̂ = Σ w y / Σ w``, the
generalised Q statistic ``Q(τ²) = Σ w (y - μ̂)²`` and the REML projection
``P = W - w wᵀ/Σ w`` with ``tr P = Σw - Σw²/Σw`` and
``tr P² = Σw² - 2Σw³/Σw + (Σw²/Σw)²``.

The iterative estimators use the weighted moments ``M[i, j] = Σ y^i w^(j+1)``
(i, j = 0, 1, 2), obtained with one matrix product per iteration, of effects centred at
their equal-effects mean (so that the expansions of ``Σ w^j (y - μ̂)²`` lose no accuracy).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy import special

from ._typing import FloatArray
from ._validation import critical_value
from ._warnings import ConvergenceError

#: τ² estimators, in metafor's spelling; "FE" and "CE" are aliases of "EE"
TAU2_METHODS = ("EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB")
METHOD_ALIASES = {"FE": "EE", "CE": "EE"}
#: tests / interval methods for the pooled estimate
TESTS = ("z", "t", "knha", "adhoc")

DEFAULT_CONTROL: dict[str, Any] = {
    "maxiter": 1000,  # iterations of the τ² root finders
    "threshold": 1e-10,  # convergence: |Δτ²| ≤ threshold · max(1, τ²) (or tighter)
    "tau2_init": None,  # starting value for ML/REML (default: Hedges' estimate)
}

_POWERS = -np.arange(1.0, 4.0)[:, None]  # w, w², w³

Num = Any  # a Python float (single analysis, or a batch's per-row constant) or an (m,) array
#: weight powers of the final moments that the SE of τ̂² needs (ML: Σw², REML: tr P²)
_SE_POWERS = {"ML": 2, "REML": 3}


_SCALAR_BOOLS = (bool, np.bool_)
_SCALAR_FLOATS = (float, np.float64)


def _where(cond: Num, a: Num, b: Num) -> Num:
    """``np.where`` that stays cheap for scalars (a single meta-analysis)."""
    if type(cond) in _SCALAR_BOOLS:
        return a if cond else b
    return np.where(cond, a, b)


def _max(a: Num, b: Num) -> Num:
    if type(a) in _SCALAR_FLOATS and type(b) in _SCALAR_FLOATS:
        return b if b > a else a  # as builtin max: `a` when either is NaN
    return np.maximum(a, b)


def _div(a: Num, b: Num) -> Num:
    """``a / b`` with IEEE semantics for Python floats too (``x / 0`` is ±inf or NaN)."""
    if type(b) is float and b == 0.0:
        return np.float64(a) / b  # (callers hold np.errstate)
    return a / b


def _sqrt(a: Num) -> Num:
    """``np.sqrt`` that keeps a non-negative Python float a Python float."""
    if type(a) is float and a >= 0.0:
        return math.sqrt(a)
    return np.sqrt(a)


def _col(x: Num) -> Num:
    """Per-analysis values as a column against the study axis (scalars stay scalars)."""
    return x if np.ndim(x) == 0 else np.asarray(x)[..., None]


class Data:
    """One or many meta-analyses, prepared once: centred effects and their powers.

    ``padded=False`` promises that every study is present (no ``v = inf``), which
    spares the masking work; then every analysis has the same number of studies and ``k``
    is a Python float, for a batch too (per-analysis selections by ``k`` cost nothing).
    """

    __slots__ = (
        "_v_scale",
        "center",
        "k",
        "last",
        "present",
        "single",
        "sw0",
        "v",
        "v_harmonic",
        "v_row",
        "w0",
        "wp0",
        "y",
        "y_pows",
    )
    present: np.ndarray[Any, np.dtype[np.bool_]] | None
    # the equal-effects weights 1/v and their sums (None in a subset for the root finders)
    w0: FloatArray | None
    wp0: FloatArray | None
    sw0: Num
    # number of studies: a Python float for one analysis or a complete batch, else an (m,)
    # array
    k: Num
    # y_pows: a single analysis: (k, 3) columns 1, y, y²; a batch: y² (m, k)

    def __init__(self, y: FloatArray, v: FloatArray, *, padded: bool = True) -> None:
        # callers hold np.errstate: empty rows of a batch divide 0 by 0 harmlessly
        self.v = v
        self.v_row = v[None, :] if v.ndim == 1 else None  # one analysis: v as a (1, k) row
        self.last: Moments | None = None  # a single analysis: the score's latest moments
        self._v_scale: Num = None
        self.single = y.ndim == 1
        # a single analysis keeps the powers w0, w0², w0³ of the equal-effects weights
        # (the moments at τ² = 0 reuse them); a batch only w0
        self.wp0 = v[None, :] ** _POWERS if self.single else None
        w0 = self.wp0[0] if self.wp0 is not None else 1.0 / v
        self.w0 = w0  # the equal-effects weights
        if self.single:  # one analysis: all studies present
            sw0 = float(np.add.reduce(w0))
            self.sw0 = sw0
            center: Num = float(np.dot(w0, y)) / sw0
            # Python floats throughout: cheap arithmetic (divisions that can meet 0 go
            # through _div)
            self.present, self.k = None, float(y.shape[0])
            rows = np.empty((3, y.shape[0]))  # 1, y, y² (filled in place: fewest calls)
            rows[0] = 1.0
            np.subtract(y, center, out=rows[1])
            np.multiply(rows[1], rows[1], out=rows[2])
            self.y, self.y_pows = rows[1], rows.T
            self.v_harmonic = y.shape[0] / sw0
            self.center = center
            return
        sw0 = w0.sum(axis=-1)
        self.sw0 = sw0
        center = _rowdot(w0, y) / sw0
        if padded:
            self.present = np.isfinite(v)
            self.k = self.present.sum(axis=-1)
            # centre at the equal-effects mean: results are exactly equivariant, and the
            # moment expansions below stay well conditioned
            center = np.where(np.isfinite(center), center, 0.0)
            self.y = np.where(self.present, y - _col(center), 0.0)
        else:
            self.present = None
            self.k = float(y.shape[-1])
            self.y = y - _col(center)
        self.center = center
        self.v_harmonic = self.k / sw0
        # a batch keeps y² (column-major like y, for fast row sums)
        self.y = np.asfortranarray(self.y)
        self.v = np.asfortranarray(v)
        self.y_pows = self.y * self.y

    @property
    def v_scale(self) -> Num:
        """The mean sampling variance (the root finders' scale; computed when first used)."""
        if self._v_scale is None:
            if self.single:
                self._v_scale = float(np.add.reduce(self.v)) / self.k
            else:
                self._v_scale = self.mask(self.v).sum(axis=-1) / self.k
        return self._v_scale

    def full(self, value: float) -> Num:
        """`value` for every analysis: a Python float for one, an (m,) array for a batch."""
        return float(value) if self.single else np.full(np.shape(self.v_harmonic), value)

    def flag(self, value: bool) -> Num:
        """`value` for every analysis (a NumPy bool or an (m,) bool array)."""
        return np.bool_(value) if self.single else np.full(np.shape(self.v_harmonic), value)

    def mask(self, x: FloatArray) -> FloatArray:
        """`x` with absent studies set to 0."""
        return x if self.present is None else np.where(self.present, x, 0.0)

    def subset(self, rows: np.ndarray[Any, Any]) -> Data:
        """The meta-analyses `rows` of a batch (for the root finders: without the
        equal-effects weights, which only the fit's first moments use)."""
        out = Data.__new__(Data)
        out.single, out.last, out.w0, out.sw0, out.wp0 = False, None, None, None, None
        for name in Data.__slots__:
            if name not in ("single", "last", "w0", "sw0", "wp0"):
                value = getattr(self, name)
                # (None: not computed or no mask; a float k: the same for every analysis)
                keep = value is None or isinstance(value, float)
                setattr(out, name, value if keep else value[rows])
        return out


def _rowdot(a: FloatArray, b: FloatArray) -> FloatArray:
    """``Σ_k a b`` for every row, without a temporary product array."""
    return np.asarray(np.einsum("ij,ij->i", a, b), dtype=np.float64)


class Moments:
    """Weighted moments ``Σ y^i w^(j+1)`` at a given τ² and the quantities derived from them.

    For a batch, `powers` (1-3) limits the weight powers computed (``w`` only for the
    pooled estimate, up to ``w³`` for the likelihood scores), and of the higher powers only
    ``Σ w^(j+1)`` is summed unless `scores` asks for the ``Σ w^(j+1) y^i`` that the τ²
    scores need; ``r2=False`` skips ``Σ w y²`` (which only Q needs), and `w`, `sw` pass
    weights and their sums already at hand. A single analysis always gets all of them
    from one matrix product.
    """

    __slots__ = ("_w", "m", "mu", "sw", "tau2", "wp")

    def __init__(
        self,
        data: Data,
        tau2: Num,
        powers: int = 3,
        *,
        scores: bool = False,
        r2: bool = True,
        w: FloatArray | None = None,
        sw: Num = None,
    ) -> None:
        self.tau2 = tau2
        if data.single:  # one analysis: a single power call is cheapest
            # (3, k): w, w², w³ (at τ² = 0 those of the data)
            wp0 = data.wp0
            self.wp = wp0 if tau2 == 0.0 and wp0 is not None else (data.v_row + tau2) ** _POWERS
            self._w = None
            # m[3j + i] = Σ w^(j+1) y^i as Python floats, whose arithmetic is cheapest
            m = np.dot(self.wp, data.y_pows).tolist()
            self.m = m[0] + m[1] + m[2]
            sw = self.m[0]
            # Σw is positive for a finite τ²; were it 0 or NaN, a NumPy scalar divides by it
            # with IEEE semantics (Python floats raise ZeroDivisionError)
            self.sw = sw if sw > 0.0 else np.float64(sw)
        else:  # a batch, studies in column-major chunks: fused row sums
            y, y2 = data.y, data.y_pows
            if w is None:  # (or the caller's weights 1/(v + τ²))
                w = 1.0 / (data.v + _col(tau2))
            self._w, self.wp = w, None
            nan = np.full(w.shape[0], np.nan)
            self.m = [
                w.sum(axis=-1) if sw is None else sw,
                _rowdot(w, y),
                _rowdot(w, y2) if r2 else nan,
            ] + [nan] * 6
            wj = w
            for j in range(1, powers):
                wj = wj * w
                self.m[3 * j] = wj.sum(axis=-1)
                if scores:
                    self.m[3 * j + 1], self.m[3 * j + 2] = _rowdot(wj, y), _rowdot(wj, y2)
            self.sw = self.m[0]
        self.mu = self.m[1] / self.sw

    @property
    def w(self) -> FloatArray:
        """The weights ``1/(v + τ²)`` of every study."""
        return self.wp[0] if self._w is None else self._w

    def get(self, i: int, j: int) -> Num:
        """``Σ y^i w^(j+1)`` of the centred effects."""
        return self.m[3 * j + i]

    def q(self) -> Num:
        """Generalised Q, ``Σ w (y - μ̂)²`` (never negative)."""
        return _max(self.m[2] - self.mu * self.m[1], 0.0)

    def weighted_r2(self, j: int) -> Num:
        """``Σ w^(j+1) (y - μ̂)²``."""
        mu, m = self.mu, self.m
        return _max(m[3 * j + 2] - 2.0 * mu * m[3 * j + 1] + mu * mu * m[3 * j], 0.0)

    def trace_p(self) -> Num:
        return self.sw - self.m[3] / self.sw

    def trace_pp(self) -> Num:
        sw, sw2 = self.sw, self.m[3]
        ratio = sw2 / sw
        return sw2 - 2.0 * self.m[6] / sw + ratio * ratio


def scale_score(kind: str, value: Num, deriv: Num, info: Num, a: Num) -> tuple[Num, Num, Num]:
    """(score, its derivative, Fisher information) times ``g = a^p``, ``a = v̄_h + τ²``.

    ``v̄_h`` is the harmonic mean of the ``v_i``; ``p = 1`` for Q, 2 for the likelihoods.
    The scaling keeps the score's sign and roots but makes it linear in τ² when all
    ``v_i`` are equal (``w = 1/(v̄_h + τ²)``: the REML score ``w² Σr² - (k-1) w`` becomes
    ``Σr² - (k-1)(v̄_h + τ²)``). Newton steps on the scaled score overshoot far less, so
    they converge in fewer steps and, where the likelihood has several maxima, stay in the
    basin of the start as Fisher scoring does (metafor). The information is scaled alike,
    so a Fisher step is unchanged.
    """
    if kind == "Q":
        return value * a, deriv * a + value, info * a
    g = a * a
    return value * g, deriv * g + 2.0 * value * a, info * g


def _score(data: Data, tau2: Num, kind: str, target: Num) -> tuple[Num, Num, Num]:
    """(score, its derivative, Fisher information) of the equation solved for τ², scaled
    by :func:`scale_score`."""
    mom = Moments(data, tau2, scores=True)
    data.last = mom
    a = data.v_harmonic + tau2
    if kind == "Q":  # Q(τ²) - target, dQ/dτ² = -Σw²r²
        s2 = mom.weighted_r2(1)
        return scale_score(kind, mom.q() - target, -s2, s2, a)
    s2 = mom.weighted_r2(1)
    s3 = mom.weighted_r2(2)
    wr = mom.get(1, 1) - mom.mu * mom.get(0, 1)  # Σ w² (y - μ̂)
    curvature = s3 - wr * wr / mom.sw  # yᵀPPPy
    if kind == "REML":  # Viechtbauer (2005), eq. 13: score yᵀPPy - tr P, info tr P²
        info = mom.trace_pp()
        value = s2 - mom.trace_p()
    else:  # ML, eq. 11: score Σw²r² - Σw, information Σw²
        info = mom.get(0, 1)
        value = s2 - mom.sw
    return scale_score(kind, value, info - 2.0 * curvature, info, a)


def _newton_step(
    t: Num,
    value: Num,
    deriv: Num,
    info: Num,
    lo: Num,
    hi: Num,
    prev: Num,
    v_scale: Num,
    threshold: float,
) -> tuple[Num, Num, Num, Num, Num]:
    """One safeguarded Newton step of :func:`solve_tau2` for every row of a batch.

    `value`, `deriv`, `info`: the score at `t`, its derivative and the Fisher information;
    `lo`/`hi`: the bracket so far (``lo = -1``: no point left of the root evaluated yet);
    `prev`: the size of the previous step if it was a Newton step, else inf. Returns the
    next τ², the updated bracket, whether the row has converged and this step's size (inf
    unless a Newton step). Converged: the step is within the tolerance, or two successive
    Newton steps ``s₁ > s₂`` predict (quadratic convergence, next step ``≈ s₂³/s₁²``)
    that the next would be below ``threshold · τ² / 10``.
    """
    at_zero = (t == 0) & (value <= 0)  # boundary solution
    lo = np.where(value > 0, np.maximum(lo, t), lo)
    hi = np.where(value < 0, np.minimum(hi, t), hi)
    new = t + value / np.where(deriv < 0, -deriv, info)
    # a Newton step that overflows gives way to Fisher's, and that to an expansion step
    new = np.where(np.isfinite(new), new, t + value / info)
    new = np.where(np.isfinite(new) | np.isfinite(hi), new, 2.0 * t + v_scale)
    # bisection point; τ² = 0 while no point left of the root is known (lo < 0): the
    # boundary is either the answer or the bracket's left end
    mid = np.where(lo >= 0, 0.5 * (lo + hi), 0.0)
    # a step below 0, onto or beyond a point already evaluated, or where the likelihood
    # is not concave (no Newton step; Fisher steps can crawl): bisect once the root is
    # bracketed; below 0, try τ² = 0 unless 0 is known to lie left of the root
    below = new < 0
    outside = (new <= lo) | (new >= hi) | ~np.isfinite(new) | (deriv >= 0)
    newton = ~below & ~outside
    new = np.where(below | (outside & np.isfinite(hi)), mid, new)
    exact = at_zero | (value == 0)
    new = np.where(exact, t, new)
    step = np.where(newton & ~exact, abs(new - t), np.inf)
    tol = threshold * np.minimum(np.maximum(1.0, new), np.maximum(new, v_scale))
    width = hi - np.maximum(lo, 0.0)
    # (the predicted step is held to a relative tolerance, with a margin of 10 for the
    # prediction's own error: never looser than the step rule)
    predicted = (
        np.isfinite(prev)
        & (step < prev)
        & (step * step * step <= 0.1 * threshold * new * prev * prev)
    )
    done = exact | (np.isfinite(new) & ((abs(new - t) <= tol) | (width <= tol) | predicted))
    return new, lo, hi, done, step


def _newton_step_scalar(
    t: float,
    value: float,
    deriv: float,
    info: float,
    lo: float,
    hi: float,
    prev: float,
    v_scale: float,
    threshold: float,
) -> tuple[float, float, float, bool, float]:
    """:func:`_newton_step` for a single analysis, in Python floats (the same rule, ~5x
    cheaper than NumPy scalars; ``tests/test_core.py`` checks that the two agree)."""
    if (t == 0.0 and value <= 0.0) or value == 0.0:  # boundary solution, or exact root
        return t, lo, hi, True, math.inf
    if value > 0.0:
        lo = max(lo, t)
    elif value < 0.0:
        hi = min(hi, t)
    new = t + _div(value, -deriv if deriv < 0.0 else info)
    if not math.isfinite(new):  # an overflowing Newton step: Fisher's, or an expansion
        new = t + _div(value, info)
        if not (math.isfinite(new) or math.isfinite(hi)):
            new = 2.0 * t + v_scale
    mid = 0.5 * (lo + hi) if lo >= 0.0 else 0.0
    below = new < 0.0
    outside = new <= lo or new >= hi or not math.isfinite(new) or deriv >= 0.0
    step = math.inf
    if below or (outside and math.isfinite(hi)):
        new = mid
    elif not outside:
        step = abs(new - t)
    tol = threshold * min(max(1.0, new), max(new, v_scale))
    predicted = (
        math.isfinite(prev)
        and step < prev
        and step * step * step <= 0.1 * threshold * new * prev * prev
    )
    done = math.isfinite(new) and (abs(new - t) <= tol or hi - max(lo, 0.0) <= tol or predicted)
    return new, lo, hi, done, step


def solve_tau2(
    data: Any,
    kind: str,
    start: Num,
    *,
    method: str,
    maxiter: int,
    threshold: float,
    target: Num = 0.0,
    score: Any = None,
    raise_on_failure: bool = True,
) -> tuple[Num, Num, Num]:
    """Root of a τ² equation on [0, ∞), by safeguarded Newton iteration.

    `kind` is ``"REML"`` or ``"ML"`` (zero of the (restricted) likelihood score,
    Viechtbauer 2005) or ``"Q"`` (``Q(τ²) = target``: Paule-Mandel, empirical Bayes,
    Q-profile limits). Each step is Newton's; the sign of the score brackets the root,
    and a step that leaves the bracket, or where the observed information is not positive,
    is replaced by bisection (by a Fisher-scoring step while the root is not yet bracketed
    from above), so the iteration cannot oscillate, crawl or diverge (plain Fisher scoring
    can, when one study dominates). A step below 0 is
    replaced by τ² = 0, which is the answer when the score there is not positive.
    Converges when ``|Δτ²| ≤ threshold · min(max(1, τ²), max(τ², v̄))`` (never looser
    than ``threshold · max(1, τ²)``, and relative to the data's scale when variances are
    small), or when two successive Newton steps predict that the next ``|Δτ²|`` would be
    below ``threshold · τ² / 10`` (quadratic convergence: ``s₃ ≈ s₂³/s₁²``), which
    spares the step that would only confirm it. Returns (τ², converged, iterations).
    Callers hold ``np.errstate`` (divisions by zero give inf/NaN, which the steps handle).

    `data` needs ``v_scale`` (and ``subset(rows)`` for batches); `score(data, τ², kind,
    target)` returns (score, derivative, Fisher information) and defaults to the
    intercept-only model's (the meta-regression module passes its own). Rows of a batch
    that do not converge raise :class:`ConvergenceError`, or with
    ``raise_on_failure=False`` keep their last iterate and ``converged=False``.
    """
    score = _score if score is None else score
    if type(start) is not float and np.ndim(start) > 0:
        return _solve_batch(
            data, kind, start, score, target, method, maxiter, threshold, raise_on_failure
        )
    t, lo, hi, prev = float(start), -1.0, math.inf, math.inf
    for iteration in range(1, maxiter + 1):
        value, deriv, info = score(data, t, kind, target)
        new, lo, hi, done, prev = _newton_step_scalar(
            t, value, deriv, info, lo, hi, prev, data.v_scale, threshold
        )
        if done:
            return new, np.bool_(True), np.float64(iteration)
        t = new
    raise ConvergenceError(method, maxiter)


def _solve_batch(
    data: Any,
    kind: str,
    start: FloatArray,
    score: Any,
    target: Num,
    method: str,
    maxiter: int,
    threshold: float,
    raise_on_failure: bool,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """:func:`solve_tau2` for a batch: iterate only the rows not yet converged."""
    t = np.array(start, dtype=np.float64)
    # lo: the largest τ² known to lie left of the root (-1: none evaluated yet)
    lo, hi, prev = np.full_like(t, -1.0), np.full_like(t, np.inf), np.full_like(t, np.inf)
    iterations, converged = np.zeros(t.shape), np.zeros(t.shape, dtype=bool)
    rows = np.arange(t.size)
    sub, tg = data, target
    for _ in range(maxiter):
        tt = t[rows]
        value, deriv, info = score(sub, tt, kind, tg)
        new, lo_r, hi_r, done, step = _newton_step(
            tt, value, deriv, info, lo[rows], hi[rows], prev[rows], sub.v_scale, threshold
        )
        t[rows], lo[rows], hi[rows], prev[rows] = new, lo_r, hi_r, step
        iterations[rows] += 1
        converged[rows[done]] = True
        if done.all():
            return t, converged, iterations
        keep = ~done
        rows = rows[keep]
        sub = sub.subset(keep)
        tg = tg[keep] if np.ndim(tg) else tg
    if not raise_on_failure:
        return t, converged, iterations
    raise ConvergenceError(method, maxiter)


def _unweighted_rss(data: Data) -> Num:
    """Residual sum of squares about the unweighted mean, ``Σ(y - ȳ)²``.

    From the sums as ``Σy² - (Σy)²/k``: the effects are centred at their equal-effects
    mean, which lies within their range, so some effect lies on the other side of 0 than
    ``ȳ``, ``Σ(y - ȳ)² ≥ ȳ²`` and ``Σy² = Σ(y - ȳ)² + kȳ²`` is at most ``k + 1`` times
    the result: the cancellation costs at most ``log10(k + 1)`` digits.
    """
    if data.single:  # columns 1, y, y² of the centred effects: one call for both sums
        _, sy, syy = np.add.reduce(data.y_pows, axis=0).tolist()
        return _max(syy - sy * sy / data.k, 0.0)
    # (absent studies of a batch are 0 in y and y²)
    sy = data.y.sum(axis=-1)
    return np.maximum(data.y_pows.sum(axis=-1) - sy * sy / data.k, 0.0)


def estimate_tau2(
    data: Data, method: str, control: dict[str, Any], ee: Moments | None = None
) -> tuple[Num, Num, Num]:
    """τ² by `method`; returns (τ², converged, iterations). Fewer than 2 studies: τ² = 0."""
    k = data.k
    zero, ok = data.full(0.0), data.flag(True)
    if method == "EE":
        return zero, ok, zero
    # (called inside the np.errstate of fit(): k = 1 rows divide by zero harmlessly)
    if method in ("DL", "HS"):
        mom = Moments(data, zero) if ee is None else ee
        # DerSimonian & Laird (1986); Hunter & Schmidt (2004)
        dl = method == "DL"
        raw = _div(mom.q() - (k - 1), mom.trace_p()) if dl else (mom.q() - k) / mom.sw
        return _where(k > 1, _max(raw, zero), zero), ok, zero
    rss = _unweighted_rss(data) if method in ("HE", "SJ") else None
    if method == "HE":  # Hedges (1983): moments of the unweighted mean
        raw = _div(rss, k - 1) - data.v_scale
        return _where(k > 1, _max(raw, zero), zero), ok, zero
    if method == "SJ":  # Sidik & Jonkman (2005): one weighted step from Σ(y - ȳ)²/k
        tau0 = rss / k
        raw = _div(tau0 * Moments(data, tau0, powers=1).q(), k - 1)
        return _where((k > 1) & (tau0 > 0), raw, zero), ok, zero
    if data.single and k < 2:
        return zero, ok, zero
    multi = not data.single and bool(np.any(k < 2))
    if multi:  # solve only the rows with at least two studies
        rows = np.flatnonzero(k >= 2)
        tau2, conv, its = zero.copy(), ok.copy(), zero.copy()
        if rows.size:
            t, c, i = estimate_tau2(data.subset(rows), method, control)
            tau2[rows], conv[rows], its[rows] = t, c, i
        return tau2, conv, its
    maxiter, threshold = int(control["maxiter"]), float(control["threshold"])
    if method in ("PM", "EB"):  # Paule & Mandel (1982); Morris (1983): Q(τ²) = k - 1
        # Q(τ²) decreases, so the root is unique; DL (a one-step approximation) starts close
        start, _, _ = estimate_tau2(data, "DL", control, ee)
        return solve_tau2(
            data,
            "Q",
            start,
            method=method,
            maxiter=maxiter,
            threshold=threshold,
            target=k - 1.0,
            raise_on_failure=control.get("raise_on_failure", True),
        )
    init = control["tau2_init"]
    if init is None:
        start, _, _ = estimate_tau2(data, "HE", control)
    else:
        start = data.full(float(init))
    return solve_tau2(
        data,
        method,
        start,
        method=method,
        maxiter=maxiter,
        threshold=threshold,
        raise_on_failure=control.get("raise_on_failure", True),
    )


def tau2_standard_error(
    data: Data,
    tau2: Num,
    method: str,
    ee: Moments | None = None,
    mom: Moments | None = None,
) -> Num:
    """Standard error of the τ² estimate, by estimator.

    Method-of-moments estimators ``τ̂² = (yᵀAy - tr(AV))/c`` have
    ``Var = 2 tr((A(V + τ²I))²)/c²`` (quadratic forms of normal vectors); ML and
    REML use the inverse Fisher information, ``2/Σw²`` and ``2/tr P²`` (Viechtbauer
    2005; 2007); PM and EB Morris' (1983) approximation ``2k²/((k-1)(Σw)²)``.
    `ee` and `mom` are the moments at τ² = 0 and at `tau2`, if the caller has them.
    """
    k = data.k
    t = _max(tau2, 0.0)
    if method == "EE":
        return data.full(np.nan)
    if method in ("DL", "HS"):
        ee = Moments(data, 0.0 * t) if ee is None else ee
        tp, tpp = ee.trace_p(), ee.trace_pp()
        var_q = 2.0 * (k - 1) + 4.0 * t * tp + 2.0 * t * t * tpp
        return _div(_sqrt(var_q), tp if method == "DL" else ee.sw)
    vv = data.mask(data.v)
    if method == "HE":  # A = I - J/k (unweighted residual projector), c = k - 1
        sv, sv2 = vv.sum(axis=-1), (vv * vv).sum(axis=-1)
        tr_pv = sv - sv / k
        tr_pvpv = sv2 * (1.0 - 2.0 / k) + sv * sv / (k * k)
        var = 2.0 * tr_pvpv + 4.0 * t * tr_pv + 2.0 * t * t * (k - 1)
        return np.sqrt(var) / (k - 1)
    if method == "SJ":
        # τ̂²_SJ = τ0² yᵀP0y/(k-1), P0 the projector for weights 1/(v + τ0²), τ0² = Σ(y-ȳ)²/k:
        # Var = 2 τ0⁴ tr((P0 D)²)/(k-1)² with D = V + τ²I, expanded in sums
        tau0 = _unweighted_rss(data) / k
        w = 1.0 / (data.v + _col(tau0))
        sw = w.sum(axis=-1)
        d = data.mask(vv + _col(t))
        wd = w * d
        wwd = (w * wd).sum(axis=-1)
        tr = (wd * wd).sum(axis=-1) - 2.0 * (w * wd * wd).sum(axis=-1) / sw + (wwd / sw) ** 2
        return tau0 * np.sqrt(2.0 * tr) / (k - 1)
    mom = Moments(data, t) if mom is None else mom
    if method in ("PM", "EB"):
        return _sqrt(_div(2.0, k - 1)) * k / mom.sw
    if method == "ML":
        return _sqrt(_div(2.0, mom.get(0, 1)))
    return _sqrt(_div(2.0, mom.trace_pp()))


#: largest degrees of freedom (and x/2) for which chi2_sf sums its closed-form series
_CHI2_SERIES_MAX_DF = 64
_CHI2_SERIES_MAX_HALF_X = 600.0


def chi2_sf(df: Num, x: Num) -> Num:
    """Survival function of the χ² distribution, ``P(X > x)``, ``X ~ χ²(df)``.

    Integer `df` ≤ 64 (the Q test's k - 1) use the closed forms (Abramowitz & Stegun
    26.4.4-5): for a batch a few passes per distinct df instead of an incomplete-gamma
    evaluation per row, for a single value a few Python-float operations: with
    ``h = x/2``, even ``df = 2n``: ``e^{-h} Σ_{j<n} h^j/j!``; odd ``df = 2n+1``:
    ``erfc(√h) + e^{-h} √(2/π) Σ_{j=1..n} x^{j-1/2}/(1·3···(2j-1))``. Every term is
    positive, so the sums are accurate to rounding; other rows use ``chdtrc``.
    """
    if type(x) is float or np.ndim(x) == 0:  # (np.ndim would make an array of a float)
        if type(x) is float and 0.0 <= x <= 2.0 * _CHI2_SERIES_MAX_HALF_X and _series_df(df):
            return _chi2_sf_series(int(df), x)  # one analysis: the series in Python floats
        return special.chdtrc(df, x)
    series = (x >= 0) & (x <= 2.0 * _CHI2_SERIES_MAX_HALF_X)
    if np.ndim(df) == 0:  # one df for every row (a batch of complete analyses)
        groups = [float(df)]
    else:
        first = df.flat[0] if df.size else 1.0
        groups = [first] if np.all(df == first) else np.unique(df).tolist()
    df = np.broadcast_to(df, np.shape(x))
    out = np.empty(np.shape(x))
    done = np.zeros(np.shape(x), dtype=bool)
    for d in groups:
        if not _series_df(d):
            continue
        rows = series & (df == d) if len(groups) > 1 else series
        if rows.all():
            out[...] = _chi2_sf_series(int(d), x)
        else:
            out[rows] = _chi2_sf_series(int(d), x[rows])
        done |= rows
    rest = ~done
    if rest.any():
        out[rest] = special.chdtrc(df[rest], x[rest])
    return out


def _series_df(df: float) -> bool:
    """Whether :func:`chi2_sf` has the closed-form series for `df` (an integer 1-64)."""
    return bool(df == round(df) and 1 <= df <= _CHI2_SERIES_MAX_DF)


def _chi2_sf_series(df: int, x: Num) -> Num:
    """:func:`chi2_sf` for one integer `df` (≥ 1) and 0 ≤ x ≤ 1200, by its finite series
    (a Python float, or an array)."""
    h = 0.5 * x
    n = df // 2
    one = type(x) is float
    exp_minus_h = math.exp(-h) if one else np.exp(-h)
    if df % 2 == 0:  # e^{-h} (1 + h + h²/2! + ... + h^(n-1)/(n-1)!)
        term, total = (1.0, 1.0) if one else (np.ones_like(h), np.ones_like(h))
        for j in range(1, n):
            term *= h * (1.0 / j)
            total += term
        return exp_minus_h * total
    root_h = math.sqrt(h) if one else np.sqrt(h)
    tail = math.erfc(root_h) if one else special.erfc(root_h)
    if n == 0:
        return tail
    # √(2/π) e^{-h} (√x + x^{3/2}/3 + x^{5/2}/(3·5) + ...), n terms
    term = math.sqrt(2.0) * root_h  # √x
    total = term * 1.0  # (a new array for an array)
    for j in range(1, n):
        term *= x * (1.0 / (2 * j + 1))
        total += term
    total *= math.sqrt(2.0 / math.pi) * exp_minus_h
    total += tail
    return total if one else np.asarray(total, dtype=np.float64)


def _zero_is_more_likely(data: Data, tau2: Num, method: str, ee: Moments, mom: Moments) -> Num:
    """Whether the (restricted) likelihood at τ² = 0 exceeds that at `tau2` (> 0).

    Up to a constant, ``ll(τ²) = -½ [Σ log(v_i + τ²) + Q(τ²)]`` for ML, plus
    ``-½ log Σw`` for REML (Viechtbauer 2005, eqs. 5 and 7; ``μ`` profiled out), so
    ``ll(0) - ll(τ²) = ½ [Σ log(1 + τ²/v_i) + Q(τ²) - Q(0) (+ log(Σw(τ²)/Σw(0)))]``.
    `ee` and `mom` are the moments at 0 and at `tau2`.
    """
    if data.single:
        # log is concave: Σ log(1 + τ²/v_i) ≤ k log(1 + τ² Σ(1/v_i)/k); a bound ≤ 0 settles
        # the usual case (one maximum) without another pass over the studies
        n = float(data.k)
        bound = n * math.log1p(tau2 * ee.sw / n) + (mom.q() - ee.q())
        if method == "REML":
            bound += math.log(mom.sw / ee.sw)
        if not bound > 0.0:
            return np.bool_(False)
    gain = np.log1p(_col(tau2) / data.v).sum(axis=-1) + (mom.q() - ee.q())
    if method == "REML":
        gain = gain + np.log(mom.sw / ee.sw)
    return (tau2 > 0.0) & (gain > 0.0)


def _two_sided_normal_p(z: Num) -> Num:
    """``2 Φ(-|z|) = erfc(|z|/√2)``; a Python float through :func:`math.erfc` (accurate to
    a few ulp, without a ufunc call's overhead), arrays through SciPy."""
    if type(z) is float and not math.isnan(z):
        return math.erfc(abs(z) / math.sqrt(2.0))
    return 2.0 * special.ndtr(-abs(z))


@functools.lru_cache(maxsize=16)
def _critical_z(level: float) -> float:
    """The two-sided normal critical value of `level` (a Python float: cheap arithmetic)."""
    return float(critical_value(level))  # from the tail 1 - level: finite up to 1 - ulp


def fit(
    y: FloatArray,
    v: FloatArray,
    *,
    padded: bool = True,
    method: str,
    test: str,
    level: float,
    tau2_fixed: float | None,
    control: dict[str, Any],
) -> dict[str, Any]:
    """Fit the random-effects (or common-effect) model; return a dict of statistics.

    Absent studies of a ragged batch have ``v = inf``; ``padded=False`` promises none.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        data = Data(y, v, padded=padded)
        return _fit(data, method, test, level, tau2_fixed, control)


def _fit(
    data: Data,
    method: str,
    test: str,
    level: float,
    tau2_fixed: float | None,
    control: dict[str, Any],
) -> dict[str, Any]:
    k = data.k
    zero = data.full(0.0)
    ee = Moments(data, zero, w=data.w0, sw=data.sw0)
    if tau2_fixed is None:
        tau2, converged, iterations = estimate_tau2(data, method, control, ee)
    else:  # τ² fixed: its SE is the estimator's formula evaluated there (as metafor)
        tau2 = zero + tau2_fixed
        converged = data.flag(True)
        iterations = zero
    tau2 = _where(k > 1, tau2, zero)
    # the moments at the final τ², for the pooled effect (and the SE of τ̂²)
    if method == "EE" and tau2_fixed is None:
        mom = ee
    elif data.single and data.last is not None and data.last.tau2 == tau2:
        mom = data.last  # the solver stopped where it evaluated the score (e.g. τ² = 0)
    else:
        # (Q at τ̂², from Σ w y², for Knapp-Hartung and the likelihood check below)
        needs_q = test in ("knha", "adhoc") or method in ("ML", "REML")
        mom = Moments(data, tau2, powers=_SE_POWERS.get(method, 1), r2=needs_q)
    zeroed = data.flag(False)
    if method in ("ML", "REML") and tau2_fixed is None and (not data.single or tau2 > 0):
        # as metafor: a root of the score whose likelihood is below the likelihood at
        # τ² = 0 (a lower local maximum) gives way to τ² = 0
        zeroed = _zero_is_more_likely(data, tau2, method, ee, mom)
        if zeroed if data.single else zeroed.any():
            tau2 = _where(zeroed, zero, tau2)
            mom = Moments(data, tau2, powers=_SE_POWERS[method])
    tau2_se = _where(k > 1, tau2_standard_error(data, tau2, method, ee, mom), np.nan)

    # heterogeneity: Cochran's Q with equal-effects weights
    q = ee.q()
    q_df = k - 1
    q_pvalue = _where(q_df > 0, chi2_sf(_max(q_df, 1.0), q), 1.0)
    sw0, sw0_2 = ee.sw, ee.get(0, 1)
    v_typical = _div(q_df * sw0, sw0 * sw0 - sw0_2)  # Higgins & Thompson (2002), eq. 9
    if method == "EE" and tau2_fixed is None:
        i2 = _where(q > 0, 100.0 * _max(0.0, _div(q - q_df, q)), zero)
        h2 = _where(q_df > 0, _div(q, q_df), 1.0)
    else:
        i2 = _where(k > 1, _div(100.0 * tau2, tau2 + v_typical), zero)
        h2 = _where(k > 1, _div(tau2 + v_typical, v_typical), 1.0)

    # the pooled effect at the final τ²
    sw = mom.sw
    se = _div(1.0, _sqrt(sw))
    # t-based tests use k - 1 df; a single study has none, so its row falls back to z
    df = np.inf if test == "z" else _where(k > 1, k - 1.0, np.inf)
    if test in ("knha", "adhoc"):
        # Knapp & Hartung (2003); "adhoc" never narrower than the z interval
        s2 = _where(k > 1, _div(mom.q(), k - 1), 1.0)
        if test == "adhoc":
            s2 = _max(s2, 1.0)
        se = se * _sqrt(s2)
    mu = mom.mu + data.center
    stat = _div(mu, se)
    if test == "z":
        pvalue = _two_sided_normal_p(stat)
        crit = _critical_z(level)
    else:  # stdtr/stdtrit with df = inf are the normal distribution
        pvalue = 2.0 * special.stdtr(df, -abs(stat))
        crit = critical_value(level, df)  # from the tail 1 - level: finite up to 1 - ulp
    half = crit * se
    pred_half = crit * _sqrt(tau2 + se * se)
    return {
        "estimate": mu,
        "se": se,
        "statistic": stat,
        "pvalue": pvalue,
        "ci_lower": mu - half,
        "ci_upper": mu + half,
        "df": df,
        "tau2": tau2,
        "tau2_se": tau2_se,
        "tau": _sqrt(tau2),
        "i2": i2,
        "h2": h2,
        "q": q,
        "q_df": q_df,
        "q_pvalue": q_pvalue,
        "pred_lower": mu - pred_half,
        "pred_upper": mu + pred_half,
        "k": k,
        # percent weights of a single analysis (a batch derives them on demand from τ²:
        # an (m, k) output would cost more than the whole fit)
        "weights": (100.0 / sw) * mom.w if data.single else None,
        "converged": converged,
        "iterations": iterations,
        "v_typical": v_typical,
        "zeroed": zeroed,
    }


def q_profile(
    y: FloatArray,
    v: FloatArray,
    level: float,
    control: dict[str, Any],
    tau2_max: Num,
    *,
    padded: bool = False,
) -> tuple[Num, Num]:
    """Q-profile confidence limits for τ² (Viechtbauer 2007).

    The lower limit solves ``Q(τ²) = χ²_{k-1; (1+level)/2}`` and the upper
    ``Q(τ²) = χ²_{k-1; (1-level)/2}``; a limit is 0 when ``Q(0)`` is already below
    its target, and `tau2_max` when the root lies beyond the search range [0, tau2_max].
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _q_profile(Data(y, v, padded=padded), level, control, tau2_max)


def _q_profile(
    data: Data, level: float, control: dict[str, Any], tau2_max: Num
) -> tuple[Num, Num]:
    df = np.maximum(data.k - 1.0, 1.0)
    alpha = 1.0 - level
    zero = data.full(0.0)
    limits = []
    for quantile in (alpha / 2.0, 1.0 - alpha / 2.0):
        target = special.chdtri(df, quantile)  # upper-tail quantile
        root, _, _ = solve_tau2(
            data,
            "Q",
            zero,
            method="Q-profile",
            maxiter=int(control["maxiter"]),
            threshold=1e-13,
            target=target,
        )
        limits.append(np.minimum(root, tau2_max))
    return limits[0], limits[1]
