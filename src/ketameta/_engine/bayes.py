"""Exact posterior of the normal-normal hierarchical model by numerical integration over τ.

The model: ``y_i | θ_i ~ N(θ_i, v_i)``, ``θ_i | μ, τ ~ N(μ, τ²)``, priors ``p(τ)`` and
``p(μ)`` (flat, or normal). Conditional on τ everything is normal (Röver 2020, section 2),
so the only integral that needs numerics is the one over τ:

- ``p(τ | y) ∝ p(τ) p(y | τ)`` with ``p(y | τ)`` in closed form (μ integrated out);
- ``μ | τ, y ~ N(μ̂(τ), V(τ))``, so ``p(μ | y) = ∫ p(τ | y) N(μ; μ̂(τ), V(τ)) dτ``, and
  likewise for a new study's effect (variance ``V + τ²``) and the shrinkage estimates.

The integral over τ ∈ [0, ∞) is done by globally adaptive Gauss-Kronrod quadrature
(7-point Gauss, 15-point Kronrod) in t ∈ [0, 1) with ``τ = c·t/(1-t)`` (``τ = upper·t`` for
a bounded prior): panels are bisected until the estimated error of the normalising
constant (the sum over panels of |K15 - G7|, the classical conservative estimate) is below
``rtol`` times the constant, in every analysis. Every posterior quantity is then a weighted
sum over the same 15-point nodes: the mixture of normals over τ is the quadrature rule
itself, not a sample (this replaces the DIRECT discretisation of Röver & Friede 2017, whose
error bound is a divergence δ of the order 1e-2, by a rule accurate to ``rtol``).

All arrays have the analyses on the first axis (``m``) and the studies on the last; a
single analysis is ``m = 1``, so single and batched analyses run the same code. Absent
studies are masked (``present``); the panels in t are shared by all analyses of a batch
(refined where any analysis needs it), each analysis with its own scale ``c``.

References
----------
Röver, C. (2020). Bayesian random-effects meta-analysis using the bayesmeta R package.
J Stat Softw 93(6):1-51. https://doi.org/10.18637/jss.v093.i06

Röver, C., & Friede, T. (2017). Discrete approximation of a mixture distribution via
restricted divergence. J Comput Graph Stat 26(1):217-222.
https://doi.org/10.1080/10618600.2016.1276840

Piessens, R., de Doncker-Kapenga, E., Überhuber, C. W., & Kahaner, D. K. (1983).
QUADPACK: A Subroutine Package for Automatic Integration. Springer.
https://doi.org/10.1007/978-3-642-61786-7
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special

from .._typing import BoolArray, FloatArray, IntArray
from ..priors import NormalPrior, PointMass, TauPrior

__all__ = ["Posterior", "fit"]

# Gauss-Kronrod 7/15 abscissae on [-1, 1] (positive half and 0) and weights (QUADPACK)
_XK = np.array(
    [
        0.991455371120812639206854697526329,
        0.949107912342758524526189684047851,
        0.864864423359769072789712788640926,
        0.741531185599394439863864773280788,
        0.586087235467691130294144845693013,
        0.405845151377397166906606412076961,
        0.207784955007898467600689403773245,
        0.0,
    ]
)
_WK = np.array(
    [
        0.022935322010529224963732008058970,
        0.063092092629978553290700663189204,
        0.104790010322250183839876322541518,
        0.140653259715525918745189590510238,
        0.169004726639267902826583426598550,
        0.190350578064785409913256402421014,
        0.204432940075298892414161999234649,
        0.209482141084727828012999174891714,
    ]
)
_WG = np.array(
    [
        0.129484966168869693270611432679082,
        0.279705391489276667901467771423780,
        0.381830050505118944950369775488975,
        0.417959183673469387755102040816327,
    ]
)
#: the 15 Kronrod nodes on [-1, 1], ascending, and their weights
KRONROD_X = np.concatenate((-_XK[:-1], _XK[::-1]))
KRONROD_W = np.concatenate((_WK[:-1], _WK[::-1]))
#: the 7-point Gauss weights at the Kronrod nodes (zero at the Kronrod-only nodes)
GAUSS_W = np.zeros(15)
GAUSS_W[[1, 3, 5, 7, 9, 11, 13]] = np.concatenate((_WG[:-1], _WG[::-1]))
_DIFF_W = KRONROD_W - GAUSS_W

# The degree-14 polynomial through the integrand's values at a panel's 15 Kronrod nodes
# (the interpolant that the Kronrod rule integrates exactly), as Legendre coefficients, and
# its antiderivative from -1: _ANTIDERIV @ f gives the Legendre coefficients (degree 15) of
# u -> integral of the interpolant over [-1, u]. Used to start the τ quantiles' Newton steps
# within an interpolation error of the solution (the steps then polish to full accuracy).
# (in powers of u for evaluation: on [-1, 1] the conversion loses at most ~1e-11, enough
# for a starting point)
_INTERP = np.linalg.inv(np.polynomial.legendre.legvander(KRONROD_X, 14))
_ANTIDERIV = np.polynomial.legendre.legint(_INTERP, lbnd=-1.0, axis=0)
_ANTIDERIV_POW = np.stack([np.polynomial.legendre.leg2poly(c) for c in _ANTIDERIV.T], axis=1)
_POWERS = np.arange(16)

#: default relative accuracy of the normalising constant (estimated error bound)
RTOL = 1e-10
_MAX_ROUNDS = 60
_MAX_PANELS = 4096
_LOG_2PI = math.log(2.0 * math.pi)
_LOG_NEGLIGIBLE = math.log(1e-20)
_INITIAL_PANELS = 8


class Posterior:
    """The posterior of ``m`` analyses on a shared quadrature rule over τ (internal)."""

    def __init__(
        self,
        y: FloatArray,
        v: FloatArray,
        present: BoolArray,
        prior: TauPrior,
        mu_prior: NormalPrior | None,
        scale: FloatArray,
        bounded: bool,
    ) -> None:
        self.y, self.v, self.present = y, v, present
        self.prior, self.mu_prior = prior, mu_prior
        self.scale, self.bounded = scale, bounded
        self.k = present.sum(axis=1)
        self.point = isinstance(prior, PointMass)
        # set by fit()
        self.a = np.empty(0)
        self.b = np.empty(0)
        self.tau = np.empty((0, 0))
        self.logw = np.empty((0, 0))
        self.logz = np.empty(0)
        self.error = np.empty(0)
        self.muhat = np.empty((0, 0))
        self.var = np.empty((0, 0))
        self.panel_mass = np.empty((0, 0))
        self.cum_mass = np.empty((0, 0))
        self.cum_mass_end = np.empty((0, 0))
        self.node_density = np.empty((0, 0, 0))
        self.converged = True

    # --- the map t -> τ and the log integrand ---------------------------------------------
    def tau_of(self, t: FloatArray) -> FloatArray:
        """τ at t (``(m, ...)`` or broadcastable against the per-analysis scale)."""
        c = self.scale.reshape((-1,) + (1,) * (t.ndim - 1))
        if self.bounded:
            return c * t
        with np.errstate(divide="ignore"):
            return c * t / (1.0 - t)

    def log_jacobian(self, t: FloatArray) -> FloatArray:
        c = self.scale.reshape((-1,) + (1,) * (t.ndim - 1))
        if self.bounded:
            return np.broadcast_to(np.log(c), np.broadcast_shapes(c.shape, t.shape)).copy()  # type: ignore[no-any-return]
        with np.errstate(divide="ignore"):
            return np.log(c) - 2.0 * np.log1p(-t)

    def t_of(self, tau: FloatArray) -> FloatArray:
        c = self.scale.reshape((-1,) + (1,) * (tau.ndim - 1))
        if self.bounded:
            return tau / c
        return tau / (c + tau)

    def conditional(self, tau: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``log p(y | τ)``, ``μ̂(τ)`` and ``V(τ)`` at τ of shape ``(m, n)``."""
        tau2 = (tau * tau)[:, :, None]
        pres = self.present[:, None, :]
        vt = self.v[:, None, :] + tau2
        w = np.where(pres, 1.0 / vt, 0.0)
        sw = w.sum(axis=2)
        swy = (w * self.y[:, None, :]).sum(axis=2)
        logdet = np.where(pres, np.log(vt), 0.0).sum(axis=2)
        k = self.k[:, None].astype(np.float64)
        if self.mu_prior is None:
            muhat = swy / sw
            big_w = sw
            const = -0.5 * (k - 1.0) * _LOG_2PI
            extra = 0.0
        else:
            p0 = 1.0 / self.mu_prior.sd**2
            big_w = sw + p0
            muhat = (swy + p0 * self.mu_prior.mean) / big_w
            const = -0.5 * k * _LOG_2PI - math.log(self.mu_prior.sd)
            extra = p0 * (self.mu_prior.mean - muhat) ** 2
        resid = self.y[:, None, :] - muhat[:, :, None]
        q = (w * resid * resid).sum(axis=2) + extra
        loglik = const - 0.5 * (logdet + np.log(big_w) + q)
        return loglik, muhat, 1.0 / big_w

    def log_post(self, tau: FloatArray) -> FloatArray:
        """Unnormalised log posterior density of τ at τ (``(m, n)``; -inf at τ = inf, the
        end t = 1 of the integration variable, where a quantile's Newton step may land)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            loglik, _, _ = self.conditional(tau)
        lp = self.prior.log_density_data(tau, self.v, self.present)
        with np.errstate(invalid="ignore"):
            out = loglik + lp
        return np.where(np.isnan(out), -np.inf, out)

    # --- the τ posterior ---------------------------------------------------------------------
    def tau_pdf(self, tau: FloatArray) -> FloatArray:
        """Normalised posterior density of τ at `tau` (``(m, q)``)."""
        with np.errstate(under="ignore", over="ignore"):
            return np.exp(self.log_post(np.maximum(tau, 0.0)) - self.logz[:, None])

    def tau_cdf_t(self, t: FloatArray) -> FloatArray:
        """Posterior CDF of τ at the points t (``(m, q)``, in the integration variable)."""
        return self._cdf_and_density_t(t)[0]

    def _cdf_and_density_t(self, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The posterior CDF of τ and the density in t at the points t (``(m, q)``): the
        mass of the panels before t plus the 15-point Kronrod rule on [panel start, t], the
        density at t evaluated with the same nodes (one pass over the model)."""
        t = np.clip(t, 0.0, 1.0)
        j = np.clip(np.searchsorted(self.b, t, side="left"), 0, len(self.a) - 1)
        before = np.take_along_axis(self.cum_mass, j, axis=1)
        a = self.a[j]
        half = 0.5 * (t - a)
        nodes = np.concatenate(
            (a[..., None] + half[..., None] * (1.0 + KRONROD_X), t[..., None]), axis=2
        )
        m, q = t.shape
        tt = nodes.reshape(m, q * 16)
        with np.errstate(invalid="ignore"):  # -inf + inf at t = 1: density 0 there
            lf = self.log_post(self.tau_of(tt)) + self.log_jacobian(tt) - self.logz[:, None]
        lf = np.where(np.isnan(lf), -np.inf, lf)
        with np.errstate(under="ignore", over="ignore"):
            f = np.exp(lf).reshape(m, q, 16)
        inside = (f[..., :15] * KRONROD_W).sum(axis=2) * half
        cdf: FloatArray = np.clip(before + inside, 0.0, 1.0)
        return cdf, f[..., 15]

    def tau_cdf(self, tau: FloatArray) -> FloatArray:
        if self.point:
            return np.where(tau >= self.tau[:, :1], 1.0, 0.0)
        return self.tau_cdf_t(self.t_of(np.maximum(tau, 0.0)))

    def tau_quantile(self, p: FloatArray) -> FloatArray:
        """Posterior quantiles of τ (``p`` of shape ``(m, q)``), by safeguarded Newton in t
        started at the root of the panel's interpolated CDF (two steps reach 1e-14)."""
        if self.point:
            return np.broadcast_to(self.tau[:, :1], p.shape).copy()  # type: ignore[no-any-return]
        # a level within an ulp of 1 makes (1 + level)/2 round to 1: the quantile of the
        # largest probability below 1 is the finite answer the caller meant
        p = np.minimum(p, np.nextafter(1.0, 0.0))
        cum = self.cum_mass_end  # (m, P): mass up to the end of each panel
        j: IntArray = np.empty(p.shape, dtype=np.intp)
        for r in range(p.shape[0]):
            j[r] = np.searchsorted(cum[r], p[r], side="left")
        j = np.clip(j, 0, len(self.a) - 1)
        lo: FloatArray = self.a[j].astype(np.float64)
        hi: FloatArray = self.b[j].astype(np.float64)
        x = lo + 0.5 * (hi - lo) * (1.0 + self._interpolated_root(p, j))
        x = np.minimum(x, np.nextafter(hi, lo))  # τ(t = 1) is infinite

        def fun(tq: FloatArray) -> tuple[FloatArray, FloatArray]:
            cdf, dens = self._cdf_and_density_t(tq)
            return cdf - p, dens

        t = _newton(fun, x, lo, hi, xtol=1e-14 * (hi - lo))
        return self.tau_of(t)

    def _interpolated_root(self, p: FloatArray, j: IntArray) -> FloatArray:
        """u in [-1, 1] where the integral of panel j's interpolant reaches p (``(m, q)``)."""
        rows = np.arange(p.shape[0])[:, None]
        coef = np.einsum("cn,mqn->mqc", _ANTIDERIV_POW, self.node_density[rows, j])
        dcoef = coef[..., 1:] * _POWERS[1:]  # the interpolant itself (the derivative)
        half = 0.5 * (self.b[j] - self.a[j])
        target = (p - np.take_along_axis(self.cum_mass, j, axis=1)) / half

        def fun(u: FloatArray) -> tuple[FloatArray, FloatArray]:
            pw = u[..., None] ** _POWERS
            return (pw * coef).sum(axis=2) - target, (pw[..., :15] * dcoef).sum(axis=2)

        lo, hi = np.full(p.shape, -1.0), np.full(p.shape, 1.0)
        # start: the linear interpolation of the panel's mass (coef summed at u = 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            u0 = np.clip(2.0 * target / coef.sum(axis=2) - 1.0, -1.0, 1.0)
        u0 = np.where(np.isfinite(u0), u0, 0.0)
        return np.clip(_newton(fun, u0, lo, hi, xtol=1e-12, maxiter=30), -1, 1)

    # --- mixtures over the nodes -------------------------------------------------------------
    def weights(self) -> FloatArray:
        with np.errstate(under="ignore"):
            return np.exp(self.logw)


