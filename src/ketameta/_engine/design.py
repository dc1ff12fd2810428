"""The data of one or many meta-analyses as the engine fits them: the only owner of padding.

A :class:`Design` holds ``m`` meta-analyses of up to ``k`` studies (``m = 1`` and 1-D
arrays for a single analysis) and their design matrix: none for the intercept-only model,
``(k, p)`` shared by every analysis, or ``(m, k, p)`` per analysis. An absent study of a
ragged batch is stored as ``y = 0, v = inf`` (weight ``1/(v + τ²) = 0``), so no mask is
needed in the weighted sums.

Two reparametrisations make every later step well conditioned and exactly equivariant,
without changing any fitted quantity:

* **Basis.** ``X = Q R`` with ``R`` upper triangular and the columns of ``Q`` orthogonal
  over the studies present, each with ``Σ q² = k`` (Gram-Schmidt, twice; the intercept
  column stays exactly 1). Fitted values, residuals, τ² and every test are invariant to
  the basis; only the coefficients and their covariance are mapped back through ``R``.
  ``QᵀWQ`` then has a condition number bounded by the ratio of the largest to the
  smallest weight, however collinear or badly scaled the moderators are (a publication
  year near 2000 with an intercept squares ``X``'s condition number into ``XᵀWX``'s).
* **Centring.** The effects are stored minus their equal-effects fit ``Qβ₀``
  (``β₀ = (QᵀW₀Q)⁻¹QᵀW₀y``, ``W₀ = V⁻¹``): for the intercept-only model, minus the
  weighted mean. The residual sums of squares below are expansions in the centred
  effects, which loses no accuracy (Viechtbauer 2005's notation; the expansions are in
  :mod:`ketameta._engine.moments`).

No validation happens here: callers pass finite ``y``, positive ``v`` (or ``inf``) and
a design whose columns are linearly independent over the studies present (a batch row
where they are not is reported by :attr:`Design.singular`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._typing import BoolArray, FloatArray, IntArray
from . import _num as nm
from . import workspace
from ._num import Num
from .kernels import kernels, solve
from .layout import layout, pairs
from .linalg import Factor, Mat, Vec

#: a column whose part orthogonal to the earlier columns has a norm below this fraction
#: of its own norm is taken as a linear combination of them (R's ``lm``/``qr`` tolerance)
RANK_TOLERANCE = 1e-7

_POWERS = -np.arange(1.0, 4.0)[:, None]  # w, w², w³ of one analysis
#: one analysis's weights at τ² = 0 in one power call: 1, 1/v, 1/v², 1/v³ and v (exact:
#: integer powers 0 and 1 are computed exactly)
_POWERS0 = np.array([[0.0], [-1.0], [-2.0], [-3.0], [1.0]])


# -- sums over the studies of a batch, in a fixed order ----------------------------------
#
# A batch's arrays hold the analyses on axis 0 and the studies on axis 1. NumPy adds the
# studies of a row one after another when the analyses' axis is the faster-varying one of
# an array with at least two rows (its loops then run over the analyses, and the
# reduction over the studies is the outer loop; einsum without BLAS alike); a single
# row, or a row-major array, it sums pairwise or in unrolled blocks instead. The sums
# below are therefore always taken on "rows-inner" arrays with at least two rows, so that
# each analysis's sums, and every statistic, are the same bits whatever the number of
# analyses fitted together (the chunk size), the threads, or the rows still iterating in
# a root finder (tests/properties/test_metareg_properties.py).


def rows_inner(a: FloatArray) -> bool:
    """Whether the batch array `a` (analyses on axis 0) has at least two rows and its
    analyses' axis varies fastest in memory."""
    shape, strides = a.shape, a.strides
    if shape[0] < 2:
        return False
    inner = strides[0]
    if a.ndim == 2:
        return 0 < inner < strides[1] or shape[1] < 2
    return all(0 < inner < s or n < 2 for s, n in zip(strides[1:], shape[1:], strict=True))


def fixed_order(a: FloatArray) -> FloatArray:
    """`a` laid out for sums in a fixed order (see :func:`rows_inner`): column-major, a
    single row doubled (the callers keep the first of the two results)."""
    if rows_inner(a):
        return a
    if a.shape[0] == 1:
        a = np.concatenate([a, a])
    return np.asfortranarray(a)


