"""Multilevel and multivariate models: ``y ~ N(Xβ, M)``, ``M = V + Σ_c f_c(θ) B_c``.

The model of metafor's ``rma.mv`` (Viechtbauer 2010 [1]_; Konstantopoulos 2011 [2]_;
Berkey et al. 1998 [3]_; Jackson, Riley & White 2011 [4]_): the sampling errors have the
known covariance ``V``; every random effect adds a covariance ``Z G(θ) Zᵀ``, which this
module writes as a combination of fixed 0/1 *basis* matrices ``B_c`` with coefficients
``f_c(θ)`` in the variance parameters ``θ``:

* a random intercept ``~ 1 | g`` (variance σ²): one basis, ``B[i, j] = [g_i = g_j]``,
  ``f = σ²``;
* ``~ inner | outer`` (random effects of the levels of ``inner`` within each level of
  ``outer``; pairs of effects in different outer levels are independent), with the
  structures of metafor: ``ID`` (``τ²`` on the pairs with the same inner level), ``CS``
  (compound symmetry: ``τ²`` on the pairs with the same inner level, ``ρτ²`` on those with
  different levels), ``HCS`` (``τ_j²`` per inner level, ``ρτ_jτ_l`` between levels j and
  l), ``DIAG`` (``τ_j²``, no correlation), ``UN`` (``τ_j²`` and one ``ρ_jl`` per pair of
  levels) and ``AR`` (AR(1) over the ordered levels, Ishak et al. 2007 [5]_: ``τ²ρ^d`` on
  the pairs whose levels are ``d`` positions apart).

The model is *linear in the basis coefficients* ``f``; everything the optimiser needs is
computed for ``f`` once (:func:`evaluate`) and carried to ``θ`` by the chain rule with each
structure's ``∂f/∂θ`` and ``∂²f/∂θ²`` (:class:`Structure`).

Parametrisation of ``θ`` (the optimiser's coordinates, with box constraints):
variances σ², τ² (``ID``, ``CS``, ``AR``, ``DIAG``) in ``[0, ∞)``; the heteroscedastic
structures (``HCS``, ``UN``) use the standard deviations ``τ_j ∈ [0, ∞)``, so that the
covariances ``ρτ_jτ_l`` are smooth where a variance is 0; correlations in ``[-1, 1]``.
A point is admissible when every block of ``M`` is positive definite (as metafor, the
correlations are not otherwise restricted). Estimates on a bound are exact (a variance of
exactly 0), not the ``1e-10`` of an optimiser on log-variances.

Random intercepts with a diagonal ``V`` (:class:`Groups`): ``M = D + Σ_c f_c Ψ_cΨ_cᵀ``
with 0/1 group columns ``Ψ``, so ``M⁻¹``, ``log|M|`` and every sum of the derivatives
have closed forms by the Woodbury identity (Henderson & Searle 1981 [7]_) in ``q x q``
algebra (``q`` groups; diagonal for a three-level model): :func:`_evaluate_groups`, used
while it keeps ten digits, the blocks below otherwise.

Block structure: ``M`` is block-diagonal over the connected components of the studies that
share a level of some grouping variable (or a non-zero entry of ``V``). The blocks are padded
to a few common sizes and stacked (``(n_blocks, n, n)`` arrays), so that the Cholesky
factors, inverses and traces of every block are single batched NumPy calls; a padded row has
``M`` = 1 on its diagonal and zeros elsewhere and contributes nothing.

Likelihoods (Harville 1977 [6]_; with ``W = M⁻¹``, ``b = (XᵀWX)⁻¹XᵀWy``,
``r = y - Xb``, ``P = W - WX(XᵀWX)⁻¹XᵀW``)::

    ll_ML   = -½ [k log 2π + log|M| + rᵀWr]
    ll_REML = -½ [(k - p) log 2π + log|M| + log|XᵀWX| - log|XᵀX| + rᵀWr]

(metafor's definition, with the ``log|XᵀX|`` term). Derivatives in the basis coefficients
(``e = Wr = Py``)::

    ∂ll/∂f_c        = -½ tr(P B_c) + ½ eᵀB_c e          (REML; W in place of P for ML)
    E[-∂²ll/∂f_c∂f_d] = ½ tr(P B_c P B_d)
    -∂²ll/∂f_c∂f_d  = -½ tr(P B_c P B_d) + eᵀB_c P B_d e   (ML: W in the traces; the
                                                         profile over β keeps P in the last term)

The traces are taken block by block with ``P = W - U A Uᵀ``, ``U = WX``, ``A = (XᵀWX)⁻¹``:
``tr(P B) = Σ_b tr(W_b B_b) - tr(A Σ_b U_bᵀB_bU_b)`` and
``tr(P B_c P B_d) = Σ_b tr(W_b B_c W_b B_d) - 2 tr(A Σ_b U_bᵀB_cW_bB_dU_b) + tr(A Q_c A Q_d)``.

References
----------
.. [1] Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
   J Stat Softw, 36(3), 1-48. https://doi.org/10.18637/jss.v036.i03
.. [2] Konstantopoulos, S. (2011). Fixed effects and variance components estimation in
   three-level meta-analysis. Res Synth Methods, 2(1), 61-76. https://doi.org/10.1002/jrsm.35
.. [3] Berkey, C. S., Hoaglin, D. C., Antczak-Bouckoms, A., Mosteller, F., & Colditz, G. A.
   (1998). Meta-analysis of multiple outcomes by regression with random effects. Stat Med,
   17(22), 2537-2550.
.. [4] Jackson, D., Riley, R., & White, I. R. (2011). Multivariate meta-analysis: Potential
   and promise. Stat Med, 30(20), 2481-2498. https://doi.org/10.1002/sim.4172
.. [5] Ishak, K. J., Platt, R. W., Joseph, L., Hanley, J. A., & Caro, J. J. (2007).
   Meta-analysis of longitudinal studies. Clin Trials, 4(5), 525-539.
   https://doi.org/10.1177/1740774507083567
.. [6] Harville, D. A. (1977). Maximum likelihood approaches to variance component
   estimation and to related problems. JASA, 72(358), 320-338.
   https://doi.org/10.1080/01621459.1977.10480998
.. [7] Henderson, H. V., & Searle, S. R. (1981). On deriving the inverse of a sum of
   matrices. SIAM Rev, 23(1), 53-60. https://doi.org/10.1137/1023004
.. [8] Jennrich, R. I., & Sampson, P. F. (1976). Newton-Raphson and related algorithms
   for maximum likelihood variance component estimation. Technometrics, 18(1), 11-17.
   https://doi.org/10.1080/00401706.1976.10489395
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from .._typing import FloatArray

IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

_LOG_2PI = math.log(2.0 * math.pi)

#: structures of an ``~ inner | outer`` term
STRUCTURES = ("CS", "HCS", "UN", "AR", "ID", "DIAG")

#: parameter kinds: a variance, a standard deviation (reported squared), a correlation
VAR, SD, COR = "var", "sd", "cor"


# --------------------------------------------------------------------------------------
# basis matrices
# --------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Basis:
    """The 0/1 matrix ``B[i, j] = [group_i = group_j] · relation(inner_i, inner_j)``.

    ``relation``: ``("all",)``; ``("same",)`` / ``("different",)`` (inner levels equal or
    not); ``("levels", a, b)`` (one of the two has level a and the other level b);
    ``("lag", d)`` (``|inner_i - inner_j| = d``, inner holding positions).
    """

    group: IntArray
    inner: IntArray | None
    relation: tuple[Any, ...]

    def block(self, rows: IntArray, valid: BoolArray) -> FloatArray:
        """The basis on stacked blocks of `rows` ``(nb, n)`` (``valid`` marks real rows)."""
        g = self.group[rows]
        pair = (g[:, :, None] == g[:, None, :]) & valid[:, :, None] & valid[:, None, :]
        kind = self.relation[0]
        if kind != "all":
            assert self.inner is not None
            q = self.inner[rows]
            qi, qj = q[:, :, None], q[:, None, :]
            if kind == "same":
                pair &= qi == qj
            elif kind == "different":
                pair &= qi != qj
            elif kind == "levels":
                a, b = self.relation[1], self.relation[2]
                pair &= ((qi == a) & (qj == b)) | ((qi == b) & (qj == a))
            elif kind == "lag":
                pair &= np.abs(qi - qj) == self.relation[1]
            else:  # pragma: no cover - internal
                msg = f"unknown basis relation {self.relation!r}"
                raise ValueError(msg)
        out: FloatArray = pair.astype(np.float64)
        return out

    def indicator(self) -> IntArray | None:
        """Codes of disjoint groups of studies with ``B = Σ_g 1_g 1_gᵀ`` (``-1``: a study in
        no group), or None when the basis is not of that form. Random intercepts
        (``"all"``), ``ID`` (``"same"``) and the diagonal bases of ``HCS``/``UN``/``DIAG``
        (``("levels", j, j)``) are; the bases of pairs of different levels are not."""
        kind = self.relation[0]
        if kind == "all":
            return self.group
        if self.inner is None:
            return None
        if kind == "same":
            width = int(self.inner.max()) + 1 if self.inner.size else 1
            joint = np.where(self.group >= 0, self.group * width + self.inner, -1)
            return np.asarray(joint, dtype=np.intp)
        if kind == "levels" and self.relation[1] == self.relation[2]:
            return np.where(self.inner == self.relation[1], self.group, -1)
        return None


# --------------------------------------------------------------------------------------
# structures: θ -> basis coefficients f(θ), with derivatives
# --------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Structure:
    """One random-effects term: its parameters (names, kinds, bounds) and bases.

    ``kind``: ``"sigma2"`` (a random intercept), or an ``~ inner | outer`` structure.
    ``pairs``: for ``HCS``/``UN``, the pairs ``(j, l)`` of inner levels of the bases after
    the ``n_levels`` diagonal ones; for ``AR``, ``lags`` the lags of the bases after the
    first.
    """

    kind: str
    n_levels: int = 1
    pairs: tuple[tuple[int, int], ...] = ()
    lags: tuple[int, ...] = ()

    @property
    def param_kinds(self) -> tuple[str, ...]:
        kind = self.kind
        if kind in ("sigma2", "ID"):
            return (VAR,)
        if kind in ("CS", "AR"):
            return (VAR, COR)
        if kind == "DIAG":
            return (VAR,) * self.n_levels
        if kind == "HCS":
            return (SD,) * self.n_levels + (COR,)
        if kind == "UN":
            return (SD,) * self.n_levels + (COR,) * len(self.pairs)
        msg = f"unknown structure {kind!r}"  # pragma: no cover
        raise ValueError(msg)  # pragma: no cover

    @property
    def n_params(self) -> int:
        return len(self.param_kinds)

    @property
    def n_bases(self) -> int:
        kind = self.kind
        if kind in ("sigma2", "ID"):
            return 1
        if kind == "CS":
            return 2
        if kind == "AR":
            return 1 + len(self.lags)
        if kind == "DIAG":
            return self.n_levels
        return self.n_levels + len(self.pairs)

    def coefficients(self, t: FloatArray) -> FloatArray:
        kind = self.kind
        if kind in ("sigma2", "ID", "DIAG"):
            return np.array(t, dtype=np.float64)
        if kind == "CS":
            return np.array([t[0], t[1] * t[0]])
        if kind == "AR":
            lags = np.array(self.lags, dtype=np.float64)
            return np.concatenate(([t[0]], t[0] * _power(t[1], lags)))
        n = self.n_levels
        sd = t[:n]
        rho = np.full(len(self.pairs), t[n]) if kind == "HCS" else t[n:]
        j, ell = self._pair_index()
        return np.concatenate((sd * sd, rho * sd[j] * sd[ell]))

    def _pair_index(self) -> tuple[IntArray, IntArray]:
        if not self.pairs:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        arr = np.array(self.pairs, dtype=np.intp)
        return arr[:, 0], arr[:, 1]

    def jacobian(self, t: FloatArray) -> FloatArray:
        """``∂f/∂θ``, shape ``(n_bases, n_params)``."""
        kind = self.kind
        if kind in ("sigma2", "ID", "DIAG"):
            return np.eye(self.n_params)
        if kind == "CS":
            return np.array([[1.0, 0.0], [t[1], t[0]]])
        if kind == "AR":
            lags = np.array(self.lags, dtype=np.float64)
            jac = np.zeros((1 + lags.size, 2))
            jac[0, 0] = 1.0
            jac[1:, 0] = _power(t[1], lags)
            jac[1:, 1] = t[0] * lags * _power(t[1], lags - 1.0)
            return jac
        n = self.n_levels
        sd = t[:n]
        j, ell = self._pair_index()
        m = len(self.pairs)
        rho = np.full(m, t[n]) if kind == "HCS" else t[n:]
        jac = np.zeros((n + m, self.n_params))
        jac[np.arange(n), np.arange(n)] = 2.0 * sd
        rows = n + np.arange(m)
        jac[rows, j] += rho * sd[ell]
        jac[rows, ell] += rho * sd[j]
        if kind == "HCS":
            jac[rows, n] = sd[j] * sd[ell]
        else:
            jac[rows, n + np.arange(m)] = sd[j] * sd[ell]
        return jac

    def curvature(self, t: FloatArray, s: FloatArray) -> FloatArray:
        """``Σ_c s_c ∂²f_c/∂θ∂θᵀ``, shape ``(n_params, n_params)``."""
        kind = self.kind
        q = self.n_params
        out = np.zeros((q, q))
        if kind in ("sigma2", "ID", "DIAG"):
            return out
        if kind == "CS":
            out[0, 1] = out[1, 0] = s[1]
            return out
        if kind == "AR":
            lags = np.array(self.lags, dtype=np.float64)
            sl = s[1:]
            cross = float(np.sum(sl * lags * _power(t[1], lags - 1.0)))
            out[0, 1] = out[1, 0] = cross
            out[1, 1] = float(np.sum(sl * t[0] * lags * (lags - 1.0) * _power(t[1], lags - 2.0)))
            return out
        n = self.n_levels
        sd = t[:n]
        out[np.arange(n), np.arange(n)] = 2.0 * s[:n]
        m = len(self.pairs)
        rho = np.full(m, t[n]) if kind == "HCS" else t[n:]
        so = s[n:]
        for i, (j, ell) in enumerate(self.pairs):
            out[j, ell] += so[i] * rho[i]
            out[ell, j] += so[i] * rho[i]
            r = n if kind == "HCS" else n + i
            out[j, r] += so[i] * sd[ell]
            out[r, j] += so[i] * sd[ell]
            out[ell, r] += so[i] * sd[j]
            out[r, ell] += so[i] * sd[j]
        return out


def _power(base: float, exponent: FloatArray) -> FloatArray:
    """``base ** exponent`` with ``0 ** 0 = 1`` and 0 for a negative power of 0 (the terms
    it multiplies are 0 there)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.power(base, exponent)
    return np.asarray(np.where(np.isfinite(out), out, 0.0), dtype=np.float64)


