"""pool_mh / pool_peto: metafor's rma.mh and rma.peto, published tables, zero cells,
batches, errors and invariants."""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

import ketameta
from ketameta import pool_mh, pool_mh_many, pool_peto, pool_peto_many

from .conftest import as_float, assert_printed, load_reference

GENERATED = load_reference("metafor_binary.json")
DATASETS = GENERATED["datasets"]
PUBLISHED = {c["id"]: c for c in load_reference("published_binary.json")["cases"]}
CELLS = ("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i")

# metafor 3.8-1 computes these closed forms in double precision, as ketameta does; the
# JSON keeps 15 significant digits. Agreement is ~1e-13 relative; 1e-10 leaves room for
# the summation order. p-values below 1e-25 get a relative 1e-9 (series vs R's pgamma).
RTOL = 1e-10


def _columns(name: str) -> dict[str, np.ndarray]:
    data = DATASETS[name]
    return {k: as_float(v) for k, v in data.items() if k in CELLS}


def _options(case: dict[str, Any]) -> dict[str, Any]:
    args = case["args"] if isinstance(case["args"], dict) else {}  # (R's empty list: [])
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key == "level":
            out["level"] = value / 100
        else:
            out[key] = tuple(value) if isinstance(value, list) else value
    return out


def _fit(case: dict[str, Any]) -> ketameta.MHResult | ketameta.PetoResult:
    cols = _columns(case["dataset"])
    labels = DATASETS[case["dataset"]]["labels"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        if case["model"] == "peto":
            return pool_peto(**cols, labels=labels, **_options(case))
        return pool_mh(**cols, measure=case["measure"], labels=labels, **_options(case))


def _case_id(case: dict[str, Any]) -> str:
    opts = ",".join(f"{k}={v}" for k, v in _options(case).items())
    return f"{case['dataset']}-{case['model']}-{case['measure']}" + (f"-{opts}" if opts else "")


@pytest.mark.parametrize("case", GENERATED["cases"], ids=_case_id)
def test_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 rma.mh()/rma.peto() (validation/metafor/make_binary_reference.R)
    # on dat.bcg, egger2001, yusuf1985 (6 tables), collins1985a/b, li2007, nielweise2007,
    # hart1999, Rothman (2008) tables 15-1/2/5, simulated rare events with double zeros,
    # non-integer cells, and every add/to/drop00/correct/level variant.
    res = _fit(case)
    expected = case["value"]
    for field, value in expected.items():
        exp = as_float(value)
        got = np.atleast_1d(np.asarray(getattr(res, field), dtype=float))
        if field == "weights":  # metafor lists the tables in the estimate only
            got = got[res.in_estimate]
        if field in ("yi", "vi"):
            # metafor's yi.f/vi.f: every input row; NaN where no effect (omitted, double
            # zero, undefined) in both
            assert np.array_equal(np.isnan(got), np.isnan(exp)), field
        assert got.shape == exp.shape, field
        assert np.array_equal(np.isnan(got), np.isnan(exp)), (field, got, exp)
        ok = ~np.isnan(exp)
        tiny = np.abs(exp) < 1e-25
        np.testing.assert_allclose(got[ok & ~tiny], exp[ok & ~tiny], rtol=RTOL, err_msg=field)
        np.testing.assert_allclose(got[ok & tiny], exp[ok & tiny], rtol=1e-9, err_msg=field)


def test_reference_covers_the_zero_cell_classes() -> None:
    # the reference set must exercise double zeros (no events and only events), single
    # zeros, NA rows and every measure, for both models
    measures = {(c["model"], c["measure"]) for c in GENERATED["cases"]}
    assert measures == {("mh", m) for m in ("OR", "RR", "RD", "IRR", "IRD")} | {("peto", "PETO")}
    rare = [_columns(f"rare{i}") for i in range(1, 7)]
    assert all((r["ai"][0], r["ci"][0]) == (0, 0) for r in rare)  # no events in either group
    assert any(r["ai"][-1] == r["n1i"][-1] and r["ci"][-1] == r["n2i"][-1] for r in rare)
    assert np.isnan(_columns("yusuf1985_table9")["ai"]).any()


# ---------------------------------------------------------------------------------------------
# published examples


def test_example_bcg_metafor_docs_and_stata(published: dict[str, Any]) -> None:
    # metafor's rma.mh/rma.peto help pages (4 decimals) and Stata metan as quoted in
    # metafor's tests (published.json, bcg_MH_and_Peto; published_binary.json)
    case = published["bcg_MH_and_Peto"]
    cols = case["dataset"]["columns"]
    cells = {"ai": cols["tpos"], "bi": cols["tneg"], "ci": cols["cpos"], "di": cols["cneg"]}
    exp = case["expected"]
    dec = case["decimals"]
    res = pool_mh(**cells)
    for key, got in {
        "MH_OR_estimate": res.estimate,
        "MH_OR_se": res.se,
        "MH_OR_z": res.statistic,
        "MH_OR_ci_lb": res.ci_lower,
        "MH_OR_ci_ub": res.ci_upper,
        "MH_OR_exp": res.exp_estimate,
        "MH_OR_exp_ci_lb": res.exp_ci[0],
        "MH_OR_exp_ci_ub": res.exp_ci[1],
        "MH_OR_Q": res.q,
        "MH_OR_I2_percent": res.i2,
        "MH_OR_H2": res.h2,
        "CMH": res.cmh,
        "Tarone_X2": res.tarone,
    }.items():
        assert_printed(got, exp[key], dec.get(key, dec["default"]))
    rr = pool_mh(**cells, measure="RR")
    for key, got in {
        "MH_RR_estimate": rr.estimate,
        "MH_RR_se": rr.se,
        "MH_RR_z": rr.statistic,
        "MH_RR_ci_lb": rr.ci_lower,
        "MH_RR_ci_ub": rr.ci_upper,
        "MH_RR_Q": rr.q,
        "MH_RR_I2_percent": rr.i2,
        "MH_RR_H2": rr.h2,
        "MH_RR_exp": rr.exp_estimate,
        "MH_RR_exp_ci_lb": rr.exp_ci[0],
        "MH_RR_exp_ci_ub": rr.exp_ci[1],
    }.items():
        assert_printed(got, exp[key], dec.get(key, dec["default"]))
    rd = pool_mh(**cells, measure="RD")
    for key, got in {
        "MH_RD_estimate": rd.estimate,
        "MH_RD_ci_lb": rd.ci_lower,
        "MH_RD_ci_ub": rd.ci_upper,
        "MH_RD_z": rd.statistic,
        "MH_RD_Q": rd.q,
    }.items():
        assert_printed(got, exp[key], dec["default"])
    peto = pool_peto(**cells)
    for key, got in {
        "Peto_estimate": peto.estimate,
        "Peto_se": peto.se,
        "Peto_z": peto.statistic,
        "Peto_ci_lb": peto.ci_lower,
        "Peto_ci_ub": peto.ci_upper,
        "Peto_Q": peto.q,
        "Peto_I2_percent": peto.i2,
        "Peto_H2": peto.h2,
        "Peto_exp": peto.exp_estimate,
        "Peto_exp_ci_lb": peto.exp_ci[0],
        "Peto_exp_ci_ub": peto.exp_ci[1],
    }.items():
        assert_printed(got, exp[key], dec.get(key, dec["default"]))
    # Stata metan: |z| 11.53 (RR), 11.54 (OR), 11.67 (Peto); for the RD metan uses the
    # Greenland & Robins (1985) variance: 11.56 (metafor's Sato et al. 1989 gives 11.47)
    stata = PUBLISHED["bcg_stata_metan"]["expected"]
    assert_printed(abs(rr.statistic), stata["abs_z_RR"], 2)
    assert_printed(abs(res.statistic), stata["abs_z_OR"], 2)
    assert_printed(abs(peto.statistic), stata["abs_z_Peto"], 2)
    rd_gr = pool_mh(**cells, measure="RD", rd_variance="gr")
    assert_printed(abs(rd_gr.statistic), stata["abs_z_RD_gr"], 2)
    assert rd_gr.estimate == rd.estimate


def test_example_fleiss1993_revman_export() -> None:
    # RevMan 5's MH fixed-effect analysis of Fleiss (1993), exported with 8 decimals
    # (meta's inst/extdata/Fleiss93_CR.csv): pooled OR, CI, z, p, Q, I², study ORs,
    # SEs, CIs and MH weights agree to the last printed decimal
    case = PUBLISHED["fleiss1993_revman_mh_or"]
    data, exp = case["data"], case["expected"]
    res = pool_mh(ai=data["ai"], n1i=data["n1i"], ci=data["ci"], n2i=data["n2i"])
    assert_printed(res.exp_estimate, exp["or"], 8)
    assert_printed(res.exp_ci[0], exp["or_ci_lb"], 8)
    assert_printed(res.exp_ci[1], exp["or_ci_ub"], 8)
    assert_printed(abs(res.statistic), exp["abs_z"], 8)
    assert_printed(res.pvalue, exp["pvalue"], 8)
    assert_printed(res.q, exp["q"], 8)
    assert_printed(res.i2, exp["i2"], 8)
    assert_printed(np.exp(res.yi), exp["study_or"], 8)
    assert_printed(np.sqrt(res.vi), exp["study_se"], 8)
    lo, hi = res.study_ci()
    assert_printed(np.exp(lo), exp["study_ci_lb"], 8)
    assert_printed(np.exp(hi), exp["study_ci_ub"], 8)
    assert_printed(res.weights, exp["weights"], 5)
    # RevMan's P(Q) 0.12694225 is 7e-8 from the exact χ²₆ tail (0.1269421779...):
    # ketameta's is exact (mpmath, 30 digits)
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(30):
        exact = float(mpmath.gammainc(3, res.q / 2, mpmath.inf, regularized=True))
    assert res.q_pvalue == pytest.approx(exact, rel=1e-13)
    assert abs(res.q_pvalue - exp["q_pvalue"]) < 1e-7


def test_example_rothman2008_tables() -> None:
    # Rothman, Greenland & Lash (2008), ch. 15, Tables 15-1, 15-2 and 15-5 (values as
    # reproduced by metafor's tests, 4 decimals)
    t2 = PUBLISHED["rothman2008_table15_2_person_time"]
    cells = {k: t2["data"][k] for k in ("x1i", "t1i", "x2i", "t2i")}
    ird = pool_mh(**cells, measure="IRD", level=0.90)
    e = t2["expected"]["IRD_90"]
    for got, key in ((ird.estimate, "estimate"), (ird.ci_lower, "ci_lb"), (ird.ci_upper, "ci_ub")):
        assert_printed(got, e[key], 4)
    assert_printed(ird.q, e["q"], 4)
    irr = pool_mh(**cells, measure="IRR", level=0.90)
    e = t2["expected"]["IRR_90"]
    assert_printed(
        [irr.estimate, irr.ci_lower, irr.ci_upper, irr.q, irr.q_pvalue, irr.cmh, irr.cmh_pvalue],
        [
            e[k]
            for k in ("log_estimate", "log_ci_lb", "log_ci_ub", "q", "q_pvalue", "mh", "mh_pvalue")
        ],
        4,
    )
    assert_printed([irr.exp_estimate, *irr.exp_ci], [e["irr"], e["irr_ci_lb"], e["irr_ci_ub"]], 4)
    nc = pool_mh(**cells, measure="IRR", correct=False)
    e = t2["expected"]["IRR_nocorrect"]
    assert_printed([nc.cmh, nc.cmh_pvalue], [e["mh"], e["mh_pvalue"]], 4)

    t5 = PUBLISHED["rothman2008_table15_5_or"]
    res = pool_mh(**{k: t5["data"][k] for k in ("ai", "bi", "ci", "di")}, level=0.9, correct=False)
    e = t5["expected"]["OR_90_nocorrect"]
    got = {
        "log_estimate": res.estimate,
        "log_ci_lb": res.ci_lower,
        "log_ci_ub": res.ci_upper,
        "q": res.q,
        "q_pvalue": res.q_pvalue,
        "cochran": res.cochran,
        "cochran_pvalue": res.cochran_pvalue,
        "cmh": res.cmh,
        "cmh_pvalue": res.cmh_pvalue,
        "tarone": res.tarone,
        "tarone_pvalue": res.tarone_pvalue,
        "or": res.exp_estimate,
        "or_ci_lb": res.exp_ci[0],
        "or_ci_ub": res.exp_ci[1],
    }
    for key, value in got.items():
        assert_printed(value, e[key], 4)

    t1 = PUBLISHED["rothman2008_table15_1_or_cochran"]
    res = pool_mh(**{k: t1["data"][k] for k in ("ai", "bi", "ci", "di")}, correct=False)
    assert_printed([res.cochran, res.cochran_pvalue], [1.1976, 0.2738], 4)


def test_example_rothman2008_table15_1(published: dict[str, Any]) -> None:
    # published.json, rothman2008_stratum_RD_RR: MH RD, RR and OR at 90%
    case = published["rothman2008_stratum_RD_RR"]
    cols = case["dataset"]["columns"]
    cells = {k: cols[k] for k in ("ai", "bi", "ci", "di")}
    exp = case["expected"]
    rd = pool_mh(**cells, measure="RD", level=0.9)
    e = exp["MH_RD_90"]
    assert_printed(
        [rd.estimate, rd.ci_lower, rd.ci_upper, rd.q, rd.q_pvalue],
        [e["estimate"], e["ci_lb"], e["ci_ub"], e["Q"], e["Q_p"]],
        4,
    )
    rr = pool_mh(**cells, measure="RR", level=0.9)
    e = exp["MH_RR_90"]
    assert_printed(
        [rr.estimate, rr.ci_lower, rr.ci_upper, rr.exp_estimate, *rr.exp_ci, rr.q, rr.q_pvalue],
        [
            e[k]
            for k in (
                "log_estimate",
                "log_ci_lb",
                "log_ci_ub",
                "RR",
                "RR_ci_lb",
                "RR_ci_ub",
                "Q",
                "Q_p",
            )
        ],
        4,
    )
    orr = pool_mh(**cells, level=0.9, correct=False)
    e = exp["MH_OR_90_nocc"]
    assert_printed(
        [
            orr.estimate,
            orr.ci_lower,
            orr.ci_upper,
            orr.exp_estimate,
            *orr.exp_ci,
            orr.q,
            orr.q_pvalue,
            orr.cmh,
            orr.cmh_pvalue,
            orr.tarone,
            orr.tarone_pvalue,
        ],
        [
            e[k]
            for k in (
                "log_estimate",
                "log_ci_lb",
                "log_ci_ub",
                "OR",
                "OR_ci_lb",
                "OR_ci_ub",
                "Q",
                "Q_p",
                "CMH",
                "CMH_p",
                "Tarone",
                "Tarone_p",
            )
        ],
        4,
    )


def test_example_yusuf1985_table6_peto() -> None:
    # Yusuf et al. (1985), table 6: Peto OR 0.93 (0.74 to 1.18)
    case = PUBLISHED["yusuf1985_table6_peto"]
    with pytest.warns(ketameta.OmittedStudiesWarning):
        res = pool_peto(**_columns(case["dataset"]))
    exp = case["expected"]
    expected = [exp["or"], exp["or_ci_lb"], exp["or_ci_ub"]]
    assert_printed([res.exp_estimate, *res.exp_ci], expected, 2)


# ---------------------------------------------------------------------------------------------
# exact arithmetic and properties


def test_mh_odds_ratio_and_variance_in_exact_arithmetic() -> None:
    # Mantel & Haenszel (1959) and Robins, Breslow & Greenland (1986), in fractions
    tables = [(3, 17, 1, 19), (10, 5, 4, 11), (0, 20, 2, 18), (7, 7, 7, 7)]
    r = [Fraction(a * d, a + b + c + d) for a, b, c, d in tables]
    s = [Fraction(b * c, a + b + c + d) for a, b, c, d in tables]
    p = [Fraction(a + d, a + b + c + d) for a, b, c, d in tables]
    q = [Fraction(b + c, a + b + c + d) for a, b, c, d in tables]
    sr, ss = sum(r), sum(s)
    var = (
        sum(pi * ri for pi, ri in zip(p, r, strict=True)) / (2 * sr * sr)
        + sum(pi * si + qi * ri for pi, si, qi, ri in zip(p, s, q, r, strict=True)) / (2 * sr * ss)
        + sum(qi * si for qi, si in zip(q, s, strict=True)) / (2 * ss * ss)
    )
    res = pool_mh(*(np.array(col, dtype=float) for col in zip(*tables, strict=True)))
    assert res.exp_estimate == pytest.approx(float(sr / ss), rel=1e-14)
    assert res.se**2 == pytest.approx(float(var), rel=1e-13)
    # Cochran-Mantel-Haenszel statistic with the continuity correction
    e = sum(Fraction((a + b) * (a + c), a + b + c + d) for a, b, c, d in tables)
    v = sum(
        Fraction((a + b) * (c + d) * (a + c) * (b + d), (a + b + c + d) ** 2 * (a + b + c + d - 1))
        for a, b, c, d in tables
    )
    o = sum(a for a, *_ in tables)
    cmh = (abs(o - e) - Fraction(1, 2)) ** 2 / v
    assert res.cmh == pytest.approx(float(cmh), rel=1e-13)


@st.composite
def _tables(draw: st.DrawFn, min_k: int = 1, max_k: int = 12) -> dict[str, np.ndarray]:
    k = draw(st.integers(min_k, max_k))
    n1 = np.array(draw(st.lists(st.integers(1, 500), min_size=k, max_size=k)), dtype=float)
    n2 = np.array(draw(st.lists(st.integers(1, 500), min_size=k, max_size=k)), dtype=float)
    f1 = np.array(draw(st.lists(st.floats(0, 1), min_size=k, max_size=k)))
    f2 = np.array(draw(st.lists(st.floats(0, 1), min_size=k, max_size=k)))
    a, c = np.floor(f1 * n1), np.floor(f2 * n2)
    return {"ai": a, "bi": n1 - a, "ci": c, "di": n2 - c}


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The result, or None where the estimate is undefined (a named ValueError)."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        message = str(exc)
    assert "undefined" in message or "no variance" in message or "no studies" in message
    return None


@given(_tables(min_k=2))
@settings(max_examples=60)
def test_tarone_solves_the_breslow_day_equation(t: dict[str, np.ndarray]) -> None:
    # ã of every table with both outcomes is the root of x (n2 - m1 + x) = ψ (n1 - x)(m1 - x)
    # in its feasible range (Breslow & Day 1980): recompute the statistic with brentq
    res = _quiet(pool_mh, **t, correct=False)
    if res is None:
        return
    psi = res.exp_estimate
    a, b, c, d = (t[k] for k in ("ai", "bi", "ci", "di"))
    bd, resid_sum, var_sum = 0.0, 0.0, 0.0
    for ai, bi, ci, di in zip(a, b, c, d, strict=True):
        n1, n2, m1, m0 = ai + bi, ci + di, ai + ci, bi + di
        if m1 == 0 or m0 == 0:
            continue
        lo, hi = max(0.0, m1 - n2), min(n1, m1)

        def g(x: float, n1: float = n1, n2: float = n2, m1: float = m1) -> float:
            return x * (n2 - m1 + x) - psi * (n1 - x) * (m1 - x)

        x = optimize.brentq(g, lo, hi, xtol=1e-14, rtol=1e-15)
        var = 1 / (1 / x + 1 / (n1 - x) + 1 / (m1 - x) + 1 / (n2 - m1 + x))
        bd += (ai - x) ** 2 / var
        resid_sum += ai - x
        var_sum += var
    tarone = bd - resid_sum**2 / var_sum
    assert res.breslow_day == pytest.approx(bd, rel=1e-7, abs=1e-9)
    assert res.tarone == pytest.approx(tarone, rel=1e-7, abs=1e-9)


@given(_tables(), st.randoms(use_true_random=False))
@settings(max_examples=40)
def test_study_order_and_group_swap(t: dict[str, np.ndarray], rnd: Any) -> None:
    # the MH and Peto estimates do not depend on the order of the studies; swapping the
    # groups negates the log OR (and the RD); swapping the outcomes negates the log OR
    order = list(range(len(t["ai"])))
    rnd.shuffle(order)
    for measure in ("OR", "RD"):
        res = _quiet(pool_mh, **t, measure=measure)
        if res is None:
            continue
        shuffled = pool_mh(**{k: v[order] for k, v in t.items()}, measure=measure)
        assert shuffled.estimate == pytest.approx(res.estimate, rel=1e-12, abs=1e-13)
        assert shuffled.q == pytest.approx(res.q, rel=1e-9, abs=1e-12)
        swapped = pool_mh(ai=t["ci"], bi=t["di"], ci=t["ai"], di=t["bi"], measure=measure)
        assert swapped.estimate == pytest.approx(-res.estimate, rel=1e-12, abs=1e-13)
        assert swapped.se == pytest.approx(res.se, rel=1e-12)
    peto = _quiet(pool_peto, **t)
    if peto is not None:
        flipped = pool_peto(ai=t["bi"], bi=t["ai"], ci=t["di"], di=t["ci"])
        # (Σ(O - E) cancels: absolute rounding of the sum of the cells' size)
        assert flipped.estimate == pytest.approx(-peto.estimate, rel=1e-12, abs=1e-11)


@given(_tables(min_k=1, max_k=8))
@settings(max_examples=40)
def test_batch_rows_equal_the_single_function(t: dict[str, np.ndarray]) -> None:
    # pool_mh_many row i is pool_mh of that row's studies, to 1e-12 (one engine)
    k = len(t["ai"])
    pad = {key: np.concatenate([v, [np.nan, np.nan]]) for key, v in t.items()}  # ragged row
    batch = {key: np.stack([v, pad[key][: k + 2]]) for key, v in pad.items()}
    for measure in ("OR", "RR", "RD"):
        many = pool_mh_many(**batch, measure=measure)
        one = _quiet(pool_mh, **t, measure=measure)
        if one is None:
            assert set(many.failed) == {0, 1}
            continue
        _assert_row_equal(many, 0, one)
        _assert_row_equal(many, 1, one)
    many = pool_peto_many(**batch)
    one = _quiet(pool_peto, **t)
    if one is not None:
        _assert_row_equal(many, 1, one)


def _assert_row_equal(many: Any, i: int, one: Any) -> None:
    for name in many.fields:
        got, exp = float(np.asarray(getattr(many, name))[i]), float(getattr(one, name))
        if math.isnan(exp):
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(exp, rel=1e-12, abs=1e-14), name


# ---------------------------------------------------------------------------------------------
# zero cells, results, printing


def test_zero_cells_need_no_correction_inside_mh() -> None:
    # the MH estimate uses the raw cells: add/to change only the study-level effects (and
    # Q), unless a second value asks for a correction inside the estimate (RevMan-style)
    cells = {
        "ai": [0, 2, 1, 0],
        "bi": [50, 48, 60, 40],
        "ci": [3, 5, 0, 0],
        "di": [47, 45, 61, 40],
    }
    base = pool_mh(**cells)
    other = pool_mh(**cells, add=0.1, to="all")
    assert other.estimate == base.estimate
    assert other.q != base.q
    revman = pool_mh(**cells, add=(0.5, 0.5), to=("only0", "only0"))
    assert revman.estimate > base.estimate  # towards the null (the estimate is negative)
    assert base.double_zero == ("Study 4",)
    assert base.k == 4
    assert base.k_yi == 3
    assert math.isnan(base.yi[3])
    assert base.weights[3] == 0.0  # b*c = 0: no MH weight for the OR
    dropped = pool_mh(**cells, drop00=(True, True))
    assert dropped.k == 3
    assert not dropped.in_estimate[3]
    assert dropped.estimate == base.estimate  # a double zero adds nothing to the MH OR
    rd = pool_mh(**cells, measure="RD")
    rd_dropped = pool_mh(**cells, measure="RD", drop00=(True, True))
    assert rd.estimate != rd_dropped.estimate  # ... but weight to the MH RD
    notes = rd_dropped.notes()
    assert notes[3].startswith("not pooled: double zero")


def test_summary_prints_both_scales_and_the_tests() -> None:
    data = ketameta.datasets.bcg()
    res = pool_mh(ai="tpos", bi="tneg", ci="cpos", di="cneg", data=data, labels="author")
    text = res.summary()
    assert text.startswith("Equal-Effects Model (k = 13; Mantel-Haenszel, log odds ratio)")
    assert "Q(df = 12) = 163.9426, p-val < .0001" in text
    assert "Model Results (log scale):" in text
    assert "Model Results (OR scale):" in text
    # the columns widen to their values: two spaces before each (as pool's and metafor's)
    assert " estimate       se      zval     pval    ci.lb    ci.ub\n" in text
    assert "\n  -0.4734   0.0410  -11.5444   <.0001  -0.5538  -0.3930\n" in text
    assert "   0.6229   0.5748   0.6750" in text
    # metafor 3.8-1 print(rma.mh(...)) writes these two lines with "< 0.0001" (its Q line
    # with "< .0001"), the values and df aligned between them
    assert "Cochran-Mantel-Haenszel Test:    CMH = 135.6889, df = 1,  p-val < 0.0001" in text
    assert "Tarone's Test for Heterogeneity: X^2 = 171.7567, df = 12, p-val < 0.0001" in text
    five = pool_mh(
        ai="tpos",
        bi="tneg",
        ci="cpos",
        di="cneg",
        data={c: data[c][:5] for c in ("tpos", "tneg", "cpos", "cneg")},
    ).summary()
    assert "Q(df = 4) = 22.9533, p-val = 0.0001" in five  # metafor, dat.bcg[1:5, ]
    assert "Cochran-Mantel-Haenszel Test:    CMH = 128.8608, df = 1, p-val < 0.0001" in five
    assert "Tarone's Test for Heterogeneity: X^2 =  24.3962, df = 4, p-val < 0.0001" in five
    assert " -76.4178  163.9426  154.8356  155.4006  155.1993" in text  # metafor's summary()
    rd = pool_mh(ai="tpos", bi="tneg", ci="cpos", di="cneg", data=data, measure="RD")
    assert "scale" not in rd.summary()
    assert "Cochran" not in rd.summary()
    irr = pool_mh(x1i=[9, 8], t1i=[413, 263], x2i=[19, 19], t2i=[398, 245], measure="IRR")
    assert "Model Results (IRR scale):" in irr.summary()
    assert "Mantel-Haenszel Test: MH = " in irr.summary()
    peto = pool_peto(ai="tpos", bi="tneg", ci="cpos", di="cneg", data=data)
    assert "Peto's method" in peto.summary()
    assert "(OR scale)" in peto.summary()


def test_results_carry_labels_and_serialise() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "trial": ["A", "B", "C", "D"],
            "a": [1, 0, np.nan, 4],
            "n1": [20, 30, 25, 40],
            "c": [3, 0, 2, 6],
            "n2": [20, 30, 25, 40],
        }
    )
    with pytest.warns(
        ketameta.OmittedStudiesWarning, match=r"1 study omitted: C \(index 2\) has missing cells"
    ):
        res = pool_mh(ai="a", n1i="n1", ci="c", n2i="n2", data=frame, labels="trial")
    assert res.labels == ("A", "B", "C", "D")
    assert res.omitted == (2,)
    assert res.double_zero == ("B",)
    studies = res.studies()
    assert list(studies["label"]) == ["A", "B", "C", "D"]
    assert list(studies.columns[:5]) == ["label", "ai", "bi", "ci", "di"]
    assert studies["note"][2] == "omitted: missing value"
    assert studies["note"][1].startswith("no study-level effect: double zero")
    assert studies["weight"].sum() == pytest.approx(100.0)
    d = res.to_dict()
    json.dumps(d)
    assert d["labels"] == ["A", "B", "C", "D"]
    assert d["yi"][2] is None
    row = res.to_frame()
    assert row.shape[0] == 1
    assert row["estimate"][0] == res.estimate
    assert "MHResult(measure='OR', k=3" in repr(res)
    # results never alias their inputs
    a = np.array([1.0, 2.0, 4.0])
    n = np.array([20.0, 30.0, 40.0])
    r2 = pool_mh(ai=a, n1i=n, ci=a + 1, n2i=n)
    a[0] = 99
    assert r2.cells[0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        r2.yi[0] = 0.0


# ---------------------------------------------------------------------------------------------
# bad input and undefined estimates


_T = {"ai": [1, 2], "bi": [3, 4], "ci": [1, 2], "di": [3, 4]}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ai": [1, 2], "bi": [3, 4], "ci": [1, 2]}, TypeError, "needs"),
        ({**_T, "di": [3]}, ValueError, "same shape"),
        ({**_T, "ai": [1, -2]}, ValueError, "`ai` must be non-negative; study 1"),
        ({**_T, "bi": [3, np.inf]}, ValueError, "`bi` must be finite"),
        (
            {"ai": [5, 2], "n1i": [3, 4], "ci": [1, 2], "n2i": [3, 4]},
            ValueError,
            "`ai` cannot exceed `n1i`; study 0",
        ),
        ({**_T, "ai": [0, 2], "bi": [0, 4]}, ValueError, "study 0 has no participants"),
        ({**_T, "measure": "XX"}, ValueError, "unknown `measure`"),
        ({**_T, "measure": "IRR"}, TypeError, "needs x1i"),
        ({"x1i": [1], "t1i": [3], "x2i": [1], "t2i": [3]}, TypeError, "needs 2x2 tables"),
        ({**_T, "level": 95}, ValueError, "`level`"),
        ({**_T, "add": -1}, ValueError, "`add`"),
        ({**_T, "to": "some"}, ValueError, "`to`"),
        ({**_T, "drop00": "yes"}, TypeError, "`drop00`"),
        ({**_T, "labels": ["x"]}, ValueError, "`labels` has 1"),
        ({**_T, "ai": ["a", 2]}, TypeError, "`ai` must be numeric"),
        ({"ai": [], "bi": [], "ci": [], "di": []}, ValueError, "no studies"),
        ({**_T, "ai": [0, 0]}, ValueError, "odds ratio is 0 or infinite"),
        ({**_T, "ai": [0, 0], "ci": [0, 0], "measure": "RD"}, ValueError, "no variance"),
    ],
)
def test_bad_input_is_named(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        pool_mh(**kwargs)


def test_peto_errors_and_nan_policy() -> None:
    with pytest.raises(ValueError, match="never occurs"):
        pool_peto(ai=[0, 0], bi=[3, 4], ci=[0, 0], di=[5, 6])
    with pytest.raises(ValueError, match="nan_policy='raise'"):
        pool_peto(ai=[1, np.nan], bi=[3, 4], ci=[2, 1], di=[5, 6], nan_policy="raise")
    with pytest.raises(ValueError, match="every study has a missing cell"):
        pool_peto(ai=[np.nan], bi=[3], ci=[2], di=[5])
    with pytest.raises(TypeError, match="also got `n1i`"):
        pool_peto(ai=[1], bi=[3], ci=[2], di=[5], n1i=[4])


def test_single_study_and_one_usable_table() -> None:
    # k = 1: Q = 0 on 0 df with p = 1 and H² = 1, Tarone's test has 0 df and no p-value
    # (as metafor prints it: "X^2 = 0.0000, df = 0, p-val = NA")
    res = pool_mh(ai=[1], bi=[10], ci=[2], di=[10])
    assert (res.q, res.q_df, res.q_pvalue, res.h2, res.i2) == (0.0, 0, 1.0, 1.0, 0.0)
    assert res.tarone == 0.0
    assert res.tarone_df == 0
    assert math.isnan(res.tarone_pvalue)
    assert "df = 0, p-val NA" in res.summary()


# ---------------------------------------------------------------------------------------------
# many analyses


def _random_batch(seed: int, m: int = 400, k: int = 9) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n1 = rng.integers(5, 300, (m, k)).astype(float)
    n2 = rng.integers(5, 300, (m, k)).astype(float)
    p = rng.uniform(0.001, 0.2, (m, 1))
    a = rng.binomial(n1.astype(int), p).astype(float)
    c = rng.binomial(n2.astype(int), p * rng.uniform(0.5, 2, (m, 1))).astype(float)
    keep = rng.integers(1, k + 1, m)
    absent = np.arange(k)[None, :] >= keep[:, None]
    a[absent] = np.nan
    c[absent] = np.nan
    a[0] = 0.0  # no events in group 1: the OR and RR are undefined
    c[0] = 0.0
    return {"ai": a, "n1i": n1, "ci": c, "n2i": n2}


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_pool_mh_many_rows_equal_pool_mh(measure: str) -> None:
    cells = _random_batch(11)
    many = pool_mh_many(**cells, measure=measure)
    assert many.shape == (400,)
    assert 0 in many.failed  # no events in row 0: undefined OR/RR, RD without variance
    for i in [*range(0, 400, 13), *many.failed]:
        if i in many.failed:
            # a row fails exactly when pool_mh raises for it, for the same reason
            assert math.isnan(float(many.estimate[i]))
            row = {k: v[i][~np.isnan(cells["ai"][i])] for k, v in cells.items()}
            with pytest.raises(ValueError, match=many.failed[i].split(":")[0]):
                pool_mh(**row, measure=measure)
            continue
        _assert_row_equal(many, i, many[i])
        row = {k: v[i][~np.isnan(cells["ai"][i])] for k, v in cells.items()}
        _assert_row_equal(many, i, pool_mh(**row, measure=measure))


def test_pool_many_person_time_axis_and_failures() -> None:
    rng = np.random.default_rng(5)
    t1 = rng.uniform(100, 1000, (6, 50))
    t2 = rng.uniform(100, 1000, (6, 50))
    x1 = rng.poisson(t1 * 0.01).astype(float)
    x2 = rng.poisson(t2 * 0.015).astype(float)
    x1[:, 3] = np.nan  # the 4th analysis has no studies (studies on axis 0 here)
    many = pool_mh_many(x1i=x1, t1i=t1, x2i=x2, t2i=t2, measure="IRR", axis=0)
    assert many.shape == (50,)
    assert many.failed == {3: "no studies (every table has a missing cell)"}
    one = pool_mh(x1i=x1[:, 7], t1i=t1[:, 7], x2i=x2[:, 7], t2i=t2[:, 7], measure="IRR")
    _assert_row_equal(many, 7, one)
    frame = many.to_frame()
    assert frame.shape == (50, len(many.fields))
    assert "cmh_pvalue" in frame
    d = many.to_dict()
    json.dumps(d)
    assert d["failed"] == {"3": "no studies (every table has a missing cell)"}
    with pytest.raises(ValueError, match="was not pooled"):
        many[3]


def test_pool_many_bad_input_names_analysis_and_study() -> None:
    cells = _random_batch(3, m=5)
    cells["n1i"][2, 4] = -1.0
    with pytest.raises(
        ValueError, match=r"`n1i` must be positive and finite .*analysis 2, study 4"
    ):
        pool_mh_many(**cells)
    with pytest.raises(ValueError, match="`chunk_size`"):
        pool_peto_many(**_random_batch(3, m=5), chunk_size=0)
    with pytest.raises(TypeError, match="`ai` must be numeric"):
        pool_peto_many(ai="a", n1i=[1], ci=[1], n2i=[1])


def test_pool_many_threads_do_not_change_the_numbers() -> None:
    # chunks in threads write their own rows: every statistic equal bit for bit
    cells = _random_batch(9, m=3000)
    one = pool_mh_many(**cells, chunk_size=100, workers=1)
    for workers in (2, 3, None):
        res = pool_mh_many(**cells, chunk_size=100, workers=workers)
        for name in one.fields:
            np.testing.assert_array_equal(getattr(res, name), getattr(one, name))
        assert res.failed == one.failed
    peto = pool_peto_many(**cells, chunk_size=64, workers=2)
    np.testing.assert_array_equal(peto.estimate, pool_peto_many(**cells, workers=1).estimate)
    # an invalid cell is reported for the first analysis in row order, threads or not
    cells["n1i"][2500, 1] = -1.0
    cells["n1i"][1234, 0] = -1.0
    for workers in (1, 2):
        with pytest.raises(ValueError, match=r"analysis 1234, study 0"):
            pool_mh_many(**cells, chunk_size=100, workers=workers)
    with pytest.raises(ValueError, match="`workers`"):
        pool_mh_many(**_random_batch(3, m=5), workers=0)


def test_pool_many_chunks_and_dask() -> None:
    da = pytest.importorskip("dask.array")
    cells = _random_batch(8, m=1000)
    ref = pool_mh_many(**cells)
    small = pool_mh_many(**cells, chunk_size=7)
    np.testing.assert_array_equal(small.estimate, ref.estimate)
    lazy = pool_mh_many(**{k: da.from_array(v, chunks=(300, 9)) for k, v in cells.items()})
    assert type(lazy.i2).__module__.startswith("dask")
    done = lazy.compute()
    np.testing.assert_allclose(done.estimate, ref.estimate, rtol=1e-15, equal_nan=True)
    np.testing.assert_allclose(done.tarone_pvalue, ref.tarone_pvalue, rtol=1e-15, equal_nan=True)
    assert done.failed == ref.failed
    _assert_row_equal(ref, 5, lazy[5])
    peto = pool_peto_many(**{k: da.from_array(v, chunks=(250, 9)) for k, v in cells.items()})
    np.testing.assert_allclose(
        peto.compute().estimate, pool_peto_many(**cells).estimate, rtol=1e-15, equal_nan=True
    )


# ---------------------------------------------------------------------------------------------
# the study-level effects: the engine's vectorised formulas are escalc's


@pytest.mark.parametrize("measure", ["OR", "RR", "RD", "PETO", "IRR", "IRD"])
@pytest.mark.parametrize(
    ("add", "to", "drop00"), [(0.5, "only0", True), (0.25, "all", False), (0.5, "none", False)]
)
def test_study_effects_are_escalcs(measure: str, add: float, to: str, drop00: bool) -> None:
    # pool_mh/pool_peto compute the study-level effects in the engine (arithmetic masks, so
    # that batches need no data-dependent selection); they must be escalc's, value for value
    from ketameta._engine import fixed

    rng = np.random.default_rng(4)
    k = 40
    if measure in ("IRR", "IRD"):
        t1, t2 = rng.uniform(10, 500, k), rng.uniform(10, 500, k)
        x1, x2 = rng.poisson(t1 * 0.01).astype(float), rng.poisson(t2 * 0.01).astype(float)
        x1[:3], x2[:2] = 0, 0  # a double zero and single zeros
        cols = {"x1i": x1, "t1i": t1, "x2i": x2, "t2i": t2}
    else:
        n1, n2 = rng.integers(5, 60, k).astype(float), rng.integers(5, 60, k).astype(float)
        a, c = rng.binomial(n1.astype(int), 0.1).astype(float), rng.binomial(n2.astype(int), 0.1)
        a[:3], c[:2] = 0, 0
        a[5], c[5] = n1[5], n2[5]  # only events in both groups
        cols = {"ai": a, "bi": n1 - a, "ci": c.astype(float), "di": n2 - c}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.ZeroCellWarning)
        es = ketameta.escalc(measure, add=add, to=to, drop00=drop00, **cols)
    with np.errstate(all="ignore"):
        yi, vi, okf = fixed.study_effects(
            tuple(cols.values()), None, measure, add=add, to=to, drop00=drop00
        )
    yi = np.where(okf > 0, yi, np.nan)
    vi = np.where(okf > 0, vi, np.nan)
    # one deliberate difference: an effect with variance 0 (e.g. a risk difference of 0 - 0
    # without `add`) has no weight 1/v; escalc reports it, the engine leaves it out of Q
    # (metafor reports Q = inf there, against ketameta's contract)
    zero_variance = es.vi == 0
    assert np.isnan(yi[zero_variance]).all()
    expected_yi = np.where(zero_variance, np.nan, es.yi)
    expected_vi = np.where(zero_variance, np.nan, es.vi)
    np.testing.assert_allclose(yi, expected_yi, rtol=1e-14, atol=1e-15, equal_nan=True)
    np.testing.assert_allclose(vi, expected_vi, rtol=1e-14, equal_nan=True)


