"""Invariances every estimator and test must satisfy, on data over wide magnitudes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import ketameta
from ketameta import escalc, pool, pool_many

from .strategies import MEASURE_FAMILIES, datasets, escalc_inputs

# Random datasets can have a likelihood whose maximum at τ² = 0 beats the interior one
# reached from the start: pool() then sets τ² = 0 and warns, as metafor does
# (tested in test_pooling.py::test_several_likelihood_maxima_as_metafor).
pytestmark = pytest.mark.filterwarnings("ignore::ketameta.LocalMaximumWarning")

METHODS = ["EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"]
TESTS = ["z", "t", "knha", "adhoc"]


def _scale(y: np.ndarray, v: np.ndarray) -> float:
    return float(np.max(np.abs(y - np.median(y))) + np.sqrt(np.max(v)))


@given(datasets(), st.sampled_from(METHODS), st.sampled_from(TESTS), st.randoms())
def test_permutation(
    data: tuple[np.ndarray, np.ndarray], method: str, test: str, rnd: object
) -> None:
    y, v = data
    order = np.arange(len(y))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    a, b = pool(y, v, method=method, test=test), pool(y[order], v[order], method=method, test=test)
    s = _scale(y, v)
    assert b.estimate == pytest.approx(a.estimate, rel=1e-9, abs=1e-9 * s)
    assert b.tau2 == pytest.approx(a.tau2, rel=1e-6, abs=1e-9 * s * s)
    assert b.ci_upper - b.ci_lower == pytest.approx(
        a.ci_upper - a.ci_lower, rel=1e-6, abs=1e-9 * s
    )


@given(datasets(), st.sampled_from(METHODS), st.floats(-1e3, 1e3), st.floats(1e-3, 1e3))
def test_location_scale_equivariance(
    data: tuple[np.ndarray, np.ndarray], method: str, shift: float, factor: float
) -> None:
    y, v = data
    a = pool(y, v, method=method)
    s = _scale(y, v)
    b = pool(y * factor + shift, v * factor**2, method=method)
    assert b.estimate == pytest.approx(
        a.estimate * factor + shift,
        rel=1e-8,
        abs=1e-8 * (s * factor + abs(shift) + abs(a.estimate) * factor),
    )
    # shifting rounds every effect to the precision of |shift| (δ ≈ 1e-16 |shift|), which
    # moves τ² by about 2 k δ times the spread of the effects
    rounding = 1e-13 * abs(shift) * s * factor * len(y)
    # Q and I² are relative to the spread: the rounding of the shifted effects counts
    rel_rounding = 1e-15 * abs(shift) / (s * factor)
    assert b.tau2 == pytest.approx(
        a.tau2 * factor**2, rel=1e-6, abs=1e-8 * (s * factor) ** 2 + rounding
    )
    # I² (percent) inherits the absolute slack of τ² near the boundary, where τ² is ill
    # conditioned (its score is flat): 1e-4 percentage points
    assert b.i2 == pytest.approx(a.i2, rel=1e-6 + rel_rounding, abs=1e-4)
    assert b.q == pytest.approx(a.q, rel=1e-6 + rel_rounding, abs=1e-8)


@given(datasets(), st.sampled_from(METHODS), st.sampled_from(TESTS))
def test_bounds_and_nesting(data: tuple[np.ndarray, np.ndarray], method: str, test: str) -> None:
    y, v = data
    r = pool(y, v, method=method, test=test)
    assert r.tau2 >= 0
    assert 0 <= r.i2 < 100
    assert r.ci_lower <= r.estimate <= r.ci_upper
    assert r.pred_lower <= r.ci_lower
    assert r.ci_upper <= r.pred_upper
    # identical effects under Knapp-Hartung: SE = 0, and with an estimate of exactly 0 the
    # statistic is 0/0 (NaN, as metafor; docs/contract.md)
    assert 0 <= r.pvalue <= 1 or (r.se == 0 and r.estimate == 0 and math.isnan(r.pvalue))
    assert np.all(r.weights > 0)
    assert math.isclose(float(r.weights.sum()), 100.0, rel_tol=1e-9)
    if method == "EE":
        assert y.min() - 1e-9 * _scale(y, v) <= r.estimate <= y.max() + 1e-9 * _scale(y, v)


@given(datasets(min_k=3))
def test_weights_decrease_with_variance(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, v = data
    for method in ("EE", "DL", "REML"):
        r = pool(y, v, method=method)
        order = np.argsort(v)
        assert np.all(np.diff(r.weights[order]) <= 1e-12 * r.weights.max())


@given(datasets(min_k=3), st.sampled_from(["DL", "REML", "PM", "ML"]))
def test_q_profile_contains_estimate(data: tuple[np.ndarray, np.ndarray], method: str) -> None:
    y, v = data
    r = pool(y, v, method="PM")  # PM solves Q(τ²) = k - 1: always inside its Q-profile CI
    ci = r.tau2_ci()
    assume(not ci.upper_at_limit)
    assert ci.tau2[1] <= r.tau2 * (1 + 1e-8) + 1e-300
    assert r.tau2 <= ci.tau2[2] * (1 + 1e-8) + 1e-300
    exact = r.tau2_ci(tau2_max=math.inf)
    other = pool(y, v, method=method).tau2_ci(tau2_max=math.inf)
    assert other.tau2[1] == exact.tau2[1]  # the interval does not depend on the estimator
    assert other.tau2[2] == exact.tau2[2]


@given(
    st.lists(datasets(max_k=8), min_size=1, max_size=6),
    st.sampled_from(METHODS),
    st.sampled_from(TESTS),
)
def test_pool_many_rows_equal_pool(
    batch: list[tuple[np.ndarray, np.ndarray]], method: str, test: str
) -> None:
    k = max(len(y) for y, _ in batch)
    Y = np.full((len(batch), k), np.nan)
    V = np.full((len(batch), k), np.nan)
    for i, (y, v) in enumerate(batch):
        Y[i, : len(y)], V[i, : len(v)] = y, v
    res = pool_many(Y, V, method=method, test=test)
    for i, (y, v) in enumerate(batch):
        one = pool(y, v, method=method, test=test)
        s = _scale(y, v)
        assert res.estimate[i] == pytest.approx(one.estimate, rel=1e-10, abs=1e-10 * s)
        assert res.tau2[i] == pytest.approx(one.tau2, rel=1e-8, abs=1e-10 * s * s)
        # (identical effects with Knapp-Hartung: SE 0 and a NaN p-value in both, as metafor)
        np.testing.assert_allclose(res.pvalue[i], one.pvalue, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("family", list(MEASURE_FAMILIES))
@given(data=st.data())
def test_escalc_variances_positive_and_finite(family: str, data: st.DataObject) -> None:
    inputs = data.draw(escalc_inputs(family))
    for measure in MEASURE_FAMILIES[family]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ketameta.ZeroCellWarning)
            es = escalc(measure, **inputs)
        defined = ~np.isnan(es.yi)
        assert np.all(np.isfinite(es.yi[defined]))
        assert np.all(es.vi[defined] > 0) or measure in ("PR", "RD", "IR", "IRD")
        assert np.all(es.vi[defined] >= 0)
        assert np.array_equal(np.isnan(es.yi), np.isnan(es.vi))
