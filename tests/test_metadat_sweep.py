"""Every dataset of R's metadat package that ketameta can read, against metafor 3.8-1.

Oracle: ``tests/reference/metafor_metadat.json``, written by
``validation/metafor/make_metadat_reference.R`` (metafor 3.8-1, metadat 1.2-0, R 4.2): each
dataset with ``yi``/``vi`` columns, 2x2 tables (OR, RR, RD), means and SDs (SMD, MD, ROM),
correlations (ZCOR) or proportions (PLO, PFT), through ``rma`` with the nine tau^2
estimators x four tests (``control=list(threshold=1e-13, maxiter=10000)``), ``confint``,
``regtest``, ``ranktest``, ``trimfill`` (DL and EE fits), ``leave1out``, ``rma.mh`` and
``rma.peto``. Real data, not simulated: ties, zero cells, variances spanning 1e-9 to 10.

Tolerance: 1e-6 relative (the project's contract). Tighter is not always metafor's to give:
its convergence threshold is absolute in tau^2, so on dat.graves2010's risk differences
(variances ~1e-7) metafor's REML stops with the score at -1.02 where ketameta's is 4e-9
(checked with mpmath), 1e-7 relative away in H^2. Where tau^2 is 0 metafor's iterations
stop at ~1e-13, and I^2 at ~1e-9 %: those fields are compared with an absolute floor.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats

import ketameta

from .conftest import as_float, load_reference

ENTRIES: list[dict[str, Any]] = load_reference("metafor_metadat.json")
FITS = [e for e in ENTRIES if "fits" in e]
TABLES = [e for e in ENTRIES if "mh" in e]
RTOL = 1e-6
#: absolute floors where metafor's iterations stop just off an exact 0
ATOL = {"tau2": 1e-9, "tau2_se": 1e-9, "i2": 1e-6, "z)": 1e-9}
P_VALUES = {"pvalue", "q_pvalue", "p", "cmh_p", "tarone_p"}


def _z(p: np.ndarray) -> np.ndarray:
    """The two-sided normal quantile of a p-value, capped where doubles underflow."""
    return np.asarray(stats.norm.isf(np.maximum(p, 1e-300) / 2), dtype=float)


FIELDS = (
    "estimate", "se", "statistic", "pvalue", "ci_lower", "ci_upper", "tau2", "tau2_se",
    "i2", "h2", "q", "q_pvalue", "pred_lower", "pred_upper",
)  # fmt: skip


def close(actual: Any, expected: Any, what: str, field: str) -> None:
    exp = as_float(expected)
    act = np.atleast_1d(np.asarray(actual, dtype=float))
    if field.split()[-1] in P_VALUES:
        # a p-value is as exact as its statistic allows: relative errors grow ~z^2 in the
        # tail (regtest on dat.graves2010: z agrees to 6e-7, p = 2.3e-16 to 4e-5), and R
        # rounds p below ~1e-308 to 0 (ketameta: 1.5e-321), so compare the normal
        # quantiles of the two p-values
        act = _z(act)
        exp = _z(exp)
        field = f"{field} (as z)"
    np.testing.assert_allclose(
        act,
        exp,
        rtol=RTOL,
        atol=ATOL.get(field.split()[-1], 0.0),
        equal_nan=True,
        err_msg=f"{what}: {field}",
    )


@pytest.fixture(autouse=True)
def _ignore_ketameta_warnings():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.KetametaWarning)
        yield


def test_the_sweep_covers_the_package() -> None:
    """A regenerated file that lost datasets would pass everything below vacuously."""
    assert len(FITS) >= 80
    assert len(TABLES) >= 55
    assert sum(len(e["fits"]) for e in FITS) >= 2900


@pytest.mark.parametrize("entry", FITS, ids=[e["name"] for e in FITS])
def test_rma_every_estimator_and_test(entry: dict[str, Any]) -> None:
    yi, vi = np.array(entry["yi"]), np.array(entry["vi"])
    for key, ref in entry["fits"].items():
        method, test = key.split()
        res = ketameta.pool(yi, vi, method=method, test=test)
        for field in FIELDS:
            if isinstance(ref.get(field), (dict, type(None))):
                continue  # metafor gives none (EE: no prediction interval; tau2_se: DL, ...)
            close(getattr(res, field), ref[field], f"{entry['name']} {key}", field)


EXTRAS = [e for e in FITS if e.get("extra")]


@pytest.mark.parametrize("entry", EXTRAS, ids=[e["name"] for e in EXTRAS])
def test_confint_bias_and_leave_one_out(entry: dict[str, Any]) -> None:
    name, extra = entry["name"], entry["extra"]
    yi, vi = np.array(entry["yi"]), np.array(entry["vi"])
    if "confint" in extra:
        ci = ketameta.pool(yi, vi, method="REML").tau2_ci()
        close(ci.tau2, extra["confint"]["tau2"], name, "confint tau2")
        close(ci.i2, extra["confint"]["i2"], name, "confint i2")
    if "regtest" in extra:  # regtest(rma(yi, vi)): model="rma", predictor="sei"
        egger = ketameta.egger_test(yi, vi, model="rma", method="REML")
        close(egger.statistic, extra["regtest"]["z"], name, "regtest z")
        close(egger.pvalue, extra["regtest"]["p"], name, "regtest p")
    if "ranktest" in extra:
        begg = ketameta.begg_test(yi, vi)
        close(begg.tau, extra["ranktest"]["tau"], name, "ranktest tau")
        close(begg.pvalue, extra["ranktest"]["p"], name, "ranktest p")
    for method in ("DL", "EE"):
        ref = extra.get(f"trimfill_{method}")
        if ref is None:
            continue
        tf = ketameta.trim_and_fill(yi, vi, method=method)
        assert tf.k0 == ref["k0"], f"{name} trimfill {method}"
        assert tf.side == ref["side"], f"{name} trimfill {method}"
        close(tf.k0_se, ref["k0_se"], f"{name} trimfill {method}", "k0_se")
        for field in ("estimate", "se", "tau2"):
            close(getattr(tf.pooled, field), ref[field], f"{name} trimfill {method}", field)
    if "leave1out" in extra:
        loo = ketameta.leave_one_out(yi, vi, method="REML")
        for field in ("estimate", "se", "tau2", "i2"):
            close(getattr(loo, field), extra["leave1out"][field], f"{name} leave1out", field)


@pytest.mark.parametrize("entry", TABLES, ids=[e["name"] for e in TABLES])
def test_mantel_haenszel_and_peto(entry: dict[str, Any]) -> None:
    cells = (np.array(entry[c], dtype=float) for c in ("ai", "bi", "ci", "di"))
    if entry["measure"] == "PETO":
        res: Any = ketameta.pool_peto(*cells)
    else:
        res = ketameta.pool_mh(*cells, measure=entry["measure"])
    ref = entry["mh"]
    for field in ("estimate", "se", "pvalue", "ci_lower", "ci_upper", "q", "q_pvalue", "i2"):
        close(getattr(res, field), ref[field], entry["name"], field)
    for field, ours in (("cmh", "cmh"), ("cmh_p", "cmh_pvalue"), ("tarone", "tarone"),
                        ("tarone_p", "tarone_pvalue")):  # fmt: skip
        if ref.get(field) is not None:
            close(getattr(res, ours), ref[field], entry["name"], field)