# --------------------------------------------------------------------------------------
# the block layout
# --------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Bucket:
    """Blocks of ``M`` padded to one size ``n`` and stacked."""

    rows: IntArray  # (nb, n), -1 = padding
    valid: BoolArray  # (nb, n)
    v: FloatArray  # (nb, n, n)
    x: FloatArray  # (nb, n, p)
    y: FloatArray  # (nb, n)
    bases: FloatArray  # (C, nb, n, n)


@attrs.frozen(eq=False)
class Groups:
    """``M = D + Σ_c f_c Ψ_c Ψ_cᵀ`` with ``D = diag(v) + Σ_{c identity} f_c I``: every basis
    a sum of disjoint group indicators, ``V`` diagonal (the form of nested and crossed
    random intercepts, ``ID`` and ``DIAG``). ``Ψ = [Ψ_c]`` (k, q) holds the groups of the
    bases that are not the identity as 0/1 columns (``member[j, c]``: column j belongs to
    basis c); a basis whose every study is a group of its own is the identity (``B = I``,
    added to the diagonal ``D``)."""

    y: FloatArray  # (k,)
    x: FloatArray  # (k, p)
    v: FloatArray  # (k,) > 0
    psi: FloatArray  # (k, q)
    member: FloatArray  # (q, C)
    column_basis: IntArray  # (q,) the basis of each column
    identity: FloatArray  # (C,) 1 for an identity basis
    # (derived once, by :meth:`make`: V⁻¹, Sᵀ, I_q, ...)
    vinv: FloatArray
    member_t: FloatArray
    eye: FloatArray
    has_identity: bool
    diagonal: bool  # each study in at most one column: R diagonal

    @classmethod
    def make(
        cls,
        *,
        y: FloatArray,
        x: FloatArray,
        v: FloatArray,
        psi: FloatArray,
        member: FloatArray,
        column_basis: IntArray,
        identity: FloatArray,
        single: bool = False,
    ) -> Groups:
        """The form with its derived arrays (`single`: the columns of Ψ belong to one
        basis, so each study is in at most one of them; ``eye`` only where ``R`` is not
        diagonal, the one case that uses it)."""
        diagonal = single or bool(psi.size == 0 or psi.sum(axis=1).max() <= 1.0)
        return cls(
            y=y,
            x=x,
            v=v,
            psi=psi,
            member=member,
            column_basis=column_basis,
            identity=identity,
            vinv=1.0 / v,
            member_t=np.ascontiguousarray(member.T),
            eye=_NO_EYE if diagonal else np.eye(psi.shape[1]),
            has_identity=bool(identity.any()),
            diagonal=diagonal,
        )


