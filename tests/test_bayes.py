"""bayes_pool and bayes_pool_many: published bayesmeta values, exact integration, limits.

Oracles: the values printed in bayesmeta's vignette (tests/reference/published_bayes.json,
with the source and printed decimals), 16-digit tanh-sinh quadrature in mpmath (an
independent implementation of the model's integrals), closed forms for the limiting
cases (:func:`ketameta.pool` with τ fixed, the common-effect model).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

import ketameta
from ketameta import priors
from ketameta._engine import bayes as engine

from .properties.strategies import datasets

REF = json.loads((Path(__file__).parent / "reference" / "published_bayes.json").read_text())
SCHOOLS = REF["eight_schools"]
Y = SCHOOLS["data"]["effect"]
SE = SCHOOLS["data"]["stderr"]


@pytest.fixture(scope="module")
def schools1() -> ketameta.BayesPoolResult:
    return ketameta.bayes_pool(Y, sei=SE, tau_prior=priors.HalfCauchy(25), mu_prior=(0, 50))


@pytest.fixture(scope="module")
def schools2() -> ketameta.BayesPoolResult:
    return ketameta.bayes_pool(Y, sei=SE, tau_prior="uniform")


def _printed(x: float, decimals: int) -> float:
    return 0.5 * 10.0**-decimals + 1e-12 * abs(x)


# --- bayesmeta's printed values ---------------------------------------------------------------
@pytest.mark.parametrize("example", ["example1", "example2"])
def test_example_bayesmeta_tau_margin_to_printed_digits(example: str, request) -> None:
    """bayesmeta integrates the tau margin with integrate(): its printout is exact to 6 dp."""
    res = request.getfixturevalue("schools1" if example == "example1" else "schools2")
    tau = SCHOOLS[example]["summary_shortest"]["tau"]
    tol = _printed(1.0, 6)
    assert res.mode("tau") == pytest.approx(tau["mode"], abs=tol)
    assert res.tau_median == pytest.approx(tau["median"], abs=tol)
    assert res.tau_mean == pytest.approx(tau["mean"], abs=tol)
    assert res.tau_sd == pytest.approx(tau["sd"], abs=tol)
    lo, hi = res.interval("tau", kind="shortest")
    assert lo == tau["lower"]
    assert hi == pytest.approx(tau["upper"], abs=tol)


def test_example_bayesmeta_function_calls(schools1: ketameta.BayesPoolResult) -> None:
    ex = SCHOOLS["example1"]
    q = ex["qposterior_tau_0.95"]
    assert float(schools1.quantile("tau", 0.95)) == pytest.approx(
        q["value"], abs=_printed(q["value"], q["printed_decimals"])
    )
    central = ex["tau_central_95"]
    for got, want in zip(schools1.interval("tau"), central["value"], strict=True):
        assert got == pytest.approx(want, abs=_printed(want, central["printed_decimals"]))
    assert schools1.tau_ci_lower == pytest.approx(central["value"][0], abs=1e-7)


@pytest.mark.parametrize("which", ["ml_joint", "map_joint"])
def test_example_bayesmeta_ml_map_joint(schools1: ketameta.BayesPoolResult, which: str) -> None:
    """The joint ML and MAP estimates are optimisations, not DIRECT: exact to 6 dp."""
    want = SCHOOLS["example1"][which]
    got = schools1.ml_estimate() if which == "ml_joint" else schools1.map_estimate()
    assert got[0] == pytest.approx(want["tau"], abs=1e-6)
    assert got[1] == pytest.approx(want["mu"], abs=_printed(want["mu"], 6))


def test_example_bayesmeta_ml_marginal(schools1: ketameta.BayesPoolResult) -> None:
    """'ML marginal': τ maximising p(y | τ) (0 here, as printed) and μ maximising
    p(y | μ) = ∫ p(y | μ, τ) p(τ) dτ: the exact maximiser (mpmath, below) is 3.9e-6 from
    bayesmeta's printout (its optimiser's tolerance)."""
    want = SCHOOLS["example1"]["ml_marginal"]
    tau, mu = schools1.ml_marginal()
    assert tau == want["tau"]
    assert mu == pytest.approx(want["mu"], abs=5e-6)
    mp.mp.dps = 20
    yy = [mp.mpf(str(a)) for a in Y]
    vv = [mp.mpf(str(s)) ** 2 for s in SE]

    def loglik_mu(m):
        def f(t):
            ll = mp.fsum(
                -0.5 * mp.log(2 * mp.pi * (vi + t * t)) - (yi - m) ** 2 / (2 * (vi + t * t))
                for yi, vi in zip(yy, vv, strict=True)
            )
            return mp.exp(ll) * 2 / (mp.pi * 25 * (1 + (t / 25) ** 2))

        return mp.log(mp.quad(f, [0, 5, 10, 25, 50, 100, mp.inf]))

    assert float(mp.diff(loglik_mu, mu)) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("example", ["example1", "example2"])
def test_example_bayesmeta_direct_values(example: str, request) -> None:
    """bayesmeta's mu and theta_new printouts come from the DIRECT grid (delta = 0.01): they
    agree with the exact values to 1% of the posterior SD (see the JSON's description)."""
    res = request.getfixturevalue("schools1" if example == "example1" else "schools2")
    summ = SCHOOLS[example]["summary_shortest"]
    for param, pre in (("mu", "mu"), ("theta_new", "pred")):
        want = summ[param]
        tol = 0.01 * want["sd"]
        assert res.mode(param) == pytest.approx(want["mode"], abs=tol)
        assert getattr(res, f"{pre}_median") == pytest.approx(want["median"], abs=tol)
        assert getattr(res, f"{pre}_mean") == pytest.approx(want["mean"], abs=tol)
        assert getattr(res, f"{pre}_sd") == pytest.approx(want["sd"], abs=tol)
        lo, hi = res.interval(param, kind="shortest")
        assert lo == pytest.approx(want["lower"], abs=tol)
        assert hi == pytest.approx(want["upper"], abs=tol)


def test_example_bayesmeta_probabilities_and_shrinkage(schools1: ketameta.BayesPoolResult) -> None:
    ex = SCHOOLS["example1"]
    assert schools1.probability("mu", above=0) == pytest.approx(
        ex["pposterior_mu_0_complement"]["value"], abs=1e-3
    )
    assert float(schools1.quantile("mu", 0.95)) == pytest.approx(
        ex["qposterior_mu_0.95"]["value"], abs=0.01 * 4.995762
    )
    for label, want in ex["shrinkage"].items():
        i = SCHOOLS["data"]["labels"].index(label)
        tol = 0.01 * want["sd"]
        assert schools1.theta_median[i] == pytest.approx(want["median"], abs=tol)
        assert schools1.theta_mean[i] == pytest.approx(want["mean"], abs=tol)
        assert schools1.theta_sd[i] == pytest.approx(want["sd"], abs=tol)
        assert schools1.mode("theta", study=i) == pytest.approx(want["mode"], abs=tol)
        lo, hi = schools1.interval("theta", kind="shortest", study=i)
        assert lo == pytest.approx(want["lower"], abs=tol)
        assert hi == pytest.approx(want["upper"], abs=tol)


# --- a second printed bayesmeta run: Jeffreys prior, k = 3 (Okumura 2018, section 6.5) -------
THREE = REF["three_studies_jeffreys"]


@pytest.fixture(scope="module")
def three() -> ketameta.BayesPoolResult:
    return ketameta.bayes_pool(
        THREE["data"]["y"], sei=THREE["data"]["sigma"], tau_prior="jeffreys"
    )


@pytest.fixture(scope="module")
def three_mp() -> MpModel:
    vm = [mp.mpf(s) ** 2 for s in THREE["data"]["sigma"]]

    def logprior(t):  # Jeffreys (Bodnar et al. 2017): sqrt(sum (tau / (v_i + tau^2))^2)
        return mp.log(mp.sqrt(mp.fsum((t / (vi + t * t)) ** 2 for vi in vm)))

    return MpModel(THREE["data"]["y"], [float(x) for x in vm], logprior)


def test_three_studies_tau_margin_to_printed_digits(three) -> None:
    """bayesmeta's integrate()-based tau margin, printed to 8 decimals: median and mean to
    the printed digits; the SD does not exist (NA in bayesmeta, NaN here)."""
    tau = THREE["summary_shortest"]["tau"]
    tol = _printed(1.0, tau["printed_decimals"])
    assert three.tau_median == pytest.approx(tau["median"], abs=tol)
    assert three.tau_mean == pytest.approx(tau["mean"], abs=tol)
    assert tau["sd"] is None
    assert math.isnan(three.tau_sd)


def test_three_studies_optimiser_values(three, three_mp) -> None:
    """The tau mode, the shortest tau interval and the joint ML/MAP estimates are
    optimisations in bayesmeta, printed with its optimiser's tolerance: ketameta's values
    are the exact ones (mpmath; metafor for the ML estimate) and lie within that tolerance
    of the printout."""
    tau = THREE["summary_shortest"]["tau"]
    # the mode: 7e-7 from the printout, the exact stationary point of the density
    mode = three.mode("tau")
    assert mode == pytest.approx(tau["mode"], abs=1e-6)
    assert float(mp.diff(lambda t: mp.log(three_mp.dens(t)), mode)) == pytest.approx(0, abs=1e-8)
    # the shortest interval: same mass and length as bayesmeta's, endpoints 1.3e-5 apart,
    # and ketameta's has the exact property (equal density at both ends; at bayesmeta's
    # endpoints the ratio is 1 - 4.5e-4, the density rising like 1/tau near 0)
    lo, hi = three.interval("tau", kind="shortest")
    assert hi - lo == pytest.approx(tau["upper"] - tau["lower"], abs=1e-7)
    assert lo == pytest.approx(tau["lower"], abs=2e-5)
    assert hi == pytest.approx(tau["upper"], abs=2e-5)
    assert float(three_mp.dens(lo) / three_mp.dens(hi)) == pytest.approx(1.0, abs=1e-6)
    assert float(three_mp.tau_cdf(hi) - three_mp.tau_cdf(lo)) == pytest.approx(0.95, abs=1e-9)
    # joint ML: metafor's ML estimate (bayesmeta's printout is 4e-4 away in tau)
    ml = THREE["metafor_ml"]
    t_ml, mu_ml = three.ml_estimate()
    assert t_ml == pytest.approx(ml["tau"], abs=1e-9)
    assert mu_ml == pytest.approx(ml["mu"], abs=1e-8)
    assert t_ml == pytest.approx(THREE["ml_joint"]["tau"], abs=5e-4)
    # joint MAP: the exact maximiser of p(tau) p(y | mu_hat(tau), tau) (mpmath), 1.7e-5
    # from the printout
    t_map, mu_map = three.map_estimate()
    assert t_map == pytest.approx(THREE["map_joint"]["tau"], abs=2e-5)
    assert mu_map == pytest.approx(THREE["map_joint"]["mu"], abs=1e-4)
    vm = three_mp.v

    def profile(t):
        _, muh, _ = three_mp.cond(t)
        r = mp.fsum((yi - muh) ** 2 / (vi + t * t) for yi, vi in zip(three_mp.y, vm, strict=True))
        ld = mp.fsum(mp.log(vi + t * t) for vi in vm)
        return three_mp.logprior(t) - (ld + r) / 2

    # (a maximum located in double precision: to ~sqrt(eps) relative)
    assert float(mp.diff(profile, t_map)) == pytest.approx(0, abs=1e-7)


def test_three_studies_mu_and_shrinkage(three, three_mp) -> None:
    """mu: the mode equals bayesmeta's 'ML marginal' mu (exact, integrate()-based) to its
    printed digits; the DIRECT-based summaries agree to 1% of bayesmeta's printed SD (the
    exact SD of mu does not exist). The shrinkage estimates' moments exist for every tau
    tail: SDs against mpmath to 1e-8, bayesmeta's DIRECT printout to 1% of the SD."""
    assert three.mode("mu") == pytest.approx(THREE["ml_marginal"]["mu"], abs=_printed(12.7, 5))
    # ml_marginal(): μ is that mode (flat μ prior); τ maximises the restricted likelihood
    # (metafor's REML estimate), 3e-6 from bayesmeta's optimiser-printed value
    t_mlm, mu_mlm = three.ml_marginal()
    assert mu_mlm == three.mode("mu")
    assert t_mlm == pytest.approx(THREE["metafor_reml_tau"]["tau"], abs=1e-7)
    assert t_mlm == pytest.approx(THREE["ml_marginal"]["tau"], abs=5e-6)
    mu = THREE["summary_shortest"]["mu"]
    tol = 0.01 * mu["sd"]
    assert math.isnan(three.mu_sd)
    assert three.mu_median == pytest.approx(mu["median"], abs=tol)
    assert three.mu_mean == pytest.approx(mu["mean"], abs=tol)
    assert three.mode("mu") == pytest.approx(mu["mode"], abs=tol)
    lo, hi = three.interval("mu", kind="shortest")
    assert lo == pytest.approx(mu["lower"], abs=tol)
    assert hi == pytest.approx(mu["upper"], abs=tol)
    assert float(three_mp.mu_cdf(three.mu_median)) == pytest.approx(0.5, abs=1e-9)
    th = THREE["theta"]
    for i in range(3):
        v0, y0 = three_mp.v[i], three_mp.y[i]

        def shrink(t, v0=v0, y0=y0):
            _, muh, var = three_mp.cond(t)
            b = v0 / (v0 + t * t)
            return b * muh + (1 - b) * y0, v0 * (1 - b) + b * b * var

        m1 = three_mp.expect(lambda t, f=shrink: f(t)[0])
        var = three_mp.expect(lambda t, f=shrink, m1=m1: f(t)[1] + (f(t)[0] - m1) ** 2)
        assert three.theta_mean[i] == pytest.approx(float(m1), rel=1e-9)
        assert three.theta_sd[i] == pytest.approx(float(mp.sqrt(var)), rel=1e-8)
        tol = 0.01 * th["sd"][i]
        assert three.theta_sd[i] == pytest.approx(th["sd"][i], abs=tol)
        assert three.theta_mean[i] == pytest.approx(th["mean"][i], abs=tol)
        assert three.theta_median[i] == pytest.approx(th["median"][i], abs=tol)
        assert three.mode("theta", study=i) == pytest.approx(th["mode"][i], abs=tol)
        lo, hi = three.interval("theta", kind="shortest", study=i)
        assert lo == pytest.approx(th["lower"][i], abs=tol)
        assert hi == pytest.approx(th["upper"][i], abs=tol)


# --- exact integration: mpmath ----------------------------------------------------------------
class MpModel:
    """The NNHM's integrals in mpmath (16 digits, tanh-sinh quadrature), written from the
    formulas independently."""

    def __init__(self, y, v, logprior, mu_prior=None, prior_scale=None) -> None:
        mp.mp.dps = 16
        self.y = [mp.mpf(float(x)) for x in y]
        self.v = [mp.mpf(float(x)) for x in v]
        self.logprior = logprior
        self.mu_prior = mu_prior
        scales = [*(math.sqrt(float(x)) for x in v), float(np.std(y)) + 1e-300]
        if prior_scale is not None:
            scales.append(prior_scale)
        # breakpoints at multiples of every scale of the problem (tanh-sinh per interval;
        # too few of them left 1e-6 errors where the posterior is narrow beside wide studies)
        pts = {f * s for s in scales for f in (0.0625, 0.125, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 10)}
        self.pts = [0, *sorted(pts), mp.inf]
        self.z = mp.quad(self.dens, self.pts)

    def cond(self, t):
        w = [1 / (vi + t * t) for vi in self.v]
        sw = mp.fsum(w)
        swy = mp.fsum(wi * yi for wi, yi in zip(w, self.y, strict=True))
        k = len(self.y)
        if self.mu_prior is None:
            big, muh = sw, swy / sw
            const = -mp.mpf(k - 1) / 2 * mp.log(2 * mp.pi)
            extra = 0
        else:
            m, s = (mp.mpf(x) for x in self.mu_prior)
            big = sw + 1 / s**2
            muh = (swy + m / s**2) / big
            const = -mp.mpf(k) / 2 * mp.log(2 * mp.pi) - mp.log(s)
            extra = (m - muh) ** 2 / s**2
        q = mp.fsum(wi * (yi - muh) ** 2 for wi, yi in zip(w, self.y, strict=True)) + extra
        ll = const - (mp.fsum(mp.log(vi + t * t) for vi in self.v) + mp.log(big) + q) / 2
        return ll, muh, 1 / big

    def dens(self, t):
        return mp.exp(self.cond(t)[0] + self.logprior(t))

    def expect(self, g):
        return mp.quad(lambda t: self.dens(t) * g(t), self.pts) / self.z

    def tau_cdf(self, x):
        pts = [p for p in self.pts if p < x] + [x]
        return mp.quad(self.dens, pts) / self.z

    def mu_cdf(self, x, extra_var=False):
        def g(t):
            _, muh, var = self.cond(t)
            return mp.ncdf(x, muh, mp.sqrt(var + (t * t if extra_var else 0)))

        return self.expect(g)


def _hn_log(scale):
    return lambda t: mp.log(2) - mp.log(scale) - mp.log(2 * mp.pi) / 2 - (t / scale) ** 2 / 2


@settings(
    max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=datasets(min_k=1, max_k=5),
    prior_factor=st.sampled_from([0.3, 1.0, 5.0]),
    normal_mu=st.booleans(),
)
def test_exact_against_mpmath(data, prior_factor: float, normal_mu: bool) -> None:
    """Quantiles, CDFs, moments and the marginal likelihood agree with mpmath to 1e-8."""
    y, v = data
    scale = prior_factor * math.sqrt(float(np.median(v)))
    mu_prior = (float(np.mean(y)), 10 * scale + float(np.std(y))) if normal_mu else None
    res = ketameta.bayes_pool(y, v, tau_prior=priors.HalfNormal(scale), mu_prior=mu_prior)
    ref = MpModel(y, v, _hn_log(mp.mpf(scale)), mu_prior, prior_scale=scale)
    # a probability at x is known to ~ulp(x)/spread: effects far from 0 with tiny variances
    # lose digits in any double-precision evaluation
    ptol = 1e-8 + 1e-14 * float(np.max(np.abs(y))) / math.sqrt(float(np.min(v)))
    # τ: quantiles through the exact CDF, and the mean
    for p, q in zip(
        (0.025, 0.5, 0.975), (res.tau_ci_lower, res.tau_median, res.tau_ci_upper), strict=True
    ):
        assert float(ref.tau_cdf(q)) == pytest.approx(p, abs=ptol)
    assert res.tau_mean == pytest.approx(float(ref.expect(lambda t: t)), rel=1e-8)
    # μ and θ_new: quantiles through the exact mixture CDF, the mean
    assert float(ref.mu_cdf(res.mu_median)) == pytest.approx(0.5, abs=ptol)
    assert float(ref.mu_cdf(res.mu_ci_upper)) == pytest.approx(0.975, abs=ptol)
    assert float(ref.mu_cdf(res.pred_lower, extra_var=True)) == pytest.approx(0.025, abs=ptol)
    sd_ref = math.sqrt(float(np.std(y)) ** 2 + float(np.max(v)))
    mean_ref = float(ref.expect(lambda t: ref.cond(t)[1]))
    assert res.mu_mean == pytest.approx(mean_ref, abs=1e-8 * sd_ref)
    # shrinkage of study 0: its mean
    v0, y0 = ref.v[0], ref.y[0]

    def shrink(t):
        _, muh, _ = ref.cond(t)
        b = v0 / (v0 + t * t)
        return b * muh + (1 - b) * y0

    assert res.theta_mean[0] == pytest.approx(float(ref.expect(shrink)), abs=1e-8 * sd_ref)
    # marginal likelihood and the Bayes factor for τ = 0
    if normal_mu:
        assert res.log_marginal_likelihood == pytest.approx(float(mp.log(ref.z)), abs=1e-8)
    else:
        assert math.isnan(res.log_marginal_likelihood)
    ll0 = ref.cond(mp.mpf(0))[0]
    assert res.bf_tau0 == pytest.approx(float(mp.exp(ll0) / ref.z), rel=1e-8)


@settings(
    max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=datasets(min_k=1, max_k=5), prior_factor=st.sampled_from([0.3, 1.0, 5.0]))
def test_mu_side_spreads_against_mpmath(data, prior_factor: float) -> None:
    """The SDs of μ, θ_new, τ and a shrinkage estimate, and a shrinkage quantile, agree with
    mpmath to 1e-8 relative, also for effects far from 0 relative to their spread (the
    strategy's locations 1e3 and -1e4 with SEs down to 1e-4: the moments are taken about
    the mean, E[x²] - E[x]² cancelled every digit there)."""
    y, v = data
    scale = prior_factor * math.sqrt(float(np.median(v)))
    res = ketameta.bayes_pool(y, v, tau_prior=priors.HalfNormal(scale))
    ref = MpModel(y, v, _hn_log(mp.mpf(scale)), None, prior_scale=scale)
    mean = ref.expect(lambda t: ref.cond(t)[1])
    var_mu = ref.expect(lambda t: ref.cond(t)[2] + (ref.cond(t)[1] - mean) ** 2)
    assert res.mu_sd == pytest.approx(float(mp.sqrt(var_mu)), rel=1e-8)
    var_pred = var_mu + ref.expect(lambda t: t * t)
    assert res.pred_sd == pytest.approx(float(mp.sqrt(var_pred)), rel=1e-8)
    tau_mean = ref.expect(lambda t: t)
    tau_sd = mp.sqrt(ref.expect(lambda t: (t - tau_mean) ** 2))
    assert res.tau_sd == pytest.approx(float(tau_sd), rel=1e-8)
    v0, y0 = ref.v[0], ref.y[0]

    def shrink(t):
        _, muh, var = ref.cond(t)
        b = v0 / (v0 + t * t)
        return b * muh + (1 - b) * y0, v0 * (1 - b) + b * b * var

    th_mean = ref.expect(lambda t: shrink(t)[0])
    th_var = ref.expect(lambda t: shrink(t)[1] + (shrink(t)[0] - th_mean) ** 2)
    assert res.theta_sd[0] == pytest.approx(float(mp.sqrt(th_var)), rel=1e-8)
    q = float(res.quantile("theta", 0.9, study=0))

    def th_cdf(t):
        m, var = shrink(t)
        return mp.ncdf(q, m, mp.sqrt(var))

    ptol = 1e-8 + 1e-14 * float(np.max(np.abs(y))) / math.sqrt(float(np.min(v)))
    assert float(ref.expect(th_cdf)) == pytest.approx(0.9, abs=ptol)


def test_mu_side_is_shift_equivariant() -> None:
    # moving every effect by c moves μ, θ_new and θ_i by c and leaves their spreads alone
    # (to the inputs' rounding: ulp(1e7) / SD ~ 1e-8)
    y = np.array([0.1, -0.2, 0.3, 0.05])
    v = np.array([0.01, 0.02, 0.015, 0.01])
    base = ketameta.bayes_pool(y, v, tau_prior=priors.HalfNormal(0.5))
    for shift in (1e3, 1e5, 1e7):
        res = ketameta.bayes_pool(y + shift, v, tau_prior=priors.HalfNormal(0.5))
        rel = 1e-15 * shift / 0.01
        assert res.mu_sd == pytest.approx(base.mu_sd, rel=rel)
        assert res.pred_sd == pytest.approx(base.pred_sd, rel=rel)
        np.testing.assert_allclose(res.theta_sd, base.theta_sd, rtol=rel)
        assert res.tau_sd == pytest.approx(base.tau_sd, rel=rel)
        assert res.mu_median - shift == pytest.approx(base.mu_median, abs=4 * np.spacing(shift))
        many = ketameta.bayes_pool_many(
            (y + shift)[None, :], v[None, :], tau_prior=priors.HalfNormal(0.5)
        )
        assert float(many.mu_sd[0]) == pytest.approx(base.mu_sd, rel=rel)


@pytest.mark.parametrize(
    ("prior", "logprior"),
    [
        (priors.HalfCauchy(0.3), lambda t: mp.log(2 / (mp.pi * 0.3 * (1 + (t / 0.3) ** 2)))),
        (
            priors.LogNormal(-1.5, 1.0),
            lambda t: -mp.inf if t == 0 else mp.log(mp.npdf(mp.log(t), -1.5, 1.0) / t),
        ),
        (priors.Exponential(3.0), lambda t: mp.log(3) - 3 * t),
        (priors.ImproperUniform(), lambda t: mp.mpf(0)),
    ],
    ids=["half-cauchy", "log-normal", "exponential", "improper-uniform"],
)
def test_other_priors_against_mpmath(prior, logprior) -> None:
    y = [0.12, -0.35, 0.41, 0.05]
    v = [0.04, 0.09, 0.06, 0.02]
    res = ketameta.bayes_pool(y, v, tau_prior=prior)
    ref = MpModel(y, v, logprior)
    assert float(ref.tau_cdf(res.tau_median)) == pytest.approx(0.5, abs=1e-8)
    assert float(ref.mu_cdf(res.mu_ci_lower)) == pytest.approx(0.025, abs=1e-8)
    assert float(ref.mu_cdf(0.0)) == pytest.approx(float(res.cdf("mu", 0.0)), abs=1e-8)


def test_jeffreys_against_mpmath() -> None:
    y = [0.12, -0.35, 0.41]
    v = [0.04, 0.09, 0.06]
    vm = [mp.mpf(x) for x in v]

    def logprior(t):
        return mp.log(mp.sqrt(mp.fsum((t / (vi + t * t)) ** 2 for vi in vm)))

    res = ketameta.bayes_pool(y, v, tau_prior="jeffreys")
    ref = MpModel(y, v, logprior)
    assert float(ref.tau_cdf(res.tau_median)) == pytest.approx(0.5, abs=1e-8)
    assert float(ref.mu_cdf(res.mu_median)) == pytest.approx(0.5, abs=1e-8)


# --- limiting cases ---------------------------------------------------------------------------
@pytest.mark.parametrize("tau0", [0.0, 0.2, 1.5])
def test_point_prior_equals_pool_with_fixed_tau(tau0: float) -> None:
    """τ known and μ flat: μ | y is normal with pool()'s estimate and SE at tau2 = τ0²."""
    es = ketameta.escalc(
        "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    res = ketameta.bayes_pool(es, tau_prior=priors.PointMass(tau0))
    ref = ketameta.pool(es, tau2=tau0**2) if tau0 > 0 else ketameta.pool(es, method="EE")
    assert res.mu_median == pytest.approx(ref.estimate, rel=1e-12)
    assert res.mu_mean == pytest.approx(ref.estimate, rel=1e-12)
    assert res.mu_sd == pytest.approx(ref.se, rel=1e-12)
    assert res.mu_ci_lower == pytest.approx(ref.ci_lower, rel=1e-10)
    assert res.mu_ci_upper == pytest.approx(ref.ci_upper, rel=1e-10)
    assert res.tau_median == tau0
    # the predictive interval is metafor's z-based prediction interval
    assert res.pred_lower == pytest.approx(ref.pred_lower, rel=1e-10)
    assert res.pred_upper == pytest.approx(ref.pred_upper, rel=1e-10)


def test_narrow_prior_at_zero_is_the_common_effect_model() -> None:
    es = ketameta.escalc(
        "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    res = ketameta.bayes_pool(es, tau_prior=priors.HalfNormal(1e-7))
    ee = ketameta.pool(es, method="EE")
    assert res.mu_median == pytest.approx(ee.estimate, abs=1e-8)
    assert res.mu_sd == pytest.approx(ee.se, rel=1e-6)
    assert res.mu_ci_lower == pytest.approx(ee.ci_lower, abs=1e-7)


def test_narrow_log_normal_approaches_point_prior() -> None:
    y, v = [0.1, 0.5, -0.2, 0.3], [0.02, 0.03, 0.05, 0.01]
    near = ketameta.bayes_pool(y, v, tau_prior=priors.LogNormal(math.log(0.3), 1e-5))
    point = ketameta.bayes_pool(y, v, tau_prior=priors.PointMass(0.3))
    assert near.mu_median == pytest.approx(point.mu_median, abs=1e-5)
    assert near.tau_median == pytest.approx(0.3, rel=1e-4)


def test_k_equal_one_posterior_of_tau_is_the_prior() -> None:
    """With one study and a flat μ prior the data carry no information on τ."""
    res = ketameta.bayes_pool([0.4], [0.1], tau_prior=priors.HalfNormal(0.5))
    assert res.tau_median == pytest.approx(0.5 * stats.norm.ppf(0.75), rel=1e-9)


# --- batch ------------------------------------------------------------------------------------
def test_bayes_pool_many_rows_equal_bayes_pool() -> None:
    rng = np.random.default_rng(7)
    m, k = 12, 9
    Y = rng.normal(0.2, 0.4, (m, k))
    V = rng.uniform(0.01, 0.2, (m, k))
    Y[1, 3:] = np.nan  # ragged rows
    V[5, :7] = np.nan
    Y[9, :] = np.nan  # an empty row
    prior = priors.HalfNormal(0.5)
    batch = ketameta.bayes_pool_many(Y, V, tau_prior=prior, mu_prior=(0, 2))
    for i in range(m):
        keep = ~(np.isnan(Y[i]) | np.isnan(V[i]))
        if not keep.any():
            assert math.isnan(batch.mu_median[i])
            assert batch.k[i] == 0
            continue
        one = ketameta.bayes_pool(Y[i, keep], V[i, keep], tau_prior=prior, mu_prior=(0, 2))
        for f in (
            "tau_median",
            "tau_mean",
            "mu_median",
            "mu_mean",
            "mu_sd",
            "mu_ci_lower",
            "pred_upper",
            "log_marginal_likelihood",
            "bf_tau0",
        ):
            assert getattr(batch, f)[i] == pytest.approx(getattr(one, f), rel=1e-9, abs=1e-11), f
    assert len(batch) == m
    json.dumps(batch.to_dict())


def test_bayes_pool_many_validation() -> None:
    with pytest.raises(ValueError, match="row 0, study 1"):
        ketameta.bayes_pool_many([[0.1, 0.2]], [[0.1, -1.0]], tau_prior=priors.HalfNormal(1))
    with pytest.raises(TypeError, match="exactly one"):
        ketameta.bayes_pool_many([[0.1, 0.2]], tau_prior=priors.HalfNormal(1))


# --- behaviour, validation and output ---------------------------------------------------------
def test_improper_posterior_is_refused() -> None:
    with pytest.raises(ValueError, match="posterior is improper"):
        ketameta.bayes_pool([0.1, 0.3], [0.1, 0.1], tau_prior="uniform")
    # a normal prior on mu makes k = 2 enough
    res = ketameta.bayes_pool([0.1, 0.3], [0.1, 0.1], tau_prior="uniform", mu_prior=(0, 1))
    assert res.tau_median > 0
    # with k = 3 the posterior exists but its mean of tau does not (tail tau^-2)
    res = ketameta.bayes_pool([0.1, 0.3, 0.0], [0.1, 0.1, 0.1], tau_prior="uniform")
    assert math.isnan(res.tau_mean)
    assert math.isfinite(res.tau_median)


def test_bayes_factors_defined_only_with_proper_priors(schools1, schools2) -> None:
    assert math.isfinite(schools1.bf_tau0)
    assert math.isfinite(schools1.bf_mu0)
    assert math.isfinite(schools1.log_marginal_likelihood)
    assert math.isnan(schools2.bf_tau0)
    assert math.isnan(schools2.bf_mu0)
    # Savage-Dickey for mu = 0: posterior over prior density at 0
    assert schools1.bf_mu0 == pytest.approx(
        float(schools1.pdf("mu", 0.0)) / stats.norm.pdf(0, 0, 50), rel=1e-12
    )


def test_effect_sizes_input_and_omitted_studies() -> None:
    es = ketameta.escalc(
        "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    a = ketameta.bayes_pool(es, tau_prior=priors.HalfNormal(0.5))
    b = ketameta.bayes_pool(es.yi, es.vi, tau_prior=priors.HalfNormal(0.5), measure="RR")
    assert a == b
    assert a.measure == "RR"
    assert a.study_labels[0] == "Study 1"
    y = np.append(es.yi, np.nan)
    v = np.append(es.vi, 0.1)
    with pytest.warns(ketameta.OmittedStudiesWarning):
        c = ketameta.bayes_pool(y, v, tau_prior=priors.HalfNormal(0.5))
    assert c.omitted == (13,)
    assert c.mu_median == a.mu_median
    assert c.summary().endswith("Omitted studies (missing yi or vi): Study 14")


def test_validation_messages() -> None:
    with pytest.raises(TypeError, match="tau_prior"):
        ketameta.bayes_pool([0.1], [0.1], tau_prior=3)
    with pytest.raises(ValueError, match="unknown `tau_prior`"):
        ketameta.bayes_pool([0.1], [0.1], tau_prior="flat-ish")
    with pytest.raises(TypeError, match="mu_prior"):
        ketameta.bayes_pool([0.1], [0.1], tau_prior="jeffreys", mu_prior=5)
    with pytest.raises(ValueError, match="`scale` must be finite and positive"):
        priors.HalfNormal(-1)
    with pytest.raises(ValueError, match="`sd` must be finite and positive"):
        ketameta.bayes_pool([0.1], [0.1], tau_prior=priors.HalfNormal(1), mu_prior=(0, 0))
    res = ketameta.bayes_pool([0.1, 0.2], [0.1, 0.1], tau_prior=priors.HalfNormal(1))
    with pytest.raises(ValueError, match="open interval"):
        res.quantile("mu", 1.0)
    with pytest.raises(ValueError, match="study"):
        res.quantile("theta", 0.5, study=5)


def test_distribution_functions_are_consistent(schools1) -> None:
    for param in ("tau", "mu", "theta_new"):
        q = schools1.quantile(param, [0.1, 0.5, 0.9])
        assert schools1.cdf(param, q) == pytest.approx([0.1, 0.5, 0.9], abs=1e-10)
        lo, hi = float(q[0]), float(q[2])
        mass, _ = integrate.quad(
            lambda x, p=param: float(schools1.pdf(p, x)), lo, hi, epsabs=1e-12
        )
        assert mass == pytest.approx(0.8, abs=1e-8)
    lo, hi = schools1.interval("mu", kind="shortest")
    assert float(schools1.pdf("mu", lo)) == pytest.approx(float(schools1.pdf("mu", hi)), rel=1e-5)
    assert schools1.probability("mu", above=lo, below=hi) == pytest.approx(0.95, abs=1e-9)


def test_outputs(schools1) -> None:
    d = schools1.to_dict()
    json.dumps(d)
    assert d["tau_prior"] == "half-Cauchy(scale = 25)"
    assert d["mu_prior"] == "normal(mean = 0, sd = 50)"
    frame = schools1.to_frame()
    assert list(frame.index) == ["tau", "mu", "theta_new"]
    text = schools1.summary()
    assert "marginal posterior summary:" in text
    assert "median       4.758539" in text
    assert "tau prior (proper): half-Cauchy(scale = 25)" in text
    assert "BayesPoolResult(k=8" in repr(schools1)


def test_priors_normalised_and_cdfs() -> None:
    for prior in (
        priors.HalfNormal(0.7),
        priors.HalfStudentT(0.5, 3),
        priors.HalfCauchy(0.5),
        priors.Exponential(2.0),
        priors.Uniform(2.0),
        priors.LogNormal(-1, 0.8),
        priors.LogNormalTau2(-2.56, 1.74),
        priors.LogStudentTTau2(-3.0, 2.0),
    ):
        total, _ = integrate.quad(lambda t, p=prior: float(p.pdf(t)), 0, np.inf, limit=200)
        assert total == pytest.approx(1.0, abs=1e-7), prior
        # in u = log(tau): the log-scale priors spread their mass over decades near 0
        part, _ = integrate.quad(
            lambda u, p=prior: float(p.pdf(math.exp(u))) * math.exp(u),
            -np.inf,
            math.log(0.8),
            limit=200,
            epsabs=1e-11,
        )
        assert float(prior.cdf(0.8)) == pytest.approx(part, abs=1e-8), prior
        assert prior.name in priors.TAU_PRIORS
        assert prior.reference
    # log tau^2 ~ N(mu2, s2^2) is log tau ~ N(mu2/2, (s2/2)^2)
    a, b = priors.LogNormalTau2(-2.56, 1.74), priors.LogNormal(-1.28, 0.87)
    assert float(a.logpdf(0.3)) == pytest.approx(float(b.logpdf(0.3)), rel=1e-14)


def test_user_prior_matches_builtin() -> None:
    y, v = [0.1, 0.4, -0.1], [0.05, 0.02, 0.04]
    builtin = ketameta.bayes_pool(y, v, tau_prior=priors.HalfNormal(0.5))
    user = ketameta.bayes_pool(y, v, tau_prior=lambda t: 2 * stats.norm.pdf(t, 0, 0.5))
    assert user.mu_median == pytest.approx(builtin.mu_median, rel=1e-12)
    assert user.tau_median == pytest.approx(builtin.tau_median, rel=1e-10)


def test_gauss_kronrod_rule_exactness() -> None:
    """K15 integrates x^22 exactly on [-1, 1], the embedded G7 x^13."""
    x = engine.KRONROD_X
    assert np.sum(engine.KRONROD_W * x**22) == pytest.approx(2 / 23, rel=1e-14)
    assert np.sum(engine.GAUSS_W * x**12) == pytest.approx(2 / 13, rel=1e-14)
    assert np.sum(engine.KRONROD_W) == pytest.approx(2.0, rel=1e-15)


def test_no_warnings_on_typical_data() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ketameta.bayes_pool([0.1] * 3, [0.01, 0.02, 0.03], tau_prior=priors.HalfNormal(0.1))


def test_eight_schools_exact_values_against_mpmath(schools1) -> None:
    """Where bayesmeta's DIRECT printout differs (mu mean 7.985729, school A's shrinkage
    mean 11.095255), the exact values are ketameta's: mpmath agrees to 1e-10."""
    v = [s * s for s in SE]
    ref = MpModel(
        Y,
        v,
        lambda t: mp.log(2 / (mp.pi * 25 * (1 + (t / 25) ** 2))),
        mu_prior=(0, 50),
        prior_scale=25.0,
    )
    assert schools1.mu_mean == pytest.approx(
        float(ref.expect(lambda t: ref.cond(t)[1])), rel=1e-10
    )
    va, ya = ref.v[0], ref.y[0]

    def shrink(t):
        b = va / (va + t * t)
        return b * ref.cond(t)[1] + (1 - b) * ya

    assert schools1.theta_mean[0] == pytest.approx(float(ref.expect(shrink)), rel=1e-10)
    assert float(ref.mu_cdf(0.0)) == pytest.approx(
        1 - schools1.probability("mu", above=0), abs=1e-10
    )
