"""``vcalc`` with time points, within-subject contrasts and correlation matrices.

Reference values: ``tests/reference/metafor_vcalc.json``, written by
``validation/metafor/make_vcalc_reference.R`` (metafor 3.8.1's ``vcalc``): ``time1``
with ``phi`` (positive, zero, negative, non-integer times), ``time2`` (within-subject
contrasts, with group sizes, with ``obs`` and ``type``), ``rho`` as a labelled matrix
(for ``obs``, for ``type``, and the within/between pair), on hand-made designs, the
examples of metafor's ``?vcalc`` (dat.ishak2007, dat.knapp2017, dat.kalaian1996) and six
seeded generated designs. The simpler cases (``obs``, ``type``, ``grp``, ``subgroup``)
are checked in ``test_multilevel.py`` against ``metafor_mv.json``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import ketameta

from .conftest import load_reference

REF = load_reference("metafor_vcalc.json")
CASES = REF["cases"]


def _rho(value: Any) -> Any:
    """A JSON rho as ketameta takes it: a matrix as a mapping {label: {label: r}}."""
    if isinstance(value, list):
        return [_rho(v) for v in value]
    if isinstance(value, dict):
        labels = value["labels"]
        return {
            a: dict(zip(labels, row, strict=True))
            for a, row in zip(labels, value["matrix"], strict=True)
        }
    return value


def _call(case: dict[str, Any], **extra: Any) -> Any:
    kwargs: dict[str, Any] = dict(case["args"])
    vi = kwargs.pop("vi")
    if case.get("rho") is not None:
        kwargs["rho"] = _rho(case["rho"])
    if case.get("phi") is not None:
        kwargs["phi"] = case["phi"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.DegenerateDataWarning)
        return ketameta.vcalc(vi, data=case["data"], **kwargs, **extra)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vcalc_matches_metafor(case: dict[str, Any]) -> None:
    expected = np.array(case["V"], dtype=float)
    got = _call(case)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14 * float(expected.max()))


@pytest.mark.parametrize("case", CASES[:12], ids=[c["id"] for c in CASES[:12]])
def test_sparse_is_dense(case: dict[str, Any]) -> None:
    np.testing.assert_array_equal(_call(case, sparse=True).toarray(), _call(case))


def test_within_subject_correlation_by_hand() -> None:
    # follow-ups at times 2 and 3 against baseline 1 in one group, equal sizes: the
    # contrasts' covariance is 1 - phi^2, their variances 2 - 2 phi and 2 - 2 phi^2
    phi = 0.5
    got = ketameta.vcalc(
        [1.0, 1.0],
        cluster=[1, 1],
        grp1=[1, 1],
        grp2=[1, 1],
        time1=[2, 3],
        time2=[1, 1],
        phi=phi,
    )
    r = (1 - phi**2) / math.sqrt((2 - 2 * phi) * (2 - 2 * phi**2))
    assert got[0, 1] == pytest.approx(r, rel=1e-15)
    assert got[0, 1] == pytest.approx(0.6123724356957945, rel=1e-15)  # metafor 3.8.1


def test_rho_matrix_as_dataframe_and_order() -> None:
    pd = pytest.importorskip("pandas")
    case = next(c for c in CASES if c["id"] == "rho matrix obs")
    labels = case["rho"]["labels"]
    mat = np.array(case["rho"]["matrix"])
    order = [2, 0, 1]  # the rows and columns in another order: labels decide
    frame = pd.DataFrame(mat[np.ix_(order, order)], index=[labels[i] for i in order])
    frame.columns = [labels[i] for i in order]
    with warnings.catch_warnings():  # (two effects with the same obs in one cluster)
        warnings.simplefilter("ignore", ketameta.DegenerateDataWarning)
        got = ketameta.vcalc("vi", cluster="cl", obs="obs", rho=frame, data=case["data"])
    np.testing.assert_allclose(got, np.array(case["V"]), rtol=1e-13)


def test_numeric_labels_match_r_names() -> None:
    # R names a matrix by strings ("1", "2"); numeric `type` values find them
    got = ketameta.vcalc(
        [1.0, 2.0, 3.0],
        cluster=[1, 1, 1],
        type=[1, 2, 3],
        rho={
            "1": {"1": 1.0, "2": 0.3, "3": 0.2},
            "2": {"1": 0.3, "2": 1.0, "3": 0.6},
            "3": {"1": 0.2, "2": 0.6, "3": 1.0},
        },
    )
    assert got[0, 1] == pytest.approx(0.3 * math.sqrt(2.0), rel=1e-15)
    assert got[1, 2] == pytest.approx(0.6 * math.sqrt(6.0), rel=1e-15)


# ---- the argument checks (metafor's, and where ketameta is stricter) -----------------------

BASE: dict[str, Any] = {"vi": [1.0, 2.0, 3.0], "cluster": [1, 1, 1]}
RMAT = {"a": {"a": 1.0, "b": 0.5}, "b": {"a": 0.5, "b": 1.0}}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"time2": [1, 1, 1], "grp1": [1, 1, 1], "grp2": [1, 1, 1], "phi": 0.5},
            TypeError,
            "`time2` needs `time1`",
        ),
        (
            {"time1": [1, 2, 3], "time2": [0, 0, 0], "phi": 0.5},
            TypeError,
            "`time2` needs `grp1` and `grp2`",
        ),
        ({"time1": [1, 2, 3]}, TypeError, "`phi` is required"),
        ({"time1": [1, 2, 3], "phi": 1.2}, ValueError, "`phi` must be a correlation"),
        ({"time1": [1, 2, 3], "phi": [0.5, 0.6]}, TypeError, "`phi` must be a number"),
        ({"time1": [1, 1.5, 3], "phi": -0.5}, ValueError, "negative, so the times"),
        ({"grp1": [1, 2, 3]}, TypeError, "give both `grp1` and `grp2`"),
        ({"grp1": [1, 2, 3], "grp2": [1, 4, 4]}, ValueError, "study 0 contrasts a condition"),
        (
            {
                "grp1": [1, 1, 1],
                "grp2": [1, 1, 1],
                "time1": [2, 3, 1],
                "time2": [1, 1, 1],
                "phi": 0.5,
            },
            ValueError,
            "study 2 contrasts a condition",
        ),
        ({"obs": ["a", "b", "c"], "rho": RMAT}, ValueError, "no row and column for the `obs`"),
        ({"obs": ["a", "b", "a"], "rho": np.eye(2)}, TypeError, "needs labels"),
        (
            {"obs": ["a", "b", "a"], "rho": {"a": {"a": 1.0, "b": 0.5}, "b": {"a": 0.4, "b": 1}}},
            ValueError,
            "symmetric",
        ),
        (
            {"obs": ["a", "b", "a"], "rho": {"a": {"a": 2.0, "b": 0.5}, "b": {"a": 0.5, "b": 1}}},
            ValueError,
            r"in \[-1, 1\]",
        ),
        (
            {"obs": ["a", "b", "a"], "rho": {"a": {"a": 0.9, "b": 0.5}, "b": {"a": 0.5, "b": 1}}},
            ValueError,
            "1 on its diagonal",
        ),
        ({"obs": ["a", "b", "a"], "rho": 1.5}, ValueError, "`rho` must be a correlation"),
        ({"obs": ["a", "b", "a"], "rho": [0.5, 0.3]}, ValueError, "only `obs`"),
        (
            {"obs": ["a", "b", "a"], "type": [1, 1, 2], "rho": 0.5},
            ValueError,
            "must give two correlations",
        ),
        (
            {"obs": ["a", "b", "a"], "type": [1, 1, 2], "rho": [0.5, 0.3, 0.1]},
            ValueError,
            "must give two correlations",
        ),
        ({"obs": ["a", "b", "a"]}, TypeError, "`rho` is required"),
    ],
)
def test_argument_checks(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ketameta.vcalc(**BASE, **kwargs)


def test_missing_time_omits_the_effect() -> None:
    # metafor stops on a missing time; ketameta marks the effect missing (NaN row and
    # column) as for any missing input, and pool_mv omits it
    got = ketameta.vcalc([1.0, 1.0, 1.0], cluster=[1, 1, 1], time1=[1, np.nan, 2], phi=0.5)
    assert np.isnan(got[1]).all()
    assert np.isnan(got[:, 1]).all()
    assert got[0, 2] == pytest.approx(0.5, rel=1e-15)


def test_unequal_sizes_of_one_group_take_the_geometric_mean_covariance() -> None:
    # metafor 3.8.1: vcalc(vi = c(1, 1), cluster = c(1, 1), grp1 = c(1, 2), grp2 = c(3, 3),
    # w1 = c(10, 10), w2 = c(20, 30)) has the off-diagonal 0.2886751 (the shared control's
    # covariance sqrt(1/20 * 1/30) over sqrt((1/10 + 1/20)(1/10 + 1/30)))
    got = ketameta.vcalc(
        [1.0, 1.0], cluster=[1, 1], grp1=[1, 2], grp2=[3, 3], w1=[10, 10], w2=[20, 30]
    )
    expected = math.sqrt(1 / 20 / 30) / math.sqrt((0.1 + 0.05) * (0.1 + 1 / 30))
    assert got[0, 1] == pytest.approx(expected, rel=1e-14)
    assert got[0, 1] == pytest.approx(0.2886751, abs=5e-8)


# ---- rvars: the correlation matrices as columns -------------------------------------------


def test_rvars_is_metafors_on_berkey1998() -> None:
    # metafor_mv.json: V <- vcalc(vi = 1, cluster = author, rvars = c(v1i, v2i),
    # data = dat.berkey1998) (validation/metafor/make_mv_reference.R): the trials' 2 x 2
    # covariance matrices, read from the lower triangle of the v1i, v2i columns
    mv = load_reference("metafor_mv.json")
    ber = mv["datasets"]["berkey1998"]
    cols = ber["columns"]
    got = ketameta.vcalc(
        np.ones(len(cols["yi"])), cluster=cols["author"], rvars=["v1i", "v2i"], data=cols
    )
    np.testing.assert_allclose(got, np.array(ber["V"], dtype=float), rtol=1e-13, atol=0.0)


def test_rvars_reads_the_lower_triangle() -> None:
    # metafor 3.8.1: vcalc(vi, cluster = cl, rvars = c(r1, r2, r3)) on these rows gives
    # V[1, 2] = 0.8485281 (0.6 sqrt(2)), V[4, 5] = 3.577709 (0.8 sqrt(20)), V[4, 6] = 2.449490
    # (0.5 sqrt(24)), V[5, 6] = 2.738613 (0.5 sqrt(30)); the upper triangle is not read
    nan = np.nan
    data = {
        "vi": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "cl": [1, 1, 2, 3, 3, 3],
        "r1": [1.0, 0.6, 1.0, 1.0, 0.8, 0.5],
        "r2": [0.3, 1.0, nan, 9.0, 1.0, 0.5],
        "r3": [nan, nan, nan, nan, nan, 1.0],
    }
    got = ketameta.vcalc("vi", cluster="cl", rvars=["r1", "r2", "r3"], data=data)
    assert got[0, 1] == pytest.approx(0.6 * math.sqrt(2.0), rel=1e-15)
    assert got[3, 4] == pytest.approx(0.8 * math.sqrt(20.0), rel=1e-15)
    assert got[3, 5] == pytest.approx(0.5 * math.sqrt(24.0), rel=1e-15)
    assert got[4, 5] == pytest.approx(0.5 * math.sqrt(30.0), rel=1e-15)
    np.testing.assert_allclose(np.diag(got), data["vi"], rtol=1e-15)
    as_array = ketameta.vcalc(
        "vi", cluster="cl", rvars=np.column_stack([data["r1"], data["r2"], data["r3"]]), data=data
    )
    np.testing.assert_array_equal(as_array, got)
    with pytest.raises(ValueError, match="`rvars` has 2 columns but the cluster of study 3"):
        ketameta.vcalc("vi", cluster="cl", rvars=["r1", "r2"], data=data)
    with pytest.raises(ValueError, match="study 1 has no value in column 1"):
        ketameta.vcalc("vi", cluster="cl", rvars=["r1", "r3", "r2"], data=data)
    with pytest.raises(TypeError, match="obs, rho cannot be used with it"):
        ketameta.vcalc("vi", cluster="cl", rvars=["r1", "r2", "r3"], obs="cl", rho=0.2, data=data)
