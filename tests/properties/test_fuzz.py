"""'No crash' fuzzing: arbitrary floats, NaN and inf give a named ValueError/TypeError or
finite results; no NumPy RuntimeWarning escapes (pytest turns warnings into errors)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import convert

anything = st.floats(allow_nan=True, allow_infinity=True, width=64)
arrays = st.lists(anything, min_size=0, max_size=8)
FUNCTIONS = [
    "pool",
    "egger_test",
    "begg_test",
    "trim_and_fill",
    "fail_safe_n",
    "leave_one_out",
    "cumulative",
]


def _attempt(call: Any) -> tuple[Any, str | None]:
    """(result, None), or (None, message) for the errors the contract allows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.KetametaWarning)
        try:
            return call(), None
        except (ValueError, TypeError) as exc:
            return None, str(exc)


def _finite_or_nan_documented(result: Any) -> None:
    for name in ("estimate", "se", "tau2", "statistic"):
        if hasattr(result, name):
            values = np.asarray(getattr(result, name), dtype=float)
            assert np.all(np.isfinite(values) | np.isnan(values))


@given(st.sampled_from(FUNCTIONS), arrays, arrays)
def test_public_functions_never_crash(name: str, yi: list[float], vi: list[float]) -> None:
    result, error = _attempt(lambda: getattr(ketameta, name)(yi, vi))
    if error is not None:
        assert "`" in error or "studies" in error  # the message names the argument
        return
    _finite_or_nan_documented(result)
    if name == "pool":
        assert np.isfinite(result.estimate)


@given(
    st.lists(st.lists(anything, min_size=3, max_size=3), min_size=1, max_size=5),
    st.lists(st.lists(anything, min_size=3, max_size=3), min_size=1, max_size=5),
)
def test_pool_many_never_crashes(y: list[list[float]], v: list[list[float]]) -> None:
    res, error = _attempt(lambda: ketameta.pool_many(y, v, method="REML"))
    if error is not None:
        assert "`" in error
        return
    empty = np.asarray(res.k) == 0
    assert set(np.flatnonzero(empty)) <= set(res.failed)  # every unfitted row has a reason
    fitted = np.array([i not in res.failed for i in range(len(res))])
    assert np.all(np.isfinite(np.asarray(res.estimate)[fitted]))
    assert np.all(np.isnan(np.asarray(res.estimate)[~fitted]))


@given(
    st.sampled_from(["SMD", "MD", "OR", "RR", "RD", "PLO", "ZCOR", "IRR"]),
    st.lists(anything, min_size=1, max_size=4),
    st.data(),
)
def test_escalc_never_crashes(measure: str, first: list[float], data: st.DataObject) -> None:
    from ketameta.effect_sizes import _REGISTRY

    names = _REGISTRY[measure].required
    columns = {
        n: data.draw(st.lists(anything, min_size=len(first), max_size=len(first))) for n in names
    }
    es, error = _attempt(lambda: ketameta.escalc(measure, **columns))
    if error is not None:
        assert "`" in error or f"{measure} is undefined for study" in error
        return
    assert np.all(np.isfinite(es.yi) | np.isnan(es.yi))
    assert np.all((es.vi >= 0) | np.isnan(es.vi))


@given(anything, anything, anything)
def test_conversions_never_crash(a: float, b: float, c: float) -> None:
    for call in (
        lambda: convert.se_from_ci(a, b),
        lambda: convert.se_from_ci(a, b, log=True),
        lambda: convert.se_from_pvalue(a, b),
        lambda: convert.mean_sd_from_median(a, 20, q1=b, q3=c),
        lambda: convert.r_to_z(a),
        lambda: convert.inv_freeman_tukey(a, 10),
        lambda: convert.check_reported(a, b, c),
    ):
        try:
            out = call()
        except (ValueError, TypeError):
            continue
        assert out is not None
