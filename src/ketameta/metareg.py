"""Meta-regression: the mixed-effects model with moderators (metafor's ``rma(yi, vi, mods=)``).

:func:`metareg` fits ``y_i = x_iᵀβ + u_i + ε_i`` with ``u_i ~ N(0, τ²)`` and
``ε_i ~ N(0, v_i)`` by the same engine as :func:`ketameta.pool` (which is the model with an
intercept only), with every τ² estimator and test of it, and returns a
:class:`MetaRegResult` carrying the coefficient table, its covariance, the residual
heterogeneity, the omnibus test of the moderators, the pseudo-R² and everything
:meth:`~MetaRegResult.predict`, :meth:`~MetaRegResult.anova` and the diagnostics need.

References
----------
.. [1] Raudenbush, S. W. (2009). Analyzing effect sizes: Random-effects models. In H.
   Cooper, L. V. Hedges, & J. C. Valentine (Eds.), The Handbook of Research Synthesis and
   Meta-Analysis (2nd ed., pp. 295-315). Russell Sage Foundation.
.. [2] Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance estimators in
   the random-effects model. J Educ Behav Stat, 30(3), 261-293.
   https://doi.org/10.3102/10769986030003261
.. [3] Knapp, G., & Hartung, J. (2003). Improved tests for a random effects
   meta-regression with a single covariate. Stat Med, 22(17), 2693-2710.
   https://doi.org/10.1002/sim.1482
.. [4] Thompson, S. G., & Higgins, J. P. T. (2002). How should meta-regression analyses be
   undertaken and interpreted? Stat Med, 21(11), 1559-1573. https://doi.org/10.1002/sim.1187
.. [5] Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
   J Stat Softw, 36(3), 1-48. https://doi.org/10.18637/jss.v036.i03
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from . import _engine, _transf
from ._engine.inference import test_critical_value
from ._engine.model import default_btt, moderator_test
from ._modelmatrix import ModelMatrix, check_coefficients, model_matrix
from ._results import (
    Owned,
    RecordResult,
    TableResult,
    array_field,
    coefficient_frame,
    format_p,
    format_p_with_sign,
    import_pandas,
    plain,
    table_lines,
)
from ._typing import ArrayLike, FloatArray
from ._validation import ints, strings
from ._warnings import AccuracyWarning, SmallSampleWarning
from .effect_sizes import EffectSizes
from .pooling import (
    _METHOD_NAMES,
    ModelFit,
    _resolve_inputs,
    prepare_studies,
    validate_options,
)

__all__ = ["MetaRegResult", "PredictResult", "WaldTest", "likelihood_ratio_test", "metareg"]


@attrs.frozen(kw_only=True)
class WaldTest(RecordResult):
    """A Wald test that some coefficients are all 0 (metafor's ``anova(res, btt=)``).

    ``statistic`` is ``QM = b_Sᵀ V_S⁻¹ b_S`` (χ² with ``df`` degrees of freedom) for
    ``test="z"``, or ``QM/m`` (F with ``df`` and ``df_residual``) for t-based tests.
    """

    coefficients: tuple[str, ...] = attrs.field(converter=strings)
    btt: tuple[int, ...] = attrs.field(converter=ints)
    statistic: float
    df: int
    df_residual: float
    pvalue: float
    distribution: str

    def summary(self) -> str:
        """As metafor prints it."""
        which = ", ".join(str(i + 1) for i in self.btt)
        plural = "s" if len(self.btt) > 1 else ""
        head = f"Test of Moderators (coefficient{plural} {which}):"
        if self.distribution == "chi2":
            stat = f"QM(df = {self.df}) = {self.statistic:.4f}"
        else:
            stat = f"F(df1 = {self.df}, df2 = {self.df_residual:g}) = {self.statistic:.4f}"
        return f"{head}\n{stat}, p-val {format_p_with_sign(self.pvalue)}"


@attrs.frozen(kw_only=True, repr=False)
class PredictResult(TableResult):
    """Predicted effects for given moderator values (see :meth:`MetaRegResult.predict`).

    ``pred`` with its standard error ``se``, confidence interval and prediction interval
    (for the effect in a new study with these moderator values; NaN for the
    equal-effects model, which has none), one entry per row of ``X``; ``transf`` names a
    back-transformation applied to the estimate and the limits (then ``se`` is NaN: it is
    on the model's scale).
    """

    pred: FloatArray = array_field()
    se: FloatArray = array_field()
    ci_lower: FloatArray = array_field()
    ci_upper: FloatArray = array_field()
    pred_lower: FloatArray = array_field()
    pred_upper: FloatArray = array_field()
    X: FloatArray = array_field()
    names: tuple[str, ...] = attrs.field(converter=strings)
    level: float
    transf: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values."""
        d = plain({f.name: getattr(self, f.name) for f in attrs.fields(type(self))})
        return d  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        shown = ", ".join(f"{v:.4g}" for v in self.pred[:3])
        more = ", ..." if len(self.pred) > 3 else ""
        transf = "" if self.transf is None else f", transf={self.transf!r}"
        return f"PredictResult(n={len(self.pred)}, pred=[{shown}{more}]{transf})"

    def to_frame(self) -> Any:
        """One row per prediction (requires pandas)."""
        pd = import_pandas()
        cols = ("pred", "se", "ci_lower", "ci_upper", "pred_lower", "pred_upper")
        return pd.DataFrame({c: np.asarray(getattr(self, c)) for c in cols})

    def summary(self) -> str:
        """A table as metafor prints ``predict()`` (without the ``se`` column after a
        back-transformation, as metafor)."""
        se = "" if self.transf is not None else f" {'se':>8s}"
        head = f"{'pred':>9s}{se} {'ci.lb':>8s} {'ci.ub':>8s} {'pi.lb':>8s} {'pi.ub':>8s}"
        lines = [head]
        for i in range(self.pred.shape[0]):
            cells: tuple[FloatArray, ...] = (self.pred, self.se, self.ci_lower, self.ci_upper)
            if self.transf is not None:
                cells = (self.pred, self.ci_lower, self.ci_upper)
            row = " ".join(f"{float(c[i]):{9 if j == 0 else 8}.4f}" for j, c in enumerate(cells))
            for c in (self.pred_lower, self.pred_upper):
                value = float(c[i])
                row += f" {value:8.4f}" if math.isfinite(value) else f" {'NA':>8s}"
            lines.append(row)
        return "\n".join(lines)


@attrs.frozen(kw_only=True, repr=False)
class MetaRegResult(ModelFit):
    """The result of :func:`metareg`: a fitted mixed-effects meta-regression model.

    Attributes
    ----------
    coef, se, statistic, pvalue, ci_lower, ci_upper : ndarray, shape (p,)
        The coefficient table: estimates, standard errors (Knapp-Hartung-adjusted for
        ``test="knha"``), z or t statistics, two-sided p-values, confidence limits.
    names : tuple of str
        Coefficient names, as metafor prints them (``"intrcpt"``, ``"ablat"``, ...).
    vcov : ndarray, shape (p, p)
        Covariance matrix of the coefficients.
    X : ndarray, shape (k, p)
        The design of the studies used.
    intercept : bool
        Whether the first coefficient is the intercept.
    btt, qm, qm_df, qm_pvalue
        The omnibus test of the coefficients `btt` (0-based; default all but the
        intercept): ``QM`` ~ χ²(m) for ``test="z"``, else the F statistic ``QM/m`` ~
        F(m, k - p) (as metafor).
    r2 : float
        Pseudo-R² in percent: the proportional reduction of τ² against the model with the
        intercept only (Raudenbush 2009), NaN without an intercept or without moderators.
    dropped : tuple of str
        Moderators dropped as linear combinations of earlier ones.
    df, tau2, tau2_se, tau, i2, h2, q, q_df, q_pvalue, k, weights, yi, vi, omitted, method,
    test, level, tau2_fixed, control, converged, iterations
        As in :class:`~ketameta.pooling.ModelFit`; τ², I², H² and ``q`` (the test for
        residual heterogeneity, Q_E) are residual quantities.
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
    intercept: bool
    btt: tuple[int, ...] = attrs.field(converter=ints)
    qm: float
    qm_df: int
    qm_pvalue: float
    dropped: tuple[str, ...] = attrs.field(converter=strings, default=())
    model_matrix: ModelMatrix | None = attrs.field(default=None, eq=False, repr=False)
    #: statistics derived on first access (the pseudo-R² needs a second fit)
    _derived: dict[str, float] = attrs.field(factory=dict, eq=False, repr=False, init=False)

    @property
    def r2(self) -> float:
        """Pseudo-R² in percent (see the class docstring); computed on first access, as it
        needs the fit of the model with the intercept only."""
        if "r2" not in self._derived:
            self._derived["r2"] = _pseudo_r2(self)
        return self._derived["r2"]

    def to_dict(self) -> dict[str, Any]:
        """All fields (and the pseudo-R²) as plain Python values (JSON-serialisable)."""
        d = super().to_dict()
        # the model matrix's private `spec` (a formulaic ModelSpec for a formula) and the
        # cache of derived statistics are not values of the result
        d.pop("_derived", None)
        if isinstance(d.get("model_matrix"), dict):
            d["model_matrix"].pop("spec", None)
        return {**d, "r2": plain(self.r2)}

    @property
    def p(self) -> int:
        """Number of coefficients."""
        return int(self.coef.shape[0])

    def _design(self) -> tuple[FloatArray | None, bool]:
        return self.X, self.intercept

    # -- derived quantities ------------------------------------------------------------

    @property
    def fitted(self) -> FloatArray:
        """Fitted values ``Xb`` of the studies used."""
        return np.asarray(self.X @ self.coef, dtype=np.float64)

    @property
    def residuals(self) -> FloatArray:
        """Residuals ``y - Xb`` of the studies used."""
        return np.asarray(self.yi - self.fitted, dtype=np.float64)

    def _bread(self) -> FloatArray:
        """``(XᵀWX)⁻¹`` at τ̂² (without the Knapp-Hartung factor)."""
        w = 1.0 / (self.vi + self.tau2)
        return np.asarray(np.linalg.inv(self.X.T @ (self.X * w[:, None])), dtype=np.float64)

    def hatvalues(self) -> FloatArray:
        """Diagonal of the hat matrix ``H = X(XᵀWX)⁻¹XᵀW`` (metafor's ``hatvalues``)."""
        w = 1.0 / (self.vi + self.tau2)
        return np.asarray(np.einsum("ij,jk,ik->i", self.X, self._bread(), self.X) * w)

    def rstandard(self) -> FloatArray:
        """Standardized residuals ``e_i / √Var(e_i)``, ``Var(e) = (I - H)M(I - H)ᵀ`` with
        ``M = diag(v + τ̂²)`` (metafor's ``rstandard(res)$z``): ``Var(e_i) = v_i + τ̂² -
        x_iᵀ(XᵀWX)⁻¹x_i``."""
        lever = np.einsum("ij,jk,ik->i", self.X, self._bread(), self.X)
        return np.asarray(self.residuals / np.sqrt(self.vi + self.tau2 - lever))

    def fit_statistics(self) -> dict[str, dict[str, float]]:
        """Log-likelihood, deviance, AIC, BIC and AICc, for ML and REML (metafor's
        ``fitstats``).

        ``ll_ML = -½[k log 2π + Σ log(v + τ̂²) + RSS]``,
        ``ll_REML = -½[(k - p) log 2π - log|XᵀX| + Σ log(v + τ̂²) + log|XᵀWX| + RSS]`` with
        ``RSS = Σ w (y - Xb)²`` at τ̂² (metafor's definitions, including the ``log|XᵀX|``
        term); the ML deviance is relative to the saturated model; ``q = p + 1`` parameters
        (``p`` for the equal-effects model or a fixed τ²); AICc with ``n = k`` (ML) or
        ``k - p`` (REML).
        """
        return fit_statistics(self)

    def loglik(self) -> float:
        """The (restricted, for ``method="REML"``) log-likelihood at the estimates."""
        return self.fit_statistics()["REML" if self.method == "REML" else "ML"]["ll"]

    # -- tests and predictions -----------------------------------------------------------

    def anova(self, other: Any = None, *, btt: Any = None) -> Any:
        """A likelihood-ratio test against another fit of the same studies (metafor's
        ``anova(full, reduced)``), or the Wald test that the coefficients `btt` are all 0
        (``anova(res, btt=)``: χ², or F for ``test="t"``).

        Parameters
        ----------
        other : MetaRegResult or PoolResult, optional
            The other model. The rules, the statistic and R² are
            :func:`likelihood_ratio_test`'s (module ``ketameta.metareg``): same effects,
            the one with more parameters is the full model, the same method (ML, or EE
            with ML), for REML the same fixed effects. For backward compatibility a `btt`
            may also be given here (anything but a fit): ``res.anova(1)`` is
            ``res.anova(btt=1)``.
        btt : int, str or sequence, optional
            Coefficients to test (indices, 0-based, or names).

        Returns
        -------
        LikelihoodRatioTest or WaldTest

        Examples
        --------
        >>> import ketameta
        >>> data = ketameta.datasets.bcg()
        >>> es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
        >>> full = ketameta.metareg(es, mods="~ ablat + year", data=data, method="ML")
        >>> reduced = ketameta.metareg(es, mods="~ ablat", data=data, method="ML")
        >>> round(full.anova(reduced).pvalue, 4)
        0.7785
        """
        if isinstance(other, ModelFit) or hasattr(other, "fit_statistics"):
            if btt is not None:
                msg = "give either another fit (a likelihood-ratio test) or `btt=`, not both"
                raise TypeError(msg)
            return likelihood_ratio_test(self, other)
        if other is not None:
            if btt is not None:
                msg = "give `btt` once (as `btt=`)"
                raise TypeError(msg)
            btt = other
        if btt is None:
            msg = "give another fit to compare with, or `btt=` for a Wald test"
            raise TypeError(msg)
        return wald_test(self, btt)

    def predict(
        self,
        newmods: Any = None,
        *,
        data: Any = None,
        level: float | None = None,
        transf: str | Callable[[FloatArray], FloatArray] | None = None,
    ) -> PredictResult:
        """Predicted effects with confidence and prediction intervals (metafor's
        ``predict``).

        ``pred = x₀ᵀb``, ``se = √(x₀ᵀ V x₀)`` (V includes the Knapp-Hartung factor),
        ``CI = pred ± c·se`` and ``PI = pred ± c·√(se² + τ̂²)``, c the normal or t(k - p)
        critical value of the model's test (none for the equal-effects model).

        Parameters
        ----------
        newmods : array_like, mapping or DataFrame, optional
            Moderator values (see :meth:`ketameta._modelmatrix.ModelMatrix.new_rows`):
            positional values without the intercept (or all ``p`` columns), a mapping of
            coefficient names, or for a model built from columns or a formula the
            variables themselves (``{"ablat": [20, 40]}``). Default: the studies used
            (the fitted values).
        data : DataFrame or mapping, optional
            For a formula model, the new data.
        level : float, optional
            Confidence level (default: the model's).
        transf : str or callable, optional
            Back-transformation of the estimate and the limits: ``"auto"`` (the measure's
            own: exp for log ratios, ...; see :meth:`ketameta.PoolResult.summary`), a name
            (``"exp"``, ``"ilogit"``, ``"iarcsin"``, ``"ipft"``, ``"ztor"``; also
            ``"inv_logit"``, ``"tanh"``) or a function of an array.
        """
        from ._validation import check_level

        lv = self.level if level is None else check_level(level)
        if newmods is None and data is None:
            x0 = self.X
        else:
            if self.model_matrix is None:
                x0 = np.atleast_2d(np.asarray(newmods, dtype=np.float64))
            else:
                x0 = self.model_matrix.new_rows(newmods, data=data)
            if x0.shape[1] != self.p:
                msg = f"`newmods` gives {x0.shape[1]} columns, the model has {self.p}"
                raise ValueError(msg)
        pred = x0 @ self.coef
        var = np.einsum("ij,jk,ik->i", x0, self.vcov, x0)
        if np.any(var < 0.0):
            # only where the covariances are subnormal (tiny effects, e.g. ~1e-160: the
            # Knapp-Hartung s² below the floating-point range) have they too few bits left
            # for the quadratic form not to cancel below 0
            warnings.warn(
                "the covariances of the coefficients are below the normal floating-point "
                "range (subnormal: too few digits) and the standard errors of some "
                "predictions cancel: they are NaN; rescale the effects (e.g. by 1e150)",
                AccuracyWarning,
                stacklevel=2,
            )
            var = np.where(var < 0.0, np.nan, var)
        se = np.sqrt(var)
        crit = float(test_critical_value(lv, self.df, self.test))
        half = crit * se
        if self.method == "EE" and not self.tau2_fixed:
            pi_half = np.full(pred.shape, np.nan)
        else:
            pi_half = crit * np.sqrt(se * se + self.tau2)
        columns = [pred, pred - half, pred + half, pred - pi_half, pred + pi_half]
        t = _transf.resolve(transf, self.measure)
        name = t.name
        if name is not None:
            n_pooled, _ = self._transf_n()
            with np.errstate(over="ignore", invalid="ignore"):
                columns = [t(c, n_pooled if t.needs_n else None) for c in columns]
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

    # -- output ---------------------------------------------------------------------------

    def to_frame(self) -> Any:
        """The coefficient table as a pandas DataFrame indexed by coefficient name."""
        return coefficient_frame(self)

    def __repr__(self) -> str:
        coefs = ", ".join(f"{n}={b:.4g}" for n, b in zip(self.names, self.coef, strict=True))
        measure = "" if self.measure is None else f"measure={self.measure!r}, "
        omitted = f", omitted={len(self.omitted)}" if self.omitted else ""
        return (
            f"MetaRegResult({measure}method={self.method!r}, k={self.k}{omitted}, {coefs}, "
            f"tau2={self.tau2:.4g}, qm_pvalue={self.qm_pvalue:.3g})"
        )

    def summary(self) -> str:
        """A metafor-like printed summary: residual heterogeneity, the test of the
        moderators and the coefficient table."""
        kind = (
            "Fixed-Effects with Moderators Model" if self.method == "EE" else "Mixed-Effects Model"
        )
        est = (
            ""
            if self.method == "EE"
            else f"; tau^2 estimator: {self.method}, {_METHOD_NAMES[self.method]}"
        )
        lines = [f"{kind} (k = {self.k}{est})", ""]
        lines += self._heterogeneity_lines(residual=True)
        if math.isfinite(self.r2):
            lines.append(f"{'R^2 (amount of heterogeneity accounted for):':56s}{self.r2:.2f}%")
        lines += ["", "Test for Residual Heterogeneity:"]
        lines.append(
            f"QE(df = {self.q_df}) = {self.q:.4f}, p-val {format_p_with_sign(self.q_pvalue)}"
        )
        lines.append("")
        test = self.anova(self.btt)
        lines += test.summary().split("\n")
        lines.append("")
        t_based = self.test != "z"
        notes = [] if self.measure is None else [_transf.scale(self.measure).name]
        if t_based:
            notes.append(f"df = {self.df:g}; test = {self.test!r}")
        note = f" ({'; '.join(notes)})" if notes else ""
        lines += [f"Model Results{note}:", ""]
        width = max(8, *(len(n) for n in self.names))
        stat = "tval" if t_based else "zval"
        rows = [
            [
                *(f"{x[j]:.4f}" for x in (self.coef, self.se, self.statistic)),
                format_p(float(self.pvalue[j])),
                *(f"{x[j]:.4f}" for x in (self.ci_lower, self.ci_upper)),
            ]
            for j in range(len(self.names))
        ]
        lines += table_lines(
            ["estimate", "se", stat, "pval", "ci.lb", "ci.ub"],
            rows,
            [10, 9, 9, 9, 9, 9],
            stub=[f"{n:{width}s}" for n in self.names],
        )
        if self.dropped:
            lines += [
                "",
                f"Dropped as linear combinations of earlier moderators: {list(self.dropped)}",
            ]
        omitted = self._omitted_lines()
        if omitted:
            lines += ["", *omitted]
        return "\n".join(lines)


def _btt(btt: Any, names: Sequence[str]) -> list[int]:
    """Coefficient indices (0-based) from indices or names (one or several)."""
    items = [btt] if isinstance(btt, str | int | np.integer) else list(btt)
    if not items:
        msg = "`btt` must name at least one coefficient"
        raise ValueError(msg)
    idx: list[int] = []
    for item in items:
        if isinstance(item, str):
            if item not in names:
                msg = f"`btt`: no coefficient {item!r}; the coefficients are {list(names)}"
                raise ValueError(msg)
            idx.append(list(names).index(item))
        elif isinstance(item, int | np.integer) and not isinstance(item, bool):
            if not 0 <= int(item) < len(names):
                msg = f"`btt` indices are 0-based in [0, {len(names)}), got {item!r}"
                raise ValueError(msg)
            idx.append(int(item))
        else:
            msg = f"`btt` must hold coefficient indices or names, got {item!r}"
            raise TypeError(msg)
    if len(set(idx)) != len(idx):
        msg = f"`btt` names a coefficient twice: {items!r}"
        raise ValueError(msg)
    return sorted(idx)


def _column(x: Any, data: Any, name: str) -> Any:
    """`x` itself, or the column `x` of `data` when `x` is a string."""
    if isinstance(x, str):
        if data is None:
            msg = f"`{name}` is the column name {x!r}, so `data` is required"
            raise TypeError(msg)
        try:
            return data[x]
        except (KeyError, IndexError, TypeError):
            msg = f"`{name}`: `data` has no column {x!r}"
            raise ValueError(msg) from None
    return x


def metareg(
    yi: ArrayLike | EffectSizes | str,
    vi: ArrayLike | str | None = None,
    *,
    mods: Any,
    sei: ArrayLike | str | None = None,
    data: Any = None,
    intercept: bool = True,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    btt: Any = None,
    tau2: float | None = None,
    nan_policy: str = "omit",
    control: dict[str, Any] | None = None,
    labels: Any = None,
    measure: str | None = None,
) -> MetaRegResult:
    """Mixed-effects meta-regression (metafor's ``rma(yi, vi, mods=...)``) [1]_ [5]_.

    Parameters
    ----------
    yi : array_like, EffectSizes or str
        Effect sizes, the result of :func:`ketameta.escalc` (then leave `vi` out), or the
        name of a column of `data`.
    vi : array_like or str, optional
        Sampling variances (or a column name of `data`).
    mods : array_like, mapping, DataFrame, list of column names or formula string
        The moderators: an array ``(k,)`` or ``(k, q)``; a mapping or DataFrame of
        columns (strings, booleans and categoricals are factors with treatment contrasts,
        the first level the reference, as R codes them); column names of `data`; or a
        formula such as ``"~ ablat + C(alloc)"`` evaluated on `data` (needs the
        ``formula`` extra: ``pip install 'ketameta[formula]'``). Coefficients get the
        names metafor prints. A study with a missing moderator is omitted (with an
        :class:`~ketameta.OmittedStudiesWarning` naming it); a moderator that is a linear
        combination of earlier ones is dropped with a
        :class:`~ketameta.CollinearityWarning` (as metafor).
    sei : array_like or str, optional
        Standard errors instead of variances (keyword only).
    data : DataFrame or mapping, optional
        Where column names and formulas are looked up.
    intercept : bool
        Add an intercept (for array, mapping and DataFrame `mods`; a formula decides
        itself: ``"~ 0 + x"`` has none).
    method, test, level, tau2, nan_policy, control
        As in :func:`ketameta.pool`: every τ² estimator (residual τ² here; the
        definitions generalised to the design, see Notes) and ``test`` ``"z"``, ``"t"``,
        ``"knha"`` (Knapp-Hartung [3]_) or ``"adhoc"``.
    btt : int, str or sequence, optional
        The coefficients of the omnibus test (0-based indices or names); default all but
        the intercept.
    labels : sequence of str or str, optional
        A label per input study (or a column of `data`), as in :func:`ketameta.pool`.
    measure : str, optional
        What raw `yi` are (an :func:`~ketameta.escalc` measure code), as in
        :func:`ketameta.pool`.

    Returns
    -------
    MetaRegResult

    Raises
    ------
    ValueError
        More coefficients than the studies allow (the equal-effects model needs at most
        ``k``, the others fewer than ``k``), a moderator with one level, inputs of the
        wrong length.

    Notes
    -----
    With ``W = diag(1/(v_i + τ̂²))``: ``b = (XᵀWX)⁻¹XᵀWy``, ``Var(b) = (XᵀWX)⁻¹`` (times
    ``s² = Σw(y - Xb)²/(k - p)`` for Knapp-Hartung [3]_). The residual heterogeneity test
    is ``Q_E = yᵀP₀y`` on ``k - p`` df, ``P₀`` the residual projector with weights
    ``1/v``; the omnibus test ``QM = b_Sᵀ Var(b_S)⁻¹ b_S`` is χ²(m) for ``test="z"`` and
    ``QM/m`` ~ F(m, k - p) otherwise. τ² estimators [2]_: DL ``(Q_E - (k - p))/tr P₀``,
    HE from the unweighted least-squares residuals, HS ``(Q_E - k)/Σ(1/v)``, SJ one step
    from ``Σ(y - ȳ)²/k``, PM/EB the root of ``yᵀPy = k - p``, ML and REML the roots of the
    (restricted) likelihood scores. Residual I² and H² use ``ṽ = (k - p)/tr P₀``. The
    pseudo-R² is ``max(0, (τ̂²_0 - τ̂²)/τ̂²_0)`` with ``τ̂²_0`` from the model with the
    intercept only and the same estimator [1]_ [4]_ (for the equal-effects model, the
    adjusted R² of the weighted regression, as metafor).

    Where metafor differs: for a model *without* an intercept whose columns do not span
    the constant (e.g. ``"~ ablat - 1"``), metafor 3.8 computes Q_E and τ̂² from the
    mean-centred effects, which is not the model it fits; ketameta uses the model's own
    residuals. metafor refuses designs whose ``XᵀX`` has an eigenvalue below 1e-7 (e.g.
    a year varying by a few days around 2000); ketameta fits them in an orthogonalised
    basis.

    References
    ----------
    .. [1] Raudenbush (2009), in The Handbook of Research Synthesis and Meta-Analysis.
    .. [2] Viechtbauer (2005), J Educ Behav Stat 30(3):261-293.
    .. [3] Knapp & Hartung (2003), Stat Med 22(17):2693-2710.
    .. [4] Thompson & Higgins (2002), Stat Med 21(11):1559-1573.
    .. [5] Viechtbauer (2010), J Stat Softw 36(3):1-48.

    Examples
    --------
    The BCG vaccine trials: is the effect related to the absolute latitude of the study?

    >>> import ketameta
    >>> dat = ketameta.datasets.bcg()
    >>> es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> res = ketameta.metareg(es, mods=dat["ablat"])     # metafor: rma(yi, vi, mods = ~ ablat)
    >>> [round(float(b), 4) for b in res.coef], round(res.tau2, 4), round(res.r2, 2)
    ([0.2515, -0.0291], 0.0763, 75.63)
    """
    method, test, lv, tau2_fixed, nan_policy, ctl = validate_options(
        method, test, level, tau2, nan_policy, control
    )
    yi = _column(yi, data, "yi")
    vi = _column(vi, data, "vi")
    sei = _column(sei, data, "sei")
    n_input = _n_studies(yi, vi, sei)
    mm = model_matrix(mods, data=data, intercept=intercept, k=n_input)
    missing = None
    if mm.missing:
        missing = np.zeros(n_input, dtype=bool)
        missing[list(mm.missing)] = True
    prep = prepare_studies(
        yi,
        vi,
        sei,
        nan_policy=nan_policy,
        stacklevel=3,
        also_missing=missing,
        labels=labels,
        measure=measure,
        data=data,
    )
    y, v, kept = prep.yi, prep.vi, prep.kept
    options: dict[str, Any] = {
        "method": method,
        "level": lv,
        "tau2_fixed": tau2_fixed,
        "control": ctl,
    }
    fitted = _fit_full_rank(mm, y, v, prep.omitted, kept, btt, test, options)
    dropped: tuple[str, ...] = ()
    if fitted is None:  # (a redundant column, or an error to report as the general path does)
        mm, dropped = mm.reduce_and_warn(kept, "studies")
        x = np.ascontiguousarray(mm.x[kept])
        k, p = x.shape
        check_coefficients(p, k, equal_effects=method == "EE")
        idx = _btt(btt, mm.names) if btt is not None else None
        if test != "z" and k <= p:
            warnings.warn(
                f"no residual degrees of freedom (k = {k}, p = {p}): test={test!r} is "
                "replaced by 'z'",
                SmallSampleWarning,
                stacklevel=2,
            )
            test = "z"
        out = _engine.fit(
            y, v, x, padded=False, intercept=mm.intercept, test=test, btt=idx, **options
        )
    else:
        x, idx, out = fitted
    k, p = x.shape
    btt_used = idx if idx is not None else default_btt(p, mm.intercept)
    # every array below is fresh (the engine's lists and weights, the studies copied by
    # prepare_studies, the design rows made by the model matrix): the result takes them
    # over without the converters' copies
    return MetaRegResult(
        coef=_owned(np.array(out["coef"], dtype=np.float64)),
        se=_owned(np.array(out["se"], dtype=np.float64)),
        statistic=_owned(np.array(out["statistic"], dtype=np.float64)),
        pvalue=_owned(np.array(out["pvalue"], dtype=np.float64)),
        ci_lower=_owned(np.array(out["ci_lower"], dtype=np.float64)),
        ci_upper=_owned(np.array(out["ci_upper"], dtype=np.float64)),
        names=mm.names,
        vcov=_owned(np.array(out["vcov"], dtype=np.float64)),
        X=_owned(x),
        intercept=mm.intercept,
        btt=tuple(btt_used),
        qm=float(out["qm"]),
        qm_df=len(btt_used),
        qm_pvalue=float(out["qm_pvalue"]),
        dropped=dropped,
        model_matrix=mm,
        df=float(out["df"]),
        tau2=float(out["tau2"]),
        tau2_se=float(out["tau2_se"]),
        tau=float(out["tau"]),
        i2=float(out["i2"]),
        h2=float(out["h2"]),
        q=float(out["q"]),
        q_df=int(out["q_df"]),
        q_pvalue=float(out["q_pvalue"]),
        k=k,
        weights=_owned(out["weights"]),
        yi=_owned(y),
        vi=_owned(v),
        method=method,
        test=test,
        level=lv,
        tau2_fixed=tau2_fixed is not None,
        converged=bool(out["converged"]),
        iterations=int(out["iterations"]),
        v_typical=float(out["v_typical"]),
        control=dict(control or {}),
        **prep.fields(),
    )


def _owned(x: Any) -> Any:
    """A fresh array made here or by the engine, taken over by the result without a copy
    (see :class:`ketameta._results.Owned`)."""
    return Owned(x)


def _n_studies(yi: Any, vi: Any, sei: Any) -> int:
    """The number of input studies (validating the shapes and types of the inputs, as
    :func:`~ketameta.pooling.prepare_studies` does again: the usual case, two 1-D float64
    arrays of one length, is answered without the conversion)."""
    if (
        sei is None
        and type(yi) is np.ndarray
        and type(vi) is np.ndarray
        and yi.dtype == np.float64
        and vi.dtype == np.float64
        and yi.ndim == 1
        and yi.shape == vi.shape
    ):
        return int(yi.shape[0])
    return int(_resolve_inputs(yi, vi, sei).shape[1])


def _fit_full_rank(
    mm: ModelMatrix,
    y: FloatArray,
    v: FloatArray,
    omitted: tuple[int, ...],
    kept: Any,
    btt: Any,
    test: str,
    options: dict[str, Any],
) -> tuple[FloatArray, list[int] | None, dict[str, Any]] | None:
    """The fit of a design with an intercept and fewer columns than studies, when no
    column is redundant: ``(X, btt indices, engine output)``; None otherwise (then the
    general path reduces the design, warns and fits).

    metafor's redundancy rule (:func:`ketameta._modelmatrix.drop_redundant`: a column
    whose part orthogonal to the earlier columns is below ``1e-7`` of its norm) is the
    engine's own: its Gram-Schmidt basis of the design (:class:`ketameta._engine.Design`)
    applies the same test to every column after the intercept and raises ``LinAlgError``
    when one fails. So a design the engine orthogonalises has no redundant column, and
    the basis, built once, also answers the redundancy check (which costs as much as the
    basis itself). The intercept (a column of ones) is never redundant.
    """
    k = y.shape[0]
    if not mm.intercept or mm.p >= k:
        return None
    names = mm.names
    try:
        idx = _btt(btt, names) if btt is not None else None
    except (TypeError, ValueError):
        return None  # (raised by the general path, after its warnings)
    x = mm.x if not omitted else mm.x[kept]
    x = np.ascontiguousarray(x)
    try:
        out = _engine.fit(y, v, x, padded=False, intercept=True, test=test, btt=idx, **options)
    except np.linalg.LinAlgError:
        return None
    return x, idx, out


def _pseudo_r2(res: MetaRegResult) -> float:
    """The pseudo-R² (percent) of `res` against the intercept-only model with the same
    estimator on the same studies (Raudenbush 2009); for the equal-effects model the
    adjusted R² of the weighted regression, ``max(0, 1 - (Q_E/(k - p))/(Q/(k - 1)))`` (as
    metafor); NaN without an intercept, without moderators or with a fixed τ²."""
    k, p = res.k, res.p
    if not res.intercept or p < 2 or res.tau2_fixed:
        return math.nan
    control = {**_engine.DEFAULT_CONTROL, **res.control}
    null = _engine.fit(
        res.yi,
        res.vi,
        padded=False,
        method=res.method,
        test="z",
        level=0.95,
        control=control,
        btt=(),
    )
    if res.method == "EE":
        q0 = float(null["q"])
        if k <= p or q0 <= 0.0:
            return math.nan
        return 100.0 * max(0.0, 1.0 - (res.q / (k - p)) / (q0 / (k - 1)))
    tau2_0 = float(null["tau2"])
    if tau2_0 <= 0.0:
        return 0.0
    return 100.0 * max(0.0, (tau2_0 - res.tau2) / tau2_0)


# -- likelihoods and the likelihood-ratio test of two fits ----------------------------------

_LIKELIHOOD_METHODS = ("ML", "REML", "EE")


def _design_of(fit: ModelFit) -> tuple[FloatArray, FloatArray]:
    """The design and coefficients of a fit (a pool result: the intercept)."""
    if isinstance(fit, MetaRegResult):
        return fit.X, fit.coef
    estimate = float(getattr(fit, "estimate"))  # noqa: B009 - a PoolResult
    return np.ones((fit.k, 1)), np.array([estimate])


def n_parameters(fit: ModelFit) -> int:
    """Coefficients plus τ² when it is estimated (metafor's ``parms``)."""
    p = int(_design_of(fit)[0].shape[1])
    return p if fit.method == "EE" or fit.tau2_fixed else p + 1


def fit_statistics(fit: ModelFit) -> dict[str, dict[str, float]]:
    """Log-likelihood, deviance, AIC, BIC and AICc of a pool or metareg fit, for ML and
    REML (see :meth:`MetaRegResult.fit_statistics`)."""
    X, coef = _design_of(fit)
    k, p = fit.k, X.shape[1]
    w = 1.0 / (fit.vi + fit.tau2)
    resid = fit.yi - X @ coef
    rss = float(np.sum(w * resid**2))
    logv = float(np.sum(np.log(fit.vi + fit.tau2)))
    _, logdet_xtx = np.linalg.slogdet(X.T @ X)
    _, logdet_xwx = np.linalg.slogdet(X.T @ (X * w[:, None]))
    ll = {
        "ML": -0.5 * (k * math.log(2 * math.pi) + logv + rss),
        "REML": -0.5 * ((k - p) * math.log(2 * math.pi) - logdet_xtx + logv + logdet_xwx + rss),
    }
    saturated = -0.5 * float(np.sum(np.log(2 * math.pi * fit.vi)))
    q = n_parameters(fit)
    out: dict[str, dict[str, float]] = {}
    for kind, n in (("ML", k), ("REML", k - p)):
        dev = -2.0 * (ll[kind] - saturated) if kind == "ML" else -2.0 * ll[kind]
        big = max(n, q + 2)
        out[kind] = {
            "ll": ll[kind],
            "dev": dev,
            "AIC": -2.0 * ll[kind] + 2 * q,
            "BIC": -2.0 * ll[kind] + q * math.log(n),
            "AICc": -2.0 * ll[kind] + 2 * q * big / (big - q - 1),
        }
    return out


def wald_test(fit: Any, btt: Any) -> WaldTest:
    """The Wald test that the coefficients `btt` (indices or names) of `fit` (a
    :class:`MetaRegResult` or an ``MVResult``: ``coef``, ``vcov``, ``names``, ``df``,
    ``test``) are all 0 (metafor's ``anova(res, btt=)``: χ², or F for ``test="t"``)."""
    idx = _btt(btt, fit.names)
    out = moderator_test(list(fit.coef), fit.vcov.tolist(), idx, fit.df, fit.test)
    return WaldTest(
        coefficients=[fit.names[i] for i in idx],
        btt=idx,
        statistic=float(out["qm"]),
        df=len(idx),
        df_residual=fit.df,
        pvalue=float(out["qm_pvalue"]),
        distribution="chi2" if fit.test == "z" else "F",
    )


def likelihood_ratio_test(a: object, b: object) -> Any:
    """The likelihood-ratio test of two nested :func:`pool` / :func:`metareg` fits
    (metafor's ``anova(full, reduced)`` of two ``rma.uni`` models).

    ``LRT = 2 (ll_f - ll_r)`` ~ χ² with ``q_f - q_r`` degrees of freedom, ``q`` the
    coefficients plus τ² when estimated; ``ll`` the restricted log-likelihood for REML,
    the ML one for ML and EE (see :meth:`MetaRegResult.fit_statistics`). The model with
    more parameters is the full one, whichever order they are given in.

    Rules (metafor's): both fits use the same effects (the same `yi` and `vi`, in the same
    order); they must have different numbers of parameters; both are likelihood fits of
    the same kind: ML (or EE, the ML fit with τ² = 0) or REML, not one of each (the
    moment estimators DL, HE, ... have no likelihood to compare: refit with
    ``method="ML"``); for REML the fixed effects must be the same (restricted likelihoods
    of different designs are not comparable; metafor warns, ketameta refuses: compare
    moderators with ``method="ML"``).

    ``R²`` is the percentage of the reduced model's τ² accounted for by the full model,
    ``max(0, 100 (τ²_r - τ²_f) / τ²_r)`` (0 when ``τ²_r = 0``); for two equal-effects
    fits, the reduction of the residual mean square,
    ``max(0, 100 (1 - (Q_E,f / (k - p_f)) / (Q_E,r / (k - p_r))))`` (both as metafor 3.8
    computes it; Raudenbush 2009, see the module references).

    Returns
    -------
    LikelihoodRatioTest
        Full model first in each pair of fields.
    """
    from .multilevel import _same_column_space, likelihood_ratio

    for fit in (a, b):
        if not isinstance(fit, ModelFit):
            msg = (
                "a likelihood-ratio test compares two pool or metareg fits, got "
                f"{type(fit).__name__}"
            )
            raise TypeError(msg)
        if fit.method not in _LIKELIHOOD_METHODS:
            msg = (
                f"a likelihood-ratio test needs likelihood fits (method='ML' or 'REML'); "
                f"one fit uses method={fit.method!r}: refit it with method='ML'"
            )
            raise ValueError(msg)
    assert isinstance(a, ModelFit)  # for mypy: checked above
    assert isinstance(b, ModelFit)
    if a.k != b.k or not (np.array_equal(a.yi, b.yi) and np.array_equal(a.vi, b.vi)):
        msg = "the two fits must use the same effects (the same `yi` and `vi`)"
        raise ValueError(msg)
    kind_a = "REML" if a.method == "REML" else "ML"
    kind_b = "REML" if b.method == "REML" else "ML"
    if kind_a != kind_b:
        msg = (
            f"the two fits use different methods ({a.method} and {b.method}): an ML fit "
            "and a REML fit are not comparable, refit one of them"
        )
        raise ValueError(msg)
    qa, qb = n_parameters(a), n_parameters(b)
    if qa == qb:
        msg = (
            f"the two fits have the same number of parameters ({qa}): a likelihood-ratio "
            "test compares nested models"
        )
        raise ValueError(msg)
    full, reduced = (a, b) if qa > qb else (b, a)
    xf, xr = _design_of(full)[0], _design_of(reduced)[0]
    if kind_a == "REML" and not _same_column_space(xf, xr):
        msg = (
            "REML likelihoods of models with different fixed effects are not comparable; "
            "compare moderators with method='ML'"
        )
        raise ValueError(msg)
    fs, rs = fit_statistics(full)[kind_a], fit_statistics(reduced)[kind_a]
    if full.method == "EE" and reduced.method == "EE":
        ms_f = full.q / (full.k - xf.shape[1])
        ms_r = reduced.q / (reduced.k - xr.shape[1])
        r2 = 100.0 * max(0.0, 1.0 - ms_f / ms_r) if ms_r > 0 else math.nan
        tau2 = (math.nan, math.nan)
    else:
        tf, tr = full.tau2, reduced.tau2
        r2 = 100.0 * max(0.0, (tr - tf) / tr) if tr > 0 else 0.0
        tau2 = (tf, tr)
    return likelihood_ratio(
        (max(qa, qb), min(qa, qb)), (fs, rs), (full.q, reduced.q), kind_a, tau2=tau2, r2=r2
    )
