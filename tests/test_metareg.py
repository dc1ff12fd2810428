"""Meta-regression against metafor 3.8.1 (``tests/reference/metafor_metareg.json``, written by
``validation/metafor/make_metareg_reference.R``; schema and definitions in
``tests/reference/README_metareg.md``): 62 datasets (22 real, 40 simulated) × 9 τ² estimators
× 4 tests, every field of the fit, ``anova(btt=)``, ``predict``, ``confint`` and the per-study
diagnostics, at 1e-8 relative.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ketameta
from ketameta import CollinearityWarning, metareg

REF = json.loads((Path(__file__).parent / "reference" / "metafor_metareg.json").read_text())
CASES = {c["id"]: c for c in REF["cases"]}
RTOL = 1e-8
#: models without an intercept whose columns do not span the constant: metafor computes Q_E
#: and τ̂² from the mean-centred effects (README_metareg.md, "QE and the τ² estimators"),
#: which is not the model it fits; ketameta uses the model's residuals (documented in
#: metareg's Notes). Only the equal-effects coefficient table (no τ², no Q_E) is compared.
CENTRED_BY_METAFOR = {"bcg ~ year - 1", "bcg ~ ablat - 1", "sim18 ~ x1 - 1"}


def _fit_args(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, Any, bool]:
    """The studies metafor used and its design (the intercept column left to ketameta)."""
    keep = [i for i in range(case["k_all"]) if i not in case["omitted_rows_0based"]]
    y, v = np.array(case["yi"], dtype=float)[keep], np.array(case["vi"], dtype=float)[keep]
    x = np.array(case["X"], dtype=float)
    start = 1 if case["intercept"] else 0
    names = case["X_colnames"][start:]
    mods = {name: x[:, j] for j, name in enumerate(names, start=start)}
    return y, v, mods, case["intercept"]


def _close(got: Any, expected: Any, rtol: float = RTOL, atol: float = 0.0) -> None:
    if expected is None:
        assert not np.all(np.isfinite(np.atleast_1d(np.asarray(got, dtype=float))))
        return
    np.testing.assert_allclose(
        np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=atol
    )


def _params() -> list[Any]:
    out = []
    for case in REF["cases"]:
        for fit in case["fits"]:
            if fit["status"] != "ok":
                continue
            out.append(
                pytest.param(
                    case["id"],
                    fit["method"],
                    fit["test"],
                    id=f"{case['id']}-{fit['method']}-{fit['test']}",
                )
            )
    return out


def _fitted(case_id: str, method: str, test: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    case = CASES[case_id]
    fit = next(f for f in case["fits"] if f["method"] == method and f["test"] == test)
    y, v, mods, intercept = _fit_args(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.KetametaWarning)
        res = metareg(
            y,
            v,
            mods=mods,
            intercept=intercept,
            method=method,
            test=test,
            control={"threshold": 1e-12},
        )
    return res, fit, case


@pytest.mark.parametrize(("case_id", "method", "test"), _params())
def test_metareg_matches_metafor(case_id: str, method: str, test: str) -> None:
    res, fit, case = _fitted(case_id, method, test)
    scale = float(np.max(np.abs(case["yi"])))
    if case_id in CENTRED_BY_METAFOR:
        if method != "EE":
            pytest.skip("metafor centres the effects of this no-intercept model (see module)")
        _close(res.coef, fit["b"])
        _close(res.se, fit["se"])
        return
    assert res.k == fit["k"]
    assert res.p == fit["p"]
    # τ̂² at the boundary: metafor's Fisher scoring stops 5e-16..7e-14 short of 0
    _close(res.tau2, fit["tau2"], atol=1e-10 * max(1.0, scale) ** 2)
    near_zero = fit["tau2"] < 1e-9
    # (coefficients of ill-conditioned designs and predictions near 0: metafor's own
    # arithmetic is good to ~1e-10 absolute there, README_metareg.md "Notes for the tests")
    atol_b = 1e-9 * scale
    _close(res.coef, fit["b"], atol=atol_b)
    _close(res.se, fit["se"], rtol=1e-7 if near_zero else RTOL)
    _close(res.vcov, fit["vb"], rtol=1e-7 if near_zero else RTOL, atol=1e-14 * scale**2)
    _close(res.statistic, fit["zval"], rtol=1e-7, atol=1e-9)
    _close(res.pvalue, fit["pval"], rtol=1e-7, atol=1e-12)
    _close(res.ci_lower, fit["ci_lb"], atol=atol_b)
    _close(res.ci_upper, fit["ci_ub"], atol=atol_b)
    _close(res.q, fit["QE"], rtol=1e-9)
    _close(res.q_pvalue, fit["QEp"], rtol=1e-8, atol=1e-14)
    if fit["se_tau2"] is None:
        assert math.isnan(res.tau2_se)
    else:
        _close(res.tau2_se, fit["se_tau2"], rtol=1e-7, atol=1e-9)
    _close(res.i2, fit["I2"], rtol=1e-7, atol=1e-8)
    _close(res.h2, fit["H2"], rtol=1e-7)
    null_tau2 = (
        ketameta.pool(res.yi, res.vi, method=method, control={"threshold": 1e-12}).tau2
        if res.intercept and res.p > 1 and method != "EE"
        else math.nan
    )
    if null_tau2 < 1e-10:
        # the intercept-only τ̂² is 0: R² = 0 by its definition; metafor's R² is then the
        # ratio of its Fisher scoring's rounding residues (1e-15/2e-15: 0 to 100%)
        assert res.r2 == 0.0
    elif fit["R2"] is None:
        # no intercept or no moderators; or metafor's intercept-only fit failed (EB once)
        assert math.isnan(res.r2) or method == "EB"
    else:
        _close(res.r2, fit["R2"], rtol=1e-6, atol=1e-7)
    _close(res.qm, fit["QM"], rtol=1e-7, atol=1e-10)
    _close(res.qm_pvalue, fit["QMp"], rtol=1e-7, atol=1e-12)
    assert res.qm_df == fit["QMdf"][0]
    assert [i + 1 for i in res.btt] == fit["btt"]
    assert res.names == tuple(case["X_colnames"])
    anova = fit["anova_btt"]
    test_ = res.anova([i - 1 for i in anova["btt"]])
    _close(test_.statistic, anova["QM"], rtol=1e-7, atol=1e-10)
    _close(test_.pvalue, anova["QMp"], rtol=1e-7, atol=1e-12)
    if fit.get("predict_newmods"):
        pn = fit["predict_newmods"]
        pred = res.predict(np.array(pn["newX"], dtype=float))
        _close(pred.pred, pn["pred"], atol=atol_b)
        _close(pred.se, pn["se"], rtol=1e-7)
        _close(pred.ci_lower, pn["ci_lb"], atol=atol_b)
        _close(pred.ci_upper, pn["ci_ub"], atol=atol_b)
        _close(pred.pred_lower, pn["pi_lb"], atol=atol_b)
        _close(pred.pred_upper, pn["pi_ub"], atol=atol_b)
    if fit.get("predict_fitted"):
        pf = fit["predict_fitted"]
        pred = res.predict()
        _close(pred.pred, pf["pred"], atol=1e-9 * scale)
        _close(pred.ci_lower, pf["ci_lb"], atol=1e-9 * scale)
    if fit.get("confint"):
        ci = res.tau2_ci()
        for name, key in (("tau2", "tau2"), ("i2", "I2"), ("h2", "H2")):
            got = getattr(ci, name)
            exp = fit["confint"][key]
            _close(got[1], exp["ci_lb"], rtol=1e-7, atol=1e-9)
            _close(got[2], exp["ci_ub"], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("case_id", "method"),
    [
        pytest.param(c["id"], m, id=f"{c['id']}-{m}")
        for c in REF["cases"]
        for m in c["per_method"]
        if c["id"] not in CENTRED_BY_METAFOR
    ],
)
def test_diagnostics_match_metafor(case_id: str, method: str) -> None:
    res, _, case = _fitted(case_id, method, "z")
    per = case["per_method"][method]
    scale = float(np.max(np.abs(case["yi"])))
    _close(res.fitted, per["fitted"], atol=1e-9 * scale)
    _close(res.residuals, per["residuals"], atol=1e-9 * scale)
    _close(res.rstandard(), per["rstandard_z"], rtol=1e-7, atol=1e-7)
    _close(res.hatvalues(), per["hatvalues"], rtol=1e-7, atol=1e-10)
    _close(res.weights, per["weights"], rtol=1e-7, atol=1e-10)
    stats = res.fit_statistics()
    for kind in ("ML", "REML"):
        for key in ("ll", "dev", "AIC", "BIC", "AICc"):
            expected = per["fit_stats"][kind][key]
            if expected is None:
                continue
            _close(stats[kind][key], expected, rtol=1e-8, atol=1e-8)


def test_redundant_moderators_are_dropped_with_a_named_warning() -> None:
    # metafor: "Redundant predictors dropped from the model." (sim14: x12 = x1 - 2 x2)
    case = CASES["sim14 ~ x1 + x2 + x12"]
    m = case["moderators"]
    mods = {"x1": m["x1"], "x2": m["x2"], "x12": m["x12"]}
    with pytest.warns(CollinearityWarning, match=r"\['x12'\]"):
        res = metareg(case["yi"], case["vi"], mods=mods)
    assert res.dropped == ("x12",)
    assert res.names == ("intrcpt", "x1", "x2")
    fit = next(f for f in case["fits"] if f["method"] == "REML" and f["test"] == "z")
    _close(res.coef, fit["b"])


def test_missing_moderators_are_omitted_and_named() -> None:
    case = CASES["bangertdrowns2004 ~ length"]
    length = case["moderators"]["length"]
    with pytest.warns(
        ketameta.OmittedStudiesWarning,
        match=r"Study 34 \(index 33\), Study 35 \(index 34\) have a missing",
    ):
        res = metareg(case["yi"], case["vi"], mods={"length": length})
    assert res.omitted == (33, 34)
    fit = next(f for f in case["fits"] if f["method"] == "REML" and f["test"] == "z")
    _close(res.coef, fit["b"])


def test_example_berkey1995() -> None:
    # Berkey et al. (1995, p. 408), EB, moderator absolute latitude centred at 33.46:
    # b = (-0.6303, -0.0268), se = (0.1591, 0.0110), tau^2 = 0.157 (README_metareg.md)
    case = CASES["berkey1995 ~ I(ablat - 33.46)"]
    y, v, mods, _ = _fit_args(case)
    res = metareg(y, v, mods=mods, method="EB")
    assert [round(b, 4) for b in res.coef] == [-0.6303, -0.0268]
    assert [round(s, 4) for s in res.se] == [0.1591, 0.0110]
    assert round(res.tau2, 3) == 0.157


def test_example_raudenbush2009() -> None:
    # Raudenbush (2009, Table 16.2), REML, weeks of prior contact (capped at 3, centred):
    # tau^2 = 0, b = (0.407, -0.157), Q_E = 16.57, z = (4.68, -4.39)
    case = CASES["raudenbush2009 ~ weeks.c"]
    y, v, mods, _ = _fit_args(case)
    res = metareg(y, v, mods=mods, method="REML")
    assert res.tau2 < 1e-10
    assert [round(b, 3) for b in res.coef] == [0.407, -0.157]
    assert round(res.q, 2) == 16.57
    assert [round(z, 2) for z in res.statistic] == [4.68, -4.39]


def test_intercept_only_metareg_is_not_allowed_without_moderators_but_equals_pool() -> None:
    # a moderator that is constant is dropped (metafor), leaving the intercept-only model,
    # which is pool's
    es = ketameta.escalc(
        "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    with pytest.warns(CollinearityWarning):
        res = metareg(es, mods=np.ones(13) * 3.0)
    pooled = ketameta.pool(es)
    assert res.coef[0] == pytest.approx(pooled.estimate, rel=1e-12)
    assert res.tau2 == pytest.approx(pooled.tau2, rel=1e-12)
    assert math.isnan(res.r2)


def test_formula_and_columns_give_metafor_names() -> None:
    pytest.importorskip("formulaic")
    pd = pytest.importorskip("pandas")
    dat = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    frame = pd.DataFrame(dat)
    res = metareg(es, mods="~ ablat + alloc", data=frame)
    case = CASES["bcg ~ ablat + alloc"]
    assert res.names == tuple(case["X_colnames"])
    fit = next(f for f in case["fits"] if f["method"] == "REML" and f["test"] == "z")
    _close(res.coef, fit["b"])
    by_name = metareg(
        "yi",
        "vi",
        mods=["ablat", "alloc"],
        data={**{c: frame[c] for c in frame}, "yi": es.yi, "vi": es.vi},
    )
    _close(by_name.coef, fit["b"])
    pred = res.predict({"ablat": [20.0, 50.0], "alloc": ["random", "random"]})
    assert pred.pred.shape == (2,)


def test_too_many_coefficients_and_bad_btt_are_named() -> None:
    with pytest.raises(ValueError, match="coefficients but only 3 studies"):
        metareg([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], mods=np.array([[1.0, 2.0], [2, 1], [3, 5]]))
    res = metareg([0.1, 0.2, 0.35, 0.5], [0.01, 0.02, 0.03, 0.02], mods=[1.0, 2.0, 3.0, 5.0])
    with pytest.raises(ValueError, match="no coefficient 'x'"):
        res.anova("x")
    with pytest.raises(ValueError, match="0-based"):
        res.anova(2)


def test_predict_summary_after_a_back_transformation_has_no_se_column() -> None:
    # metafor 3.8.1: print(predict(rma(yi, vi, mods = ~ ablat, data = dat.bcg),
    # newmods = c(10, 55), transf = exp), digits = 3) prints the columns
    # pred ci.lb ci.ub pi.lb pi.ub (no se) with rows 0.961 0.667 1.386 0.500 1.848 and
    # 0.259 0.175 0.385 0.133 0.507
    dat = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    res = metareg(es, mods=dat["ablat"])
    lines = res.predict([10.0, 55.0], transf="exp").summary().split("\n")
    assert lines[0].split() == ["pred", "ci.lb", "ci.ub", "pi.lb", "pi.ub"]
    rows = [[float(x) for x in line.split()] for line in lines[1:]]  # printed to 4 decimals
    assert rows[0] == pytest.approx([0.961, 0.667, 1.386, 0.500, 1.848], abs=5.5e-4)
    assert rows[1] == pytest.approx([0.259, 0.175, 0.385, 0.133, 0.507], abs=5.5e-4)
    assert res.predict([10.0]).summary().split("\n")[0].split()[1] == "se"


def test_coefficient_table_widens_to_its_values() -> None:
    # metafor 3.8-1: rma(yi * 1000, vi * 1e6, mods = ~ ablat, data = escalc("RR", ...
    # dat.bcg)) prints its columns as wide as their values, two spaces before each:
    #          estimate        se     zval    pval      ci.lb     ci.ub
    # intrcpt  251.4682  249.0954   1.0095  0.3127  -236.7498  739.6862
    # ablat    -29.1017    7.1953  -4.0445  <.0001   -43.2043  -14.9991
    data = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    text = metareg(es.yi * 1000, es.vi * 1e6, mods={"ablat": data["ablat"]}).summary()
    table = text.split("Model Results:\n\n")[1].split("\n")
    assert table[1] == "intrcpt   251.4682  249.0954   1.0095   0.3127  -236.7498  739.6862"
    assert table[2] == "ablat     -29.1017    7.1953  -4.0445   <.0001   -43.2043  -14.9991"
    # every header right-aligned over its values
    for head in ("estimate", "se", "zval", "pval", "ci.lb", "ci.ub"):
        end = table[0].index(head) + len(head)
        assert table[1][end - 1] != " "
        assert table[1][end : end + 1] in ("", " ")


def test_the_redundancy_rule_holds_when_the_fit_checks_it() -> None:
    """A design with an intercept and no redundant column is checked by the engine's own
    orthogonalisation (one Gram-Schmidt per call): metafor's rule (a column whose part
    orthogonal to the earlier ones is below 1e-7 of its norm is dropped) must hold there
    too, and the fit equals the general path's (here reached through a column of ones
    given with ``intercept=False``, which the model matrix makes the intercept)."""
    from ketameta._engine.design import RANK_TOLERANCE
    from ketameta._modelmatrix import REDUNDANCY_TOL

    assert RANK_TOLERANCE == REDUNDANCY_TOL == 1e-7  # (the one rule, in both places)
    rng = np.random.default_rng(11)
    k = 20
    a, b = rng.normal(size=k), rng.normal(size=k)
    noise = rng.normal(size=k)
    basis = np.column_stack([np.ones(k), a, b])
    noise -= basis @ np.linalg.lstsq(basis, noise)[0]
    noise /= np.linalg.norm(noise)
    target = 2 * a - b + 1.0
    v = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.2 * a, np.sqrt(v + 0.05))
    for rel, dropped in ((0.5e-7, True), (2e-7, False)):
        c = target + rel * np.linalg.norm(target) * noise
        mods = np.column_stack([a, b, c])
        if dropped:
            with pytest.warns(CollinearityWarning, match=r"\['\.3'\]"):
                res = metareg(y, v, mods=mods)
            assert res.names == ("intrcpt", ".1", ".2")
        else:
            res = metareg(y, v, mods=mods)
            assert res.names == ("intrcpt", ".1", ".2", ".3")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CollinearityWarning)  # (checked above)
            general = metareg(y, v, mods=np.column_stack([np.ones(k), mods]), intercept=False)
        for field in ("coef", "se", "vcov", "pvalue", "X", "weights"):
            np.testing.assert_array_equal(getattr(res, field), getattr(general, field))
        assert (res.tau2, res.q, res.qm, res.iterations) == (
            general.tau2,
            general.q,
            general.qm,
            general.iterations,
        )
