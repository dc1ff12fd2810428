"""Prior distributions for the Bayesian random-effects model of :func:`ketameta.bayes_pool`.

Priors for the heterogeneity τ (the between-study standard deviation) are small frozen
objects: each knows its log density, its cumulative distribution function where it has a
closed form, its support, how heavy its upper tail is (which decides whether posterior
moments exist), a one-line definition and the publication it comes from. They are
registered by name in :data:`TAU_PRIORS`. The prior of the overall effect μ is either flat
(improper; ``mu_prior=None``) or :class:`NormalPrior`.

Which prior? For few studies the data say little about τ and the prior matters: a weakly
informative half-normal or half-Cauchy prior whose scale fits the effect measure is the
usual recommendation (Friede et al. 2017 [1]_; Röver et al. 2021 [2]_), for example
half-normal with scale 0.5 or 1.0 for log odds ratios. Turner et al. (2015) [3]_ (binary
outcomes, log-normal on τ²) and Rhodes et al. (2015) [4]_ (standardised mean differences,
log-t on τ²) give empirical priors from the Cochrane Library: :class:`LogNormalTau2` and
:class:`LogStudentTTau2` take their parameters.

References
----------
.. [1] Friede, T., Röver, C., Wandel, S., & Neuenschwander, B. (2017). Meta-analysis of
   few small studies in orphan diseases. Research Synthesis Methods, 8(1), 79-91.
   https://doi.org/10.1002/jrsm.1217
.. [2] Röver, C., Bender, R., Dias, S., Schmid, C. H., Schmidli, H., Sturtz, S., Weber,
   S., & Friede, T. (2021). On weakly informative prior distributions for the
   heterogeneity parameter in Bayesian random-effects meta-analysis. Research Synthesis
   Methods, 12(4), 448-474. https://doi.org/10.1002/jrsm.1475
.. [3] Turner, R. M., Jackson, D., Wei, Y., Thompson, S. G., & Higgins, J. P. T. (2015).
   Predictive distributions for between-study heterogeneity and simple methods for their
   application in Bayesian meta-analysis. Statistics in Medicine, 34(6), 984-998.
   https://doi.org/10.1002/sim.6381
.. [4] Rhodes, K. M., Turner, R. M., & Higgins, J. P. T. (2015). Predictive distributions
   were developed for the extent of heterogeneity in meta-analyses of continuous outcome
   data. Journal of Clinical Epidemiology, 68(1), 52-60.
   https://doi.org/10.1016/j.jclinepi.2014.08.012
.. [5] Bodnar, O., Link, A., Arendacká, B., Possolo, A., & Elster, C. (2017). Bayesian
   estimation in random effects meta-analysis using a non-informative prior. Statistics
   in Medicine, 36(2), 378-399. https://doi.org/10.1002/sim.7156
.. [6] Gelman, A. (2006). Prior distributions for variance parameters in hierarchical
   models. Bayesian Analysis, 1(3), 515-534. https://doi.org/10.1214/06-BA117A
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np
from scipy import special, stats

from ._typing import FloatArray

__all__ = [
    "COMPARATORS",
    "RHODES2015_AREAS",
    "RHODES2015_COMPARISONS",
    "RHODES2015_OUTCOMES",
    "TAU_PRIORS",
    "TURNER2015_COMPARISONS",
    "TURNER2015_OUTCOMES",
    "Exponential",
    "HalfCauchy",
    "HalfNormal",
    "HalfStudentT",
    "ImproperUniform",
    "Jeffreys",
    "LogNormal",
    "LogNormalTau2",
    "LogStudentTTau2",
    "NormalPrior",
    "PointMass",
    "TauPrior",
    "Uniform",
    "UserPrior",
    "as_tau_prior",
    "rhodes2015",
    "turner2015",
]

_LOG2 = math.log(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            msg = f"`{name}` must be a number, got {value!r}"
            raise TypeError(msg)
        if not (math.isfinite(float(value)) and float(value) > 0):
            msg = f"`{name}` must be finite and positive, got {value!r}"
            raise ValueError(msg)

    return check


def _finite(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            msg = f"`{name}` must be a number, got {value!r}"
            raise TypeError(msg)
        if not math.isfinite(float(value)):
            msg = f"`{name}` must be finite, got {value!r}"
            raise ValueError(msg)

    return check


def _arr(tau: Any) -> FloatArray:
    return np.asarray(tau, dtype=np.float64)


class TauPrior:
    """Base class of the priors for τ (the between-study standard deviation, τ ≥ 0).

    Subclasses define :meth:`logpdf` (on τ ≥ 0; ``-inf`` outside the support), and, where
    closed, :meth:`cdf`; class attributes give the registry `name`, the `definition`, the
    `reference`, whether the prior is `proper`, and `tail_exponent`: the density falls
    like τ^(-a) for large τ (``inf`` for lighter tails; it decides whether posterior
    moments exist).
    """

    name: ClassVar[str] = ""
    definition: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    proper: ClassVar[bool] = True
    #: density ∝ τ^(-tail_exponent) for large τ (inf: lighter than any power)
    tail_exponent: ClassVar[float] = math.inf
    #: the prior depends on the studies' variances (Jeffreys)
    needs_data: ClassVar[bool] = False

    @property
    def upper(self) -> float:
        """Upper end of the support (``inf`` unless bounded)."""
        return math.inf

    def logpdf(self, tau: Any) -> FloatArray:
        """Log density at `tau` (``-inf`` outside the support)."""
        raise NotImplementedError

    def pdf(self, tau: Any) -> FloatArray:
        """Density at `tau` (an improper prior's unnormalised density)."""
        with np.errstate(under="ignore"):
            return np.exp(self.logpdf(tau))

    def cdf(self, tau: Any) -> FloatArray:
        """Cumulative distribution function (proper priors with a closed form)."""
        msg = f"the {self.name} prior has no closed-form CDF"
        raise NotImplementedError(msg)

    def scale_hint(self) -> float:
        """A typical magnitude of τ under the prior (its 90% quantile; ``inf`` if none):
        used only to place the integration grid, never in a result."""
        return math.inf

    def describe(self) -> str:
        """The prior as printed in summaries, e.g. ``half-normal(scale = 0.5)``."""
        cls: Any = type(self)
        fields = ", ".join(f"{a.name} = {getattr(self, a.name):g}" for a in attrs.fields(cls))
        return f"{self.name}({fields})"

    def log_density_data(self, tau: FloatArray, v: FloatArray, present: Any) -> FloatArray:
        """Log density at `tau` (shape ``(m, n)``) for analyses with variances `v`
        (``(m, k)``, `present` marks the studies): data-free priors ignore `v`."""
        return self.logpdf(tau)


def _halfnormal_logpdf(tau: FloatArray, scale: float) -> FloatArray:
    z = tau / scale
    out = _LOG2 - _LOG_SQRT_2PI - math.log(scale) - 0.5 * z * z
    return np.where(tau >= 0, out, -np.inf)


@attrs.frozen
class HalfNormal(TauPrior):
    """Half-normal prior: τ is the absolute value of X ~ N(0, scale²) (weakly informative;
    Friede et al. 2017)."""

    scale: float = attrs.field(converter=float, validator=_positive("scale"))
    name: ClassVar[str] = "half-normal"
    definition: ClassVar[str] = "p(tau) = 2/scale * phi(tau/scale), tau >= 0"
    reference: ClassVar[str] = "Friede et al. (2017), Res Synth Methods 8(1):79-91"

    def logpdf(self, tau: Any) -> FloatArray:
        return _halfnormal_logpdf(_arr(tau), self.scale)

    def cdf(self, tau: Any) -> FloatArray:
        t = np.maximum(_arr(tau), 0.0)
        return special.erf(t / (self.scale * math.sqrt(2.0)))  # type: ignore[no-any-return]

    def scale_hint(self) -> float:
        return 1.6449 * self.scale


@attrs.frozen
class HalfStudentT(TauPrior):
    """Half-Student-t prior: τ is the absolute value of X ~ scale · t_df (Gelman 2006)."""

    scale: float = attrs.field(converter=float, validator=_positive("scale"))
    df: float = attrs.field(converter=float, validator=_positive("df"))
    name: ClassVar[str] = "half-Student-t"
    definition: ClassVar[str] = "p(tau) = 2/scale * t_df(tau/scale), tau >= 0"
    reference: ClassVar[str] = "Gelman (2006), Bayesian Anal 1(3):515-534"

    @property
    def tail_exponent(self) -> float:  # type: ignore[override]
        return self.df + 1.0

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        out = _LOG2 + stats.t.logpdf(t / self.scale, self.df) - math.log(self.scale)
        return np.where(t >= 0, out, -np.inf)

    def cdf(self, tau: Any) -> FloatArray:
        t = np.maximum(_arr(tau), 0.0)
        return 2.0 * stats.t.cdf(t / self.scale, self.df) - 1.0  # type: ignore[no-any-return]

    def scale_hint(self) -> float:
        return float(self.scale * stats.t.ppf(0.95, self.df))


@attrs.frozen
class HalfCauchy(TauPrior):
    """Half-Cauchy prior: τ is the absolute value of X ~ Cauchy(0, scale) (Gelman 2006;
    the half-Student-t with df = 1)."""

    scale: float = attrs.field(converter=float, validator=_positive("scale"))
    name: ClassVar[str] = "half-Cauchy"
    definition: ClassVar[str] = "p(tau) = 2 / (pi * scale * (1 + (tau/scale)^2)), tau >= 0"
    reference: ClassVar[str] = "Gelman (2006), Bayesian Anal 1(3):515-534"
    tail_exponent: ClassVar[float] = 2.0

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        z = t / self.scale
        out = _LOG2 - math.log(math.pi * self.scale) - np.log1p(z * z)
        return np.where(t >= 0, out, -np.inf)

    def cdf(self, tau: Any) -> FloatArray:
        t = np.maximum(_arr(tau), 0.0)
        return (2.0 / math.pi) * np.arctan(t / self.scale)

    def scale_hint(self) -> float:
        return self.scale * math.tan(0.45 * math.pi)


@attrs.frozen
class Exponential(TauPrior):
    """Exponential prior with rate λ: p(τ) = λ exp(-λτ) (Röver et al. 2021)."""

    rate: float = attrs.field(converter=float, validator=_positive("rate"))
    name: ClassVar[str] = "exponential"
    definition: ClassVar[str] = "p(tau) = rate * exp(-rate * tau), tau >= 0"
    reference: ClassVar[str] = "Röver et al. (2021), Res Synth Methods 12(4):448-474"

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        return np.where(t >= 0, math.log(self.rate) - self.rate * t, -np.inf)

    def cdf(self, tau: Any) -> FloatArray:
        return -np.expm1(-self.rate * np.maximum(_arr(tau), 0.0))

    def scale_hint(self) -> float:
        return math.log(10.0) / self.rate


@attrs.frozen
class Uniform(TauPrior):
    """Uniform prior on [0, upper] (proper)."""

    upper_limit: float = attrs.field(converter=float, validator=_positive("upper_limit"))
    name: ClassVar[str] = "uniform"
    definition: ClassVar[str] = "p(tau) = 1/upper_limit, 0 <= tau <= upper_limit"
    reference: ClassVar[str] = "Gelman (2006), Bayesian Anal 1(3):515-534"

    @property
    def upper(self) -> float:
        return self.upper_limit

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        inside = (t >= 0) & (t <= self.upper_limit)
        return np.where(inside, -math.log(self.upper_limit), -np.inf)

    def cdf(self, tau: Any) -> FloatArray:
        return np.clip(_arr(tau) / self.upper_limit, 0.0, 1.0)

    def scale_hint(self) -> float:
        return self.upper_limit


@attrs.frozen
class LogNormal(TauPrior):
    """Log-normal prior on τ: log τ ~ N(mu, sigma²)."""

    mu: float = attrs.field(converter=float, validator=_finite("mu"))
    sigma: float = attrs.field(converter=float, validator=_positive("sigma"))
    name: ClassVar[str] = "log-normal"
    definition: ClassVar[str] = "log(tau) ~ Normal(mu, sigma^2)"
    reference: ClassVar[str] = "Röver et al. (2021), Res Synth Methods 12(4):448-474"

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        with np.errstate(divide="ignore", invalid="ignore"):
            lt = np.log(t)
            z = (lt - self.mu) / self.sigma
            out = -_LOG_SQRT_2PI - math.log(self.sigma) - lt - 0.5 * z * z
        return np.where(t > 0, out, -np.inf)

    def cdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        with np.errstate(divide="ignore"):
            return special.ndtr((np.log(np.maximum(t, 0.0)) - self.mu) / self.sigma)  # type: ignore[no-any-return]

    def scale_hint(self) -> float:
        return math.exp(self.mu + 1.2816 * self.sigma)


@attrs.frozen
class LogNormalTau2(LogNormal):
    """Log-normal prior on τ² (Turner et al. 2015): log τ² ~ N(mu2, sigma2²).

    Then log τ ~ N(mu2/2, (sigma2/2)²): the density used is that of τ. Turner et al.
    tabulate (mu2, sigma2) for log odds ratios by outcome type and comparison (their
    Table IV); pass the pair for your setting.
    """

    mu: float = attrs.field(init=False)
    sigma: float = attrs.field(init=False)
    mu2: float = attrs.field(converter=float, validator=_finite("mu2"))
    sigma2: float = attrs.field(converter=float, validator=_positive("sigma2"))
    name: ClassVar[str] = "log-normal on tau^2"
    definition: ClassVar[str] = "log(tau^2) ~ Normal(mu2, sigma2^2)"
    reference: ClassVar[str] = "Turner et al. (2015), Stat Med 34(6):984-998"

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "mu", self.mu2 / 2.0)
        object.__setattr__(self, "sigma", self.sigma2 / 2.0)

    def describe(self) -> str:
        return f"log-normal on tau^2(mu = {self.mu2:g}, sigma = {self.sigma2:g})"


