"""The bad-input contract (docs/contract.md), one row per kind of bad input, for every
public function taking effect sizes and variances."""

from __future__ import annotations

import functools
import inspect
import json
import math
import warnings
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import mpmath as mp
import numpy as np
import pytest

import ketameta
from ketameta import (
    begg_test,
    convert,
    cumulative,
    datasets,
    egger_test,
    fail_safe_n,
    leave_one_out,
    plot,
    pool,
    trim_and_fill,
)

# Random datasets can have a likelihood whose maximum at τ² = 0 beats the interior one
# reached from the start: pool() then sets τ² = 0 and warns, as metafor does
# (tested in test_pooling.py::test_several_likelihood_maxima_as_metafor).
pytestmark = pytest.mark.filterwarnings("ignore::ketameta.LocalMaximumWarning")

Y = [0.12, 0.35, -0.05, 0.41, 0.22, 0.3, 0.18, 0.05, 0.27, 0.33, 0.2, 0.15]
V = [0.01, 0.02, 0.015, 0.03, 0.012, 0.025, 0.018, 0.02, 0.011, 0.03, 0.016, 0.022]

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "pool": pool,
    "egger_test": egger_test,
    "begg_test": begg_test,
    "trim_and_fill": trim_and_fill,
    "fail_safe_n": fail_safe_n,
    "leave_one_out": leave_one_out,
    "cumulative": cumulative,
}
#: fewest studies each function accepts
MIN_K = {
    "pool": 1,
    "egger_test": 3,
    "begg_test": 3,
    "trim_and_fill": 3,
    "fail_safe_n": 1,
    "leave_one_out": 2,
    "cumulative": 1,
}


def _call(name: str, yi: Any, vi: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.SmallSampleWarning)
        return FUNCTIONS[name](yi, vi)


BAD = [
    ("unequal lengths", Y, V[:-1], ValueError, r"`vi` has 11 studies but `yi` has 12"),
    ("empty", [], [], ValueError, r"no studies: `yi` is empty"),
    ("non-numeric", [*Y[:1], "x", *Y[2:]], V, TypeError, r"`yi` must be numeric \(study 1\)"),
    ("negative variance", Y, [V[0], -0.1, *V[2:]], ValueError, r"`vi` must be positive; study 1"),
    ("zero variance", Y, [V[0], 0.0, *V[2:]], ValueError, r"`vi` must be positive; study 1"),
    ("+inf effect", [Y[0], np.inf, *Y[2:]], V, ValueError, r"`yi` must be finite.*study 1"),
    ("-inf effect", [Y[0], -np.inf, *Y[2:]], V, ValueError, r"`yi` must be finite.*study 1"),
    ("inf variance", Y, [V[0], np.inf, *V[2:]], ValueError, r"`vi` must be finite.*study 1"),
    (
        "NaN everywhere",
        [np.nan] * 12,
        V,
        ValueError,
        r"no studies: `yi` is empty after omitting NaN",
    ),
    ("2-D input", [Y], [V], ValueError, r"`yi` must be 1-dimensional"),
]


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize(("case", "yi", "vi", "error", "pattern"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_named(
    name: str, case: str, yi: Any, vi: Any, error: type[Exception], pattern: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        with pytest.raises(error, match=pattern):
            _call(name, yi, vi)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_nan_studies_are_omitted_with_a_warning(name: str) -> None:
    yi = [Y[0], np.nan, *Y[2:]]
    with pytest.warns(ketameta.OmittedStudiesWarning, match=r"Study 2 \(index 1\) has"):
        with_nan = _call(name, yi, V)
    without = _call(name, [Y[0], *Y[2:]], [V[0], *V[2:]])
    assert _signature(with_nan) == _signature(without)


def _signature(result: Any) -> Any:
    for field in ("estimate", "statistic", "tau", "n"):
        if hasattr(result, field):
            return np.round(np.asarray(getattr(result, field), dtype=float), 12).tolist()
    raise AssertionError(type(result))


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_small_k_is_an_error_or_a_result(name: str, k: int) -> None:
    if k < MIN_K[name]:
        with pytest.raises(ValueError, match=f"at least {MIN_K[name]} studies"):
            _call(name, Y[:k], V[:k])
    else:
        assert _signature(_call(name, Y[:k], V[:k])) is not None


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_input_types_and_no_modification(name: str) -> None:
    pd = pytest.importorskip("pandas")
    expected = _signature(_call(name, Y, V))
    ro_y, ro_v = np.array(Y), np.array(V)
    ro_y.setflags(write=False)
    ro_v.setflags(write=False)
    variants = [
        (tuple(Y), tuple(V)),
        (pd.Series(Y), pd.Series(V)),
        (ro_y, ro_v),
        (list(Y), np.array(V, dtype=np.float64)),
    ]
    for yi, vi in variants:
        assert _signature(_call(name, yi, vi)) == expected
    ints = [1, 2, 0, 3, 1, 2, 2, 0, 1, 3, 2, 1]
    before = list(ints)
    assert _signature(_call(name, ints, list(range(1, 13)))) is not None
    assert ints == before
    np.testing.assert_array_equal(ro_y, Y)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"method": "XYZ"}, "unknown `method` 'XYZ'; valid values are 'EE'"),
        ({"test": "wald"}, "unknown `test` 'wald'; valid values are 'z'"),
        ({"level": 95}, r"`level` must be in \(0, 1\)"),
        ({"level": 0.0}, r"`level` must be in \(0, 1\)"),
        ({"level": 1.0}, r"`level` must be in \(0, 1\)"),
    ],
)
def test_unknown_options(kwargs: dict[str, Any], pattern: str) -> None:
    for fn in (pool, egger_test, trim_and_fill, leave_one_out, cumulative):
        with pytest.raises(ValueError, match=pattern):
            fn(Y, V, **({"model": "rma"} if fn is egger_test else {}), **kwargs)
    with pytest.raises(ValueError, match="unknown `measure` 'XYZ'"):
        ketameta.escalc("XYZ", ai=[1])


# =============================================================================================
# Every public function, every input class (issue #14).
#
# The public functions are enumerated from ``ketameta.__all__`` and the public modules
# (``convert``, ``datasets``, ``plot``): a function without a call recipe below fails
# ``test_every_public_function_has_a_call_recipe`` with "add a call recipe for X", so a
# function added later is run through the input classes too.
#
# The classes, and what each must give (docs/contract.md):
# * missing-value classes -- a NumPy masked entry, ``pd.NA`` in an object Series, NA in a
#   pandas nullable ``Float64`` Series, ``None`` in a list -- give exactly what NaN at that
#   place gives (results, warnings or error): missing, never a value;
# * number classes -- ``Decimal``, ``Fraction`` and NumPy scalar elements, nullable dtypes
#   without NA, long doubles, a masked array without a mask -- give exactly what floats give;
# * error classes -- durations (timedelta64), Python integers beyond the double range,
#   ragged nested lists -- raise a TypeError / ValueError naming the argument (and for
#   huge integers the study or element);
# * no studies: functions of a set of studies raise "no studies"; elementwise conversions
#   return empty arrays (as NumPy ufuncs).
# =============================================================================================

pd = pytest.importorskip("pandas")

K = 8
YK = Y[:K]
VK = V[:K]
NK = [40, 120, 60, 25, 300, 80, 45, 150]
ORDER = [2003, 1998, 2010, 1995, 2001, 2007, 1999, 2005]