_NO_EYE = np.zeros((0, 0))


#: the largest number of group columns for which :class:`Groups` is used (its dense
#: ``q x q`` algebra costs ``O(q³)`` per evaluation; the blocks of M beyond)
GROUPS_MAX_COLUMNS = 160


def _groups_form(y: FloatArray, x: FloatArray, v: Any, bases: Sequence[Basis]) -> Groups | None:
    if isinstance(v, tuple) or np.ndim(v) != 1 or not bases:
        return None
    vd = np.asarray(v, dtype=np.float64)
    # (every variance finite and positive; a NaN fails the first test)
    if vd.size and not (float(vd.min()) > 0.0 and float(vd.max()) < math.inf):
        return None
    k = vd.size
    identity = np.zeros(len(bases))
    cols: list[tuple[int, IntArray, IntArray]] = []  # (basis, rows, column within basis)
    q = 0
    for c, basis in enumerate(bases):
        codes = basis.indicator()
        if codes is None:
            return None
        inside = np.flatnonzero(codes >= 0)
        which = codes[inside]
        counts = np.bincount(which)
        if not counts.all():  # (codes not numbered 0, 1, ...)
            _, inverse = np.unique(which, return_inverse=True)
            which = np.asarray(inverse, dtype=np.intp).reshape(-1)
            counts = np.bincount(which)
        if inside.size == k and counts.size == k:
            identity[c] = 1.0
            continue
        cols.append((c, inside, which + q))
        q += counts.size
        if q > GROUPS_MAX_COLUMNS:
            return None
    psi = np.zeros((k, q))
    member = np.zeros((q, len(bases)))
    column_basis = np.zeros(q, dtype=np.intp)
    for c, rows, col in cols:
        psi[rows, col] = 1.0
        member[col, c] = 1.0
        column_basis[col] = c
    return Groups.make(
        y=y,
        x=x,
        v=vd,
        psi=psi,
        member=member,
        column_basis=column_basis,
        identity=identity,
        single=len(cols) <= 1,
    )


@attrs.frozen(eq=False)
class Layout:
    """The model's data: ``M`` is block-diagonal over ``block`` (per study); the stacked
    blocks (``buckets``) are built when first needed, and not at all when the likelihood
    has the closed forms of :class:`Groups` (``groups``)."""

    k: int
    p: int
    n_bases: int
    y: FloatArray
    x: FloatArray
    v: FloatArray | tuple[FloatArray, IntArray, IntArray]
    bases: tuple[Basis, ...]
    links: tuple[IntArray, ...]  # group codes linking studies into blocks
    v_pairs: tuple[IntArray, IntArray]  # off-diagonal non-zero entries of V
    groups: Groups | None
    _cache: dict[Any, Any] = attrs.field(factory=dict, alias="_cache")

    @property
    def block(self) -> IntArray:
        """The block of ``M`` of each study."""
        if "block" not in self._cache:
            self._cache["block"] = blocks_of(self.k, self.links, self.v_pairs)
        out: IntArray = self._cache["block"]
        return out

    @property
    def buckets(self) -> tuple[Bucket, ...]:
        """The blocks of ``M`` stacked by size."""
        if "buckets" not in self._cache:
            self._cache["buckets"] = _buckets(self.y, self.x, self.v, self.bases, self.block)
        out: tuple[Bucket, ...] = self._cache["buckets"]
        return out

    def nonzero_bases(self) -> BoolArray:
        """Whether each basis has a non-zero entry."""
        if self.groups is not None:
            g = self.groups
            return np.asarray((g.identity > 0) | (g.member.sum(axis=0) > 0), dtype=np.bool_)
        out = np.zeros(self.n_bases, dtype=bool)
        for bk in self.buckets:
            if bk.bases.size:
                out |= bk.bases.reshape(self.n_bases, -1).any(axis=1)
        return out


def blocks_of(k: int, groups: Sequence[IntArray], v_pairs: tuple[IntArray, IntArray]) -> IntArray:
    """Connected components of the studies linked by a shared group code or a non-zero
    off-diagonal entry ``(i, j)`` of ``V``: the blocks of ``M``, numbered ``0, 1, ...`` in
    the order of their first study.

    Label propagation: every study starts with its own index as label; each pass gives every
    group (and every pair of ``V``) the smallest label of its members, until no label
    changes (a few passes: one per link of the longest chain of groups; nested groups need
    two).
    """
    labels = np.arange(k, dtype=np.intp)
    links = [g for g in groups if g.size and np.any(g >= 0)]
    r, c = v_pairs
    while True:
        before = labels
        for g in links:
            ok = g >= 0
            n_g = int(g.max()) + 1
            low = np.full(n_g, k, dtype=np.intp)
            np.minimum.at(low, g[ok], labels[ok])
            labels = np.where(ok, low[np.where(ok, g, 0)], labels)
        if r.size:
            pair = np.minimum(labels[r], labels[c])
            labels = labels.copy()
            np.minimum.at(labels, r, pair)
            np.minimum.at(labels, c, pair)
        # pointer jumping: a label points at a study whose own label may be lower
        labels = labels[labels]
        if np.array_equal(labels, before):
            break
    _, out = np.unique(labels, return_inverse=True)
    return np.asarray(out, dtype=np.intp).reshape(-1)


def make_layout(
    y: FloatArray,
    x: FloatArray,
    v: FloatArray | tuple[FloatArray, IntArray, IntArray],
    bases: Sequence[Basis],
    links: Sequence[IntArray],
    v_pairs: tuple[IntArray, IntArray],
) -> Layout:
    """The layout of a model: `links` the group codes that join studies into blocks,
    ``v``: the variances ``(k,)`` (diagonal ``V``), or ``(values, rows, cols)`` of every
    non-zero entry of ``V`` (both triangles and the diagonal), `v_pairs` its off-diagonal
    entries."""
    k, p = x.shape
    return Layout(
        k=k,
        p=p,
        n_bases=len(bases),
        y=y,
        x=x,
        v=v,
        bases=tuple(bases),
        links=tuple(links),
        v_pairs=v_pairs,
        groups=_groups_form(y, x, v, bases),
    )


