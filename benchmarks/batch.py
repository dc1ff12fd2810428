"""Many meta-analyses at once: ketameta.pool_many vs PyMARE's vectorised estimators.

Run: ``python benchmarks/batch.py [m] [k]`` (default m = 1,000,000, k = 10; peers need
``pip install -e ".[bench]"``). Both libraries get the same arrays in one process; prints
wall time (best of three calls), the peak memory added by a call (tracemalloc, NumPy
allocations; a separate traced call) relative to the input size, the ratios, and checks
that the estimates agree.
"""

from __future__ import annotations

import math
import platform
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import ketameta


def measure(fn: Callable[[], Any], *, repeat: int = 3) -> tuple[float, float, Any]:
    """(seconds: the best of `repeat` untraced calls, peak bytes allocated during one
    more call traced by tracemalloc, result)."""
    seconds = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        seconds = min(seconds, time.perf_counter() - start)
        del out
    tracemalloc.start()
    out = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak, out


def main() -> None:
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rng = np.random.default_rng(2026)
    v = rng.uniform(0.01, 0.2, size=(m, k))
    y = rng.normal(0.2, np.sqrt(v + rng.choice([0.0, 0.05, 0.3], size=(m, 1))))
    input_bytes = y.nbytes + v.nbytes
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}; m = {m:,}, k = {k}, input {input_bytes / 2**20:.0f} MiB"
    )
    rows = []
    for method in ("DL", "REML"):
        t, peak, res = measure(lambda m_=method: ketameta.pool_many(y, v, method=m_))
        rows.append((f"ketameta pool_many {method}", method, t, peak, res.estimate))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator
        x = np.ones((k, 1))
        yt, vt = np.ascontiguousarray(y.T), np.ascontiguousarray(v.T)  # PyMARE: (k, m)
        for label, method, make in (
            ("PyMARE DerSimonianLaird", "DL", DerSimonianLaird),
            ("PyMARE REML", "REML", lambda: VarianceBasedLikelihoodEstimator(method="REML")),
        ):

            def fit(mk: Callable[[], Any] = make) -> Any:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return mk().fit(yt, vt, x).params_["fe_params"].ravel()

            t, peak, est = measure(fit)
            rows.append((label, method, t, peak, est))
    except ImportError:
        print("PyMARE not installed: skipped")
    ours = {method: (t, est) for label, method, t, _, est in rows if label.startswith("ketameta")}
    print(
        f"{'call':28s} {'seconds':>8s} {'vs ketameta':>12s} {'peak/input':>11s}"
        f" {'max |Δ est|':>12s}"
    )
    for label, method, t, peak, est in rows:
        t0, e0 = ours[method]
        diff = float(np.nanmax(np.abs(np.asarray(est) - e0)))
        print(f"{label:28s} {t:8.2f} {t / t0:11.1f}x {peak / input_bytes:10.2f}x {diff:12.2e}")


if __name__ == "__main__":
    main()
