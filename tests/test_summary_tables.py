"""The printed tables of the summaries widen to their values.

metafor prints its tables as wide as their values, with two spaces before each value
(``tests/test_metareg.py::test_coefficient_table_widens_to_its_values`` quotes metafor
3.8-1 on a rescaled meta-regression); ketameta's summaries follow that rule everywhere
(``_results.table_lines``). Here: every table of the 2x2, GLMM, subgroup, cluster-robust,
Bayesian, PET-PEESE and sensitivity summaries, printed with huge, tiny and negative values
and long labels, keeps each value right-aligned under its header with at least two spaces
before it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import ketameta
from ketameta.priors import HalfNormal

#: the header rows of the summaries' tables
HEADERS = (
    ["logLik", "deviance", "AIC", "BIC", "AICc"],
    ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub"],
    ["estimate", "ci.lb", "ci.ub"],
    ["k", "estimate", "se", "ci.lb", "ci.ub", "tau^2", "I^2", "Q", "p(Q)"],
    ["k", "estimate", "se", "ci.lb", "ci.ub", "I^2", "Q", "p(Q)"],
    ["k", "estimate", "se", "ci.lb", "ci.ub"],
    ["estimate", "se", "tval", "df", "pval", "ci.lb", "ci.ub"],
    ["tau", "mu"],
    ["tau", "mu", "theta"],
    ["estimate", "se", "tval", "pval", "ci.lb", "ci.ub", "slope"],
    ["study", "estimate", "ci_lower", "ci_upper", "pvalue", "tau2", "i2", "q"],
    ["study", "estimate", "ci_lower", "ci_upper", "pvalue", "tau2", "i2"],
    ["study", "rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "q_del", "hat", "weight"],
)


def _tables(text: str) -> list[tuple[str, list[str]]]:
    """Every table of a summary: its header line and the rows up to the next blank line."""
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if line.split() in HEADERS:
            rows = []
            for row in lines[i + 1 :]:
                if not row.strip():
                    break
                rows.append(row)
            out.append((line, rows))
    return out


def _assert_aligned(header: str, rows: list[str]) -> None:
    # (the corner "study" heads the row labels, left-aligned)
    ends = [m.end() for m in re.finditer(r"\S+", header) if m.start() or m.group() != "study"]
    assert rows, header
    for row in rows:
        values = list(re.finditer(r"\S+", row))[-len(ends) :]
        assert [m.end() for m in values] == ends, f"\n{header}\n{row}"
        for m in values:
            assert m.start() < 2 or row[m.start() - 2 : m.start()] == "  ", f"\n{header}\n{row}"
    # the header names stand clear of each other and of the row labels
    heads = list(re.finditer(r"\S+", header))
    assert all(header[m.start() - 1] == " " for m in heads if m.start() > 0)


_DATA = ketameta.datasets.bcg()
_CELLS = {c: np.asarray(_DATA[c], dtype=float) for c in ("tpos", "tneg", "cpos", "cneg")}
_BIG = np.array([1.0, 100.0, 1.0, 1000.0, 5.0, 50000.0])
_Y = np.array([0.1, 0.3, -0.2, 0.5, 0.4, 0.2, 0.9, -0.1, 0.35, 0.05])
_V = np.array([0.02, 0.03, 0.05, 0.04, 0.02, 0.03, 0.06, 0.02, 0.03, 0.04])
_CLUSTER = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def _es() -> Any:
    return ketameta.escalc("RR", data=_DATA, ai="tpos", bi="tneg", ci="cpos", di="cneg")


_LONG = "randomised, double-blind, placebo-controlled"
_GROUPS = [a if a != "random" else _LONG for a in _DATA["alloc"]]

_STUDIES = ["A long study label, Smith et al. 2001", *(f"Study {i}" for i in range(2, 9))]
_HUGE = (_Y[:8] * 1e6 - 5e6, _V[:8] * 1e12)

CASES: dict[str, tuple[Callable[[], Any], int]] = {
    # (the fit, how many tables its summary prints)
    "MH, a huge odds ratio": (
        lambda: ketameta.pool_mh(
            ai=_BIG * 100, bi=_BIG * 0 + 1e7, ci=_BIG * 0 + 100, di=_BIG * 0 + 1e7, measure="OR"
        ),
        3,
    ),
    "MH, tiny risk differences": (
        lambda: ketameta.pool_mh(
            ai=[1, 2, 1], bi=[1e7, 2e7, 1e7], ci=[1, 1, 2], di=[1e7, 1e7, 2e7], measure="RD"
        ),
        2,
    ),
    "Peto, large tables": (
        lambda: ketameta.pool_peto(
            ai=[0, 0, 1], bi=[5e6, 5e6, 5e6], ci=[300, 400, 250], di=[5e6, 5e6, 5e6]
        ),
        3,
    ),
    "GLMM": (
        lambda: ketameta.pool_glmm(
            ai=_CELLS["tpos"][:6],
            bi=_CELLS["tneg"][:6],
            ci=_CELLS["cpos"][:6],
            di=_CELLS["cneg"][:6],
        ),
        2,
    ),
    "subgroups, huge effects and a long label": (
        lambda: ketameta.subgroups(
            np.asarray(_es().yi) * 1e5 - 3e6, np.asarray(_es().vi) * 1e10, groups=_GROUPS
        ),
        1,
    ),
    "subgroups, common tau^2, back-transformed": (
        lambda: ketameta.subgroups(_es(), groups=_GROUPS, tau2="common"),
        2,
    ),
    "subgroups, tiny effects, EE": (
        lambda: ketameta.subgroups(
            np.asarray(_es().yi) * 1e-6, np.asarray(_es().vi) * 1e-12, groups=_GROUPS, method="EE"
        ),
        1,
    ),
    "robust, huge coefficients and a long moderator name": (
        lambda: ketameta.robust(
            ketameta.metareg(
                _Y * 1e6 - 5e6,
                _V * 1e12,
                mods={"a rather long moderator name": np.arange(1.0, 11.0)},
            ),
            cluster=_CLUSTER,
        ),
        1,
    ),
    "rve, tiny effects": (lambda: ketameta.rve(_Y * 1e-5, _V * 1e-10, cluster=_CLUSTER), 1),
    "bayes, huge negative effects": (
        lambda: ketameta.bayes_pool(
            _Y[:5] * 1e5 - 1e6, _V[:5] * 1e10, tau_prior=HalfNormal(5e4), level=0.995
        ),
        2,
    ),
    "leave-one-out, huge effects and a long label": (
        lambda: ketameta.leave_one_out(*_HUGE, labels=_STUDIES),
        1,
    ),
    "cumulative, tiny effects": (
        lambda: ketameta.cumulative(_Y[:8] * 1e-6, _V[:8] * 1e-12, labels=_STUDIES),
        1,
    ),
    "PET-PEESE, huge effects": (
        lambda: ketameta.pet_peese(np.asarray(_es().yi) * 1e5 - 2e6, np.asarray(_es().vi) * 1e10),
        1,
    ),
    "influence, huge effects": (
        lambda: ketameta.influence(ketameta.pool(*_HUGE, labels=_STUDIES)),
        1,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_summary_tables_widen_to_their_values(name: str) -> None:
    fit, n_tables = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = fit().summary()
    tables = _tables(text)
    assert len(tables) == n_tables, text
    for header, rows in tables:
        _assert_aligned(header, rows)


def test_the_check_fails_on_columns_that_run_together() -> None:
    # the fixed 8-character columns of before: a value of 9 characters touches its
    # neighbour (bayes_pool's summary printed "10934.739666-976034.218394")
    with pytest.raises(AssertionError):
        _assert_aligned("       estimate       se", [" -3054079.2962 28160.1613"])
    with pytest.raises(AssertionError):
        _assert_aligned("            tau        mu", ["ML joint 10934.739666-976034.218394"])
    _assert_aligned(" estimate       se", ["  -0.4734   0.0410"])
