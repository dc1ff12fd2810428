"""The engine against its peers and against the machine's memory bandwidth (issue #20).

Run: ``python benchmarks/engine.py [--quick] [--pymare-reml]`` (peers: ``pip install -e
".[bench]"``: statsmodels, PyMARE; metafor through ``Rscript`` when R and metafor are
installed). Sections:

- **probe**: one read pass over the batch's ``Y`` and ``V`` (``np.add.reduce`` of each, one
  thread): a DL fit cannot take fewer than ~2 such passes (one for the equal-effects sums,
  one for the sums at τ̂²), so ``2 × probe`` is printed as the bandwidth limit beside the
  batch times;
- **batch**: ``pool_many`` on m = 10⁶ analyses of k = 10 studies against PyMARE's
  plain-array estimators on the same arrays (transposed to PyMARE's (k, m) layout
  beforehand, free of charge); PyMARE's REML (~30 s a call) only with ``--pymare-reml``;
- **small batch**: ``pool_many`` on m = 100 analyses (its fixed cost) against PyMARE's
  plain-array DL;
- **single**: ``pool`` (k = 15, ten datasets) against statsmodels' ``combine_effects`` and
  PyMARE's plain-array estimators (``DerSimonianLaird().fit(y, v, X)``, no ``Dataset``);
- **metareg**: ``metareg`` (k = 30, p = 3, REML) against ``pool`` on the same k (issue
  #13 asks for at most 2×);
- **dask**: ``pool_many`` on Dask arrays (four blocks, threaded scheduler) against the
  same arrays in memory;
- **metafor**: ``rma(yi, vi, method=)`` on the same ten datasets, timed inside one R
  process (R's start-up not included), before and after the Python rounds.

Every Python section interleaves its calls (each round times every call once, so that a
shared machine's changing load meets them alike); figures are medians (and minima) over
the rounds, and ratios the medians of the per-round ratios. The single-threaded sections
(single, metareg, small batch, metafor) measure CPU time (``time.process_time``; R's
user + system time), which other tenants of a shared machine disturb far less than the
wall clock; the batch and Dask sections use threads and the wall clock. Compare ratios
between runs, not absolute times.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import ketameta

QUICK = "--quick" in sys.argv
PYMARE_REML = "--pymare-reml" in sys.argv


def interleave(
    calls: dict[str, Callable[[], Any]],
    rounds: int,
    number: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per call of each of `calls`, `number` calls per round, `rounds` rounds, the
    calls interleaved within each round; `clock` ``time.process_time`` for the CPU time of
    single-threaded calls (robust to other tenants' load; wall clock for threaded ones)."""
    for fn in calls.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            start = clock()
            for _ in range(number):
                fn()
            times[name].append((clock() - start) / number)
    return times


def report(times: dict[str, list[float]], base: str, unit: float, unit_name: str) -> None:
    """Median and minimum of each call, and the median per-round ratio to `base`."""
    print(f"  {'call':44s} {'median':>10s} {'min':>10s} {'vs ' + base:>22s}")
    for name, ts in times.items():
        ratio = statistics.median(a / b for a, b in zip(ts, times[base], strict=True))
        print(
            f"  {name:44s} {statistics.median(ts) / unit:8.1f}{unit_name} "
            f"{min(ts) / unit:8.1f}{unit_name} {ratio:21.2f}x"
        )


def pymare() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pymare import estimators
    except ImportError:
        print("  (PyMARE not installed: skipped)")
        return None
    return estimators


