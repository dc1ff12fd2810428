"""Small-study effects: egger_test, begg_test, trim_and_fill, fail_safe_n."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import begg_test, egger_test, fail_safe_n, trim_and_fill

from .conftest import as_float, load_reference

REFERENCE = load_reference("metafor_bias.json")
DATASETS = REFERENCE["datasets"]

# metafor 3.8-1 was run with threshold 1e-13 for the fits the script makes itself; the fits
# metafor makes internally (trimfill's refits, leave1out, cumul) use its default convergence
# threshold 1e-5, so REML results there are accurate to ~1e-5 only. τ² and I² at the
# boundary are ~1e-14 in metafor and exactly 0 here.
RTOL = 1e-8
RTOL_INTERNAL_REML = 5e-5
ATOL = {"tau2": 1e-8, "tau2_del": 1e-8, "i2": 1e-6, "h2": 1e-8}


def _cases(fn: str) -> list[dict[str, Any]]:
    return [c for c in REFERENCE["cases"] if c["fn"] == fn]


def _id(case: dict[str, Any]) -> str:
    return f"{case['dataset']}: {case['call']}"


def _data(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = DATASETS[case["dataset"]]
    return np.array(d["yi"]), np.array(d["vi"]), np.array(d["ni"], dtype=float)


def _close(actual: Any, expected: Any, field: str, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float),
        as_float(expected),
        rtol=rtol,
        atol=ATOL.get(field, 0.0),
        err_msg=field,
    )


@pytest.mark.filterwarnings("ignore::ketameta.SmallSampleWarning")
@pytest.mark.parametrize("case", _cases("regtest"), ids=_id)
def test_egger_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 regtest() (validation/metafor/make_bias_reference.R)
    y, v, ni = _data(case)
    res = egger_test(
        y,
        v,
        ni=ni,
        model=case["model"],
        predictor=case["predictor"],
        method=case["method"],
        test=case["test"] if case["model"] == "rma" else "z",
    )
    exp = case["value"]
    fields = {
        "statistic": res.statistic,
        "pvalue": res.pvalue,
        "limit_estimate": res.limit_estimate,
        "limit_ci_lower": res.limit_ci_lower,
        "limit_ci_upper": res.limit_ci_upper,
    }
    if case["model"] == "lm":
        fields |= {"intercept": res.intercept, "intercept_se": res.se, "df": res.df}
    else:
        fields |= {"slope": res.intercept, "slope_se": res.se, "tau2": res.tau2}
    for field, actual in fields.items():
        _close(actual, exp[field], field)


def test_egger_bcg_and_magnesium_shared_reference(shared_reference: dict[str, Any]) -> None:
    # Oracle: ../shared/refvals (metafor regtest on dat.bcg and dat.egger2001)
    rr = shared_reference["bcg-escalc-RR"]["value"]
    lm = egger_test(rr["yi"], rr["vi"])
    ref = shared_reference["bcg-regtest-lm"]["value"]
    _close(
        [lm.statistic, lm.pvalue, lm.df, lm.limit_estimate, lm.intercept],
        [
            ref["statistic"],
            ref["pvalue"],
            ref["df"],
            ref["limit_estimate"],
            ref["egger_intercept"],
        ],
        "regtest lm",
    )
    rma = egger_test(rr["yi"], rr["vi"], model="rma")
    ref = shared_reference["bcg-regtest-rma"]["value"]
    _close(
        [rma.statistic, rma.pvalue, rma.limit_estimate],
        [ref["statistic"], ref["pvalue"], ref["limit_estimate"]],
        "regtest rma",
    )
    mg = shared_reference["egger2001-escalc-OR"]["value"]
    res = egger_test(mg["yi"], mg["vi"])
    ref = shared_reference["egger2001-regtest-lm"]["value"]
    _close(
        [res.statistic, res.pvalue, res.df, res.intercept],
        [ref["statistic"], ref["pvalue"], ref["df"], ref["egger_intercept"]],
        "magnesium",
    )


def test_egger_is_the_snd_on_precision_regression() -> None:
    # Egger et al. (1997): regress y/se on 1/se; the intercept equals our asymmetry
    # coefficient and its OLS t statistic our statistic (checked by hand with lstsq)
    d = DATASETS["magnesium"]
    y, v = np.array(d["yi"]), np.array(d["vi"])
    se = np.sqrt(v)
    x = np.column_stack([np.ones_like(y), 1 / se])
    coef, rss, *_ = np.linalg.lstsq(x, y / se, rcond=None)
    s2 = rss[0] / (len(y) - 2)
    se_int = np.sqrt(s2 * np.linalg.inv(x.T @ x)[0, 0])
    res = egger_test(y, v)
    assert res.intercept == pytest.approx(coef[0], rel=1e-10)
    assert res.statistic == pytest.approx(coef[0] / se_int, rel=1e-10)
    assert res.limit_estimate == pytest.approx(coef[1], rel=1e-10)


@pytest.mark.parametrize("case", _cases("ranktest"), ids=_id)
def test_begg_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 ranktest()
    y, v, _ = _data(case)
    res = begg_test(y, v)
    _close([res.tau, res.pvalue], [case["value"]["tau"], case["value"]["pvalue"]], "ranktest")


RANKTEST = load_reference("metafor_ranktest.json")["cases"]


@pytest.mark.parametrize("case", RANKTEST, ids=[f"k{c['k']}-{c['shape']}" for c in RANKTEST])
def test_begg_matches_metafor_for_every_k(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 ranktest(yi, vi) (validation/metafor/make_ranktest_reference.R),
    # k = 3 to 200: exact p-value without ties for any k (cor.test(exact = TRUE)), the
    # tie-corrected normal approximation with ties. R computes an upper tail as
    # 1 - P(C <= q - 1), so its p-values carry an absolute rounding error that reaches
    # ~2e-13 at k = 150 (atol below); from k = 171 R's exact distribution overflows (NaN).
    # `pvalue_exact` is the exact p-value the script computes independently (direct
    # convolution in R, checked against cor.test where R has one): agreement to 1e-12.
    res = begg_test(case["yi"], case["vi"])
    assert res.exact is (not case["ties"])
    np.testing.assert_allclose(res.tau, case["tau"], rtol=1e-13, atol=1e-15)
    metafor_p = float(case["pvalue"])
    if np.isfinite(metafor_p) and (case["k"] <= 170 or case["ties"]):
        np.testing.assert_allclose(res.pvalue, metafor_p, rtol=1e-9, atol=1e-12)
    if not case["ties"]:
        np.testing.assert_allclose(res.pvalue, case["pvalue_exact"], rtol=1e-12)


@pytest.mark.parametrize("n", range(1, 9))
def test_kendall_exact_distribution_is_the_permutation_distribution(n: int) -> None:
    # Oracle: enumeration of all n! permutations (exact fractions): the lower tail at every
    # count, and R's two-sided p, min(1, 2 min(P(C <= c), P(C >= c))), at every count c of
    # concordant pairs (C has the distribution of the inversions D, C = N - D)
    from ketameta.bias import _kendall_exact_pvalue, _kendall_lower_tail

    total = math.factorial(n)
    pairs = list(itertools.combinations(range(n), 2))
    inversions = Counter(
        sum(p[i] > p[j] for i, j in pairs) for p in itertools.permutations(range(n))
    )
    n_pairs = len(pairs)
    concordant = Counter({n_pairs - d: c for d, c in inversions.items()})
    for m in range(-1, n_pairs + 2):
        exact = Fraction(sum(c for d, c in inversions.items() if d <= m), total)
        assert _kendall_lower_tail(n, m) == pytest.approx(float(exact), rel=1e-15, abs=0)
    for c in range(n_pairs + 1) if n >= 2 else ():
        lower = Fraction(sum(m for x, m in concordant.items() if x <= c), total)
        upper = Fraction(sum(m for x, m in concordant.items() if x >= c), total)
        expected = min(Fraction(1), 2 * min(lower, upper))
        assert _kendall_exact_pvalue(n, c) == pytest.approx(float(expected), rel=1e-15)


def _mahonian_counts(n: int, m: int) -> list[int]:
    """Permutations of n items with d inversions, d = 0..m, as Python integers: the
    coefficients of prod_j (1 + x + ... + x^(j-1)) truncated at degree m."""
    counts = [1] + [0] * m
    for j in range(2, n + 1):
        prefix = list(itertools.accumulate(counts))
        counts = [prefix[d] - (prefix[d - j] if d >= j else 0) for d in range(m + 1)]
    return counts


@pytest.mark.parametrize(
    ("n", "m"), [(60, 600), (120, 2000), (150, 3000), (200, 2000), (200, 6000), (300, 3000)]
)
def test_kendall_exact_tail_against_exact_integers(n: int, m: int) -> None:
    # Oracle: the Mahonian counts as Python integers divided by n! exactly (Fractions);
    # tails from 1e-4 down to 1e-187
    from ketameta.bias import _kendall_lower_tail

    exact = Fraction(sum(_mahonian_counts(n, m)), math.factorial(n))
    assert _kendall_lower_tail(n, m) == pytest.approx(float(exact), rel=1e-13)


def test_kendall_exact_at_k_500_down_to_subnormal_tails() -> None:
    # Oracle: exact integers as above at k = 500 (1/500! ~ 1e-1135 is far below the
    # smallest double): a tail of 2e-298 to 1e-13 relative, a subnormal one (~9e-322)
    # to the spacing of subnormals; the centre by symmetry
    from ketameta.bias import _kendall_lower_tail

    n, m = 500, 9000
    counts = _mahonian_counts(n, m)
    total = math.factorial(n)
    assert _kendall_lower_tail(n, m) == pytest.approx(
        float(Fraction(sum(counts), total)), rel=1e-13
    )
    subnormal = float(Fraction(sum(counts[:8001]), total))
    assert 0 < subnormal < 2.3e-308
    assert _kendall_lower_tail(n, 8000) == pytest.approx(subnormal, rel=0, abs=2e-323)
    n_pairs = n * (n - 1) // 2  # 124750, even: P(C <= N/2) + P(C <= N/2 - 1) = 1
    centre = _kendall_lower_tail(n, n_pairs // 2) + _kendall_lower_tail(n, n_pairs // 2 - 1)
    assert centre == pytest.approx(1.0, rel=1e-13)


def test_begg_undefined_when_tau_is() -> None:
    with pytest.raises(ValueError, match="`vi`: all studies have the same variance"):
        begg_test([0.1, 0.5, 0.3, 0.2], [0.04, 0.04, 0.04, 0.04])
    with pytest.raises(ValueError, match="`yi`: the standardised deviates of all studies"):
        begg_test([0.3, 0.3, 0.3, 0.3], [0.01, 0.02, 0.03, 0.04])
    with pytest.raises(TypeError, match="`exact` must be True or False"):
        begg_test([0.1, 0.5, 0.3], [0.01, 0.02, 0.03], exact="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("case", _cases("trimfill"), ids=_id)
def test_trim_and_fill_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 trimfill() (its internal refits use metafor's default threshold)
    y, v, _ = _data(case)
    res = trim_and_fill(
        y,
        v,
        estimator=case["estimator"],
        method=case["method"],
        side=None if case["side"] == "auto" else case["side"],
    )
    exp = case["value"]
    assert res.k0 == exp["k0"]
    assert res.side == exp["side"]
    rtol = RTOL_INTERNAL_REML if case["method"] == "REML" else RTOL
    _close(res.estimate, exp["estimate"], "estimate", rtol)
    _close(res.pooled.se, exp["se"], "se", rtol)
    _close(res.pooled.tau2, exp["tau2"], "tau2", rtol)
    if res.k0:
        _close(np.sort(res.filled_yi), np.sort(as_float(exp["filled_yi"])), "filled_yi", rtol)
        _close(np.sort(res.filled_vi), np.sort(as_float(exp["filled_vi"])), "filled_vi", rtol)


TRIMFILL = load_reference("metafor_trimfill.json")


@pytest.mark.parametrize(
    "case",
    TRIMFILL["cases"],
    ids=[f"{c['dataset']}-{c['method']}-{c['estimator']}-{c['side']}" for c in TRIMFILL["cases"]],
)
def test_trim_and_fill_k0_and_its_se_match_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 trimfill() (validation/metafor/make_trimfill_reference.R): k0,
    # se.k0 (Duval & Tweedie's variance of the rank statistic at the unrounded estimate;
    # NaN where that variance is negative), the side, the filled estimate (refitted to
    # tight convergence; trimfill's own refits use threshold 1e-5), and metafor's error
    # where Q0 is undefined
    d = TRIMFILL["datasets"][case["dataset"]]
    kwargs: dict[str, Any] = {"estimator": case["estimator"], "method": case["method"]}
    if case["side"] != "auto":
        kwargs["side"] = case["side"]
    if case["error"] is not None:
        assert case["estimator"] == "Q0"  # the only estimator metafor stops on here
        with pytest.raises(ValueError, match="estimator 'Q0' is undefined for these data"):
            trim_and_fill(d["yi"], d["vi"], **kwargs)
        return
    res = trim_and_fill(d["yi"], d["vi"], **kwargs)
    exp = case["value"]
    assert (res.k0, res.side) == (exp["k0"], exp["side"])
    np.testing.assert_allclose(res.k0_se, float(exp["se_k0"]), rtol=1e-12)
    rtol = RTOL_INTERNAL_REML if case["method"] == "REML" else RTOL
    np.testing.assert_allclose(res.estimate, exp["estimate"], rtol=rtol)
    if res.k0:  # mirrored about metafor's trimmed estimate (REML: to ~1e-5, its threshold)
        atol = 2e-5 if case["method"] == "REML" else 0.0
        np.testing.assert_allclose(
            np.sort(res.filled_yi), np.sort(as_float(exp["filled_yi"])), rtol=rtol, atol=atol
        )


def test_trim_and_fill_bcg_published(published: dict[str, Any]) -> None:
    # Source: metafor's trimfill help page on dat.bcg (published.json "bcg_trimfill"), 4 dp:
    # EE model k0 = 4 (SE 2.3853), R0 k0 = 4 (SE 3.1623); REML k0 = 1 (SE 2.4528)
    from .conftest import assert_printed

    case = published["bcg_trimfill"]
    exp, cols = case["expected"], case["dataset"]["columns"]
    es = ketameta.escalc("RR", ai=cols["tpos"], bi=cols["tneg"], ci=cols["cpos"], di=cols["cneg"])
    ee = trim_and_fill(es, method="EE")
    assert (ee.k0, ee.side, ee.pooled.k) == (exp["EE_k0"], exp["EE_side"], exp["EE_k_filled"])
    assert_printed(ee.k0_se, exp["EE_k0_se"], 4)
    assert_printed([ee.estimate, ee.pooled.se], [exp["EE_estimate"], exp["EE_se"]], 4)
    assert_printed(np.sort(ee.filled_yi), np.sort(exp["EE_filled_yi"]), 8)
    r0 = trim_and_fill(es, method="EE", estimator="R0")
    assert r0.k0 == exp["EE_R0_k0"]
    assert_printed(r0.k0_se, exp["EE_R0_k0_se"], 4)
    re = trim_and_fill(es, method="REML")
    assert (re.k0, re.side, re.pooled.k) == (exp["RE_k0"], exp["RE_side"], exp["RE_k_filled"])
    assert_printed(re.k0_se, exp["RE_k0_se"], 4)
    assert_printed(
        [re.estimate, re.pooled.se, re.pooled.tau2],
        [exp["RE_estimate"], exp["RE_se"], exp["RE_tau2"]],
        4,
    )
    assert_printed(re.pooled.q, exp["RE_Q"], 3)
    # the page's "equal-random" case: filled with the EE model, the filled data fitted by REML
    mixed = ketameta.pool(
        np.concatenate([es.yi, ee.filled_yi]), np.concatenate([es.vi, ee.filled_vi])
    )
    assert_printed(
        [mixed.estimate, mixed.se, mixed.tau2, mixed.statistic],
        [exp[f"EqualRandom_{f}"] for f in ("estimate", "se", "tau2", "z")],
        4,
    )


def _bcg_rr(published: dict[str, Any], key: str) -> Any:
    cols = published[key]["dataset"]["columns"]
    return ketameta.escalc(
        "RR", ai=cols["tpos"], bi=cols["tneg"], ci=cols["cpos"], di=cols["cneg"]
    ), cols


def test_bias_tests_bcg_published(published: dict[str, Any]) -> None:
    # Source: metafor's ranktest, fsn and regtest help pages on dat.bcg (published.json
    # "bcg_ranktest_begg", "bcg_failsafe_N", "bcg_regtest_egger"), printed to 4 dp.
    # fsn's weighted Orwin (97) and type="General" are metafor >= 4.4 features, not here.
    from .conftest import assert_printed

    es, cols = _bcg_rr(published, "bcg_ranktest_begg")
    rank = published["bcg_ranktest_begg"]["expected"]
    b = begg_test(es)
    assert b.exact
    assert_printed([b.tau, b.pvalue], [rank["kendall_tau"], rank["p"]], 4)
    fsn = published["bcg_failsafe_N"]["expected"]
    assert fail_safe_n(es).n == fsn["rosenthal_N"]
    orwin = fail_safe_n(es, kind="orwin", target=math.log(0.95))  # the page's target
    assert orwin.n == fsn["orwin_unweighted_N"]
    assert_printed(
        [orwin.mean_effect, orwin.target],
        [fsn["orwin_unweighted_mean"], fsn["orwin_target"]],
        4,
    )
    assert fail_safe_n(es, kind="rosenberg").n == fsn["rosenberg_N"]
    reg = published["bcg_regtest_egger"]["expected"]
    ni = np.add.reduce([np.asarray(cols[c], float) for c in ("tpos", "tneg", "cpos", "cneg")])
    for model, predictor, stat in (
        ("lm", "sei", "t"),
        ("rma", "sei", "z"),
        ("lm", "ni", "t"),
        ("lm", "ninv", "t"),
        ("rma", "ni", "z"),
        ("rma", "ninv", "z"),
    ):
        res = egger_test(es, ni=ni, model=model, predictor=predictor)
        key = f"{model}_{predictor}"
        assert_printed([res.statistic, res.pvalue], [reg[f"{key}_{stat}"], reg[f"{key}_p"]], 4)
        if f"{key}_limit_b" in reg:
            assert_printed(
                [res.limit_estimate, res.limit_ci_lower, res.limit_ci_upper],
                [reg[f"{key}_limit_b"], reg[f"{key}_limit_ci_lb"], reg[f"{key}_limit_ci_ub"]],
                4,
            )


def test_bias_tests_magnesium_published(published: dict[str, Any]) -> None:
    # Source: metafor's regtest and ranktest help pages on dat.egger2001 (published.json
    # "egger2001_magnesium_regtest_ranktest"): log ORs with 0.5 added to the table with a
    # zero cell; k15 = all trials but ISIS-4. The moderator (year) models are not here.
    from .conftest import assert_printed

    case = published["egger2001_magnesium_regtest_ranktest"]
    cols, exp = case["dataset"]["columns"], case["expected"]
    es = ketameta.escalc("OR", ai=cols["ai"], n1i=cols["n1i"], ci=cols["ci"], n2i=cols["n2i"])
    b16 = begg_test(es)
    assert_printed([b16.tau], [exp["k16_ranktest_tau"]], 2)
    assert_printed([b16.pvalue], [exp["k16_ranktest_p"]], 4)
    rma16 = egger_test(es, model="rma")
    assert_printed([rma16.statistic], [exp["k16_regtest_rma_sei_z"]], 4)
    y, v = np.asarray(es.yi)[:15], np.asarray(es.vi)[:15]
    ni = (np.asarray(cols["n1i"], float) + np.asarray(cols["n2i"], float))[:15]
    for model, predictor, stat in (("lm", "sei", "t"), ("rma", "sei", "z"), ("lm", "ninv", "t")):
        res = egger_test(y, v, ni=ni, model=model, predictor=predictor)
        ref = exp[f"k15_regtest_{model}_{predictor}"]
        assert_printed([res.statistic, res.pvalue], [ref[stat], ref["p"]], 4)
        assert_printed(
            [res.limit_estimate, res.limit_ci_lower, res.limit_ci_upper],
            [ref["limit_b"], ref["limit_ci_lb"], ref["limit_ci_ub"]],
            4,
        )


@pytest.mark.parametrize("case", _cases("fsn"), ids=_id)
def test_fail_safe_n_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 fsn()
    y, v, _ = _data(case)
    res = fail_safe_n(y, v, kind=case["type"].lower())
    exp = case["value"]
    assert res.n == exp["fsnum"]
    for field in ("pvalue", "mean_effect", "target"):
        if exp[field] is not None:
            _close(getattr(res, field), exp[field], field)


def test_bcg_fail_safe_and_trimfill_shared_reference(shared_reference: dict[str, Any]) -> None:
    # Oracle: ../shared/refvals fsn(yi, vi) and trimfill(rma(yi, vi, method="DL"))
    rr = shared_reference["bcg-escalc-RR"]["value"]
    assert (
        fail_safe_n(rr["yi"], rr["vi"]).n
        == shared_reference["bcg-fsn-rosenthal"]["value"]["fsnum"]
    )
    tf = trim_and_fill(rr["yi"], rr["vi"])
    ref = shared_reference["bcg-trimfill-DL"]["value"]
    assert (tf.k0, tf.side) == (ref["k0"], ref["side"])
    _close([tf.estimate, tf.pooled.se], [ref["estimate"], ref["se"]], "trimfill")
    rank = shared_reference["bcg-ranktest"]["value"]
    b = begg_test(rr["yi"], rr["vi"])
    _close([b.tau, b.pvalue], [rank["tau"], rank["pvalue"]], "ranktest")


def test_results_serialise_and_summarise() -> None:
    d = DATASETS["magnesium"]
    y, v, ni = np.array(d["yi"]), np.array(d["vi"]), np.array(d["ni"], float)
    for res in (
        egger_test(y, v),
        egger_test(y, v, ni=ni, predictor="ni", model="rma"),
        begg_test(y, v),
        trim_and_fill(y, v),
        fail_safe_n(y, v, kind="orwin"),
    ):
        json.dumps(res.to_dict())
        assert isinstance(res.summary(), str)
        pytest.importorskip("pandas")
        assert len(res.to_frame()) == 1
    assert "Funnel Plot Asymmetry" in egger_test(y, v).summary()


def test_effect_sizes_carry_sample_sizes() -> None:
    es = ketameta.escalc(
        "OR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
    )
    a = egger_test(es, predictor="ninv")
    b = egger_test(es.yi, es.vi, ni=es.ni, predictor="ninv")
    assert a.statistic == b.statistic


def test_errors_and_warnings() -> None:
    with pytest.raises(ValueError, match="at least 3 studies, got k = 2"):
        egger_test([0.1, 0.2], [0.01, 0.02])
    with pytest.raises(TypeError, match="predictor='ni' needs the sample sizes `ni`"):
        egger_test([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], predictor="ni")
    with pytest.raises(ValueError, match="unknown `predictor`"):
        egger_test([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], predictor="n")
    with pytest.raises(ValueError, match="`ni` has 2 studies but `yi` has 3"):
        egger_test([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], ni=[10, 20], predictor="ni")
    with pytest.warns(ketameta.SmallSampleWarning, match="low power"):
        egger_test([0.1, 0.2, 0.35, 0.5], [0.01, 0.02, 0.03, 0.05])
    with pytest.raises(ValueError, match="at least 3 studies"):
        begg_test([0.1, 0.2], [0.01, 0.02])
    with pytest.raises(ValueError, match="at least 3 studies"):
        trim_and_fill([0.1, 0.2], [0.01, 0.02])
    with pytest.raises(ValueError, match="unknown `kind`"):
        fail_safe_n([0.1, 0.2], [0.01, 0.02], kind="fisher")
    with pytest.raises(ValueError, match="unknown `estimator`"):
        trim_and_fill([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], estimator="L1")


@pytest.mark.filterwarnings("ignore::ketameta.SmallSampleWarning")
@given(
    st.lists(st.floats(0.05, 3.0), min_size=3, max_size=12),
    st.floats(-2, 2),
)
def test_symmetric_funnel_has_no_asymmetry(half_sds: list[float], center: float) -> None:
    # each study mirrored about `center` with the same variance: a perfectly symmetric
    # funnel, so Egger's coefficient is 0 and trim-and-fill finds no missing study
    sd = np.array(half_sds)
    offsets = sd * np.linspace(0.5, 1.5, len(sd))
    y = np.concatenate([center + offsets, center - offsets])
    v = np.concatenate([sd, sd]) ** 2
    if np.ptp(v) <= 1e-8 * v.max():
        return  # the regression test is undefined for equal variances (tested below)
    if np.ptp(sd) <= 1e-3 * sd.max():
        # nearly equal SEs: the intercept extrapolates to SE = 0 over ~1/spread, so
        # rounding is amplified by ~(max SE / spread)² (e.g. SEs 2, 2, 2.00001 give 7e-6)
        return
    res = egger_test(y, v)
    assert res.intercept == pytest.approx(0.0, abs=1e-8 * (1 + abs(center)) * (1 + sd.max()))
    assert res.limit_estimate == pytest.approx(center, abs=1e-8 * (1 + abs(center)))
    if np.ptp(v) > 1e-8 * v.max():
        for estimator in ("L0", "R0", "Q0"):
            assert trim_and_fill(y, v, estimator=estimator).k0 == 0
    for side in ("left", "right"):
        assert trim_and_fill(y, v, side=side).k0 == 0


def test_constant_predictor_is_a_clear_error() -> None:
    with pytest.raises(
        ValueError, match="the predictor 'sei' is \\(nearly\\) the same for all studies"
    ):
        egger_test([0.1, 0.2, 0.3], [0.01, 0.01, 0.01])
    with pytest.raises(ValueError, match="pass side='left' or side='right'"):
        trim_and_fill([0.1, 0.2, 0.3], [0.01, 0.01, 0.01])


MULTIMODAL_REGTEST = [
    (i, c)
    for i, c in enumerate(load_reference("metafor_multimodal.json")["cases"])
    if "tau2" in (c.get("regtest") or {})
]


@pytest.mark.filterwarnings("ignore::ketameta.SmallSampleWarning")  # k < 10: low power
@pytest.mark.parametrize(
    "case", [c for _, c in MULTIMODAL_REGTEST], ids=[str(i) for i, _ in MULTIMODAL_REGTEST]
)
def test_egger_rma_on_hard_likelihoods_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 regtest(rma(yi, vi, method="REML", control=list(threshold=1e-13)),
    # model="rma") on datasets whose intercept-only likelihood has several maxima
    # (validation/metafor/make_multimodal_reference.R); the meta-regression's REML uses
    # the same scaled Newton steps and the same check of the likelihood at tau^2 = 0
    expected = case["regtest"]
    res = egger_test(case["yi"], case["vi"], model="rma")
    np.testing.assert_allclose(res.tau2, expected["tau2"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(res.statistic, expected["zval"], rtol=1e-7)
    np.testing.assert_allclose(res.pvalue, expected["pval"], rtol=1e-7)


def test_fail_safe_n_extreme_targets_are_exact_or_named_errors() -> None:
    # Orwin's N = ceil(k (mean - target) / target) (Orwin 1983). A target 1e-300 times the
    # mean gives an N far beyond the double range: checked against exact rational arithmetic
    y, v = [0.1, 0.3, 0.2, 0.5], [0.01, 0.02, 0.015, 0.03]
    mean = Fraction(float(np.mean(y)))
    for target in (5e-324, 1e-310):  # k (mean - target) / target overflows a double
        expected = math.ceil(4 * (mean - Fraction(target)) / Fraction(target))
        assert fail_safe_n(y, v, kind="orwin", target=target).n == expected
    # below the overflow, in double precision as metafor (to the rounding of the quotient)
    big = fail_safe_n(y, v, kind="orwin", target=2.5e-300).n
    assert big == pytest.approx(4 * (mean - Fraction(2.5e-300)) / Fraction(2.5e-300), rel=1e-15)
    assert fail_safe_n(y, v, kind="orwin", target=0.1).n == 7  # ceil(4 * 0.175 / 0.1)
    # numbers of every type; beyond the double range, not finite, not numbers: named errors
    for target in (np.float32(0.1), Decimal("0.1"), Fraction(1, 10)):
        assert fail_safe_n(y, v, kind="orwin", target=target).n == 7
    for target in (
        10**400,
        -(10**5000),
        Decimal("1e400"),
        Decimal("1e-400"),
        Fraction(1, 10**400),
    ):
        with pytest.raises(
            ValueError, match=r"`target` is (beyond|outside) the double-precision range"
        ):
            fail_safe_n(y, v, kind="orwin", target=target)
    for target in (math.inf, -math.inf, math.nan, Decimal("NaN")):
        with pytest.raises(ValueError, match="`target` must be a finite effect size"):
            fail_safe_n(y, v, kind="orwin", target=target)
    for target in ("0.1", True, [0.1]):
        with pytest.raises(TypeError, match="`target` must be a number"):
            fail_safe_n(y, v, kind="orwin", target=target)


def test_fail_safe_n_tiny_alpha_uses_the_exact_quantile() -> None:
    # 20 studies with z = 10 each: Stouffer's p ~ 1e-436, significant at any alpha. With
    # alpha = 1e-30, 1 - alpha rounds to 1 in double precision, so the quantile must come
    # from the lower tail. Oracle: mpmath's normal quantile at 260 digits, then Rosenthal's
    # N = ceil((sum z / z_(1-alpha))^2 - k) and Rosenberg's N = ceil(k (z_FE^2 / z^2 - 1))
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 260  # 1 - 2e-200 must be distinct from 1
    y, v = [1.0] * 20, [0.01] * 20
    for alpha in (1e-30, 1e-200, 0.05):
        z1 = -mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.mpf(alpha) - 1)
        z2 = -mpmath.sqrt(2) * mpmath.erfinv(mpmath.mpf(alpha) - 1)
        rosenthal = int(mpmath.ceil((200 / z1) ** 2 - 20))
        rosenberg = int(mpmath.ceil(20 * ((mpmath.mpf(10) * mpmath.sqrt(20)) ** 2 / z2**2 - 1)))
        assert fail_safe_n(y, v, alpha=alpha).n == rosenthal
        assert fail_safe_n(y, v, alpha=alpha, kind="rosenberg").n == rosenberg
    for alpha in (0, 1, 10**400, math.nan):
        with pytest.raises(ValueError, match="`alpha`"):
            fail_safe_n(y, v, alpha=alpha)


def test_short_reprs_name_the_measure_and_the_key_numbers() -> None:
    # issue #16: a repr people can read in a notebook (the full record is to_dict())
    data = ketameta.datasets.bcg()
    es = ketameta.escalc(
        "RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg", labels="author"
    )
    egger = ketameta.egger_test(es)
    assert repr(egger) == (
        f"EggerResult(measure='RR', k=13, model='lm', predictor='sei', "
        f"intercept={egger.intercept:.4g}, se={egger.se:.4g}, pvalue={egger.pvalue:.4g})"
    )
    begg = ketameta.begg_test(es)
    assert repr(begg).startswith("BeggResult(measure='RR', k=13, tau=")
    tf = ketameta.trim_and_fill(es)
    assert repr(tf).startswith("TrimFillResult(measure='RR', k=13, k0=1, side='right', ")
    fs = ketameta.fail_safe_n(es)
    assert repr(fs) == f"FailSafeResult(measure='RR', k=13, kind='rosenthal', n={fs.n}, " + (
        f"pvalue={fs.pvalue:.4g})"
    )
    for result in (egger, begg, tf, fs):
        assert len(repr(result)) < 140
        assert "labels" not in repr(result)