def _newton(
    fun: Callable[[FloatArray], tuple[FloatArray, ...]],
    x: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    *,
    xtol: float | FloatArray,
    maxiter: int = 200,
) -> FloatArray:
    """Vectorised Newton's method safeguarded by bisection on a bracket [lo, hi] of an
    increasing function (``fun`` returns its value and derivative, and optionally its
    second derivative: then Halley's step, cubically convergent); stops when the steps
    are below the absolute tolerance `xtol` (or 4 ulp of x)."""
    x, lo, hi = x.copy(), lo.copy(), hi.copy()
    for _ in range(maxiter):
        out = fun(x)
        f, d = out[0], out[1]
        lo = np.where(f < 0, x, lo)
        hi = np.where(f > 0, x, hi)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = f / d
            if len(out) > 2:
                # Halley: f / (f' - f f'' / (2 f')); the Newton step where the correction
                # is not small (far from the root)
                corr = 0.5 * step * out[2] / d
                step = np.where(np.abs(corr) < 0.5, step / (1.0 - corr), step)
            xn = x - step
        tol = np.maximum(xtol, 4.0 * np.spacing(np.abs(x)))
        small = np.abs(xn - x) <= tol  # converged: accept the step even on the bracket
        bad = ~((xn > lo) & (xn < hi)) | ~np.isfinite(xn)
        xn = np.where(bad & ~small, 0.5 * (lo + hi), xn)
        done = small | (f == 0)
        x = np.where(f == 0, x, xn)
        if done.all() or (hi - lo <= tol).all():
            break
    return x