def pymare_fit(est: Any, y: np.ndarray, v: np.ndarray, x: np.ndarray) -> Any:
    """PyMARE's plain-array path: an estimator's ``fit(y, v, X)``, (k, m) arrays."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(y, v, x).params_["fe_params"]


def batch_data(m: int, k: int, seed: int = 2026) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.2, size=(m, k))
    y = rng.normal(0.2, np.sqrt(v + rng.choice([0.0, 0.05, 0.3], size=(m, 1))))
    return y, v


def section_batch(est: Any) -> None:
    m, k = (200_000, 10) if QUICK else (1_000_000, 10)
    y, v = batch_data(m, k)
    yt, vt, x = np.ascontiguousarray(y.T), np.ascontiguousarray(v.T), np.ones((k, 1))
    print(f"batch: m = {m:,}, k = {k}, input {(y.nbytes + v.nbytes) / 2**20:.0f} MiB")

    def probe() -> None:
        np.add.reduce(y, axis=None)
        np.add.reduce(v, axis=None)

    calls: dict[str, Callable[[], Any]] = {
        "ketameta pool_many DL": lambda: ketameta.pool_many(y, v, method="DL"),
        "ketameta pool_many REML": lambda: ketameta.pool_many(y, v, method="REML"),
        "probe: one read pass over Y and V": probe,
    }
    if est is not None:
        calls["PyMARE DerSimonianLaird().fit(y, v, X)"] = lambda: pymare_fit(
            est.DerSimonianLaird(), yt, vt, x
        )
    times = interleave(calls, rounds=3 if QUICK else 5, number=1)
    report(times, "ketameta pool_many DL", 1e-3, "ms")
    limit = 2 * min(times["probe: one read pass over Y and V"])
    dl = min(times["ketameta pool_many DL"])
    print(f"  DL / (2 × probe, the 2-pass limit): {dl / limit:.1f}x (limit {limit * 1e3:.1f} ms)")
    if est is not None and PYMARE_REML:
        start = time.perf_counter()
        pymare_fit(est.VarianceBasedLikelihoodEstimator(method="REML"), yt, vt, x)
        seconds = time.perf_counter() - start
        reml = min(times["ketameta pool_many REML"])
        print(f"  PyMARE REML (one call): {seconds:.1f} s, {seconds / reml:.0f}x ketameta's REML")


def section_dask() -> None:
    try:
        import dask
        import dask.array as da
    except ImportError:
        print("dask: not installed, skipped")
        return
    m, k = (200_000, 10) if QUICK else (1_000_000, 10)
    block = m // 4
    y, v = batch_data(m, k)
    yd, vd = da.from_array(y, chunks=(block, k)), da.from_array(v, chunks=(block, k))
    print(f"dask: m = {m:,}, k = {k}, blocks of {block:,} analyses, threaded scheduler")
    calls: dict[str, Callable[[], Any]] = {}
    for method in ("DL", "REML"):
        calls[f"in memory {method}"] = lambda m_=method: ketameta.pool_many(y, v, method=m_)
        calls[f"dask {method} (.compute())"] = lambda m_=method: ketameta.pool_many(
            yd, vd, method=m_
        ).compute(scheduler="threads")
    with dask.config.set(scheduler="threads"):
        times = interleave(calls, rounds=3, number=1)
    report(times, "in memory DL", 1e-3, "ms")
    for method in ("DL", "REML"):
        ours, theirs = times[f"in memory {method}"], times[f"dask {method} (.compute())"]
        ratio = statistics.median(a / b for a, b in zip(theirs, ours, strict=True))
        print(
            f"  {method}: {min(theirs) / m * 1e6:.2f} µs per analysis with Dask, "
            f"{min(ours) / m * 1e6:.2f} in memory ({ratio:.2f}x)"
        )


def section_small(est: Any) -> None:
    m, k = 100, 10
    y, v = batch_data(m, k)
    yt, vt, x = np.ascontiguousarray(y.T), np.ascontiguousarray(v.T), np.ones((k, 1))
    print(f"small batch: m = {m}, k = {k}")
    calls: dict[str, Callable[[], Any]] = {
        "ketameta pool_many DL": lambda: ketameta.pool_many(y, v, method="DL"),
        "ketameta pool_many REML": lambda: ketameta.pool_many(y, v, method="REML"),
    }
    if est is not None:
        calls["PyMARE DerSimonianLaird().fit(y, v, X)"] = lambda: pymare_fit(
            est.DerSimonianLaird(), yt, vt, x
        )
    report(
        interleave(calls, rounds=10 if QUICK else 20, number=20, clock=time.process_time),
        "ketameta pool_many DL",
        1e-6,
        "µs",
    )


def single_data(k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        v = rng.uniform(0.01, 0.2, k)
        out.append((rng.normal(0.3, np.sqrt(v + 0.05)), v))
    return out


def over(
    data: list[tuple[np.ndarray, np.ndarray]], fit: Callable[[np.ndarray, np.ndarray], Any]
) -> Callable[[], None]:
    """One call = the mean over the ten datasets (the timing divides by ten)."""

    def run() -> None:
        for y, v in data:
            fit(y, v)

    return run


def section_single(est: Any) -> dict[str, list[float]]:
    k = 15
    data = single_data(k)
    print(f"single: k = {k}, ten datasets (µs per fit)")
    calls: dict[str, Callable[[], Any]] = {
        "ketameta pool DL": over(data, lambda y, v: ketameta.pool(y, v, method="DL")),
        "ketameta pool REML": over(data, lambda y, v: ketameta.pool(y, v, method="REML")),
    }
    try:
        from statsmodels.stats.meta_analysis import combine_effects

        calls["statsmodels combine_effects dl"] = over(
            data, lambda y, v: combine_effects(y, v, method_re="dl")
        )
    except ImportError:
        print("  (statsmodels not installed: skipped)")
    if est is not None:
        x = np.ones((k, 1))
        calls["PyMARE DerSimonianLaird().fit(y, v, X)"] = over(
            data, lambda y, v: pymare_fit(est.DerSimonianLaird(), y[:, None], v[:, None], x)
        )
        calls["PyMARE VarianceBased...(REML).fit(y, v, X)"] = over(
            data,
            lambda y, v: pymare_fit(
                est.VarianceBasedLikelihoodEstimator(method="REML"), y[:, None], v[:, None], x
            ),
        )
    rounds, number = (10, 5) if QUICK else (30, 10)
    raw = interleave(calls, rounds, number, clock=time.process_time)
    times = {n: [t / 10 for t in ts] for n, ts in raw.items()}
    report(times, "ketameta pool DL", 1e-6, "µs")
    if "PyMARE VarianceBased...(REML).fit(y, v, X)" in times:
        ratio = statistics.median(
            a / b
            for a, b in zip(
                times["PyMARE VarianceBased...(REML).fit(y, v, X)"],
                times["ketameta pool REML"],
                strict=True,
            )
        )
        print(f"  PyMARE REML / ketameta REML: {ratio:.1f}x")
    return times


def section_metareg() -> None:
    k = 30
    rng = np.random.default_rng(30)
    x = rng.normal(size=(k, 2))
    data = single_data(k)
    print(f"metareg: k = {k}, p = 3 (intercept and two moderators), REML (µs per fit)")
    calls: dict[str, Callable[[], Any]] = {
        "ketameta pool REML": over(data, lambda y, v: ketameta.pool(y, v, method="REML")),
        "ketameta metareg REML": over(
            data, lambda y, v: ketameta.metareg(y, v, mods=x, method="REML")
        ),
    }
    rounds, number = (10, 5) if QUICK else (20, 10)
    raw = interleave(calls, rounds, number, clock=time.process_time)
    times = {n: [t / 10 for t in ts] for n, ts in raw.items()}
    report(times, "ketameta pool REML", 1e-6, "µs")


_R_SCRIPT = r"""
suppressMessages(library(metafor))
set <- read.csv("%s")
n <- %d
for (method in c("DL", "REML")) {
  best <- Inf
  for (r in 1:3) {
    t <- system.time(for (i in 1:n) for (s in 0:9) {
      d <- set[set$seed == s, ]
      rma(d$yi, d$vi, method = method)
    })
    t <- t[["user.self"]] + t[["sys.self"]]  # CPU time, as the Python sections
    best <- min(best, t)
  }
  us <- best / (10 * n) * 1e6
  cat(sprintf("  metafor rma(method = \"%%s\"): %%.1f µs per fit (best of 3)\n", method, us))
}
"""


def section_metafor() -> None:
    if shutil.which("Rscript") is None:
        print("metafor: Rscript not found, skipped")
        return
    rows = ["seed,yi,vi"]
    for seed, (y, v) in enumerate(single_data(15)):
        rows += [f"{seed},{a!r},{b!r}" for a, b in zip(y.tolist(), v.tolist(), strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.csv")
        with open(path, "w") as f:
            f.write("\n".join(rows) + "\n")
        script = os.path.join(tmp, "bench.R")
        with open(script, "w") as f:
            f.write(_R_SCRIPT % (path, 20 if QUICK else 50))
        done = subprocess.run(["Rscript", script], capture_output=True, text=True, check=False)
    print("metafor (k = 15, the single section's datasets, CPU time inside R):")
    print(done.stdout.rstrip() or f"  (failed: {done.stderr.strip()[:200]})")


def main() -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {platform.processor() or '?'}, {cpus} CPUs, load "
        f"{load:.1f}; Python {platform.python_version()}, NumPy {np.__version__}, "
        f"ketameta {ketameta.__version__}"
    )
    est = pymare()
    section_metafor()
    section_single(est)
    section_metareg()
    section_small(est)
    section_batch(est)
    section_dask()
    section_metafor()


if __name__ == "__main__":
    main()
