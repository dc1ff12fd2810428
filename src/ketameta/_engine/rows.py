"""Many analyses at once: the rows of ``(m, k)`` arrays fitted chunk by chunk.

NaN in ``y`` or ``v`` marks an absent study; the engine stores it as ``y = 0, v = inf``
(weight 0). Chunks of rows are fitted by the same :func:`~ketameta._engine.model.fit_design`
as a single analysis (vectorised within a chunk), optionally in threads: NumPy and SciPy
release the GIL in their loops. Results do not depend on the chunk size or the number of
threads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._typing import FloatArray
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
#: doubles per (chunk × k) working array by default: 1 MiB, which a core's cache holds
#: (and which stays clear of the allocator returning memory to the system after each chunk)
CHUNK_DOUBLES = 2**17


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
) -> dict[str, FloatArray]:
    """Fit every row of 2-D `y`, `v` (NaN = absent) with design `x` (None, ``(k, p)`` or
    ``(m, k, p)``), chunk by chunk, `workers` chunks at a time in threads; arrays of
    results (see :data:`ROW_FIELDS`, :data:`COEF_FIELDS`). ``complete=True``: the caller
    knows that no value is NaN. Rows that cannot be fitted have NaN statistics; the
    ``singular`` field flags rows whose studies do not identify the design. `out` may
    hold preallocated arrays for some of the outputs (e.g. views of one packed block),
    which are written in place."""
    m, k = y.shape
    p = 1 if x is None else x.shape[-1]
    pred = p == 1 and (x is None or bool(intercept))
    names = ROW_FIELDS + (PRED_FIELDS if pred else ()) + (CI_FIELDS if tau2_ci else ())
    # every row of the outputs is written below (fitted, or NaN / 0 when it has no study)
    given = {} if out is None else out
    out = {name: given.get(name, np.empty(m)) for name in names}
    out["singular"] = given.get("singular", np.zeros(m))
    out["exact_fit"] = given.get("exact_fit", np.zeros(m))
    out["singular"][...] = 0.0
    out["exact_fit"][...] = 0.0
    for name in COEF_FIELDS:
        out[name] = given.get(name, np.empty((m, p)))
    if vcov:
        out["vcov"] = given.get("vcov", np.empty((m, p, p)))
    ctl = {**control, "raise_on_failure": False}
    per_row_x = x is not None and x.ndim == 3

    def fit_chunk(rows: slice) -> None:
        # column-major chunks: the sums over studies then run over contiguous memory
        yc, vc = np.asfortranarray(y[rows]), np.asfortranarray(v[rows])
        xc = x[rows] if per_row_x and x is not None else x
        # (validated: no inf)
        full = complete or not (np.isnan(yc.sum()) or np.isnan(vc.sum()))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if full:  # every study present: no masks needed
                sel = np.arange(yc.shape[0])
                yy, vv, xx = yc, vc, xc
            else:
                for name, arr in out.items():  # rows without studies
                    arr[rows] = (
                        0.0 if name in ("k", "converged", "singular", "exact_fit") else np.nan
                    )
                absent = np.isnan(yc) | np.isnan(vc)
                yy = np.where(absent, 0.0, yc)
                vv = np.where(absent, np.inf, vc)
                xx = xc
                if per_row_x and xc is not None:
                    xx = np.where(absent[..., None], 0.0, xc)
                sel = np.flatnonzero((~absent).any(axis=-1))
                if sel.size < yc.shape[0]:
                    yy, vv = yy[sel], vv[sel]
                    if per_row_x and xx is not None:
                        xx = xx[sel]
            if not sel.size:
                return
            design = Design(yy, vv, xx, padded=not full, intercept=intercept)
            fit = fit_design(
                design,
                method=method,
                test=test,
                level=level,
                tau2_fixed=None,
                control=ctl,
                btt=btt,
            )
            # a slice where every row of the chunk was fitted (fancy indexing costs twice)
            idx: slice | np.ndarray[Any, Any] = (
                rows if sel.size == yc.shape[0] else rows.start + sel
            )
            for name in names[: len(names) - (len(CI_FIELDS) if tau2_ci else 0)]:
                out[name][idx] = fit.get(name, np.nan)  # (no QM when btt is empty)
            out["singular"][idx] = fit["singular"]
            out["exact_fit"][idx] = fit["exact_fit"]
            for name in COEF_FIELDS:
                for j in range(p):
                    out[name][idx, j] = fit[name][j]
            if vcov:
                for a in range(p):
                    for b in range(p):
                        out["vcov"][idx, a, b] = fit["vcov"][a][b]
            # never a silent wrong number: rows that did not converge, overflowed or have a
            # singular design are NaN (their reason: failures())
            bad = (
                ~np.asarray(fit["converged"], dtype=bool)
                | ~np.isfinite(np.asarray(fit["coef"][0]))
                | (np.asarray(fit["singular"]) > 0)
            )
            if bad.any():
                bad_rows = rows.start + sel[bad] if isinstance(idx, slice) else idx[bad]
                for name, arr in out.items():
                    if name not in ("k", "converged", "iterations", "singular", "exact_fit"):
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
    chunks = list(_chunks(m, chunk_size))
    if workers > 1 and len(chunks) > 1:
        # NumPy and SciPy release the GIL in their loops: chunks in threads run in parallel
        with ThreadPoolExecutor(min(workers, len(chunks))) as executor:
            for _ in executor.map(fit_chunk, chunks):
                pass  # (re-raises an exception of any chunk)
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