def rowsum(a: FloatArray) -> FloatArray:
    """``Σ_k a`` for every row (studies on axis 1), in a fixed order."""
    n = a.shape[0]
    out: FloatArray = np.add.reduce(fixed_order(a), axis=1)
    return out if n >= 2 else out[:n]


def rowdot(a: FloatArray, b: FloatArray) -> FloatArray:
    """``Σ_k a b`` for every row, in a fixed order, without a temporary product array."""
    n = a.shape[0]
    out = np.einsum("ij,ij->i", fixed_order(a), fixed_order(b))
    return np.asarray(out if n >= 2 else out[:n], dtype=np.float64)


def rowprods(u: FloatArray, z: FloatArray) -> FloatArray:
    """``Σ_k u z_n`` for every row and column ``n`` of `z`, ``(k, n)`` (shared) or
    ``(m, k, n)`` (per row), in a fixed order (einsum's own loops, not BLAS, whose
    kernels sum leftover rows in another order)."""
    m = u.shape[0]
    if z.ndim == 2:
        out = np.einsum("mk,kn->mn", fixed_order(u), z)
    else:
        out = np.einsum("mk,mkn->mn", fixed_order(u), fixed_order(z))
    return np.asarray(out if m >= 2 else out[:m], dtype=np.float64)