def _buckets(
    y: FloatArray,
    x: FloatArray,
    v: FloatArray | tuple[FloatArray, IntArray, IntArray],
    bases: Sequence[Basis],
    block: IntArray,
) -> tuple[Bucket, ...]:
    """Stack the blocks of the studies (``block[i]``: the block of study i)."""
    k = x.shape[0]
    n_blocks = int(block.max()) + 1 if k else 0
    order = np.argsort(block, kind="stable")
    sizes = np.bincount(block, minlength=n_blocks)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    # position of each study within its block
    pos = np.empty(k, dtype=np.intp)
    pos[order] = np.arange(k) - np.repeat(starts, sizes)
    buckets = []
    for members in _size_classes(sizes):
        n = int(sizes[members].max())
        nb = members.size
        rows = np.full((nb, n), -1, dtype=np.intp)
        slot = np.full(n_blocks, -1, dtype=np.intp)
        slot[members] = np.arange(nb)
        in_bucket = slot[block] >= 0
        studies = np.flatnonzero(in_bucket)
        rows[slot[block[studies]], pos[studies]] = studies
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        vb = np.zeros((nb, n, n))
        if isinstance(v, tuple):
            vals, vr, vc = v
            keep = in_bucket[vr]
            b_idx = slot[block[vr[keep]]]
            vb[b_idx, pos[vr[keep]], pos[vc[keep]]] = vals[keep]
        else:
            diag = np.where(valid, v[safe], 0.0)
            vb[:, np.arange(n), np.arange(n)] = diag
        pad_b, pad_i = np.nonzero(~valid)
        vb[pad_b, pad_i, pad_i] = 1.0
        xb = np.where(valid[:, :, None], x[safe], 0.0)
        yb = np.where(valid, y[safe], 0.0)
        bb = np.empty((len(bases), nb, n, n))
        for c, basis in enumerate(bases):
            bb[c] = basis.block(safe, valid)
        buckets.append(Bucket(rows=rows, valid=valid, v=vb, x=xb, y=yb, bases=bb))
    return tuple(buckets)


def _size_classes(sizes: IntArray) -> list[IntArray]:
    """Blocks grouped into a few classes of similar size (each padded to its largest):
    every block of up to 16 studies in one class, larger ones by factors of 1.5."""
    order = np.argsort(-sizes, kind="stable")
    out: list[IntArray] = []
    small = order[sizes[order] <= 16]
    large = order[sizes[order] > 16]
    i = 0
    while i < large.size:
        top = sizes[large[i]]
        j = i
        while j < large.size and sizes[large[j]] * 1.5 >= top:
            j += 1
        out.append(np.sort(large[i:j]))
        i = j
    if small.size:
        out.append(np.sort(small))
    return out


# --------------------------------------------------------------------------------------
# the likelihood and its derivatives in the basis coefficients
# --------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Evaluation:
    """The model at basis coefficients ``f``."""

    ll: float
    beta: FloatArray  # (p,) in the layout's (orthonormal) design
    a: FloatArray  # (p, p) (XᵀWX)⁻¹
    rss: float
    score: FloatArray | None = None  # (C,) ∂ll/∂f
    observed: FloatArray | None = None  # (C, C) -∂²ll/∂f∂f
    expected: FloatArray | None = None  # (C, C) E[-∂²ll/∂f∂f]


def evaluate(layout: Layout, f: FloatArray, *, reml: bool, order: int) -> Evaluation | None:
    """The (restricted) log-likelihood at ``f`` (None where a block of ``M`` is not
    positive definite); ``order`` 1 adds the score, 2 the observed and expected
    information (all in ``f``). With the closed forms of :class:`Groups` where the model
    has them (and the coefficients are not negative), otherwise block by block."""
    zero = order == 0 and not f.any()
    if zero and ("zero", reml) in layout._cache:  # (the fit with V alone, met twice)
        out: Evaluation | None = layout._cache["zero", reml]
        return out
    g = layout.groups
    out = _UNSTABLE
    if g is not None and (not f.size or float(f.min()) >= 0.0):
        out = _evaluate_groups(g, f, reml=reml, order=order)
    if out is _UNSTABLE:
        out = _evaluate_blocks(layout, f, reml=reml, order=order)
    if zero:
        layout._cache["zero", reml] = out
    return out


def _evaluate_blocks(
    layout: Layout, f: FloatArray, *, reml: bool, order: int
) -> Evaluation | None:
    """:func:`evaluate` on the stacked blocks of ``M`` (any model)."""
    p, k = layout.p, layout.k
    logdet = 0.0
    xtwx = np.zeros((p, p))
    xtwy = np.zeros(p)
    per: list[tuple[Bucket, FloatArray, FloatArray]] = []
    for bk in layout.buckets:
        m = bk.v + (f @ bk.bases.reshape(f.size, -1)).reshape(bk.v.shape) if f.size else bk.v
        try:
            chol = np.linalg.cholesky(m)
            w_raw = np.linalg.inv(m)
        except np.linalg.LinAlgError:  # (not positive definite, or singular to rounding)
            return None
        logdet += 2.0 * float(np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2))))
        w = np.asarray(0.5 * (w_raw + np.swapaxes(w_raw, 1, 2)), dtype=np.float64)
        u = w @ bk.x
        u_flat = u.reshape(-1, p)
        xtwx += bk.x.reshape(-1, p).T @ u_flat
        xtwy += bk.y.reshape(-1) @ u_flat
        per.append((bk, w, u))
    fixed = _coefficients(xtwx, xtwy)
    if fixed is None:
        return None
    a, beta, logdet_x = fixed
    rss = 0.0
    es: list[FloatArray] = []
    for bk, w, _ in per:
        r = bk.y - bk.x @ beta
        e = (w @ r[:, :, None])[:, :, 0]
        rss += float(r.reshape(-1) @ e.reshape(-1))
        es.append(e)
    ll = _loglik(k, p, logdet, logdet_x, rss, reml)
    if order == 0 or layout.n_bases == 0:
        return Evaluation(ll=ll, beta=beta, a=a, rss=rss)
    n_c = layout.n_bases
    tr_wb = np.zeros(n_c)
    ebe = np.zeros(n_c)
    q = np.zeros((n_c, p, p))
    z = np.zeros((n_c, p))
    tr_wbwb = np.zeros((n_c, n_c))
    tr_ar = np.zeros((n_c, n_c))
    ehe = np.zeros((n_c, n_c))
    for (bk, w, u), e in zip(per, es, strict=True):
        # (sums over blocks and rows as matrix products of the flattened stacks)
        b = bk.bases
        wb = w[None] @ b  # (C, nb, n, n)
        tr_wb += np.einsum("cbii->c", wb)
        h = (b @ e[None, :, :, None])[..., 0]  # (C, nb, n): B_c e
        h_flat = h.reshape(n_c, -1)
        u_flat = u.reshape(-1, p)
        ebe += h_flat @ e.reshape(-1)
        t = b @ u[None]  # (C, nb, n, p)
        q += u_flat.T @ t.reshape(n_c, -1, p)
        z += h_flat @ u_flat
        if order >= 2:
            flat = wb.reshape(n_c, -1)
            flat_t = np.swapaxes(wb, 2, 3).reshape(n_c, -1)
            tr_wbwb += flat @ flat_t.T
            if reml:
                wt = w[None] @ t
                tr_ar += (t @ a).reshape(n_c, -1) @ wt.reshape(n_c, -1).T
            wh = (w[None] @ h[..., None])[..., 0]
            ehe += h_flat @ wh.reshape(n_c, -1).T
    sums = _Sums(tr_wb=tr_wb, ebe=ebe, q=q, z=z, tr_wbwb=tr_wbwb, tr_ar=tr_ar, ehe=ehe)
    return _derivatives(ll, beta, a, rss, sums, reml=reml, order=order)


def _coefficients(
    xtwx: FloatArray, xtwy: FloatArray
) -> tuple[FloatArray, FloatArray, float] | None:
    """``A = (XᵀWX)⁻¹``, ``b = A XᵀWy`` and ``log|XᵀWX|`` (None if not positive definite)."""
    if xtwx.shape == (1, 1):
        info = float(xtwx[0, 0])
        if not info > 0.0:
            return None
        return np.array([[1.0 / info]]), xtwy / info, math.log(info)
    xtwx = 0.5 * (xtwx + xtwx.T)
    try:
        cx = np.linalg.cholesky(xtwx)
    except np.linalg.LinAlgError:
        return None
    ci = np.linalg.inv(cx)
    a = ci.T @ ci
    return a, a @ xtwy, 2.0 * float(np.sum(np.log(np.diagonal(cx))))


def _loglik(k: int, p: int, logdet: float, logdet_x: float, rss: float, reml: bool) -> float:
    if reml:
        return -0.5 * ((k - p) * _LOG_2PI + logdet + logdet_x + rss)
    return -0.5 * (k * _LOG_2PI + logdet + rss)