@attrs.frozen
class Recipe:
    """How to call one public function.

    kind: ``"studies"`` (a set of studies: missing -> omitted with a warning),
    ``"elementwise"`` (missing -> NaN out), ``"reported"`` (single reported numbers),
    ``"cells"`` (2×2 tables: a set of studies given by their cell counts), ``"batch"`` (2-D:
    one meta-analysis per row), ``"batch_cells"`` (2-D cells), ``"results"`` (takes fitted
    results only)
    or ``"none"`` (no numeric input). `args` are the array arguments with their values;
    `call` receives them as a dict.
    """

    kind: str
    call: Callable[[dict[str, Any]], Any] | None = None
    args: dict[str, list[Any]] = attrs.field(factory=dict)
    integer_args: tuple[str, ...] = ()


def _es_columns(a: dict[str, Any]) -> Any:
    return ketameta.escalc("SMD", **a)


SMD_ARGS = {
    "m1i": [10.2, 11.5, 9.8, 12.1, 10.9, 11.0, 9.5, 10.4],
    "sd1i": [2.1, 3.0, 2.5, 2.8, 1.9, 2.2, 3.1, 2.4],
    "n1i": [20, 35, 15, 40, 25, 30, 18, 22],
    "m2i": [9.1, 10.0, 9.9, 10.5, 9.0, 10.1, 9.4, 9.0],
    "sd2i": [2.0, 2.7, 2.6, 3.0, 2.2, 2.0, 2.9, 2.5],
    "n2i": [21, 30, 16, 38, 27, 29, 20, 25],
}
OR_ARGS = {
    "ai": [12, 5, 30, 8, 14, 3, 22, 9],
    "bi": [38, 45, 70, 42, 36, 47, 78, 41],
    "ci": [20, 9, 41, 11, 19, 7, 30, 15],
    "di": [30, 41, 59, 39, 31, 43, 70, 35],
}

#: subgroup labels of the subgroup-analysis recipes (numbers: they run through every number
#: and missing-value class like the other arguments)
GROUPS = [1, 2, 1, 2, 1, 2, 2, 1]

#: cluster labels of the cluster-robust recipes (unbalanced, one cluster of one study)
CLUSTERS = [1, 1, 2, 2, 2, 3, 4, 4]
#: clusters (studies) and effects within them of the multilevel recipes
MV_CLUSTERS = [1, 1, 2, 2, 3, 3, 4, 4]
WITHIN = [1, 2, 1, 2, 1, 2, 1, 2]

#: the τ prior of the Bayesian recipes (a weakly informative half-normal)
TAU_PRIOR = ketameta.priors.HalfNormal(0.5)