def test_escalc_drops_person_time_double_zeros_as_metafor() -> None:
    # metafor's escalc("IRR"/"IRD", drop00=TRUE) gives NA where x1i = x2i = 0 (its yi.f in
    # rma.mh's output, metafor_binary.json, pt_rare1)
    case = next(
        c for c in GENERATED["cases"] if c["dataset"] == "pt_rare1" and c["measure"] == "IRR"
    )
    with pytest.warns(
        ketameta.ZeroCellWarning, match=r"IRR is undefined for Study 1 \(index 0\): zero cells"
    ):
        es = ketameta.escalc("IRR", drop00=True, **_columns("pt_rare1"))
    np.testing.assert_allclose(es.yi, as_float(case["value"]["yi"]), rtol=1e-12, equal_nan=True)


def test_breslow_day_and_tarone_near_a_bound_against_high_precision() -> None:
    # A table whose fitted first cell lies 0.01 below its bound (110 of 110): computed as
    # a margin minus that cell, the others lose 1e-12 (metafor 3.8.1 rma.mh prints
    # BD = 175.11779251666641, TA = 175.10315804486777, 2e-12 and 3e-12 from the truth);
    # the batch and single paths then disagreed beyond 1e-12 (a hypothesis find). Oracle:
    # Breslow & Day (1980) / Tarone (1985) evaluated with mpmath at 50 digits, the MH odds
    # ratio from exact fractions.
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    ai, bi, ci, di = [110, 3, 5, 2], [0, 20, 30, 10], [0, 7, 9, 3], [1, 25, 20, 15]
    n = [a + b + c + d for a, b, c, d in zip(ai, bi, ci, di, strict=True)]
    psi_exact = Fraction(sum(Fraction(a * d, t) for a, d, t in zip(ai, di, n, strict=True))) / sum(
        Fraction(b * c, t) for b, c, t in zip(bi, ci, n, strict=True)
    )
    psi = mpmath.mpf(psi_exact.numerator) / psi_exact.denominator
    bd, sr, sv = mpmath.mpf(0), mpmath.mpf(0), mpmath.mpf(0)
    for a, b, c, d in zip(ai, bi, ci, di, strict=True):
        n1, n2, m1 = a + b, c + d, a + c
        lo, hi = max(0, m1 - n2), min(n1, m1)
        fitted = mpmath.findroot(
            lambda x, n1=n1, n2=n2, m1=m1: x * (n2 - m1 + x) - psi * (n1 - x) * (m1 - x),
            (lo + mpmath.mpf(10) ** -30, hi - mpmath.mpf(10) ** -30),
            solver="anderson",
        )
        var = 1 / (1 / fitted + 1 / (n1 - fitted) + 1 / (m1 - fitted) + 1 / (n2 - m1 + fitted))
        bd += (a - fitted) ** 2 / var
        sr += a - fitted
        sv += var
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = pool_mh(ai=ai, bi=bi, ci=ci, di=di, measure="OR")
    assert got.breslow_day == pytest.approx(float(bd), rel=1e-13)
    assert got.tarone == pytest.approx(float(bd - sr**2 / sv), rel=1e-13)


