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

import math

import numpy as np
import numpy.typing as npt

from .._typing import BoolArray, FloatArray
from . import _num as nm
from . import workspace
from ._num import Num
from .design import _POWERS, Design, _col, _take, fixed_order, rowsum
from .kernels import solve
from .linalg import Factor, Mat, Vec, trace_product
from .pivoted import LIMIT, Pivoted

IntArray = npt.NDArray[np.intp]
_ONE: IntArray = np.zeros(1, dtype=np.intp)  # (the rows of one analysis)
#: einsum subscripts of ``Σ_k w^j`` per row, by ``j``
_POWER_SUMS = {j: ",".join(["ij"] * j) + "->i" for j in range(2, 4)}


def _rowsum_power(wf: FloatArray, j: int, n: int) -> FloatArray:
    """``Σ_k w^j`` of the first `n` rows of `wf` (laid out by
    :func:`~ketameta._engine.design.fixed_order`): the products ``(w·w)·w`` summed study
    by study, as :func:`~ketameta._engine.design.rowsum` of ``w^j`` would, without the
    ``w^j`` array."""
    out = np.einsum(_POWER_SUMS[j], *([wf] * j))
    return np.asarray(out if n >= 2 else out[:n], dtype=np.float64)


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

    __slots__ = ("_cache", "_pivoted", "_w", "delta", "design", "inv", "kernels", "s", "tau2")

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
            self._w, self.s = single_sums(design, tau2)
        else:
            if w is None:  # (design.weights, in a recycled buffer)
                w = np.add(design.v, _col(tau2), out=workspace.like(design.v))
                np.divide(1.0, w, out=w)
            self._w = w
            sums = [design._batch_sums(w, xy=True, yy=r2)]
            if not scores and design.basis is None:
                # the intercept-only model's Σw^j alone: products summed without
                # materialising w^j (the same products, summed in the same order)
                nan: Num = math.nan
                wf = fixed_order(w)
                for j in range(2, powers + 1):
                    sums.append([_rowsum_power(wf, j, w.shape[0]), nan, nan])
            else:
                wj = w
                for _ in range(1, powers):
                    wj = np.multiply(wj, w, out=workspace.like(w))
                    sums.append(design._batch_sums(wj, xy=scores, yy=scores))
            self.s = sums
        self._cache: dict[str, Num] = {}  # (tr P, tr P², Q: used several times per fit)
        self.kernels = k = design.kernels
        #: ``A⁻¹`` (``A = XᵀWX``) and ``β̂ = A⁻¹XᵀWy`` (in the basis, of the centred effects)
        self.inv, self.delta = solve(k, self.s[0])

    @classmethod
    def of_sums(cls, design: Design, tau2: Num, w: FloatArray, s: list[list[Num]]) -> Moments:
        """The moments of one analysis at `tau2` from its weights `w` and rows of sums `s`
        (:func:`single_sums`) computed before (by the root finder's last score)."""
        out = cls.__new__(cls)
        out.design, out.tau2, out._w, out.s = design, tau2, w, s
        out._cache = {}
        out.kernels = k = design.kernels
        out.inv, out.delta = solve(k, s[0])
        return out

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
            q = self.rss(1)
            design = self.design
            if design.p > 1 or not design.intercept:  # (see _pivoted_q)
                q = self._pivoted_q(q)
            cache["q"] = q
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
        return dominated(self.design, self.s)

    def _dominant_traces(self, trace: Num, which: int) -> Num:
        """`trace` (``tr P`` for `which` 0, ``tr P²`` for 1), recomputed without
        cancellation where one study carries almost all the weight (intercept-only model).

        With ``S = Σw``, ``tr P = Σw - Σw²/S`` cancels when one weight ``w_M`` is nearly
        all of ``S`` (a variance ratio of 1e15 leaves no correct digit). The same
        quantities as sums of positive terms (``S_{-i} = Σ_{j≠i} w_j``, summed directly
        for the largest weight): ``tr P = Σ w_i S_{-i} / S`` and
        ``tr P² = Σ w_i² (S_{-i}² + Σ_{j≠i} w_j²) / S²``; used where ``Σw² > 0.99 S²``
        (the largest weight above 99% of the total), which the sums at hand tell.

        A meta-regression: see :meth:`_pivoted_trace`.
        """
        design = self.design
        if design.p != 1 or not design.intercept:
            return self._pivoted_trace(trace, which)
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

    def _kappa(self) -> Num:
        """``tr(A) tr(A⁻¹) ≥ κ(A)`` (computed once)."""
        cache = self._cache
        if "kappa" not in cache:
            cache["kappa"] = _kappa_bound(self.design, self.s[0], self.inv)
        return cache["kappa"]

    def _store(self) -> dict[bytes, tuple[Pivoted, tuple[FloatArray, FloatArray]]]:
        """The pivoted parametrisations computed so far, by rows (created when first
        needed: most moments never need one)."""
        try:
            return self._pivoted
        except AttributeError:
            self._pivoted: dict[bytes, tuple[Pivoted, tuple[FloatArray, FloatArray]]] = {}
            return self._pivoted

    def _pivoted_trace(self, trace: Num, which: int) -> Num:
        """`trace` (``tr P`` for `which` 0, ``tr P²`` for 1) of a meta-regression, recomputed
        in the pivoted parametrisation (:mod:`ketameta._engine.pivoted`) where the error
        bound of the cheap formula, ``u tr(A) tr(A⁻¹) c`` with the cancellation factor
        ``c = Σw/tr P`` (``Σw²/tr P²``), exceeds ``LIMIT u``: where a study with a large
        weight has a hat value near 1. A trace that is not positive (or NaN) is beyond
        any bound, so the traces used are positive whenever ``k > p``.
        """
        design = self.design
        total = self.s[which][design.layout.ones]
        kappa = self._kappa()
        if design.single:  # (the usual case in a few comparisons)
            if LIMIT * trace > kappa * total or not design.k > design.p:
                return trace
            rows = _ONE
        else:
            found = _rows(design, nm.negate(LIMIT * trace > kappa * total) & (design.k > design.p))
            if found is None:
                return trace
            rows = found
        _, stable = self._pivoted_at(rows)
        return _put(design, trace, rows, stable[which])

    def _pivoted_at(self, rows: IntArray) -> tuple[Pivoted, tuple[FloatArray, FloatArray]]:
        """The pivoted parametrisation of the analyses `rows` at these weights, and its
        ``tr P``, ``tr P²`` (computed once per set of rows)."""
        key = rows.tobytes()
        store = self._store()
        if key not in store:
            w = _take_rows(self.design, self._w, rows)
            piv = pivoted(self.design, w, rows)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                store[key] = (piv, piv.traces(w))
        return store[key]

    def _pivoted_q(self, q: Num) -> Num:
        """`q` (``yᵀWy - β̂ᵀXᵀWy``) of a meta-regression, recomputed as ``Σ r²`` of the
        residuals of the pivoted parametrisation (:meth:`_in_own_coordinates`) where its
        error bound ``u tr(A) tr(A⁻¹) yᵀWy/Q`` exceeds ``LIMIT u``: the effects are
        centred at the equal-effects fit, whose error (the normal equations') leaves a
        heavy study with a centred effect that is not quite its residual, and ``yᵀWy``
        then cancels against ``β̂ᵀXᵀWy``."""
        design = self.design
        kappa = self._kappa()
        total = self.s[0][design.layout.yy]
        rows = _rows(design, nm.negate(LIMIT * q > kappa * total) & (design.k > design.p))
        if rows is None:
            return q
        resid = self._in_own_coordinates(rows)[1]
        return _put(design, q, rows, np.einsum("mk,mk->m", resid, resid))

    def _in_own_coordinates(self, rows: IntArray) -> tuple[Pivoted, FloatArray, FloatArray]:
        """The pivoted parametrisation of the analyses `rows` in the design's own
        coordinates, exactly shifted (:func:`_exact_shift`), the weighted residuals
        ``√w r`` and the shifts (m, p) (computed once per set of rows)."""
        key = b"x" + rows.tobytes()
        store = self._store()
        if key not in store:
            design = self.design
            x = design.given_x(rows)
            w = _take_rows(design, self._w, rows)
            root = np.sqrt(w)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                x_rows = np.broadcast_to(x, (len(rows), *x.shape)) if x.ndim == 2 else x
                shift = _exact_shift(x_rows, w) if design.intercept else None
                if shift is None:
                    shift = np.zeros((len(rows), design.p))
                else:
                    x_rows = x_rows - shift[:, None, :]  # (exact, see _exact_shift)
                piv = Pivoted(x_rows, root)
                # (the centred effects: their residuals are those of the effects)
                resid = piv.residuals(root * _take_rows(design, design.mask(design.y), rows))
            store[key] = (piv, (resid, shift))
        piv, (resid, shift) = store[key]
        return piv, resid, shift

    def in_design(self, coef: Vec, vcov: Mat, scale: Num = 1.0) -> tuple[Vec, Mat]:
        """The coefficients `coef` and their covariance `vcov` (``scale A⁻¹`` mapped to the
        design's coordinates), recomputed where the normal equations' error bound ``u
        tr(A) tr(A⁻¹)`` exceeds ``LIMIT u`` (a meta-regression whose weights span many
        orders of magnitude): from the pivoted parametrisation of the design in its own
        coordinates, ``β̂ = X_S⁻¹f_S`` and ``scale X_S⁻¹ Cov(f_S) X_S⁻ᵀ`` with ``f_S`` the
        pivot studies' fitted values (:meth:`ketameta._engine.pivoted.Pivoted.in_design`).
        Not in the orthogonal basis: an entry of the design that is exactly 0 (a factor
        level a heavy study is not in) must stay exactly 0, or the heavy study's effect,
        known to its own precision, leaks into coefficients it does not inform."""
        design = self.design
        if design.p == 1 and design.intercept:
            return coef, vcov
        kappa = self._kappa()
        rows = _rows(design, nm.negate(kappa < LIMIT) & (design.k >= design.p))
        if rows is None:
            return coef, vcov
        piv, resid, shift = self._in_own_coordinates(rows)
        # the effects as given: the centred ones plus the equal-effects fit
        y = _take_rows(design, design.mask(design.y + design.fitted(design.beta0)), rows)
        root = np.sqrt(_take_rows(design, self._w, rows))
        at = np.arange(len(rows))[:, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # the fitted values of the pivot studies, f_s = y_s - r_s/√w_s
            fitted = y[at, piv.pivots] - resid[at, piv.pivots] / root[at, piv.pivots]
            beta, cov = piv.in_design(piv.x[at, piv.pivots], fitted)
            # β = Tβ', V = TV'Tᵀ for the shifted columns: the intercept takes -Σ c_j β'_j
            t = np.broadcast_to(np.eye(design.p), cov.shape).copy()
            t[:, 0, :] -= shift
            beta = np.einsum("mab,mb->ma", t, beta)
            cov = t @ cov @ np.swapaxes(t, 1, 2)
        p = design.p
        stable_vcov = [
            [
                _put(design, vcov[a][b], rows, scale_rows(design, scale, rows) * cov[:, a, b])
                for b in range(p)
            ]
            for a in range(p)
        ]
        return [_put(design, coef[a], rows, beta[:, a]) for a in range(p)], stable_vcov

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
        return (100.0 / _col(self.sw)) * self._w


def single_sums(design: Design, tau2: Num) -> tuple[FloatArray, list[list[Num]]]:
    """One analysis: the weights ``1/(v + τ²)`` and the rows of sums of ``w, w², w³`` (as
    Python floats, from one matrix product; at τ² = 0 those taken with the data)."""
    if tau2 == 0.0:
        assert design.wp0 is not None
        return design.wp0[1], design.sums0[1:4]
    v_row, z = design.v_row, design.z
    assert v_row is not None
    assert z is not None
    wp = (v_row + tau2) ** _POWERS
    return wp[0], np.dot(wp, z).tolist()  # (Design.sums of one analysis)


def dominated(design: Design, s: list[list[Num]]) -> bool:
    """Whether one study carries almost all the weight in some analysis of the sums `s`
    (see :meth:`Moments.dominated`)."""
    if design.p != 1 or not design.intercept:
        return True  # (a meta-regression: trace_p and trace_pp check their error bound)
    ones = design.layout.ones
    sw, sw2 = s[0][ones], s[1][ones]
    if design.single:
        return bool(sw2 > 0.99 * sw * sw)
    return bool(np.any(sw2 > 0.99 * sw * sw))


def _kappa_bound(design: Design, row: list[Num], inv: Mat) -> Num:
    """``tr(A) tr(A⁻¹) ≥ κ(A)`` for ``A`` the matrix of `row` and its inverse `inv` (inf
    where the computed value is below 1 or NaN)."""
    xx = design.layout.xx
    total, total_inv = row[xx[0][0]], inv[0][0]
    for a in range(1, design.p):
        total = total + row[xx[a][a]]
        total_inv = total_inv + inv[a][a]
    kappa = total * total_inv
    # (κ ≥ 1: a smaller or NaN value is itself a failure of the normal equations, whose
    # A⁻¹ then has negative diagonal entries; its error bound is infinite)
    return nm.where(kappa >= 1.0, kappa, math.inf)


def _take_rows(design: Design, x: FloatArray, rows: IntArray) -> FloatArray:
    """The analyses `rows` of per-study values `x` as ``(len(rows), k)``."""
    return x[None, :] if design.single else x[rows]


def pivoted(design: Design, u: FloatArray, rows: IntArray) -> Pivoted:
    """The pivoted parametrisation (:class:`~ketameta._engine.pivoted.Pivoted`) of the
    design of the analyses `rows` weighted by `u` (``(len(rows), k)``, 0 for an absent
    study)."""
    basis = design.basis
    assert basis is not None
    if basis.ndim == 2:
        basis = np.broadcast_to(basis, (u.shape[0], *basis.shape))
    elif not design.single:
        basis = basis[rows]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return Pivoted(basis, np.sqrt(u))


def checked_trace(
    design: Design, row: list[Num], inv: Mat, trace: Num, u: FloatArray, d: FloatArray, which: int
) -> Num:
    """`trace`, the cheap ``tr(P_u D)`` (`which` 0) or ``tr((P_u D)²)`` (`which` 1) of a
    meta-regression's projector of weights `u` (``D = diag(d)``; `row` the sums of `u`,
    `inv` the inverse of their ``XᵀUX``), recomputed in the pivoted parametrisation where
    its error bound ``u tr(A) tr(A⁻¹) c`` exceeds ``LIMIT u`` (``c = Σud/tr(P_u D)``, or
    ``Σ(ud)²/tr((P_u D)²)``; see :meth:`Moments._pivoted_trace`). `u` and `d` are shaped
    like the effects (0 for absent studies)."""
    if design.p == 1 and design.intercept:
        return trace  # (the intercept-only model: hat values 1/k or w_i/Σw, see above)
    g = design.mask(u * d)
    terms = g if which == 0 else g * g
    total_sum = np.add.reduce(terms, axis=-1)
    total: Num = float(total_sum) if design.single else total_sum
    kappa = _kappa_bound(design, row, inv)
    rows = _rows(design, nm.negate(LIMIT * trace > kappa * total) & (design.k > design.p))
    if rows is None:
        return trace
    piv = pivoted(design, _take_rows(design, design.mask(u), rows), rows)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        stable = piv.traces(_take_rows(design, g, rows))[which]
    return _put(design, trace, rows, stable)


def _exact_shift(x: FloatArray, w: FloatArray) -> FloatArray | None:
    """Shifts ``c_j`` of the columns of designs `x` (``(m, k, p)``, intercept first) by
    which ``x_ij - c_j`` is exact for every study present (weight `w` > 0): the value of
    the heaviest study, for a column whose values all lie within a factor 2 of it
    (Sterbenz's lemma), 0 for the others (the intercept, a column with a 0 entry).
    A year near 2000 then becomes its offset from the heaviest study's year, so that the
    pivoted rows are not nearly parallel, and an exact 0 of the design stays exact; the
    change of coordinates ``X' = XT⁻¹`` (``T`` unit upper triangular) is exact, and
    ``β = Tβ'`` maps the coefficients back. None where no column shifts."""
    at = np.arange(x.shape[0])
    c = x[at, np.argmax(w, axis=-1)]  # (m, p)
    c[:, 0] = 0.0
    lo, hi = np.minimum(0.5 * c, 2.0 * c), np.maximum(0.5 * c, 2.0 * c)
    present = (w > 0.0)[..., None]
    inside = np.all(~present | ((x >= lo[:, None, :]) & (x <= hi[:, None, :])), axis=1)
    c = np.where(inside & (c != 0.0), c, 0.0)
    return c if np.any(c) else None


def scale_rows(design: Design, scale: Num, rows: IntArray) -> FloatArray | float:
    """`scale` (a number per analysis) in the analyses `rows`."""
    return scale if isinstance(scale, float) else np.asarray(scale)[rows]


def _rows(design: Design, flag: nm.Flag) -> IntArray | None:
    """The analyses where `flag` holds (``[0]`` for one analysis), or None if none."""
    if design.single:
        return _ONE if bool(flag) else None
    rows = np.flatnonzero(flag)
    return rows if rows.size else None


def _put(design: Design, value: Num, rows: IntArray, stable: FloatArray) -> Num:
    """`value` (per analysis) with `stable` in the analyses `rows`."""
    if design.single:
        return float(stable[0])
    out = np.array(value, dtype=np.float64)
    out[rows] = stable
    return out


def typical_variance(w: FloatArray) -> float:
    """Higgins & Thompson's (2002) typical within-study variance of an intercept-only
    model with weights `w` (``(k,)``, k ≥ 2): ``ṽ = (k - 1)/tr P``, ``tr P = Σw - Σw²/Σw``
    as a sum of positive terms (:meth:`Moments._dominant_traces`), so ``ṽ > 0`` and
    ``I² = τ²/(τ² + ṽ)`` lies in ``[0, 1)`` however unequal the weights (the textbook
    ``(k - 1)Σw/((Σw)² - Σw²)`` cancels to 0 or below at a variance ratio near 1e15)."""
    trace_p = float(_traces_without_cancellation(np.asarray(w, dtype=np.float64)[None, :])[0][0])
    return float(w.shape[-1] - 1) / trace_p


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
    trace = total_num - 2.0 * factor.trace_solve(lay.matrix(b)) + trace_product(m, m)
    if design.p == 1 and design.intercept:
        return trace
    return checked_trace(design, a, factor.inverse(), trace, u, d, 1)