@attrs.frozen(eq=False)
class _Sums:
    """The sums over studies behind the derivatives (``U = WX``, ``e = Wr``):
    ``tr(W B_c)``, ``eᵀB_c e``, ``UᵀB_cU``, ``eᵀB_cU``, ``tr(W B_c W B_d)``,
    ``tr(A UᵀB_c W B_d U)``, ``eᵀB_c W B_d e``."""

    tr_wb: FloatArray
    ebe: FloatArray
    q: FloatArray
    z: FloatArray
    tr_wbwb: FloatArray | None = None
    tr_ar: FloatArray | None = None
    ehe: FloatArray | None = None


def _derivatives(
    ll: float,
    beta: FloatArray,
    a: FloatArray,
    rss: float,
    s: _Sums,
    *,
    reml: bool,
    order: int,
) -> Evaluation:
    """Score and information in ``f`` from the sums (the formulas of the module notes)."""
    tr_pb = s.tr_wb - (s.q * a).sum(axis=(1, 2)) if reml else s.tr_wb
    score = -0.5 * tr_pb + 0.5 * s.ebe
    if order < 2:
        return Evaluation(ll=ll, beta=beta, a=a, rss=rss, score=score)
    assert s.tr_wbwb is not None
    assert s.ehe is not None
    if reml:
        assert s.tr_ar is not None
        aq = a[None] @ s.q  # tr(A Q_c A Q_d) = Σ_ij (AQ_c)_ij (AQ_d)_ji
        n_c = aq.shape[0]
        aq_t = aq.transpose(0, 2, 1).reshape(n_c, -1)
        tr_pbpb = s.tr_wbwb - 2.0 * s.tr_ar + aq.reshape(n_c, -1) @ aq_t.T
    else:
        tr_pbpb = s.tr_wbwb
    tr_pbpb = 0.5 * (tr_pbpb + tr_pbpb.T)
    ehpe = s.ehe - s.z @ a @ s.z.T
    observed = -0.5 * tr_pbpb + 0.5 * (ehpe + ehpe.T)
    expected = 0.5 * tr_pbpb
    return Evaluation(
        ll=ll, beta=beta, a=a, rss=rss, score=score, observed=observed, expected=expected
    )


#: the closed forms of :func:`_evaluate_groups` subtract: ``W = D⁻¹ - FKΓFᵀ`` loses
#: ``log10(D⁻¹_ii / W_ii)`` digits on its diagonal (a study far more precise than the
#: rest of its group, with a large group variance) and ``1ᵀW1 = 1ᵀD⁻¹1 - ...`` about
#: ``log10(f_c R_jj)`` (a group variance far above its studies' variances). They are used
#: while ``W_ii / D⁻¹_ii`` is above and ``f_c R_jj`` below ``1 / _CANCELLATION`` (six
#: digits at most), the blocks of ``M`` beyond
_CANCELLATION = 1e-6

#: what :func:`_evaluate_groups` returns where its closed forms would lose too many digits
_UNSTABLE = Evaluation(ll=math.nan, beta=np.zeros(0), a=np.zeros((0, 0)), rss=math.nan)


def _evaluate_groups(g: Groups, f: FloatArray, *, reml: bool, order: int) -> Evaluation | None:
    """:func:`evaluate` by the Woodbury identity (Henderson & Searle 1981 [7]_): with
    ``D`` diagonal, ``F = D⁻¹Ψ``, ``R = ΨᵀD⁻¹Ψ``, ``Γ = diag(f_c)`` over the columns of Ψ
    and ``K = (I + ΓR)⁻¹`` (``q x q``)::

        W = M⁻¹ = D⁻¹ - F K Γ Fᵀ,   WΨ = F K,   ΨᵀWΨ = R K,
        log|M| = log|D| + log|I + ΓR|

    (``KΓ = Γ^½(I + Γ^½RΓ^½)⁻¹Γ^½`` is symmetric positive semi-definite; a variance of 0
    is an exact 0 column). Every sum of the derivatives is then an ``O(k q + q³)``
    product: for a basis of group columns, ``tr(W B_c) = Σ_{j∈c} (ΨᵀWΨ)_jj``,
    ``eᵀB_c e = Σ_{j∈c} (Ψᵀe)_j²``, ``tr(W B_c W B_d) = Σ_{j∈c, l∈d} (ΨᵀWΨ)_jl²``, ...;
    for the identity ``tr(W)``, ``eᵀe``, ``‖W‖²_F``, ... (no ``k x k`` matrix is formed).
    """
    k, p = g.x.shape
    if order == 0 and not f.any():
        return _evaluate_v_alone(g, reml=reml)
    ident = g.identity
    has_ident = g.has_identity
    dinv = 1.0 / (g.v + float(ident @ f)) if has_ident else g.vinv
    psi, x, y = g.psi, g.x, g.y
    gam = f[g.column_basis]
    fm = psi * dinv[:, None]  # F (k, q)
    if g.diagonal:  # (R, K and KΓ diagonal: kept as their diagonals)
        rd = dinv @ psi
        if rd.size and float((gam * rd).max()) > 1.0 / _CANCELLATION:
            return _UNSTABLE
        td = 1.0 + gam * rd
        logdet_t = float(np.log(td).sum())
        kd = 1.0 / td
        hd = kd * gam
        m_diag = dinv * dinv * (psi @ hd)  # diag(F KΓ Fᵀ)
    else:
        r_ = psi.T @ fm  # R (q, q)
        if float((gam * np.diagonal(r_)).max()) > 1.0 / _CANCELLATION:
            return _UNSTABLE
        sign, logdet_t = np.linalg.slogdet(g.eye + gam[:, None] * r_)
        if not (sign > 0 and math.isfinite(logdet_t)):  # pragma: no cover - PD for f >= 0
            return None
        kinv = np.linalg.inv(g.eye + gam[:, None] * r_)
        hm = kinv * gam  # K Γ
        fh = fm @ hm  # F KΓ
        m_diag = (fm * fh).sum(axis=1)
    w_diag = dinv - m_diag  # diag(W)
    if not (w_diag > _CANCELLATION * dinv).all():
        return _UNSTABLE
    if g.diagonal:
        fx = fm.T @ x
        u = dinv[:, None] * x - fm @ (hd[:, None] * fx)  # W X
    else:
        u = dinv[:, None] * x - fh @ (fm.T @ x)
    logdet = float(logdet_t) - float(np.log(dinv).sum())
    fixed = _coefficients(x.T @ u, y @ u)
    if fixed is None:
        return None
    a, beta, logdet_x = fixed
    r = y - x @ beta
    fr = fm.T @ r
    e = dinv * r - fm @ (hd * fr if g.diagonal else hm @ fr)  # W r
    rss = float(r @ e)
    ll = _loglik(k, p, logdet, logdet_x, rss, reml)
    if order == 0 or f.size == 0:
        return Evaluation(ll=ll, beta=beta, a=a, rss=rss)
    diag_w = (m_diag, w_diag)
    if g.diagonal:
        # (Ψᵀe = fr - R KΓ fr = K fr, ΨᵀWX = K FᵀX: column by column)
        kx = (kd[:, None] * fx, kd * fr, rd * kd)
        sums = _sums_diagonal(g, dinv, fm, kd, hd, diag_w, kx, u, e, a, reml=reml, order=order)
    else:
        sums = _sums_dense(g, dinv, fm, r_, kinv, hm, fh, diag_w, u, e, a, reml=reml, order=order)
    return _derivatives(ll, beta, a, rss, sums, reml=reml, order=order)


def _evaluate_v_alone(g: Groups, *, reml: bool) -> Evaluation | None:
    """:func:`_evaluate_groups` at ``f = 0`` (``M = V`` diagonal, ``W = V⁻¹``): the same
    operations without the terms that are exactly 0 there (``KΓ = 0``, ``log|I + ΓR| = 0``),
    so the same numbers (the fit with ``V`` alone: the Q test and the start)."""
    k, p = g.x.shape
    dinv, x, y = g.vinv, g.x, g.y
    u = dinv[:, None] * x  # W X
    logdet = 0.0 - float(np.log(dinv).sum())
    fixed = _coefficients(x.T @ u, y @ u)
    if fixed is None:
        return None
    a, beta, logdet_x = fixed
    r = y - x @ beta
    rss = float(r @ (dinv * r))
    return Evaluation(ll=_loglik(k, p, logdet, logdet_x, rss, reml), beta=beta, a=a, rss=rss)


