"""Time 10⁶ Mantel-Haenszel (and Peto) meta-analyses of 10 tables each.

Run: ``python benchmarks/binary_many.py [m]`` (default m = 1,000,000; a shared machine:
measure briefly, one pass per call after a warm-up on a small batch).

Rare-event tables (event risks 2-15 %, groups of 20-400): every analysis complete, then a
ragged batch (2-10 tables per analysis, NaN for the rest). Also times the first derived
statistics on access (p-values, I²) and, for scale, one NumPy multiplication of an
(m, 10) array, which shows how fast the machine is at the moment. Each call prints its
CPU user and system time and minor page faults (``MALLOC_TRIM_THRESHOLD_=65536``, as
Dask's workers set it, shows what recycled working arrays save: see
``benchmarks/page_faults.py``).
"""

from __future__ import annotations

import platform
import resource
import sys
import time

import numpy as np

import ketameta

K = 10


def cells(m: int, seed: int = 1, ragged: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n1 = rng.integers(20, 400, (m, K)).astype(float)
    n2 = rng.integers(20, 400, (m, K)).astype(float)
    p = rng.uniform(0.02, 0.15, (m, 1))
    a = rng.binomial(n1.astype(np.int64), p).astype(float)
    c = rng.binomial(n2.astype(np.int64), p * rng.uniform(0.6, 1.4, (m, 1))).astype(float)
    if ragged:
        keep = rng.integers(2, K + 1, m)
        absent = np.arange(K)[None, :] >= keep[:, None]
        a[absent] = np.nan
    return {"ai": a, "bi": n1 - a, "ci": c, "di": n2 - c}


def timed(label: str, fn: object, *args: object, **kwargs: object) -> object:
    """Wall clock, CPU user and system time and minor page faults of one call."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    out = fn(*args, **kwargs)  # type: ignore[operator]
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    faults = after.ru_minflt - before.ru_minflt
    print(f"{label:46s} {wall:7.3f} s (user {user:.3f}, sys {system:.3f}, {faults} faults)")
    return out


def main() -> None:
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(platform.platform(), platform.python_version(), "numpy", np.__version__)
    full = cells(m)
    small = {k: v[:5000] for k, v in full.items()}
    for measure in ("OR", "RR", "RD"):  # warm-up
        ketameta.pool_mh_many(**small, measure=measure)
    ketameta.pool_peto_many(**small)
    x = full["ai"]
    start = time.perf_counter()
    x * x
    print(f"(one multiplication of an ({m}, {K}) array: {time.perf_counter() - start:.4f} s)")
    print(f"\n{m:,} meta-analyses of {K} tables, complete:")
    res = timed("pool_mh_many, OR (MH, RBG variance, CMH, Tarone)", ketameta.pool_mh_many, **full)
    timed("  + p-values and I² on access", lambda r: (r.pvalue, r.i2, r.tarone_pvalue), res)
    timed("pool_mh_many, RR", ketameta.pool_mh_many, **full, measure="RR")
    timed("pool_mh_many, RD (Sato variance)", ketameta.pool_mh_many, **full, measure="RD")
    timed("pool_peto_many", ketameta.pool_peto_many, **full)
    ragged = cells(m, seed=2, ragged=True)
    print(f"\n{m:,} meta-analyses of 2-{K} tables (NaN-padded):")
    timed("pool_mh_many, OR", ketameta.pool_mh_many, **ragged)
    timed("pool_peto_many", ketameta.pool_peto_many, **ragged)


if __name__ == "__main__":
    main()
