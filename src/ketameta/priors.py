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
    "TAU_PRIORS",
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