def mixture_cdf(x: FloatArray, w: FloatArray, mean: FloatArray, sd: FloatArray) -> FloatArray:
    """CDF at `x` (``(R, q)``) of the normal mixtures with weights `w`, means `mean` and
    standard deviations `sd` (each ``(R, n)``)."""
    z = (x[:, :, None] - mean[:, None, :]) / sd[:, None, :]
    return np.einsum("rqn,rn->rq", special.ndtr(z), w)  # type: ignore[no-any-return]


def mixture_pdf(x: FloatArray, w: FloatArray, mean: FloatArray, sd: FloatArray) -> FloatArray:
    z = (x[:, :, None] - mean[:, None, :]) / sd[:, None, :]
    with np.errstate(under="ignore"):
        dens = np.exp(-0.5 * z * z) / (math.sqrt(2.0 * math.pi) * sd[:, None, :])
    return np.einsum("rqn,rn->rq", dens, w)  # type: ignore[no-any-return]


def mixture_quantile(p: FloatArray, w: FloatArray, mean: FloatArray, sd: FloatArray) -> FloatArray:
    """Quantiles (``p`` of shape ``(R, q)``) of normal mixtures, by safeguarded Newton."""
    big = w > 1e-300
    lo_c = np.where(big, mean - 40.0 * sd, np.inf).min(axis=1)
    hi_c = np.where(big, mean + 40.0 * sd, -np.inf).max(axis=1)
    # start: the Cornish-Fisher expansion with the mixture's skewness and excess kurtosis
    # (a mixture over τ is heavy-tailed; the normal quantile alone starts far out)
    mu = (w * mean).sum(axis=1)
    d = mean - mu[:, None]
    s2 = sd * sd
    var = (w * (s2 + d * d)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = (w * d * (d * d + 3.0 * s2)).sum(axis=1) / var**1.5
        g2 = (w * (d**4 + 6.0 * d * d * s2 + 3.0 * s2 * s2)).sum(axis=1) / var**2 - 3.0
    g1 = np.where(np.isfinite(g1), g1, 0.0)[:, None]
    g2 = np.where(np.isfinite(g2), g2, 0.0)[:, None]
    z = special.ndtri(np.clip(p, 1e-12, 1 - 1e-12))
    zcf = (
        z
        + (z * z - 1.0) * g1 / 6.0
        + (z**3 - 3.0 * z) * g2 / 24.0
        - (2.0 * z**3 - 5.0 * z) * g1 * g1 / 36.0
    )
    # the expansion is not monotone for large kurtosis: keep it only near the normal start
    zcf = np.where(np.abs(zcf - z) <= np.abs(z), zcf, z)
    start = mu[:, None] + np.sqrt(var)[:, None] * zcf
    lo = np.broadcast_to(lo_c[:, None], p.shape)
    hi = np.broadcast_to(hi_c[:, None], p.shape)
    start = np.clip(start, lo, hi)

    inv_sd = 1.0 / sd
    wd = w * inv_sd * (1.0 / math.sqrt(2.0 * math.pi))

    def fun(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        # CDF, density and its derivative from one pass over the components
        z = (x[:, :, None] - mean[:, None, :]) * inv_sd[:, None, :]
        with np.errstate(under="ignore"):
            phi = np.exp(-0.5 * z * z)
        cdf = np.einsum("rqn,rn->rq", special.ndtr(z), w)
        dens = np.einsum("rqn,rn->rq", phi, wd)
        slope = -np.einsum("rqn,rn->rq", phi * z, wd * inv_sd)
        return cdf - p, dens, slope

    # steps below 1e-13 of the narrowest significant component's SD
    spread = np.where(big, sd, np.inf).min(axis=1)[:, None]
    return _newton(fun, start, lo, hi, xtol=1e-13 * spread)


def mixture_mode(
    w: FloatArray, mean: FloatArray, sd: FloatArray, lo: FloatArray, hi: FloatArray
) -> FloatArray:
    """Mode of each row's normal mixture in the bracket [lo, hi] (``(R,)``): Newton's
    method on the density's derivative, safeguarded by bisection."""

    def fun(x: FloatArray) -> tuple[FloatArray, FloatArray]:
        z = (x[:, None] - mean) / sd
        with np.errstate(under="ignore"):
            phi = w * np.exp(-0.5 * z * z) / sd
        d1 = -(phi * z / sd).sum(axis=1)  # f'(x) up to the factor 1/sqrt(2 pi)
        d2 = (phi * (z * z - 1.0) / (sd * sd)).sum(axis=1)
        return -d1, -d2  # -f' increases through the mode

    x = 0.5 * (lo + hi)
    spread = np.where(w > 1e-300, sd, np.inf).min(axis=1)
    return _newton(fun, x, lo.astype(np.float64), hi.astype(np.float64), xtol=1e-13 * spread)


def golden_max(
    fun: Callable[[FloatArray], FloatArray],
    lo: FloatArray,
    hi: FloatArray,
    *,
    xtol: float = 1e-12,
    iters: int = 100,
) -> FloatArray:
    """Vectorised golden-section search for the maximum of unimodal `fun` on [lo, hi]
    (one evaluation per step; stops when every bracket is below `xtol` relative)."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo.astype(np.float64), hi.astype(np.float64)
    c = b - g * (b - a)
    d = a + g * (b - a)
    fc, fd = fun(c), fun(d)
    for _ in range(iters):
        if (np.abs(b - a) <= xtol * np.maximum(1.0, np.abs(a))).all():
            break
        left = fc >= fd  # the maximum is in [a, d]
        a, b = np.where(left, a, c), np.where(left, d, b)
        x_new = np.where(left, b - g * (b - a), a + g * (b - a))
        f_new = fun(x_new)
        c, d, fc, fd = (
            np.where(left, x_new, d),
            np.where(left, c, x_new),
            np.where(left, f_new, fd),
            np.where(left, fc, f_new),
        )
    return 0.5 * (a + b)


def _initial_panels(n: int) -> tuple[FloatArray, FloatArray]:
    edges = np.linspace(0.0, 1.0, n + 1)
    return edges[:-1].copy(), edges[1:].copy()


def fit(
    y: FloatArray,
    v: FloatArray,
    present: BoolArray,
    prior: TauPrior,
    mu_prior: NormalPrior | None,
    *,
    rtol: float = RTOL,
) -> Posterior:
    """The posterior of each row of ``(y, v)`` (``(m, k)``; `present` masks the studies)."""
    m = y.shape[0]
    if isinstance(prior, PointMass):
        post = Posterior(y, v, present, prior, mu_prior, np.ones(m), bounded=True)
        tau = np.full((m, 1), prior.tau0)
        loglik, muhat, var = post.conditional(tau)
        post.tau, post.muhat, post.var = tau, muhat, var
        post.logw = np.zeros((m, 1))
        post.logz = loglik[:, 0]
        post.error = np.zeros(m)
        post.a, post.b = np.array([0.0]), np.array([1.0])
        return post
    bounded = math.isfinite(prior.upper)
    if bounded:
        scale = np.full(m, prior.upper)
    else:
        scale = _data_scale(y, v, present)
        hint = prior.scale_hint()
        if math.isfinite(hint):
            scale = np.minimum(scale, hint)
    post = Posterior(y, v, present, prior, mu_prior, scale, bounded)
    a, b = _initial_panels(_INITIAL_PANELS)
    logf = _eval_panels(post, a, b)  # (m, P, 15)
    converged = True
    for _ in range(_MAX_ROUNDS):
        shift = logf.max(axis=(1, 2))
        shift = np.where(np.isfinite(shift), shift, 0.0)
        with np.errstate(under="ignore", over="ignore"):
            f = np.exp(logf - shift[:, None, None])
        half = 0.5 * (b - a)
        kq = (f * KRONROD_W).sum(axis=2) * half
        err = np.abs((f * _DIFF_W).sum(axis=2)) * half
        z = kq.sum(axis=1)
        total = err.sum(axis=1)
        if (total <= rtol * z).all():
            break
        p = len(a)
        split = (err > (rtol * z / p)[:, None]).any(axis=0)
        if p + int(split.sum()) > _MAX_PANELS:
            converged = False
            break
        mid = 0.5 * (a[split] + b[split])
        new_a = np.concatenate((a[~split], a[split], mid))
        new_b = np.concatenate((b[~split], mid, b[split]))
        order = np.argsort(new_a, kind="stable")
        fresh = _eval_panels(
            post, np.concatenate((a[split], mid)), np.concatenate((mid, b[split]))
        )
        logf = np.concatenate((logf[:, ~split], fresh), axis=1)[:, order]
        a, b = new_a[order], new_b[order]
    else:
        converged = False
    shift = logf.max(axis=(1, 2))
    shift = np.where(np.isfinite(shift), shift, 0.0)
    half = 0.5 * (b - a)
    with np.errstate(under="ignore", over="ignore"):
        f = np.exp(logf - shift[:, None, None])
    kq = (f * KRONROD_W).sum(axis=2) * half
    err = np.abs((f * _DIFF_W).sum(axis=2)) * half
    z = kq.sum(axis=1)
    with np.errstate(divide="ignore"):
        post.logz = shift + np.log(z)
        post.error = err.sum(axis=1) / z
    t_nodes = (a[:, None] + half[:, None] * (1.0 + KRONROD_X)).reshape(-1)
    w_nodes = (half[:, None] * KRONROD_W).reshape(-1)
    tt = np.broadcast_to(t_nodes, (m, t_nodes.size)).copy()
    post.a, post.b = a, b
    with np.errstate(under="ignore"):
        post.node_density = np.exp(logf - post.logz[:, None, None])  # (m, P, 15), in t
    post.tau = post.tau_of(tt)
    with np.errstate(divide="ignore"):
        post.logw = logf.reshape(m, -1) + np.log(w_nodes) - post.logz[:, None]
    # nodes whose posterior mass is below 1e-20 in every analysis carry no information
    # (all of them together hold less than 1e-16): the mixtures leave them out
    keep = (post.logw > _LOG_NEGLIGIBLE).any(axis=0)
    post.tau, post.logw = post.tau[:, keep], post.logw[:, keep]
    _, post.muhat, post.var = post.conditional(post.tau)
    post.panel_mass = kq / z[:, None]
    cum = np.cumsum(post.panel_mass, axis=1)
    post.cum_mass_end = cum
    post.cum_mass = np.concatenate((np.zeros((m, 1)), cum[:, :-1]), axis=1)
    post.converged = converged
    return post


def _eval_panels(post: Posterior, a: FloatArray, b: FloatArray) -> FloatArray:
    """Log integrand (in t) at the 15 Kronrod nodes of each panel: ``(m, P, 15)``."""
    m = post.y.shape[0]
    half = 0.5 * (b - a)
    t = (a[:, None] + half[:, None] * (1.0 + KRONROD_X)).reshape(-1)
    tt = np.broadcast_to(t, (m, t.size)).copy()
    lf = post.log_post(post.tau_of(tt)) + post.log_jacobian(tt)
    return lf.reshape(m, len(a), 15)


def _data_scale(y: FloatArray, v: FloatArray, present: BoolArray) -> FloatArray:
    """A magnitude of τ suggested by the data: the spread of the effects or the typical
    standard error, whichever is larger (only places the integration grid)."""
    k = present.sum(axis=1)
    yy = np.where(present, y, 0.0)
    mean = yy.sum(axis=1) / k
    dev = np.where(present, (y - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(k - 1, 1)
    vbar = np.where(present, v, 0.0).sum(axis=1) / k
    out = np.sqrt(np.maximum(dev, vbar))
    return np.where(out > 0, out, 1.0)


def eval_at(post: Posterior, tau: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``log p(y | τ)``, ``μ̂`` and ``V`` at given τ values (``(m, q)``)."""
    return post.conditional(tau)


def logsumexp_rows(x: FloatArray) -> FloatArray:
    return special.logsumexp(x, axis=1)  # type: ignore[no-any-return]
