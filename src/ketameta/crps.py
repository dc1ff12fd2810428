"""Honest analyses of the bundled CRPS ketamine dataset: the library's main job.

:func:`analyse_crps` returns every analysis as plain data (each derived number with the
assumptions it rests on); :func:`render` formats it for the terminal; ``ketameta crps``
runs both. The dataset holds what abstracts and review tables printed, so most analyses
need stated assumptions: they are shown beside the numbers, and the results that depend on
them are recomputed under the alternatives.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from . import convert
from ._warnings import KetametaWarning
from .bayes import BayesPoolResult, bayes_pool
from .datasets import CRPSData, load_crps
from .effect_sizes import escalc
from .pooling import PoolResult, pool
from .priors import HalfNormal
from .sensitivity import leave_one_out

__all__ = ["analyse_crps", "render"]

#: correlation between pre- and post-treatment pain assumed for change scores
CORRELATIONS = (0.2, 0.5, 0.8)


def _quiet_pool(*args: Any, **kwargs: Any) -> PoolResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetametaWarning)
        return pool(*args, **kwargs)


#: half-normal priors on τ for each metric: (main scale, wider scale, why)
TAU_PRIOR_SCALES: dict[str, tuple[float, float, str]] = {
    "logit": (
        1.0,
        2.0,
        "tau on the logit (log-odds) scale: Röver et al. (2021, Res Synth Methods "
        "12(4):448–474) regard half-normal scales of 0.5 to 1.0 as weakly informative for "
        "log-odds metrics; the wider end, 1.0, is the main prior and 2.0 the sensitivity "
        "analysis",
    ),
    "points": (
        2.0,
        4.0,
        "tau in points on the 0-10 pain scale: a scale of one minimal clinically important "
        "difference (2 points, Farrar et al. 2001, Pain 94(2):149–158) gives 90% prior "
        "probability to tau < 3.3 points; 4.0 is the sensitivity analysis",
    ),
}
#: minimal clinically important difference in pain (Farrar et al. 2001): 2 points or 30%
MCID_POINTS = 2.0


def _quiet_bayes(*args: Any, **kwargs: Any) -> BayesPoolResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetametaWarning)
        return bayes_pool(*args, **kwargs)


def _few_studies(
    yi: list[float],
    vi: list[float],
    *,
    metric: str,
    back: Any = None,
    bounds: tuple[float, float] | None = None,
    threshold: tuple[float, str] | None = None,
) -> dict[str, Any]:
    """The analyses a pooled estimate from few studies needs (Cochrane 2022 guidance):
    REML with the Hartung-Knapp-Sidik-Jonkman adjustment (main), z (sensitivity), Q-profile
    intervals for tau^2 and I^2, a prediction interval checked against the outcome's range,
    and a Bayesian analysis with a weakly informative half-normal prior on tau."""
    f = back if back is not None else (lambda x: x)
    unit = 100.0 if back is not None else 1.0

    def out(x: float) -> float:
        return unit * float(f(x))

    knha = _quiet_pool(yi, vi, method="REML", test="knha")
    z = _quiet_pool(yi, vi, method="REML", test="z")
    ci = knha.tau2_ci(tau2_max=math.inf)  # the exact Q-profile limits
    pi = (knha.pred_lower, knha.pred_upper)
    outside = None
    if bounds is not None and (pi[0] < bounds[0] or pi[1] > bounds[1]):
        outside = (
            f"the prediction interval ({out(pi[0]):.1f} to {out(pi[1]):.1f}) runs outside the "
            f"possible range {bounds[0]:g} to {bounds[1]:g}: the normal random-effects model "
            "does not fit the outcome's bounds, so read it as 'anything in the range'"
        )
    freq = {
        "method": "REML estimate of tau^2; Hartung-Knapp-Sidik-Jonkman (HKSJ) interval: "
        f"t with {knha.k - 1} df (pool(method='REML', test='knha'))",
        "k": knha.k,
        "estimate": out(knha.estimate),
        "ci_lower": out(knha.ci_lower),
        "ci_upper": out(knha.ci_upper),
        "pvalue": knha.pvalue,
        "pred_lower": out(pi[0]),
        "pred_upper": out(pi[1]),
        "pred_method": "mu +/- t(k-1) * sqrt(tau^2 + SE^2) with the HKSJ SE (Riley et al. 2011)",
        "pred_outside_range": outside,
        "tau2": knha.tau2,
        "tau2_ci": [ci.tau2[1], ci.tau2[2]],
        "i2": knha.i2,
        "i2_ci": [ci.i2[1], ci.i2[2]],
        "heterogeneity_method": "Q-profile confidence intervals (Viechtbauer 2007), 95%",
        "sensitivity_z": {
            "method": "REML with Wald (z) interval, known to be too narrow with few studies",
            "estimate": out(z.estimate),
            "ci_lower": out(z.ci_lower),
            "ci_upper": out(z.ci_upper),
            "pred_lower": out(z.pred_lower),
            "pred_upper": out(z.pred_upper),
        },
    }
    main_scale, wide_scale, why = TAU_PRIOR_SCALES[metric]
    bayes = []
    for label, scale in (("main", main_scale), ("wider prior", wide_scale)):
        res = _quiet_bayes(yi, vi, tau_prior=HalfNormal(scale))
        entry: dict[str, Any] = {
            "prior_set": label,
            "tau_prior": res.tau_prior.describe(),
            "mu_prior": "flat (improper)",
            "method": "exact posterior by numerical integration over tau (ketameta.bayes_pool; "
            "Röver 2020, J Stat Softw 93(6))",
            "mu_median": out(res.mu_median),
            "mu_ci": [out(res.mu_ci_lower), out(res.mu_ci_upper)],
            "tau_median": res.tau_median,
            "tau_ci": [res.tau_ci_lower, res.tau_ci_upper],
            "tau_scale": f"{metric} (the analysis scale; mu and the intervals in "
            f"{'percent, back-transformed' if back is not None else 'points'})",
            "pred_interval": [out(res.pred_lower), out(res.pred_upper)],
            "interval_kind": "central 95% (equal tails)",
            "pred_outside_range": bounds is not None
            and (res.pred_lower < bounds[0] or res.pred_upper > bounds[1]),
            "outcome_range": None if bounds is None else [bounds[0], bounds[1]],
        }
        if threshold is not None:
            c, text = threshold
            entry["probabilities"] = {
                f"P(pooled {text})": res.probability("mu", above=c),
                f"P(a new study's {text})": res.probability("theta_new", above=c),
            }
        bayes.append(entry)
    return {
        "metric": metric,
        "unit": "percent" if back is not None else "points",
        "frequentist": freq,
        "bayesian": bayes,
        "prior_choice": why,
    }


def _summary_of(res: PoolResult, back: Any = None) -> dict[str, Any]:
    f = back if back is not None else (lambda x: x)
    return {
        "method": res.method,
        "k": res.k,
        "estimate": float(f(res.estimate)),
        "ci_lower": float(f(res.ci_lower)),
        "ci_upper": float(f(res.ci_upper)),
        "pred_lower": float(f(res.pred_lower)),
        "pred_upper": float(f(res.pred_upper)),
        "tau2": res.tau2,
        "i2": res.i2,
        "q_pvalue": res.q_pvalue,
    }


def _evidence_table(data: CRPSData) -> dict[str, Any]:
    ids = {s.study_id for s in data.studies}
    reports: dict[str, list[str]] = {}
    kinds: dict[str, set[str]] = {}
    for o in data.outcomes:
        reports.setdefault(o.study_id, []).append(f"{o.outcome} ({o.statistic})")
        kinds.setdefault(o.study_id, set()).add(o.source_kind)
    rows, total, counted = [], 0, []
    for s in data.studies:
        reanalysis = s.related_to in ids  # the same patients as another study
        systemic = s.route != "topical"
        mixed = "including CRPS" in (s.population or "")  # CRPS subgroup size unknown
        counts = s.n_analysed is not None and not reanalysis and systemic and not mixed
        if counts:
            total += s.n_analysed
            counted.append(s.study_id)
        rows.append(
            {
                "study_id": s.study_id,
                "year": s.year,
                "design": s.design,
                "route": s.route,
                "agent": s.agent,
                "n": s.n_analysed,
                "reports": sorted(set(reports.get(s.study_id, []))),
                "source_kinds": sorted(kinds.get(s.study_id, set())),
                "related_to": s.related_to,
                "counted_once": counts,
                "why_not_counted": None
                if counts
                else (
                    f"re-analysis of {s.related_to}"
                    if reanalysis
                    else "topical ketamine, not systemic"
                    if not systemic
                    else "number analysed not reported"
                ),
            }
        )
    return {
        "studies": rows,
        "patients_counted_once": total,
        "studies_counted": counted,
        "note": "each patient counted once: re-analyses and topical studies excluded; "
        "KOFFLER2007 may overlap KIEFER2008A (unverified) and is counted",
    }


def _responders(data: CRPSData) -> dict[str, Any]:
    """Responder proportions at 3 weeks to 3 months after treatment."""
    candidates = [
        ("COHEN2023", "more than 3 weeks after infusion"),
        ("KIEFER2008A", "3 months"),
        ("MANGNUS2021", "about 4 weeks after infusion (T2)"),
        ("CORRELL2004", ">= 3 months"),
        ("GOLDBERG2010", "3 months"),
    ]
    rows, main, sensitivity = [], [], []
    for study, timepoint in candidates:
        o = next(
            r
            for r in data.outcomes
            if r.study_id == study
            and r.timepoint == timepoint
            and r.statistic in ("count", "percent")
        )
        n = int(o.n)
        row: dict[str, Any] = {
            "study_id": study,
            "n": n,
            "timepoint": timepoint,
            "definition": o.responder_definition,
            "reported": None,
            "count": None,
            "use": None,
            "why": None,
        }
        if o.statistic == "count":
            row |= {
                "reported": f"{o.value} of {n}",
                "count": int(o.value),
                "use": "main",
                "why": "count reported"
                + (" (from a news summary)" if o.source_kind == "news summary" else ""),
            }
        else:
            nearest = convert.counts_from_percent(o.value, n)
            truncated = convert.counts_from_percent(o.value, n, rounding="truncate")
            row["reported"] = f"{o.value}% of {n}"
            if len(nearest) == 1:
                row |= {
                    "count": nearest[0],
                    "use": "main",
                    "why": f"{o.value}% of {n} fits one count under rounding: {nearest[0]}",
                }
            elif len(truncated) == 1:
                row |= {
                    "count": truncated[0],
                    "use": "sensitivity",
                    "why": f"{o.value}% of {n} fits no count when rounded; {truncated[0]}/{n} "
                    f"= {100 * truncated[0] / n:.1f}% only if truncated",
                }
            else:
                row |= {
                    "use": "excluded",
                    "why": f"{o.value}% of {n} fits no count (neither rounded nor truncated): "
                    "the denominator at this time point differs from n",
                }
        rows.append(row)
        if row["use"] == "main":
            main.append(row)
            sensitivity.append(row)
        elif row["use"] == "sensitivity":
            sensitivity.append(row)
    analyses = []
    for label, chosen in (
        ("main", main),
        ("sensitivity (with truncated percentages)", sensitivity),
    ):
        xi = [r["count"] for r in chosen]
        ni = [r["n"] for r in chosen]
        for measure, back in (("PLO", convert.inv_logit), ("PR", None)):
            es = escalc(measure, xi=xi, ni=ni)
            for method in ("DL", "REML"):
                res = _quiet_pool(es, method=method)
                s = _summary_of(res, back)  # proportions, shown as percentages
                s |= {
                    k: 100 * v
                    for k, v in s.items()
                    if k in ("estimate", "ci_lower", "ci_upper", "pred_lower", "pred_upper")
                }
                s["pred_outside_range"] = s["pred_lower"] < 0 or s["pred_upper"] > 100
                analyses.append(
                    {
                        "set": label,
                        "studies": [r["study_id"] for r in chosen],
                        "measure": "logit" if measure == "PLO" else "raw proportion",
                        "unit": "percent responders",
                        **s,
                    }
                )
    loo = leave_one_out(
        escalc("PLO", xi=[r["count"] for r in main], ni=[r["n"] for r in main]), method="REML"
    )
    published = next(p for p in data.published if p.review_id == "ZHAO2018_1TO3MONTHS")
    few = _few_studies(
        [
            float(x)
            for x in escalc("PLO", xi=[r["count"] for r in main], ni=[r["n"] for r in main]).yi
        ],
        [
            float(x)
            for x in escalc("PLO", xi=[r["count"] for r in main], ni=[r["n"] for r in main]).vi
        ],
        metric="logit",
        back=convert.inv_logit,
        threshold=(0.0, "responder rate > 50%"),
    )
    return {
        "studies": rows,
        "few_studies": few,
        "analyses": analyses,
        "leave_one_out": [
            {
                "omitted": main[i]["study_id"],
                "estimate": 100 * float(convert.inv_logit(loo.estimate[i])),
                "ci_lower": 100 * float(convert.inv_logit(loo.ci_lower[i])),
                "ci_upper": 100 * float(convert.inv_logit(loo.ci_upper[i])),
            }
            for i in range(len(main))
        ],
        "published": {
            "review_id": published.review_id,
            "estimate": published.estimate,
            "ci_lower": published.ci_lower,
            "ci_upper": published.ci_upper,
            "unit": "percent",
            "note": "Zhao 2018, 1-3 months (>= 30% relief)",
        },
        "assumptions": [
            "responder definitions differ between studies (shown per study) and are pooled as one",
            "a percentage is converted to a count only when exactly one count fits it",
            "logit pooling back-transformed with the inverse logit; raw proportions as printed",
        ],
    }


def _change_scores(data: CRPSData) -> dict[str, Any]:
    """Pre/post pain change at the end of treatment under stated assumptions."""

    def value(study: str, timepoint: str) -> Any:
        return next(o for o in data.outcomes if o.study_id == study and o.timepoint == timepoint)

    patil = value("PATIL2012", "after infusion")
    s_pre, s_post = value("SIGTERMANS2010", "baseline"), value("SIGTERMANS2010", "end of infusion")
    m_pre, m_post = (
        value("MANGNUS2021", "baseline (T0)"),
        value("MANGNUS2021", "end of infusion (T1)"),
    )
    n_s, n_m = int(s_pre.n), int(m_pre.n)
    scenarios = []
    for pm in ("SE", "SD"):
        for r in CORRELATIONS:
            factor = math.sqrt(n_s) if pm == "SE" else 1.0
            sig = escalc(
                "MC",
                m1i=[float(s_pre.value)],
                m2i=[float(s_post.value)],
                sd1i=[float(s_pre.dispersion) * factor],
                sd2i=[float(s_post.dispersion) * factor],
                ni=[n_s],
                ri=[r],
            )
            pre = convert.mean_sd_from_median(
                float(m_pre.value), n_m, iqr_width=float(m_pre.dispersion)
            )
            post = convert.mean_sd_from_median(
                float(m_post.value), n_m, iqr_width=float(m_post.dispersion)
            )
            man = escalc(
                "MC",
                m1i=[float(pre.mean)],
                m2i=[float(post.mean)],
                sd1i=[float(pre.sd)],
                sd2i=[float(post.sd)],
                ni=[n_m],
                ri=[r],
            )
            yi = [float(patil.value), float(sig.yi[0]), float(man.yi[0])]
            vi = [float(patil.dispersion) ** 2, float(sig.vi[0]), float(man.vi[0])]
            entry: dict[str, Any] = {
                "plus_minus_as": pm,
                "correlation": r,
                "studies": {
                    "PATIL2012": [yi[0], vi[0]],
                    "SIGTERMANS2010": [yi[1], vi[1]],
                    "MANGNUS2021": [yi[2], vi[2]],
                },
                "main": pm == "SE" and r == 0.5,
            }
            for method in ("DL", "REML"):
                entry[method] = _summary_of(_quiet_pool(yi, vi, method=method))
            scenarios.append(entry)
    main = next(s for s in scenarios if s["main"])
    loo = leave_one_out(*map(list, zip(*main["studies"].values(), strict=True)), method="REML")
    yi_main, vi_main = (list(x) for x in zip(*main["studies"].values(), strict=True))
    few = _few_studies(
        yi_main,
        vi_main,
        metric="points",
        bounds=(-10.0, 10.0),
        threshold=(MCID_POINTS, "mean pain reduction > 2 points (MCID)"),
    )
    return {
        "unit": "points on a 0-10 pain scale (reduction from before to the end of treatment)",
        "few_studies": few,
        "scenarios": scenarios,
        "leave_one_out": [
            {
                "omitted": s,
                "estimate": float(loo.estimate[i]),
                "ci_lower": float(loo.ci_lower[i]),
                "ci_upper": float(loo.ci_upper[i]),
            }
            for i, s in enumerate(main["studies"])
        ],
        "assumptions": [
            "PATIL2012: mean change 7.2 with its SE as printed "
            "(may be per infusion, not per patient)",
            "SIGTERMANS2010: the +/- is not labelled; main analysis reads it as an SE "
            "(0.2 on a 0-10 scale from 10 patients), the alternative as an SD",
            "MANGNUS2021: medians taken as means, SD from the IQR width (symmetric quartiles, "
            "Wan et al. 2014)",
            f"pre/post correlation r = 0.5 (main), {CORRELATIONS[0]} and {CORRELATIONS[-1]} "
            "as sensitivity",
            "VAS 0-10 cm and NRS 0-10 treated as the same scale",
        ],
    }


def _randomized(data: CRPSData) -> dict[str, Any]:
    k_arm = next(
        o
        for o in data.outcomes
        if o.study_id == "SIGTERMANS2009" and o.arm == "ketamine" and o.statistic == "mean"
    )
    p_arm = next(
        o
        for o in data.outcomes
        if o.study_id == "SIGTERMANS2009" and o.arm == "placebo" and o.statistic == "mean"
    )
    trial = []
    for pm in ("SE", "SD"):
        n1, n2 = int(k_arm.n), int(p_arm.n)
        f1 = math.sqrt(n1) if pm == "SE" else 1.0
        f2 = math.sqrt(n2) if pm == "SE" else 1.0
        md = escalc(
            "MD",
            m1i=[float(k_arm.value)],
            sd1i=[float(k_arm.dispersion) * f1],
            n1i=[n1],
            m2i=[float(p_arm.value)],
            sd2i=[float(p_arm.dispersion) * f2],
            n2i=[n2],
        )
        smd = escalc(
            "SMD",
            m1i=[float(k_arm.value)],
            sd1i=[float(k_arm.dispersion) * f1],
            n1i=[n1],
            m2i=[float(p_arm.value)],
            sd2i=[float(p_arm.dispersion) * f2],
            n2i=[n2],
        )
        lo, hi = md.ci()
        slo, shi = smd.ci()
        trial.append(
            {
                "plus_minus_as": pm,
                "md": float(md.yi[0]),
                "md_ci": [float(lo[0]), float(hi[0])],
                "smd": float(smd.yi[0]),
                "smd_ci": [float(slo[0]), float(shi[0])],
                "main": pm == "SE",
            }
        )
    published = []
    for p in data.published:
        if p.estimate is None or p.ci_lower is None:
            continue
        if p.review_id.startswith("ZHAO2018"):
            continue
        chk = convert.check_reported(
            _printed(p.estimate), _printed(p.ci_lower), _printed(p.ci_upper), pvalue=p.pvalue
        )
        published.append(
            {
                "review_id": p.review_id,
                "comparison": p.comparison,
                "unit": p.unit,
                "estimate": p.estimate,
                "ci_lower": p.ci_lower,
                "ci_upper": p.ci_upper,
                "pvalue_reported": p.pvalue,
                "pvalue_implied": chk.pvalue_implied,
                "consistent": chk.consistent,
                "crps_specific": p.crps_specific,
                "note": p.note,
                "check": chk.note,
            }
        )
    return {
        "trial": {
            "study_id": "SIGTERMANS2009",
            "timepoint": k_arm.timepoint,
            "outcome": "pain intensity, ketamine minus placebo (NRS 0-10)",
            "estimates": trial,
        },
        "published": published,
        "assumptions": [
            "SIGTERMANS2009's +/- is not labelled: read as an SE (main) and as an SD",
            "published pooled results are checked with check_reported (SE from the CI, implied p)",
        ],
    }


def _printed(x: float) -> str:
    return repr(float(x))


def analyse_crps(data: CRPSData | None = None) -> dict[str, Any]:
    """All analyses of the bundled CRPS dataset, as plain (JSON-serialisable) data.

    Parameters
    ----------
    data : CRPSData, optional
        The dataset as loaded by :func:`~ketameta.datasets.load_crps` (loaded here if not
        given).

    Returns
    -------
    dict
        ``evidence`` (the evidence table, patients counted once), ``responders`` (pooled
        responder rates at 3 weeks to 3 months, main and sensitivity sets, with
        leave-one-out and Zhao 2018's result), ``change`` (pre/post pain change under every
        combination of the stated assumptions), ``randomized`` (SIGTERMANS2009 and the
        published pooled RCT results, checked), ``small_study`` (why funnel-based
        diagnostics are not run), ``summary`` (plain-language conclusions). Every
        analysis lists the assumptions it rests on.

    Examples
    --------
    >>> from ketameta.crps import analyse_crps
    >>> report = analyse_crps()
    >>> [r["study_id"] for r in report["responders"]["studies"] if r["use"] == "main"]
    ['COHEN2023', 'KIEFER2008A', 'MANGNUS2021']
    """
    if data is None:
        data = load_crps()
    responders = _responders(data)
    change = _change_scores(data)
    randomized = _randomized(data)
    k_resp = sum(1 for r in responders["studies"] if r["use"] == "main")
    few_r = responders["few_studies"]
    fr, br = few_r["frequentist"], few_r["bayesian"][0]
    few_c = change["few_studies"]
    fc, bc = few_c["frequentist"], few_c["bayesian"][0]
    changes = [s["REML"]["estimate"] for s in change["scenarios"]]
    trial = next(t for t in randomized["trial"]["estimates"] if t["main"])
    loo_change = [x["estimate"] for x in change["leave_one_out"]]
    zhao = next(p for p in data.published if p.review_id == "ZHAO2018_PAIN")
    zhu = next(p for p in data.published if p.review_id == "ZHU2024")
    collins = next(p for p in data.published if p.review_id == "COLLINS2010")
    p_resp = next(v for k, v in br["probabilities"].items() if k.startswith("P(pooled"))
    p_mcid = next(v for k, v in bc["probabilities"].items() if k.startswith("P(pooled"))
    br_ci = _rng(br["mu_ci"][0], br["mu_ci"][1])
    br_pi = _rng(br["pred_interval"][0], br["pred_interval"][1])
    fc_i2 = f"{_i2(fc['i2_ci'][0])} to {_i2(fc['i2_ci'][1])}"
    bc_ci = _rng(bc["mu_ci"][0], bc["mu_ci"][1])
    p_mcid_wide = next(
        v for k, v in few_c["bayesian"][1]["probabilities"].items() if k.startswith("P(pooled")
    )
    summary = [
        f"Responders 3 weeks to 3 months after treatment: only {k_resp} uncontrolled studies "
        f"report counts; pooled, about {fr['estimate']:.0f}% respond (REML with the "
        f"Hartung-Knapp-Sidik-Jonkman interval: 95% CI {_rng(fr['ci_lower'], fr['ci_upper'])}%; "
        f"Bayesian, half-normal(1) prior on tau: {br['mu_median']:.0f}%, 95% credible interval "
        f"{br_ci}%; Zhao 2018: 58%). Whether settings differ cannot be told from "
        f"three studies: I² is estimated at {fr['i2']:.0f}% but its 95% confidence interval runs "
        f"from {fr['i2_ci'][0]:.0f}% to {fr['i2_ci'][1]:.1f}%, so the data allow anything from "
        "no to very large differences between settings; a new setting's responder rate could "
        f"lie anywhere from {br_pi}% (Bayesian 95% prediction interval). "
        f"The probability that the typical responder rate exceeds 50% is {p_resp:.2f}: the "
        "data cannot say whether most patients respond. Each study defines a responder "
        "differently.",
        f"Pain change by the end of treatment in three uncontrolled series: about "
        f"{fc['estimate']:.1f} points on a 0-10 scale, but the three studies differ widely "
        f"(I² {fc['i2']:.0f}%, 95% CI {fc_i2}%), so the HKSJ 95% CI "
        f"runs from {_rng(fc['ci_lower'], fc['ci_upper'])} points (the z interval "
        f"{_rng(fc['sensitivity_z']['ci_lower'], fc['sensitivity_z']['ci_upper'])}, too narrow "
        f"with k = 3); the Bayesian analysis gives {bc['mu_median']:.1f} "
        f"({bc_ci}) with P(mean reduction > 2 points, the minimal clinically "
        f"important difference) = {p_mcid:.2f}, {p_mcid_wide:.2f} "
        "with the wider prior. The prediction interval for a new series "
        f"({_rng(fc['pred_lower'], fc['pred_upper'])} points, HKSJ) runs beyond the ends "
        "of the 0-10 scale: the model cannot say more than that results differ widely. "
        f"Estimates range {_rng(min(changes), max(changes), 2)} across the stated assumptions "
        f"and {_rng(min(loo_change), max(loo_change))} leaving one study out; without a "
        "control group this includes placebo response and regression to the mean.",
        f"Randomized evidence: the one placebo-controlled trial with usable numbers "
        f"(SIGTERMANS2009) found pain {abs(trial['md']):.1f} points lower with ketamine after "
        f"one week. Pooled RCT results: Collins 2010, intravenous ketamine vs placebo in CRPS, "
        f"Hedges g = {collins.estimate} (95% CI {collins.ci_lower} to {collins.ci_upper}, "
        f"p = {collins.pvalue}), not significant; Zhu 2024 found no significant short-term "
        f"difference, and beyond one month {zhu.estimate} points (95% CI "
        f"{zhu.ci_lower} to {zhu.ci_upper}, p = {zhu.pvalue}), judged low certainty.",
        f"Zhao et al. 2018 pooled {zhao.n_studies} studies with {zhao.n_participants} "
        "participants (RCTs and cohort studies) and reported significant between-study "
        "heterogeneity; their study-level table is not publicly "
        "readable, so this dataset could not confirm which studies they pooled.",
        "The evidence is encouraging for short-term relief but not conclusive: few, small, "
        "mostly uncontrolled studies, known only from abstracts; long-term benefit is not "
        "established.",
    ]
    return {
        "dataset_version": data.version,
        "evidence": _evidence_table(data),
        "responders": responders,
        "change": change,
        "randomized": randomized,
        "small_study": {
            "run": False,
            "why": f"k = {k_resp} and 3 studies per pooled analysis: funnel-plot tests "
            "(Egger, Begg) and trim-and-fill need at least 10 studies to mean anything "
            "(Sterne et al. 2011); leave-one-out is reported instead",
            "selection_model": _SELECTION_MODEL_NOTE.format(k=k_resp),
        },
        "summary": summary,
    }


#: why no selection model (ketameta.selection_model) is fitted to the CRPS data
_SELECTION_MODEL_NOTE = (
    "cannot say anything here, so none is fitted. A selection model estimates how much less "
    "likely a study with a larger p-value is to be published from how the studies' p-values "
    "spread over p-value intervals, jointly with the mean and tau^2; with k = {k} studies per "
    "analysis there are as many data points as parameters (mean, tau^2 and at least one "
    "selection weight), the weight is not identified (the three-parameter model needs "
    "studies on both sides of its cut-point, and many of them), and the adjusted estimate "
    "would restate the assumed weight function rather than the data. Moreover, these are "
    "uncontrolled series: a selection model weights studies by the p-value of theta = 0, "
    "here a responder rate of 50% (logit 0) or no pain change from baseline, not a "
    "comparison whose significance would decide publication. Fixed a priori weights "
    "(Vevea & Woods 2005) would only show how far an assumed selection could move the "
    "estimate"
)


def _dec(*xs: float) -> int:
    big = max(abs(x) for x in xs)
    return 0 if big >= 20 else 1 if big >= 1 else 2


def _rng(a: float, b: float, decimals: int | None = None) -> str:
    """A range for people: 'a to b' (never a hyphen that reads as a minus)."""
    d = _dec(a, b) if decimals is None else decimals
    return f"{a:.{d}f} to {b:.{d}f}"


def _i2(x: float) -> str:
    """I² in percent with one decimal, never rounded up to a misleading 100."""
    return "over 99.9" if x >= 99.95 else f"{x:.1f}"


def _p(p: float) -> str:
    """A p-value for people: 'p < 0.0001' or three significant digits."""
    if p < 1e-4:
        return "< 0.0001"
    return f"= {p:.2g}" if p < 0.01 else f"= {p:.3f}" if p < 0.1 else f"= {p:.2f}"


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def _pct(a: dict[str, Any]) -> str:
    flag = "  [PI outside 0 to 100%]" if a.get("pred_outside_range") else ""
    return (
        f"{a['estimate']:5.1f}% (95% CI {_rng(a['ci_lower'], a['ci_upper'], 1)}); "
        f"PI {_rng(a['pred_lower'], a['pred_upper'], 1)}; I² {a['i2']:.0f}%{flag}"
    )


def _render_few(few: dict[str, Any], unit: str) -> list[str]:
    f, z = few["frequentist"], few["frequentist"]["sensitivity_z"]
    d = 0 if unit == "%" else 2
    ci = _rng(f["ci_lower"], f["ci_upper"], d)
    pi = _rng(f["pred_lower"], f["pred_upper"], d)
    tau2_ci = _rng(f["tau2_ci"][0], f["tau2_ci"][1], 2)
    out = [
        f"  Main analysis, REML with the Hartung-Knapp-Sidik-Jonkman (HKSJ) interval "
        f"(t, {f['k'] - 1} df):",
        f"    pooled {f['estimate']:.{d}f}{unit}, 95% CI {ci}{unit}; "
        f"95% prediction interval {pi}{unit}",
    ]
    if f["pred_outside_range"]:
        out += _wrap("! " + f["pred_outside_range"], 92, "    ")
    out += _wrap(
        f"heterogeneity: tau² {f['tau2']:.3g} (95% CI {tau2_ci}), I² {f['i2']:.0f}% "
        f"(95% CI {_i2(f['i2_ci'][0])} to {_i2(f['i2_ci'][1])}%; Q-profile)",
        92,
        "    ",
    )
    out.append(
        f"  Sensitivity, z (Wald) interval: 95% CI {_rng(z['ci_lower'], z['ci_upper'], d)}{unit} "
        "(too narrow with few studies)"
    )
    for b in few["bayesian"]:
        flag = "  [outside the scale]" if b["pred_outside_range"] else ""
        out.append(
            f"  Bayesian, {b['tau_prior']} prior on tau ({b['prior_set']}), flat prior on mu:"
        )
        out += _wrap(
            f"median {b['mu_median']:.{d}f}{unit}, 95% credible interval "
            f"{_rng(b['mu_ci'][0], b['mu_ci'][1], d)}{unit}; tau {b['tau_median']:.2f} "
            f"({_rng(b['tau_ci'][0], b['tau_ci'][1], 2)}); new study "
            f"{_rng(b['pred_interval'][0], b['pred_interval'][1], d)}{unit}{flag}",
            92,
            "    ",
        )
        probs = "; ".join(f"{k} = {v:.2f}" for k, v in b["probabilities"].items())
        out += _wrap(probs, 92, "    ")
    out += _wrap("Prior: " + few["prior_choice"], 92, "  ")
    return out


def render(report: dict[str, Any]) -> str:
    """The report of :func:`analyse_crps` as text for the terminal."""
    out: list[str] = []
    ev = report["evidence"]
    out += [
        f"Ketamine for CRPS: the curated evidence (dataset v{report['dataset_version']})",
        "",
        "1. Evidence table",
        "",
    ]
    out.append(f"{'study':15s} {'year':>4s} {'n':>4s}  {'route':11s} design")
    for s in ev["studies"]:
        n = "" if s["n"] is None else str(s["n"])
        head = f"{s['study_id']:15s} {s['year']:>4} {n:>4s}  {s['route']:11s} "
        lines = _wrap(s["design"], 92 - len(head), "")
        out.append(head + lines[0])
        out += [" " * len(head) + line for line in lines[1:]]
        if not s["counted_once"]:
            out.append(" " * len(head) + f"[not counted: {s['why_not_counted']}]")
    out += [""]
    out += _wrap(
        f"Patients counted once: {ev['patients_counted_once']} in "
        f"{len(ev['studies_counted'])} studies ({ev['note']}).",
        92,
        "",
    )
    out.append("")

    r = report["responders"]
    out += ["2. Responder rates 3 weeks to 3 months after treatment", ""]
    for s in r["studies"]:
        count = "" if s["count"] is None else f" -> {s['count']}/{s['n']}"
        out.append(f"  {s['study_id']:13s} {s['reported']:>11s}{count:10s} [{s['use']}]")
        out += _wrap(s["why"], 92, "  " + " " * 14)
        out.append(f"  {'':13s} responder: {s['definition']}")
    out += ["", "  Pooled responder rate (main set, logit scale, back-transformed):"]
    out += _render_few(r["few_studies"], "%")
    out += ["", "  All pooled analyses (z intervals; PI: 95% prediction interval):"]
    for a in r["analyses"]:
        out.append(
            f"  {a['set'][:11]:11s} {a['measure']:14s} {a['method']:4s} k={a['k']}: {_pct(a)}"
        )
    pub = r["published"]
    out.append(
        f"  Published: Zhao 2018, 1 to 3 months: {pub['estimate']:.0f}% "
        f"(95% CI {_rng(pub['ci_lower'], pub['ci_upper'], 0)}%)"
    )
    out += _wrap(
        "Leave-one-out (main, logit, REML): "
        + "; ".join(f"without {x['omitted']} {x['estimate']:.0f}%" for x in r["leave_one_out"]),
        92,
        "  ",
    )
    out += _wrap("Assumptions: " + "; ".join(r["assumptions"]), 92, "  ")
    out.append("")

    c = report["change"]
    out += ["3. Pain change from before to the end of treatment (0-10 scale)", ""]
    out += ["  Main scenario (+/- as SE, r = 0.5), reduction in points:"]
    out += _render_few(c["few_studies"], "")
    out += ["", "  Every scenario (REML, z intervals):"]
    for s in c["scenarios"]:
        mark = "  <- main" if s["main"] else ""
        reml, dl = s["REML"], s["DL"]
        out.append(
            f"  +/- as {s['plus_minus_as']}, r = {s['correlation']}: REML "
            f"{reml['estimate']:.2f} (95% CI {_rng(reml['ci_lower'], reml['ci_upper'], 2)}), "
            f"I² {reml['i2']:.0f}%; DL {dl['estimate']:.2f}{mark}"
        )
    out += _wrap(
        "Leave-one-out (main): "
        + "; ".join(f"without {x['omitted']} {x['estimate']:.2f}" for x in c["leave_one_out"]),
        92,
        "  ",
    )
    out += _wrap("Assumptions: " + "; ".join(c["assumptions"]), 92, "  ")
    out.append("")

    rz = report["randomized"]
    out += ["4. Randomized evidence", ""]
    for t in rz["trial"]["estimates"]:
        out += _wrap(
            f"SIGTERMANS2009 week 1, +/- as {t['plus_minus_as']}: MD {t['md']:.2f} "
            f"(95% CI {_rng(t['md_ci'][0], t['md_ci'][1], 2)}); SMD {t['smd']:.2f} "
            f"(95% CI {_rng(t['smd_ci'][0], t['smd_ci'][1], 2)})",
            92,
            "  ",
        )
    for p in rz["published"]:
        verdict = {True: "consistent", False: "INCONSISTENT", None: "no p reported"}[
            p["consistent"]
        ]
        scope = "" if p["crps_specific"] != "no" else " [not CRPS-specific]"
        text = (
            f"{p['review_id']}: {p['comparison']}: {p['estimate']} (95% CI "
            f"{p['ci_lower']} to {p['ci_upper']}) {p['unit']}; reported p {p['pvalue_reported']}, "
            f"implied by the CI p {_p(p['pvalue_implied'])}: {verdict}{scope}"
            + (f". Note: {p['note']}" if p.get("note") else "")
        )
        out += _wrap(text, 92, "  ")
    out += _wrap("Assumptions: " + "; ".join(rz["assumptions"]), 92, "  ")
    out.append("")

    out += ["5. Small-study effects", ""]
    out += _wrap("Not run: " + report["small_study"]["why"], 92, "  ")
    if "selection_model" in report["small_study"]:
        out += _wrap("Selection models: " + report["small_study"]["selection_model"], 92, "  ")
    out += ["", "Summary", ""]
    for line in report["summary"]:
        out += _wrap(line, 92, "- ")[:1] + ["  " + x[2:] for x in _wrap(line, 92, "- ")[1:]]
    return "\n".join(out)


def forest_plots(report: dict[str, Any], directory: str) -> list[str]:
    """Write the forest plots of the pooled analyses into `directory`; return the paths."""
    from pathlib import Path

    from .plot import bayes_forest, forest

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    main = [s for s in report["responders"]["studies"] if s["use"] == "main"]
    es = escalc(
        "PLO",
        xi=[s["count"] for s in main],
        ni=[s["n"] for s in main],
        labels=[s["study_id"] for s in main],
    )
    fig = forest(
        _quiet_pool(es, method="REML"),  # (proportions: back-transformed, no null line)
        xlabel="Proportion of responders",
    )
    path = out_dir / "crps_responders.png"
    fig.savefig(path, dpi=150)
    paths.append(str(path))
    scenario = next(s for s in report["change"]["scenarios"] if s["main"])
    yi, vi = zip(*scenario["studies"].values(), strict=True)
    fig = forest(
        _quiet_pool(list(yi), list(vi), method="REML"),
        labels=list(scenario["studies"]),
        xlabel="Pain reduction (points, 0-10)",
    )
    path = out_dir / "crps_pain_change.png"
    fig.savefig(path, dpi=150)
    paths.append(str(path))
    main_scale = TAU_PRIOR_SCALES["points"][0]
    fig = bayes_forest(
        _quiet_bayes(list(yi), list(vi), tau_prior=HalfNormal(main_scale)),
        labels=list(scenario["studies"]),
        xlabel="Pain reduction (points, 0-10); grey: shrinkage estimates",
    )
    path = out_dir / "crps_pain_change_bayes.png"
    fig.savefig(path, dpi=150)
    paths.append(str(path))
    return paths