@pytest.mark.parametrize("shape", [(15,), (40, 9)])
def test_fitted_tables_stacked_and_cell_by_cell_agree_bit_for_bit(
    shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Breslow-Day's fitted cells are solved in one set of NumPy calls for small inputs and
    # cell by cell for large ones: the same arithmetic, so the same bits and memory order
    # (a batch's rows equal the single fits, and Dask blocks equal NumPy chunks)
    from ketameta._engine import fixed

    rng = np.random.default_rng(5)
    n1 = np.asfortranarray(rng.integers(1, 300, shape).astype(float))
    n2 = np.asfortranarray(rng.integers(1, 300, shape).astype(float))
    m1 = np.asfortranarray(np.floor(rng.uniform(0, 1, shape) * (n1 + n2)))
    m0 = n1 + n2 - m1
    psi = np.asarray(rng.uniform(0.05, 20.0, shape[:-1]))
    with np.errstate(all="ignore"):
        stacked = fixed._fitted_table(n1, n2, m1, m0, psi)
        monkeypatch.setattr(fixed, "_STACK_TABLES", 0)
        by_cell = fixed._fitted_table(n1, n2, m1, m0, psi)
    for x, y in zip(stacked, by_cell, strict=True):
        assert x.shape == shape
        np.testing.assert_array_equal(x, y)
        assert x.flags.f_contiguous == y.flags.f_contiguous
    # each is the root of its table's equation (x11 (n2 - m1 + x11) = ψ (n1 - x11)(m1 - x11))
    x11 = stacked[0]
    psi_c = psi[..., None] if psi.ndim else psi
    lhs = x11 * (n2 - m1 + x11)
    rhs = psi_c * (n1 - x11) * (m1 - x11)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9)
    # and the four add up to the margins
    np.testing.assert_allclose(stacked[0] + stacked[1], n1, rtol=1e-12)
    np.testing.assert_allclose(stacked[0] + stacked[2], m1, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# fields computed when first read (single analyses)

_LAZY_CASES = [
    ("mh", "OR", {}),
    ("mh", "RR", {}),
    ("mh", "RD", {"rd_variance": "gr"}),
    ("mh", "IRR", {}),
    ("mh", "IRD", {}),
    ("peto", "PETO", {}),
    ("mh", "OR", {"add": (0.5, 0.5), "to": ("only0", "only0"), "drop00": (True, True)}),
]


def _lazy_inputs(measure: str) -> dict[str, np.ndarray]:
    if measure in ("IRR", "IRD"):
        return {
            "x1i": np.array([0.0, 3.0, 5.0, 2.0, np.nan]),
            "t1i": np.array([100.0, 120.0, 90.0, 80.0, 50.0]),
            "x2i": np.array([0.0, 6.0, 8.0, 4.0, 1.0]),
            "t2i": np.array([110.0, 100.0, 95.0, 70.0, 60.0]),
        }
    return {
        "ai": np.array([0.0, 3.0, 5.0, 2.0, 7.0, np.nan]),
        "bi": np.array([20.0, 27.0, 45.0, 18.0, 33.0, 10.0]),
        "ci": np.array([0.0, 6.0, 8.0, 4.0, 9.0, 1.0]),
        "di": np.array([25.0, 24.0, 42.0, 16.0, 31.0, 12.0]),
    }


def _call(model: str, measure: str, kwargs: dict[str, Any], cells: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        if model == "peto":
            return pool_peto(**cells, **kwargs)
        return pool_mh(**cells, measure=measure, **kwargs)


@pytest.mark.parametrize(("model", "measure", "kwargs"), _LAZY_CASES)
def test_lazy_fields_equal_the_batch_engine_and_survive_pickling(
    model: str, measure: str, kwargs: dict[str, Any]
) -> None:
    # A single analysis computes its study-level table, Q, fit statistics and the OR's
    # tests when first read (binary._LazyFields). Oracle: the batch engine (one row of
    # pool_mh_many / pool_peto_many, every statistic computed at once) for the primary
    # statistics; every field of the class must be readable, in any order, and a result
    # pickled or compared before any lazy field was read must carry the same values.
    import pickle

    import attrs

    cells = _lazy_inputs(measure)
    names = [f.name for f in attrs.fields(type(_call(model, measure, kwargs, cells)))]
    forward = _call(model, measure, kwargs, cells)
    values = {name: getattr(forward, name) for name in names}
    backward = _call(model, measure, kwargs, cells)
    for name in reversed(names):
        assert ketameta._results.values_equal(getattr(backward, name), values[name]), name
    fresh = _call(model, measure, kwargs, cells)
    restored = pickle.loads(pickle.dumps(fresh))
    assert restored == forward
    assert _call(model, measure, kwargs, cells) == forward  # (== on unread results)
    assert not restored.yi.flags.writeable
    assert not restored.cells.flags.writeable
    assert json.dumps(_call(model, measure, kwargs, cells).to_dict())
    batch_cells = {k: v[None, ~np.isnan(cells[next(iter(cells))])] for k, v in cells.items()}
    with np.errstate(all="ignore"):
        if model == "peto":
            many = pool_peto_many(**batch_cells, **kwargs)
        else:
            many = pool_mh_many(**batch_cells, measure=measure, **kwargs)
    for name in many.fields:
        exp = float(np.asarray(getattr(many, name))[0])
        got = float(values[name])
        assert got == pytest.approx(exp, rel=1e-13, abs=1e-15, nan_ok=True), name


def test_lazy_fields_do_not_alias_the_inputs() -> None:
    # the fields computed on first read come from the result's own copy of the cells:
    # changing the input arrays after the call changes nothing (docs/contract.md)
    cells = _lazy_inputs("OR")
    expected = _call("mh", "OR", {}, {k: v.copy() for k, v in cells.items()})
    res = _call("mh", "OR", {}, cells)
    for arr in cells.values():
        arr[:] = 1.0
    assert res == expected
    assert res.tarone == expected.tarone
    assert np.array_equal(res.yi, expected.yi, equal_nan=True)


def test_unknown_attributes_still_raise() -> None:
    res = pool_mh(ai=[1, 2], bi=[3, 4], ci=[2, 1], di=[3, 5])
    with pytest.raises(AttributeError, match="no attribute 'tarone_p'"):
        _ = res.tarone_p  # type: ignore[attr-defined]
    assert not hasattr(res, "_pending_missing")


def test_batch_cells_are_the_results_own_copy() -> None:
    # pool_mh_many reads plain float64 input in place and copies it chunk by chunk into
    # the result's own (column-major) arrays: changing the input afterwards changes
    # neither the stored cells nor a row refitted from them, and the input is unchanged
    rng = np.random.default_rng(11)
    n1, n2 = rng.integers(10, 60, (7, 5)).astype(float), rng.integers(10, 60, (7, 5)).astype(float)
    a, c = np.floor(n1 * 0.2), np.floor(n2 * 0.3)
    a[2, 4] = np.nan
    cells = {"ai": a, "bi": n1 - a, "ci": c, "di": n2 - c}
    before = {k: v.copy() for k, v in cells.items()}
    many = pool_mh_many(**cells, chunk_size=3)
    row = many[2]
    for key, arr in cells.items():
        np.testing.assert_array_equal(arr, before[key])
        np.testing.assert_array_equal(many.cells[list(cells).index(key)], before[key])
        arr[:] = 1.0
    for key in cells:
        np.testing.assert_array_equal(many.cells[list(cells).index(key)], before[key])
    assert many[2] == row
    assert row.k == 4
