"""The ketameta command line: output, JSON, plots and one-line errors with status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ketameta
from ketameta.cli import main

BCG = """study,ai,bi,ci,di,alloc
Aronson 1948,4,119,11,128,random
Ferguson 1949,6,300,29,274,random
Rosenthal 1960,3,228,11,209,random
Hart 1977,62,13536,248,12619,random
Frimodt-Moller 1973,33,5036,47,5761,alternate
Stein 1953,180,1361,372,1079,alternate
"""


@pytest.fixture
def bcg_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bcg.csv"
    path.write_text(BCG, encoding="utf-8")
    return path


def _expected(method: str = "REML") -> ketameta.PoolResult:
    rows = [line.split(",") for line in BCG.strip().splitlines()[1:]]
    cells = {name: [float(r[i + 1]) for r in rows] for i, name in enumerate("abcd")}
    es = ketameta.escalc("RR", ai=cells["a"], bi=cells["b"], ci=cells["c"], di=cells["d"])
    return ketameta.pool(es, method=method)


def test_pool_prints_the_summary(bcg_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pool", str(bcg_csv), "--measure", "RR", "--method", "DL"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Random-effects model (k = 6; tau^2 estimator: DL")
    assert f"{_expected('DL').estimate:.4f}" in out


def test_pool_json_and_forest(
    bcg_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "forest.png"
    assert main(["pool", str(bcg_csv), "--measure", "RR", "--json", "--forest", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["estimate"] == pytest.approx(_expected().estimate, rel=1e-12)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_pool_by_group(bcg_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pool", str(bcg_csv), "--measure", "RR", "--by", "alloc", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"random", "alternate"}
    assert data["random"]["k"] == 4


def test_yi_vi_columns_and_python_m(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "es.csv"
    path.write_text("yi,vi\n0.1,0.01\n0.3,0.02\n,0.03\n0.25,0.015\n", encoding="utf-8")
    assert main(["pool", str(path), "--method", "EE", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["k"] == 3
    assert data["omitted"] == [2]


def test_egger_and_funnel(
    bcg_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["egger", str(bcg_csv), "--measure", "RR"]) == 0
    assert "Regression Test for Funnel Plot Asymmetry" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    png = tmp_path / "funnel.png"
    assert main(["funnel", str(bcg_csv), "--measure", "RR", "-o", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")


def test_example_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["example"]) == 0
    out = capsys.readouterr().out
    assert "BCG vaccine trials" in out
    assert "Pooled risk ratio 0.489" in out


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, ["--measure", "RR"], "no such file"),
        ("", ["--measure", "RR"], "empty file"),
        ("yi,vi\n0.1,0.01\nabc,0.02\n", [], "line 3, column 'yi': 'abc' is not a number"),
        ("yi,vi\n0.1,0.01\n0.2,-0.02\n", [], "`vi` must be positive; line 3 has vi=-0.02"),
        ("ai,bi\n1,2\n", ["--measure", "OR"], "missing: ci, di"),
        ("x,y\n1,2\n", [], "give --measure, or columns 'yi' and 'vi'"),
        ("yi,vi\n1,2,3\n", [], "line 2: 3 fields, but the header has 2"),
    ],
)
def test_errors_name_the_problem_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    args: list[str],
    message: str,
) -> None:
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["pool", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ketameta: error: ")
    assert message in err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["pool", "x.csv", "--method", "XX"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
