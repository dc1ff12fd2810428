"""Multilevel / multivariate models (``pool_mv``) against metafor 3.8.1's ``rma.mv``.

Reference values: ``tests/reference/metafor_mv.json``, written by
``validation/metafor/make_mv_reference.R``: each model fitted by metafor with six
optimisers at tight tolerances (the best kept: ``metafor``) and then polished by Newton
steps on metafor's own log-likelihood (``polished``: metafor's output at the polished
components). Profile-likelihood intervals: ``metafor_mv_confint.json``, written by
``make_mv_confint_reference.R`` (confint at default optimiser settings, root finder to
1e-10). The coefficients, standard errors, tests, variance components and log-likelihood
agree with the polished fit to 1e-6 relative (most to 1e-8), and ketameta's log-likelihood
is never below the best metafor optimiser's. Datasets: Konstantopoulos (2011), Berkey et
al. (1998), Gleser & Olkin (2009), Ishak et al. (2007), Assink et al. (2016), Bornmann et
al. (2007) and four seeded simulations.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import attrs
import numpy as np
import pytest

import ketameta
from ketameta import pool_mv

from .conftest import load_reference

REF = load_reference("metafor_mv.json")
FITS = {f["id"]: f for f in REF["fits"]}
DATA = REF["datasets"]
RTOL = 1e-6
#: (what metafor gives a component on the boundary: nlminb's log-variance runs to ~1e-10)
BOUNDARY_ATOL = 1e-7


def _data(name: str) -> dict[str, Any]:
    return dict(DATA[name]["columns"])


def _v(fit: dict[str, Any]) -> Any:
    spec, name = fit["spec"], fit["dataset"]
    v = spec["V"]
    if v.startswith("vcalc("):
        d = _data(name)
        return ketameta.vcalc(d["vi"], cluster=d["study"], obs=d["esid"], rho=0.6)
    if v in DATA[name]:
        return np.array(DATA[name][v], dtype=float)
    return v  # a column name


def _call(fit: dict[str, Any], **extra: Any) -> ketameta.MVResult:
    spec = fit["spec"]
    data = _data(fit["dataset"])
    kwargs: dict[str, Any] = {
        "random": spec.get("random"),
        "data": data,
        "method": spec["method"],
        "test": spec.get("test", "z"),
    }
    if spec.get("struct"):
        kwargs["struct"] = spec["struct"]
    if spec.get("mods"):
        kwargs["mods"] = spec["mods"]
    if spec.get("sigma2"):
        kwargs["sigma2"] = spec["sigma2"]
    kwargs.update(extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.DegenerateDataWarning)
        return pool_mv(spec.get("yi", "yi"), _v(fit), **kwargs)


def _close(got: Any, expected: Any, rtol: float = RTOL, atol: float = 0.0) -> None:
    np.testing.assert_allclose(
        np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=atol
    )


RESULTS: dict[str, ketameta.MVResult] = {}


def _result(fid: str) -> ketameta.MVResult:
    if fid not in RESULTS:
        RESULTS[fid] = _call(FITS[fid])
    return RESULTS[fid]


@pytest.mark.parametrize("fid", list(FITS))
def test_loglik_at_least_metafors(fid: str) -> None:
    # the maximum: never below the best of metafor's six optimisers
    res, ref = _result(fid), FITS[fid]
    ll = ref["metafor"]["logLik"]
    assert res.loglik >= ll - 1e-10 * max(1.0, abs(ll))
    # and the polished maximum to 1e-10 (relative)
    _close(res.loglik, ref["polished"]["logLik"], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("fid", list(FITS))
def test_fit_matches_metafor(fid: str) -> None:
    res, ref = _result(fid), FITS[fid]
    pol = ref["polished"]
    assert list(res.names) == pol["names"]
    assert res.k == pol["k"]
    assert res.p == pol["p"]
    scale = float(np.max(np.abs(pol["beta"])) + np.max(pol["se"]))
    _close(res.coef, pol["beta"], atol=1e-8 * scale)
    _close(res.se, pol["se"])
    _close(res.vcov, pol["vb"], atol=1e-10 * float(np.max(np.abs(pol["vb"]))))
    _close(res.statistic, pol["zval"], atol=1e-7)
    _close(res.pvalue, pol["pval"], atol=1e-9)
    _close(res.ci_lower, pol["ci_lb"], atol=1e-8 * scale)
    _close(res.ci_upper, pol["ci_ub"], atol=1e-8 * scale)
    v_scale = float(np.mean(res.vi))
    for kind in ("sigma2", "tau2", "rho", "gamma2", "phi"):
        expected = pol.get(kind)
        got = getattr(res, kind)
        if expected is None:
            assert got.size == 0, kind
            continue
        if got.size == 0:  # (DIAG, ID: metafor reports the absent correlation as 0)
            assert kind in ("rho", "phi")
            assert np.all(np.asarray(expected) == 0.0)
            continue
        atol = BOUNDARY_ATOL * (1.0 if kind in ("rho", "phi") else v_scale)
        _close(got, expected, atol=atol)
    _close(res.q, pol["QE"], rtol=1e-10)
    assert res.q_df == pol["QE_df"]
    _close(res.q_pvalue, pol["QEp"], rtol=1e-8, atol=1e-300)
    if (pol["QM"] is not None and res.p > 1) or not res.intercept:
        _close(res.qm, pol["QM"], rtol=RTOL)
        _close(res.qm_pvalue, pol["QMp"], rtol=RTOL, atol=1e-12)
        assert [i + 1 for i in res.btt] == pol["btt"]


@pytest.mark.parametrize("fid", [f for f in FITS if FITS[f]["metafor"].get("fit_stats")])
def test_fit_statistics_match_metafor(fid: str) -> None:
    res, ref = _result(fid), FITS[fid]
    fs, got = ref["metafor"]["fit_stats"], res.fit_statistics()
    # metafor's statistics at its own (slightly lower) maximum
    for key in ("ll", "dev", "AIC", "BIC", "AICc"):
        _close(got[key], fs[key], rtol=1e-8, atol=1e-7)


#: metafor's confint at default optimiser settings (its refits at tight settings often fail):
#: tests/reference/metafor_mv_confint.json, by validation/metafor/make_mv_confint_reference.R
CONFINT = {f["id"]: f["confint"] for f in load_reference("metafor_mv_confint.json")["fits"]}


@pytest.mark.parametrize("fid", list(CONFINT))
def test_profile_likelihood_intervals_match_metafor(fid: str) -> None:
    res = _result(fid)
    ci = res.confint()
    for name, (est, lo, hi) in CONFINT[fid].items():
        got = ci[name]
        # (the estimate of metafor's fit at default settings: nlminb stops ~1e-6 relative
        # from the maximum; on a boundary at ~1e-6 of the variances; test_fit_matches_metafor
        # compares the estimates with the polished fit to 1e-6)
        scale = 1.0 if name.startswith(("rho", "phi")) else float(np.mean(res.vi))
        if not name.startswith(("sigma^2", "tau^2", "gamma^2", "rho", "phi")):
            scale = math.sqrt(scale)  # a standard deviation
        _close(got[0], est, rtol=1e-5, atol=1e-4 * scale)
        # metafor's bounds: uniroot to 1e-12 on profiles its optimiser maximises to ~1e-8
        _close(got[1], lo, rtol=2e-5, atol=1e-7)
        _close(got[2], hi, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("fid", [f for f in FITS if FITS[f].get("predict")])
def test_predictions_match_metafor(fid: str) -> None:
    res, ref = _result(fid), FITS[fid]
    pred = ref["predict"]
    spec = ref["spec"]
    if "year" in spec.get("mods", ""):
        out = res.predict({"year": [1975.0, 1990.0, 2000.0]})
    elif res.tau2.size > 1:
        out = res.predict(np.eye(2), tau2_levels=["AL", "PD"])
    else:
        out = res.predict()
    n = len(pred["pred"])
    _close(out.pred[:n], pred["pred"], rtol=1e-7)
    _close(out.se[:n], pred["se"], rtol=1e-6)
    _close(out.ci_lower[:n], pred["ci_lb"], rtol=1e-6)
    _close(out.ci_upper[:n], pred["ci_ub"], rtol=1e-6)
    _close(out.pred_lower[:n], pred["pi_lb"], rtol=1e-6)
    _close(out.pred_upper[:n], pred["pi_ub"], rtol=1e-6)


@pytest.mark.parametrize("fid", [f for f in FITS if FITS[f].get("i2")])
def test_multilevel_i2(fid: str) -> None:
    # the metafor-project definition, computed in the R script from the polished fit
    res, ref = _result(fid), FITS[fid]
    i2 = ref["i2"]
    _close(res.v_typical, i2["typical_v"], rtol=1e-10)
    _close(res.i2, i2["total"], rtol=1e-6, atol=1e-6)
    _close(res.i2_levels, i2["levels"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", REF["lrt"], ids=[c["id"] for c in REF["lrt"]])
def test_likelihood_ratio_tests_match_metafor(case: dict[str, Any]) -> None:
    full, reduced = _result(case["full"]), _result(case["reduced"])
    out = reduced.anova(full)
    assert out.df == tuple(case["df"])
    _close(out.statistic, case["LRT"], rtol=1e-6, atol=1e-8)
    _close(out.pvalue, case["pval"], rtol=1e-6, atol=1e-10)
    _close(out.qe, case["QE"], rtol=1e-10)
    _close(out.loglik, case["logLik"], rtol=1e-8, atol=1e-9)
    _close(out.aic, case["AIC"], rtol=1e-8, atol=1e-8)
    _close(out.bic, case["BIC"], rtol=1e-8, atol=1e-8)
    _close(out.aicc, case["AICc"], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("case", REF["vcalc"], ids=[c["id"] for c in REF["vcalc"]])
def test_vcalc_matches_metafor(case: dict[str, Any]) -> None:
    spec = dict(case["spec"])
    if spec.pop("dataset", None) == "assink2016":
        data = _data("assink2016")
        cluster = spec.pop("cluster")
        got = ketameta.vcalc("vi", cluster=cluster, data=data, **spec)
    else:
        data = REF["vcalc_data"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ketameta.DegenerateDataWarning)
            got = ketameta.vcalc("vi", cluster="cl", data=data, **spec)
    _close(got, case["V"], rtol=1e-13, atol=1e-15)


def test_sparse_vcalc_is_the_dense_one() -> None:
    case = next(c for c in REF["vcalc"] if c["id"] == "type+obs")
    spec = dict(case["spec"])
    dense = ketameta.vcalc("vi", cluster="cl", data=REF["vcalc_data"], **spec)
    sparse = ketameta.vcalc("vi", cluster="cl", data=REF["vcalc_data"], sparse=True, **spec)
    np.testing.assert_array_equal(sparse.toarray(), dense)


# ---- properties -----------------------------------------------------------------------------


def test_one_level_model_is_pool() -> None:
    # one random effect per study and a diagonal V: the random-effects model of pool()
    dat = ketameta.datasets.konstantopoulos2011()
    for method in ("REML", "ML"):
        for test in ("z", "t"):
            mv = pool_mv("yi", "vi", random="~ 1 | study", data=dat, method=method, test=test)
            uni = ketameta.pool(dat["yi"], dat["vi"], method=method, test=test)
            _close(mv.sigma2[0], uni.tau2, rtol=1e-9)
            _close(mv.coef[0], uni.estimate, rtol=1e-10)
            _close(mv.se[0], uni.se, rtol=1e-9)
            _close(mv.ci_lower[0], uni.ci_lower, rtol=1e-9)
            _close(mv.pvalue[0], uni.pvalue, rtol=1e-8)
            _close(mv.q, uni.q, rtol=1e-12)
            _close(mv.i2, uni.i2, rtol=1e-8)
            pred = mv.predict()
            _close(pred.pred_lower[0], uni.pred_lower, rtol=1e-9)


def test_one_level_meta_regression_is_metareg() -> None:
    dat = ketameta.datasets.konstantopoulos2011()
    mods = {"year": np.array(dat["year"], dtype=float)}
    for method in ("REML", "ML"):
        mv = pool_mv("yi", "vi", random="~ 1 | study", mods=mods, data=dat, method=method)
        uni = ketameta.metareg(dat["yi"], dat["vi"], mods=mods, method=method)
        _close(mv.sigma2[0], uni.tau2, rtol=1e-8)
        _close(mv.coef, uni.coef, rtol=1e-9)
        _close(mv.vcov, uni.vcov, rtol=1e-8)
        _close(mv.qm, uni.qm, rtol=1e-8)
        _close(mv.q, uni.q, rtol=1e-10)
        _close(mv.loglik, uni.loglik(), rtol=1e-10)


def test_multivariate_parametrisation_is_the_three_level_model() -> None:
    # ~ study | district with CS: tau2 = sigma2_1 + sigma2_2, rho = sigma2_1 / tau2
    # (Konstantopoulos 2011; metafor's test of the multivariate parametrisation)
    dat = ketameta.datasets.konstantopoulos2011()
    ml = pool_mv("yi", "vi", random="~ 1 | district/study", data=dat)
    cs = pool_mv("yi", "vi", random="~ study | district", struct="CS", data=dat)
    _close(cs.tau2[0], ml.sigma2.sum(), rtol=1e-8)
    _close(cs.rho[0], ml.sigma2[0] / ml.sigma2.sum(), rtol=1e-8)
    _close(cs.loglik, ml.loglik, rtol=1e-12)
    _close(cs.coef, ml.coef, rtol=1e-9)


def test_order_of_the_effects_does_not_matter() -> None:
    dat = ketameta.datasets.konstantopoulos2011()
    rng = np.random.default_rng(7)
    order = rng.permutation(len(dat["yi"]))
    shuffled = {key: [col[i] for i in order] for key, col in dat.items()}
    a = pool_mv("yi", "vi", random="~ 1 | district/school", data=dat)
    b = pool_mv("yi", "vi", random="~ 1 | district/school", data=shuffled)
    _close(b.coef, a.coef, rtol=1e-12)
    _close(b.sigma2, a.sigma2, rtol=1e-10)
    _close(b.loglik, a.loglik, rtol=1e-13)


def test_shift_and_scale() -> None:
    # y -> a + c y: the intercept moves and scales, variances scale by c^2
    dat = ketameta.datasets.konstantopoulos2011()
    a = pool_mv("yi", "vi", random="~ 1 | district/school", data=dat)
    y2 = [3.0 + 10.0 * y for y in dat["yi"]]
    v2 = [100.0 * v for v in dat["vi"]]
    b = pool_mv(y2, v2, random="~ 1 | district/school", data=dat)
    _close(b.coef, 3.0 + 10.0 * a.coef, rtol=1e-10)
    _close(b.sigma2, 100.0 * a.sigma2, rtol=1e-9)
    _close(b.se, 10.0 * a.se, rtol=1e-9)


def test_marginal_covariance_and_weights() -> None:
    dat = ketameta.datasets.konstantopoulos2011()
    res = pool_mv("yi", "vi", random="~ 1 | district/school", data=dat)
    m = res.marginal_covariance()
    district = np.array(dat["district"])
    expected = np.diag(dat["vi"]) + res.sigma2[0] * (district[:, None] == district[None, :])
    expected += res.sigma2[1] * np.eye(len(district))
    _close(m, expected, rtol=1e-14)
    w = res.weight_matrix()
    _close(w @ m, np.eye(len(district)), atol=1e-10)
    x = res.X
    b = np.linalg.solve(x.T @ w @ x, x.T @ w @ res.yi)
    _close(res.coef, b, rtol=1e-10)
    _close(res.vcov, np.linalg.inv(x.T @ w @ x), rtol=1e-10)
    # the clusters of the outermost random effect: the districts
    assert len(set(res.cluster.tolist())) == 11
    same = res.cluster[:, None] == res.cluster[None, :]
    np.testing.assert_array_equal(same, district[:, None] == district[None, :])


def test_fixed_components_and_profile_endpoints() -> None:
    dat = ketameta.datasets.konstantopoulos2011()
    res = pool_mv("yi", "vi", random="~ 1 | district/school", data=dat)
    ci = res.confint()
    crit = 3.841458820694124  # chi2(1) 95%
    for i, name in enumerate(("sigma^2.1", "sigma^2.2")):
        _, lo, hi = ci[name]
        for bound in (lo, hi):
            fixed = [None, None]
            fixed[i] = bound
            prof = pool_mv("yi", "vi", random="~ 1 | district/school", data=dat, sigma2=fixed)
            _close(2 * (res.loglik - prof.loglik), crit, rtol=1e-7)
            assert prof.components[i].fixed


def test_boundary_estimate_is_exactly_zero() -> None:
    dat = ketameta.datasets.konstantopoulos2011()
    # no between-school variance beyond the district one, after removing it from the data
    res = pool_mv("yi", "vi", random="~ 1 | district/school", data=dat, sigma2=[0.0, None])
    assert res.sigma2[0] == 0.0
    yi = np.array(dat["yi"])
    flat = pool_mv(
        np.full_like(yi, 0.1) + 0.01 * (np.arange(yi.size) % 2),
        "vi",
        random="~ 1 | district/school",
        data=dat,
    )
    assert flat.sigma2[0] == 0.0
    assert flat.sigma2[1] == 0.0
    assert flat.converged


def test_equal_effects_model_is_gls() -> None:
    # no random effects: generalised least squares with V (Gleser & Olkin 2009)
    d = DATA["gleser2009"]
    v = np.array(d["V_lor"])
    res = pool_mv(d["columns"]["lor"], v, random=None, mods="~ factor(trt) - 1", data=d["columns"])
    x = res.X
    w = np.linalg.inv(v)
    b = np.linalg.solve(x.T @ w @ x, x.T @ w @ np.array(d["columns"]["lor"]))
    _close(res.coef, b, rtol=1e-12)
    assert res.components == ()
    assert "Variance Components: none" in res.summary()


def test_published_gleser_olkin_2009(published: dict[str, Any]) -> None:
    # Gleser & Olkin (2009), Table 19.2: GLS estimates of the multiple-treatment studies
    case = published["gleser_olkin2009_multiple_treatment_effect_sizes"]
    exp = case["expected"]
    d = DATA["gleser2009"]
    for yi, v, coef_key, qe_key in (
        ("rd", "V_rd", "GLS_RD_coef", "GLS_RD_QE"),
        ("lor", "V_lor", "GLS_logOR_coef", "GLS_logOR_QE"),
    ):
        res = pool_mv(
            d["columns"][yi],
            np.array(d[v]),
            random=None,
            mods="~ factor(trt) - 1",
            data=d["columns"],
        )
        np.testing.assert_allclose(res.coef, exp[coef_key], atol=0.6e-4)
        np.testing.assert_allclose(res.q, exp[qe_key], atol=0.6e-4)
    np.testing.assert_allclose(
        np.array(d["columns"]["rd"]), exp["RD_yi"], atol=0.6e-4
    )  # the effects the script computed from the published counts


PUBLISHED = load_reference("published_mv.json")


@pytest.mark.parametrize("case", PUBLISHED["cases"], ids=[c["id"] for c in PUBLISHED["cases"]])
def test_published_tables(case: dict[str, Any]) -> None:
    data_name = case["dataset"]
    call = case["call"]
    data = _data(data_name)
    v: Any = "vi"
    if data_name == "berkey1998":
        v = np.array(DATA["berkey1998"]["V"])
    if "center_year" in call:
        mean_year = float(np.mean(data["year"]))
        data["year_c"] = [y - mean_year for y in data["year"]]
    res = pool_mv(
        "yi",
        v,
        random=call["random"],
        struct=call.get("struct", "CS"),
        mods=call.get("mods"),
        data=data,
        method=call["method"],
    )
    exp = case["expected"]
    atol = 0.6 * 10.0 ** -case["decimals"]
    np.testing.assert_allclose(res.coef, exp["coef"], atol=atol)
    np.testing.assert_allclose(res.se, exp["se"], atol=atol)
    for kind in ("sigma2", "tau2", "rho"):
        if kind in exp:
            np.testing.assert_allclose(getattr(res, kind), exp[kind], atol=atol)
    if "pi" in exp:
        pred = res.predict()
        np.testing.assert_allclose([pred.pred_lower[0], pred.pred_upper[0]], exp["pi"], atol=atol)
    if "cov" in exp:
        cov = res.rho[0] * math.sqrt(res.tau2[0] * res.tau2[1])
        np.testing.assert_allclose(cov, exp["cov"], atol=atol)


# -- the closed forms of random-intercept models (Woodbury) against the blocks of M -----


def _intercept_data(seed: int, precise: float = 1.0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    k = 40
    cl = rng.integers(0, 9, k)
    vi = rng.uniform(0.01, 0.2, k)
    vi[0] /= precise
    return {
        "yi": rng.normal(0.3, 0.4, k).tolist(),
        "vi": vi.tolist(),
        "cl": cl.tolist(),
        "sub": rng.integers(0, 3, k).tolist(),
        "lab": rng.integers(0, 4, k).tolist(),
        "id": list(range(k)),
        "x": rng.normal(size=k).tolist(),
    }


@pytest.mark.parametrize(
    ("random", "struct", "mods", "method"),
    [
        ("~ 1 | cl/id", "CS", None, "REML"),  # a group basis and the identity (R diagonal)
        ("~ 1 | cl/sub", "CS", "x", "REML"),  # nested groups (R not diagonal)
        (["~ 1 | cl", "~ 1 | lab"], "CS", "x", "ML"),  # crossed groups
        (["~ 1 | cl/sub/id"], "CS", None, "ML"),  # four levels
        ("~ sub | cl", "ID", "x", "REML"),
        (["~ sub | cl", "~ 1 | id"], "DIAG", None, "REML"),
    ],
)
def test_closed_forms_equal_the_blocks_of_m(
    random: Any, struct: str, mods: Any, method: str
) -> None:
    # Oracle: the likelihood, score and information computed block by block from the
    # Cholesky factor and inverse of each block of M (the general path, which agrees with
    # metafor in the tests above); the closed forms (Woodbury) must give the same numbers
    # at the maximum and away from it
    from ketameta._engine import mv

    data = _intercept_data(3)
    res = pool_mv("yi", "vi", random=random, struct=struct, mods=mods, data=data, method=method)
    assert res.fitted_model is not None
    model = res.fitted_model.model
    layout = model.layout
    assert layout.groups is not None
    theta = res.fitted_model.theta
    for point in (theta, theta * np.linspace(0.3, 3.0, theta.size) + 0.01):
        f = model.coefficients(point)
        closed = mv._evaluate_groups(layout.groups, f, reml=model.reml, order=2)
        blocks = mv._evaluate_blocks(layout, f, reml=model.reml, order=2)
        assert closed is not None
        assert blocks is not None
        assert closed is not mv._UNSTABLE
        _close(closed.ll, blocks.ll, rtol=1e-12)
        _close(closed.beta, blocks.beta, rtol=1e-10, atol=1e-12)
        _close(closed.a, blocks.a, rtol=1e-10)
        assert blocks.expected is not None
        info = float(np.max(np.abs(blocks.expected)))
        # (the score is ~0 at the maximum: compared on its natural scale, information
        # times a typical variance)
        scale = {"score": info * float(np.mean(data["vi"])), "observed": info, "expected": info}
        for name, tol in scale.items():
            got, want = getattr(closed, name), getattr(blocks, name)
            assert got is not None
            assert want is not None
            _close(got, want, rtol=0.0, atol=1e-10 * tol)


def test_closed_forms_give_way_where_they_would_lose_digits() -> None:
    # a study 1e12 times more precise than the rest of its cluster: W = D⁻¹ - FKΓFᵀ would
    # lose ~12 digits on its diagonal, so the blocks of M are used -- the fit is the one of
    # the same data with the general path alone (the layout without closed forms)
    from ketameta._engine import mv

    data = _intercept_data(5, precise=1e12)
    res = pool_mv("yi", "vi", random="~ 1 | cl", data=data)
    assert res.fitted_model is not None
    model = res.fitted_model.model
    f = model.coefficients(res.fitted_model.theta)
    assert model.layout.groups is not None
    assert mv._evaluate_groups(model.layout.groups, f, reml=True, order=0) is mv._UNSTABLE
    general = mv.Model(
        layout=attrs.evolve(model.layout, groups=None), structures=model.structures, reml=True
    )
    fit = mv.maximise_with_restarts(general, res.fitted_model.theta * 1.5, res.fitted_model.free)
    assert fit.converged
    _close(res.loglik, fit.ev.ll, rtol=1e-10)
    _close(res.sigma2, fit.theta, rtol=1e-6)


def test_single_level_factor_variance_is_fixed_at_zero_as_metafor() -> None:
    # metafor 3.8-1: rma.mv(c(.1,.5,.3,.9), c(.01,.02,.03,.02), random=list(~1|cl, ~1|id),
    # data=data.frame(cl=1, id=1:4)) warns "Single-level factor(s) found in 'random'
    # argument. Corresponding 'sigma2' value(s) fixed to 0." and gives sigma2 = (0,
    # 0.1027618365), logLik -1.0713633376, AIC 6.1427266752 (one free parameter)
    data = {"yi": [0.1, 0.5, 0.3, 0.9], "vi": [0.01, 0.02, 0.03, 0.02], "cl": [1] * 4}
    data["id"] = [1, 2, 3, 4]
    with pytest.warns(ketameta.DegenerateDataWarning, match="`cl` with a single level"):
        res = pool_mv("yi", "vi", random=["~ 1 | cl", "~ 1 | id"], data=data)
    assert res.sigma2[0] == 0.0
    assert res.components[0].fixed
    _close(res.sigma2[1], 0.1027618365, rtol=1e-6)  # (metafor stops at its threshold)
    # with `cl` out, the model is one random effect per study: pool's REML tau^2, exactly
    _close(res.sigma2[1], ketameta.pool(data["yi"], data["vi"]).tau2, rtol=1e-8)
    _close(res.loglik, -1.0713633376, rtol=1e-9)
    _close(res.fit_statistics()["AIC"], 6.1427266752, rtol=1e-9)


def _trusted_cases() -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    kon = ketameta.datasets.konstantopoulos2011()
    ber = ketameta.datasets.berkey1998()
    y = np.array(kon["yi"], dtype=float)
    y[3] = np.nan
    return [
        (("yi", "vi"), {"random": "~ 1 | district/school", "data": kon}),
        (
            (y, np.array(kon["vi"])),
            {"random": ["~ 1 | district", "~ 1 | school"], "data": kon, "test": "t"},
        ),
        (("yi", "vi"), {"mods": "year", "random": "~ 1 | district/school", "data": kon}),
        (("yi", "vi"), {"mods": "~ outcome", "random": "~ outcome | trial", "data": ber}),
    ]


@pytest.mark.parametrize(("args", "kwargs"), _trusted_cases())
def test_result_equals_the_validated_constructor(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """pool_mv builds its result without the converters (``_results.trusted_constructor``):
    it must be what the public constructor makes of the same values, field by field and
    type by type, with read-only arrays sharing no memory with the inputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = pool_mv(*args, **kwargs)
    values = {f.name: getattr(res, f.name) for f in attrs.fields(ketameta.MVResult)}
    again = ketameta.MVResult(**values)
    assert res == again
    for f in attrs.fields(ketameta.MVResult):
        mine, theirs = getattr(res, f.name), getattr(again, f.name)
        assert type(mine) is type(theirs), f.name
        if isinstance(mine, np.ndarray):
            assert mine.dtype == np.float64, f.name
            assert not mine.flags.writeable, f.name
            for given in args:
                if isinstance(given, np.ndarray):
                    assert not np.shares_memory(mine, given), f.name
        elif isinstance(mine, tuple):
            assert all(type(a) is type(b) for a, b in zip(mine, theirs, strict=True)), f.name


