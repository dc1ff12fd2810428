"""The forms of a weighted least-squares fit without cancellation when a few studies carry
almost all the weight: the pivoted parametrisation.

The sums of :mod:`ketameta._engine.moments` (``XᵀW^jX``, ...) give every form of the
model cheaply, but two of their formulas lose digits when the weights span many orders of
magnitude: the normal equations ``Aβ = XᵀWy`` (``A = XᵀWX``) are solved only to ``u κ(A)``
(u the unit roundoff), and ``tr P = Σw - tr(A⁻¹XᵀW²X)``, ``tr P² = Σw² - ...`` subtract
nearly equal numbers when a study with a large weight has a hat value ``h_i`` near 1
(``w_i(1 - h_i)`` is then a small difference of large numbers). The exact quantities are
perfectly conditioned; only the formulas are not. This module computes them from another
parametrisation in which nothing cancels (the engine uses it where the cheap formulas'
error bound is too large: :data:`LIMIT`).

Let ``B = U^½X`` (rows ``b_i = √u_i x_i``; ``U = diag(u)`` the weights, 0 for an absent
study) and ``M = I - B(BᵀB)⁻¹Bᵀ``, so that the residual projector is ``P_u = U^½MU^½``.
Choose ``p`` *pivot* studies ``S`` greedily, each the study whose row has the largest
part orthogonal to the rows already chosen (Gram-Schmidt with row pivoting; Björck
1996, §2.7.3 and §4.4.2 on weights of widely different sizes). The other (*light*)
rows are ``B_L = C B_S`` with ``C = B_L B_S⁻¹``, whose entries the pivoting keeps of
order one. In the coordinates ``φ = B_S β`` (the weighted means of the pivot studies)
the model reads ``t_S = φ + e_S``, ``t_L = Cφ + e_L`` with ``e ~ N(0, I)``, the
information of ``φ`` is ``Ã = I + CᵀC`` (eigenvalues in ``[1, 1 + ‖C‖²]``), and the
blocks of ``M`` are (Woodbury's identity)

* ``M_SS = CᵀC Ã⁻¹ = ZᵀZ`` with ``C = Q_C R_C`` (QR), ``L_E L_Eᵀ = I + R_C R_Cᵀ``
  (Cholesky) and ``Z = L_E⁻¹R_C``: its diagonal ``1 - h_s``, tiny for a dominant study,
  is a sum of squares of a column of ``Z``, never ``1 - h_s``;
* ``Ã⁻¹ = I - M_SS`` and ``M_SL = -Ã⁻¹Cᵀ``;
* ``M_LL = I - CÃ⁻¹Cᵀ``, whose diagonal ``1 - h_j`` has ``h_j = c_jᵀÃ⁻¹c_j ≤
  ‖c_j‖²/(1 + ‖c_j‖²)`` bounded away from 1.

With ``g = u d`` for a diagonal ``D = diag(d)`` (``d = 1`` for ``tr P`` and ``tr P²``):

* ``tr(P_u D) = Σ_S g_s M_ss + Σ_L g_j (1 - h_j)``;
* ``tr((P_u D)²) = Σ_ij g_i g_j M_ij² = Σ_SS g_s g_t M_st² + 2 Σ_SL g_s g_j M_sj²
  + Σ_L g_j² (1 - 2h_j) + tr((Ã⁻¹CᵀG_LC)²)``;
* the residuals of a vector ``t`` (``t = U^½y``): ``z = t_L - C t_S`` (the contrasts
  free of φ), ``r_S = -Ã⁻¹Cᵀz``, ``r_L = z + C r_S``; the fit ``φ̂ = t_S - r_S``,
  ``β̂ = B_S⁻¹φ̂``; ``(BᵀB)⁻¹ = B_S⁻¹Ã⁻¹B_S⁻ᵀ``.

Every term is a product or a sum of terms of one sign, except the light studies' ``1 -
2h_j``, whose cancellation the pivoting bounds. The arrays hold ``m`` analyses on the
leading axis: one analysis is ``m = 1``, so a single fit and the rows of a batch run this
same code.

The coefficients in the design's own coordinates come from the pivot studies' fitted
values, ``β̂ = X_S⁻¹f_S`` and ``Cov β̂ = X_S⁻¹ U_S^{-½}Ã⁻¹U_S^{-½} X_S⁻ᵀ``, with ``X_S⁻¹``
refined against the design's rows as given, its residual ``I - X_S Y`` summed in twice
the working precision (Dekker 1971; Ogita et al. 2005): a dominant study pins one
combination of the coefficients to its own precision, so an entry of its row that is 0
(a factor level it does not belong to) must stay exactly 0, which a change of basis of
the design would only keep to rounding.

References
----------
.. [1] Björck, Å. (1996). Numerical Methods for Least Squares Problems. SIAM.
   https://doi.org/10.1137/1.9781611971484
.. [2] Harville, D. A. (1977). Maximum likelihood approaches to variance component
   estimation and to related problems. JASA 72(358), 320-338 (the projector of the
   restricted likelihood, ``P = K(KᵀVK)⁻¹Kᵀ`` for contrasts ``K``).
   https://doi.org/10.1080/01621459.1977.10480998
.. [3] Dekker, T. J. (1971). A floating-point technique for extending the available
   precision. Numer Math 18, 224-242. https://doi.org/10.1007/BF01397083
.. [4] Ogita, T., Rump, S. M., & Oishi, S. (2005). Accurate sum and dot product. SIAM J
   Sci Comput 26(6), 1955-1988. https://doi.org/10.1137/030601818
"""

