"""The single fit's result is built without the public constructor's converters
(``_results.trusted_constructor``): it must be the same object the validated constructor
builds from the same values, field by field and type by type, with read-only arrays that
share no memory with the input."""

from __future__ import annotations

import warnings

import attrs
import numpy as np
import pytest

import ketameta
from ketameta import PoolResult

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
