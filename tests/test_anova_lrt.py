"""anova(full, reduced) of pool / metareg fits: the likelihood-ratio test against metafor's
anova.rma (tests/reference/metafor_anova.json, validation/metafor/make_anova_reference.R)."""

from __future__ import annotations

import json
import math
import pathlib
import pickle

import numpy as np
import pytest

import ketameta
from ketameta import LikelihoodRatioTest

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "metafor_anova.json").read_text())
DATA = {"ablat": np.array(REF["ablat"]), "year": np.array(REF["year"])}
RTOL = 1e-8


def _fit(spec: dict) -> ketameta.PoolResult | ketameta.MetaRegResult:
    kw: dict = {"method": spec["method"]}
    if spec["tau2"] is not None:
        kw["tau2"] = spec["tau2"]
    if spec["mods"] == "~ 1":
        return ketameta.pool(REF["yi"], REF["vi"], **kw)
    return ketameta.metareg(REF["yi"], REF["vi"], mods=spec["mods"], data=DATA, **kw)


def _close(a: float, b: float | None) -> bool:
    b = 0.0 if b is None else b
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-12)


@pytest.mark.parametrize("case", REF["cases"], ids=[c["name"] for c in REF["cases"]])
@pytest.mark.parametrize("order", ["full_first", "reduced_first"])
def test_anova_matches_metafor(case: dict, order: str) -> None:
    full, reduced = _fit(case["full"]), _fit(case["reduced"])
    out = full.anova(reduced) if order == "full_first" else reduced.anova(full)
    v = case["value"]
    assert isinstance(out, LikelihoodRatioTest)
    assert out.df == (v["df_full"], v["df_reduced"])
    for i, side in enumerate(("fit_full", "fit_reduced")):
        assert _close(out.loglik[i], v[side]["ll"])
        assert _close(out.aic[i], v[side]["AIC"])
        assert _close(out.bic[i], v[side]["BIC"])
        assert _close(out.aicc[i], v[side]["AICc"])
    assert _close(out.statistic, v["LRT"])
    assert _close(out.pvalue, v["pval"])
    assert _close(out.qe[0], v["QE_full"])
    assert _close(out.qe[1], v["QE_reduced"])
    if case["full"]["method"] == "EE" and case["reduced"]["method"] == "EE":
        assert all(math.isnan(t) for t in out.tau2)  # metafor suppresses tau^2 for EE fits
    else:
        assert _close(out.tau2[0], v["tau2_full"])
        assert _close(out.tau2[1], v["tau2_reduced"])
    assert _close(out.r2, v["R2"])


def test_fit_statistics_of_a_fixed_tau2_count_no_tau2_parameter() -> None:
    # metafor's fitstats of rma(yi, vi, mods=~ablat, tau2=0) (REML): parms = p = 2
    case = next(c for c in REF["cases"] if c["name"] == "REML ablat vs tau2=0")
    fixed = _fit(case["reduced"])
    fs = fixed.fit_statistics()["REML"]
    assert _close(fs["AIC"], case["value"]["fit_reduced"]["AIC"])
    assert _close(fs["BIC"], case["value"]["fit_reduced"]["BIC"])


def test_summary_prints_metafors_table() -> None:
    case = REF["cases"][0]
    out = _fit(case["full"]).anova(_fit(case["reduced"]))
    lines = out.summary().splitlines()
    assert lines[0].split() == [
        "df", "AIC", "BIC", "AICc", "logLik", "LRT", "pval", "QE", "tau^2", "R^2"
    ]  # fmt: skip
    # metafor prints (digits 4): Reduced 3 21.3713 23.0662 24.0380 -7.6857 0.0791 0.7785
    # 30.7331 0.0344 and R^2 of the tightly converged fits
    assert lines[2].split()[:10] == [
        "Reduced", "3", "21.3713", "23.0662", "24.0380", "-7.6857", "0.0791", "0.7785",
        "30.7331", "0.0344",
    ]  # fmt: skip
    assert lines[2].split()[10] == f"{case['value']['R2']:.4f}%"
    assert lines[1].split()[:2] == ["Full", "4"]


def test_rules_are_metafors() -> None:
    ml = _fit({"mods": "~ ablat", "method": "ML", "tau2": None})
    reml = _fit({"mods": "~ 1", "method": "REML", "tau2": None})
    with pytest.raises(ValueError, match="different methods"):
        ml.anova(reml)
    year = _fit({"mods": "~ year", "method": "ML", "tau2": None})
    with pytest.raises(ValueError, match="same number of parameters"):
        ml.anova(year)
    reml_ablat = _fit({"mods": "~ ablat", "method": "REML", "tau2": None})
    with pytest.raises(ValueError, match="method='ML'"):
        reml_ablat.anova(reml)
    dl = ketameta.pool(REF["yi"], REF["vi"], method="DL")
    with pytest.raises(ValueError, match="method='ML'"):
        ml.anova(dl)
    other = ketameta.pool(REF["yi"][:-1], REF["vi"][:-1], method="ML")
    with pytest.raises(ValueError, match="same effects"):
        ml.anova(other)
    with pytest.raises(TypeError, match="not both"):
        ml.anova(reml, btt=1)
    with pytest.raises(TypeError, match="pool or metareg"):
        reml.anova("x")


def test_btt_still_given_positionally_is_the_wald_test() -> None:
    ml = _fit({"mods": "~ ablat", "method": "ML", "tau2": None})
    assert ml.anova(1) == ml.anova(btt=1) == ml.anova(btt="ablat")


def test_result_is_a_value() -> None:
    case = REF["cases"][1]
    out = _fit(case["full"]).anova(_fit(case["reduced"]))
    assert pickle.loads(pickle.dumps(out)) == out
    d = out.to_dict()
    assert d["r2"] == out.r2
    assert d["tau2"] == list(out.tau2)
    json.dumps(d)
