"""The weighted sums of a model at a given τ² and the quadratic forms built from them.

With ``W = diag(w)``, ``w_i = 1/(v_i + τ²)``, ``A = XᵀWX``, ``β̂ = A⁻¹XᵀWy`` and the
residual projector ``P = W - WXA⁻¹XᵀW`` (Viechtbauer 2005; Raudenbush 2009), every
quantity the τ² estimators and tests need is a function of the sums ``XᵀW^jX``,
``XᵀW^jy``, ``yᵀW^jy`` and ``Σw^j`` (j = 1, 2, 3) — no ``k × k`` matrix is formed:

* residuals ``r = y - Xβ̂`` and ``Σ w^j r² = yᵀW^jy - 2β̂ᵀXᵀW^jy + β̂ᵀXᵀW^jXβ̂``
  (``yᵀPy = Σwr²``, the generalised Q; ``yᵀP²y = Σw²r²`` since ``Py = Wr``);
* ``yᵀP³y = Σw³r² - gᵀA⁻¹g`` with ``g = XᵀW²r``;
* ``tr P = Σw - tr(A⁻¹XᵀW²X)`` and
  ``tr P² = Σw² - 2 tr(A⁻¹XᵀW³X) + tr((A⁻¹XᵀW²X)²)``.

For the intercept-only model these are the familiar ``Q = Σw(y - μ̂)²``,
``tr P = Σw - Σw²/Σw`` and ``tr P² = Σw² - 2Σw³/Σw + (Σw²/Σw)²``.

References
----------
.. [1] Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance estimators
   in the random-effects model. J Educ Behav Stat 30(3), 261-293.
   https://doi.org/10.3102/10769986030003261
.. [2] Raudenbush, S. W. (2009). Analyzing effect sizes: Random-effects models. In The
   Handbook of Research Synthesis and Meta-Analysis (2nd ed., pp. 295-315). Russell Sage.
"""

from __future__ import annotations

import numpy as np

from .._typing import BoolArray, FloatArray
from . import _num as nm
from ._num import Num
from .design import _POWERS, Design, _col, _take, rowsum
from .kernels import kernels, solve
from .linalg import Factor, trace_product


