"""Generalized linear mixed models of 2×2 tables, proportions and counts, fitted by maximum
likelihood with adaptive Gauss–Hermite quadrature over the random effects (the engine of
:func:`ketameta.pool_glmm`).

Every model here has the same shape. Study ``i`` contributes ``J`` observations (the two
groups of a table, or one count) whose linear predictors are

    η_ij = offset_ij + X_j β + S_j α_i + Z_j (λ ⊙ u_i),    u_i ~ N(0, I_q),

with fixed effects ``β`` shared by the studies, nuisance parameters ``α_i`` of each study
(fixed study effects, or the study effects of a saturated model), random effects scaled by
``λ ≥ 0`` (``τ``, and ``σ`` for random study effects; lme4's parametrisation, in which
``λ = 0`` is an ordinary point) and a binomial, Poisson or non-central hypergeometric
(conditional) likelihood of the counts (Agresti 2002; Jackson et al. 2018; Stijnen et al.
2010). The marginal likelihood of a study is

    L_i = ∫ Π_j f(y_ij | η_ij(u)) φ(u) du,

computed by adaptive Gauss–Hermite quadrature (Liu & Pierce 1994; Pinheiro & Bates 1995):
nodes centred at the mode of the integrand and scaled by its curvature, ``Q`` nodes per
dimension (``Q = 1`` is the Laplace approximation). The derivatives of ``log L_i`` are the
posterior moments of the derivatives of the integrand (Louis 1982):

    ∂ log L_i = E[∂g],   ∂² log L_i = E[∂²g] + Cov[∂g],   g = Σ_j log f(y_ij | η_ij) - |u|²/2,

which the same nodes give; the maximum is found by Newton-Raphson on every parameter (the
``α_i`` eliminated through the Schur complement, so that each step costs O(k)), started from
the equal-effects fit, with the random-effect scales kept non-negative (the likelihood is
even in each of them). Standard errors come from the inverse of the observed information at
the maximum (all parameters), as lme4's ``vcov(..., use.hessian = TRUE)``.

References
----------
Liu, Q., & Pierce, D. A. (1994). A note on Gauss-Hermite quadrature. Biometrika, 81(3),
624-629. https://doi.org/10.1093/biomet/81.3.624
Pinheiro, J. C., & Bates, D. M. (1995). Approximations to the log-likelihood function in
the nonlinear mixed-effects model. JCGS, 4(1), 12-35. https://doi.org/10.2307/1390625
Louis, T. A. (1982). Finding the observed information matrix when using the EM algorithm.
JRSS B, 44(2), 226-233. https://doi.org/10.1111/j.2517-6161.1982.tb01203.x
"""

from __future__ import annotations

import functools
import math
from typing import Any

import attrs
import numpy as np
from scipy import special

from .._typing import FloatArray

#: nodes per random-effect dimension used by default (1-D, 2-D models)
DEFAULT_NAGQ = (41, 15)
_MAX_NEWTON = 200
#: from this many nodes on, the posterior-moment derivatives are those of the quadrature to
#: the precision of the fit (smaller rules, and the Laplace approximation, are maximised
#: with finite-difference derivatives of the rule itself, as lme4 does)
_EXACT_NAGQ = 9
_MODE_ITER = 100


@attrs.frozen
class Design:
    """The data and design of one GLMM (see the module docstring); arrays are per study
    (rows) and observation (columns)."""

    family: str  # "binomial", "poisson" or "nchg"
    y: FloatArray  # (k, J) counts (NCHG: the first cell)
    size: FloatArray  # (k, J) trials (binomial); unused otherwise
    offset: FloatArray  # (k, J) (Poisson: log person-time)
    X: FloatArray  # (J, p) fixed effects
    S: FloatArray  # (J, s) per-study nuisance parameters (s may be 0)
    Z: FloatArray  # (J, q) random effects (q may be 0)
    const: FloatArray  # (k,) constant log-likelihood terms (binomial coefficients, ...)
    support: FloatArray | None = None  # NCHG: (k, R) values of the first cell (padded)
    log_weights: FloatArray | None = None  # NCHG: (k, R) log C(n1,x) C(n2,m1-x) (-inf pad)

    @property
    def k(self) -> int:
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])

    @property
    def s(self) -> int:
        return int(self.S.shape[1])

    @property
    def q(self) -> int:
        return int(self.Z.shape[1])


@attrs.frozen
class Fit:
    """The maximum of the likelihood of a :class:`Design`."""

    beta: FloatArray
    lam: FloatArray  # random-effect scales (τ, or σ and τ)
    alpha: FloatArray  # (k, s) nuisance parameters
    loglik: float
    vcov: FloatArray  # covariance of (β, λ) (and the nuisance block for the saturated Wald test)
    converged: bool
    iterations: int
    nagq: int
    full_vcov: FloatArray | None = None  # covariance of (β, λ, α) when asked for


