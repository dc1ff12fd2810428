"""``robust()`` on ``pool_mv`` results beyond the three-level model.

Reference values: ``tests/reference/robust_mv_reference.json``, written by
``validation/metafor/make_robust_mv_reference.R``: metafor 3.8.1's ``robust()`` (CR1 with
m/(m - p), CR0, and ``clubSandwich = TRUE``) and clubSandwich's ``vcovCR`` (CR0, CR1,
CR1p, CR1S, CR2) with ``coef_test`` (Satterthwaite) and ``Wald_test`` (HTZ), on ``rma.mv``
fits with a non-diagonal ``V`` from ``vcalc`` (Assink et al. 2016), the multivariate UN
model (Berkey et al. 1998), the AR(1) model of Ishak et al. (2007) and an ML three-level
model (Konstantopoulos 2011). ketameta's ``pool_mv`` is refitted with the variance
components fixed at metafor's estimates, so the robust results are compared to 1e-10; the
free fits agree with metafor's to 1e-6 (the optimisers' tolerance).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import ketameta

from .conftest import load_reference

REF = load_reference("robust_mv_reference.json")
FITS = {f["id"]: f for f in REF["fits"]}
CLUB_TYPES: dict[str, dict[str, Any]] = {
    "CR0": {"method": "CR0"},
    "CR1": {"method": "CR1", "adjust": "m/(m-1)"},
    "CR1p": {"method": "CR1", "adjust": "m/(m-p)"},
    "CR1S": {"method": "CR1", "adjust": "Stata"},
    "CR2": {"method": "CR2"},
}
METAFOR_SETTINGS: dict[str, dict[str, Any]] = {
    "adjust_true": {"method": "CR1"},
    "adjust_false": {"method": "CR1", "adjust": False},
    "clubSandwich": {"method": "CR2"},
}
RTOL = 1e-10


def _close(got: Any, expected: Any, rtol: float = RTOL, atol: float = 0.0) -> None:
    exp = np.array([np.nan if v is None else v for v in np.ravel(expected)], dtype=float)
    np.testing.assert_allclose(np.ravel(got), exp, rtol=rtol, atol=atol)


def _fit(case: dict[str, Any], *, fixed: bool = True) -> Any:
    data = case["data"]
    v = np.array(case["V"], dtype=float) if case["V"] is not None else "vi"
    rhs = case["formula"].split("~", 1)[1].strip()
    kwargs = {k: val for k, val in case["components"].items() if val is not None}
    return ketameta.pool_mv(
        "yi",
        v,
        random=case["random"],
        struct=case["struct"] or "CS",
        mods=None if rhs == "1" else f"~ {rhs}",
        data=data,
        method=case["method"],
        **(kwargs if fixed else {}),
    )


def _robust(case: dict[str, Any], **kwargs: Any) -> ketameta.RobustResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.DegenerateDataWarning)
        return ketameta.robust(_fit(case), case["data"][case["cluster"]], **kwargs)


@pytest.mark.parametrize("name", list(FITS))
def test_the_fits_are_metafors(name: str) -> None:
    case = FITS[name]
    fit = _fit(case)
    assert list(fit.names) == case["names"]
    _close(fit.coef, case["coef"])
    _close(fit.vcov, case["vb_model"])
    # the free fit finds metafor's maximum (to the optimisers' tolerance)
    free = _fit(case, fixed=False)
    _close(free.coef, case["coef"], rtol=1e-6)
    assert free.loglik >= case["logLik"] - 1e-9


@pytest.mark.parametrize("typ", list(CLUB_TYPES))
@pytest.mark.parametrize("name", list(FITS))
def test_matches_clubsandwich(name: str, typ: str) -> None:
    case = FITS[name]
    ref = case["clubSandwich"][typ]
    rob = _robust(case, df="satterthwaite", **CLUB_TYPES[typ])
    _close(rob.vcov, ref["vcov"], atol=1e-15 * float(np.max(np.abs(ref["vcov"]))))
    _close(rob.se, ref["se"])
    _close(rob.statistic, ref["tstat"])
    _close(rob.df, ref["df_satt"])
    _close(rob.pvalue, ref["p_satt"], atol=1e-15)
    for wald in ref["wald"].values():
        htz = wald["tests"]["HTZ"]
        test = rob.wald_test([j - 1 for j in wald["constraints"]])
        _close(
            [test.statistic, test.delta, test.df_num, test.df_denom],
            [htz["Fstat"], htz["delta"], htz["df_num"], htz["df_denom"]],
        )
        _close(test.pvalue, htz["p_val"], atol=1e-15)


@pytest.mark.parametrize("setting", list(METAFOR_SETTINGS))
@pytest.mark.parametrize("name", list(FITS))
def test_matches_metafor(name: str, setting: str) -> None:
    case = FITS[name]
    ref = case["metafor"][setting]
    rob = _robust(case, **METAFOR_SETTINGS[setting])
    _close(rob.vcov, ref["vb"], atol=1e-15 * float(np.max(np.abs(ref["vb"]))))
    _close(rob.se, ref["se"])
    _close(rob.statistic, ref["tval"])
    _close(rob.df, np.broadcast_to(ref["df"], rob.df.shape))  # (metafor: one m - p for all)
    _close(rob.pvalue, ref["pval"], atol=1e-15)
    _close(rob.ci_lower, ref["ci_lb"])
    _close(rob.ci_upper, ref["ci_ub"])
    if ref["QM"] is not None:
        assert rob.omnibus is not None
        _close(
            [rob.omnibus.statistic, rob.omnibus.df_num, rob.omnibus.df_denom],
            [ref["QM"], *ref["QMdf"]],
        )
        _close(rob.omnibus.pvalue, ref["QMp"], atol=1e-15)
