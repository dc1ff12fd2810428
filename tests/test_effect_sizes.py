"""escalc: every measure against metafor and publications; bad input; properties."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import MEASURES, escalc, hedges_correction

from .conftest import as_float, assert_printed, load_reference

GENERATED = load_reference("metafor_escalc.json")


def _case_id(case: dict[str, Any]) -> str:
    return str(case["call"])


@pytest.mark.parametrize("case", GENERATED["cases"], ids=_case_id)
def test_escalc_matches_metafor_generated(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 escalc() on the inputs stored with the answers
    # (validation/metafor/make_reference.R -> tests/reference/metafor_escalc.json).
    options = case["options"] if isinstance(case["options"], dict) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.ZeroCellWarning)
        es = escalc(case["measure"], **options, **case["inputs"])
    np.testing.assert_allclose(es.yi, as_float(case["yi"]), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(es.vi, as_float(case["vi"]), rtol=1e-10, atol=1e-14)


def _bcg_columns(shared_reference: dict[str, Any]) -> dict[str, list[float]]:
    rows = shared_reference["bcg-escalc-RR"]["value"]["inputs"]
    return {key: [row[key] for row in rows] for key in ("tpos", "tneg", "cpos", "cneg")}


@pytest.mark.parametrize("measure", ["RR", "OR", "RD", "AS", "PETO"])
def test_bcg_2x2_measures_match_shared_reference(
    shared_reference: dict[str, Any], measure: str
) -> None:
    # Oracle: ../shared/refvals/metafor_reference.json, escalc(measure, ai=tpos, ...) on dat.bcg
    ref = shared_reference[f"bcg-escalc-{measure}"]["value"]
    cols = _bcg_columns(shared_reference)
    es = escalc(measure, data=cols, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    np.testing.assert_allclose(es.yi, ref["yi"], rtol=1e-10)
    np.testing.assert_allclose(es.vi, ref["vi"], rtol=1e-10)


def test_bundled_bcg_equals_shared_inputs(shared_reference: dict[str, Any]) -> None:
    data = ketameta.datasets.bcg()
    cols = _bcg_columns(shared_reference)
    for key, values in cols.items():
        assert data[key] == values


@pytest.mark.parametrize("vtype", ["LS", "UB", "LS2"])
def test_normand1999_smd_matches_shared_reference(
    shared_reference: dict[str, Any], vtype: str
) -> None:
    # Oracle: metafor escalc("SMD", ..., vtype=vtype) on dat.normand1999 (shared refvals)
    ref = shared_reference[f"normand1999-escalc-SMD-{vtype}"]["value"]
    inputs = ref["inputs"]
    cols = {key: [row[key] for row in inputs] for key in inputs[0]}
    es = escalc("SMD", vtype=vtype, **cols)
    np.testing.assert_allclose(es.yi, ref["yi"], rtol=1e-10)
    np.testing.assert_allclose(es.vi, ref["vi"], rtol=1e-10)
    if vtype == "LS":
        rom = shared_reference["normand1999-escalc-ROM"]["value"]
        es_rom = escalc("ROM", **cols)
        np.testing.assert_allclose(es_rom.yi, rom["yi"], rtol=1e-10)
        np.testing.assert_allclose(es_rom.vi, rom["vi"], rtol=1e-10)


@pytest.mark.parametrize("measure", ["PR", "PLN", "PLO", "PAS", "PFT"])
def test_pritz1997_proportions_match_shared_reference(
    shared_reference: dict[str, Any], measure: str
) -> None:
    # Oracle: metafor escalc(measure, xi, ni) on dat.pritz1997 (shared refvals)
    inputs = shared_reference["pritz1997-escalc-PLO"]["value"]["inputs"]
    ref = shared_reference[f"pritz1997-escalc-{measure}"]["value"]
    es = escalc(measure, xi=[r["xi"] for r in inputs], ni=[r["ni"] for r in inputs])
    np.testing.assert_allclose(es.yi, ref["yi"], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(es.vi, ref["vi"], rtol=1e-10)


@pytest.mark.parametrize("measure", ["COR", "ZCOR"])
def test_molloy2014_correlations_match_shared_reference(
    shared_reference: dict[str, Any], measure: str
) -> None:
    # Oracle: metafor escalc(measure, ri, ni) on dat.molloy2014 (shared refvals)
    inputs = shared_reference["molloy2014-escalc-COR"]["value"]["inputs"]
    ref = shared_reference[f"molloy2014-escalc-{measure}"]["value"]
    es = escalc(measure, ri=[r["ri"] for r in inputs], ni=[r["ni"] for r in inputs])
    np.testing.assert_allclose(es.yi, ref["yi"], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(es.vi, ref["vi"], rtol=1e-10)


def test_egger2001_or_from_group_sizes(shared_reference: dict[str, Any]) -> None:
    # Oracle: metafor escalc("OR", ai, n1i, ci, n2i) on dat.egger2001 (shared refvals)
    ref = shared_reference["egger2001-escalc-OR"]["value"]
    inputs = ref["inputs"]
    cols = {key: [row[key] for row in inputs] for key in ("ai", "n1i", "ci", "n2i")}
    es = escalc("OR", **cols)
    np.testing.assert_allclose(es.yi, ref["yi"], rtol=1e-10)
    np.testing.assert_allclose(es.vi, ref["vi"], rtol=1e-10)


def test_morris2008_smcr_published(published: dict[str, Any]) -> None:
    # Source: Morris (2008) Organ Res Methods 11:364-386, Table 5 (p. 382), 4 decimals
    case = published["morris2008_SMCR_pretest_posttest"]
    c, exp = case["dataset"]["columns"], case["expected"]
    t = escalc(
        "SMCR", m1i=c["T_m_post"], m2i=c["T_m_pre"], sd1i=c["T_sd_pre"], ni=c["T_ni"], ri=c["ri"]
    )
    ctl = escalc(
        "SMCR", m1i=c["C_m_post"], m2i=c["C_m_pre"], sd1i=c["C_sd_pre"], ni=c["C_ni"], ri=c["ri"]
    )
    assert_printed(t.yi, exp["SMCR_T_yi"], 4)
    assert_printed(t.vi, exp["SMCR_T_vi"], 4)
    assert_printed(t.yi - ctl.yi, exp["SMCR_diff_yi_Table5"], 4)
    assert_printed(t.vi + ctl.vi, exp["SMCR_diff_vi"], 4)
    smcc = escalc(
        "SMCC",
        m1i=c["T_m_post"],
        m2i=c["T_m_pre"],
        sd1i=c["T_sd_post"],
        sd2i=c["T_sd_pre"],
        ni=c["T_ni"],
        ri=c["ri"],
    )
    assert_printed(smcc.yi, exp["SMCC_T_yi"], 4)


def test_normand1999_md_pooled_sd_published(published: dict[str, Any]) -> None:
    # Source: Normand (1999) Stat Med 18:321-359, Tables VIII-IX; pooled-SD variances
    case = published["normand1999_MD_pooledSD"]
    c, exp = case["dataset"]["columns"], case["expected"]
    es = escalc(
        "MD", vtype="HO", **{k: c[k] for k in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")}
    )
    assert_printed(es.yi, exp["yi"], 0)
    assert_printed(es.vi, exp["vi"], 4)
    lo, hi = es.ci()
    assert_printed(lo, exp["study_ci_lb"], 4)
    assert_printed(hi, exp["study_ci_ub"], 4)


def test_hand_computed_smd() -> None:
    # By hand: m1=10, m2=8, sd 2 and 2, n 10 and 10 -> d = 1, m = 18,
    # c(18) = Γ(9) / (3 Γ(8.5)) = 40320 / (3 · 14034.407...) = 0.957659...
    c18 = 40320.0 / (3.0 * 14034.407293483413)
    es = escalc("SMD", m1i=[10], sd1i=[2], n1i=[10], m2i=[8], sd2i=[2], n2i=[10])
    assert es.yi[0] == pytest.approx(c18, rel=1e-12)
    assert es.vi[0] == pytest.approx(0.2 + c18**2 / 40, rel=1e-12)


def test_hand_computed_peto_and_or() -> None:
    # By hand: a=10, b=90, c=20, d=80: log OR = log(800/1800); Peto: O-E = 10-15 = -5,
    # V = 30·170·0.25/199 = 6.4070..., yi = -5/V
    es = escalc("OR", ai=[10], bi=[90], ci=[20], di=[80])
    assert es.yi[0] == pytest.approx(np.log(800 / 1800), rel=1e-13)
    assert es.vi[0] == pytest.approx(1 / 10 + 1 / 90 + 1 / 20 + 1 / 80, rel=1e-13)
    peto = escalc("PETO", ai=[10], bi=[90], ci=[20], di=[80])
    v = 30 * 170 * 0.25 / 199
    assert peto.yi[0] == pytest.approx(-5 / v, rel=1e-13)
    assert peto.vi[0] == pytest.approx(1 / v, rel=1e-13)


def test_hedges_correction_limits() -> None:
    # c(m) = Γ(m/2)/(sqrt(m/2) Γ((m-1)/2)); c(2) = 1/(sqrt(1)·Γ(1/2)) · Γ(1) = 1/sqrt(pi)
    assert hedges_correction(2) == pytest.approx(1 / np.sqrt(np.pi), rel=1e-14)
    assert hedges_correction(1e6) == pytest.approx(1 - 3 / (4e6 - 1), rel=1e-9)


def test_data_mapping_and_arrays_agree() -> None:
    data = {"a": [4, 6], "b": [119, 300], "c": [11, 29], "d": [128, 274]}
    from_data = escalc("OR", data=data, ai="a", bi="b", ci="c", di="d")
    direct = escalc("OR", ai=data["a"], bi=data["b"], ci=data["c"], di=data["d"])
    assert from_data == direct


def test_pandas_dataframe_as_data() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(ketameta.datasets.bcg())
    es = escalc("RR", data=df, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    assert len(es) == 13
    frame = es.to_frame()
    assert list(frame.columns) == ["label", "ai", "bi", "ci", "di", "yi", "vi", "sei"]
    # the input columns as given, one row per study (the BCG table, Colditz et al. 1994)
    assert frame["ai"].tolist() == df["tpos"].tolist()
    assert frame["label"].tolist() == [f"Study {i}" for i in range(1, 14)]


def test_escalc_keeps_labels_and_inputs() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(ketameta.datasets.bcg())
    es = escalc(
        "RR",
        data=df,
        ai="tpos",
        n1i=df["tpos"] + df["tneg"],
        ci="cpos",
        n2i=df["cpos"] + df["cneg"],
        labels="author",
    )
    assert es.labels == tuple(df["author"])
    assert es.input_names == ("ai", "n1i", "ci", "n2i")
    np.testing.assert_array_equal(es.column("n1i"), df["tpos"] + df["tneg"])
    assert not es.inputs.flags.writeable
    with pytest.raises(KeyError, match="no input column 'bi'"):
        es.column("bi")
    # labels: numbers as printed, missing ones the default
    es = escalc("PR", xi=[1, 2, 3], ni=[10, 10, 10], labels=[1948.0, None, "C"])
    assert es.labels == ("1948", "Study 2", "C")
    with pytest.raises(ValueError, match="`labels` has 2 entries but there are 3 studies"):
        escalc("PR", xi=[1, 2, 3], ni=[10, 10, 10], labels=["A", "B"])
    with pytest.raises(TypeError, match="a column name needs `data=`"):
        escalc("PR", xi=[1, 2, 3], ni=[10, 10, 10], labels="author")
    d = es.to_dict()
    assert d["labels"] == ["1948", "Study 2", "C"]
    assert d["inputs"] == {"xi": [1.0, 2.0, 3.0], "ni": [10.0, 10.0, 10.0]}


def test_effect_sizes_object() -> None:
    es = escalc("RR", ai=[4, 6], bi=[119, 300], ci=[11, 29], di=[128, 274])
    assert len(es) == 2
    assert "RR" in repr(es)
    np.testing.assert_allclose(es.sei, np.sqrt(es.vi))
    lo, hi = es.ci(0.9)
    np.testing.assert_allclose((hi - lo) / 2, 1.6448536269514722 * es.sei, rtol=1e-12)
    with pytest.raises(ValueError, match="read-only"):
        es.yi[0] = 1.0
    d = es.to_dict()
    assert d["measure"] == "RR"
    assert len(d["yi"]) == 2


def test_missing_values_give_nan_for_that_study_only() -> None:
    es = escalc(
        "SMD",
        m1i=[1, np.nan, 3],
        sd1i=[1, 1, 1],
        n1i=[10, 10, 10],
        m2i=[0, 0, 0],
        sd2i=[1, 1, 1],
        n2i=[10, 10, 10],
    )
    assert np.isnan(es.yi[1])
    assert np.isnan(es.vi[1])
    assert np.isfinite(es.yi[[0, 2]]).all()


def test_inputs_are_not_modified() -> None:
    ai = np.array([0.0, 3.0])
    bi = np.array([10.0, 7.0])
    before = ai.copy(), bi.copy()
    escalc("OR", ai=ai, bi=bi, ci=[2, 0], di=[8, 10], to="all")
    np.testing.assert_array_equal(ai, before[0])
    np.testing.assert_array_equal(bi, before[1])


def test_read_only_and_integer_inputs() -> None:
    ai = np.array([4, 6])
    ai.setflags(write=False)
    es = escalc("OR", ai=ai, bi=(119, 300), ci=[11, 29], di=np.array([128, 274], dtype=np.int32))
    assert es.yi.dtype == np.float64


def test_undefined_effect_warns_and_is_nan() -> None:
    with pytest.warns(
        ketameta.ZeroCellWarning, match=r"^OR is undefined for Study 1 \(index 0\): "
    ) as rec:
        es = escalc("OR", ai=[0, 3], bi=[10, 7], ci=[2, 4], di=[8, 10], to="none")
    assert "; its yi and vi are NaN" in str(rec[0].message)
    assert np.isnan(es.yi[0])
    assert np.isfinite(es.yi[1])


def test_undefined_effects_are_named_by_label_and_index() -> None:
    # as the omitted-study warnings: the label and the 0-based index in the whole input
    with pytest.warns(
        ketameta.ZeroCellWarning,
        match=r"OR is undefined for Stein 1953 \(index 0\), Jones \(index 2\): zero cells "
        r"or counts, see `add`/`to`; their yi and vi are NaN",
    ):
        es = escalc(
            "OR",
            ai=[0, 3, 0],
            bi=[10, 7, 5],
            ci=[0, 4, 0],
            di=[8, 10, 6],
            to="none",
            labels=["Stein 1953", "Smith", "Jones"],
        )
    assert np.isnan(es.yi[[0, 2]]).all()
    assert es.labels == ("Stein 1953", "Smith", "Jones")


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"measure": "XYZ", "ai": [1]}, ValueError, "unknown `measure`.*'SMD'"),
        (
            {"measure": "OR", "ai": [1, 2], "bi": [1], "ci": [1, 2], "di": [1, 2]},
            ValueError,
            "`bi` has 1 studies but `ai` has 2",
        ),
        (
            {"measure": "OR", "ai": [1, -2], "bi": [1, 1], "ci": [1, 2], "di": [1, 2]},
            ValueError,
            r"`ai` must be non-negative; study 1",
        ),
        (
            {
                "measure": "SMD",
                "m1i": [1, 2],
                "sd1i": [1, -1],
                "n1i": [5, 5],
                "m2i": [0, 0],
                "sd2i": [1, 1],
                "n2i": [5, 5],
            },
            ValueError,
            r"`sd1i` must be non-negative; study 1",
        ),
        (
            {
                "measure": "SMD",
                "m1i": [1],
                "sd1i": [1],
                "n1i": [1],
                "m2i": [0],
                "sd2i": [1],
                "n2i": [5],
            },
            ValueError,
            r"`n1i` must be at least 2.*study 0",
        ),
        (
            {"measure": "PR", "xi": [3, 12], "ni": [10, 10]},
            ValueError,
            r"`xi` cannot exceed `ni`; study 1",
        ),
        (
            {"measure": "COR", "ri": [0.2, 1.5], "ni": [10, 10]},
            ValueError,
            r"`ri` must be within \[-1, 1\]; study 1",
        ),
        (
            {"measure": "OR", "ai": [1, "x"], "bi": [1, 1], "ci": [1, 2], "di": [1, 2]},
            TypeError,
            r"`ai` must be numeric \(study 1\)",
        ),
        ({"measure": "OR", "ai": [1]}, TypeError, "missing: bi, ci, di"),
        (
            {
                "measure": "MD",
                "m1i": [1],
                "sd1i": [1],
                "n1i": [5],
                "m2i": [0],
                "sd2i": [1],
                "n2i": [5],
                "ri": [0.5],
            },
            TypeError,
            "does not use `ri`",
        ),
        (
            {"measure": "OR", "ai": [[1, 2]], "bi": [[1, 1]], "ci": [[1, 2]], "di": [[1, 2]]},
            ValueError,
            "`ai` must be 1-dimensional",
        ),
        (
            {"measure": "OR", "ai": [1], "bi": [1], "ci": [1], "di": [1], "to": "some"},
            ValueError,
            "unknown `to`",
        ),
        (
            {
                "measure": "SMD",
                "m1i": [1],
                "sd1i": [1],
                "n1i": [5],
                "m2i": [0],
                "sd2i": [1],
                "n2i": [5],
                "vtype": "XX",
            },
            ValueError,
            "unknown `vtype`",
        ),
        (
            {"measure": "IR", "xi": [1, 2], "ti": [10, np.inf]},
            ValueError,
            r"`ti` must be finite.*study 1",
        ),
    ],
)
def test_bad_input_is_named(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    measure = kwargs.pop("measure")
    with pytest.raises(error, match=pattern):
        escalc(measure, **kwargs)


def test_unknown_data_column() -> None:
    with pytest.raises(ValueError, match="`ai`='nope' is not a column of `data`"):
        escalc("OR", data={"a": [1]}, ai="nope", bi=[1], ci=[1], di=[1])


def test_every_measure_is_documented() -> None:
    assert set(MEASURES) == {
        "MD",
        "SMD",
        "SMDH",
        "ROM",
        "MC",
        "SMCC",
        "SMCR",
        "OR",
        "RR",
        "RD",
        "AS",
        "PETO",
        "PHI",
        "YUQ",
        "YUY",
        "OR2DN",
        "OR2DL",
        "PR",
        "PLN",
        "PLO",
        "PAS",
        "PFT",
        "COR",
        "UCOR",
        "ZCOR",
        "ARAW",
        "IR",
        "IRLN",
        "IRR",
        "IRD",
    }
    assert escalc.__doc__ is not None
    assert "References" in escalc.__doc__


# ---- properties ----------------------------------------------------------------------------

means = st.floats(-1e3, 1e3, allow_nan=False)
sds = st.floats(0.1, 100, allow_nan=False)
sizes = st.integers(2, 500)
counts = st.integers(1, 200)


@given(means, sds, sizes, means, sds, sizes)
def test_swapping_groups_negates_md_and_smd(
    m1: float, s1: float, n1: int, m2: float, s2: float, n2: int
) -> None:
    for measure in ("MD", "SMD"):
        a = escalc(measure, m1i=[m1], sd1i=[s1], n1i=[n1], m2i=[m2], sd2i=[s2], n2i=[n2])
        b = escalc(measure, m1i=[m2], sd1i=[s2], n1i=[n2], m2i=[m1], sd2i=[s1], n2i=[n1])
        np.testing.assert_allclose(a.yi, -b.yi, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.vi, b.vi, rtol=1e-12)
        assert np.all(a.vi > 0)
        assert np.all(np.isfinite(a.vi))


@given(counts, counts, counts, counts)
def test_swapping_groups_negates_binary_measures(a: int, b: int, c: int, d: int) -> None:
    for measure in ("OR", "RR", "RD"):
        x = escalc(measure, ai=[a], bi=[b], ci=[c], di=[d])
        y = escalc(measure, ai=[c], bi=[d], ci=[a], di=[b])
        np.testing.assert_allclose(x.yi, -y.yi, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(x.vi, y.vi, rtol=1e-12)
        assert np.all(x.vi > 0)
        assert np.all(np.isfinite(x.vi))


@given(means, sds, sizes, means, sds, sizes, st.floats(-1e3, 1e3), st.floats(0.01, 100))
def test_smd_invariant_to_shift_and_scale(
    m1: float, s1: float, n1: int, m2: float, s2: float, n2: int, shift: float, scale: float
) -> None:
    a = escalc("SMD", m1i=[m1], sd1i=[s1], n1i=[n1], m2i=[m2], sd2i=[s2], n2i=[n2])
    b = escalc(
        "SMD",
        m1i=[scale * m1 + shift],
        sd1i=[scale * s1],
        n1i=[n1],
        m2i=[scale * m2 + shift],
        sd2i=[scale * s2],
        n2i=[n2],
    )
    np.testing.assert_allclose(a.yi, b.yi, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(a.vi, b.vi, rtol=1e-8)


@given(st.integers(10, 10**6))
def test_exact_correction_approaches_approximation(m: int) -> None:
    exact = float(hedges_correction(m))
    approx = 1 - 3 / (4 * m - 1)
    # the approximation's error is O(m^-2)
    assert abs(exact - approx) <= 0.05 / m**2 + 1e-15
