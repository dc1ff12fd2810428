"""Many analyses at once: the rows of ``(m, k)`` arrays fitted chunk by chunk.

NaN in ``y`` or ``v`` marks an absent study; the engine stores it as ``y = 0, v = inf``
(weight 0). Chunks of rows are fitted by the same :func:`~ketameta._engine.model.fit_design`
as a single analysis (vectorised within a chunk), optionally in threads: NumPy and SciPy
release the GIL in their loops. Results do not depend on the chunk size or the number of
threads.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._typing import FloatArray
from .._validation import check_batch_rows
from . import workspace
from .design import Design
from .model import fit_design, q_profile

#: per-analysis statistics of a fit (arrays of shape (m,))
ROW_FIELDS = (
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
    "v_typical",
    "k",
    "converged",
    "iterations",
)
#: per-coefficient statistics (arrays of shape (m, p))
COEF_FIELDS = ("coef", "se", "statistic", "pvalue", "ci_lower", "ci_upper")
#: the intercept-only model's prediction interval (shape (m,))
PRED_FIELDS = ("pred_lower", "pred_upper")
CI_FIELDS = ("tau2_ci_lower", "tau2_ci_upper")
#: the statistics that :func:`~ketameta._engine.model.derived_statistics` computes from
#: the others (left out with ``derive=False``: the batch results derive them when read)
DERIVED_FIELDS = (
    "df",
    "tau",
    "i2",
    "h2",
    "q_df",
    "q_pvalue",
    "statistic",
    "pvalue",
    "ci_lower",
    "ci_upper",
    *PRED_FIELDS,
)
#: fields that are not statistics: kept for rows that were not fitted
_FLAGS = ("k", "converged", "iterations", "singular", "exact_fit")
#: doubles per (chunk × k) working array by default: 1 MiB, which a core's cache holds
#: (and which stays clear of the allocator returning memory to the system after each
#: chunk); smaller chunks spend more in the per-call overhead of the ~100 NumPy calls a
#: chunk's fit makes per τ² iteration (measured: 2^15 doubles 35 % slower for REML)
CHUNK_DOUBLES = 2**17


@functools.cache
def _output_names(
    pred: bool, derive: bool, no_qm: bool, tau2_ci: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of :func:`fit_rows`'s per-analysis and per-coefficient outputs."""
    names: tuple[str, ...] = ROW_FIELDS + (PRED_FIELDS if pred else ())
    coef_names: tuple[str, ...] = COEF_FIELDS
    if not derive:
        names = tuple(n for n in names if n not in DERIVED_FIELDS)
        coef_names = tuple(n for n in COEF_FIELDS if n not in DERIVED_FIELDS)
        if no_qm:  # (an empty `btt`: no omnibus test)
            names = tuple(n for n in names if n not in ("qm", "qm_pvalue"))
    return names + (CI_FIELDS if tau2_ci else ()), coef_names


#: each thread's scratch copy of a chunk (without `store`), kept between calls: Dask
#: fits its blocks by many calls, and fresh buffers would be faulted in by each
_SCRATCH = threading.local()


def _scratch(k: int, rows: int) -> FloatArray:
    """This thread's ``(2, k, rows)`` scratch buffer (reused while its size fits)."""
    buffers: FloatArray | None = getattr(_SCRATCH, "buffers", None)
    if buffers is None or buffers.shape[1] != k or buffers.shape[2] < rows:
        buffers = _SCRATCH.buffers = np.empty((2, k, rows))
    return buffers


def _chunks(m: int, size: int) -> Iterator[slice]:
    for start in range(0, m, size):
        yield slice(start, min(start + size, m))