def test_masked_integer_grouping_column_omits_the_masked_effects() -> None:
    """A masked entry of an integer grouping column is a missing value (the effect is
    omitted with a warning naming it), not the integer under the mask."""
    kon = ketameta.datasets.konstantopoulos2011()
    district = np.ma.masked_array(np.array(kon["district"]), mask=np.zeros(56, dtype=bool))
    district[3] = np.ma.masked
    with pytest.warns(ketameta.OmittedStudiesWarning, match="index 3"):
        res = pool_mv(
            "yi", "vi", random="~ 1 | district/school", data={**kon, "district": district}
        )
    keep = [i for i in range(56) if i != 3]
    sub = {name: [kon[name][i] for i in keep] for name in ("yi", "vi", "district", "school")}
    ref = pool_mv("yi", "vi", random="~ 1 | district/school", data=sub)
    assert res.omitted == (3,)
    assert res.k == 55
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)
    np.testing.assert_allclose(res.sigma2, ref.sigma2, rtol=1e-10)


@pytest.mark.parametrize("k", [40, 4100])
def test_intercept_only_design_is_the_column_of_ones(k: int) -> None:
    """Without `mods` the design (shared between results up to 4096 effects, made afresh
    beyond) is the one `mods` = a column of ones gives: the same fit, bit for bit."""
    rng = np.random.default_rng(18)
    cluster = np.repeat(np.arange(10), k // 10 + 1)[:k]
    v = rng.uniform(0.01, 0.1, k)
    y = rng.normal(0.2, 0.3, 10)[cluster] + rng.normal(0.0, np.sqrt(v))
    data = {"cluster": cluster}
    res = pool_mv(y, v, random="~ 1 | cluster", data=data)
    ones = pool_mv(y, v, mods=np.ones((k, 1)), intercept=False, random="~ 1 | cluster", data=data)
    assert res.names == ones.names == ("intrcpt",)
    assert res.coef[0] == ones.coef[0]
    assert res.sigma2[0] == ones.sigma2[0]
    assert res.model_matrix is not None
    assert not res.model_matrix.x.flags.writeable
