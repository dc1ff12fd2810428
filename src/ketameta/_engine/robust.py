"""Cluster-robust (sandwich) covariance of a weighted least-squares fit, its small-sample
adjustments and the degrees of freedom of its tests (private).

The fit: ``b = (XᵀWX)⁻¹XᵀWy`` with ``W = Θ⁻¹`` block-diagonal by cluster, where Θ is the
working model's marginal covariance (``diag(v + τ²)`` for the random-effects model, ``V + ZGZᵀ``
restricted to the clusters for a multilevel model, the inverse weights for robumeta's
weights). The estimator is

    V^CR = c · B (Σ_j X_jᵀ W_j A_j e_j e_jᵀ A_jᵀ W_j X_j) B,   B = (XᵀWX)⁻¹,

with ``A_j = I`` (CR0, CR1; ``c`` the CR1 factor), ``A_j = (I - H_jj)⁻¹`` (CR3) or the CR2
matrices of Bell & McCaffrey (2002) as Pustejovsky & Tipton (2018, eq. 5) define them for a
working model Θ: ``A_j = D_jᵀ (D_j (Θ_j - X_j B X_jᵀ) D_jᵀ)^{+1/2} D_j`` for any ``D_j`` with
``D_jᵀD_j = Θ_j`` (the result does not depend on the choice; the power is the symmetric
square root of the Moore-Penrose inverse). ``Θ_j - X_j B X_jᵀ`` is the covariance of the
residuals of cluster j under the working model, so CR2 is unbiased when Θ is right.

Everything is computed in whitened coordinates: with ``Θ_j = L_jL_jᵀ`` (Cholesky),
``Z_j = L_j⁻¹X_j`` and ``r_j = L_j⁻¹e_j``, ``XᵀWX = ZᵀZ = RᵀR`` (QR of Z, so ``B`` never
forms an ill-conditioned ``XᵀWX``), ``I - Z_j B Z_jᵀ = I - Q_jQ_jᵀ`` and with ``D_j = L_jᵀ``,
``K_j = L_jᵀL_j``: ``X_jᵀW_jA_j = Z_jᵀ F_j L_j⁻¹`` where ``F_j`` is ``I`` (CR0),
``(I - Q_jQ_jᵀ)⁻¹`` (CR3) or ``(K_j (I - Q_jQ_jᵀ) K_j)^{+1/2} K_j`` (CR2).

The small-sample degrees of freedom come from the working model too (Tipton 2015; Tipton &
Pustejovsky 2015): for a contrast ``c``, ``cᵀV^CR c = Σ_j z_j²`` with ``z_j =
cᵀB X_jᵀW_jA_j e_j``; under the working model the ``z_j`` are normal with covariance

    P_jk = δ_jk cᵀΓ_j c - cᵀS_j B S_kᵀ c,   Γ_j = B X_jᵀW_jA_jΘ_jA_jᵀW_jX_j B,
                                             S_j = B X_jᵀW_jA_j X_j,

(derived from ``e = (I - H)y``, ``Var(y) = Θ``, ``W = Θ⁻¹``), so ``E = tr P`` and
``Var = 2 tr P²``: the Satterthwaite df is ``(tr P)²/tr P²``. For q contrasts at once (the
HTZ test), the same covariances of the standardised ``Ω^{-1/2}C z`` give Zhang's (2012)
degrees of freedom of the approximating Hotelling T² (Tipton & Pustejovsky 2015, eq. 12).
The traces are evaluated through p × p products (never m × m matrices).

Another working model. clubSandwich's ``target`` Φ replaces Θ in the CR2 adjustment and in
the moments above while the weights stay ``W = Θ⁻¹`` (Pustejovsky & Tipton 2018, eq. 5
with Φ ≠ W⁻¹). In the coordinates whitened by Θ, ``Ψ_j = L_j⁻¹Φ_jL_j⁻ᵀ`` (``I`` for the
model) and the whitened residuals have covariance ``M̃ = (I - QQᵀ)Ψ(I - QQᵀ)``, whose block
j is ``Ψ_j - Q_jQ_jᵀΨ_j - Ψ_jQ_jQ_jᵀ + Q_jΩQ_jᵀ``, ``Ω = Σ_j Q_jᵀΨ_jQ_j``. With ``D_j =
N_jᵀL_jᵀ`` (``Ψ_j = N_jN_jᵀ``, so ``D_jᵀD_j = Φ_j``) and ``E_j = K_jN_j``:
``F_j = N_j (E_jᵀM̃_jE_j)^{+1/2} E_jᵀ``. The covariance of the cluster terms becomes
``P_jk = δ_jk γ_j - (R_jU_kᵀ + U_jR_kᵀ)`` with ``γ_j = C Q_jᵀF_jΨ_jF_jᵀQ_j Cᵀ``, ``R_j =
C Q_jᵀF_jQ_j`` and ``U_j = C (Q_jᵀF_jΨ_jQ_j - ½ Q_jᵀF_jQ_j Ω)`` (``U_j = R_j/2`` for the
model); the pairs of clusters are then summed directly. robumeta's user weights take one
target for the adjustment and another (the identity) for the degrees of freedom.

References
----------
Bell, R. M., & McCaffrey, D. F. (2002). Bias reduction in standard errors for linear
regression with multi-stage samples. Survey Methodology, 28(2), 169-181.
Pustejovsky, J. E., & Tipton, E. (2018). Small-sample methods for cluster-robust variance
estimation and hypothesis testing in fixed effects models. Journal of Business & Economic
Statistics, 36(4), 672-683. https://doi.org/10.1080/07350015.2016.1247004
Tipton, E. (2015). Small sample adjustments for robust variance estimation with
meta-regression. Psychological Methods, 20(3), 375-393. https://doi.org/10.1037/met0000011
Tipton, E., & Pustejovsky, J. E. (2015). Small-sample adjustments for tests of moderators
and model fit using robust variance estimation in meta-regression. Journal of Educational
and Behavioral Statistics, 40(6), 604-634. https://doi.org/10.3102/1076998615606099
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from .._results import Owned, array_field
from .._typing import FloatArray

__all__ = [
    "ADJUSTMENTS",
    "ClusterPieces",
    "cluster_pieces",
    "contrast_covariance",
    "lugannani_rice",
    "saddlepoint_test",
    "satterthwaite_df",
    "wald_htz_df",
    "wald_statistic",
]

#: forms of the adjustment matrices A_j
ADJUSTMENTS = ("CR0", "CR2", "CR3")
#: eigenvalues of I - H_jj (in [0, 1]) at or below this are zero: the cluster fits those
#: directions exactly (e.g. a moderator that is non-zero in one cluster only)
RANK_TOL = 1e-10
#: the cheap sums over pairs of clusters are used while their cancellation costs less than
#: this many units of rounding (as in the engine: ``pivoted.LIMIT``)
LIMIT = 1024.0

IntArray = np.ndarray[Any, np.dtype[np.intp]]


class SingularClusterError(ValueError):
    """``I - H_jj`` is singular for a cluster (CR3 is undefined there)."""

    def __init__(self, cluster: int) -> None:
        self.cluster = cluster
        super().__init__(cluster)


class NotPositiveDefiniteError(ValueError):
    """The working covariance of a cluster is not positive definite."""

    def __init__(self, cluster: int) -> None:
        self.cluster = cluster
        super().__init__(cluster)


@attrs.frozen(kw_only=True)
class ClusterPieces:
    """What the covariance and every degrees-of-freedom approximation need, per cluster,
    in the orthonormal parametrisation ``β̃ = Rβ`` (``XᵀWX = RᵀR``), where the bread is
    the identity: the covariance of an ill-conditioned design (years as a moderator) and
    tests of several of its coefficients stay accurate.

    ``r`` (p, p) the triangular factor; ``u`` (m, p) the cluster scores ``R⁻ᵀX_jᵀW_jA_j e_j``;
    ``gamma`` (m, p, p) and ``s`` (m, p, p) the matrices Γ_j and S_j of the module docstring
    in that parametrisation (without the CR1 factor): ``Γ_j = R Γ_j(β) Rᵀ``, ``S_j =
    R S_j(β) R⁻¹``; ``t`` and ``omega`` the matrices ``T_j = Q_jᵀF_jΨ_jQ_j`` and ``Ω =
    Σ_j Q_jᵀΨ_jQ_j`` of a target Φ other than the model (``Ψ_j = L_j⁻¹Φ_jL_j⁻ᵀ``).
    """

    r: FloatArray = array_field()
    u: FloatArray = array_field()
    gamma: FloatArray = array_field()
    s: FloatArray = array_field()
    #: ``T_j`` (m, p, p) and ``Ω`` (p, p) of a target other than the model (module
    #: docstring, "Another working model"); ``T_j = S_j`` and ``Ω = I`` for the model
    t: FloatArray = array_field()
    omega: FloatArray = array_field()
    #: the target is the model's own covariance (W = Θ⁻¹): the cheap forms of the sums
    model_target: bool = True

    @property
    def rinv(self) -> FloatArray:
        """``R⁻¹``."""
        return np.asarray(np.linalg.solve(self.r, np.eye(self.r.shape[0])), dtype=np.float64)

    @property
    def bread(self) -> FloatArray:
        """``(XᵀWX)⁻¹ = R⁻¹R⁻ᵀ``."""
        ri = self.rinv
        return np.asarray(ri @ ri.T, dtype=np.float64)

    def vcov(self, factor: float = 1.0) -> FloatArray:
        """The sandwich ``factor · B (Σ_j X_jᵀW_jA_j e_j e_jᵀA_jᵀW_jX_j) B`` of β."""
        half = self.u @ self.rinv.T  # (m, p): rows u_jᵀ R⁻ᵀ
        v = half.T @ half
        return np.asarray(factor * 0.5 * (v + v.T), dtype=np.float64)

    def contrasts(self, c: FloatArray) -> FloatArray:
        """Contrast rows for β as rows for β̃: ``C R⁻¹``."""
        return np.asarray(np.linalg.solve(self.r.T, c.T).T, dtype=np.float64)


def _whiten(
    x: FloatArray,
    e: FloatArray,
    theta: FloatArray,
    groups: list[IntArray],
    group_clusters: list[IntArray],
) -> tuple[FloatArray, FloatArray, list[FloatArray], list[FloatArray]]:
    """Whitened design and residuals (rows in the input order), and per size group the
    cluster blocks of ``K_j = L_jᵀL_j`` and (for a matrix Θ only) of ``L_j``. `theta` is the
    (k,) diagonal or the (k, k) working covariance (block-diagonal by cluster)."""
    z = np.empty_like(x)
    r = np.empty_like(e)
    ks: list[FloatArray] = []
    lows: list[FloatArray] = []
    if theta.ndim == 1:
        root = np.sqrt(theta)
        z[:] = x / root[:, None]
        r[:] = e / root
        for idx in groups:
            t = theta[idx]  # (g, n)
            ks.append(t[:, :, None] * np.eye(idx.shape[1]))
        return z, r, ks, lows  # (no L_j blocks: a target divides by √θ directly)
    for idx, members in zip(groups, group_clusters, strict=True):
        blocks = theta[idx[:, :, None], idx[:, None, :]]  # (g, n, n)
        try:
            low = np.linalg.cholesky(blocks)
        except np.linalg.LinAlgError:
            bad = next(
                j for j in range(blocks.shape[0]) if not np.all(np.linalg.eigvalsh(blocks[j]) > 0)
            )
            raise NotPositiveDefiniteError(int(members[bad])) from None
        z[idx] = np.linalg.solve(low, x[idx])
        r[idx] = np.linalg.solve(low, e[idx][:, :, None])[:, :, 0]
        ks.append(np.swapaxes(low, 1, 2) @ low)
        lows.append(np.asarray(low, dtype=np.float64))
    return z, r, ks, lows


def _whitened_target(
    target: FloatArray,
    theta: FloatArray,
    lows: list[FloatArray],
    groups: list[IntArray],
    group_clusters: list[IntArray],
) -> list[FloatArray]:
    """Per size group the blocks ``Ψ_j = L_j⁻¹ Φ_j L_j⁻ᵀ`` of the target Φ ((k,) or (k, k))
    in the coordinates whitened by the model (``Ψ_j = I`` when Φ is the model). `lows`: the
    Cholesky blocks of a matrix Θ, empty for a diagonal Θ (``theta``: then ``L = √θ``)."""
    out: list[FloatArray] = []
    for i, (idx, members) in enumerate(zip(groups, group_clusters, strict=True)):
        if target.ndim == 1:
            blocks = target[idx][:, :, None] * np.eye(idx.shape[1])
        else:
            blocks = target[idx[:, :, None], idx[:, None, :]]
        lam = np.linalg.eigvalsh(blocks)
        bad = np.flatnonzero(~(lam[:, 0] > 0))
        if bad.size:
            raise NotPositiveDefiniteError(int(members[bad[0]]))
        if not lows:  # diagonal Θ
            root = np.sqrt(theta[idx])
            psi = blocks / (root[:, :, None] * root[:, None, :])
        else:
            low = lows[i]
            half = np.linalg.solve(low, blocks)  # L⁻¹Φ
            psi = np.swapaxes(np.linalg.solve(low, np.swapaxes(half, 1, 2)), 1, 2)  # L⁻¹ΦL⁻ᵀ
        out.append(0.5 * (psi + np.swapaxes(psi, 1, 2)))
    return out


def cluster_pieces(
    x: FloatArray,
    resid: FloatArray,
    theta: FloatArray,
    codes: IntArray,
    n_clusters: int,
    adjustment: str,
    target: FloatArray | None = None,
    df_target: FloatArray | None = None,
) -> ClusterPieces:
    """The cluster-level pieces of the sandwich for design `x` (k, p), residuals `resid`
    (k,), working covariance `theta` ((k,) diagonal or (k, k), block-diagonal by cluster)
    and cluster codes ``0 .. n_clusters - 1`` (every code present).

    `adjustment` is ``"CR0"`` (also CR1: the factor is applied later), ``"CR2"`` or
    ``"CR3"``. `target` (shaped as `theta`): the working model Φ of the CR2 adjustment and
    of the degrees of freedom when it is not the model's own covariance (the weights stay
    ``W = Θ⁻¹``). `df_target`: a different working model for the degrees of freedom only
    (robumeta's user weights; default: `target`). Raises :class:`SingularClusterError`
    for CR3 when ``I - H_jj`` is singular and :class:`NotPositiveDefiniteError` for a
    working covariance or target block that is not positive definite (both carry the
    cluster code).
    """
    p = x.shape[1]
    sizes = np.bincount(codes, minlength=n_clusters)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)))
    # clusters grouped by size: (g, n) row indices of the g clusters of n effects
    groups: list[IntArray] = []
    group_clusters: list[IntArray] = []
    for n in np.unique(sizes):
        members = np.flatnonzero(sizes == n)
        rows = order[starts[members][:, None] + np.arange(n)]
        groups.append(np.asarray(rows, dtype=np.intp))
        group_clusters.append(members)
    if df_target is None:
        df_target = target
    elif target is None:
        target = theta
    targets = [a for a in (target, df_target) if a is not None]
    if any(a.ndim != theta.ndim for a in targets):  # (diagonal and matrix: all matrices)

        def square(a: FloatArray) -> FloatArray:
            return a if a.ndim == 2 else np.diag(a)

        theta = square(theta)
        target = None if target is None else square(target)
        df_target = None if df_target is None else square(df_target)
    z, r, ks, lows = _whiten(x, resid, theta, groups, group_clusters)
    q, rr = np.linalg.qr(z)
    if not np.all(np.abs(np.diag(rr)) > 0):
        msg = "the design is rank-deficient"
        raise ValueError(msg)

    def whitened(phi: FloatArray | None) -> tuple[list[FloatArray] | None, FloatArray]:
        if phi is None:
            return None, np.eye(p)
        blocks = _whitened_target(phi, theta, lows, groups, group_clusters)
        om = sum(
            (
                np.einsum("gnp,gnm,gmr->pr", q[i], b, q[i])
                for i, b in zip(groups, blocks, strict=True)
            ),
            start=np.zeros((p, p)),
        )
        return blocks, 0.5 * (om + om.T)

    psis_adj, omega_adj = whitened(target)
    psis, omega = (psis_adj, omega_adj) if df_target is target else whitened(df_target)
    u = np.empty((n_clusters, p))
    gamma = np.empty((n_clusters, p, p))
    s = np.empty((n_clusters, p, p))
    t = np.empty((n_clusters, p, p)) if psis is not None else s
    for i, (idx, members, kk) in enumerate(zip(groups, group_clusters, ks, strict=True)):
        n = idx.shape[1]
        rg, qg = r[idx], q[idx]  # (g, n), (g, n, p)
        qt = np.swapaxes(qg, 1, 2)  # (g, p, n)
        psi = None if psis is None else psis[i]  # (the working model of the df)
        psi_adj = None if psis_adj is None else psis_adj[i]  # (of the CR2 adjustment)
        if adjustment == "CR0":  # F_j = I
            u[members] = (qt @ rg[:, :, None])[:, :, 0]
            s[members] = qt @ qg
            if psi is None:
                gamma[members] = s[members]
            else:
                t[members] = qt @ psi @ qg
                gamma[members] = t[members]
            continue
        c = np.eye(n) - qg @ qt  # I - H_jj in whitened form
        c = 0.5 * (c + np.swapaxes(c, 1, 2))
        rank = np.sum(np.linalg.eigvalsh(c) > RANK_TOL, axis=1)
        if adjustment == "CR3":
            if np.any(rank < n):
                raise SingularClusterError(int(members[np.flatnonzero(rank < n)[0]]))
            f = np.linalg.inv(c)
        elif psi_adj is None:  # CR2 with the model as working model
            b = kk @ c @ kk
            b = 0.5 * (b + np.swapaxes(b, 1, 2))
            lam, vec = np.linalg.eigh(b)  # ascending
            keep = np.arange(n)[None, :] >= (n - rank)[:, None]
            inv_root = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
            f = (vec * inv_root[:, None, :]) @ np.swapaxes(vec, 1, 2) @ kk
        else:  # CR2 with the target: F_j = N_j (E_jᵀ M̃_j E_j)^{+1/2} E_jᵀ, E_j = K_j N_j
            qq = qg @ qt
            mt = psi_adj - qq @ psi_adj - psi_adj @ qq + qg @ omega_adj @ qt  # Cov(residuals)
            nn = np.linalg.cholesky(psi_adj)
            ee = kk @ nn
            b = np.swapaxes(ee, 1, 2) @ mt @ ee
            b = 0.5 * (b + np.swapaxes(b, 1, 2))
            lam, vec = np.linalg.eigh(b)
            keep = np.arange(n)[None, :] >= (n - rank)[:, None]
            inv_root = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
            f = nn @ (vec * inv_root[:, None, :]) @ np.swapaxes(vec, 1, 2) @ np.swapaxes(ee, 1, 2)
        u[members] = (qt @ (f @ rg[:, :, None]))[:, :, 0]
        s[members] = qt @ f @ qg
        g_half = np.swapaxes(f, 1, 2) @ qg  # (g, n, p): F_jᵀ Q_j
        if psi is None:
            gamma[members] = np.swapaxes(g_half, 1, 2) @ g_half
        else:
            gamma[members] = np.swapaxes(g_half, 1, 2) @ psi @ g_half
            t[members] = qt @ f @ psi @ qg
    model = psis is None
    s_owned = _own(s)  # (T = S for the model)
    return ClusterPieces(
        r=_own(np.asarray(rr, dtype=np.float64)),
        u=_own(u),
        gamma=_own(gamma),
        s=s_owned,
        t=s_owned if model else _own(t),
        omega=_own(omega),
        model_target=model,
    )


def _own(a: FloatArray) -> Any:
    """An array made here, handed to the pieces without a copy."""
    return Owned(a)


def _contrast_moments(
    pieces: ClusterPieces, contrasts: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """For contrast rows C (q, p) of β̃: ``γ_j = C Γ_j Cᵀ`` (m, q, q), ``R_j = C S_j``
    (m, q, p) and, for a target other than the model, ``U_j = C (T_j - S_j Ω/2)``, so that
    ``P_st[j, k] = δ_jk γ_j[s, t] - (R_j U_kᵀ + U_j R_kᵀ)[s, t]`` (the bread is I; for the
    model ``U_j = R_j/2``, returned as None)."""
    gam = contrasts @ pieces.gamma @ contrasts.T
    rr = contrasts @ pieces.s
    if pieces.model_target:
        return gam, rr, None
    uu = contrasts @ (pieces.t - 0.5 * pieces.s @ pieces.omega)
    return gam, rr, uu


def _cluster_covariances(gam: FloatArray, rr: FloatArray, uu: FloatArray | None) -> FloatArray:
    """``D_j = γ_j - R_j R_jᵀ`` (m, q, q) (``γ_j - R_j U_jᵀ - U_j R_jᵀ`` for a target): the
    covariance of cluster j's terms ``C z_j`` (the diagonal blocks of P), taken per cluster:
    the sums ``Σ_j γ_j`` and ``Σ_j R_jR_jᵀ`` nearly cancel when a cluster almost determines a
    contrast."""
    if uu is None:
        d = gam - np.einsum("jsp,jtp->jst", rr, rr)
    else:
        cross = np.einsum("jsp,jtp->jst", rr, uu)
        d = gam - cross - np.swapaxes(cross, 1, 2)
    return np.asarray(0.5 * (d + np.swapaxes(d, 1, 2)), dtype=np.float64)


def _pairs_sum(rr: FloatArray, uu: FloatArray | None = None) -> float:
    """``Σ_{j≠k} [(tr M_jk)² + tr(M_jk M_jk)]`` with ``M_jk = R_j R_kᵀ`` (q × q; ``R_j U_kᵀ +
    U_j R_kᵀ`` for a target): the part of ``Σ_st Var(d_st)`` from pairs of distinct clusters
    (the sign of ``P_jk = -M_jk`` squares away).

    The sum over all pairs is a sum of p × p (qp × qp) products; the pairs j = k, subtracted
    from it, dominate it when one cluster carries most of a contrast (its terms cancel to 1e-8
    relative). While the cancellation costs less than ``LIMIT`` units of rounding the cheap
    form is used; beyond, and for a target other than the model, the pairs are summed
    directly (m × m products in blocks)."""
    m, q, p = rr.shape
    if uu is None:
        flat = rr.reshape(m, q * p)
        vv = flat.T @ flat  # Σ_jk (vec R_j · vec R_k)² = ||VᵀV||²
        kmat = np.einsum("jtp,jsr->tspr", rr, rr)  # K_ts = Σ_j R_jt R_jsᵀ
        full = float(np.sum(vv * vv) + np.einsum("tspr,tsrp->", kmat, kmat))
        gram = np.einsum("jsp,jtp->jst", rr, rr)  # R_j R_jᵀ
        self_ = float(np.sum(np.einsum("jss->j", gram) ** 2) + np.sum(gram * gram))
        cheap = full - self_
        if cheap > 0.0 and full + self_ <= LIMIT * cheap:
            return cheap
    total = 0.0
    block = max(1, 2**20 // max(m * q * q, 1))
    for start in range(0, m, block):
        stop = min(start + block, m)
        mm = np.einsum("jsp,ktp->jkst", rr[start:stop], rr if uu is None else uu)  # (b, m, q, q)
        if uu is not None:
            mm = mm + np.einsum("jsp,ktp->jkst", uu[start:stop], rr)
        own = np.arange(start, stop)
        mm[own - start, own] = 0.0
        total += float(np.sum(np.einsum("jkss->jk", mm) ** 2) + np.einsum("jkst,jkts->", mm, mm))
    return total


def _variance_sum(d: FloatArray, rr: FloatArray, uu: FloatArray | None) -> float:
    """``Σ_st Var(d_st)`` of ``d = Σ_j (Cz_j)(Cz_j)ᵀ`` with ``Cov(Cz_j, Cz_k) = δ_jk D_j -
    M_jk`` (Gaussian quadratic forms, Isserlis):
    ``Σ_jk [(tr P_jk)² + tr(P_jk P_jk)]``, the pairs j = k from D_j directly."""
    own = float(np.sum(np.einsum("jss->j", d) ** 2) + np.einsum("jst,jts->", d, d))
    return own + _pairs_sum(rr, uu)


def satterthwaite_df(pieces: ClusterPieces, contrasts: FloatArray) -> FloatArray:
    """Satterthwaite degrees of freedom ``(tr P)² / tr P²`` of each contrast row (q,) of β."""
    gam, rr, uu = _contrast_moments(pieces, pieces.contrasts(contrasts))
    out = np.empty(contrasts.shape[0])
    for i in range(contrasts.shape[0]):
        ri = rr[:, i : i + 1, :]  # (m, 1, p)
        ui = None if uu is None else uu[:, i : i + 1, :]
        d = _cluster_covariances(gam[:, i : i + 1, i : i + 1], ri, ui)
        trace = float(np.sum(d))
        trace_sq = 0.5 * _variance_sum(d, ri, ui)  # Var(Σ z_j²) = 2 tr P²
        out[i] = trace * trace / trace_sq if trace_sq > 0 else np.nan
    return out


def contrast_covariance(pieces: ClusterPieces, contrast: FloatArray) -> FloatArray:
    """The (m, m) covariance ``P`` of the cluster terms ``z_j = cᵀB X_jᵀW_jA_j e_j`` of one
    contrast row `c` (p,) of β under the working model (``Σ_j z_j² = cᵀV^CR c``)."""
    gam, rr, uu = _contrast_moments(pieces, pieces.contrasts(contrast[None, :]))
    a = rr[:, 0, :]
    v = 0.5 * a if uu is None else uu[:, 0, :]
    cross = a @ v.T
    out = np.diag(gam[:, 0, 0]) - cross - cross.T
    return np.asarray(0.5 * (out + out.T), dtype=np.float64)


def _orthonormal_rows(pieces: ClusterPieces, contrasts: FloatArray) -> FloatArray:
    """Orthonormal rows spanning the contrasts of β mapped to β̃ (``C R⁻¹``): the Wald
    statistic and the HTZ degrees of freedom do not change when the q contrasts are
    replaced by any invertible combination of them, and orthonormal ones keep the
    q × q algebra well conditioned."""
    qc, rc = np.linalg.qr(pieces.contrasts(contrasts).T)
    d = np.abs(np.diag(rc))
    if not np.all(d > d.max() * 1e-12):
        msg = "the constraints are linearly dependent"
        raise ValueError(msg)
    return np.asarray(qc.T, dtype=np.float64)


def wald_statistic(pieces: ClusterPieces, coef: FloatArray, contrasts: FloatArray) -> float:
    """``Q = (Cb)ᵀ (C V Cᵀ)⁻¹ (Cb)`` with the sandwich V (without the CR1 factor); NaN when
    ``C V Cᵀ`` is singular (a cluster alone determines a combination of the contrasts, so
    the sandwich has no variance in that direction)."""
    o = _orthonormal_rows(pieces, contrasts)
    ob = o @ (pieces.r @ coef)
    half = pieces.u @ o.T  # (m, q)
    lam, vec = np.linalg.eigh(half.T @ half)
    if not lam[0] > lam[-1] * RANK_TOL:
        return float("nan")
    proj = vec.T @ ob
    return float(np.sum(proj * proj / lam))


def wald_htz_df(pieces: ClusterPieces, contrasts: FloatArray) -> float:
    """Zhang's degrees of freedom ``ν = q(q+1) / Σ_st Var(d_st)`` of the Hotelling T²
    approximation (HTZ) for the q contrast rows of β, where ``d`` is ``Ω^{-1/2} C V Cᵀ
    Ω^{-1/2}`` and Ω its expectation, under the working model (Tipton & Pustejovsky 2015)."""
    o = _orthonormal_rows(pieces, contrasts)
    q = o.shape[0]
    gam, rr, uu = _contrast_moments(pieces, o)
    d = _cluster_covariances(gam, rr, uu)
    omega = d.sum(axis=0)
    lam, vec = np.linalg.eigh(omega)
    # (a pseudo-inverse root: Ω is singular when a cluster alone determines a contrast,
    # whose residuals then vanish, e.g. a moderator non-zero in one cluster only)
    keep = lam > lam[-1] * RANK_TOL
    w = (vec * np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)) @ vec.T
    ws = None if uu is None else np.einsum("su,jup->jsp", w, uu)
    total = _variance_sum(w @ d @ w, np.einsum("su,jup->jsp", w, rr), ws)  # standardised
    return q * (q + 1) / total if total > 0 else float("nan")


def saddlepoint_test(tstat: float, lam: FloatArray) -> tuple[float, float]:
    """The saddlepoint p-value of a cluster-robust t statistic (Bell & McCaffrey 2002,
    sec. 4; Pustejovsky & Tipton 2018) and the saddlepoint ŝ.

    Under the working model ``cᵀb ~ N(0, σ²)`` independent of ``cᵀV^CR c = Σ_i λ_i χ²_1``
    (λ the eigenvalues of the covariance P of the cluster terms; ``σ² = Σλ`` for an
    unbiased estimator), so ``P(T² > t²) = P(X > 0)`` for ``X = Σ_i g_i χ²_1`` with
    ``g = (1, -t² λ/Σλ)``. Its cumulant generating function is ``K(s) = -½ Σ log(1 -
    2g_i s)``; with ``K'(ŝ) = 0``, ``w = sign(ŝ) √(-2K(ŝ))`` and ``u = ŝ √K''(ŝ)`` the
    Lugannani-Rice (1980) approximation is ``1 - Φ(w) + φ(w)(1/u - 1/w)`` (Kuonen 1999, for
    quadratic forms); at ``t² = 1`` (ŝ = 0) its limit ``½ - κ₃/(6√(2π) κ₂^{3/2})``.
    """
    from scipy import optimize

    lam = np.clip(np.asarray(lam, dtype=np.float64), 0.0, None)
    total = float(np.sum(lam))
    t2 = float(tstat) ** 2
    if not (total > 0 and math.isfinite(t2)):
        return math.nan, math.nan
    if t2 == 0.0:
        return -math.inf, 1.0
    g = np.concatenate(([1.0], -t2 * lam[lam > 0] / total))

    def k1(x: float) -> float:
        return float(np.sum(g / (1.0 - 2.0 * g * x)))

    kappa2 = 2.0 * float(np.sum(g * g))
    if t2 == 1.0:  # ŝ = 0: the mean of X is 0
        kappa3 = 8.0 * float(np.sum(g**3))
        return 0.0, 0.5 - kappa3 / (6.0 * math.sqrt(2.0 * math.pi) * kappa2**1.5)
    if t2 > 1.0:  # K'(0) = 1 - t² < 0: ŝ in (0, 1/2)
        lo, hi = 0.0, 0.5 * (1.0 - 1e-15)
    else:  # ŝ in (1/(2 min g), 0)
        lo, hi = 0.5 / float(np.min(g)) * (1.0 - 1e-15), 0.0
    s_hat = float(optimize.brentq(k1, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps))
    return s_hat, lugannani_rice(g, s_hat)


def lugannani_rice(g: FloatArray, s: float) -> float:
    """``P(Σ g_i χ²_1 > 0)`` by the Lugannani-Rice formula at the saddlepoint `s` (see
    :func:`saddlepoint_test`).

    With ``a_i = 2 g_i s``: ``w² = Σ log(1 - a_i)`` and ``u² = ½ Σ a_i²/(1 - a_i)²``. Near
    ``s = 0`` the correction ``1/u - 1/w`` is a difference of two large numbers; it is
    computed as ``(w² - u²)/((w + u) u w)``, where at the saddlepoint (``Σ a_i/(1 - a_i) =
    0``) ``w² = Σ_{n≥2} (n-1)/n Σ_i a_iⁿ`` and ``w² - u² = -Σ_{n≥3} (n-1)(n-2)/(2n) Σ_i
    a_iⁿ``: series without cancellation while every ``|a_i| < 1/2``.
    """
    from scipy import special

    a = 2.0 * g * s
    u2 = 0.5 * float(np.sum(a * a / ((1.0 - a) * (1.0 - a))))
    if float(np.max(np.abs(a))) < 0.5:
        n = np.arange(2, 64)
        powers = np.sum(a[None, :] ** n[:, None], axis=1)  # Σ_i a_iⁿ, n = 2 .. 63
        w2 = float(np.sum((n - 1) / n * powers))
        d = -float(np.sum((n - 1) * (n - 2) / (2.0 * n) * powers))
    else:
        w2 = float(np.sum(np.log1p(-a)))
        d = w2 - u2
    w = math.copysign(math.sqrt(max(w2, 0.0)), s)
    u = math.copysign(math.sqrt(u2), s)
    tail = float(special.ndtr(-w))
    density = math.exp(-0.5 * w * w) / math.sqrt(2.0 * math.pi)
    return tail + density * d / ((w + u) * u * w)
