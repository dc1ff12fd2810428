"""Methods called on a fitted model, as metafor's regtest(res), ranktest(res), trimfill(res),
leave1out(res), cumul(res): egger_test, begg_test, trim_and_fill, leave_one_out, cumulative,
fail_safe_n and pet_peese take a PoolResult (its studies and settings; _fitted.py)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ketameta
from ketameta import (
    begg_test,
    cumulative,
    egger_test,
    fail_safe_n,
    leave_one_out,
    pet_peese,
    pool,
    trim_and_fill,
)

from .conftest import as_float, load_reference
from .properties.strategies import datasets
from .test_bias import RTOL, RTOL_INTERNAL_REML, _cases, _data, _id

FITTED = load_reference("metafor_fitted.json")
LABELS = [f"Trial {c}" for c in "ABCDEFGHIJKLM"]
pytestmark = pytest.mark.filterwarnings("ignore::ketameta.SmallSampleWarning")


def _fitted_cases(fn: str) -> list[dict[str, Any]]:
    return [c for c in FITTED["cases"] if c["fn"] == fn]


def _fitted_id(case: dict[str, Any]) -> str:
    m = case["model"]
    return f"{case['dataset']}-{m['method']}-{m['test']}-{m['level']}"


def _model(case: dict[str, Any]) -> tuple[ketameta.PoolResult, dict[str, Any], Any, Any]:
    """The model metafor was called on, the settings, and the arrays (with NaN)."""
    d = FITTED["datasets"][case["dataset"]]
    y, v = as_float(d["yi"]), as_float(d["vi"])
    settings = dict(case["model"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        res = pool(y, v, labels=LABELS[: len(y)] if len(y) == 13 else None, **settings)
    return res, settings, y, v


def _arrays_call(fn: Any, y: Any, v: Any, **kwargs: Any) -> Any:
    """The same call on the arrays (the omitted studies warned about there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        return fn(y, v, labels=LABELS[: len(y)] if len(y) == 13 else None, **kwargs)


def _close(actual: Any, expected: Any, rtol: float, atol: float = 0.0) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=float), as_float(expected), rtol, atol)


