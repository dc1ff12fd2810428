"""Hypothesis strategies for valid meta-analytic data and for every escalc family's inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
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
