"""Cluster-robust inference for dependent effect sizes: :func:`robust` (metafor's
``robust()``, clubSandwich's ``vcovCR`` / ``coef_test`` / ``Wald_test``) and :func:`rve`
(robumeta's ``robu``).

Several effects per study (outcomes, time points, comparisons) or studies nested in labs
are not independent. A model that pools them as independent understates the uncertainty;
cluster-robust (sandwich) inference keeps the model's estimates but replaces their
covariance by one that is valid whatever the dependence within clusters, with small-sample
adjustments (CR2 and Satterthwaite degrees of freedom) that keep tests honest with few
clusters.

References
----------
.. [1] Hedges, L. V., Tipton, E., & Johnson, M. C. (2010). Robust variance estimation in
   meta-regression with dependent effect size estimates. Research Synthesis Methods, 1(1),
   39-65. https://doi.org/10.1002/jrsm.5
.. [2] Tipton, E. (2015). Small sample adjustments for robust variance estimation with
   meta-regression. Psychological Methods, 20(3), 375-393. https://doi.org/10.1037/met0000011
.. [3] Tipton, E., & Pustejovsky, J. E. (2015). Small-sample adjustments for tests of
   moderators and model fit using robust variance estimation in meta-regression. Journal of
   Educational and Behavioral Statistics, 40(6), 604-634.
   https://doi.org/10.3102/1076998615606099
.. [4] Pustejovsky, J. E., & Tipton, E. (2018). Small-sample methods for cluster-robust
   variance estimation and hypothesis testing in fixed effects models. Journal of Business &
   Economic Statistics, 36(4), 672-683. https://doi.org/10.1080/07350015.2016.1247004
.. [5] Bell, R. M., & McCaffrey, D. F. (2002). Bias reduction in standard errors for linear
   regression with multi-stage samples. Survey Methodology, 28(2), 169-181.
.. [6] Fisher, Z., & Tipton, E. (2015). robumeta: An R-package for robust variance
   estimation in meta-analysis. arXiv:1503.02220. https://doi.org/10.48550/arXiv.1503.02220
"""

from __future__ import annotations

import math
import statistics
import textwrap
import warnings
from typing import Any, Protocol, cast, runtime_checkable

import attrs
import numpy as np

from ._engine import robust as _robust
from ._engine.inference import critical_value, f_sf, two_sided_p
from ._modelmatrix import INTERCEPT, check_coefficients, model_matrix
from ._results import (
    RecordResult,
    array_field,
    coefficient_frame,
    format_p,
    format_p_with_sign,
    import_pandas,
    plain,
    table_lines,
)
from ._typing import ArrayLike, FloatArray
from ._validation import (
    as_float,
    as_number,
    check_choice,
    check_length,
    check_level,
    ints,
    name_studies,
    strings,
)
from ._warnings import CollinearityWarning, DegenerateDataWarning
from .effect_sizes import EffectSizes
from .metareg import MetaRegResult, _btt, _column
from .pooling import PoolResult, _resolve_inputs, prepare_studies
from .subgroups import _names as _level_names
from .subgroups import group_codes

__all__ = [
    "ADJUST",
    "DF_METHODS",
    "ROBUST_METHODS",
    "RVEResult",
    "RobustModel",
    "RobustResult",
    "RobustWaldTest",
    "SaddlepointTest",
    "robust",
    "rve",
]

#: the variance estimators: the form of the adjustment matrices A_j
ROBUST_METHODS = ("CR2", "CR1", "CR0", "CR3")
#: CR1's small-sample factors by name (``True`` is metafor's ``"m/(m-p)"``)
ADJUST = ("m/(m-p)", "m/(m-1)", "Stata")
#: degrees of freedom of the t and F tests
DF_METHODS = ("satterthwaite", "residual")
#: robumeta's working-model weights
MODEL_WEIGHTS = ("CORR", "HIER")

IntArray = np.ndarray[Any, np.dtype[np.intp]]


@runtime_checkable
class RobustModel(Protocol):
    """What :func:`robust` needs of a fitted model it does not know (e.g. a multilevel
    ``MVResult``): the design, the effects, the estimates, their model-based covariance
    and the fitted marginal covariance ``M`` of the effects (``V + ZGZᵀ``), whose inverse
    are the weights of the fit (``coef = (XᵀM⁻¹X)⁻¹XᵀM⁻¹yi``).

    Optional attributes, used when present: ``names`` (coefficient names), ``btt``
    (coefficients of the omnibus test, 0-based; none for an intercept-only model), ``level``,
    ``omitted`` (input indices of studies left out of the fit, so that `cluster` may be given
    for the input) and ``summary()`` (its first line names the model in the robust summary).
    """

    X: Any
    yi: Any
    coef: Any
    vcov: Any

    def marginal_covariance(self) -> Any:
        """The fitted (k, k) marginal covariance of `yi` (or its (k,) diagonal)."""


@attrs.frozen(kw_only=True)
class RobustWaldTest(RecordResult):
    """A cluster-robust Wald test that ``C β = 0`` for q contrast rows (coefficients
    `btt`, or the rows of `constraints`).

    ``q_statistic`` is ``Q = (Cb)ᵀ (C V Cᵀ)⁻¹ (Cb)`` with the robust covariance V.
    ``test="HTZ"`` (Satterthwaite degrees of freedom): ``statistic = δ Q/q`` ~ F(q, ν - q +
    1) with ``δ = (ν - q + 1)/ν`` and Zhang's ν (Tipton & Pustejovsky 2015; clubSandwich's
    ``Wald_test(test="HTZ")``); ``test="F"`` (residual df): ``statistic = Q/q`` ~ F(q,
    m - p) (metafor's ``robust()``).
    """

    coefficients: tuple[str, ...] = attrs.field(converter=strings)
    btt: tuple[int, ...] = attrs.field(converter=ints)
    constraints: FloatArray = array_field()
    q_statistic: float
    statistic: float
    delta: float
    df_num: int
    df_denom: float
    pvalue: float
    test: str

    def summary(self) -> str:
        """As metafor prints the omnibus test of ``robust()``."""
        if self.btt:
            which = ", ".join(str(i + 1) for i in self.btt)
            plural = "s" if len(self.btt) > 1 else ""
            head = f"Test of Moderators (coefficient{plural} {which}):"
        else:
            head = f"Wald test of {self.df_num} linear constraint{'s' * (self.df_num > 1)}:"
        stat = (
            f"F(df1 = {self.df_num}, df2 = {_df_text(self.df_denom)}) = {self.statistic:.4f}, "
            f"p-val {format_p_with_sign(self.pvalue)}"
        )
        return f"{head}\n{stat}"


@attrs.frozen(kw_only=True)
class SaddlepointTest(RecordResult):
    """Cluster-robust t tests of single coefficients with saddlepoint p-values
    (clubSandwich's ``coef_test(test = "saddlepoint")``; :meth:`RobustResult.saddlepoint`).

    ``statistic`` are the robust t statistics, ``saddlepoint`` the saddlepoints ŝ of the
    approximation and ``pvalue`` the two-sided p-values ``P(T² > t²)`` under the working
    model (Bell & McCaffrey 2002; Lugannani & Rice 1980).
    """

    names: tuple[str, ...] = attrs.field(converter=strings)
    coef: FloatArray = array_field()
    se: FloatArray = array_field()
    statistic: FloatArray = array_field()
    saddlepoint: FloatArray = array_field()
    pvalue: FloatArray = array_field()
    method: str

    def summary(self) -> str:
        """The coefficient table with the saddlepoint and its p-value (as clubSandwich)."""
        width = max(8, *(len(n) for n in self.names))
        lines = [
            f"{'':{width}s} {'estimate':>9s} {'se':>8s} {'tval':>8s} {'s.p.':>8s} {'pval':>8s}"
        ]
        for j, name in enumerate(self.names):
            lines.append(
                f"{name:{width}s} {self.coef[j]:9.4f} {self.se[j]:8.4f} "
                f"{self.statistic[j]:8.4f} {self.saddlepoint[j]:8.4f} "
                f"{format_p(float(self.pvalue[j])):>8s}"
            )
        lines.append(f"(var-cov estimator: {self.method}; p-values: saddlepoint approximation)")
        return "\n".join(lines)

    def to_frame(self) -> Any:
        """The table as a pandas DataFrame indexed by coefficient name."""
        pd = import_pandas()
        columns = {
            "estimate": self.coef,
            "se": self.se,
            "statistic": self.statistic,
            "saddlepoint": self.saddlepoint,
            "pvalue": self.pvalue,
        }
        return pd.DataFrame(columns, index=pd.Index(self.names, name="coefficient"))


