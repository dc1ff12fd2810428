"""Cluster-robust inference (issue #18): ketameta.robust and ketameta.rve against metafor's
robust(), clubSandwich's vcovCR / coef_test / Wald_test and robumeta's robu
(tests/reference/robust_reference.json, written by
validation/metafor/make_robust_reference.R with metafor 3.8-1, clubSandwich 0.5.8 and
robumeta 2.0), and properties that hold by construction (CR2 with one effect per cluster is
HC2, CR2 is unbiased under the working model, brute-force definitions)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import linalg, stats

import ketameta
from ketameta import DegenerateDataWarning

from .conftest import load_reference

REF = load_reference("robust_reference.json")
DATA = REF["datasets"]
RTOL = 1e-8  # the agreement the issue asks for (observed: 1e-10 or better)

#: clubSandwich's vcovCR types as ketameta's (method, adjust)
CLUB_TYPES: dict[str, dict[str, Any]] = {
    "CR0": {"method": "CR0"},
    "CR1": {"method": "CR1", "adjust": "m/(m-1)"},
    "CR1p": {"method": "CR1", "adjust": "m/(m-p)"},
    "CR1S": {"method": "CR1", "adjust": "Stata"},
    "CR2": {"method": "CR2"},
    "CR3": {"method": "CR3"},
}
#: metafor's robust() settings as ketameta's
METAFOR_SETTINGS: dict[str, dict[str, Any]] = {
    "adjust_true": {"method": "CR1"},
    "adjust_false": {"method": "CR1", "adjust": False},
    "clubSandwich": {"method": "CR2"},
}


def _arr(x: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in np.ravel(x)], dtype=float).reshape(
        np.shape(x)
    )


def _close(actual: Any, expected: Any, rtol: float = RTOL, atol: float = 0.0) -> None:
    """`actual` agrees with `expected` (broadcast: metafor stores one df for all)."""
    actual = np.asarray(actual, float)
    expected = np.broadcast_to(_arr(expected), actual.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def _data(name: str) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    d = DATA[name]
    return np.array(d["yi"], float), _arr(d["vi"]), list(d["cluster"])


def _fit_uni(case: dict[str, Any]) -> Any:
    """ketameta's fit of the rma.uni model of `case` (same data, design and estimator)."""
    y, v, _ = _data(case["dataset"])
    keep = np.array(case["not_na"], bool)
    x = np.array(case["X"], float).reshape(int(keep.sum()), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        if x.shape[1] == 1:
            return ketameta.pool(y, v, method=case["method"], test=case["test"])
        mods = np.full((y.shape[0], x.shape[1] - 1), np.nan)
        mods[keep] = x[:, 1:]  # (NaN moderators where metafor omitted the study)
        return ketameta.metareg(y, v, mods=mods, method=case["method"], test=case["test"])


UNI = {case["id"]: case for case in REF["uni"]}
FITS = {name: _fit_uni(case) for name, case in UNI.items()}


def _robust(fit: Any, cluster: Any, **kwargs: Any) -> ketameta.RobustResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        return ketameta.robust(fit, cluster, **kwargs)


def test_the_fits_are_metafors() -> None:
    # every robust comparison below rests on the same tau^2 (metafor at threshold 1e-13)
    for name, case in UNI.items():
        np.testing.assert_allclose(FITS[name].tau2, case["tau2"], rtol=1e-9, atol=1e-12)


# ---- metafor's robust() ---------------------------------------------------------------------


@pytest.mark.parametrize("setting", list(METAFOR_SETTINGS))
@pytest.mark.parametrize("name", [n for n, c in UNI.items() if c["test"] == "z"])
def test_robust_matches_metafor(name: str, setting: str) -> None:
    case, ref = UNI[name], UNI[name]["metafor"][setting]
    _, _, cluster = _data(case["dataset"])
    rob = _robust(FITS[name], cluster, **METAFOR_SETTINGS[setting])
    _close(rob.vcov, ref["vb"])
    _close(rob.se, ref["se"])
    _close(rob.statistic, ref["tval"])
    _close(rob.df, ref["df"])
    _close(rob.pvalue, ref["pval"], atol=1e-15)
    _close(rob.ci_lower, ref["ci_lb"])
    _close(rob.ci_upper, ref["ci_ub"])
    assert rob.method == {"adjust_true": "CR1", "adjust_false": "CR0"}.get(setting, "CR2")
    if ref["QM"] is None:
        assert rob.omnibus is None
        return
    assert rob.omnibus is not None
    assert [i + 1 for i in rob.omnibus.btt] == [int(b) for b in ref["btt"]]
    _close(rob.omnibus.statistic, ref["QM"])
    _close([rob.omnibus.df_num, rob.omnibus.df_denom], ref["QMdf"])
    _close(rob.omnibus.pvalue, ref["QMp"], atol=1e-15)


def test_knapp_hartung_fits_differ_from_metafor_by_s4() -> None:
    # metafor 3.8's robust() on a test="knha" fit builds the sandwich from the Knapp-Hartung
    # covariance s^2 (X'WX)^-1, so its robust covariance is s^4 times the sandwich; ketameta
    # (like clubSandwich) uses (X'WX)^-1 whatever the test (documented in robust's Notes)
    case = UNI["konstantopoulos2011 REML ~ year test=knha"]
    _, _, cluster = _data(case["dataset"])
    rob = _robust(FITS[case["id"]], cluster, method="CR1")
    _close(rob.vcov * case["s2w"] ** 2, case["metafor"]["adjust_true"]["vb"])
    _close(rob.vcov, case["clubSandwich"]["CR1p"]["vcov"])


# ---- clubSandwich ---------------------------------------------------------------------------

#: Wald tests whose reference is not comparable, and why
#: (1) the robust covariance of every coefficient of "~ year" (years 1976-2000, not centred)
#:     has a condition number near 1e11: clubSandwich's Cholesky of C V C' and its inverse
#:     square root lose 7 or more digits, while ketameta works in an orthonormal
#:     parametrisation; the same hypotheses with the year centred are compared in
#:     test_tests_of_ill_conditioned_designs_equal_the_centred_ones;
#: (2) CR0-type covariances (CR0, CR1, CR1p, CR1S) of "~ year + deltype" on assink2016 are
#:     singular for the test of all coefficients: the reference level "covert" occurs in one
#:     study only, whose residuals then vanish in that direction; clubSandwich inverts a
#:     matrix of rounding errors, ketameta reports NaN with a DegenerateDataWarning
#:     (test_singular_wald_tests_are_nan_with_a_warning).
ILL_CONDITIONED = "year uncentred"
SINGULAR = "singular"


def _wald_status(name: str, kind: str, typ: str) -> str | None:
    case = UNI[name] if name in UNI else MV[name]
    if kind == "all" and case["formula"] in ("~ year",):
        return ILL_CONDITIONED
    cr0_type = typ in ("CR0", "CR1", "CR1p", "CR1S")
    if kind == "all" and cr0_type and case["dataset"] == "assink2016":
        return SINGULAR
    return None


def _cr3_undefined(case: dict[str, Any]) -> bool:
    """The models where one study alone has the reference level "covert" of deltype, so
    that I - H_jj is singular for it: clubSandwich's solve() either fails ("system is
    computationally singular") or returns the inverse of a matrix of rounding errors,
    depending on tau^2; ketameta refuses CR3 (test_cr3_is_undefined_...)."""
    return case["dataset"] == "assink2016" and "deltype" in str(case["formula"])


def _club_cases(cases: dict[str, dict[str, Any]]) -> list[Any]:
    return [
        pytest.param(name, typ, id=f"{name}-{typ}")
        for name, case in cases.items()
        for typ in CLUB_TYPES
        if typ in case["clubSandwich"] and not (typ == "CR3" and _cr3_undefined(case))
    ]


def _check_club(rob: ketameta.RobustResult, ref: dict[str, Any], name: str, typ: str) -> None:
    _close(rob.vcov, ref["vcov"])
    _close(rob.se, ref["se"])
    _close(rob.statistic, ref["tstat"])
    _close(rob.df, ref["df_satt"])
    _close(rob.pvalue, ref["p_satt"], atol=1e-15)
    for kind, wald in ref["wald"].items():
        if _wald_status(name, kind, typ) is not None:
            continue
        idx = [int(i) - 1 for i in wald["constraints"]]
        htz = rob.wald_test(idx)
        tests = wald["tests"]
        assert htz.test == "HTZ"
        _close(htz.statistic, tests["HTZ"]["Fstat"])
        _close(htz.delta, tests["HTZ"]["delta"])
        _close([htz.df_num, htz.df_denom], [tests["HTZ"]["df_num"], tests["HTZ"]["df_denom"]])
        _close(htz.pvalue, tests["HTZ"]["p_val"], atol=1e-15)
        _close(htz.q_statistic / len(idx), tests["chi-sq"]["Fstat"])


@pytest.mark.parametrize(("name", "typ"), _club_cases(UNI))
def test_robust_matches_clubsandwich(name: str, typ: str) -> None:
    case = UNI[name]
    ref = case["clubSandwich"][typ]
    _, _, cluster = _data(case["dataset"])
    rob = _robust(FITS[name], cluster, df="satterthwaite", **CLUB_TYPES[typ])
    _check_club(rob, ref, name, typ)
    # the residual-df versions: coef_test(test = "naive-tp") and Wald_test(test = "Naive-Fp")
    res = _robust(FITS[name], cluster, df="residual", **CLUB_TYPES[typ])
    _close(res.df, ref["df_tp"])
    _close(res.pvalue, ref["p_tp"], atol=1e-15)
    for kind, wald in ref["wald"].items():
        if _wald_status(name, kind, typ) is not None:
            continue
        test = res.wald_test([int(i) - 1 for i in wald["constraints"]])
        fp = wald["tests"]["Naive-Fp"]
        assert test.test == "F"
        _close([test.statistic, test.df_denom], [fp["Fstat"], fp["df_denom"]])
        _close(test.pvalue, fp["p_val"], atol=1e-15)


def test_tests_of_ill_conditioned_designs_equal_the_centred_ones() -> None:
    # beta0 = beta1 = 0 for "~ year" is beta0c = beta1 = 0 for "~ year_c" (an invertible
    # reparametrisation), and the HTZ test does not depend on the parametrisation
    checked = 0
    for method in ("REML", "EE"):
        raw = UNI[f"konstantopoulos2011 {method} ~ year"]
        centred = UNI[f"konstantopoulos2011 {method} ~ year_c"]
        _, _, cluster = _data("konstantopoulos2011")
        for typ, settings in CLUB_TYPES.items():
            rob = _robust(FITS[raw["id"]], cluster, df="satterthwaite", **settings)
            ref = centred["clubSandwich"][typ]["wald"]["all"]["tests"]["HTZ"]
            test = rob.wald_test([0, 1])
            _close(
                [test.statistic, test.df_denom, test.pvalue],
                [ref[k] for k in ("Fstat", "df_denom", "p_val")],
                rtol=1e-8,
            )
            checked += 1
    assert checked == 12


def test_singular_wald_tests_are_nan_with_a_warning() -> None:
    case = UNI["assink2016 REML ~ year + deltype"]
    _, _, cluster = _data("assink2016")
    rob = ketameta.robust(FITS[case["id"]], cluster, method="CR1")
    with pytest.warns(DegenerateDataWarning, match="singular"):
        test = rob.wald_test([0, 1, 2, 3])
    assert math.isnan(test.statistic)
    assert math.isnan(test.pvalue)
    # CR2 keeps a full-rank covariance there, and clubSandwich agrees (checked above)
    rob2 = ketameta.robust(FITS[case["id"]], cluster)
    assert math.isfinite(rob2.wald_test([0, 1, 2, 3]).statistic)


@pytest.mark.parametrize("name", [n for n, c in UNI.items() if _cr3_undefined(c)])
def test_cr3_is_undefined_where_a_cluster_fits_its_effects_exactly(name: str) -> None:
    _, _, cluster = _data("assink2016")
    covert = {
        c
        for c, d in zip(cluster, DATA["assink2016"]["columns"]["deltype"], strict=True)
        if d == "covert"
    }
    assert len(covert) == 1  # (the study where "covert" effects are)
    with pytest.raises(ValueError, match=rf"CR3 is undefined: cluster {covert.pop()} fits"):
        ketameta.robust(FITS[name], cluster, method="CR3")


# ---- multilevel models through the RobustModel protocol -------------------------------------


class ThreeLevelFit:
    """A stand-in for a fitted rma.mv three-level model (the RobustModel protocol): M =
    diag(vi + sigma2[1]) + sigma2[0] * [same cluster], with metafor's estimates of sigma2,
    and the GLS estimates computed here."""

    def __init__(
        self,
        x: np.ndarray,
        yi: np.ndarray,
        vi: np.ndarray,
        cluster: Any,
        sigma2: list[float],
        names: list[str],
    ) -> None:
        same = np.equal.outer(np.asarray(cluster), np.asarray(cluster))
        self.m = np.diag(vi + sigma2[1]) + sigma2[0] * same
        w = np.linalg.inv(self.m)
        self.X, self.yi, self.names = x, yi, tuple(names)
        self.vcov = np.linalg.inv(x.T @ w @ x)
        self.coef = self.vcov @ x.T @ w @ yi

    def marginal_covariance(self) -> np.ndarray:
        return self.m


MV = {case["id"]: case for case in REF["mv"]}


def _mv_fit(case: dict[str, Any]) -> ThreeLevelFit:
    y, v, cluster = _data(case["dataset"])
    x = np.array(case["X"], float).reshape(y.shape[0], -1)
    return ThreeLevelFit(x, y, v, cluster, case["sigma2"], case["names"])


def test_the_stand_in_is_metafors_rma_mv() -> None:
    for case in MV.values():
        fit = _mv_fit(case)
        assert isinstance(fit, ketameta.RobustModel)
        _close(fit.coef, case["coef"], rtol=1e-9)
        _close(fit.vcov, case["vb_model"], rtol=1e-9)


@pytest.mark.parametrize(("name", "typ"), _club_cases(MV))
def test_multilevel_models_match_clubsandwich(name: str, typ: str) -> None:
    case = MV[name]
    _, _, cluster = _data(case["dataset"])
    rob = _robust(_mv_fit(case), cluster, df="satterthwaite", **CLUB_TYPES[typ])
    _check_club(rob, case["clubSandwich"][typ], name, typ)


@pytest.mark.parametrize("setting", list(METAFOR_SETTINGS))
@pytest.mark.parametrize("name", list(MV))
def test_multilevel_models_match_metafor(name: str, setting: str) -> None:
    case, ref = MV[name], MV[name]["metafor"][setting]
    _, _, cluster = _data(case["dataset"])
    rob = _robust(_mv_fit(case), cluster, **METAFOR_SETTINGS[setting])
    _close(rob.vcov, ref["vb"])
    _close(rob.df, ref["df"])
    _close(rob.pvalue, ref["pval"], atol=1e-15)
    _close(rob.ci_lower, ref["ci_lb"])
    if ref["QM"] is not None:
        assert rob.omnibus is not None
        _close([rob.omnibus.statistic, rob.omnibus.df_denom], [ref["QM"], ref["QMdf"][1]])


@pytest.mark.parametrize("setting", list(METAFOR_SETTINGS))
@pytest.mark.parametrize("name", list(MV))
def test_pool_mv_results_match_metafor(name: str, setting: str) -> None:
    # robust() on ketameta's own rma.mv fits (pool_mv, issue #18: another branch; this test
    # runs once both are merged). The reference's rma.mv fits ran at metafor's default
    # convergence, so sigma2 agree to ~3e-7 only: the robust results to 1e-6 (observed 8e-8)
    if not hasattr(ketameta, "pool_mv"):
        pytest.skip("ketameta.pool_mv is not on this branch yet")
    case, ref = MV[name], MV[name]["metafor"][setting]
    y, v, cluster = _data(case["dataset"])
    x = np.array(case["X"], float).reshape(y.shape[0], -1)
    inner = "school" if case["dataset"] == "konstantopoulos2011" else "esid"
    data: dict[str, Any] = {"yi": y, "vi": v, "cluster": cluster}
    data[inner] = DATA[case["dataset"]]["columns"][inner]
    mods = [f"x{j}" for j in range(1, x.shape[1])]
    for j, column in enumerate(mods, start=1):
        data[column] = x[:, j]
    fit = ketameta.pool_mv(
        "yi", "vi", random=f"~ 1 | cluster/{inner}", data=data, mods=mods or None
    )
    assert isinstance(fit, ketameta.RobustModel)
    rob = _robust(fit, cluster, **METAFOR_SETTINGS[setting])
    _close(rob.vcov, ref["vb"], rtol=1e-6)
    _close(rob.df, ref["df"], rtol=1e-6)
    _close(rob.pvalue, ref["pval"], rtol=1e-6)
    _close(rob.ci_lower, ref["ci_lb"], rtol=1e-6)
    _close(rob.ci_upper, ref["ci_ub"], rtol=1e-6)


def test_optional_protocol_attributes() -> None:
    # btt, names, level and summary() are used when the model has them; an intercept-only
    # model has no test of moderators even when its btt names the intercept (metafor prints
    # none for robust() of an intercept-only rma.mv, whose btt is 1)
    case = MV["konstantopoulos2011 rma.mv ~ 1"]
    _, _, cluster = _data(case["dataset"])
    fit = _mv_fit(case)
    plain = ketameta.robust(fit, cluster)
    assert plain.omnibus is None
    assert plain.model == "ThreeLevelFit (k = 56)"
    fit.btt, fit.level = (0,), 0.9  # type: ignore[attr-defined]
    fit.summary = lambda: "Multivariate Meta-Analysis Model (k = 56; method: REML)\n..."  # type: ignore[attr-defined]
    rob = ketameta.robust(fit, cluster)
    assert rob.omnibus is None
    assert rob.level == 0.9
    assert rob.summary().startswith(
        "Cluster-robust inference for: Multivariate Meta-Analysis Model (k = 56; method: REML)"
    )
    # a 90% interval: the t quantile 0.95 at the Satterthwaite df (scipy)
    _close(rob.ci_lower, rob.coef - stats.t.ppf(0.95, rob.df) * rob.se, rtol=1e-12)
    _close(rob.se, plain.se, rtol=1e-15)


def test_random_effects_crossing_clusters_are_refused() -> None:
    case = MV["konstantopoulos2011 rma.mv ~ 1"]
    fit = _mv_fit(case)
    _, _, cluster = _data(case["dataset"])
    coarse = [c // 50 for c in cluster]  # (district 11 and 56 share a "cluster"... )
    finer = [f"{c}-{i % 2}" for i, c in enumerate(cluster)]  # districts split in two
    ketameta.robust(fit, coarse)  # districts nested in coarser clusters: fine
    with pytest.raises(ValueError, match=r"links studies 0 and 1 of different clusters"):
        ketameta.robust(fit, finer)


# ---- robumeta -------------------------------------------------------------------------------

ROBU = {case["id"]: case for case in REF["robu"]}


@pytest.mark.parametrize("name", list(ROBU))
def test_rve_matches_robumeta(name: str) -> None:
    case = ROBU[name]
    y, v, cluster = _data(case["dataset"])
    x = np.array(case["X"], float).reshape(y.shape[0], -1)
    fit = ketameta.rve(
        y,
        v,
        cluster=cluster,
        mods=None if x.shape[1] == 1 else x[:, 1:],
        modelweights=case["modelweights"],
        rho=case["rho"],
        small=case["small"],
    )
    assert (fit.k, fit.n_clusters) == (case["k"], case["n_clusters"])
    _close(fit.weights, case["weights"])
    _close(fit.tau2, case["tau2"], atol=1e-15)
    if case["modelweights"] == "HIER":
        _close(fit.omega2, case["omega2"], atol=1e-15)
        assert math.isnan(fit.i2)
    else:
        _close(fit.i2, case["I2"])
        assert math.isnan(fit.omega2)
    _close(fit.coef, case["coef"])
    # robu(small = FALSE) stores the sandwich without the factor m/(m - p) of its SEs
    scale = 1.0 if case["small"] else (fit.n_clusters - fit.p) / fit.n_clusters
    _close(fit.vcov * scale, case["vcov"])
    _close(fit.se, case["se"])
    _close(fit.statistic, case["t"])
    _close(fit.df, case["dfs"])
    # robumeta computes 2 * (1 - pt(|t|, df)), with an absolute error of 1e-16 or so
    _close(fit.pvalue, case["prob"], rtol=1e-9, atol=1e-14)
    _close(fit.ci_lower, case["ci_l"])
    _close(fit.ci_upper, case["ci_u"])
    wald = case["clubSandwich_wald"]
    if wald is not None and case["small"]:  # clubSandwich's HTZ on the robu fit
        assert fit.omnibus is not None
        _close(
            [fit.omnibus.statistic, fit.omnibus.df_denom, fit.omnibus.pvalue],
            [wald["Fstat"], wald["df_denom"], wald["p_val"]],
        )


# ---- properties -----------------------------------------------------------------------------


@st.composite
def clustered(draw: st.DrawFn, min_m: int = 3, max_m: int = 9, max_size: int = 4) -> Any:
    """(yi, vi, x, cluster): m clusters of 1..max_size effects, a moderator."""
    m = draw(st.integers(min_m, max_m))
    sizes = draw(st.lists(st.integers(1, max_size), min_size=m, max_size=m))
    cluster = np.repeat(np.arange(m), sizes)
    k = cluster.shape[0]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    vi = 10.0 ** rng.uniform(-2.5, -0.5, k)
    x = rng.normal(size=k)
    yi = 0.3 + 0.2 * x + rng.normal(0, 0.3, m)[cluster] + rng.normal(0, np.sqrt(vi))
    order = rng.permutation(k)  # clusters need not be contiguous
    return yi[order], vi[order], x[order], cluster[order]


def _cr2_by_definition(x: np.ndarray, e: np.ndarray, theta: np.ndarray, cluster: np.ndarray):
    """CR2 straight from Pustejovsky & Tipton (2018, eq. 5) with dense algebra: A_j =
    D_j' (D_j (Theta_j - X_j B X_j') D_j')^{-1/2} D_j, D_j the upper Cholesky factor."""
    w = np.linalg.inv(theta)
    bread = np.linalg.inv(x.T @ w @ x)
    meat = np.zeros_like(bread)
    adjust = {}
    for j in np.unique(cluster):
        i = np.flatnonzero(cluster == j)
        d = linalg.cholesky(theta[np.ix_(i, i)])  # upper: Theta_j = D'D
        # A_j is discontinuous where I - H_jj becomes singular (its +1/2 power drops the
        # direction): an eigenvalue (whitened, in [0, 1]) near ketameta's rank threshold 1e-10
        # (e.g. 4e-11: two clusters of one effect with nearly equal moderators) is inverted
        # here and dropped there; such examples compare two sides of the jump
        z = np.linalg.solve(d.T, x[i])
        lam = np.linalg.eigvalsh(np.eye(len(i)) - z @ bread @ z.T)
        if np.any((lam > 1e-14) & (lam < 1e-7)):
            assume(False)
        b = d @ (theta[np.ix_(i, i)] - x[i] @ bread @ x[i].T) @ d.T
        a = d.T @ np.real(linalg.inv(linalg.sqrtm(b))) @ d
        adjust[j] = a
        u = x[i].T @ w[np.ix_(i, i)] @ a @ e[i]
        meat += np.outer(u, u)
    return bread, bread @ meat @ bread, adjust


@given(clustered())
def test_cr2_follows_its_definition_and_is_unbiased(data: Any) -> None:
    yi, vi, x, cluster = data
    res = ketameta.metareg(yi, vi, mods=x)
    rob = ketameta.robust(res, cluster)
    xm = np.column_stack([np.ones_like(x), x])
    theta = np.diag(vi + res.tau2)
    bread, vcov, adjust = _cr2_by_definition(xm, yi - xm @ res.coef, theta, cluster)
    np.testing.assert_allclose(rob.vcov, vcov, rtol=1e-7, atol=1e-12 * np.abs(vcov).max())
    # unbiased under the working model: E[V] = B (Bell & McCaffrey 2002)
    w = np.linalg.inv(theta)
    hat = xm @ bread @ xm.T @ w
    cov_e = (np.eye(len(yi)) - hat) @ theta @ (np.eye(len(yi)) - hat).T
    expected = np.zeros_like(bread)
    for j, a in adjust.items():
        i = np.flatnonzero(cluster == j)
        g = xm[i].T @ w[np.ix_(i, i)] @ a
        expected += g @ cov_e[np.ix_(i, i)] @ g.T
    np.testing.assert_allclose(bread @ expected @ bread, bread, rtol=1e-7)


@given(clustered(max_size=3))
def test_satterthwaite_df_follows_its_definition(data: Any) -> None:
    # df = (tr P)^2 / tr(P^2), P the covariance under the working model of the cluster terms
    # z_j = c' B X_j' W_j A_j e_j, built here from dense k x k matrices
    yi, vi, x, cluster = data
    res = ketameta.metareg(yi, vi, mods=x)
    rob = ketameta.robust(res, cluster)
    xm = np.column_stack([np.ones_like(x), x])
    theta = np.diag(vi + res.tau2)
    bread, _, adjust = _cr2_by_definition(xm, yi - xm @ res.coef, theta, cluster)
    w = np.linalg.inv(theta)
    resid_map = np.eye(len(yi)) - xm @ bread @ xm.T @ w  # e = resid_map @ y
    for coef in range(2):
        rows = []
        for j, a in adjust.items():
            i = np.flatnonzero(cluster == j)
            g = bread[coef] @ xm[i].T @ w[np.ix_(i, i)] @ a  # z_j = g @ e_j
            rows.append(g @ resid_map[i])
        z = np.array(rows)
        p = z @ theta @ z.T
        df = np.trace(p) ** 2 / np.sum(p * p)
        np.testing.assert_allclose(rob.df[coef], df, rtol=1e-7)
        # the HTZ test of one coefficient is the Satterthwaite t test
        test = rob.wald_test(coef)
        np.testing.assert_allclose(test.df_denom, rob.df[coef], rtol=1e-9)
        np.testing.assert_allclose(test.statistic, rob.statistic[coef] ** 2, rtol=1e-9)
        np.testing.assert_allclose(test.pvalue, rob.pvalue[coef], rtol=1e-8)


def test_satterthwaite_df_when_one_cluster_nearly_determines_a_coefficient() -> None:
    # a hypothesis example that failed: cluster 1 nearly determines the slope (an eigenvalue
    # 3e-5 of I - H_jj), so its term of tr P^2 is the difference of two numbers 1e8 times
    # larger; the df agrees with the definition evaluated in 50-digit arithmetic (mpmath)
    # to rounding, in the t test and in the HTZ test of one coefficient alike
    mpmath = pytest.importorskip("mpmath")
    yi = np.array([0.24805638, 0.58865144, 0.90660086, 0.2079039, 0.46106658])
    vi = np.array([0.11814312, 0.01022853, 0.24259531, 0.01300998, 0.0088153])
    x = np.array([-1.18362506, 1.77745111, -1.10164376, -0.79873511, -0.35040986])
    cluster = np.array([2, 1, 0, 1, 1])
    res = ketameta.metareg(yi, vi, mods=x)
    rob = ketameta.robust(res, cluster)
    with mpmath.workdps(50):
        mp = mpmath.mpf
        theta = mpmath.diag([mp(float(v)) + mp(float(res.tau2)) for v in vi])
        xm = mpmath.matrix([[1, mp(float(t))] for t in x])
        w = theta**-1
        bread = (xm.T * w * xm) ** -1
        resid_map = mpmath.eye(5) - xm * bread * xm.T * w
        for coef in range(2):
            z = mpmath.matrix(3, 5)
            for j in range(3):
                i = [int(t) for t in np.flatnonzero(cluster == j)]
                th_j = mpmath.matrix([[theta[a, b] for b in i] for a in i])
                x_j = mpmath.matrix([[xm[a, b] for b in range(2)] for a in i])
                d = mpmath.cholesky(th_j).T  # upper: Theta_j = D'D
                lam, vec = mpmath.eigsy(d * (th_j - x_j * bread * x_j.T) * d.T)
                root = vec * mpmath.diag([1 / mpmath.sqrt(t) for t in lam]) * vec.T
                g = bread[coef, :] * x_j.T * th_j**-1 * d.T * root * d
                z[j, :] = g * mpmath.matrix([[resid_map[a, b] for b in range(5)] for a in i])
            p = z * theta * z.T
            df = sum(p[j, j] for j in range(3)) ** 2 / sum(t**2 for t in p)
            np.testing.assert_allclose(rob.df[coef], float(df), rtol=1e-11)
            np.testing.assert_allclose(rob.wald_test(coef).df_denom, float(df), rtol=1e-11)


def _htz_df_by_definition(gs: list[np.ndarray], theta: np.ndarray) -> float:
    """Zhang's df q(q+1) / sum_st Var(d_st) of the HTZ test (Tipton & Pustejovsky 2015):
    z_j = G_j y (q-vectors) with y ~ N(0, theta), D = sum_j z_j z_j', Omega = E[D] and
    d = Omega^(-1/2) D Omega^(-1/2); d_st = y' S_st y with S_st symmetric, whose variance
    is 2 tr(S theta S theta) (a Gaussian quadratic form)."""
    q = gs[0].shape[0]
    omega = sum(g @ theta @ g.T for g in gs)
    lam, vec = np.linalg.eigh(omega)
    root = vec @ np.diag(lam**-0.5) @ vec.T
    gt = [root @ g for g in gs]
    total = 0.0
    for s_ in range(q):
        for t in range(q):
            a = sum(np.outer(g[s_], g[t]) for g in gt)
            sym = 0.5 * (a + a.T)
            total += 2.0 * np.trace(sym @ theta @ sym @ theta)
    return q * (q + 1) / total


def test_the_htz_definition_is_clubsandwichs() -> None:
    # the dense oracle of the next test reproduces clubSandwich's HTZ df on a three-level fit
    case = MV["assink2016 rma.mv ~ deltype"]
    y, _, labels = _data(case["dataset"])
    cluster = np.array(labels)
    fit = _mv_fit(case)
    theta = fit.marginal_covariance()
    bread, _, adjust = _cr2_by_definition(fit.X, y - fit.X @ fit.coef, theta, cluster)
    w = np.linalg.inv(theta)
    resid_map = np.eye(len(y)) - fit.X @ bread @ fit.X.T @ w
    gs = []
    for j, a in adjust.items():
        i = np.flatnonzero(cluster == j)
        gs.append(bread @ fit.X[i].T @ w[np.ix_(i, i)] @ a @ resid_map[i])
    for wald in case["clubSandwich"]["CR2"]["wald"].values():
        idx = [int(i) - 1 for i in wald["constraints"]]
        nu = _htz_df_by_definition([g[idx] for g in gs], theta)
        _close(nu - len(idx) + 1, wald["tests"]["HTZ"]["df_denom"], rtol=1e-10)


@given(clustered(min_m=5), st.floats(0.0, 0.3), st.floats(0.0, 0.3))
def test_multilevel_cr2_satterthwaite_and_htz_follow_their_definitions(
    data: Any, between: float, within: float
) -> None:
    # a three-level working model (non-diagonal M, the protocol's path): the CR2 covariance,
    # its unbiasedness, the Satterthwaite df and the HTZ df, all from dense k x k algebra
    yi, vi, x, cluster = data
    rng = np.random.default_rng(len(yi))
    x2 = rng.normal(size=len(yi)) + x
    xm = np.column_stack([np.ones_like(x), x, x2])
    if np.linalg.matrix_rank(xm) < 3:
        return
    fit = ThreeLevelFit(xm, yi, vi, cluster, [between, within], ["intrcpt", "x", "x2"])
    rob = ketameta.robust(fit, cluster)
    theta = fit.marginal_covariance()
    bread, vcov, adjust = _cr2_by_definition(xm, yi - xm @ fit.coef, theta, cluster)
    scale = np.sqrt(np.outer(np.diag(vcov), np.diag(vcov)))
    np.testing.assert_allclose(rob.vcov, vcov, rtol=1e-7, atol=1e-9 * scale.max())
    w = np.linalg.inv(theta)
    resid_map = np.eye(len(yi)) - xm @ bread @ xm.T @ w
    expected = np.zeros_like(bread)
    gs_all = []
    for j, a in adjust.items():
        i = np.flatnonzero(cluster == j)
        g = bread @ xm[i].T @ w[np.ix_(i, i)] @ a @ resid_map[i]  # (p, k): the z_j of b
        expected += g @ theta @ g.T
        gs_all.append(g)
    np.testing.assert_allclose(expected, bread, rtol=1e-7, atol=1e-10 * np.abs(bread).max())
    for c in range(3):
        z = np.array([g[c] for g in gs_all])
        p = z @ theta @ z.T
        np.testing.assert_allclose(rob.df[c], np.trace(p) ** 2 / np.sum(p * p), rtol=1e-7)
    for idx in ([1, 2], [0, 1, 2]):
        htz = rob.wald_test(idx)
        df = _htz_df_by_definition([g[idx] for g in gs_all], theta)
        np.testing.assert_allclose(htz.df_denom, df - len(idx) + 1, rtol=1e-7)


@pytest.mark.parametrize(("method", "power"), [("CR0", 0.0), ("CR2", 0.5), ("CR3", 1.0)])
@given(data=clustered(min_m=4, max_size=1))
def test_one_effect_per_cluster_is_the_hc_estimator(method: str, power: float, data: Any) -> None:
    # with one effect per cluster A_j = (1 - h_jj)^(-power): CR0 is HC0, CR2 the HC2-type and
    # CR3 the HC3-type estimator of the weighted regression (MacKinnon & White 1985)
    yi, vi, x, cluster = data
    res = ketameta.metareg(yi, vi, mods=x)
    rob = ketameta.robust(res, cluster, method=method)
    xm = np.column_stack([np.ones_like(x), x])
    w = 1.0 / (vi + res.tau2)
    bread = np.linalg.inv(xm.T @ (xm * w[:, None]))
    h = np.einsum("ij,jk,ik->i", xm, bread, xm) * w
    e = yi - xm @ res.coef
    meat = (xm * (w * e / (1.0 - h) ** power)[:, None]).T @ (
        xm * (w * e / (1 - h) ** power)[:, None]
    )
    np.testing.assert_allclose(rob.vcov, bread @ meat @ bread, rtol=1e-8)


@given(clustered())
def test_study_order_and_cluster_labels_do_not_matter(data: Any) -> None:
    yi, vi, x, cluster = data
    rob = ketameta.robust(ketameta.metareg(yi, vi, mods=x), cluster)
    order = np.random.default_rng(0).permutation(len(yi))
    labels = np.array([f"lab {c * 7 % 11:02d}" for c in cluster])
    other = ketameta.robust(ketameta.metareg(yi[order], vi[order], mods=x[order]), labels[order])
    for field in ("vcov", "df", "pvalue"):
        np.testing.assert_allclose(getattr(other, field), getattr(rob, field), rtol=1e-8)


@given(clustered(min_m=4))
def test_cr1_factors_scale_cr0(data: Any) -> None:
    yi, vi, x, cluster = data
    res = ketameta.metareg(yi, vi, mods=x)
    base = ketameta.robust(res, cluster, method="CR0")
    m, k, p = base.n_clusters, base.k, 2
    for adjust, factor in (
        (True, m / (m - p)),
        ("m/(m-1)", m / (m - 1)),
        ("Stata", m * (k - 1) / ((m - 1) * (k - p))),
    ):
        rob = ketameta.robust(res, cluster, method="CR1", adjust=adjust)
        np.testing.assert_allclose(rob.vcov, factor * base.vcov, rtol=1e-12)
        np.testing.assert_allclose(rob.df, base.df)  # both m - p


# ---- input handling -------------------------------------------------------------------------


def test_cluster_given_for_the_input_or_for_the_studies_used() -> None:
    # bangertdrowns2004: feedback is missing for some studies; metafor drops their cluster
    # labels (the reference was computed with the full-length cluster)
    case = UNI["bangertdrowns2004 REML ~ wic + feedback"]
    fit = FITS[case["id"]]
    _, _, cluster = _data("bangertdrowns2004")
    assert fit.omitted
    full = ketameta.robust(fit, cluster)
    used = ketameta.robust(fit, [c for i, c in enumerate(cluster) if i not in fit.omitted])
    assert full == used
    _close(full.se, case["clubSandwich"]["CR2"]["se"])
    # a missing label of an omitted study is irrelevant; of a study used, an error naming it
    holes = list(cluster)
    holes[fit.omitted[0]] = None
    assert ketameta.robust(fit, holes) == full
    holes[fit.omitted[0] + 1 if fit.omitted[0] + 1 not in fit.omitted else 0] = None
    with pytest.raises(ValueError, match=r"`cluster` is missing for study \d+: every study"):
        ketameta.robust(fit, holes)


def test_bad_clusters_are_named() -> None:
    fit = FITS["bcg REML ~ ablat"]
    _, _, cluster = _data("bcg")
    with pytest.raises(ValueError, match=r"`cluster` has 12 labels but the model has 13 studies"):
        ketameta.robust(fit, cluster[:-1])
    with pytest.raises(ValueError, match=r"`cluster` is missing for studies 2, 5"):
        ketameta.robust(fit, [None if i in (2, 5) else c for i, c in enumerate(cluster)])
    with pytest.raises(ValueError, match=r"puts all 13 studies in one cluster \(a\)"):
        ketameta.robust(fit, ["a"] * 13)
    with pytest.raises(ValueError, match=r"2 clusters for 2 coefficients"):
        ketameta.robust(fit, ["a"] * 6 + ["b"] * 7, method="CR1")
    with pytest.raises(TypeError, match=r"`cluster` must hold one label per study"):
        ketameta.robust(fit, "alloc")
    with pytest.raises(TypeError, match=r"`cluster` mixes strings and other labels"):
        ketameta.robust(fit, [*cluster[:-1], 3])


def test_bad_options_are_named() -> None:
    fit = FITS["bcg REML ~ ablat"]
    _, _, cluster = _data("bcg")
    with pytest.raises(ValueError, match=r"unknown `method` 'HC2'"):
        ketameta.robust(fit, cluster, method="HC2")
    with pytest.raises(ValueError, match=r"unknown `adjust` 'n/\(n-p\)'"):
        ketameta.robust(fit, cluster, method="CR1", adjust="n/(n-p)")
    with pytest.raises(ValueError, match=r"`adjust` applies to method='CR1' only"):
        ketameta.robust(fit, cluster, adjust=False)
    with pytest.raises(ValueError, match=r"unknown `df` 'kenward-roger'"):
        ketameta.robust(fit, cluster, df="kenward-roger")
    with pytest.raises(TypeError, match=r"`result` must be a fitted model.*without X, coef"):
        ketameta.robust(
            ketameta.subgroups([0.1, 0.2, 0.3, 0.4], [0.1] * 4, groups=[1, 1, 2, 2]), [1, 2, 3, 4]
        )
    rob = ketameta.robust(fit, cluster)
    with pytest.raises(TypeError, match=r"exactly one of `btt`"):
        rob.wald_test()
    with pytest.raises(ValueError, match=r"`constraints` must be a \(q, 2\) matrix"):
        rob.wald_test(constraints=[[1, 0, 0]])
    with pytest.raises(ValueError, match=r"`btt`: no coefficient 'year'"):
        rob.wald_test("year")


def test_rve_bad_input_is_named() -> None:
    y, v, cluster = _data("corrdat")
    with pytest.raises(ValueError, match=r"unknown `modelweights` 'USER'"):
        ketameta.rve(y, v, cluster=cluster, modelweights="USER")
    with pytest.raises(ValueError, match=r"`rho` must be in \[0, 1\]"):
        ketameta.rve(y, v, cluster=cluster, rho=1.5)
    with pytest.raises(ValueError, match=r"`cluster` has 171 studies but `yi` has 172"):
        ketameta.rve(y, v, cluster=cluster[:-1])
    with pytest.raises(ValueError, match=r"every cluster has one effect\?"):
        ketameta.rve(y[:20], v[:20], cluster=np.arange(20), modelweights="HIER")


def test_constraints_and_names() -> None:
    case = UNI["assink2016 REML ~ year + deltype"]
    rob = ketameta.robust(FITS[case["id"]], _data("assink2016")[2])
    by_index = rob.wald_test([1, 2])  # clubSandwich's constrain_zero(2:3), "pair"
    by_name = rob.wald_test([rob.names[1], rob.names[2]])
    by_matrix = rob.wald_test(constraints=[[0, 1, 0, 0], [0, 1, -1, 0]])  # the same span
    assert by_index == by_name
    for field in ("q_statistic", "statistic", "df_denom", "pvalue"):
        np.testing.assert_allclose(getattr(by_matrix, field), getattr(by_index, field), 1e-10)
    ref = case["clubSandwich"]["CR2"]["wald"]["pair"]["tests"]["HTZ"]
    _close([by_index.statistic, by_index.df_denom], [ref["Fstat"], ref["df_denom"]])


# ---- printing -------------------------------------------------------------------------------


def test_summary_prints_as_metafor() -> None:
    # metafor 3.8-1, print(robust(rma(yi, vi, mods = ~ year, data = dat.konstantopoulos2011),
    # cluster = district)) and the same with clubSandwich = TRUE
    fit = FITS["konstantopoulos2011 REML ~ year"]
    _, _, cluster = _data("konstantopoulos2011")
    cr1 = ketameta.robust(fit, cluster, method="CR1").summary()
    assert "Number of estimates:   56" in cr1
    assert "Number of clusters:    11" in cr1
    assert "Estimates per cluster: 3-11 (mean: 5.09, median: 4)" in cr1
    assert (
        "Test of Moderators (coefficient 2):\nF(df1 = 1, df2 = 9) = 0.4397, p-val = 0.5239" in cr1
    )
    # metafor: "intrcpt  -10.1640  15.5251   -0.6547    9   0.5290   -45.2842   24.9562" (its
    # columns as wide as their values and the footnote marks, two spaces before each value)
    assert "-10.1640  15.5251  -0.6547      9   0.5290  -45.2842  24.9562\n" in cr1
    cr2 = ketameta.robust(fit, cluster).summary()
    assert "F(df1 = 1, df2 = 3.3) = 0.3294, p-val = 0.6028" in cr2
    # (the column of ci.lb as wide as its widest value, -64.7231, as metafor's)
    assert "0.0052   0.0090   0.5740    3.3   0.6028   -0.0221   0.0324\n" in cr2
    assert "-0.5662   3.27   0.6078" in cr2


def test_rve_summary_prints_as_robumeta() -> None:
    # robumeta 2.0, print(robu(effectsize ~ males + college + binge, data = corrdat,
    # studynum = studyid, var.eff.size = var, rho = 0.8, small = TRUE))
    y, v, cluster = _data("corrdat")
    cols = DATA["corrdat"]["columns"]
    fit = ketameta.rve(
        y, v, cluster=cluster, mods={k: cols[k] for k in ("males", "college", "binge")}
    )
    text = fit.summary()
    assert "RVE: Correlated Effects Model with Small-Sample Corrections" in text
    assert "Number of studies = 39" in text
    assert "Number of outcomes = 172 (min = 1, mean = 4.41, median = 4, max = 18)" in text
    assert "I.sq = 75.0835" in text
    assert "Tau.sq = 0.155771" in text
    assert fit.names == ("intrcpt", "males", "college", "binge")
    assert "Model: yi ~ males + college + binge" in text