@attrs.frozen
class LogStudentTTau2(TauPrior):
    """Log-Student-t prior on τ² (Rhodes et al. 2015): log τ² ~ location + scale · t_df.

    Then log τ ~ location/2 + (scale/2) · t_df. Rhodes et al. tabulate (location, scale)
    with df = 5 for standardised mean differences by outcome type, comparison and medical
    area; pass the pair for your setting.
    """

    location: float = attrs.field(converter=float, validator=_finite("location"))
    scale: float = attrs.field(converter=float, validator=_positive("scale"))
    df: float = attrs.field(default=5.0, converter=float, validator=_positive("df"))
    name: ClassVar[str] = "log-Student-t on tau^2"
    definition: ClassVar[str] = "log(tau^2) ~ location + scale * t_df"
    reference: ClassVar[str] = "Rhodes et al. (2015), J Clin Epidemiol 68(1):52-60"

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        s = self.scale / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            lt = np.log(t)
            out = stats.t.logpdf((lt - self.location / 2.0) / s, self.df) - math.log(s) - lt
        return np.where(t > 0, out, -np.inf)

    def cdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        with np.errstate(divide="ignore"):
            z = (np.log(np.maximum(t, 0.0)) - self.location / 2.0) / (self.scale / 2.0)
        return stats.t.cdf(z, self.df)  # type: ignore[no-any-return]

    def scale_hint(self) -> float:
        return math.exp(self.location / 2.0 + self.scale / 2.0 * stats.t.ppf(0.9, self.df))


