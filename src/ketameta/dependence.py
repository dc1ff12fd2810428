"""The sampling covariance of dependent effect sizes: :func:`vcalc` (metafor's ``vcalc``).

References
----------
.. [1] Gleser, L. J., & Olkin, I. (2009). Stochastically dependent effect sizes. In H.
   Cooper, L. V. Hedges, & J. C. Valentine (Eds.), The Handbook of Research Synthesis and
   Meta-Analysis (2nd ed., pp. 357-376). Russell Sage Foundation.
.. [2] Pustejovsky, J. E., & Tipton, E. (2022). Meta-analysis with robust variance
   estimation: Expanding the range of working models. Prevention Science, 23(3), 425-438.
   https://doi.org/10.1007/s11121-021-01246-3
.. [3] Viechtbauer, W. (2022). vcalc: Construct or approximate the variance-covariance
   matrix of dependent effect sizes or outcomes. metafor documentation, version 3.8.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
from scipy import sparse as sp

from ._typing import ArrayLike, FloatArray
from ._validation import as_float, as_float_array, as_number, check_length
from ._warnings import DegenerateDataWarning
from .subgroups import group_codes

__all__ = ["vcalc"]


def _arg(value: Any, data: Any, name: str) -> Any:
    if isinstance(value, str):
        if data is None:
            msg = f"`{name}` is the column name {value!r}, so `data` is required"
            raise TypeError(msg)
        try:
            return data[value]
        except (KeyError, IndexError, TypeError):
            msg = f"`{name}`: `data` has no column {value!r}"
            raise ValueError(msg) from None
    return value


def _correlation(value: Any, name: str) -> float:
    r = as_number(value, name)
    if not -1.0 <= r <= 1.0:
        msg = f"`{name}` must be a correlation in [-1, 1], got {value!r}"
        raise ValueError(msg)
    return r


def vcalc(
    vi: ArrayLike | str,
    *,
    cluster: Any,
    subgroup: Any = None,
    obs: Any = None,
    type: Any = None,
    time1: Any = None,
    time2: Any = None,
    grp1: Any = None,
    grp2: Any = None,
    w1: Any = None,
    w2: Any = None,
    rho: Any = None,
    phi: Any = None,
    rvars: Any = None,
    data: Any = None,
    sparse: bool = False,
) -> Any:
    """The sampling covariance matrix ``V`` of dependent effect sizes (metafor's ``vcalc``)
    [3]_: effects in the same cluster (study) that share a sample are correlated.

    Parameters
    ----------
    vi : array_like or str
        The sampling variances (or a column name of `data`).
    cluster : array_like or str
        The cluster (usually the study) of each effect: effects of different clusters are
        independent.
    subgroup : array_like or str, optional
        Independent subgroups (no shared subjects) within a cluster.
    obs : array_like or str, optional
        Distinguishes effects of the same construct measured differently (several scales);
        needs `rho`.
    type : array_like or str, optional
        Distinguishes effects of different constructs (outcomes) measured in the same
        sample; needs `rho` (two values with `obs`).
    time1 : array_like or str, optional
        The time of each effect (of its first condition, for contrasts): effects at times
        ``t`` and ``s`` correlate by ``phi ** |t - s|`` (AR(1)); needs `phi`.
    time2 : array_like or str, optional
        The time of each contrast's second condition (with `time1`, `grp1` and `grp2`):
        within-subject contrasts such as a follow-up against baseline in one group
        (``grp1 = grp2``, ``time1 = 2``, ``time2 = 1``). Default: `time1`.
    grp1, grp2 : array_like or str, optional
        The two groups each effect contrasts (e.g. treatment 1 vs control): contrasts
        sharing a group are correlated through it (multiple-treatment studies, Gleser &
        Olkin 2009 [1]_).
    w1, w2 : array_like or str, optional
        The sizes (or inverse-variance weights) of the conditions ``(grp1, time1)`` and
        ``(grp2, time2)`` (default: equal).
    rho : float, labelled matrix or pair, optional
        The correlation of effects with different `obs` (or different `type`): one number,
        or a correlation matrix with the labels of `obs` (or `type`) as row and column
        names -- a pandas DataFrame, or a mapping ``{label: {label: r}}`` -- for a
        correlation per pair of labels. With both `obs` and `type`: a pair, the
        correlation within a type (between obs) and between types, each a number or a
        labelled matrix (of the `obs` and of the `type` labels).
    phi : float, optional
        The autocorrelation per unit of `time1` (and `time2`), in [-1, 1] (negative values
        need integer times).
    rvars : sequence of str or array_like, optional
        metafor's ``rvars``: the correlation matrix of each cluster, given row by row in
        its effects' rows. With K columns (names of `data`, arrays, or a ``(k, K)``
        array), the effects of a cluster of n take the lower triangle of their first n
        columns (diagonal included; the rest is not read) as their correlation matrix.
        With every `vi` 1 the matrices are covariances (Berkey et al. 1998's reported 2 × 2
        matrices). Cannot be combined with `obs`, `type`, times, groups, `rho` or `phi`.
    data : DataFrame or mapping, optional
        Where column names are looked up.
    sparse : bool
        Return a ``scipy.sparse`` CSR array instead of a dense ``(k, k)`` array.

    Returns
    -------
    ndarray or scipy.sparse.csr_array
        ``V``, ``(k, k)``. An effect with a missing value (variance, cluster, ...) has NaN
        in its row and column (:func:`ketameta.pool_mv` then omits it).

    Warns
    -----
    DegenerateDataWarning
        ``V`` is not positive definite within a cluster (e.g. two effects with the same
        `obs` and time: correlation 1).

    Notes
    -----
    Effects ``i ≠ j`` of the same cluster and subgroup have the covariance
    ``r_ij √(v_i v_j)`` with ``r_ij = r_label · r_cond``, where

    * ``r_label`` is 1 for the same `obs` (or `type`) and ``rho`` (``rho[o_i, o_j]`` for a
      matrix) otherwise; with both `type` and `obs`: ``rho[0]`` between different obs of
      the same type (1 for the same obs) and ``rho[1]`` between types; 1 when neither is
      given;
    * ``r_cond`` is the correlation of the effects as contrasts of conditions. Each
      effect ``i`` is the mean of condition ``(grp1_i, time1_i)`` minus that of
      ``(grp2_i, time2_i)``; a condition's mean has variance ``1/w`` and two conditions
      ``c``, ``d`` have covariance

      ``C(c, d) = [group_c = group_d] · phi^|t_c - t_d| · √((1/w_c)(1/w_d))``

      (measurements of one group are autocorrelated over time, different groups are
      independent). The covariance of two effects is the signed sum
      ``C(1_i, 1_j) - C(1_i, 2_j) - C(2_i, 1_j) + C(2_i, 2_j)`` and ``r_cond`` is that over
      the square root of the product of the two variances (Gleser & Olkin 2009 [1]_,
      eq. 19.13, with time). Two treatments against one control of equal sizes at one
      time: 0.5; follow-ups at times 2 and 3 against baseline 1 in one group:
      ``(1 - phi²)/√((2 - 2phi)(2 - 2phi²))``. Without `grp1`/`grp2` every
      effect of a cluster is one condition of the same sample, so ``r_cond =
      phi^|time1_i - time1_j|`` (1 without `time1`).

    Effects of different clusters or subgroups are independent. With `rvars`, ``r_ij`` is
    read from the columns instead (``V_ii = r_ii v_i``). Unlike metafor, a correlation
    matrix for `rho` must be symmetric with a unit diagonal, missing times omit the effect
    (metafor stops), a contrast of a condition with itself raises an error (metafor
    returns NaN everywhere), and `rvars` with other dependence arguments raises an error
    (metafor ignores the others with a warning).

    References
    ----------
    .. [1] Gleser & Olkin (2009), in The Handbook of Research Synthesis and Meta-Analysis.
    .. [2] Pustejovsky & Tipton (2022), Prev Sci 23(3):425-438.
    .. [3] Viechtbauer (2022), metafor 3.8 documentation of ``vcalc``.

    Examples
    --------
    Two outcomes measured in the same sample, correlated 0.6:

    >>> import ketameta
    >>> V = ketameta.vcalc([0.04, 0.09, 0.05], cluster=[1, 1, 2], obs=[1, 2, 1], rho=0.6)
    >>> V.round(4).tolist()
    [[0.04, 0.036, 0.0], [0.036, 0.09, 0.0], [0.0, 0.0, 0.05]]
    """
    v = as_float_array(_arg(vi, data, "vi"), "vi")
    k = v.shape[0]
    bad = (v <= 0) | np.isinf(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = f"`vi` must be positive and finite; study {i} has vi={v[i]!r}"
        raise ValueError(msg)
    missing = np.isnan(v)

    def codes(value: Any, name: str) -> tuple[list[Any], Any]:
        levels, c = group_codes(_arg(value, data, name), name)
        c = np.asarray(c)
        check_length(cast("FloatArray", c), name, k, of="vi")
        missing[:] |= c < 0
        return levels, c

    cl = codes(cluster, "cluster")[1]
    sub = codes(subgroup, "subgroup")[1] if subgroup is not None else np.zeros(k, dtype=np.intp)
    rv = None
    if rvars is not None:
        given = {
            "obs": obs, "type": type, "time1": time1, "time2": time2, "grp1": grp1,
            "grp2": grp2, "w1": w1, "w2": w2, "rho": rho, "phi": phi,
        }  # fmt: skip
        other = [name for name, value in given.items() if value is not None]
        if other:
            msg = (
                f"`rvars` gives the correlation matrices themselves: {', '.join(other)} "
                "cannot be used with it (metafor ignores them with a warning)"
            )
            raise TypeError(msg)
        rv = _rvars(rvars, data, k)
    ob = codes(obs, "obs") if obs is not None else None
    ty = codes(type, "type") if type is not None else None
    # the correlation of two effects' labels: r_obs[i, j] (1 where neither label is given)
    r_obs, r_type = _label_correlations(rho, ob, ty)
    t1 = t2 = None
    phi_value = 1.0
    if time2 is not None and time1 is None:
        msg = "`time2` needs `time1` (the time of each effect's first condition)"
        raise TypeError(msg)
    if time2 is not None and (grp1 is None or grp2 is None):
        msg = (
            "`time2` needs `grp1` and `grp2`: it is the time of each contrast's second "
            "condition (use grp1 = grp2 for a within-subject contrast)"
        )
        raise TypeError(msg)
    if time1 is not None:
        t1 = _times(time1, data, "time1", k, missing)
        t2 = _times(time2, data, "time2", k, missing) if time2 is not None else t1
        if phi is None:
            msg = "`phi` is required with `time1` (the autocorrelation per unit of time)"
            raise TypeError(msg)
        phi_value = _correlation(phi, "phi")
        if phi_value < 0:
            lags = np.concatenate((t1, t2))
            lags = lags[np.isfinite(lags)]
            if np.any(lags != np.round(lags)):
                msg = (
                    f"`phi` = {phi_value!r} is negative, so the times must be integers "
                    "(phi ** |t - s| is not real otherwise)"
                )
                raise ValueError(msg)
    g1 = g2 = None
    inv_w1 = inv_w2 = None
    if (grp1 is None) != (grp2 is None):
        msg = "give both `grp1` and `grp2` (the two groups each effect contrasts)"
        raise TypeError(msg)
    if grp1 is not None:
        levels1, c1 = group_codes(_arg(grp1, data, "grp1"), "grp1")
        levels2, c2 = group_codes(_arg(grp2, data, "grp2"), "grp2")
        c1, c2 = np.asarray(c1), np.asarray(c2)
        check_length(cast("FloatArray", c1), "grp1", k, of="vi")
        check_length(cast("FloatArray", c2), "grp2", k, of="vi")
        missing |= (c1 < 0) | (c2 < 0)
        # one code space for the groups of both columns
        names = {lv: i for i, lv in enumerate(dict.fromkeys([*levels1, *levels2]))}
        g1 = np.array([names[levels1[c]] if c >= 0 else -1 for c in c1], dtype=np.intp)
        g2 = np.array([names[levels2[c]] if c >= 0 else -1 for c in c2], dtype=np.intp)
        inv_w1 = _inverse_weights(w1, data, "w1", k, missing)
        inv_w2 = _inverse_weights(w2, data, "w2", k, missing)
    # each effect as a contrast of (at most two) conditions: group, time, variance 1/w, sign
    zeros = np.zeros(k)
    if g1 is not None:
        assert g2 is not None
        assert inv_w1 is not None
        assert inv_w2 is not None
        cond_g = np.stack((g1, g2), axis=1)
        cond_t = np.stack(
            (t1 if t1 is not None else zeros, t2 if t2 is not None else zeros), axis=1
        )
        cond_w = np.stack((inv_w1, inv_w2), axis=1)
        cond_s = np.tile(np.array([1.0, -1.0]), (k, 1))
    else:  # one condition per effect, all in the same sample
        cond_g = np.zeros((k, 1), dtype=np.intp)
        cond_t = (t1 if t1 is not None else zeros)[:, None]
        cond_w = np.ones((k, 1))
        cond_s = np.ones((k, 1))
    # pairs of effects in the same cluster and subgroup
    ok = ~missing
    idx = np.flatnonzero(ok)
    key = np.stack((cl[idx], sub[idx]), axis=1)
    _, grp = np.unique(key, axis=0, return_inverse=True) if idx.size else (None, np.zeros(0))
    grp = np.asarray(grp, dtype=np.intp).reshape(-1)
    rows: list[Any] = []
    cols: list[Any] = []
    vals: list[Any] = []
    sd = np.sqrt(np.where(ok, v, 0.0))
    not_pd: list[int] = []
    order = np.argsort(grp, kind="stable")
    starts: Any = (
        np.flatnonzero(np.r_[True, grp[order][1:] != grp[order][:-1]]) if idx.size else []
    )
    ends = [*list(starts[1:]), idx.size] if idx.size else []
    for s, e in zip(starts, ends, strict=True):
        members = idx[order[s:e]]
        n = members.size
        r = np.ones((n, n))
        if rv is not None:
            r = _rvars_block(rv, members)
        if ob is not None:
            c = ob[1][members]
            r = r_obs[c[:, None], c[None, :]]
        if ty is not None:
            c = ty[1][members]
            between = r_type[c[:, None], c[None, :]]
            # with both labels, the obs correlation applies within a type only
            r = np.where(c[:, None] == c[None, :], r, between)
        if t1 is not None or g1 is not None:
            r = r * _contrast_correlation(
                cond_g[members],
                cond_t[members],
                cond_w[members],
                cond_s[members],
                phi_value,
                members,
            )
        if rv is None:  # (rvars: its diagonal is used, V_ii = r_ii v_i)
            np.fill_diagonal(r, 1.0)
        block = r * sd[members][:, None] * sd[members][None, :]
        if n > 1 and np.linalg.eigvalsh(block)[0] <= 1e-12 * float(np.max(v[members])):
            not_pd.append(int(cl[members[0]]))
        ii, jj = np.meshgrid(members, members, indexing="ij")
        rows.append(ii.reshape(-1))
        cols.append(jj.reshape(-1))
        vals.append(block.reshape(-1))
    if not_pd:
        warnings.warn(
            f"the covariance matrix is not positive definite within {len(not_pd)} cluster(s) "
            "(e.g. effects with the same obs/type and time have correlation 1)",
            DegenerateDataWarning,
            stacklevel=2,
        )
    bad_rows = np.flatnonzero(missing)
    if sparse:
        r_all = np.concatenate([*rows, bad_rows]) if rows or bad_rows.size else np.zeros(0)
        c_all = np.concatenate([*cols, bad_rows]) if cols or bad_rows.size else np.zeros(0)
        v_all = (
            np.concatenate([*vals, np.full(bad_rows.size, np.nan)])
            if vals or bad_rows.size
            else np.zeros(0)
        )
        return sp.csr_array((v_all, (r_all.astype(np.intp), c_all.astype(np.intp))), shape=(k, k))
    out = np.zeros((k, k))
    for r_, c_, v_ in zip(rows, cols, vals, strict=True):
        out[r_, c_] = v_
    out[bad_rows, :] = np.nan
    out[:, bad_rows] = np.nan
    return out


def _times(value: Any, data: Any, name: str, k: int, missing: Any) -> FloatArray:
    t = as_float(_arg(value, data, name), name).reshape(-1)
    check_length(t, name, k, of="vi")
    if np.isinf(t).any():
        i = int(np.flatnonzero(np.isinf(t))[0])
        msg = f"`{name}` must be finite; study {i} has {name}={t[i]!r}"
        raise ValueError(msg)
    missing |= np.isnan(t)
    return t


def _contrast_correlation(
    g: Any, t: FloatArray, iw: FloatArray, sign: FloatArray, phi: float, members: Any
) -> FloatArray:
    """The correlation of the effects of one cluster as contrasts of conditions.

    Condition ``a`` (group ``g_a``, time ``t_a``, variance ``1/w_a``) and condition ``b``
    have the covariance ``[g_a = g_b] phi^|t_a - t_b| sqrt(1/w_a 1/w_b)``; an effect is the
    signed sum of its conditions (``+`` first, ``-`` second).
    """
    same = g[:, :, None, None] == g[None, None, :, :]
    lag = np.abs(t[:, :, None, None] - t[None, None, :, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        decay = np.where(lag == 0, 1.0, np.power(phi, np.where(same, lag, 0.0)))
    scale = np.sqrt(iw[:, :, None, None] * iw[None, None, :, :])
    signs = sign[:, :, None, None] * sign[None, None, :, :]
    cov = np.sum(same * decay * scale * signs, axis=(1, 3))
    var = np.diag(cov).copy()
    tiny = var <= 1e-12 * np.sum(iw, axis=1)
    if tiny.any():
        i = int(members[np.flatnonzero(tiny)[0]])
        msg = (
            f"study {i} contrasts a condition with itself (the same group at the same time, "
            "or at times whose correlation phi ** |time1 - time2| is 1): its sampling "
            "variance would be 0; check `grp1`, `grp2`, `time1`, `time2` and `phi`"
        )
        raise ValueError(msg)
    sd = np.sqrt(var)
    return np.asarray(cov / (sd[:, None] * sd[None, :]), dtype=np.float64)


def _is_matrix(value: Any) -> bool:
    if hasattr(value, "columns") and hasattr(value, "index"):
        return True
    if isinstance(value, Mapping):
        return True
    return bool(np.ndim(value) == 2) if not isinstance(value, str) else False


def _level_name(level: Any) -> list[Any]:
    """The labels a level may carry in a correlation matrix (R names numbers as strings)."""
    out = [level]
    if isinstance(level, float | int | np.integer | np.floating) and not isinstance(level, bool):
        if float(level).is_integer():
            out += [int(level), str(int(level))]
        out.append(str(level))
    return out


def _rho_matrix(value: Any, levels: list[Any], codes: Any, label: str) -> FloatArray:
    """A correlation matrix with labels, aligned to the levels of `obs` or `type`."""
    if hasattr(value, "columns") and hasattr(value, "index"):
        rows = list(value.index)
        cols = list(value.columns)
        mat = as_float(np.asarray(value.to_numpy(dtype=float)), "rho")
    elif isinstance(value, Mapping):
        rows = list(value)
        cols = list(dict.fromkeys(c for r in value.values() for c in r))
        try:
            mat = np.array([[float(value[r].get(c, np.nan)) for c in cols] for r in rows])
        except (TypeError, ValueError, AttributeError):
            msg = "`rho` as a mapping must map each label to a mapping {label: correlation}"
            raise TypeError(msg) from None
    else:
        msg = (
            "a correlation matrix given as `rho` needs labels (the values of "
            f"`{label}`): give a pandas DataFrame with them as index and columns, or a "
            "mapping {label: {label: correlation}}"
        )
        raise TypeError(msg)
    if mat.shape != (len(rows), len(cols)) or len(rows) != len(cols):
        msg = f"`rho` must be a square correlation matrix, got shape {mat.shape}"
        raise ValueError(msg)
    if set(map(repr, rows)) != set(map(repr, cols)):
        msg = "`rho` must have the same labels in its rows and columns"
        raise ValueError(msg)
    col_of = {c: j for j, c in enumerate(cols)}
    mat = mat[:, [col_of[r] for r in rows]]
    if np.any(np.isnan(mat)) or np.any(np.abs(mat) > 1):
        msg = "`rho`: every correlation in the matrix must be in [-1, 1]"
        raise ValueError(msg)
    if not np.allclose(np.diag(mat), 1.0, rtol=0.0, atol=1e-12):
        msg = "`rho` must have 1 on its diagonal (a correlation matrix, not a covariance matrix)"
        raise ValueError(msg)
    if not np.allclose(mat, mat.T, rtol=0.0, atol=1e-12):
        msg = "`rho` must be a symmetric correlation matrix"
        raise ValueError(msg)
    row_of = {r: i for i, r in enumerate(rows)}
    pos: list[int] = []
    used = set(np.asarray(codes)[np.asarray(codes) >= 0].tolist())
    for li, lv in enumerate(levels):
        hit = next((row_of[n] for n in _level_name(lv) if n in row_of), None)
        if hit is None:
            if li in used:
                msg = f"`rho` has no row and column for the `{label}` value {lv!r}"
                raise ValueError(msg)
            hit = 0
        pos.append(hit)
    out = mat[np.ix_(pos, pos)]
    np.fill_diagonal(out, 1.0)
    return np.asarray(out, dtype=np.float64)


def _one_rho(value: Any, labels: tuple[list[Any], Any], label: str) -> FloatArray:
    levels, codes = labels
    n = len(levels)
    if _is_matrix(value):
        return _rho_matrix(value, levels, codes, label)
    r = _correlation(value, "rho")
    out = np.full((n, n), r)
    np.fill_diagonal(out, 1.0)
    return out


def _label_correlations(
    rho: Any, ob: tuple[list[Any], Any] | None, ty: tuple[list[Any], Any] | None
) -> tuple[FloatArray, FloatArray]:
    """The correlation of two labels of `obs` and of `type` (1 for the same label).

    With both, ``rho[0]`` applies within a type (between obs) and ``rho[1]`` between types:
    the caller uses the `obs` matrix for pairs of the same type and the `type` matrix
    otherwise.
    """
    one = np.ones((1, 1))
    if ob is None and ty is None:
        return one, one
    if rho is None:
        msg = "`rho` is required with `obs` or `type` (the correlation of their effects)"
        raise TypeError(msg)
    if ob is not None and ty is not None:
        items = None if _is_matrix(rho) or isinstance(rho, str) else rho
        try:
            items = list(items) if items is not None else None
        except TypeError:
            items = None
        if items is None or len(items) != 2:
            msg = (
                "with both `obs` and `type`, `rho` must give two correlations (within a "
                "type, between types), each a number or a labelled matrix"
            )
            raise ValueError(msg)
        return _one_rho(items[0], ob, "obs"), _one_rho(items[1], ty, "type")
    labels = ob if ob is not None else ty
    assert labels is not None
    if not _is_matrix(rho) and np.ndim(rho) != 0:
        msg = (
            "with only `obs` or only `type`, `rho` must be one correlation or a labelled "
            "correlation matrix"
        )
        raise ValueError(msg)
    r = _one_rho(rho, labels, "obs" if ob is not None else "type")
    return (r, one) if ob is not None else (one, r)


def _inverse_weights(w: Any, data: Any, name: str, k: int, missing: Any) -> FloatArray:
    if w is None:
        return np.ones(k)
    arr = as_float_array(_arg(w, data, name), name)
    check_length(arr, name, k, of="vi")
    bad = (arr <= 0) | np.isinf(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = (
            f"`{name}` must be positive group sizes (or weights); study {i} has {name}={arr[i]!r}"
        )
        raise ValueError(msg)
    missing |= np.isnan(arr)
    with np.errstate(invalid="ignore"):
        return np.asarray(1.0 / arr, dtype=np.float64)


def _rvars(rvars: Any, data: Any, k: int) -> FloatArray:
    """The `rvars` columns as a (k, K) array: column names of `data`, a sequence of K
    columns, or a (k, K) array."""
    if isinstance(rvars, str):
        rvars = [rvars]
    arr = np.asarray(rvars, dtype=object)
    if arr.ndim == 2 and not isinstance(rvars, list | tuple):
        cols = [arr[:, j] for j in range(arr.shape[1])]
    else:
        cols = [_arg(c, data, "rvars") for c in rvars]
    out = np.column_stack([as_float(c, "rvars").reshape(-1) for c in cols])
    check_length(out[:, 0], "rvars", k, of="vi")
    return np.asarray(out, dtype=np.float64)


def _rvars_block(rv: FloatArray, members: Any) -> FloatArray:
    """The correlation (or, with ``vi = 1``, covariance) matrix of one cluster from the
    lower triangle of its first n `rvars` columns (metafor's ``rvars``)."""
    n = members.size
    if rv.shape[1] < n:
        msg = (
            f"`rvars` has {rv.shape[1]} columns but the cluster of study {int(members[0])} "
            f"has {n} effects: give as many columns as the largest cluster has effects"
        )
        raise ValueError(msg)
    low = np.tril(rv[members][:, :n])
    used = np.tril(np.ones((n, n), dtype=bool))
    bad = used & ~np.isfinite(rv[members][:, :n])
    if bad.any():
        i, j = np.argwhere(bad)[0]
        msg = (
            f"`rvars`: study {int(members[i])} has no value in column {int(j)} (the lower "
            "triangle of each cluster's matrix is needed)"
        )
        raise ValueError(msg)
    return np.asarray(low + np.tril(low, -1).T, dtype=np.float64)
