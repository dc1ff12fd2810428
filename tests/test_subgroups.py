"""Subgroup analyses against metafor 3.8.1 (``tests/reference/metafor_metareg.json`` →
``subgroups[]``, written by ``validation/metafor/make_metareg_reference.R``; definitions in
``tests/reference/README_metareg.md``, "Test for subgroup differences"): 4 datasets (BCG by
allocation; simulated 2, 5 with a single-study subgroup, 3 with τ² = 0) × (REML, z),
(REML, knha), (DL, z), (DL, knha), (EE, z): every per-group field, the overall model, the
tests with separate and common τ² and the cell means under the common τ², at 1e-8 relative.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import ketameta
from ketameta import SmallSampleWarning, subgroups
from tests.properties.strategies import datasets

REF = json.loads((Path(__file__).parent / "reference" / "metafor_metareg.json").read_text())
SUBGROUPS = {s["id"]: s for s in REF["subgroups"]}
RTOL = 1e-8
#: metafor's Fisher scoring stops 5e-16..7e-14 short of a τ̂² of 0 (README_metareg.md,
#: "Notes for the tests"); ketameta gives 0: τ² and the I² derived from it get an absolute
#: tolerance
ATOL_TAU2 = 1e-10
TIGHT = {"threshold": 1e-13}  # metafor's control: threshold = 1e-13


def _close(got: Any, expected: Any, rtol: float = RTOL, atol: float = 0.0) -> None:
    if expected is None:  # metafor's NA: ketameta's NaN (or inf for a df)
        assert not np.all(np.isfinite(np.atleast_1d(np.asarray(got, dtype=float))))
        return
    np.testing.assert_allclose(
        np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=atol
    )


def _fit(case: dict[str, Any], method: str, test: str, tau2: str) -> ketameta.SubgroupResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)  # (tested below)
        return subgroups(
            case["yi"],
            case["vi"],
            groups=case["group"],
            method=method,
            test=test,
            tau2=tau2,
            control=TIGHT,
        )


def _params() -> list[Any]:
    return [
        pytest.param(
            case["id"], a["method"], a["test"], id=f"{case['id']}-{a['method']}-{a['test']}"
        )
        for case in REF["subgroups"]
        for a in case["analyses"]
    ]


def _analysis(case_id: str, method: str, test: str) -> tuple[dict[str, Any], dict[str, Any]]:
    case = SUBGROUPS[case_id]
    analysis = next(a for a in case["analyses"] if a["method"] == method and a["test"] == test)
    return case, analysis


def _check_fit(res: ketameta.PoolResult, ref: dict[str, Any]) -> None:
    """A PoolResult against metafor's ``rma`` record (per_group / overall)."""
    assert ref["status"] == "ok"
    assert res.k == ref["k"]
    assert res.test == ref["test_used"]
    _close(res.tau2, ref["tau2"], atol=ATOL_TAU2)
    _close(res.estimate, ref["estimate"])
    _close(res.se, ref["se"])
    _close(res.statistic, ref["zval"])
    _close(res.pvalue, ref["pval"])
    _close(res.ci_lower, ref["ci_lb"])
    _close(res.ci_upper, ref["ci_ub"])
    _close(res.q, ref["QE"], atol=1e-12)
    _close(res.q_pvalue, ref["QEp"])
    _close(res.i2, ref["I2"], atol=1e-8)
    _close(res.h2, ref["H2"])
    _close(res.tau2_se, ref["se_tau2"])
    _close(res.df, ref["dfs"])


@pytest.mark.parametrize(("case_id", "method", "test"), _params())
def test_separate_tau2_matches_metafor(case_id: str, method: str, test: str) -> None:
    case, ref = _analysis(case_id, method, test)
    res = _fit(case, method, test, "separate")
    assert list(res.level_names) == case["levels"]
    assert res.tau2_mode == "separate"
    for level, fit in zip(case["levels"], res.per_group, strict=True):
        _check_fit(fit, ref["per_group"][level])
    _check_fit(res.overall, ref["overall"])
    sep = ref["separate_tau2"]
    _close(res.q_between, sep["Q_between"])
    assert res.q_between_df == sep["df"]
    _close(res.q_between_pvalue, sep["p"])
    assert res.q_between_distribution == "chi2"
    assert res.common is None