from __future__ import annotations

import contextlib

import numpy as np

from .._typing import FloatArray

#: the cheap formulas of :mod:`~ketameta._engine.moments` are used while their error
#: bound ``u tr(A) tr(A⁻¹) c`` (``c`` the cancellation factor of a trace, 1 for the
#: coefficients) stays below ``LIMIT u`` (about 2e-13); beyond, this module's forms.
#: (Measured over random designs: the cheap traces' relative error never exceeded
#: ``2 u tr(A) tr(A⁻¹) c``, the coefficients' ``2 u tr(A) tr(A⁻¹)``.)
LIMIT = 1024.0


def _forward(low: FloatArray, rhs: FloatArray) -> FloatArray:
    """``L⁻¹ R`` for lower-triangular ``L`` (m, n, n) and ``R`` (m, n, q), by forward
    substitution (a zero pivot gives inf/NaN; the caller holds ``np.errstate``)."""
    n = low.shape[-1]
    out = np.empty(rhs.shape)
    for i in range(n):
        row = rhs[:, i, :]
        if i:
            row = row - np.einsum("ml,mlq->mq", low[:, i, :i], out[:, :i, :])
        out[:, i, :] = row / low[:, i, i, None]
    return out


def _cholesky(a: FloatArray) -> FloatArray:
    """The lower Cholesky factor of symmetric positive definite ``a`` (m, n, n) (a pivot
    that is not positive gives NaN, never an exception)."""
    n = a.shape[-1]
    low = np.zeros(a.shape)
    for j in range(n):
        pivot = a[:, j, j] - np.einsum("ml,ml->m", low[:, j, :j], low[:, j, :j])
        root = np.sqrt(np.where(pivot > 0.0, pivot, np.nan))
        low[:, j, j] = root
        if j + 1 < n:
            rest = a[:, j + 1 :, j] - np.einsum("mil,ml->mi", low[:, j + 1 :, :j], low[:, j, :j])
            low[:, j + 1 :, j] = rest / root[:, None]
    return low


#: Dekker's splitting constant 2^27 + 1
_SPLIT = 134217729.0


