"""Many meta-analyses at once: ketameta.pool_many vs PyMARE's vectorised estimators.

Run: ``python benchmarks/batch.py [m] [k] [rounds]`` (default m = 1,000,000, k = 10,
5 rounds; peers need ``pip install -e ".[bench]"``). Every library gets the same arrays in
one process. The calls are interleaved: each round times every call once, so that all of
them meet the same load of a shared machine; seconds = the best round. Then one more
(traced) call each gives the peak memory added by a call (tracemalloc, NumPy allocations)
relative to the input size. Prints the ratios and checks that the estimates agree.

ketameta runs with its default threads (every CPU available) and with ``workers=1``;
PyMARE's REML (~25 s a call) runs in the first round only.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import ketameta


def traced_peak(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Peak bytes allocated during one call traced by tracemalloc, and the call's result."""
    tracemalloc.start()
    out = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, out


def pymare_calls(y: np.ndarray, v: np.ndarray) -> list[tuple[str, str, Callable[[], Any], bool]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator
    except ImportError:
        print("PyMARE not installed: skipped")
        return []
    x = np.ones((y.shape[1], 1))
    yt, vt = np.ascontiguousarray(y.T), np.ascontiguousarray(v.T)  # PyMARE: (k, m)

    def fit(make: Callable[[], Any]) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make().fit(yt, vt, x).params_["fe_params"].ravel()

    return [
        ("PyMARE DerSimonianLaird", "DL", lambda: fit(DerSimonianLaird), True),
        (
            "PyMARE REML",
            "REML",
            lambda: fit(lambda: VarianceBasedLikelihoodEstimator(method="REML")),
            False,  # ~25 s: the first round only
        ),
    ]


def main() -> None:
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    rng = np.random.default_rng(2026)
    v = rng.uniform(0.01, 0.2, size=(m, k))
    y = rng.normal(0.2, np.sqrt(v + rng.choice([0.0, 0.05, 0.3], size=(m, 1))))
    input_bytes = y.nbytes + v.nbytes
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"machine: {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, "
        f"NumPy {np.__version__}; m = {m:,}, k = {k}, input {input_bytes / 2**20:.0f} MiB; "
        f"best of {rounds} interleaved rounds"
    )
    calls: list[tuple[str, str, Callable[[], Any], bool]] = []
    for method in ("DL", "REML"):
        calls.append(
            (
                f"ketameta pool_many {method}",
                method,
                lambda m_=method: ketameta.pool_many(y, v, method=m_).estimate,
                True,
            )
        )
        calls.append(
            (
                f"  ... workers=1 {method}",
                method,
                lambda m_=method: ketameta.pool_many(y, v, method=m_, workers=1).estimate,
                True,
            )
        )
    calls += pymare_calls(y, v)
    best = [math.inf] * len(calls)
    for r in range(rounds):
        for i, (_, _, fn, repeat) in enumerate(calls):
            if r == 0 or repeat:
                start = time.perf_counter()
                out = fn()
                best[i] = min(best[i], time.perf_counter() - start)
                del out
    print(
        f"{'call':28s} {'seconds':>8s} {'vs ketameta':>12s} {'peak/input':>11s}"
        f" {'max |Δ est|':>12s}"
    )
    ours: dict[str, tuple[float, Any]] = {}
    for (label, method, fn, _), seconds in zip(calls, best, strict=True):
        peak, est = traced_peak(fn)
        if label.startswith("ketameta"):
            ours[method] = (seconds, est)
        t0, e0 = ours[method]
        diff = float(np.nanmax(np.abs(np.asarray(est) - e0)))
        print(
            f"{label:28s} {seconds:8.3f} {seconds / t0:11.1f}x {peak / input_bytes:10.2f}x"
            f" {diff:12.2e}"
        )


if __name__ == "__main__":
    main()
