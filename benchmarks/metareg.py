"""Meta-regression speed (issue #13): one fit, many fits at once, and on Dask.

Run: ``python benchmarks/metareg.py [m] [rounds] [--single]`` (default m = 1,000,000, 3
rounds; ``--single`` runs section 1 only; peers need ``pip install -e ".[bench,dask]"``).
Interleaved rounds (each round times every call once, so that a shared machine's changing
load meets them alike), ratios within the same run:

1. one meta-regression, k = 30, p = 3 (intercept + 2 moderators), REML, ten datasets,
   against ``pool`` on the same effects (issue target: ≤ 2×), in CPU time
   (``time.process_time``); beside them the engine's fit alone (``_engine.fit``: the
   orthogonalised design, τ² and every statistic) for p = 3 and p = 1, so that the ratio
   splits into the engine's part and the public functions' own cost (input checks,
   model matrix, result object);
2. ``pool_many(Y, V, mods=X)``, m analyses × k = 10 studies, p = 2 (a shared design),
   DL and REML, against PyMARE's vectorised estimators on the same arrays and X (input
   transposed to PyMARE's (k, m) layout beforehand, free of charge; targets: REML ≥ 10×
   faster, DL ≥ 3×), wall clock and CPU time of the best round (PyMARE's REML, tens of
   seconds a call, one round), and the peak memory of a call relative to the input
   (tracemalloc; target ≤ 3×);
3. the same on Dask arrays (blocks of 10⁵ analyses, the threaded scheduler) against the
   in-memory call, per analysis (target: within 1.5×), intercept-only and p = 2.
"""

from __future__ import annotations

import functools
import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import ketameta
from ketameta import _engine

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]


def timed(fn: Callable[[], Any], number: int = 1) -> tuple[float, float]:
    """Wall-clock and CPU seconds per call of `number` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(number):
        fn()
    return (time.perf_counter() - wall) / number, (time.process_time() - cpu) / number


def single(rounds: int) -> None:
    k = 30
    data = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        x = np.column_stack([rng.normal(size=k), rng.uniform(1990, 2010, k)])
        v = rng.uniform(0.01, 0.2, k)
        y = rng.normal(0.1 + 0.2 * x[:, 0], np.sqrt(v + 0.05))
        data.append((y, v, x, np.column_stack([np.ones(k), x])))
    control = dict(_engine.DEFAULT_CONTROL)
    options: dict[str, Any] = {"method": "REML", "test": "z", "level": 0.95, "control": control}

    def over(fit: Callable[[Any, Any, Any, Any], Any]) -> Callable[[], None]:
        def run() -> None:
            for y, v, x, design in data:
                fit(y, v, x, design)

        return run

    calls = {
        "metareg(y, v, mods=X)": over(lambda y, v, x, d: ketameta.metareg(y, v, mods=x)),
        "pool(y, v)": over(lambda y, v, x, d: ketameta.pool(y, v)),
        "engine fit alone, p = 3": over(
            lambda y, v, x, d: _engine.fit(y, v, d, padded=False, intercept=True, **options)
        ),
        "engine fit alone, p = 1": over(
            lambda y, v, x, d: _engine.fit(y, v, padded=False, btt=(), **options)
        ),
    }
    for fn in calls.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds * 10):
        for name, fn in calls.items():
            times[name].append(timed(fn, 10)[1] / 10)
    print(f"one fit, k = {k}, REML, ten datasets, CPU µs per fit (median / min of rounds):")
    base = times["pool(y, v)"]
    for name, ts in times.items():
        ratio = statistics.median(a / b for a, b in zip(ts, base, strict=True))
        print(
            f"  {name:28s} {statistics.median(ts) * 1e6:7.1f} / {min(ts) * 1e6:7.1f}"
            f"   {ratio:5.2f}x pool"
        )
    pairs = zip(times["metareg(y, v, mods=X)"], times["engine fit alone, p = 3"], strict=True)
    own = [a - b for a, b in pairs]
    pairs = zip(times["pool(y, v)"], times["engine fit alone, p = 1"], strict=True)
    own_pool = [a - b for a, b in pairs]
    print(
        f"  metareg outside the engine fit: {statistics.median(own) * 1e6:.1f} µs; "
        f"pool outside it: {statistics.median(own_pool) * 1e6:.1f} µs (medians of rounds)"
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
        "ketameta DL workers=1": lambda: ketameta.pool_many(y, v, mods=x, method="DL", workers=1),
        "ketameta REML": lambda: ketameta.pool_many(y, v, mods=x, method="REML"),
        "ketameta REML workers=1": lambda: ketameta.pool_many(
            y, v, mods=x, method="REML", workers=1
        ),
        "PyMARE DL": lambda: pymare_fit("DL", yt, vt, design),
        "PyMARE REML": lambda: pymare_fit("REML", yt, vt, design),
    }
    walls: dict[str, list[float]] = {name: [] for name in calls}
    cpus: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds):
        for name, fn in calls.items():
            if name == "PyMARE REML" and r > 0:
                continue  # (tens of seconds a call)
            wall, cpu = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"pool_many(mods=X), m = {m:,}, k = {k}, p = 2: seconds, best round (wall / CPU)")
    for name in calls:
        print(f"  {name:24s} {min(walls[name]):8.3f} / {min(cpus[name]):8.3f}")
    for method, target in (("DL", 3), ("REML", 10)):
        for clock, t in (("wall", walls), ("CPU", cpus)):
            ours = min(min(t[f"ketameta {method}"]), min(t[f"ketameta {method} workers=1"]))
            ratio = min(t[f"PyMARE {method}"]) / ours
            print(f"  {method}: PyMARE / ketameta = {ratio:.1f}x ({clock}; target ≥ {target})")
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
    print(f"Dask (blocks of 100,000 analyses, threaded scheduler), m = {m:,}, k = {k}:")
    for label, mods in (("intercept only", None), ("mods, p = 2", x)):
        for method in ("DL", "REML"):
            mem: list[tuple[float, float]] = []
            lazy: list[tuple[float, float]] = []
            in_memory = functools.partial(ketameta.pool_many, y, v, mods=mods, method=method)
            lazily = functools.partial(ketameta.pool_many, yd, vd, mods=mods, method=method)
            for _ in range(rounds):
                mem.append(timed(in_memory))
                with dask.config.set(scheduler="threads"):
                    lazy.append(timed(lambda: lazily().compute()))  # noqa: B023
            for j, clock in ((0, "wall"), (1, "CPU")):
                a = min(t[j] for t in mem) / m * 1e6
                b = min(t[j] for t in lazy) / m * 1e6
                print(
                    f"  {label:15s} {method:4s} {clock:4s}: Dask {b:.3f} µs/analysis, in memory "
                    f"{a:.3f} ({b / a:.2f}x; target ≤ 1.5)"
                )


def main() -> None:
    m = int(ARGS[0]) if ARGS else 1_000_000
    rounds = int(ARGS[1]) if len(ARGS) > 1 else 3
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, NumPy {np.__version__}; load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    single(rounds)
    if "--single" in sys.argv:
        return
    batch(m, rounds)
    dask(m, rounds)
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
