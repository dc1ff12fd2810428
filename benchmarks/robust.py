"""Cluster-robust inference speed (issue #18): ketameta.robust and ketameta.rve against R's
clubSandwich, metafor's robust() and robumeta's robu on the same data.

Run: ``python benchmarks/robust.py [rounds]`` (default 5 rounds; R with metafor,
clubSandwich and robumeta for the peers, else ketameta only). Data: Konstantopoulos (2011),
56 effects in 11 districts, the meta-regression ``~ year`` (REML), clusters = districts.

Each round times every ketameta call (mean of 100 calls) and then runs one R process that
times every R call (mean of 50 calls, inside R, so R's start-up is not counted): ketameta
and R alternate, so both meet the same load of a shared machine. The fit itself (metareg /
rma) is not timed; what is timed is the robust inference on a fitted model:

- CR2: ``robust(res, district)`` (CR2, Satterthwaite df, HTZ test of the moderator) vs
  clubSandwich's ``vcovCR(type = "CR2")`` + ``coef_test`` + ``Wald_test`` and metafor's
  ``robust(res, cluster = district, clubSandwich = TRUE)``;
- CR1: ``robust(res, district, method="CR1")`` vs metafor's ``robust(res, cluster = district)``;
- RVE: ``rve(yi, vi, cluster=district, mods=year)`` vs ``robu(yi ~ year, studynum = district,
  var.eff.size = vi)`` (the whole fit: weights, τ², CR2).

Prints milliseconds per call (median over rounds) and the median of the per-round ratios.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import ketameta

YI = [-0.18, -0.22, 0.23, -0.3, 0.13, -0.26, 0.19, 0.32, 0.45, 0.38, 0.29, 0.16, 0.65, 0.36,
      0.6, 0.08, 0.04, 0.19, -0.06, -0.18, 0, 0, -0.28, -0.04, -0.3, 0.07, 0, 0.05, -0.08,
      -0.09, 0.3, 0.98, 1.19, -0.07, -0.05, -0.01, 0.02, -0.03, 0, 0.01, -0.1, 0.5, 0.66, 0.2,
      0, 0.05, 0.07, -0.52, 0.7, -0.03, 0.27, -0.34, 0.12, 0.61, 0.04, -0.05]  # fmt: skip
VI = [0.118, 0.118, 0.144, 0.144, 0.014, 0.014, 0.015, 0.024, 0.023, 0.043, 0.012, 0.02,
      0.004, 0.004, 0.007, 0.019, 0.007, 0.005, 0.004, 0.02, 0.018, 0.019, 0.022, 0.02,
      0.021, 0.006, 0.007, 0.007, 0.007, 0.007, 0.015, 0.011, 0.01, 0.001, 0.001, 0.001,
      0.001, 0.001, 0.001, 0.001, 0.001, 0.01, 0.011, 0.01, 0.009, 0.013, 0.013, 0.031,
      0.031, 0.03, 0.03, 0.03, 0.087, 0.082, 0.067, 0.067]  # fmt: skip
DISTRICT = ([11] * 4 + [12] * 4 + [18] * 3 + [27] * 4 + [56] * 4 + [58] * 11 + [71] * 3
            + [86] * 8 + [91] * 6 + [108] * 5 + [644] * 4)  # fmt: skip
YEAR = ([1976] * 4 + [1989] * 4 + [1994] * 3 + [1976] * 4 + [1997] * 4 + [1976] * 11
        + [1997] * 11 + [2000] * 11 + [1995] * 2 + [1994] * 2)  # fmt: skip

R_SCRIPT = """
suppressMessages({library(metafor); library(clubSandwich); library(robumeta)})
d <- dat.konstantopoulos2011
res <- rma(yi, vi, mods = ~ year, data = d)
n <- 50
tm <- function(f) {
  t0 <- proc.time()[["elapsed"]]
  for (i in 1:n) f()
  (proc.time()[["elapsed"]] - t0) / n * 1e3
}
cr2 <- tm(function() {
  V <- vcovCR(res, cluster = d$district, type = "CR2")
  coef_test(res, vcov = V)
  Wald_test(res, constraints = constrain_zero(2), vcov = V)
})
mf2 <- tm(function() robust(res, cluster = d$district, clubSandwich = TRUE))
mf1 <- tm(function() robust(res, cluster = d$district))
rb <- tm(function() robu(yi ~ year, data = d, studynum = district, var.eff.size = vi))
cat(cr2, mf2, mf1, rb, "\\n")
"""
R_NAMES = (
    "clubSandwich CR2 (vcovCR + coef_test + Wald_test)",
    "metafor robust(clubSandwich = TRUE)",
    "metafor robust() (CR1)",
    "robumeta robu",
)


def per_call_ms(fn: Callable[[], Any], number: int = 100) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e3


def main(rounds: int) -> None:
    res = ketameta.metareg(YI, VI, mods={"year": YEAR})
    calls: dict[str, Callable[[], Any]] = {
        "ketameta robust() CR2": lambda: ketameta.robust(res, DISTRICT),
        "ketameta robust() CR1": lambda: ketameta.robust(res, DISTRICT, method="CR1"),
        "ketameta rve()": lambda: ketameta.rve(YI, VI, cluster=DISTRICT, mods={"year": YEAR}),
    }
    have_r = shutil.which("Rscript") is not None
    times: dict[str, list[float]] = {name: [] for name in (*calls, *R_NAMES)}
    for _ in range(rounds):
        for name, fn in calls.items():
            times[name].append(per_call_ms(fn))
        if have_r:
            out = subprocess.run(
                ["Rscript", "-e", R_SCRIPT], capture_output=True, text=True, check=True
            ).stdout.split()
            for name, value in zip(R_NAMES, out, strict=True):
                times[name].append(float(value))
    print(f"Python {sys.version.split()[0]}, ketameta {ketameta.__version__}, {rounds} rounds")
    for name, values in times.items():
        if values:
            print(f"{name:55s} {statistics.median(values):8.2f} ms")
    if not have_r:
        print("Rscript not found: R peers skipped")
        return
    pairs = (
        ("clubSandwich CR2 (vcovCR + coef_test + Wald_test)", "ketameta robust() CR2"),
        ("metafor robust(clubSandwich = TRUE)", "ketameta robust() CR2"),
        ("metafor robust() (CR1)", "ketameta robust() CR1"),
        ("robumeta robu", "ketameta rve()"),
    )
    for peer, ours in pairs:
        ratio = statistics.median(p / k for p, k in zip(times[peer], times[ours], strict=True))
        print(f"{peer} / {ours}: {ratio:.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
