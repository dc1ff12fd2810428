"""Out-of-core: ketameta.pool_many on Dask arrays of m = 20,000,000 meta-analyses.

Run: ``python benchmarks/batch_dask.py [m] [method]`` (needs the `dask` extra). The
effects and variances are generated lazily in chunks of rows (never held in memory
whole: 20e6 x 10 x 2 doubles would be 3.2 GB); the pooled estimates are reduced to a few
summaries, so the peak resident memory (printed) stays bounded by the chunks in flight.
"""

from __future__ import annotations

import platform
import resource
import sys
import time

import dask
import dask.array as da
import numpy as np

import ketameta


def main() -> None:
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000
    method = sys.argv[2] if len(sys.argv) > 2 else "DL"
    k, chunk = 10, 250_000
    rs = da.random.RandomState(2026)
    v = rs.uniform(0.01, 0.2, size=(m, k), chunks=(chunk, k))
    y = 0.2 + rs.normal(0.0, 1.0, size=(m, k), chunks=(chunk, k)) * da.sqrt(v + 0.05)
    res = ketameta.pool_many(y, v, method=method)
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=2):
        mean_est, mean_tau2, n_failed = dask.compute(
            res.estimate.mean(), res.tau2.mean(), (~res.converged).sum()
        )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"machine: {platform.machine()}, NumPy {np.__version__}, Dask {dask.__version__}")
    print(
        f"m = {m:,}, k = {k}, method {method}: {seconds:.1f} s, peak RSS {peak:.2f} GiB "
        f"(input would be {2 * m * k * 8 / 2**30:.1f} GiB); mean estimate {mean_est:.4f}, "
        f"mean tau2 {mean_tau2:.4f}, not converged {int(n_failed)}"
    )


if __name__ == "__main__":
    main()