def fit_rows(
    y: FloatArray,
    v: FloatArray,
    x: FloatArray | None = None,
    *,
    intercept: bool | None = None,
    method: str,
    test: str,
    level: float,
    control: dict[str, Any],
    tau2_ci: bool = False,
    chunk_size: int | None = None,
    workers: int = 1,
    complete: bool = False,
    btt: Sequence[int] | None = None,
    vcov: bool = False,
    out: dict[str, FloatArray] | None = None,
    derive: bool = True,
    check: str | None = None,
    store: tuple[FloatArray, FloatArray] | None = None,
    row_offset: int = 0,
) -> dict[str, FloatArray]:
    """Fit every row of 2-D `y`, `v` (NaN = absent) with design `x` (None, ``(k, p)`` or
    ``(m, k, p)``), chunk by chunk, `workers` chunks at a time in threads; arrays of
    results (see :data:`ROW_FIELDS`, :data:`COEF_FIELDS`). ``complete=True``: the caller
    knows that no value is NaN. Rows that cannot be fitted have NaN statistics; the
    ``singular`` field flags rows whose studies do not identify the design. `out` may
    hold preallocated arrays for some of the outputs (e.g. views of one packed block),
    which are written in place. ``derive=False`` leaves out :data:`DERIVED_FIELDS`.

    `store`: two ``(k, m)`` arrays into which each chunk of `y` and `v` is copied (the
    result's own copies of the input, transposed: the analyses vary fastest) and then
    fitted from, while in the cache; `check` (``"V"`` or ``"SE"``, the name of `v`)
    validates each chunk there (:func:`~ketameta._validation.check_batch_rows`: an error
    names the analysis by its row in `y` plus `row_offset`) and squares standard errors
    (without `store`, in a scratch copy of the chunk).
    """
    m, k = y.shape
    p = 1 if x is None else x.shape[-1]
    pred = p == 1 and (x is None or bool(intercept))
    names, coef_names = _output_names(pred, derive, btt is not None and not btt, tau2_ci)
    # every row of the outputs is written below (fitted, or NaN / 0 when it has no study)
    given = {} if out is None else out
    out = {name: given[name] if name in given else np.empty(m) for name in names}
    for name in ("singular", "exact_fit"):
        # (zeros from calloc: pages of a flag never set are never touched)
        if name in given:
            out[name] = given[name]
            out[name][...] = 0.0
        else:
            out[name] = np.zeros(m)
    for name in coef_names:
        out[name] = given[name] if name in given else np.empty((m, p))
    if vcov:
        out["vcov"] = given.get("vcov", np.empty((m, p, p)))
    ctl = {**control, "raise_on_failure": False}
    per_row_x = x is not None and x.ndim == 3
    fitted_names = names[: len(names) - len(CI_FIELDS)] if tau2_ci else names

    def fit_chunk(rows: slice) -> None:
        if store is not None or check is not None:
            # the chunk transposed (analyses fastest: sums over the studies in a fixed
            # order) into the result's copy, or a scratch copy (the input is never
            # modified), validated and fitted there while in the cache
            if store is not None:
                yt, vt = store[0][:, rows], store[1][:, rows]
            else:  # (one pair of buffers per thread, reused by its chunks: no page faults)
                buffers = _scratch(k, rows.stop - rows.start)
                yt, vt = (
                    buffers[0, :, : rows.stop - rows.start],
                    buffers[1, :, : rows.stop - rows.start],
                )
            np.copyto(yt, y[rows].T)
            np.copyto(vt, v[rows].T)
            yc, vc = yt.T, vt.T
        else:
            yc, vc = y[rows], v[rows]
        xc = x[rows] if per_row_x and x is not None else x
        n = rows.stop - rows.start
        if check is not None:
            full = check_batch_rows(yc, vc, check, row_offset=row_offset + rows.start)
        else:  # (validated: no inf)
            full = complete or not (
                np.isnan(np.add.reduce(yc, axis=None)) or np.isnan(np.add.reduce(vc, axis=None))
            )
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # `sel`: the rows of the chunk fitted (None: all of them)
            sel: np.ndarray[Any, Any] | None = None
            if full:  # every study present: no masks needed
                yy, vv, xx = yc, vc, xc
            else:
                for name, arr in out.items():  # rows without studies
                    if name not in ("singular", "exact_fit"):
                        arr[rows] = 0.0 if name in _FLAGS else np.nan
                absent = np.isnan(yc) | np.isnan(vc)
                # (np.where's values, in recycled buffers: fresh ones fault in per chunk)
                yy, vv = workspace.like(yc), workspace.like(vc)
                np.copyto(yy, yc)
                np.copyto(yy, 0.0, where=absent)
                np.copyto(vv, vc)
                np.copyto(vv, np.inf, where=absent)
                xx = xc
                if per_row_x and xc is not None:
                    xx = np.where(absent[..., None], 0.0, xc)
                sel = np.flatnonzero((~absent).any(axis=-1))
                if not sel.size:
                    return
                if sel.size < n:
                    yy, vv = yy[sel], vv[sel]
                    if per_row_x and xx is not None:
                        xx = xx[sel]
                else:
                    sel = None
            design = Design(yy, vv, xx, padded=not full, intercept=intercept)
            fit = fit_design(
                design,
                method=method,
                test=test,
                level=level,
                tau2_fixed=None,
                control=ctl,
                btt=btt,
                derive=derive,
            )
            # a slice where every row of the chunk was fitted (fancy indexing costs twice)
            idx: slice | np.ndarray[Any, Any] = rows if sel is None else rows.start + sel
            for name in fitted_names:
                out[name][idx] = fit.get(name, np.nan)  # (no QM when btt is empty)
            for name in ("singular", "exact_fit"):
                if not isinstance(fit[name], bool):  # (False for every row otherwise)
                    out[name][idx] = fit[name]
            for name in coef_names:
                if p == 1:
                    out[name][idx, 0] = fit[name][0]
                else:
                    for j in range(p):
                        out[name][idx, j] = fit[name][j]
            if vcov:
                for i in range(p):
                    for j in range(p):
                        out["vcov"][idx, i, j] = fit["vcov"][i][j]
            # never a silent wrong number: rows that did not converge, overflowed or have a
            # singular design are NaN (their reason: failures())
            ok = np.isfinite(fit["coef"][0])
            if not isinstance(fit["converged"], bool):
                ok &= np.asarray(fit["converged"], dtype=bool)
            if not isinstance(fit["singular"], bool):
                ok &= ~np.asarray(fit["singular"], dtype=bool)
            if not ok.all():
                bad = np.flatnonzero(~ok)
                bad_rows = rows.start + (bad if sel is None else sel[bad])
                for name, arr in out.items():
                    if name not in _FLAGS:
                        arr[bad_rows] = np.nan
            if tau2_ci:
                lo, hi = q_profile(
                    design, level, control, np.maximum(100.0, 10.0 * np.nan_to_num(fit["tau2"]))
                )
                no_df = np.asarray(fit["k"] <= p)
                out["tau2_ci_lower"][idx] = np.where(no_df, np.nan, lo)
                out["tau2_ci_upper"][idx] = np.where(no_df, np.nan, hi)

    if chunk_size is None:
        chunk_size = max(256, CHUNK_DOUBLES // max(k * (p if per_row_x else 1), 1))
    chunk_size = min(chunk_size, max(m, 1))
    chunks = list(_chunks(m, chunk_size))
    if workers > 1 and len(chunks) > 1:
        # NumPy and SciPy release the GIL in their loops: chunks in threads run in parallel
        with ThreadPoolExecutor(min(workers, len(chunks))) as executor:
            for _ in executor.map(fit_chunk, chunks):
                pass  # (re-raises an exception of the first chunk that raised)
    else:
        for rows in chunks:
            fit_chunk(rows)
    return out


def failures(
    k: FloatArray,
    converged: FloatArray,
    estimate: FloatArray,
    method: str,
    singular: FloatArray | None = None,
) -> dict[int, str]:
    """Why each unfitted analysis (NaN `estimate`, the first coefficient) was not fitted,
    by flat index."""
    if not np.isnan(estimate).any():  # (every analysis not fitted has a NaN estimate)
        return {}
    ok = converged.astype(bool)
    failed = {int(i): "no studies (every yi or vi is NaN)" for i in np.flatnonzero(k == 0)}
    if singular is not None:
        for i in np.flatnonzero(singular > 0):
            failed[int(i)] = "the moderators are linearly dependent over the studies present"
    for i in np.flatnonzero((k > 0) & ~ok):
        failed.setdefault(int(i), f"the {method} estimator of tau^2 did not converge")
    for i in np.flatnonzero((k > 0) & ok & ~np.isfinite(estimate)):
        failed.setdefault(int(i), "yi or vi too large: the computation overflows")
    return failed
