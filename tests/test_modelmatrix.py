"""Design matrices from ``mods`` (``ketameta._modelmatrix``) against R and metafor.

The reference is ``tests/reference/metafor_modelmatrix.json``, written by
``validation/metafor/make_modelmatrix_reference.R`` (metafor 3.8-1, R 4.2): for each case,
R's full ``model.matrix`` (``na.action = na.pass``) and metafor's ``res$X`` with its column
names, the studies it keeps (``not.na``), the columns it drops as redundant (``coef.na``),
whether it treats a column as the intercept (``int.incl``) and its warnings.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketameta._modelmatrix import (
    INTERCEPT,
    ModelMatrix,
    check_coefficients,
    constant_columns,
    drop_redundant,
    model_matrix,
)

from .conftest import load_reference

REFERENCE = load_reference("metafor_modelmatrix.json")
# the values are the data's own (sums, products, exp, sqrt of them): R and NumPy agree to
# the last bits
RTOL = 1e-13


def _list(value: Any) -> list[Any]:
    """jsonlite writes a length-1 vector as a scalar and NULL as null."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _matrix(rows: Any, p: int) -> np.ndarray:
    out = [[np.nan if v is None else float(v) for v in _list(r)] for r in _list(rows)]
    return np.array(out, dtype=float).reshape(-1, p)


def _frame(name: str) -> pd.DataFrame:
    """A dataset of the reference as pandas holds it (nullable dtypes where R has NA)."""
    cols = {}
    for key, col in REFERENCE["data"][name].items():
        values = _list(col["values"])
        kind = col["type"]
        if kind == "factor":
            cols[key] = pd.Categorical(values, categories=_list(col["levels"]))
        elif kind == "logical":
            cols[key] = pd.array(values, dtype="boolean")
        elif kind == "character":
            cols[key] = pd.array(values, dtype="string")
        elif kind == "integer":
            cols[key] = pd.array(values, dtype="Int64")
        else:
            cols[key] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return pd.DataFrame(cols)


FRAMES = {name: _frame(name) for name in REFERENCE["data"]}


