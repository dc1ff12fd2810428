"""Hypothesis strategies for valid meta-analytic data and for every escalc family's inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

MEASURE_FAMILIES = {
    "two_group": ("MD", "SMD", "SMDH", "ROM"),
    "pre_post": ("MC", "SMCC", "SMCR"),
    "table": ("OR", "RR", "RD", "AS", "PETO"),
    "proportion": ("PR", "PLN", "PLO", "PAS", "PFT"),
    "correlation": ("COR", "ZCOR"),
    "rate": ("IR", "IRLN"),
    "rate2": ("IRR", "IRD"),
}


@st.composite
def datasets(
    draw: st.DrawFn, min_k: int = 2, max_k: int = 25, heterogeneity: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(yi, vi): effects and variances over wide magnitudes, with or without heterogeneity."""
    k = draw(st.integers(min_k, max_k))
    location = draw(st.sampled_from([0.0, 1.0, -3.0, 1e3, -1e4]))
    scale = draw(st.sampled_from([1e-4, 1e-2, 1.0, 1e2]))
    log_spread = draw(st.floats(0.0, 3.0))
    exps = draw(st.lists(st.floats(-log_spread, log_spread), min_size=k, max_size=k))
    vi = scale**2 * 10.0 ** np.array(exps)
    het = draw(st.booleans()) if heterogeneity is None else heterogeneity
    tau = scale * draw(st.floats(0.1, 3.0)) if het else 0.0
    z = np.array(draw(st.lists(st.floats(-3, 3), min_size=k, max_size=k)))
    u = np.array(draw(st.lists(st.floats(-2, 2), min_size=k, max_size=k)))
    yi = location + z * np.sqrt(vi) + tau * u
    return yi, vi


@st.composite
def escalc_inputs(draw: st.DrawFn, family: str) -> dict[str, Any]:
    """Valid raw inputs of one escalc family (k studies)."""
    k = draw(st.integers(1, 8))

    def floats(lo: float, hi: float) -> list[float]:
        return draw(st.lists(st.floats(lo, hi), min_size=k, max_size=k))

    def ints(lo: int, hi: int) -> list[int]:
        return draw(st.lists(st.integers(lo, hi), min_size=k, max_size=k))

    if family == "two_group":
        return {
            "m1i": floats(0.5, 100),
            "sd1i": floats(0.1, 30),
            "n1i": ints(2, 300),
            "m2i": floats(0.5, 100),
            "sd2i": floats(0.1, 30),
            "n2i": ints(2, 300),
        }
    if family == "pre_post":
        return {
            "m1i": floats(0, 10),
            "m2i": floats(0, 10),
            "sd1i": floats(0.1, 5),
            "sd2i": floats(0.1, 5),
            "ni": ints(3, 200),
            "ri": floats(-0.9, 0.9),
        }
    if family == "table":
        n1, n2 = ints(1, 500), ints(1, 500)
        a = [draw(st.integers(0, n)) for n in n1]
        c = [draw(st.integers(0, n)) for n in n2]
        return {"ai": a, "n1i": n1, "ci": c, "n2i": n2}
    if family == "proportion":
        n = ints(1, 500)
        return {"xi": [draw(st.integers(0, m)) for m in n], "ni": n}
    if family == "correlation":
        return {"ri": floats(-0.99, 0.99), "ni": ints(4, 1000)}
    if family == "rate":
        return {"xi": ints(0, 200), "ti": floats(0.1, 1e4)}
    return {
        "x1i": ints(0, 200),
        "t1i": floats(0.1, 1e4),
        "x2i": ints(0, 200),
        "t2i": floats(0.1, 1e4),
    }


def full_rank(x: np.ndarray) -> bool:
    """Whether every column of `x` has a part off the span of the columns before it of
    more than 1e-5 of its norm (metafor's redundancy rule drops it below 1e-7)."""
    r = np.abs(np.diag(np.linalg.qr(x, mode="r")))
    return bool(np.all(r > 1e-5 * np.linalg.norm(x, axis=0)))


