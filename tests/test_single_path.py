"""The single-analysis path: its generated pieces and its result.

* The derived statistics of one analysis run a Python-float version generated from the
  array source (``model.derived_statistics_scalar``): bit for bit the array version.
* The root finder's score takes the sums without a ``Moments`` object; the moments
  fit_design rebuilds from them (``Moments.of_sums``) are those computed afresh.
* The result is built without the public constructor's converters
  (``_results.trusted_constructor``): it must be the object the validated constructor
  builds from the same values, field by field and type by type, with read-only arrays that
  share no memory with the input.
"""

from __future__ import annotations

import math
import warnings

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import PoolResult
from ketameta._engine import model
from ketameta._engine.design import Design
from ketameta._engine.moments import Moments, single_sums

RNG = np.random.default_rng(11)
V = RNG.uniform(0.01, 0.2, 9)
Y = RNG.normal(0.3, np.sqrt(V + 0.05))


def _cases() -> list[tuple[object, dict[str, object]]]:
    es = ketameta.escalc(
        "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    cases: list[tuple[object, dict[str, object]]] = []
    for method in ketameta.pooling.METHODS:
        for test in ("z", "t", "knha", "adhoc"):
            cases.append(((Y, V), {"method": method, "test": test}))
    cases += [
        ((Y, V), {"tau2": 0.1}),
        ((Y[:1], V[:1]), {"method": "REML"}),
        ((Y[:2], V[:2]), {"method": "DL", "test": "knha"}),
        ((np.full(5, 0.3), V[:5]), {"method": "REML", "test": "knha"}),
        ((list(Y), list(V)), {"method": "DL", "labels": [f"s{i}" for i in range(9)]}),
        ((np.r_[Y[:4], np.nan, Y[5:]], V), {"method": "REML"}),
        ((es,), {"method": "DL"}),
        ((es,), {"method": "REML", "control": {"maxiter": 50}}),
    ]
    return cases


@pytest.mark.parametrize(("args", "kwargs"), _cases())
def test_single_fit_equals_the_validated_constructor(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ketameta.pool(*args, **kwargs)  # type: ignore[arg-type]
    values = {f.name: getattr(res, f.name) for f in attrs.fields(PoolResult)}
    again = PoolResult(**values)
    assert res == again
    for f in attrs.fields(PoolResult):
        mine, theirs = getattr(res, f.name), getattr(again, f.name)
        assert type(mine) is type(theirs), f.name
        if isinstance(mine, np.ndarray):
            assert mine.dtype == np.float64, f.name
            assert not mine.flags.writeable, f.name
            for given in args:
                if isinstance(given, np.ndarray):
                    assert not np.shares_memory(mine, given), f.name
        elif isinstance(mine, tuple):
            assert all(type(a) is type(b) for a, b in zip(mine, theirs, strict=True)), f.name
    for name in ("df", "tau2", "tau2_se", "tau", "i2", "h2", "q", "q_pvalue", "estimate"):
        assert type(getattr(res, name)) is float, name
    for name in ("q_df", "k", "iterations"):
        assert type(getattr(res, name)) is int, name
    assert type(res.converged) is bool
    assert type(res.tau2_fixed) is bool


def test_escalc_inputs_are_copied() -> None:
    es = ketameta.escalc(
        "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    res = ketameta.pool(es, method="DL")
    assert res.inputs.shape == es.inputs.shape
    assert not np.shares_memory(res.inputs, es.inputs)
    assert not res.inputs.flags.writeable


numbers = st.one_of(st.just(0.0), st.just(math.nan), st.floats(-1e6, 1e6, allow_nan=False))
positive = st.one_of(st.just(0.0), st.just(math.nan), st.floats(0.0, 1e6, allow_nan=False))


@given(
    coef=st.lists(numbers, min_size=1, max_size=3),
    tau2=positive,
    q=positive,
    k=st.integers(0, 6),
    v_typical=positive,
    equal_effects=st.booleans(),
    test=st.sampled_from(["z", "t", "knha", "adhoc"]),
    level=st.sampled_from([0.9, 0.95, 0.999]),
    intercept=st.booleans(),
)
def test_scalar_derived_statistics_are_the_array_version(
    coef: list[float],
    tau2: float,
    q: float,
    k: int,
    v_typical: float,
    equal_effects: bool,
    test: str,
    level: float,
    intercept: bool,
) -> None:
    p = len(coef)
    se = [abs(c) / 3.0 + 0.1 for c in coef]
    kwargs = {
        "tau2": tau2,
        "q": q,
        "k": float(k),
        "v_typical": v_typical,
        "zero": 0.0,
        "p": p,
        "intercept": intercept,
        "equal_effects": equal_effects,
        "test": test,
        "level": level,
    }
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scalar = model.derived_statistics_scalar(coef, se, **kwargs)
        general = model.derived_statistics(coef, se, **kwargs)
    assert scalar.keys() == general.keys()
    for name, value in general.items():
        np.testing.assert_array_equal(np.asarray(scalar[name]), np.asarray(value), err_msg=name)
        assert type(scalar[name]) is type(value), name


@pytest.mark.parametrize("tau2", [0.0, 0.03, 2.5])
def test_moments_from_the_scores_sums_are_the_moments(tau2: float) -> None:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        design = Design(Y, V, None, padded=False)
        fresh = Moments(design, tau2)
        again = Moments.of_sums(design, tau2, *single_sums(design, tau2))
        for name in ("q", "trace_p", "trace_pp", "logdet", "pppy"):
            assert getattr(again, name)() == getattr(fresh, name)(), name
        assert again.inv == fresh.inv
        assert again.delta == fresh.delta
        np.testing.assert_array_equal(again.w, fresh.w)


@pytest.mark.parametrize("method", ["EE", "DL", "REML", "PM"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_trusted_result_equals_the_validated_build_of_the_engine_output(
    method: str, test: str
) -> None:
    # the fields pool() passes to the trusted constructor by name, against the validated
    # constructor fed from the engine's output by result_from_core (a swapped field fails)
    from ketameta import _engine
    from ketameta.pooling import result_from_core

    res = ketameta.pool(Y, V, method=method, test=test)
    out = _engine.intercept_view(
        _engine.fit(
            Y.copy(),
            V.copy(),
            padded=False,
            method=method,
            test=test,
            level=0.95,
            tau2_fixed=None,
            control=dict(_engine.DEFAULT_CONTROL),
            btt=(),
        )
    )
    labels = ketameta._validation.default_labels(len(Y))
    expected = result_from_core(
        out,
        None,
        yi=Y,
        vi=V,
        omitted=(),
        method=method,
        test=test,
        level=0.95,
        tau2_fixed=False,
        control={},
        measure=None,
        labels=labels,
        omitted_reasons=(),
    )
    assert res == expected
