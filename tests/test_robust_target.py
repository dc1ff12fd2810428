"""CR2 with a user-specified target, saddlepoint t tests, and robumeta's user weights.

Reference values: ``tests/reference/robust_target_reference.json``, written by
``validation/metafor/make_robust_target_reference.R``: clubSandwich 0.5.8's ``vcovCR(...,
target = )`` (CR0, CR1, CR2) with ``coef_test`` (Satterthwaite, saddlepoint) and
``Wald_test`` (HTZ) on ``rma.uni`` fits (Konstantopoulos 2011, robumeta's corrdat; targets:
the model, ``vi``, 1) and an ``rma.mv`` fit with a ``vcalc`` V (Assink et al. 2016; targets:
the model, ``vi``, ``V``); robumeta 2.0's ``robu(..., userweights = )`` with and without
small-sample corrections. The covariances, Satterthwaite df and HTZ tests agree to 1e-10;
the saddlepoint p-values to 1e-4 relative, because clubSandwich solves the saddlepoint
equation with ``uniroot``'s default tolerance (ketameta's agree with an mpmath solution to
1e-12).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import ketameta
from ketameta._engine import robust as engine

from .conftest import load_reference

REF = load_reference("robust_target_reference.json")
DATA = REF["datasets"]
CLUB = {c["id"]: c for c in REF["club"]}
ROBU = {c["id"]: c for c in REF["robu"]}
TYPES: dict[str, dict[str, Any]] = {
    "CR0": {"method": "CR0", "df": "satterthwaite"},
    "CR1": {"method": "CR1", "adjust": "m/(m-1)", "df": "satterthwaite"},
    "CR2": {"method": "CR2"},
}
RTOL = 1e-10


def _close(got: Any, expected: Any, rtol: float = RTOL, atol: float = 0.0) -> None:
    exp = np.array([np.nan if v is None else v for v in np.ravel(expected)], dtype=float)
    np.testing.assert_allclose(np.ravel(got), exp, rtol=rtol, atol=atol)


def _columns(name: str) -> dict[str, Any]:
    d = DATA[name]
    out: dict[str, Any] = {"yi": d["yi"], "vi": d["vi"], "cluster": d["cluster"]}
    out.update(d["columns"])
    return out


def _fit(case: dict[str, Any]) -> Any:
    data = _columns(case["dataset"])
    rhs = case["formula"].split("~", 1)[1].strip()
    mods = None if rhs == "1" else f"~ {rhs}"
    if case["model"] == "rma.uni":
        if mods is None:
            return ketameta.pool(data["yi"], data["vi"], tau2=case["tau2"])
        return ketameta.metareg("yi", "vi", mods=mods, data=data, tau2=case["tau2"])
    v = ketameta.vcalc("vi", cluster="cluster", obs="esid", rho=0.6, data=data)
    return ketameta.pool_mv(
        "yi", v, random=case["random"], mods=mods, data=data, sigma2=case["sigma2"]
    )


def _target(case: dict[str, Any]) -> Any:
    data = _columns(case["dataset"])
    if case["target"] == "V":
        return ketameta.vcalc("vi", cluster="cluster", obs="esid", rho=0.6, data=data)
    return {
        "model": None,
        "vi": np.asarray(data["vi"]),
        "one": np.ones(len(data["vi"])),
    }[case["target"]]


@pytest.mark.parametrize("typ", list(TYPES))
@pytest.mark.parametrize("name", list(CLUB))
def test_target_matches_clubsandwich(name: str, typ: str) -> None:
    case = CLUB[name]
    ref = case["types"][typ]
    fit = _fit(case)
    _close(fit.coef if hasattr(fit, "coef") else [fit.estimate], case["coef"])
    rob = ketameta.robust(
        fit, _columns(case["dataset"])["cluster"], target=_target(case), **TYPES[typ]
    )
    assert rob.target == ("model" if case["target"] == "model" else "user")
    _close(rob.vcov, ref["vcov"])
    _close(rob.se, ref["se"])
    _close(rob.statistic, ref["tstat"])
    _close(rob.df, ref["df_satt"])
    _close(rob.pvalue, ref["p_satt"], atol=1e-15)
    if "btt" in ref["wald"]:
        htz = ref["wald"]["btt"]
        test = rob.wald_test([j - 1 for j in htz["constraints"]])
        _close(
            [test.statistic, test.delta, test.df_num, test.df_denom],
            [htz["Fstat"], htz["delta"], htz["df_num"], htz["df_denom"]],
        )
        _close(test.pvalue, htz["p_val"], atol=1e-15)
    # saddlepoints: clubSandwich solves K'(s) = 0 to uniroot's default tolerance (~1e-4), so
    # its s agrees to that, and its p-value is the Lugannani-Rice formula at its s (to 1e-6:
    # p-values near 1e-10 are sensitive to the eigenvalues' rounding). Near s = 0 (t^2 near
    # 1) the formula cancels: clubSandwich's p for t = 0.9906 (s = -0.0069) is 0.4064, the
    # formula at its s 0.4366 and at the root (ketameta) 0.4131 (checked with mpmath below)
    sp = rob.saddlepoint()
    _close(sp.saddlepoint, ref["saddlepoint"], atol=2e-4)
    _close(sp.statistic, rob.statistic, rtol=0.0)
    for j in range(rob.p):
        if abs(ref["saddlepoint"][j]) < 0.01:
            continue
        lam = np.linalg.eigvalsh(engine.contrast_covariance(rob.pieces, np.eye(rob.p)[j]))
        lam = np.clip(lam, 0.0, None)
        g = np.concatenate(([1.0], -(float(rob.statistic[j]) ** 2) * lam[lam > 0] / lam.sum()))
        _close(_lugannani_rice_direct(g, ref["saddlepoint"][j]), ref["p_saddle"][j], rtol=1e-6)


def _lugannani_rice_direct(g: np.ndarray, s: float) -> float:
    """The Lugannani-Rice formula as written (Kuonen 1999), at any s (also where K'(s) is
    not quite 0, as clubSandwich's)."""
    one = 1.0 - 2.0 * g * s
    w = math.copysign(math.sqrt(float(np.sum(np.log(one)))), s)
    u = s * math.sqrt(2.0 * float(np.sum(g * g / one**2)))
    phi = math.exp(-0.5 * w * w) / math.sqrt(2.0 * math.pi)
    return 0.5 * math.erfc(w / math.sqrt(2.0)) + phi * (1.0 / u - 1.0 / w)


def _saddlepoint_mpmath(t: float, lam: np.ndarray) -> tuple[float, float]:
    """The Lugannani-Rice approximation of P(T^2 > t^2) at 50 digits (the definition)."""
    mpmath.mp.dps = 50
    lam = [mpmath.mpf(float(x)) for x in lam if x > 0]
    total = mpmath.fsum(lam)
    g = [mpmath.mpf(1)] + [-(mpmath.mpf(t) ** 2) * x / total for x in lam]
    s = mpmath.findroot(
        lambda x: mpmath.fsum(gi / (1 - 2 * gi * x) for gi in g),
        (0.5 / min(g) * (1 - mpmath.mpf(10) ** -30), mpmath.mpf(0))
        if t * t < 1
        else (mpmath.mpf(0), mpmath.mpf("0.5") * (1 - mpmath.mpf(10) ** -30)),
        solver="anderson",
    )
    w = mpmath.sign(s) * mpmath.sqrt(mpmath.fsum(mpmath.log(1 - 2 * gi * s) for gi in g))
    u = s * mpmath.sqrt(2 * mpmath.fsum(gi**2 / (1 - 2 * gi * s) ** 2 for gi in g))
    p = 1 - mpmath.ncdf(w) + mpmath.npdf(w) * (1 / u - 1 / w)
    return float(s), float(p)


@pytest.mark.parametrize(
    "name",
    [
        *[n for n in CLUB if CLUB[n]["target"] != "model"][:3],
        "konstantopoulos2011 rma.uni ~ year_c REML target=model",
    ],
)
def test_saddlepoint_is_its_definition(name: str) -> None:
    case = CLUB[name]
    cluster = _columns(case["dataset"])["cluster"]
    rob = ketameta.robust(_fit(case), cluster, target=_target(case))
    sp = rob.saddlepoint()
    for j in range(rob.p):
        lam = np.linalg.eigvalsh(engine.contrast_covariance(rob.pieces, np.eye(rob.p)[j]))
        s, p = _saddlepoint_mpmath(float(rob.statistic[j]), lam)
        assert sp.saddlepoint[j] == pytest.approx(s, rel=1e-10)
        assert sp.pvalue[j] == pytest.approx(p, rel=1e-10)


def test_saddlepoint_at_t2_one_and_zero() -> None:
    lam = np.array([0.5, 0.3, 0.2])
    # t = 0: T^2 > 0 with probability 1
    assert engine.saddlepoint_test(0.0, lam)[1] == 1.0
    # t^2 = 1: the limit (Daniels) equals the formula just beside it
    at_one = engine.saddlepoint_test(1.0, lam)[1]
    beside = engine.saddlepoint_test(1.0 + 1e-5, lam)[1]
    assert at_one == pytest.approx(beside, abs=2e-5)


def test_contrast_covariance_is_the_working_model_covariance() -> None:
    # the trace of P is the expected robust variance: for CR2 with the model as target it
    # is the model-based variance (CR2 is unbiased)
    case = CLUB["konstantopoulos2011 rma.uni ~ year_c REML target=model"]
    fit = _fit(case)
    rob = ketameta.robust(fit, _columns(case["dataset"])["cluster"])
    for j in range(rob.p):
        pmat = engine.contrast_covariance(rob.pieces, np.eye(rob.p)[j])
        assert np.trace(pmat) == pytest.approx(fit.vcov[j, j], rel=1e-10)


def test_target_checks() -> None:
    case = CLUB["konstantopoulos2011 rma.uni ~ year_c REML target=vi"]
    fit = _fit(case)
    cluster = _columns(case["dataset"])["cluster"]
    k = len(cluster)
    with pytest.raises(ValueError, match="vector of 56 variances"):
        ketameta.robust(fit, cluster, target=np.ones(k - 1))
    bad = np.ones(k)
    bad[3] = -1.0
    with pytest.raises(ValueError, match=r"study 3 has -1\.0"):
        ketameta.robust(fit, cluster, target=bad)
    linked = np.eye(k)
    linked[0, k - 1] = linked[k - 1, 0] = 0.1
    with pytest.raises(ValueError, match="links studies 0 and 55 of different clusters"):
        ketameta.robust(fit, cluster, target=linked)
    asym = np.eye(k)
    asym[0, 1] = 0.1
    with pytest.raises(ValueError, match="symmetric"):
        ketameta.robust(fit, cluster, target=asym)
    singular = np.eye(k)
    singular[0, 1] = singular[1, 0] = 1.0
    with pytest.raises(ValueError, match="not positive definite within the cluster of study 0"):
        ketameta.robust(fit, cluster, target=singular)
    with pytest.raises(TypeError, match="vector or a matrix of numbers"):
        ketameta.robust(fit, cluster, target="vi")
    # the model's own covariance as target is the default
    default = ketameta.robust(fit, cluster)
    same = ketameta.robust(fit, cluster, target=np.asarray(fit.vi) + fit.tau2)
    _close(same.vcov, default.vcov, rtol=1e-12)
    _close(same.df, default.df, rtol=1e-10)


@pytest.mark.parametrize("name", list(ROBU))
def test_userweights_match_robumeta(name: str) -> None:
    case = ROBU[name]
    data = _columns(case["dataset"])
    rhs = case["formula"].split("~", 1)[1].strip()
    mods = None if rhs == "1" else f"~ {rhs}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.DegenerateDataWarning)
        fit = ketameta.rve(
            "yi",
            "vi",
            cluster="cluster",
            mods=mods,
            data=data,
            userweights=case["weights"],
            small=case["small"],
        )
    assert fit.modelweights == "USER"
    assert math.isnan(fit.tau2)
    _close(fit.coef, case["coef"])
    # robu(small = FALSE) stores the sandwich without the factor m/(m - p) of its SEs
    scale = 1.0 if case["small"] else (fit.n_clusters - fit.p) / fit.n_clusters
    _close(fit.vcov * scale, case["vcov"])
    _close(fit.se, case["se"])
    _close(fit.statistic, case["t"])
    _close(fit.df, case["dfs"])
    # (robumeta's p-values: 2 * (1 - pt(|t|, df)), accurate to ~1e-16 absolute)
    _close(fit.pvalue, case["prob"], atol=1e-14)
    _close(fit.ci_lower, case["ci_l"])
    _close(fit.ci_upper, case["ci_u"])
    if case["club_CR2"] is not None:
        # clubSandwich's vcovCR of the robu fit: the same covariance, other df (its
        # working model for the df is diag(mean variance); robumeta's is the identity)
        _close(fit.se, case["club_CR2"]["se"])
        assert not np.allclose(fit.df, case["club_CR2"]["df_satt"], rtol=1e-6)


def test_userweights_checks_and_summary() -> None:
    data = _columns("konstantopoulos2011")
    k = len(data["yi"])
    zero = [1.0, 1.0, 0.0] + [1.0] * (k - 3)
    with pytest.raises(ValueError, match=r"effect 2 has 0\.0"):
        ketameta.rve("yi", "vi", cluster="cluster", data=data, userweights=zero)
    with pytest.raises(ValueError, match="userweights"):
        ketameta.rve("yi", "vi", cluster="cluster", data=data, userweights=[1.0] * (k - 1))
    w = [1.0] * k
    w[5] = math.nan
    with pytest.warns(ketameta.OmittedStudiesWarning):
        fit = ketameta.rve("yi", "vi", cluster="cluster", data=data, userweights=w)
    assert fit.omitted == (5,)
    text = fit.summary()
    assert text.startswith("RVE: User Specified Weights with Small-Sample Corrections")
    assert "Tau.sq" not in text


@pytest.mark.parametrize("seed", range(6))
def test_cr2_with_a_target_is_unbiased_under_it(seed: int) -> None:
    # E[V^CR2] = B X'W Phi W X B when Var(y) = Phi (Pustejovsky & Tipton 2018, eq. 5): the
    # expected robust variance of each coefficient is tr P, the working-model covariance of
    # its cluster terms; and the df is (tr P)^2 / tr P^2 of that P built densely here
    rng = np.random.default_rng(seed)
    m = 7
    sizes = rng.integers(1, 5, size=m)
    codes = np.repeat(np.arange(m), sizes)
    k = codes.size
    x = np.column_stack([np.ones(k), rng.normal(size=k), np.repeat(rng.normal(size=m), sizes)])
    theta = rng.uniform(0.02, 0.3, size=k)
    blocks = np.zeros((k, k))
    for j in range(m):
        idx = np.flatnonzero(codes == j)
        a = rng.normal(size=(idx.size, idx.size))
        blocks[np.ix_(idx, idx)] = a @ a.T + idx.size * np.eye(idx.size) * 0.1
    y = rng.normal(size=k)
    w = 1.0 / theta
    bread = np.linalg.inv(x.T @ (w[:, None] * x))
    coef = bread @ x.T @ (w * y)
    pieces = engine.cluster_pieces(x, y - x @ coef, theta, codes, m, "CR2", blocks)
    expected = bread @ x.T @ np.diag(w) @ blocks @ np.diag(w) @ x @ bread
    # dense P: z_j = c'B X_j'W_j A_j (I - H)_j y, with A_j from the definition
    ih = np.eye(k) - x @ bread @ x.T @ np.diag(w)
    rows = []
    for j in range(m):
        idx = np.flatnonzero(codes == j)
        d = np.linalg.cholesky(blocks[np.ix_(idx, idx)]).T  # D'D = Phi_j
        mj = ih[idx] @ blocks @ ih[idx].T
        lam, vec = np.linalg.eigh(d @ mj @ d.T)
        aj = d.T @ (vec / np.sqrt(lam)) @ vec.T @ d
        rows.append(bread @ x[idx].T @ np.diag(w[idx]) @ aj @ ih[idx])
    for i in range(x.shape[1]):
        g = np.array([r[i] for r in rows])  # (m, k)
        p_dense = g @ blocks @ g.T
        p_engine = engine.contrast_covariance(pieces, np.eye(x.shape[1])[i])
        np.testing.assert_allclose(
            p_engine, p_dense, rtol=1e-9, atol=1e-12 * np.abs(p_dense).max()
        )
        assert np.trace(p_engine) == pytest.approx(expected[i, i], rel=1e-9)
        df = np.trace(p_dense) ** 2 / np.trace(p_dense @ p_dense)
        assert engine.satterthwaite_df(pieces, np.eye(x.shape[1])[i : i + 1])[0] == pytest.approx(
            df, rel=1e-9
        )
