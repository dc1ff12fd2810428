"""Time ``permutation_test`` against metafor's ``permutest`` on the BCG latitude model.

Run: ``python benchmarks/permutation.py [rounds] [r_rounds]`` (metafor through ``Rscript``
when it is installed; otherwise ketameta alone).

The model: ``metareg(es, mods=ablat)`` on the 13 BCG trials (log risk ratios, REML), 1,000
random permutations (of 389,188,800 distinct ones) — issue #13's target: ≤ 50 ms. One R
process stays open for the whole run, so R's start-up is not timed; each round times
ketameta's call (with a new seed) and, in the first `r_rounds` rounds, metafor's
``permutest(res, iter = 1000)`` (timed inside R), so that both meet the same load of a
shared machine. Prints the median and minimum per library, and the two ablat p-values of
the last round (random tests: they agree within Monte Carlo error, not digit by digit).
The CPU time of ketameta's call (``time.process_time``) is printed beside the wall clock:
on a loaded shared machine it is the steadier figure. Also times the exact test of
``bcg[1:8] ~ ablat`` (10,080 distinct permutations; ketameta only).
"""

from __future__ import annotations

import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

import ketameta

R_SERVER = r"""
suppressMessages(library(metafor))
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
res <- rma(yi, vi, mods = ~ ablat, data = dat, method = "REML")
con <- file("stdin"); open(con)
cat("ready\n"); flush(stdout())
while (length(line <- readLines(con, n = 1)) > 0) {
  set.seed(as.integer(line))
  start <- Sys.time()
  pt <- permutest(res, iter = 1000, progbar = FALSE)
  elapsed <- as.numeric(difftime(Sys.time(), start, units = "secs"))
  cat(sprintf("%.6f %.6f\n", elapsed, pt$pval[2])); flush(stdout())
}
"""


def bcg() -> tuple[ketameta.EffectSizes, np.ndarray]:
    dat = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    return es, np.asarray(dat["ablat"], dtype=float)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    r_rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    es, ablat = bcg()
    res = ketameta.metareg(es, mods={"ablat": ablat}, method="REML")
    ketameta.permutation_test(res, seed=0)  # warm-up (imports, generated kernels)
    r_proc = None
    if shutil.which("Rscript") and r_rounds > 0:
        r_proc = subprocess.Popen(
            ["Rscript", "-e", R_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert r_proc.stdout is not None
        assert r_proc.stdout.readline().strip() == "ready"
    else:
        print("Rscript not found (or r_rounds = 0): ketameta only")
    ours: list[float] = []
    ours_cpu: list[float] = []
    theirs: list[float] = []
    p_ours = p_r = float("nan")
    for i in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        out = ketameta.permutation_test(res, 1000, seed=i + 1)
        ours.append(time.perf_counter() - start)
        ours_cpu.append(time.process_time() - cpu)
        p_ours = float(out.pvalue[1])
        if r_proc is not None and i < r_rounds:
            assert r_proc.stdin is not None
            assert r_proc.stdout is not None
            r_proc.stdin.write(f"{i + 1}\n")
            r_proc.stdin.flush()
            elapsed, p = r_proc.stdout.readline().split()
            theirs.append(float(elapsed))
            p_r = float(p)
    if r_proc is not None:
        assert r_proc.stdin is not None
        r_proc.stdin.close()
        r_proc.wait()
    # the exact test of an 8-study model: 10,080 distinct orders of the latitudes
    res8 = ketameta.metareg(es.yi[:8], es.vi[:8], mods={"ablat": ablat[:8]}, method="REML")
    exact_times = []
    for _ in range(3):
        start = time.perf_counter()
        exact = ketameta.permutation_test(res8, exact=True)
        exact_times.append(time.perf_counter() - start)

    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}; BCG ~ ablat, k = 13, REML, 1,000 random permutations"
    )
    print(f"{'call':44s} {'median':>10s} {'min':>10s} {'rounds':>7s}")
    print(
        f"{'ketameta permutation_test(res, 1000)':44s} {statistics.median(ours) * 1e3:8.1f}ms "
        f"{min(ours) * 1e3:8.1f}ms {len(ours):7d}"
    )
    print(
        f"{'  ... CPU time (time.process_time)':44s} "
        f"{statistics.median(ours_cpu) * 1e3:8.1f}ms {min(ours_cpu) * 1e3:8.1f}ms {len(ours):7d}"
    )
    if theirs:
        print(
            f"{'metafor permutest(res, iter = 1000)':44s} "
            f"{statistics.median(theirs) * 1e3:8.0f}ms {min(theirs) * 1e3:8.0f}ms "
            f"{len(theirs):7d}"
        )
        print(f"ratio of medians: {statistics.median(theirs) / statistics.median(ours):.0f}x")
        print(f"ablat permutation p-value, last round: ketameta {p_ours:.4f}, metafor {p_r:.4f}")
    print(
        f"{'ketameta exact test, bcg[1:8] ~ ablat':44s} "
        f"{statistics.median(exact_times) * 1e3:8.1f}ms {min(exact_times) * 1e3:8.1f}ms "
        f"{len(exact_times):7d}   ({exact.n_permutations:,} permutations, "
        f"p = {exact.pvalue[1]:.6f}; metafor 0.043849)"
    )


if __name__ == "__main__":
    main()