@pytest.mark.parametrize(("case_id", "method", "test"), _params())
def test_common_tau2_matches_metafor(case_id: str, method: str, test: str) -> None:
    case, ref = _analysis(case_id, method, test)
    res = _fit(case, method, test, "common")
    common = ref["common_tau2"]
    # the test for subgroup differences: QM of rma(mods = ~ factor(group))
    _close(res.q_between, common["QM"])
    _close(res.q_between_pvalue, common["QMp"])
    assert res.q_between_df == common["QMdf"][0]
    if common["QMdf"][1] is None:
        assert res.q_between_distribution == "chi2"
        assert math.isnan(res.q_between_df_residual)
    else:
        assert res.q_between_distribution == "F"
        assert res.q_between_df_residual == common["QMdf"][1]
    assert res.common is not None
    model = res.common.model
    assert model is not None
    _close(res.common.tau2, common["tau2"], atol=ATOL_TAU2)
    _close(model.q, common["QE"])
    _close(model.q_pvalue, common["QEp"])
    # the per-group estimates under that τ²: rma(mods = ~ factor(group) - 1)
    cells = common["cells"]
    assert cells["names"] == [f"factor(group){level}" for level in case["levels"]]
    _close(cells["tau2"], common["tau2"], rtol=1e-12, atol=ATOL_TAU2)  # (one τ², two fits)
    _close(res.common.estimate, cells["estimate"])
    _close(res.common.se, cells["se"])
    _close(res.common.statistic, cells["zval"])
    _close(res.common.pvalue, cells["pval"])
    _close(res.common.ci_lower, cells["ci_lb"])
    _close(res.common.ci_upper, cells["ci_ub"])
    _close(res.common.df, common["QMdf"][1])
    # the per-group fits are the separate ones in either mode
    for level, fit in zip(case["levels"], res.per_group, strict=True):
        _check_fit(fit, ref["per_group"][level])


@pytest.mark.parametrize("case_id", list(SUBGROUPS))
def test_equal_effects_tests_coincide(case_id: str) -> None:
    # README_metareg.md: with EE, Q_between of the subgroup estimates equals QM of the EE
    # meta-regression on the factor (both checked against metafor above; here each other)
    case = SUBGROUPS[case_id]
    sep = _fit(case, "EE", "z", "separate")
    com = _fit(case, "EE", "z", "common")
    assert sep.q_between == pytest.approx(com.q_between, rel=1e-12)


# ---- single-study subgroups ---------------------------------------------------------------