def _sums_dense(
    g: Groups,
    dinv: FloatArray,
    fm: FloatArray,
    r_: FloatArray,
    kinv: FloatArray,
    hm: FloatArray,
    fh: FloatArray,
    diag_w: tuple[FloatArray, FloatArray],
    u: FloatArray,
    e: FloatArray,
    a: FloatArray,
    *,
    reml: bool,
    order: int,
) -> _Sums:
    """The sums of :class:`_Sums` for :func:`_evaluate_groups` (any ``R``; ``fh = FKΓ``,
    `diag_w` the diagonals of ``FKΓFᵀ`` and ``W``)."""
    p = u.shape[1]
    ident = g.identity
    s, st = g.member, g.member_t
    wz = fm @ kinv  # WΨ = F K (k, q)
    gm = r_ @ kinv  # ΨᵀWΨ = R K (q, q)
    yq = wz.T @ g.x  # ΨᵀWX (q, p)
    h = g.psi.T @ e  # Ψᵀe (q,)
    tr_wb = np.diagonal(gm) @ s
    ebe = (h * h) @ s
    q = (st @ (yq[:, :, None] * yq[:, None, :]).reshape(-1, p * p)).reshape(-1, p, p)
    z = st @ (h[:, None] * yq)
    tr_wbwb = tr_ar = ehe = None
    if order >= 2:
        tr_wbwb = st @ (gm * gm) @ s
        tr_ar = st @ (gm * (yq @ a @ yq.T)) @ s if reml else None
        ehe = st @ (gm * (h[:, None] * h)) @ s
    if g.has_identity:
        # the identity bases: tr W, eᵀe, UᵀU, eᵀU; ‖W‖², tr(A UᵀWU), eᵀWe, and with the
        # group columns ‖WΨ_j‖², tr(A UᵀWΨ_j Y_j), eᵀWΨ_j h_j
        m_diag, w_diag = diag_w
        tr_wb = tr_wb + ident * float(w_diag.sum())
        ebe = ebe + ident * float(e @ e)
        q = q + ident[:, None, None] * (u.T @ u)
        z = z + ident[:, None] * (e @ u)
        if order >= 2:
            assert tr_wbwb is not None
            assert ehe is not None
            hf = hm @ (fm.T @ fm)
            w_sq = float((hf * hf.T).sum()) - float(m_diag @ m_diag) + float(w_diag @ w_diag)
            tr_wbwb = _with_identity(tr_wbwb, ident, (wz * wz).sum(axis=0) @ s, w_sq)
            we = dinv * e - fh @ (fm.T @ e)
            ehe = _with_identity(ehe, ident, (wz.T @ e * h) @ s, float(e @ we))
            if reml:
                assert tr_ar is not None
                wu = dinv[:, None] * u - fh @ (fm.T @ u)
                ua = u @ a
                cross = ((wz.T @ ua) * yq).sum(axis=1) @ s
                tr_ar = _with_identity(tr_ar, ident, cross, float((wu * ua).sum()))
    return _Sums(tr_wb=tr_wb, ebe=ebe, q=q, z=z, tr_wbwb=tr_wbwb, tr_ar=tr_ar, ehe=ehe)


def _sums_diagonal(
    g: Groups,
    dinv: FloatArray,
    fm: FloatArray,
    kd: FloatArray,
    hd: FloatArray,
    diag_w: tuple[FloatArray, FloatArray],
    kx: tuple[FloatArray, FloatArray, FloatArray],
    u: FloatArray,
    e: FloatArray,
    a: FloatArray,
    *,
    reml: bool,
    order: int,
) -> _Sums:
    """:func:`_sums_dense` where every study is in at most one column (``R``, ``K``,
    ``ΨᵀWΨ`` diagonal; ``WΨ = F K`` column by column): the same sums with the
    diagonals as vectors (`kx`: ``ΨᵀWX``, ``Ψᵀe`` and the diagonal of ``ΨᵀWΨ``)."""
    p = u.shape[1]
    ident = g.identity
    s, st = g.member, g.member_t
    yq, h, gd = kx
    tr_wb = gd @ s
    ebe = (h * h) @ s
    q = (st @ (yq[:, :, None] * yq[:, None, :]).reshape(-1, p * p)).reshape(-1, p, p)
    z = st @ (h[:, None] * yq)
    tr_wbwb = tr_ar = ehe = None
    if order >= 2:
        tr_wbwb = (st * (gd * gd)) @ s
        tr_ar = (st * (gd * ((yq @ a) * yq).sum(axis=1))) @ s if reml else None
        ehe = (st * (gd * h * h)) @ s
    if g.has_identity:
        m_diag, w_diag = diag_w
        tr_wb = tr_wb + ident * float(w_diag.sum())
        ebe = ebe + ident * float(e @ e)
        q = q + ident[:, None, None] * (u.T @ u)
        z = z + ident[:, None] * (e @ u)
        if order >= 2:
            assert tr_wbwb is not None
            assert ehe is not None
            r2 = (dinv * dinv) @ g.psi  # diag(FᵀF)
            hr = hd * r2
            w_sq = float(hr @ hr) - float(m_diag @ m_diag) + float(w_diag @ w_diag)
            tr_wbwb = _with_identity(tr_wbwb, ident, (kd * kd * r2) @ s, w_sq)
            fe = fm.T @ e
            we = dinv * (e - g.psi @ (hd * fe))
            ehe = _with_identity(ehe, ident, (kd * fe * h) @ s, float(e @ we))
            if reml:
                assert tr_ar is not None
                fu = fm.T @ u
                ua = u @ a
                wu = dinv[:, None] * (u - g.psi @ (hd[:, None] * fu))
                cross = ((kd[:, None] * (fu @ a)) * yq).sum(axis=1) @ s
                tr_ar = _with_identity(tr_ar, ident, cross, float((wu * ua).sum()))
    return _Sums(tr_wb=tr_wb, ebe=ebe, q=q, z=z, tr_wbwb=tr_wbwb, tr_ar=tr_ar, ehe=ehe)


def _with_identity(
    m: FloatArray, ident: FloatArray, cross: FloatArray, self_term: float
) -> FloatArray:
    """``m`` with the rows and columns of the identity bases: `cross` (their sums with
    the group bases) and `self_term` (with each other)."""
    # (cross is 0 at the identity bases: ident ⊗ c + c ⊗ ident + t ident ⊗ ident with
    # c = cross + t/2 ident)
    half = ident[:, None] * (cross + (0.5 * self_term) * ident)
    out: FloatArray = m + half + half.T
    return out


# --------------------------------------------------------------------------------------
# the model: structures on a layout, and its maximisation
# --------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Model:
    """A layout with the structures of its random effects (bases in structure order)."""

    layout: Layout
    structures: tuple[Structure, ...]
    reml: bool
    #: whether the basis coefficients are the parameters themselves (random intercepts,
    #: ``ID``, ``DIAG``): ``f = θ``, ``∂f/∂θ = I``, no curvature
    linear: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        linear = all(s.kind in ("sigma2", "ID", "DIAG") for s in self.structures)
        object.__setattr__(self, "linear", linear)

    @property
    def n_params(self) -> int:
        return sum(s.n_params for s in self.structures)

    def param_kinds(self) -> tuple[str, ...]:
        return tuple(kind for s in self.structures for kind in s.param_kinds)

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        kinds = self.param_kinds()
        lo = np.array([-1.0 if kd == COR else 0.0 for kd in kinds])
        hi = np.array([1.0 if kd == COR else np.inf for kd in kinds])
        return lo, hi

    def scales(self) -> FloatArray:
        """A typical size of each parameter: the mean sampling variance (its square root
        for a standard deviation), 1 for a correlation."""
        v = self.layout.v
        diag = v[0][v[1] == v[2]] if isinstance(v, tuple) else v
        var = float(np.mean(diag)) if diag.size else 1.0
        table = {VAR: var, SD: math.sqrt(var), COR: 1.0}
        return np.array([table[kind] for kind in self.param_kinds()])

    def coefficients(self, theta: FloatArray) -> FloatArray:
        if self.linear:  # (read only: the evaluation does not keep or change it)
            return theta
        parts = []
        i = 0
        for s in self.structures:
            parts.append(s.coefficients(theta[i : i + s.n_params]))
            i += s.n_params
        return np.concatenate(parts) if parts else np.zeros(0)

    def evaluate(self, theta: FloatArray, order: int) -> _Point | None:
        f = self.coefficients(theta)
        ev = evaluate(self.layout, f, reml=self.reml, order=order)
        if ev is None or not math.isfinite(ev.ll):
            return None
        if order == 0 or not self.structures:
            return _Point(theta=theta, ev=ev)
        if self.linear:  # (the chain rule below with the identity)
            if order < 2:
                return _Point(theta=theta, ev=ev, grad=ev.score)
            assert ev.observed is not None
            return _Point(theta=theta, ev=ev, grad=ev.score, hess=-ev.observed, fisher=ev.expected)
        n = self.n_params
        grad = np.zeros(n)
        hess = np.zeros((n, n))
        fisher = np.zeros((n, n))
        jac = np.zeros((self.layout.n_bases, n))
        i = c = 0
        assert ev.score is not None
        for s in self.structures:
            t = theta[i : i + s.n_params]
            jac[c : c + s.n_bases, i : i + s.n_params] = s.jacobian(t)
            if order >= 2:
                hess[i : i + s.n_params, i : i + s.n_params] += s.curvature(
                    t, ev.score[c : c + s.n_bases]
                )
            i += s.n_params
            c += s.n_bases
        grad = jac.T @ ev.score
        if order >= 2:
            assert ev.observed is not None
            assert ev.expected is not None
            hess = hess - jac.T @ ev.observed @ jac
            fisher = jac.T @ ev.expected @ jac
        return _Point(theta=theta, ev=ev, grad=grad, hess=hess, fisher=fisher)