RECIPES: dict[str, Recipe] = {
    # ---- sets of studies ----
    "ketameta.pool": Recipe("studies", lambda a: pool(a["yi"], a["vi"]), {"yi": YK, "vi": VK}),
    "ketameta.pool[sei]": Recipe(
        "studies",
        lambda a: pool(a["yi"], sei=a["sei"]),
        {"yi": YK, "sei": [math.sqrt(v) for v in VK]},
    ),
    "ketameta.egger_test": Recipe(
        "studies",
        lambda a: egger_test(a["yi"], a["vi"], ni=a["ni"], predictor="sqrtninv"),
        {"yi": YK, "vi": VK, "ni": NK},
        integer_args=("ni",),
    ),
    "ketameta.begg_test": Recipe(
        "studies", lambda a: begg_test(a["yi"], a["vi"]), {"yi": YK, "vi": VK}
    ),
    "ketameta.trim_and_fill": Recipe(
        "studies", lambda a: trim_and_fill(a["yi"], a["vi"]), {"yi": YK, "vi": VK}
    ),
    "ketameta.fail_safe_n": Recipe(
        "studies", lambda a: fail_safe_n(a["yi"], a["vi"]), {"yi": YK, "vi": VK}
    ),
    "ketameta.leave_one_out": Recipe(
        "studies", lambda a: leave_one_out(a["yi"], a["vi"]), {"yi": YK, "vi": VK}
    ),
    "ketameta.cumulative": Recipe(
        "studies",
        lambda a: cumulative(a["yi"], a["vi"], order=a["order"]),
        {"yi": YK, "vi": VK, "order": ORDER},
        integer_args=("order",),
    ),
    "ketameta.selection_model": Recipe(
        "studies",
        lambda a: ketameta.selection_model(pool(a["yi"], a["vi"], method="ML")),
        {"yi": YK, "vi": VK},
    ),
    "ketameta.pet_peese": Recipe(
        "studies", lambda a: ketameta.pet_peese(a["yi"], a["vi"]), {"yi": YK, "vi": VK}
    ),
    "ketameta.influence": Recipe(
        "studies", lambda a: ketameta.influence(pool(a["yi"], a["vi"])), {"yi": YK, "vi": VK}
    ),
    "ketameta.escalc": Recipe("studies", _es_columns, SMD_ARGS, integer_args=("n1i", "n2i")),
    "ketameta.escalc[OR]": Recipe(
        "studies",
        lambda a: ketameta.escalc("OR", **a),
        OR_ARGS,
        integer_args=("ai", "bi", "ci", "di"),
    ),
    # ---- elementwise ----
    "ketameta.hedges_correction": Recipe(
        "elementwise", lambda a: ketameta.hedges_correction(a["m"]), {"m": NK}, ("m",)
    ),
    "ketameta.convert.exp": Recipe("elementwise", lambda a: convert.exp(a["x"]), {"x": YK}),
    "ketameta.convert.inv_logit": Recipe(
        "elementwise", lambda a: convert.inv_logit(a["x"]), {"x": YK}
    ),
    "ketameta.convert.inv_arcsine": Recipe(
        "elementwise", lambda a: convert.inv_arcsine(a["x"]), {"x": VK}
    ),
    "ketameta.convert.inv_freeman_tukey": Recipe(
        "elementwise",
        lambda a: convert.inv_freeman_tukey(a["x"], a["n"]),
        {"x": [0.3, 0.5, 0.7, 0.2, 0.9, 0.4, 0.6, 0.35], "n": NK},
        ("n",),
    ),
    "ketameta.convert.r_to_z": Recipe("elementwise", lambda a: convert.r_to_z(a["r"]), {"r": YK}),
    "ketameta.convert.z_to_r": Recipe("elementwise", lambda a: convert.z_to_r(a["z"]), {"z": YK}),
    "ketameta.convert.se_from_ci": Recipe(
        "elementwise",
        lambda a: convert.se_from_ci(a["lower"], a["upper"]),
        {"lower": [y - 0.3 for y in YK], "upper": [y + 0.4 for y in YK]},
    ),
    "ketameta.convert.var_from_ci": Recipe(
        "elementwise",
        lambda a: convert.var_from_ci(a["lower"], a["upper"], df=a["df"]),
        {"lower": [y - 0.3 for y in YK], "upper": [y + 0.4 for y in YK], "df": NK},
        ("df",),
    ),
    "ketameta.convert.se_from_pvalue": Recipe(
        "elementwise",
        lambda a: convert.se_from_pvalue(a["estimate"], a["pvalue"]),
        {"estimate": YK, "pvalue": [0.04, 0.2, 0.5, 0.01, 0.3, 0.07, 0.6, 0.002]},
    ),
    "ketameta.convert.var_from_pvalue": Recipe(
        "elementwise",
        lambda a: convert.var_from_pvalue(a["estimate"], a["pvalue"]),
        {"estimate": YK, "pvalue": [0.04, 0.2, 0.5, 0.01, 0.3, 0.07, 0.6, 0.002]},
    ),
    "ketameta.convert.smd_to_log_or": Recipe(
        "elementwise", lambda a: convert.smd_to_log_or(a["d"], a["vd"]), {"d": YK, "vd": VK}
    ),
    "ketameta.convert.log_or_to_smd": Recipe(
        "elementwise",
        lambda a: convert.log_or_to_smd(a["log_or"], a["v_log_or"]),
        {"log_or": YK, "v_log_or": VK},
    ),
    "ketameta.convert.smd_to_r": Recipe(
        "elementwise",
        lambda a: convert.smd_to_r(a["d"], a["n1"], a["n2"]),
        {"d": YK, "n1": NK, "n2": ORDER},
        ("n1", "n2"),
    ),
    "ketameta.convert.r_to_smd": Recipe(
        "elementwise",
        lambda a: convert.r_to_smd(a["r"], a["n1"], a["n2"]),
        {"r": YK, "n1": NK, "n2": ORDER},
        ("n1", "n2"),
    ),
    "ketameta.convert.mean_sd_from_median": Recipe(
        "elementwise",
        lambda a: convert.mean_sd_from_median(a["median"], a["n"], q1=a["q1"], q3=a["q3"]),
        {
            "median": [5.0, 6.5, 7.0, 4.2, 5.5, 6.0, 8.1, 5.2],
            "n": NK,
            "q1": [3.0, 4.5, 5.1, 3.3, 4.0, 4.4, 6.0, 4.1],
            "q3": [8.0, 9.1, 9.9, 6.0, 7.7, 8.2, 9.9, 6.6],
        },
        ("n",),
    ),
    # ---- single reported numbers ----
    "ketameta.convert.check_reported": Recipe(
        "reported",
        lambda a: convert.check_reported(
            a["estimate"], a["ci_lower"], a["ci_upper"], pvalue=a["pvalue"]
        ),
        {"estimate": [-0.65], "ci_lower": [-1.47], "ci_upper": [0.16], "pvalue": [0.11]},
    ),
    "ketameta.convert.counts_from_percent": Recipe(
        "reported",
        lambda a: convert.counts_from_percent(a["percent"], a["n"]),
        {"percent": [62], "n": [48]},
        ("percent", "n"),
    ),
    "ketameta.convert.grim_test": Recipe(
        "reported",
        lambda a: convert.grim_test(a["mean"], a["n"]),
        {"mean": [5.18], "n": [28]},
        ("n",),
    ),
    "ketameta.metareg": Recipe(
        "studies",
        lambda a: ketameta.metareg(a["yi"], a["vi"], mods=a["mods"]),
        {"yi": YK, "vi": VK, "mods": [float(x) for x in ORDER]},
    ),
    "ketameta.subgroups": Recipe(
        "studies",
        lambda a: ketameta.subgroups(a["yi"], a["vi"], groups=a["groups"]),
        {"yi": YK, "vi": VK, "groups": GROUPS},
        integer_args=("groups",),
    ),
    "ketameta.subgroups[common]": Recipe(
        "studies",
        lambda a: ketameta.subgroups(a["yi"], a["vi"], groups=a["groups"], tau2="common"),
        {"yi": YK, "vi": VK, "groups": GROUPS},
        integer_args=("groups",),
    ),
    "ketameta.robust": Recipe(
        "studies",
        lambda a: ketameta.robust(
            ketameta.metareg(a["yi"], a["vi"], mods=a["mods"]), a["cluster"]
        ),
        {"yi": YK, "vi": VK, "mods": [float(x) for x in ORDER], "cluster": CLUSTERS},
        integer_args=("cluster",),
    ),
    "ketameta.robust[pool, CR1]": Recipe(
        "studies",
        lambda a: ketameta.robust(pool(a["yi"], a["vi"]), a["cluster"], method="CR1"),
        {"yi": YK, "vi": VK, "cluster": CLUSTERS},
        integer_args=("cluster",),
    ),
    "ketameta.rve": Recipe(
        "studies",
        lambda a: ketameta.rve(a["yi"], a["vi"], cluster=a["cluster"], mods=a["mods"]),
        {"yi": YK, "vi": VK, "mods": [float(x) for x in ORDER], "cluster": CLUSTERS},
        integer_args=("cluster",),
    ),
    "ketameta.rve[HIER]": Recipe(
        "studies",
        lambda a: ketameta.rve(a["yi"], a["vi"], cluster=a["cluster"], modelweights="HIER"),
        {"yi": YK, "vi": VK, "cluster": CLUSTERS},
        integer_args=("cluster",),
    ),
    "ketameta.pool_mv": Recipe(
        "studies",
        lambda a: ketameta.pool_mv(
            a["yi"], a["V"], random="~ 1 | cl/es", data={"cl": a["cl"], "es": a["es"]}
        ),
        {"yi": YK, "V": VK, "cl": MV_CLUSTERS, "es": WITHIN},
        integer_args=("cl", "es"),
    ),
    "ketameta.pool_mv[mods]": Recipe(
        "studies",
        lambda a: ketameta.pool_mv(
            a["yi"], a["V"], random="~ 1 | cl", mods=a["mods"], data={"cl": a["cl"]}
        ),
        {"yi": YK, "V": VK, "cl": MV_CLUSTERS, "mods": [float(x) for x in ORDER]},
        integer_args=("cl",),
    ),
    "ketameta.bayes_pool": Recipe(
        "studies",
        lambda a: ketameta.bayes_pool(a["yi"], a["vi"], tau_prior=TAU_PRIOR),
        {"yi": YK, "vi": VK},
    ),
    "ketameta.vcalc": Recipe(
        "elementwise",
        lambda a: ketameta.vcalc(a["vi"], cluster=a["cluster"], obs=a["obs"], rho=0.5),
        {"vi": VK, "cluster": MV_CLUSTERS, "obs": WITHIN},
        integer_args=("cluster", "obs"),
    ),
    # ---- 2×2 tables (cells: counts) ----
    "ketameta.pool_mh": Recipe(
        "cells", lambda a: ketameta.pool_mh(**a), OR_ARGS, integer_args=tuple(OR_ARGS)
    ),
    "ketameta.pool_peto": Recipe(
        "cells", lambda a: ketameta.pool_peto(**a), OR_ARGS, integer_args=tuple(OR_ARGS)
    ),
    "ketameta.pool_glmm": Recipe(
        "cells",
        lambda a: ketameta.pool_glmm(**a, method="EE"),
        OR_ARGS,
        integer_args=tuple(OR_ARGS),
    ),
    # ---- many meta-analyses (2-D) ----
    "ketameta.pool_many": Recipe(
        "batch", lambda a: ketameta.pool_many(a["Y"], a["V"]), {"Y": YK, "V": VK}
    ),
    "ketameta.egger_many": Recipe(
        "batch", lambda a: ketameta.egger_many(a["Y"], a["V"]), {"Y": YK, "V": VK}
    ),
    "ketameta.bayes_pool_many": Recipe(
        "batch",
        lambda a: ketameta.bayes_pool_many(a["Y"], a["V"], tau_prior=TAU_PRIOR),
        {"Y": YK, "V": VK},
    ),
    "ketameta.pool_mh_many": Recipe(
        "batch_cells", lambda a: ketameta.pool_mh_many(**a), OR_ARGS, tuple(OR_ARGS)
    ),
    "ketameta.pool_peto_many": Recipe(
        "batch_cells", lambda a: ketameta.pool_peto_many(**a), OR_ARGS, tuple(OR_ARGS)
    ),
    # ---- results in, results out ----
    "ketameta.permutation_test": Recipe(
        "results",
        lambda a: ketameta.permutation_test(
            ketameta.metareg(YK, VK, mods=[float(x) for x in ORDER]), 200, seed=1
        ),
    ),
    "ketameta.plot.forest": Recipe("results", lambda a: plot.forest(pool(YK, VK))),
    "ketameta.plot.funnel": Recipe("results", lambda a: plot.funnel(pool(YK, VK))),
    "ketameta.plot.selection": Recipe(
        "results",
        lambda a: plot.selection(ketameta.selection_model(pool(YK, VK, method="ML"))),
    ),
    "ketameta.plot.bubble": Recipe(
        "results",
        lambda a: plot.bubble(ketameta.metareg(YK, VK, mods=[float(x) for x in ORDER])),
    ),
    "ketameta.plot.posterior": Recipe(
        "results",
        lambda a: plot.posterior(ketameta.bayes_pool(YK, VK, tau_prior=TAU_PRIOR), "tau"),
    ),
    "ketameta.plot.bayes_forest": Recipe(
        "results", lambda a: plot.bayes_forest(ketameta.bayes_pool(YK, VK, tau_prior=TAU_PRIOR))
    ),
    # ---- no numeric input ----
    "ketameta.datasets.bcg": Recipe("none"),
    "ketameta.datasets.load_crps": Recipe("none"),
    "ketameta.datasets.konstantopoulos2011": Recipe("none"),
    "ketameta.datasets.berkey1998": Recipe("none"),
}


