"""CPU user and system time and page faults of batch calls, with glibc's default heap
trimming and with the trimming Dask's workers ask for (issue #20).

Run: ``python benchmarks/page_faults.py [m] [rounds]`` (default m = 1,000,000, k = 10,
3 rounds). Each measurement runs in a fresh process (``workers=1``, the best of 3 calls
after a warm-up on a small batch), once as is and once with
``MALLOC_TRIM_THRESHOLD_=65536`` (set by ``dask.distributed`` for its workers: the heap
is then handed back to the system whenever 64 KiB at its top are free, and every
temporary array of a chunk is faulted in again page by page). The engine keeps its
working arrays in per-thread recycled buffers (``ketameta._engine.workspace``) so that
its chunks do not depend on the allocator's settings. Cases: ``pool_many`` DL and REML
(complete rows), DL with 2-10 of 10 studies per row, ``pool_mh_many`` OR on ragged
tables (``binary_many.py``'s data).
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys

import numpy as np

CASES = ("DL", "REML", "DL-ragged", "MH-OR-ragged")
K = 10


def measure(case: str, m: int) -> None:
    import ketameta

    rng = np.random.default_rng(1)
    if case.startswith("MH"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from binary_many import cells

        data = cells(m, seed=2, ragged=True)
        ketameta.pool_mh_many(**{n: a[:20000] for n, a in data.items()}, workers=1)

        def call() -> object:
            return ketameta.pool_mh_many(**data, workers=1)

    else:
        method = case.split("-")[0]
        v = rng.uniform(0.01, 1.0, (m, K))
        y = rng.normal(0.0, np.sqrt(v + 0.1))
        if case.endswith("ragged"):
            keep = rng.integers(2, K + 1, m)
            y[np.arange(K)[None, :] >= keep[:, None]] = np.nan
        ketameta.pool_many(y[:20000], v[:20000], method=method, workers=1)

        def call() -> object:
            return ketameta.pool_many(y, v, method=method, workers=1)

    best: tuple[float, float, int] | None = None
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF)
        out = call()
        after = resource.getrusage(resource.RUSAGE_SELF)
        del out
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        faults = after.ru_minflt - before.ru_minflt
        if best is None or user + system < best[0] + best[1]:
            best = (user, system, faults)
    assert best is not None
    print(f"{best[0]:.3f} {best[1]:.3f} {best[2]}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--case":
        measure(sys.argv[2], int(sys.argv[3]))
        return
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(
        f"{platform.platform()}, Python {platform.python_version()}, NumPy {np.__version__}; "
        f"m = {m:,}, k = {K}, workers=1, best of 3 calls per process, load "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(f"{'case':14s} {'allocator':10s} {'user s':>7s} {'sys s':>7s} {'faults':>9s}")
    settings: tuple[tuple[str, dict[str, str]], ...] = (
        ("default", {}),
        ("trim 64K", {"MALLOC_TRIM_THRESHOLD_": "65536"}),
    )
    for _ in range(rounds):
        for case in CASES:
            for label, extra in settings:
                env = {**os.environ, **extra}
                args = [sys.executable, __file__, "--case", case, str(m)]
                result = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
                user, system, faults = result.stdout.split()
                print(f"{case:14s} {label:10s} {user:>7s} {system:>7s} {faults:>9s}")


if __name__ == "__main__":
    main()
