"""pool_many / egger_many: row-by-row equality with pool, ragged rows, failures, Dask."""

from __future__ import annotations

import json
import math
import warnings
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ketameta
from ketameta import egger_many, egger_test, pool, pool_many

# Random datasets can have a likelihood whose maximum at τ² = 0 beats the interior one
# reached from the start: pool() then sets τ² = 0 and warns, as metafor does
# (tested in test_pooling.py::test_several_likelihood_maxima_as_metafor).
pytestmark = pytest.mark.filterwarnings("ignore::ketameta.LocalMaximumWarning")

FIELDS = (
    "estimate",
    "se",
    "statistic",
    "pvalue",
    "ci_lower",
    "ci_upper",
    "tau2",
    "tau2_se",
    "i2",
    "h2",
    "q",
    "q_pvalue",
    "pred_lower",
    "pred_upper",
)
METHODS = ["EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"]


def _batch(seed: int, m: int = 300, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.005, 0.3, size=(m, k)) * rng.choice([0.1, 1, 10], size=(m, 1))
    tau2 = rng.choice([0.0, 0.02, 0.2, 1.0], size=(m, 1))
    y = rng.normal(rng.normal(0, 1, size=(m, 1)), np.sqrt(v + tau2))
    # ragged rows: each row keeps 2..k studies, the rest NaN
    keep = rng.integers(2, k + 1, size=m)
    y[np.arange(k)[None, :] >= keep[:, None]] = np.nan
    return y, v


def _seed(*parts: object) -> int:
    """A seed per test case that is the same in every run (unlike ``hash`` of strings)."""
    return zlib.crc32(repr(parts).encode()) % 1000


def _pool_row(y: np.ndarray, v: np.ndarray, **kw: Any) -> ketameta.PoolResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.KetametaWarning)
        return pool(y, v, **kw)


LOCATION = ("estimate", "statistic", "ci_lower", "ci_upper", "pred_lower", "pred_upper")


def _atol(f: str, ref: ketameta.PoolResult) -> float:
    """Absolute slack: location fields can cross 0 (cancellation), so 1e-12 of their scale;
    τ² and I² at the boundary 0."""
    if f in LOCATION:
        return 1e-12 * max(abs(ref.estimate), ref.se + math.sqrt(ref.tau2), 1e-300)
    return 1e-10 if f in ("tau2", "i2", "tau2_se") else 0.0


def _assert_same(a: Any, b: ketameta.PoolResult, rtol: float = 1e-12) -> None:
    for f in FIELDS:
        x, y = float(getattr(a, f)), float(getattr(b, f))
        if math.isnan(x) and math.isnan(y):
            continue
        assert x == pytest.approx(y, rel=rtol, abs=_atol(f, b)), f