def _df_text(df: float) -> str:
    """Degrees of freedom as metafor prints them: up to two decimals, no trailing zeros."""
    if not math.isfinite(df):
        return "NA" if math.isnan(df) else "inf"
    return f"{round(df, 2):g}"


@attrs.frozen(kw_only=True, repr=False)
class RobustResult:
    """The result of :func:`robust`: the fitted model's coefficients with cluster-robust
    standard errors, tests and confidence intervals.

    Attributes
    ----------
    coef, se, statistic, df, pvalue, ci_lower, ci_upper : ndarray, shape (p,)
        Estimates (the model's), robust standard errors, t statistics, their degrees of
        freedom (Satterthwaite, or ``m - p``), two-sided p-values and confidence limits.
    names : tuple of str
        Coefficient names.
    vcov : ndarray, shape (p, p)
        The robust covariance matrix of the coefficients.
    se_model : ndarray, shape (p,)
        The model-based standard errors of the fit, for comparison.
    method : str
        ``"CR0"``, ``"CR1"``, ``"CR2"`` or ``"CR3"``.
    adjust : str or None
        CR1's small-sample factor (``"m/(m-p)"``, ``"m/(m-1)"``, ``"Stata"``); None for
        the other estimators.
    factor : float
        The factor applied to the sandwich (1 unless CR1).
    df_method : str
        ``"satterthwaite"`` or ``"residual"``.
    level : float
        Confidence level.
    k, n_clusters : int
        Numbers of effects and clusters.
    cluster_labels : tuple of str
        The clusters (as R prints factor levels), in sorted order.
    cluster_sizes : tuple of int
        The number of effects in each cluster.
    btt : tuple of int
        Coefficients of the omnibus test (0-based; empty: none).
    omnibus : RobustWaldTest or None
        The robust test that the coefficients `btt` are all 0.
    model : str
        What was fitted (the first line of the model's summary).
    target : str
        The working model of the CR2 adjustment and the degrees of freedom: ``"model"``
        (the model's marginal covariance), ``"user"`` (`target` given to :func:`robust`)
        or ``"robumeta"`` (:func:`rve` with `userweights`).
    """

    coef: FloatArray = array_field()
    se: FloatArray = array_field()
    statistic: FloatArray = array_field()
    df: FloatArray = array_field()
    pvalue: FloatArray = array_field()
    ci_lower: FloatArray = array_field()
    ci_upper: FloatArray = array_field()
    names: tuple[str, ...] = attrs.field(converter=strings)
    vcov: FloatArray = array_field()
    se_model: FloatArray = array_field()
    method: str
    adjust: str | None
    factor: float
    df_method: str
    level: float
    k: int
    n_clusters: int
    cluster_labels: tuple[str, ...] = attrs.field(converter=strings)
    cluster_sizes: tuple[int, ...] = attrs.field(converter=ints)
    btt: tuple[int, ...] = attrs.field(converter=ints)
    omnibus: RobustWaldTest | None
    model: str
    target: str = "model"
    pieces: _robust.ClusterPieces = attrs.field(repr=False)

    @property
    def p(self) -> int:
        """Number of coefficients."""
        return int(self.coef.shape[0])

    def wald_test(
        self, btt: Any = None, *, constraints: ArrayLike | None = None
    ) -> RobustWaldTest:
        """The cluster-robust test that the coefficients `btt` (indices, 0-based, or names)
        are all 0, or that ``constraints @ coef = 0`` for a (q, p) matrix of linear
        constraints: HTZ (clubSandwich's ``Wald_test``) with Satterthwaite degrees of
        freedom, the F test with ``m - p`` denominator degrees of freedom with the residual
        method (metafor's ``robust()``); see :class:`RobustWaldTest`."""
        if (btt is None) == (constraints is None):
            msg = "give exactly one of `btt` (coefficients) or `constraints` (a matrix)"
            raise TypeError(msg)
        if btt is not None:
            idx = _btt(btt, self.names)
            c = np.eye(self.p)[idx]
            names = tuple(self.names[i] for i in idx)
        else:
            c = np.array(np.asarray(constraints, dtype=np.float64), ndmin=2)
            if c.ndim != 2 or c.shape[1] != self.p or c.shape[0] == 0:
                msg = (
                    f"`constraints` must be a (q, {self.p}) matrix (one row per constraint), "
                    f"got shape {c.shape}"
                )
                raise ValueError(msg)
            if not np.all(np.isfinite(c)):
                msg = "`constraints` must be finite"
                raise ValueError(msg)
            idx, names = [], tuple(f"constraint {i + 1}" for i in range(c.shape[0]))
        return _wald(self, c, idx, names)

    def saddlepoint(self) -> SaddlepointTest:
        """The t test of each coefficient with a saddlepoint p-value instead of the
        Satterthwaite (or residual) t reference (clubSandwich's ``coef_test(test =
        "saddlepoint")``; Bell & McCaffrey 2002 [1]_; McCaffrey & Bell 2006 [2]_).

        Notes
        -----
        Under the working model the robust variance of a coefficient is ``Σ_i λ_i χ²_1``
        with λ the eigenvalues of the covariance ``P`` of its cluster terms (as for the
        Satterthwaite degrees of freedom), independent of the estimate. So ``P(T² > t²) =
        P(X > 0)`` with ``X = Σ_i g_i χ²_1``, ``g = (1, -t² λ/Σλ)``, whose distribution
        the Lugannani-Rice formula approximates from the cumulant generating function
        ``K(s) = -½ Σ log(1 - 2 g_i s)`` at its saddlepoint ``K'(ŝ) = 0`` [3]_ [4]_:
        ``1 - Φ(w) + φ(w)(1/u - 1/w)``, ``w = sign(ŝ) √(-2K(ŝ))``, ``u = ŝ √K''(ŝ)``. It
        uses the whole distribution of the variance estimate, where Satterthwaite's
        approximation matches its first two moments; the two usually agree closely.
        The saddlepoint is solved to machine precision (clubSandwich uses ``uniroot``'s
        default tolerance, about 1e-4, so its p-values can differ in the fifth digit).

        References
        ----------
        .. [1] Bell & McCaffrey (2002), Survey Methodology 28(2):169-181.
        .. [2] McCaffrey & Bell (2006), Stat Med 25(23):4081-4098.
           https://doi.org/10.1002/sim.2502
        .. [3] Lugannani & Rice (1980), Adv Appl Probab 12(2):475-490.
           https://doi.org/10.2307/1426607
        .. [4] Kuonen (1999), Biometrika 86(4):929-935.
           https://doi.org/10.1093/biomet/86.4.929
        """
        sp = np.empty(self.p)
        pv = np.empty(self.p)
        eye = np.eye(self.p)
        for j in range(self.p):
            lam = np.asarray(
                np.linalg.eigvalsh(_robust.contrast_covariance(self.pieces, eye[j])),
                dtype=np.float64,
            )
            sp[j], pv[j] = _robust.saddlepoint_test(float(self.statistic[j]), lam)
        return SaddlepointTest(
            names=self.names,
            coef=self.coef,
            se=self.se,
            statistic=self.statistic,
            saddlepoint=sp,
            pvalue=pv,
            method=self.method,
        )

    # -- output ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable; NaN/inf become ``None``),
        without the internal cluster-level pieces."""
        d = {f.name: getattr(self, f.name) for f in attrs.fields(type(self)) if f.name != "pieces"}
        return plain(d)  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """The coefficient table as a pandas DataFrame indexed by coefficient name."""
        return coefficient_frame(self, df=True)

    def __repr__(self) -> str:
        coefs = ", ".join(
            f"{n}={b:.4g} (se {s:.3g})"
            for n, b, s in zip(self.names, self.coef, self.se, strict=True)
        )
        return (
            f"{type(self).__name__}(method={self.method!r}, k={self.k}, "
            f"clusters={self.n_clusters}, {coefs})"
        )

    def _cluster_lines(self) -> list[str]:
        sizes = self.cluster_sizes
        return [
            f"Number of estimates:   {self.k}",
            f"Number of clusters:    {self.n_clusters}",
            f"Estimates per cluster: {min(sizes)}-{max(sizes)} (mean: "
            f"{self.k / self.n_clusters:.2f}, median: {statistics.median(sizes):g})",
        ]

    def _table_lines(self) -> list[str]:
        width = max(8, *(len(n) for n in self.names))
        rows = [
            [
                *(f"{x[j]:.4f}" for x in (self.coef, self.se, self.statistic)),
                _df_text(float(self.df[j])),
                format_p(float(self.pvalue[j])),
                *(f"{x[j]:.4f}" for x in (self.ci_lower, self.ci_upper)),
            ]
            for j in range(len(self.names))
        ]
        return table_lines(
            ["estimate", "se", "tval", "df", "pval", "ci.lb", "ci.ub"],
            rows,
            [10, 9, 9, 7, 9, 9, 9],
            stub=[f"{n:{width}s}" for n in self.names],
        )

    def _estimator_note(self) -> str:
        if self.method == "CR1":
            factor = f"CR1, small-sample factor {self.adjust} = {self.factor:.4g}"
        elif self.method == "CR2":
            working = {
                "model": "the model",
                "user": "a user-specified target",
                "robumeta": "robumeta's working model for user weights",
            }[self.target]
            factor = f"CR2, bias-reduced linearization with {working} as working model"
        else:
            factor = self.method
        df = (
            "Satterthwaite approximation; F-tests: Hotelling's T² approximation, HTZ"
            if self.df_method == "satterthwaite"
            else f"residual method, m - p = {self.n_clusters - self.p}"
        )
        return textwrap.fill(
            f"Cluster-robust inference (var-cov estimator: {factor}; approx t/F-tests and "
            f"confidence intervals, df: {df}).",
            width=88,
        )

    def summary(self) -> str:
        """A printed summary like metafor's ``robust()``: the clusters, the omnibus test and
        the coefficient table with robust standard errors and degrees of freedom."""
        lines = [f"Cluster-robust inference for: {self.model}", ""]
        lines += self._cluster_lines()
        lines.append("")
        if self.omnibus is not None:
            lines += self.omnibus.summary().split("\n")
            lines.append("")
        lines += ["Model Results:", ""]
        lines += self._table_lines()
        lines += ["", self._estimator_note()]
        return "\n".join(lines)


@attrs.frozen(kw_only=True, repr=False)
class RVEResult(RobustResult):
    """The result of :func:`rve`: robust variance estimation with robumeta's weights.

    Attributes
    ----------
    modelweights : str
        ``"CORR"`` (correlated effects), ``"HIER"`` (hierarchical effects) or ``"USER"``
        (`userweights`).
    rho : float
        The assumed within-cluster correlation of CORR (NaN otherwise).
    small : bool
        Small-sample corrections (CR2 with Satterthwaite df) or not (CR1 with ``m/(m-p)``
        and ``m - p`` df).
    tau2 : float
        Between-cluster variance (method of moments; NaN with user weights).
    omega2 : float
        Within-cluster variance of HIER (NaN otherwise).
    i2 : float
        I² (percent) of CORR (NaN otherwise).
    weights : ndarray
        The weights of the effects used.
    yi, vi : ndarray
        The effects and variances used.
    X : ndarray
        The design.
    omitted : tuple of int
        Input indices of effects left out for missing values.
    coef, se, statistic, df, pvalue, ci_lower, ci_upper, names, vcov, ...
        As in :class:`RobustResult` (``se_model`` holds the model-based standard errors
        ``sqrt(diag((XᵀWX)⁻¹))`` of the weighted fit).
    """

    modelweights: str
    rho: float
    small: bool
    tau2: float
    omega2: float
    i2: float
    weights: FloatArray = array_field()
    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    X: FloatArray = array_field()
    omitted: tuple[int, ...] = attrs.field(converter=ints, default=())

    def summary(self) -> str:
        """A printed summary like robumeta's ``print(robu(...))``."""
        kind = {
            "CORR": "Correlated Effects Model",
            "HIER": "Hierarchical Effects Model",
            "USER": "User Specified Weights",
        }[self.modelweights]
        corrections = " with Small-Sample Corrections" if self.small else ""
        sizes = self.cluster_sizes
        unit = "clusters" if self.modelweights == "HIER" else "studies"
        lines = [
            f"RVE: {kind}{corrections}",
            "",
            f"Model: {self.model}",
            "",
            f"Number of {unit} = {self.n_clusters}",
            f"Number of outcomes = {self.k} (min = {min(sizes)}, mean = "
            f"{self.k / self.n_clusters:.2f}, median = {statistics.median(sizes):g}, max = "
            f"{max(sizes)})",
        ]
        if self.modelweights == "CORR":
            lines += [
                f"Rho = {self.rho:g}",
                f"I.sq = {self.i2:.4f}",
                f"Tau.sq = {self.tau2:.6f}",
            ]
        elif self.modelweights == "HIER":
            lines += [f"Omega.sq = {self.omega2:.6f}", f"Tau.sq = {self.tau2:.6f}"]
        lines.append("")
        lines += self._table_lines()
        lines += ["", self._estimator_note()]
        if self.small:
            lines.append("Note: If df < 4, do not trust the results (robumeta).")
        if self.omitted:
            effects = {i: f"Effect {i + 1}" for i in self.omitted}  # rows: no labels
            lines.append(
                f"Omitted effects (missing values): {name_studies(self.omitted, effects)}"
            )
        return "\n".join(lines)


