"""Time one Mantel-Haenszel meta-analysis of k = 15 tables: ketameta against statsmodels'
``StratifiedTable`` (the only Python MH implementation: odds ratio only), side by side.

Run: ``python benchmarks/binary_single.py`` (needs ``pip install -e ".[bench]"``).

Ten simulated sets of 15 tables are pooled in turn; the time per analysis is the mean over
the ten. Calls are timed in interleaved rounds (each round times every call once, so that a
shared machine's changing speed affects them alike); the figures are the median and the
minimum over the rounds, and the ratios are medians of the per-round ratios.

The calls, in three pairs (ketameta against the statsmodels call that computes the same):

* estimate: ``ketameta.pool_mh(ai, bi, ci, di)`` reading the estimate, SE and CI
  (validation, the MH log odds ratio with its Robins-Breslow-Greenland variance, Wald CI
  and test, the frozen result; the study-level table, Q and the tests are computed when
  first read) against ``StratifiedTable(tables)`` with ``logodds_pooled``,
  ``logodds_pooled_se`` and ``logodds_pooled_confint()``;
* like for like: the same and the Cochran-Mantel-Haenszel and Tarone p-values (their
  tests are then computed, with Cochran's and the uncorrected Breslow-Day test), against
  statsmodels' ``test_null_odds(correction=True)`` and ``test_equal_odds(adjust=True)``
  added;
* full result: every field of the ``MHResult`` read (also the study-level log odds ratios
  with ½ added to tables with a zero, weights, Q, I², H², log-likelihoods, AIC, BIC, AICc)
  against statsmodels' ``StratifiedTable(tables).summary()`` (its full report: pooled
  OR and log OR with CIs, RR, the two tests).
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
    import attrs
    from statsmodels.stats.contingency_tables import StratifiedTable

    fields = [f.name for f in attrs.fields(ketameta.MHResult)]

    def stack(a: Any, b: Any, c: Any, d: Any) -> np.ndarray:
        return np.array([[a, b], [c, d]])

    def sm_estimate(a: Any, b: Any, c: Any, d: Any) -> Any:
        st = StratifiedTable(stack(a, b, c, d))
        return st.logodds_pooled, st.logodds_pooled_se, st.logodds_pooled_confint()

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

    def ketameta_estimate(a: Any, b: Any, c: Any, d: Any) -> Any:
        res = ketameta.pool_mh(a, b, c, d)
        return res.estimate, res.se, (res.ci_lower, res.ci_upper)

    def ketameta_same(a: Any, b: Any, c: Any, d: Any) -> Any:
        res = ketameta.pool_mh(a, b, c, d)
        return (
            res.estimate,
            res.se,
            (res.ci_lower, res.ci_upper),
            res.cmh_pvalue,
            res.tarone_pvalue,
        )

    def ketameta_full(a: Any, b: Any, c: Any, d: Any) -> Any:
        res = ketameta.pool_mh(a, b, c, d)
        return [getattr(res, name) for name in fields]

    return [
        ("ketameta estimate, SE, CI", ketameta_estimate),
        ("statsmodels estimate, SE, CI", sm_estimate),
        ("ketameta + CMH, Tarone p", ketameta_same),
        ("statsmodels + CMH, Tarone p", sm_same),
        ("ketameta every field", ketameta_full),
        ("statsmodels summary()", sm_summary),
    ]


def main() -> None:
    print(platform.platform(), platform.python_version(), "numpy", np.__version__)
    entries = calls()
    # the same numbers first (they agree to rounding)
    a, b, c, d = TABLES[0]
    ours = ketameta.pool_mh(a, b, c, d)
    theirs = entries[3][1](a, b, c, d)
    print(f"log OR: ketameta {ours.estimate:.12f}, statsmodels {theirs[0]:.12f}")
    print(f"SE:     ketameta {ours.se:.12f}, statsmodels {theirs[1]:.12f}")
    print(f"CMH p:  ketameta {ours.cmh_pvalue:.10f}, statsmodels {theirs[3]:.10f}")
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
    print(
        f"\nµs per analysis (k = {K}), median / minimum over {ROUNDS} interleaved rounds;"
        " wall clock, then process CPU time; statsmodels' time over ketameta's (median of"
        " the per-round ratios)"
    )
    names = list(times)
    for i, name in enumerate(names):
        values = times[name]
        line = f"{name:30s}"
        for j in (0, 1):
            mine = [v[j] for v in values]
            line += f" {1e6 * statistics.median(mine):7.1f} / {1e6 * min(mine):7.1f}"
            if i % 2:
                base = times[names[i - 1]]
                ratio = statistics.median(v[j] / b[j] for v, b in zip(values, base, strict=True))
                line += f" ({ratio:5.2f}×)"
            else:
                line += "         "
        print(line)


if __name__ == "__main__":
    main()