#: moderator kinds of :func:`metareg_data`
MODERATOR_KINDS = ("continuous", "factor", "year")


@st.composite
def metareg_data(
    draw: st.DrawFn,
    max_k: int = 30,
    max_mods: int = 3,
    kinds: tuple[str, ...] = MODERATOR_KINDS,
    log_spread: float = 3.0,
    ratios: tuple[float, ...] = (),
    max_p: int = 6,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(yi, vi, mods): a meta-regression with 1 to `max_mods` moderators, each continuous,
    a factor (2 or 3 levels as treatment-contrast columns named ``g<i>B``, ``g<i>C``) or a
    year-like column near 2000 (spread 0.05 to 10 years: ``X`` ill-conditioned), and
    ``k`` from ``p + 2`` to `max_k` studies whose variances span up to ``2 log_spread``
    orders of magnitude. The columns, with an intercept, have full rank with a margin
    (no column within 1e-5 of the span of the others, relative to its norm: metafor's
    redundancy rule drops columns below 1e-7), so that no moderator is dropped."""
    n_mods = draw(st.integers(1, max_mods))
    chosen = [draw(st.sampled_from(kinds)) for _ in range(n_mods)]
    if chosen.count("factor") > 1:  # (at most one factor: p stays <= 6)
        chosen = [c for c in chosen if c != "factor"] + ["factor"]
    levels = draw(st.integers(2, 3)) if "factor" in chosen else 0
    p = 1 + sum(levels - 1 if c == "factor" else 1 for c in chosen)
    assume(p <= max_p)
    k = draw(st.integers(p + 2, max(max_k, p + 2)))

    def floats(lo: float, hi: float) -> np.ndarray:
        return np.array(draw(st.lists(st.floats(lo, hi), min_size=k, max_size=k)))

    def grid(lo: float, hi: float) -> np.ndarray:
        # moderator values with four decimals (floats would include 1e-300 and the like)
        ints = st.integers(round(lo * 1e4), round(hi * 1e4))
        return np.array(draw(st.lists(ints, min_size=k, max_size=k))) / 1e4

    scale = draw(st.sampled_from([1e-3, 1e-1, 1.0, 1e2]))
    if ratios:
        spread = np.log10(draw(st.sampled_from(ratios))) / 2.0
        exps = floats(-spread, spread)
        exps[0], exps[-1] = -spread, spread
    else:
        spread = draw(st.floats(0.0, log_spread))
        exps = floats(-spread, spread)
    vi = scale**2 * 10.0**exps
    location = draw(st.sampled_from([0.0, 1.0, -3.0, 1e3]))
    mods: dict[str, np.ndarray] = {}
    signal = np.zeros(k)
    for i, kind in enumerate(chosen):
        if kind == "factor":
            codes = np.array(draw(st.lists(st.integers(0, levels - 1), min_size=k, max_size=k)))
            cols = {
                f"g{i}{'BC'[j - 1]}": (codes == j).astype(np.float64) for j in range(1, levels)
            }
        elif kind == "year":
            width = draw(st.sampled_from([0.05, 1.0, 10.0]))
            cols = {f"year{i}": 2000.0 + width * grid(-2.0, 2.0)}
        else:
            centre = draw(st.sampled_from([0.0, 5.0, -100.0]))
            cols = {f"x{i}": centre + draw(st.sampled_from([1e-2, 1.0, 1e2])) * grid(-3, 3)}
        for name, col in cols.items():
            mods[name] = col
            sd = float(np.std(col))
            if sd > 0:  # a moderator effect of up to 3 sampling SDs per SD of the moderator
                signal += draw(st.floats(-3.0, 3.0)) * scale * (col - col.mean()) / sd
    assume(full_rank(np.column_stack([np.ones(k), *mods.values()])))
    tau = scale * draw(st.floats(0.1, 3.0)) if draw(st.booleans()) else 0.0
    yi = location + signal + floats(-3, 3) * np.sqrt(vi) + tau * floats(-2, 2)
    return yi, vi, mods