# -- the working model of a fit ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Working:
    """A fitted weighted least-squares model, as the sandwich needs it."""

    x: FloatArray
    y: FloatArray
    coef: FloatArray
    theta: FloatArray  # (k,) diagonal or (k, k) marginal covariance; W = Θ⁻¹
    names: tuple[str, ...]
    se_model: FloatArray
    btt: tuple[int, ...]
    level: float
    omitted: tuple[int, ...]
    model: str


def _default_btt(x: FloatArray) -> tuple[int, ...]:
    p = x.shape[1]
    intercept = bool(np.all(x[:, 0] == 1.0))
    if intercept:
        return tuple(range(1, p))
    return tuple(range(p))


def _describe(result: PoolResult | MetaRegResult) -> str:
    est = "" if result.method == "EE" else f"; tau^2 estimator: {result.method}"
    if isinstance(result, PoolResult):
        kind = "Equal-effects model" if result.method == "EE" else "Random-effects model"
    else:
        kind = (
            "Fixed-effects with moderators model"
            if result.method == "EE"
            else ("Mixed-effects model")
        )
    return f"{kind} (k = {result.k}{est})"


def _working_model(result: Any) -> _Working:
    if isinstance(result, PoolResult):
        k = result.k
        return _Working(
            x=np.ones((k, 1)),
            y=np.asarray(result.yi),
            coef=np.array([result.estimate]),
            theta=np.asarray(result.vi) + result.tau2,
            names=(INTERCEPT,),
            se_model=np.array([result.se]),
            btt=(),
            level=result.level,
            omitted=result.omitted,
            model=_describe(result),
        )
    if isinstance(result, MetaRegResult):
        return _Working(
            x=np.asarray(result.X),
            y=np.asarray(result.yi),
            coef=np.asarray(result.coef),
            theta=np.asarray(result.vi) + result.tau2,
            names=result.names,
            se_model=np.asarray(result.se),
            btt=result.btt,
            level=result.level,
            omitted=result.omitted,
            model=_describe(result),
        )
    needed = ("X", "yi", "coef", "vcov", "marginal_covariance")
    missing = [a for a in needed if not hasattr(result, a)]
    if missing:
        msg = (
            "`result` must be a fitted model: a PoolResult, a MetaRegResult, or an object "
            f"with X, yi, coef, vcov and marginal_covariance() (ketameta.RobustModel); got "
            f"{type(result).__name__} without {', '.join(missing)}"
        )
        raise TypeError(msg)
    x = np.array(result.X, dtype=np.float64, ndmin=2)
    y = np.array(result.yi, dtype=np.float64).reshape(-1)
    coef = np.array(result.coef, dtype=np.float64).reshape(-1)
    vcov = np.array(result.vcov, dtype=np.float64, ndmin=2)
    theta = np.array(result.marginal_covariance(), dtype=np.float64)
    k, p = x.shape
    if y.shape != (k,) or coef.shape != (p,) or vcov.shape != (p, p):
        msg = (
            f"`result` is inconsistent: X has shape {x.shape}, yi {y.shape}, coef "
            f"{coef.shape}, vcov {vcov.shape}"
        )
        raise ValueError(msg)
    if theta.shape not in ((k,), (k, k)):
        msg = f"`result.marginal_covariance()` must be ({k}, {k}) or ({k},), got {theta.shape}"
        raise ValueError(msg)
    for name, arr in (("X", x), ("yi", y), ("coef", coef), ("marginal_covariance()", theta)):
        if not np.all(np.isfinite(arr)):
            msg = f"`result.{name}` must be finite"
            raise ValueError(msg)
    if theta.ndim == 2:
        if not np.allclose(theta, theta.T, rtol=1e-10, atol=0.0):
            msg = "`result.marginal_covariance()` must be symmetric"
            raise ValueError(msg)
        if np.count_nonzero(theta - np.diag(np.diag(theta))) == 0:
            theta = np.diag(theta).copy()
    names = getattr(result, "names", None)
    if names is None:
        names = (
            (INTERCEPT, *(f"X{j}" for j in range(1, p)))
            if _default_btt(x) != tuple(range(p))
            else tuple(f"X{j + 1}" for j in range(p))
        )
    btt = _default_btt(x) if getattr(result, "btt", None) is None else ints(result.btt)
    if p == 1 and _default_btt(x) == ():
        btt = ()  # (an intercept-only model has no test of moderators, as in metafor)
    level = getattr(result, "level", 0.95)
    describe = getattr(result, "summary", None)
    text = describe() if callable(describe) else None
    first = text.strip().split("\n", 1)[0].strip() if isinstance(text, str) else ""
    return _Working(
        x=x,
        y=y,
        coef=coef,
        theta=theta,
        names=strings(names),
        se_model=np.sqrt(np.diag(vcov)),
        btt=btt,
        level=check_level(level),
        omitted=ints(getattr(result, "omitted", ())),
        model=first or f"{type(result).__name__} (k = {k})",
    )


