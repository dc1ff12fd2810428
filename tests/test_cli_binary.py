"""``ketameta pool --model mh|peto|glmm``: the cells of a CSV pooled directly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ketameta
from ketameta.cli import main

BCG = """study,ai,bi,ci,di
Aronson 1948,4,119,11,128
Ferguson 1949,6,300,29,274
Rosenthal 1960,3,228,11,209
Hart 1977,62,13536,248,12619
Frimodt-Moller 1973,33,5036,47,5761
Stein 1953,180,1361,372,1079
"""
CELLS = {
    "ai": [4, 6, 3, 62, 33, 180],
    "bi": [119, 300, 228, 13536, 5036, 1361],
    "ci": [11, 29, 11, 248, 47, 372],
    "di": [128, 274, 209, 12619, 5761, 1079],
}


@pytest.fixture
def bcg_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bcg.csv"
    path.write_text(BCG, encoding="utf-8")
    return path


def test_mantel_haenszel(bcg_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pool", str(bcg_csv), "--measure", "OR", "--model", "mh"]) == 0
    out = capsys.readouterr().out
    expected = ketameta.pool_mh(**CELLS)
    assert out.startswith("Equal-Effects Model (k = 6; Mantel-Haenszel, log odds ratio)")
    assert f"{expected.estimate:9.4f}" in out
    assert "Tarone's Test for Heterogeneity" in out


def test_json_forest_peto_and_glmm(
    bcg_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "forest.png"
    argv = ["pool", str(bcg_csv), "--measure", "RR", "--model", "mh", "--json"]
    assert main([*argv, "--forest", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["measure"] == "RR"
    assert data["labels"][0] == "Aronson 1948"
    assert data["estimate"] == pytest.approx(ketameta.pool_mh(**CELLS, measure="RR").estimate)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert main(["pool", str(bcg_csv), "--model", "peto"]) == 0
    assert "Peto's method" in capsys.readouterr().out
    assert main(["pool", str(bcg_csv), "--model", "glmm", "--method", "EE"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Equal-Effects Model (k = 6)")
    assert f"{ketameta.pool_glmm(**CELLS, method='EE').estimate:9.4f}" in out


def test_errors_exit_2(bcg_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pool", str(bcg_csv), "--measure", "IRR", "--model", "mh"]) == 2
    assert "needs x1i, t1i, x2i, t2i" in capsys.readouterr().err
    assert main(["pool", str(bcg_csv), "--model", "mh", "--by", "study"]) == 2
    assert "--by works with --model rma only" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["mh", "peto", "glmm"])
def test_omitted_table_named_by_its_csv_line(
    tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rosenthal 1960 (line 4 of the file: the header is line 1) has an empty cell: the
    # summary names it by its line and label, as `pool` does for effect sizes, not by the
    # 0-based row index a reader of the CSV cannot look up
    path = tmp_path / "bcg.csv"
    path.write_text(BCG.replace("Rosenthal 1960,3,", "Rosenthal 1960,,"), encoding="utf-8")
    argv = ["pool", str(path), "--model", model]
    argv += ["--method", "EE"] if model == "glmm" else []
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"Omitted studies (missing values): line 4 (Rosenthal 1960) of {path}" in captured.out
    assert "(index 2)" not in captured.out
    assert "line 4 has a missing value" in captured.err