def _assert_row_same(res: Any, i: int, single: ketameta.PoolResult) -> None:
    """Row `i` of a batch result equals `single`: as ``res[i]`` and in the field arrays."""
    _assert_same(res[i], single)
    for f in FIELDS:
        x, z = float(getattr(res, f)[i]), float(getattr(single, f))
        same = (math.isnan(x) and math.isnan(z)) or x == pytest.approx(
            z, rel=1e-12, abs=_atol(f, single)
        )
        assert same, f


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("test", ["z", "t", "knha", "adhoc"])
def test_rows_equal_pool(method: str, test: str) -> None:
    # the batch engine and pool share the numeric core: equal to 1e-12 relative
    y, v = _batch(_seed(method, test), m=120)
    res = pool_many(y, v, method=method, test=test)
    assert res.estimate.shape == (120,)
    for i in range(0, 120, 7):
        present = ~np.isnan(y[i])
        single = _pool_row(y[i][present], v[i][present], method=method, test=test)
        _assert_row_same(res, i, single)
        assert int(res.k[i]) == single.k
        np.testing.assert_allclose(res.weights[i][present], single.weights, rtol=1e-12)
        assert np.all(res.weights[i][~present] == 0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("test", ["z", "t", "knha", "adhoc"])
@pytest.mark.parametrize("k", [1, 2, 9])
def test_complete_rows_equal_pool(method: str, test: str, k: int) -> None:
    # a batch without absent studies takes the core's unmasked path (k the same for all)
    y, v = _batch(_seed(method, test, k), m=40, k=max(k, 2))
    y, v = np.where(np.isnan(y), 0.3, y)[:, :k], v[:, :k]
    res = pool_many(y, v, method=method, test=test)
    assert not res.failed
    for i in range(0, 40, 3):
        single = _pool_row(y[i], v[i], method=method, test=test)
        _assert_row_same(res, i, single)
        assert res.k[i] == single.k
        assert res.df[i] == single.df
        np.testing.assert_allclose(res.weights[i], single.weights, rtol=1e-12)


@pytest.mark.parametrize("method", ["DL", "REML", "PM"])
def test_threads_and_chunks_do_not_change_results(method: str) -> None:
    # chunks of 7 rows: complete chunks (unmasked path) beside ragged ones, in 1 or 3
    # threads; a NaN variance (not effect) marks an absent study too
    y, v = _batch(12, m=60, k=5)
    y[:35] = np.where(np.isnan(y[:35]), 0.1, y[:35])
    v[40, 2], y[40, 2] = np.nan, 0.5
    one = pool_many(y, v, method=method, workers=1, chunk_size=7)
    assert one.k[40] == np.sum(~np.isnan(y[40] + v[40]))
    for kwargs in ({"workers": 3, "chunk_size": 7}, {"workers": 2}, {"chunk_size": 1000}):
        other = pool_many(y, v, method=method, **kwargs)  # type: ignore[arg-type]
        for f in (*FIELDS, "k", "df", "q_df", "iterations"):
            a, b = getattr(one, f), getattr(other, f)
            if kwargs.get("chunk_size") == 7:  # the same chunks: the same arithmetic
                np.testing.assert_array_equal(a, b, err_msg=f)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f)
        np.testing.assert_array_equal(one.converged, other.converged)