# -- clusters ---------------------------------------------------------------------------------


def _cluster_codes(
    cluster: Any, k: int, omitted: tuple[int, ...]
) -> tuple[IntArray, tuple[str, ...], IntArray]:
    """Cluster codes ``0 .. m - 1`` of the k studies used (in sorted label order), the
    labels of the m clusters and the input index of each study used.

    `cluster` has one label per study used, or per input study (then the labels of the
    omitted studies are dropped, as metafor and clubSandwich do).
    """
    levels, codes = group_codes(cluster, "cluster")
    n = codes.shape[0]
    n_input = k + len(omitted)
    if n == n_input:
        keep = np.ones(n_input, dtype=bool)
        keep[list(omitted)] = False
        where = np.flatnonzero(keep)
        codes = codes[keep]
    elif n == k:
        keep = np.ones(n_input, dtype=bool)
        keep[list(omitted)] = False
        where = np.flatnonzero(keep)
    else:
        extra = f" ({n_input} in the input, {len(omitted)} omitted)" if omitted else ""
        msg = (
            f"`cluster` has {n} labels but the model has {k} studies{extra}: give one label "
            "per study"
        )
        raise ValueError(msg)
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        studies = where[missing].tolist()
        plural = "studies" if len(studies) > 1 else "study"
        msg = (
            f"`cluster` is missing for {plural} {', '.join(map(str, studies))}: every study "
            "needs a cluster label"
        )
        raise ValueError(msg)
    used, codes = np.unique(codes, return_inverse=True)
    codes = np.asarray(codes.reshape(-1), dtype=np.intp)
    labels = _level_names(tuple(levels[i] for i in used))
    if used.size < 2:
        msg = (
            f"`cluster` puts all {k} studies in one cluster ({labels[0]}): cluster-robust "
            "inference needs at least 2 clusters"
        )
        raise ValueError(msg)
    return codes, labels, where


def _check_nested(theta: FloatArray, codes: IntArray, where: IntArray) -> None:
    """The marginal covariance must not link studies of different clusters."""
    if theta.ndim == 1:
        return
    across = (theta != 0.0) & (codes[:, None] != codes[None, :])
    if across.any():
        i, j = np.argwhere(across)[0]
        msg = (
            f"the model's marginal covariance links studies {where[i]} and {where[j]} of "
            "different clusters: the random effects must be nested within `cluster` (use "
            "the model's highest level as the cluster)"
        )
        raise ValueError(msg)


def _prepare_target(
    target: Any, k: int, omitted: tuple[int, ...], codes: IntArray, where: IntArray
) -> FloatArray | None:
    """`target` as the (k,) or (k, k) working covariance of the studies used: given for
    them or for the input studies (then the omitted ones are dropped), positive variances,
    symmetric, no covariance between clusters, positive definite within each."""
    if target is None:
        return None
    if hasattr(target, "toarray"):  # scipy.sparse
        target = target.toarray()
    try:
        arr = np.array(target, dtype=np.float64)
    except (TypeError, ValueError):
        msg = f"`target` must be a vector or a matrix of numbers, got {type(target).__name__}"
        raise TypeError(msg) from None
    n_input = k + len(omitted)
    n = arr.shape[0] if arr.ndim in (1, 2) else -1
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] != n) or n not in (k, n_input):
        msg = (
            f"`target` must be a vector of {k} variances or a ({k}, {k}) matrix (one row "
            f"per study of the model), got shape {arr.shape}"
        )
        raise ValueError(msg)
    if n != k:
        arr = arr[where] if arr.ndim == 1 else arr[np.ix_(where, where)]
    if not np.all(np.isfinite(arr)):
        i = int(np.argwhere(~np.isfinite(arr))[0][0])
        msg = f"`target` must be finite; it is not for study {where[i]}"
        raise ValueError(msg)
    diag = arr if arr.ndim == 1 else np.diag(arr)
    if not np.all(diag > 0):
        i = int(np.flatnonzero(~(diag > 0))[0])
        msg = f"`target` must have positive variances; study {where[i]} has {float(diag[i])!r}"
        raise ValueError(msg)
    if arr.ndim == 2:
        if not np.allclose(arr, arr.T, rtol=1e-10, atol=0.0):
            msg = "`target` must be a symmetric matrix"
            raise ValueError(msg)
        across = (arr != 0.0) & (codes[:, None] != codes[None, :])
        if across.any():
            i, j = np.argwhere(across)[0]
            msg = (
                f"`target` links studies {where[i]} and {where[j]} of different clusters: "
                "a working model has no covariance between clusters"
            )
            raise ValueError(msg)
        for c in range(int(codes.max()) + 1):
            idx = np.flatnonzero(codes == c)
            if not np.linalg.eigvalsh(arr[np.ix_(idx, idx)])[0] > 0:
                msg = (
                    "`target` is not positive definite within the cluster of study "
                    f"{where[idx[0]]}"
                )
                raise ValueError(msg)
        if np.count_nonzero(arr - np.diag(diag)) == 0:
            arr = diag.copy()
    return arr


