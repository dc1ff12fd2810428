"""Check the definitions written in tests/reference/README_metareg.md against the reference JSON.

Recomputes, with NumPy from each case's data and metafor's tau^2, the quantities whose formulas
the README states (QE, the closed-form estimators, se.tau2 per estimator, I2/H2, R2 for DL and
EE, the Knapp-Hartung vcov, QM/anova, the fit statistics, predictions, per-study diagnostics,
the Q-profile bounds, the subgroup Q_between) and prints the largest relative difference of
each; with --mpmath it also recomputes metafor's coefficients at 40 digits. A tool for whoever
edits the README, not a test: it needs numpy, scipy (and mpmath for --mpmath).

Usage: python3 validation/metafor/check_metareg_definitions.py [--mpmath]
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

REF = Path(__file__).resolve().parents[2] / "tests" / "reference" / "metafor_metareg.json"
NO_INTERCEPT_SPAN = {"bcg ~ year - 1", "bcg ~ ablat - 1", "sim18 ~ x1 - 1"}
worst: dict[str, float] = {}


def rec(name: str, got: object, want: object) -> None:
    """Record the largest difference (relative; absolute where |want| < 1e-8)."""
    a = np.atleast_1d(np.asarray(got, float))
    b = np.atleast_1d(np.asarray(want, float))
    scale = np.where(np.abs(b) < 1e-8, 1.0, np.abs(b))
    worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(a - b) / scale)))


def proj(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """P(w) = W - W X (X'WX)^-1 X'W."""
    wm = np.diag(w)
    return wm - wm @ x @ np.linalg.solve(x.T @ wm @ x, x.T @ wm)


def check_case(c: dict) -> None:
    x = np.array(c["X"], float)
    k, p = x.shape
    keep = np.ones(c["k_all"], bool)
    keep[c["omitted_rows_0based"]] = False
    y = np.array(c["yi"], float)[keep]
    v = np.array(c["vi"], float)[keep]
    yc = y - y.mean()  # metafor estimates tau^2 and QE from the centred outcomes
    p0 = proj(x, 1 / v)
    qe = max(0.0, yc @ p0 @ yc)
    tr0 = np.trace(p0)
    vt = (k - p) / tr0
    p_ols = np.eye(k) - x @ np.linalg.solve(x.T @ x, x.T)
    for m, pm in c["per_method"].items():
        tau2 = pm["tau2"]
        w = 1 / (v + tau2)
        xtwx = x.T @ np.diag(w) @ x
        b = np.linalg.solve(xtwx, x.T @ (w * y))
        e = y - x @ b
        h = x @ np.linalg.solve(xtwx, x.T @ np.diag(w))
        rec("fitted", pm["fitted"], x @ b)
        rec("hatvalues", pm["hatvalues"], np.diag(h))
        rec("weights", pm["weights"], 100 * w / w.sum())
        ve = (np.eye(k) - h) @ np.diag(v + tau2) @ (np.eye(k) - h).T
        if c["X_cond"] < 1e4:
            rec("rstandard", pm["rstandard_z"], e / np.sqrt(np.diag(ve)))
        rss = np.sum(w * e**2)
        ll_ml = -0.5 * k * math.log(2 * math.pi) - 0.5 * np.sum(np.log(v + tau2)) - 0.5 * rss
        ll_reml = (
            -0.5 * (k - p) * math.log(2 * math.pi)
            + 0.5 * np.linalg.slogdet(x.T @ x)[1]
            - 0.5 * np.sum(np.log(v + tau2))
            - 0.5 * np.linalg.slogdet(xtwx)[1]
            - 0.5 * rss
        )
        q = p + (0 if m == "EE" else 1)
        fs = pm["fit_stats"]
        rec("ll ML", fs["ML"]["ll"], ll_ml)
        rec("ll REML", fs["REML"]["ll"], ll_reml)
        rec("dev ML", fs["ML"]["dev"], -2 * (ll_ml + 0.5 * np.sum(np.log(2 * math.pi * v))))
        rec("BIC REML", fs["REML"]["BIC"], -2 * ll_reml + q * math.log(k - p))
        n = max(k - p, q + 2)
        rec("AICc REML", fs["REML"]["AICc"], -2 * ll_reml + 2 * q * n / (n - q - 1))
    for f in c["fits"]:
        if f["status"] != "ok":
            continue
        m, t, tau2 = f["method"], f["test"], f["tau2"]
        w = 1 / (v + tau2)
        xtwx = x.T @ np.diag(w) @ x
        b = np.linalg.solve(xtwx, x.T @ (w * y))
        vb = np.linalg.inv(xtwx)
        if t in ("knha", "adhoc"):
            s2 = np.sum(w * (y - x @ b) ** 2) / (k - p)
            vb = (max(1.0, s2) if t == "adhoc" else s2) * vb
        rec("QE", f["QE"], qe)
        rec("vb", np.ravel(f["vb"]), np.ravel(vb))
        bt = np.array(f["btt"]) - 1
        qm = b[bt] @ np.linalg.solve(vb[np.ix_(bt, bt)], b[bt])
        rec("QM", f["QM"], qm if t == "z" else qm / len(bt))
        at = np.array(f["anova_btt"]["btt"]) - 1
        qa = b[at] @ np.linalg.solve(vb[np.ix_(at, at)], b[at])
        rec("anova QM", f["anova_btt"]["QM"], qa if t == "z" else qa / len(at))
        if m == "EE":
            rec("I2", f["I2"], max(0.0, 100 * (qe - (k - p)) / qe))
            rec("H2", f["H2"], qe / (k - p))
        else:
            rec("I2", f["I2"], 100 * tau2 / (vt + tau2))
            rec("H2", f["H2"], tau2 / vt + 1)
        pt = proj(x, w)
        pv = p_ols @ np.diag(v)
        if m == "DL":
            rec("tau2 DL", tau2, max(0.0, (qe - (k - p)) / tr0))
            var = 2 * (k - p) + 4 * tau2 * tr0 + 2 * tau2**2 * np.sum(p0 * p0)
            rec("se.tau2 DL", f["se_tau2"], math.sqrt(var) / tr0)
        elif m == "HS":
            rec("tau2 HS", tau2, max(0.0, (qe - k) / np.sum(1 / v)))
            var = 2 * (k - p) + 4 * tau2 * tr0 + 2 * tau2**2 * np.sum(p0 * p0)
            rec("se.tau2 HS", f["se_tau2"], math.sqrt(var) / np.sum(1 / v))
        elif m == "HE":
            rec("tau2 HE", tau2, max(0.0, (yc @ p_ols @ yc - np.trace(pv)) / (k - p)))
            var = 2 * np.trace(pv @ pv) + 4 * tau2 * np.trace(pv) + 2 * tau2**2 * (k - p)
            rec("se.tau2 HE", f["se_tau2"], math.sqrt(var) / (k - p))
        elif m == "SJ":
            t0 = np.sum(yc**2) / k
            ps = proj(x, 1 / (v + t0))
            rec("tau2 SJ", tau2, t0 * (yc @ ps @ yc) / (k - p))
            psv = ps @ np.diag(v)
            var = (
                2 * np.trace(psv @ psv)
                + 4 * tau2 * np.trace(psv @ ps)
                + 2 * tau2**2 * np.sum(ps * ps)
            )
            rec("se.tau2 SJ", f["se_tau2"], t0 / (k - p) * math.sqrt(var))
        elif m == "ML":
            rec("se.tau2 ML", f["se_tau2"], math.sqrt(2 / np.sum(w**2)))
        elif m == "REML":
            rec("se.tau2 REML", f["se_tau2"], math.sqrt(2 / np.sum(pt * pt)))
        elif m in ("PM", "EB"):
            rec("se.tau2 PM/EB", f["se_tau2"], math.sqrt(2 * k**2 / (k - p) / w.sum() ** 2))
        if c["intercept"] and p > 1:
            q0 = yc @ proj(np.ones((k, 1)), 1 / v) @ yc
            if m == "EE":
                rec("R2 EE", f["R2"], max(0.0, 100 * (1 - (qe / (k - p)) / (q0 / (k - 1)))))
            if m == "DL":
                t_re = max(0.0, (q0 - (k - 1)) / np.trace(proj(np.ones((k, 1)), 1 / v)))
                rec("R2 DL", f["R2"], 0.0 if t_re == 0 else max(0.0, 100 * (t_re - tau2) / t_re))
        pn = f.get("predict_newmods")
        if pn and "pred" in pn:
            x0 = np.array(pn["newX"])
            pred = x0 @ b
            se = np.sqrt(np.einsum("ij,jk,ik->i", x0, vb, x0))
            crit = stats.norm.ppf(0.975) if t == "z" else stats.t.ppf(0.975, k - p)
            rec("predict", pn["pred"], pred)
            rec("predict se", pn["se"], se)
            if m != "EE":
                rec("predict pi_ub", pn["pi_ub"], pred + crit * np.sqrt(se**2 + tau2))
        ci = f.get("confint")
        if ci and "tau2" in ci and c["id"] not in NO_INTERCEPT_SPAN and c["X_cond"] < 1e4:
            ub = ci["tau2"]["ci_ub"]
            if 1e-12 < ub < max(100.0, 10 * tau2):  # not the end of the search interval
                q_ub = y @ proj(x, 1 / (v + ub)) @ y
                rec("confint Q(ub)", q_ub, stats.chi2.ppf(0.025, k - p))


def check_subgroups(doc: dict) -> None:
    for s in doc["subgroups"]:
        for a in s["analyses"]:
            est = np.array([g["estimate"] for g in a["per_group"].values()])
            se = np.array([g["se"] for g in a["per_group"].values()])
            wt = 1 / se**2
            qb = np.sum(wt * (est - np.sum(wt * est) / wt.sum()) ** 2)
            rec("Q_between", a["separate_tau2"]["Q_between"], qb)


def check_mpmath(doc: dict) -> None:
    import mpmath as mp

    mp.mp.dps = 40
    for c in doc["cases"]:
        if c["X_source"]:
            continue
        xs = [[mp.mpf(z) for z in row] for row in c["X"]]
        keep = [i for i in range(c["k_all"]) if i not in c["omitted_rows_0based"]]
        y = [mp.mpf(c["yi"][i]) for i in keep]
        v = [mp.mpf(c["vi"][i]) for i in keep]
        p = len(xs[0])
        for f in c["fits"]:
            if f["status"] != "ok" or f["test"] != "z":
                continue
            w = [1 / (vi + mp.mpf(f["tau2"])) for vi in v]
            a = mp.matrix(p, p)
            r = mp.matrix(p, 1)
            for i, row in enumerate(xs):
                for j in range(p):
                    r[j] += w[i] * row[j] * y[i]
                    for jj in range(p):
                        a[j, jj] += w[i] * row[j] * row[jj]
            b = mp.lu_solve(a, r)
            err = max(abs((mp.mpf(f["b"][j]) - b[j]) / b[j]) for j in range(p))
            worst["b (40 digits)"] = max(worst.get("b (40 digits)", 0.0), float(err))


def main() -> None:
    doc = json.loads(REF.read_text())
    for c in doc["cases"]:
        if not c["X_source"]:
            check_case(c)
    check_subgroups(doc)
    if "--mpmath" in sys.argv:
        check_mpmath(doc)
    for name, err in sorted(worst.items()):
        print(f"{name:18s} {err:.2g}")


if __name__ == "__main__":
    main()
