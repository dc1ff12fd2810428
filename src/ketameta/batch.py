"""Many meta-analyses at once: :func:`pool_many` and :func:`egger_many`, on NumPy arrays or,
chunked along the analyses, on Dask arrays.

Each row of ``Y``/``V`` is one meta-analysis; NaN marks an absent study, so rows may have
different numbers of studies. Rows are fitted by the same numeric core as
:func:`ketameta.pool` (in chunks of rows, vectorised within a chunk), so
``pool_many(Y, V)[i]`` is ``pool(Y[i], V[i])``.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import attrs
import numpy as np

from . import _engine
from ._engine import rows as _rows
from ._results import TableResult, array_field, import_pandas, plain
from ._typing import FloatArray
from ._validation import batch_arrays, check_batch, prepare_batch
from .pooling import (
    CORE_COUNT_FIELDS,
    CORE_FLOAT_FIELDS,
    PoolResult,
    Tau2Interval,
    result_from_core,
    validate_options,
)

__all__ = ["BatchEggerResult", "BatchMetaRegResult", "BatchPoolResult", "egger_many", "pool_many"]

#: per-analysis fields of :class:`BatchPoolResult`, in order
FIELDS = CORE_FLOAT_FIELDS + CORE_COUNT_FIELDS
_CI_FIELDS = ("tau2_ci_lower", "tau2_ci_upper")


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.")


def _dask() -> Any:
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = "Dask input needs the `dask` extra: pip install 'ketameta[dask]'"
        raise ImportError(msg) from exc
    return da


def _dask_compute() -> Any:
    _dask()  # the install hint, if Dask is missing
    from dask.base import compute

    return compute


@attrs.frozen(kw_only=True)
class BatchPoolResult:
    """Results of :func:`pool_many`: one array per statistic, one entry per meta-analysis.

    The arrays have the shape of the analyses (``Y.shape`` without the study axis) and
    are NumPy arrays, or Dask arrays (lazy; see :meth:`compute`) for Dask input. Fields
    are those of :class:`~ketameta.PoolResult`. The fit stores the pooled effects, their
    standard errors, τ², its standard error, Q, the typical within-study variance, k,
    ``converged`` and ``iterations``; the statistics that follow from these (``statistic``,
    ``pvalue``, ``ci_lower``, ``ci_upper``, ``df``, ``tau``, ``i2``, ``h2``, ``q_df``,
    ``q_pvalue``, ``pred_lower``, ``pred_upper``) are computed when first read (by the
    same code as :func:`pool`'s) and kept, and the study weights (:attr:`weights`) on
    each access: arrays nobody reads are never made. ``failed`` maps the flat index of
    each analysis that could not be fitted to the reason (its statistics are NaN).
    ``result[i]`` is the :class:`~ketameta.PoolResult` of analysis ``i`` (flat index), as
    :func:`pool` gives it.
    """

    estimate: Any
    se: Any
    tau2: Any
    tau2_se: Any
    q: Any
    k: Any
    converged: Any
    iterations: Any
    v_typical: Any = attrs.field(repr=False)
    tau2_ci_lower: Any = None
    tau2_ci_upper: Any = None
    yi: Any = attrs.field(repr=False, eq=False)
    vi: Any = attrs.field(repr=False, eq=False)
    failed: dict[int, str] = attrs.field(factory=dict)
    method: str
    test: str
    level: float
    control: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    _cache: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    # -- the statistics derived from the stored ones when first read --------------------

    def _derived(self, name: str) -> Any:
        cache = self._cache
        if name not in cache:
            method, test, level = self.method, self.test, self.level
            stored = [getattr(self, n) for n in _DERIVED_FROM]
            if _is_dask(self.estimate):
                cache[name] = _dask().map_blocks(
                    functools.partial(
                        _derive_one, name=name, method=method, test=test, level=level
                    ),
                    *stored,
                    dtype=np.float64,
                )
            else:
                cache.update(
                    _derive(*stored, names=(name,), method=method, test=test, level=level)
                )
        return cache[name]

    @property
    def statistic(self) -> Any:
        """Test statistics (z, or t for t-based tests) of the pooled effects."""
        return self._derived("statistic")

    @property
    def pvalue(self) -> Any:
        """Two-sided p-values of the pooled effects."""
        return self._derived("pvalue")

    @property
    def ci_lower(self) -> Any:
        """Lower confidence limits of the pooled effects."""
        return self._derived("ci_lower")

    @property
    def ci_upper(self) -> Any:
        """Upper confidence limits of the pooled effects."""
        return self._derived("ci_upper")

    @property
    def df(self) -> Any:
        """Degrees of freedom of the t reference distribution (inf for ``test="z"``)."""
        return self._derived("df")

    @property
    def tau(self) -> Any:
        """τ, the square root of τ²."""
        return self._derived("tau")

    @property
    def i2(self) -> Any:
        """I² (percent)."""
        return self._derived("i2")

    @property
    def h2(self) -> Any:
        """H²."""
        return self._derived("h2")

    @property
    def q_df(self) -> Any:
        """Degrees of freedom of Q (k - 1)."""
        return self._derived("q_df")

    @property
    def q_pvalue(self) -> Any:
        """p-values of the test of heterogeneity (Q)."""
        return self._derived("q_pvalue")

    @property
    def pred_lower(self) -> Any:
        """Lower limits of the prediction intervals."""
        return self._derived("pred_lower")

    @property
    def pred_upper(self) -> Any:
        """Upper limits of the prediction intervals."""
        return self._derived("pred_upper")

    # ------------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the batch of analyses."""
        return tuple(self.estimate.shape)

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    @property
    def weights(self) -> Any:
        """Study weights in percent, shaped like ``yi``: ``100 w_i / Σ w`` with
        ``w_i = 1/(v_i + τ̂²)``; 0 for absent studies, NaN in analyses not fitted.

        Computed on each access from ``vi`` and ``tau2`` (lazily for Dask-backed results):
        an ``(m, k)`` array costs more than the fit itself, so it is not made unless asked
        for; keep a reference to reuse it.
        """
        return _percent_weights(self.yi, self.vi, self.tau2)

    def compute(self, **kwargs: Any) -> BatchPoolResult:
        """For Dask-backed results: compute every field (``dask.compute``) and return a
        NumPy-backed result; ``failed`` is then filled in. NumPy results return themselves."""
        if not _is_dask(self.estimate):
            return self
        compute = _dask_compute()
        names = (*_STORED, *(_CI_FIELDS if self.tau2_ci_lower is not None else ()))
        # (one graph: the inputs are read once for the statistics and the copies)
        *values, yi, vi = compute(*(getattr(self, n) for n in names), self.yi, self.vi, **kwargs)
        arrays = dict(zip(names, values, strict=True))
        failed = _rows.failures(
            arrays["k"].reshape(-1),
            arrays["converged"].reshape(-1),
            arrays["estimate"].reshape(-1),
            self.method,
        )
        return attrs.evolve(self, **arrays, yi=yi, vi=vi, failed=failed)

    def __getitem__(self, index: int) -> PoolResult:
        res = self.compute()
        n = len(res)
        if not isinstance(index, int | np.integer) or not -n <= index < n:
            msg = f"index must be an integer in [-{n}, {n}), got {index!r}"
            raise IndexError(msg)
        i = int(index) % n
        if i in res.failed:
            msg = f"meta-analysis {i} was not fitted: {res.failed[i]}"
            raise ValueError(msg)
        k_axis = res.yi.shape[-1]
        y = res.yi.reshape(-1, k_axis)[i]
        v = res.vi.reshape(-1, k_axis)[i]
        present = ~(np.isnan(y) | np.isnan(v))
        row = {name: np.asarray(getattr(res, name)).reshape(-1)[i : i + 1] for name in _STORED}
        row |= _derive(
            *(row[n] for n in _DERIVED_FROM),
            names=_DERIVED,
            method=res.method,
            test=res.test,
            level=res.level,
        )
        row["weights"] = _percent_weights(y[present], v[present], row["tau2"][0])[None, :]
        omitted = tuple(int(j) for j in np.flatnonzero(~present))
        test = res.test if int(row["k"][0]) > 1 else "z"
        return result_from_core(
            row,
            0,
            yi=y[present],
            vi=v[present],
            omitted=omitted,
            method=res.method,
            test=test,
            level=res.level,
            tau2_fixed=False,
            control=res.control,
        )

    def tau2_interval(self, index: int) -> Tau2Interval:
        """The Q-profile interval of analysis `index` (as ``self[index].tau2_ci()``)."""
        return self[index].tau2_ci()

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python lists (JSON-serialisable; NaN/inf become ``None``)."""
        res = self.compute()
        d = {name: plain(np.asarray(getattr(res, name))) for name in FIELDS}
        d["weights"] = plain(np.asarray(res.weights))
        if res.tau2_ci_lower is not None:
            d |= {name: plain(np.asarray(getattr(res, name))) for name in _CI_FIELDS}
        d |= {
            "failed": {str(i): r for i, r in res.failed.items()},
            "method": res.method,
            "test": res.test,
            "level": res.level,
        }
        return d

    def to_frame(self) -> Any:
        """A pandas DataFrame with one row per analysis (requires pandas)."""
        pd = import_pandas()
        res = self.compute()
        names = FIELDS + (_CI_FIELDS if res.tau2_ci_lower is not None else ())
        return pd.DataFrame({n: np.asarray(getattr(res, n)).reshape(-1) for n in names})


#: the statistics of :class:`BatchPoolResult` derived when first read, and what from
_DERIVED = (
    "statistic",
    "pvalue",
    "ci_lower",
    "ci_upper",
    "df",
    "tau",
    "i2",
    "h2",
    "q_df",
    "q_pvalue",
    "pred_lower",
    "pred_upper",
)
_DERIVED_FROM = ("estimate", "se", "tau2", "q", "k", "v_typical")
#: the fields a fit stores
_STORED = tuple(n for n in FIELDS if n not in _DERIVED)


def _derive(
    estimate: FloatArray,
    se: FloatArray,
    tau2: FloatArray,
    q: FloatArray,
    k: FloatArray,
    v_typical: FloatArray,
    *,
    names: tuple[str, ...],
    method: str,
    test: str,
    level: float,
) -> dict[str, FloatArray]:
    """The statistics `names` of :data:`_DERIVED` from the stored ones, by the engine's
    :func:`~ketameta._engine.model.derived_statistics` (as :func:`pool`); NaN where the
    analysis was not fitted (NaN estimate)."""
    from ._engine.model import derived_statistics

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = derived_statistics(
            [estimate],
            [se],
            tau2=tau2,
            q=q,
            k=k,
            v_typical=v_typical,
            zero=np.zeros(np.shape(estimate)),
            p=1,
            intercept=True,
            equal_effects=method == "EE",
            test=test,
            level=level,
            only=names,
        )
    failed = np.isnan(estimate)
    derived: dict[str, FloatArray] = {}
    for name in names:
        value = out[name]
        value = value[0] if isinstance(value, list) else value
        derived[name] = np.where(failed, np.nan, value)
    return derived


def _derive_one(*stored: FloatArray, name: str, method: str, test: str, level: float) -> Any:
    """:func:`_derive` of one statistic (for Dask's ``map_blocks``)."""
    return _derive(*stored, names=(name,), method=method, test=test, level=level)[name]


def _percent_weights(yi: Any, vi: Any, tau2: Any) -> Any:
    """``100 w_i / Σ w`` with ``w_i = 1/(v_i + τ²)`` along the last axis (NumPy or Dask):
    0 where ``yi`` or ``vi`` is NaN (absent), NaN where τ² is NaN (not fitted)."""
    if _is_dask(yi) or _is_dask(vi) or _is_dask(tau2):
        da = _dask()
        t = da.asarray(tau2)[..., None] if np.ndim(tau2) else tau2
        return da.map_blocks(_percent_weights_numpy, yi, vi, t, dtype=np.float64)
    return _percent_weights_numpy(yi, vi, np.asarray(tau2)[..., None] if np.ndim(tau2) else tau2)


def _percent_weights_numpy(yi: FloatArray, vi: FloatArray, tau2: Any) -> FloatArray:
    """:func:`_percent_weights` of NumPy arrays, `tau2` broadcast against `vi` (its sums
    over the studies in the engine's fixed order: the same bits for any layout)."""
    from ._engine.design import rowsum

    present = ~(np.isnan(yi) | np.isnan(vi))
    # v > 0 and τ² ≥ 0: no division by 0; NaN propagates without a warning
    w = np.where(present, 1.0 / (vi + tau2), 0.0)
    k = w.shape[-1]
    total = rowsum(w.reshape(-1, k)).reshape((*w.shape[:-1], 1))
    return (100.0 / np.where(total > 0.0, total, 1.0)) * w


def _fit_rows(
    y: FloatArray,
    v: FloatArray,
    *,
    method: str,
    test: str,
    level: float,
    control: dict[str, Any],
    tau2_ci: bool,
    chunk_size: int | None,
    workers: int = 1,
    check: str | None = None,
    store: tuple[FloatArray, FloatArray] | None = None,
) -> dict[str, FloatArray]:
    """The intercept-only model of every row (see :func:`ketameta._engine.rows.fit_rows`):
    the stored fields of :class:`BatchPoolResult` as ``(m,)`` arrays, named as there."""
    out = _rows.fit_rows(
        y,
        v,
        method=method,
        test=test,
        level=level,
        control=control,
        tau2_ci=tau2_ci,
        chunk_size=chunk_size,
        workers=workers,
        btt=(),  # (no omnibus test of the intercept-only model)
        derive=False,
        check=check,
        store=store,
    )
    out["estimate"] = out.pop("coef")[:, 0]
    out["se"] = out["se"][:, 0]
    out["converged"] = out["converged"].astype(bool)
    return {name: out[name] for name in _STORED + (_CI_FIELDS if tau2_ci else ())}


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _resolve_workers(workers: Any) -> int:
    if workers is None or workers == -1:
        return _available_cpus()
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        msg = f"`workers` must be None, -1 or a positive integer, got {workers!r}"
        raise ValueError(msg)
    return int(workers)


def pool_many(
    Y: Any,
    V: Any = None,
    *,
    SE: Any = None,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    axis: int = -1,
    tau2_ci: bool = False,
    control: dict[str, Any] | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
    mods: Any = None,
    data: Any = None,
    intercept: bool = True,
    btt: Any = None,
) -> Any:
    """Pool many meta-analyses at once: :func:`ketameta.pool` (or, with `mods`,
    :func:`ketameta.metareg`) vectorised over the rows.

    Parameters
    ----------
    Y, V : array_like or dask.array.Array
        Effect sizes and sampling variances with the studies on `axis`; every other axis
        indexes independent meta-analyses. NaN marks an absent study (so analyses may have
        different numbers of studies). Dask arrays chunked along the analyses give lazy,
        Dask-backed results (the study axis must be a single chunk).
    SE : array_like, optional
        Standard errors instead of variances (keyword only).
    method, test, level, control
        As in :func:`ketameta.pool`. Analyses that do not converge get NaN statistics and
        are listed in ``failed`` (they never spoil the others).
    axis : int
        The study axis.
    tau2_ci : bool
        Also compute the Q-profile interval of τ² (``tau2_ci_lower``/``tau2_ci_upper``),
        with metafor's search range ``[0, max(100, 10 τ̂²)]``.
    chunk_size : int, optional
        Analyses fitted together (bounds the working memory: ~30 arrays of
        ``chunk_size × k`` doubles per worker). Default: ``2**17 // k`` (at least 256), so
        that each of those arrays is about 1 MiB.
    workers : int, optional
        Threads fitting chunks in parallel (NumPy and SciPy release the GIL in their
        loops). ``None`` or ``-1``: every CPU available to the process; ``1``: no threads.
        Dask input is parallelised by Dask's scheduler instead (one thread per block).
    mods : array_like, mapping, DataFrame, column names or formula, optional
        Moderators of a meta-regression fitted to every row: one design shared by all
        analyses — ``(k,)`` or ``(k, q)`` (a 2-D array is always studies × moderators), or
        anything :func:`ketameta.metareg` accepts, with `data` — or one design per
        analysis, ``(m, k, q)`` (2-D `Y` only; NumPy or Dask). A study with a missing
        moderator is absent from the analyses concerned (a shared design: from every
        analysis, with an :class:`~ketameta.OmittedStudiesWarning`).
    data, intercept, btt
        As in :func:`ketameta.metareg` (with `mods`).

    Returns
    -------
    BatchPoolResult or BatchMetaRegResult
        :class:`BatchMetaRegResult` (coefficient arrays of shape ``(..., p)``) with `mods`.

    Notes
    -----
    The formulas are those of :func:`ketameta.pool`, computed by the same code, chunk by
    chunk; the results do not depend on the number of threads. The study weights are not
    stored but derived from ``vi`` and ``tau2`` when :attr:`BatchPoolResult.weights` is
    read. An analysis with no study is reported in ``failed``; one with a single study has
    τ² = 0 and a z-based interval (as :func:`pool`). Warnings that :func:`pool` gives for one
    analysis are not repeated per row: an ML/REML row whose likelihood is higher at τ² = 0
    than at the maximum reached from the start gets τ² = 0 (as :func:`pool`, which warns
    with :class:`~ketameta.LocalMaximumWarning`, and metafor).

    References
    ----------
    .. [1] Viechtbauer, W. (2005). J Educ Behav Stat 30(3), 261-293.

    Examples
    --------
    >>> import numpy as np, ketameta
    >>> rng = np.random.default_rng(1)
    >>> V = rng.uniform(0.01, 0.1, size=(1000, 8))
    >>> Y = rng.normal(0.2, np.sqrt(V + 0.02))
    >>> Y[0, 5:] = np.nan                      # a ragged row: 5 studies
    >>> res = ketameta.pool_many(Y, V, method="DL")
    >>> res.estimate.shape, int(res.k[0])
    ((1000,), 5)
    >>> bool(np.isclose(res.estimate[0], ketameta.pool(Y[0, :5], V[0, :5], method="DL").estimate))
    True
    """
    method, test, lv, _, _, ctl = validate_options(method, test, level, None, "omit", control)
    if chunk_size is not None and not (
        isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0
    ):
        msg = f"`chunk_size` must be a positive integer, got {chunk_size!r}"
        raise ValueError(msg)
    n_workers = _resolve_workers(workers)
    if mods is not None:
        return _metareg_many(
            Y,
            V,
            SE,
            mods=mods,
            data=data,
            intercept=intercept,
            btt=btt,
            method=method,
            test=test,
            level=lv,
            axis=axis,
            control=ctl,
            user_control=control,
            chunk_size=chunk_size,
            workers=n_workers,
        )
    if _is_dask(Y) or _is_dask(V) or _is_dask(SE):
        return _pool_many_dask(
            Y,
            V,
            SE,
            method=method,
            test=test,
            level=lv,
            axis=axis,
            tau2_ci=tau2_ci,
            control=ctl,
            chunk_size=chunk_size,
        )
    # the input as given (views): each chunk is copied into the result's own arrays,
    # validated and fitted there in one pass through the cache
    y, v, batch_shape, name_v = batch_arrays(Y, V, SE, axis, copy=False)
    m, k_axis = y.shape
    # (studies × analyses: the analyses of a chunk vary fastest, see _engine.design)
    store = (np.empty((k_axis, m)), np.empty((k_axis, m)))
    out = _fit_rows(
        y,
        v,
        method=method,
        test=test,
        level=lv,
        control=ctl,
        tau2_ci=tau2_ci,
        chunk_size=chunk_size,
        workers=n_workers,
        check=name_v,
        store=store,
    )
    failed = _rows.failures(out["k"], out["converged"], out["estimate"], method)
    if batch_shape != (m,):
        out = {name: a.reshape(batch_shape) for name, a in out.items()}
    return BatchPoolResult(
        **out,
        yi=store[0].T.reshape((*batch_shape, k_axis)),
        vi=store[1].T.reshape((*batch_shape, k_axis)),
        failed=failed,
        method=method,
        test=test,
        level=lv,
        control=control or {},
    )


def _pool_many_dask(
    Y: Any,
    V: Any,
    SE: Any,
    *,
    method: str,
    test: str,
    level: float,
    axis: int,
    tau2_ci: bool,
    control: dict[str, Any],
    chunk_size: int | None,
) -> BatchPoolResult:
    """:func:`pool_many` on Dask arrays: each block of analyses is fitted in one task, its
    results written in place into one packed array (no per-field copies)."""
    da = _dask()
    if axis not in (-1, 1):
        Y, V, SE = (
            None if a is None else da.moveaxis(da.asarray(a), axis, -1) for a in (Y, V, SE)
        )
    y, v, use_se = _dask_inputs(Y, V, SE)
    names = _STORED + (_CI_FIELDS if tau2_ci else ())
    index = {name: i for i, name in enumerate(names)}

    def block(yb: Any, vb: Any, block_info: Any = None) -> FloatArray:
        yb, vb = np.asarray(yb, dtype=np.float64), np.asarray(vb, dtype=np.float64)
        packed = np.empty((len(names), yb.shape[0]))
        # the engine's own names for the coefficient fields ((m, 1) views)
        views = {n: packed[i] for n, i in index.items()}
        views["coef"] = packed[index["estimate"] : index["estimate"] + 1].T
        views["se"] = packed[index["se"] : index["se"] + 1].T
        _rows.fit_rows(
            yb,
            vb,
            method=method,
            test=test,
            level=level,
            control=control,
            tau2_ci=tau2_ci,
            chunk_size=chunk_size,
            btt=(),
            out=views,
            derive=False,
            check="SE" if use_se else "V",  # (each chunk validated in a scratch copy)
            row_offset=_dask_block_offset(block_info),
        )
        return np.asarray(packed.T)

    packed = da.map_blocks(block, y, v, dtype=np.float64, chunks=(y.chunks[0], (len(names),)))
    fields = {n: packed[:, i] for i, n in enumerate(names)}
    fields["converged"] = fields["converged"].astype(bool)
    yi, vi = _dask_stored(y, v, use_se)
    return BatchPoolResult(
        **fields,
        yi=yi,
        vi=vi,
        failed={},
        method=method,
        test=test,
        level=level,
        control=control,
    )


@attrs.frozen(kw_only=True)
class BatchEggerResult(TableResult):
    """Classic Egger tests of many meta-analyses (see :func:`egger_many`)."""

    intercept: Any = array_field()
    se: Any = array_field()
    statistic: Any = array_field()
    df: Any = array_field()
    pvalue: Any = array_field()
    limit_estimate: Any = array_field()
    k: Any = array_field()


def egger_many(Y: Any, V: Any = None, *, SE: Any = None, axis: int = -1) -> BatchEggerResult:
    """The classic Egger test (:func:`ketameta.egger_test` with ``model="lm"``) per row.

    Weighted least squares of ``y`` on ``sqrt(v)`` with weights ``1/v`` and a
    multiplicative dispersion (the engine's equal-effects meta-regression with the
    Knapp-Hartung variance), vectorised over the rows; NaN marks absent studies. Rows with
    fewer than 3 studies, standard errors that are constant (to within the rank tolerance
    of :func:`ketameta.egger_test`) or an exact fit (residuals that are rounding noise: the
    test is undefined, where :func:`~ketameta.egger_test` warns) get NaN, without a
    warning per row; ``k`` tells the first case apart.

    References
    ----------
    .. [1] Egger et al. (1997), BMJ 315(7109):629-634.

    Examples
    --------
    >>> import numpy as np, ketameta
    >>> rng = np.random.default_rng(7)
    >>> V = rng.uniform(0.01, 0.2, size=(500, 12))
    >>> Y = rng.normal(0, np.sqrt(V))
    >>> res = ketameta.egger_many(Y, V)
    >>> one = ketameta.egger_test(Y[3], V[3])
    >>> bool(np.isclose(res.intercept[3], one.intercept))
    True
    """
    y, v, batch_shape, complete = prepare_batch(Y, V, SE, axis)
    x = np.ones((*y.shape, 2))
    x[..., 1] = np.sqrt(v)
    out = _rows.fit_rows(
        y,
        v,
        x,
        intercept=True,
        method="EE",
        test="knha",
        level=0.95,
        control=dict(_engine.DEFAULT_CONTROL),
        complete=complete,
    )
    k = out["k"]
    invalid = (k < 3) | (out["exact_fit"] > 0)

    def shape(a: Any) -> FloatArray:
        return np.asarray(np.where(invalid, np.nan, a), dtype=np.float64).reshape(batch_shape)

    return BatchEggerResult(
        intercept=shape(out["coef"][:, 1]),
        se=shape(out["se"][:, 1]),
        statistic=shape(out["statistic"][:, 1]),
        df=shape(out["df"]),
        pvalue=shape(out["pvalue"][:, 1]),
        limit_estimate=shape(out["coef"][:, 0]),
        k=k.reshape(batch_shape),
    )


#: per-analysis fields of :class:`BatchMetaRegResult` (arrays of the analyses' shape)
_MR_ROW_FIELDS = (
    "df",
    "tau2",
    "tau2_se",
    "tau",
    "i2",
    "h2",
    "q",
    "q_df",
    "q_pvalue",
    "qm",
    "qm_pvalue",
    "k",
    "converged",
    "iterations",
    "v_typical",
)
#: per-coefficient fields (arrays of the analyses' shape plus the coefficient axis)
_MR_COEF_FIELDS = ("coef", "se", "statistic", "pvalue", "ci_lower", "ci_upper")


@attrs.frozen(kw_only=True)
class BatchMetaRegResult:
    """Results of :func:`pool_many` with `mods`: one meta-regression per analysis.

    The coefficient fields (``coef``, ``se``, ``statistic``, ``pvalue``, ``ci_lower``,
    ``ci_upper``) have the analyses' shape plus a last axis of the ``p`` coefficients
    (named by ``names``); the other fields are those of :class:`~ketameta.MetaRegResult`,
    one entry per analysis (residual τ², Q_E, the omnibus test QM of ``btt``). NumPy
    arrays, or Dask arrays (lazy; see :meth:`compute`) for Dask input. ``failed`` maps
    the flat index of each analysis that could not be fitted to the reason (its
    statistics are NaN). ``result[i]`` refits analysis ``i`` with
    :func:`ketameta.metareg` (same engine, same numbers) for the complete result: the
    covariance matrix, predictions and diagnostics.
    """

    coef: Any
    se: Any
    statistic: Any
    pvalue: Any
    ci_lower: Any
    ci_upper: Any
    df: Any
    tau2: Any
    tau2_se: Any
    tau: Any
    i2: Any
    h2: Any
    q: Any
    q_df: Any
    q_pvalue: Any
    qm: Any
    qm_pvalue: Any
    k: Any
    converged: Any
    iterations: Any
    v_typical: Any = attrs.field(repr=False)
    names: tuple[str, ...]
    intercept: bool
    btt: tuple[int, ...]
    X: Any = attrs.field(repr=False, eq=False)
    yi: Any = attrs.field(repr=False, eq=False)
    vi: Any = attrs.field(repr=False, eq=False)
    failed: dict[int, str] = attrs.field(factory=dict)
    method: str
    test: str
    level: float
    control: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the batch of analyses."""
        return tuple(self.tau2.shape)

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    def compute(self, **kwargs: Any) -> BatchMetaRegResult:
        """For Dask-backed results: compute every field and return a NumPy-backed result
        (``failed`` filled in). NumPy results return themselves."""
        if not _is_dask(self.tau2):
            return self
        compute = _dask_compute()
        names = (*_MR_COEF_FIELDS, *_MR_ROW_FIELDS)
        values = compute(*(getattr(self, n) for n in names), **kwargs)
        arrays = dict(zip(names, values, strict=True))
        yi, vi, x = compute(self.yi, self.vi, self.X, **kwargs)
        arrays["converged"] = arrays["converged"].astype(bool)
        failed = _rows.failures(
            arrays["k"].reshape(-1),
            arrays["converged"].reshape(-1),
            arrays["coef"].reshape(-1, len(self.names))[:, 0],
            self.method,
        )
        return attrs.evolve(self, **arrays, yi=yi, vi=vi, X=x, failed=failed)

    def __getitem__(self, index: int) -> Any:
        from .metareg import metareg

        res = self.compute()
        n = len(res)
        if not isinstance(index, int | np.integer) or not -n <= index < n:
            msg = f"index must be an integer in [-{n}, {n}), got {index!r}"
            raise IndexError(msg)
        i = int(index) % n
        if i in res.failed:
            msg = f"meta-analysis {i} was not fitted: {res.failed[i]}"
            raise ValueError(msg)
        k_axis = res.yi.shape[-1]
        y = res.yi.reshape(-1, k_axis)[i]
        v = res.vi.reshape(-1, k_axis)[i]
        x = res.X if res.X.ndim == 2 else res.X.reshape(-1, k_axis, res.X.shape[-1])[i]
        present = ~(np.isnan(y) | np.isnan(v))
        start = 1 if res.intercept else 0
        mods = {name: x[present, j] for j, name in enumerate(res.names[start:], start=start)}
        return metareg(
            y[present],
            v[present],
            mods=mods,
            intercept=res.intercept,
            method=res.method,
            test=res.test,
            level=res.level,
            btt=list(res.btt),
            control=res.control or None,
        )

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python lists (JSON-serialisable; NaN/inf become ``None``)."""
        res = self.compute()
        d = {name: plain(np.asarray(getattr(res, name))) for name in _MR_COEF_FIELDS}
        d |= {name: plain(np.asarray(getattr(res, name))) for name in _MR_ROW_FIELDS}
        d |= {
            "names": list(res.names),
            "btt": list(res.btt),
            "failed": {str(i): r for i, r in res.failed.items()},
            "method": res.method,
            "test": res.test,
            "level": res.level,
        }
        return d

    def to_frame(self) -> Any:
        """A pandas DataFrame with one row per analysis: ``coef[name]``, ``se[name]``, ...
        columns per coefficient, then the per-analysis statistics (requires pandas)."""
        pd = import_pandas()
        res = self.compute()
        cols: dict[str, Any] = {}
        p = len(res.names)
        for field in _MR_COEF_FIELDS:
            arr = np.asarray(getattr(res, field)).reshape(-1, p)
            for j, name in enumerate(res.names):
                cols[f"{field}[{name}]"] = arr[:, j]
        for field in _MR_ROW_FIELDS:
            cols[field] = np.asarray(getattr(res, field)).reshape(-1)
        return pd.DataFrame(cols)


def _batch_design(
    mods: Any, data: Any, intercept: bool, k: int, m: int
) -> tuple[FloatArray, tuple[str, ...], bool, FloatArray | None]:
    """The design of a batch meta-regression: ``(k, p)`` shared or ``(m, k, p)`` per row,
    its coefficient names, whether it has an intercept, and for a shared design the studies
    with a missing moderator (absent from every analysis; else None)."""
    from ._modelmatrix import model_matrix
    from ._validation import as_float

    per_row = not isinstance(mods, str | dict) and np.ndim(mods) == 3
    if not per_row:
        mm = model_matrix(mods, data=data, intercept=intercept, k=k)
        missing = np.zeros(k, dtype=bool)
        missing[list(mm.missing)] = True
        mm, dropped = mm.reduce(np.flatnonzero(~missing))
        if dropped:
            import warnings

            from ._warnings import CollinearityWarning

            warnings.warn(
                f"moderators {list(dropped)} are linear combinations of earlier ones and "
                "were dropped (as metafor)",
                CollinearityWarning,
                stacklevel=4,
            )
        x = np.where(missing[:, None], 0.0, mm.x)
        return x, mm.names, mm.intercept, missing
    arr = as_float(mods, "mods")
    if arr.shape[:2] != (m, k):
        msg = (
            f"`mods` with one design per analysis must have shape (analyses, studies, "
            f"moderators) = ({m}, {k}, q), got {arr.shape}"
        )
        raise ValueError(msg)
    q = arr.shape[2]
    names = tuple(f".{j + 1}" for j in range(q)) if q > 1 else ("mods",)
    if intercept:
        arr = np.concatenate([np.ones((m, k, 1)), arr], axis=2)
        names = ("intrcpt", *names)
    return arr, names, intercept, None


def _metareg_many(
    Y: Any,
    V: Any,
    SE: Any,
    *,
    mods: Any,
    data: Any,
    intercept: bool,
    btt: Any,
    method: str,
    test: str,
    level: float,
    axis: int,
    control: dict[str, Any],
    user_control: dict[str, Any] | None,
    chunk_size: int | None,
    workers: int,
) -> BatchMetaRegResult:
    from .metareg import _btt

    if _is_dask(Y) or _is_dask(V) or _is_dask(SE) or _is_dask(mods):
        return _metareg_many_dask(
            Y,
            V,
            SE,
            mods=mods,
            intercept=intercept,
            btt=btt,
            method=method,
            test=test,
            level=level,
            control=control,
            user_control=user_control,
            chunk_size=chunk_size,
        )
    y, v, batch_shape, complete = prepare_batch(Y, V, SE, axis)
    m, k = y.shape
    x, names, has_intercept, missing = _batch_design(mods, data, intercept, k, m)
    if missing is not None and missing.any():
        import warnings

        from ._validation import name_studies
        from ._warnings import OmittedStudiesWarning

        gone = np.flatnonzero(missing)
        warnings.warn(
            f"{gone.size} {'study' if gone.size == 1 else 'studies'} omitted from every "
            f"analysis: {name_studies(gone)} {'has' if gone.size == 1 else 'have'} a missing "
            "moderator",
            OmittedStudiesWarning,
            stacklevel=3,
        )
        y[:, missing] = np.nan
        v[:, missing] = np.nan
        complete = False
    elif x.ndim == 3:
        bad = np.isnan(x).any(axis=2)
        if bad.any():
            y[bad], v[bad] = np.nan, np.nan
            complete = False
            x = np.where(np.isnan(x), 0.0, x)
    idx = _btt(btt, names) if btt is not None else None
    out = _rows.fit_rows(
        y,
        v,
        x,
        intercept=has_intercept,
        method=method,
        test=test,
        level=level,
        control=control,
        chunk_size=chunk_size,
        workers=workers,
        complete=complete,
        btt=idx,
    )
    return _metareg_result(
        out,
        y,
        v,
        x,
        batch_shape,
        names=names,
        intercept=has_intercept,
        btt=idx,
        method=method,
        test=test,
        level=level,
        control=user_control,
    )


def _too_few(out: dict[str, Any], p: int, method: str) -> Any:
    """Analyses with fewer studies than the model needs (at most p for EE, fewer for the
    others; metafor's rule), which fit_rows does not refuse by itself."""
    k = out["k"]
    return (k > 0) & ((k < p) if method == "EE" else (k <= p))


def _metareg_result(
    out: dict[str, Any],
    y: Any,
    v: Any,
    x: Any,
    batch_shape: tuple[int, ...],
    *,
    names: tuple[str, ...],
    intercept: bool,
    btt: list[int] | None,
    method: str,
    test: str,
    level: float,
    control: dict[str, Any] | None,
) -> BatchMetaRegResult:
    from ._engine.model import default_btt

    p = len(names)
    few = _too_few(out, p, method)
    if few.any():
        for name in (*_MR_COEF_FIELDS, *_MR_ROW_FIELDS):
            if name not in ("k", "converged", "iterations"):
                out[name][few] = np.nan
    failed = _rows.failures(
        out["k"], out["converged"], out["coef"][:, 0], method, singular=out["singular"]
    )
    for i in np.flatnonzero(few):
        failed[int(i)] = f"fewer studies than the model needs (k = {int(out['k'][i])}, p = {p})"
    k_axis = y.shape[-1]
    fields = {name: out[name].reshape(batch_shape) for name in _MR_ROW_FIELDS}
    fields["converged"] = fields["converged"].astype(bool)
    fields |= {name: out[name].reshape((*batch_shape, p)) for name in _MR_COEF_FIELDS}
    return BatchMetaRegResult(
        **fields,
        names=names,
        intercept=intercept,
        btt=tuple(default_btt(p, intercept) if btt is None else btt),
        X=x,
        yi=y.reshape((*batch_shape, k_axis)),
        vi=v.reshape((*batch_shape, k_axis)),
        failed=failed,
        method=method,
        test=test,
        level=level,
        control=control or {},
    )


def _dask_block_offset(block_info: Any) -> int:
    """The index of a Dask block's first analysis in the whole input."""
    if not block_info:
        return 0
    return int(block_info[0]["array-location"][0][0])


def _metareg_many_dask(
    Y: Any,
    V: Any,
    SE: Any,
    *,
    mods: Any,
    intercept: bool,
    btt: Any,
    method: str,
    test: str,
    level: float,
    control: dict[str, Any],
    user_control: dict[str, Any] | None,
    chunk_size: int | None,
) -> BatchMetaRegResult:
    """:func:`pool_many` with `mods` on Dask arrays: each block of analyses is fitted in
    one task, its results packed in one array (written in place, no copies)."""
    from .metareg import _btt

    da = _dask()
    y, v, use_se = _dask_inputs(Y, V, SE)
    m, k = y.shape
    per_row = _is_dask(mods) or np.ndim(mods) == 3
    if per_row:
        x_all = da.asarray(mods)
        if x_all.shape[:2] != (m, k):
            msg = (
                f"`mods` with one design per analysis must have shape (analyses, studies, "
                f"moderators) = ({m}, {k}, q), got {x_all.shape}"
            )
            raise ValueError(msg)
        q = x_all.shape[2]
        names = tuple(f".{j + 1}" for j in range(q)) if q > 1 else ("mods",)
        if intercept:
            names = ("intrcpt", *names)
        # (flattened to 2-D, so that every input of a block has the same row chunks)
        x_flat = x_all.reshape(m, k * q).rechunk((y.chunks[0], (k * q,)))
        has_intercept, shared = intercept, None
        x_all = x_all.rechunk((y.chunks[0], (k,), (q,)))
    else:
        shared, names, has_intercept, missing = _batch_design(mods, None, intercept, k, m)
        if missing is not None and missing.any():
            msg = "a shared design with missing moderators is not supported for Dask input"
            raise ValueError(msg)
    p = len(names)
    idx = _btt(btt, names) if btt is not None else None
    layout = [(n, p) for n in _MR_COEF_FIELDS] + [(n, 1) for n in (*_MR_ROW_FIELDS, "singular")]
    width = sum(w for _, w in layout)

    def block(yb: Any, vb: Any, *xb: Any, block_info: Any = None) -> FloatArray:
        yb, vb = np.asarray(yb, dtype=np.float64), np.asarray(vb, dtype=np.float64)
        offset = _dask_block_offset(block_info)
        complete = check_batch(yb, vb, "SE" if use_se else "V", row_offset=offset)
        if use_se:
            vb = vb * vb
        xx = shared
        if xb:
            xx = np.array(xb[0], dtype=np.float64).reshape(yb.shape[0], yb.shape[1], -1)
            if has_intercept:
                xx = np.concatenate([np.ones((*xx.shape[:2], 1)), xx], axis=2)
            bad = np.isnan(xx).any(axis=2)
            if bad.any():
                yb, vb = np.where(bad, np.nan, yb), np.where(bad, np.nan, vb)
                xx = np.where(np.isnan(xx), 0.0, xx)
                complete = False
        packed = np.empty((width, yb.shape[0]))
        views: dict[str, FloatArray] = {}
        row = 0
        for name, w in layout:
            views[name] = packed[row : row + w].T if w > 1 else packed[row]
            if w == 1 and name in _MR_COEF_FIELDS:
                views[name] = packed[row : row + 1].T
            row += w
        out = _rows.fit_rows(
            yb,
            vb,
            xx,
            intercept=has_intercept,
            method=method,
            test=test,
            level=level,
            control=control,
            chunk_size=chunk_size,
            complete=complete,
            btt=idx,
            out=views,
        )
        few = _too_few(out, p, method)
        if few.any():
            for name, _ in layout:
                if name not in ("k", "converged", "iterations", "singular"):
                    views[name][few] = np.nan
        return np.asarray(packed.T)

    args = [y, v] + ([x_flat] if per_row else [])
    packed = da.map_blocks(block, *args, dtype=np.float64, chunks=(y.chunks[0], (width,)))
    fields: dict[str, Any] = {}
    col = 0
    for name, w in layout:
        fields[name] = packed[:, col : col + w] if name in _MR_COEF_FIELDS else packed[:, col]
        col += w
    fields.pop("singular")
    fields["converged"] = fields["converged"].astype(bool)
    from ._engine.model import default_btt

    return BatchMetaRegResult(
        **fields,
        names=names,
        intercept=has_intercept,
        btt=tuple(default_btt(p, has_intercept) if idx is None else idx),
        X=_with_intercept(x_all, has_intercept) if per_row else shared,
        yi=_dask_stored(y, v, use_se)[0],
        vi=_dask_stored(y, v, use_se)[1],
        failed={},
        method=method,
        test=test,
        level=level,
        control=user_control or {},
    )


def _with_intercept(x: Any, intercept: bool) -> Any:
    """A lazy per-analysis design with its column of ones first (Dask)."""
    if not intercept:
        return x
    da = _dask()
    ones = da.ones((*x.shape[:2], 1), chunks=(x.chunks[0], x.chunks[1], (1,)))
    return da.concatenate([ones, x], axis=2)


def _dask_stored(y: Any, v: Any, use_se: bool) -> tuple[Any, Any]:
    """The Dask inputs as the NumPy path stores them (``check_batch_rows``): doubles, a
    study missing in either array missing in both, standard errors squared (lazy)."""
    da = _dask()
    yf, vf = y.astype(np.float64), v.astype(np.float64)
    absent = da.isnan(yf) | da.isnan(vf)
    return da.where(absent, np.nan, yf), da.where(absent, np.nan, vf * vf if use_se else vf)


def _dask_inputs(Y: Any, V: Any, SE: Any) -> tuple[Any, Any, bool]:
    """Dask `Y` and `V` (or `SE`) as 2-D (analyses, studies) arrays chunked alike, the
    study axis in one chunk; and whether standard errors were given."""
    da = _dask()
    if (V is None) == (SE is None):
        msg = "give exactly one of `V` (sampling variances) or `SE=` (standard errors)"
        raise TypeError(msg)
    use_se = SE is not None
    y = da.asarray(Y)
    v = da.asarray(SE if use_se else V)
    name_v = "SE" if use_se else "V"
    if any(math.isnan(c) for c in (*y.shape, *v.shape)):
        msg = (
            "Dask arrays with unknown chunk sizes (NaN in the shape) cannot be fitted: call "
            "`.compute_chunk_sizes()` on `Y` and `V` first"
        )
        raise ValueError(msg)
    if y.shape != v.shape:
        msg = f"`Y` has shape {y.shape} but `{name_v}` has shape {v.shape}"
        raise ValueError(msg)
    if y.ndim != 2:
        msg = "Dask input must be 2-D: (analyses, studies)"
        raise ValueError(msg)
    if len(y.chunks[1]) != 1 or len(v.chunks[1]) != 1:
        msg = "the study axis of Dask input must be a single chunk (chunk along the analyses)"
        raise ValueError(msg)
    return y, v.rechunk(y.chunks), use_se