def test_weights_are_derived_on_access() -> None:
    y, v = _batch(13, m=8, k=4)
    y[2, :] = np.nan  # no study: weights 0
    res = pool_many(y, v, method="REML", control={"maxiter": 2})  # some rows fail
    weights = res.weights
    assert weights.shape == y.shape
    assert np.all(weights[2] == 0.0)
    present = ~np.isnan(y)
    np.testing.assert_array_equal(weights[~present], 0.0)
    for i in range(8):
        if i in res.failed and i != 2:  # not fitted: NaN weights of its studies
            assert np.isnan(weights[i][present[i]]).all()
        elif i not in res.failed:  # 100 w_i / Σ w, w_i = 1 / (v_i + τ̂²)
            w = 1.0 / (v[i][present[i]] + res.tau2[i])
            np.testing.assert_allclose(weights[i][present[i]], 100 * w / w.sum(), rtol=1e-14)
    assert res.failed.keys() - {2}  # the check above saw failed rows


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"workers": 0}, "`workers` must be None, -1 or a positive integer"),
        ({"workers": 1.5}, "`workers` must be None"),
        ({"workers": True}, "`workers` must be None"),
        ({"chunk_size": 0}, "`chunk_size` must be a positive integer"),
        ({"chunk_size": True}, "`chunk_size` must be a positive integer"),
    ],
)
def test_bad_workers_and_chunk_size(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        pool_many(np.zeros((2, 3)), np.ones((2, 3)), **kwargs)


def test_getitem_is_the_pool_result_with_omitted_studies() -> None:
    y, v = _batch(5, m=10)
    res = pool_many(y, v, method="REML")
    row = res[3]
    with pytest.warns(ketameta.OmittedStudiesWarning):
        direct = pool(y[3], v[3])
    assert row.omitted == direct.omitted
    assert row.estimate == pytest.approx(direct.estimate, rel=1e-12)
    assert row.tau2_ci().tau2 == pytest.approx(direct.tau2_ci().tau2, rel=1e-9)


def test_q_profile_vectorised() -> None:
    y, v = _batch(11, m=60)
    res = pool_many(y, v, method="REML", tau2_ci=True)
    for i in range(0, 60, 5):
        present = ~np.isnan(y[i])
        ci = _pool_row(y[i][present], v[i][present]).tau2_ci()
        assert res.tau2_ci_lower[i] == pytest.approx(ci.tau2[1], rel=1e-9, abs=1e-12)
        assert res.tau2_ci_upper[i] == pytest.approx(ci.tau2[2], rel=1e-9, abs=1e-12)


def test_failed_rows_do_not_spoil_others() -> None:
    y, v = _batch(2, m=6)
    y[2, :] = np.nan  # no study at all
    y[4, 1:] = np.nan  # a single study
    res = pool_many(y, v, method="REML", test="knha")
    assert res.failed == {2: "no studies (every yi or vi is NaN)"}
    assert np.isnan(res.estimate[2])
    assert res.tau2[4] == 0.0
    assert res.estimate[4] == y[4, 0]
    assert np.isfinite(res.estimate[[0, 1, 3, 5]]).all()
    with pytest.raises(ValueError, match="meta-analysis 2 was not fitted"):
        res[2]
    with pytest.raises(IndexError):
        res[6]


def test_non_convergence_is_reported_per_row() -> None:
    y, v = _batch(3, m=20)
    res = pool_many(y, v, method="REML", control={"maxiter": 2})
    assert res.failed
    for i, reason in res.failed.items():
        assert "did not converge" in reason
        assert np.isnan(res.estimate[i])
        assert not res.converged[i]


def test_axis_shapes_and_standard_errors() -> None:
    y, v = _batch(4, m=24, k=6)
    cube_y, cube_v = y.reshape(4, 6, 6), v.reshape(4, 6, 6)
    res = pool_many(np.moveaxis(cube_y, -1, 0), np.moveaxis(cube_v, -1, 0), axis=0, method="DL")
    flat = pool_many(y, v, method="DL")
    assert res.shape == (4, 6)
    np.testing.assert_array_equal(res.estimate.reshape(-1), flat.estimate)
    se = pool_many(y, SE=np.sqrt(v), method="DL")
    np.testing.assert_allclose(se.estimate, flat.estimate, rtol=1e-13)


def test_inputs_are_not_modified_and_results_serialise() -> None:
    y, v = _batch(6, m=15)
    y0, v0 = y.copy(), v.copy()
    res = pool_many(y, v)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(v, v0)
    json.dumps(res.to_dict())
    pd = pytest.importorskip("pandas")
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 15


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"Y": np.zeros((2, 3)), "V": np.ones((2, 2))}, ValueError, "`Y` has shape"),
        (
            {"Y": np.zeros((2, 3)), "V": -np.ones((2, 3))},
            ValueError,
            r"`V` must be positive; analysis 0, study 0",
        ),
        (
            {"Y": np.array([[0, np.inf, 1]]), "V": np.ones((1, 3))},
            ValueError,
            r"`Y` must be finite.*analysis 0, study 1",
        ),
        ({"Y": np.zeros((2, 3))}, TypeError, "give exactly one of `V`"),
        (
            {"Y": [["a", "b"]], "V": [[1, 1]]},
            TypeError,
            r"`Y` must be numeric \(analysis 0, study 0\)",
        ),
        (
            {"Y": np.zeros((2, 3)), "V": np.ones((2, 3)), "method": "X"},
            ValueError,
            "unknown `method`",
        ),
    ],
)
def test_bad_input(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        pool_many(**kwargs)


@given(st.integers(0, 10_000), st.sampled_from(["DL", "REML", "PM"]))
def test_permuting_rows_permutes_results(seed: int, method: str) -> None:
    y, v = _batch(seed, m=25, k=6)
    order = np.random.default_rng(seed).permutation(25)
    a = pool_many(y, v, method=method)
    b = pool_many(y[order], v[order], method=method)
    for f in ("estimate", "se", "tau2", "q", "pvalue"):
        np.testing.assert_allclose(getattr(a, f)[order], getattr(b, f), rtol=1e-12, atol=1e-14)


def test_egger_many_equals_egger_test() -> None:
    y, v = _batch(8, m=50, k=14)
    y[:, 10:] = y[:, 10:]  # keep raggedness from _batch
    res = egger_many(y, v)
    for i in range(50):
        present = ~np.isnan(y[i])
        if present.sum() < 3:
            assert np.isnan(res.intercept[i])
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ketameta.SmallSampleWarning)
            one = egger_test(y[i][present], v[i][present])
        assert res.intercept[i] == pytest.approx(one.intercept, rel=1e-9)
        assert res.pvalue[i] == pytest.approx(one.pvalue, rel=1e-9)
        assert res.limit_estimate[i] == pytest.approx(one.limit_estimate, rel=1e-9, abs=1e-12)
    json.dumps(res.to_dict())