def test_single_study_subgroup_is_reported_with_z_and_a_warning() -> None:
    # metafor fits it with τ² = 0 and switches knha to z: "Setting argument test="z" since
    # k=1." (reference: "sim 5 groups, one single-study group", group B)
    case = SUBGROUPS["sim 5 groups, one single-study group"]
    with pytest.warns(
        SmallSampleWarning,
        match=r"subgroups \['B'\] have one study each: "
        r"their tau\^2 is 0 and test='knha' is replaced by 'z' for them",
    ):
        res = subgroups(case["yi"], case["vi"], groups=case["group"], test="knha")
    b = res["B"]
    i = case["group"].index("B")
    assert b.k == 1
    assert b.tau2 == 0.0
    assert b.test == "z"
    assert b.df == math.inf
    assert b.estimate == case["yi"][i]
    assert b.se == pytest.approx(math.sqrt(case["vi"][i]), rel=1e-15)
    assert b.q == 0.0
    assert b.q_pvalue == 1.0
    assert b.weights.tolist() == [pytest.approx(100.0, rel=1e-15)]
    assert "single-study subgroups: B" in res.summary()
    # with z and REML: τ² = 0 is said; with EE and z there is nothing to say
    with pytest.warns(SmallSampleWarning, match=r"their tau\^2 is 0 \(as metafor"):
        subgroups(case["yi"], case["vi"], groups=case["group"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        subgroups(case["yi"], case["vi"], groups=case["group"], method="EE")


def test_every_subgroup_a_single_study() -> None:
    # G = k: the test is Cochran's Q of the studies themselves (the EE heterogeneity Q);
    # a common τ² has no residual degrees of freedom
    y, v = [0.1, 0.5, 0.3], [0.01, 0.02, 0.04]
    with pytest.warns(SmallSampleWarning):
        res = subgroups(y, v, groups=["a", "b", "c"])
    ee = ketameta.pool(y, v, method="EE")
    assert res.q_between == pytest.approx(ee.q, rel=1e-13)
    assert res.q_between_pvalue == pytest.approx(ee.q_pvalue, rel=1e-13)
    with pytest.warns(SmallSampleWarning), pytest.raises(ValueError, match="no residual"):
        subgroups(y, v, groups=["a", "b", "c"], tau2="common")


def test_one_subgroup_has_no_test() -> None:
    y, v = [0.1, 0.5, 0.3], [0.01, 0.02, 0.04]
    with pytest.warns(SmallSampleWarning, match=r"only one subgroup \('x'\)"):
        res = subgroups(y, v, groups=["x", "x", "x"])
    assert math.isnan(res.q_between)
    assert math.isnan(res.q_between_pvalue)
    assert res.q_between_df == 0
    assert res.per_group[0].estimate == pytest.approx(res.overall.estimate, rel=1e-13)
    assert "none (only one subgroup)" in res.summary()
    with pytest.warns(SmallSampleWarning):
        common = subgroups(y, v, groups=["x", "x", "x"], tau2="common")
    assert common.common is not None
    assert common.common.estimate[0] == pytest.approx(res.overall.estimate, rel=1e-13)


# ---- batch = single ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"])
@pytest.mark.parametrize("test", ["z", "t", "knha", "adhoc"])
def test_each_subgroup_equals_pool_on_its_studies(method: str, test: str) -> None:
    # the subgroups are fitted as the rows of one batch; each row equals pool() on the
    # subgroup's studies (pool is checked against metafor in test_pooling.py)
    case = SUBGROUPS["bcg by alloc"]
    res = _fit(case, method, test, "separate")
    for level, fit in zip(case["levels"], res.per_group, strict=True):
        idx = [i for i, g in enumerate(case["group"]) if g == level]
        alone = ketameta.pool(
            [case["yi"][i] for i in idx],
            [case["vi"][i] for i in idx],
            method=method,
            test=test,
            control=TIGHT,
        )
        for field in ("estimate", "se", "ci_lower", "ci_upper", "pvalue", "q", "i2"):
            assert getattr(fit, field) == pytest.approx(
                getattr(alone, field), rel=1e-10, abs=1e-12
            )
        assert fit.tau2 == pytest.approx(alone.tau2, rel=1e-10, abs=1e-12)
        np.testing.assert_allclose(fit.weights, alone.weights, rtol=1e-10)
        np.testing.assert_array_equal(fit.yi, alone.yi)
        assert fit.test == alone.test
        assert fit.df == alone.df


def test_fixed_tau2() -> None:
    # τ² fixed in every subgroup (as pool's tau2); with z the test equals the Wald test of
    # the factor with the same fixed τ² (a meta-regression with known weights: Q_between
    # and QM are the same quadratic form)
    case = SUBGROUPS["bcg by alloc"]
    res = subgroups(case["yi"], case["vi"], groups=case["group"], tau2=0.25)
    assert res.tau2_mode == "fixed"
    assert all(r.tau2 == 0.25 and r.tau2_fixed for r in res.per_group)
    assert res.overall.tau2 == 0.25
    a = np.array(case["group"])
    mods = {lv: (a == lv).astype(float) for lv in case["levels"][1:]}
    model = ketameta.metareg(case["yi"], case["vi"], mods=mods, tau2=0.25)
    assert res.q_between == pytest.approx(model.qm, rel=1e-12)
    assert "tau^2 fixed at 0.25" in res.summary()


def test_exact_fit_under_knapp_hartung_leaves_the_test_undefined() -> None:
    # identical effects within a subgroup: the Knapp-Hartung SE is 0 (metafor likewise),
    # so Q_between has a weight of 1/0
    with pytest.warns(
        ketameta.DegenerateDataWarning,
        match=r"subgroups \['a'\] have a "
        "standard error of 0",
    ):
        res = subgroups(
            [0.2, 0.2, 0.5, 0.1],
            [0.01, 0.02, 0.03, 0.02],
            groups=["a", "a", "b", "b"],
            test="knha",
        )
    assert math.isnan(res.q_between)
    assert "undefined (a standard error of 0)" in res.summary()


# ---- group labels -------------------------------------------------------------------------------

Y = [0.12, 0.35, -0.05, 0.41, 0.22, 0.3, 0.18, 0.05]
V = [0.01, 0.02, 0.015, 0.03, 0.012, 0.025, 0.018, 0.02]
G = ["b", "a", "b", "c", "a", "c", "b", "a"]


def _same(a: ketameta.SubgroupResult, b: ketameta.SubgroupResult, names: bool = True) -> None:
    if names:
        assert a.level_names == b.level_names
    for x, y in zip(a.per_group, b.per_group, strict=True):
        assert x.k == y.k
        assert x.estimate == pytest.approx(y.estimate, rel=1e-13)
        assert x.se == pytest.approx(y.se, rel=1e-13)
        assert x.tau2 == pytest.approx(y.tau2, rel=1e-12)
    assert a.q_between == pytest.approx(b.q_between, rel=1e-12)


def test_levels_are_sorted_as_r_sorts_factor_levels() -> None:
    res = subgroups(Y, V, groups=G)
    assert res.levels == ("a", "b", "c")
    assert [r.k for r in res.per_group] == [3, 3, 2]
    np.testing.assert_array_equal(res.group, [1, 0, 1, 2, 0, 2, 1, 0])
    # numbers numerically (R: factor(c(10, 2, 1)) has levels 1, 2, 10), printed as R prints
    num = subgroups(Y, V, groups=[10, 2, 10, 1, 2, 1, 10, 2])
    assert num.levels == (1, 2, 10)
    assert num.level_names == ("1", "2", "10")
    assert subgroups(Y, V, groups=[1.5, 2, 1.5, 3, 2, 3, 1.5, 2]).level_names == ("1.5", "2", "3")
    # booleans: FALSE, TRUE
    logical = subgroups(Y, V, groups=[True, False] * 4)
    assert logical.level_names == ("FALSE", "TRUE")
    assert logical[False].k == 4
    # the same analysis whatever the labels are called
    _same(num, subgroups(Y, V, groups=["c", "b", "c", "a", "b", "a", "c", "b"]), names=False)


def test_a_categorical_keeps_its_order_and_drops_unused_levels() -> None:
    pd = pytest.importorskip("pandas")
    cat = pd.Categorical(G, categories=["c", "x", "b", "a"])
    res = subgroups(Y, V, groups=cat)
    assert res.level_names == ("c", "b", "a")
    assert res["c"].k == 2
    res_series = subgroups(Y, V, groups=pd.Series(cat, name="arm"))
    assert res_series.name == "arm"
    _same(res, res_series)


def test_groups_as_a_column_of_data_and_effect_sizes() -> None:
    dat = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    res = subgroups(es, groups="alloc", data=dat)
    assert res.name == "alloc"
    _same(res, subgroups(es.yi, es.vi, groups=dat["alloc"]))
    _same(res, subgroups(es.yi, sei=np.sqrt(es.vi), groups=list(dat["alloc"])))
    with pytest.raises(TypeError, match="`groups` is the column name 'alloc', so `data`"):
        subgroups(es, groups="alloc")
    with pytest.raises(ValueError, match="`groups`: `data` has no column 'nope'"):
        subgroups(es, groups="nope", data=dat)


@pytest.mark.parametrize(
    "missing",
    ["None", "nan", "pd.NA", "masked", "Float64 NA", "object NaN"],
)
def test_missing_group_labels_are_omitted_with_a_warning(missing: str) -> None:
    pd = pytest.importorskip("pandas")
    numeric = [1, 2, 1, 3, 2, 3, 1, 2]
    j = 4
    if missing == "None":
        given: Any = [None if i == j else g for i, g in enumerate(G)]
    elif missing == "nan":
        given = [math.nan if i == j else g for i, g in enumerate(numeric)]
    elif missing == "pd.NA":
        given = pd.Series([pd.NA if i == j else g for i, g in enumerate(G)], dtype="string")
    elif missing == "masked":
        given = np.ma.masked_array(numeric, mask=[i == j for i in range(8)])
    elif missing == "Float64 NA":
        given = pd.Series([None if i == j else g for i, g in enumerate(numeric)], dtype="Float64")
    else:
        given = np.array([np.nan if i == j else g for i, g in enumerate(G)], dtype=object)
    with pytest.warns(
        ketameta.OmittedStudiesWarning,
        match=rf"1 study omitted: Study {j + 1} \(index {j}\) has a missing group label",
    ):
        res = subgroups(Y, V, groups=given)
    assert res.omitted == (j,)
    keep = [i for i in range(8) if i != j]
    labels = numeric if missing in ("nan", "masked", "Float64 NA") else G
    _same(
        res,
        subgroups([Y[i] for i in keep], [V[i] for i in keep], groups=[labels[i] for i in keep]),
    )
    with pytest.raises(ValueError, match=r"Study 5 \(index 4\) has a missing group label"):
        subgroups(Y, V, groups=given, nan_policy="raise")


def test_missing_effect_and_label_are_named_in_one_warning() -> None:
    y = [math.nan if i == 1 else x for i, x in enumerate(Y)]
    g = [None if i == 6 else x for i, x in enumerate(G)]
    with pytest.warns(
        ketameta.OmittedStudiesWarning,
        match=r"2 studies omitted: Study 2 \(index 1\) has missing yi or vi; "
        r"Study 7 \(index 6\) has a "
        r"missing group label",
    ):
        res = subgroups(y, V, groups=g)
    assert res.omitted == (1, 6)
    assert res.k == 6


def test_a_subgroup_whose_studies_are_all_omitted_disappears() -> None:
    y = [math.nan if g == "c" else x for x, g in zip(Y, G, strict=True)]
    with pytest.warns(ketameta.OmittedStudiesWarning):
        res = subgroups(y, V, groups=G)
    assert res.level_names == ("a", "b")


@pytest.mark.parametrize(
    ("groups", "error", "pattern"),
    [
        (["a", 1, "b", "a", "b", "a", "b", "a"], TypeError, "`groups` mixes strings and other"),
        (G[:-1], ValueError, "`groups` has 7 studies but `yi` has 8"),
        ("a", TypeError, "`groups` is the column name 'a', so `data` is required"),
        ([[1, 2]] * 8, ValueError, "`groups` must be 1-dimensional"),
        ([1, 2, 1, 2, np.inf, 1, 2, 1], ValueError, "`groups` must be finite.*study 4"),
    ],
)
def test_bad_groups_are_named(groups: Any, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        subgroups(Y, V, groups=groups)


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="unknown `tau2` 'joint'"):
        subgroups(Y, V, groups=G, tau2="joint")
    with pytest.raises(ValueError, match="`tau2` cannot be fixed for the equal-effects model"):
        subgroups(Y, V, groups=G, tau2=0.1, method="EE")
    with pytest.raises(ValueError, match="unknown `method`"):
        subgroups(Y, V, groups=G, method="XX")


def test_study_order_does_not_matter() -> None:
    res = subgroups(Y, V, groups=G, tau2="common")
    perm = [5, 2, 7, 0, 3, 6, 1, 4]
    other = subgroups(
        [Y[i] for i in perm], [V[i] for i in perm], groups=[G[i] for i in perm], tau2="common"
    )
    for a, b in zip(res.per_group, other.per_group, strict=True):
        assert a.estimate == pytest.approx(b.estimate, rel=1e-12)
        assert a.tau2 == pytest.approx(b.tau2, rel=1e-10, abs=1e-14)
    assert res.q_between == pytest.approx(other.q_between, rel=1e-10)
    assert res.common is not None
    assert other.common is not None
    np.testing.assert_allclose(res.common.estimate, other.common.estimate, rtol=1e-10)


# ---- output -------------------------------------------------------------------------------------


def test_summary_to_dict_and_to_frame() -> None:
    pd = pytest.importorskip("pandas")
    case = SUBGROUPS["bcg by alloc"]
    res = _fit(case, "REML", "knha", "common")
    text = res.summary()
    assert text.startswith("Subgroup analysis by group (k = 13; 3 subgroups)")
    assert "common tau^2" in text
    assert "Test for subgroup differences (common tau^2): F(df1 = 2, df2 = 10) = " in text
    d = res.to_dict()
    json.dumps(d)  # JSON-safe
    assert set(d["per_group"]) == {"alternate", "random", "systematic"}
    assert d["per_group"]["random"]["k"] == 7
    assert d["q_between"] == res.q_between
    assert d["common"]["model"]["names"][1] == "grouprandom"
    frame = res.to_frame()
    assert list(frame.index) == ["alternate", "random", "systematic", "overall"]
    assert frame.loc["random", "estimate"] == res["random"].estimate
    assert frame.loc["random", "common_estimate"] == res.common.estimate[1]  # type: ignore[union-attr]
    assert math.isnan(frame.loc["overall", "common_estimate"])
    assert isinstance(frame, pd.DataFrame)
    sep = _fit(case, "DL", "z", "separate")
    assert "Q(df = 2) = " in sep.summary()
    assert "tau^2" in sep.summary().splitlines()[3]
    with pytest.raises(KeyError, match="no subgroup 'x'"):
        sep["x"]
    assert "SubgroupResult(name='group'" in repr(sep)


def test_results_do_not_share_memory_with_inputs() -> None:
    y, v = np.array(Y), np.array(V)
    res = subgroups(y, v, groups=G)
    y[:] = 0.0
    assert res.yi[0] == Y[0]
    assert not res.yi.flags.writeable
    assert not res.group.flags.writeable


# ---- properties ---------------------------------------------------------------------------------


@st.composite
def grouped(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[int]]:
    yi, vi = draw(datasets(min_k=3, max_k=20))
    labels = draw(st.lists(st.integers(0, 3), min_size=len(yi), max_size=len(yi)))
    assume(len(set(labels)) >= 2)
    return yi, vi, labels


def _quiet(**kwargs: Any) -> ketameta.SubgroupResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.KetametaWarning)
        return subgroups(**kwargs)


@given(grouped(), st.sampled_from(["EE", "DL", "REML", "PM"]), st.sampled_from(["z", "knha"]))
def test_property_each_row_of_the_batch_is_pool(
    data: tuple[np.ndarray, np.ndarray, list[int]], method: str, test: str
) -> None:
    yi, vi, labels = data
    res = _quiet(yi=yi, vi=vi, groups=labels, method=method, test=test)
    scale = float(np.max(np.abs(yi))) + float(np.sqrt(np.max(vi)))
    for level, fit in zip(res.levels, res.per_group, strict=True):
        idx = [i for i, g in enumerate(labels) if g == level]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ketameta.KetametaWarning)
            alone = ketameta.pool(yi[idx], vi[idx], method=method, test=test)
        assert fit.k == alone.k
        assert fit.estimate == pytest.approx(alone.estimate, rel=1e-9, abs=1e-12 * scale)
        assert fit.se == pytest.approx(alone.se, rel=1e-8, abs=1e-14 * scale)
        assert fit.tau2 == pytest.approx(alone.tau2, rel=1e-8, abs=1e-12 * scale**2)


