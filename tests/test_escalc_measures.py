"""The escalc measures added for issue #14 (PHI, YUQ, YUY, OR2DN, OR2DL, UCOR, ARAW, COR's
vtype "AV") against metafor, 50-digit mpmath and the delta method; escalc's options at
their extremes; the small-sample correction's limits."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal
from fractions import Fraction
from typing import Any

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import escalc, hedges_correction

from .conftest import as_float, load_reference

REFERENCE = load_reference("metafor_escalc2.json")


def _inputs(case: dict[str, Any]) -> dict[str, Any]:
    return {key: as_float(value) for key, value in case["inputs"].items()}


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda case: str(case["call"]))
def test_new_measures_match_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 escalc() (gsl 2F1 for UCOR) on the stored inputs
    # (validation/metafor/make_escalc2_reference.R -> tests/reference/metafor_escalc2.json).
    options = case["options"] if isinstance(case["options"], dict) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.ZeroCellWarning)
        es = escalc(case["measure"], **options, **_inputs(case))
    yi, vi = as_float(case["yi"]), as_float(case["vi"])
    # metafor may return a vi where yi is NA (or the reverse); ketameta marks the study
    # missing as a whole
    missing = np.isnan(yi) | np.isnan(vi)
    np.testing.assert_array_equal(np.isnan(es.yi), missing)
    np.testing.assert_array_equal(np.isnan(es.vi), missing)
    np.testing.assert_allclose(es.yi[~missing], yi[~missing], rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(es.vi[~missing], vi[~missing], rtol=1e-10, atol=1e-300)


def test_reference_covers_every_new_measure_and_vtype() -> None:
    seen = {(c["measure"], (c["options"] or {}).get("vtype", "LS")) for c in REFERENCE["cases"]}
    expected = {
        ("PHI", "LS"),
        ("PHI", "CS"),
        ("PHI", "ST"),
        ("YUQ", "LS"),
        ("YUY", "LS"),
        ("OR2DN", "LS"),
        ("OR2DL", "LS"),
        ("UCOR", "LS"),
        ("UCOR", "UB"),
        ("UCOR", "AV"),
        ("COR", "AV"),
        ("ARAW", "LS"),
    }
    assert expected <= seen
    options = {tuple(sorted((c["options"] or {}).items())) for c in REFERENCE["cases"]}
    for zero_cell_option in (("to", "all"), ("to", "if0all"), ("to", "none"), ("drop00", True)):
        assert any(zero_cell_option in o for o in options)


# ---- UCOR against 50-digit mpmath -----------------------------------------------------------


def _ucor_exact(r: float, n: float) -> tuple[float, float, float]:
    """Olkin & Pratt (1958) eq. 2.3 and the unbiased variance (Hedges 1989, exact), in
    50-digit arithmetic: (r_u, LS variance, UB variance)."""
    mp.mp.dps = 50
    rr, nn = mp.mpf(r), mp.mpf(n)
    z = 1 - rr * rr
    ru = rr * mp.hyp2f1(mp.mpf(1) / 2, mp.mpf(1) / 2, (nn - 2) / 2, z)
    rho2 = 1 - (nn - 3) / (nn - 2) * z * mp.hyp2f1(1, 1, nn / 2, z)
    return float(ru), float((1 - ru**2) ** 2 / (nn - 1)), float(ru**2 - rho2)


# where R's gsl (and so metafor) loses digits, and SciPy's hyp2f1 even more (NaN for
# n > ~1000 near z = 1): tiny |r| at small n, |r| near 1, non-integer n near even integers
HARD_CASES = [
    (1e-8, 5),
    (1e-8, 6),
    (-3e-5, 7),
    (2e-3, 8),
    (0.999, 5),
    (0.999, 7),  # metafor's UB variance: 7e-10 off (its r_u² - ρ²_u cancels)
    (-0.9999, 6),
    (0.01, 1000),
    (0.05, 5000),
    (-0.2, 20000),
    (0.3, 5.9995),
    (0.3, 6.0005),
    (0.31, 6.001),
    (0.0, 9),
    (0.0, 10),
    (1.0, 12),
]


@pytest.mark.parametrize(("r", "n"), HARD_CASES)
def test_ucor_exact_where_metafor_and_scipy_lose_digits(r: float, n: float) -> None:
    # Oracle: 50-digit mpmath hyp2f1 (metafor 3.8-1 gives r_u = 1.5707963267948985e-08 at
    # r = 1e-8, n = 5, 6e-9 off; its UB variance is 1.3e-10 off at r = 0.999, n = 5)
    ru, v_ls, v_ub = _ucor_exact(r, n)
    es = escalc("UCOR", ri=[r], ni=[n])
    ub = escalc("UCOR", ri=[r], ni=[n], vtype="UB")
    assert es.yi[0] == pytest.approx(ru, rel=1e-12, abs=1e-300)
    assert es.vi[0] == pytest.approx(v_ls, rel=1e-12, abs=1e-300)
    assert ub.vi[0] == pytest.approx(v_ub, rel=1e-11, abs=1e-300)


@given(
    st.floats(-1.0, 1.0, allow_nan=False),
    st.one_of(st.integers(5, 2000), st.floats(5.0, 60.0)),
)
def test_ucor_matches_mpmath(r: float, n: float) -> None:
    # Oracle: 50-digit mpmath, any correlation and sample size (integers and not)
    ru, v_ls, v_ub = _ucor_exact(r, n)
    es = escalc("UCOR", ri=[r], ni=[n], vtype="UB")
    assert es.yi[0] == pytest.approx(ru, rel=1e-12, abs=1e-300)
    # UB: r_u² - ρ²_u cancels (both ≈ r²) by a factor up to ~ n r²/(1-r²)²; the
    # arrangement used keeps the error at a few ulp of r²
    assert es.vi[0] == pytest.approx(v_ub, rel=1e-11, abs=1e-15 * r * r)
    ls = escalc("UCOR", ri=[r], ni=[n])
    assert ls.vi[0] == pytest.approx(v_ls, rel=1e-11, abs=1e-300)


def test_ucor_and_cor_av_use_the_weighted_average_of_the_studies() -> None:
    # By hand: vtype "AV" plugs r̄ = Σ n r / Σ n into (1 - r̄²)²/(n - 1) (Borenstein 2009)
    ri, ni = [0.5, 0.2, np.nan], [10.0, 30.0, 20.0]
    es = escalc("COR", ri=ri, ni=ni, vtype="AV")
    rbar = Fraction(10 * Fraction("0.5") + 30 * Fraction("0.2"), 40)
    expected = [float((1 - rbar**2) ** 2 / (n - 1)) for n in (10, 30)]
    np.testing.assert_allclose(es.vi[:2], expected, rtol=1e-15)
    assert np.isnan(es.vi[2])


# ---- PHI's variances against the delta method -----------------------------------------------


def _phi_of(p: np.ndarray) -> float:
    a, b, c, d = p
    return float((a * d - b * c) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d)))


def _gradient(f: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.empty_like(x)
    for i in range(len(x)):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


tables = st.tuples(*(st.integers(1, 400) for _ in range(4)))


@given(tables)
def test_phi_cross_sectional_variance_is_the_multinomial_delta_method(cells: Any) -> None:
    # Oracle: the delta method with a numerical gradient of φ in the four cell
    # probabilities and the multinomial covariance (diag(p) - p pᵀ)/n (the closed form
    # used is Bishop, Fienberg & Holland 1975)
    x = np.array(cells, dtype=float)
    n = x.sum()
    p = x / n
    grad = _gradient(_phi_of, p)
    expected = grad @ ((np.diag(p) - np.outer(p, p)) / n) @ grad
    es = escalc("PHI", ai=[x[0]], bi=[x[1]], ci=[x[2]], di=[x[3]], vtype="CS")
    assert es.yi[0] == pytest.approx(_phi_of(p), rel=1e-12, abs=1e-15)
    assert es.vi[0] == pytest.approx(expected, rel=1e-6, abs=1e-12)


@given(tables)
def test_phi_stratified_variance_is_the_two_binomial_delta_method(cells: Any) -> None:
    # Oracle: the delta method in the two row proportions r1 = a/n1, r2 = c/n2 with row
    # totals fixed (independent binomials: Var r_j = r_j(1 - r_j)/n_j)
    a, b, c, d = (float(v) for v in cells)
    n1, n2 = a + b, c + d

    def phi(r: np.ndarray) -> float:
        return _phi_of(np.array([r[0] * n1, (1 - r[0]) * n1, r[1] * n2, (1 - r[1]) * n2]))

    r = np.array([a / n1, c / n2])
    grad = _gradient(phi, r)
    expected = grad[0] ** 2 * r[0] * (1 - r[0]) / n1 + grad[1] ** 2 * r[1] * (1 - r[1]) / n2
    es = escalc("PHI", ai=[a], bi=[b], ci=[c], di=[d], vtype="ST")
    assert es.vi[0] == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_association_measures_by_hand() -> None:
    # By hand (exact rationals): a=10, b=20, c=30, d=40: ad = 400, bc = 600
    es = {m: escalc(m, ai=[10], bi=[20], ci=[30], di=[40]) for m in ("YUQ", "YUY", "OR2DL")}
    assert es["YUQ"].yi[0] == pytest.approx(float(Fraction(-200, 1000)), rel=1e-15)
    v_lor = float(Fraction(1, 10) + Fraction(1, 20) + Fraction(1, 30) + Fraction(1, 40))
    assert es["YUQ"].vi[0] == pytest.approx(0.25 * (1 - 0.04) ** 2 * v_lor, rel=1e-14)
    y = (20 - math.sqrt(600)) / (20 + math.sqrt(600))
    assert es["YUY"].yi[0] == pytest.approx(y, rel=1e-14)
    assert es["OR2DL"].yi[0] == pytest.approx(math.log(400 / 600) * math.sqrt(3) / math.pi)
    dn = escalc("OR2DN", ai=[10], bi=[20], ci=[30], di=[40])
    assert dn.yi[0] == pytest.approx(math.log(400 / 600) / 1.65, rel=1e-14)  # Cox (1970)
    assert dn.vi[0] == pytest.approx(v_lor / 1.65**2, rel=1e-14)


def test_phi_uses_no_continuity_correction_by_default() -> None:
    # metafor's note: add = 0 for PHI unless given
    es = escalc("PHI", ai=[0, 5], bi=[10, 5], ci=[5, 5], di=[5, 5])
    assert es.options["add"] == 0.0
    assert es.yi[0] == pytest.approx(-50 / math.sqrt(10 * 10 * 5 * 15), rel=1e-14)


def test_araw_by_hand_and_bounds() -> None:
    # By hand: van Zyl et al. (2000) / Bonett (2010): 2·m·(1-α)²/((m-1)(n-2))
    es = escalc("ARAW", ai=[0.8, -0.1], mi=[10, 4], ni=[100, 30])
    np.testing.assert_allclose(es.vi, [2 * 10 * 0.04 / (9 * 98), 2 * 4 * 1.21 / (3 * 28)])
    with pytest.raises(ValueError, match=r"`ai` must be at most 1 \(Cronbach's alpha\); study 1"):
        escalc("ARAW", ai=[0.8, 1.2], mi=[10, 4], ni=[100, 30])
    with pytest.raises(ValueError, match=r"`mi` must be at least 2 .*items.*study 0"):
        escalc("ARAW", ai=[0.8], mi=[1], ni=[100])
    with pytest.raises(ValueError, match=r"`ni` must be at least 3 for measure 'ARAW'"):
        escalc("ARAW", ai=[0.8], mi=[5], ni=[2])


def test_ucor_needs_more_than_four_observations() -> None:
    # metafor: "Cannot compute the bias-corrected correlation coefficient when ni <= 4"
    with pytest.raises(ValueError, match=r"`ni` must be greater than 4 for measure 'UCOR'.*1"):
        escalc("UCOR", ri=[0.2, 0.3], ni=[10, 4])


# ---- undefined effects and options at their extremes ------------------------------------------


@pytest.mark.parametrize("r", [1.0, -1.0])
def test_zcor_of_a_perfect_correlation_is_missing_with_a_warning(r: float) -> None:
    # metafor: Fisher's z of ±1 is ±Inf, recoded to NA with a warning
    with pytest.warns(
        ketameta.UndefinedEffectWarning, match=r"ZCOR is undefined for Study 2 \(index 1\): "
    ):
        es = escalc("ZCOR", ri=[0.5, r, 0.1], ni=[10, 20, 30])
    assert np.isnan(es.yi[1])
    assert np.isnan(es.vi[1])
    np.testing.assert_allclose(es.yi[[0, 2]], np.arctanh([0.5, 0.1]), rtol=1e-15)
    with pytest.warns(ketameta.OmittedStudiesWarning, match=r"Study 2 \(index 1\) has"):
        assert ketameta.pool(es).k == 2


def test_zero_cell_warning_is_an_undefined_effect_warning() -> None:
    assert issubclass(ketameta.ZeroCellWarning, ketameta.UndefinedEffectWarning)
    assert issubclass(ketameta.UndefinedEffectWarning, ketameta.KetametaWarning)


@pytest.mark.parametrize("add", [math.inf, -math.inf, -0.5, math.nan, "0.5", None])
def test_add_must_be_finite_and_non_negative(add: Any) -> None:
    if add is None:  # None means the default: accepted
        escalc("OR", ai=[0], bi=[2], ci=[1], di=[3], add=add)
        return
    with pytest.raises(ValueError, match=r"`add` must be a finite non-negative number"):
        escalc("OR", ai=[0], bi=[2], ci=[1], di=[3], add=add)


@pytest.mark.parametrize(
    "add", [Decimal("0.25"), np.float32(0.25), np.float64(0.25), Fraction(1, 4)]
)
def test_add_accepts_any_number_type(add: Any) -> None:
    expected = escalc("OR", ai=[0, 4], bi=[2, 5], ci=[1, 6], di=[3, 7], add=0.25)
    assert escalc("OR", ai=[0, 4], bi=[2, 5], ci=[1, 6], di=[3, 7], add=add) == expected


def test_escalc_without_studies_is_an_error() -> None:
    with pytest.raises(ValueError, match="no studies: `ai` is empty"):
        escalc("OR", ai=[], bi=[], ci=[], di=[])
    with pytest.raises(ValueError, match="no studies: `ri` is empty"):
        escalc("UCOR", ri=np.array([]), ni=np.array([]))


def test_escalc_respects_masked_columns() -> None:
    ri = np.ma.masked_array([0.3, 0.9, 0.5], mask=[False, True, False])
    es = escalc("UCOR", ri=ri, ni=[20, 30, 40])
    assert np.isnan(es.yi[1])
    np.testing.assert_array_equal(es.yi[[0, 2]], escalc("UCOR", ri=[0.3, 0.5], ni=[20, 40]).yi)


def test_hedges_correction_limits_and_undefined_region() -> None:
    # c(m) = Γ(m/2)/(√(m/2) Γ((m-1)/2)) -> 1 as m -> inf and -> 0 as m -> 1+; undefined
    # (metafor: NA) for m <= 1
    assert float(hedges_correction(np.inf)) == 1.0
    m = 1 + 1e-9
    exact = mp.gamma(mp.mpf(m) / 2) / (mp.sqrt(mp.mpf(m) / 2) * mp.gamma((mp.mpf(m) - 1) / 2))
    assert float(hedges_correction(m)) == pytest.approx(float(exact), rel=1e-9)
    assert np.isnan(hedges_correction(np.nan))
    for bad in (1, 0, -3.5):
        with pytest.raises(ValueError, match=r"`m` \(degrees of freedom\) must be greater than 1"):
            hedges_correction(bad)
    with pytest.raises(ValueError, match=r"element 1 has m=0.0"):
        hedges_correction([5, 0])