@attrs.frozen
class ImproperUniform(TauPrior):
    """The improper uniform prior p(τ) ∝ 1 on τ ≥ 0 (bayesmeta's default; use with care).

    The posterior is proper only with enough studies: k ≥ 3 with a flat μ prior, k ≥ 2
    with a normal μ prior.
    """

    name: ClassVar[str] = "improper uniform"
    definition: ClassVar[str] = "p(tau) = 1, tau >= 0 (improper)"
    reference: ClassVar[str] = "Röver (2020), J Stat Softw 93(6):1-51"
    proper: ClassVar[bool] = False
    tail_exponent: ClassVar[float] = 0.0

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        return np.where(t >= 0, 0.0, -np.inf)

    def describe(self) -> str:
        return "improper uniform"


@attrs.frozen
class Jeffreys(TauPrior):
    """The Jeffreys prior for τ in the normal-normal model (Bodnar et al. 2017), improper:
    p(τ) ∝ sqrt(Σ τ² / (σ_i² + τ²)²), which depends on the studies' variances σ_i²."""

    name: ClassVar[str] = "Jeffreys"
    definition: ClassVar[str] = "p(tau) proportional to sqrt(sum_i (tau / (v_i + tau^2))^2)"
    reference: ClassVar[str] = "Bodnar et al. (2017), Stat Med 36(2):378-399"
    proper: ClassVar[bool] = False
    tail_exponent: ClassVar[float] = 1.0
    needs_data: ClassVar[bool] = True

    def logpdf(self, tau: Any) -> FloatArray:
        msg = "the Jeffreys prior depends on the studies' variances: use log_density_data"
        raise TypeError(msg)

    def logpdf_for(self, tau: Any, vi: Any) -> FloatArray:
        """Unnormalised log density at `tau` for studies with variances `vi`."""
        t = _arr(tau)
        v = _arr(vi)
        terms = (t[..., None] / (v + t[..., None] ** 2)) ** 2
        with np.errstate(divide="ignore"):
            return 0.5 * np.log(terms.sum(axis=-1))  # type: ignore[no-any-return]

    def log_density_data(self, tau: FloatArray, v: FloatArray, present: Any) -> FloatArray:
        vv = np.where(present, v, np.inf)[:, None, :]
        terms = (tau[..., None] / (vv + tau[..., None] ** 2)) ** 2
        with np.errstate(divide="ignore"):
            return 0.5 * np.log(terms.sum(axis=-1))  # type: ignore[no-any-return]

    def describe(self) -> str:
        return "Jeffreys (Bodnar et al. 2017)"