def _two_product(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``a b`` and its rounding error, exactly (Dekker 1971; no fused multiply-add)."""
    prod = a * b
    ca, cb = _SPLIT * a, _SPLIT * b
    a_hi, b_hi = ca - (ca - a), cb - (cb - b)
    a_lo, b_lo = a - a_hi, b - b_hi
    return prod, ((a_hi * b_hi - prod) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _residual(x: FloatArray, y: FloatArray, f: FloatArray) -> FloatArray:
    """``f - x y`` for ``x`` (m, p, p), ``y`` (m, p, q), ``f`` (m, p, q), as if computed in
    twice the working precision and rounded (Ogita et al. 2005, Dot2)."""
    total, err = f, np.zeros(f.shape)
    for c in range(x.shape[-1]):
        prod, e_prod = _two_product(-x[:, :, c, None], y[:, None, c, :])
        s = total + prod
        z = s - total
        err = err + (e_prod + ((total - (s - z)) + (prod - z)))
        total = s
    return total + err


def _inverse(x: FloatArray) -> FloatArray:
    """``x⁻¹`` (m, p, p) by LU (NaN for a singular matrix, never an exception) and two
    steps of refinement with residuals in twice the working precision: exact to rounding
    whenever ``u cond(x)`` is well below 1, exact zeros of the inverse included."""
    inv: FloatArray
    try:
        inv = np.asarray(np.linalg.inv(x), dtype=np.float64)
    except np.linalg.LinAlgError:
        inv = np.full(x.shape, np.nan)
        for i, one in enumerate(x):
            with contextlib.suppress(np.linalg.LinAlgError):
                inv[i] = np.linalg.inv(one)
    eye = np.broadcast_to(np.eye(x.shape[-1]), x.shape)
    for _ in range(2):
        inv = inv + inv @ _residual(x, inv, eye)
    return inv


class Pivoted:
    """The pivoted parametrisation of ``m`` designs (rows of `basis`, ``(m, k, p)``)
    weighted by ``u = root²`` (`root` ``(m, k)``; 0 for an absent study); see the module
    docstring."""

    __slots__ = (
        "ainv",
        "c",
        "hat_light",
        "light",
        "low_inv",
        "m_ss",
        "o",
        "pivots",
        "root_s",
        "x",
    )

    def __init__(self, basis: FloatArray, root: FloatArray) -> None:
        b = basis * root[..., None]
        m, k, p = b.shape
        at = np.arange(m)
        rows = at[:, None]
        # -- the pivots: Gram-Schmidt on the rows, each step taking the row with the
        # largest part orthogonal to the rows taken, which builds an orthonormal basis `o`
        # of the coefficient space (reorthogonalised: twice is enough)
        rest = b
        o = np.zeros((m, p, p))
        taken = np.zeros((m, k), dtype=bool)
        pivots = np.empty((m, p), dtype=np.intp)
        for t in range(p):
            norms = np.einsum("mkp,mkp->mk", rest, rest)
            s = np.argmax(np.where(taken, -1.0, norms), axis=1)
            pivots[:, t] = s
            taken[at, s] = True
            vec = rest[at, s]
            for _ in range(2):
                if t:
                    done = o[:, :, :t]
                    vec = vec - np.einsum("mpt,mt->mp", done, np.einsum("mpt,mp->mt", done, vec))
                vec = vec / np.sqrt(np.einsum("mp,mp->m", vec, vec))[:, None]
            o[:, :, t] = vec
            rest = rest - np.einsum("mk,mp->mkp", np.einsum("mkp,mp->mk", rest, vec), vec)
        light = np.nonzero(~taken)[1].reshape(m, k - p)
        # the rows in the basis `o`: B_S = L_S oᵀ (lower triangular by construction) and
        # B_L = G_L oᵀ, so C = B_L B_S⁻¹ = G_L L_S⁻¹
        coords = np.einsum("mkp,mpq->mkq", b, o)
        low = np.tril(coords[rows, pivots])
        low_inv = _forward(low, np.broadcast_to(np.eye(p), (m, p, p)))
        c = np.einsum("mjp,mpq->mjq", coords[rows, light], low_inv)
        # M_SS = CᵀC Ã⁻¹ = ZᵀZ (see the module docstring)
        r_c = np.asarray(np.linalg.qr(c, mode="r"), dtype=np.float64)
        e_low = _cholesky(np.eye(r_c.shape[1]) + np.einsum("map,mbp->mab", r_c, r_c))
        z = _forward(e_low, r_c)
        m_ss = np.einsum("mas,mat->mst", z, z)
        ainv = np.eye(p) - m_ss
        self.pivots, self.light, self.o, self.low_inv = pivots, light, o, low_inv
        self.c, self.m_ss, self.ainv = c, m_ss, ainv
        self.root_s = root[rows, pivots]
        #: the rows of the design (unweighted) it was built from, for the caller
        self.x = basis
        #: hat values of the light studies, ``c_jᵀÃ⁻¹c_j``
        self.hat_light = np.einsum("mjp,mpq,mjq->mj", c, ainv, c)

    def _split(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The pivot and light parts of per-study values `x` (m, k)."""
        rows = np.arange(x.shape[0])[:, None]
        return x[rows, self.pivots], x[rows, self.light]

    def traces(self, g: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``tr(P_u D)`` and ``tr((P_u D)²)`` for ``g = u d`` (m, k; 0 for absent studies)."""
        g_s, g_l = self._split(g)
        m_ss, h, c = self.m_ss, self.hat_light, self.c
        trace = np.einsum("ms,mss->m", g_s, m_ss) + np.einsum("mj,mj->m", g_l, 1.0 - h)
        m_sl = np.einsum("mst,mjt->msj", self.ainv, c)  # (-M_SL)
        ss = np.einsum("ms,mt,mst->m", g_s, g_s, m_ss * m_ss)
        sl = np.einsum("ms,mj,msj->m", g_s, g_l, m_sl * m_sl)
        an = self.ainv @ np.einsum("mj,mjt,mju->mtu", g_l, c, c)  # Ã⁻¹CᵀG_LC
        ll = np.einsum("mj,mj->m", g_l * g_l, 1.0 - 2.0 * h) + np.einsum("mab,mba->m", an, an)
        return trace, ss + 2.0 * sl + ll

    def residuals(self, t: FloatArray) -> FloatArray:
        """The residuals ``M t`` of vectors `t` (m, k) fitted by ``B`` (by study)."""
        t_s, t_l = self._split(t)
        c = self.c
        z = t_l - np.einsum("mjp,mp->mj", c, t_s)
        r_s = -np.einsum("mst,mjt,mj->ms", self.ainv, c, z)
        r_l = z + np.einsum("mjp,mp->mj", c, r_s)
        out = np.empty(t.shape)
        rows = np.arange(t.shape[0])[:, None]
        out[rows, self.pivots] = r_s
        out[rows, self.light] = r_l
        return out

    def in_design(self, x_s: FloatArray, fitted_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The coefficients ``X_S⁻¹f_S`` (m, p) and their covariance ``X_S⁻¹ Cov(f_S) X_S⁻ᵀ``
        (m, p, p) in the coordinates of the design rows `x_s` (m, p, p) of the pivot studies,
        from their fitted values `fitted_s` (m, p); ``Cov(f_S) = U_S^{-½}Ã⁻¹U_S^{-½}``."""
        inv = _inverse(x_s)
        f = fitted_s[..., None]
        coef = inv @ f
        coef = coef + inv @ _residual(x_s, coef, f)
        scale = 1.0 / self.root_s
        cov_f = self.ainv * scale[:, :, None] * scale[:, None, :]
        return coef[..., 0], inv @ cov_f @ np.swapaxes(inv, 1, 2)
