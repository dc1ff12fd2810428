"""Every public result object compares by value (NaN equal to NaN, arrays element-wise),
survives pickling unchanged and stays read-only after it (issue #14: results are values)."""

from __future__ import annotations

import json
import pickle
import warnings
from typing import Any

import attrs
import numpy as np
import pytest

import ketameta
from ketameta._results import values_equal

from .properties.test_contract import RECIPES, _rows


def _result_classes() -> list[type]:
    return sorted(
        (
            obj
            for name in ketameta.__all__
            for obj in [getattr(ketameta, name)]
            if isinstance(obj, type) and attrs.has(obj) and obj is not ketameta.ModelFit
        ),
        key=lambda cls: cls.__name__,
    )


def _results() -> dict[str, Any]:
    """One result per call recipe of the contract test (the results of every public
    function), and the results their methods return."""
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, recipe in RECIPES.items():
            if recipe.call is None or recipe.kind == "none":
                continue
            if recipe.kind == "reported":
                args = {key: v[0] for key, v in recipe.args.items()}
            elif recipe.kind in ("batch", "batch_cells"):
                args = {key: _rows(v) for key, v in recipe.args.items()}
            else:
                args = dict(recipe.args)
            result = recipe.call(args)
            if attrs.has(type(result)):
                out[name] = result
        fit = out["ketameta.metareg"]
        out["MetaRegResult.predict"] = fit.predict()
        out["MetaRegResult.anova"] = fit.anova(1)
        ml = ketameta.metareg(fit.yi, fit.vi, mods=fit.X[:, 1:], method="ML")
        out["MetaRegResult.anova_lrt"] = ml.anova(ketameta.pool(fit.yi, fit.vi, method="ML"))
        out["RobustResult.wald_test"] = out["ketameta.robust"].wald_test(
            constraints=[[1.0, 0.0], [1.0, 1.0]]
        )
        out["RobustResult.saddlepoint"] = out["ketameta.robust"].saddlepoint()
        out["PoolResult.tau2_ci"] = out["ketameta.pool"].tau2_ci()
        common = ketameta.subgroups(
            RECIPES["ketameta.subgroups"].args["yi"],
            RECIPES["ketameta.subgroups"].args["vi"],
            groups=RECIPES["ketameta.subgroups"].args["groups"],
            tau2="common",
        )
        out["SubgroupResult.common"] = common.common
        yk, vk = RECIPES["ketameta.pool"].args["yi"], RECIPES["ketameta.pool"].args["vi"]
        out["pool_many with moderators"] = ketameta.pool_many(
            [yk, yk[::-1]], [vk, vk[::-1]], mods=np.arange(len(yk), dtype=float)
        )
        out["pool with NaN fields"] = ketameta.pool([0.1], [0.1])
        mv = out["ketameta.pool_mv"]
        out["MVResult.confint"] = mv.confint()
        out["MVResult.components[0]"] = mv.components[0]
        args = RECIPES["ketameta.pool_mv"].args
        two_level = ketameta.pool_mv(
            args["yi"], args["V"], random="~ 1 | cl", data={"cl": args["cl"]}
        )
        out["MVResult.anova"] = ketameta.pool_mv(
            args["yi"],
            args["V"],
            random="~ 1 | cl/es",
            data={"cl": args["cl"], "es": args["es"]},
        ).anova(two_level)
    return out


RESULTS = _results()


def test_every_public_result_class_is_covered() -> None:
    covered = {type(r) for r in RESULTS.values()}
    missing = [cls.__name__ for cls in _result_classes() if cls not in covered]
    # (classes only built inside others or by a plotting function)
    missing = [n for n in missing if n not in {"FunnelData", "ForestData"}]
    assert not missing, f"add a call recipe returning {missing}"


@pytest.mark.parametrize("name", list(RESULTS))
def test_results_are_equal_to_themselves_and_their_copies(name: str) -> None:
    result = RESULTS[name]
    assert result == result
    assert (result != result) is False
    copy = attrs.evolve(result)
    assert copy == result


@pytest.mark.parametrize("name", list(RESULTS))
def test_results_survive_pickling(name: str) -> None:
    result = RESULTS[name]
    restored = pickle.loads(pickle.dumps(result))
    assert restored == result
    assert type(restored) is type(result)
    for field in attrs.fields(type(restored)):
        value = getattr(restored, field.name)
        if isinstance(value, np.ndarray):
            assert not value.flags.writeable, f"{field.name} is writeable after unpickling"


@pytest.mark.parametrize("name", list(RESULTS))
def test_to_dict_is_json_serialisable(name: str) -> None:
    # to_dict() is the JSON-safe record (DEVELOPERS.md): strict JSON, no NaN/inf tokens
    record = RESULTS[name].to_dict()
    assert isinstance(record, dict)
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text).keys() == record.keys()


def test_a_changed_field_makes_results_unequal() -> None:
    result = RESULTS["ketameta.pool"]
    assert attrs.evolve(result, estimate=result.estimate + 1e-12) != result
    assert result != "not a result"
    fit = RESULTS["ketameta.metareg"]
    coef = np.array(fit.coef)
    coef[-1] = np.nextafter(coef[-1], np.inf)
    assert attrs.evolve(fit, coef=coef) != fit


@pytest.mark.filterwarnings("ignore::ketameta.SmallSampleWarning")
def test_nan_fields_compare_equal() -> None:
    # pool() of one study: the SE of tau^2 and the typical variance are NaN (undefined);
    # two such fits are equal as values, and unequal when another field differs.
    a = RESULTS["pool with NaN fields"]
    b = ketameta.pool([0.1], [0.1])
    assert np.isnan(a.tau2_se)
    assert np.isnan(a.v_typical)
    assert a == b
    assert a != ketameta.pool([0.2], [0.1])


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (float("nan"), float("nan"), True),
        (np.float64("nan"), float("nan"), True),
        (np.array([1.0, np.nan]), np.array([1.0, np.nan]), True),
        (np.array([1.0, np.nan]), np.array([1.0, 2.0]), False),
        (np.array(["a", "b"]), np.array(["a", "b"]), True),
        ((1.0, float("nan")), (1.0, float("nan")), True),
        ((1.0,), [1.0], False),
        ({"a": float("nan")}, {"a": float("nan")}, True),
        ({"a": 1.0}, {"b": 1.0}, False),
        (0.0, -0.0, True),
        (None, None, True),
    ],
)
def test_values_equal(a: Any, b: Any, equal: bool) -> None:
    assert values_equal(a, b) is equal


def test_short_reprs_of_intervals_and_predictions() -> None:
    # issue #16: reprs a notebook can show (the full record: to_dict()); the numbers are
    # the tutorial's Q-profile interval (metafor's confint(): 0.3132 [0.1197, 1.1115])
    data = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    ci = ketameta.pool(es).tau2_ci()
    assert (
        repr(ci)
        == "Tau2Interval(tau2=0.3132 [0.1197, 1.111], i2=92.22 [81.92, 97.68], level=0.95)"
    )
    pred = ketameta.metareg(es, mods="~ ablat", data=data).predict([10, 20, 30, 40], transf="exp")
    assert repr(pred) == (
        f"PredictResult(n=4, pred=[{pred.pred[0]:.4g}, {pred.pred[1]:.4g}, "
        f"{pred.pred[2]:.4g}, ...], transf='exp')"
    )