@attrs.frozen
class PointMass(TauPrior):
    """All prior mass at τ = tau0: the random-effects model with τ known (a limiting case;
    with a flat μ prior the posterior of μ is normal with :func:`ketameta.pool`'s estimate
    and standard error at ``tau2=tau0**2``)."""

    tau0: float = attrs.field(converter=float)
    name: ClassVar[str] = "point mass"
    definition: ClassVar[str] = "P(tau = tau0) = 1"
    reference: ClassVar[str] = "Röver (2020), J Stat Softw 93(6):1-51"

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.tau0) and self.tau0 >= 0):
            msg = f"`tau0` must be finite and non-negative, got {self.tau0!r}"
            raise ValueError(msg)

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        return np.where(t == self.tau0, np.inf, -np.inf)

    def cdf(self, tau: Any) -> FloatArray:
        return np.where(_arr(tau) >= self.tau0, 1.0, 0.0)


@attrs.frozen
class UserPrior(TauPrior):
    """A prior given by a density function of τ (vectorised: takes and returns arrays).

    `density` need not be normalised when ``proper=False``; with ``proper=True`` (the
    default) it must integrate to 1 over τ ≥ 0 (checked numerically by :func:`bayes_pool`
    for the marginal likelihood). `tail_exponent` (if known) says how fast it falls.
    """

    density: Callable[[FloatArray], Any] = attrs.field()
    label: str = "user-defined"
    is_proper: bool = True
    tail: float = math.nan
    name: ClassVar[str] = "user-defined"
    definition: ClassVar[str] = "p(tau) = density(tau)"
    reference: ClassVar[str] = "(user-supplied)"

    @density.validator
    def _check(self, _attribute: Any, value: Any) -> None:
        if not callable(value):
            msg = f"`density` must be callable, got {type(value).__name__}"
            raise TypeError(msg)

    @property
    def proper(self) -> bool:  # type: ignore[override]
        return self.is_proper

    @property
    def tail_exponent(self) -> float:  # type: ignore[override]
        return self.tail

    def logpdf(self, tau: Any) -> FloatArray:
        t = _arr(tau)
        d = np.asarray(self.density(t), dtype=np.float64)
        if d.shape != t.shape:
            d = np.broadcast_to(d, t.shape)
        if np.any(d < 0) or np.any(np.isnan(d)):
            msg = "the `tau_prior` density returned negative or NaN values"
            raise ValueError(msg)
        with np.errstate(divide="ignore"):
            return np.where(t >= 0, np.log(d), -np.inf)

    def describe(self) -> str:
        return self.label