def _public_functions() -> dict[str, Any]:
    found: dict[str, Any] = {}
    modules = [("ketameta", ketameta, ketameta.__all__)]
    for module in (convert, datasets, plot):
        modules.append((module.__name__, module, getattr(module, "__all__", dir(module))))
    for prefix, module, names in modules:
        for name in names:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                found[f"{prefix}.{name}"] = obj
    return found


def test_every_public_function_has_a_call_recipe() -> None:
    known = {name.split("[")[0] for name in RECIPES}
    missing = sorted(set(_public_functions()) - known)
    assert not missing, "; ".join(f"add a call recipe for {name}" for name in missing)
    stale = sorted(known - set(_public_functions()))
    assert not stale, f"recipes for functions that are no longer public: {stale}"


# ---- the outcome of a call: a result (normalised) with its warnings, or an error -------------


def _normal(x: Any) -> Any:
    """A comparable plain form of a result: NaN equal to NaN, arrays by value."""
    if attrs.has(type(x)):
        return (
            type(x).__name__,
            # (the fields that take part in equality: derived caches do not)
            {f.name: _normal(getattr(x, f.name)) for f in attrs.fields(type(x)) if f.eq},
        )
    if isinstance(x, np.ndarray):
        return ("array", x.shape, [_normal(v) for v in x.reshape(-1).tolist()])
    if isinstance(x, float | np.floating):
        return "nan" if math.isnan(x) else float(x)
    if isinstance(x, tuple | list):
        return [_normal(v) for v in x]
    if isinstance(x, dict):
        return {k: _normal(v) for k, v in x.items()}
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    return x


def _outcome(thunk: Callable[[], Any]) -> tuple[Any, ...]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = thunk()
        except (ValueError, TypeError) as exc:
            outcome: tuple[Any, ...] = ("error", type(exc).__name__, str(exc))
        else:
            outcome = ("ok", _normal(result))
    leaked = [w for w in caught if not issubclass(w.category, ketameta.KetametaWarning)]
    assert not leaked, f"a non-ketameta warning escaped: {leaked[0].message}"
    return (*outcome, sorted((w.category.__name__, str(w.message)) for w in caught))


def _run(recipe: Recipe, args: dict[str, Any]) -> tuple[Any, ...]:
    assert recipe.call is not None
    call = recipe.call
    return _outcome(lambda: call(args))


# ---- the input classes -----------------------------------------------------------------------

J = 1  # the study (element) given in the class under test

MISSING_CLASSES: dict[str, Callable[[list[Any]], Any]] = {
    # the masked value is garbage (negative, huge): it must never be used
    "masked array": lambda v: np.ma.masked_array(
        [-7.0e6 if i == J else x for i, x in enumerate(v)], mask=[i == J for i in range(len(v))]
    ),
    "pd.NA in an object Series": lambda v: pd.Series(
        [pd.NA if i == J else x for i, x in enumerate(v)], dtype=object
    ),
    "NA in a Float64 Series": lambda v: pd.Series(
        [None if i == J else x for i, x in enumerate(v)], dtype="Float64"
    ),
    "None in a list": lambda v: [None if i == J else x for i, x in enumerate(v)],
}

NUMBER_CLASSES: dict[str, Callable[[list[Any]], Any]] = {
    "Decimal elements": lambda v: [Decimal(repr(float(x))) for x in v],
    "Fraction elements": lambda v: [Fraction(float(x)) for x in v],
    "NumPy scalars in an object array": lambda v: np.array(
        [np.float64(x) for x in v], dtype=object
    ),
    "Float64 Series without NA": lambda v: pd.Series(v, dtype="Float64"),
    "long double array": lambda v: np.array(v, dtype=np.longdouble),
    "masked array without a mask": lambda v: np.ma.masked_array(v),
}
INTEGER_CLASSES: dict[str, Callable[[list[Any]], Any]] = {
    "NumPy integer scalars": lambda v: np.array([np.int64(x) for x in v], dtype=object),
    "Int64 Series": lambda v: pd.Series(v, dtype="Int64"),
}


def _with_nan(v: list[Any]) -> list[Any]:
    return [math.nan if i == J else x for i, x in enumerate(v)]


def _cases(classes: dict[str, Any]) -> list[Any]:
    """(function, class) pairs; each test runs the class through every array argument."""
    return [
        pytest.param(name, cls, id=f"{name}-{cls}")
        for name, recipe in RECIPES.items()
        if recipe.kind in ("studies", "cells", "elementwise")
        for cls in classes
    ]


@pytest.mark.parametrize(("name", "cls"), _cases(MISSING_CLASSES))
def test_missing_value_classes_are_exactly_nan(name: str, cls: str) -> None:
    recipe = RECIPES[name]
    for arg in recipe.args:
        given = {**recipe.args, arg: MISSING_CLASSES[cls](recipe.args[arg])}
        as_nan = {**recipe.args, arg: _with_nan(recipe.args[arg])}
        assert _run(recipe, given) == _run(recipe, as_nan), f"argument `{arg}`"