# -- the inference ------------------------------------------------------------------------------


def _factor(adjust: str | None, m: int, k: int, p: int) -> float:
    if adjust == "m/(m-p)":
        return m / (m - p)
    if adjust == "m/(m-1)":
        return m / (m - 1)
    if adjust == "Stata":
        return m * (k - 1) / ((m - 1) * (k - p))
    return 1.0


def _infer(
    wm: _Working,
    codes: IntArray,
    labels: tuple[str, ...],
    where: IntArray,
    *,
    method: str,
    adjust: str | None,
    df_method: str,
    target: FloatArray | None = None,
    df_target: FloatArray | None = None,
    target_name: str = "user",
) -> dict[str, Any]:
    """The fields of a :class:`RobustResult` for the working model `wm` (and the CR2 /
    degrees-of-freedom `target`, when it is not the model's)."""
    x, coef = wm.x, wm.coef
    k, p = x.shape
    m = len(labels)
    if (df_method == "residual" or adjust in ("m/(m-p)", "Stata")) and m <= p:
        msg = (
            f"{m} clusters for {p} coefficients: the residual degrees of freedom m - p (and "
            "the factor m/(m - p)) need more clusters than coefficients"
        )
        raise ValueError(msg)
    factor = _factor(adjust, m, k, p)
    resid = wm.y - x @ coef
    try:
        pieces = _robust.cluster_pieces(
            x,
            resid,
            wm.theta,
            codes,
            m,
            "CR0" if method in ("CR0", "CR1") else method,
            target,
            df_target,
        )
    except _robust.SingularClusterError as exc:
        msg = (
            f"CR3 is undefined: cluster {labels[exc.cluster]} fits its effects exactly "
            "(I - H_jj is singular, e.g. a moderator non-zero in that cluster only); use CR2"
        )
        raise ValueError(msg) from None
    except _robust.NotPositiveDefiniteError as exc:
        msg = (
            f"the model's marginal covariance of cluster {labels[exc.cluster]} is not "
            "positive definite"
        )
        raise ValueError(msg) from None
    vcov = pieces.vcov(factor)
    se = np.sqrt(np.maximum(np.diag(vcov), 0.0))
    if df_method == "satterthwaite":
        df = _robust.satterthwaite_df(pieces, np.eye(p))
    else:
        df = np.full(p, float(m - p))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = coef / se
        pvalue = np.asarray(two_sided_p(stat, df, "t"), dtype=np.float64)
        crit = np.asarray(critical_value(wm.level, df), dtype=np.float64)
    if not (np.all(se > 0) and np.all(np.isfinite(df))):
        bad = [wm.names[j] for j in range(p) if not (se[j] > 0 and math.isfinite(df[j]))]
        warnings.warn(
            f"the robust standard error or its degrees of freedom are 0 or undefined for "
            f"{bad}: a cluster alone determines the coefficient (its residuals vanish); "
            "their tests are undefined (NaN)",
            DegenerateDataWarning,
            stacklevel=3,
        )
    sizes = np.bincount(codes, minlength=m)
    return {
        "coef": coef,
        "se": se,
        "statistic": stat,
        "df": df,
        "pvalue": pvalue,
        "ci_lower": coef - crit * se,
        "ci_upper": coef + crit * se,
        "names": wm.names,
        "vcov": vcov,
        "se_model": wm.se_model,
        "method": method,
        "adjust": adjust,
        "factor": factor,
        "df_method": df_method,
        "level": wm.level,
        "k": k,
        "n_clusters": m,
        "cluster_labels": labels,
        "cluster_sizes": sizes,
        "btt": wm.btt,
        "model": wm.model,
        "target": "model" if target is None and df_target is None else target_name,
        "pieces": pieces,
    }


def _wald(
    res: RobustResult, c: FloatArray, btt: list[int], names: tuple[str, ...]
) -> RobustWaldTest:
    q = c.shape[0]
    pieces = res.pieces
    qstat = _robust.wald_statistic(pieces, res.coef, c) / res.factor
    if not math.isfinite(qstat):
        warnings.warn(
            "the robust covariance of the tested coefficients is singular (a cluster alone "
            "determines a combination of them): the Wald test is undefined (NaN)",
            DegenerateDataWarning,
            stacklevel=3,
        )
    if res.df_method == "satterthwaite":
        nu = _robust.wald_htz_df(pieces, c)
        df2 = nu - q + 1
        delta = max(df2 / nu, 0.0) if nu > 0 else math.nan
        test = "HTZ"
    else:
        df2 = float(res.n_clusters - res.p)
        delta = 1.0
        test = "F"
    stat = delta * qstat / q
    pvalue = float(f_sf(float(q), df2, stat)) if df2 > 0 and math.isfinite(stat) else math.nan
    return RobustWaldTest(
        coefficients=names,
        btt=btt,
        constraints=c,
        q_statistic=qstat,
        statistic=stat,
        delta=delta,
        df_num=q,
        df_denom=df2,
        pvalue=pvalue,
        test=test,
    )


def _options(method: Any, adjust: Any, df: Any) -> tuple[str, str | None, str]:
    method = check_choice(method, "method", ROBUST_METHODS)
    if isinstance(adjust, bool | np.bool_):
        factor = "m/(m-p)" if adjust else None
    else:
        factor = check_choice(adjust, "adjust", ADJUST)
    if method != "CR1" and adjust is not True:
        msg = (
            f"`adjust` applies to method='CR1' only (CR1's small-sample factor); {method} "
            f"{'has its own adjustment' if method in ('CR2', 'CR3') else 'is unadjusted'}, "
            f"got adjust={adjust!r}"
        )
        raise ValueError(msg)
    if method == "CR1" and factor is None:
        method = "CR0"  # (metafor: robust(adjust=FALSE) is CR0)
    if method != "CR1":
        factor = None
    if df is None:
        df_method = "satterthwaite" if method in ("CR2", "CR3") else "residual"
    else:
        df_method = check_choice(df, "df", DF_METHODS)
    return method, factor, df_method