@given(grouped(), st.floats(-100.0, 100.0))
def test_property_shift_moves_estimates_not_the_test(
    data: tuple[np.ndarray, np.ndarray, list[int]], shift: float
) -> None:
    # a common shift of every effect moves every subgroup mean by it and leaves the test
    # for subgroup differences (differences of the means) unchanged; EE: both tests agree
    yi, vi, labels = data
    res = _quiet(yi=yi, vi=vi, groups=labels, method="EE")
    moved = _quiet(yi=yi + shift, vi=vi, groups=labels, method="EE")
    scale = float(np.max(np.abs(yi))) + abs(shift) + 1.0
    for a, b in zip(res.per_group, moved.per_group, strict=True):
        assert b.estimate == pytest.approx(a.estimate + shift, rel=1e-9, abs=1e-10 * scale)
    spread = float(np.max(np.abs(yi - np.mean(yi)))) / float(np.sqrt(np.min(vi))) + 1.0
    # Q from effects of magnitude |y| is known to ~u |y|/√v per standardised residual,
    # so to 8 u cond (1 + √Q) with cond = |y|/√v (e.g. y ≈ -1e4 with v = 1e-8: 1e-7
    # relative, whichever way Q is computed)
    cond = scale / float(np.sqrt(np.min(vi)))
    noise = 8 * 2.0**-52 * cond * (1.0 + math.sqrt(abs(res.q_between)))
    tol = 1e-9 * spread**2 + noise
    assert moved.q_between == pytest.approx(res.q_between, rel=1e-6, abs=tol)
    common = _quiet(yi=yi, vi=vi, groups=labels, method="EE", tau2="common")
    assert common.q_between == pytest.approx(res.q_between, rel=1e-7, abs=tol)