@pytest.mark.parametrize("case", _fitted_cases("regtest"), ids=_fitted_id)
def test_egger_on_a_model_is_metafors_regtest_of_the_model(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 regtest(res) (validation/metafor/make_fitted_reference.R):
    # model="rma" with the model's method, test and level, the omitted studies left out
    res, settings, y, v = _model(case)
    out = egger_test(res)
    assert out == _arrays_call(egger_test, y, v, model="rma", **settings)
    assert (out.model, out.method, out.test, out.level) == (
        "rma",
        settings["method"],
        settings["test"],
        settings["level"],
    )
    exp = case["value"]
    for field, actual in {
        "statistic": out.statistic,
        "pvalue": out.pvalue,
        "limit_estimate": out.limit_estimate,
        "limit_ci_lower": out.limit_ci_lower,
        "limit_ci_upper": out.limit_ci_upper,
        "slope": out.intercept,
        "slope_se": out.se,
    }.items():
        _close(actual, exp[field], 1e-8)
    _close(out.tau2, exp["tau2"], 1e-8, 1e-10)
    if exp["df"] is not None:
        assert out.df == exp["df"]


@pytest.mark.parametrize("case", _fitted_cases("regtest_lm"), ids=_fitted_id)
def test_egger_lm_on_a_model_takes_its_level(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 regtest(res, model="lm"): the classic test, at the model's level
    res, settings, y, v = _model(case)
    out = egger_test(res, model="lm")
    assert out == _arrays_call(egger_test, y, v, model="lm", level=settings["level"])
    exp = case["value"]
    _close(
        [out.statistic, out.pvalue, out.df, out.limit_estimate],
        [exp["statistic"], exp["pvalue"], exp["df"], exp["limit_estimate"]],
        1e-8,
    )
    _close(
        [out.limit_ci_lower, out.limit_ci_upper],
        [exp["limit_ci_lower"], exp["limit_ci_upper"]],
        1e-8,
    )


@pytest.mark.parametrize("case", _fitted_cases("ranktest"), ids=_fitted_id)
def test_begg_on_a_model_is_metafors_ranktest_of_the_model(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 ranktest(res): the model's studies (omitted ones left out)
    res, _, y, v = _model(case)
    out = begg_test(res)
    assert out == _arrays_call(begg_test, y, v)
    _close([out.tau, out.pvalue], [case["value"]["tau"], case["value"]["pvalue"]], 1e-10)


@pytest.mark.parametrize("case", _fitted_cases("trimfill"), ids=_fitted_id)
def test_trim_and_fill_on_a_model_refits_with_its_settings(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 trimfill(res): k0, side, and the filled model fitted with the
    # model's method, test and level (metafor's refits use threshold 1e-5)
    res, settings, y, v = _model(case)
    out = trim_and_fill(res)
    assert out == _arrays_call(trim_and_fill, y, v, **settings)
    exp = case["value"]
    assert (out.k0, out.side) == (exp["k0"], exp["side"])
    pooled = out.pooled
    assert (pooled.method, pooled.test, pooled.level) == (
        settings["method"],
        settings["test"],
        settings["level"],
    )
    rtol = RTOL_INTERNAL_REML if settings["method"] == "REML" else RTOL
    if out.k0 and (settings["test"], settings["level"]) != ("z", 0.95):
        # metafor 3.8-1 fits the filled data with its defaults test="z", level=95 (only
        # the method is the model's; with k0 = 0 it returns the model, test and level
        # included): here the filled model keeps the model's test and level, so compare
        # metafor's numbers with the same filled data at z and 95%
        _close([pooled.estimate, pooled.tau2], [exp["estimate"], exp["tau2"]], rtol)
        pooled = _arrays_call(trim_and_fill, y, v, method=settings["method"]).pooled
    for field, actual in {
        "estimate": pooled.estimate,
        "se": pooled.se,
        "ci_lower": pooled.ci_lower,
        "ci_upper": pooled.ci_upper,
        "pvalue": pooled.pvalue,
    }.items():
        _close(actual, exp[field], rtol)
    _close(pooled.tau2, exp["tau2"], rtol, 1e-10)


@pytest.mark.parametrize("fn", ["leave1out", "cumul"])
@pytest.mark.parametrize("case", _fitted_cases("leave1out"), ids=_fitted_id)
def test_leave_one_out_and_cumulative_on_a_model(case: dict[str, Any], fn: str) -> None:
    # Oracle: metafor 3.8-1 leave1out(res), cumul(res): rows for the model's studies only,
    # refits with its method, test and level (metafor's refits use threshold 1e-5)
    res, settings, y, v = _model(case)
    func = leave_one_out if fn == "leave1out" else cumulative
    out = func(res)
    assert out == _arrays_call(func, y, v, **settings)
    assert out.study.tolist() == res.used.tolist()
    assert out.omitted == res.omitted
    (ref,) = [
        c
        for c in _fitted_cases(fn)
        if c["dataset"] == case["dataset"] and c["model"] == case["model"]
    ]
    rtol = RTOL_INTERNAL_REML if settings["method"] == "REML" else RTOL
    for field, expected in ref["value"].items():
        if field == "tau2" and not expected:  # (metafor has no tau2 column for EE)
            assert settings["method"] == "EE"
            assert not out.tau2.any()
            continue
        _close(getattr(out, field), expected, rtol, 1e-8 if field == "tau2" else 0.0)


@pytest.mark.parametrize("case", [c for c in _cases("regtest") if c["model"] == "rma"], ids=_id)
def test_egger_on_a_model_matches_the_regtest_reference(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 regtest(rma(yi, vi, method, test), ni=ni, predictor=...)
    # (metafor_bias.json)
    y, v, ni = _data(case)
    fit = pool(y, v, method=case["method"], test=case["test"])
    out = egger_test(fit, ni=ni, predictor=case["predictor"])
    assert out == egger_test(
        y,
        v,
        ni=ni,
        model="rma",
        predictor=case["predictor"],
        method=case["method"],
        test=case["test"],
    )
    exp = case["value"]
    for field, actual in {
        "statistic": out.statistic,
        "pvalue": out.pvalue,
        "limit_estimate": out.limit_estimate,
        "slope": out.intercept,
        "slope_se": out.se,
    }.items():
        if exp[field] is not None:
            _close(actual, exp[field], 1e-8)


@pytest.mark.parametrize("case", _cases("trimfill"), ids=_id)
def test_trim_and_fill_on_a_model_matches_the_trimfill_reference(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 trimfill(rma(yi, vi, method=...), estimator, side)
    # (metafor_bias.json; the filled data refitted to tight convergence)
    y, v, _ = _data(case)
    side = None if case["side"] == "auto" else case["side"]
    out = trim_and_fill(pool(y, v, method=case["method"]), estimator=case["estimator"], side=side)
    assert out == trim_and_fill(
        y, v, method=case["method"], estimator=case["estimator"], side=side
    )
    assert (out.k0, out.side) == (case["value"]["k0"], case["value"]["side"])
    rtol = RTOL_INTERNAL_REML if case["method"] == "REML" else RTOL
    _close(out.estimate, case["value"]["estimate"], rtol)


@pytest.mark.parametrize("case", _cases("leave1out") + _cases("cumul"), ids=_id)
def test_sensitivity_on_a_model_matches_the_reference(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 leave1out(rma(...)) and cumul(rma(...), order=order(-yi))
    # (metafor_bias.json)
    y, v, _ = _data(case)
    fit = pool(y, v, method=case["method"], test=case["test"])
    if case["fn"] == "leave1out":
        out = leave_one_out(fit)
        assert out == leave_one_out(y, v, method=case["method"], test=case["test"])
    else:
        order = np.array(case["order"], dtype=float)
        out = cumulative(fit, order=order)
        assert out == cumulative(y, v, order=order, method=case["method"], test=case["test"])
    rtol = RTOL_INTERNAL_REML if case["method"] == "REML" else RTOL
    for field in ("estimate", "se", "pvalue", "ci_lower", "ci_upper"):
        _close(getattr(out, field), case["value"][field], rtol)


def _bcg() -> ketameta.EffectSizes:
    return ketameta.escalc(
        "RR",
        data=ketameta.datasets.bcg(),
        ai="tpos",
        bi="tneg",
        ci="cpos",
        di="cneg",
        labels="author",
    )


def test_every_method_on_a_model_equals_the_call_on_its_effect_sizes() -> None:
    # Exact equality: the result's studies and settings are those of the EffectSizes call
    es = _bcg()
    ctl = {"threshold": 1e-10}
    res = pool(es, method="ML", test="knha", level=0.9, control=ctl)
    s = {"method": "ML", "test": "knha", "level": 0.9, "control": ctl}
    assert egger_test(res) == egger_test(es, model="rma", **s)
    assert egger_test(res, model="lm", predictor="vi") == egger_test(
        es, model="lm", predictor="vi", level=0.9
    )
    assert begg_test(res) == begg_test(es)
    assert begg_test(res, exact=False) == begg_test(es, exact=False)
    assert trim_and_fill(res, estimator="R0") == trim_and_fill(es, estimator="R0", **s)
    assert fail_safe_n(res, kind="orwin") == fail_safe_n(es, kind="orwin")
    assert leave_one_out(res) == leave_one_out(es, **s)
    year = ketameta.datasets.bcg()["year"]
    assert cumulative(res, order=year) == cumulative(es, order=year, **s)
    assert pet_peese(res) == pet_peese(es, **s)
    assert pet_peese(res, model="rma") == pet_peese(es, model="rma", **s)
    assert egger_test(res).labels == es.labels  # the studies keep their names


def test_omitted_studies_stay_omitted_and_named_without_a_second_warning() -> None:
    es = _bcg()
    y = np.array(es.yi, dtype=float)
    y[[2, 8]] = np.nan
    with pytest.warns(ketameta.OmittedStudiesWarning):
        res = pool(y, es.vi, labels=es.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second OmittedStudiesWarning
        for fn in (egger_test, begg_test, trim_and_fill, fail_safe_n, leave_one_out, cumulative):
            out = fn(res)
            assert out.omitted == (2, 8)
            assert out.labels == es.labels
            named = f"Omitted studies (missing yi or vi): {es.labels[2]}, {es.labels[8]}"
            assert named in out.summary()
    assert leave_one_out(res).study.tolist() == [0, 1, 3, 4, 5, 6, 7, 9, 10, 11, 12]
    # the order keys are still one per input study
    with pytest.raises(ValueError, match="`order` has 12 studies but"):
        cumulative(res, order=np.arange(12.0))


@pytest.mark.parametrize(
    "call",
    [
        lambda r: egger_test(r, [0.1] * 13),
        lambda r: egger_test(r, sei=[0.1] * 13),
        lambda r: begg_test(r, labels=["a"] * 13),
        lambda r: trim_and_fill(r, measure="RR"),
        lambda r: fail_safe_n(r, vi=[0.1] * 13),
        lambda r: leave_one_out(r, method="DL"),
        lambda r: cumulative(r, test="knha"),
        lambda r: egger_test(r, level=0.9),
        lambda r: trim_and_fill(r, control={"maxiter": 10}),
        lambda r: pet_peese(r, method="REML"),
    ],
)
def test_studies_or_settings_given_again_with_a_model_are_refused(call: Any) -> None:
    res = pool(_bcg())
    with pytest.raises(
        TypeError,
        match=r"`(vi|sei|labels|measure|method|test|level|control)` "
        r"cannot be given with a fitted model: \w+ takes the (studies|settings) "
        "from the PoolResult",
    ):
        call(res)


def test_models_the_methods_do_not_apply_to_are_refused() -> None:
    es = _bcg()
    reg = ketameta.metareg(es, mods=ketameta.datasets.bcg()["ablat"])
    # (egger_test takes it: the predictor is added to the moderators, as metafor's regtest)
    for fn in (begg_test, trim_and_fill, fail_safe_n, leave_one_out, cumulative, pet_peese):
        with pytest.raises(
            TypeError,
            match=r"`yi`: \w+ needs an intercept-only model, got a "
            r"meta-regression \(MetaRegResult\)",
        ):
            fn(reg)
    fixed = pool(es, tau2=0.1)
    for fn in (trim_and_fill, leave_one_out, cumulative, egger_test):
        with pytest.raises(ValueError, match=r"`yi`: \w+ refits the model and estimates tau\^2"):
            fn(fixed)
    # the tests that do not refit the random-effects model take it
    assert begg_test(fixed) == begg_test(es)
    assert egger_test(fixed, model="lm") == egger_test(es, model="lm")
    mh = ketameta.pool_mh(ai=[4, 6, 3], bi=[10, 8, 12], ci=[8, 9, 7], di=[6, 5, 8])
    with pytest.raises(
        TypeError,
        match=r"`yi` must be effect sizes, an EffectSizes or a fitted model of "
        r"ketameta\.pool or ketameta\.metareg; egger_test cannot use a",
    ):
        egger_test(mh)


def test_egger_default_model_is_lm_for_effect_sizes_and_rma_for_a_model() -> None:
    es = _bcg()
    assert egger_test(es).model == "lm"
    assert egger_test(pool(es)).model == "rma"
    reg = ketameta.metareg(es, mods=ketameta.datasets.bcg()["ablat"])
    assert egger_test(reg).model == "rma"


@pytest.mark.parametrize(
    "case",
    _fitted_cases("regtest_mods_rma") + _fitted_cases("regtest_mods_lm"),
    ids=lambda c: (
        f"{c['fn'][-3:]}-{c['model']['mods']}-{c['model']['method']}-{c['model']['test']}"
    ),
)
def test_egger_on_a_meta_regression_adds_the_predictor_to_its_moderators(
    case: dict[str, Any],
) -> None:
    # Oracle: metafor 3.8-1 regtest(rma(yi, vi, mods=~ablat[+year]), model=) on dat.bcg with
    # two studies missing (make_fitted_reference.R): the test of the standard error added
    # to the model's moderators; no limit estimate
    d = FITTED["datasets"]["bcg_omitted"]
    y, v = as_float(d["yi"]), as_float(d["vi"])
    data = {"ablat": as_float(d["ablat"]), "year": as_float(d["year"])}
    m = case["model"]
    with pytest.warns(ketameta.OmittedStudiesWarning):
        reg = ketameta.metareg(
            y, v, mods=f"~ {m['mods']}", data=data, method=m["method"], test=m["test"]
        )
    mdl = case["fn"][-3:].lstrip("_")
    out = egger_test(reg, model=mdl)
    assert out.moderators == tuple(m["mods"].split(" + "))
    assert out.omitted == (2, 8)
    exp = case["value"]
    _close([out.statistic, out.pvalue], [exp["statistic"], exp["pvalue"]], 1e-8)
    if exp["df"] is not None:
        assert out.df == exp["df"]
    else:
        assert out.df == np.inf
    assert np.isnan(out.limit_estimate)
    assert exp["limit_estimate"] is None
    if mdl == "rma":
        _close(out.intercept, exp["slope"], 1e-8)
        _close(out.tau2, exp["tau2"], 1e-8, 1e-10)
    # the same test as a meta-regression on the moderators and the standard errors
    with pytest.warns(ketameta.OmittedStudiesWarning):
        direct = ketameta.metareg(
            y,
            v,
            mods={**{k: data[k] for k in m["mods"].split(" + ")}, "sei": np.sqrt(v)},
            method="EE" if mdl == "lm" else m["method"],
            test="knha" if mdl == "lm" else m["test"],
        )
    assert out.intercept == direct.coef[-1]
    if mdl == "rma":  # the default for a fitted model, as regtest(res)
        assert egger_test(reg) == out
    assert "Moderators: " + ", ".join(out.moderators) in out.summary()
    assert "Limit Estimate" not in out.summary()


def _outcome(call: Any) -> Any:
    """A call's result, or its error (type and message)."""
    try:
        return call()
    except (ValueError, TypeError, ketameta.ConvergenceError) as err:
        return (type(err), str(err))


@pytest.mark.filterwarnings("ignore::ketameta.KetametaWarning")
@given(
    data=datasets(min_k=3, max_k=14),
    missing=st.lists(st.integers(0, 13), max_size=2),
    method=st.sampled_from(["REML", "DL", "ML", "EE", "PM", "SJ"]),
    test=st.sampled_from(["z", "knha"]),
    level=st.sampled_from([0.95, 0.9]),
)
@settings(deadline=None, max_examples=40)
def test_a_method_on_a_model_is_the_method_on_its_studies_with_its_settings(
    data: tuple[np.ndarray, np.ndarray], missing: list[int], method: str, test: str, level: float
) -> None:
    # The defining property of _fitted.py: f(pool(y, v, **s)) == f(y, v, **s) exactly, for
    # any data, omitted studies, estimator, test and level (or the same error)
    y, v = data
    y = y.copy()
    y[[i for i in missing if i < y.size - 2]] = np.nan  # (at least 3 studies stay)
    s = {"method": method, "test": test, "level": level}
    fit = _outcome(lambda: pool(y, v, **s))
    if not isinstance(fit, ketameta.PoolResult):
        return
    for fn, on_arrays in (
        (egger_test, {"model": "rma", **s}),
        (begg_test, {}),
        (trim_and_fill, s),
        (fail_safe_n, {}),
        (leave_one_out, s),
        (cumulative, s),
        (pet_peese, s),
    ):
        assert _outcome(lambda fn=fn: fn(fit)) == _outcome(
            lambda fn=fn, kw=on_arrays: fn(y, v, **kw)
        ), fn.__name__