STUDY_DATA = [
    pytest.param(name, arg, id=f"{name}-{arg}")
    for name, recipe in RECIPES.items()
    if recipe.kind == "studies"
    for arg in recipe.args
    # the study data (not sort keys or sample sizes, whose missing values are whatever NaN
    # gives: test_missing_value_classes_are_exactly_nan)
    if arg in ("yi", "vi", "sei") or name.startswith("ketameta.escalc")
]


@pytest.mark.parametrize(("name", "arg"), STUDY_DATA)
def test_masked_studies_are_never_pooled(name: str, arg: str) -> None:
    # a masked study is left out, exactly as if it were not there (plus the warning)
    recipe = RECIPES[name]
    given = {**recipe.args, arg: MISSING_CLASSES["masked array"](recipe.args[arg])}
    outcome = _run(recipe, given)
    if name.startswith("ketameta.escalc"):  # effect sizes: NaN for that study only
        assert outcome[0] == "ok"
        es = recipe.call(given)  # type: ignore[misc]
        full = recipe.call(recipe.args)  # type: ignore[misc]
        assert np.isnan(es.yi[J])
        assert np.isnan(es.vi[J])
        keep = np.arange(K) != J
        np.testing.assert_array_equal(es.yi[keep], full.yi[keep])
        return
    dropped = {key: [x for i, x in enumerate(v) if i != J] for key, v in recipe.args.items()}
    without = _run(recipe, dropped)
    assert outcome[0] == "ok"
    # (the fields that name studies by input index or label differ: the omitted study and
    # why, the renumbering, the default labels "Study 1", ... of 8 or of 7 studies)
    naming = {"omitted", "study", "omitted_reasons", "labels"}
    assert _without(outcome[1], naming) == _without(without[1], naming)
    # the omitted study named by its 0-based index (no label given: none repeated)
    omitted = (
        "OmittedStudiesWarning",
        f"1 study omitted: Study {J + 1} (index {J}) has missing yi or vi",
    )
    assert omitted in outcome[2]


def _without(x: Any, keys: set[str]) -> Any:
    if isinstance(x, dict):
        return {k: _without(v, keys) for k, v in x.items() if k not in keys}
    if isinstance(x, tuple | list):
        return [_without(v, keys) for v in x]
    return x


@pytest.mark.parametrize(("name", "cls"), _cases({**NUMBER_CLASSES, **INTEGER_CLASSES}))
def test_number_classes_give_the_float_results(name: str, cls: str) -> None:
    recipe = RECIPES[name]
    expected = _run(recipe, recipe.args)
    for arg in recipe.args:
        if cls in INTEGER_CLASSES:
            if arg not in recipe.integer_args:
                continue
            make = INTEGER_CLASSES[cls]
        else:
            make = NUMBER_CLASSES[cls]
        given = {**recipe.args, arg: make(recipe.args[arg])}
        assert _run(recipe, given) == expected, f"argument `{arg}`"


ERROR_CLASSES: dict[str, tuple[Callable[[list[Any]], Any], type[Exception], str]] = {
    "timedelta64 array": (
        lambda v: np.array([int(x) for x in v], dtype="timedelta64[D]"),
        TypeError,
        r"must be numeric, got durations \(timedelta64\)",
    ),
    "timedelta objects": (
        lambda v: pd.Series(pd.to_timedelta([int(x) for x in v], unit="D"), dtype=object),
        TypeError,
        r"must be numeric \((study|element) 0\): got the date/time value",
    ),
    "datetime64 Series": (
        lambda v: pd.Series(pd.date_range("2001-01-01", periods=len(v))),
        TypeError,
        r"must be numeric, got dates \(datetime64\)",
    ),
    "integer beyond the double range": (
        lambda v: [10**400 if i == J else x for i, x in enumerate(v)],
        ValueError,
        rf"is beyond the double-precision range \((study|element) {J}\): "
        r"got an integer of about 401",
    ),
    "ragged nested list": (
        lambda v: [list(v[:2]), [v[2]], *v[3:]],
        ValueError,
        r"must be a flat sequence of numbers",
    ),
}


@pytest.mark.parametrize(("name", "cls"), _cases(ERROR_CLASSES))
def test_error_classes_are_named(name: str, cls: str) -> None:
    recipe = RECIPES[name]
    make, error, pattern = ERROR_CLASSES[cls]
    call = recipe.call
    assert call is not None
    for arg in recipe.args:
        given = {**recipe.args, arg: make(recipe.args[arg])}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
            with pytest.raises(error, match=rf"`{arg}` {pattern}"):
                call(given)


@pytest.mark.parametrize(
    "name", [n for n, r in RECIPES.items() if r.kind in ("studies", "cells", "elementwise")]
)
def test_empty_input(name: str) -> None:
    recipe = RECIPES[name]
    empty = {arg: [] for arg in recipe.args}
    if recipe.kind in ("studies", "cells"):  # a set of studies needs studies
        with pytest.raises(ValueError, match=r"no studies: `\w+` is empty"):
            recipe.call(empty)  # type: ignore[misc]
    else:  # elementwise: empty in, empty out (as NumPy ufuncs)
        arrays = _arrays(recipe.call(empty))  # type: ignore[misc]
        assert arrays
        assert all(a.size == 0 for a in arrays)


def _arrays(result: Any) -> list[np.ndarray]:
    if isinstance(result, np.ndarray):
        return [result]
    if attrs.has(type(result)):
        return [a for f in attrs.fields(type(result)) for a in _arrays(getattr(result, f.name))]
    if isinstance(result, tuple | list):
        return [a for item in result for a in _arrays(item)]
    return []


REPORTED_CLASSES: dict[str, Callable[[Any], Any]] = {
    "Decimal": lambda x: Decimal(repr(x)),
    "NumPy scalar": lambda x: np.int64(x) if isinstance(x, int) else np.float64(x),
    "string": lambda x: repr(x),
}


@pytest.mark.parametrize(
    ("name", "arg", "cls"),
    [
        pytest.param(name, arg, cls, id=f"{name}-{arg}-{cls}")
        for name, recipe in RECIPES.items()
        if recipe.kind == "reported"
        for arg in recipe.args
        for cls in REPORTED_CLASSES
        if arg != "n" or cls == "NumPy scalar"  # a count: Python or NumPy integers
    ],
)
def test_reported_numbers_accept_every_number_type(name: str, arg: str, cls: str) -> None:
    recipe = RECIPES[name]
    plain = {key: v[0] for key, v in recipe.args.items()}
    given = {**plain, arg: REPORTED_CLASSES[cls](plain[arg])}
    assert _run(recipe, given) == _run(recipe, plain)


@pytest.mark.parametrize("name", [n for n, r in RECIPES.items() if r.kind == "reported"])
def test_reported_numbers_beyond_double_range_are_named(name: str) -> None:
    recipe = RECIPES[name]
    plain = {key: v[0] for key, v in recipe.args.items()}
    arg = next(a for a in recipe.args if a != "n")
    with pytest.raises(ValueError, match=rf"`{arg}` is beyond the double-precision range"):
        recipe.call({**plain, arg: 10**400})  # type: ignore[misc]


# ---- many meta-analyses: 2-D input classes ---------------------------------------------------


def _rows(v: list[Any]) -> list[list[Any]]:
    return [list(v), list(reversed(v))]


BATCH_CASES = [
    pytest.param(_name, _cls, id=f"{_name}-{_cls}")
    for _name in ("ketameta.pool_many", "ketameta.egger_many")
    for _cls in (
        "masked array",
        "NA in a Float64 DataFrame",
        "Float64 DataFrame without NA",
        "Decimal object array",
        "timedelta64 array",
    )
]


