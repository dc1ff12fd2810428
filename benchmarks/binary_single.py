"""Time one Mantel-Haenszel meta-analysis of k = 15 tables: ketameta against statsmodels'
``StratifiedTable`` (the only Python MH implementation: odds ratio only), side by side.

Run: ``python benchmarks/binary_single.py`` (needs ``pip install -e ".[bench]"``).

Ten simulated sets of 15 tables are pooled in turn; the time per analysis is the mean over
the ten. Calls are timed in interleaved rounds (each round times every call once, so that a
shared machine's changing speed affects them alike); the figures are the median and the
minimum over the rounds, and the ratios are medians of the per-round ratios.

The calls:

* ``ketameta.pool_mh(ai, bi, ci, di)`` (then reading the estimate, SE, CI, the CMH and
  Tarone p-values, as from statsmodels): validation, the MH log odds ratio with its
  Robins-Breslow-Greenland variance, Wald CI and test, the Cochran-Mantel-Haenszel and
  Cochran tests, Breslow-Day and Tarone, the study-level log odds ratios (½ added to
  tables with a zero), Q, I², H², fit statistics and the frozen result object;
* statsmodels "same statistics": ``StratifiedTable(tables)`` with ``logodds_pooled``,
  ``logodds_pooled_se``, ``logodds_pooled_confint()``, ``test_null_odds(correction=True)``
  and ``test_equal_odds(adjust=True)`` (the CMH and Tarone tests; no study-level effects,
  Q or I²);
* statsmodels ``StratifiedTable(tables).summary()`` (its full report);
* statsmodels "estimate only": the constructor, ``logodds_pooled`` and its SE.
"""

from __future__ import annotations

import platform
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import ketameta

K = 15
ROUNDS = 40
TABLES = []
for _seed in range(10):
    _rng = np.random.default_rng(_seed)
    _n1 = _rng.integers(30, 300, K)
    _n2 = _rng.integers(30, 300, K)
    _a = _rng.binomial(_n1, 0.08).astype(float)
    _c = _rng.binomial(_n2, 0.12).astype(float)
    TABLES.append((_a, _n1 - _a, _c, _n2 - _c))


def time_round(fit: Callable[..., object], number: int) -> tuple[float, float]:
    """Mean wall and CPU seconds per analysis over `number` passes over the ten sets."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(number):
        for cells in TABLES:
            fit(*cells)
    calls = number * len(TABLES)
    return (time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls


def calls() -> list[tuple[str, Callable[..., Any]]]:
    from statsmodels.stats.contingency_tables import StratifiedTable

    def stack(a: Any, b: Any, c: Any, d: Any) -> np.ndarray:
        return np.array([[a, b], [c, d]])

    def sm_same(a: Any, b: Any, c: Any, d: Any) -> Any:
        st = StratifiedTable(stack(a, b, c, d))
        return (
            st.logodds_pooled,
            st.logodds_pooled_se,
            st.logodds_pooled_confint(),
            st.test_null_odds(correction=True).pvalue,
            st.test_equal_odds(adjust=True).pvalue,
        )

    def sm_summary(a: Any, b: Any, c: Any, d: Any) -> Any:
        return StratifiedTable(stack(a, b, c, d)).summary()

    def sm_estimate(a: Any, b: Any, c: Any, d: Any) -> Any:
        st = StratifiedTable(stack(a, b, c, d))
        return st.logodds_pooled, st.logodds_pooled_se

    def ketameta_same(a: Any, b: Any, c: Any, d: Any) -> Any:
        res = ketameta.pool_mh(a, b, c, d)
        return (
            res.estimate,
            res.se,
            (res.ci_lower, res.ci_upper),
            res.cmh_pvalue,
            res.tarone_pvalue,
        )

    return [
        ("ketameta pool_mh", ketameta_same),
        ("statsmodels, same statistics", sm_same),
        ("statsmodels summary()", sm_summary),
        ("statsmodels estimate + SE only", sm_estimate),
    ]


def main() -> None:
    print(platform.platform(), platform.python_version(), "numpy", np.__version__)
    entries = calls()
    # the same numbers first (they agree to rounding)
    a, b, c, d = TABLES[0]
    ours = ketameta.pool_mh(a, b, c, d)
    theirs = entries[1][1](a, b, c, d)
    print(f"log OR: ketameta {ours.estimate:.12f}, statsmodels {theirs[0]:.12f}")
    print(f"SE:     ketameta {ours.se:.12f}, statsmodels {theirs[1]:.12f}")
    print(f"Tarone p: ketameta {ours.tarone_pvalue:.10f}, statsmodels {theirs[4]:.10f}")
    number = 20
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in entries}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fn in (fn for _, fn in entries):  # warm-up
            time_round(fn, 2)
        for _ in range(ROUNDS):
            for name, fn in entries:
                times[name].append(time_round(fn, number))
    base = times["ketameta pool_mh"]
    print(
        f"\nµs per analysis (k = {K}), median / minimum over {ROUNDS} interleaved rounds;"
        " wall clock, then process CPU time"
    )
    for name, values in times.items():
        line = f"{name:34s}"
        for i in (0, 1):
            mine = [v[i] for v in values]
            ratio = statistics.median(v[i] / b[i] for v, b in zip(values, base, strict=True))
            line += (
                f" {1e6 * statistics.median(mine):7.1f} / {1e6 * min(mine):7.1f} ({ratio:5.2f}×)"
            )
        print(line)


if __name__ == "__main__":
    main()