def _variants(case: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(label, mods, data) for each ketameta input equivalent to the R call."""
    frame = FRAMES[case["data"]]
    out: list[tuple[str, Any, Any]] = []
    for f in _list(case.get("py_formula")):
        out.append((f"formula {f}", f, frame))
    cols = _list(case.get("py_columns"))
    if cols:
        out.append(("DataFrame", frame[cols], None))
        # lists (a factor's level order needs a Categorical: a list of strings is sorted)
        mapping = {
            c: frame[c].array if frame[c].dtype == "category" else frame[c].tolist() for c in cols
        }
        out.append(("mapping of lists", mapping, None))
        out.append(("column names", cols, frame))
    arr = _list(case.get("py_array"))
    if arr:
        values = np.column_stack([frame[c].to_numpy(dtype=float) for c in arr])
        out.append(("array", values[:, 0] if len(arr) == 1 else values, None))
    return out


CASES = [
    pytest.param(case, label, mods, data, id=f"{case['id']}: {label}")
    for case in REFERENCE["cases"]
    for label, mods, data in _variants(case)
]


def _kept_rows(case: dict[str, Any], mm: ModelMatrix) -> np.ndarray:
    yi = FRAMES[case["data"]]["yi"].to_numpy(dtype=float)
    ok = ~np.isnan(yi)
    ok[list(mm.missing)] = False
    return np.flatnonzero(ok)


@pytest.mark.parametrize(("case", "label", "mods", "data"), CASES)
def test_design_matches_r(case: dict[str, Any], label: str, mods: Any, data: Any) -> None:
    """Names and values of the full design (R's model.matrix) and of metafor's X after it
    removes studies and redundant columns, for every equivalent input."""
    k = len(FRAMES[case["data"]])
    mm = model_matrix(mods, data=data, intercept=case["intercept"], k=k)
    full_names = _list(case["full_names"])
    assert mm.names == tuple(full_names)
    np.testing.assert_allclose(mm.x, _matrix(case["full_x"], len(full_names)), rtol=RTOL)
    assert not mm.x.flags.writeable
    rows = _kept_rows(case, mm)
    reduced, dropped = mm.reduce(rows)
    if "error" in case:  # metafor: "Number of parameters ... larger than ... observations"
        with pytest.raises(ValueError, match="coefficients but only"):
            check_coefficients(reduced.p, rows.size)
        return
    assert rows.tolist() == _list(case["rows"])
    r_names = _list(case["names"])
    if label == "array" and (not r_names or "" in r_names):
        # metafor 3.8 leaves unnamed matrix columns without names when intercept=FALSE
        # (and an empty name beside an intercept made of a ones column); ketameta keeps
        # the names of the full design, as R gives them with an intercept (".1", ".2")
        r_names = [INTERCEPT if j < 0 else full_names[j] for j in reduced.columns]
    assert reduced.names == tuple(r_names)
    np.testing.assert_allclose(reduced.x[rows], _matrix(case["x"], len(r_names)), rtol=RTOL)
    assert dropped == tuple(_list(case["dropped"]))
    assert bool(dropped) == ("Redundant predictors dropped from the model." in case["warnings"])
    assert reduced.intercept is bool(case["int_incl"])
    check_coefficients(reduced.p, rows.size)


@pytest.mark.parametrize(("case", "label", "mods", "data"), CASES)
def test_new_rows_of_the_training_data(
    case: dict[str, Any], label: str, mods: Any, data: Any
) -> None:
    """``new_rows`` on the data the matrix was built from gives its rows back (predict)."""
    frame = FRAMES[case["data"]]
    k = len(frame)
    mm = model_matrix(mods, data=data, intercept=case["intercept"], k=k)
    rows = _kept_rows(case, mm)
    reduced, _ = mm.reduce(rows)
    for m in (mm, reduced):
        if label.startswith("formula") or label == "column names":
            new = m.new_rows(frame.iloc[rows])
        elif label == "array":
            new = m.new_rows(np.asarray(m.x[rows])[:, 1:] if m.intercept else m.x[rows])
        else:
            new = m.new_rows({key: np.asarray(v)[rows] for key, v in dict(mods).items()})
        np.testing.assert_array_equal(new, m.x[rows])


# ---- inputs of every kind ----------------------------------------------------------------

ABLAT = [44.0, 55.0, 42.0, 52.0, 13.0, 44.0, 19.0, 13.0, 27.0, 42.0, 18.0, 33.0, 33.0]


@pytest.mark.parametrize(
    "mods",
    [
        ABLAT,
        tuple(ABLAT),
        np.array(ABLAT),
        np.array(ABLAT, dtype=np.int32),
        [np.float32(v) for v in ABLAT],
        [np.int64(v) for v in ABLAT],
        pd.Series(ABLAT),
        pd.Series(ABLAT, dtype="Int64"),
        pd.Series(ABLAT, dtype="Float64"),
        np.array(ABLAT).reshape(-1, 1),
        [[v] for v in ABLAT],
    ],
    ids=lambda m: type(m).__name__,
)
def test_vector_inputs(mods: Any) -> None:
    mm = model_matrix(mods, k=13)
    assert mm.names == ("intrcpt", "mods")
    np.testing.assert_array_equal(mm.x, np.column_stack([np.ones(13), ABLAT]))
    assert mm.x.dtype == np.float64
    assert mm.missing == ()


def test_missing_values_in_every_form() -> None:
    """None, NaN, masked entries and pandas NA are missing (listed, NaN in x)."""
    expected = np.array(ABLAT)
    expected[[1, 4]] = np.nan
    masked = np.ma.masked_array(ABLAT, mask=[i in (1, 4) for i in range(13)])
    forms = [
        [None if i in (1, 4) else v for i, v in enumerate(ABLAT)],
        expected.tolist(),
        masked,
        pd.Series(expected).astype("Float64"),
        pd.Series([pd.NA if i in (1, 4) else int(v) for i, v in enumerate(ABLAT)], dtype="Int64"),
    ]
    for form in forms:
        mm = model_matrix(form, k=13)
        assert mm.missing == (1, 4)
        np.testing.assert_array_equal(mm.x[:, 1], expected)
        assert mm.x[1, 0] == 1.0  # only the columns that use the moderator are NaN
        mm2 = model_matrix({"ablat": form}, k=13)
        assert mm2.missing == (1, 4)
        np.testing.assert_array_equal(mm2.x[:, 1], expected)


def test_factor_columns_in_every_form() -> None:
    """str, object, pandas string/str, Categorical and bool columns are factors."""
    g = ["b", "a", "c", None, "a", "b"]
    want = np.array(
        [[1, 1, 0], [1, 0, 0], [1, 0, 1], [1, np.nan, np.nan], [1, 0, 0], [1, 1, 0]], float
    )
    forms = [
        g,
        np.array(g, dtype=object),
        pd.Series(g, dtype="string"),
        pd.Series(g, dtype="str"),
        pd.Categorical(g),
        pd.Series(pd.Categorical(g)),
    ]
    for form in forms:
        mm = model_matrix({"g": form}, k=6)
        assert mm.names == ("intrcpt", "gb", "gc")
        np.testing.assert_array_equal(mm.x, want)
        assert mm.missing == (3,)
    for form in ([True, False, None, True], pd.array([True, False, None, True], "boolean")):
        mm = model_matrix({"flag": form}, k=4)
        assert mm.names == ("intrcpt", "flagTRUE")
        np.testing.assert_array_equal(mm.x[:, 1], [1, 0, np.nan, 1])
    mm = model_matrix({"flag": np.array([True, False, False])}, intercept=False, k=3)
    assert mm.names == ("flagFALSE", "flagTRUE")


def test_levels_sorted_by_code_point_or_kept_from_a_categorical() -> None:
    """R sorts strings by its locale's collation; ketameta by code point (R's C locale).
    A Categorical keeps its order, unused levels included, as an R factor keeps its levels."""
    mm = model_matrix({"g": ["b", "B", "a", "_x"]}, k=4)
    assert mm.names == ("intrcpt", "g_x", "ga", "gb")  # B (66) < _ (95) < a (97) < b
    cat = pd.Categorical(["lo", "hi", "lo"], categories=["hi", "lo", "mid"])
    mm = model_matrix({"f": cat}, k=3)
    assert mm.names == ("intrcpt", "flo", "fmid")
    _, dropped = mm.reduce(np.arange(3))
    assert dropped == ("fmid",)  # the unused level's all-zero column
    cat_num = pd.Categorical([2.5, 10.0, 2.5])
    assert model_matrix({"d": cat_num}, k=3).names == ("intrcpt", "d10")


def test_series_name_and_unnamed_columns() -> None:
    assert model_matrix(pd.Series(ABLAT, name="ablat"), k=13).names == ("intrcpt", "ablat")
    arr = np.column_stack([ABLAT, ABLAT[::-1], np.arange(13)])
    assert model_matrix(arr, k=13).names == ("intrcpt", ".1", ".2", ".3")
    assert model_matrix(arr, intercept=False, k=13).names == (".1", ".2", ".3")


def test_inputs_are_not_modified() -> None:
    frame = FRAMES["syn"]
    before = frame.copy(deep=True)
    arr = np.array(ABLAT)
    arr_before = arr.copy()
    mapping = {"x": [1.0, None, 3.0, 4.0], "g": ["a", "b", None, "a"]}
    mapping_before = copy.deepcopy(mapping)
    masked = np.ma.masked_array(ABLAT, mask=[i == 2 for i in range(13)])
    masked_before = masked.copy()
    mm = model_matrix("~ x * g + C(n) + b", data=frame, k=12)
    model_matrix(["x", "g", "f", "b"], data=frame, k=12)
    model_matrix(frame[["x", "g", "f", "b", "n"]], k=12)
    m1 = model_matrix(arr, k=13)
    model_matrix(mapping, k=4)
    model_matrix(masked, k=13)
    mm.new_rows(frame.iloc[:3])
    pd.testing.assert_frame_equal(frame, before)
    np.testing.assert_array_equal(arr, arr_before)
    assert mapping == mapping_before
    assert masked.mask.tolist() == masked_before.mask.tolist()
    assert not np.shares_memory(m1.x, arr)
    with pytest.raises(ValueError, match="read-only"):
        m1.x[0, 0] = 5.0


# ---- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mods", "kwargs", "error", "match"),
    [
        (ABLAT[:12], {}, ValueError, r"`mods` has 12 rows but there are 13 studies"),
        ({"ablat": ABLAT[:12]}, {}, ValueError, r"column 'ablat' has 12 rows but there are 13"),
        ([*ABLAT[:3], "x", *ABLAT[4:]], {}, TypeError, r"`mods` must be numeric \(study 3\)"),
        (
            np.array([[1.0, "a"]] * 13, dtype=object),
            {},
            TypeError,
            r"`mods` must be numeric \(study 0, column 1\)",
        ),
        ([*ABLAT[:5], np.inf, *ABLAT[6:]], {}, ValueError, r"finite .* study 5 has mods=inf"),
        ({"a": [*ABLAT[:5], -np.inf, *ABLAT[6:]]}, {}, ValueError, r"study 5 has a=-inf"),
        ({"g": ["a"] * 13}, {}, ValueError, r"factor 'g' has 1 level \('a'\)"),
        ([np.nan] * 13, {}, ValueError, r"missing for every study"),
        ({"a": [None] * 13}, {}, ValueError, r"'a' is missing for every study"),
        (
            {"g": ["a", 1.0, *["b"] * 11]},
            {},
            TypeError,
            r"column 'g' mixes strings and numbers \(study 0: 'a'; study 1: 1.0\)",
        ),
        (np.ones((13, 2, 2)), {}, ValueError, r"1- or 2-dimensional"),
        (np.ones((13, 0)), {}, ValueError, r"no columns"),
        ("ablat", {}, ValueError, r"neither a formula .* nor a column of `data`"),
        (["ablat"], {}, TypeError, r"list of strings: .* pass `data=`"),
        (ABLAT, {"data": {"x": ABLAT}}, TypeError, r"`data` is only used with a formula"),
        (["ablat", "nope"], {"data": {"ablat": ABLAT}}, ValueError, r"column 'nope'"),
        (None, {}, TypeError, r"`mods` is required"),
        (ABLAT, {"intercept": 1}, TypeError, r"`intercept` must be True or False"),
        ([1 + 2j] * 13, {}, TypeError, r"real-valued"),
    ],
)
def test_bad_input_is_named(mods: Any, kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        model_matrix(mods, k=13, **kwargs)


BCG = FRAMES["bcg"]


@pytest.mark.parametrize(
    ("formula", "kwargs", "error", "match"),
    [
        ("~ I(year^2)", {}, ValueError, r"bitwise XOR.*I\(year\*\*2\)"),
        ("~ ablat", {"intercept": False}, ValueError, r"contradicts the formula.*'~ 0 \+"),
        ("yi ~ ablat", {}, ValueError, r"one-sided formula"),
        ("~ ablat | year", {}, ValueError, r"one-sided formula"),
        ("~ 0", {}, ValueError, r"has no terms"),
        ("~ 1", {}, ValueError, r"only an intercept"),
        ("~ nope", {}, ValueError, r"could not be evaluated"),
        ("~ np.log(ablat - 13)", {}, ValueError, r"log\(ablat - 13\)=-inf"),
        ("~ C(alloc, contr.sum)", {}, ValueError, r"treatment contrasts"),
        ("~ ablat", {"data": None}, TypeError, r"needs `data`"),
        ("~ ablat", {"data": BCG.iloc[:12]}, ValueError, r"`data` has 12 rows but there are 13"),
        ("~ C(one)", {"data": BCG.assign(one=1)}, ValueError, r"factor\(one\) has 1 level"),
        ("~ ablat + allna", {"data": BCG.assign(allna=np.nan)}, ValueError, r"every study"),
        ("~ ablat + ", {}, ValueError, r"cannot parse"),
    ],
)
def test_bad_formula_is_named(
    formula: str, kwargs: dict[str, Any], error: type, match: str
) -> None:
    kwargs.setdefault("data", BCG)
    with pytest.raises(error, match=match):
        model_matrix(formula, k=13, **kwargs)


def test_a_nan_made_by_the_formula_is_missing() -> None:
    """log(-1) is NaN (as R: a missing value, omitted by the caller), with no NumPy warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mm = model_matrix("~ np.log(ablat - 14)", data=BCG, k=13)
    assert mm.missing == (4, 7)  # ablat 13 in studies 4 and 7
    assert mm.names == ("intrcpt", "log(ablat - 14)")


def test_new_rows() -> None:
    mm = model_matrix("~ ablat + C(alloc) + I(ablat > 30)", data=BCG, k=13)
    new = mm.new_rows({"ablat": [20.0, 40.0], "alloc": ["random", "systematic"]})
    np.testing.assert_array_equal(new, [[1, 20, 1, 0, 0], [1, 40, 0, 1, 1]])
    np.testing.assert_array_equal(
        mm.new_rows(data=pd.DataFrame({"ablat": [50], "alloc": ["alternate"]})),
        [[1, 50, 0, 0, 1]],
    )
    np.testing.assert_array_equal(
        mm.new_rows({"ablat": 35, "alloc": "systematic"}), [[1, 35, 0, 1, 1]]
    )
    with pytest.raises(ValueError, match=r"not one of the levels"):
        mm.new_rows({"ablat": [20.0], "alloc": ["quasi"]})
    with pytest.raises(ValueError, match=r"not one of the levels"):
        model_matrix("~ C(year)", data=BCG, k=13).new_rows({"year": [1950]})
    with pytest.raises(ValueError, match=r"has no column 'alloc'"):
        mm.new_rows({"ablat": [20.0]})
    # positional: the columns without the intercept, or all of them
    np.testing.assert_array_equal(mm.new_rows([[20, 1, 0, 0]]), [[1, 20, 1, 0, 0]])
    np.testing.assert_array_equal(mm.new_rows([[1, 20, 1, 0, 0]]), [[1, 20, 1, 0, 0]])
    named = {"ablat": [20], "factor(alloc)random": [1], "factor(alloc)systematic": [0]}
    np.testing.assert_array_equal(
        mm.new_rows({**named, "I(ablat > 30)TRUE": [0]}), [[1, 20, 1, 0, 0]]
    )
    with pytest.raises(ValueError, match=r"3 columns but the model needs 4 .* or 5"):
        mm.new_rows([[20, 1, 0]])
    one = model_matrix(ABLAT, k=13)
    np.testing.assert_array_equal(one.new_rows([10, 20, 30])[:, 1], [10, 20, 30])
    np.testing.assert_array_equal(one.new_rows({"mods": [10, 20]})[:, 1], [10, 20])
    cols = model_matrix({"ablat": ABLAT, "alloc": BCG["alloc"]}, k=13)
    np.testing.assert_array_equal(
        cols.new_rows(pd.DataFrame({"ablat": [1.0], "alloc": ["random"]})), [[1, 1, 1, 0]]
    )
    with pytest.raises(ValueError, match=r"not one of the levels"):
        cols.new_rows({"ablat": [1.0], "alloc": ["x"]})
    with pytest.raises(ValueError, match=r"must be finite"):
        one.new_rows([np.inf])


def test_formula_without_formulaic_raises_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "formulaic":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'ketameta\[formula\]'"):
        model_matrix("~ ablat", data=BCG, k=13)


def test_formula_names_as_r_deparses_them() -> None:
    """Python spellings map to what R prints for the same R formula (R 4.2 ``deparse``:
    ``I((x + 1)^2 - -x%%3/2 > 1)``, ``factor(g, levels = c("c", "b", "a"))``)."""
    data = {"x": [1.0, 2.0, 4.0, 3.0], "g": ["a", "b", "c", "a"], "y": [2.0, 1.0, 2.0, 0.0]}
    cases = {
        "~ I((x + 1)**2 - -x % 3 / 2 > 10)": "I((x + 1)^2 - -x%%3/2 > 10)TRUE",
        "~ C(g, levels=['c', 'b', 'a'])": 'factor(g, levels = c("c", "b", "a"))b',
        "~ I((x > 1) & ~(y == 2))": "I(x > 1 & !(y == 2))TRUE",
        "~ np.log10(x) + np.ceil(x / 2)": "log10(x)",
        "~ I(x // 2) + I(x * 1e-4) + I(x + 100000.0)": "I(x%/%2)",
        "~ {x ** 2}": "x^2",
        "~ poly(x, 2)": "poly(x, 2)1",
    }
    extra = {
        "~ np.log10(x) + np.ceil(x / 2)": "ceiling(x/2)",
        "~ I(x // 2) + I(x * 1e-4) + I(x + 100000.0)": "I(x * 1e-04)",
    }
    for formula, name in cases.items():
        names = model_matrix(formula, data=data, k=4).names
        assert names[1] == name, formula
        if formula in extra:
            assert names[2] == extra[formula]
    assert model_matrix("~ I(x + 100000.0)", data=data, k=4).names[1] == "I(x + 1e+05)"
    assert model_matrix("~ `a b`", data={"a b": [1.0, 2.0]}, k=2).names == (
        "intrcpt",
        "`a b`",
    )


def test_r_number_format() -> None:
    """Factor levels and constants as R's ``as.character`` prints doubles (R 4.2 output)."""
    from ketameta._modelmatrix import _r_double

    xs = [1e5, 123456, 1e-4, 0.001, 0.1 + 0.2, 1 / 3, 1e15, 123456789012, -1.5, 1e-300]
    xs += [2.5e-7, 1234567.1, 100, 0.5, 1e5 + 0.1, 3e10, 1948]
    r = ["1e+05", "123456", "1e-04", "0.001", "0.3", "0.333333333333333", "1e+15"]
    r += ["123456789012", "-1.5", "1e-300", "2.5e-07", "1234567.1", "100", "0.5"]
    r += ["100000.1", "3e+10", "1948"]
    assert [_r_double(float(x)) for x in xs] == r


# ---- redundancy: R's rule -------------------------------------------------------------


def test_drop_redundant_tolerance_is_lm_s() -> None:
    """A column is redundant when what is left of it after the earlier columns is below
    1e-7 of its norm (R's qr tol); ``near`` at 1e-9 in the reference is dropped by metafor."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=20), rng.normal(size=20)
    noise = rng.normal(size=20)
    noise -= np.column_stack([a, b]) @ np.linalg.lstsq(np.column_stack([a, b]), noise)[0]
    noise /= np.linalg.norm(noise)
    target = 2 * a - b
    for rel, dropped in ((0.5e-7, True), (2e-7, False)):
        c = target + rel * np.linalg.norm(target) * noise
        x, _, drop = drop_redundant(np.column_stack([a, b, c]), ("a", "b", "c"), np.arange(20))
        assert drop == (("c",) if dropped else ())
        assert x.shape == (20, 2 if dropped else 3)
    zero = np.column_stack([a, np.zeros(20), b])
    assert drop_redundant(zero, ("a", "z", "b"), np.arange(20))[2] == ("z",)


@given(
    st.lists(st.floats(-100, 100), min_size=3, max_size=3),
    st.integers(0, 3),
    st.sampled_from([1e-6, 1.0, 1e6]),
)
def test_a_linear_combination_is_dropped_and_nothing_else(
    coef: list[float], where: int, scale: float
) -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(15, 3)) * scale
    combo = base @ np.array(coef)
    if np.linalg.norm(combo) == 0:
        combo = base[:, 0].copy()
    x = np.insert(base, 3, combo, axis=1)
    names = ("a", "b", "c", "combo")
    out, kept, dropped = drop_redundant(x, names, np.arange(15))
    assert dropped == ("combo",)
    assert kept == ("a", "b", "c")
    np.testing.assert_array_equal(out, base)


def test_reduce_moves_a_ones_column_to_the_front() -> None:
    """metafor: a kept column within 1e-8 of 1 on the fitted studies is the intercept
    (|x - 1| < 1e-8: 1 + 0.99e-8 is, 1 + 1.01e-8 is not; checked in R 4.2/metafor 3.8-1)."""
    for delta, becomes in ((0.99e-8, True), (1.01e-8, False), (-0.99e-8, True)):
        one = np.ones(13)
        one[5] += delta
        mm = model_matrix({"ablat": ABLAT, "one": one}, intercept=False, k=13)
        red, dropped = mm.reduce(np.arange(13))
        assert dropped == ()
        assert red.intercept is becomes
        assert red.names == (("intrcpt", "ablat") if becomes else ("ablat", "one"))
        if becomes:
            assert np.all(red.x[:, 0] == 1.0)
            np.testing.assert_array_equal(red.new_rows([[10.0], [20.0]]), [[1, 10], [1, 20]])
            np.testing.assert_array_equal(
                red.new_rows({"ablat": [10.0], "one": [1.0]}), [[1.0, 10.0]]
            )
    # the ones column only has to be 1 on the studies fitted
    one = np.ones(13)
    one[2] = 0.0
    red, _ = model_matrix({"ablat": ABLAT, "one": one}, intercept=False, k=13).reduce(
        [i for i in range(13) if i != 2]
    )
    assert red.names == ("intrcpt", "ablat")


def test_helpers() -> None:
    x = np.column_stack([np.ones(4), [1.0, 2, 3, 4], [5.0, 5, 5, 5], [0.0, 1, 0, 0]])
    assert constant_columns(x, np.arange(4), intercept=True) == (2,)
    assert constant_columns(x, [0, 2, 3], intercept=True) == (2, 3)
    assert constant_columns(x, np.arange(4), intercept=False) == (0, 2)
    check_coefficients(3, 4)
    check_coefficients(4, 4, equal_effects=True)
    with pytest.raises(ValueError, match="4 coefficients but only 4 studies"):
        check_coefficients(4, 4)
    with pytest.raises(ValueError, match="at most as many"):
        check_coefficients(5, 4, equal_effects=True)


# ---- properties ------------------------------------------------------------------------


@st.composite
def _tables(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    k = draw(st.integers(4, 15))
    num = draw(st.lists(st.one_of(st.floats(-1e3, 1e3), st.none()), min_size=k, max_size=k))
    fac = draw(st.lists(st.sampled_from(["lo", "mid", "hi", None]), min_size=k, max_size=k))
    present = [v for v in fac if v is not None]
    if len(set(present)) < 2:
        fac[:2] = ["lo", "hi"]
    if all(v is None for v in num):
        num[0] = 1.0
    return {"num": num, "fac": fac}, k


@given(_tables(), st.randoms(use_true_random=False), st.booleans())
def test_rows_follow_the_studies(
    table: tuple[dict[str, Any], int], rnd: Any, intercept: bool
) -> None:
    """Permuting the studies permutes the rows of x (and `missing`), nothing else; new_rows
    of the training data gives x back."""
    data, k = table
    perm = list(range(k))
    rnd.shuffle(perm)
    mm = model_matrix(data, intercept=intercept, k=k)
    shuffled = {key: [v[i] for i in perm] for key, v in data.items()}
    mm2 = model_matrix(shuffled, intercept=intercept, k=k)
    assert mm2.names == mm.names
    np.testing.assert_array_equal(mm2.x, mm.x[perm])
    assert sorted(perm.index(i) for i in mm.missing) == list(mm2.missing)
    ok = [i for i in range(k) if i not in mm.missing]
    new = mm.new_rows({key: [v[i] for i in ok] for key, v in data.items()})
    np.testing.assert_array_equal(new, mm.x[ok])
    formula = model_matrix("~ num + fac" if intercept else "~ 0 + num + fac", data=data, k=k)
    assert formula.names == mm.names
    np.testing.assert_array_equal(formula.x, mm.x)


@given(_tables())
def test_shifting_a_moderator_changes_one_column(table: tuple[dict[str, Any], int]) -> None:
    data, k = table
    mm = model_matrix(data, k=k)
    shifted = dict(data, num=[None if v is None else v + 7.0 for v in data["num"]])
    mm2 = model_matrix(shifted, k=k)
    np.testing.assert_allclose(mm2.x[:, 1], mm.x[:, 1] + 7.0)
    np.testing.assert_array_equal(mm2.x[:, 2:], mm.x[:, 2:])


_ELEMENTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.sampled_from([np.float32(1.5), np.int64(3), np.bool_(True), pd.NA, np.nan]),
)


@given(st.lists(_ELEMENTS, min_size=1, max_size=8), st.booleans())
def test_any_column_gives_a_matrix_or_a_named_error(values: list[Any], intercept: bool) -> None:
    """Every kind of value in an array or a mapping column: a design, or a TypeError /
    ValueError naming `mods` (never another exception or a NumPy warning)."""
    k = len(values)
    for mods in (values, {"m": values}, pd.Series(values, dtype=object)):
        try:
            mm = model_matrix(mods, intercept=intercept, k=k)
        except (TypeError, ValueError) as exc:
            message = str(exc)
        else:
            message = ""
        if message:
            assert "`mods`" in message
            continue
        assert mm.x.shape[0] == k
        bad = set(mm.missing)
        assert all(np.isfinite(mm.x[i]).all() for i in range(k) if i not in bad)


def test_plain_float_arrays_take_the_short_path_to_the_same_matrix() -> None:
    """A plain float64 array is built without the generic conversion; the matrix (values,
    names, missing rows, columns, new rows) is the one of the same values as lists."""
    rng = np.random.default_rng(5)
    for arr in (rng.normal(size=6), rng.normal(size=(6, 1)), rng.normal(size=(6, 3))):
        for intercept in (True, False):
            fast = model_matrix(arr, k=6, intercept=intercept)
            slow = model_matrix(arr.tolist(), k=6, intercept=intercept)
            np.testing.assert_array_equal(fast.x, slow.x)
            assert not fast.x.flags.writeable
            assert not np.shares_memory(fast.x, arr)
            assert (fast.names, fast.missing, fast.columns, fast.intercept) == (
                slow.names,
                slow.missing,
                slow.columns,
                slow.intercept,
            )
            new = arr[:2].reshape(2, -1)
            np.testing.assert_array_equal(fast.new_rows(new), slow.new_rows(new.tolist()))
    # NaN and inf leave it for the general path's checks (huge values are no trouble)
    with_nan = np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0]])
    assert model_matrix(with_nan, k=3).missing == (1,)
    with pytest.raises(ValueError, match=r"study 2, column 0 has mods=inf"):
        model_matrix(np.array([[1.0, 2.0], [2.0, 1.0], [np.inf, 4.0]]), k=3)
    huge = model_matrix(np.array([1e308, 1e308, -1e308]), k=3)
    assert huge.missing == ()
    assert huge.x[:, 1].tolist() == [1e308, 1e308, -1e308]
    with pytest.raises(ValueError, match=r"`mods` has 2 rows but there are 3 studies"):
        model_matrix(np.array([1.0, 2.0]), k=3)