@pytest.mark.parametrize(("name", "cls"), BATCH_CASES)
def test_batch_input_classes(name: str, cls: str) -> None:
    recipe = RECIPES[name]
    y, v = _rows(YK), _rows(VK)
    y_nan = [_with_nan(y[0]), y[1]]
    if cls == "timedelta64 array":
        with pytest.raises(TypeError, match="`Y`"):
            recipe.call({"Y": np.array(y, dtype=float).astype("timedelta64[D]"), "V": v})  # type: ignore[misc]
        return
    if cls == "masked array":
        mask = np.zeros((2, K), dtype=bool)
        mask[0, J] = True
        garbage = np.array(y, dtype=float)
        garbage[0, J] = -7.0e6
        given, expected = np.ma.masked_array(garbage, mask=mask), y_nan
    elif cls == "NA in a Float64 DataFrame":
        frame = pd.DataFrame(y).astype("Float64")
        frame.iloc[0, J] = pd.NA
        given, expected = frame, y_nan
    elif cls == "Float64 DataFrame without NA":
        given, expected = pd.DataFrame(y).astype("Float64"), y
    else:  # Decimal object array
        given = np.array([[Decimal(repr(x)) for x in row] for row in y], dtype=object)
        expected = y
    assert _run(recipe, {"Y": given, "V": v}) == _run(
        recipe, {"Y": np.array(expected, dtype=float), "V": v}
    )


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        pytest.param(n, c, id=f"{n}-{c}")
        for n, r in RECIPES.items()
        if r.kind == "batch_cells"
        for c in ("masked array", "NA in an Int64 DataFrame", "Decimal object array")
    ],
)
def test_batch_cell_input_classes(name: str, cls: str) -> None:
    # 2-D cell counts: a masked or NA cell is an absent study (as NaN), numbers of every
    # type give the float results
    recipe = RECIPES[name]
    rows = {arg: _rows(values) for arg, values in recipe.args.items()}
    as_nan = {**rows, "ai": [_with_nan(rows["ai"][0]), rows["ai"][1]]}
    if cls == "masked array":
        garbage = np.array(rows["ai"], dtype=float)
        garbage[0, J] = -7.0e6
        mask = np.zeros(garbage.shape, dtype=bool)
        mask[0, J] = True
        given, expected = {**rows, "ai": np.ma.masked_array(garbage, mask=mask)}, as_nan
    elif cls == "NA in an Int64 DataFrame":
        frame = pd.DataFrame(rows["ai"]).astype("Int64")
        frame.iloc[0, J] = pd.NA
        given, expected = {**rows, "ai": frame}, as_nan
    else:
        dec = np.array([[Decimal(x) for x in row] for row in rows["ai"]], dtype=object)
        given, expected = {**rows, "ai": dec}, rows
    assert _run(recipe, given) == _run(recipe, expected)


# ---- options: every number type, and their extremes --------------------------------------------

NUMBER_OPTIONS = {  # value exactly representable in binary, so float32 keeps it
    "level": 0.875,
    "tau2": 0.125,
    "add": 0.25,
    "alpha": 0.0625,
}
OPTION_TYPES: dict[str, Callable[[float], Any]] = {
    "Decimal": lambda x: Decimal(repr(x)),
    "Fraction": Fraction,
    "np.float32": np.float32,
    "np.float64": np.float64,
    "0-d array": np.array,
}


def _option_cases() -> list[Any]:
    out = []
    for name, recipe in RECIPES.items():
        fn = _public_functions().get(name.split("[")[0])
        if fn is None or recipe.call is None:
            continue
        params = inspect.signature(fn).parameters
        for option in NUMBER_OPTIONS:
            if option in params:
                for kind in OPTION_TYPES:
                    out.append(pytest.param(name, option, kind, id=f"{name}-{option}-{kind}"))
    return out


def _call_with_option(name: str, option: str, value: Any) -> tuple[Any, ...]:
    fn = _public_functions()[name.split("[")[0]]
    recipe = RECIPES[name]
    if name.startswith("ketameta.escalc"):
        extra = {"measure": "OR", **OR_ARGS}
        return _outcome(lambda: fn(**extra, **{option: value}))
    if "tau_prior" in inspect.signature(fn).parameters:
        fn = functools.partial(fn, tau_prior=TAU_PRIOR)
    if recipe.kind == "batch":
        return _outcome(lambda: fn(_rows(YK), _rows(VK), **{option: value}))
    if recipe.kind in ("cells", "batch_cells"):
        cells = recipe.args
        if recipe.kind == "batch_cells":
            cells = {k: _rows(v) for k, v in recipe.args.items()}
        return _outcome(lambda: fn(**cells, **{option: value}))
    if recipe.kind == "reported":
        plain = {key: v[0] for key, v in recipe.args.items()}
        return _outcome(lambda: fn(**plain, **{option: value}))
    if recipe.kind == "elementwise":
        return _outcome(lambda: fn(**recipe.args, **{option: value}))
    if name.startswith("ketameta.pool_mv"):  # (an ~ inner | outer term: tau2 is an option)
        data = {"cl": MV_CLUSTERS, "es": WITHIN}
        return _outcome(lambda: fn(YK, VK, random="~ es | cl", data=data, **{option: value}))
    if set(recipe.args) <= set(inspect.signature(fn).parameters):
        return _outcome(lambda: fn(**recipe.args, **{option: value}))
    if next(iter(inspect.signature(fn).parameters)) == "result":  # takes a fitted model
        return _outcome(lambda: fn(pool(YK, VK, method="ML"), **{option: value}))
    return _outcome(lambda: fn(YK, VK, **{option: value}))


@pytest.mark.parametrize(("name", "option", "kind"), _option_cases())
def test_number_options_accept_every_number_type(name: str, option: str, kind: str) -> None:
    plain = NUMBER_OPTIONS[option]
    given = OPTION_TYPES[kind](plain)
    expected = _call_with_option(name, option, plain)
    assert expected[0] == "ok"
    outcome = _call_with_option(name, option, given)
    # the result records the option as a float; everything else is identical
    assert outcome == expected


LEVEL_FUNCTIONS = sorted(
    {
        name
        for name, recipe in RECIPES.items()
        if recipe.call is not None
        and "level" in inspect.signature(_public_functions()[name.split("[")[0]]).parameters
    }
)


@pytest.mark.parametrize("name", LEVEL_FUNCTIONS)
def test_level_within_an_ulp_of_one_gives_finite_intervals(name: str) -> None:
    # The two-sided critical value at level = 1 - 2^-53 is the upper 2^-54 normal quantile,
    # 8.2924... (50-digit mpmath); 0.5 + level/2 rounds to 1 and gave inf before
    level = float(np.nextafter(1.0, 0.0))
    mp.mp.dps = 50
    crit = float(-mp.sqrt(2) * mp.erfinv(mp.mpf(2) ** -53 - 1))
    outcome = _call_with_option(name, "level", level)
    assert outcome[0] == "ok", outcome
    if name == "ketameta.pool":
        res = pool(YK, VK, level=level)
        assert res.ci_upper - res.estimate == pytest.approx(crit * res.se, rel=1e-12)
    ci = [x for key, x in json_items(outcome[1]) if "ci_" in key or "pred_" in key]
    assert all(not math.isinf(x) for x in ci), ci
    if recipe_kind(name) == "elementwise":  # standard errors from intervals: finite, > 0
        assert all(0 < x < math.inf for x in json_floats(outcome[1]))


