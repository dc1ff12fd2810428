"""Every published reference value is checked by a test, or waived with a reason.

Why this exists: ``tests/reference/published.json`` held metafor's standard error of k0 for
trim-and-fill on the BCG trials (2.4528) from the start, yet the wrong value went unnoticed,
because a reference file is only a check when some test reads it and no test read that case.
This test makes an unread case a failure: each case id must appear in a test module, or be
listed below with the reason it is not compared (yet).
"""

from __future__ import annotations

from pathlib import Path

from .conftest import load_reference

TESTS = Path(__file__).parent

#: ids a test builds at run time (f-strings), with the test that reads them
BUILT_IDS = {
    "viechtbauer2005_example1_tau2_estimators": "test_viechtbauer2005_estimators",
    "viechtbauer2005_example2_tau2_estimators": "test_viechtbauer2005_estimators",
}

_NOT_IN_KETAMETA = "not compared: the feature is not in ketameta"
_NOT_YET = (
    "not compared yet: printed values of an implemented feature (checked against metafor_*.json)"
)

#: cases not compared, and why; delete an entry when a test starts reading the case
NOT_CHECKED = {
    "bcg_escalc_logRR": _NOT_YET,
    "bcg_escalc_logOR": _NOT_YET,
    "bcg_RR_fixed_effect": _NOT_YET,
    "bcg_RR_REML": _NOT_YET,
    "bcg_RR_DL": _NOT_YET,
    "bcg_RR_ML": _NOT_YET,
    "bcg_RR_DLIT_SJIT_PMfixedpoint": f"{_NOT_IN_KETAMETA} (iterated DL and SJ estimators)",
    "bcg_OR_FE_and_DL_vs_Stata": _NOT_YET,
    "bcg_OR_REML": _NOT_YET,
    "vanhouwelingen2002_bcg_OR_ML": f"{_NOT_IN_KETAMETA} (profile-likelihood CIs)",
    "bcg_RD_FE_and_DL_vs_Stata": _NOT_YET,
    "bcg_metareg_REML_ablat_year": f"{_NOT_IN_KETAMETA} (meta-regression)",
    "bcg_metareg_FE_ablat_year": f"{_NOT_IN_KETAMETA} (meta-regression)",
    "bcg_metareg_ML_ablat_year": f"{_NOT_IN_KETAMETA} (meta-regression)",
    "bcg_metareg_REML_ablat": f"{_NOT_IN_KETAMETA} (meta-regression)",
    "berkey1995_bcg_EB_smoothed_variances": f"{_NOT_IN_KETAMETA} (meta-regression)",
    "bcg_permutation_test_exact": f"{_NOT_IN_KETAMETA} (permutation tests)",
    "bcg_leave1out_REML": _NOT_YET,
    "raudenbush1985_REML_and_weeks_moderator": f"{_NOT_IN_KETAMETA} (meta-regression)",
    "dersimonian_kacker2007_CLASP_tau_estimators": f"{_NOT_IN_KETAMETA} (two-step estimators)",
    "viechtbauer2007a_collins1985b_tau2_CIs": _NOT_YET,
    "normand1999_hine1989_RD": _NOT_YET,
    "normand1999_MD_SMD_ROM_docs": _NOT_YET,
    "lipsey2001_FE_DL_subgroups_metareg": f"{_NOT_IN_KETAMETA} (moderator models)",
    "henmi_copas2010_lee2004": f"{_NOT_IN_KETAMETA} (Henmi-Copas)",
    "stijnen2010_nielweise2007_logit_proportions_and_OR": _NOT_YET,
    "handbook2009_table13_4_binary_to_r_d_conversions": _NOT_YET,
    "gibson2002_SMD_RR_PBIT": _NOT_YET,
    "molloy2014_fisher_z_REML": _NOT_YET,
    "pritz1997_proportions": _NOT_YET,
    "mcdaniel1994_COR_UCOR_ZCOR": _NOT_YET,
    "proportions_logit_and_raw_basic": _NOT_YET,
    "hackshaw1998_logOR_from_CI_DL": _NOT_YET,
    "li2007_logOR_EE": _NOT_YET,
    "planck_constant_Q_numerical": _NOT_YET,
    "jackson2014_metareg_tau2_CIs_GENQ_PM": f"{_NOT_IN_KETAMETA} (meta-regression)",
    "escalc_misc_single_study_measures": _NOT_YET,
}


def _test_sources() -> str:
    here = Path(__file__).resolve()
    return "\n".join(
        p.read_text(encoding="utf-8") for p in TESTS.rglob("*.py") if p.resolve() != here
    )


def test_every_published_case_is_read_by_a_test_or_waived() -> None:
    ids = [case["id"] for case in load_reference("published.json")["cases"]]
    sources = _test_sources()
    read = {i for i in ids if f'"{i}"' in sources}
    for case_id, test_name in BUILT_IDS.items():
        assert f"def {test_name}(" in sources, (case_id, test_name)
        read.add(case_id)
    unread = [i for i in ids if i not in read and i not in NOT_CHECKED]
    assert not unread, f"published cases no test reads (test them or waive them): {unread}"
    stale = sorted(set(NOT_CHECKED) & read)
    assert not stale, f"waived cases that a test now reads (delete the waiver): {stale}"
    assert set(NOT_CHECKED) <= set(ids), sorted(set(NOT_CHECKED) - set(ids))