@attrs.frozen(eq=False)
class _Point:
    theta: FloatArray
    ev: Evaluation
    grad: FloatArray | None = None
    hess: FloatArray | None = None  # ∂²ll/∂θ² (negative definite at an interior maximum)
    fisher: FloatArray | None = None


@attrs.frozen(eq=False)
class Fit:
    """The maximum found: parameters, the model there, convergence."""

    theta: FloatArray
    ev: Evaluation
    converged: bool
    iterations: int
    message: str = ""


def maximise(
    model: Model,
    start: FloatArray,
    free: BoolArray,
    *,
    maxiter: int = 200,
    threshold: float = 1e-10,
) -> Fit:
    """Maximise the (restricted) log-likelihood over the `free` parameters (the others
    stay at `start`) by a projected Newton method with box constraints (Bertsekas 1982):
    at each iteration the parameters on a bound whose gradient points outwards are held,
    the others take a Newton step (``-∂²ll`` where it is positive definite, the expected
    information otherwise), shortened until the log-likelihood increases (Armijo) and the
    blocks of ``M`` stay positive definite. Converged when the Newton decrement
    ``gᵀ(-H)⁻¹g`` (twice the predicted gain) is below `threshold` (times ``max(1, |ll|)``)
    -- after that last step -- or when every free parameter is held on a bound.
    """
    lo, hi = model.bounds()
    theta = np.minimum(np.maximum(start, lo), hi)
    point = model.evaluate(theta, 2)
    if point is None:
        return Fit(
            theta=theta,
            ev=_dummy(model),
            converged=False,
            iterations=0,
            message="the marginal covariance is not positive definite at the start",
        )
    if not free.any() or not model.structures:
        return Fit(theta=theta, ev=point.ev, converged=True, iterations=0)
    previous = math.inf  # the last Newton step's decrement
    every_free = bool(free.all())
    for it in range(1, maxiter + 1):
        assert point.grad is not None
        assert point.hess is not None
        assert point.fisher is not None
        g = point.grad
        if every_free and bool(((theta > lo) & (theta < hi)).all()):
            move = free  # (inside the box: nothing held)
        else:
            held = free & (((theta <= lo) & (g <= 0)) | ((theta >= hi) & (g >= 0)))
            move = free & ~held
        if not move.any():
            return Fit(theta=theta, ev=point.ev, converged=True, iterations=it - 1)
        gm = g[move]
        newton = True
        every = bool(move.all())
        hess = -point.hess if every else -point.hess[move][:, move]
        direction = _solve(hess, gm)
        if direction is not None and float(gm @ direction) > _FAR:
            # far from the maximum (a predicted gain above _FAR / 2): a Fisher scoring
            # step, better than Newton's where the likelihood is far from quadratic
            # (Jennrich & Sampson 1976 [8]_)
            fisher_dir = _solve(point.fisher if every else point.fisher[move][:, move], gm)
            if fisher_dir is not None:
                direction, newton = fisher_dir, False
        if direction is None:
            newton = False
            direction = _solve(_ridge(point.fisher[move][:, move]), gm)
        if direction is None:
            return Fit(
                theta=theta,
                ev=point.ev,
                converged=False,
                iterations=it,
                message="singular information matrix",
            )
        decrement = float(gm @ direction)
        tol = threshold * max(1.0, abs(point.ev.ll))
        # Newton converging quadratically (this decrement below 1e-3 √tol and 1e-2 of the
        # last Newton step's): the decrement after one more step is below tol
        contracting = decrement <= 1e-3 * math.sqrt(tol) and decrement <= 1e-2 * previous
        previous = decrement if newton else math.inf
        if newton and (decrement <= tol or contracting):
            # the last Newton step: its gain (about half the decrement) can be below the
            # rounding of the log-likelihood, so no line search; accepted unless the
            # log-likelihood falls by more than rounding
            trial = theta.copy()
            trial[move] = theta[move] + direction
            last = model.evaluate(np.minimum(np.maximum(trial, lo), hi), 0)
            noise = 1e-12 * max(1.0, abs(point.ev.ll))
            if last is not None and last.ev.ll >= point.ev.ll - noise:
                return Fit(theta=last.theta, ev=last.ev, converged=True, iterations=it)
        new = _line_search(model, point, move, direction, lo, hi)
        if new is None and newton:
            newton = False
            fisher_dir = _solve(_ridge(point.fisher[move][:, move]), gm)
            if fisher_dir is not None:
                direction = fisher_dir
                decrement = float(gm @ direction)
                new = _line_search(model, point, move, direction, lo, hi)
        if new is None:
            # no step increases the likelihood: a maximum if the Newton decrement is small,
            # or if no parameter can change it to first order by more than the tolerance
            # over its own scale (a direction in which the likelihood is flat, e.g. a
            # variance confounded with the coefficients, where the curvature is rounding)
            scale = np.abs(theta[move]) + model.scales()[move]
            converged = decrement <= tol or float(np.abs(gm) @ scale) <= tol
            return Fit(
                theta=theta,
                ev=point.ev,
                converged=converged,
                iterations=it,
                message="" if converged else "no step increases the likelihood",
            )
        step = new.theta - theta
        theta, point = new.theta, new
        if (decrement <= tol and (newton or decrement <= tol * tol)) or bool(
            (np.abs(step) <= 1e-13 * np.maximum(np.abs(theta), 1e-8)).all()  # (a tiny step)
        ):
            return Fit(theta=theta, ev=point.ev, converged=True, iterations=it)
    return Fit(
        theta=theta,
        ev=point.ev,
        converged=False,
        iterations=maxiter,
        message=f"not converged in {maxiter} iterations",
    )


#: the Newton decrement above which :func:`maximise` takes a Fisher scoring step
_FAR = 0.1


def _dummy(model: Model) -> Evaluation:
    p = model.layout.p
    return Evaluation(
        ll=math.nan, beta=np.full(p, np.nan), a=np.full((p, p), np.nan), rss=math.nan
    )


def _solve(h: FloatArray, g: FloatArray) -> FloatArray | None:
    """``h⁻¹g`` for a positive definite `h` (None otherwise)."""
    n = h.shape[0]
    if n <= 2:  # (closed forms: h positive definite iff h00 > 0 and det > 0)
        h00 = float(h[0, 0])
        if n == 1:
            x0 = float(g[0]) / h00 if h00 > 0.0 else math.nan
            return np.array([x0]) if math.isfinite(x0) else None
        h01, h11 = 0.5 * float(h[0, 1] + h[1, 0]), float(h[1, 1])
        det = h00 * h11 - h01 * h01
        if not (h00 > 0.0 and det > 0.0):
            return None
        g0, g1 = float(g[0]), float(g[1])
        x0, x1 = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        return np.array([x0, x1]) if math.isfinite(x0) and math.isfinite(x1) else None
    try:
        c = np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        return None
    ci = np.linalg.inv(c)
    out = ci.T @ (ci @ g)
    return out if np.isfinite(out).all() else None


