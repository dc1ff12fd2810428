"""Back-transformed results (issue #16): summary(transf="auto"), to_frame(transf=),
back_transform() and studies() against metafor 3.8.1's predict(res, transf=) and
weights(res) (tests/reference/metafor_transf.json, written by
validation/metafor/make_transf_reference.R)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import ketameta

from .conftest import load_reference

REF = {case["id"]: case for case in load_reference("metafor_transf.json")["cases"]}
XI, NI = [3, 10, 25, 7, 12], [20, 40, 60, 30, 50]
RI, NR = [0.2, 0.5, -0.1, 0.3], [50, 80, 40, 60]


def _effect_sizes(case_id: str) -> ketameta.EffectSizes:
    if case_id == "bcg RR":
        data = ketameta.datasets.bcg()
        return ketameta.escalc(
            "RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg", labels="author"
        )
    if case_id == "ZCOR":
        return ketameta.escalc("ZCOR", ri=RI, ni=NR)
    return ketameta.escalc(case_id, xi=XI, ni=NI)


@pytest.mark.parametrize("case_id", sorted(REF))
def test_back_transform_is_metafor_predict_transf(case_id: str) -> None:
    ref = REF[case_id]
    es = _effect_sizes(case_id)
    np.testing.assert_allclose(es.yi, ref["yi"], rtol=1e-12)
    res = ketameta.pool(es, method="REML")
    assert res.estimate == pytest.approx(ref["estimate"], rel=1e-8)
    back = res.back_transform("auto")
    expected = {
        "estimate": ref["pred"],
        "ci_lower": ref["ci_lb_t"],
        "ci_upper": ref["ci_ub_t"],
        "pred_lower": ref["pi_lb_t"],
        "pred_upper": ref["pi_ub_t"],
    }
    for name, value in expected.items():
        assert back[name] == pytest.approx(value, rel=1e-8, abs=1e-12), name
    # the one-row frame: the same numbers, the SE dropped (it is on the analysis scale)
    frame = res.to_frame(transf="auto")
    for name, value in expected.items():
        assert float(frame[name].iloc[0]) == pytest.approx(value, rel=1e-8, abs=1e-12), name
    assert math.isnan(float(frame["se"].iloc[0]))
    assert frame["scale"].iloc[0] == back["scale"]
    # the printed summary: metafor's four decimals of each back-transformed number
    text = res.summary(transf="auto")
    tail = text.split("(back-transformed:")[1]
    for value in expected.values():
        assert f"{value:.4f}" in tail
    # no back-transformation asked: the analysis scale, the SE kept
    plain = res.to_frame()
    assert float(plain["estimate"].iloc[0]) == pytest.approx(ref["estimate"], rel=1e-8)
    assert "back-transformed" not in res.summary(transf=None)


def test_equal_effects_summary_has_no_prediction_interval() -> None:
    # metafor 3.8-1, rma(yi, vi, data = escalc("RR", ... dat.bcg), method = "EE"): print(res)
    # has no prediction interval, and predict(res, transf = exp) prints only
    #    pred  ci.lb  ci.ub
    #  0.6503 0.6007 0.7040
    res = ketameta.pool(_effect_sizes("bcg RR"), method="EE")
    text = res.summary()
    assert "prediction interval" not in text
    assert "pi.lb" not in text
    assert text.endswith("estimate    ci.lb    ci.ub\n   0.6503   0.6007   0.7040")
    # metafor: " -0.4303  0.0405  -10.6247  <.0001  -0.5097  -0.3509": two spaces before each
    assert "  -0.4303   0.0405  -10.6247   <.0001  -0.5097  -0.3509" in text
    # a random-effects model keeps both
    assert "pi.lb" in ketameta.pool(_effect_sizes("bcg RR")).summary()
    assert "95% prediction interval" in ketameta.pool(_effect_sizes("bcg RR")).summary()


@pytest.mark.parametrize("case_id", sorted(REF))
def test_studies_table_weights_and_study_intervals(case_id: str) -> None:
    pytest.importorskip("pandas")
    ref = REF[case_id]
    es = _effect_sizes(case_id)
    res = ketameta.pool(es, method="REML")
    table = res.studies(transf="auto")
    k = len(ref["yi"])
    assert len(table) == k
    np.testing.assert_allclose(table["weight"], ref["weights"], rtol=1e-8)
    np.testing.assert_allclose(table["yi"], ref["yi"], rtol=1e-12)
    # each study's Wald interval on the analysis scale, then back-transformed
    z = 1.959963984540054
    y, se = np.asarray(ref["yi"]), np.sqrt(ref["vi"])
    lo, hi = y - z * se, y + z * se
    if case_id == "bcg RR":
        f = np.exp
        assert table["label"].tolist() == list(ketameta.datasets.bcg()["author"])
    elif case_id == "PLO":
        f = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    elif case_id == "PAS":
        f = lambda x: np.sin(np.clip(x, 0, np.pi / 2)) ** 2  # noqa: E731
    elif case_id == "ZCOR":
        f = np.tanh
    else:  # PFT: Miller's (1978) inverse of t = 2y (the sum of the two arcsines), each
        # study with its own n
        n = np.asarray(NI, dtype=float)

        def f(y2: np.ndarray) -> np.ndarray:
            t = 2 * y2
            s = np.sin(t)
            inner = np.clip(s + (s - 1 / s) / n, -1, 1)
            return 0.5 * (1 - np.sign(np.cos(t)) * np.sqrt(1 - inner**2))

    np.testing.assert_allclose(table["estimate"], f(y), rtol=1e-10)
    if case_id in ("PLO", "PFT", "PAS"):  # the observed proportions themselves
        np.testing.assert_allclose(table["estimate"], np.divide(XI, NI), rtol=1e-12)
    np.testing.assert_allclose(table["ci_lower"], f(lo), rtol=1e-10)
    np.testing.assert_allclose(table["ci_upper"], f(hi), rtol=1e-10)
    assert (table["note"] == "").all()


def test_studies_keep_the_rows_of_the_input_with_the_reason_of_omission() -> None:
    # issue #16: 13 rows for 13 input rows after an omission (weights had 12 entries)
    pytest.importorskip("pandas")
    data = ketameta.datasets.bcg()
    tpos = np.asarray(data["tpos"], dtype=float)
    tpos[2] = np.nan
    es = ketameta.escalc(
        "RR", ai=tpos, bi=data["tneg"], ci=data["cpos"], di=data["cneg"], labels=data["author"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        res = ketameta.pool(es)
    table = res.studies(transf="auto")
    assert len(table) == 13
    assert table["label"].tolist() == list(data["author"])
    assert table["note"].iloc[2].startswith("omitted: ")
    assert math.isnan(table["weight"].iloc[2])
    np.testing.assert_allclose(table["weight"].drop(index=2), res.weights, rtol=0)
    assert table["ai"].isna().iloc[2]
    assert "Omitted studies (missing yi or vi): Rosenthal et al" in res.summary()
