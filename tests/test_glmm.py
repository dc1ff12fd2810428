"""pool_glmm: metafor's rma.glmm (OR, IRR, PLO, IRLN; UM.FS, UM.RS, CM.EL, CM.AL; EE/ML),
the likelihood against R's integrate(), exact arithmetic, published values and errors."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import ketameta
from ketameta import pool_glmm
from ketameta._engine import glmm

from .conftest import as_float, assert_printed, load_reference

GENERATED = load_reference("metafor_glmm.json")
DATASETS = GENERATED["datasets"]
CASES = [c for c in GENERATED["cases"] if "error" not in c["value"]]
PUBLISHED = {c["id"]: c for c in load_reference("published_binary.json")["cases"]}
INPUTS = ("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "t1i", "x2i", "t2i", "xi", "ni", "ti")


def _columns(name: str) -> dict[str, np.ndarray]:
    return {k: as_float(v) for k, v in DATASETS[name].items() if k in INPUTS}


def _fit(case: dict[str, Any], **kwargs: Any) -> ketameta.GLMMResult:
    options = {"measure": case["measure"], "model": case["model"], "method": case["method"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
        return pool_glmm(**_columns(case["dataset"]), **options, **kwargs)


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['dataset']}-{case['measure']}-{case['model']}-{case['method']}"


def _laplace(case: dict[str, Any]) -> bool:
    return case["model"] == "UM.RS" and case["method"] == "ML" and case["measure"] in ("OR", "IRR")


def _cmel(case: dict[str, Any]) -> bool:
    return case["model"] == "CM.EL" and case["measure"] == "OR"


# Tolerances, per quantity and algorithm of metafor (see the reference script's header):
# * estimates (θ, τ², σ²): 1e-5 relative (lme4's bobyqa with rhoend 1e-12 and nAGQ = 25,
#   glm with epsilon 1e-8, nlminb with rel.tol 1e-10 stop within ~2e-6 of the maximum;
#   ketameta's Newton-Raphson converges to 1e-10); τ² below 1e-4 absolutely (a boundary).
#   UM.RS with random effects uses lme4's Laplace approximation, which metafor leaves less
#   converged: 1e-3, with ketameta's Laplace log-likelihood at least metafor's (below).
# * standard errors: 5e-5 where lme4 computes them (a finite-difference Hessian with step
#   1e-4); 1e-2 for UM.RS (Laplace; finite differences on both sides); 2e-3 for CM.EL,
#   whose metafor values come from numDeriv on probabilities BiasedUrn computes to 1e-7
#   (ketameta's agree with exact arithmetic: test_conditional_model_in_exact_arithmetic).
# * the likelihood-ratio test (closed-form saturated likelihoods): 1e-8; the Wald test:
#   1e-5 (glm's saturated fit stops at epsilon 1e-8; CM.EL: metafor's saturated fit is
#   imprecise, see test_conditional_model_in_exact_arithmetic).
TOL_ESTIMATE = 1e-5


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_glmm_matches_metafor(case: dict[str, Any]) -> None:
    # Oracle: metafor 3.8-1 rma.glmm() with nAGQ = 25 (validation/metafor/make_glmm_reference.R)
    nagq = 1 if _laplace(case) else 25  # metafor's quadrature: Laplace where lme4 forces it
    res = _fit(case, nagq=nagq)
    exp = case["value"]
    est_tol = 1e-3 if _laplace(case) else TOL_ESTIMATE
    np.testing.assert_allclose(res.estimate, exp["estimate"], rtol=est_tol)
    if exp["tau2"] > 1e-4:
        np.testing.assert_allclose(res.tau2, exp["tau2"], rtol=est_tol)
    else:
        assert abs(res.tau2 - exp["tau2"]) < 1e-4
    if _laplace(case) or (case["model"] == "UM.RS" and case["measure"] in ("OR", "IRR")):
        np.testing.assert_allclose(res.sigma2, exp["sigma2"], rtol=est_tol)
    else:
        assert exp["sigma2"] is None
        assert math.isnan(res.sigma2)
    se_tol = 1e-2 if _laplace(case) else (2e-3 if _cmel(case) else 5e-5)
    np.testing.assert_allclose(res.se, exp["se"], rtol=se_tol)
    assert res.k == exp["k"]
    if exp["tau2"] > 1e-4:
        np.testing.assert_allclose(res.i2, exp["i2"], rtol=est_tol)
    if case["model"] == "UM.RS" and case["measure"] in ("OR", "IRR"):
        _check_umrs_tests(case, res)
    else:
        np.testing.assert_allclose(res.qe_lrt, exp["qe_lrt"], rtol=1e-8)
        if not _cmel(case):
            np.testing.assert_allclose(res.qe_wald, exp["qe_wald"], rtol=1e-5)
    # metafor's log-likelihood is the marginal one for glm, CM.EL and Laplace fits (for
    # glmer with nAGQ > 1 it reports another quantity: test_loglik_is_at_least_metafors...)
    marginal = case["method"] == "EE" or _cmel(case) or _laplace(case)
    if marginal and not (case["model"] == "UM.RS" and case["method"] == "EE"):
        assert res.loglik >= exp["metafor_loglik"] - 1e-9 * abs(exp["metafor_loglik"])
        np.testing.assert_allclose(res.loglik, exp["metafor_loglik"], rtol=1e-6)


def _check_umrs_tests(case: dict[str, Any], res: ketameta.GLMMResult) -> None:
    """UM.RS heterogeneity tests against metafor: the saturated model has random study
    effects and study-specific first-group effects, dummy coded (metafor's QE.LRT is
    reproduced by that model and not by the +-1/2 coding: metafor_glmm_umrs_saturated.json,
    from validation/metafor/check_umrs_saturated.R). The LRT to 1e-8 (AGQ, nAGQ = 25) and
    1e-6 (Laplace: lme4's optimum); the Wald test to 1e-5 with AGQ, and to 2e-2 with the
    Laplace approximation, where lme4's finite-difference Hessian is not that of the
    Laplace approximation ketameta computes exactly (lme4's own numDeriv Hessian moves
    its Wald statistic of dat.bcg from 161.195 to 161.813; see the JSON)."""
    exp = case["value"]
    laplace = _laplace(case)
    if case["dataset"] == "nielweise2007":
        # first groups without events: the saturated alpha_i diverges (-> -inf). metafor
        # reports lme4's stopping point; ketameta the supremum of the saturated likelihood
        # (that group's probability 1), at least metafor's and equal to it where lme4 ran
        # far enough (AGQ: 1e-9), and NaN for the Wald statistic of a divergent estimate
        assert math.isnan(res.qe_wald)
        assert math.isnan(res.qe_wald_pvalue)
        assert res.qe_lrt >= exp["qe_lrt"] - 1e-9 * exp["qe_lrt"]
        np.testing.assert_allclose(res.qe_lrt, exp["qe_lrt"], rtol=1e-5 if laplace else 1e-8)
        return
    np.testing.assert_allclose(res.qe_lrt, exp["qe_lrt"], rtol=1e-6 if laplace else 1e-8)
    np.testing.assert_allclose(res.qe_wald, exp["qe_wald"], rtol=2e-2 if laplace else 1e-5)
    np.testing.assert_allclose(
        res.qe_lrt_pvalue, exp["qe_lrt_pvalue"], rtol=1e-5 if laplace else 1e-7
    )


def test_umrs_saturated_model_is_metafors() -> None:
    # validation/metafor/check_umrs_saturated.R: glmer fits of candidate saturated models
    # beside metafor's QE.LRT; the dummy-coded one reproduces it, the +-1/2 one does not
    ref = load_reference("metafor_glmm_umrs_saturated.json")
    for case in ref["cases"]:
        lrt = case["metafor"]["qe_lrt"]
        np.testing.assert_allclose(case["dummy"]["lrt"], lrt, rtol=1e-8)
        assert abs(case["half"]["lrt"] / lrt - 1) > 0.02
        res = _fit(
            {
                "dataset": case["dataset"],
                "measure": case["measure"],
                "model": "UM.RS",
                "method": case["method"],
            },
            nagq=case["nagq"],
        )
        np.testing.assert_allclose(res.qe_lrt, case["dummy"]["lrt"], rtol=1e-6)
        if case["nagq"] > 1:
            np.testing.assert_allclose(res.qe_wald, case["dummy"]["wald_hessian"], rtol=1e-5)
        else:  # lme4's two Hessians of its Laplace deviance: within 2%
            for key in ("wald_hessian", "wald_numderiv"):
                np.testing.assert_allclose(res.qe_wald, case["dummy"][key], rtol=2e-2)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["value"].get("oracle_loglik") is not None], ids=_case_id
)
def test_loglik_is_at_least_metafors_at_its_maximum(case: dict[str, Any]) -> None:
    # R's integrate() (rel.tol 1e-12; UM.FS study effects profiled by optimize) gives the
    # marginal log-likelihood at metafor's (θ, τ²). ketameta evaluates its own likelihood
    # at the same point (same profiling) to that precision — BiasedUrn's hypergeometric
    # probabilities (precision 1e-7) limit the CM.EL oracle to ~1e-8 — and its maximum is
    # at least as high.
    res = _fit(case)
    assert res.nagq == 41
    oracle = case["value"]["oracle_loglik"]
    at_metafor = _loglik_at(case, case["value"]["estimate"], case["value"]["tau2"])
    np.testing.assert_allclose(at_metafor, oracle, rtol=1e-8 if _cmel(case) else 1e-11)
    assert res.loglik >= at_metafor - 1e-12 * abs(at_metafor)
    assert res.loglik >= oracle - 1e-8 * abs(oracle)


def _loglik_at(case: dict[str, Any], theta: float, tau2: float) -> float:
    """ketameta's marginal log-likelihood at (θ, τ²), fixed study effects maximised."""
    design = glmm.build(case["measure"], case["model"], _study_cells(case)).random
    beta = np.array([theta])
    lam = np.array([math.sqrt(tau2)])
    alpha = glmm._start(design)[1]
    with np.errstate(all="ignore"):
        for _ in range(100 if design.s else 0):  # Newton-Raphson per study on α_i
            state = glmm.evaluate(design, beta, lam, alpha, 41)
            step = state.grad[:, -1] / state.hess[:, -1, -1]
            alpha[:, 0] -= step
            if np.max(np.abs(step)) < 1e-13:
                break
        return float(glmm.evaluate(design, beta, lam, alpha, 41, derivatives=False).loglik.sum())


def _study_cells(case: dict[str, Any]) -> dict[str, np.ndarray]:
    cols = _columns(case["dataset"])
    if "n1i" in cols:
        cols = {
            "ai": cols["ai"],
            "bi": cols["n1i"] - cols["ai"],
            "ci": cols["ci"],
            "di": cols["n2i"] - cols["ci"],
        }
    present = np.all([~np.isnan(v) for v in cols.values()], axis=0)
    cols = {k: v[present] for k, v in cols.items()}
    if case["measure"] == "OR":
        a, b, c, d = (cols[k] for k in ("ai", "bi", "ci", "di"))
        keep = ~(((a + c) == 0) | ((b + d) == 0))
        cols = {k: v[keep] for k, v in cols.items()}
    elif case["measure"] == "IRR":
        keep = ~((cols["x1i"] + cols["x2i"]) == 0)
        cols = {k: v[keep] for k, v in cols.items()}
    return cols


def test_reference_covers_every_model() -> None:
    combos = {(c["measure"], c["model"], c["method"]) for c in CASES}
    for model in ("UM.FS", "UM.RS", "CM.AL", "CM.EL"):
        for method in ("EE", "ML"):
            assert ("OR", model, method) in combos
    for model in ("UM.FS", "UM.RS", "CM.EL"):
        assert ("IRR", model, "ML") in combos
    assert ("PLO", "UM.FS", "ML") in combos
    assert ("IRLN", "UM.FS", "ML") in combos


# ---------------------------------------------------------------------------------------------
# exact arithmetic and internal consistency


def test_conditional_model_in_exact_arithmetic() -> None:
    # CM.EL with method="EE": the conditional MLE solves Σ a_i = Σ E_ψ[X_i] and its
    # variance is 1/Σ Var_ψ[X_i] (non-central hypergeometric moments, 40-digit mpmath); the
    # Wald test of the saturated model sums w_i (θ̂_i - θ̄)² over each table's own MLE
    mpmath = pytest.importorskip("mpmath")
    tables = [(3, 9, 104, 1059), (1, 3, 5, 86)]  # Rothman et al. (2008), Table 15-5

    def moments(a: int, b: int, c: int, d: int, t: Any) -> tuple[Any, Any]:
        n1, n2, m1 = a + b, c + d, a + c
        xs = range(max(0, m1 - n2), min(n1, m1) + 1)
        w = [mpmath.binomial(n1, x) * mpmath.binomial(n2, m1 - x) * mpmath.exp(t * x) for x in xs]
        z = sum(w)
        mean = sum(x * wi for x, wi in zip(xs, w, strict=True)) / z
        var = sum((x - mean) ** 2 * wi for x, wi in zip(xs, w, strict=True)) / z
        return mean, var

    with mpmath.workdps(40):
        theta = mpmath.findroot(
            lambda t: sum(moments(*tb, t)[0] - tb[0] for tb in tables), mpmath.mpf(1.3)
        )
        se = 1 / mpmath.sqrt(sum(moments(*tb, theta)[1] for tb in tables))
        own = [mpmath.findroot(lambda t, tb=tb: moments(*tb, t)[0] - tb[0], 1) for tb in tables]
        w = [moments(*tb, t)[1] for tb, t in zip(tables, own, strict=True)]
        mean = sum(wi * t for wi, t in zip(w, own, strict=True)) / sum(w)
        wald = sum(wi * (t - mean) ** 2 for wi, t in zip(w, own, strict=True))
    columns = [np.array(column, dtype=float) for column in zip(*tables, strict=True)]
    cells = dict(zip(("ai", "bi", "ci", "di"), columns, strict=True))
    res = pool_glmm(**cells, model="CM.EL", method="EE")
    assert res.estimate == pytest.approx(float(theta), rel=1e-12)
    assert res.se == pytest.approx(float(se), rel=1e-11)
    assert res.qe_wald == pytest.approx(float(wald), rel=1e-10)


@pytest.mark.parametrize(
    ("measure", "model", "dataset"),
    [
        ("OR", "UM.FS", "bcg"),
        ("OR", "CM.EL", "nielweise2007"),
        ("PLO", "UM.FS", "nielweise2007_treated"),
        ("IRR", "UM.RS", "hart1999"),
    ],
)
def test_standard_error_is_the_inverse_observed_information(
    measure: str, model: str, dataset: str
) -> None:
    # the SE of θ from the posterior moments equals the one from finite differences of the
    # maximised likelihood profile (every other parameter re-maximised at each θ)
    res = pool_glmm(**_columns(dataset), measure=measure, model=model)
    h = 1e-3 * max(res.se, 1e-3)
    case = {"measure": measure, "model": model, "method": "ML", "dataset": dataset}
    cells = _study_cells(case)
    spec = glmm.build(measure, model, cells)
    design = spec.random
    p = design.p

    def profile(theta: float) -> float:
        # maximise over the other parameters with θ fixed (the effect is the last β, or
        # the only one): shift the offsets by θ·X and drop that column
        idx = p - 1
        shifted = design.offset + theta * design.X[:, idx][None, :]
        reduced = glmm.Design(
            design.family,
            design.y,
            design.size,
            shifted,
            np.delete(design.X, idx, axis=1),
            design.S,
            design.Z,
            design.const,
            design.support,
            design.log_weights,
        )
        beta0, start_alpha = glmm._start(reduced)
        with np.errstate(all="ignore"):
            fit = glmm.maximize(reduced, beta0, np.full(design.q, 0.5), start_alpha, 41)
        return fit.loglik

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f0, fp, fm = profile(res.estimate), profile(res.estimate + h), profile(res.estimate - h)
    curvature = (fp - 2 * f0 + fm) / h**2
    assert f0 == pytest.approx(res.loglik, rel=1e-10)
    assert res.se == pytest.approx(1 / math.sqrt(-curvature), rel=1e-4)


def test_quadrature_converges_and_is_recorded() -> None:
    # the log-likelihood converges as the nodes increase (adaptive Gauss-Hermite); 1 node is
    # the Laplace approximation, recorded in the result
    cols = _columns("nielweise2007_treated")
    values = {n: pool_glmm(**cols, measure="PLO", nagq=n) for n in (1, 7, 21, 41, 61)}
    assert [values[n].nagq for n in values] == [1, 7, 21, 41, 61]
    assert abs(values[61].loglik - values[41].loglik) < 1e-11
    assert abs(values[21].loglik - values[41].loglik) < 1e-6
    assert abs(values[1].loglik - values[41].loglik) > 1e-3
    assert "Laplace approximation" in values[1].summary()
    assert "41-point adaptive Gauss-Hermite" in values[41].summary()
    ee = pool_glmm(**cols, measure="PLO", method="EE")
    assert ee.nagq == 0
    assert ee.tau2 == 0.0


# ---------------------------------------------------------------------------------------------
# published values


def test_example_stijnen2010() -> None:
    # Stijnen, Hamza & Ozdemir (2010), Tables II, III, VII, VIII (values as printed)
    exp = PUBLISHED["stijnen2010_binomial_normal"]["expected"]
    for key, decimals, measure, model in (
        ("PLO_control", 2, "PLO", "UM.FS"),
        ("PLO_treated", 2, "PLO", "UM.FS"),
        ("OR_CM_EL", 3, "OR", "CM.EL"),
        ("OR_CM_AL", 3, "OR", "CM.AL"),
        ("IRLN_control", 3, "IRLN", "UM.FS"),
        ("IRLN_treated", 3, "IRLN", "UM.FS"),
        ("IRR_CM_EL", 3, "IRR", "CM.EL"),
    ):
        e = exp[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ketameta.OmittedStudiesWarning)
            res = pool_glmm(**_columns(e["dataset"]), measure=measure, model=model)
        assert_printed(res.estimate, e["estimate"], decimals)
        assert_printed(res.se, e["se"], decimals)
        if "tau2" in e:
            assert_printed(res.tau2, e["tau2"], 3 if measure == "IRLN" else 2)
        else:
            assert_printed(math.sqrt(res.tau2), e["tau"], 2)
        back = {"PLO": ("prop", 3), "OR": ("or", 2), "IRLN": ("rate", 2), "IRR": ("irr", 2)}
        name, d = back[measure]
        assert_printed(
            [res.exp_estimate, *res.exp_ci], [e[name], e[f"{name}_ci_lb"], e[f"{name}_ci_ub"]], d
        )


def test_example_rothman2008_maximum_likelihood() -> None:
    # Rothman, Greenland & Lash (2008), ch. 15: unconditional and conditional MLEs of the
    # common odds ratio and rate ratio (4 decimals, as reproduced by metafor's tests). For
    # CM.EL, metafor's standard errors and Wald tests are imprecise (BiasedUrn, numDeriv):
    # ketameta's agree with exact arithmetic instead, so only the estimates, the
    # likelihood-ratio tests and UM.FS's intervals are compared there.
    exp = PUBLISHED["rothman2008_glmm_equal_effects"]["expected"]
    t1 = {"ai": [8, 22], "bi": [98, 76], "ci": [5, 16], "di": [115, 69]}
    t5 = {"ai": [3, 1], "bi": [9, 3], "ci": [104, 5], "di": [1059, 86]}
    t2 = {
        "x1i": [32, 104, 206, 186, 102],
        "t1i": np.array([52407, 43248, 28612, 12663, 5317]) / 1e4,
        "x2i": [2, 12, 28, 28, 31],
        "t2i": np.array([18790, 10673, 5710, 2585, 1462]) / 1e4,
    }
    for key, cells, measure, model in (
        ("t15_1_CM_EL", t1, "OR", "CM.EL"),
        ("t15_2_UM_FS", t2, "IRR", "UM.FS"),
        ("t15_2_CM_EL", t2, "IRR", "CM.EL"),
        ("t15_5_UM_FS", t5, "OR", "UM.FS"),
        ("t15_5_CM_EL", t5, "OR", "CM.EL"),
    ):
        e = exp[key]
        res = pool_glmm(**cells, measure=measure, model=model, method="EE", level=e["level"])
        assert_printed(
            [res.estimate, res.qe_lrt, res.qe_lrt_pvalue],
            [e["estimate"], e["qe_lrt"], e["qe_lrt_pvalue"]],
            4,
        )
        if not (measure == "OR" and model == "CM.EL"):
            assert_printed(
                [res.ci_lower, res.ci_upper, res.qe_wald, res.qe_wald_pvalue],
                [e["ci_lb"], e["ci_ub"], e["qe_wald"], e["qe_wald_pvalue"]],
                4,
            )
        if "or" in e:
            assert_printed(res.exp_estimate, e["or"], 4)


# ---------------------------------------------------------------------------------------------
# results and errors


def test_result_prints_and_serialises() -> None:
    import json

    data = ketameta.datasets.bcg()
    res = pool_glmm(ai="tpos", bi="tneg", ci="cpos", di="cneg", data=data, labels="author")
    text = res.summary()
    assert text.startswith("Random-Effects Model (k = 13; tau^2 estimator: ML)")
    assert "Model Type: Unconditional Model with Fixed Study Effects" in text
    assert "Wld(df = 12) = 163.1649" in text
    assert "LRT(df = 12) = 176.9544" in text
    d = res.to_dict()
    json.dumps(d)
    assert d["labels"][0] == "Aronson"
    assert res.to_frame().shape[0] == 1
    assert "GLMMResult(measure='OR', model='UM.FS'" in repr(res)
    rs = pool_glmm(ai="tpos", bi="tneg", ci="cpos", di="cneg", data=data, model="UM.RS")
    assert "sigma^2 (estimated amount of study level variability)" in rs.summary()
    # AIC/BIC count every parameter: 13 study effects, θ and τ² (metafor: 171.94 = -2 ll
    # + 2·15 with its log-likelihood; here with the marginal one)
    assert res.n_parameters == 15
    assert res.aic == pytest.approx(-2 * res.loglik + 30)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ai": [0, 0], "bi": [5, 6], "ci": [1, 2], "di": [4, 4]}, ValueError, "separation"),
        ({"ai": [0, 0], "bi": [5, 6], "ci": [0, 0], "di": [4, 4]}, ValueError, "no studies left"),
        (
            {"ai": [0, 0], "bi": [5, 6], "ci": [0, 0], "di": [4, 4], "drop00": False},
            ValueError,
            "no events in any study",
        ),
        ({"xi": [0, 0], "ni": [5, 6], "measure": "PLO"}, ValueError, "no events"),
        ({"xi": [1, 2], "ti": [0, 6], "measure": "IRLN"}, ValueError, "`ti` must be positive"),
        (
            {"ai": [1, 2], "bi": [5, 6], "ci": [1, 2], "di": [4, 4], "model": "XX"},
            ValueError,
            "unknown `model`",
        ),
        (
            {"ai": [1, 2], "bi": [5, 6], "ci": [1, 2], "di": [4, 4], "nagq": 0},
            ValueError,
            "`nagq`",
        ),
        (
            {"ai": [1, 2], "bi": [5, 6], "ci": [1, 2], "di": [4, 4], "method": "REML"},
            ValueError,
            "unknown `method`",
        ),
        ({"xi": [1, 2], "ni": [5, 6]}, TypeError, "needs"),
    ],
)
def test_glmm_errors_are_named(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        pool_glmm(**kwargs)


def test_convergence_failure_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glmm, "_MAX_NEWTON", 1)
    with pytest.raises(ketameta.ConvergenceError, match="did not converge"):
        pool_glmm(**_columns("bcg"))
