"""Multilevel and multivariate meta-analysis: :func:`pool_mv` (metafor's ``rma.mv``).

Several effects per study (outcomes, time points, comparisons), studies nested in labs or
countries: the effects are not independent, and pooling them as if they were understates the
uncertainty. :func:`pool_mv` fits the linear mixed-effects model

    y = Xβ + Σ_terms Z u + ε,   ε ~ N(0, V),

with the known sampling covariance ``V`` (see :func:`ketameta.vcalc` to build it), random
intercepts for nested or crossed grouping factors (``"~ 1 | district/school"``) and
correlated random effects of an inner factor within an outer one (``"~ outcome | study"``
with ``struct="CS"``, ``"HCS"``, ``"UN"``, ``"AR"``, ``"ID"`` or ``"DIAG"``), by REML or ML.
The numerical work is in :mod:`ketameta._engine.mv`.

References
----------
.. [1] Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
   J Stat Softw, 36(3), 1-48. https://doi.org/10.18637/jss.v036.i03
.. [2] Konstantopoulos, S. (2011). Fixed effects and variance components estimation in
   three-level meta-analysis. Res Synth Methods, 2(1), 61-76. https://doi.org/10.1002/jrsm.35
.. [3] Berkey, C. S., Hoaglin, D. C., Antczak-Bouckoms, A., Mosteller, F., & Colditz, G. A.
   (1998). Meta-analysis of multiple outcomes by regression with random effects. Stat Med,
   17(22), 2537-2550.
.. [4] Jackson, D., Riley, R., & White, I. R. (2011). Multivariate meta-analysis: Potential
   and promise. Stat Med, 30(20), 2481-2498. https://doi.org/10.1002/sim.4172
.. [5] Ishak, K. J., Platt, R. W., Joseph, L., Hanley, J. A., & Caro, J. J. (2007).
   Meta-analysis of longitudinal studies. Clin Trials, 4(5), 525-539.
   https://doi.org/10.1177/1740774507083567
.. [6] Cheung, M. W.-L. (2014). Modeling dependent effect sizes with three-level
   meta-analyses: A structural equation modeling approach. Psychol Methods, 19(2), 211-229.
   https://doi.org/10.1037/a0032968
.. [7] Gleser, L. J., & Olkin, I. (2009). Stochastically dependent effect sizes. In H.
   Cooper, L. V. Hedges, & J. C. Valentine (Eds.), The Handbook of Research Synthesis and
   Meta-Analysis (2nd ed., pp. 357-376). Russell Sage Foundation.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from scipy import sparse as sp
from scipy import special

from . import _transf
from ._engine import mv
from ._engine.inference import chi2_sf, test_critical_value
from ._engine.model import default_btt, moderator_test
from ._modelmatrix import ModelMatrix, _is_sequence_of_str, check_coefficients, model_matrix
from ._random import (
    Coded,
    Component,
    RandomTerm,
    build,
    column,
    parse_random,
    recode,
    unique_codes,
    variables_of,
)
from ._results import (
    RecordResult,
    TableResult,
    array_field,
    coefficient_frame,
    format_p,
    format_p_with_sign,
    import_pandas,
    plain,
    readonly,
    trusted_constructor,
)
from ._typing import ArrayLike, FloatArray
from ._validation import (
    as_float,
    as_float_array,
    as_number,
    bools,
    check_choice,
    check_level,
    floats,
    ints,
    merged_control,
    name_studies,
    strings,
)
from ._warnings import ConvergenceError, DegenerateDataWarning
from .effect_sizes import EffectSizes
from .metareg import PredictResult, _btt, _column, wald_test
from .pooling import prepare_studies
from .subgroups import group_codes

__all__ = [
    "ComponentIntervals",
    "LikelihoodRatioTest",
    "MVResult",
    "VarianceComponent",
    "pool_mv",
]

#: estimation methods of :func:`pool_mv`
MV_METHODS = ("REML", "ML")
#: tests of the coefficients
MV_TESTS = ("z", "t")
#: control settings of :func:`pool_mv` and their defaults
MV_CONTROL: dict[str, Any] = {
    "maxiter": 200,
    "threshold": 1e-10,
    "sigma2_init": None,
    "tau2_init": None,
    "rho_init": None,
    "gamma2_init": None,
    "phi_init": None,
}
_KIND_SYMBOL = {
    "sigma2": "sigma^2",
    "tau2": "tau^2",
    "rho": "rho",
    "gamma2": "gamma^2",
    "phi": "phi",
}


def _tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x)


# ======================================================================================
# result classes
# ======================================================================================


@attrs.frozen(kw_only=True)
class VarianceComponent(RecordResult):
    """One variance or correlation component of a :class:`MVResult`.

    Attributes
    ----------
    name : str
        As metafor prints it: ``"sigma^2.1"``, ``"tau^2"``, ``"tau^2.2"``, ``"rho"``,
        ``"gamma^2"``, ``"phi"`` (a number only where the kind has several).
    kind : str
        ``"sigma2"``, ``"tau2"``, ``"rho"``, ``"gamma2"`` or ``"phi"`` (metafor's
        argument names).
    index : int
        Position among the components of its kind (0-based).
    estimate : float
    fixed : bool
        Fixed by the user, or at 0 because the data cannot inform it (a correlation of
        inner levels that never occur in the same outer level, as metafor).
    factor : str
        The grouping factor (``"district/school"``), or for an ``~ inner | outer`` term
        its inner factor.
    nlevels : int
        Levels of the factor (of the outer factor for an ``~ inner | outer`` term).
    level : str
        The inner level (heteroscedastic structures; ``"AL.PD"`` for the correlation of a
        pair under ``UN``), else ``""``.
    count : int
        Studies at that inner level (metafor's ``k.lvl``); for a correlation under
        ``UN``, the outer levels where the pair meets; else the number of levels.
    """

    name: str
    kind: str
    index: int
    estimate: float
    fixed: bool
    factor: str
    nlevels: int
    level: str = ""
    count: int = 0

    @property
    def is_variance(self) -> bool:
        """Whether the component is a variance (not a correlation)."""
        return self.kind in ("sigma2", "tau2", "gamma2")


@attrs.frozen(kw_only=True)
class ComponentIntervals(TableResult):
    """Profile-likelihood confidence intervals of the variance and correlation components
    (metafor's ``confint`` of an ``rma.mv`` fit); see :meth:`MVResult.confint`.

    One row per component (``names``, ``estimate``, ``ci_lower``, ``ci_upper``); a
    variance's row is followed by its square root (``"sigma.1"``, ``"tau"``).
    ``lower_at_limit`` / ``upper_at_limit``: the bound is the end of the parameter
    space or of the searched range (0 for a variance, ±1 for a correlation, the search
    limit above), not a root of the profile.
    """

    names: tuple[str, ...] = attrs.field(converter=strings)
    estimate: FloatArray = array_field()
    ci_lower: FloatArray = array_field()
    ci_upper: FloatArray = array_field()
    lower_at_limit: tuple[bool, ...] = attrs.field(converter=bools)
    upper_at_limit: tuple[bool, ...] = attrs.field(converter=bools)
    level: float

    def __getitem__(self, name: str) -> tuple[float, float, float]:
        """``(estimate, lower, upper)`` of the component `name`."""
        i = self.names.index(name)
        return float(self.estimate[i]), float(self.ci_lower[i]), float(self.ci_upper[i])

    def to_frame(self) -> Any:
        """One row per component (requires pandas)."""
        pd = import_pandas()
        return pd.DataFrame(
            {
                "estimate": self.estimate,
                "ci_lower": self.ci_lower,
                "ci_upper": self.ci_upper,
                "lower_at_limit": list(self.lower_at_limit),
                "upper_at_limit": list(self.upper_at_limit),
            },
            index=pd.Index(self.names, name="component"),
        )

    def summary(self) -> str:
        """As metafor prints it (``<`` or ``>`` marks a bound at the search limit)."""
        width = max(8, *(len(n) for n in self.names))
        lines = [f"{'':{width}s} {'estimate':>8s} {'ci.lb':>8s} {'ci.ub':>8s}"]
        for i, name in enumerate(self.names):
            lo = f"{self.ci_lower[i]:.4f}"
            hi = f"{self.ci_upper[i]:.4f}"
            if self.lower_at_limit[i] and not name.startswith(("rho", "phi", "sigma", "tau")):
                lo = "<" + lo
            lines.append(f"{name:{width}s} {self.estimate[i]:8.4f} {lo:>8s} {hi:>8s}")
        return "\n".join(lines)


@attrs.frozen(kw_only=True)
class LikelihoodRatioTest(RecordResult):
    """A likelihood-ratio test of two nested fits (metafor's ``anova(full, reduced)``):
    ``LRT = 2 (ll_full - ll_reduced)`` ~ χ² with the difference in the number of
    parameters as degrees of freedom.

    Made by :meth:`MVResult.anova` (two :func:`pool_mv` fits) and by
    :meth:`~ketameta.MetaRegResult.anova` / :meth:`~ketameta.PoolResult.anova` (two
    :func:`~ketameta.metareg` / :func:`~ketameta.pool` fits). Each pair of fields holds the
    full model's value first, then the reduced model's. `tau2` (the two τ² estimates) and
    `r2` (the percentage of the reduced model's τ² accounted for by the full model,
    ``max(0, 100 (τ²_r - τ²_f) / τ²_r)``, Raudenbush 2009; for two equal-effects fits the
    reduction of the residual mean square ``Q_E / (k - p)``) are given for the
    ``pool``/``metareg`` models only (NaN for ``pool_mv``, as metafor prints them).
    """

    df: tuple[int, int] = attrs.field(converter=ints)
    loglik: tuple[float, ...] = attrs.field(converter=floats)
    aic: tuple[float, ...] = attrs.field(converter=floats)
    bic: tuple[float, ...] = attrs.field(converter=floats)
    aicc: tuple[float, ...] = attrs.field(converter=floats)
    qe: tuple[float, ...] = attrs.field(converter=floats)
    statistic: float
    pvalue: float
    method: str
    tau2: tuple[float, ...] = attrs.field(converter=floats, default=(math.nan, math.nan))
    r2: float = math.nan

    def summary(self) -> str:
        """The table metafor prints (full model first; τ² for random-effects fits of
        ``pool``/``metareg``, R² for those)."""
        show_tau2 = any(math.isfinite(t) for t in self.tau2)
        show_r2 = math.isfinite(self.r2)
        head = (
            f"{'':8s}{'df':>4s} {'AIC':>9s} {'BIC':>9s} {'AICc':>9s} {'logLik':>9s} "
            f"{'LRT':>8s} {'pval':>7s} {'QE':>10s}"
        )
        head += f" {'tau^2':>7s}" if show_tau2 else ""
        head += f" {'R^2':>9s}" if show_r2 else ""
        rows = [head]
        for i, label in enumerate(("Full", "Reduced")):
            lrt = f"{self.statistic:8.4f}" if i else f"{'':8s}"
            pv = f"{format_p(self.pvalue):>7s}" if i else f"{'':7s}"
            row = (
                f"{label:8s}{self.df[i]:4d} {self.aic[i]:9.4f} {self.bic[i]:9.4f} "
                f"{self.aicc[i]:9.4f} {self.loglik[i]:9.4f} {lrt} {pv} {self.qe[i]:10.4f}"
            )
            row += f" {self.tau2[i]:7.4f}" if show_tau2 else ""
            if show_r2:
                row += f" {self.r2:8.4f}%" if i else f" {'':9s}"
            rows.append(row.rstrip())
        return "\n".join(rows)


def likelihood_ratio(
    df: tuple[int, int],
    fits: tuple[Mapping[str, float], Mapping[str, float]],
    qe: tuple[float, float],
    method: str,
    *,
    tau2: tuple[float, float] = (math.nan, math.nan),
    r2: float = math.nan,
) -> LikelihoodRatioTest:
    """The :class:`LikelihoodRatioTest` of a full and a reduced fit from their numbers of
    parameters `df` and fit statistics `fits` (``ll``, ``AIC``, ``BIC``, ``AICc``), full
    model first: ``LRT = 2 (ll_f - ll_r)`` on ``df_f - df_r`` degrees of freedom."""
    full, reduced = fits
    n = df[0] - df[1]
    stat = 2.0 * (full["ll"] - reduced["ll"])
    pval = chi2_sf(float(n), max(stat, 0.0)) if n > 0 else math.nan
    return LikelihoodRatioTest(
        df=df,
        loglik=(full["ll"], reduced["ll"]),
        aic=(full["AIC"], reduced["AIC"]),
        bic=(full["BIC"], reduced["BIC"]),
        aicc=(full["AICc"], reduced["AICc"]),
        qe=qe,
        statistic=stat,
        pvalue=float(pval),
        method=method,
        tau2=tau2,
        r2=r2,
    )


@attrs.frozen(eq=False)
class _Param:
    """One variance/correlation parameter: its component, kind and optimiser scale."""

    kind: str  # sigma2 / tau2 / rho / gamma2 / phi
    index: int  # within its kind
    scale: str  # mv.VAR, mv.SD, mv.COR


@attrs.frozen(eq=False)
class _Fitted:
    """What a refit, a profile or the marginal covariance needs (kept with a result)."""

    model: mv.Model
    theta: FloatArray
    free: FloatArray  # bool
    params: tuple[_Param, ...]
    r_inv: FloatArray  # X = Q R: coefficients β = R⁻¹ β_Q
    components: tuple[Component, ...]
    control: dict[str, Any]


@attrs.frozen(kw_only=True, repr=False)
class MVResult:
    """The result of :func:`pool_mv`: a fitted multilevel / multivariate model.

    Attributes
    ----------
    coef, se, statistic, pvalue, ci_lower, ci_upper : ndarray, shape (p,)
        The coefficient table (z or t statistics; t with ``k - p`` degrees of freedom).
    names : tuple of str
        Coefficient names as metafor prints them.
    vcov : ndarray, shape (p, p)
        Covariance of the coefficients, ``(XᵀM⁻¹X)⁻¹``.
    X : ndarray, shape (k, p)
        The design of the effects used.
    yi, vi : ndarray, shape (k,)
        The effects used and their sampling variances (the diagonal of ``V``).
    components : tuple of VarianceComponent
        The variance and correlation components (``sigma2``, ``tau2``, ``rho``,
        ``gamma2``, ``phi`` give their estimates by kind).
    q, q_df, q_pvalue : float, int, float
        The test for (residual) heterogeneity: ``Q_E = (y - Xb_V)ᵀV⁻¹(y - Xb_V)``, ``b_V``
        the fit with ``V`` alone, on ``k - p`` degrees of freedom.
    btt, qm, qm_df, qm_pvalue
        The omnibus test of the coefficients `btt` (0-based): ``QM`` ~ χ²(m), or
        ``QM/m`` ~ F(m, k - p) for ``test="t"`` (an intercept-only model: no test, ``btt``
        empty, ``qm`` NaN).
    loglik : float
        The (restricted) log-likelihood at the estimates.
    i2, i2_levels : float, ndarray
        The multilevel I² (percent): the share of the total variance due to all variance
        components, and to each (see :func:`pool_mv`, Notes).
    cluster : ndarray of int
        The level of the outermost grouping factor of the first random term for every
        effect (what cluster-robust inference clusters by).
    k, p, df, method, test, level, converged, iterations, omitted, random, struct,
    intercept, dropped
        Counts, settings and convergence.
    """

    coef: FloatArray = array_field()
    se: FloatArray = array_field()
    statistic: FloatArray = array_field()
    pvalue: FloatArray = array_field()
    ci_lower: FloatArray = array_field()
    ci_upper: FloatArray = array_field()
    names: tuple[str, ...] = attrs.field(converter=strings)
    vcov: FloatArray = array_field()
    X: FloatArray = array_field()
    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    components: tuple[VarianceComponent, ...] = attrs.field(converter=_tuple)
    q: float
    q_df: int
    q_pvalue: float
    btt: tuple[int, ...] = attrs.field(converter=ints)
    qm: float
    qm_df: int
    qm_pvalue: float
    loglik: float
    i2: float
    i2_levels: FloatArray = array_field()
    v_typical: float
    cluster: FloatArray = array_field()
    k: int
    p: int
    df: float
    intercept: bool
    method: str
    test: str
    level: float
    converged: bool
    iterations: int
    random: tuple[str, ...] = attrs.field(converter=strings)
    struct: tuple[str, ...] = attrs.field(converter=strings)
    omitted: tuple[int, ...] = attrs.field(converter=ints, default=())
    dropped: tuple[str, ...] = attrs.field(converter=strings, default=())
    model_matrix: ModelMatrix | None = attrs.field(default=None, eq=False, repr=False)
    fitted_model: _Fitted | None = attrs.field(default=None, eq=False, repr=False)

    # -- components by kind --------------------------------------------------------------

    def _by_kind(self, kind: str) -> FloatArray:
        return np.array([c.estimate for c in self.components if c.kind == kind], dtype=float)

    @property
    def sigma2(self) -> FloatArray:
        """The variances of the random intercepts (``~ 1 | ...``), in formula order."""
        return self._by_kind("sigma2")

    @property
    def tau2(self) -> FloatArray:
        """The variance(s) of the first ``~ inner | outer`` term."""
        return self._by_kind("tau2")

    @property
    def rho(self) -> FloatArray:
        """The correlation(s) of the first ``~ inner | outer`` term."""
        return self._by_kind("rho")

    @property
    def gamma2(self) -> FloatArray:
        """The variance(s) of the second ``~ inner | outer`` term."""
        return self._by_kind("gamma2")

    @property
    def phi(self) -> FloatArray:
        """The correlation(s) of the second ``~ inner | outer`` term."""
        return self._by_kind("phi")

    @property
    def fitted(self) -> FloatArray:
        """Fitted values ``Xb``."""
        return np.asarray(self.X @ self.coef, dtype=np.float64)

    @property
    def residuals(self) -> FloatArray:
        """Residuals ``y - Xb``."""
        return np.asarray(self.yi - self.fitted, dtype=np.float64)

    def _fit(self) -> _Fitted:
        if self.fitted_model is None:  # pragma: no cover - always set by pool_mv
            msg = "this result does not carry its model (it was not made by pool_mv)"
            raise ValueError(msg)
        return self.fitted_model

    # -- the marginal covariance (for cluster-robust inference) ----------------------------

    def marginal_covariance(self) -> FloatArray:
        """The fitted marginal covariance ``M = V + Σ Z G Zᵀ`` of the effects used, as a
        dense ``(k, k)`` array (block-diagonal over the clusters of the random effects)."""
        fit = self._fit()
        layout = fit.model.layout
        f = fit.model.coefficients(fit.theta)
        out = np.zeros((self.k, self.k))
        for bk in layout.buckets:
            m = bk.v + np.tensordot(f, bk.bases, axes=1) if f.size else bk.v
            for b in range(bk.rows.shape[0]):
                idx = bk.rows[b][bk.valid[b]]
                n = idx.size
                out[np.ix_(idx, idx)] = m[b, :n, :n]
        return out

    def weight_matrix(self) -> FloatArray:
        """``W = M⁻¹`` (dense ``(k, k)``), the weights of the coefficients ``b = (XᵀWX)⁻¹XᵀWy``."""
        fit = self._fit()
        layout = fit.model.layout
        f = fit.model.coefficients(fit.theta)
        out = np.zeros((self.k, self.k))
        for bk in layout.buckets:
            m = bk.v + np.tensordot(f, bk.bases, axes=1) if f.size else bk.v
            w = np.linalg.inv(m)
            for b in range(bk.rows.shape[0]):
                idx = bk.rows[b][bk.valid[b]]
                n = idx.size
                out[np.ix_(idx, idx)] = w[b, :n, :n]
        return out

    # -- fit statistics -----------------------------------------------------------------

    @property
    def n_parameters(self) -> int:
        """Coefficients plus estimated (not fixed) variance/correlation components."""
        return self.p + sum(1 for c in self.components if not c.fixed)

    def fit_statistics(self) -> dict[str, float]:
        """Log-likelihood, deviance, AIC, BIC and AICc (metafor's ``fitstats``).

        ``q`` = coefficients + estimated components; ``n = k`` (ML) or ``k - p`` (REML);
        ``AIC = -2ll + 2q``, ``BIC = -2ll + q log n``, ``AICc = -2ll + 2q n'/(n' - q - 1)``
        with ``n' = max(n, q + 2)``; the deviance is ``-2ll`` for REML and
        ``-2(ll - ll_s)`` for ML, ``ll_s = -½(k log 2π + log|V|)`` the saturated model's.
        """
        ll = self.loglik
        q = self.n_parameters
        n = self.k if self.method == "ML" else self.k - self.p
        big = max(n, q + 2)
        dev = -2.0 * (ll - self._saturated_loglik()) if self.method == "ML" else -2.0 * ll
        return {
            "ll": ll,
            "dev": dev,
            "AIC": -2.0 * ll + 2 * q,
            "BIC": -2.0 * ll + q * math.log(n) if n > 0 else math.nan,
            "AICc": -2.0 * ll + 2 * q * big / (big - q - 1),
        }

    def _saturated_loglik(self) -> float:
        layout = self._fit().model.layout
        logdet = 0.0
        for bk in layout.buckets:
            _, ld = np.linalg.slogdet(bk.v)
            logdet += float(np.sum(ld))
        return -0.5 * (self.k * math.log(2.0 * math.pi) + logdet)

    # -- tests ----------------------------------------------------------------------------

    def anova(self, other: object = None, *, btt: Any = None) -> Any:
        """A likelihood-ratio test against another fit (metafor's ``anova(res1, res2)``),
        or with `btt` the Wald test that those coefficients are all 0
        (``anova(res, btt=)``: χ², or F for ``test="t"``).

        The two fits must use the same effects; the one with more parameters is the full
        model. For REML the fixed effects must be the same (the restricted likelihoods of
        different designs are not comparable): compare moderators with ``method="ML"``.

        Returns
        -------
        LikelihoodRatioTest or WaldTest
        """
        if other is None:
            if btt is None:
                msg = "give another fit to compare with, or `btt=` for a Wald test"
                raise TypeError(msg)
            return wald_test(self, btt)
        if not isinstance(other, MVResult):
            msg = f"`other` must be a pool_mv result, got {type(other).__name__}"
            raise TypeError(msg)
        if btt is not None:
            msg = "give either another fit (a likelihood-ratio test) or `btt=`, not both"
            raise TypeError(msg)
        if self.method != other.method:
            msg = "the two fits use different methods (REML and ML): refit one of them"
            raise ValueError(msg)
        if self.k != other.k or not np.array_equal(self.yi, other.yi):
            msg = "the two fits must use the same effects"
            raise ValueError(msg)
        if self.method == "REML" and not _same_column_space(self.X, other.X):
            msg = (
                "REML likelihoods of models with different fixed effects are not comparable; "
                "compare moderators with method='ML'"
            )
            raise ValueError(msg)
        full, reduced = (self, other) if self.n_parameters >= other.n_parameters else (other, self)
        return likelihood_ratio(
            (full.n_parameters, reduced.n_parameters),
            (full.fit_statistics(), reduced.fit_statistics()),
            (full.q, reduced.q),
            self.method,
        )

    # -- predictions ------------------------------------------------------------------------

    def predict(
        self,
        newmods: Any = None,
        *,
        data: Any = None,
        level: float | None = None,
        transf: str | Callable[[FloatArray], FloatArray] | None = None,
        tau2_levels: Any = None,
        gamma2_levels: Any = None,
    ) -> PredictResult:
        """Predicted effects with confidence and prediction intervals (metafor's
        ``predict`` of an ``rma.mv`` fit).

        ``pred = x₀ᵀb``, ``se = √(x₀ᵀ Var(b) x₀)``, ``CI = pred ± c·se``,
        ``PI = pred ± c·√(se² + Σσ² + τ² + γ²)`` (c the normal or t(k - p) critical value);
        for a heteroscedastic ``~ inner | outer`` term the τ² (γ²) of an inner level:
        `tau2_levels` (`gamma2_levels`) names it for each row (default, for the effects
        used: their own level).

        Parameters
        ----------
        newmods, data, level, transf
            As :meth:`ketameta.MetaRegResult.predict`.
        tau2_levels, gamma2_levels : str or sequence, optional
            Inner levels (as printed) for the prediction intervals of heteroscedastic
            structures: one for all rows, or one per row.
        """
        from ._validation import check_level as _check_level

        lv = self.level if level is None else _check_level(level)
        if newmods is None and data is None:
            x0 = self.X
            own = True
        else:
            own = False
            if self.model_matrix is None:  # pragma: no cover - always set by pool_mv
                x0 = np.atleast_2d(np.asarray(newmods, dtype=np.float64))
            else:
                x0 = self.model_matrix.new_rows(newmods, data=data)
            if x0.shape[1] != self.p:
                msg = f"`newmods` gives {x0.shape[1]} columns, the model has {self.p}"
                raise ValueError(msg)
        n = x0.shape[0]
        pred = x0 @ self.coef
        se = np.sqrt(np.einsum("ij,jk,ik->i", x0, self.vcov, x0))
        crit = float(test_critical_value(lv, self.df, self.test))
        extra = np.full(n, float(np.sum(self.sigma2)))
        for kind, levels in (("tau2", tau2_levels), ("gamma2", gamma2_levels)):
            comps = [c for c in self.components if c.kind == kind]
            if not comps:
                continue
            if len(comps) == 1:
                extra += comps[0].estimate
                continue
            extra += self._level_variances(comps, levels, own, n, kind)
        pi_half = crit * np.sqrt(se * se + extra)
        half = crit * se
        columns = [pred, pred - half, pred + half, pred - pi_half, pred + pi_half]
        t = _transf.resolve(transf, getattr(self, "measure", None))
        name = t.name
        if name is not None:
            if t.needs_n:
                msg = f"`transf`={transf!r} needs the studies' sample sizes, which pool_mv lacks"
                raise ValueError(msg)
            with np.errstate(over="ignore", invalid="ignore"):
                columns = [np.asarray(t(c, None), dtype=np.float64) for c in columns]
            se = np.full(pred.shape, np.nan)
        return PredictResult(
            pred=columns[0],
            se=se,
            ci_lower=columns[1],
            ci_upper=columns[2],
            pred_lower=columns[3],
            pred_upper=columns[4],
            X=x0,
            names=self.names,
            level=lv,
            transf=name,
        )

    def _level_variances(
        self, comps: list[VarianceComponent], levels: Any, own: bool, n: int, kind: str
    ) -> FloatArray:
        by_level = {c.level: c.estimate for c in comps}
        if levels is None:
            if not own:
                msg = (
                    f"the {kind} variance differs by inner level: pass `{kind}_levels=` (one "
                    f"of {list(by_level)} per row) for the prediction intervals"
                )
                raise ValueError(msg)
            fit = self._fit()
            which = 0 if kind == "tau2" else 1
            io = [c for c in fit.components if c.term.kind == "inner_outer"][which]
            q = io.bases[0].inner
            assert q is not None
            return np.array([comps[int(j)].estimate for j in q], dtype=float)
        items = [levels] * n if isinstance(levels, str | int | float) else list(levels)
        if len(items) != n:
            msg = f"`{kind}_levels` gives {len(items)} levels for {n} rows"
            raise ValueError(msg)
        out = []
        for item in items:
            key = str(item)
            if key not in by_level:
                msg = f"`{kind}_levels`: no inner level {item!r}; the levels are {list(by_level)}"
                raise ValueError(msg)
            out.append(by_level[key])
        return np.array(out, dtype=float)

    # -- profile-likelihood intervals -----------------------------------------------------

    def confint(self, level: float | None = None) -> ComponentIntervals:
        """Profile-likelihood confidence intervals of the estimated variance and
        correlation components (metafor's ``confint`` of an ``rma.mv`` fit).

        Each bound solves ``2 (ll̂ - ll_p(x)) = χ²₁(level)``, ``ll_p(x)`` the (restricted)
        log-likelihood maximised over the other components with this one fixed at ``x``
        (Brent's method). A variance whose profile stays within the cutoff down to 0 has
        the lower bound 0; a correlation can reach ±1. Above, the search stops at
        ``10⁶`` times the larger of the estimate and the mean sampling variance
        (``upper_at_limit``).
        """
        lv = self.level if level is None else check_level(level)
        fit = self._fit()
        crit = float(special.chdtri(1.0, 1.0 - lv))
        names: list[str] = []
        est: list[float] = []
        lows: list[float] = []
        highs: list[float] = []
        lo_lim: list[bool] = []
        hi_lim: list[bool] = []
        comps = self.components
        for j, comp in enumerate(comps):
            if comp.fixed:
                continue
            lo, hi, at_lo, at_hi = _profile_interval(self, fit, j, crit)
            names.append(comp.name)
            est.append(comp.estimate)
            lows.append(lo)
            highs.append(hi)
            lo_lim.append(at_lo)
            hi_lim.append(at_hi)
            if comp.is_variance:
                root = comp.name.replace("^2", "")
                names.append(root)
                est.append(math.sqrt(comp.estimate))
                lows.append(math.sqrt(lo))
                highs.append(math.sqrt(hi))
                lo_lim.append(at_lo)
                hi_lim.append(at_hi)
        return ComponentIntervals(
            names=names,
            estimate=np.array(est),
            ci_lower=np.array(lows),
            ci_upper=np.array(highs),
            lower_at_limit=lo_lim,
            upper_at_limit=hi_lim,
            level=lv,
        )

    # -- output -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable)."""
        d = {
            f.name: getattr(self, f.name)
            for f in attrs.fields(type(self))
            if f.name not in ("model_matrix", "fitted_model")
        }
        return plain(d)  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """The coefficient table as a pandas DataFrame indexed by coefficient name."""
        return coefficient_frame(self)

    def components_frame(self) -> Any:
        """The variance components as a pandas DataFrame (one row each)."""
        pd = import_pandas()
        rows = [plain(c) for c in self.components]
        return pd.DataFrame(rows).set_index("name")

    def __repr__(self) -> str:
        coefs = ", ".join(f"{n}={b:.4g}" for n, b in zip(self.names, self.coef, strict=True))
        comps = ", ".join(f"{c.name}={c.estimate:.4g}" for c in self.components)
        return f"MVResult(method={self.method!r}, k={self.k}, {coefs}, {comps})"

    def summary(self) -> str:
        """A summary as metafor's ``summary()`` of an ``rma.mv`` fit prints it: fit
        statistics, variance components, the heterogeneity test, the omnibus test and the
        coefficient table."""
        lines = [f"Multivariate Meta-Analysis Model (k = {self.k}; method: {self.method})", ""]
        fs = self.fit_statistics()
        labels = ("logLik", "Deviance", "AIC", "BIC", "AICc")
        values = [fs["ll"], fs["dev"], fs["AIC"], fs["BIC"], fs["AICc"]]
        lines.append("  ".join(f"{lab:>9s}" for lab in labels))
        lines.append("  ".join(f"{v:9.4f}" for v in values))
        lines.append("")
        if self.components:
            lines += ["Variance Components:", ""]
            lines += self._component_lines()
        else:
            lines.append("Variance Components: none")
        lines.append("")
        int_only = self.p == 1 and self.intercept
        if int_only:
            lines += ["Test for Heterogeneity:"]
            lines.append(
                f"Q(df = {self.q_df}) = {self.q:.4f}, p-val {format_p_with_sign(self.q_pvalue)}"
            )
        else:
            lines += ["Test for Residual Heterogeneity:"]
            lines.append(
                f"QE(df = {self.q_df}) = {self.q:.4f}, p-val {format_p_with_sign(self.q_pvalue)}"
            )
            lines.append("")
            lines += self.anova(btt=self.btt).summary().split("\n")
        lines += ["", "Model Results:", ""]
        t_based = self.test == "t"
        stat = "tval" if t_based else "zval"
        width = 0 if int_only else max(8, *(len(n) for n in self.names))
        dfcol = f" {'df':>4s}" if t_based else ""
        lines.append(
            f"{'':{width}s} {'estimate':>9s} {'se':>8s} {stat:>8s}{dfcol} {'pval':>8s} "
            f"{'ci.lb':>8s} {'ci.ub':>8s}"
        )
        for j, name in enumerate(self.names):
            label = "" if int_only else name
            dfv = f" {self.df:4g}" if t_based else ""
            lines.append(
                f"{label:{width}s} {self.coef[j]:9.4f} {self.se[j]:8.4f} "
                f"{self.statistic[j]:8.4f}{dfv} {format_p(float(self.pvalue[j])):>8s} "
                f"{self.ci_lower[j]:8.4f} {self.ci_upper[j]:8.4f}"
            )
        if self.dropped:
            lines += [
                "",
                f"Dropped as linear combinations of earlier moderators: {list(self.dropped)}",
            ]
        if self.omitted:
            effects = {i: f"Effect {i + 1}" for i in self.omitted}  # rows: no labels
            lines.append(
                f"Omitted effects (missing values): {name_studies(self.omitted, effects)}"
            )
        if not self.converged:
            lines.append("Warning: the optimiser did not converge.")
        return "\n".join(lines)

    def _component_lines(self) -> list[str]:
        lines: list[str] = []
        sig = [c for c in self.components if c.kind == "sigma2"]
        if sig:
            fw = max(6, *(len(c.factor) for c in sig))
            lines.append(
                f"{'':10s} {'estim':>8s} {'sqrt':>7s} {'nlvls':>6s} {'fixed':>6s} "
                f"{'factor':>{fw}s}"
            )
            for c in sig:
                lines.append(
                    f"{c.name:10s} {c.estimate:8.4f} {math.sqrt(c.estimate):7.4f} "
                    f"{c.nlevels:6d} {'yes' if c.fixed else 'no':>6s} {c.factor:>{fw}s}"
                )
        fit = self.fitted_model
        ios = [] if fit is None else [c for c in fit.components if c.term.kind == "inner_outer"]
        for which, io in enumerate(ios):
            var_kind, cor_kind = ("tau2", "rho") if which == 0 else ("gamma2", "phi")
            if lines:
                lines.append("")
            outer, inner = io.term.variables[1], io.term.variables[0]
            w = max(len(outer), len(inner))
            lines.append(f"outer factor: {outer:{w}s} (nlvls = {io.nlevels})")
            lines.append(f"inner factor: {inner:{w}s} (nlvls = {len(io.inner_levels)})")
            lines.append("")
            variances = [c for c in self.components if c.kind == var_kind]
            cors = [c for c in self.components if c.kind == cor_kind]
            hetero = io.term.struct in ("HCS", "UN", "DIAG")
            if hetero:
                lines.append(
                    f"{'':10s} {'estim':>8s} {'sqrt':>7s} {'k.lvl':>6s} {'fixed':>6s} "
                    f"{'level':>6s}"
                )
                for c in variances:
                    lines.append(
                        f"{c.name:10s} {c.estimate:8.4f} {math.sqrt(c.estimate):7.4f} "
                        f"{c.count:6d} {'yes' if c.fixed else 'no':>6s} {c.level:>6s}"
                    )
            else:
                lines.append(f"{'':10s} {'estim':>8s} {'sqrt':>7s} {'fixed':>6s}")
                for c in variances:
                    lines.append(
                        f"{c.name:10s} {c.estimate:8.4f} {math.sqrt(c.estimate):7.4f} "
                        f"{'yes' if c.fixed else 'no':>6s}"
                    )
            if io.term.struct == "UN":
                lines.append("")
                lines += _correlation_matrix_lines(io, cors, cor_kind)
            else:
                for c in cors:
                    lines.append(
                        f"{c.name:10s} {c.estimate:8.4f} {'':7s} "
                        + (f"{'':6s} " if hetero else "")
                        + f"{'yes' if c.fixed else 'no':>6s}"
                    )
        return lines


def _correlation_matrix_lines(
    io: Component, cors: Sequence[VarianceComponent], kind: str
) -> list[str]:
    """metafor's display of an unstructured correlation matrix: correlations below the
    diagonal, the number of outer levels where each pair meets above it (``no``/``yes``
    below: whether the correlation is fixed)."""
    levels = io.inner_levels
    n = len(levels)
    w = max(6, *(len(lv) + len(kind) + 1 for lv in levels))
    value = np.eye(n)
    fixed = np.zeros((n, n), dtype=bool)
    count = np.zeros((n, n), dtype=int)
    for c, (j, ell) in zip(cors, io.structure.pairs, strict=True):
        value[ell, j] = value[j, ell] = c.estimate
        fixed[ell, j] = c.fixed
        count[j, ell] = c.count
    lw = max(len(lv) for lv in levels)
    head = f"{'':{lw}s} " + " ".join(f"{kind + '.' + lv:>{w}s}" for lv in levels)
    head += "  " + " ".join(f"{lv:>{max(3, len(lv))}s}" for lv in levels)
    lines = [head]
    for i, lv in enumerate(levels):
        cells = []
        for j in range(n):
            cells.append(
                f"{value[i, j]:{w}.4f}" if j < i else (f"{1:>{w}d}" if j == i else " " * w)
            )
        marks = []
        for j in range(n):
            wj = max(3, len(levels[j]))
            if j == i:
                marks.append(f"{'-':>{wj}s}")
            elif j > i:
                marks.append(f"{count[i, j]:>{wj}d}")
            else:
                marks.append(f"{'yes' if fixed[i, j] else 'no':>{wj}s}")
        lines.append(f"{lv:{lw}s} " + " ".join(cells) + "  " + " ".join(marks))
    return lines


def _same_column_space(a: FloatArray, b: FloatArray) -> bool:
    if a.shape[0] != b.shape[0]:
        return False
    both = np.column_stack((a, b))
    ra = np.linalg.matrix_rank(a)
    rb = np.linalg.matrix_rank(b)
    return bool(ra == rb == np.linalg.matrix_rank(both))


# ======================================================================================
# profile likelihood
# ======================================================================================


def _profile_interval(
    res: MVResult, fit: _Fitted, j: int, crit: float
) -> tuple[float, float, bool, bool]:
    """Bounds of component `j` (index into ``res.components`` = parameter index)."""
    params = fit.params
    par = params[j]
    est = res.components[j].estimate
    ll_hat = res.loglik
    free = np.asarray(fit.free, dtype=bool).copy()
    free[j] = False
    starts: dict[float, FloatArray] = {est: fit.theta.copy()}
    scale_v = float(np.mean(res.vi))

    def to_theta(x: float) -> float:
        return math.sqrt(max(x, 0.0)) if par.scale == mv.SD else x

    def excess(x: float) -> float:
        # the profile may have several local maxima (a variance held at 0 is one): start
        # from the nearest point profiled so far and from the estimates, keep the higher
        near = min(starts, key=lambda s: abs(s - x))
        best = None
        for origin in {near, est}:
            start = starts[origin].copy()
            start[j] = to_theta(x)
            out = mv.maximise(
                fit.model,
                start,
                free,
                maxiter=int(fit.control["maxiter"]),
                threshold=min(float(fit.control["threshold"]), 1e-12),
            )
            if math.isfinite(out.ev.ll) and (best is None or out.ev.ll > best.ev.ll):
                best = out
        if best is None:
            return 10.0 * crit + 1.0  # outside the admissible region
        starts[x] = best.theta
        return 2.0 * (ll_hat - best.ev.ll) - crit

    lo_bound, hi_bound = (-1.0, 1.0) if par.scale == mv.COR else (0.0, math.inf)
    # lower bound
    if est <= lo_bound:
        lo, at_lo = lo_bound, True
    else:
        f_lo = excess(lo_bound)
        if f_lo <= 0.0:
            lo, at_lo = lo_bound, True
        else:
            lo, at_lo = _root(excess, lo_bound, est, f_lo), False
    # upper bound
    if math.isinf(hi_bound):
        limit = 1e6 * max(est, scale_v)
        x = max(2.0 * est, est + scale_v)
        prev = est
        f_x = excess(x)
        while f_x <= 0.0 and x < limit:
            prev = x
            x = min(4.0 * x, limit)
            f_x = excess(x)
        if f_x <= 0.0:
            hi, at_hi = x, True
        else:
            hi, at_hi = _root(excess, prev, x, f_x), False
    elif est >= hi_bound:
        hi, at_hi = hi_bound, True
    else:
        f_hi = excess(hi_bound)
        if f_hi <= 0.0:
            hi, at_hi = hi_bound, True
        else:
            hi, at_hi = _root(excess, est, hi_bound, f_hi), False
    return lo, hi, at_lo, at_hi


def _root(func: Callable[[float], float], a: float, b: float, fb_or_fa: float) -> float:
    """The root of `func` between `a` and `b` (one end inside the interval: func < 0)."""
    del fb_or_fa
    from scipy.optimize import brentq

    span = max(abs(a), abs(b), 1e-300)
    return float(brentq(func, a, b, xtol=1e-12 * span, rtol=4 * np.finfo(float).eps))


# ======================================================================================
# the public function
# ======================================================================================


#: :class:`MVResult` without the converters of its public constructor, for the values
#: :func:`_fit` computed (fresh float64 arrays, tuples of the right types); the effects and
#: variances (which may be the caller's arrays) are still copied
_ALWAYS = object()
_trusted_mv_result = trusted_constructor(
    MVResult, {"yi": (_ALWAYS, readonly), "vi": (_ALWAYS, readonly)}
)


def _intercept_only(n: int) -> ModelMatrix:
    """The design of an intercept-only model on `n` effects (immutable: shared between
    results for up to 4096 effects; a larger one is made afresh, not kept)."""
    return _intercept_only_cached(n) if n <= 4096 else _make_intercept_only(n)


@functools.lru_cache(maxsize=16)
def _intercept_only_cached(n: int) -> ModelMatrix:
    return _make_intercept_only(n)


def _make_intercept_only(n: int) -> ModelMatrix:
    mm = model_matrix(np.ones((n, 1)), intercept=False, k=n)
    return attrs.evolve(mm, names=("intrcpt",), intercept=True)


def _integer_codes(values: Any) -> tuple[list[Any], Any] | None:
    """For a 1-D NumPy array of integers below 2⁵³ in magnitude (group labels that
    :func:`group_codes` would take through floats unchanged): the sorted labels and each
    value's code, what :func:`group_codes` returns for them, at once; None otherwise."""
    if not (
        type(values) is np.ndarray  # (a masked array: group_codes, which reads its mask)
        and values.ndim == 1
        and values.dtype.kind in "iu"
        and values.size > 0
    ):
        return None
    uniq, codes = unique_codes(values)
    levels = uniq.tolist()
    if not (levels[0] > -(2**53) and levels[-1] < 2**53):
        return None
    return levels, codes


def _prepare_v(v_in: Any, n: int) -> tuple[FloatArray, FloatArray | sp.coo_array | None]:
    """The sampling variances (diagonal of `V`) and, for a matrix, the matrix (dense array
    or COO sparse); for a vector ``(v, None)``."""
    if sp.issparse(v_in):
        mat = sp.coo_array(v_in)
        if mat.shape != (n, n):
            msg = (
                f"`V` must be a vector of {n} variances or a ({n}, {n}) matrix, "
                f"got shape {mat.shape}"
            )
            raise ValueError(msg)
        data = as_float(mat.data, "V")
        mat = sp.coo_array((data, (mat.row, mat.col)), shape=(n, n))
        mat.sum_duplicates()
        diag = np.asarray(mat.diagonal(), dtype=np.float64)
        return diag, mat
    arr = as_float(v_in, "V")
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim == 1:
        if arr.shape[0] != n:
            msg = (
                f"`V` has {arr.shape[0]} studies but `yi` has {n}; all inputs must have "
                "the same length"
            )
            raise ValueError(msg)
        return arr, None
    if arr.ndim != 2 or arr.shape != (n, n):
        msg = (
            f"`V` must be a vector of {n} variances or a ({n}, {n}) matrix, got shape {arr.shape}"
        )
        raise ValueError(msg)
    return np.array(np.diagonal(arr), dtype=np.float64), arr


def _v_entries(mat: FloatArray | sp.coo_array, kept: Any) -> tuple[FloatArray, Any, Any]:
    """The non-zero entries of ``V`` among the studies used (renumbered), checked
    (finite, symmetric)."""
    k_all = mat.shape[0]
    new = np.full(k_all, -1, dtype=np.intp)
    new[kept] = np.arange(len(kept))
    if sp.issparse(mat):
        coo = sp.coo_array(mat)
        r, c, vals = coo.row.astype(np.intp), coo.col.astype(np.intp), np.asarray(coo.data)
    else:
        dense = np.asarray(mat)
        r, c = np.nonzero(dense != 0)
        r, c = r.astype(np.intp), c.astype(np.intp)
        vals = dense[r, c]
    keep = (new[r] >= 0) & (new[c] >= 0)
    r, c, vals = new[r[keep]], new[c[keep]], vals[keep]
    bad = ~np.isfinite(vals)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = (
            f"`V` must be finite among the effects used; entry ({int(kept[r[i]])}, "
            f"{int(kept[c[i]])}) is {vals[i]!r}"
        )
        raise ValueError(msg)
    k = len(kept)
    full = sp.coo_array((vals, (r, c)), shape=(k, k)).tocsr()
    diff = abs(full - full.T)
    if diff.nnz:
        d = sp.coo_array(diff)
        tol = 1e-10 * float(np.max(np.abs(vals))) if vals.size else 0.0
        over = d.data > tol
        if over.any():
            i = int(np.flatnonzero(over)[0])
            a, b = int(kept[d.row[i]]), int(kept[d.col[i]])
            msg = f"`V` must be symmetric; V[{a}, {b}] differs from V[{b}, {a}]"
            raise ValueError(msg)
        full = (full + full.T) * 0.5
    coo = sp.coo_array(full)
    return (
        np.asarray(coo.data, dtype=np.float64),
        coo.row.astype(np.intp),
        coo.col.astype(np.intp),
    )


def _fixed_values(name: str, value: Any, n: int, what: str) -> list[float | None]:
    """A `sigma2=` / `tau2=` / ... argument: one value per component (None: estimated)."""
    if value is None:
        return [None] * n
    items = [value] if np.ndim(value) == 0 and not isinstance(value, str) else list(value)
    if len(items) != n:
        msg = (
            f"`{name}` must give {n} value(s) ({what}; None or NaN = estimated), got {len(items)}"
        )
        raise ValueError(msg)
    out: list[float | None] = []
    for item in items:
        if item is None:
            out.append(None)
            continue
        x = as_number(item, name)
        if math.isnan(x):
            out.append(None)
            continue
        out.append(x)
    return out


def _validate_control(control: Any) -> dict[str, Any]:
    ctl = merged_control(control, MV_CONTROL)
    if control is None:
        return ctl
    thr = as_number(ctl["threshold"], "control['threshold']")
    if not (math.isfinite(thr) and thr > 0):
        msg = f"`control['threshold']` must be a positive number, got {ctl['threshold']!r}"
        raise ValueError(msg)
    ctl["threshold"] = thr
    return ctl


def pool_mv(
    yi: ArrayLike | EffectSizes | str,
    V: Any = None,
    *,
    random: str | Sequence[str] | None,
    struct: str | Sequence[str] = "CS",
    mods: Any = None,
    data: Any = None,
    intercept: bool = True,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    btt: Any = None,
    sigma2: Any = None,
    tau2: Any = None,
    rho: Any = None,
    gamma2: Any = None,
    phi: Any = None,
    nan_policy: str = "omit",
    control: dict[str, Any] | None = None,
) -> MVResult:
    """Multilevel / multivariate meta-analysis (metafor's ``rma.mv``) [1]_.

    Parameters
    ----------
    yi : array_like, EffectSizes or str
        The effects (one per row), the result of :func:`ketameta.escalc` (then `V` may be
        left out: its sampling variances are used), or a column name of `data`.
    V : array_like, sparse matrix or str
        The known sampling (co)variances: a vector of variances (``V`` diagonal), a
        ``(k, k)`` symmetric matrix (dense or ``scipy.sparse``; usually block-diagonal,
        e.g. from :func:`ketameta.vcalc`), or a column name of `data` (variances).
    random : str, list of str, or None
        The random effects, as metafor writes them (names are columns of `data`):
        ``"~ 1 | study"`` (a random intercept per study), ``"~ 1 | district/school"``
        (nested: districts and schools within districts, Konstantopoulos 2011 [2]_),
        ``["~ 1 | lab", "~ 1 | country"]`` (crossed), ``"~ outcome | study"``
        (correlated effects of the outcomes within each study, with `struct`; at most two
        such terms). ``None``: no random effects (the multivariate equal-effects model,
        generalised least squares with ``V``; Gleser & Olkin 2009 [7]_).
    struct : str or pair of str
        The structure of each ``~ inner | outer`` term: ``"CS"`` (compound symmetry: one
        τ², one ρ), ``"HCS"`` (a τ² per inner level, one ρ), ``"UN"`` (unstructured:
        a τ² per level and a ρ per pair of levels; Berkey et al. 1998 [3]_, Jackson, Riley
        & White 2011 [4]_), ``"AR"`` (AR(1) over the ordered inner levels: correlation
        ``ρ^d`` between levels ``d`` positions apart; Ishak et al. 2007 [5]_), ``"ID"``
        (one τ², no correlation), ``"DIAG"`` (a τ² per level, no correlation).
    mods, data, intercept, btt
        Moderators as in :func:`ketameta.metareg` (arrays, mappings, column names,
        formulas with metafor's coefficient names); `data` also holds the columns the
        `random` formulas name.
    method : {"REML", "ML"}
        Restricted or full maximum likelihood.
    test : {"z", "t"}
        Normal tests and intervals, or t with ``k - p`` degrees of freedom (F for the
        omnibus test), as metafor's ``test="t"``.
    level : float
        Confidence level.
    sigma2, tau2, rho, gamma2, phi : number or sequence, optional
        Fix components instead of estimating them (metafor's arguments): one value per
        component of that kind, ``None``/NaN for those to estimate (``sigma2=[0, None]``
        fixes the first σ² at 0).
    nan_policy : {"omit", "raise"}
        Effects with a missing value (effect, variance, moderator or grouping variable)
        are left out with an :class:`~ketameta.OmittedStudiesWarning`, or raise.
    control : dict, optional
        ``maxiter`` (200), ``threshold`` (1e-10: convergence when the Newton decrement,
        twice the predicted gain of log-likelihood, is below it times ``max(1, |ll|)``),
        starting values ``sigma2_init``, ``tau2_init``, ``rho_init``, ``gamma2_init``,
        ``phi_init`` (one number or one per component).

    Returns
    -------
    MVResult

    Raises
    ------
    ConvergenceError
        The optimiser did not converge.
    ValueError
        Bad input: `V` not symmetric or not positive definite in a block, unknown columns,
        more coefficients than effects, ...

    Notes
    -----
    The model is ``y ~ N(Xβ, M)``, ``M = V + Σ Z G Zᵀ``; the variance components maximise
    the restricted (REML) or full (ML) log-likelihood (Viechtbauer 2010 [1]_; the
    definitions, the block-wise computation and the optimiser are documented in
    :mod:`ketameta._engine.mv`): a projected Newton method with analytic gradient and
    Hessian, on variances (σ², τ²; standard deviations for ``HCS``/``UN``) bounded below
    by 0 and correlations in [-1, 1], so an estimate on the boundary is exactly 0 (a
    Fisher scoring step where the predicted gain is large, Jennrich & Sampson 1976 [8]_).
    Random intercepts (and ``ID``/``DIAG``) with a diagonal ``V`` are computed in closed
    form (the Woodbury identity, Henderson & Searle 1981 [9]_: ``O(k q + q³)`` for ``q``
    groups, no ``k x k`` matrix),
    except where that would lose more than six digits (then block by block).
    Then ``b = (XᵀM⁻¹X)⁻¹XᵀM⁻¹y`` and ``Var(b) = (XᵀM⁻¹X)⁻¹``.

    The multilevel I² (Cheung 2014 [6]_; Viechtbauer's definition on the metafor website)
    compares each variance component with the total: ``I²_l = 100 σ²_l / (Σσ² + ṽ)``,
    ``ṽ = (k - p)/tr(P)``, ``P = W - WX(XᵀWX)⁻¹XᵀW`` with ``W = V⁻¹``; defined for σ²
    components and the single τ² (γ²) of ``CS``, ``ID`` and ``AR`` (NaN with a
    heteroscedastic structure). With one effect per study and a diagonal ``V``, the model
    ``~ 1 | study`` is the random-effects model of :func:`ketameta.pool` (and
    :func:`ketameta.metareg`), σ² its τ².

    A component the data cannot inform is fixed as metafor does: the correlation of two
    inner levels that never occur in the same outer level is 0 (with a warning).

    References
    ----------
    .. [1] Viechtbauer (2010), J Stat Softw 36(3):1-48.
    .. [2] Konstantopoulos (2011), Res Synth Methods 2(1):61-76.
    .. [3] Berkey et al. (1998), Stat Med 17(22):2537-2550.
    .. [4] Jackson, Riley & White (2011), Stat Med 30(20):2481-2498.
    .. [5] Ishak et al. (2007), Clin Trials 4(5):525-539.
    .. [6] Cheung (2014), Psychol Methods 19(2):211-229.
    .. [7] Gleser & Olkin (2009), Handbook of Research Synthesis and Meta-Analysis, 2nd ed.
    .. [8] Jennrich & Sampson (1976), Technometrics 18(1):11-17.
       https://doi.org/10.1080/00401706.1976.10489395
    .. [9] Henderson & Searle (1981), SIAM Rev 23(1):53-60. https://doi.org/10.1137/1023004

    Examples
    --------
    Konstantopoulos (2011): 56 studies of a modified school calendar, schools within 11
    districts (metafor: ``rma.mv(yi, vi, random = ~ 1 | district/school, data=dat)``):

    >>> import ketameta
    >>> dat = ketameta.datasets.konstantopoulos2011()
    >>> res = ketameta.pool_mv("yi", "vi", random="~ 1 | district/school", data=dat)
    >>> round(float(res.coef[0]), 4), [round(float(s), 4) for s in res.sigma2]
    (0.1847, [0.0651, 0.0327])
    """
    method = check_choice(method, "method", MV_METHODS)
    test = check_choice(test, "test", MV_TESTS)
    lv = check_level(level)
    nan_policy = check_choice(nan_policy, "nan_policy", ("omit", "raise"))
    ctl = _validate_control(control)
    yi = _column(yi, data, "yi")
    V = _column(V, data, "V")
    if isinstance(yi, EffectSizes):
        if V is None:
            V = yi.vi
        yi = yi.yi
    if V is None:
        msg = "`V` (the sampling variances or covariance matrix) is required"
        raise TypeError(msg)
    y_all = as_float_array(yi, "yi")
    n_input = y_all.shape[0]
    v_diag, v_mat = _prepare_v(V, n_input)
    terms = parse_random(random, struct)
    # grouping variables
    coded_all: dict[str, tuple[list[Any], Any]] = {}
    compact: set[str] = set()
    missing = np.zeros(n_input, dtype=bool)
    for name in variables_of(terms):
        values = column(data, name)
        if type(values) is list and set(map(type, values)) <= {int}:
            values = np.asarray(values)
        found = _integer_codes(values)
        if found is not None:
            levels, codes = found
            compact.add(name)
        else:
            levels, codes = group_codes(values, name)
        if np.shape(codes)[0] != n_input:
            msg = (
                f"`random`: column {name!r} has {np.shape(codes)[0]} rows but `yi` has "
                f"{n_input}; all inputs must have the same length"
            )
            raise ValueError(msg)
        coded_all[name] = (levels, codes)
        if name not in compact:  # (integer labels are never missing)
            missing |= codes < 0
    if mods is None:
        mm = _intercept_only(n_input)
    else:
        # (`data` also holds the grouping columns: pass it on only for names/formulas)
        by_name = isinstance(mods, str) or _is_sequence_of_str(mods)
        mm = model_matrix(mods, data=data if by_name else None, intercept=intercept, k=n_input)
        missing[list(mm.missing)] = True
    y, v, kept, omitted, _, _ = prepare_studies(
        y_all,
        v_diag,
        None,
        nan_policy=nan_policy,
        stacklevel=3,
        also_missing=missing,
        what="moderator or grouping variable",
    )
    # (an intercept-only design is never reduced: one column of ones, the intercept)
    mm, dropped = (mm, ()) if mods is None else mm.reduce_and_warn(kept, "effects")
    x = np.ascontiguousarray(mm.x[kept])
    k, p = x.shape
    check_coefficients(p, k, equal_effects=not terms)
    names = mm.names
    idx = _btt(btt, names) if btt is not None else None
    coded = {
        name: Coded(tuple(lv_), codes)
        if name in compact and kept.size == n_input  # (every level used, numbered 0, 1, ...)
        else recode(lv_, codes[kept])
        for name, (lv_, codes) in coded_all.items()
    }
    comps = build(terms, coded)
    v_entries = None if v_mat is None else _v_entries(v_mat, kept)
    return _fit(
        y=y,
        x=x,
        v=v,
        v_entries=v_entries,
        comps=comps,
        terms=terms,
        coded=coded,
        mm=mm,
        names=names,
        btt=idx,
        fixed={"sigma2": sigma2, "tau2": tau2, "rho": rho, "gamma2": gamma2, "phi": phi},
        method=method,
        test=test,
        level=lv,
        control=ctl,
        omitted=omitted,
        dropped=dropped,
        random=random,
        user_control=control,
    )


def _fit(
    *,
    y: FloatArray,
    x: FloatArray,
    v: FloatArray,
    v_entries: tuple[FloatArray, Any, Any] | None,
    comps: list[Component],
    terms: list[RandomTerm],
    coded: dict[str, Coded],
    mm: ModelMatrix,
    names: tuple[str, ...],
    btt: list[int] | None,
    fixed: dict[str, Any],
    method: str,
    test: str,
    level: float,
    control: dict[str, Any],
    omitted: tuple[int, ...],
    dropped: tuple[str, ...],
    random: Any,
    user_control: Any,
) -> MVResult:
    k, p = x.shape
    # orthonormal design for the engine: X = Q R
    if p == 1:
        norm = math.sqrt(float(x[:, 0] @ x[:, 0]))
        qmat, r_inv = x / norm, np.array([[1.0 / norm]])
    else:
        qmat, rmat = np.linalg.qr(x)
        r_inv = np.linalg.inv(rmat)
    bases = [b for c in comps for b in c.bases]
    groups = [g for c in comps for g in c.groups]
    if v_entries is not None and np.all(v_entries[1] == v_entries[2]):
        v_entries = None  # (a diagonal matrix V: its diagonal is `v`)
    if v_entries is None:
        vpairs = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp))
        v_arg: Any = v
    else:
        vals, vr, vc = v_entries
        off = vr != vc
        vpairs = (vr[off], vc[off])
        v_arg = (vals, vr, vc)
    # the effects centred at a weighted least-squares fit with the sampling variances
    # (ybar = X b0): the likelihoods depend on y only through y - X beta, so the fit is the
    # same with beta shifted by b0, but effects far from 0 relative to their standard
    # errors (1000 +- 1e-4) no longer lose their digits in the residuals
    b0 = _centring(x, y, v if v_entries is None else None, v_entries)
    layout = mv.make_layout(y - x @ b0, qmat, v_arg, bases, groups, vpairs)
    structures = tuple(c.structure for c in comps)
    model = mv.Model(layout=layout, structures=structures, reml=method == "REML")
    # V must be positive definite (Q_E and the start need V^-1)
    fe = mv.evaluate(layout, np.zeros(layout.n_bases), reml=model.reml, order=0)
    if fe is None:
        bad = _non_pd_blocks(layout)
        msg = f"`V` is not positive definite (in the block of effects {bad} of the effects used)"
        raise ValueError(msg)
    params, param_comp = _parameters(comps)
    theta0, free = _start(model, comps, params, fixed, control, layout.y, qmat, v)
    # (which bases reach a pair of effects: read only for the correlations of CS/HCS/UN)
    if any(c.structure.kind in ("CS", "HCS", "UN") for c in comps):
        nonzero = layout.nonzero_bases()
    else:
        nonzero = np.ones(layout.n_bases, dtype=bool)
    _fix_unidentified(comps, params, free, theta0, nonzero)
    fit = mv.maximise_with_restarts(
        model,
        theta0,
        free,
        maxiter=int(control["maxiter"]),
        threshold=float(control["threshold"]),
    )
    if not fit.converged:
        raise ConvergenceError(
            method, fit.iterations, fit.message or "not converged", what="variance components"
        )
    theta = fit.theta
    ev = fit.ev
    beta = r_inv @ ev.beta + b0
    vcov = r_inv @ ev.a @ r_inv.T
    vcov = 0.5 * (vcov + vcov.T)
    se = np.sqrt(np.diagonal(vcov))
    df = math.inf if test == "z" else float(k - p)
    stat = beta / se
    if test == "z":
        pval = special.erfc(np.abs(stat) / math.sqrt(2.0))
    else:
        pval = 2.0 * special.stdtr(df, -np.abs(stat))
    crit = float(test_critical_value(level, df, test))
    # heterogeneity test with V alone
    q = fe.rss
    q_df = k - p
    q_pvalue = float(chi2_sf(float(q_df), max(q, 0.0))) if q_df > 0 else math.nan
    btt_used = btt if btt is not None else default_btt(p, mm.intercept)
    if btt is None and p == 1 and mm.intercept:
        btt_used = []  # an intercept-only model: no omnibus test of moderators
    if btt_used:
        qm_out = moderator_test(list(beta), vcov.tolist(), btt_used, df, test)
    else:
        qm_out = {"qm": math.nan, "qm_pvalue": math.nan}
    components = _components(comps, params, param_comp, theta, free)
    i2, i2_levels, vt = _multilevel_i2(components, comps, layout, k, p)
    cluster = _outer_cluster(terms, coded, k)
    fitted = _Fitted(
        model=model,
        theta=theta.copy(),
        free=free.copy(),
        params=tuple(params),
        r_inv=r_inv,
        components=tuple(comps),
        control=dict(control),
    )
    return _trusted_mv_result(  # type: ignore[no-any-return]
        coef=beta,
        se=se,
        statistic=stat,
        pvalue=np.asarray(pval, dtype=np.float64),
        ci_lower=beta - crit * se,
        ci_upper=beta + crit * se,
        names=strings(names),
        vcov=vcov,
        X=x,
        yi=y,
        vi=v,
        components=components,
        q=float(q),
        q_df=q_df,
        q_pvalue=q_pvalue,
        btt=ints(btt_used),
        qm=float(qm_out["qm"]),
        qm_df=len(btt_used),
        qm_pvalue=float(qm_out["qm_pvalue"]),
        loglik=float(ev.ll),
        i2=i2,
        i2_levels=i2_levels,
        v_typical=vt,
        cluster=cluster,
        k=k,
        p=p,
        df=df,
        intercept=mm.intercept,
        method=method,
        test=test,
        level=level,
        converged=True,
        iterations=fit.iterations,
        random=() if random is None else strings((random,) if isinstance(random, str) else random),
        struct=tuple(t.struct for t in terms if t.kind == "inner_outer"),
        omitted=ints(omitted),
        dropped=strings(dropped),
        model_matrix=mm,
        fitted_model=fitted,
    )


def _centring(
    x: FloatArray,
    y: FloatArray,
    v: Any,
    v_entries: tuple[FloatArray, Any, Any] | None,
) -> FloatArray:
    """Coefficients of the least-squares fit of `y` on `x` weighted by the inverse sampling
    variances (the diagonal of V): a centring of the effects (any b0 gives the same fit)."""
    if v_entries is not None:
        vals, vr, vc = v_entries
        diag = np.zeros(y.shape[0])
        on = vr == vc
        diag[vr[on]] = vals[on]
    else:  # (read only)
        arr = np.asarray(v, dtype=np.float64)
        diag = np.diagonal(arr) if arr.ndim == 2 else arr
    # (every variance finite and positive; a NaN fails the first test)
    if diag.size and not (float(diag.min()) > 0.0 and float(diag.max()) < math.inf):
        return np.zeros(x.shape[1])
    if x.shape[1] == 1:
        w = x[:, 0] / diag
        return np.array([float(w @ y) / float(w @ x[:, 0])])
    sw = 1.0 / np.sqrt(diag)
    b0, *_ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
    return np.asarray(b0, dtype=np.float64)


def _non_pd_blocks(layout: mv.Layout) -> list[int]:
    for bk in layout.buckets:
        for b in range(bk.rows.shape[0]):
            n = int(bk.valid[b].sum())
            m = bk.v[b, :n, :n]
            if np.any(np.linalg.eigvalsh(m) <= 0):
                return [int(i) for i in bk.rows[b][:n]]
    return []  # pragma: no cover - only called when a block failed


def _parameters(comps: Sequence[Component]) -> tuple[list[_Param], list[int]]:
    """The parameters in order (metafor's kinds and numbering) and their component."""
    params: list[_Param] = []
    owner: list[int] = []
    n_sigma = 0
    n_io = 0
    for ci, comp in enumerate(comps):
        st = comp.structure
        if st.kind == "sigma2":
            params.append(_Param("sigma2", n_sigma, mv.VAR))
            owner.append(ci)
            n_sigma += 1
            continue
        var_kind, cor_kind = ("tau2", "rho") if n_io == 0 else ("gamma2", "phi")
        n_io += 1
        n_var = cor_i = 0
        for scale in st.param_kinds:
            if scale == mv.COR:
                params.append(_Param(cor_kind, cor_i, scale))
                cor_i += 1
            else:
                params.append(_Param(var_kind, n_var, scale))
                n_var += 1
            owner.append(ci)
    return params, owner


def _start(
    model: mv.Model,
    comps: Sequence[Component],
    params: Sequence[_Param],
    fixed: dict[str, Any],
    control: dict[str, Any],
    y: FloatArray,
    x: FloatArray,
    v: FloatArray,
) -> tuple[FloatArray, Any]:
    """Starting values (fixed components at their values) and the free mask."""
    n = len(params)
    k, p = x.shape
    # the total excess variance of the ordinary least-squares residuals (a moment start;
    # `x` has orthonormal columns)
    resid = y - x @ (y @ x)
    mean_v = float(v.sum()) / v.size  # (np.mean's sum and division)
    total = float(resid @ resid) / (k - p) - mean_v if k > p else mean_v
    total = max(total, 0.1 * mean_v)
    slots = max(1, sum(1 for c in comps))
    share = total / slots
    counts = {kind: sum(1 for q in params if q.kind == kind) for kind in _KIND_SYMBOL}
    fixed_vals = {
        kind: [None] * counts[kind]
        if fixed[kind] is None
        else _fixed_values(kind, fixed[kind], counts[kind], f"{counts[kind]} {kind} component(s)")
        for kind in _KIND_SYMBOL
    }
    inits: dict[str, list[float | None]] = {}
    for kind in _KIND_SYMBOL:
        given = control[f"{kind}_init"]
        if given is None:
            inits[kind] = [None] * counts[kind]
            continue
        if np.ndim(given) == 0 and not isinstance(given, str):
            given = [given] * counts[kind]
        inits[kind] = _fixed_values(
            f"control['{kind}_init']", given, counts[kind], f"{counts[kind]} {kind} component(s)"
        )
    theta = np.zeros(n)
    free = np.ones(n, dtype=bool)
    for i, par in enumerate(params):
        given = fixed_vals[par.kind][par.index]
        init = inits[par.kind][par.index]
        if par.scale == mv.COR:
            value = 0.5 if init is None else init
            if given is not None:
                if not -1.0 <= given <= 1.0:
                    msg = f"`{par.kind}` values must be correlations in [-1, 1], got {given!r}"
                    raise ValueError(msg)
                value, free[i] = given, False
            elif not -1.0 <= value <= 1.0:
                msg = f"`control['{par.kind}_init']` must be in [-1, 1], got {value!r}"
                raise ValueError(msg)
        else:
            value = share if init is None else init
            if given is not None:
                if not (given >= 0 and math.isfinite(given)):
                    msg = f"`{par.kind}` values must be variances (>= 0), got {given!r}"
                    raise ValueError(msg)
                value, free[i] = given, False
            elif not (value >= 0 and math.isfinite(value)):
                msg = f"`control['{par.kind}_init']` must be a variance (>= 0), got {value!r}"
                raise ValueError(msg)
            if par.scale == mv.SD:
                value = math.sqrt(value)
        theta[i] = value
    del model
    return theta, free


def _fix_unidentified(
    comps: Sequence[Component],
    params: Sequence[_Param],
    free: Any,
    theta: FloatArray,
    nonzero: Any,
) -> None:
    """Correlations whose bases no pair of effects reaches are fixed at 0 (metafor: "Some
    combinations of the levels of the inner factor never occurred. Corresponding rho
    value(s) fixed to 0."), and so are the variances of random intercepts over a factor
    with a single level, which the intercept absorbs (metafor: "Single-level factor(s)
    found in 'random' argument. Corresponding 'sigma2' value(s) fixed to 0.")."""
    i = c = 0
    fixed_names = []
    single_level = []
    for comp in comps:
        st = comp.structure
        if st.kind == "sigma2" and comp.nlevels == 1 and free[i]:
            free[i] = False
            theta[i] = 0.0
            single_level.append(f"`{comp.term.factor}`")
        kinds = st.param_kinds
        b = nonzero[c : c + st.n_bases]
        cor_idx = [i + j for j, kd in enumerate(kinds) if kd == mv.COR]
        if st.kind in ("CS", "HCS"):
            unused = (
                [] if b[st.n_bases - 1 if st.kind == "CS" else st.n_levels :].any() else cor_idx
            )
        elif st.kind == "AR":
            unused = [] if len(st.lags) else cor_idx
        elif st.kind == "UN":
            unused = [ci for ci, used in zip(cor_idx, b[st.n_levels :], strict=True) if not used]
        else:
            unused = []
        for j in unused:
            if free[j]:
                free[j] = False
                theta[j] = 0.0
                fixed_names.append(f"{params[j].kind}[{params[j].index}]")
        i += st.n_params
        c += st.n_bases
    if single_level:
        warnings.warn(
            f"random-intercept factor(s) {', '.join(single_level)} with a single level: "
            "the variance is not identifiable (the intercept absorbs it) and is fixed at 0 "
            "(as metafor)",
            DegenerateDataWarning,
            stacklevel=4,
        )
    if fixed_names:
        warnings.warn(
            "some combinations of the levels of an inner factor never occur in the same "
            f"outer level: their correlations {fixed_names} are fixed at 0 (as metafor)",
            DegenerateDataWarning,
            stacklevel=4,
        )


def _components(
    comps: Sequence[Component],
    params: Sequence[_Param],
    owner: Sequence[int],
    theta: FloatArray,
    free: Any,
) -> tuple[VarianceComponent, ...]:
    counts: dict[str, int] = {}
    for par in params:
        counts[par.kind] = counts.get(par.kind, 0) + 1
    out = []
    for i, par in enumerate(params):
        comp = comps[owner[i]]
        value = float(theta[i] ** 2) if par.scale == mv.SD else float(theta[i])
        symbol = _KIND_SYMBOL[par.kind]
        name = symbol if counts[par.kind] == 1 else f"{symbol}.{par.index + 1}"
        level = ""
        count = comp.nlevels
        st = comp.structure
        if par.kind in ("tau2", "gamma2") and st.kind in ("HCS", "UN", "DIAG"):
            level = comp.inner_levels[par.index]
            count = comp.inner_counts[par.index]
        elif par.kind in ("rho", "phi") and st.kind == "UN":
            j, ell = st.pairs[par.index]
            level = f"{comp.inner_levels[j]}.{comp.inner_levels[ell]}"
            count = comp.pair_counts[par.index]
        out.append(
            VarianceComponent(
                name=name,
                kind=par.kind,
                index=par.index,
                estimate=value,
                fixed=not bool(free[i]),
                factor=comp.term.factor,
                nlevels=comp.nlevels,
                level=level,
                count=count,
            )
        )
    return tuple(out)


def _multilevel_i2(
    components: Sequence[VarianceComponent],
    comps: Sequence[Component],
    layout: mv.Layout,
    k: int,
    p: int,
) -> tuple[float, FloatArray, float]:
    """``I²_l = 100 σ²_l/(Σσ² + ṽ)``, ``ṽ = (k - p)/tr(P)`` with ``W = V⁻¹``."""
    if k <= p:
        return math.nan, np.zeros(0), math.nan
    if layout.groups is not None:  # (a diagonal V)
        wd = layout.groups.vinv
        ud = layout.x * wd[:, None]
        xtwx_d = layout.x.T @ ud
        if p == 1:
            trp = float(wd.sum()) - float(ud[:, 0] @ ud[:, 0]) / float(xtwx_d[0, 0])
        else:
            trp = float(wd.sum()) - float(np.sum(ud * (ud @ np.linalg.inv(xtwx_d))))
        return _i2_levels(components, comps, (k - p) / trp)
    trp = 0.0
    xtwx = np.zeros((layout.p, layout.p))
    blocks = []
    for bk in layout.buckets:
        w = np.linalg.inv(bk.v)
        u = w @ bk.x
        xtwx += np.einsum("bnp,bnq->pq", bk.x, u)
        blocks.append(u)
        # padding rows have W = 1 on the diagonal: leave them out
        trp += float(np.sum(np.diagonal(w, axis1=1, axis2=2)[bk.valid]))
    a = np.linalg.inv(xtwx)
    for u in blocks:
        trp -= float(np.einsum("bnp,pq,bnq->", u, a, u))
    return _i2_levels(components, comps, (k - p) / trp)


def _i2_levels(
    components: Sequence[VarianceComponent], comps: Sequence[Component], vt: float
) -> tuple[float, FloatArray, float]:
    variances = [c for c in components if c.is_variance]
    hetero = any(c.structure.kind in ("HCS", "UN", "DIAG") for c in comps)
    if hetero or not variances:
        return math.nan, np.full(len(variances), np.nan), vt
    total = sum(c.estimate for c in variances)
    levels = np.array([100.0 * c.estimate / (total + vt) for c in variances])
    return 100.0 * total / (total + vt), levels, vt


def _outer_cluster(terms: Sequence[RandomTerm], coded: dict[str, Coded], k: int) -> FloatArray:
    """The codes of the outermost grouping factor of the first random term."""
    if not terms:
        return np.arange(k, dtype=np.float64)
    t = terms[0]
    name = t.variables[0] if t.kind == "intercept" else t.variables[1]
    return coded[name].codes.astype(np.float64)
