"""Time ``pool_mv`` against metafor's ``rma.mv`` (issue #18: the three-level model on
Konstantopoulos 2011 at least 20x faster than metafor on the same machine).

Run: ``python benchmarks/multilevel.py [rounds] [fits]`` (metafor through ``Rscript`` when it
is installed; otherwise ketameta alone).

Models (REML, metafor's default settings; ketameta's defaults):

* three-level: ``rma.mv(yi, vi, random = ~ 1 | district/school, data = dat.konstantopoulos2011)``
  (56 effects in 11 districts) -- the issue's target;
* multivariate: ``rma.mv(yi, V, mods = ~ outcome - 1, random = ~ outcome | trial,
  struct = "UN", data = dat.berkey1998)`` (10 effects, 5 trials, V from v1i/v2i).

One R process stays open for the whole run, so R's start-up is not timed. The libraries are
interleaved: each round times `fits` fits of each model by ketameta, then by metafor (timed
inside R), so both meet the same load of a shared machine. Times are CPU times of the
process (Python's ``time.process_time``, R's ``proc.time()`` user + system), which a loaded
machine distorts less than wall time. Reported: the median and minimum CPU time per fit over
the rounds, and the median of the per-round ratios (metafor / ketameta); compare ratios,
not absolute times.
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
kon <- dat.konstantopoulos2011
ber <- dat.berkey1998
V <- vcalc(vi = 1, cluster = author, rvars = c(v1i, v2i), data = ber)
fit3 <- function() rma.mv(yi, vi, random = ~ 1 | district/school, data = kon)
fitun <- function() rma.mv(yi, V, mods = ~ outcome - 1, random = ~ outcome | trial,
                           struct = "UN", data = ber)
invisible(fit3()); invisible(fitun())
con <- file("stdin"); open(con)
cat("ready\n"); flush(stdout())
while (length(line <- readLines(con, n = 1)) > 0) {
  n <- as.integer(line)
  cpu <- function() sum(proc.time()[c("user.self", "sys.self")])
  t0 <- cpu(); for (i in seq_len(n)) r3 <- fit3()
  t1 <- cpu(); for (i in seq_len(n)) ru <- fitun()
  t2 <- cpu()
  cat(sprintf("%.9f %.9f %.10f %.10f\n", (t1 - t0) / n, (t2 - t1) / n, r3$beta[1], ru$beta[1]))
  flush(stdout())
}
"""


def berkey_v() -> np.ndarray:
    dat = ketameta.datasets.berkey1998()
    k = len(dat["yi"])
    v = np.zeros((k, k))
    for i in range(0, k, 2):  # each trial: rows (PD, AL) hold the 2 x 2 covariance matrix
        v[i : i + 2, i : i + 2] = [
            [dat["v1i"][i], dat["v2i"][i]],
            [dat["v1i"][i + 1], dat["v2i"][i + 1]],
        ]
    return v


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    fits = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    kon = ketameta.datasets.konstantopoulos2011()
    ber = ketameta.datasets.berkey1998()
    vb = berkey_v()

    def fit3() -> ketameta.MVResult:
        return ketameta.pool_mv("yi", "vi", random="~ 1 | district/school", data=kon)

    def fitun() -> ketameta.MVResult:
        return ketameta.pool_mv(
            "yi", vb, mods="~ outcome - 1", random="~ outcome | trial", struct="UN", data=ber
        )

    b3, bun = fit3().coef[0], fitun().coef[0]  # warm-up
    r_proc = None
    if shutil.which("Rscript"):
        r_proc = subprocess.Popen(
            ["Rscript", "-e", R_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert r_proc.stdout is not None
        assert r_proc.stdout.readline().strip() == "ready"
    else:
        print("Rscript not found: ketameta only")
    ours: dict[str, list[float]] = {"three-level": [], "UN": []}
    theirs: dict[str, list[float]] = {"three-level": [], "UN": []}
    r_coef = (float("nan"), float("nan"))
    for _ in range(rounds):
        for name, fn in (("three-level", fit3), ("UN", fitun)):
            start = time.process_time()
            for _ in range(fits):
                fn()
            ours[name].append((time.process_time() - start) / fits)
        if r_proc is not None:
            assert r_proc.stdin is not None
            assert r_proc.stdout is not None
            r_proc.stdin.write(f"{fits}\n")
            r_proc.stdin.flush()
            t3, tun, c3, cun = (float(x) for x in r_proc.stdout.readline().split())
            theirs["three-level"].append(t3)
            theirs["UN"].append(tun)
            r_coef = (c3, cun)
    if r_proc is not None:
        assert r_proc.stdin is not None
        r_proc.stdin.close()
        r_proc.wait()
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}; {rounds} rounds x {fits} fits, REML"
    )
    print(f"{'model':40s} {'median':>9s} {'min':>9s}")
    labels = {
        "three-level": "Konstantopoulos ~ 1 | district/school",
        "UN": "Berkey ~ outcome | trial, UN",
    }
    for key, label in labels.items():
        print(
            f"ketameta {label:31s} {statistics.median(ours[key]) * 1e3:7.2f}ms "
            f"{min(ours[key]) * 1e3:7.2f}ms"
        )
        if theirs[key]:
            print(
                f"metafor  {label:31s} {statistics.median(theirs[key]) * 1e3:7.2f}ms "
                f"{min(theirs[key]) * 1e3:7.2f}ms"
            )
            ratios = [t / o for t, o in zip(theirs[key], ours[key], strict=True)]
            q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            print(
                f"  ratio metafor/ketameta (median of rounds): {statistics.median(ratios):.1f}x "
                f"(interquartile range {q1:.1f}-{q3:.1f}x)"
            )
    if r_proc is not None:
        print(
            f"intercepts: three-level ketameta {b3:.8f} metafor {r_coef[0]:.8f}; "
            f"UN (AL) ketameta {bun:.8f} metafor {r_coef[1]:.8f}"
        )


if __name__ == "__main__":
    main()
