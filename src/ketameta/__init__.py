"""ketameta: meta-analysis primitives for Python, exact to R's metafor.

Effect sizes from what studies report (:func:`escalc`, :mod:`ketameta.convert`),
common-effect and random-effects pooling (:func:`pool`) with every standard τ²
estimator, and the diagnostics built on them.
"""

from __future__ import annotations

from . import convert, datasets, priors
from ._warnings import (
    AccuracyWarning,
    CollinearityWarning,
    ConvergenceError,
    DegenerateDataWarning,
    KetametaWarning,
    LocalMaximumWarning,
    OmittedStudiesWarning,
    SmallSampleWarning,
    UndefinedEffectWarning,
    ZeroCellWarning,
)
from .batch import (
    BatchEggerResult,
    BatchMetaRegResult,
    BatchPoolResult,
    egger_many,
    pool_many,
)
from .bayes import BatchBayesResult, BayesPoolResult, bayes_pool, bayes_pool_many
from .bias import (
    BeggResult,
    EggerResult,
    FailSafeResult,
    TrimFillResult,
    begg_test,
    egger_test,
    fail_safe_n,
    trim_and_fill,
)
from .binary import (
    GLMM_MEASURES,
    GLMM_MODELS,
    MH_MEASURES,
    BatchBinaryResult,
    GLMMResult,
    MHResult,
    PetoResult,
    pool_glmm,
    pool_mh,
    pool_mh_many,
    pool_peto,
    pool_peto_many,
)
from .cluster_robust import (
    RobustModel,
    RobustResult,
    RobustWaldTest,
    RVEResult,
    SaddlepointTest,
    robust,
    rve,
)
from .dependence import vcalc
from .effect_sizes import MEASURES, EffectSizes, escalc, hedges_correction
from .metareg import MetaRegResult, PredictResult, WaldTest, metareg
from .multilevel import (
    ComponentIntervals,
    LikelihoodRatioTest,
    MVResult,
    VarianceComponent,
    pool_mv,
)
from .permutation import PermutationTestResult, permutation_test
from .pooling import METHODS, TESTS, ModelFit, PoolResult, Tau2Interval, pool
from .selection import (
    VEVEA_WOODS_2005,
    PetPeeseResult,
    SelectionModelResult,
    pet_peese,
    selection_model,
)
from .sensitivity import (
    CumulativeResult,
    InfluenceResult,
    LeaveOneOutResult,
    cumulative,
    influence,
    leave_one_out,
)
from .subgroups import CommonTau2Fit, SubgroupResult, subgroups

__version__ = "0.1.0.dev0"


def _finish_result_classes() -> None:
    """Equality (NaN equal to NaN, arrays by value) and read-only arrays after unpickling
    for every public result class (:func:`ketameta._results.finish_result_class`)."""
    import sys

    import attrs as _attrs

    from ._results import finish_result_class

    for name, module in list(sys.modules.items()):
        if name == "ketameta" or name.startswith("ketameta."):
            for obj in list(vars(module).values()):
                if isinstance(obj, type) and _attrs.has(obj) and obj.__module__ == name:
                    finish_result_class(obj)


_finish_result_classes()

__all__ = [
    "GLMM_MEASURES",
    "GLMM_MODELS",
    "MEASURES",
    "METHODS",
    "MH_MEASURES",
    "TESTS",
    "VEVEA_WOODS_2005",
    "AccuracyWarning",
    "BatchBayesResult",
    "BatchBinaryResult",
    "BatchEggerResult",
    "BatchMetaRegResult",
    "BatchPoolResult",
    "BayesPoolResult",
    "BeggResult",
    "CollinearityWarning",
    "CommonTau2Fit",
    "ComponentIntervals",
    "ConvergenceError",
    "CumulativeResult",
    "DegenerateDataWarning",
    "EffectSizes",
    "EggerResult",
    "FailSafeResult",
    "GLMMResult",
    "InfluenceResult",
    "KetametaWarning",
    "LeaveOneOutResult",
    "LikelihoodRatioTest",
    "LocalMaximumWarning",
    "MHResult",
    "MVResult",
    "MetaRegResult",
    "ModelFit",
    "OmittedStudiesWarning",
    "PermutationTestResult",
    "PetPeeseResult",
    "PetoResult",
    "PoolResult",
    "PredictResult",
    "RVEResult",
    "RobustModel",
    "RobustResult",
    "RobustWaldTest",
    "SaddlepointTest",
    "SelectionModelResult",
    "SmallSampleWarning",
    "SubgroupResult",
    "Tau2Interval",
    "TrimFillResult",
    "UndefinedEffectWarning",
    "VarianceComponent",
    "WaldTest",
    "ZeroCellWarning",
    "__version__",
    "bayes_pool",
    "bayes_pool_many",
    "begg_test",
    "convert",
    "cumulative",
    "datasets",
    "egger_many",
    "egger_test",
    "escalc",
    "fail_safe_n",
    "hedges_correction",
    "influence",
    "leave_one_out",
    "metareg",
    "permutation_test",
    "pet_peese",
    "pool",
    "pool_glmm",
    "pool_many",
    "pool_mh",
    "pool_mh_many",
    "pool_mv",
    "pool_peto",
    "pool_peto_many",
    "priors",
    "robust",
    "rve",
    "selection_model",
    "subgroups",
    "trim_and_fill",
    "vcalc",
]


def __dir__() -> list[str]:
    return list(__all__)