class Moments:
    """The sums of a design at τ² for the weight powers ``w^j``, ``j = 1..powers``.

    ``s[j - 1]`` is the row of sums of ``w^j`` (see :class:`~ketameta._engine.design.Layout`).
    For a batch, `scores` asks for the ``XᵀW^jy``, ``yᵀW^jy`` of ``j ≥ 2`` (which only the
    likelihood scores need), ``r2=False`` skips ``yᵀWy`` (which only Q needs), and `w`
    passes the weights if the caller has them. One analysis always gets every sum, from
    one matrix product. The quadratic forms are evaluated by straight-line kernels
    generated for ``p`` (:mod:`ketameta._engine.kernels`): one analysis runs them in
    Python-float arithmetic, a batch on arrays.
    """

    __slots__ = ("_cache", "_w", "delta", "design", "inv", "kernels", "s", "tau2")

    def __init__(
        self,
        design: Design,
        tau2: Num,
        powers: int = 3,
        *,
        scores: bool = False,
        r2: bool = True,
        w: FloatArray | None = None,
    ) -> None:
        self.design, self.tau2 = design, tau2
        if design.single:
            assert design.v_row is not None
            assert design.wp0 is not None
            if tau2 == 0.0:  # the sums at τ² = 0 were taken with the data
                self._w = design.wp0[1]
                self.s: list[list[Num]] = design.sums0[1:4]
            else:
                wp = (design.v_row + tau2) ** _POWERS
                self._w = wp[0]
                self.s = design.sums(wp)
        else:
            if w is None:
                w = design.weights(tau2)
            self._w = w
            sums = design.sums([w], yy=r2)
            wj = w
            for _ in range(1, powers):
                wj = wj * w
                sums += design.sums([wj], xy=scores, yy=scores)
            self.s = sums
        self._cache: dict[str, Num] = {}  # (tr P, tr P², Q: used several times per fit)
        self.kernels = k = kernels(design.p, design.intercept, not design.single)
        #: ``A⁻¹`` (``A = XᵀWX``) and ``β̂ = A⁻¹XᵀWy`` (in the basis, of the centred effects)
        self.inv, self.delta = solve(k, self.s[0])

    def where(self, cond: BoolArray, other: Moments) -> Moments:
        """A batch's moments that are `other`'s in the analyses `cond` and these elsewhere
        (both of the same design, with the same sums computed): the sums of each analysis
        from the one it is taken from, bit for bit, without computing them again."""
        out = Moments.__new__(Moments)
        out.design, out.kernels, out._cache = self.design, self.kernels, {}
        out.tau2 = np.where(cond, other.tau2, self.tau2)
        out._w = np.where(cond[:, None], other._w, self._w)
        out.s = [
            [b if a is b else np.where(cond, b, a) for a, b in zip(mine, theirs, strict=True)]
            for mine, theirs in zip(self.s, other.s, strict=False)
        ]
        out.inv, out.delta = solve(out.kernels, out.s[0])
        return out

    @property
    def w(self) -> FloatArray:
        """The weights ``1/(v + τ²)`` of every study."""
        return np.asarray(self._w, dtype=np.float64)

    @property
    def sw(self) -> Num:
        """``Σw``."""
        return self.s[0][self.design.layout.ones]

    def _nonnegative(self, x: Num) -> Num:
        # (NaN stays NaN)
        if self.design.single:
            return 0.0 if x < 0.0 else x
        return np.maximum(x, 0.0)

    def rss(self, j: int = 1) -> Num:
        """``Σ w^j r²`` at β̂ (never negative); ``rss(1) = yᵀPy``, the generalised Q."""
        if j == 1:
            return self._nonnegative(self.kernels.rss1(self.s[0], self.delta))
        return self._nonnegative(self.kernels.rss(self.s[j - 1], self.delta))

    def q(self) -> Num:
        """The generalised Q statistic ``yᵀPy = Σ w (y - Xβ̂)²``."""
        cache = self._cache
        if "q" not in cache:
            cache["q"] = self.rss(1)
        return cache["q"]

    def trace_p(self) -> Num:
        """``tr P = Σw - tr(A⁻¹XᵀW²X)`` (see :meth:`_dominant_traces` for one dominant
        weight)."""
        cache = self._cache
        if "tr_p" not in cache:
            trace = self.sw - self.kernels.trace(self.inv, self.s[1])
            cache["tr_p"] = self._dominant_traces(trace, 0)
        return cache["tr_p"]

    def trace_pp(self) -> Num:
        """``tr P² = Σw² - 2 tr(A⁻¹XᵀW³X) + tr((A⁻¹XᵀW²X)²)``."""
        cache = self._cache
        if "tr_pp" not in cache:
            k, row2 = self.kernels, self.s[1]
            sw2 = row2[self.design.layout.ones]
            trace = sw2 - 2.0 * k.trace(self.inv, self.s[2]) + k.trace_sq(self.inv, row2)
            cache["tr_pp"] = self._dominant_traces(trace, 1)
        return cache["tr_pp"]

    def dominated(self) -> bool:
        """Whether one study carries almost all the weight in some analysis (see
        :meth:`_dominant_traces`), so that ``tr P`` and ``tr P²`` need the stable sums."""
        design = self.design
        if design.p != 1 or not design.intercept:
            return False
        ones = design.layout.ones
        sw, sw2 = self.s[0][ones], self.s[1][ones]
        if design.single:
            return bool(sw2 > 0.99 * sw * sw)
        return bool(np.any(sw2 > 0.99 * sw * sw))

    def _dominant_traces(self, trace: Num, which: int) -> Num:
        """`trace` (``tr P`` for `which` 0, ``tr P²`` for 1), recomputed without
        cancellation where one study carries almost all the weight (intercept-only model).

        With ``S = Σw``, ``tr P = Σw - Σw²/S`` cancels when one weight ``w_M`` is nearly
        all of ``S`` (a variance ratio of 1e15 leaves no correct digit). The same
        quantities as sums of positive terms (``S_{-i} = Σ_{j≠i} w_j``, summed directly
        for the largest weight): ``tr P = Σ w_i S_{-i} / S`` and
        ``tr P² = Σ w_i² (S_{-i}² + Σ_{j≠i} w_j²) / S²``; used where ``Σw² > 0.99 S²``
        (the largest weight above 99% of the total), which the sums at hand tell.
        """
        design = self.design
        if design.p != 1 or not design.intercept:
            return trace
        ones = design.layout.ones
        sw, sw2 = self.s[0][ones], self.s[1][ones]
        dominated = sw2 > 0.99 * sw * sw
        if design.single:
            if not dominated:
                return trace
            w = self._w[None, :]
        else:
            if not np.any(dominated):
                return trace
            rows = np.flatnonzero(dominated)
            w = _take(self._w, rows)  # (the analyses fastest: sums in a fixed order)
        stable = _traces_without_cancellation(w)[which]
        if design.single:
            return float(stable[0])
        out = np.array(trace, dtype=np.float64)
        out[rows] = stable
        return out

    def pppy(self) -> Num:
        """``yᵀP³y = Σw³r² - gᵀA⁻¹g``, ``g = XᵀW²r``."""
        g_quad: Num = self.kernels.g_quad(self.inv, self.s[1], self.delta)
        return self.rss(3) - g_quad

    def logdet(self) -> Num:
        """``log det A = Σ log D_j`` (``A = LDLᵀ``, in the basis)."""
        pivots = self.kernels.pivots(self.s[0])
        total = nm.log(pivots[0])
        for d in pivots[1:]:
            total = total + nm.log(d)
        return total

    def percent_weights(self) -> FloatArray:
        """Study weights in percent, ``100 w/Σw``."""
        return (100.0 / _col(self.sw)) * self._w  # type: ignore[no-any-return]


