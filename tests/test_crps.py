"""The bundled CRPS dataset (integrity, provenance) and the `ketameta crps` analyses."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ketameta
from ketameta import convert
from ketameta.cli import main
from ketameta.crps import analyse_crps, render
from ketameta.datasets import load_crps

PACKAGE = resources.files("ketameta.datasets").joinpath("crps")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "crps"  # the curation source
FILES = ("studies.csv", "outcomes.csv", "published_pooled.csv")


@pytest.fixture(scope="module")
def crps() -> ketameta.datasets.CRPSData:
    return load_crps()


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return analyse_crps()


def _raw(name: str) -> bytes:
    return PACKAGE.joinpath(name).read_bytes()


def test_sha256_recorded_and_verified(crps: Any) -> None:
    for spec in crps.provenance["tables"].values():
        assert hashlib.sha256(_raw(spec["file"])).hexdigest() == spec["sha256"]


@pytest.mark.skipif(not SHARED.exists(), reason="the curation source ../shared/crps is not here")
def test_tables_are_the_shared_source_verbatim() -> None:
    # every number comes from ../shared/crps: the packaged tables are byte-identical copies
    for name in FILES:
        assert _raw(name) == (SHARED / name).read_bytes(), name


def test_records_equal_the_csv_cells(crps: Any) -> None:
    # values are the printed text; integer columns parse exactly; empty means None, never 0
    for table, name in (
        ("studies", "studies.csv"),
        ("outcomes", "outcomes.csv"),
        ("published", "published_pooled.csv"),
    ):
        rows = list(csv.DictReader(_raw(name).decode("utf-8").splitlines()))
        records = getattr(crps, table)
        assert len(records) == len(rows)
        for record, row in zip(records, rows, strict=True):
            for column, cell in row.items():
                value = getattr(record, column)
                if cell == "":
                    assert value is None, (table, column)
                else:
                    assert value is not None
                    assert str(value) == cell or float(value) == float(cell), (table, column)


def test_identifiers_and_references(crps: Any) -> None:
    ids = [s.study_id for s in crps.studies]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Z]+\d{4}[A-Z]?", i) for i in ids)
    assert {o.study_id for o in crps.outcomes} <= set(ids)
    for s in crps.studies:
        if s.related_to is not None:
            mentioned = re.findall(r"[A-Z]+\d{4}[A-Z]?", s.related_to)
            assert mentioned, s.study_id
            assert set(mentioned) <= set(ids), s.study_id
    reviews = [p.review_id for p in crps.published]
    assert len(reviews) == len(set(reviews))
    assert all(o.source_kind in crps.provenance["source_kinds"] for o in crps.outcomes)


def test_provenance_documents_the_dataset(crps: Any) -> None:
    prov = crps.provenance
    assert crps.version == prov["version"] == "1.0.0"
    assert len(prov["known_gaps"]) >= 5
    for spec in prov["tables"].values():
        header = _raw(spec["file"]).decode("utf-8").splitlines()[0].split(",")
        assert set(spec["columns"]) == set(header)  # every column described
    assert crps.cite("SIGTERMANS2009") == (
        "Sigtermans MJ, van Hilten JJ, Bauer MCR, Arbous MS, Marinus J, Sarton EY, Dahan A "
        "(2009). Pain, 145(3):304-311. https://doi.org/10.1016/j.pain.2009.06.023 "
        "PMID 19604642."
    )
    with pytest.raises(KeyError, match="unknown study 'NOPE2000'"):
        crps.cite("NOPE2000")


def test_as_frame() -> None:
    pd = pytest.importorskip("pandas")
    frames = load_crps(as_frame=True)
    assert isinstance(frames.outcomes, pd.DataFrame)
    assert frames.outcomes.shape == (32, 15)
    assert frames.cite("COHEN2023").startswith("Cohen SP")


def test_counts_from_percent_on_the_dataset_cases() -> None:
    # ../shared/crps/README.md: the consistency of each percentage with a count
    assert convert.counts_from_percent(65, 20) == (13,)  # KIEFER2008A
    assert convert.counts_from_percent(48, 48) == (23,)  # MANGNUS2021 T2
    assert convert.counts_from_percent(62, 48) == (30,)  # 62.5% rounds both ways
    assert convert.counts_from_percent(54, 33) == ()  # CORRELL2004 ...
    assert convert.counts_from_percent(54, 33, rounding="truncate") == (18,)  # ... truncated
    assert convert.counts_from_percent(60, 16, rounding="any") == ()  # GOLDBERG2010
    assert convert.counts_from_percent("54.5", 33, decimals=1) == (18,)
    with pytest.raises(ValueError, match="`percent` must be within"):
        convert.counts_from_percent(120, 10)
    with pytest.raises(ValueError, match="`n` must be a positive integer"):
        convert.counts_from_percent(50, 0)


def test_grim() -> None:
    # Brown & Heathers (2017): with n = 28 integer scores, means are multiples of 1/28
    assert not convert.grim_test(5.19, 28).consistent
    assert convert.grim_test(5.18, 28).consistent
    assert convert.grim_test(5.18, 28).nearest_possible == pytest.approx((145 / 28, 146 / 28))
    assert convert.grim_test(2.68, 30, items=1).consistent is False  # 80/30 = 2.667, 81/30 = 2.7
    assert convert.grim_test(2.7, 30, decimals=1).consistent


def test_check_reported_on_published_results() -> None:
    # Collins 2010: g = -0.65 (-1.47, 0.16), p = 0.11; Zhu 2024: -0.78 (-1.51, -0.05), p = 0.04
    collins = convert.check_reported("-0.65", "-1.47", "0.16", pvalue="0.11")
    se = (0.16 + 1.47) / (2 * 1.959963984540054)
    assert collins.se == pytest.approx(se, rel=1e-12)
    assert collins.consistent is True
    zhu = convert.check_reported("-0.78", "-1.51", "-0.05", pvalue="0.04")
    assert zhu.consistent is True
    assert not convert.check_reported("-0.78", "-1.51", "-0.05", pvalue="0.20").consistent
    assert convert.check_reported("-1.83", "-2.35", "-1.31", pvalue="<0.0001").consistent
    ratio = convert.check_reported(0.5, 0.25, 1.0, log=True)
    assert ratio.ci_asymmetry == pytest.approx(0.0, abs=1e-12)
    assert ratio.consistent is None


def test_evidence_table_counts_patients_once(report: dict[str, Any]) -> None:
    ev = report["evidence"]
    rows = {r["study_id"]: r for r in ev["studies"]}
    assert rows["DAHAN2011"]["why_not_counted"] == "re-analysis of SIGTERMANS2009"
    assert rows["FINCH2009"]["counted_once"] is False
    crps = load_crps()
    expected = sum(r.n_analysed for r in crps.studies if r.study_id in ev["studies_counted"])
    assert ev["patients_counted_once"] == expected
    assert "DAHAN2011" not in ev["studies_counted"]


def test_responder_analysis(report: dict[str, Any]) -> None:
    r = report["responders"]
    use = {s["study_id"]: (s["use"], s["count"]) for s in r["studies"]}
    assert use == {
        "COHEN2023": ("main", 33),
        "KIEFER2008A": ("main", 13),
        "MANGNUS2021": ("main", 23),
        "CORRELL2004": ("sensitivity", 18),
        "GOLDBERG2010": ("excluded", None),
    }
    main = next(
        a
        for a in r["analyses"]
        if a["set"] == "main" and a["measure"] == "logit" and a["method"] == "DL"
    )
    es = ketameta.escalc("PLO", xi=[33, 13, 23], ni=[71, 20, 48])
    direct = ketameta.pool(es, method="DL")
    assert main["estimate"] == pytest.approx(100 * float(convert.inv_logit(direct.estimate)))
    assert r["published"]["estimate"] == 58.0
    assert r["assumptions"]


def test_change_scenarios_cover_every_assumption(report: dict[str, Any]) -> None:
    c = report["change"]
    combos = {(s["plus_minus_as"], s["correlation"]) for s in c["scenarios"]}
    assert combos == {(pm, r) for pm in ("SE", "SD") for r in (0.2, 0.5, 0.8)}
    main = next(s for s in c["scenarios"] if s["main"])
    assert (main["plus_minus_as"], main["correlation"]) == ("SE", 0.5)
    # SIGTERMANS2010 under SE, r = 0.5: by hand, SD = 0.2·√10 and 0.3·√10
    sd1, sd2 = 0.2 * np.sqrt(10), 0.3 * np.sqrt(10)
    yi, vi = main["studies"]["SIGTERMANS2010"]
    assert yi == pytest.approx(5.8)
    assert vi == pytest.approx((sd1**2 + sd2**2 - 2 * 0.5 * sd1 * sd2) / 10)
    assert main["studies"]["PATIL2012"] == pytest.approx([7.2, 0.51**2])


def test_randomized_section(report: dict[str, Any]) -> None:
    rz = report["randomized"]
    main = next(t for t in rz["trial"]["estimates"] if t["main"])
    assert main["md"] == pytest.approx(2.68 - 5.45)
    assert {p["review_id"] for p in rz["published"]} == {"COLLINS2010", "ZHU2024", "ORHURHU2019"}
    assert all(p["consistent"] for p in rz["published"])


def test_render_and_cli(
    report: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = render(report)
    for heading in (
        "1. Evidence table",
        "2. Responder rates",
        "3. Pain change",
        "4. Randomized evidence",
        "5. Small-study effects",
        "Summary",
    ):
        assert heading in text
    assert "Assumptions:" in text
    assert main([]) == 0  # the main job is the default command
    assert capsys.readouterr().out.startswith("Ketamine for CRPS")
    assert main(["crps", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["small_study"]["run"] is False
    # issue #19: the report says why a selection model cannot be fitted to 3 studies
    note = data["small_study"]["selection_model"]
    assert note.startswith("cannot say anything here")
    assert "k = 3" in note
    assert "not identified" in note
    pytest.importorskip("matplotlib")
    assert main(["crps", "--forest", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "crps_responders.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "plots" / "crps_pain_change_bayes.png").read_bytes().startswith(b"\x89PNG")


def test_loader_names_the_cell_of_an_edited_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an edit that also updates the recorded sha256: a cell that is not of its column's
    # type is named by table, line and column (not Python's "invalid literal for int()")
    import shutil

    import ketameta.datasets as ds

    copy = tmp_path / "datasets"
    shutil.copytree(Path(str(resources.files("ketameta.datasets"))), copy)
    table = copy / "crps" / "outcomes.csv"
    table.write_bytes(table.read_bytes().replace(b"ketamine,30,", b"ketamine,thirty,", 1))
    sidecar_path = copy / "crps" / "crps.json"
    sidecar = json.loads(sidecar_path.read_text("utf-8"))
    sidecar["tables"]["outcomes"]["sha256"] = hashlib.sha256(table.read_bytes()).hexdigest()
    sidecar_path.write_text(json.dumps(sidecar), "utf-8")
    monkeypatch.setattr(ds.resources, "files", lambda name: copy)
    with pytest.raises(
        ValueError, match=r"outcomes\.csv, line 2, column 'n': 'thirty' is not an integer"
    ):
        load_crps()


def test_few_studies_main_results(report: dict[str, Any]) -> None:
    """HKSJ is the main frequentist result, z the sensitivity analysis (issue 15)."""
    c = report["change"]["few_studies"]["frequentist"]
    main = next(s for s in report["change"]["scenarios"] if s["main"])
    yi, vi = (list(x) for x in zip(*main["studies"].values(), strict=True))
    kh = ketameta.pool(yi, vi, method="REML", test="knha")
    z = ketameta.pool(yi, vi, method="REML", test="z")
    assert c["ci_lower"] == pytest.approx(kh.ci_lower, rel=1e-12)
    assert c["ci_upper"] == pytest.approx(kh.ci_upper, rel=1e-12)
    assert round(c["ci_lower"], 2) == -1.68  # the figures
    assert round(c["ci_upper"], 2) == 11.67
    assert c["sensitivity_z"]["ci_lower"] == pytest.approx(z.ci_lower, rel=1e-12)
    assert c["pred_outside_range"] is not None  # -8.2 to 18.2 on a 0-10 scale
    ci = kh.tau2_ci(tau2_max=float("inf"))
    assert c["i2_ci"] == pytest.approx([ci.i2[1], ci.i2[2]])
    r = report["responders"]["few_studies"]["frequentist"]
    assert r["i2"] < 1
    assert round(r["i2_ci"][1], 1) == 98.6  # what the interval allows


def test_few_studies_bayesian(report: dict[str, Any]) -> None:
    few = report["change"]["few_studies"]
    b = few["bayesian"][0]
    main = next(s for s in report["change"]["scenarios"] if s["main"])
    yi, vi = (list(x) for x in zip(*main["studies"].values(), strict=True))
    res = ketameta.bayes_pool(yi, vi, tau_prior=ketameta.priors.HalfNormal(2.0))
    assert b["mu_median"] == pytest.approx(res.mu_median, rel=1e-12)
    assert b["tau_prior"] == "half-normal(scale = 2)"
    p = b["probabilities"]["P(pooled mean pain reduction > 2 points (MCID))"]
    assert p == pytest.approx(1 - float(res.cdf("mu", 2.0)), abs=1e-12)
    assert few["bayesian"][1]["tau_prior"] == "half-normal(scale = 4)"
    assert "Farrar" in few["prior_choice"]
    resp = report["responders"]["few_studies"]["bayesian"][0]
    key = "P(pooled responder rate > 50%)"
    es = ketameta.escalc("PLO", xi=[33, 13, 23], ni=[71, 20, 48])
    direct = ketameta.bayes_pool(es, tau_prior=ketameta.priors.HalfNormal(1.0))
    assert resp["probabilities"][key] == pytest.approx(direct.probability("mu", above=0.0))
    assert resp["mu_median"] == pytest.approx(100 * float(convert.inv_logit(direct.mu_median)))


def test_summary_does_not_overstate(report: dict[str, Any]) -> None:
    text = " ".join(report["summary"])
    assert "agree with each other" not in text  # no agreement inferred from I² (k = 3)
    assert "98.6%" in text  # the I² interval is stated
    assert "15 studies with 258 participants" in text
    assert "could not confirm" in text
    assert "no significant short-term difference" in text
    assert "Collins 2010" in text
    screen = render(report)
    assert not re.search(r"\d[eE][-+]\d", screen)  # no 5.29e-12 beside "p < 0.0001"
    assert not re.search(r"\d-\d", screen.replace("0-10", ""))  # ranges: "to" or en dash
    for s in report["evidence"]["studies"]:  # every design in full
        assert " ".join(s["design"].split()) in " ".join(screen.split())


def test_json_carries_the_methods(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crps", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    few = data["change"]["few_studies"]
    assert "Hartung-Knapp" in few["frequentist"]["method"]
    assert "Q-profile" in few["frequentist"]["heterogeneity_method"]
    assert few["bayesian"][0]["method"].startswith("exact posterior")
    assert few["bayesian"][0]["mu_prior"] == "flat (improper)"
