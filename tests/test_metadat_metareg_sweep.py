"""Meta-regressions on the real moderators of R's metadat datasets, against metafor 3.8-1.

Oracle: ``tests/reference/metafor_metadat_metareg.json``, written by
``validation/metafor/make_metadat_metareg_reference.R`` (metafor 3.8-1, metadat 1.2-0,
R 4.2): for every dataset with ``yi``/``vi`` columns or data ``escalc`` reads, the first
numeric moderator with at least three distinct values (``mods = ~ x``) and the first factor
with two to six levels (``mods = ~ factor(g)``: treatment contrasts, first level the
reference), through ``rma`` with the nine tau^2 estimators x four tests
(``control=list(threshold=1e-13, maxiter=10000)``). Real moderators, not simulated: years,
doses, study ids, ties, badly scaled columns.

Tolerance and the comparison of p-values as in ``test_metadat_sweep.py``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import ketameta

from .conftest import load_reference
from .test_metadat_sweep import close

ENTRIES: list[dict[str, Any]] = load_reference("metafor_metadat_metareg.json")
FIELDS = {
    "coef": "coef", "se": "se", "stat": "statistic", "p": "pvalue", "ci_lower": "ci_lower",
    "ci_upper": "ci_upper", "tau2": "tau2", "tau2_se": "tau2_se", "i2": "i2", "h2": "h2",
    "r2": "r2", "qe": "q", "qe_p": "q_pvalue", "qm": "qm", "qm_p": "qm_pvalue",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _ignore_ketameta_warnings():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.KetametaWarning)
        yield


def test_the_sweep_covers_the_package() -> None:
    """A regenerated file that lost datasets would pass the comparisons vacuously."""
    assert len(ENTRIES) >= 40
    assert {e["kind"] for e in ENTRIES} == {"numeric", "factor"}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_metareg_every_estimator_and_test(entry: dict[str, Any]) -> None:
    yi, vi = np.array(entry["yi"]), np.array(entry["vi"])
    mods: Any = (
        {"g": list(entry["mod"])} if entry["kind"] == "factor" else np.array(entry["mod"], float)
    )
    assert entry["fits"], entry["name"]
    for key, ref in entry["fits"].items():
        method, test = key.split()
        res = ketameta.metareg(yi, vi, mods=mods, method=method, test=test)
        for theirs, ours in FIELDS.items():
            value = ref.get(theirs)
            if value is None or isinstance(value, dict):
                continue  # metafor gives none (tau2_se of DL, R^2 of EE, ...)
            if (
                theirs == "r2"
                and method != "EE"
                and ketameta.pool(yi, vi, method=method).tau2 == 0
            ):
                # no heterogeneity to explain: R^2 is 0. metafor's ML stops the
                # intercept-only tau^2 at ~4e-14 instead of 0 (dat.gibson2002, dat.lau1992)
                # and prints the ratio of two rounding residues (97.5 %, 36.5 %)
                assert res.r2 == 0, f"{entry['name']} {key}: r2"
                continue
            close(getattr(res, ours), value, f"{entry['name']} {key}", theirs)
