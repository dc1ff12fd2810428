"""Meta-regression speed (issue #13): one fit, many fits at once, and on Dask.

Run: ``python benchmarks/metareg.py [m] [rounds]`` (default m = 1,000,000, 3 rounds; peers
need ``pip install -e ".[bench,dask]"``). Interleaved rounds (each round times every call
once), best round reported, ratios within the same run:

1. one meta-regression, k = 30, p = 3 (intercept + 2 moderators), REML, against ``pool``
   on the same k (issue target: ≤ 2×);
2. ``pool_many(Y, V, mods=X)``, m analyses × k = 10 studies, p = 2 (a shared design),
   DL and REML, against PyMARE's vectorised estimators on the same arrays and X (targets:
   REML ≥ 10× faster, DL ≥ 3×), and the peak memory of a call relative to the input
   (tracemalloc; target ≤ 3×);
3. the same on a Dask array (blocks of 10⁵ analyses, the threaded scheduler) against the
   in-memory call, per analysis (target: within 1.5×).
"""

from __future__ import annotations

import functools
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


def best(fn: Callable[[], Any], number: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def single(rounds: int) -> None:
    rng = np.random.default_rng(3)
    k = 30
    x = np.column_stack([rng.normal(size=k), rng.uniform(1990, 2010, k)])
    v = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.1 + 0.2 * x[:, 0], np.sqrt(v + 0.05))
    mods = {"dose": x[:, 0], "year": x[:, 1]}
    calls = {
        "metareg k=30 p=3 REML": lambda: ketameta.metareg(y, v, mods=mods),
        "pool k=30 REML": lambda: ketameta.pool(y, v),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds * 10):
        for name, fn in calls.items():
            times[name].append(best(fn, 50))
    t_mr, t_pool = min(times["metareg k=30 p=3 REML"]), min(times["pool k=30 REML"])
    print(
        f"metareg k=30 p=3 REML: {t_mr * 1e6:.0f} µs; pool k=30: {t_pool * 1e6:.0f} µs; "
        f"ratio {t_mr / t_pool:.2f} (target ≤ 2)"
    )


def pymare_fit(estimator: str, y: np.ndarray, v: np.ndarray, x: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

        est = DerSimonianLaird() if estimator == "DL" else VarianceBasedLikelihoodEstimator("REML")
        return est.fit(y, v, x).params_["fe_params"]


def batch(m: int, rounds: int) -> None:
    rng = np.random.default_rng(1)
    k = 10
    x = rng.normal(size=k)
    v = rng.uniform(0.01, 0.2, (m, k))
    y = rng.normal(0.2 + 0.3 * x, np.sqrt(v + 0.05))
    design = np.column_stack([np.ones(k), x])
    yt, vt = np.ascontiguousarray(y.T), np.ascontiguousarray(v.T)  # PyMARE: (k, m)
    calls: dict[str, Callable[[], Any]] = {
        "ketameta DL": lambda: ketameta.pool_many(y, v, mods=x, method="DL"),
        "ketameta REML": lambda: ketameta.pool_many(y, v, mods=x, method="REML"),
        "PyMARE DL": lambda: pymare_fit("DL", yt, vt, design),
        "PyMARE REML": lambda: pymare_fit("REML", yt, vt, design),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds):
        for name, fn in calls.items():
            if name == "PyMARE REML" and r > 0:
                continue  # (tens of seconds a call)
            times[name].append(best(fn))
    t = {name: min(ts) for name, ts in times.items()}
    print(f"pool_many(mods=X), m = {m:,}, k = {k}, p = 2:")
    for name, s in t.items():
        print(f"  {name:16s} {s:8.3f} s")
    print(f"  DL: PyMARE / ketameta = {t['PyMARE DL'] / t['ketameta DL']:.1f}x (target ≥ 3)")
    ratio = t["PyMARE REML"] / t["ketameta REML"]
    print(f"  REML: PyMARE / ketameta = {ratio:.1f}x (target ≥ 10)")
    a = ketameta.pool_many(y[:1000], v[:1000], mods=x, method="DL")
    b = pymare_fit("DL", yt[:, :1000], vt[:, :1000], design)
    print(f"  estimates agree with PyMARE (DL, first 1000): {np.allclose(a.coef.T, b, rtol=1e-8)}")
    size = y.nbytes + v.nbytes
    for method in ("DL", "REML"):
        tracemalloc.start()
        ketameta.pool_many(y, v, mods=x, method=method)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  peak memory {method}: {peak / size:.2f}x the input (target ≤ 3)")


def dask(m: int, rounds: int) -> None:
    try:
        import dask
        import dask.array as da
    except ImportError:
        print("Dask not installed: skipped")
        return
    rng = np.random.default_rng(2)
    k = 10
    x = rng.normal(size=k)
    v = rng.uniform(0.01, 0.2, (m, k))
    y = rng.normal(0.2 + 0.3 * x, np.sqrt(v + 0.05))
    yd, vd = da.from_array(y, chunks=(100_000, k)), da.from_array(v, chunks=(100_000, k))
    for label, mods in (("intercept only", None), ("mods, p = 2", x)):
        for method in ("DL", "REML"):
            mem: list[float] = []
            lazy: list[float] = []
            in_memory = functools.partial(ketameta.pool_many, y, v, mods=mods, method=method)
            lazily = functools.partial(ketameta.pool_many, yd, vd, mods=mods, method=method)
            for _ in range(rounds):
                mem.append(best(in_memory))
                with dask.config.set(scheduler="threads"):
                    lazy.append(best(lambda: lazily().compute()))  # noqa: B023
            a, b = min(mem) / m * 1e6, min(lazy) / m * 1e6
            print(
                f"  Dask {label} {method}: {b:.3f} µs/analysis vs in memory {a:.3f} "
                f"({b / a:.2f}x; target ≤ 1.5)"
            )


def main() -> None:
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, NumPy {np.__version__}"
    )
    single(rounds)
    batch(m, rounds)
    dask(m, rounds)


if __name__ == "__main__":
    main()