@attrs.frozen
class NormalPrior:
    """Normal prior for the overall effect μ: N(mean, sd²)."""

    mean: float = attrs.field(converter=float, validator=_finite("mean"))
    sd: float = attrs.field(converter=float, validator=_positive("sd"))

    def describe(self) -> str:
        return f"normal(mean = {self.mean:g}, sd = {self.sd:g})"

    def logpdf(self, mu: Any) -> FloatArray:
        z = (_arr(mu) - self.mean) / self.sd
        return -_LOG_SQRT_2PI - math.log(self.sd) - 0.5 * z * z


# ---------------------------------------------------------------------------------------------
# empirical priors from the Cochrane Library: Turner et al. (2015), Rhodes et al. (2015)

#: the comparators of Turner et al. and Rhodes et al. (a comparison is a pair of them)
COMPARATORS = ("pharmacological", "non-pharmacological", "placebo / control")

#: Turner et al. (2015), Table IV: the 16 outcome types (rows)
TURNER2015_OUTCOMES = (
    "all-cause mortality",
    "obstetric outcomes",
    "cause-specific mortality / major morbidity event / composite (mortality or morbidity)",
    "resource use / hospital stay / process",
    "surgical / device related success / failure",
    "withdrawals / drop-outs",
    "internal / structure-related outcomes",
    "general physical health indicators",
    "adverse events",
    "infection / onset of new disease",
    "signs / symptoms reflecting continuation / end of condition",
    "pain",
    "quality of life / functioning (dichotomized)",
    "mental health indicators",
    "biological markers (dichotomized)",
    "subjective outcomes (various)",
)
#: Turner et al. (2015), Table IV: the 5 comparison types (columns)
TURNER2015_COMPARISONS = (
    "pharmacological vs. placebo / control",
    "pharmacological vs. pharmacological",
    "non-pharmacological vs. placebo / control",
    "non-pharmacological vs. pharmacological",
    "non-pharmacological vs. non-pharmacological",
)
# Table IV, mean μ of log τ² ~ N(μ, σ²): one row per comparison type, outcomes in the order
# of TURNER2015_OUTCOMES
_TURNER_MU = (
    (-3.95, -3.52, -3.71, -2.34, -2.14, -2.99, -2.71, -2.29,
     -1.87, -2.49, -2.06, -1.83, -2.54, -2.12, -1.77, -2.70),
    (-4.18, -3.75, -3.95, -2.58, -2.37, -3.23, -2.94, -2.53,
     -2.10, -2.73, -2.29, -2.06, -2.78, -2.35, -2.00, -2.93),
    (-4.17, -3.74, -3.93, -2.56, -2.36, -3.21, -2.93, -2.51,
     -2.10, -2.71, -2.28, -2.05, -2.77, -2.34, -1.99, -2.92),
    (-2.92, -2.49, -2.68, -1.31, -1.11, -1.96, -1.67, -1.26,
     -0.84, -1.46, -1.03, -0.80, -1.51, -1.09, -0.74, -1.67),
    (-3.50, -3.08, -3.27, -1.90, -1.69, -2.55, -2.26, -1.85,
     -1.43, -2.05, -1.61, -1.38, -2.10, -1.67, -1.33, -2.26),
)  # fmt: skip
# Table IV, standard deviation σ
_TURNER_SIGMA = (
    (1.34, 1.74, 1.74, 1.74, 1.74, 1.74, 1.74, 1.53,
     1.52, 1.52, 1.51, 1.52, 1.54, 1.53, 1.52, 1.52),
    (1.41, 1.79, 1.79, 1.79, 1.79, 1.79, 1.79, 1.58,
     1.58, 1.58, 1.58, 1.58, 1.60, 1.60, 1.58, 1.58),
    (1.55, 1.91, 1.91, 1.91, 1.91, 1.91, 1.92, 1.72,
     1.71, 1.71, 1.71, 1.71, 1.73, 1.72, 1.71, 1.71),
    (1.02, 1.50, 1.51, 1.50, 1.50, 1.51, 1.51, 1.25,
     1.24, 1.24, 1.24, 1.25, 1.27, 1.27, 1.24, 1.25),
    (1.26, 1.68, 1.68, 1.68, 1.68, 1.68, 1.68, 1.46,
     1.45, 1.45, 1.45, 1.45, 1.47, 1.47, 1.45, 1.45),
)  # fmt: skip
#: Turner et al. (2015), p. 993: the marginal setting (any outcome, any comparison)
TURNER2015_MARGINAL = (-2.56, 1.74)

