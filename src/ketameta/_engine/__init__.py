"""The numeric engine of ketameta (private).

Every model is fitted here on arrays with the studies on the last axis; the public modules
(``pooling``, ``metareg``, ``subgroups``, ``bayes``, ``binary``, ...) validate their input,
call the engine and wrap its output in frozen result objects. See ``DEVELOPERS.md`` for
where a new kind of model goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._typing import FloatArray
from ._num import Num
from .design import Design
from .model import fit_design, q_profile
from .tau2 import DEFAULT_CONTROL, METHOD_ALIASES, TAU2_ESTIMATORS, TAU2_METHODS

__all__ = [
    "DEFAULT_CONTROL",
    "METHOD_ALIASES",
    "TAU2_ESTIMATORS",
    "TAU2_METHODS",
    "TESTS",
    "Design",
    "fit",
    "intercept_view",
    "tau2_interval",
]

#: tests / interval methods for the coefficients
TESTS = ("z", "t", "knha", "adhoc")
#: the per-coefficient statistics of the engine's output, named as in the intercept-only
#: model's result (``estimate`` is the coefficient)
COEF_FIELDS = {
    "estimate": "coef",
    "se": "se",
    "statistic": "statistic",
    "pvalue": "pvalue",
    "ci_lower": "ci_lower",
    "ci_upper": "ci_upper",
}


def fit(
    y: FloatArray,
    v: FloatArray,
    x: FloatArray | None = None,
    *,
    padded: bool = True,
    intercept: bool | None = None,
    method: str,
    test: str,
    level: float,
    tau2_fixed: float | None = None,
    control: dict[str, Any],
    btt: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Fit one analysis (1-D `y`, `v`) or a batch (2-D; ``v = inf`` marks an absent study
    unless ``padded=False``) with design `x` (None: intercept only; ``(k, p)`` or
    ``(m, k, p)``). See :func:`ketameta._engine.model.fit_design` for the output."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        design = Design(y, v, x, padded=padded, intercept=intercept)
        return fit_design(
            design,
            method=method,
            test=test,
            level=level,
            tau2_fixed=tau2_fixed,
            control=control,
            btt=btt,
        )


def intercept_view(out: dict[str, Any]) -> dict[str, Any]:
    """The output of an intercept-only fit with its coefficient statistics as numbers
    (``estimate``, ``se``, ... instead of one-element lists)."""
    view = dict(out)
    for name, key in COEF_FIELDS.items():
        view[name] = out[key][0]
    return view


def tau2_interval(
    y: FloatArray,
    v: FloatArray,
    x: FloatArray | None = None,
    *,
    level: float,
    control: dict[str, Any],
    tau2_max: Num,
    padded: bool = False,
    intercept: bool | None = None,
) -> tuple[Num, Num]:
    """Q-profile confidence limits for τ² (see :func:`ketameta._engine.model.q_profile`)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        design = Design(y, v, x, padded=padded, intercept=intercept)
        return q_profile(design, level, control, tau2_max)