class Design:
    """One meta-analysis (1-D `y`) or a batch (2-D `y`) and its design, prepared once.

    Parameters
    ----------
    y, v
        Effects and sampling variances, ``(k,)`` or ``(m, k)``; ``v = inf`` marks an
        absent study of a batch (with ``y = 0``).
    x
        The design: ``None`` (intercept only), ``(k, p)`` or ``(m, k, p)``. A first column
        of ones is recognised as the intercept and kept as such in the basis.
    padded
        ``False`` promises that every study is present (no ``v = inf``): no masks, and
        ``k`` is a Python float for a batch too.
    """

    __slots__ = (
        "_v_scale",
        "basis",
        "beta0",
        "intercept",
        "k",
        "kernels",
        "last",
        "layout",
        "p",
        "present",
        "r",
        "shared",
        "single",
        "singular",
        "sums0",
        "v",
        "v_harmonic",
        "v_row",
        "w0",
        "wp0",
        "x",
        "x_at",
        "y",
        "y2",
        "z",
    )

    def __init__(
        self,
        y: FloatArray,
        v: FloatArray,
        x: FloatArray | None = None,
        *,
        padded: bool = True,
        intercept: bool | None = None,
    ) -> None:
        self.single = single = y.ndim == 1
        self.last: Any = None  # one analysis: (τ², w, sums) of the solver's last score
        self._v_scale: Num | None = None
        self.v_row = v[None, :] if single else None
        self.present: BoolArray | None = None
        if single or not padded:
            self.k: Num = float(y.shape[-1])
        else:
            self.present = np.isfinite(v)
            self.k = self.present.sum(axis=-1).astype(np.float64)
        self.p = 1 if x is None else int(x.shape[-1])
        self.intercept = x is None if intercept is None else intercept
        self.layout = layout(self.p, self.intercept)
        #: the quadratic forms' kernels (Python floats for one analysis, arrays for a batch)
        self.kernels = kernels(self.p, self.intercept, not single)
        self.shared = x is None or x.ndim == 2
        self.singular: nm.Flag = False  # batch rows whose design is singular
        self.z: FloatArray | None = None
        self.y2: FloatArray | None = None
        self.sums0: list[list[Num]] = []
        self.basis: FloatArray | None = None
        #: the design as given (the pivoted coefficients solve in its coordinates); a
        #: subset of a per-analysis design keeps it whole, with its analyses in `x_at`
        self.x = x
        self.x_at: Any = None
        self.r: Mat | None = None
        if x is not None:
            self.basis, self.r = self._orthogonalise(x)
        # equal-effects weights (one analysis: w, w², w³ of 1/v; the moments at τ² = 0
        # reuse them)
        self.wp0 = self.v_row**_POWERS0 if single else None
        w0 = self.wp0[1] if self.wp0 is not None else np.divide(1.0, v, out=workspace.like(v))
        self.w0 = w0
        self.v = v
        # the equal-effects fit, and the effects centred at it
        self.y = y
        self.beta0: Vec = [0.0] * self.p
        sums0 = self._ee_sums(w0) if single else self.sums([w0], yy=False)[0]
        _, beta0 = solve(self.kernels if single else kernels(self.p, self.intercept), sums0)
        if self.present is not None:  # (rows without studies)
            beta0 = [np.where(np.isfinite(b), b, 0.0) for b in beta0]
        self.beta0 = beta0
        # (the intercept-only model's fitted value is the number β₀ itself)
        fitted = beta0[0] if x is None and single else self.fitted(beta0)
        # (a batch: in a recycled buffer, as fresh memory would be faulted in by each chunk)
        y = y - fitted if single else np.subtract(y, fitted, out=workspace.like(y))
        if self.present is not None:
            np.copyto(y, 0.0, where=~self.present)
        self.v_harmonic: Num = nm.div(self.k, sums0[self.layout.ones])
        if single:
            self.y = y
            # columns: products of the basis columns, basis × y, y² (and 1 without an
            # intercept): one matrix product gives every weighted sum
            self.z = self._product_columns(y)
            # the sums of the weights 1, w, w², w³ and v at τ² = 0 (of the centred
            # effects): every sum the estimators need at τ² = 0, from one product
            assert self.wp0 is not None
            self.sums0 = np.dot(self.wp0, self.z).tolist()  # (self.sums of one analysis)
        else:
            # analyses varying fastest: sums over the studies in a fixed order (and over
            # contiguous memory)
            self.y = _column_major(y)
            self.v = _column_major(v)
            self.y2 = np.multiply(self.y, self.y, out=workspace.like(self.y))
            if self.basis is not None:
                self.z = self._basis_products()
                if self.present is not None and self.shared and self.p > 1:
                    self.singular = self._singular_rows()

    # -- the basis -------------------------------------------------------------------------

    def _orthogonalise(self, x: FloatArray) -> tuple[FloatArray, Mat]:
        """Gram-Schmidt (twice): ``X = Q R``, the columns of ``Q`` orthogonal with
        ``Σ q_j² = n`` (``n`` the studies present; all rows of a shared design).

        A per-analysis design ``(m, k, p)`` is orthogonalised over each analysis's studies
        present; a shared design ``(k, p)`` once over all its rows (a row of a ragged batch
        then checks its own rank in :meth:`_singular_rows`).
        """
        p = x.shape[-1]
        mask = self.present if x.ndim == 3 else None
        n: Num = float(x.shape[-2]) if mask is None else self.k
        cols: list[FloatArray] = []
        r: Mat = [[0.0] * p for _ in range(p)]
        singular: nm.Flag = False

        def total(a: FloatArray) -> Num:
            return float(np.add.reduce(a)) if a.ndim == 1 else rowsum(a)

        for j in range(p):
            col = x[..., j] if mask is None else np.where(mask, x[..., j], 0.0)
            if j == 0 and self.intercept:
                cols.append(np.ones(col.shape) if mask is None else mask.astype(np.float64))
                r[0][0] = 1.0
                continue
            norm0 = nm.sqrt(total(col * col) / n)
            for _ in range(2):  # twice is enough (Giraud et al. 2005)
                for i in range(j):
                    coef = total(cols[i] * col) / n
                    col = col - _col(coef) * cols[i]
                    r[i][j] = r[i][j] + coef
            scale = nm.sqrt(total(col * col) / n)
            bad = nm.negate(scale > RANK_TOLERANCE * norm0)
            if isinstance(bad, bool):
                if bad:
                    msg = "the columns of the design are linearly dependent"
                    raise np.linalg.LinAlgError(msg)
            else:
                singular = bad if isinstance(singular, bool) else singular | bad
                scale = np.where(bad, 1.0, scale)
            cols.append(col / _col(scale))
            r[j][j] = scale
        self.singular = singular
        return _stack_columns(cols), r

    def _singular_rows(self) -> nm.Flag:
        """Rows of a ragged batch whose studies present do not identify a shared design:
        a pivot of the unweighted ``QᵀQ`` over them below the rank tolerance."""
        assert self.present is not None
        gram = self.layout.matrix(
            self.sums([self.present.astype(np.float64)], xy=False, yy=False)[0]
        )
        factor = Factor(gram)
        bad = np.zeros(self.present.shape[0], dtype=bool)
        for j in range(self.p):
            pivot = factor.low[j][j] ** 2
            bad |= ~np.asarray(pivot > (RANK_TOLERANCE**2) * gram[j][j])
        return bad

    def fitted(self, beta: Vec) -> FloatArray:
        """``Q β`` for every study (of every analysis), in the basis."""
        if self.basis is None:
            return _col(beta[0])  # type: ignore[return-value]  # (broadcasts against y)
        q = self.basis
        out = q[..., 0] * _col(beta[0])
        for j in range(1, self.p):
            out = out + q[..., j] * _col(beta[j])
        return np.asarray(out, dtype=np.float64)

    def _ee_sums(self, w0: FloatArray) -> list[Num]:
        """One analysis: the row of sums (``XᵀW₀X``, ``XᵀW₀y``, ``Σw₀``) of the uncentred
        effects (the equal-effects fit), computed directly (``yᵀW₀y`` is NaN)."""
        y = self.y
        if self.basis is None:
            s0 = float(np.add.reduce(w0))
            return [s0, float(np.dot(w0, y)), math.nan]
        q = self.basis
        wq = q * w0[:, None]
        xx = (q.T @ wq).tolist()
        row: list[Num] = [xx[a][b] for a, b in pairs(self.p)]
        row += (y @ wq).tolist()
        row.append(math.nan)
        if not self.intercept:
            row.append(float(np.add.reduce(w0)))
        return row

    def _product_columns(self, y: FloatArray) -> FloatArray:
        """One analysis: the columns ``q_a q_b`` (a ≤ b), ``q_a y``, ``y²`` (and 1)."""
        if self.basis is None:
            z = np.empty((y.shape[0], 3))  # 1, y, y² (the intercept-only model)
            z[:, 0] = 1.0
            z[:, 1] = y
            np.multiply(y, y, out=z[:, 2])
            return z
        q = self.basis
        cols = [q[:, a] * q[:, b] for a, b in pairs(self.p)]
        cols += [q[:, a] * y for a in range(self.p)]
        cols.append(y * y)
        if not self.intercept:
            cols.append(np.ones_like(y))
        return np.stack(cols, axis=-1)

    def _basis_products(self) -> FloatArray:
        """A batch: the products ``q_a q_b`` (a ≤ b), ``(k, n)`` shared or ``(m, k, n)``."""
        q = self.basis
        assert q is not None
        cols = [q[..., a] * q[..., b] for a, b in pairs(self.p)]
        if not self.intercept:
            cols.append(np.ones(q.shape[:-1]))
        return _stack_columns(cols)

    # -- weighted sums ---------------------------------------------------------------------

    def sums(
        self, weights: FloatArray | list[FloatArray], *, xy: bool = True, yy: bool = True
    ) -> list[list[Num]]:
        """The rows of sums (see :class:`Layout`) of the current ``y``, in the basis, for
        each weight array ``u`` of `weights` (each shaped like ``y``). One analysis: Python
        floats from one matrix product; a batch: ``(m,)`` arrays (`xy`/`yy` ``False`` skip
        those sums, left NaN)."""
        if self.single:
            assert self.z is not None
            return np.dot(weights, self.z).tolist()  # type: ignore[no-any-return]
        return [self._batch_sums(u, xy=xy, yy=yy) for u in weights]

    def _batch_sums(self, u: FloatArray, *, xy: bool, yy: bool) -> list[Num]:
        p, y = self.p, self.y
        nan: Num = math.nan  # (sums not asked for)
        n = u.shape[0]
        if self.basis is None and (n == 1 or rows_inner(y)):
            # the intercept-only model: rowsum and rowdot without their layout checks,
            # each array laid out once (a single row doubled once, not in every sum)
            u = fixed_order(u)
            cut = slice(None) if n >= 2 else slice(1)  # (a doubled row: its first result)
            sums: list[Num] = [np.add.reduce(u, axis=1)[cut]]
            sums.append(np.einsum("ij,ij->i", u, fixed_order(y))[cut] if xy else nan)
            if yy:
                y2 = self.y2 if self.y2 is not None else y * y
                sums.append(np.einsum("ij,ij->i", u, fixed_order(y2))[cut])
            else:
                sums.append(nan)
            return sums
        if n >= 2:
            u = fixed_order(u)  # (once for every sum below)
        yyv = rowdot(u, self.y2 if self.y2 is not None else y * y) if yy else nan
        if self.basis is None:  # the intercept-only model
            return [rowsum(u), rowdot(u, y) if xy else nan, yyv]
        z = self.z if self.z is not None else self._basis_products()
        # Σ u q_a q_b (and Σ u) for every row
        prods = rowprods(u, z)
        n = len(pairs(p))
        row: list[Num] = [prods[:, i] for i in range(n)]
        if not xy:
            row += [nan] * p
        elif self.basis.ndim == 2:
            s_xy = rowprods(u * y, self.basis)
            row += [s_xy[:, a] for a in range(p)]
        else:
            uy = u * y
            row += [rowdot(uy, self.basis[..., a]) for a in range(p)]
        row.append(yyv)
        if not self.intercept:
            row.append(prods[:, n])
        return row

    # -- helpers ---------------------------------------------------------------------------

    @property
    def v_scale(self) -> Num:
        """The mean sampling variance (the root finders' scale; computed when first used)."""
        if self._v_scale is None:
            if self.single:
                self._v_scale = float(np.add.reduce(self.v)) / float(self.k)
            else:
                self._v_scale = rowsum(self.mask(self.v)) / self.k
        return self._v_scale

    def full(self, value: float) -> Num:
        """`value` for every analysis: a Python float for one, an (m,) array for a batch."""
        return float(value) if self.single else np.full(self.y.shape[0], value)

    def flag(self, value: bool) -> nm.Flag:
        """`value` for every analysis."""
        return value if self.single else np.full(self.y.shape[0], value)

    def mask(self, x: FloatArray) -> FloatArray:
        """`x` with absent studies set to 0."""
        return x if self.present is None else np.where(self.present, x, 0.0)

    def weights(self, tau2: Num) -> FloatArray:
        """``1/(v + τ²)`` of every study (0 for absent ones)."""
        return 1.0 / (self.v + _col(tau2))

    #: the attributes that hold one entry per analysis of a batch (the others are shared:
    #: the layout, and the basis and its products when the design is shared)
    _PER_ANALYSIS = (
        "_v_scale",
        "beta0",
        "k",
        "present",
        "r",
        "singular",
        "v",
        "v_harmonic",
        "w0",
        "y",
        "y2",
    )

    def subset(self, mask: BoolArray) -> Design:
        """The analyses `mask` (a boolean mask) of a batch, for the root finders."""
        rows = np.flatnonzero(mask)  # (indices: cheaper to gather by)
        out = Design.__new__(Design)
        per_analysis = set(self._PER_ANALYSIS)
        if not self.shared:
            per_analysis |= {"basis", "z"}
        for name in Design.__slots__:
            value = getattr(self, name)
            setattr(out, name, _take(value, rows) if name in per_analysis else value)
        out.last = None
        if not self.shared:  # (no copy of the design as given: it is rarely needed)
            at = np.flatnonzero(rows)
            out.x_at = at if self.x_at is None else self.x_at[at]
        return out

    def given_x(self, rows: Any) -> FloatArray:
        """The design as given of the analyses `rows` (indices), ``(len(rows), k, p)``,
        with 0 for absent studies (``(k, p)`` for one analysis or a shared design)."""
        x = self.x
        assert x is not None
        if x.ndim == 2:
            return x
        x = x[rows if self.x_at is None else self.x_at[rows]]
        if self.present is not None:  # (absent studies may hold NaN)
            x = np.where(self.present[rows][..., None], x, 0.0)
        return np.asarray(x, dtype=np.float64)