#: Rhodes et al. (2015), Table 3 (and Appendix Tables A.3.1, A.3.2): the 8 outcome types
RHODES2015_OUTCOMES = (
    "obstetric outcome",
    "resource use and hospital stay / process",
    "internal and external structure-related outcome",
    "general physical health and adverse event and pain and quality of life / functioning",
    "signs / symptoms reflecting continuation / end of condition and infection / onset of "
    "new acute / chronic disease",
    "mental health outcome",
    "biological marker",
    "various subjectively measured outcomes",
)
#: Rhodes et al. (2015): the 3 comparison types
RHODES2015_COMPARISONS = (
    "pharmacological vs. placebo / control",
    "pharmacological vs. pharmacological",
    "non-pharmacological (any)",
)
#: Rhodes et al. (2015): the medical areas (Table 3: other; A.3.1: respiratory; A.3.2: cancer)
RHODES2015_AREAS = ("other", "respiratory", "cancer")
# location and scale of log τ² ~ location + scale · t_5: per area, one row per comparison
# type, outcomes in the order of RHODES2015_OUTCOMES
_RHODES = {
    "other": (
        ((-4.13, -2.55, -2.43, -3.16, -3.00, -2.99, -3.41, -2.76),
         (-4.40, -2.83, -2.70, -3.44, -3.27, -3.27, -3.68, -3.03),
         (-3.99, -2.41, -2.29, -3.02, -2.86, -3.85, -3.27, -2.62)),
        ((2.34, 2.73, 2.50, 2.50, 2.50, 2.16, 2.83, 2.58),
         (2.31, 2.70, 2.46, 2.44, 2.47, 2.14, 2.78, 2.59),
         (2.11, 2.57, 2.32, 2.27, 2.33, 1.93, 2.66, 2.41)),
    ),
    "respiratory": (
        ((-6.03, -4.46, -4.33, -5.07, -4.90, -4.90, -5.31, -4.66),
         (-6.31, -4.73, -4.61, -5.34, -5.18, -5.17, -5.59, -4.94),
         (-5.89, -4.32, -4.19, -4.93, -4.76, -4.76, -5.17, -4.52)),
        ((2.36, 2.74, 2.51, 2.51, 2.50, 2.17, 2.83, 2.59),
         (2.31, 2.70, 2.46, 2.45, 2.47, 2.14, 2.78, 2.59),
         (2.21, 2.57, 2.33, 2.28, 2.33, 1.94, 2.66, 2.41)),
    ),
    "cancer": (
        ((-1.57, 0.01, -0.13, -0.60, -0.44, -0.43, -0.85, -0.20),
         (-1.85, -0.27, -0.14, -0.88, -0.71, -0.71, -1.13, -0.48),
         (-1.43, 0.15, 0.27, -0.46, -0.30, -0.29, -0.71, -0.06)),
        ((2.45, 2.83, 2.61, 2.61, 2.60, 2.28, 2.93, 2.68),
         (2.41, 2.79, 2.56, 2.55, 2.57, 2.25, 2.87, 2.68),
         (2.24, 2.68, 2.45, 2.40, 2.46, 2.08, 2.78, 2.53)),
    ),
}  # fmt: skip
#: Rhodes et al. (2015), beginning of section 3.3: the general setting
RHODES2015_MARGINAL = (-3.44, 2.59)


