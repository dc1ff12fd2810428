"""Omitted studies are named by label and 0-based input index in the RVE and 2x2/GLMM
summaries (the wording of ``_validation.name_studies``, as the warnings name them)."""

from __future__ import annotations

import numpy as np
import pytest

import ketameta
from ketameta import OmittedStudiesWarning


def test_rve_summary_names_omitted_effects_by_number_and_index() -> None:
    yi = [0.1, 0.3, np.nan, 0.5, 0.2, np.nan, 0.4, 0.1]
    with pytest.warns(OmittedStudiesWarning):
        res = ketameta.rve(yi, [0.04] * 8, cluster=[1, 1, 2, 2, 3, 3, 4, 4])
    assert res.omitted == (2, 5)
    assert res.summary().splitlines()[-1] == (
        "Omitted effects (missing values): Effect 3 (index 2), Effect 6 (index 5)"
    )


def test_mh_summary_names_omitted_tables_by_label_and_index() -> None:
    with pytest.warns(OmittedStudiesWarning):
        res = ketameta.pool_mh(
            ai=[1, 2, np.nan, 4], n1i=[10] * 4, ci=[2, 3, 4, 5], n2i=[10] * 4,
            labels=["A", "B", "C", "D"],
        )  # fmt: skip
    assert "Omitted studies (missing values): C (index 2)" in res.summary().splitlines()


def test_glmm_summary_names_omitted_tables_by_label_and_index() -> None:
    with pytest.warns(OmittedStudiesWarning):
        res = ketameta.pool_glmm(
            ai=[1, 2, np.nan, 4, 3], n1i=[10, 10, 10, 10, 12], ci=[2, 3, 4, 5, 6],
            n2i=[10, 10, 10, 10, 12],
        )  # fmt: skip
    assert "Omitted studies (missing values): Study 3 (index 2)" in res.summary().splitlines()


def test_pool_mv_summary_names_omitted_effects_by_number_and_index() -> None:
    data = {
        "yi": [0.1, 0.5, np.nan, 0.9, 0.2, 0.4],
        "vi": [0.01, 0.02, 0.03, 0.02, 0.02, 0.03],
        "cl": [1, 1, 2, 2, 3, 3],
    }
    with pytest.warns(OmittedStudiesWarning):
        res = ketameta.pool_mv("yi", "vi", random="~ 1 | cl", data=data)
    assert res.summary().splitlines()[-1] == "Omitted effects (missing values): Effect 3 (index 2)"
