"""ketameta: meta-analysis primitives for Python, exact to R's metafor.

Effect sizes from what studies report (:func:`escalc`, :mod:`ketameta.convert`),
common-effect and random-effects pooling (:func:`pool`) with every standard τ²
estimator, and the diagnostics built on them.
"""

from __future__ import annotations

from . import convert, datasets
from ._warnings import (
    ConvergenceError,
    KetametaWarning,
    OmittedStudiesWarning,
    SmallSampleWarning,
    ZeroCellWarning,
)
from .effect_sizes import MEASURES, EffectSizes, escalc, hedges_correction
from .pooling import METHODS, TESTS, PoolResult, Tau2Interval, pool

__version__ = "0.1.0.dev0"

__all__ = [
    "MEASURES",
    "METHODS",
    "TESTS",
    "ConvergenceError",
    "EffectSizes",
    "KetametaWarning",
    "OmittedStudiesWarning",
    "PoolResult",
    "SmallSampleWarning",
    "Tau2Interval",
    "ZeroCellWarning",
    "__version__",
    "convert",
    "datasets",
    "escalc",
    "hedges_correction",
    "pool",
]


def __dir__() -> list[str]:
    return list(__all__)
