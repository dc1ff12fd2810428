"""ketameta.convert at the edges of double precision: tails, limits, overflow, input types.

Oracles: mpmath at 60-400 digits (quantiles, conversions), brute force with exact fractions
(counts_from_percent). pytest turns every warning into an error, so each test also checks
that no NumPy RuntimeWarning escapes.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketameta import convert

mpmath = pytest.importorskip("mpmath")

#: p-values from the smallest positive double to just below 1
PVALUES = [
    5e-324,
    1e-322,
    1e-315,
    2.2250738585072014e-308,
    1e-300,
    1e-200,
    1e-100,
    1e-30,
    2.2e-16,
    1e-16,
    1e-8,
    0.001,
    0.05,
    0.3,
    0.5,
    0.7,
    0.95,
    1 - 1e-8,
    1 - 2**-53,
]


def _normal_q(p: Any, c: Any = None) -> Any:
    """q with P(|Z| > q) = erfc(q/√2) = p, by bisection of log q over [-80, 4] at 30
    digits (100 halvings: q within 1e-28 relative); for p > 1/2 from erf(q/√2) = c, with
    c = 1 - p (pass c when 1 - p is not exact at 30 digits)."""
    with mpmath.workdps(30):
        p = mpmath.mpf(p)
        c = 1 - p if c is None else mpmath.mpf(c)
        lo, hi = mpmath.mpf(-80), mpmath.mpf(4)
        for _ in range(100):
            mid = (lo + hi) / 2
            z = mpmath.exp(mid) / mpmath.sqrt(2)
            above = mpmath.log(mpmath.erfc(z)) > mpmath.log(p) if p <= 0.5 else mpmath.erf(z) < c
            lo, hi = (mid, hi) if above else (lo, mid)
        return mpmath.exp((lo + hi) / 2)


def _t_q(p: Any, df: float, c: Any = None) -> Any:
    """q with P(|T_df| > q) = p, at 30 digits (Abramowitz & Stegun 26.7.1): with
    x = df/(df + q²) and y = 1 - x, P(|T| > q) = I_x(df/2, 1/2) = 1 - I_y(1/2, df/2).
    The smaller of x and y is found by bisection of its logarithm over [-4000, 0] (72
    halvings: within 1e-18), from p itself for p <= 1/2 and from c = 1 - p above (pass c
    when 1 - p is not exact at 30 digits)."""
    with mpmath.workdps(30):
        half, a = mpmath.mpf(0.5), mpmath.mpf(df) / 2
        if p <= 0.5:
            target = mpmath.log(mpmath.mpf(p))

            def tail(u: Any) -> Any:
                return mpmath.log(mpmath.betainc(a, half, 0, mpmath.exp(u), regularized=True))
        else:
            target = mpmath.log(1 - mpmath.mpf(p) if c is None else mpmath.mpf(c))

            def tail(u: Any) -> Any:
                return mpmath.log(mpmath.betainc(half, a, 0, mpmath.exp(u), regularized=True))

        lo, hi = mpmath.mpf(-4000), mpmath.mpf(0)
        for _ in range(72):
            mid = (lo + hi) / 2
            if tail(mid) > target:
                hi = mid
            else:
                lo = mid
        small = mpmath.exp((lo + hi) / 2)
        x, y = (small, 1 - small) if p <= 0.5 else (1 - small, small)
        return mpmath.sqrt(df * y / x)


def _close(actual: Any, expected: Any, rtol: float = 1e-12) -> None:
    """Relative agreement; a subnormal expectation to `rtol` or two subnormal steps."""
    expected = float(expected)
    if 0 < abs(expected) < 2.2250738585072014e-308:
        assert abs(float(actual) - expected) <= max(rtol * abs(expected), 1e-323)
    else:
        assert float(actual) == pytest.approx(expected, rel=rtol)


@pytest.mark.parametrize("p", PVALUES)
def test_se_from_pvalue_normal_tails_against_mpmath(p: float) -> None:
    # SE = |estimate| / q, q the two-sided normal quantile (Altman & Bland 2011)
    for estimate in (1.0, -3.5):
        se = convert.se_from_pvalue(estimate, p)
        _close(se, abs(estimate) / _normal_q(p))
        assert float(se) > 0
    _close(convert.var_from_pvalue(2.0, p), (2 / _normal_q(p)) ** 2)


@pytest.mark.parametrize("df", [1.0, 2.5, 10.0, 300.0])
@pytest.mark.parametrize("p", [5e-324, 1e-310, 1e-300, 1e-100, 1e-16, 0.05, 0.5, 0.9, 1 - 1e-9])
def test_se_from_pvalue_t_tails_against_mpmath(p: float, df: float) -> None:
    se = convert.se_from_pvalue(1.0, p, df=df)
    _close(se, 1 / _t_q(p, df))


@pytest.mark.parametrize(
    "level", [1e-20, 1e-8, 0.5, 0.95, 0.999999, 1 - 1e-12, 1 - 2**-53, 1 - 2**-52]
)
def test_se_from_ci_levels_near_0_and_1_against_mpmath(level: float) -> None:
    # the quantile at (1 + level)/2 from its complement: a level one ulp below 1 no longer
    # rounds the quantile to infinity (SE 0), nor a tiny level to 0
    with mpmath.workdps(60):
        p = 1 - mpmath.mpf(level)  # exact: level is a double
    _close(convert.se_from_ci(-1.0, 1.0, level=level), 1 / _normal_q(p, c=level))
    expected = 1 / _t_q(p, 5, c=level)
    _close(convert.se_from_ci(-1.0, 1.0, level=level, df=5), expected)


@pytest.mark.parametrize("n", [2, 20, 1e8, 1e17, 1e300])
def test_mean_sd_from_median_large_n_against_mpmath(n: float) -> None:
    # Wan et al. (2014) eq. 9: SD = (max - min) / (2 Φ⁻¹((n - 0.375)/(n + 0.25)));
    # the argument rounds to 1 for n > ~1e16 in double precision
    with mpmath.workdps(400):
        nn = mpmath.mpf(n)
        z = mpmath.sqrt(2) * mpmath.erfinv(2 * (nn - mpmath.mpf("0.375")) / (nn + 0.25) - 1)
        expected = 12 / (2 * z)
    _close(convert.mean_sd_from_median(6, n, min=0, max=12).sd, expected)


def test_back_transforms_give_their_limits_or_named_errors() -> None:
    # exp: underflow to 0 is the correctly rounded value; overflow is a named error
    assert float(convert.exp(-1000.0)) == 0.0
    _close(convert.exp(709.0), mpmath.exp(709))
    with pytest.raises(ValueError, match=r"`x` is too large to back-transform.*element 1"):
        convert.exp([1.0, 710.0])
    # d -> r: d / sqrt(d² + h) tends to ±1 (d² overflows beyond 1e154)
    for d in (1e154, 1e200, 1.7e308):
        assert float(convert.smd_to_r(d)) == 1.0
        assert float(convert.smd_to_r(-d, 10, 12)) == -1.0
    with mpmath.workdps(50):
        for d in (1e-300, 0.5, 1e8):
            _close(convert.smd_to_r(d), mpmath.mpf(d) / mpmath.sqrt(mpmath.mpf(d) ** 2 + 4))
        # r -> d near ±1: 1 - r² without cancellation
        for r in (1 - 2**-52, -(1 - 1e-12), 0.999999):
            rr = mpmath.mpf(r)
            _close(convert.r_to_smd(r), rr * 2 / mpmath.sqrt(1 - rr**2))
    # d -> log OR: d π/√3 overflows beyond ~1e308 / 1.81
    with pytest.raises(ValueError, match="`d` is too large"):
        convert.smd_to_log_or(1.5e308)
    with pytest.raises(ValueError, match="`vd` is too large"):
        convert.smd_to_log_or(1.0, 1e308)


def test_long_double_inputs() -> None:
    # within the double range: the same numbers as float64; beyond it: a named error
    # (NumPy would warn "overflow encountered in cast" and give inf)
    values = np.array([0.25, 0.5], dtype=np.longdouble)
    np.testing.assert_array_equal(convert.r_to_z(values), convert.r_to_z([0.25, 0.5]))
    assert float(convert.exp(np.longdouble(1.5))) == float(convert.exp(1.5))
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:  # x86 extended precision
        huge = np.array([1.0, np.longdouble("1e400")], dtype=np.longdouble)
        with pytest.raises(ValueError, match=r"`x` is beyond the double-precision range"):
            convert.exp(huge)
        with pytest.raises(ValueError, match=r"`estimate` is beyond the double"):
            convert.se_from_pvalue(huge, 0.05)


BIG = 10**400

#: every numeric argument of every conversion, with valid values for the others
CALLS = {
    "se_from_ci lower": lambda v: convert.se_from_ci(v, 2.0),
    "se_from_ci upper": lambda v: convert.se_from_ci(1.0, v),
    "se_from_ci df": lambda v: convert.se_from_ci(1.0, 2.0, df=v),
    "se_from_pvalue estimate": lambda v: convert.se_from_pvalue(v, 0.05),
    "se_from_pvalue df": lambda v: convert.se_from_pvalue(1.0, 0.05, df=v),
    "mean_sd_from_median median": lambda v: convert.mean_sd_from_median(v, 20, q1=4, q3=10),
    "mean_sd_from_median n": lambda v: convert.mean_sd_from_median(6, v, q1=4, q3=10),
    "mean_sd_from_median max": lambda v: convert.mean_sd_from_median(6, 20, min=2, max=v),
    "mean_sd_from_median iqr_width": lambda v: convert.mean_sd_from_median(6, 20, iqr_width=v),
    "smd_to_log_or d": lambda v: convert.smd_to_log_or(v),
    "log_or_to_smd log_or": lambda v: convert.log_or_to_smd(v),
    "smd_to_r d": lambda v: convert.smd_to_r(v),
    "smd_to_r n1": lambda v: convert.smd_to_r(0.5, v, 20),
    "r_to_smd n2": lambda v: convert.r_to_smd(0.5, 20, v),
    "r_to_z r": lambda v: convert.r_to_z(v),
    "z_to_r z": lambda v: convert.z_to_r(v),
    "exp x": lambda v: convert.exp(v),
    "inv_logit x": lambda v: convert.inv_logit(v),
    "inv_arcsine x": lambda v: convert.inv_arcsine(v),
    "inv_freeman_tukey n": lambda v: convert.inv_freeman_tukey(0.5, v),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_numbers_beyond_the_double_range_are_named_errors(call: Any) -> None:
    name = next(k for k, v in CALLS.items() if v is call).split()[-1]
    for value in (BIG, -BIG, [0.5, BIG], Decimal("1e400"), Fraction(BIG, 3)):
        with pytest.raises(ValueError, match=f"`{name}` is beyond the double-precision"):
            call(value)


def test_reported_numbers_beyond_the_double_range_are_named_errors() -> None:
    with pytest.raises(ValueError, match="`estimate` is beyond the double-precision"):
        convert.check_reported(BIG, 1, 2)
    with pytest.raises(ValueError, match="`mean` is beyond the double-precision"):
        convert.grim_test(Decimal("1e400"), 20)
    with pytest.raises(ValueError, match=r"`n` must be at most 2\*\*53"):
        convert.counts_from_percent(50, BIG)
    with pytest.raises(ValueError, match=r"`items` must be at most 2\*\*53"):
        convert.grim_test(5.19, 28, items=BIG)
    # Decimal and NumPy scalars are numbers
    assert convert.check_reported(Decimal("-0.65"), "-1.47", np.float64(0.16)).se > 0
    assert convert.grim_test(Decimal("5.18"), np.int64(28)).consistent


PAIRS = {
    "se_from_ci": (lambda a, b: convert.se_from_ci(a, b), ("lower", "upper")),
    "se_from_ci df": (lambda a, b: convert.se_from_ci(a, [2.0, 3.0], df=b), ("upper", "df")),
    "se_from_pvalue": (lambda a, b: convert.se_from_pvalue(b, a), ("estimate", "pvalue")),
    "var_from_pvalue": (lambda a, b: convert.var_from_pvalue(b, a), ("estimate", "pvalue")),
    "mean_sd_from_median": (
        lambda a, b: convert.mean_sd_from_median(
            np.multiply(a, 100), np.add(b, 10), q1=0.0, q3=100.0
        ),
        ("median", "n"),
    ),
    "smd_to_log_or": (lambda a, b: convert.smd_to_log_or(a, b), ("d", "vd")),
    "log_or_to_smd": (lambda a, b: convert.log_or_to_smd(a, b), ("log_or", "v_log_or")),
    "smd_to_r": (lambda a, b: convert.smd_to_r(a, b, 20), ("d", "n1")),
    "r_to_smd": (lambda a, b: convert.r_to_smd(a, 20, b), ("r", "n2")),
    "inv_freeman_tukey": (lambda a, b: convert.inv_freeman_tukey(a, b), ("x", "n")),
}


@pytest.mark.parametrize("case", PAIRS.values(), ids=PAIRS.keys())
def test_mismatched_lengths_name_both_arguments(case: Any) -> None:
    call, (first, second) = case
    names = f"({first}|{second})"
    with pytest.raises(ValueError, match=rf"`{names}` has \d elements but `{names}` has \d"):
        call([0.3, 0.4], [10.0, 20.0, 30.0])
    call([0.3, 0.4], 10.0)  # a single number goes with any length


def test_masked_entries_are_missing_values() -> None:
    r = np.ma.masked_array([0.2, 0.99, 0.5], mask=[False, True, False])
    out = convert.r_to_z(r)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], np.arctanh([0.2, 0.5]), rtol=1e-15)
    assert np.isnan(convert.se_from_pvalue([1.0, 1.0], np.ma.masked_array([0.05, 2.0], [0, 1]))[1])


def test_other_value_types_are_named() -> None:
    with pytest.raises(TypeError, match=r"`x` must be numeric, got durations"):
        convert.exp(np.array([1, 2], dtype="timedelta64[s]"))
    with pytest.raises(TypeError, match="`x` must be real-valued, got complex"):
        convert.exp(np.array([1j]))
    with pytest.raises(TypeError, match=r"`d` must be numeric \((element|study) 1\): got 'a'"):
        convert.smd_to_r([0.5, "a"])


def _brute_force_counts(p: Fraction, n: int, decimals: int, rounding: str) -> tuple[int, ...]:
    unit = Fraction(1, 10**decimals)
    out = []
    for c in range(n + 1):
        value = Fraction(100 * c, n)
        nearest = abs(value - p) <= unit / 2
        truncated = p <= value < p + unit
        if {"nearest": nearest, "truncate": truncated, "any": nearest or truncated}[rounding]:
            out.append(c)
    return tuple(out)


@given(
    st.integers(1, 400),
    st.integers(0, 2),
    st.sampled_from(["nearest", "truncate", "any"]),
    st.data(),
)
def test_counts_from_percent_equals_brute_force(
    n: int, decimals: int, rounding: str, data: st.DataObject
) -> None:
    # Oracle: every count 0..n checked with exact fractions (Brown & Heathers's definition);
    # the percentages include the exact ones 100 c / n rounded both ways
    c = data.draw(st.integers(0, n))
    exact = Fraction(100 * c, n)
    scale = 10**decimals
    percent = Fraction(round(exact * scale + data.draw(st.sampled_from([0, -1, 1]))), scale)
    percent = min(max(percent, Fraction(0)), Fraction(100))
    text = f"{float(percent):.{decimals}f}"
    assert convert.counts_from_percent(text, n, decimals=decimals, rounding=rounding) == (
        _brute_force_counts(Fraction(text), n, decimals, rounding)
    )


def test_counts_from_percent_is_not_linear_in_n() -> None:
    # n = 3e14 patients: interval arithmetic answers at once (the loop over every count
    # did not finish). Checked with exact fractions: every returned count gives the
    # truncated percentage, and the neighbours outside the run do not
    n, text = 3 * 10**14, "33.333333333333"
    p, unit = Fraction(text), Fraction(1, 10**12)
    counts = convert.counts_from_percent(text, n, decimals=12, rounding="truncate")
    assert counts == tuple(range(counts[0], counts[-1] + 1))
    for c in counts:
        assert p <= Fraction(100 * c, n) < p + unit
    for c in (counts[0] - 1, counts[-1] + 1):
        assert not p <= Fraction(100 * c, n) < p + unit
    with pytest.raises(ValueError, match="more than 1,000,000 counts"):
        convert.counts_from_percent("33", n)