def _match(value: Any, choices: tuple[str, ...], name: str) -> int:
    """Index of `value` among `choices`: exact, else the unique choice it starts (case
    ignored), as bayesmeta's partial matching."""
    if not isinstance(value, str):
        msg = f"`{name}` must be a string, got {value!r}"
        raise TypeError(msg)
    key = value.strip().lower()
    lowered = [c.lower() for c in choices]
    if key in lowered:
        return lowered.index(key)
    hits = [i for i, c in enumerate(lowered) if c.startswith(key)] if key else []
    if len(hits) == 1:
        return hits[0]
    what = "matches more than one" if hits else "is not one"
    msg = f"`{name}`={value!r} {what} of {list(choices)}"
    raise ValueError(msg)


def _comparison(comparator1: Any, comparator2: Any) -> tuple[int, int]:
    """The two comparators as indices of :data:`COMPARATORS` (sorted); both placebo is not
    a comparison."""
    pair = sorted(
        (
            _match(comparator1, COMPARATORS, "comparator1"),
            _match(comparator2, COMPARATORS, "comparator2"),
        )
    )
    if pair == [2, 2]:
        msg = "`comparator1` and `comparator2` cannot both be 'placebo / control'"
        raise ValueError(msg)
    return pair[0], pair[1]


def turner2015(
    outcome: str | None = None,
    comparator1: str = "pharmacological",
    comparator2: str = "placebo / control",
) -> LogNormalTau2:
    """The predictive distribution of τ² of Turner et al. (2015) for a meta-analysis of
    log odds ratios, as a prior: ``log τ² ~ N(μ, σ²)`` (:class:`LogNormalTau2`).

    Parameters
    ----------
    outcome : str or None
        One of :data:`TURNER2015_OUTCOMES` (a unique case-insensitive prefix such as
        ``"surgical"`` suffices); None: the marginal setting (any outcome and comparison,
        ``μ = -2.56``, ``σ = 1.74``, p. 993).
    comparator1, comparator2 : str
        The two interventions compared, each ``"pharmacological"``,
        ``"non-pharmacological"`` or ``"placebo / control"`` (in either order; not both
        placebo); they select one of the five comparison types of Table IV.

    Returns
    -------
    LogNormalTau2

    Notes
    -----
    Turner et al. fitted a hierarchical model to 14,886 meta-analyses of binary outcomes in
    the Cochrane Database of Systematic Reviews and tabulate, in Table IV, the
    log-normal predictive distribution of τ² for a new meta-analysis by outcome type (16)
    and type of comparison (5). The values here are those of Table IV as transcribed by
    bayesmeta's ``TurnerEtAlPrior`` (Röver 2020) and by rnmamod's ``table_tau2_prior``
    (the two transcriptions agree). Since τ² is log-normal, τ is log-normal with half the
    mean and half the SD.

    References
    ----------
    Turner, R. M., Jackson, D., Wei, Y., Thompson, S. G., & Higgins, J. P. T. (2015).
    Statistics in Medicine, 34(6), 984-998. https://doi.org/10.1002/sim.6381

    Examples
    --------
    >>> from ketameta import priors
    >>> p = priors.turner2015("surgical", "pharmacological", "placebo / control")
    >>> p.mu2, p.sigma2
    (-2.14, 1.74)
    >>> p.describe()
    'log-normal on tau^2(mu = -2.14, sigma = 1.74)'
    >>> round(float(p.cdf(0.5)), 4)  # P(τ < 0.5) = Φ((log 0.25 + 2.14) / 1.74)
    0.6676
    """
    if outcome is None:
        mu2, sigma2 = TURNER2015_MARGINAL
    else:
        row = _match(outcome, TURNER2015_OUTCOMES, "outcome")
        c = _TURNER_COLUMN[_comparison(comparator1, comparator2)]
        mu2, sigma2 = _TURNER_MU[c][row], _TURNER_SIGMA[c][row]
    return LogNormalTau2(mu2=mu2, sigma2=sigma2)


# (pharma, pharma), (pharma, non-pharma), (pharma, placebo), (non-pharma, non-pharma),
# (non-pharma, placebo) -> the column of Table IV
_TURNER_COLUMN = {(0, 0): 1, (0, 1): 3, (0, 2): 0, (1, 1): 4, (1, 2): 2}
# Rhodes et al.: pharma vs placebo, pharma vs pharma, and any non-pharmacological comparison
_RHODES_COLUMN = {(0, 0): 1, (0, 1): 2, (0, 2): 0, (1, 1): 2, (1, 2): 2}


