"""Permutation tests against metafor 3.8.1's ``permutest``
(``tests/reference/metafor_permutest.json``, written by
``validation/metafor/make_permutest_reference.R``; the definition of metafor's permutation
p-values is in ``tests/reference/README_metareg.md``, "Permutation tests").

The 42 exact tests must reproduce metafor's counts exactly (numerators ``count_ge``,
``QM_count_ge`` and the number of permutations), hence its p-values; where the reference
stores the whole permutation distribution (at most 256 permutations) the sorted statistics
agree to 1e-8. The three random tests can only agree within Monte Carlo error (R's and
NumPy's generators differ): ours with n = 5,000 must lie within 4 binomial standard errors
of metafor's.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import permutation_test
from ketameta.permutation import MAX_EXACT, _n_distinct, _unrank_multiset

REF = json.loads((Path(__file__).parent / "reference" / "metafor_permutest.json").read_text())
DATASETS = {d["id"]: d for d in REF["datasets"]}
RUNS = REF["permutests"]
EXACT = [r for r in RUNS if r["exact"]]
RANDOM = [r for r in RUNS if not r["exact"]]
#: the reference fits' control (metafor's threshold 1e-13; its `tol` has no counterpart)
CONTROL = {"threshold": 1e-13, "maxiter": 10000}


def _run_id(run: dict[str, Any]) -> str:
    return f"{run['dataset']}-{run['method']}-{run['test']}"


def _fit(run: dict[str, Any], **options: Any) -> ketameta.PoolResult | ketameta.MetaRegResult:
    """The model metafor fitted (its design, the intercept column left to ketameta)."""
    data = DATASETS[run["dataset"]]
    y, v = np.array(data["yi"], dtype=float), np.array(data["vi"], dtype=float)
    args = {"method": run["method"], "test": run["test"], "control": CONTROL, **options}
    with warnings.catch_warnings():
        # (metafor warns too: Knapp-Hartung with the equal-effects model)
        warnings.simplefilter("ignore", ketameta.KetametaWarning)
        if data["X"] is None:
            return ketameta.pool(y, v, **args)
        x = np.array(data["X"], dtype=float)
        mods = {name: x[:, j] for j, name in enumerate(data["X_colnames"]) if j > 0}
        return ketameta.metareg(y, v, mods=mods, **args)


def test_the_reference_has_42_exact_and_3_random_runs() -> None:
    assert len(EXACT) == 42
    assert len(RANDOM) == 3


@pytest.mark.parametrize("run", EXACT, ids=_run_id)
def test_exact_tests_count_as_metafor(run: dict[str, Any]) -> None:
    res = _fit(run)
    # the observed model is metafor's (compared in full in test_metareg.py / test_pooling.py)
    np.testing.assert_allclose(np.atleast_1d(res.statistic), run["zval"], rtol=1e-7)
    out = permutation_test(res, exact=True)
    assert out.exact
    assert out.intercept_only == run["intercept_only"]
    assert out.n_exact == run["exact_iter"]
    assert out.n_permutations == run["n_permutations"]
    assert out.n_failed == run["n_failed"]
    assert list(out.count) == run["count_ge"]
    assert out.qm_count == run["QM_count_ge"]
    np.testing.assert_allclose(out.pvalue, run["pval"], rtol=1e-12, atol=0)
    assert out.qm_pvalue == pytest.approx(run["QMp"], rel=1e-12)
    assert list(out.btt) == [b - 1 for b in run["btt"]]
    assert list(out.names) == run["coef_names"]
    # the default (exact=None) runs the exact test when n covers every permutation
    if run["n_permutations"] <= 1000:
        assert permutation_test(res).count == out.count


@pytest.mark.parametrize("run", [r for r in EXACT if "QM_perm_sorted" in r], ids=_run_id)
def test_exact_distributions_match_metafor(run: dict[str, Any]) -> None:
    out = permutation_test(_fit(run), exact=True, keep_distribution=True)
    assert out.qm_distribution is not None
    assert out.statistic_distribution is not None
    np.testing.assert_allclose(
        np.sort(out.qm_distribution), run["QM_perm_sorted"], rtol=1e-8, atol=1e-12
    )
    for j, expected in enumerate(run["abs_zval_perm_sorted"]):
        got = np.sort(np.abs(out.statistic_distribution[:, j]))
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def _within(p_ours: float, n_ours: int, p_ref: float, n_ref: int, sds: float = 4.0) -> bool:
    """Two independent Monte Carlo estimates of one p-value agree: within `sds` standard
    errors of their difference, with the pooled proportion (floored at 1/n, so a p-value
    near 0 still has a spread)."""
    pooled = (p_ours * n_ours + p_ref * n_ref) / (n_ours + n_ref)
    pooled = min(max(pooled, 1.0 / (n_ours + n_ref)), 1.0 - 1.0 / (n_ours + n_ref))
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ours + 1.0 / n_ref))
    return abs(p_ours - p_ref) <= sds * se


@pytest.mark.parametrize("run", RANDOM, ids=_run_id)
def test_random_tests_agree_with_metafor_within_monte_carlo_error(run: dict[str, Any]) -> None:
    res = _fit(run)
    n_ref = run["n_permutations"]
    out = permutation_test(res, 5000, exact=False, seed=20261213)
    assert not out.exact
    assert out.n_permutations == 5000
    assert out.n_exact == run["exact_iter"]
    for ours, ref in zip(out.pvalue, run["pval"], strict=True):
        assert _within(float(ours), 5000, ref, n_ref), (float(ours), ref)
    assert _within(out.qm_pvalue, 5000, run["QMp"], n_ref), (out.qm_pvalue, run["QMp"])


def test_random_sign_test_agrees_with_the_exact_p_value() -> None:
    # BCG, intercept only, REML + Knapp-Hartung: metafor's random test (5,000 draws) and ours
    # each lie within 4 binomial standard errors of the exact p over all 2^13 sign patterns
    run = next(r for r in RANDOM if r["dataset"] == "bcg")
    res = _fit(run)
    exact = permutation_test(res, exact=True)
    assert exact.n_permutations == 2**13 == run["exact_iter"]
    p = float(exact.pvalue[0])
    assert 0 < p < 0.01
    ours = permutation_test(res, 5000, exact=False, seed=7)
    for estimate in (float(ours.pvalue[0]), run["pval"][0]):
        assert abs(estimate - p) <= 4 * math.sqrt(p * (1 - p) / 5000)


def _bcg_ablat(**options: Any) -> ketameta.MetaRegResult:
    dat = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    return ketameta.metareg(es, mods={"ablat": dat["ablat"]}, **options)


def test_seeds_reproduce_and_the_drawn_seed_is_recorded() -> None:
    res = _bcg_ablat()
    a = permutation_test(res, 300, seed=42, keep_distribution=True)
    b = permutation_test(res, 300, seed=np.int64(42), keep_distribution=True)
    assert a == b
    assert a.seed == 42
    c = permutation_test(res, 300, seed=43, keep_distribution=True)
    assert a.statistic_distribution is not None
    assert c.statistic_distribution is not None
    assert not np.array_equal(a.statistic_distribution, c.statistic_distribution)
    drawn = permutation_test(res, 300, keep_distribution=True)
    assert isinstance(drawn.seed, int)
    assert permutation_test(res, 300, seed=drawn.seed, keep_distribution=True) == drawn
    # a generator is used as it is (no seed to record)
    g = permutation_test(res, 300, seed=np.random.default_rng(42), keep_distribution=True)
    assert g.seed is None
    assert g.statistic_distribution is not None
    np.testing.assert_array_equal(g.statistic_distribution, a.statistic_distribution)
    # the observed data are the first permutation
    np.testing.assert_allclose(a.statistic_distribution[0], res.statistic, rtol=1e-9)


@pytest.mark.parametrize("chunk_size", [3, 13, 100])
def test_results_do_not_depend_on_the_chunk_size(chunk_size: int) -> None:
    # 13 = k: a chunk whose unconverged rows number exactly k (the shared design's length)
    res = _bcg_ablat()
    base = permutation_test(res, 400, seed=5, keep_distribution=True)
    other = permutation_test(res, 400, seed=5, keep_distribution=True, chunk_size=chunk_size)
    assert other.count == base.count
    assert other.qm_count == base.qm_count
    assert base.statistic_distribution is not None
    assert other.statistic_distribution is not None
    np.testing.assert_allclose(
        other.statistic_distribution, base.statistic_distribution, rtol=1e-12, atol=1e-14
    )
    run = next(r for r in EXACT if r["dataset"] == "sim k=8 ~ g (3 levels)")
    fit = _fit(run)
    exact = permutation_test(fit, exact=True, chunk_size=chunk_size)
    assert list(exact.count) == run["count_ge"]
    assert exact.qm_count == run["QM_count_ge"]


def test_fixed_tau2_refits_every_permutation_with_that_tau2() -> None:
    # each permutation of the rows of X, fitted one by one with metareg(tau2=...), gives the
    # batch's permutation distribution
    run = next(r for r in EXACT if r["dataset"] == "sim k=6 ~ x" and r["method"] == "REML")
    data = DATASETS[run["dataset"]]
    y, v = np.array(data["yi"]), np.array(data["vi"])
    x = np.array(data["moderators"]["x"])
    res = ketameta.metareg(y, v, mods={"x": x}, tau2=0.05, test="knha")
    out = permutation_test(res, exact=True, keep_distribution=True)
    assert out.n_permutations == 720
    loop_z, loop_qm = [], []
    for perm in itertools.permutations(range(6)):
        one = ketameta.metareg(y, v, mods={"x": x[list(perm)]}, tau2=0.05, test="knha")
        assert one.tau2 == 0.05
        loop_z.append(one.statistic)
        loop_qm.append(one.qm)
    assert out.statistic_distribution is not None
    assert out.qm_distribution is not None
    np.testing.assert_allclose(np.sort(out.qm_distribution), np.sort(loop_qm), rtol=1e-10)
    for j in range(2):
        np.testing.assert_allclose(
            np.sort(out.statistic_distribution[:, j]),
            np.sort(np.array(loop_z)[:, j]),
            rtol=1e-10,
            atol=1e-13,
        )
    expected = np.mean(np.abs(loop_z) >= np.abs(res.statistic) - 1.49e-8, axis=0)
    np.testing.assert_allclose(out.pvalue, expected, rtol=1e-12)


def test_fixed_tau2_intercept_only_flips_signs() -> None:
    run = next(r for r in EXACT if r["dataset"] == "hine1989")
    data = DATASETS[run["dataset"]]
    y, v = np.array(data["yi"]), np.array(data["vi"])
    res = ketameta.pool(y, v, tau2=0.001)
    out = permutation_test(res, keep_distribution=True)
    assert out.exact
    assert out.n_permutations == 64
    loop = [
        ketameta.pool(np.array(s) * y, v, tau2=0.001).statistic
        for s in itertools.product((1.0, -1.0), repeat=6)
    ]
    assert out.statistic_distribution is not None
    np.testing.assert_allclose(np.sort(out.statistic_distribution[:, 0]), np.sort(loop))
    # QM of the intercept-only model is z^2
    assert out.qm_distribution is not None
    np.testing.assert_allclose(out.qm_distribution, out.statistic_distribution[:, 0] ** 2)


def test_exact_choice() -> None:
    run = next(r for r in EXACT if r["dataset"] == "sim k=8 ~ g (2 levels)")
    res = _fit(run)  # 70 distinct permutations
    assert permutation_test(res, 70).exact
    assert not permutation_test(res, 69, seed=1).exact
    forced = permutation_test(res, 500, exact=False, seed=1)
    assert not forced.exact
    assert forced.n_permutations == 500
    assert forced.seed == 1
    assert permutation_test(res, 10, exact=True).n_permutations == 70
    # BCG with ablat: 13!/(2!^4) = 389,188,800 distinct orders (four tied pairs of latitudes)
    big = _bcg_ablat()
    assert permutation_test(big, 10, seed=1).n_exact == 389_188_800
    with pytest.raises(ValueError, match=r"389,188,800 distinct permutations, more than"):
        permutation_test(big, exact=True)
    assert MAX_EXACT == 10**6


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "`n` must be a positive integer"),
        ({"n": 2.5}, ValueError, "`n` must be a positive integer"),
        ({"exact": "yes"}, TypeError, "`exact` must be None, True or False"),
        ({"seed": -1}, ValueError, "`seed` must be a non-negative integer"),
        ({"seed": 1.5}, TypeError, "`seed` must be None, a non-negative integer"),
        ({"seed": True}, TypeError, "`seed` must be None"),
        ({"keep_distribution": 1}, TypeError, "`keep_distribution` must be True or False"),
        ({"chunk_size": 0}, ValueError, "`chunk_size` must be a positive integer"),
    ],
)
def test_bad_options_are_named(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        permutation_test(_bcg_ablat(), **kwargs)


def test_only_fitted_models_are_accepted() -> None:
    with pytest.raises(TypeError, match="`result` must be a PoolResult"):
        permutation_test([0.1, 0.2])  # type: ignore[arg-type]


def _multiset_permutations(counts: list[int]) -> list[tuple[int, ...]]:
    """Every distinct arrangement of labels with multiplicities `counts`, lexicographically
    (recursion on the first label: independent of the unranking under test)."""
    if not any(counts):
        return [()]
    out = []
    for label, c in enumerate(counts):
        if c:
            rest = [*counts[:label], c - 1, *counts[label + 1 :]]
            out += [(label, *tail) for tail in _multiset_permutations(rest)]
    return out


@given(st.lists(st.integers(1, 3), min_size=1, max_size=4).filter(lambda s: sum(s) <= 9))
def test_unranking_enumerates_each_multiset_permutation_once(sizes: list[int]) -> None:
    k = sum(sizes)
    total = _n_distinct(k, sizes)
    rows = [tuple(r) for r in _unrank_multiset(np.arange(total), sizes, total).tolist()]
    expected = _multiset_permutations(sizes)
    assert len(expected) == total  # k!/(n_1! ... n_r!)
    assert rows == expected  # lexicographic, each once


def test_summary_prints_as_metafor() -> None:
    # metafor: permutest(rma(yi, vi, mods = ~ mod, data = hine), exact = TRUE) prints
    # "QM(df = 1) = <QM>, p-val = 0.0028" (1/360) and marks the permutation p-values with ¹
    run = next(r for r in EXACT if r["dataset"] == "hine1989 ~ mod" and r["method"] == "REML")
    text = permutation_test(_fit(run)).summary()
    lines = text.split("\n")
    assert lines[0] == "Exact permutation test (360 distinct permutations)"
    assert "Test of Moderators (coefficient 2):\u00b9" in lines
    assert f"QM(df = 1) = {run['QM']:.4f}, p-val = 0.0028" in lines
    header = next(line for line in lines if "estimate" in line)
    assert header.split() == ["estimate", "se", "zval", "pval\u00b9", "ci.lb", "ci.ub"]
    row = next(line for line in lines if line.startswith("mod "))
    assert row.split()[4] == "0.0028"
    assert lines[-1] == "1) p-values based on permutation testing"
    # t-based tests: an F test and a df column; intercept-only: no test of moderators
    knha = next(
        r for r in EXACT if r["dataset"] == "sim k=8 ~ g (3 levels)" and r["test"] == "knha"
    )
    text = permutation_test(_fit(knha)).summary()
    assert "Test of Moderators (coefficients 2:3):\u00b9" in text
    assert "F(df1 = 2, df2 = 5) = " in text
    assert " df " in text
    single = next(r for r in EXACT if r["dataset"] == "hine1989")
    text = permutation_test(_fit(single)).summary()
    assert "Test of Moderators" not in text
    assert text.endswith("1) p-value based on permutation testing")


def test_to_dict_and_to_frame() -> None:
    pd = pytest.importorskip("pandas")
    out = permutation_test(_bcg_ablat(), 200, seed=3)
    d = json.loads(json.dumps(out.to_dict()))
    assert d["pvalue"] == out.pvalue.tolist()
    assert d["statistic_distribution"] is None
    assert d["n_permutations"] == 200
    frame = out.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["intrcpt", "ablat"]
    assert frame.loc["ablat", "pvalue"] == out.pvalue[1]
    assert frame.loc["ablat", "count"] == out.count[1]
    with pytest.raises(ValueError, match="read-only"):
        out.pvalue[0] = 0.0


def test_failed_fits_leave_numerator_and_denominator() -> None:
    # REML limited to 5 iterations: the observed fit converges (in 5), three of the 500
    # permutations do not; they count in neither numerator nor denominator (as metafor)
    res = _bcg_ablat(control={"maxiter": 5})
    assert res.iterations == 5
    out = permutation_test(res, 500, seed=1, keep_distribution=True)
    assert out.n_failed == 3
    assert out.n_permutations == 500
    assert out.qm_distribution is not None
    assert out.statistic_distribution is not None
    ok = ~np.isnan(out.qm_distribution)
    assert int((~ok).sum()) == out.n_failed
    expected = (np.abs(out.statistic_distribution[ok]) >= np.abs(res.statistic) - 1.49e-8).sum(0)
    assert list(out.count) == expected.tolist()
    np.testing.assert_array_equal(out.pvalue, expected / 497)
    assert out.qm_pvalue == out.qm_count / 497
    assert "(3 of 500 permutations could not be fitted and were left out)" in out.summary()


def test_intercept_only_models_flip_signs_whatever_the_result_class() -> None:
    # a constant moderator is dropped, leaving metareg's intercept-only model: the same
    # 2^13 sign patterns as pool's
    dat = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    with pytest.warns(ketameta.CollinearityWarning):
        reg = ketameta.metareg(es, mods=np.full(13, 3.0))
    a = permutation_test(reg, exact=True, keep_distribution=True)
    b = permutation_test(ketameta.pool(es), exact=True, keep_distribution=True)
    assert a.intercept_only
    assert b.intercept_only
    assert a.n_permutations == b.n_permutations == 2**13
    assert a.count == b.count
    assert a.statistic_distribution is not None
    assert b.statistic_distribution is not None
    np.testing.assert_allclose(a.statistic_distribution, b.statistic_distribution, rtol=1e-12)
    # one study: two sign patterns, both as extreme
    with pytest.warns(ketameta.SmallSampleWarning):
        one = ketameta.pool([0.3], [0.01])
    single = permutation_test(one)
    assert single.n_permutations == 2
    assert single.pvalue.tolist() == [1.0]


def test_an_undefined_statistic_has_no_permutation_p_value() -> None:
    v = [0.01, 0.02, 0.03, 0.01, 0.02]
    # identical effects with Knapp-Hartung: t = +inf (an exact fit); the two sign patterns
    # with equal signs are exact fits too, so p = 2/32
    inf = permutation_test(ketameta.pool([0.2] * 5, v, test="knha"))
    assert inf.statistic[0] == np.inf
    assert inf.pvalue.tolist() == [2 / 32]
    # identical effects of 0: t = 0/0 is undefined, and so is its p-value
    nan = permutation_test(ketameta.pool([0.0] * 5, v, test="knha"))
    assert np.isnan(nan.statistic[0])
    assert np.isnan(nan.pvalue[0])
    assert math.isnan(nan.qm_pvalue)