class TestDask:
    da = pytest.importorskip("dask.array")

    def test_dask_equals_numpy_on_a_local_cluster(self) -> None:
        distributed = pytest.importorskip("distributed")
        y, v = _batch(9, m=400, k=8)
        expected = pool_many(y, v, method="REML", tau2_ci=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cluster start-up chatter
            cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = distributed.Client(cluster)
        try:
            lazy = pool_many(
                self.da.from_array(y, chunks=(100, 8)),
                self.da.from_array(v, chunks=(100, 8)),
                method="REML",
                tau2_ci=True,
            )
            assert type(lazy.estimate).__module__.startswith("dask")
            got = lazy.compute()
        finally:
            client.close()
            cluster.close()
        for f in (*FIELDS, "k", "tau2_ci_lower", "tau2_ci_upper"):
            np.testing.assert_array_equal(getattr(got, f), getattr(expected, f), err_msg=f)
        np.testing.assert_array_equal(got.weights, expected.weights)
        assert type(lazy.weights).__module__.startswith("dask")  # derived lazily
        np.testing.assert_allclose(lazy.weights.compute(), expected.weights, rtol=1e-15)
        assert got.failed == expected.failed
        assert got[5].estimate == expected[5].estimate

    def test_dask_rejects_chunked_study_axis(self) -> None:
        y, v = _batch(1, m=10, k=8)
        with pytest.raises(ValueError, match="single chunk"):
            pool_many(self.da.from_array(y, chunks=(5, 4)), self.da.from_array(v, chunks=(5, 4)))


# ---- many meta-regressions: pool_many(Y, V, mods=X) ---------------------------------------


def _mr_data(m: int = 400, k: int = 9, seed: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.005, 0.3, (m, k))
    x = np.column_stack([rng.normal(size=k), rng.uniform(1990, 2010, k)])
    y = rng.normal(0.1 + 0.2 * x[:, 0] - 0.01 * (x[:, 1] - 2000), np.sqrt(v + 0.04))
    y[1, 6:] = np.nan  # ragged rows
    v[2, 0] = np.nan
    return y, v, x


@pytest.mark.parametrize("method", ["EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_metareg_rows_equal_metareg(method: str, test: str) -> None:
    # the contract: row i equals metareg on that row to 1e-12
    y, v, x = _mr_data()
    res = pool_many(y, v, mods=x, method=method, test=test)
    assert res.names == ("intrcpt", ".1", ".2")
    assert res.coef.shape == (400, 3)
    assert not res.failed
    for i in (0, 1, 2, 57, 399):
        keep = ~(np.isnan(y[i]) | np.isnan(v[i]))
        one = ketameta.metareg(y[i, keep], v[i, keep], mods=x[keep], method=method, test=test)
        for field in ("coef", "se", "statistic", "ci_lower", "ci_upper"):
            np.testing.assert_allclose(
                getattr(res, field)[i], getattr(one, field), rtol=1e-12, atol=1e-12
            )
        np.testing.assert_allclose(res.pvalue[i], one.pvalue, rtol=1e-10, atol=1e-300)
        for field in ("tau2", "q", "qm", "i2", "h2"):
            assert float(getattr(res, field)[i]) == pytest.approx(
                getattr(one, field), rel=1e-10, abs=1e-12
            )
        assert res[i].coef == pytest.approx(one.coef, rel=1e-12)


def test_metareg_many_per_row_design_and_failures() -> None:
    y, v, x = _mr_data(m=50)
    per_row = np.broadcast_to(x, (50, *x.shape)).copy()
    per_row[:, :, 0] += np.random.default_rng(1).normal(0, 0.1, (50, x.shape[0]))
    per_row[3, 4, 1] = np.nan  # a missing moderator: absent from analysis 3 only
    per_row[4, :, 0] = 1.0  # a constant moderator in analysis 4: the design is singular
    y[5, 3:] = np.nan  # 3 studies for 3 coefficients: too few for REML
    res = pool_many(y, v, mods=per_row)
    assert int(res.k[3]) == 8
    keep = ~np.isnan(per_row[3]).any(axis=1)
    one = ketameta.metareg(y[3, keep], v[3, keep], mods=per_row[3, keep])
    np.testing.assert_allclose(res.coef[3], one.coef, rtol=1e-12)
    assert "linearly dependent" in res.failed[4]
    assert "fewer studies than the model needs" in res.failed[5]
    assert np.isnan(res.coef[4]).all()
    assert np.isnan(res.tau2[5])


def test_metareg_many_shared_design_from_a_table_with_a_missing_moderator() -> None:
    pd = pytest.importorskip("pandas")
    y, v, x = _mr_data(m=20)
    frame = pd.DataFrame({"dose": x[:, 0], "arm": ["a", "b", "c"] * 3})
    frame.loc[7, "dose"] = np.nan
    with pytest.warns(
        ketameta.OmittedStudiesWarning,
        match=r"1 study omitted from every analysis: Study 8 \(index 7\) has a missing moderator",
    ):
        res = pool_many(y, v, mods=frame)
    assert res.names == ("intrcpt", "dose", "armb", "armc")
    keep = np.arange(9) != 7
    one = ketameta.metareg(y[0, keep], v[0, keep], mods=frame.iloc[keep])
    np.testing.assert_allclose(res.coef[0], one.coef, rtol=1e-12)


def test_metareg_many_on_dask_equals_numpy() -> None:
    da = pytest.importorskip("dask.array")
    y, v, x = _mr_data(m=300)
    ref = pool_many(y, v, mods=x, method="REML")
    lazy = pool_many(da.from_array(y, chunks=(70, 9)), da.from_array(v, chunks=(70, 9)), mods=x)
    got = lazy.compute()
    np.testing.assert_array_equal(got.coef, ref.coef)
    np.testing.assert_array_equal(got.tau2, ref.tau2)
    assert got.failed == ref.failed
    per_row = np.broadcast_to(x, (300, *x.shape)).copy()
    ref3 = pool_many(y, v, mods=per_row, method="DL")
    got3 = pool_many(
        da.from_array(y, chunks=(70, 9)),
        da.from_array(v, chunks=(70, 9)),
        mods=da.from_array(per_row, chunks=(70, 9, 2)),
        method="DL",
    ).compute()
    np.testing.assert_array_equal(got3.coef, ref3.coef)
    v_bad = v.copy()
    v_bad[250, 4] = -1.0
    with pytest.raises(ValueError, match=r"analysis 250, study 4"):  # the whole input's index
        pool_many(
            da.from_array(y, chunks=(70, 9)), da.from_array(v_bad, chunks=(70, 9)), mods=x
        ).compute()


def test_dask_results_store_the_inputs_as_the_numpy_path() -> None:
    # a study missing in Y or in V (or SE) is missing in both stored arrays, ints become
    # doubles and SEs are squared: the Dask results' yi/vi equal the NumPy results' exactly
    da = pytest.importorskip("dask.array")
    y = np.array([[0.1, np.nan, 0.3, 0.2, 0.5], [0.2, 0.1, 0.4, 0.0, 0.3], [1, 2, 3, 4, 5]])
    v = np.array(
        [[0.01, 0.02, 0.03, 0.02, 0.01], [0.01, np.nan, 0.02, 0.02, 0.01], [1, 2, 1, 2, 1]]
    )
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    for kw in ({}, {"mods": x}):
        for se in (False, True):
            vv = np.sqrt(v) if se else v
            args = {"SE": vv} if se else {"V": vv}
            dargs = {key: da.from_array(a, chunks=(2, 5)) for key, a in args.items()}
            expected = pool_many(y, **args, **kw)
            got = pool_many(da.from_array(y, chunks=(2, 5)), **dargs, **kw)
            assert got.yi.dtype == got.vi.dtype == np.float64
            np.testing.assert_array_equal(got.yi.compute(), expected.yi)
            np.testing.assert_array_equal(got.vi.compute(), expected.vi)
            # the stored arrays mark the same studies missing: (0, 1) and (1, 1)
            assert np.argwhere(np.isnan(expected.vi)).tolist() == [[0, 1], [1, 1]]
            assert np.argwhere(np.isnan(got.yi.compute())).tolist() == [[0, 1], [1, 1]]
    yint = da.from_array(np.array([[1, 2, 3, 4]]), chunks=(1, 4))
    got = pool_many(yint, da.from_array(np.array([[1, 2, 1, 2]]), chunks=(1, 4)))
    np.testing.assert_array_equal(got.yi.compute(), [[1.0, 2.0, 3.0, 4.0]])
    assert got.yi.dtype == np.float64