def recipe_kind(name: str) -> str:
    return RECIPES[name].kind


def json_items(x: Any, key: str = "") -> list[tuple[str, float]]:
    """(field name, value) of every float in a normalised result."""
    if isinstance(x, dict):
        return [item for k, v in x.items() for item in json_items(v, str(k))]
    if isinstance(x, tuple | list):
        return [item for v in x for item in json_items(v, key)]
    if isinstance(x, float):
        return [(key, x)]
    return []


def json_floats(x: Any) -> list[float]:
    return [v for _, v in json_items(x)]


@pytest.mark.parametrize("tau2", [1e101, 1e300, np.finfo(float).max, math.inf, -1e-3, math.nan])
def test_fixed_tau2_outside_the_variance_range_is_named(tau2: float) -> None:
    # accepted range: [0, VARIANCE_RANGE[1]] = [0, 1e100] (documented in pool's docstring)
    with pytest.raises(ValueError, match=r"`tau2` must be finite and within \[0, 1e\+100\]"):
        pool(YK, VK, method="DL", tau2=tau2)


def test_fixed_tau2_at_the_top_of_the_range_is_finite() -> None:
    # By hand: with τ² = 1e100 every weight is 1/(v + 1e100) = 1e-100 to double precision,
    # so μ̂ is the plain mean and SE = sqrt(1e100/k)
    res = pool(YK, VK, method="DL", tau2=1e100)
    assert res.estimate == pytest.approx(float(np.mean(YK)), rel=1e-12)
    assert res.se == pytest.approx(math.sqrt(1e100 / K), rel=1e-12)
    values = [x for key, x in json_items(_normal(res)) if key != "df"]
    assert all(math.isfinite(x) or math.isnan(x) for x in values)


MAXITER_FUNCTIONS = {
    "pool": lambda ctl: pool(YK, VK, control=ctl),
    "egger_test": lambda ctl: egger_test(YK, VK, model="rma", control=ctl),
    "leave_one_out": lambda ctl: leave_one_out(YK, VK, control=ctl),
    "cumulative": lambda ctl: cumulative(YK, VK, control=ctl),
    "trim_and_fill": lambda ctl: trim_and_fill(YK, VK, control=ctl),
    "pool_many": lambda ctl: ketameta.pool_many(_rows(YK), _rows(VK), control=ctl),
}


@pytest.mark.parametrize("name", list(MAXITER_FUNCTIONS))
@pytest.mark.parametrize("maxiter", [0, -5, 2.5, 100.0, "100", True, None])
def test_maxiter_must_be_a_positive_integer(name: str, maxiter: Any) -> None:
    with pytest.raises(ValueError, match=r"`control\['maxiter'\]` must be a positive integer"):
        MAXITER_FUNCTIONS[name]({"maxiter": maxiter})


@pytest.mark.parametrize("name", list(MAXITER_FUNCTIONS))
def test_maxiter_accepts_numpy_integers(name: str) -> None:
    plain = _outcome(lambda: MAXITER_FUNCTIONS[name]({"maxiter": 200}))
    numpy = _outcome(lambda: MAXITER_FUNCTIONS[name]({"maxiter": np.int64(200)}))
    assert plain[0] == "ok"
    assert plain[:2] == numpy[:2]


@pytest.mark.parametrize("maxiter", [0, 2.5, "3"])
def test_trim_and_fill_maxiter_is_named(maxiter: Any) -> None:
    with pytest.raises(ValueError, match=r"`maxiter` must be a positive integer"):
        trim_and_fill(YK, VK, maxiter=maxiter)


@pytest.mark.parametrize("name", [n for n, r in RECIPES.items() if r.kind in ("results", "none")])
def test_functions_without_numeric_input_run(name: str) -> None:
    recipe = RECIPES[name]
    if recipe.kind == "none":  # the datasets: covered by tests/test_crps.py and test_pooling
        fn = _public_functions()[name]
        assert not [p for p in inspect.signature(fn).parameters.values() if p.default is p.empty]
        return
    if not name.startswith("ketameta.plot."):  # a fitted result in, a result out
        out = recipe.call({})  # type: ignore[misc]
        assert attrs.has(type(out))
        json.dumps(out.to_dict())
        assert out.summary()
        return
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = recipe.call({})  # type: ignore[misc]
    assert fig.axes
    plt.close(fig)


@pytest.mark.parametrize("contours", [(0.9, 1.5), (0.0, 0.95), (-0.1,), (0.95, 1.0), 1.2])
def test_funnel_contours_outside_the_unit_interval_are_named(contours: Any) -> None:
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"`contours` must be in \(0, 1\)"):
        plot.funnel(pool(YK, VK), contours=contours)


# ---- extreme weight ratios against exact rational arithmetic ----------------------------------
# One study carries almost all the weight: its variance is 1e-9 to 1e-15 of the others'
# (inside the documented variance range [1e-100, 1e100]). The EE and DL quantities are
# closed forms of the inputs, so they are computed exactly with Python fractions (square
# roots with 60-digit mpmath) and must agree to 1e-10 relative.

EXTREME_DATA = {
    "heterogeneous": (
        [0.1, 0.9, 0.35, -0.4, 1.3, 0.6],
        [0.04, 0.02, 0.08, 0.06, 0.032, 0.048],
        2,
    ),
    "outlying precise study": (
        [0.21, 0.25, 0.18, 0.3, 0.22, 0.27, 0.19, -0.5],
        [0.01, 0.02, 0.015, 0.03, 0.012, 0.025, 0.018, 0.02],
        7,
    ),
}
RATIOS = (1e9, 1e11, 1e13, 1e15)
EE_FIELDS = ("estimate", "se", "q", "i2", "h2")
DL_FIELDS = ("estimate", "se", "q", "tau2", "tau2_se", "i2", "h2")


def _extreme(name: str, ratio: float) -> tuple[list[float], list[float]]:
    yi, vi, precise = EXTREME_DATA[name]
    vi = list(vi)
    vi[precise] = vi[precise] / ratio
    return list(yi), vi