def test_to_frame_back_transforms_the_subgroup_estimates() -> None:
    # issue #16: risk ratios per subgroup, exp of the log-scale fits (metafor:
    # predict(res, transf = exp) per subgroup); the common-tau^2 estimates likewise
    pytest.importorskip("pandas")
    data = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    sub = subgroups(es, groups="alloc", data=data)
    log_frame, frame = sub.to_frame(), sub.to_frame(transf="auto")
    for name in ("estimate", "ci_lower", "ci_upper", "pred_lower", "pred_upper"):
        np.testing.assert_allclose(frame[name], np.exp(log_frame[name]), rtol=1e-15)
    assert frame["se"].isna().all()
    assert set(frame["scale"]) == {"risk ratio"}
    assert set(log_frame["scale"]) == {"log risk ratio"}
    np.testing.assert_allclose(frame["statistic"], log_frame["statistic"], rtol=0)
    assert frame.loc["overall", "estimate"] == pytest.approx(0.4894, abs=5e-5)  # tutorial
    common = subgroups(es, groups="alloc", data=data, tau2="common")
    frame = common.to_frame(transf="exp")
    np.testing.assert_allclose(
        frame["common_ci_lower"][:3], np.exp(common.common.ci_lower), rtol=1e-15
    )


@given(
    st.one_of(
        st.lists(st.integers(min_value=-(2**60), max_value=2**60), min_size=1, max_size=30),
        st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=30),
        st.lists(st.text(max_size=3), min_size=1, max_size=30),
        st.lists(st.one_of(st.integers(-3, 3), st.booleans(), st.none()), min_size=1, max_size=8),
        st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=2)), min_size=1, max_size=8),
    )
)
def test_group_codes_of_a_plain_list_equal_the_general_path(labels: list[Any]) -> None:
    # the fast path for plain lists of exact ints / strings must give what the general
    # path gives for the same labels in an object array (levels, codes, or the same error)
    from ketameta.subgroups import group_codes

    def outcome(x: Any) -> Any:
        try:
            levels, codes = group_codes(x)
        except (TypeError, ValueError) as exc:
            return type(exc), str(exc)
        return levels, codes.tolist(), codes.dtype

    general = np.empty(len(labels), dtype=object)
    general[:] = labels
    fast = outcome(list(labels))
    assert fast == outcome(general)
    if not isinstance(fast[0], type):
        assert [type(v) for v in fast[0]] == [type(v) for v in outcome(general)[0]]
