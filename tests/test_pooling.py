"""pool(): every τ² estimator and test against metafor, publications, properties, errors."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import ketameta
from ketameta import pool

from .conftest import as_float, assert_printed, load_reference

# Random datasets can have a likelihood whose maximum at τ² = 0 beats the interior one
# reached from the start: pool() then sets τ² = 0 and warns, as metafor does
# (tested in test_pooling.py::test_several_likelihood_maxima_as_metafor).
pytestmark = pytest.mark.filterwarnings("ignore::ketameta.LocalMaximumWarning")

GENERATED = load_reference("metafor_pool.json")
DATASETS = GENERATED["datasets"]
FIELDS_NEAR_ZERO = {"tau2", "i2", "tau"}

# Tolerances. metafor was run with threshold 1e-13 (validation/metafor/make_reference.R);
# ketameta converges to |Δτ²| ≤ 1e-10·max(1, τ²), so 1e-8 relative is ample. Where the true
# τ² is 0 (a boundary), metafor's Fisher scoring stops at ~1e-14 instead of 0, so τ², I²
# and τ (its square root, ~1e-7) get an absolute tolerance.
RTOL = 1e-8
ATOL = {"tau2": 1e-12, "i2": 1e-8, "tau": 1e-6, "h2": 1e-10}


def _case_id(case: dict[str, Any]) -> str:
    extra = "-confint" if case.get("kind") == "confint" else ""
    fixed = f"-tau2={case['tau2_fixed']}" if "tau2_fixed" in case else ""
    level = f"-level={case['level']}" if "level" in case else ""
    return f"{case['dataset']}-{case['method']}-{case['test']}{extra}{fixed}{level}"


def _fit(case: dict[str, Any]) -> ketameta.PoolResult:
    data = DATASETS[case["dataset"]]
    kwargs: dict[str, Any] = {"method": case["method"], "test": case["test"]}
    if "tau2_fixed" in case:
        kwargs["tau2"] = case["tau2_fixed"]
    if "level" in case:
        kwargs["level"] = case["level"]
    return pool(np.atleast_1d(data["yi"]), np.atleast_1d(data["vi"]), **kwargs)


@pytest.mark.parametrize(
    "case",
    # metafor ignores `tau2` for method="EE"; ketameta refuses it (test_bad_input_is_named)
    [
        c
        for c in GENERATED["cases"]
        if c.get("kind") != "confint" and not (c["method"] == "EE" and "tau2_fixed" in c)
    ],
    ids=_case_id,
)
def test_pool_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 rma()/predict() with threshold 1e-13 on the stored datasets
    # (bcg, simulated, k = 2, identical effects, τ² boundary, variances 1e-8..1e2, effects 1e3)
    res = _fit(case)
    for field, expected in case["value"].items():
        if expected is None:
            # metafor reports no SE of τ² for EE / fixed τ², and no prediction interval
            # for EE models (there it equals the confidence interval)
            if field == "tau2_se":
                assert math.isnan(res.tau2_se)
            else:
                assert res.method == "EE"
                assert field.startswith("pred_")
                assert getattr(res, field) == getattr(res, field.replace("pred_", "ci_"))
            continue
        np.testing.assert_allclose(
            getattr(res, field),
            as_float(expected) if field != "weights" else expected,
            rtol=RTOL,
            atol=ATOL.get(field, 0.0),
            err_msg=field,
        )


RANDOM = load_reference("metafor_random.json")["cases"]
#: (field, absolute slack): where metafor's τ² is on the boundary its iterations stop at
#: ~1e-13 and ketameta returns exactly 0 (docs/coming-from-metafor.md), so τ² and I² (in
#: percent) get an absolute slack, as p-values below 1e-300 (R underflows to 0 where
#: ketameta returns a subnormal); everything else is held to 1e-8 relative
RANDOM_FIELDS = {
    "tau2": 1e-12,
    "se_tau2": 0.0,
    "estimate": 0.0,
    "se": 0.0,
    "pvalue": 1e-300,
    "ci_lower": 0.0,
    "ci_upper": 0.0,
    "q": 0.0,
    "q_pvalue": 1e-300,
    "i2": 1e-7,
    "h2": 0.0,
    "pred_lower": 0.0,
    "pred_upper": 0.0,
}


@pytest.mark.parametrize("method", ["EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"])
def test_random_datasets_as_metafor(method: str) -> None:
    # Oracle: metafor 3.8-1, rma(yi, vi, method, test) and predict() to tight convergence
    # on 60 simulated datasets (validation/metafor/make_random_reference.R): k from 2 to
    # 40, variances over 3.5 orders of magnitude, effects near 0 or near ±100, τ² from 0 to
    # 1; z and Knapp-Hartung tests (6 fits where metafor's Fisher scoring did not converge
    # are absent from the reference)
    compared = 0
    for case in RANDOM:
        for test in ("z", "knha"):
            expected = case["fits"].get(f"{method} {test}")
            if expected is None:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ketameta.KetametaWarning)
                res = pool(case["yi"], case["vi"], method=method, test=test)
            for field, slack in RANDOM_FIELDS.items():
                want = expected[field]
                if want is None:  # metafor reports none (EE: no τ² SE or prediction)
                    continue
                got = res.tau2_se if field == "se_tau2" else getattr(res, field)
                assert got == pytest.approx(want, rel=1e-8, abs=slack), (
                    field,
                    test,
                    len(case["yi"]),
                )
            compared += 1
    assert compared >= 110


@pytest.mark.parametrize("test", ["z", "knha"])
def test_random_datasets_as_metafor_in_one_batch(test: str) -> None:
    # the same oracle for pool_many: the 60 datasets as one ragged batch per estimator
    k = max(len(c["yi"]) for c in RANDOM)
    y = np.full((len(RANDOM), k), np.nan)
    v = np.full_like(y, np.nan)
    for i, case in enumerate(RANDOM):
        y[i, : len(case["yi"])], v[i, : len(case["vi"])] = case["yi"], case["vi"]
    for method in ("EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"):
        batch = ketameta.pool_many(y, v, method=method, test=test)
        for i, case in enumerate(RANDOM):
            expected = case["fits"].get(f"{method} {test}")
            if expected is None:
                continue
            for field in ("tau2", "estimate", "se", "pvalue", "q", "i2", "pred_upper"):
                want, slack = expected[field], RANDOM_FIELDS[field]
                if want is not None:
                    got = float(getattr(batch, field)[i])
                    assert got == pytest.approx(want, rel=1e-8, abs=slack), (method, i, field)


MULTIMODAL = load_reference("metafor_multimodal.json")["cases"]
MULTIMODAL_FITS = [(i, m) for i, c in enumerate(MULTIMODAL) for m in sorted(c["fits"])]


def _assert_matches_multimodal_reference(res: Any, expected: dict[str, Any]) -> None:
    # metafor stops ~1e-14 short of a boundary τ² = 0: absolute tolerance there
    np.testing.assert_allclose(res.tau2, expected["tau2"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(res.estimate, expected["estimate"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(res.se, expected["se"], rtol=1e-8)


@pytest.mark.parametrize(("index", "method"), MULTIMODAL_FITS)
def test_several_likelihood_maxima_as_metafor(index: int, method: str) -> None:
    # Oracle: metafor 3.8-1 rma(yi, vi, method=m, control=list(threshold=1e-13)) on
    # datasets whose likelihood has several local maxima in τ²
    # (validation/metafor/make_multimodal_reference.R): the same maximum is reached from
    # the Hedges start, and where metafor warns that it "may have gotten stuck at a local
    # maximum" and sets τ² = 0, ketameta does and warns too.
    case = MULTIMODAL[index]
    expected = case["fits"][method]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = pool(case["yi"], case["vi"], method=method)
    zeroed = [w for w in caught if issubclass(w.category, ketameta.LocalMaximumWarning)]
    assert bool(zeroed) == expected["zeroed"]
    _assert_matches_multimodal_reference(res, expected)


def test_several_likelihood_maxima_batch_equals_metafor() -> None:
    # the batch engine (vectorised Newton steps and likelihood check) reaches the same
    # maxima as pool() and metafor, for all datasets at once (ragged rows)
    k = max(len(c["yi"]) for c in MULTIMODAL)
    Y = np.full((len(MULTIMODAL), k), np.nan)
    V = np.full_like(Y, np.nan)
    for i, c in enumerate(MULTIMODAL):
        Y[i, : len(c["yi"])], V[i, : len(c["vi"])] = c["yi"], c["vi"]
    for method in ("ML", "REML"):
        batch = ketameta.pool_many(Y, V, method=method)
        for i, c in enumerate(MULTIMODAL):
            if method in c["fits"]:
                _assert_matches_multimodal_reference(batch[i], c["fits"][method])


STARTS = [0.0, 1e-8, 1e-3, 1.0, 1e6, 1e100]


def _same_fit(a: Any, b: Any) -> bool:
    # every statistic bit for bit; the iteration count and the settings may differ
    return a == attrs.evolve(b, iterations=a.iterations, control=a.control)


@pytest.mark.parametrize(("index", "method"), MULTIMODAL_FITS)
def test_the_estimate_does_not_depend_on_the_start(index: int, method: str) -> None:
    # Issue #14: a start (control["tau2_init"]) reaching another root of the score (these
    # likelihoods have several maxima) neither moves the estimate nor passes silently.
    # Oracle: metafor 3.8-1 from its default start (metafor_multimodal.json).
    case = MULTIMODAL[index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.LocalMaximumWarning)
        default = pool(case["yi"], case["vi"], method=method)
    _assert_matches_multimodal_reference(default, case["fits"][method])
    for start in STARTS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = pool(case["yi"], case["vi"], method=method, control={"tau2_init": start})
        assert _same_fit(res, default), start
        for w in caught:
            assert issubclass(w.category, ketameta.LocalMaximumWarning)


def test_a_start_reaching_a_higher_maximum_is_reported() -> None:
    # metafor_multimodal.json case 24: metafor's ML fit (from the Hedges start) ends at
    # τ² = 0; the ML likelihood also has a maximum at τ² ≈ 0.0525 that a start of 1
    # reaches, 0.818 higher in log-likelihood (metafor 3.8-1: rma(..., control =
    # list(tau2.init = 1))$tau2 = 0.05250919 and logLik(rma(..., tau2 = 0.0525123)) -
    # logLik(rma(..., tau2 = 0)) = 0.8178347). metafor's estimate depends on the start;
    # ketameta's stays the default-start one and the warning gives both maxima.
    case = MULTIMODAL[24]
    with pytest.warns(ketameta.LocalMaximumWarning, match=r"0\.0525.* 0\.818 above"):
        res = pool(case["yi"], case["vi"], method="ML", control={"tau2_init": 1.0})
    assert res.tau2 == case["fits"]["ML"]["tau2"] == 0


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.floats(-3, 3, allow_subnormal=False),
            st.floats(1e-4, 10, allow_subnormal=False),
        ),
        min_size=2,
        max_size=30,
    ),
    method=st.sampled_from(["ML", "REML"]),
    start=st.sampled_from(STARTS),
)
def test_any_start_reaches_the_default_root(
    data: list[tuple[float, float]], method: str, start: float
) -> None:
    # A start far from the root (1e100) once stopped after its first Newton step with a
    # τ² that was no root ("converged"; the quadratic-convergence prediction of the stopping
    # rule was applied to a step from far away). Now every start gives the default fit, or
    # warns that it found another maximum (a multimodal likelihood), for pool and pool_many.
    yi, vi = [d[0] for d in data], [d[1] for d in data]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        default = pool(yi, vi, method=method)
        res = pool(yi, vi, method=method, control={"tau2_init": start})
        batch = ketameta.pool_many([yi, yi], [vi, vi], method=method, control={"tau2_init": start})
    assume(not any(issubclass(w.category, ketameta.LocalMaximumWarning) for w in caught))
    assert _same_fit(res, default)
    np.testing.assert_allclose(batch.tau2, default.tau2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("start", [math.nan, math.inf, -0.1, "1", None, [1.0], 1e101])
def test_tau2_init_must_be_a_variance(start: Any) -> None:
    if start is None:  # (None: the default start)
        assert pool([0.1, 0.5, 0.3], [0.01, 0.02, 0.03], control={"tau2_init": None}).converged
        return
    with pytest.raises(ValueError, match=r"`control\['tau2_init'\]`"):
        pool([0.1, 0.5, 0.3], [0.01, 0.02, 0.03], control={"tau2_init": start})
    with pytest.raises(ValueError, match=r"`control\['tau2_init'\]`"):
        ketameta.pool_many([[0.1, 0.5, 0.3]], [[0.01, 0.02, 0.03]], control={"tau2_init": start})


@pytest.mark.parametrize(
    "case", [c for c in GENERATED["cases"] if c.get("kind") == "confint"], ids=_case_id
)
def test_q_profile_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 confint(rma(..., method="REML"), control=list(tol=1e-13)),
    # including metafor's search range [0, max(100, 10 τ̂²)]
    ci = _fit(case).tau2_ci()
    for field, expected in case["value"].items():
        np.testing.assert_allclose(
            getattr(ci, field), expected, rtol=1e-8, atol=ATOL.get(field, 0.0), err_msg=field
        )


@pytest.mark.parametrize(
    ("method", "test"),
    [("EE", "z")]
    + [(m, t) for m in ["DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"] for t in ("z", "knha")],
)
def test_bcg_matches_shared_reference(
    shared_reference: dict[str, Any], method: str, test: str
) -> None:
    # Oracle: ../shared/refvals/metafor_reference.json (metafor 3.8-1, threshold 1e-12)
    rr = shared_reference["bcg-escalc-RR"]["value"]
    res = pool(rr["yi"], rr["vi"], method=method, test=test)
    for field, expected in shared_reference[f"bcg-rma-{method}-{test}"]["value"].items():
        if expected is None:
            assert math.isnan(getattr(res, field))
            continue
        np.testing.assert_allclose(getattr(res, field), expected, rtol=1e-8, err_msg=field)


def test_bcg_q_profile_shared_reference(shared_reference: dict[str, Any]) -> None:
    # Oracle: shared refvals confint(rma(yi, vi)) -- computed with uniroot's default
    # tolerance, so its limits are accurate to ~2e-4 only (with tol=1e-13 metafor gives
    # 0.119718361141 and 1.111479084061, which the generated reference checks to 1e-8).
    ref = shared_reference["bcg-confint-REML"]["value"]
    rr = shared_reference["bcg-escalc-RR"]["value"]
    ci = pool(rr["yi"], rr["vi"]).tau2_ci()
    np.testing.assert_allclose(ci.tau2, ref["tau2"], rtol=5e-4)
    np.testing.assert_allclose(ci.i2, ref["i2"], rtol=5e-4)
    assert ci.tau2[1] == pytest.approx(0.119718361141, rel=1e-9)
    assert ci.tau2[2] == pytest.approx(1.111479084061, rel=1e-9)


def test_normand1999_and_pritz1997_shared_reference(shared_reference: dict[str, Any]) -> None:
    # Oracle: shared refvals rma(<SMD>, method="DL"/"REML") and rma(<PLO>, method="REML")
    smd = shared_reference["normand1999-escalc-SMD-LS"]["value"]
    for method in ("DL", "REML"):
        res = pool(smd["yi"], smd["vi"], method=method)
        for field, expected in shared_reference[f"normand1999-rma-SMD-{method}"]["value"].items():
            np.testing.assert_allclose(getattr(res, field), expected, rtol=1e-8, err_msg=field)
    plo = shared_reference["pritz1997-escalc-PLO"]["value"]
    res = pool(plo["yi"], plo["vi"], method="REML")
    for field, expected in shared_reference["pritz1997-rma-PLO-REML"]["value"].items():
        np.testing.assert_allclose(getattr(res, field), expected, rtol=1e-8, err_msg=field)


@pytest.mark.parametrize("test", ["z", "knha"])
def test_raudenbush2009_table16_3(published: dict[str, Any], test: str) -> None:
    # Source: Raudenbush (2009), Handbook of Research Synthesis, ch. 16, Table 16.3 (p. 309)
    key = (
        "raudenbush2009_table16_3_estimators"
        if test == "z"
        else ("raudenbush2009_table16_3_knapp_hartung")
    )
    # The printed ML values come from metafor's default convergence threshold (1e-5): run
    # to convergence (metafor with threshold=1e-13 agrees with us), ML's z is 1.636867, not
    # 1.6368, so ML gets one more unit of slack in the last decimal.
    case = published[key]
    cols = case["dataset"]["columns"]
    for method in ("EE", "ML", "REML", "DL", "HE"):
        exp = case["expected"][method]
        res = pool(cols["yi"], cols["vi"], method=method, test=test)
        stat = exp["z"] if test == "z" else exp["t"]
        actual = [res.tau2, res.estimate, res.se, res.statistic, res.ci_lower, res.ci_upper]
        expected = [exp["tau2"], exp["mu"], exp["se"], stat, exp["ci_lb"], exp["ci_ub"]]
        if method == "ML":
            np.testing.assert_allclose(actual, expected, rtol=0, atol=1.6e-4)
        else:
            assert_printed(actual, expected, 4)


@pytest.mark.parametrize("example", ["example1", "example2"])
def test_viechtbauer2005_estimators(published: dict[str, Any], example: str) -> None:
    # Source: Viechtbauer (2005) J Educ Behav Stat 30(3), pp. 271-272 (metafor's test)
    # Printed values (4 dp) come from metafor's default threshold 1e-5 for the iterative
    # estimators; run to convergence they move in the 4th decimal (checked with metafor,
    # threshold=1e-13: example 1 ML I² 74.50973 vs the printed 74.5098; example 2 ML I²
    # 28.45151 vs 28.4505; REML 32.02204 vs 32.0203; EB 23.71787 vs 23.7198), hence the
    # wider slack for ML/REML/EB.
    case = published[f"viechtbauer2005_{example}_tau2_estimators"]
    cols = case["dataset"]["columns"]
    for method, exp in case["expected"].items():
        res = pool(cols["yi"], cols["vi"], method=method)
        iterative = method in ("ML", "REML", "EB")
        np.testing.assert_allclose(
            [res.tau2, res.h2, res.tau2_se],
            [exp["tau2"], exp["H2"], exp["se_tau2"]],
            rtol=0,
            atol=1.5e-4 if iterative else 0.6e-4,
            err_msg=method,
        )
        # example 2, ML: printed I² 28.4505; metafor with threshold=1e-13 gives 28.45151
        np.testing.assert_allclose(
            res.i2, exp["I2_percent"], rtol=0, atol=2.5e-3 if iterative else 0.6e-4
        )


def test_result_object(shared_reference: dict[str, Any]) -> None:
    rr = shared_reference["bcg-escalc-RR"]["value"]
    res = pool(rr["yi"], rr["vi"])
    assert res.k == 13
    assert res.method == "REML"
    assert res.test == "z"
    assert res.converged
    assert res.weights.sum() == pytest.approx(100.0)
    d = res.to_dict()
    json.dumps(d)  # JSON-serialisable: inf (z test's df) becomes None
    assert d["df"] is None
    assert d["estimate"] == res.estimate
    text = res.summary()
    assert "Random-effects model (k = 13; tau^2 estimator: REML" in text
    assert "Q(df = 12) = 152.2330" in text
    assert "-0.7145" in text
    assert repr(res).startswith("PoolResult(method='REML', k=13")
    pd = pytest.importorskip("pandas")
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert frame.loc[0, "k"] == 13
    ci = res.tau2_ci()
    assert "tau^2" in str(ci)
    assert json.dumps(ci.to_dict())
    with pytest.raises(AttributeError):
        res.estimate = 0.0  # type: ignore[misc]


def test_effect_sizes_and_sei_inputs_agree() -> None:
    es = ketameta.escalc(
        "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    a = pool(es, method="DL")
    b = pool(list(es.yi), sei=np.sqrt(es.vi), method="DL")
    assert a.estimate == pytest.approx(b.estimate, rel=1e-14)
    assert a.tau2 == pytest.approx(b.tau2, rel=1e-14)


def test_aliases_of_common_effect() -> None:
    y, v = [0.1, 0.3, 0.5], [0.01, 0.02, 0.03]
    ee = pool(y, v, method="EE")
    for alias in ("FE", "CE"):
        r = pool(y, v, method=alias)
        assert r.estimate == ee.estimate
        assert r.method == "EE"


def test_nan_policy_omit_and_raise() -> None:
    y = [0.1, np.nan, 0.5, 0.2]
    v = [0.01, 0.02, np.nan, 0.02]
    with pytest.warns(
        ketameta.OmittedStudiesWarning,
        match=r"2 studies omitted: Study 2 \(index 1\), Study 3 \(index 2\) have",
    ):
        res = pool(y, v, method="DL")
    assert res.omitted == (1, 2)
    assert res.k == 2
    ref = pool([0.1, 0.2], [0.01, 0.02], method="DL")
    assert res.estimate == ref.estimate
    with pytest.raises(
        ValueError, match=r"Study 2 \(index 1\), Study 3 \(index 2\) have missing yi or vi"
    ):
        pool(y, v, nan_policy="raise")


def test_single_study_warns_and_sets_tau2_zero() -> None:
    with pytest.warns(ketameta.SmallSampleWarning, match="k = 1"):
        res = pool([0.4], [0.04], method="REML", test="knha")
    assert res.tau2 == 0.0
    assert res.test == "z"
    assert res.k == 1
    assert res.estimate == 0.4
    assert res.se == pytest.approx(0.2)
    assert res.q_pvalue == 1.0


def test_convergence_error_names_method() -> None:
    rr = ketameta.escalc(
        "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    with pytest.raises(ketameta.ConvergenceError, match=r"REML estimator .* 2 iterations"):
        pool(rr, method="REML", control={"maxiter": 2})


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"yi": [1, 2], "vi": [1]}, ValueError, "`vi` has 1 studies but `yi` has 2"),
        ({"yi": [], "vi": []}, ValueError, "no studies: `yi` is empty"),
        ({"yi": [1, 2], "vi": [1, -1]}, ValueError, r"`vi` must be positive; study 1"),
        ({"yi": [1, 2], "vi": [1, 0]}, ValueError, r"`vi` must be positive; study 1"),
        (
            {"yi": [1, np.inf], "vi": [1, 1]},
            ValueError,
            r"`yi` must be finite.*study 1 has yi=inf",
        ),
        ({"yi": [1, 2], "sei": [1, -1]}, ValueError, r"`sei` must be positive; study 1"),
        ({"yi": [1, "a"], "vi": [1, 1]}, TypeError, r"`yi` must be numeric \(study 1\)"),
        ({"yi": [[1, 2]], "vi": [[1, 1]]}, ValueError, "`yi` must be 1-dimensional"),
        ({"yi": [1, 2], "vi": [1, 1], "method": "XX"}, ValueError, "unknown `method` 'XX'"),
        ({"yi": [1, 2], "vi": [1, 1], "test": "wald"}, ValueError, "unknown `test`"),
        ({"yi": [1, 2], "vi": [1, 1], "level": 95}, ValueError, r"`level` must be in \(0, 1\)"),
        ({"yi": [1, 2], "vi": [1, 1], "tau2": -1.0}, ValueError, "`tau2` must be finite"),
        (
            {"yi": [1, 2], "vi": [1, 1], "tau2": 0.1, "method": "EE"},
            ValueError,
            "`tau2` cannot be fixed for the equal-effects model",
        ),
        ({"yi": [1, 2]}, TypeError, "give exactly one of `vi`"),
        ({"yi": [1, 2], "vi": [1, 1], "sei": [1, 1]}, TypeError, "give exactly one of `vi`"),
        (
            {"yi": [1, 2], "vi": [1, 1], "control": {"iters": 3}},
            ValueError,
            "unknown `control` keys",
        ),
    ],
)
def test_bad_input_is_named(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        pool(**kwargs)


def test_inputs_are_not_modified_and_may_be_read_only() -> None:
    y = np.array([0.1, np.nan, 0.5, 0.2])
    v = np.array([0.01, 0.02, 0.03, 0.02])
    y.setflags(write=False)
    y_before, v_before = y.copy(), v.copy()
    with pytest.warns(ketameta.OmittedStudiesWarning):
        pool(y, v)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(v, v_before)


def test_tau2_interval_beyond_search_range_is_flagged() -> None:
    # k = 2 with strong heterogeneity: the upper Q-profile root lies beyond metafor's
    # search range max(100, 10 τ̂²) = 100 (metafor 3.8-1 reports 100, see generated ref)
    res = pool([0.2, 0.9], [0.04, 0.09])
    ci = res.tau2_ci()
    assert ci.upper_at_limit
    assert ci.tau2[2] == 100.0
    exact = res.tau2_ci(tau2_max=math.inf)
    assert not exact.upper_at_limit
    assert exact.tau2[2] > 100.0
    # the exact root solves Q(τ²) = χ²_{1; 0.025}
    from scipy import stats

    w = 1 / (np.array([0.04, 0.09]) + exact.tau2[2])
    mu = np.sum(w * [0.2, 0.9]) / w.sum()
    q = np.sum(w * (np.array([0.2, 0.9]) - mu) ** 2)
    assert q == pytest.approx(stats.chi2.ppf(0.025, 1), rel=1e-9)


# ---- properties ----------------------------------------------------------------------------

METHOD_NAMES = ["EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"]


@st.composite
def meta_datasets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 30))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    yi = np.array(draw(st.lists(st.floats(-5, 5), min_size=k, max_size=k))) * scale
    vi = np.array(draw(st.lists(st.floats(0.01, 4), min_size=k, max_size=k))) * scale**2
    return yi, vi


@given(meta_datasets(), st.sampled_from(METHOD_NAMES), st.randoms(use_true_random=False))
def test_permutation_invariance(
    data: tuple[np.ndarray, np.ndarray], method: str, rnd: Any
) -> None:
    yi, vi = data
    order = list(range(len(yi)))
    rnd.shuffle(order)
    a = pool(yi, vi, method=method)
    b = pool(yi[order], vi[order], method=method)
    scale = np.abs(yi).max() + np.sqrt(vi.max())
    assert a.estimate == pytest.approx(b.estimate, rel=1e-7, abs=1e-9 * scale)
    assert a.tau2 == pytest.approx(b.tau2, rel=1e-7, abs=1e-12 * scale**2)
    np.testing.assert_allclose(a.weights[order], b.weights, rtol=1e-6, atol=1e-9)


@given(meta_datasets(), st.sampled_from(METHOD_NAMES), st.floats(-100, 100), st.floats(0.1, 10))
def test_location_and_scale_equivariance(
    data: tuple[np.ndarray, np.ndarray], method: str, shift: float, s: float
) -> None:
    yi, vi = data
    a = pool(yi, vi, method=method)
    spread = np.abs(yi).max() + np.sqrt(vi.max())
    shifted = pool(yi + shift, vi, method=method)
    assert shifted.estimate == pytest.approx(a.estimate + shift, abs=1e-7 * (spread + abs(shift)))
    # τ² converges to threshold · (typical variance) = 1e-10 · v̄ in absolute terms, so values
    # far below v̄ (near the boundary) get that slack, with a margin: 1e-8 · spread²
    assert shifted.tau2 == pytest.approx(a.tau2, rel=1e-6, abs=1e-8 * spread**2)
    assert shifted.q == pytest.approx(a.q, rel=1e-6, abs=1e-9)
    assert shifted.i2 == pytest.approx(a.i2, rel=1e-6, abs=1e-7)
    scaled = pool(yi * s, vi * s * s, method=method)
    assert scaled.estimate == pytest.approx(a.estimate * s, rel=1e-7, abs=1e-9 * s * spread)
    assert scaled.tau2 == pytest.approx(a.tau2 * s * s, rel=1e-6, abs=1e-8 * (s * spread) ** 2)
    assert scaled.ci_upper - scaled.ci_lower == pytest.approx(
        s * (a.ci_upper - a.ci_lower), rel=1e-6
    )


@given(
    meta_datasets(), st.sampled_from(METHOD_NAMES), st.sampled_from(["z", "t", "knha", "adhoc"])
)
def test_basic_invariants(data: tuple[np.ndarray, np.ndarray], method: str, test: str) -> None:
    yi, vi = data
    res = pool(yi, vi, method=method, test=test)
    assert res.tau2 >= 0
    assert 0 <= res.i2 < 100
    assert res.h2 >= (0 if method == "EE" else 1)  # EE: H² = Q/(k-1), metafor's definition
    assert res.ci_lower <= res.estimate <= res.ci_upper
    assert res.pred_lower <= res.ci_lower
    assert res.ci_upper <= res.pred_upper
    assert 0 <= res.pvalue <= 1
    assert 0 <= res.q_pvalue <= 1
    if method == "EE":
        assert yi.min() - 1e-12 * np.abs(yi).max() <= res.estimate
        assert res.estimate <= yi.max() + 1e-12 * np.abs(yi).max()


@given(meta_datasets())
def test_fixed_tau2_zero_equals_common_effect(data: tuple[np.ndarray, np.ndarray]) -> None:
    yi, vi = data
    ee = pool(yi, vi, method="EE")
    fixed = pool(yi, vi, method="REML", tau2=0.0)
    assert fixed.estimate == pytest.approx(ee.estimate, rel=1e-12, abs=1e-300)
    assert fixed.se == pytest.approx(ee.se, rel=1e-12)
    assert fixed.tau2_fixed
    assert fixed.tau2 == 0.0


@given(meta_datasets())
def test_q_profile_contains_estimate_within_search_range(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    yi, vi = data
    res = pool(yi, vi, method="PM")  # PM solves Q(τ²) = k-1, inside the Q-profile interval
    ci = res.tau2_ci(tau2_max=math.inf)
    assume(np.isfinite(ci.tau2[2]))
    assert ci.tau2[1] <= res.tau2 * (1 + 1e-9) + 1e-15
    assert res.tau2 <= ci.tau2[2] * (1 + 1e-9) + 1e-15


def test_no_runtime_warnings_on_identical_effects() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in METHOD_NAMES:
            for test in ("z", "t", "knha", "adhoc"):
                res = pool([0.3] * 5, [0.01, 0.02, 0.03, 0.04, 0.05], method=method, test=test)
                assert res.tau2 == 0.0
                assert res.estimate == pytest.approx(0.3)
