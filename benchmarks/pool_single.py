"""Time one meta-analysis (k = 15) with ketameta, statsmodels and PyMARE side by side.

Run: ``python benchmarks/pool_single.py`` (needs ``pip install -e ".[bench]"``).
Prints the median time per fit of each library on the same data, the ratio to
ketameta's fit with the same estimator, and each library's pooled estimate (they agree).
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


def median_time(fn: Callable[[], object], *, number: int = 200, repeat: int = 15) -> float:
    """Median over `repeat` runs of the mean time of `number` calls, in seconds."""
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs)


def main() -> None:
    rng = np.random.default_rng(2026)
    k = 15
    v = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.3, np.sqrt(v + 0.05))
    rows: list[tuple[str, str, float, float]] = []  # (label, estimator, seconds, estimate)

    for method in ("DL", "REML", "PM"):

        def fit(m: str = method) -> ketameta.PoolResult:
            return ketameta.pool(y, v, method=m)

        rows.append((f"ketameta pool {method}", method, median_time(fit), fit().estimate))

    try:
        from statsmodels.stats.meta_analysis import combine_effects

        for label, method in (("dl", "DL"), ("iterated", "PM")):

            def sm_fit(m: str = label) -> Any:
                return combine_effects(y, v, method_re=m)

            est = float(sm_fit().mean_effect_re)
            rows.append(
                (f"statsmodels combine_effects {method}", method, median_time(sm_fit), est)
            )
    except ImportError:
        print("statsmodels not installed: skipped")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pymare import Dataset
            from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

        def pymare_fit(make: Callable[[], Any]) -> float:
            fitted = make().fit_dataset(Dataset(y, v))
            return float(fitted.summary().fe_params[0, 0])

        for label, method, make in (
            ("PyMARE DerSimonianLaird", "DL", DerSimonianLaird),
            ("PyMARE REML", "REML", lambda: VarianceBasedLikelihoodEstimator(method="REML")),
        ):
            seconds = median_time(lambda mk=make: pymare_fit(mk), number=20)
            rows.append((label, method, seconds, pymare_fit(make)))
    except ImportError:
        print("PyMARE not installed: skipped")

    ours = {method: t for label, method, t, _ in rows if label.startswith("ketameta")}
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}"
    )
    print(f"{'library / call':34s} {'median':>10s} {'vs ketameta':>12s} {'estimate':>10s}")
    for label, method, t, est in rows:
        print(f"{label:34s} {t * 1e6:8.1f}µs {t / ours[method]:11.1f}x {est:10.6f}")


if __name__ == "__main__":
    main()