def robust(
    result: PoolResult | MetaRegResult | RobustModel,
    cluster: ArrayLike,
    *,
    method: str = "CR2",
    adjust: bool | str = True,
    df: str | None = None,
    target: Any = None,
) -> RobustResult:
    """Cluster-robust tests and confidence intervals for a fitted model (metafor's
    ``robust()``; clubSandwich's ``vcovCR``, ``coef_test`` and ``Wald_test``).

    The estimates stay the model's; their covariance becomes the sandwich
    ``B (Σ_j X_jᵀW_jA_j e_j e_jᵀA_jᵀW_jX_j) B``, ``B = (XᵀWX)⁻¹``, summed over the clusters
    j of `cluster`, which is valid whatever the dependence of the effects within a cluster
    (Hedges, Tipton & Johnson 2010 [1]_).

    Parameters
    ----------
    result : PoolResult, MetaRegResult or RobustModel
        The fitted model: :func:`ketameta.pool`, :func:`ketameta.metareg`, or any object
        with ``X``, ``yi``, ``coef``, ``vcov`` and ``marginal_covariance()`` (the
        :class:`RobustModel` protocol; e.g. a multilevel model, whose random effects must
        be nested within the clusters).
    cluster : array_like
        The cluster of each study: labels (strings, numbers, booleans, a pandas
        Categorical), one per study of the fit or one per input study (then the labels of
        studies the fit omitted are dropped, as metafor does). A missing label is an error.
    method : {"CR2", "CR1", "CR0", "CR3"}
        The estimator. ``"CR2"`` (default): the bias-reduced linearization of Bell &
        McCaffrey (2002) [5]_ with the fitted model as working model (Tipton 2015 [2]_;
        Pustejovsky & Tipton 2018 [4]_), exactly unbiased when the model is right, with
        Satterthwaite degrees of freedom and the HTZ test (clubSandwich's defaults;
        metafor's ``robust(clubSandwich=TRUE)``). ``"CR1"``: no adjustment matrices, a
        small-sample factor (metafor's default ``robust()``). ``"CR0"``: none.
        ``"CR3"``: ``A_j = (I - H_jj)⁻¹`` (the jackknife-like estimator).
    adjust : bool or str
        CR1's small-sample factor: ``True`` or ``"m/(m-p)"`` (default; metafor's
        ``adjust=TRUE`` and clubSandwich's ``"CR1p"``), ``"m/(m-1)"`` (clubSandwich's
        ``"CR1"``), ``"Stata"`` (``m(k-1)/((m-1)(k-p))``, clubSandwich's ``"CR1S"``) or
        ``False`` (none: CR0, metafor's ``adjust=FALSE``); m clusters, k effects, p
        coefficients. Leave it at ``True`` for the other methods.
    df : {"satterthwaite", "residual"}, optional
        Degrees of freedom of the t tests and intervals: per coefficient by Satterthwaite's
        approximation under the working model [2]_ (multi-coefficient tests: HTZ [3]_), or
        ``m - p`` for every test (metafor's "residual" method; F tests with ``m - p``
        denominator df). Default: Satterthwaite for CR2 and CR3, residual for CR0 and CR1
        (as metafor).
    target : array_like or sparse matrix, optional
        The working model Φ of the CR2 adjustment and of the Satterthwaite/HTZ degrees of
        freedom (clubSandwich's ``target``): a vector of variances or a ``(k, k)``
        covariance matrix (block-diagonal by cluster), one row per study of the model or
        per input study. Default: the model's own marginal covariance ``M``. The
        estimates and the weights stay the model's; use a target when the weights are
        not the inverse of a plausible covariance (e.g. ``target=V``, the sampling
        covariances alone, or the covariance of another working model).

    Returns
    -------
    RobustResult
        With the omnibus test of the model's `btt` (a meta-regression's moderators) and
        :meth:`~RobustResult.wald_test` for others.

    Raises
    ------
    ValueError
        `cluster` of the wrong length, with a missing label or a single cluster; fewer
        clusters than coefficients with the residual method or the factor ``m/(m-p)``; a
        multilevel model whose random effects cross clusters; CR3 where a cluster fits its
        effects exactly.

    Warns
    -----
    DegenerateDataWarning
        A coefficient whose robust standard error vanishes (a cluster alone determines it,
        e.g. a factor level present in one cluster only): its test is NaN.

    Notes
    -----
    With ``W = M⁻¹`` the model's weights (``M = diag(v + τ̂²)`` for :func:`~ketameta.pool`
    and :func:`~ketameta.metareg`; ``V + ZGZᵀ`` for a multilevel model), residuals
    ``e = y - Xb`` and ``H_jj = X_j B X_jᵀ W_j``:

    - CR0/CR1: ``A_j = I``; CR1 multiplies by the factor. metafor's CR1 factor is
      ``m/(m - p)`` (clubSandwich calls it ``"CR1p"``), clubSandwich's ``"CR1"`` is
      ``m/(m - 1)``: the same name, different numbers (for 11 clusters and 2
      coefficients: 1.222 and 1.1).
    - CR2: ``A_j = D_jᵀ (D_j (M_j - X_j B X_jᵀ) D_jᵀ)^{+1/2} D_j`` with ``D_jᵀD_j = M_j``
      (Pustejovsky & Tipton 2018, eq. 5 [4]_): ``M_j - X_j B X_jᵀ`` is the residuals'
      covariance under the working model, so ``E[V^CR2] = B`` when the model is right.
      The target is the model's own marginal covariance (clubSandwich's default for
      ``rma.uni`` and ``rma.mv`` fits, ``inverse_var = TRUE``). Where a cluster fits some
      direction of its effects exactly (``I - H_jj`` singular), the Moore-Penrose inverse
      is used, as clubSandwich does.
    - CR2 with a `target` Φ (Pustejovsky & Tipton 2018, eq. 5 with Φ ≠ W⁻¹ [4]_):
      ``A_j = D_jᵀ (D_j (I - H)_j Φ (I - H)_jᵀ D_jᵀ)^{+1/2} D_j`` with ``D_jᵀD_j = Φ_j``,
      ``H = X B XᵀW`` and ``(I - H)_j`` its rows of cluster j: ``E[V^CR2] = B XᵀWΦWX B``,
      the covariance of b when Φ is right. The degrees of freedom below take ``Var(y) =
      Φ``; with Φ = M both reduce to the forms above.
    - Satterthwaite df of ``cᵀb``: ``(tr P)²/tr(P²)`` where ``P`` is the covariance of the
      cluster terms ``z_j = cᵀB X_jᵀW_jA_j e_j`` under the working model [2]_ [4]_
      (``P_jk = cᵀB X_jᵀW_jA_j (I - H)_j Φ (I - H)_kᵀ A_kᵀW_kX_k B c``).
    - HTZ test of q constraints: ``F = δ Q/q`` ~ F(q, ν - q + 1), ``δ = (ν - q + 1)/ν``,
      ν from the variance of the standardised robust covariance (Zhang's approximation;
      Tipton & Pustejovsky 2015 [3]_). With one constraint it is the Satterthwaite t test.

    Where metafor differs: for a model fitted with ``test="knha"``, metafor 3.8's
    ``robust()`` builds the sandwich from the Knapp-Hartung-scaled covariance, which
    multiplies the robust covariance by ``s⁴`` (``s²`` the Knapp-Hartung factor);
    ketameta (and clubSandwich) use ``(XᵀWX)⁻¹`` whatever the model's test.

    References
    ----------
    .. [1] Hedges, Tipton & Johnson (2010), Res Synth Methods 1(1):39-65.
    .. [2] Tipton (2015), Psychol Methods 20(3):375-393.
    .. [3] Tipton & Pustejovsky (2015), J Educ Behav Stat 40(6):604-634.
    .. [4] Pustejovsky & Tipton (2018), J Bus Econ Stat 36(4):672-683.
    .. [5] Bell & McCaffrey (2002), Survey Methodology 28(2):169-181.

    Examples
    --------
    Effects of 19 schools in 5 districts (the first five districts of Konstantopoulos
    2011, metafor's ``dat.konstantopoulos2011``): a random-effects model that treats the
    schools as independent, and cluster-robust inference by district (CR2, metafor's
    ``robust(res, cluster = district, clubSandwich = TRUE)``):

    >>> import ketameta
    >>> yi = [-0.18, -0.22, 0.23, -0.3, 0.13, -0.26, 0.19, 0.32, 0.45, 0.38, 0.29, 0.16,
    ...       0.65, 0.36, 0.6, 0.08, 0.04, 0.19, -0.06]
    >>> vi = [0.118, 0.118, 0.144, 0.144, 0.014, 0.014, 0.015, 0.024, 0.023, 0.043, 0.012,
    ...       0.02, 0.004, 0.004, 0.007, 0.019, 0.007, 0.005, 0.004]
    >>> district = [11] * 4 + [12] * 4 + [18] * 3 + [27] * 4 + [56] * 4
    >>> res = ketameta.pool(yi, vi)
    >>> rob = ketameta.robust(res, district)
    >>> round(res.se, 4), round(float(rob.se[0]), 4), round(float(rob.df[0]), 2)
    (0.0627, 0.1026, 3.48)

    metafor's default (CR1 with the factor m/(m - p), m - p degrees of freedom):

    >>> rob1 = ketameta.robust(res, district, method="CR1")
    >>> round(float(rob1.se[0]), 4), float(rob1.df[0])
    (0.1003, 4.0)
    """
    method, factor, df_method = _options(method, adjust, df)
    wm = _working_model(result)
    codes, labels, where = _cluster_codes(cluster, wm.x.shape[0], wm.omitted)
    _check_nested(wm.theta, codes, where)
    phi = _prepare_target(target, wm.x.shape[0], wm.omitted, codes, where)
    fields = _infer(
        wm, codes, labels, where, method=method, adjust=factor, df_method=df_method, target=phi
    )
    out = RobustResult(**fields, omnibus=None)
    if wm.btt:
        out = attrs.evolve(out, omnibus=out.wald_test(list(wm.btt)))
    return out


