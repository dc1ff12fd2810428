"""Time one Bayesian random-effects meta-analysis (k = 15) with ketameta.bayes_pool.

Run: ``python benchmarks/bayes_single.py``. Ten simulated datasets (k = 15, true τ² = 0.05)
are analysed in turn with a half-normal(0.5) prior on τ and a flat prior on μ; the time
per analysis is the mean over the ten, repeated in 30 rounds; the median and minimum over
the rounds are printed, as wall-clock time and as this process's CPU time (which
other tenants of a shared machine do not inflate as much). To tell load from overhead
(thread pools, waiting), each round is paired with a pure-Python loop of similar CPU
cost: its wall/CPU ratio is the machine's load factor, and bayes_pool's ratio should be
the same (the script prints both). R's bayesmeta takes of the order of a second per
analysis; it is not installable here, so it is not timed side by side. Keep it brief on
shared machines.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

import ketameta
from ketameta.priors import HalfNormal

K = 15
DATASETS = []
for _seed in range(10):
    _rng = np.random.default_rng(_seed)
    _v = _rng.uniform(0.01, 0.2, K)
    DATASETS.append((_rng.normal(0.3, np.sqrt(_v + 0.05)), _v))
PRIOR = HalfNormal(0.5)


def one_round(clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    for y, v in DATASETS:
        ketameta.bayes_pool(y, v, tau_prior=PRIOR)
    return (clock() - start) / len(DATASETS)


def _busy() -> int:
    s = 0
    for i in range(20000):
        s += i * i
    return s


def _ratio(fn: Callable[[], object]) -> float:
    """Wall-clock over CPU time of one call (1 on an idle core)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - w0) / max(time.process_time() - c0, 1e-9)


def main() -> None:
    one_round()  # warm-up (imports, caches)
    times = [one_round() for _ in range(30)]
    cpu = [one_round(time.process_time) for _ in range(30)]  # this process's CPU time only
    ours, control = [], []
    for _ in range(30):  # paired: bayes_pool and the pure-Python loop meet the same load
        ours.append(_ratio(one_round))
        control.append(_ratio(lambda: [_busy() for _ in range(len(DATASETS))]))
    res = ketameta.bayes_pool(*DATASETS[0], tau_prior=PRIOR)
    print(f"{platform.python_version()} numpy {np.__version__} ({platform.machine()})")
    print(
        f"bayes_pool, k = {K}: median {1e3 * statistics.median(times):.2f} ms, "
        f"minimum {1e3 * min(times):.2f} ms per analysis (wall clock); CPU time "
        f"median {1e3 * statistics.median(cpu):.2f} ms, minimum {1e3 * min(cpu):.2f} ms "
        f"({res.n_nodes} nodes in tau, estimated relative error {res.integration_error:.1e})"
    )
    print(
        f"wall/CPU: bayes_pool {statistics.median(ours):.2f}, pure-Python control "
        f"{statistics.median(control):.2f} (equal ratios: the wall-clock excess is load)"
    )


if __name__ == "__main__":
    main()
