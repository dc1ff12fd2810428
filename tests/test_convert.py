"""ketameta.convert against published examples, round trips and bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from ketameta import convert, escalc, pool

from .conftest import assert_printed


def test_conv_wald_examples(published: dict[str, Any]) -> None:
    # Source: metafor conv.wald help page (published.json conv_wald_CI_and_p_to_yi_vi), 4 dp
    case = published["conv_wald_CI_and_p_to_yi_vi"]
    c, exp = case["dataset"]["columns"], case["expected"]
    vi = []
    for orr, lo, hi, p in zip(c["or"], c["ci_lb"], c["ci_ub"], c["pval"], strict=True):
        if lo is not None:
            vi.append(float(convert.var_from_ci(lo, hi, log=True)))
        else:
            vi.append(float(convert.var_from_pvalue(orr, p, log=True)))
    assert_printed(np.log(c["or"]), exp["yi"], 4)
    assert_printed(vi, exp["vi"], 4)


def test_conv_fivenum_examples(published: dict[str, Any]) -> None:
    # Source: metafor conv.fivenum help page (Luo 2018 / Wan 2014 / Shi 2020), 6 dp
    exp = published["conv_fivenum_luo_wan_shi"]["expected"]
    r1 = convert.mean_sd_from_median(6, 20, min=2, max=14)
    r2 = convert.mean_sd_from_median(6, 20, q1=4, q3=10)
    r3 = convert.mean_sd_from_median(6, 20, q1=4, q3=10, min=2, max=14)
    assert_printed([r1.mean, r1.sd], [exp["case1_mean"], exp["case1_sd"]], 6)
    assert_printed([r2.mean, r2.sd], [exp["case2_mean"], exp["case2_sd"]], 6)
    assert_printed([r3.mean, r3.sd], [exp["case3_mean"], exp["case3_sd"]], 6)
    assert "Luo" in r3.mean_method
    assert "Shi" in r3.sd_method


def test_iqr_width_only_states_assumption() -> None:
    # With symmetric quartiles q1 = 6 - w/2, q3 = 6 + w/2 Wan's SD is unchanged, and the
    # mean is the median (by hand: Luo's eq. 11 with (q1+q3)/2 = median)
    r = convert.mean_sd_from_median(6, 20, iqr_width=6)
    full = convert.mean_sd_from_median(6, 20, q1=3, q3=9)
    assert float(r.sd) == pytest.approx(float(full.sd), rel=1e-14)
    assert float(r.mean) == 6.0 == pytest.approx(float(full.mean))
    assert "symmetric" in r.assumption


def test_se_from_ci_and_pvalue_are_consistent() -> None:
    # an estimate 0.5 with SE 0.2: CI 0.5 ± 1.959964·0.2, p = 2Φ(-2.5) (by definition)
    se = 0.2
    z = stats.norm.ppf(0.975)
    assert float(convert.se_from_ci(0.5 - z * se, 0.5 + z * se)) == pytest.approx(se, rel=1e-12)
    p = 2 * stats.norm.sf(2.5)
    assert float(convert.se_from_pvalue(0.5, p)) == pytest.approx(se, rel=1e-10)
    t = stats.t.ppf(0.975, 10)
    assert float(convert.se_from_ci(0.5 - t * se, 0.5 + t * se, df=10)) == pytest.approx(se)
    p_t = 2 * stats.t.sf(2.5, 10)
    assert float(convert.se_from_pvalue(0.5, p_t, df=10)) == pytest.approx(se, rel=1e-10)


def test_d_to_point_biserial_r_published(published: dict[str, Any]) -> None:
    # Source: metafor conv.delta help page on dat.normand1999 (published.json), 4 dp:
    # uncorrected Cohen's d (pooled SD) to point-biserial r
    case = published["normand1999_d_to_logOR_and_rpb_conversions"]
    c = case["dataset"]["columns"]
    n1, n2 = np.array(c["n1i"], float), np.array(c["n2i"], float)
    sdp = np.sqrt(
        ((n1 - 1) * np.array(c["sd1i"]) ** 2 + (n2 - 1) * np.array(c["sd2i"]) ** 2) / (n1 + n2 - 2)
    )
    d = (np.array(c["m1i"]) - np.array(c["m2i"])) / sdp
    assert_printed(convert.smd_to_r(d, n1, n2), case["expected"]["RPB_yi"], 4)


def test_d_to_log_or_logistic_by_hand() -> None:
    # logistic conversion: log OR = d·π/√3 (Hasselblad & Hedges 1995), variance ·π²/3
    lor, v = convert.smd_to_log_or(0.5, 0.04)
    assert float(lor) == pytest.approx(0.5 * np.pi / np.sqrt(3), rel=1e-14)
    assert float(v) == pytest.approx(0.04 * np.pi**2 / 3, rel=1e-14)


def test_miller1978_freeman_tukey_back_transform(published: dict[str, Any]) -> None:
    # Source: Miller (1978) Am Stat 32:138, p. 138, and metafor's test of it (4 dp)
    case = published["miller1978_freeman_tukey"]
    c, exp = case["dataset"]["columns"], case["expected"]
    es = escalc("PFT", xi=c["xi"], ni=c["ni"])
    assert_printed(2 * es.yi, exp["miller_t"], 4)
    assert_printed(4 * es.vi, exp["miller_var"], 4)
    hm = float(stats.hmean(c["ni"]))
    unweighted = float(np.mean(es.yi))
    assert_printed(2 * unweighted, exp["EE_unweighted_2x"], 4)
    assert_printed(
        convert.inv_freeman_tukey(unweighted, hm), exp["EE_unweighted_backtransformed_prop"], 4
    )
    res = pool(es, method="EE")
    assert_printed(2 * res.estimate, exp["EE_weighted_2x"], 4)
    assert_printed(
        convert.inv_freeman_tukey(res.estimate, hm), exp["EE_weighted_backtransformed_prop"], 4
    )
    second = case["method"]["second_example_inputs"]
    es2 = escalc("PFT", xi=second["xi"], ni=second["ni"])
    res2 = pool(es2, method="EE")
    hm2 = float(stats.hmean(second["ni"]))
    back = convert.inv_freeman_tukey([res2.estimate, res2.ci_lower, res2.ci_upper], hm2)
    e2 = exp["second_example_EE_backtransformed"]
    assert_printed(back, [e2["pred"], e2["ci_lb"], e2["ci_ub"]], 4)


def test_back_transforms_invert_forward_measures() -> None:
    es = escalc("PLO", xi=[3, 7], ni=[10, 20])
    np.testing.assert_allclose(convert.inv_logit(es.yi), [0.3, 0.35], rtol=1e-14)
    es = escalc("PAS", xi=[3, 7], ni=[10, 20])
    np.testing.assert_allclose(convert.inv_arcsine(es.yi), [0.3, 0.35], rtol=1e-14)
    assert float(convert.exp(np.log(2.5))) == pytest.approx(2.5)
    # PFT of 0 and of n events back-transform to exactly 0 and 1
    es = escalc("PFT", xi=[0, 10], ni=[10, 10])
    np.testing.assert_array_equal(convert.inv_freeman_tukey(es.yi, 10), [0.0, 1.0])


@given(st.floats(-0.99, 0.99), st.integers(2, 1000), st.integers(2, 1000))
def test_r_d_round_trip(r: float, n1: int, n2: int) -> None:
    d = convert.r_to_smd(r, n1, n2)
    assert float(convert.smd_to_r(d, n1, n2)) == pytest.approx(r, rel=1e-10, abs=1e-12)
    assert float(convert.z_to_r(convert.r_to_z(r))) == pytest.approx(r, rel=1e-10, abs=1e-12)


@given(st.floats(-20, 20, allow_nan=False))
def test_log_or_d_round_trip(x: float) -> None:
    assert float(convert.smd_to_log_or(convert.log_or_to_smd(x))) == pytest.approx(x, abs=1e-12)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: convert.se_from_ci(2.0, 1.0), "`upper` must be at least `lower`"),
        (lambda: convert.se_from_ci(-1.0, 2.0, log=True), "`lower` must be positive"),
        (lambda: convert.se_from_ci(1.0, 2.0, level=95), r"`level` must be in \(0, 1\)"),
        (lambda: convert.se_from_pvalue(0.5, 1.5), r"`pvalue` must be in \(0, 1\)"),
        (lambda: convert.mean_sd_from_median(6, 1, q1=4, q3=10), "`n` must be at least 2"),
        (lambda: convert.mean_sd_from_median(6, 20, q1=11, q3=10), "ordered"),
        (lambda: convert.r_to_z(1.0), r"`r` must be in \(-1, 1\)"),
        (lambda: convert.se_from_ci([1.0, np.inf], [2.0, 3.0]), "`lower` must be finite"),
    ],
)
def test_bad_input_is_named(call: Any, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()


def test_type_errors() -> None:
    with pytest.raises(TypeError, match="`lower` must be numeric"):
        convert.se_from_ci("a", 2.0)
    with pytest.raises(TypeError, match="give both `q1` and `q3`"):
        convert.mean_sd_from_median(6, 20, q1=4)
