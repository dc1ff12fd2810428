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
from .datasets import CRPSData, load_crps
from .effect_sizes import escalc
from .pooling import PoolResult, pool
from .sensitivity import leave_one_out

__all__ = ["analyse_crps", "render"]

#: correlation between pre- and post-treatment pain assumed for change scores
CORRELATIONS = (0.2, 0.5, 0.8)


def _quiet_pool(*args: Any, **kwargs: Any) -> PoolResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetametaWarning)
        return pool(*args, **kwargs)


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
    return {
        "studies": rows,
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
    return {
        "unit": "points on a 0-10 pain scale (reduction from before to the end of treatment)",
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
    main_resp = next(
        a
        for a in responders["analyses"]
        if a["set"] == "main" and a["measure"] == "logit" and a["method"] == "REML"
    )
    main_change = next(s for s in change["scenarios"] if s["main"])["REML"]
    changes = [s["REML"]["estimate"] for s in change["scenarios"]]
    trial = next(t for t in randomized["trial"]["estimates"] if t["main"])
    loo_change = [x["estimate"] for x in change["leave_one_out"]]
    spread = (
        "the three studies agree with each other (I² < 1%), but they are only three"
        if main_resp["i2"] < 1  # no heterogeneity beyond chance
        else f"the prediction interval ({main_resp['pred_lower']:.0f}-"
        f"{main_resp['pred_upper']:.0f}%) shows how much settings differ"
    )
    summary = [
        f"Only {k_resp} uncontrolled studies report responder counts between 3 weeks and 3 "
        f"months; pooled, about {main_resp['estimate']:.0f}% of patients respond "
        f"(95% CI {main_resp['ci_lower']:.0f}-{main_resp['ci_upper']:.0f}%, Zhao 2018: 58%); "
        f"{spread}, and each study defines a responder differently.",
        f"Pain falls by about {main_change['estimate']:.1f} points on a 0-10 scale by the end "
        f"of treatment in three uncontrolled series ({min(changes):.2f} to {max(changes):.2f} "
        f"across the stated assumptions, which matter less than the disagreement between the "
        f"studies: I² {main_change['i2']:.0f}%, {min(loo_change):.1f} to "
        f"{max(loo_change):.1f} leaving one out); without a control group this includes "
        "placebo response and regression to the mean.",
        f"The one placebo-controlled trial with usable numbers (SIGTERMANS2009) found pain "
        f"{abs(trial['md']):.1f} points lower with ketamine after one week; published pooled "
        "RCT results are smaller and uncertain beyond one month (Collins 2010: g = -0.65, "
        "CI crossing 0; Zhu 2024: -0.78 points, low certainty).",
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
        },
        "summary": summary,
    }


def _pct(a: dict[str, Any]) -> str:
    return (
        f"{a['estimate']:5.1f}% ({a['ci_lower']:.1f}-{a['ci_upper']:.1f}); "
        f"PI {a['pred_lower']:.1f}-{a['pred_upper']:.1f}; I² {a['i2']:.0f}%"
    )


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
        flag = "" if s["counted_once"] else f"  [not counted: {s['why_not_counted']}]"
        out.append(
            f"{s['study_id']:15s} {s['year']:>4} {n:>4s}  {s['route']:11s} "
            f"{s['design'][:48]}{flag}"
        )
    out += [
        "",
        f"Patients counted once: {ev['patients_counted_once']} in "
        f"{len(ev['studies_counted'])} studies ({ev['note']}).",
        "",
    ]

    r = report["responders"]
    out += ["2. Responder rates 3 weeks to 3 months after treatment", ""]
    for s in r["studies"]:
        count = "" if s["count"] is None else f" -> {s['count']}/{s['n']}"
        out.append(
            f"  {s['study_id']:13s} {s['reported']:>11s}{count:10s} [{s['use']}] {s['why']}"
        )
        out.append(f"  {'':13s} responder: {s['definition']}")
    out.append("")
    for a in r["analyses"]:
        out.append(
            f"  {a['set'][:11]:11s} {a['measure']:14s} {a['method']:4s} k={a['k']}: {_pct(a)}"
        )
    pub = r["published"]
    out.append(
        f"  Published: Zhao 2018, 1-3 months: {pub['estimate']:.0f}% "
        f"({pub['ci_lower']:.0f}-{pub['ci_upper']:.0f}%)"
    )
    out.append(
        "  Leave-one-out (main, logit, REML): "
        + "; ".join(f"without {x['omitted']} {x['estimate']:.0f}%" for x in r["leave_one_out"])
    )
    out += ["  Assumptions: " + "; ".join(r["assumptions"]), ""]

    c = report["change"]
    out += ["3. Pain change from before to the end of treatment (0-10 scale)", ""]
    for s in c["scenarios"]:
        mark = "  <- main" if s["main"] else ""
        reml, dl = s["REML"], s["DL"]
        out.append(
            f"  +/- as {s['plus_minus_as']}, r = {s['correlation']}: REML "
            f"{reml['estimate']:.2f} ({reml['ci_lower']:.2f} to {reml['ci_upper']:.2f}), "
            f"I² {reml['i2']:.0f}%; DL {dl['estimate']:.2f}{mark}"
        )
    out.append(
        "  Leave-one-out (main): "
        + "; ".join(f"without {x['omitted']} {x['estimate']:.2f}" for x in c["leave_one_out"])
    )
    out += ["  Assumptions: " + "; ".join(c["assumptions"]), ""]

    rz = report["randomized"]
    out += ["4. Randomized evidence", ""]
    for t in rz["trial"]["estimates"]:
        out.append(
            f"  SIGTERMANS2009 week 1, +/- as {t['plus_minus_as']}: MD {t['md']:.2f} "
            f"({t['md_ci'][0]:.2f} to {t['md_ci'][1]:.2f}); SMD {t['smd']:.2f} "
            f"({t['smd_ci'][0]:.2f} to {t['smd_ci'][1]:.2f})"
        )
    for p in rz["published"]:
        verdict = {True: "consistent", False: "INCONSISTENT", None: "no p reported"}[
            p["consistent"]
        ]
        out.append(
            f"  {p['review_id']:12s} {p['estimate']} ({p['ci_lower']} to {p['ci_upper']}) "
            f"{p['unit']}; p {p['pvalue_reported']} - implied {p['pvalue_implied']:.3g}: "
            f"{verdict}" + ("" if p["crps_specific"] != "no" else " [not CRPS-specific]")
        )
    out += ["  Assumptions: " + "; ".join(rz["assumptions"]), ""]

    out += ["5. Small-study effects", "", "  Not run: " + report["small_study"]["why"], ""]
    out += ["Summary", ""] + [f"- {line}" for line in report["summary"]]
    return "\n".join(out)


def forest_plots(report: dict[str, Any], directory: str) -> list[str]:
    """Write the forest plots of the pooled analyses into `directory`; return the paths."""
    from pathlib import Path

    from .plot import forest

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    main = [s for s in report["responders"]["studies"] if s["use"] == "main"]
    es = escalc("PLO", xi=[s["count"] for s in main], ni=[s["n"] for s in main])
    fig = forest(
        _quiet_pool(es, method="REML"),
        labels=[s["study_id"] for s in main],
        transform="expit",
        xlabel="Proportion of responders",
        refline=None,
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
    return paths
