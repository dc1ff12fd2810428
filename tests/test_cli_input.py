"""CSV input as people have it (issue #16): separators and decimal marks, encodings, column
names in any case and ``--col`` mappings, effects with confidence limits, ``metareg``,
options refused, missing optional dependencies. Each class of input is run through the
command in-process and its numbers checked against the library call on the same numbers
(the library itself is checked against metafor in test_pooling.py, test_metareg.py, ...).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import convert
from ketameta.cli import main

# The first four BCG trials (Colditz et al. 1994; metafor's dat.bcg): cells of the 2x2 tables
CELLS = {"ai": [4, 6, 3, 62], "bi": [119, 300, 228, 13536], "ci": [11, 29, 11, 248]}
CELLS["di"] = [128, 274, 209, 12619]
N1 = [a + b for a, b in zip(CELLS["ai"], CELLS["bi"], strict=True)]
N2 = [c + d for c, d in zip(CELLS["ci"], CELLS["di"], strict=True)]
YI = [-0.8893, -1.5854, -1.3481, -1.4416]
VI = [0.3256, 0.1946, 0.4154, 0.02]
#: hazard ratios as a paper prints them: estimate (95% CI)
HR = [(0.80, 0.61, 1.05), (0.72, 0.55, 0.94), (1.10, 0.80, 1.51), (0.91, 0.77, 1.08)]


def _write(tmp_path: Path, text: str | bytes, name: str = "input.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:  # type: ignore[type-arg]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one-line error of a failing command (exit status 2)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ketameta: error: ")
    assert err.count("\n") == 1, err  # one line, nothing before or after it
    return err


def _pool_ee(yi: list[float], vi: list[float]) -> ketameta.PoolResult:
    return ketameta.pool(yi, vi, method="EE")


def _same(data: dict, expected: ketameta.PoolResult) -> None:  # type: ignore[type-arg]
    assert data["k"] == expected.k
    assert data["estimate"] == pytest.approx(expected.estimate, rel=1e-12)
    assert data["se"] == pytest.approx(expected.se, rel=1e-12)


# -- separators, decimal marks, encodings ----------------------------------------------------


def test_semicolons_with_decimal_commas_a_bom_quotes_and_minus_signs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # as Excel writes CSV where the comma is the decimal mark: a BOM, ';' between fields,
    # decimal commas, a quoted number, the minus sign U+2212 as copied from a paper
    minus = "\u2212"
    rows = [
        f"S{i};{str(y).replace('-', minus)};{v}"
        for i, (y, v) in enumerate(zip(YI, VI, strict=True))
    ]
    rows = [r.replace(".", ",") for r in rows]
    rows[2] = rows[2].replace(";0,4154", ';"0,4154"')
    path = _write(tmp_path, ("\ufeffstudy;yi;vi\n" + "\n".join(rows) + "\n").encode("utf-8"))
    data, err = _json(["pool", path, "--method", "EE"], capsys)
    _same(data, _pool_ee(YI, VI))
    assert "read as semicolon-separated with a decimal comma" in err


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_tab_separated_utf8_and_utf16(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: str
) -> None:
    # tab-separated text; UTF-16 with its BOM is what Excel's "Unicode text" writes
    text = "study\tyi\tvi\n" + "".join(
        f"Å{i}\t{y}\t{v}\n" for i, (y, v) in enumerate(zip(YI, VI, strict=True))
    )
    path = _write(tmp_path, text.encode(encoding), "input.txt")
    data, err = _json(["pool", path, "--method", "EE"], capsys)
    _same(data, _pool_ee(YI, VI))
    assert "note" not in err  # tab and decimal point: nothing to remark


def test_windows_1252_is_read_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "study,yi,vi\n" + "".join(
        f"Müller {i},{y},{v}\n" for i, (y, v) in enumerate(zip(YI, VI, strict=True))
    )
    path = _write(tmp_path, text.encode("cp1252"))
    data, err = _json(["pool", path, "--method", "EE"], capsys)
    _same(data, _pool_ee(YI, VI))
    assert "not UTF-8; read as Windows-1252" in err


def test_sep_and_decimal_override_the_detection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # decimal commas inside quotes in a comma-separated file: only --decimal reads them
    rows = "".join(f'"{y}","{v}"\n'.replace(".", ",") for y, v in zip(YI, VI, strict=True))
    path = _write(tmp_path, "yi,vi\n" + rows)
    err = _fails(["pool", path], capsys)
    assert "line 2, column 'yi': '-0,8893' is not a number with a decimal point" in err
    assert "--decimal , reads decimal commas" in err
    data, _ = _json(["pool", path, "--decimal", ",", "--method", "EE"], capsys)
    _same(data, _pool_ee(YI, VI))
    # '|'-separated, forced with --sep (the detection would find it too)
    path = _write(tmp_path, "yi|vi\n" + "".join(f"{y}|{v}\n" for y, v in zip(YI, VI, strict=True)))
    data, _ = _json(["pool", path, "--sep", "|", "--decimal", ".", "--method", "EE"], capsys)
    _same(data, _pool_ee(YI, VI))
    # a separator that is not in the file: one column, so the inputs are missing
    assert "no effect sizes" in _fails(["pool", path, "--sep", ";"], capsys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # both marks in one file: which is meant cannot be known
        ("yi;vi\n0,1;0.01\n0,2;0,02\n", "decimal comma (line 2: '0,1') and a decimal point"),
        # integers with thousands separators decide nothing
        ("ai;bi;ci;di\n1,000;2,000;3,000;4,000\n", "line 2: is '1,000' a number with a thousands"),
        ("ai;bi;ci;di\n1.250;2.000;3;4\n", "is '1.250' a number with a thousands"),
    ],
)
def test_ambiguous_decimal_marks_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    err = _fails(["pool", _write(tmp_path, text), "--measure", "OR"], capsys)
    assert message in err
    assert "give --decimal , or --decimal ." in err


def test_a_decimal_point_in_a_decimal_comma_file_names_the_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "yi;vi\n0,1;0,01\n0,2;0,02\n0,3;1.5\n")
    err = _fails(["pool", path, "--decimal", ","], capsys)
    assert "line 4, column 'vi': '1.5' is not a number with a decimal comma" in err


def test_a_wrong_field_count_names_the_separator_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "yi;vi\n0,1;0,01\n0,2;0,02;7\n")
    err = _fails(["pool", path], capsys)
    assert "line 3: 3 fields, but the header has 2 (read as semicolon-separated; see --sep)" in err


# -- column names -----------------------------------------------------------------------------


def test_names_in_any_case_and_unused_columns_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "Study,AI,Bi,cI,DI,Year,Country\n" + "".join(
        f"S{i},{a},{b},{c},{d},19{50 + i},X\n"
        for i, (a, b, c, d) in enumerate(zip(*CELLS.values(), strict=True))
    )
    data, err = _json(
        ["pool", _write(tmp_path, text), "--measure", "RR", "--method", "DL"], capsys
    )
    expected = ketameta.pool(ketameta.escalc("RR", **CELLS), method="DL")
    _same(data, expected)
    assert "ketameta: note: " in err
    assert "columns not used: Year, Country" in err


def test_names_differing_only_in_case_need_a_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "Yi,YI,vi\n" + "".join(f"{y},{-y},{v}\n" for y, v in zip(YI, VI, strict=True))
    path = _write(tmp_path, text)
    err = _fails(["pool", path], capsys)
    assert (
        "columns 'Yi', 'YI' differ only in case; name the one to use with --col yi=COLUMN" in err
    )
    data, err = _json(["pool", path, "--col", "yi=YI", "--method", "EE"], capsys)
    _same(data, _pool_ee([-y for y in YI], VI))
    assert "column not used: Yi" in err


def test_col_maps_columns_and_errors_name_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "trial,events_vacc,n_vacc,events_ctrl,n_ctrl\n" + "".join(
        f"T{i},{a},{n1},{c},{n2}\n"
        for i, (a, n1, c, n2) in enumerate(zip(CELLS["ai"], N1, CELLS["ci"], N2, strict=True))
    )
    path = _write(tmp_path, text)
    maps = ["--col", "ai=events_vacc", "--col", "n1i=N_VACC", "--col", "ci=events_ctrl"]
    maps += ["--col", "n2i=n_ctrl", "--col", "study=trial"]
    data, err = _json(["pool", path, "--measure", "OR", *maps], capsys)
    expected = ketameta.pool(ketameta.escalc("OR", ai=CELLS["ai"], n1i=N1, ci=CELLS["ci"], n2i=N2))
    _same(data, expected)
    assert "not used" not in err
    # an error found by the analysis names the file's column beside the input
    bad = _write(tmp_path, text.replace(",4,123,", ",400,123,"), "bad.csv")
    err = _fails(["pool", bad, "--measure", "OR", *maps], capsys)
    assert "`ai` (column 'events_vacc') cannot exceed `n1i` (column 'n_vacc')" in err
    assert "line 2" in err
    # a cell that is not a number names both
    bad = _write(tmp_path, text.replace(",4,123,", ",four,123,"), "bad.csv")
    err = _fails(["pool", bad, "--measure", "OR", *maps], capsys)
    assert "line 2, column 'events_vacc' (ai): 'four' is not a number" in err


@pytest.mark.parametrize(
    ("col", "message"),
    [
        (["--col", "ai=nope"], "no column 'nope' (--col ai=nope); the file has columns: study, a"),
        (["--col", "ai=a", "--col", "ai=b"], "--col ai= given twice ('a' and 'b')"),
        (["--col", "ai=a", "--col", "bi=A"], "--col ai= and --col bi= name the same column 'a'"),
        (["--col", "aa=a"], "argument --col: unknown input 'aa'; inputs are: m1i, sd1i"),
        (["--col", "ai"], "argument --col: expected NAME=COLUMN"),
    ],
)
def test_col_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], col: list[str], message: str
) -> None:
    path = _write(tmp_path, "study,a,b\nX,1,2\n")
    if "argument" in message:  # argparse's errors, on one line too
        with pytest.raises(SystemExit) as exc:
            main(["pool", path, "--measure", "OR", *col])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("ketameta: error: ")
        assert err.count("\n") == 1
        assert "(see ketameta pool --help)" in err
    else:
        err = _fails(["pool", path, "--measure", "OR", *col], capsys)
    assert message in err


def test_missing_columns_list_what_the_file_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "study,ai,n_treated,ci\nX,1,10,2\n")
    err = _fails(["pool", path, "--measure", "OR"], capsys)
    assert (
        "--measure OR needs columns ai, bi, ci, di (or ai, n1i, ci, n2i); missing: bi, di" in err
    )
    assert (
        "The file has columns: study, ai, n_treated, ci (map a column with --col bi=COLUMN)" in err
    )
    path = _write(tmp_path, "study,yi,vi\nX,1,2\n")
    err = _fails(["pool", path, "--measure", "OR"], capsys)
    assert "effects already computed (yi) are read without --measure" in err
    path = _write(tmp_path, "study,yi,n\nX,1,2\n")
    err = _fails(["pool", path], capsys)
    assert "column 'yi' needs 'vi' or 'sei' beside it" in err
    assert "The file has columns: study, yi, n" in err


def test_the_alternative_columns_of_a_measure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # OR from events and group sizes; with both sets in the file the cells are used and
    # the sizes noted as unused (escalc refuses both at once)
    text = "ai,n1i,ci,n2i\n" + "".join(
        f"{a},{n1},{c},{n2}\n"
        for a, n1, c, n2 in zip(CELLS["ai"], N1, CELLS["ci"], N2, strict=True)
    )
    expected = ketameta.pool(ketameta.escalc("OR", **CELLS))
    data, _ = _json(["pool", _write(tmp_path, text), "--measure", "OR"], capsys)
    _same(data, expected)
    text = "ai,bi,ci,di,n1i,n2i\n" + "".join(
        f"{a},{b},{c},{d},{n1},{n2}\n"
        for a, b, c, d, n1, n2 in zip(*CELLS.values(), N1, N2, strict=True)
    )
    data, err = _json(["pool", _write(tmp_path, text), "--measure", "OR"], capsys)
    _same(data, expected)
    assert "columns not used: n1i, n2i" in err
    # Cronbach's alpha needs `mi` (the number of items), a name the command did not know
    alpha = {"ai": [0.81, 0.75, 0.9], "mi": [10, 8, 12], "ni": [120, 80, 200]}
    text = "ai,mi,ni\n" + "".join(
        f"{a},{m},{n}\n" for a, m, n in zip(*alpha.values(), strict=True)
    )
    data, _ = _json(["pool", _write(tmp_path, text), "--measure", "ARAW"], capsys)
    _same(data, ketameta.pool(ketameta.escalc("ARAW", **alpha)))


# -- effects given with confidence limits ----------------------------------------------------


def _hr_file(tmp_path: Path, rows: list[tuple[float, float, float]] = HR) -> str:
    text = "study,HR,lower,upper\n" + "".join(
        f"S{i},{e},{lo},{hi}\n" for i, (e, lo, hi) in enumerate(rows)
    )
    return _write(tmp_path, text)


CI = ["--col", "yi=HR", "--ci-lower", "lower", "--ci-upper", "upper"]


def test_ratios_with_confidence_limits_are_log_transformed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    est, lo, hi = (list(x) for x in zip(*HR, strict=True))
    yi = [math.log(e) for e in est]
    sei = convert.se_from_ci(lo, hi, log=True)
    # log(upper/lower) / (2 * 1.959964): the SE of the log hazard ratio
    assert float(sei[0]) == pytest.approx(math.log(1.05 / 0.61) / (2 * 1.959963984540054))
    path = _hr_file(tmp_path)
    data, _ = _json(["pool", path, "--measure", "HR", *CI, "--method", "DL"], capsys)
    _same(data, ketameta.pool(yi, sei=sei, method="DL"))
    # 90% intervals: a smaller z, larger standard errors
    sei90 = convert.se_from_ci(lo, hi, log=True, level=0.9)
    data, _ = _json(["pool", path, "--measure", "HR", *CI, "--ci-level", "0.9"], capsys)
    _same(data, ketameta.pool(yi, sei=sei90))
    # the same numbers through egger and metareg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.SmallSampleWarning)  # (k = 4)
        egger = ketameta.egger_test(yi, sei=sei)
    data, _ = _json(["egger", path, "--measure", "HR", *CI], capsys)
    assert data["statistic"] == pytest.approx(egger.statistic, rel=1e-12)


def test_effects_on_their_own_scale_with_confidence_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # mean differences (and log ratios without --measure) are used as given
    rows = [(-1.2, -2.5, 0.1), (-0.4, -1.1, 0.3), (-2.0, -3.9, -0.1)]
    path = _hr_file(tmp_path, rows)
    est, lo, hi = (list(x) for x in zip(*rows, strict=True))
    expected = ketameta.pool(est, sei=convert.se_from_ci(lo, hi))
    for measure in (["--measure", "MD"], []):
        data, _ = _json(["pool", path, *measure, *CI], capsys)
        _same(data, expected)


def test_a_missing_limit_leaves_the_study_out_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "study,HR,lower,upper\nA,0.8,0.61,1.05\nB,0.72,,0.94\nC,1.1,0.8,1.51\nD,0.91,0.77,1.08\n"
    )
    data, err = _json(["pool", _write(tmp_path, text), "--measure", "HR", *CI], capsys)
    kept = [HR[0], HR[2], HR[3]]
    yi = [math.log(e) for e, _, _ in kept]
    sei = convert.se_from_ci([r[1] for r in kept], [r[2] for r in kept], log=True)
    _same(data, ketameta.pool(yi, sei=sei))
    assert "line 3 has a missing value and was left out" in err


@pytest.mark.parametrize(
    ("row", "measure", "message"),
    [
        (
            (1.2, 0.61, 1.05),
            "HR",
            "line 3: the estimate 1.2 is not inside its confidence interval",
        ),
        ((0.8, 1.05, 0.61), "HR", "line 3: the lower limit 1.05 is above the upper limit 0.61"),
        ((0.8, 0.8, 0.8), "HR", "line 3: the confidence interval [0.8, 0.8] has no width"),
        ((-0.2, -0.5, 0.05), "OR", "line 3, column 'HR' (yi): -0.2 is not a ratio"),
        ((0.8, -0.5, 1.05), "OR", "line 3, column 'lower': -0.5 is not a ratio"),
        ((0.8, 0.0, 1.05), "RR", "line 3, column 'lower': 0 is not a ratio"),
        ((-0.2, 0.1, 0.05), None, "the lower limit 0.1 is above the upper limit 0.05"),
        ((-0.2, -0.1, 0.05), None, "the estimate -0.2 is not inside its confidence interval"),
    ],
)
def test_intervals_not_around_their_estimate_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    row: tuple[float, float, float],
    measure: str | None,
    message: str,
) -> None:
    path = _hr_file(tmp_path, [HR[0], row, HR[1]])
    measure_args = ["--measure", measure] if measure else []
    assert message in _fails(["pool", path, *measure_args, *CI], capsys)


def test_confidence_limit_options_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _hr_file(tmp_path)
    err = _fails(["pool", path, "--measure", "HR"], capsys)
    assert "--measure HR is read from estimates with confidence limits" in err
    err = _fails(["pool", path, "--ci-lower", "lower", "--col", "yi=HR"], capsys)
    assert "--ci-lower and --ci-upper go together" in err
    err = _fails(["pool", path, "--ci-level", "0.9"], capsys)
    assert "cannot use --ci-level (used only with --ci-lower/--ci-upper)" in err
    err = _fails(["pool", path, "--ci-lower", "lower", "--ci-upper", "upper"], capsys)
    assert "--ci-lower/--ci-upper need the estimates too: a column 'yi', or --col yi=COLUMN" in err
    err = _fails(["pool", path, *CI[:2], "--ci-lower", "lo", "--ci-upper", "upper"], capsys)
    assert "no column 'lo' (--ci-lower) (the file has columns: study, HR, lower, upper)" in err
    err = _fails(["pool", path, "--measure", "ZCOR", *CI], capsys)
    assert "give the estimate and limits on the analysis scale and leave out --measure" in err


# -- meta-regression --------------------------------------------------------------------------

BCG = ketameta.datasets.bcg()


def _bcg_file(tmp_path: Path) -> str:
    names = ["author", "year", "tpos", "tneg", "cpos", "cneg", "ablat", "alloc"]
    rows = zip(*(BCG[n] for n in names), strict=True)
    text = "Author,Year,tpos,tneg,cpos,cneg,Ablat,alloc\n"
    text += "".join(
        ",".join(f'"{x}"' if isinstance(x, str) else str(x) for x in r) + "\n" for r in rows
    )
    return _write(tmp_path, text, "bcg.csv")


BCG_COLS = ["--measure", "RR", "--col", "ai=tpos", "--col", "bi=tneg", "--col", "ci=cpos"]
BCG_COLS += ["--col", "di=cneg"]


def test_metareg_on_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    es = ketameta.escalc("RR", data=BCG, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    expected = ketameta.metareg(es, mods=["ablat", "alloc"], data=BCG)
    path = _bcg_file(tmp_path)
    data, err = _json(["metareg", path, *BCG_COLS, "--mods", "ablat, alloc"], capsys)
    assert data["coef"] == pytest.approx(list(expected.coef), rel=1e-10)
    assert data["names"] == ["intrcpt", "Ablat", "allocrandom", "allocsystematic"]
    assert data["qm"] == pytest.approx(expected.qm, rel=1e-10)
    assert "column not used: Year" in err
    assert main(["metareg", path, *BCG_COLS, "--mods", "ablat"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Mixed-Effects Model (k = 13; tau^2 estimator: REML")
    assert "Ablat " in out


def test_metareg_on_a_formula_with_btt_and_knha(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("formulaic")
    es = ketameta.escalc("RR", data=BCG, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    data_ = {**BCG, "Ablat": BCG["ablat"]}
    expected = ketameta.metareg(
        es, mods="~ Ablat + C(alloc)", data=data_, test="knha", method="DL", btt=["Ablat"]
    )
    argv = ["metareg", _bcg_file(tmp_path), *BCG_COLS, "--mods", "~ Ablat + C(alloc)"]
    data, _ = _json([*argv, "--test", "knha", "--method", "DL", "--btt", "Ablat"], capsys)
    assert data["coef"] == pytest.approx(list(expected.coef), rel=1e-10)
    assert data["qm"] == pytest.approx(expected.qm, rel=1e-10)
    assert data["qm_df"] == 1
    assert data["df"] == 9  # the F test of Knapp-Hartung: F(1, 9)
    # errors of the formula or the test are one line
    err = _fails(["metareg", argv[1], *BCG_COLS, "--mods", "~ Ablat +"], capsys)
    assert "cannot parse the formula '~ Ablat +'" in err
    assert "\x1b" not in err
    err = _fails([*argv, "--btt", "7"], capsys)
    assert "`btt`" in err


def test_metareg_moderator_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _bcg_file(tmp_path)
    err = _fails(["metareg", path, *BCG_COLS, "--mods", "latitude"], capsys)
    assert "no column 'latitude' (--mods) (the file has columns: Author, Year" in err
    err = _fails(["metareg", path, *BCG_COLS, "--mods", "ablat,,year"], capsys)
    assert "expected column names separated by commas" in err


# -- options a command cannot use; subgroups --------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "mh", "--method", "DL"], "cannot use --method with --model mh (no tau^2"),
        (["--model", "peto", "--test", "knha"], "cannot use --test with --model peto"),
        (["--model", "glmm", "--method", "DL"], "--model glmm (it takes --method ML or EE)"),
        (["--model", "mh", *CI], "cannot use --ci-lower, --ci-upper with --model mh"),
        (["--model", "glmm", "--forest", "f.png"], "cannot use --forest with --model glmm"),
    ],
)
def test_options_the_cell_models_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    path = _write(tmp_path, "ai,bi,ci,di\n4,119,11,128\n6,300,29,274\n")
    assert message in _fails(["pool", path, "--measure", "OR", *argv], capsys)


def test_pool_by_a_column_in_another_case_with_confidence_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "study,HR,lower,upper,Region\n" + "".join(
        f"S{i},{e},{lo},{hi},{'north' if i % 2 else 'south'}\n" for i, (e, lo, hi) in enumerate(HR)
    )
    path = _write(tmp_path, text)
    est, lo, hi = (list(x) for x in zip(*HR, strict=True))
    yi = [math.log(e) for e in est]
    sei = convert.se_from_ci(lo, hi, log=True)
    groups = ["south", "north", "south", "north"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.SmallSampleWarning)
        expected = ketameta.subgroups(yi, sei=sei, groups=groups, method="EE")
    data, err = _json(
        ["pool", path, "--measure", "HR", *CI, "--by", "region", "--method", "EE"], capsys
    )
    assert data["q_between"] == pytest.approx(expected.q_between, rel=1e-12)
    assert "not used" not in err


# -- missing optional dependencies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pool", "{path}", "--forest", "f.png"], "--forest needs matplotlib"),
        (["funnel", "{path}", "-o", "f.png"], "funnel needs matplotlib"),
        (["crps", "--forest", "plots"], "--forest needs matplotlib"),
    ],
)
def test_a_missing_matplotlib_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    path = _write(tmp_path, "yi,vi\n0.1,0.01\n0.3,0.02\n0.2,0.03\n")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails, as when absent
    monkeypatch.chdir(tmp_path)
    err = _fails([a.replace("{path}", path) for a in argv], capsys)
    assert f"{message}: pip install 'ketameta[plot]'" in err
    assert not (tmp_path / "plots").exists()


def test_a_missing_formulaic_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "formulaic", None)
    err = _fails(["metareg", _bcg_file(tmp_path), *BCG_COLS, "--mods", "~ ablat"], capsys)
    assert "a formula in --mods needs formulaic: pip install 'ketameta[formula]'" in err


# -- the detection never misreads a number ------------------------------------------------------

_DIALECTS = [(",", "."), (";", ","), (";", "."), ("\t", ","), ("\t", "."), ("|", ".")]


@given(
    numbers=st.lists(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=64)
            | st.integers(-(10**7), 10**7),
            min_size=2,
            max_size=4,
        ),
        min_size=1,
        max_size=6,
    ),
    dialect=st.sampled_from(_DIALECTS),
    quote=st.booleans(),
)
def test_detected_dialects_read_every_number_exactly_or_refuse(
    numbers: list[list[float]], dialect: tuple[str, str], quote: bool
) -> None:
    # any table of numbers written as a spreadsheet writes it (separator, decimal mark,
    # optionally quoted) reads back exactly, or the file is refused as ambiguous (integers
    # that look like thousands groups, e.g. 1,234); a number is never misread
    from ketameta._csvinput import UsageError, numeric_column, print_notes, read_table

    width = min(len(row) for row in numbers)
    rows = [row[:width] for row in numbers]
    sep, mark = dialect

    def cell(x: float) -> str:
        text = repr(x) if isinstance(x, float) else str(x)
        text = text.replace(".", mark)
        return f'"{text}"' if quote or (sep == "," and mark == ",") else text

    names = [f"c{j}" for j in range(width)]
    text = sep.join(names) + "\n" + "".join(sep.join(map(cell, r)) + "\n" for r in rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(text, encoding="utf-8")
        decimal = "," if sep == "," and mark == "," else None  # never detected there
        refused: UsageError | None = None
        try:
            table = read_table(str(path), decimal=decimal)
        except UsageError as exc:
            refused = exc
        finally:
            print_notes(discard=True)
        if refused is not None:
            assert "thousands separator or a decimal mark" in str(refused)
            return
        for j, name in enumerate(names):
            assert numeric_column(table, name) == [float(r[j]) for r in rows]