# -- robumeta's weights -------------------------------------------------------------------------


def _wls(x: FloatArray, y: FloatArray, w: FloatArray) -> FloatArray:
    """Weighted least squares ``(XᵀWX)⁻¹XᵀWy`` through the QR of ``W^{1/2}X``."""
    root = np.sqrt(w)
    q, r = np.linalg.qr(x * root[:, None])
    return np.asarray(np.linalg.solve(r, q.T @ (y * root)), dtype=np.float64)


def _xtwx_inv(x: FloatArray, w: FloatArray) -> FloatArray:
    _, r = np.linalg.qr(x * np.sqrt(w)[:, None])
    ri = np.linalg.solve(r, np.eye(r.shape[0]))
    return np.asarray(ri @ ri.T, dtype=np.float64)


def _cluster_sums(a: FloatArray, codes: IntArray, m: int) -> FloatArray:
    """Column sums of the rows of `a` (k, ...) within each cluster: (m, ...)."""
    out = np.zeros((m, *a.shape[1:]))
    np.add.at(out, codes, a)
    return out


def _corr_weights(
    x: FloatArray, y: FloatArray, v: FloatArray, codes: IntArray, m: int, rho: float
) -> tuple[FloatArray, float, float]:
    """robumeta's correlated-effects weights ``1/(k_j (v̄_j + τ̂²))``, τ̂² and I²."""
    sizes = np.bincount(codes, minlength=m).astype(np.float64)
    vbar = _cluster_sums(v, codes, m) / sizes
    wj = 1.0 / (sizes * vbar)  # the initial weight of each cluster's effects
    w = wj[codes]
    b = _wls(x, y, w)
    e = y - x @ b
    qe = float(np.sum(w * e * e))
    vinv = _xtwx_inv(x, w)
    s = _cluster_sums(x, codes, m)  # (m, p): X_jᵀ1
    xx = np.einsum("i,ip,iq->pq", (wj / sizes)[codes], x, x)  # Σ (w_j/k_j) X_jᵀX_j
    ss = np.einsum("j,jp,jq->pq", wj / sizes, s, s)  # Σ (w_j/k_j) X_jᵀJX_j
    wjw = np.einsum("j,jp,jq->pq", wj * wj, s, s)  # Σ X_jᵀW_jJW_jX_j
    denom = float(np.sum(w) - np.trace(vinv @ wjw))
    term_a = float(np.trace(vinv @ xx))
    term_b = float(np.trace(vinv @ (ss - xx)))
    tau2 = max(0.0, (qe - m + term_a + rho * term_b) / denom)
    df = m - term_a - rho * term_b
    i2 = max(0.0, 100.0 * (qe - df) / qe) if qe > 0 else 0.0
    return 1.0 / (sizes[codes] * (vbar[codes] + tau2)), tau2, i2


def _hier_weights(
    x: FloatArray, y: FloatArray, v: FloatArray, codes: IntArray, m: int
) -> tuple[FloatArray, float, float]:
    """robumeta's hierarchical-effects weights ``1/(v + τ̂² + ω̂²)``, τ̂² and ω̂²."""
    k, p = x.shape
    w = 1.0 / v
    b = _wls(x, y, w)
    e = y - x @ b
    qe = float(np.sum(w * e * e))
    qa = float(np.sum(_cluster_sums(e, codes, m) ** 2))
    vinv = _xtwx_inv(x, w)
    n = np.bincount(codes, minlength=m).astype(np.float64)
    s = _cluster_sums(x, codes, m)  # X_jᵀ1
    t = _cluster_sums(x * w[:, None], codes, m)  # X_jᵀw_j
    xjx = s.T @ s
    xwjwx = t.T @ t
    xwwx = (x * (w * w)[:, None]).T @ x
    a1 = (
        float(np.sum(n * n))
        - 2.0 * float(np.trace(vinv @ ((t * n[:, None]).T @ s)))
        + float(np.trace(vinv @ xjx @ vinv @ xwjwx))
    )
    b1 = k - 2.0 * float(np.trace(vinv @ (t.T @ s))) + float(np.trace(vinv @ xjx @ vinv @ xwwx))
    c1 = float(np.sum(v)) - float(np.trace(vinv @ xjx))
    a2 = float(np.sum(w)) - float(np.trace(vinv @ xwjwx))
    b2 = float(np.sum(w)) - float(np.trace(vinv @ xwwx))
    c2 = k - p
    det = b1 * a2 - b2 * a1
    if not (abs(det) > 1e-12 * (abs(b1 * a2) + abs(b2 * a1))):
        msg = (
            "the hierarchical-effects moments cannot separate the between- and within-cluster "
            "variances (every cluster has one effect?): use modelweights='CORR'"
        )
        raise ValueError(msg)
    omega2 = max(0.0, ((qa - c1) * a2 - (qe - c2) * a1) / det)
    tau2 = max(0.0, (qe - c2) / a2 - omega2 * b2 / a2)
    return 1.0 / (v + tau2 + omega2), tau2, omega2


