"""Numerical robustness against high-precision references (mpmath, 50 digits; fractions)."""

from __future__ import annotations

import warnings
from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest

import ketameta
from ketameta import escalc, pool, pool_many

# Random datasets can have a likelihood whose maximum at τ² = 0 beats the interior one
# reached from the start: pool() then sets τ² = 0 and warns, as metafor does
# (tested in test_pooling.py::test_several_likelihood_maxima_as_metafor).
pytestmark = pytest.mark.filterwarnings("ignore::ketameta.LocalMaximumWarning")

mp.mp.dps = 50


def _mp_moments(y: np.ndarray, v: np.ndarray, tau2: mp.mpf) -> tuple[mp.mpf, mp.mpf, list]:
    w = [1 / (mp.mpf(vi) + tau2) for vi in v]
    sw = mp.fsum(w)
    mu = mp.fsum(wi * mp.mpf(yi) for wi, yi in zip(w, y, strict=True)) / sw
    return mu, sw, w


def mp_ee(y: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    mu, sw, w = _mp_moments(y, v, mp.mpf(0))
    q = mp.fsum(wi * (mp.mpf(yi) - mu) ** 2 for wi, yi in zip(w, y, strict=True))
    return float(mu), float(1 / mp.sqrt(sw)), float(q)


def mp_dl(y: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    _, sw, w = _mp_moments(y, v, mp.mpf(0))
    _, _, q = mp_ee(y, v)
    mu0, _, _ = _mp_moments(y, v, mp.mpf(0))
    q = mp.fsum(wi * (mp.mpf(yi) - mu0) ** 2 for wi, yi in zip(w, y, strict=True))
    c = sw - mp.fsum(wi**2 for wi in w) / sw
    tau2 = max(mp.mpf(0), (q - (len(y) - 1)) / c)
    mu, _, _ = _mp_moments(y, v, tau2)
    return float(mu), float(tau2)


def mp_reml(y: np.ndarray, v: np.ndarray) -> float:
    def score(t: mp.mpf) -> mp.mpf:
        mu, sw, w = _mp_moments(y, v, t)
        r = [mp.mpf(yi) - mu for yi in y]
        sw2 = mp.fsum(wi**2 for wi in w)
        return mp.fsum((wi * ri) ** 2 for wi, ri in zip(w, r, strict=True)) - (sw - sw2 / sw)

    if score(mp.mpf(0)) <= 0:
        return 0.0
    hi = mp.mpf(max(v))
    while score(hi) > 0:
        hi *= 2
    lo = mp.mpf(0)
    for _ in range(170):  # bisection: 2^-170 of the bracket, beyond double precision
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if score(mid) > 0 else (lo, mid)
    return float((lo + hi) / 2)


CASES = {
    "large effects 1e8": (
        1e8 + np.linspace(-1, 1, 12) * np.array([1, -2, 3, 1, -1, 2] * 2),
        np.linspace(0.5, 2, 12),
    ),
    "tiny effects 1e-8": (
        1e-8 * np.array([1, -2, 3, 1.5, -1, 2.5, 0.3, -0.7]),
        1e-16 * np.linspace(0.5, 2, 8),
    ),
    "variances 1e-12 to 1e12": (
        np.array([0.3, -0.1, 0.2, 0.5, 1.0, -2.0, 3.0, 0.0, 0.25]),
        10.0 ** np.array([-12, -9, -6, -3, 0, 3, 6, 9, 12]),
    ),
    "near-duplicate studies": (
        np.array([0.5, 0.5 + 1e-12, 0.5 - 1e-12, 0.5 + 2e-12, 0.8]),
        np.array([0.1, 0.1 + 1e-15, 0.1, 0.1 - 1e-15, 0.2]),
    ),
    "tau2 at the boundary": (
        np.array([0.10, 0.12, 0.08, 0.11, 0.09, 0.10]),
        np.array([0.02, 0.03, 0.025, 0.04, 0.02, 0.03]),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_equal_effects_and_dl_against_mpmath(case: str) -> None:
    y, v = CASES[case]
    mu, se, q = mp_ee(y, v)
    ee = pool(y, v, method="EE")
    assert ee.estimate == pytest.approx(mu, rel=1e-8, abs=1e-8 * np.sqrt(v.min()))
    assert ee.se == pytest.approx(se, rel=1e-8)
    assert ee.q == pytest.approx(q, rel=1e-6, abs=1e-9)
    mu_dl, tau2_dl = mp_dl(y, v)
    dl = pool(y, v, method="DL")
    assert dl.tau2 == pytest.approx(tau2_dl, rel=1e-6, abs=1e-12 * v.max())
    assert dl.estimate == pytest.approx(mu_dl, rel=1e-8, abs=1e-8 * np.sqrt(v.min()))


@pytest.mark.parametrize(
    "case",
    ["large effects 1e8", "variances 1e-12 to 1e12", "tau2 at the boundary", "tiny effects 1e-8"],
)
def test_reml_against_mpmath(case: str) -> None:
    y, v = CASES[case]
    expected = mp_reml(y, v)
    res = pool(y, v, method="REML")
    assert res.tau2 == pytest.approx(expected, rel=1e-8, abs=1e-10 * v.max())
    assert np.isfinite([res.estimate, res.se, res.pvalue, res.ci_lower, res.pred_upper]).all()


def test_many_studies() -> None:
    rng = np.random.default_rng(100_000)
    v = rng.uniform(0.01, 1.0, 100_000)
    y = rng.normal(0.1, np.sqrt(v + 0.05))
    mu, _, _ = mp_ee(y[:2000], v[:2000])
    assert pool(y[:2000], v[:2000], method="EE").estimate == pytest.approx(mu, rel=1e-10)
    for method in ("DL", "REML", "PM"):
        res = pool(y, v, method=method)
        assert res.k == 100_000
        assert res.tau2 == pytest.approx(0.05, rel=0.05)  # the simulated τ²
        assert np.isfinite([res.estimate, res.se, res.tau2_se, res.i2]).all()
    batch = pool_many(np.vstack([y[:1000], y[1000:2000]]), np.vstack([v[:1000], v[1000:2000]]))
    assert batch.estimate[1] == pytest.approx(pool(y[1000:2000], v[1000:2000]).estimate, rel=1e-12)


def test_extreme_tables_against_exact_fractions() -> None:
    # 0 and n events: with add = 1/2 in every cell of such tables (metafor's "only0"),
    # log OR = log(ad/bc) and var = 1/a+1/b+1/c+1/d, computed exactly with fractions
    tables = [(0, 50, 50, 0), (50, 0, 0, 50), (0, 100, 0, 100), (1, 10**6, 0, 10**6)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.ZeroCellWarning)
        es = escalc(
            "OR",
            ai=[t[0] for t in tables],
            bi=[t[1] for t in tables],
            ci=[t[2] for t in tables],
            di=[t[3] for t in tables],
        )
    for i, cells in enumerate(tables):
        a, b, c, d = (Fraction(x) + Fraction(1, 2) for x in cells)
        ratio = a * d / (b * c)
        exact = mp.log(mp.mpf(ratio.numerator) / ratio.denominator)
        assert es.yi[i] == pytest.approx(float(exact), rel=1e-12)
        assert es.vi[i] == pytest.approx(float(1 / a + 1 / b + 1 / c + 1 / d), rel=1e-12)
    res = pool(es, method="REML")
    assert np.isfinite([res.estimate, res.se, res.tau2]).all()


def test_documented_limits_are_named_errors() -> None:
    with pytest.raises(ValueError, match=r"`vi` must be variances within \[1e-100, 1e\+100\]"):
        pool([0.0, 1.0], [1.0, 1e-120])
    with pytest.raises(ValueError, match="`yi` must be at most 1e\\+50 in absolute value"):
        pool([0.0, 1e60], [1.0, 1.0])
