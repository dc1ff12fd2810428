"""The ketameta command line: output, JSON, plots and one-line errors with status 2."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

import ketameta
import ketameta.cli
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
    assert set(data["per_group"]) == {"random", "alternate"}
    assert data["per_group"]["random"]["k"] == 4
    # the JSON carries the test for subgroup differences (ketameta.subgroups, which
    # test_subgroups.py checks against metafor)
    rows = [line.split(",") for line in BCG.strip().splitlines()[1:]]
    cells = {name: [float(r[i + 1]) for r in rows] for i, name in enumerate("abcd")}
    es = ketameta.escalc("RR", ai=cells["a"], bi=cells["b"], ci=cells["c"], di=cells["d"])
    expected = ketameta.subgroups(es, groups=[r[5] for r in rows])
    assert data["q_between"] == pytest.approx(expected.q_between, rel=1e-12)
    assert data["q_between_df"] == 1
    assert data["q_between_pvalue"] == pytest.approx(expected.q_between_pvalue, rel=1e-12)
    assert data["tau2_mode"] == "separate"


def test_pool_by_prints_the_subgroup_analysis(
    bcg_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "forest.png"
    argv = ["pool", str(bcg_csv), "--measure", "RR", "--by", "alloc", "--forest", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Subgroup analysis by alloc (k = 6; 2 subgroups; log risk ratio)")
    assert "Test for subgroup differences (separate tau^2): Q(df = 1) = " in out
    assert png.read_bytes().startswith(b"\x89PNG")
    assert main([*argv[:-2], "--tau2", "common", "--test", "knha"]) == 0
    out = capsys.readouterr().out
    assert "Test for subgroup differences (common tau^2): F(df1 = 1, df2 = 4) = " in out


def test_pool_by_a_numeric_column_and_missing_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # numbers are ordered numerically (R's read.csv makes the column numeric); an empty
    # cell or NA is a missing label: the study is left out and its line named
    text = "yi,vi,dose\n0.1,0.01,10\n0.3,0.02,2\n0.2,0.03,\n0.25,0.015,10\n0.4,0.02,2\n"
    text += "0.5,0.02,NA\n"
    path = _write(tmp_path, text)
    assert main(["pool", str(path), "--by", "dose", "--json", "--method", "EE"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["levels"] == ["2", "10"]
    assert data["omitted"] == [2, 5]
    assert "lines 4, 7 have missing values and were left out" in captured.err


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
        ("x,y\n1,2\n", [], "no effect sizes: give --measure with the columns it needs"),
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


def _write(tmp_path: Path, text: str, name: str = "input.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ketameta: error: ")
    assert "Traceback" not in err
    return err


def test_duplicate_header_names_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "yi,vi,yi\n0.1,0.01,0.5\n0.2,0.02,0.6\n")
    err = _fails(["pool", str(path)], capsys)
    assert "line 1: the header names column 'yi' twice (columns 1 and 3)" in err
    # a name repeated after stripping blanks is the same name
    path = _write(tmp_path, "yi, vi ,vi\n0.1,0.01,0.5\n")
    assert "column 'vi' twice (columns 2 and 3)" in _fails(["egger", str(path)], capsys)


def test_unnamed_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a trailing comma (an empty unnamed column) is harmless; values without a name are not
    path = _write(tmp_path, "yi,vi,\n0.1,0.01,\n0.3,0.02,\n0.2,0.015,\n")
    assert main(["pool", str(path), "--json", "--method", "EE"]) == 0
    assert json.loads(capsys.readouterr().out)["k"] == 3
    path = _write(tmp_path, "yi,vi,\n0.1,0.01,\n0.3,0.02,7\n")
    assert "line 3: column 3 has values but no name" in _fails(["pool", str(path)], capsys)


BLANKS = "yi,vi,g\n\n0.1,0.01,a\n\n\n0.3,0.02,b\n0.2,-0.015,b\n0.25,0.02,a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pool"], "`vi` must be positive; line 7 has vi=-0.015"),
        (["egger"], "`vi` must be positive; line 7 has vi=-0.015"),
        (["pool", "--by", "g"], "(group g = 'b'): `vi` must be positive; line 7 has vi=-0.015"),
    ],
)
def test_line_numbers_count_blank_lines_and_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    # the bad study is the 3rd data row (index 2 in the file, index 1 in group 'b'); it is
    # on line 7 of the file, after three blank lines
    path = _write(tmp_path, BLANKS)
    assert message in _fails([argv[0], str(path), *argv[1:]], capsys)


def test_cell_errors_name_the_line_after_blank_lines_and_quoted_newlines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = 'study,yi,vi\n"A\nsecond line",0.1,0.01\n\nB,abc,0.02\n'
    path = _write(tmp_path, text)
    assert "line 5, column 'yi': 'abc' is not a number" in _fails(["pool", str(path)], capsys)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("1" * 400, "is beyond the double-precision range"),
        ("-1e400", "'-1e400' is beyond the double-precision range"),
        ("inf", "'inf' is not finite"),
        ("-Infinity", "'-Infinity' is not finite"),
    ],
)
def test_numbers_beyond_the_double_range_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cell: str, message: str
) -> None:
    path = _write(tmp_path, f"yi,vi\n0.1,0.01\n{cell},0.02\n0.3,0.03\n")
    err = _fails(["pool", str(path)], capsys)
    assert "line 3, column 'yi'" in err
    assert message in err


@pytest.mark.parametrize("command", ["pool", "egger", "by"])
def test_omitted_studies_are_reported_with_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # docs/contract.md: a study with a missing value is never dropped silently
    text = "study,yi,vi,g\nA,0.1,0.01,x\n\nB,,0.02,x\nC,0.3,0.03,x\nD,0.5,NA,x\nE,0.2,0.01,x\n"
    text += "F,0.4,0.02,x\n"
    path = _write(tmp_path, text)
    argv = ["pool", str(path), "--by", "g"] if command == "by" else [command, str(path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "ketameta: warning: " in captured.err
    assert "lines 4, 6 have missing values and were left out" in captured.err
    if command != "egger":  # the summary names them by line and label too, not by index
        # (the reason as the result gives it: "missing values", "missing yi or vi", ...)
        assert re.search(
            rf"^Omitted studies \(.*\): lines 4 \(B\), 6 \(D\) of {re.escape(str(path))}$",
            captured.out,
            flags=re.M,
        )


def test_metareg_leaves_out_a_missing_moderator_by_line_and_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "study,yi,vi,x\nA,0.1,0.01,1\nB,0.2,0.02,\nC,0.3,0.03,3\nD,0.5,0.01,4\nE,0.2,0.02,6\n"
    path = _write(tmp_path, text)
    assert main(["metareg", str(path), "--mods", "x", "--method", "EE"]) == 0
    captured = capsys.readouterr()
    assert f"ketameta: warning: {path}: line 3 has a missing value and was left out" in (
        captured.err
    )
    assert re.search(
        rf"^Omitted studies \(.*\): line 3 \(B\) of {re.escape(str(path))}$",
        captured.out,
        flags=re.M,
    )
    expected = ketameta.metareg(
        [0.1, 0.3, 0.5, 0.2], [0.01, 0.03, 0.01, 0.02], mods=[1, 3, 4, 6], method="EE"
    )
    assert main(["metareg", str(path), "--mods", "x", "--method", "EE", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["coef"] == pytest.approx(list(expected.coef), rel=1e-12)


@pytest.mark.parametrize(
    ("measure", "name"),
    [
        (["--measure", "RR"], "Log risk ratio"),
        (["--measure", "RD"], "Risk difference"),
        (["--measure", "OR"], "Log odds ratio"),
        ([], "Effect size"),  # yi and vi: the scale is not known
    ],
)
def test_funnel_axis_is_named_after_the_measure(
    bcg_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, measure: list[str], name: str
) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    saved = []
    monkeypatch.setattr(ketameta.cli, "_save", lambda fig, path: saved.append(fig))
    path = bcg_csv
    if not measure:
        path = _write(tmp_path, "yi,vi\n0.1,0.01\n0.3,0.02\n0.2,0.03\n")
    assert main(["funnel", str(path), *measure, "-o", "f.png"]) == 0
    (fig,) = saved
    assert [ax.get_xlabel() for ax in fig.axes] == [name]
    plt.close(fig)


@pytest.mark.parametrize(
    ("argv", "xlabel", "scale"),
    [
        (["--measure", "OR", "--model", "mh"], "Odds ratio (log scale)", "log"),
        (["--measure", "OR", "--model", "peto"], "Peto odds ratio (log scale)", "log"),
        (["--measure", "RD", "--model", "mh"], "Risk difference", "linear"),
        (["--measure", "RD"], "Risk difference", "linear"),
    ],
)
def test_forest_axis_of_each_model(
    bcg_csv: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], xlabel: str, scale: str
) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    saved = []
    monkeypatch.setattr(ketameta.cli, "_save", lambda fig, path: saved.append(fig))
    assert main(["pool", str(bcg_csv), *argv, "--forest", "f.png"]) == 0
    (fig,) = saved
    axes = [ax for ax in fig.axes if ax.get_xlabel()]
    assert [(ax.get_xlabel(), ax.get_xscale()) for ax in axes] == [(xlabel, scale)]
    plt.close(fig)


@pytest.mark.parametrize("by", [False, True])
def test_forest_of_a_ratio_measure_shows_ratios_on_a_log_axis(
    bcg_csv: Path, monkeypatch: pytest.MonkeyPatch, by: bool
) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    saved = []
    monkeypatch.setattr(ketameta.cli, "_save", lambda fig, path: saved.append(fig))
    argv = ["pool", str(bcg_csv), "--measure", "RR", "--forest", "f.png"]
    assert main([*argv, "--by", "alloc"] if by else argv) == 0
    (fig,) = saved
    axes = [ax for ax in fig.axes if ax.get_xlabel()]
    assert [ax.get_xlabel() for ax in axes] == ["Risk ratio (log scale)"]
    assert axes[0].get_xscale() == "log"
    if not by:  # the pooled risk ratio beside the diamond: exp of the pooled log RR
        texts = [t.get_text() for t in fig.findobj(Text)]
        assert any(t.startswith(f"{math.exp(_expected().estimate):.2f}") for t in texts)
    plt.close(fig)


def test_pool_prints_the_back_transformed_ratio(
    bcg_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the pooled risk ratio, its CI and PI, not only the log risk ratio (issue #16)
    assert main(["pool", str(bcg_csv), "--measure", "RR"]) == 0
    out = capsys.readouterr().out
    res = _expected()
    assert "Model Results (log risk ratio):" in out
    table = out.split("Risk ratio (back-transformed: exp):")[1].split()
    assert table[:5] == ["estimate", "ci.lb", "ci.ub", "pi.lb", "pi.ub"]
    expected = [res.estimate, res.ci_lower, res.ci_upper, res.pred_lower, res.pred_upper]
    assert table[5:10] == [f"{math.exp(x):.4f}" for x in expected]


def test_labels_longer_than_the_csv_field_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    limit = csv.field_size_limit()
    label = "x" * 200_000
    path = _write(tmp_path, f"study,yi,vi\n{label},0.1,0.01\nB,0.3,0.02\nC,0.2,0.03\n")
    assert main(["pool", str(path), "--json", "--method", "EE"]) == 0
    assert json.loads(capsys.readouterr().out)["k"] == 3
    assert csv.field_size_limit() == limit  # the process-wide limit is restored


class _CountingKeys(list):  # type: ignore[type-arg]
    """A column whose elements count how often they are read."""

    reads = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in super().__iter__():
            _CountingKeys.reads += 1
            yield item

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        _CountingKeys.reads += 1
        return super().__getitem__(i)


def test_pool_by_groups_in_one_pass(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 4,000 groups of 2 rows: the grouping column is read a bounded number of times per
    # row (an old version rescanned it for every group: 8,000 x 4,000 reads), and the
    # groups are fitted together (one engine call)
    import argparse

    from ketameta import cli

    n_groups = 4000
    keys = _CountingKeys(f"g{i // 2}" for i in range(2 * n_groups))
    columns = {
        "g": keys,
        "yi": [f"0.{i % 7 + 1}" for i in range(len(keys))],
        "vi": ["0.02"] * len(keys),
    }
    table = cli.Table("big.csv", columns, list(range(2, 8002)))
    monkeypatch.setattr(cli, "read_table", lambda path, **options: table)
    args = argparse.Namespace(
        file="big.csv",
        by="g",
        json=True,
        measure=None,
        method="EE",
        test="z",
        level=0.95,
        tau2=None,
        forest=None,
    )
    _CountingKeys.reads = 0
    assert cli._pool_by(args) == 0
    assert _CountingKeys.reads <= 3 * len(keys)
    data = json.loads(capsys.readouterr().out)
    assert len(data["per_group"]) == n_groups
    assert data["per_group"]["g10"]["k"] == 2


def test_pool_by_many_groups_finishes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an end-to-end run with 1,500 groups (moderately large; no timing asserted)
    rows = "".join(f"g{i},0.{i % 7 + 1},0.0{i % 5 + 1}\ng{i},0.2,0.03\n" for i in range(1500))
    path = _write(tmp_path, "g,yi,vi\n" + rows)
    assert main(["pool", str(path), "--by", "g", "--method", "EE", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["per_group"]) == 1500
    assert data["per_group"]["g10"]["k"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["egger", "--test", "knha"],
            "ketameta egger cannot use --test (used only with --model rma)",
        ),
        (["egger", "--method", "DL"], "cannot use --method (used only with --model rma)"),
        (["funnel", "-o", "f.png", "--json"], "ketameta funnel cannot use --json"),
        (["funnel", "-o", "f.png", "--test", "knha"], "ketameta funnel cannot use --test"),
        (["pool", "--tau2", "common"], "ketameta pool cannot use --tau2 (used only with --by)"),
    ],
)
def test_options_a_command_cannot_use_are_refused(
    bcg_csv: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    err = _fails([argv[0], str(bcg_csv), "--measure", "RR", *argv[1:]], capsys)
    assert message in err


def test_egger_uses_level_and_rma_options(
    bcg_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    rows = [line.split(",") for line in BCG.strip().splitlines()[1:]]
    cells = {name: [float(r[i + 1]) for r in rows] for i, name in enumerate("abcd")}
    es = ketameta.escalc("RR", ai=cells["a"], bi=cells["b"], ci=cells["c"], di=cells["d"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.SmallSampleWarning)
        lm90 = ketameta.egger_test(es, level=0.9)
        rma = ketameta.egger_test(es, model="rma", method="DL", test="knha")
    assert main(["egger", str(bcg_csv), "--measure", "RR", "--level", "0.9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["level"] == 0.9
    assert out["ci_lower"] == pytest.approx(lm90.ci_lower, rel=1e-12)
    argv = ["egger", str(bcg_csv), "--measure", "RR", "--model", "rma", "--method", "DL"]
    assert main([*argv, "--test", "knha", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["statistic"] == pytest.approx(rma.statistic, rel=1e-12)
    assert "only 6 studies" in captured.err  # the small-sample warning is shown, not hidden


def test_level_outside_0_1_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["pool", "x.csv", "--level", "95"])
    assert exc.value.code == 2
    assert "must be in (0, 1)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("outcomes.csv", lambda b: b.replace(b"SIGTERMANS2009", b"SIGTERMANS2010", 1), "sha256"),
        ("crps.json", lambda b: b[:-20], "not valid JSON"),
        ("crps.json", lambda b: b.replace(b'"version"', b'"versio"', 1), "lacks the entry"),
    ],
)
def test_crps_on_a_tampered_dataset_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    file: str,
    edit: object,
    message: str,
) -> None:
    import shutil
    from importlib import resources

    import ketameta.datasets as ds

    copy = tmp_path / "datasets"
    shutil.copytree(Path(str(resources.files("ketameta.datasets"))), copy)
    target = copy / "crps" / file
    target.write_bytes(edit(target.read_bytes()))  # type: ignore[operator]
    monkeypatch.setattr(ds.resources, "files", lambda name: copy)
    err = _fails(["crps"], capsys)
    assert "the bundled CRPS dataset cannot be used" in err
    assert message in err