def _exact_fit(yi: list[float], vi: list[float], method: str) -> dict[str, Any]:
    """EE or DL by exact rational arithmetic on the double inputs (metafor's definitions:
    DerSimonian & Laird 1986; Higgins & Thompson 2002; the SE of τ²_DL from the variance of
    Q, 2(k-1) + 4τ² tr P + 2τ⁴ tr P²)."""
    y = [Fraction(a) for a in yi]
    v = [Fraction(b) for b in vi]
    k = len(y)
    w = [1 / b for b in v]
    sw = sum(w)
    sw2 = sum(x * x for x in w)
    sw3 = sum(x**3 for x in w)
    mu = sum(a * b for a, b in zip(w, y, strict=True)) / sw
    q = sum(a * (b - mu) ** 2 for a, b in zip(w, y, strict=True))
    if method == "EE":
        i2 = max(Fraction(0), (q - (k - 1)) / q) * 100
        return {"estimate": mu, "se": ("sqrt", 1 / sw), "q": q, "i2": i2, "h2": q / (k - 1)}
    tr_p = sw - sw2 / sw
    tau2 = max(Fraction(0), (q - (k - 1)) / tr_p)
    ws = [1 / (b + tau2) for b in v]
    sws = sum(ws)
    mu_re = sum(a * b for a, b in zip(ws, y, strict=True)) / sws
    v_typical = (k - 1) * sw / (sw * sw - sw2)
    tr_pp = sw2 - 2 * sw3 / sw + sw2 * sw2 / (sw * sw)
    var_q = 2 * (k - 1) + 4 * tau2 * tr_p + 2 * tau2 * tau2 * tr_pp
    return {
        "estimate": mu_re,
        "se": ("sqrt", 1 / sws),
        "q": q,
        "tau2": tau2,
        "tau2_se": ("sqrt", var_q / (tr_p * tr_p)),
        "i2": 100 * tau2 / (tau2 + v_typical),
        "h2": (tau2 + v_typical) / v_typical,
    }


def _float(value: Any) -> float:
    if isinstance(value, tuple):  # ("sqrt", x)
        mp.mp.dps = 60
        x = value[1]
        return float(mp.sqrt(mp.mpf(x.numerator) / x.denominator))
    return float(value)


def _extreme_cases(function: str) -> list[Any]:
    out = []
    for data in EXTREME_DATA:
        for ratio in RATIOS:
            for method, fields in (("EE", EE_FIELDS), ("DL", DL_FIELDS)):
                for field in fields:
                    out.append(
                        pytest.param(
                            data, ratio, method, field, id=f"{data}-{ratio:g}-{method}-{field}"
                        )
                    )
    return out


@pytest.mark.parametrize(("data", "ratio", "method", "field"), _extreme_cases("pool"))
def test_extreme_weights_pool_is_exact(data: str, ratio: float, method: str, field: str) -> None:
    # Oracle: exact rational arithmetic (fractions; square roots in 60-digit mpmath)
    yi, vi = _extreme(data, ratio)
    expected = _float(_exact_fit(yi, vi, method)[field])
    got = getattr(pool(yi, vi, method=method), field)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize(("data", "ratio", "method", "field"), _extreme_cases("pool_many"))
def test_extreme_weights_pool_many_is_exact(
    data: str, ratio: float, method: str, field: str
) -> None:
    # Oracle: as above; one batch holding the dataset and its reverse
    yi, vi = _extreme(data, ratio)
    expected = _float(_exact_fit(yi, vi, method)[field])
    batch = ketameta.pool_many([yi, yi[::-1]], [vi, vi[::-1]], method=method)
    got = np.asarray(getattr(batch, field), dtype=float)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-300)


SEI_FUNCTIONS = [
    name for name, fn in _public_functions().items() if "sei" in inspect.signature(fn).parameters
]


@pytest.mark.parametrize("name", SEI_FUNCTIONS)
@pytest.mark.parametrize(
    ("sei", "pattern"),
    [
        (-0.3, r"`sei` must be positive; study 1 has sei=-0\.3$"),
        (0.0, r"`sei` must be positive; study 1 has sei=0\.0$"),
        (1e-60, r"`sei` must be standard errors within \[1e-50, 1e\+50\]; study 1 has sei=1e-60"),
        (1e-170, r"study 1 has sei=1e-170"),  # its square underflows to 0
        (1e170, r"study 1 has sei=1e\+170"),  # its square overflows to inf
    ],
)
def test_standard_errors_are_reported_as_given(name: str, sei: float, pattern: str) -> None:
    fn = _public_functions()[name]
    if "tau_prior" in inspect.signature(fn).parameters:
        fn = functools.partial(fn, tau_prior=TAU_PRIOR)
    se = [math.sqrt(v) for v in VK]
    se[1] = sei
    # (other arguments a function needs, e.g. the moderators of metareg)
    extra = {k: v for k, v in RECIPES[name].args.items() if k not in ("yi", "vi", "sei")}
    with pytest.raises(ValueError, match=pattern):
        fn(YK, sei=se, **extra)


def _extreme_args(name: str, data: str, ratio: float) -> dict[str, Any]:
    yi, vi = _extreme(data, ratio)
    k = len(yi)
    args: dict[str, Any] = {"yi": yi}
    recipe = RECIPES[name]
    if "vi" in recipe.args:
        args["vi"] = vi
    if "V" in recipe.args:
        args["V"] = vi
    if "cl" in recipe.args:
        args["cl"] = [i // 2 for i in range(k)]
    if "es" in recipe.args:
        args["es"] = [i % 2 for i in range(k)]
    if "sei" in recipe.args:
        args["sei"] = [math.sqrt(v) for v in vi]
    if "ni" in recipe.args:
        args["ni"] = [40 + 10 * i for i in range(k)]
    if "order" in recipe.args:
        args["order"] = list(range(k))
    if "mods" in recipe.args:
        args["mods"] = [float(i % 3) + 0.5 * i for i in range(k)]
    if "groups" in recipe.args:
        args["groups"] = [i % 2 for i in range(k)]
    if "cluster" in recipe.args:
        args["cluster"] = [i // 2 for i in range(k)]
    return args


def _extreme_contract_cases() -> list[Any]:
    out = []
    for name, recipe in RECIPES.items():
        if recipe.kind != "studies" or name.startswith("ketameta.escalc"):
            continue
        for data in EXTREME_DATA:
            for ratio in RATIOS:
                out.append(pytest.param(name, data, ratio, id=f"{name}-{data}-{ratio:g}"))
    return out


@pytest.mark.parametrize(("name", "data", "ratio"), _extreme_contract_cases())
def test_extreme_weights_through_every_study_function(name: str, data: str, ratio: float) -> None:
    # the contract for one study carrying almost all the weight: results without ±inf and
    # without NumPy warnings (checked by _outcome), for every function of a set of studies
    recipe = RECIPES[name]
    outcome = _run(recipe, _extreme_args(name, data, ratio))
    assert outcome[0] == "ok", outcome
    infinite = [(key, x) for key, x in json_items(outcome[1]) if math.isinf(x) and key != "df"]
    assert not infinite


@pytest.mark.parametrize("data", list(EXTREME_DATA))
@pytest.mark.parametrize("ratio", RATIOS)
def test_extreme_weights_subsets_are_exact(data: str, ratio: float) -> None:
    # Oracle: exact rational arithmetic for the EE fit of every leave-one-out and cumulative
    # subset (the precise study in and out)
    yi, vi = _extreme(data, ratio)
    k = len(yi)
    loo = leave_one_out(yi, vi, method="EE")
    cum = cumulative(yi, vi, method="EE")
    for i in range(k):
        keep = [j for j in range(k) if j != i]
        exact = _exact_fit([yi[j] for j in keep], [vi[j] for j in keep], "EE")
        assert loo.estimate[i] == pytest.approx(_float(exact["estimate"]), rel=1e-10)
        assert loo.se[i] == pytest.approx(_float(exact["se"]), rel=1e-10)
        if i >= 1:
            exact = _exact_fit(yi[: i + 1], vi[: i + 1], "EE")
            assert cum.estimate[i] == pytest.approx(_float(exact["estimate"]), rel=1e-10)
            assert cum.se[i] == pytest.approx(_float(exact["se"]), rel=1e-10)
