"""Sensitivity analyses: leave_one_out, cumulative, influence."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import cumulative, influence, leave_one_out, pool

from .conftest import as_float
from .test_bias import ATOL, DATASETS, RTOL, RTOL_INTERNAL_REML, _cases, _data, _id


def _check(actual: Any, expected: Any, field: str, rtol: float) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float),
        as_float(expected),
        rtol=rtol,
        atol=ATOL.get(field, 0.0),
        err_msg=field,
    )


@pytest.mark.parametrize("case", _cases("leave1out"), ids=_id)
def test_leave_one_out_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 leave1out() (its refits use metafor's default threshold 1e-5)
    y, v, _ = _data(case)
    res = leave_one_out(y, v, method=case["method"], test=case["test"])
    rtol = RTOL_INTERNAL_REML if case["method"] == "REML" else RTOL
    for field, expected in case["value"].items():
        if field == "statistic" and not expected:
            continue  # metafor names it tval for knha; its p-value and CI are checked
        _check(getattr(res, field), expected, field, rtol)


@pytest.mark.parametrize("case", _cases("cumul"), ids=_id)
def test_cumulative_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 cumul(fit, order=order(-yi)) -- `order` is a sort key there
    y, v, _ = _data(case)
    res = cumulative(
        y, v, order=np.array(case["order"], dtype=float), method=case["method"], test=case["test"]
    )
    rtol = RTOL_INTERNAL_REML if case["method"] == "REML" else RTOL
    for field, expected in case["value"].items():
        _check(getattr(res, field), expected, field, rtol)


@pytest.mark.parametrize("case", _cases("influence"), ids=_id)
def test_influence_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 influence(rma(yi, vi, method=...)) (refits at threshold 1e-5)
    y, v, _ = _data(case)
    res = influence(pool(y, v, method=case["method"]))
    rtol = RTOL_INTERNAL_REML if case["method"] == "REML" else RTOL
    for field, expected in case["value"].items():
        if field == "influential":
            np.testing.assert_array_equal(res.influential, expected)
        else:
            _check(getattr(res, field), expected, field, rtol)


def test_bcg_shared_reference(shared_reference: dict[str, Any]) -> None:
    # Oracle: ../shared/refvals leave1out() and influence() of rma(yi, vi) on dat.bcg
    rr = shared_reference["bcg-escalc-RR"]["value"]
    l1o = leave_one_out(rr["yi"], rr["vi"])
    for field, expected in shared_reference["bcg-leave1out-REML"]["value"].items():
        _check(getattr(l1o, field), expected, field, RTOL_INTERNAL_REML)
    inf = influence(pool(rr["yi"], rr["vi"]))
    names = {"cook.d": "cook_d", "cov.r": "cov_r", "tau2.del": "tau2_del", "QE.del": "q_del"}
    for field, expected in shared_reference["bcg-influence-REML"]["value"].items():
        _check(getattr(inf, names.get(field, field)), expected, field, RTOL_INTERNAL_REML)


def test_cumulative_last_row_equals_pool_and_first_row_is_one_study() -> None:
    d = DATASETS["bcg"]
    y, v = np.array(d["yi"]), np.array(d["vi"])
    for method in ("REML", "DL", "PM"):
        for test in ("z", "knha"):
            cm = cumulative(y, v, method=method, test=test)
            full = pool(y, v, method=method, test=test)
            assert cm.estimate[-1] == pytest.approx(full.estimate, rel=1e-12)
            assert cm.ci_lower[-1] == pytest.approx(full.ci_lower, rel=1e-12)
            assert cm.tau2[-1] == pytest.approx(full.tau2, rel=1e-12, abs=1e-15)
            assert cm.estimate[0] == y[0]
            assert cm.tau2[0] == 0.0


def test_results_serialise_and_frame() -> None:
    d = DATASETS["bcg"]
    y, v = np.array(d["yi"]), np.array(d["vi"])
    pd = pytest.importorskip("pandas")
    for res in (leave_one_out(y, v), cumulative(y, v), influence(pool(y, v))):
        json.dumps(res.to_dict())
        frame = res.to_frame()
        assert isinstance(frame, pd.DataFrame)
        assert len(frame) == 13
        assert "study" in res.summary()


def test_study_indices_follow_the_input_when_studies_are_omitted() -> None:
    y = [0.1, np.nan, 0.4, 0.3, 0.2]
    v = [0.01, 0.02, 0.03, 0.02, 0.04]
    with pytest.warns(ketameta.OmittedStudiesWarning):
        res = leave_one_out(y, v)
    np.testing.assert_array_equal(res.study, [0, 2, 3, 4])
    with pytest.warns(ketameta.OmittedStudiesWarning):
        cm = cumulative(y, v, order=[5, 4, 3, 2, 1])
    np.testing.assert_array_equal(cm.study, [4, 3, 2, 0])


def test_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 studies"):
        leave_one_out([0.1], [0.01])
    with pytest.raises(ValueError, match="`order` has 2 studies but `yi` has 3"):
        cumulative([0.1, 0.2, 0.3], [0.01, 0.01, 0.01], order=[1, 2])
    with pytest.raises(TypeError, match="must be a PoolResult"):
        influence([0.1, 0.2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 3 studies"):
        influence(pool([0.1, 0.2], [0.01, 0.02]))


@given(
    st.lists(st.floats(-2, 2), min_size=3, max_size=10),
    st.lists(st.floats(0.01, 1), min_size=10, max_size=10),
    st.integers(0, 9),
)
def test_duplicated_study_leaves_other_rows_unchanged(
    ys: list[float], vs: list[float], which: int
) -> None:
    # appending a copy of study j: the row omitting the copy equals the full original fit,
    # and the rows of the original studies are the leave-one-out fits of the original data
    # with study j counted twice (checked against pool directly)
    k = len(ys)
    y, v = np.array(ys), np.array(vs[:k])
    j = which % k
    y2, v2 = np.append(y, y[j]), np.append(v, v[j])
    res = leave_one_out(y2, v2, method="DL")
    full = pool(y, v, method="DL")
    assert res.estimate[-1] == pytest.approx(full.estimate, rel=1e-9, abs=1e-12)
    assert res.tau2[-1] == pytest.approx(full.tau2, rel=1e-9, abs=1e-12)
    i = (j + 1) % k
    direct = pool(np.delete(y2, i), np.delete(v2, i), method="DL")
    assert res.estimate[i] == pytest.approx(direct.estimate, rel=1e-9, abs=1e-12)


def test_cumulative_ignores_the_missing_key_of_an_omitted_study() -> None:
    # metafor 3.8-1: yi = (0.1, NA, 0.3, 0.5, 0.2), vi = (0.01, 0.02, 0.03, 0.02, 0.01),
    # cumul(rma(yi, vi, method="DL"), order = c(3, NA, 1, 2, 4)) drops study 2 and prints
    # the estimates 0.3000, 0.4200, 0.2844, 0.2503 (studies 3, 4, 1, 5).
    yi = [0.1, np.nan, 0.3, 0.5, 0.2]
    vi = [0.01, 0.02, 0.03, 0.02, 0.01]
    with pytest.warns(ketameta.OmittedStudiesWarning, match="1"):
        cm = cumulative(yi, vi, order=[3, np.nan, 1, 2, 4], method="DL")
    np.testing.assert_array_equal(cm.study, [2, 3, 0, 4])
    np.testing.assert_allclose(cm.estimate, [0.3, 0.42, 0.2844, 0.2503], atol=5e-5)
    # a missing key of a study that is pooled is named (metafor silently puts it last)
    with pytest.raises(ValueError, match=r"`order` must not be missing .* study 2"):
        cumulative([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], order=[1, 2, np.nan])


def test_leave_one_out_frame_back_transformed_with_labels() -> None:
    # issue #16: rows labelled by the studies' labels (not 0.0, 1.0, ...), estimates on
    # the risk-ratio scale on request
    pytest.importorskip("pandas")
    data = ketameta.datasets.bcg()
    es = ketameta.escalc(
        "RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg", labels="author"
    )
    loo = ketameta.leave_one_out(es)
    frame = loo.to_frame(transf="auto")
    assert frame["label"].tolist() == list(data["author"])
    assert frame["study"].tolist() == list(range(13))
    np.testing.assert_allclose(frame["estimate"], np.exp(loo.estimate), rtol=1e-15)
    np.testing.assert_allclose(frame["ci_upper"], np.exp(loo.ci_upper), rtol=1e-15)
    assert frame["se"].isna().all()
    assert set(frame["scale"]) == {"risk ratio"}
    assert set(loo.to_frame()["scale"]) == {"log risk ratio"}
    pft = ketameta.escalc("PFT", xi=[3, 10, 25, 7], ni=[20, 40, 60, 30])
    with pytest.raises(ValueError, match="needs sample sizes"):
        ketameta.leave_one_out(pft).to_frame(transf="auto")


def test_influence_of_a_meta_regression_is_refused_with_the_fitted_model_wording() -> None:
    # the rule of _fitted.py: "`<arg>`: <function> needs an intercept-only model, got a
    # meta-regression (MetaRegResult)"
    import re

    yi = [0.1, 0.3, -0.2, 0.5, 0.0]
    vi = [0.04, 0.05, 0.03, 0.06, 0.05]
    reg = ketameta.metareg(yi, vi, mods=[1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(TypeError, match=re.escape(
        "`result`: influence needs an intercept-only model, got a meta-regression (MetaRegResult)"
    )):  # fmt: skip
        ketameta.influence(reg)
    with pytest.raises(TypeError, match=re.escape("a PoolResult from ketameta.pool, got list")):
        ketameta.influence(yi)