def _ridge(h: FloatArray) -> FloatArray:
    scale = float(np.max(np.abs(np.diagonal(h)))) if h.size else 1.0
    return h + np.eye(h.shape[0]) * (1e-10 * scale + 1e-300)


def _line_search(
    model: Model,
    point: _Point,
    move: BoolArray,
    direction: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
) -> _Point | None:
    """The projected step ``P(θ + α d)``, halving α until the log-likelihood rises by at
    least ``1e-4`` of the predicted first-order gain (and ``M`` is positive definite)."""
    assert point.grad is not None
    theta = point.theta
    ll0 = point.ev.ll
    alpha = 1.0
    every = bool(move.all())
    for _ in range(60):
        if every:
            trial = theta + alpha * direction
        else:
            trial = theta.copy()
            trial[move] = theta[move] + alpha * direction
        trial = np.minimum(np.maximum(trial, lo), hi)
        gain = float(point.grad @ (trial - theta))
        if (trial == theta).all():
            return None
        cand = model.evaluate(trial, 2)
        if cand is not None and cand.ev.ll >= ll0 + 1e-4 * gain:
            return cand
        if cand is not None and abs(cand.ev.ll - ll0) <= 1e-15 * max(1.0, abs(ll0)) and gain <= 0:
            return None
        alpha *= 0.5
    return None


def maximise_with_restarts(
    model: Model,
    start: FloatArray,
    free: BoolArray,
    *,
    maxiter: int = 200,
    threshold: float = 1e-10,
) -> Fit:
    """:func:`maximise`, and again from other starts where the likelihood may have another,
    higher maximum; the highest maximum found is kept. The other starts:

    * every free variance at 0 (the other parameters as found), when the log-likelihood
      there is higher than at the maximum found: the likelihood of a variance component can
      have an interior local maximum below its value on the boundary;
    * the start of every standard deviation left at 0: with ``HCS``/``UN`` a standard
      deviation held at 0 can be a local maximum where the correlation terms decrease the
      likelihood to first order (``∂ll/∂τ_j = ρτ_l s``), while a larger τ_j is better;
    * with a variance left at 0 and a free correlation (``CS``, ``HCS``, ``AR``, ``UN``),
      the start with the correlations at 1, 0 and -1 (the variances halved until ``M`` is
      positive definite): on a variance of 0 the correlation has no gradient, and whether a
      positive variance is better depends on it (for ``CS`` the derivative in τ² at τ² = 0
      is linear in ρ, so largest at ρ = ±1; ρ = 0 is the three-level model's σ²₁ = 0);
    * with a free correlation, the starts with the correlations at 0.5, 0 and -0.5 and the
      variances as started and five times larger: the likelihood in a correlation can have
      several local maxima, and which one is reached depends on the variances. These
      starts are also tried when the first fit does not converge (a ``ConvergenceError``
      only when none does).
    """
    fit = maximise(model, start, free, maxiter=maxiter, threshold=threshold)
    kinds = np.array(model.param_kinds())
    if kinds.size == 0:
        return fit
    variance = free & (kinds != COR)
    correlation = free & (kinds == COR)
    starts: list[FloatArray] = []
    if correlation.any() and (not fit.converged or not np.all(fit.theta[variance] <= 0.0)):
        # a correlation's likelihood can have several local maxima (with CS one at ρ < 0
        # below the maximum at ρ > 0 that the nested three-level model reaches), and a fit
        # heading for a singular M at one sign of ρ may converge from the other
        for scale in (1.0, 5.0):
            for rho in (0.5, 0.0, -0.5):
                again = start.copy()
                again[correlation] = rho
                again[variance] *= scale
                starts.append(again)
    twin = _intercept_twin_start(
        model, fit.theta if fit.converged else start, free, maxiter=maxiter, threshold=threshold
    )
    if twin is not None:
        starts.append(twin)
    if not fit.converged:
        best = None
        iterations = fit.iterations
        for origin in starts:
            other = maximise(model, origin, free, maxiter=maxiter, threshold=threshold)
            iterations += other.iterations
            if other.converged and (best is None or other.ev.ll > best.ev.ll):
                best = other
        return attrs.evolve(fit if best is None else best, iterations=iterations)
    if variance.any() and np.any(fit.theta[variance] > 0.0):
        zero = fit.theta.copy()
        zero[variance] = 0.0
        at_zero = model.evaluate(zero, 0)
        noise = 1e-12 * max(1.0, abs(fit.ev.ll))
        if at_zero is not None and at_zero.ev.ll > fit.ev.ll + noise:
            starts.append(zero)
    stuck = free & (kinds == SD) & (fit.theta <= 0.0) & (start > 0.0)
    if stuck.any():
        again = fit.theta.copy()
        again[stuck] = start[stuck]
        starts.append(again)
    if correlation.any() and np.any(fit.theta[variance] <= 0.0):
        for rho in (1.0, 0.0, -1.0):
            again = start.copy()
            again[correlation] = rho
            for _ in range(30):  # (smaller variances until M is positive definite)
                if model.evaluate(again, 0) is not None:
                    starts.append(again)
                    break
                again = again.copy()
                again[variance] *= 0.5
    best = fit
    iterations = fit.iterations
    for origin in starts:
        other = maximise(model, origin, free, maxiter=maxiter, threshold=threshold)
        iterations += other.iterations
        if other.converged and other.ev.ll > best.ev.ll:
            best = other
    return attrs.evolve(best, iterations=iterations)


def _intercept_twin_start(
    model: Model, theta: FloatArray, free: BoolArray, *, maxiter: int, threshold: float
) -> FloatArray | None:
    """The start of a model with ``CS`` terms at the maximum of its *intercept twin*: each
    ``CS`` term ``τ² [inner equal] + ρτ² [inner different]`` (within an outer level) is,
    for ρ in [0, 1], the two nested random intercepts ``ρτ² [same outer] + (1 - ρ)τ²
    [same outer and inner]`` (Konstantopoulos 2011 [2]_). The twin -- random intercepts,
    with the closed forms and no correlation -- is maximised (with its own restarts) and
    its maximum mapped back (``τ² = σ²₁ + σ²₂``, ``ρ = σ²₁/τ²``): so the ``CS`` fit is
    never below the nested model's maximum, which a local search from the usual starts
    can miss (a boundary maximum at ρ = 1, or one at ρ < 0 that is lower). None when the
    model has no ``CS`` term with both parameters free."""
    bases: list[Basis] = []
    structures: list[Structure] = []
    cs_at: list[int] = []
    c = i = 0
    for st in model.structures:
        own = model.layout.bases[c : c + st.n_bases]
        if st.kind == "CS" and bool(free[i]) and bool(free[i + 1]):
            same = own[0]
            bases += [Basis(group=same.group, inner=None, relation=("all",)), same]
            structures += [Structure("sigma2"), Structure("sigma2")]
            cs_at.append(i)
        else:
            bases += own
            structures.append(st)
        c += st.n_bases
        i += st.n_params
    if not cs_at:
        return None
    lay = model.layout
    twin = Model(
        layout=make_layout(lay.y, lay.x, lay.v, bases, lay.links, lay.v_pairs),
        structures=tuple(structures),
        reml=model.reml,
    )
    start = theta.copy()
    for i in cs_at:
        rho = min(max(float(theta[i + 1]), 0.0), 1.0)
        start[i], start[i + 1] = rho * theta[i], (1.0 - rho) * theta[i]
    fit = maximise_with_restarts(twin, start, free, maxiter=maxiter, threshold=threshold)
    if not fit.converged:
        return None
    out: FloatArray = np.array(fit.theta, dtype=np.float64)
    for i in cs_at:
        tau2 = float(fit.theta[i] + fit.theta[i + 1])
        out[i], out[i + 1] = tau2, float(fit.theta[i]) / tau2 if tau2 > 0.0 else 0.0
    return out
