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

import math
import warnings
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
    grp1: Any = None,
    grp2: Any = None,
    w1: Any = None,
    w2: Any = None,
    rho: Any = None,
    phi: Any = None,
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
        The time of each effect: effects at times ``t`` and ``s`` correlate by
        ``phi ** |t - s|`` (AR(1)); needs `phi`.
    grp1, grp2 : array_like or str, optional
        The two groups each effect contrasts (e.g. treatment 1 vs control): contrasts
        sharing a group are correlated through it (multiple-treatment studies, Gleser &
        Olkin 2009 [1]_).
    w1, w2 : array_like or str, optional
        The sizes (or inverse-variance weights) of the groups ``grp1`` and ``grp2``
        (default: equal).
    rho : float or pair of floats, optional
        The correlation of effects with different `obs` (or `type`); with both, the
        correlation within a type and between types.
    phi : float, optional
        The autocorrelation per unit of `time1`.
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
    ``r_ij √(v_i v_j)`` with ``r_ij = r_obs · r_time · r_grp``, where

    * ``r_obs`` is 1 for the same `obs` (or `type`) and `rho` otherwise; with both `type`
      and `obs`: 1 for the same type and obs, ``rho[0]`` for the same type and another
      obs, ``rho[1]`` for different types; 1 when neither is given;
    * ``r_time = phi ** |t_i - t_j|`` (1 without `time1`);
    * ``r_grp`` (with `grp1`, `grp2`): effect ``i`` contrasts the means of its groups
      ``a_i`` and ``b_i``, whose variances are ``1/w``; the covariance of two contrasts is
      the variance of each group they share, with the sign of the positions
      (``[a_i = a_j]/w_a + [b_i = b_j]/w_b - [a_i = b_j]/w_a - [b_i = a_j]/w_b``), and
      ``r_grp`` is that over ``√((1/w_{a_i} + 1/w_{b_i})(1/w_{a_j} + 1/w_{b_j}))`` -- 0.5
      for two treatments against one control of equal sizes (Gleser & Olkin 2009 [1]_,
      eq. 19.13). Without `grp1`/`grp2` every effect of a cluster is from the same sample
      (``r_grp = 1``).

    Effects of different clusters or subgroups are independent. Within-subject contrasts
    (metafor's ``time2``) and correlation matrices for `rho` are not supported.

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

    def codes(value: Any, name: str) -> Any:
        _, c = group_codes(_arg(value, data, name), name)
        c = np.asarray(c)
        check_length(cast("FloatArray", c), name, k, of="vi")
        missing[:] |= c < 0
        return c

    cl = codes(cluster, "cluster")
    sub = codes(subgroup, "subgroup") if subgroup is not None else np.zeros(k, dtype=np.intp)
    ob = codes(obs, "obs") if obs is not None else None
    ty = codes(type, "type") if type is not None else None
    if (ob is not None or ty is not None) and rho is None:
        msg = "`rho` is required with `obs` or `type` (the correlation of their effects)"
        raise TypeError(msg)
    rho_within = rho_between = 1.0
    if ob is not None and ty is not None:
        items = [rho] if isinstance(rho, int | float) else list(rho)
        if len(items) != 2:
            msg = "with both `obs` and `type`, `rho` must give two correlations (within, between)"
            raise ValueError(msg)
        rho_within = _correlation(items[0], "rho")
        rho_between = _correlation(items[1], "rho")
    elif ob is not None or ty is not None:
        rho_within = _correlation(rho, "rho")
    t = None
    phi_value = 1.0
    if time1 is not None:
        t = as_float(_arg(time1, data, "time1"), "time1").reshape(-1)
        check_length(t, "time1", k, of="vi")
        if np.isinf(t).any():
            i = int(np.flatnonzero(np.isinf(t))[0])
            msg = f"`time1` must be finite; study {i} has time1={t[i]!r}"
            raise ValueError(msg)
        missing |= np.isnan(t)
        if phi is None:
            msg = "`phi` is required with `time1` (the autocorrelation per unit of time)"
            raise TypeError(msg)
        phi_value = _correlation(phi, "phi")
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
        _check_group_weights(cl, sub, g1, g2, inv_w1, inv_w2, missing)
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
        if ob is not None and ty is not None:
            same_t = ty[members][:, None] == ty[members][None, :]
            same_o = ob[members][:, None] == ob[members][None, :]
            r = np.where(same_t, np.where(same_o, 1.0, rho_within), rho_between)
        elif ob is not None or ty is not None:
            lab = ob if ob is not None else ty
            assert lab is not None
            r = np.where(lab[members][:, None] == lab[members][None, :], 1.0, rho_within)
        if t is not None:
            lag = np.abs(t[members][:, None] - t[members][None, :])
            with np.errstate(divide="ignore", invalid="ignore"):
                r = r * np.where(lag == 0, 1.0, np.power(phi_value, lag))
        if g1 is not None:
            assert g2 is not None
            assert inv_w1 is not None
            assert inv_w2 is not None
            a, b = g1[members], g2[members]
            wa, wb = inv_w1[members], inv_w2[members]
            cov = (
                (a[:, None] == a[None, :]) * wa[:, None]
                + (b[:, None] == b[None, :]) * wb[:, None]
                - (a[:, None] == b[None, :]) * wa[:, None]
                - (b[:, None] == a[None, :]) * wb[:, None]
            )
            var = wa + wb
            r = r * cov / np.sqrt(var[:, None] * var[None, :])
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


def _check_group_weights(
    cl: Any, sub: Any, g1: Any, g2: Any, iw1: FloatArray, iw2: FloatArray, missing: Any
) -> None:
    """A group must have one size within its cluster."""
    seen: dict[tuple[int, int, int], tuple[float, int]] = {}
    for i in np.flatnonzero(~missing):
        for g, w in ((g1[i], iw1[i]), (g2[i], iw2[i])):
            key = (int(cl[i]), int(sub[i]), int(g))
            if key in seen and not math.isclose(seen[key][0], float(w), rel_tol=1e-12):
                msg = (
                    f"group sizes differ for the same group in one cluster (studies "
                    f"{seen[key][1]} and {int(i)}): `w1`/`w2` must give one size per group"
                )
                raise ValueError(msg)
            seen.setdefault(key, (float(w), int(i)))