def family_terms(design: Design, eta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Log-likelihood of each observation (without the constant), its first and second
    derivative in η; `eta` has shape (k, J, N) (N nodes). Run under np.errstate."""
    y = design.y[..., None]
    if design.family == "binomial":
        n = design.size[..., None]
        prob = special.expit(eta)
        ll = y * eta - n * np.logaddexp(0.0, eta)
        return ll, y - n * prob, -n * prob * (1.0 - prob)
    if design.family == "poisson":
        mu = np.exp(eta)
        return y * eta - mu, y - mu, -mu
    # non-central hypergeometric in the log odds ratio η (one observation per study)
    assert design.support is not None
    assert design.log_weights is not None
    x = design.support[:, None, None, :]  # (k, 1, 1, R)
    terms = design.log_weights[:, None, None, :] + x * eta[..., None]
    log_z = special.logsumexp(terms, axis=-1)
    prob = np.exp(terms - log_z[..., None])
    mean = np.sum(prob * x, axis=-1)
    var = np.sum(prob * (x - mean[..., None]) ** 2, axis=-1)
    return y * eta - log_z, y - mean, -var


@functools.lru_cache(maxsize=32)
def gauss_hermite(nagq: int, q: int) -> tuple[FloatArray, FloatArray]:
    """Nodes (N, q) and log weights (N,) of the tensor-product Gauss-Hermite rule for the
    weight ``exp(-|x|²)``, with ``|x|²`` added (the adaptive rule's factor ``e^{x²}``)."""
    if q == 0:
        return np.zeros((1, 0)), np.zeros(1)
    x, w = special.roots_hermite(nagq)
    grids = np.meshgrid(*([x] * q), indexing="ij")
    nodes = np.stack([g.reshape(-1) for g in grids], axis=-1)
    wgrid = np.meshgrid(*([w] * q), indexing="ij")
    logw = np.sum([np.log(g.reshape(-1)) for g in wgrid], axis=0)
    return nodes, logw + np.sum(nodes**2, axis=-1)


@attrs.frozen
class _State:
    """Log-likelihood, gradient and Hessian of every study at a parameter value."""

    loglik: FloatArray  # (k,)
    grad: FloatArray  # (k, P) with P = p + q + s
    hess: FloatArray  # (k, P, P)
    modes: FloatArray  # (k, q)


def _linear(design: Design, beta: FloatArray, alpha: FloatArray) -> FloatArray:
    eta = design.offset + design.X @ beta
    if design.s:
        eta = eta + alpha @ design.S.T
    return eta


def _modes(
    design: Design, eta0: FloatArray, lam: FloatArray, start: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The mode ``û`` of ``g(u)`` for every study (damped Newton; ``g`` is concave for the
    three families) and the Cholesky factor ``C`` of ``(-∇²g(û))⁻¹``."""
    zl = design.Z * lam  # (J, q)
    q = design.q
    u = start.copy()
    eye = np.eye(q)

    def objective(u: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        eta = eta0 + u @ zl.T  # (k, J)
        ll, d1, d2 = family_terms(design, eta[..., None])
        g = ll[..., 0].sum(axis=1) - 0.5 * np.sum(u * u, axis=1)
        grad = d1[..., 0] @ zl - u
        hess = np.einsum("kj,ja,jb->kab", d2[..., 0], zl, zl) - eye
        return g, grad, hess

    g, grad, hess = objective(u)
    for _ in range(_MODE_ITER):
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        new = u - step
        g_new, grad_new, hess_new = objective(new)
        worse = ~(g_new >= g - 1e-12 * np.abs(g))
        shrink = 0
        while worse.any() and shrink < 30:
            new = np.where(worse[:, None], u - step * 0.5 ** (shrink + 1), new)
            g_new, grad_new, hess_new = objective(new)
            worse = ~(g_new >= g - 1e-12 * np.abs(g))
            shrink += 1
        done = np.max(np.abs(new - u)) < 1e-12 * max(1.0, float(np.max(np.abs(new))))
        u, g, grad, hess = new, g_new, grad_new, hess_new
        if done:
            break
    cov = np.linalg.inv(-hess)
    chol = np.linalg.cholesky(cov)
    return u, chol


def evaluate(
    design: Design,
    beta: FloatArray,
    lam: FloatArray,
    alpha: FloatArray,
    nagq: int,
    *,
    derivatives: bool = True,
    start: FloatArray | None = None,
) -> _State:
    """The log-likelihood of every study (adaptive Gauss-Hermite quadrature with `nagq`
    nodes per dimension) and, with `derivatives`, its gradient and Hessian in
    ``(β, λ, α_i)`` (posterior moments; exact for the quadrature's integrand)."""
    k, p, q, s = design.k, design.p, design.q, design.s
    eta0 = _linear(design, beta, alpha)  # (k, J)
    if q == 0:
        u_nodes = np.zeros((k, 1, 0))
        logc = np.zeros(k)
        logw = np.zeros(1)
        modes = np.zeros((k, 0))
    else:
        nodes, logw = gauss_hermite(nagq, q)
        modes, chol = _modes(design, eta0, lam, np.zeros((k, q)) if start is None else start)
        # u = û + √2 C x
        u_nodes = modes[:, None, :] + math.sqrt(2.0) * np.einsum("kab,nb->kna", chol, nodes)
        logc = np.log(np.abs(np.linalg.det(chol))) + 0.5 * q * math.log(2.0)
    zl = design.Z * lam
    eta = eta0[..., None] + np.einsum("kna,ja->kjn", u_nodes, zl)  # (k, J, N)
    ll, d1, d2 = family_terms(design, eta)
    g = ll.sum(axis=1) - 0.5 * np.sum(u_nodes**2, axis=-1)  # (k, N)
    log_terms = g + logw[None, :]
    log_integral = special.logsumexp(log_terms, axis=1)
    loglik = log_integral + logc - 0.5 * q * math.log(2.0 * math.pi) + design.const
    if q == 0:
        loglik = g[:, 0] + design.const
    if not derivatives:
        return _State(loglik, np.zeros((k, 0)), np.zeros((k, 0, 0)), modes)
    weights = np.exp(log_terms - log_integral[:, None])  # (k, N) posterior weights
    n_par = p + q + s
    # per-node derivatives of g in (β, λ, α): ∂η/∂β = X, ∂η/∂λ_a = Z_a u_a, ∂η/∂α = S
    deta = np.empty((k, design.y.shape[1], u_nodes.shape[1], n_par))
    deta[..., :p] = design.X[None, :, None, :]
    if q:
        deta[..., p : p + q] = design.Z[None, :, None, :] * u_nodes[:, None, :, :]
    if s:
        deta[..., p + q :] = design.S[None, :, None, :]
    dg = np.einsum("kjn,kjnp->knp", d1, deta)
    d2g = np.einsum("kjn,kjnp,kjnr->knpr", d2, deta, deta)
    grad = np.einsum("kn,knp->kp", weights, dg)
    centred = dg - grad[:, None, :]
    hess = np.einsum("kn,knpr->kpr", weights, d2g) + np.einsum(
        "kn,knp,knr->kpr", weights, centred, centred
    )
    return _State(loglik, grad, hess, modes)


class SeparationError(ValueError):
    """The maximum likelihood estimate does not exist (an estimate diverges)."""


def maximize(
    design: Design,
    beta0: FloatArray,
    lam0: FloatArray,
    alpha0: FloatArray,
    nagq: int,
    *,
    tol: float = 1e-10,
    full_vcov: bool = False,
) -> Fit:
    """Newton-Raphson on (β, λ, α) with the α_i eliminated by the Schur complement, a
    Levenberg-Marquardt safeguard and step halving; λ kept ≥ 0 (the likelihood is even in
    each scale). Raises :class:`SeparationError` when an estimate diverges."""
    p, q, s, k = design.p, design.q, design.s, design.k
    n_out = p + q
    if q and nagq < _EXACT_NAGQ:
        # few nodes: the posterior moments are not the derivatives of the quadrature
        # (whose nodes move with the parameters); maximise the approximation itself from
        # the accurate maximum, which is close to it
        near = maximize(design, beta0, lam0, alpha0, _EXACT_NAGQ, tol=1e-7)
        return _numeric_newton(design, near, nagq)
    beta, lam, alpha = beta0.astype(float), lam0.astype(float), alpha0.astype(float)
    state = evaluate(design, beta, lam, alpha, nagq)
    total = float(state.loglik.sum())
    converged = False
    iterations = 0
    mu = 0.0
    for iterations in range(1, _MAX_NEWTON + 1):  # noqa: B007
        step = _newton_step(state, n_out, s, mu)
        while step is None:  # not negative definite: Levenberg-Marquardt damping
            mu = max(4.0 * mu, 1e-6 * (1.0 + float(np.max(np.abs(state.hess)))))
            step = _newton_step(state, n_out, s, mu)
        step_out, step_a, predicted = step
        biggest = max(
            float(np.max(np.abs(beta), initial=0.0)),
            float(np.max(np.abs(lam), initial=0.0)),
            float(np.max(np.abs(alpha), initial=0.0)),
        )
        largest_step = max(
            float(np.max(np.abs(step_out), initial=0.0)),
            float(np.max(np.abs(step_a), initial=0.0)) if s else 0.0,
        )
        if predicted <= 1e-13 * max(1.0, abs(total)) and largest_step <= 1e-6 * max(1.0, biggest):
            # the quadratic model predicts no gain: at the maximum; take the last step
            # (it fixes the digits the likelihood can no longer resolve) unless it is worse
            new_beta = beta + step_out[:p]
            new_lam = np.abs(lam + step_out[p:])
            new_alpha = alpha + step_a if s else alpha
            new_state = evaluate(design, new_beta, new_lam, new_alpha, nagq, start=state.modes)
            if float(new_state.loglik.sum()) >= total - 1e-12 * max(1.0, abs(total)):
                beta, lam, alpha, state = new_beta, new_lam, new_alpha, new_state
                total = float(new_state.loglik.sum())
            converged = True
            break
        scale = 1.0
        accepted = False
        for _half in range(30):
            new_beta = beta + scale * step_out[:p]
            new_lam = np.abs(lam + scale * step_out[p:])
            new_alpha = alpha + scale * step_a if s else alpha
            new_state = evaluate(design, new_beta, new_lam, new_alpha, nagq, start=state.modes)
            new_total = float(new_state.loglik.sum())
            if np.isfinite(new_total) and new_total >= total - 1e-12 * max(1.0, abs(total)):
                accepted = True
                break
            scale *= 0.5
        if not accepted:
            if mu == 0.0 and predicted <= 1e-9 * max(1.0, abs(total)):
                converged = True  # rounding stops the ascent: at the maximum
                break
            mu = max(10.0 * mu, 1e-4)
            if mu > 1e8:
                break
            continue
        change = scale * largest_step
        beta, lam, alpha, state = new_beta, new_lam, new_alpha, new_state
        total = new_total
        mu = mu / 10.0 if mu > 1e-6 else 0.0
        if (biggest > 50.0 and design.family != "poisson") or biggest > 1e3:
            msg = (
                "an estimate diverges (separation: the maximum likelihood estimate does not exist)"
            )
            raise SeparationError(msg)
        if change <= tol * max(1.0, biggest):
            converged = True
            break
    vcov, full = _covariance(state, n_out, s, k, full_vcov)
    return Fit(
        beta=beta,
        lam=lam,
        alpha=alpha,
        loglik=total,
        vcov=vcov,
        converged=converged,
        iterations=iterations,
        nagq=nagq if q else 0,
        full_vcov=full,
    )


def _newton_step(
    state: _State, n_out: int, s: int, mu: float
) -> tuple[FloatArray, FloatArray, float] | None:
    """The (damped) Newton step of the maximisation, α eliminated by the Schur complement,
    and its predicted gain ``½ gᵀ(-H)⁻¹g``; None when ``H - μI`` is not negative definite."""
    g_out = state.grad[:, :n_out].sum(axis=0)
    a = state.hess[:, :n_out, :n_out].sum(axis=0) - mu * np.eye(n_out)
    try:
        if s:
            g_a = state.grad[:, n_out:]
            b = state.hess[:, :n_out, n_out:]
            d = _informed(state.hess[:, n_out:, n_out:]) - mu * np.eye(s)
            np.linalg.cholesky(-d)
            d_inv = np.linalg.inv(d)
            bd = np.einsum("kos,kst->kot", b, d_inv)
            schur = a - np.einsum("kot,kpt->op", bd, b)
            rhs = -(g_out - np.einsum("kot,kt->o", bd, g_a))
        else:
            schur, rhs = a, -g_out
        if n_out:
            np.linalg.cholesky(-schur)
            step_out = np.linalg.solve(schur, rhs)
        else:
            step_out = np.zeros(0)
    except np.linalg.LinAlgError:
        return None
    if s:
        step_a = -np.einsum("kst,kt->ks", d_inv, g_a + np.einsum("kos,o->ks", b, step_out))
        predicted = 0.5 * float(g_out @ step_out + np.sum(g_a * step_a))
    else:
        step_a = np.zeros((state.grad.shape[0], 0))
        predicted = 0.5 * float(g_out @ step_out)
    return step_out, step_a, predicted


def _informed(hess_aa: FloatArray) -> FloatArray:
    """The per-study nuisance blocks of the Hessian, with a block that is exactly zero (a
    study whose α_i the likelihood does not depend on: the saturated model's first group
    of a study whose supremum lies at α_i = ±∞, dropped there) replaced by ``-I``, so that
    its α_i takes no step and the other parameters are unaffected."""
    empty = ~np.any(hess_aa != 0.0, axis=(1, 2))
    if not empty.any():
        return hess_aa
    out: FloatArray = np.array(hess_aa, dtype=np.float64)
    out[empty] = -np.eye(hess_aa.shape[1])
    return out


def _covariance(
    state: _State, n_out: int, s: int, k: int, full: bool
) -> tuple[FloatArray, FloatArray | None]:
    """The inverse observed information of (β, λ) (α eliminated), and of all parameters
    when `full` (the saturated model's Wald test needs the α block)."""
    a = -state.hess[:, :n_out, :n_out].sum(axis=0)
    if not s:
        info = a
        full_cov = np.linalg.pinv(info) if full else None
        return _safe_inverse(info), full_cov
    b = -state.hess[:, :n_out, n_out:]
    d = -_informed(state.hess[:, n_out:, n_out:])
    d_inv = np.linalg.inv(d)
    schur = a - np.einsum("kos,kst,kpt->op", b, d_inv, b)
    cov_out = _safe_inverse(schur)
    if not full:
        return cov_out, None
    size = n_out + k * s
    info_full = np.zeros((size, size))
    info_full[:n_out, :n_out] = a
    for i in range(k):
        rows = slice(n_out + i * s, n_out + (i + 1) * s)
        info_full[:n_out, rows] = b[i]
        info_full[rows, :n_out] = b[i].T
        info_full[rows, rows] = d[i]
    return cov_out, _safe_inverse(info_full)


def _safe_inverse(info: FloatArray) -> FloatArray:
    """Inverse of an information matrix; rows of parameters with no information (a scale
    at the boundary 0, where the likelihood is flat to first order) get NaN variances and
    the rest is inverted without them."""
    n = info.shape[0]
    if n == 0:
        return np.zeros((0, 0))
    keep = np.abs(np.diag(info)) > 1e-12 * max(1.0, float(np.max(np.abs(np.diag(info)))))
    out = np.full((n, n), np.nan)
    sub = info[np.ix_(keep, keep)]
    try:
        out[np.ix_(keep, keep)] = np.linalg.inv(sub)
    except np.linalg.LinAlgError:
        out[np.ix_(keep, keep)] = np.linalg.pinv(sub)
    return out


# ---------------------------------------------------------------------------------------------
# the models of metafor's rma.glmm

#: outcome measures and their models
GLMM_MEASURES = ("OR", "IRR", "PLO", "IRLN")
GLMM_MODELS = ("UM.FS", "UM.RS", "CM.EL", "CM.AL")
GLMM_METHODS = ("EE", "ML")

_HALF = np.array([[0.5], [-0.5]])  # the groups, coded +1/2 and -1/2 (metafor's coding=1/2)


def _lchoose(n: FloatArray, x: FloatArray) -> FloatArray:
    return special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)  # type: ignore[no-any-return]


def _xlogy_ratio(y: FloatArray, n: FloatArray) -> FloatArray:
    """``y log(y/n)`` with ``0 log 0 = 0``."""
    return special.xlogy(y, y) - special.xlogy(y, n)  # type: ignore[no-any-return]


@attrs.frozen
class Model:
    """A model of :func:`ketameta.pool_glmm`: its design with and without random effects,
    the data for the saturated model and the number of observations."""

    measure: str
    model: str
    random: Design  # the model fitted (with τ, and σ for UM.RS)
    equal: Design  # its equal-effects version (τ = 0; UM.RS keeps σ)
    n_obs: int
    n_nuisance: int  # fixed study effects counted in AIC/BIC (UM.FS: k)
    saturated_loglik: float
    study_estimates: FloatArray  # saturated per-study effects (NaN where infinite)
    study_variances: FloatArray


def build(measure: str, model: str, cells: dict[str, FloatArray]) -> Model:
    """The design of metafor's ``rma.glmm`` model `model` for `measure` on the studies'
    `cells` (already filtered: no missing values, no double zeros when dropped).

    * OR, ``"UM.FS"``: ``logit p_ij = α_i + (θ + b_i) z_j``, fixed study effects α_i;
      ``"UM.RS"``: ``β_0 + u_i + (θ + b_i) z_j`` with random study effects
      ``u_i ~ N(0, σ²)`` (uncorrelated with b_i); ``"CM.EL"``: the first cell conditional
      on the events of the table, non-central hypergeometric with log odds ratio
      ``θ + b_i``; ``"CM.AL"``: its binomial approximation, ``logit π_i = log(n1/n2) + θ
      + b_i`` for ``a_i`` of the ``m1`` events (van Houwelingen et al. 1993; Stijnen et al.
      2010; Jackson et al. 2018); ``z = ±1/2``, ``b_i ~ N(0, τ²)``.
    * IRR: the same with Poisson counts and log person-time offsets; both conditional
      models are the binomial of ``x1`` among ``x1 + x2`` events with offset
      ``log(t1/t2)`` (Bagos & Nikolopoulos 2009).
    * PLO / IRLN: ``logit p_i`` / ``log rate_i = β_0 + b_i`` (binomial / Poisson).
    """
    if measure == "OR":
        a, b, c, d = (cells[n] for n in ("ai", "bi", "ci", "di"))
        n1, n2 = a + b, c + d
        k = a.shape[0]
        if model in ("UM.FS", "UM.RS"):
            y = np.column_stack([a, c])
            size = np.column_stack([n1, n2])
            const = _lchoose(n1, a) + _lchoose(n2, c)
            sat = float(
                np.sum(
                    const
                    + _xlogy_ratio(a, n1)
                    + _xlogy_ratio(b, n1)
                    + _xlogy_ratio(c, n2)
                    + _xlogy_ratio(d, n2)
                )
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                est = np.log(a * d / (b * c))
                var = 1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d
            return _pair_model(
                measure, model, "binomial", y, size, np.zeros((k, 2)), const, sat, est, var, k
            )
        m1 = a + c
        if model == "CM.AL":
            with np.errstate(divide="ignore"):
                offset = np.log(n1 / n2)[:, None]
            const = _lchoose(m1, a)
            sat = float(np.sum(const + _xlogy_ratio(a, m1) + _xlogy_ratio(c, m1)))
            with np.errstate(divide="ignore", invalid="ignore"):
                est = np.log(a / c) - offset[:, 0]
                var = 1.0 / a + 1.0 / c
            return _single_model(
                measure, model, "binomial", a[:, None], m1[:, None], offset, const, sat, est, var
            )
        # CM.EL: the non-central hypergeometric distribution of a given m1
        low = np.maximum(0.0, m1 - n2)
        high = np.minimum(n1, m1)
        width = int(np.max(high - low)) + 1
        support = low[:, None] + np.arange(width, dtype=np.float64)[None, :]
        valid = support <= high[:, None]
        with np.errstate(invalid="ignore"):
            log_w = np.where(
                valid,
                _lchoose(n1[:, None], support) + _lchoose(n2[:, None], m1[:, None] - support),
                -np.inf,
            )
        support = np.where(valid, support, high[:, None])
        const = _lchoose(n1, a) + _lchoose(n2, c)
        est, var, sat_each = _conditional_mle(a, support, log_w, const)
        design = Design(
            "nchg",
            a[:, None],
            np.zeros((k, 1)),
            np.zeros((k, 1)),
            np.ones((1, 1)),
            np.zeros((1, 0)),
            np.ones((1, 1)),
            const,
            support,
            log_w,
        )
        return Model(
            measure,
            model,
            design,
            attrs.evolve(design, Z=np.zeros((1, 0))),
            k,
            0,
            float(np.sum(sat_each)),
            est,
            var,
        )
    if measure == "IRR":
        x1, t1, x2, t2 = (cells[n] for n in ("x1i", "t1i", "x2i", "t2i"))
        k = x1.shape[0]
        if model in ("UM.FS", "UM.RS"):
            y = np.column_stack([x1, x2])
            offset = np.log(np.column_stack([t1, t2]))
            const = -special.gammaln(x1 + 1.0) - special.gammaln(x2 + 1.0)
            sat = float(np.sum(const + special.xlogy(x1, x1) - x1 + special.xlogy(x2, x2) - x2))
            with np.errstate(divide="ignore", invalid="ignore"):
                est = np.log((x1 / t1) / (x2 / t2))
                var = 1.0 / x1 + 1.0 / x2
            return _pair_model(
                measure, model, "poisson", y, np.zeros((k, 2)), offset, const, sat, est, var, k
            )
        events = x1 + x2
        offset = np.log(t1 / t2)[:, None]
        const = _lchoose(events, x1)
        sat = float(np.sum(const + _xlogy_ratio(x1, events) + _xlogy_ratio(x2, events)))
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.log(x1 / x2) - offset[:, 0]
            var = 1.0 / x1 + 1.0 / x2
        return _single_model(
            measure, model, "binomial", x1[:, None], events[:, None], offset, const, sat, est, var
        )
    if measure == "PLO":
        x, n = cells["xi"], cells["ni"]
        const = _lchoose(n, x)
        sat = float(np.sum(const + _xlogy_ratio(x, n) + _xlogy_ratio(n - x, n)))
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.log(x / (n - x))
            var = 1.0 / x + 1.0 / (n - x)
        return _single_model(
            measure,
            model,
            "binomial",
            x[:, None],
            n[:, None],
            np.zeros((x.shape[0], 1)),
            const,
            sat,
            est,
            var,
        )
    # IRLN
    x, t = cells["xi"], cells["ti"]
    const = -special.gammaln(x + 1.0)
    sat = float(np.sum(const + special.xlogy(x, x) - x))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.log(x / t)
        var = 1.0 / x
    return _single_model(
        measure,
        model,
        "poisson",
        x[:, None],
        np.zeros((x.shape[0], 1)),
        np.log(t)[:, None],
        const,
        sat,
        est,
        var,
    )


def _pair_model(
    measure: str,
    model: str,
    family: str,
    y: FloatArray,
    size: FloatArray,
    offset: FloatArray,
    const: FloatArray,
    sat: float,
    est: FloatArray,
    var: FloatArray,
    k: int,
) -> Model:
    ones = np.ones((2, 1))
    if model == "UM.FS":
        random = Design(family, y, size, offset, _HALF, ones, _HALF, const)
        equal = attrs.evolve(random, Z=np.zeros((2, 0)))
        n_nuisance = k
    else:  # UM.RS: intercept and group; random study effects (and group effects)
        x = np.column_stack([ones, _HALF])
        random = Design(family, y, size, offset, x, np.zeros((2, 0)), x, const)
        equal = attrs.evolve(random, Z=ones)
        n_nuisance = 0
    return Model(measure, model, random, equal, 2 * k, n_nuisance, sat, est, var)


def _single_model(
    measure: str,
    model: str,
    family: str,
    y: FloatArray,
    size: FloatArray,
    offset: FloatArray,
    const: FloatArray,
    sat: float,
    est: FloatArray,
    var: FloatArray,
) -> Model:
    one = np.ones((1, 1))
    random = Design(family, y, size, offset, one, np.zeros((1, 0)), one, const)
    return Model(
        measure,
        model,
        random,
        attrs.evolve(random, Z=np.zeros((1, 0))),
        int(y.shape[0]),
        0,
        sat,
        est,
        var,
    )


def _conditional_mle(
    a: FloatArray, support: FloatArray, log_w: FloatArray, const: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Each table's conditional MLE of the log odds ratio (Newton on ``a = E_ψ[X]``), its
    variance ``1/Var_ψ(X)`` and the maximised log probability; NaN / 0 where the first
    cell is at a bound of its support (the estimate is infinite, the probability 1)."""
    low = support[:, 0]
    high = np.max(np.where(np.isfinite(log_w), support, -np.inf), axis=1)
    inside = (a > low) & (a < high)
    eta = np.zeros(a.shape)
    design = Design(
        "nchg",
        a[:, None],
        np.zeros((a.shape[0], 1)),
        np.zeros((a.shape[0], 1)),
        np.ones((1, 1)),
        np.zeros((1, 0)),
        np.zeros((1, 0)),
        const,
        support,
        log_w,
    )
    with np.errstate(all="ignore"):
        for _ in range(200):
            ll, d1, d2 = family_terms(design, eta[:, None, None])
            step = np.where(inside, d1[:, 0, 0] / d2[:, 0, 0], 0.0)
            step = np.clip(step, -2.0, 2.0)
            eta = eta - step
            if np.max(np.abs(step)) < 1e-13:
                break
        ll, d1, d2 = family_terms(design, eta[:, None, None])
    log_p = np.where(inside, ll[:, 0, 0] + const, 0.0)
    est = np.where(inside, eta, np.nan)
    var = np.where(inside, -1.0 / d2[:, 0, 0], np.nan)
    return est, var, log_p


def _start(design: Design) -> tuple[FloatArray, FloatArray]:
    """Starting values of β and α: the pooled log odds / log rate in β_0 or α_i, 0 else."""
    k = design.k
    y = design.y.sum(axis=1)
    if design.family == "binomial":
        level = np.log((y + 0.5) / (design.size.sum(axis=1) - y + 0.5))
    elif design.family == "poisson":
        level = np.log((y + 0.5) / np.exp(design.offset).sum(axis=1))
    else:
        level = np.zeros(k)
    beta = np.zeros(design.p)
    alpha = np.zeros((k, design.s))
    if design.s:
        alpha[:, 0] = level
    elif design.p and design.family != "nchg" and np.allclose(design.X[:, 0], 1.0):
        beta[0] = float(np.mean(level))
    return beta, alpha


def fit(model: Model, method: str, nagq: int) -> dict[str, Any]:
    """Fit `model` by ML (``method="ML"``: random effects) or as an equal-effects model
    (``"EE"``), with `nagq` quadrature nodes per random-effect dimension. Returns the
    estimates, their covariance, the log-likelihoods (model, equal-effects, saturated) and
    the quadrature used."""
    equal = model.equal
    beta0, alpha0 = _start(equal)
    if equal.q:  # UM.RS: random study effects even without heterogeneity
        plain = attrs.evolve(equal, Z=np.zeros((equal.Z.shape[0], 0)))
        first = maximize(plain, beta0, np.zeros(0), alpha0, nagq)
        ee = _best(equal, [first.beta], [np.array([s]) for s in (1.0, 0.3)], first.alpha, nagq)
    else:
        ee = maximize(equal, beta0, np.zeros(0), alpha0, nagq)
    if method == "EE":
        final = ee
    else:
        design = model.random
        lam_ee = ee.lam
        starts = [np.concatenate([lam_ee, [t]]) for t in (0.5, 0.1, 1.5)]
        final = _best(design, [ee.beta], starts, ee.alpha, nagq)
        # the boundary τ = 0 (the equal-effects fit) when it is at least as likely
        if final.loglik < ee.loglik - 1e-9 * max(1.0, abs(ee.loglik)):
            final = maximize(design, ee.beta, np.concatenate([lam_ee, [0.0]]), ee.alpha, nagq)
    return {"fit": final, "equal": ee}


def _best(
    design: Design,
    betas: list[FloatArray],
    lams: list[FloatArray],
    alpha: FloatArray,
    nagq: int,
) -> Fit:
    """The best of the fits from several starts (the likelihood in τ can have more than one
    maximum)."""
    best: Fit | None = None
    error: Exception | None = None
    for beta in betas:
        for lam in lams:
            try:
                res = maximize(design, beta, lam, alpha, nagq)
            except SeparationError as exc:
                error = exc
                continue
            if best is None or res.loglik > best.loglik + 1e-10 * abs(res.loglik):
                best = res
    if best is None:
        assert error is not None
        raise error
    return best


def _numeric_newton(design: Design, near: Fit, nagq: int) -> Fit:
    """Maximise the `nagq`-node quadrature (the Laplace approximation for ``nagq=1``) by
    Newton-Raphson with central-difference derivatives of its profile over the nuisance
    parameters (each study's α_i maximised by its own one-dimensional Newton iterations),
    from `near`; the covariance of (β, λ) is the inverse of the profile's finite-difference
    Hessian (as lme4's ``vcov``)."""
    p, s = design.p, design.s
    alpha = near.alpha.copy()

    def profile(x: FloatArray) -> float:
        nonlocal alpha
        beta, lam = x[:p], np.abs(x[p:])
        if not s:
            return float(evaluate(design, beta, lam, alpha, nagq, derivatives=False).loglik.sum())
        al = alpha.copy()
        for _ in range(60):  # the studies are independent: one Newton step each, together
            h = 1e-4 * np.maximum(1.0, np.abs(al[:, 0]))
            f0 = evaluate(design, beta, lam, al, nagq, derivatives=False).loglik
            fp = evaluate(design, beta, lam, al + h[:, None], nagq, derivatives=False).loglik
            fm = evaluate(design, beta, lam, al - h[:, None], nagq, derivatives=False).loglik
            d1 = (fp - fm) / (2.0 * h)
            d2 = (fp - 2.0 * f0 + fm) / h**2
            step = np.where(d2 < 0, -d1 / np.where(d2 < 0, d2, -1.0), 0.1 * np.sign(d1))
            al = al + np.clip(step, -1.0, 1.0)[:, None]
            if np.max(np.abs(step)) < 1e-10:
                break
        alpha = al
        return float(evaluate(design, beta, lam, al, nagq, derivatives=False).loglik.sum())

    def derivatives(x: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        n = x.size
        f0 = profile(x)
        h = 1e-4 * np.maximum(1.0, np.abs(x))
        eye = np.diag(h)
        plus = np.array([profile(x + eye[i]) for i in range(n)])
        minus = np.array([profile(x - eye[i]) for i in range(n)])
        grad = (plus - minus) / (2.0 * h)
        hess = np.diag((plus - 2.0 * f0 + minus) / h**2)
        for i in range(n):
            for j in range(i):
                hij = (
                    profile(x + eye[i] + eye[j])
                    - profile(x + eye[i] - eye[j])
                    - profile(x - eye[i] + eye[j])
                    + profile(x - eye[i] - eye[j])
                ) / (4.0 * h[i] * h[j])
                hess[i, j] = hess[j, i] = hij
        profile(x)  # (leave alpha at x)
        return f0, grad, hess

    x = np.concatenate([near.beta, near.lam])
    f, grad, hess = derivatives(x)
    converged = False
    iterations = near.iterations
    for _ in range(50):
        iterations += 1
        try:
            np.linalg.cholesky(-hess)
            step = -np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = grad / (np.max(np.abs(np.diag(hess))) + 1.0)
        scale = 1.0
        new = x
        for _half in range(30):
            new = x + scale * step
            new[p:] = np.abs(new[p:])
            if profile(new) >= f - 1e-12 * max(1.0, abs(f)):
                break
            scale *= 0.5
        moved = float(np.max(np.abs(new - x)))
        x = new
        f, grad, hess = derivatives(x)
        if moved < 1e-9 * max(1.0, float(np.max(np.abs(x)))):
            converged = True
            break
    return Fit(
        beta=x[:p].copy(),
        lam=np.abs(x[p:]),
        alpha=alpha,
        loglik=f,
        vcov=_safe_inverse(-hess),
        converged=converged,
        iterations=iterations,
        nagq=nagq,
    )


# ---------------------------------------------------------------------------------------------
# the saturated model of UM.RS (random study effects): the heterogeneity tests

_TREATED = np.array([[1.0], [0.0]])  # the first group's indicator (dummy coding)


def saturated_random_study(model: Model, equal: Fit, nagq: int) -> tuple[float, float]:
    """The Wald and likelihood-ratio tests of heterogeneity of the ``"UM.RS"`` model
    (random study effects), as metafor defines them: the saturated model gives each study
    its own fixed effect ``α_i`` of the first group (dummy coded, 1 in the first group and 0
    in the second) beside the shared intercept and the random study effects,
    ``η_ij = β_0 + u_i + α_i d_j`` with ``u_i ~ N(0, σ²)`` (so the random effect is the
    second group's level); the LRT is ``2(ll_sat - ll_EE)`` against the equal-effects fit
    `equal`, the Wald statistic tests ``α_1 = … = α_k`` with the inverse observed
    information of every parameter (β_0, σ, α) — exact derivatives of the quadrature for
    `nagq` ≥ 9 nodes, central differences of the approximation for fewer (the Laplace
    approximation, as lme4's ``vcov``). Where a first group has no events (or only events)
    its ``α_i`` diverges: the LRT uses the supremum of the saturated likelihood (that
    group's observation dropped, its probability being 1 in the limit) and the Wald
    statistic is NaN."""
    design = model.random
    if design.k < 2:
        return math.nan, math.nan
    # a first group without events (or with only events, binomial) has its saturated
    # effect at -inf (+inf): the supremum of the likelihood drops that group's observation
    # (its probability tends to 1); the Wald statistic of a divergent estimate is undefined
    first = design.y[:, 0]
    if design.family == "binomial":
        separated = (first == 0) | (first == design.size[:, 0])
    else:
        separated = first == 0
    if separated.any():
        y, size, offset = design.y.copy(), design.size.copy(), design.offset.copy()
        y[separated, 0] = 0.0
        if design.family == "binomial":
            size[separated, 0] = 0.0
        else:
            offset[separated, 0] = -1e3  # (exp underflows to 0: the Poisson term is 0)
        design = attrs.evolve(design, y=y, size=size, offset=offset)
    sat = attrs.evolve(design, X=np.ones((2, 1)), S=_TREATED, Z=np.ones((2, 1)))
    k = design.k
    theta = float(equal.beta[-1])
    beta0 = np.array([float(equal.beta[0]) - 0.5 * theta])
    alpha0 = np.full((k, 1), theta)
    wald_wanted = not separated.any()
    accurate = maximize(
        sat, beta0, equal.lam.copy(), alpha0, max(nagq, _EXACT_NAGQ), full_vcov=wald_wanted
    )
    best = accurate
    if nagq < _EXACT_NAGQ:
        best = maximize(sat, accurate.beta, accurate.lam, accurate.alpha, nagq)
    lrt = 2.0 * (best.loglik - equal.loglik)
    if not wald_wanted:
        return math.nan, lrt
    if nagq < _EXACT_NAGQ:
        cov = _safe_inverse(-_numeric_full_hessian(sat, best, nagq))
    else:
        assert accurate.full_vcov is not None
        cov = accurate.full_vcov
    alpha = best.alpha[:, 0]
    cov_a = cov[2:, 2:]
    contrast = np.eye(k)[1:] - np.eye(k)[:1]
    diff = contrast @ alpha
    try:
        wald = float(diff @ np.linalg.solve(contrast @ cov_a @ contrast.T, diff))
    except np.linalg.LinAlgError:
        wald = math.nan
    return wald, lrt


def _numeric_full_hessian(design: Design, at: Fit, nagq: int) -> FloatArray:
    """The Hessian of the log-likelihood in every parameter ``(β, λ, α)`` of `design` at
    `at`, by central differences (step ``1e-4`` relative, as lme4); the studies are
    independent, so the α_i are perturbed together and each study's log-likelihood read
    apart (O((p + q)²) evaluations, not O(k²))."""
    p, q, s, k = design.p, design.q, design.s, design.k
    assert s == 1
    n_out = p + q
    x0 = np.concatenate([at.beta, at.lam])
    h = 1e-4 * np.maximum(1.0, np.abs(x0))
    ha = 1e-4 * np.maximum(1.0, np.abs(at.alpha[:, 0]))

    def ll(shift: FloatArray, a_sign: float) -> FloatArray:
        x = x0 + shift
        alpha = at.alpha + a_sign * ha[:, None]
        return evaluate(design, x[:p], np.abs(x[p:]), alpha, nagq, derivatives=False).loglik

    zero = np.zeros(n_out)
    f0 = ll(zero, 0.0)
    eye = np.diag(h)
    size = n_out + k * s
    hess = np.zeros((size, size))
    for i in range(n_out):
        fp, fm = ll(eye[i], 0.0).sum(), ll(-eye[i], 0.0).sum()
        hess[i, i] = (fp - 2.0 * f0.sum() + fm) / h[i] ** 2
        for j in range(i):
            hij = (
                ll(eye[i] + eye[j], 0.0).sum()
                - ll(eye[i] - eye[j], 0.0).sum()
                - ll(-eye[i] + eye[j], 0.0).sum()
                + ll(-eye[i] - eye[j], 0.0).sum()
            ) / (4.0 * h[i] * h[j])
            hess[i, j] = hess[j, i] = hij
        cross = (ll(eye[i], 1.0) - ll(eye[i], -1.0) - ll(-eye[i], 1.0) + ll(-eye[i], -1.0)) / (
            4.0 * h[i] * ha
        )
        hess[i, n_out:] = hess[n_out:, i] = cross
    diag = (ll(zero, 1.0) - 2.0 * f0 + ll(zero, -1.0)) / ha**2
    hess[n_out:, n_out:] = np.diag(diag)
    return hess