def _traces_without_cancellation(w: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``tr P`` and ``tr P²`` of the intercept-only model with weights `w` (rows of a
    batch; absent studies 0) as sums of positive terms (see
    :meth:`Moments._dominant_traces`)."""
    rows = np.arange(w.shape[0])
    top = np.argmax(w, axis=-1)
    w2 = w * w
    rest = w.copy()
    rest[rows, top] = 0.0
    rest2 = rest * rest
    s, s2 = rowsum(w), rowsum(w2)
    others = s[:, None] - w  # S_{-i}: no cancellation where w_i is not the largest
    others[rows, top] = rowsum(rest)  # summed directly for the largest weight
    others2 = s2[:, None] - w2
    others2[rows, top] = rowsum(rest2)
    trace_p = rowsum(w * others) / s
    trace_pp = rowsum(w2 * (others * others + others2)) / (s * s)
    return trace_p, trace_pp


def projected_trace_sq(design: Design, u: FloatArray, d: FloatArray) -> Num:
    """``tr((P_u D)²)`` for the projector ``P_u = U - UX(XᵀUX)⁻¹XᵀU`` of weights `u` and
    ``D = diag(d)``: ``Σu²d² - 2 tr(A⁻¹XᵀU³D²X) + tr((A⁻¹XᵀU²DX)²)``, ``A = XᵀUX``.

    The variance of a quadratic form ``yᵀP_uy`` of normal ``y`` with covariance ``D`` is
    ``2 tr((P_u D)²)`` (the standard errors of the HE and SJ estimators).
    """
    ud = u * d
    lay = design.layout
    a, b, c = design.sums([u, u * ud * ud, u * ud], xy=False, yy=False)
    factor = Factor(lay.matrix(a))
    m = factor.solve_matrix(lay.matrix(c))
    total_num: Num = (
        float(np.add.reduce(ud * ud)) if design.single else rowsum(design.mask(ud * ud))
    )
    return total_num - 2.0 * factor.trace_solve(lay.matrix(b)) + trace_product(m, m)