def rhodes2015(
    outcome: str | None = None,
    comparator1: str = "pharmacological",
    comparator2: str = "placebo / control",
    area: str = "other",
) -> LogStudentTTau2:
    """The predictive distribution of τ² of Rhodes et al. (2015) for a meta-analysis of
    standardised mean differences, as a prior: ``log τ² ~ location + scale · t₅``
    (:class:`LogStudentTTau2`).

    Parameters
    ----------
    outcome : str or None
        One of :data:`RHODES2015_OUTCOMES` (or a unique case-insensitive prefix); None: the
        general setting (``location = -3.44``, ``scale = 2.59``, section 3.3).
    comparator1, comparator2 : str
        ``"pharmacological"``, ``"non-pharmacological"`` or ``"placebo / control"`` (not
        both placebo): pharmacological vs placebo/control, pharmacological vs
        pharmacological, or any comparison with a non-pharmacological intervention.
    area : {"other", "respiratory", "cancer"}
        The medical area: Table 3 (areas other than respiratory diseases and cancer),
        Appendix Table A.3.1 (respiratory) or A.3.2 (cancer).

    Returns
    -------
    LogStudentTTau2

    Notes
    -----
    Rhodes et al. analysed the meta-analyses of continuous outcomes (standardised mean
    differences) from the Cochrane Database of Systematic Reviews and give log-t
    predictive distributions (5 degrees of freedom) of τ². The values are those of their
    Tables 3, A.3.1 and A.3.2 as transcribed by bayesmeta's ``RhodesEtAlPrior`` (Röver
    2020) and rnmamod's ``table_tau2_prior``, which agree.
    The locations of each table are an outcome effect plus a comparison effect to the
    printed rounding (the model's additive structure), except two cells, identical in
    both transcriptions and kept as transcribed, probably misprints: -3.85 for a mental
    health outcome with a non-pharmacological comparison, other areas (additive value
    -2.85), and -0.13 for internal and external structure-related outcomes,
    pharmacological vs placebo, cancer (additive value +0.13). rnmamod prints -0.01 for
    resource use, pharmacological vs placebo, cancer, where bayesmeta and the additive
    structure give +0.01.

    References
    ----------
    Rhodes, K. M., Turner, R. M., & Higgins, J. P. T. (2015). Journal of Clinical
    Epidemiology, 68(1), 52-60. https://doi.org/10.1016/j.jclinepi.2014.08.012

    Examples
    --------
    >>> from ketameta import priors
    >>> p = priors.rhodes2015("obstetric", "pharmacological", "placebo / control")
    >>> p.location, p.scale, p.df
    (-4.13, 2.34, 5.0)
    """
    if outcome is None:
        location, scale = RHODES2015_MARGINAL
    else:
        row = _match(outcome, RHODES2015_OUTCOMES, "outcome")
        c = _RHODES_COLUMN[_comparison(comparator1, comparator2)]
        table = _RHODES[RHODES2015_AREAS[_match(area, RHODES2015_AREAS, "area")]]
        location, scale = table[0][c][row], table[1][c][row]
    return LogStudentTTau2(location=location, scale=scale, df=5.0)


#: τ priors by name (the classes; instantiate with their parameters)
TAU_PRIORS: dict[str, type[TauPrior]] = {
    cls.name: cls
    for cls in (
        HalfNormal,
        HalfStudentT,
        HalfCauchy,
        Exponential,
        Uniform,
        LogNormal,
        LogNormalTau2,
        LogStudentTTau2,
        ImproperUniform,
        Jeffreys,
        PointMass,
        UserPrior,
    )
}

_BY_STRING: dict[str, Callable[[], TauPrior]] = {
    "uniform": ImproperUniform,
    "improper uniform": ImproperUniform,
    "jeffreys": Jeffreys,
}


def as_tau_prior(prior: Any) -> TauPrior:
    """A :class:`TauPrior` from a prior object, a name of a parameter-free prior
    (``"uniform"``, ``"jeffreys"``) or a density function of τ."""
    if isinstance(prior, TauPrior):
        return prior
    if isinstance(prior, str):
        key = prior.lower()
        if key not in _BY_STRING:
            msg = (
                f"unknown `tau_prior` {prior!r}; by name: {sorted(_BY_STRING)}; otherwise "
                "pass a prior object such as ketameta.priors.HalfNormal(0.5) or a density function"
            )
            raise ValueError(msg)
        return _BY_STRING[key]()
    if callable(prior):
        return UserPrior(prior)
    msg = f"`tau_prior` must be a prior object, a name or a density function; got {prior!r}"
    raise TypeError(msg)
