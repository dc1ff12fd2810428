"""The bad-input contract (docs/contract.md), one row per kind of bad input, for every
public function taking effect sizes and variances."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import ketameta
from ketameta import (
    begg_test,
    cumulative,
    egger_test,
    fail_safe_n,
    leave_one_out,
    pool,
    trim_and_fill,
)

# Random datasets can have a likelihood whose maximum at τ² = 0 beats the interior one
# reached from the start: pool() then sets τ² = 0 and warns, as metafor does
# (tested in test_pooling.py::test_several_likelihood_maxima_as_metafor).
pytestmark = pytest.mark.filterwarnings("ignore::ketameta.LocalMaximumWarning")

Y = [0.12, 0.35, -0.05, 0.41, 0.22, 0.3, 0.18, 0.05, 0.27, 0.33, 0.2, 0.15]
V = [0.01, 0.02, 0.015, 0.03, 0.012, 0.025, 0.018, 0.02, 0.011, 0.03, 0.016, 0.022]

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "pool": pool,
    "egger_test": egger_test,
    "begg_test": begg_test,
    "trim_and_fill": trim_and_fill,
    "fail_safe_n": fail_safe_n,
    "leave_one_out": leave_one_out,
    "cumulative": cumulative,
}
#: fewest studies each function accepts
MIN_K = {
    "pool": 1,
    "egger_test": 3,
    "begg_test": 3,
    "trim_and_fill": 3,
    "fail_safe_n": 1,
    "leave_one_out": 2,
    "cumulative": 1,
}


def _call(name: str, yi: Any, vi: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.SmallSampleWarning)
        return FUNCTIONS[name](yi, vi)


BAD = [
    ("unequal lengths", Y, V[:-1], ValueError, r"`vi` has 11 studies but `yi` has 12"),
    ("empty", [], [], ValueError, r"no studies: `yi` is empty"),
    ("non-numeric", [*Y[:1], "x", *Y[2:]], V, TypeError, r"`yi` must be numeric \(study 1\)"),
    ("negative variance", Y, [V[0], -0.1, *V[2:]], ValueError, r"`vi` must be positive; study 1"),
    ("zero variance", Y, [V[0], 0.0, *V[2:]], ValueError, r"`vi` must be positive; study 1"),
    ("+inf effect", [Y[0], np.inf, *Y[2:]], V, ValueError, r"`yi` must be finite.*study 1"),
    ("-inf effect", [Y[0], -np.inf, *Y[2:]], V, ValueError, r"`yi` must be finite.*study 1"),
    ("inf variance", Y, [V[0], np.inf, *V[2:]], ValueError, r"`vi` must be finite.*study 1"),
    (
        "NaN everywhere",
        [np.nan] * 12,
        V,
        ValueError,
        r"no studies: `yi` is empty after omitting NaN",
    ),
    ("2-D input", [Y], [V], ValueError, r"`yi` must be 1-dimensional"),
]


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize(("case", "yi", "vi", "error", "pattern"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_named(
    name: str, case: str, yi: Any, vi: Any, error: type[Exception], pattern: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        with pytest.raises(error, match=pattern):
            _call(name, yi, vi)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_nan_studies_are_omitted_with_a_warning(name: str) -> None:
    yi = [Y[0], np.nan, *Y[2:]]
    with pytest.warns(ketameta.OmittedStudiesWarning, match=r"studies \[1\]"):
        with_nan = _call(name, yi, V)
    without = _call(name, [Y[0], *Y[2:]], [V[0], *V[2:]])
    assert _signature(with_nan) == _signature(without)


def _signature(result: Any) -> Any:
    for field in ("estimate", "statistic", "tau", "n"):
        if hasattr(result, field):
            return np.round(np.asarray(getattr(result, field), dtype=float), 12).tolist()
    raise AssertionError(type(result))


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_small_k_is_an_error_or_a_result(name: str, k: int) -> None:
    if k < MIN_K[name]:
        with pytest.raises(ValueError, match=f"at least {MIN_K[name]} studies"):
            _call(name, Y[:k], V[:k])
    else:
        assert _signature(_call(name, Y[:k], V[:k])) is not None


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_input_types_and_no_modification(name: str) -> None:
    pd = pytest.importorskip("pandas")
    expected = _signature(_call(name, Y, V))
    ro_y, ro_v = np.array(Y), np.array(V)
    ro_y.setflags(write=False)
    ro_v.setflags(write=False)
    variants = [
        (tuple(Y), tuple(V)),
        (pd.Series(Y), pd.Series(V)),
        (ro_y, ro_v),
        (list(Y), np.array(V, dtype=np.float64)),
    ]
    for yi, vi in variants:
        assert _signature(_call(name, yi, vi)) == expected
    ints = [1, 2, 0, 3, 1, 2, 2, 0, 1, 3, 2, 1]
    before = list(ints)
    assert _signature(_call(name, ints, list(range(1, 13)))) is not None
    assert ints == before
    np.testing.assert_array_equal(ro_y, Y)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"method": "XYZ"}, "unknown `method` 'XYZ'; valid values are 'EE'"),
        ({"test": "wald"}, "unknown `test` 'wald'; valid values are 'z'"),
        ({"level": 95}, r"`level` must be in \(0, 1\)"),
        ({"level": 0.0}, r"`level` must be in \(0, 1\)"),
        ({"level": 1.0}, r"`level` must be in \(0, 1\)"),
    ],
)
def test_unknown_options(kwargs: dict[str, Any], pattern: str) -> None:
    for fn in (pool, egger_test, trim_and_fill, leave_one_out, cumulative):
        with pytest.raises(ValueError, match=pattern):
            fn(Y, V, **({"model": "rma"} if fn is egger_test else {}), **kwargs)
    with pytest.raises(ValueError, match="unknown `measure` 'XYZ'"):
        ketameta.escalc("XYZ", ai=[1])