def rve(
    yi: ArrayLike | EffectSizes | str,
    vi: ArrayLike | str | None = None,
    *,
    cluster: ArrayLike | str,
    mods: Any = None,
    sei: ArrayLike | str | None = None,
    data: Any = None,
    intercept: bool = True,
    modelweights: str = "CORR",
    rho: float = 0.8,
    small: bool = True,
    userweights: ArrayLike | str | None = None,
    level: float = 0.95,
    nan_policy: str = "omit",
) -> RVEResult:
    """Robust variance estimation with correlated- or hierarchical-effects weights
    (robumeta's ``robu``; Hedges, Tipton & Johnson 2010 [1]_, Tipton 2015 [2]_).

    Parameters
    ----------
    yi : array_like, EffectSizes or str
        Effect sizes (or :func:`ketameta.escalc`'s result, or a column of `data`).
    vi : array_like or str, optional
        Sampling variances (or a column name).
    cluster : array_like or str
        The study (cluster) of each effect: labels, or a column of `data`. A missing label
        is an error.
    mods : optional
        Moderators, as in :func:`ketameta.metareg` (arrays, mappings, column names,
        formulas); default: the intercept only.
    sei, data, intercept, nan_policy
        As in :func:`ketameta.metareg`.
    modelweights : {"CORR", "HIER"}
        ``"CORR"`` (correlated effects: several outcomes of the same participants) weighs
        each effect ``1/(k_j (v̄_j + τ̂²))``, ``v̄_j`` the mean variance and ``k_j`` the
        number of effects of cluster j; ``"HIER"`` (hierarchical effects: independent
        samples nested in labs) weighs ``1/(v_ij + τ̂² + ω̂²)``.
    rho : float
        CORR's assumed correlation of the effects within a cluster, in [0, 1] (robumeta's
        default 0.8); it only enters τ̂² (run the model with several values to check).
    small : bool
        Small-sample corrections [2]_: CR2 standard errors and Satterthwaite degrees of
        freedom (default), else CR1 with the factor ``m/(m - p)`` and ``m - p`` df.
    userweights : array_like or str, optional
        Weights of your own, one per effect (or a column of `data`): robumeta's
        ``userweights`` (non-efficient weights, Tipton 2015, appendix [2]_). They replace
        the model's weights (`modelweights` and `rho` are then unused; no τ̂² is
        estimated); an effect with a missing weight is omitted.
    level : float
        Confidence level (robumeta: always 0.95).

    Returns
    -------
    RVEResult

    Notes
    -----
    τ̂² (and for HIER ω̂²) are method-of-moments estimates from an initial fit with weights
    ``1/(k_j v̄_j)`` (CORR) or ``1/v_ij`` (HIER), residuals ``e`` and ``B = (XᵀWX)⁻¹`` [1]_:

    - CORR: ``τ̂² = max(0, [Q_E - m + tr(B Σ_j w_j/k_j X_jᵀX_j) + ρ tr(B Σ_j w_j/k_j
      (X_jᵀJ_jX_j - X_jᵀX_j))] / [Σ w - tr(B Σ_j X_jᵀW_jJ_jW_jX_j)])`` with
      ``Q_E = Σ w e²`` (from ``E[Q_E]`` when the effects of a cluster have variance
      ``v̄_j`` and correlation ρ); ``I² = max(0, (Q_E - df)/Q_E)``, ``df = m - tr(...) -
      ρ tr(...)`` the same traces.
    - HIER: ``E[Q_E] = C₂ + τ²A₂ + ω²B₂`` and ``E[Q_a] = C₁ + τ²A₁ + ω²B₁``, ``Q_a =
      Σ_j (Σ_i e_ij)²``, with ``J`` the within-cluster matrix of ones and ``H`` the hat
      matrix: ``A₂ = tr(W(I-H)J(I-H)ᵀ)``, ``B₂ = tr(W(I-H)(I-H)ᵀ)``, ``C₂ = k - p``,
      ``A₁ = tr(J(I-H)J(I-H)ᵀ)``, ``B₁ = tr(J(I-H)(I-H)ᵀ)``, ``C₁ = tr(J(I-H)V(I-H)ᵀ)``;
      the two equations are solved for ω̂² (truncated at 0), then τ̂² (truncated at 0).

    The weighted fit's inference is :func:`robust` with ``W`` as working model
    (``Θ = W⁻¹``): CR2 and Satterthwaite df with `small`, as robumeta's small-sample
    corrections (Tipton 2015 [2]_) and clubSandwich's ``vcovCR`` of a ``robu`` fit.

    With `userweights` the weights are not inverse variances of any model, so robumeta
    takes another working model: the CR2 adjustment with the target ``Φ = diag(v̄_j)``
    (each effect the mean sampling variance of its cluster: the correlated-effects model
    with τ² = 0 and ρ = 0) and the Satterthwaite degrees of freedom with ``Φ = I``
    (:func:`robust`'s `target` notes give the formulas). clubSandwich's ``vcovCR`` of
    such a fit has the same covariance but takes the df under ``diag(v̄_j)``; ketameta
    follows robumeta.

    References
    ----------
    .. [1] Hedges, Tipton & Johnson (2010), Res Synth Methods 1(1):39-65.
    .. [2] Tipton (2015), Psychol Methods 20(3):375-393.
    .. [6] Fisher & Tipton (2015), robumeta, arXiv:1503.02220.

    Examples
    --------
    Effects of 19 schools in 5 districts (as in :func:`robust`), correlated-effects
    weights (robumeta's ``robu(yi ~ 1, studynum = district, var.eff.size = vi)``):

    >>> import ketameta
    >>> yi = [-0.18, -0.22, 0.23, -0.3, 0.13, -0.26, 0.19, 0.32, 0.45, 0.38, 0.29, 0.16,
    ...       0.65, 0.36, 0.6, 0.08, 0.04, 0.19, -0.06]
    >>> vi = [0.118, 0.118, 0.144, 0.144, 0.014, 0.014, 0.015, 0.024, 0.023, 0.043, 0.012,
    ...       0.02, 0.004, 0.004, 0.007, 0.019, 0.007, 0.005, 0.004]
    >>> district = [11] * 4 + [12] * 4 + [18] * 3 + [27] * 4 + [56] * 4
    >>> fit = ketameta.rve(yi, vi, cluster=district)
    >>> round(float(fit.coef[0]), 4), round(float(fit.se[0]), 4), round(fit.tau2, 4)
    (0.2077, 0.0957, 0.0648)
    """
    modelweights = check_choice(modelweights, "modelweights", MODEL_WEIGHTS)
    if userweights is not None:
        modelweights = "USER"
    rho_value = as_number(rho, "rho")
    if not 0.0 <= rho_value <= 1.0:
        msg = f"`rho` must be in [0, 1], got {rho!r}"
        raise ValueError(msg)
    if not isinstance(cast("object", small), bool | np.bool_):
        msg = f"`small` must be True or False, got {small!r}"
        raise TypeError(msg)
    lv = check_level(level)
    nan_policy = check_choice(nan_policy, "nan_policy", ("omit", "raise"))
    yi = _column(yi, data, "yi")
    vi = _column(vi, data, "vi")
    sei = _column(sei, data, "sei")
    cluster = _column(cluster, data, "cluster")
    n_input = _resolve_inputs(yi, vi, sei).shape[1]
    mm = None if mods is None else model_matrix(mods, data=data, intercept=intercept, k=n_input)
    missing = np.zeros(n_input, dtype=bool)
    if mm is not None:
        missing[list(mm.missing)] = True
    user_w = None
    if userweights is not None:
        user_w = as_float(_column(userweights, data, "userweights"), "userweights").reshape(-1)
        check_length(user_w, "userweights", n_input)
        bad = ~(user_w > 0) & ~np.isnan(user_w) | np.isinf(user_w)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            msg = f"`userweights` must be positive and finite; effect {i} has {float(user_w[i])!r}"
            raise ValueError(msg)
        missing |= np.isnan(user_w)
    _, all_codes = group_codes(cluster, "cluster")
    check_length(all_codes.astype(np.float64), "cluster", n_input)
    y, v, kept, omitted, _, _ = prepare_studies(
        yi, vi, sei, nan_policy=nan_policy, stacklevel=3, also_missing=missing
    )
    names: tuple[str, ...]
    if mm is None:
        x, names, has_intercept = np.ones((y.shape[0], 1)), (INTERCEPT,), True
    else:
        mm, dropped = mm.reduce(kept)
        if dropped:
            warnings.warn(
                f"moderators {list(dropped)} are linear combinations of earlier ones (on the "
                "effects used) and were dropped",
                CollinearityWarning,
                stacklevel=2,
            )
        x, names, has_intercept = np.ascontiguousarray(mm.x[kept]), mm.names, mm.intercept
    k, p = x.shape
    check_coefficients(p, k)
    codes, labels, where = _cluster_codes(cluster, k, omitted)
    m = len(labels)
    adjust_target = df_target = None
    if user_w is not None:
        w = user_w[where]
        tau2 = omega2 = i2 = rho_value = math.nan
        sizes = np.bincount(codes, minlength=m)
        adjust_target = (np.bincount(codes, weights=v, minlength=m) / sizes)[codes]
        df_target = np.ones(k)
    elif modelweights == "CORR":
        w, tau2, i2 = _corr_weights(x, y, v, codes, m, rho_value)
        omega2 = math.nan
    else:
        w, tau2, omega2 = _hier_weights(x, y, v, codes, m)
        i2, rho_value = math.nan, math.nan
    coef = _wls(x, y, w)
    terms = [n for n in names if n != INTERCEPT]
    formula = "yi ~ " + (" + ".join(terms) if terms else "1")
    if not has_intercept and terms:
        formula += " - 1"
    wm = _Working(
        x=x,
        y=y,
        coef=coef,
        theta=1.0 / w,
        names=names,
        se_model=np.sqrt(np.diag(_xtwx_inv(x, w))),
        btt=tuple(j for j in range(p) if names[j] != INTERCEPT),
        level=lv,
        omitted=omitted,
        model=formula,
    )
    method, adjust = ("CR2", None) if small else ("CR1", "m/(m-p)")
    fields = _infer(
        wm,
        codes,
        labels,
        where,
        method=method,
        adjust=adjust,
        df_method="satterthwaite" if small else "residual",
        target=adjust_target if small else None,
        df_target=df_target if small else None,
        target_name="robumeta",
    )
    out = RVEResult(
        **fields,
        omnibus=None,
        modelweights=modelweights,
        rho=rho_value,
        small=bool(small),
        tau2=tau2,
        omega2=omega2,
        i2=i2,
        weights=w,
        yi=y,
        vi=v,
        X=x,
        omitted=omitted,
    )
    if wm.btt:
        out = attrs.evolve(out, omnibus=out.wald_test(list(wm.btt)))
    return out