def _column_major(a: FloatArray) -> FloatArray:
    """A batch array with its analyses varying fastest (a copy only if they do not)."""
    return a if a.ndim < 2 or rows_inner(a) else np.asfortranarray(a)


def _stack_columns(cols: list[FloatArray]) -> FloatArray:
    """Columns ``(k,)`` or ``(m, k)`` stacked on a last axis; a batch's column-major (see
    :func:`rows_inner`)."""
    if cols[0].ndim < 2:
        return np.stack(cols, axis=-1)
    out = np.empty((*cols[0].shape, len(cols)), order="F")
    for j, col in enumerate(cols):
        out[..., j] = col
    return out


def _take(value: Any, rows: IntArray) -> Any:
    """The rows `rows` (indices) of a per-analysis value: an array, or a (nested) list of
    them; numbers that are the same for every analysis (Python floats) are kept."""
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        if value.ndim == 1:
            return value[rows]
        # (gathered along the last axis of the transpose: the analyses stay fastest)
        return np.moveaxis(np.take(np.moveaxis(value, 0, -1), rows, axis=-1), -1, 0)
    if isinstance(value, list):
        return [_take(v, rows) for v in value]
    return value


def _col(x: Num) -> Num:
    """Per-analysis numbers as a column against the study axis (scalars stay scalars)."""
    return x if nm.is_scalar(x) else np.asarray(x)[..., None]
