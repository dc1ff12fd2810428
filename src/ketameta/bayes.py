"""Bayesian random-effects meta-analysis computed exactly: :func:`bayes_pool`.

The normal-normal hierarchical model (NNHM) with a prior on the heterogeneity τ and a flat
or normal prior on the overall effect μ, computed as R's bayesmeta does (Röver 2020 [1]_):
conditional on τ the posterior is normal, and the one remaining integral, over τ, is done
numerically to a stated accuracy (no Markov chain Monte Carlo, no sampling error).
:func:`bayes_pool_many` runs many analyses at once.

References
----------
.. [1] Röver, C. (2020). Bayesian random-effects meta-analysis using the bayesmeta R
   package. Journal of Statistical Software, 93(6), 1-51.
   https://doi.org/10.18637/jss.v093.i06
.. [2] Röver, C., & Friede, T. (2017). Discrete approximation of a mixture distribution
   via restricted divergence. Journal of Computational and Graphical Statistics, 26(1),
   217-222. https://doi.org/10.1080/10618600.2016.1276840
.. [3] Piessens, R., de Doncker-Kapenga, E., Überhuber, C. W., & Kahaner, D. K. (1983).
   QUADPACK: A Subroutine Package for Automatic Integration. Springer.
   https://doi.org/10.1007/978-3-642-61786-7
.. [4] Verdinelli, I., & Wasserman, L. (1995). Computing Bayes factors using a
   generalization of the Savage-Dickey density ratio. Journal of the American
   Statistical Association, 90(430), 614-618. https://doi.org/10.1080/01621459.1995.10476554
.. [5] Friede, T., Röver, C., Wandel, S., & Neuenschwander, B. (2017). Meta-analysis of
   few small studies in orphan diseases. Research Synthesis Methods, 8(1), 79-91.
   https://doi.org/10.1002/jrsm.1217
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import attrs
import numpy as np
from scipy import special

from . import _transf
from ._engine import bayes as _eng
from ._engine.moments import typical_variance
from ._results import array_field, import_pandas, plain, table_lines
from ._typing import ArrayLike, FloatArray
from ._validation import check_choice, check_level, default_labels, strings
from ._warnings import AccuracyWarning, KetametaWarning
from .effect_sizes import EffectSizes
from .pooling import _indices, omitted_lines, prepare_studies
from .priors import NormalPrior, PointMass, TauPrior, as_tau_prior

__all__ = ["BatchBayesResult", "BayesPoolResult", "bayes_pool", "bayes_pool_many"]

#: the distributions a :class:`BayesPoolResult` describes
PARAMETERS = ("tau", "mu", "theta_new", "theta")


def _as_mu_prior(mu_prior: Any) -> NormalPrior | None:
    if mu_prior is None or isinstance(mu_prior, NormalPrior):
        return mu_prior
    if isinstance(mu_prior, tuple | list) and len(mu_prior) == 2:
        return NormalPrior(*mu_prior)
    msg = (
        "`mu_prior` must be None (flat, improper), a (mean, sd) pair or "
        f"ketameta.priors.NormalPrior; got {mu_prior!r}"
    )
    raise TypeError(msg)


def _posterior_proper(prior: TauPrior, mu_prior: NormalPrior | None, k: int) -> None:
    """Raise if an improper τ prior gives an improper posterior (Röver 2020, section 2.4)."""
    if prior.proper or isinstance(prior, PointMass):
        return
    lik = (k - 1) if mu_prior is None else k  # p(y | τ) falls like τ^-(k-1) or τ^-k
    a = prior.tail_exponent
    if math.isnan(a):
        return  # unknown tail: the quadrature's convergence check decides
    if a + lik <= 1.0:
        # the smallest k with a + k - 1 > 1 (flat mu prior) or a + k > 1 (normal mu prior)
        need = math.floor((2.0 if mu_prior is None else 1.0) - a) + 1
        msg = (
            f"the posterior is improper: the {prior.describe()} prior on tau needs at least "
            f"{need} studies with this mu prior (k = {k}); use a proper prior on tau"
        )
        raise ValueError(msg)


def _tail(prior: TauPrior, mu_prior: NormalPrior | None, k: int) -> float:
    """Exponent b of the posterior tail p(τ | y) ∝ τ^-b (inf: lighter than any power)."""
    if math.isfinite(prior.upper) or isinstance(prior, PointMass):
        return math.inf
    a = prior.tail_exponent
    if math.isnan(a):
        return math.inf  # user prior of unknown tail: moments computed, not checked
    return a + ((k - 1) if mu_prior is None else k)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _nan_field() -> Any:
    """A float field that may be NaN (a statistic that does not exist), NaN equal to NaN."""
    return attrs.field(eq=attrs.cmp_using(eq=_same))


@attrs.frozen(kw_only=True)
class _Mixture:
    w: FloatArray
    mean: FloatArray
    sd: FloatArray


@attrs.frozen(kw_only=True, repr=False)
class BayesPoolResult:
    """The result of :func:`bayes_pool`: the posterior of the normal-normal model.

    Attributes
    ----------
    tau_median, tau_mean, tau_sd, tau_ci_lower, tau_ci_upper : float
        Marginal posterior of τ: median, mean, standard deviation and the central
        (equal-tailed) credible interval at `level` (modes: :meth:`mode`). A mean or SD
        that does not exist (heavy posterior tail) is NaN.
    mu_median, mu_mean, mu_sd, mu_ci_lower, mu_ci_upper : float
        Marginal posterior of the overall effect μ.
    pred_median, pred_mean, pred_sd, pred_lower, pred_upper : float
        Predictive distribution of the effect θ_new in a new study (the Bayesian
        prediction interval is ``[pred_lower, pred_upper]``).
    theta_median, theta_mean, theta_sd, theta_ci_lower, theta_ci_upper : ndarray
        Posteriors of the study-specific effects θ_i (the shrinkage estimates).
    log_marginal_likelihood : float
        log p(y): NaN unless both priors are proper (it is not defined otherwise).
    bf_tau0, bf_mu0 : float
        Bayes factors for τ = 0 and μ = 0 against the model (Savage-Dickey ratios
        p(τ=0 | y)/p(τ=0) = p(y | τ=0)/p(y) and likewise for μ (Verdinelli & Wasserman
        1995); > 1 favours the
        point hypothesis). NaN when the tested parameter's prior is improper.
    k : int
        Number of studies used; `yi`, `vi` the data used; `omitted` the input indices
        of studies left out for NaN.
    tau_prior, mu_prior, level
        The settings (``mu_prior`` None: flat, improper).
    integration_error : float
        Estimated relative error of the normalising constant (bounded by `rtol`).
    n_nodes : int
        Number of quadrature nodes in τ.
    measure, labels, omitted_reasons
        As in :class:`~ketameta.pooling.ModelFit`: the measure, one label per input
        study, why the omitted ones were left out.
    """

    tau_median: float
    tau_mean: float = _nan_field()
    tau_sd: float = _nan_field()
    tau_ci_lower: float
    tau_ci_upper: float
    mu_median: float
    mu_mean: float = _nan_field()
    mu_sd: float = _nan_field()
    mu_ci_lower: float
    mu_ci_upper: float
    pred_median: float
    pred_mean: float = _nan_field()
    pred_sd: float = _nan_field()
    pred_lower: float
    pred_upper: float
    theta_median: FloatArray = array_field()
    theta_mean: FloatArray = array_field()
    theta_sd: FloatArray = array_field()
    theta_ci_lower: FloatArray = array_field()
    theta_ci_upper: FloatArray = array_field()
    log_marginal_likelihood: float = _nan_field()
    bf_tau0: float = _nan_field()
    bf_mu0: float = _nan_field()
    k: int
    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    tau_prior: TauPrior = attrs.field(eq=False)
    mu_prior: NormalPrior | None
    level: float
    rtol: float
    integration_error: float
    n_nodes: int
    _post: Any = attrs.field(eq=False, alias="post")
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())

    @property
    def study_labels(self) -> tuple[str, ...]:
        """One label per input study (the defaults "Study 1", ... when none were kept)."""
        n = self.k + len(self.omitted)
        return self.labels if len(self.labels) == n else default_labels(n)

    # --- distributions ---------------------------------------------------------------------
    def _mixture(self, param: str, study: int | None) -> _Mixture:
        post = self._post
        w = post.weights()
        if param == "mu":
            return _Mixture(w=w, mean=post.muhat, sd=np.sqrt(post.var))
        if param == "theta_new":
            return _Mixture(w=w, mean=post.muhat, sd=np.sqrt(post.var + post.tau**2))
        if param == "theta":
            if study is None or not (isinstance(study, int | np.integer) and 0 <= study < self.k):
                msg = f"`study` must be an index 0..{self.k - 1} for param='theta', got {study!r}"
                raise ValueError(msg)
            mean, var = _shrinkage(post, int(study))
            return _Mixture(w=w, mean=mean, sd=np.sqrt(var))
        msg = f"no mixture for {param!r}"  # pragma: no cover
        raise ValueError(msg)  # pragma: no cover

    def _param(self, param: str) -> str:
        param = check_choice(param, "param", (*PARAMETERS, "predictive"))
        return "theta_new" if param == "predictive" else param

    def pdf(self, param: str, x: ArrayLike, *, study: int | None = None) -> FloatArray:
        """Posterior density of `param` (``"tau"``, ``"mu"``, ``"theta_new"`` or
        ``"theta"`` with `study`) at `x`."""
        param = self._param(param)
        xx = np.asarray(x, dtype=np.float64)
        flat = xx.reshape(1, -1)
        if param == "tau":
            if isinstance(self.tau_prior, PointMass):
                msg = "a point-mass prior on tau has no posterior density"
                raise ValueError(msg)
            out = np.where(flat < 0, 0.0, self._post.tau_pdf(flat))
        else:
            mix = self._mixture(param, study)
            out = _eng.mixture_pdf(flat, mix.w, mix.mean, mix.sd)
        return out.reshape(xx.shape)

    def cdf(self, param: str, x: ArrayLike, *, study: int | None = None) -> FloatArray:
        """Posterior cumulative distribution function of `param` at `x` (so
        ``P(μ < c) = result.cdf("mu", c)``)."""
        param = self._param(param)
        xx = np.asarray(x, dtype=np.float64)
        flat = xx.reshape(1, -1)
        if param == "tau":
            out = np.where(flat < 0, 0.0, self._post.tau_cdf(np.maximum(flat, 0.0)))
        else:
            mix = self._mixture(param, study)
            out = _eng.mixture_cdf(flat, mix.w, mix.mean, mix.sd)
        return np.clip(out, 0.0, 1.0).reshape(xx.shape)

    def quantile(self, param: str, p: ArrayLike, *, study: int | None = None) -> FloatArray:
        """Posterior quantile function (inverse CDF) of `param` at probabilities `p`."""
        param = self._param(param)
        pp = np.asarray(p, dtype=np.float64)
        if np.any((pp <= 0) | (pp >= 1)) or np.any(np.isnan(pp)):
            msg = f"`p` must be in the open interval (0, 1), got {p!r}"
            raise ValueError(msg)
        flat = pp.reshape(1, -1)
        if param == "tau":
            out = self._post.tau_quantile(flat)
        else:
            mix = self._mixture(param, study)
            out = _eng.mixture_quantile(flat, mix.w, mix.mean, mix.sd)
        return out.reshape(pp.shape)  # type: ignore[no-any-return]

    def probability(
        self,
        param: str,
        *,
        above: float | None = None,
        below: float | None = None,
        study: int | None = None,
    ) -> float:
        """Posterior probability that `param` lies above `above` and/or below `below`,
        e.g. ``result.probability("mu", above=2.0)`` = P(μ > 2 | y)."""
        if above is None and below is None:
            msg = "give `above`, `below` or both"
            raise TypeError(msg)
        hi = 1.0 if below is None else float(self.cdf(param, below, study=study))
        lo = 0.0 if above is None else float(self.cdf(param, above, study=study))
        return max(hi - lo, 0.0)

    def interval(
        self,
        param: str,
        level: float | None = None,
        *,
        kind: str = "central",
        study: int | None = None,
    ) -> tuple[float, float]:
        """Credible (or, for ``"theta_new"``, prediction) interval of `param`.

        ``kind="central"``: equal tails; ``kind="shortest"``: the shortest interval holding
        `level` probability (the highest-density interval of a unimodal density; its lower
        tail probability is located by golden-section search to 1e-10).
        """
        param = self._param(param)
        lv = self.level if level is None else check_level(level)
        kind = check_choice(kind, "kind", ("central", "shortest"))
        if kind == "central":
            lo, hi = self.quantile(param, [(1 - lv) / 2, (1 + lv) / 2], study=study)
            return float(lo), float(hi)
        if isinstance(self.tau_prior, PointMass) and param == "tau":
            t0 = self.tau_prior.tau0
            return t0, t0

        def neg_length(p: FloatArray) -> FloatArray:
            q = self.quantile(param, np.concatenate((p, p + lv)), study=study)
            return -(q[len(p) :] - q[: len(p)])

        tiny = 1e-12
        p_best = _eng.golden_max(
            neg_length, np.array([tiny]), np.array([1 - lv - tiny]), xtol=1e-10
        )
        length_best = -neg_length(p_best)[0]
        if param == "tau":  # a one-sided interval from 0 when that is shorter
            upper0 = float(self.quantile("tau", lv))
            if upper0 <= length_best:
                return 0.0, upper0
        q = self.quantile(param, [p_best[0], p_best[0] + lv], study=study)
        return float(q[0]), float(q[1])

    def mode(self, param: str, *, study: int | None = None) -> float:
        """Mode of the marginal posterior of `param` (0 for τ when its density falls from 0)."""
        param = self._param(param)
        if param == "tau":
            return float(_tau_mode(self._post)[0])
        mix = self._mixture(param, study)
        lo, hi = self.quantile(param, [0.001, 0.999], study=study)
        grid = np.linspace(lo, hi, 41)[None, :]
        dens = _eng.mixture_pdf(grid, mix.w, mix.mean, mix.sd)[0]
        j = int(dens.argmax())
        a = np.array([grid[0, max(j - 1, 0)]])
        b = np.array([grid[0, min(j + 1, 40)]])
        return float(_eng.mixture_mode(mix.w, mix.mean, mix.sd, a, b)[0])

    def map_estimate(self) -> tuple[float, float]:
        """The joint posterior mode (τ, μ): τ maximising p(τ) p(μ̂(τ)) p(y | μ̂(τ), τ)."""
        t, m = _map_joint(self._post)
        return float(t[0]), float(m[0])

    def ml_estimate(self) -> tuple[float, float]:
        """The joint maximum-likelihood estimate (τ, μ) (τ² by :func:`ketameta.pool`'s ML)."""
        return _ml_joint(self.yi, self.vi)

    def ml_marginal(self) -> tuple[float, float]:
        """The marginal maximum-likelihood estimates (τ, μ) (bayesmeta's "ML marginal").

        τ maximises :math:`p(y \\mid \\tau)`, μ integrated out over its prior (with a flat
        μ prior this is the restricted likelihood: τ² is :func:`ketameta.pool`'s REML
        estimate); μ maximises :math:`p(y \\mid \\mu) = \\int p(y \\mid \\mu, \\tau)
        p(\\tau)\\,d\\tau` (with a flat μ prior the mode of μ's marginal posterior, with a
        normal one the maximum of the posterior density over the prior density). NaN for
        τ when the likelihood does not depend on it (one study and a flat μ prior).
        """
        return _ml_marginal(self)

    def i2(self, tau: ArrayLike | None = None) -> Any:
        """Relative heterogeneity I² = τ²/(τ² + ṽ) (Higgins & Thompson 2002) at τ (default:
        the posterior median of τ), with ṽ the typical within-study variance."""
        w = 1.0 / self.vi
        vt = typical_variance(w) if self.k > 1 else self.vi[0]
        t = np.asarray(self.tau_median if tau is None else tau, dtype=np.float64)
        return t * t / (t * t + vt)

    # --- output ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All statistics as plain Python values (JSON-serialisable; NaN becomes ``None``);
        the priors as their descriptions, with both kinds of interval."""
        d: dict[str, Any] = {}
        for f in attrs.fields(type(self)):
            if f.name in ("_post", "tau_prior", "mu_prior"):
                continue
            d[f.name] = getattr(self, f.name)
        d["tau_prior"] = self.tau_prior.describe()
        d["tau_prior_reference"] = self.tau_prior.reference
        d["mu_prior"] = "flat (improper)" if self.mu_prior is None else self.mu_prior.describe()
        for param in ("tau", "mu", "theta_new"):
            d[f"{param}_mode"] = self.mode(param)
            d[f"{param}_shortest"] = list(self.interval(param, kind="shortest"))
        d["ml_estimate"] = list(self.ml_estimate())
        d["map_estimate"] = list(self.map_estimate())
        return plain(d)  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """A DataFrame with a row per distribution (tau, mu, theta_new) and the columns
        mode, median, mean, sd, lower, upper (central interval); requires pandas."""
        pd = import_pandas()
        rows = []
        for name, pre, lo, hi in (
            ("tau", "tau", "tau_ci_lower", "tau_ci_upper"),
            ("mu", "mu", "mu_ci_lower", "mu_ci_upper"),
            ("theta_new", "pred", "pred_lower", "pred_upper"),
        ):
            rows.append(
                {
                    "parameter": name,
                    "mode": self.mode(name),
                    "median": getattr(self, f"{pre}_median"),
                    "mean": getattr(self, f"{pre}_mean"),
                    "sd": getattr(self, f"{pre}_sd"),
                    "lower": getattr(self, lo),
                    "upper": getattr(self, hi),
                }
            )
        return pd.DataFrame(rows).set_index("parameter")

    def __repr__(self) -> str:
        return (
            f"BayesPoolResult(k={self.k}, tau_prior={self.tau_prior.describe()!r}, "
            f"mu_median={self.mu_median:.4g}, mu_ci=[{self.mu_ci_lower:.4g}, "
            f"{self.mu_ci_upper:.4g}], tau_median={self.tau_median:.4g})"
        )

    def summary(self, kind: str = "shortest", transf: Any = "auto") -> str:
        """A summary printed like bayesmeta's: priors, ML and MAP estimates, and the
        marginal posterior summary of τ, μ and θ_new with `kind` intervals; then μ and
        θ_new back-transformed by `transf` (as :meth:`ketameta.PoolResult.summary`; their
        medians and central intervals, which a monotone transformation carries over
        exactly) and the omitted studies by label."""
        kind = check_choice(kind, "kind", ("central", "shortest"))
        pct = f"{100 * self.level:g}%"
        ml_tau, ml_mu = self.ml_estimate()
        mlm_tau, mlm_mu = self.ml_marginal()
        map_tau, map_mu = self.map_estimate()
        modes = [self.mode(p) for p in ("tau", "mu", "theta_new")]
        lines = [
            "Bayesian random-effects meta-analysis (normal-normal hierarchical model)",
            "",
            f"{self.k} estimates"
            + ("" if self.measure is None else f" ({_transf.scale(self.measure).name})"),
            "",
            f"tau prior ({'proper' if self.tau_prior.proper else 'improper'}): "
            f"{self.tau_prior.describe()}",
            f"mu prior ({'improper' if self.mu_prior is None else 'proper'}): "
            + (
                "uniform(min = -Inf, max = Inf)"
                if self.mu_prior is None
                else self.mu_prior.describe()
            ),
            "",
            "ML and MAP estimates:",
            *table_lines(
                ["tau", "mu"],
                [
                    [_num(x) for x in pair]
                    for pair in ((ml_tau, ml_mu), (mlm_tau, mlm_mu), (map_tau, map_mu), modes[:2])
                ],
                [10, 10],
                stub=[
                    f"{n:13s}" for n in ("ML joint", "ML marginal", "MAP joint", "MAP marginal")
                ],
            ),
            "",
            "marginal posterior summary:",
        ]
        ints = {p: self.interval(p, kind=kind) for p in ("tau", "mu", "theta_new")}
        rows = (
            ("mode", tuple(modes)),
            ("median", (self.tau_median, self.mu_median, self.pred_median)),
            ("mean", (self.tau_mean, self.mu_mean, self.pred_mean)),
            ("sd", (self.tau_sd, self.mu_sd, self.pred_sd)),
            (f"{pct} lower", tuple(ints[p][0] for p in ("tau", "mu", "theta_new"))),
            (f"{pct} upper", tuple(ints[p][1] for p in ("tau", "mu", "theta_new"))),
        )
        lines += table_lines(
            ["tau", "mu", "theta"],
            [[_num(v) for v in vals] for _, vals in rows],
            [11, 11, 11],
            stub=[f"{label:10s}" for label, _ in rows],
        )
        lines += [
            "",
            f"(quoted intervals are {kind} credible intervals; 'theta' is the effect in a "
            "new study.)",
            "",
            "Bayes factors (> 1 favours the hypothesis):",
            f"  tau = 0: {_bf(self.bf_tau0)}    mu = 0: {_bf(self.bf_mu0)}",
            "relative heterogeneity I^2 at the posterior median of tau: "
            f"{100 * float(self.i2()):.1f}%",
            f"integration: {self.n_nodes} nodes in tau, estimated relative error "
            f"{self.integration_error:.1e} (requested {self.rtol:g})",
        ]
        t = _transf.resolve(transf, self.measure)
        if t.name is not None and not t.needs_n:
            lines += [
                "",
                f"{t.scale[:1].upper()}{t.scale[1:]} (back-transformed: {t.name}; medians "
                f"and central {pct} intervals):",
            ]
            for name, vals in (
                ("mu", (self.mu_median, self.mu_ci_lower, self.mu_ci_upper)),
                ("theta", (self.pred_median, self.pred_lower, self.pred_upper)),
            ):
                m, a, b = (float(t(x)) for x in vals)
                lines.append(f"  {name:6s}{m:10.4f} [{a:.4f}, {b:.4f}]")
        omitted = omitted_lines(self.omitted, self.omitted_reasons, self.study_labels)
        return "\n".join(lines + (["", *omitted] if omitted else []))


def _num(x: float) -> str:
    return "NaN" if not math.isfinite(x) else f"{x:.6f}"


def _bf(x: float) -> str:
    return "not defined (improper prior)" if not math.isfinite(x) else f"{x:.4g}"


def _shrinkage(post: Any, i: int, row: int = 0) -> tuple[FloatArray, FloatArray]:
    """Conditional mean and variance of θ_i given τ at the nodes (``(1, n)`` arrays)."""
    mean, var = _shrinkage_all(post, row)
    return mean[i : i + 1], var[i : i + 1]


def _shrinkage_all(post: Any, row: int = 0) -> tuple[FloatArray, FloatArray]:
    """Conditional means and variances of every θ_i given τ at the nodes (``(k, n)``):
    ``b μ̂ + (1 - b) y_i`` and ``v_i (1 - b) + b² V`` with ``b = v_i / (v_i + τ²)``."""
    cols = np.flatnonzero(post.present[row])
    y, v = post.y[row, cols][:, None], post.v[row, cols][:, None]
    tau2 = post.tau[row : row + 1] ** 2
    b = v / (v + tau2)
    mean = b * post.muhat[row : row + 1] + (1 - b) * y
    var = v * (1 - b) + b * b * post.var[row : row + 1]
    return mean, var


def _mixture_summaries(
    w: FloatArray, mean: FloatArray, sd: FloatArray, level: float
) -> dict[str, FloatArray]:
    """Mode, median, mean, SD and central interval of each row's normal mixture."""
    probs = np.array([(1 - level) / 2, 0.5, (1 + level) / 2])
    q = _eng.mixture_quantile(np.broadcast_to(probs, (w.shape[0], 3)).copy(), w, mean, sd)
    m1 = (w * mean).sum(axis=1)
    # the variance about the mean (not E[x²] - E[x]², which cancels catastrophically for
    # effects far from 0 relative to their spread)
    dev = mean - m1[:, None]
    var = (w * (sd * sd + dev * dev)).sum(axis=1)
    return {
        "median": q[:, 1],
        "mean": m1,
        "sd": np.sqrt(var),
        "lower": q[:, 0],
        "upper": q[:, 2],
    }


def _maximise(fun: Any, a: FloatArray, b: FloatArray) -> FloatArray:
    """The maximiser of `fun` (rows ``(m,)`` → ``(m,)``) in each bracket [a, b]: Brent's
    method row by row (a few rows), golden-section search for a batch."""
    if len(a) > 4:
        return _eng.golden_max(fun, a, b)
    from scipy.optimize import minimize_scalar

    out = np.empty(len(a))
    for r in range(len(a)):
        x0 = np.array(a, dtype=np.float64)

        def g(x: float, r: int = r, x0: FloatArray = x0) -> float:
            x0[r] = x
            return -float(fun(x0)[r])

        if not b[r] > a[r]:
            out[r] = a[r]
            continue
        tol = 1e-12 * max(1.0, abs(float(b[r])))
        res = minimize_scalar(
            g, bounds=(float(a[r]), float(b[r])), method="bounded", options={"xatol": tol}
        )
        out[r] = res.x
    return out


def _tau_mode(post: Any) -> FloatArray:
    """Mode of the marginal posterior of τ for each row (0 when the density falls from 0)."""
    if post.point:
        return post.tau[:, 0].copy()  # type: ignore[no-any-return]
    lp = post.log_post(post.tau)
    j = lp.argmax(axis=1)
    r = np.arange(lp.shape[0])
    n = lp.shape[1]
    a = np.where(j > 0, post.tau[r, np.maximum(j - 1, 0)], 0.0)
    b = post.tau[r, np.minimum(j + 1, n - 1)]

    def f(x: FloatArray) -> FloatArray:
        return post.log_post(x[:, None])[:, 0]  # type: ignore[no-any-return]

    mode = _maximise(f, a, b)
    at0 = f(np.zeros_like(mode))
    return np.where(at0 >= f(mode), 0.0, mode)


def _map_joint(post: Any) -> tuple[FloatArray, FloatArray]:
    """Joint posterior mode: τ maximising p(τ) p(μ̂(τ)) p(y | μ̂(τ), τ), μ = μ̂(τ)."""
    if post.point:
        return post.tau[:, 0].copy(), post.muhat[:, 0].copy()

    def profile_at(tt: FloatArray) -> FloatArray:
        _, muhat, _ = post.conditional(tt)
        vt = post.v[:, None, :] + tt[:, :, None] ** 2
        pres = post.present[:, None, :]
        r = np.where(pres, (post.y[:, None, :] - muhat[:, :, None]) ** 2 / vt, 0.0).sum(axis=2)
        ld = np.where(pres, np.log(vt), 0.0).sum(axis=2)
        out = -0.5 * (ld + r) + post.prior.log_density_data(tt, post.v, post.present)
        if post.mu_prior is not None:
            out = out + post.mu_prior.logpdf(muhat)
        return np.where(np.isnan(out), -np.inf, out)

    def profile(t: FloatArray) -> FloatArray:
        return profile_at(t[:, None])[:, 0]

    vals = profile_at(post.tau)
    j = vals.argmax(axis=1)
    r = np.arange(vals.shape[0])
    n = vals.shape[1]
    a = np.where(j > 0, post.tau[r, np.maximum(j - 1, 0)], 0.0)
    b = post.tau[r, np.minimum(j + 1, n - 1)]
    t = _maximise(profile, a, b)
    t = np.where(profile(np.zeros_like(t)) >= profile(t), 0.0, t)
    _, muhat, _ = post.conditional(t[:, None])
    return t, muhat[:, 0]


def _ml_marginal(res: BayesPoolResult) -> tuple[float, float]:
    post = res._post
    if post.point:
        tau = float(post.tau[0, 0])
    elif res.k < 2 and post.mu_prior is None:
        tau = math.nan
    else:
        # the marginal likelihood on the nodes locates the maximum; Brent's method refines
        ll = post.conditional(post.tau)[0]
        j = int(ll[0].argmax())
        n = ll.shape[1]
        a = np.array([post.tau[0, j - 1] if j > 0 else 0.0])
        b = np.array([post.tau[0, min(j + 1, n - 1)]])

        def f(x: FloatArray) -> FloatArray:
            return post.conditional(x[:, None])[0][:, 0]  # type: ignore[no-any-return]

        t = _maximise(f, a, b)
        tau = 0.0 if float(f(np.zeros(1))[0]) >= float(f(t)[0]) else float(t[0])
    if post.mu_prior is None:
        return tau, res.mode("mu")
    # p(y | mu) is proportional to p(mu | y) / p(mu): maximised on a grid over the
    # posterior's bulk, then by Brent's method
    mix = res._mixture("mu", None)
    prior = post.mu_prior
    lo, hi = res.quantile("mu", [1e-6, 1 - 1e-6])
    grid = np.linspace(lo, hi, 201)

    def g(x: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            dens = np.log(_eng.mixture_pdf(np.atleast_1d(x)[None, :], mix.w, mix.mean, mix.sd))
        return dens[0] - prior.logpdf(np.atleast_1d(x))  # type: ignore[no-any-return]

    vals = g(grid)
    j = int(vals.argmax())
    a = np.array([grid[max(j - 1, 0)]])
    b = np.array([grid[min(j + 1, 200)]])
    return tau, float(_maximise(g, a, b)[0])


def _ml_joint(y: FloatArray, v: FloatArray) -> tuple[float, float]:
    from .pooling import pool

    if len(y) < 2:
        return 0.0, float(y[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetametaWarning)
        res = pool(y, v, method="ML")
    return math.sqrt(res.tau2), res.estimate


def _bayes_factors(post: Any, row: int = 0) -> tuple[float, float, float]:
    """(log marginal likelihood, BF for τ = 0, BF for μ = 0) of one row."""
    prior, mu_prior = post.prior, post.mu_prior
    tau_proper = prior.proper and not post.point
    logz = float(post.logz[row])
    logml = logz if (tau_proper and mu_prior is not None) else math.nan
    bf_tau = math.nan
    if tau_proper:
        ll0, _, _ = post.conditional(np.zeros((post.y.shape[0], 1)))
        with np.errstate(over="ignore"):
            bf_tau = float(np.exp(float(ll0[row, 0]) - logz))
    bf_mu = math.nan
    if mu_prior is not None:  # log of sum_j w_j N(0; mu_j, V_j), then over the prior at 0
        var = post.var[row]
        terms = post.logw[row] - 0.5 * (np.log(2 * math.pi * var) + post.muhat[row] ** 2 / var)
        log_post0 = float(special.logsumexp(terms))
        with np.errstate(over="ignore"):
            bf_mu = float(np.exp(log_post0 - float(mu_prior.logpdf(0.0))))
    return logml, bf_tau, bf_mu


def _validate(
    tau_prior: Any, mu_prior: Any, level: Any, rtol: Any
) -> tuple[TauPrior, NormalPrior | None, float, float]:
    prior = as_tau_prior(tau_prior)
    mp = _as_mu_prior(mu_prior)
    lv = check_level(level)
    if isinstance(rtol, bool) or not isinstance(rtol, int | float) or not 1e-14 <= rtol <= 1e-3:
        msg = f"`rtol` must be a number in [1e-14, 1e-3], got {rtol!r}"
        raise ValueError(msg)
    return prior, mp, lv, float(rtol)


def bayes_pool(
    yi: ArrayLike | EffectSizes,
    vi: ArrayLike | None = None,
    *,
    sei: ArrayLike | None = None,
    tau_prior: Any,
    mu_prior: Any = None,
    level: float = 0.95,
    rtol: float = _eng.RTOL,
    nan_policy: str = "omit",
    labels: Any = None,
    measure: str | None = None,
) -> BayesPoolResult:
    """Bayesian random-effects meta-analysis, computed exactly (R's ``bayesmeta()``).

    Parameters
    ----------
    yi : array_like or EffectSizes
        Effect sizes, or the result of :func:`ketameta.escalc` (then leave `vi` out).
    vi : array_like, optional
        Sampling variances (> 0).
    sei : array_like, optional
        Standard errors instead of variances (keyword-only).
    tau_prior : TauPrior, str or callable
        Prior of the heterogeneity τ: an object from :mod:`ketameta.priors` (for example
        ``HalfNormal(0.5)``), ``"uniform"`` (improper) or ``"jeffreys"``, or a density
        function of τ. Required: there is no default on purpose [5]_.
    mu_prior : None, (mean, sd) or NormalPrior
        Prior of the overall effect μ: flat and improper (None, the default) or normal.
    level : float
        Probability of the credible and prediction intervals.
    rtol : float
        Relative accuracy of the integral over τ (default 1e-10).
    nan_policy : {"omit", "raise"}
        Studies with NaN `yi` or `vi` are left out with an
        :class:`~ketameta.OmittedStudiesWarning`, or raise.
    labels, measure
        As in :func:`ketameta.pool`: they name the studies and the scale (the summary
        back-transforms μ and θ_new for ratio measures).

    Returns
    -------
    BayesPoolResult

    Raises
    ------
    ValueError
        When an improper τ prior makes the posterior improper (too few studies).

    Warns
    -----
    AccuracyWarning
        When the quadrature did not reach `rtol` (extremely heavy tails or a density with
        a non-integrable feature).

    Notes
    -----
    The model is :math:`y_i \\mid \\theta_i \\sim N(\\theta_i, v_i)`, :math:`\\theta_i \\mid
    \\mu, \\tau \\sim N(\\mu, \\tau^2)`, with independent priors :math:`p(\\mu)` and
    :math:`p(\\tau)` [1]_. With :math:`w_i = 1/(v_i + \\tau^2)` and a flat μ prior,
    :math:`p(y \\mid \\tau) = (2\\pi)^{-(k-1)/2} \\prod_i w_i^{1/2} (\\sum w_i)^{-1/2}
    \\exp(-Q(\\tau)/2)` with :math:`Q(\\tau) = \\sum w_i (y_i - \\hat\\mu(\\tau))^2` and
    :math:`\\mu \\mid \\tau, y \\sim N(\\hat\\mu(\\tau), V(\\tau))`, :math:`\\hat\\mu = \\sum w_i
    y_i / \\sum w_i`, :math:`V = 1/\\sum w_i`; a normal prior :math:`N(m, s^2)` enters as one
    more "study" with estimate m and variance s² that does not depend on τ. A new study's
    effect is :math:`N(\\hat\\mu, V + \\tau^2)` given τ, and a study's own effect
    :math:`\\theta_i \\mid \\tau, y \\sim N(b_i \\hat\\mu + (1-b_i) y_i, v_i (1-b_i) + b_i^2
    V)` with :math:`b_i = v_i/(v_i + \\tau^2)`.

    The marginal posteriors are mixtures over τ. bayesmeta approximates them by the DIRECT
    algorithm [2]_, a grid in τ whose neighbouring normal components differ by at most a
    divergence δ = 0.01 (its μ quantities carry errors of about 1e-4). Here the integral
    over τ is done by globally adaptive Gauss-Kronrod (7/15) quadrature [3]_ on
    :math:`\\tau = c\\,t/(1-t)`, :math:`t \\in [0, 1)` (:math:`\\tau = a t` for a prior bounded
    by a): panels are bisected until the sum over panels of :math:`|K_{15} - G_7|`, the
    classical conservative error estimate, is below `rtol` times the normalising constant.
    Every posterior quantity (densities, CDFs, moments, the mixture over τ itself) uses
    the same nodes and weights; quantiles solve CDF = p by Newton steps safeguarded by
    bisection to 1e-14 relative. The tests check every quantity against adaptive
    quadrature in mpmath (tanh-sinh) to 1e-8 on generated data.

    Improper τ priors are accepted when the posterior is proper: p(y | τ) falls like
    :math:`\\tau^{-(k-1)}` (flat μ prior) or :math:`\\tau^{-k}` (normal μ prior), so a prior
    falling like :math:`\\tau^{-a}` needs :math:`a + k - 1 > 1`. Posterior moments of τ,
    μ (flat prior) and θ_new exist only when the posterior tail falls fast enough (the
    means need exponent > 2, the SDs > 3); missing moments are NaN. The shrinkage
    estimates' moments always exist: given τ, θ_i has a mean between the effects and a
    variance below v_i. The Bayes factors are Savage-Dickey density ratios [4]_; the
    marginal likelihood is defined only when both priors are proper.

    References
    ----------
    .. [1] Röver (2020), J Stat Softw 93(6):1-51.
    .. [2] Röver & Friede (2017), J Comput Graph Stat 26(1):217-222.
    .. [3] Piessens et al. (1983), QUADPACK. Springer.
    .. [4] Verdinelli & Wasserman (1995), JASA 90(430):614-618.
    .. [5] Friede et al. (2017), Res Synth Methods 8(1):79-91.

    Examples
    --------
    Rubin's eight schools (bayesmeta's vignette) with a half-Cauchy(25) prior on τ and a
    N(0, 50²) prior on μ:

    >>> import ketameta
    >>> from ketameta.priors import HalfCauchy
    >>> y = [28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16]
    >>> se = [14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6]
    >>> res = ketameta.bayes_pool(y, sei=se, tau_prior=HalfCauchy(25), mu_prior=(0, 50))
    >>> round(res.tau_median, 4), round(res.tau_mean, 4)
    (4.7585, 5.8845)
    >>> round(res.probability("mu", above=0), 4)
    0.9488
    """
    prior, mp, lv, tol = _validate(tau_prior, mu_prior, level, rtol)
    nan_policy = check_choice(nan_policy, "nan_policy", ("omit", "raise"))
    prep = prepare_studies(
        yi, vi, sei, nan_policy=nan_policy, stacklevel=3, labels=labels, measure=measure
    )
    y, v, omitted = prep.yi, prep.vi, prep.omitted
    k = y.shape[0]
    _posterior_proper(prior, mp, k)
    post = _eng.fit(y[None, :], v[None, :], np.ones((1, k), dtype=bool), prior, mp, rtol=tol)
    if not (post.converged and post.error[0] <= tol):
        warnings.warn(
            f"the integral over tau reached an estimated relative error of "
            f"{post.error[0]:.2g}, not the requested {tol:g}",
            AccuracyWarning,
            stacklevel=2,
        )
    f = prep.fields()
    study = {key: f[key] for key in ("measure", "labels", "omitted_reasons")}
    return _result(post, y, v, omitted, prior, mp, lv, tol, **study)


def _result(
    post: Any,
    y: FloatArray,
    v: FloatArray,
    omitted: tuple[int, ...],
    prior: TauPrior,
    mp: NormalPrior | None,
    lv: float,
    tol: float,
    **study: Any,
) -> BayesPoolResult:
    k = len(y)
    b = _tail(prior, mp, k)
    probs = np.array([[(1 - lv) / 2, 0.5, (1 + lv) / 2]])
    tq = post.tau_quantile(probs)[0]
    w = post.weights()
    tm1 = float((w * post.tau).sum())
    tvar = float((w * (post.tau - tm1) ** 2).sum())
    tau_mean = tm1 if b > 2 else math.nan
    tau_sd = math.sqrt(tvar) if b > 3 else math.nan
    # which moments exist: μ | τ, y has variance V(τ) (≤ the prior's with a normal μ prior,
    # ~τ²/k with a flat one), θ_new adds τ², and θ_i | τ, y has a mean between the effects
    # and a variance below v_i for every τ (its moments exist whenever the posterior does)
    flat_mu = mp is None
    mu_mom = (True, True) if not flat_mu else (b > 2, b > 3)
    pred_mom = (b > 2, b > 3)
    # μ, θ_new and the k shrinkage mixtures, summarised together (rows of one batch)
    th_mean, th_var = _shrinkage_all(post)
    means = np.concatenate((post.muhat[:1], post.muhat[:1], th_mean))
    sds = np.sqrt(np.concatenate((post.var[:1], post.var[:1] + post.tau[:1] ** 2, th_var)))
    ww = np.broadcast_to(w, (k + 2, w.shape[1])).copy()
    s = _mixture_summaries(ww, means, sds, lv)
    logml, bf_tau, bf_mu = _bayes_factors(post)
    return BayesPoolResult(
        tau_median=float(tq[1]),
        tau_mean=tau_mean,
        tau_sd=tau_sd,
        tau_ci_lower=float(tq[0]),
        tau_ci_upper=float(tq[2]),
        mu_median=float(s["median"][0]),
        mu_mean=float(s["mean"][0]) if mu_mom[0] else math.nan,
        mu_sd=float(s["sd"][0]) if mu_mom[1] else math.nan,
        mu_ci_lower=float(s["lower"][0]),
        mu_ci_upper=float(s["upper"][0]),
        pred_median=float(s["median"][1]),
        pred_mean=float(s["mean"][1]) if pred_mom[0] else math.nan,
        pred_sd=float(s["sd"][1]) if pred_mom[1] else math.nan,
        pred_lower=float(s["lower"][1]),
        pred_upper=float(s["upper"][1]),
        theta_median=s["median"][2:],
        theta_mean=s["mean"][2:],
        theta_sd=s["sd"][2:],
        theta_ci_lower=s["lower"][2:],
        theta_ci_upper=s["upper"][2:],
        log_marginal_likelihood=logml,
        bf_tau0=bf_tau,
        bf_mu0=bf_mu,
        k=k,
        yi=y,
        vi=v,
        omitted=omitted,
        tau_prior=prior,
        mu_prior=mp,
        level=lv,
        rtol=tol,
        integration_error=float(post.error[0]),
        n_nodes=int(post.tau.shape[1]),
        post=post,
        **study,
    )


#: per-analysis statistics of :class:`BatchBayesResult`
BATCH_FIELDS = (
    "tau_median",
    "tau_mean",
    "tau_ci_lower",
    "tau_ci_upper",
    "mu_median",
    "mu_mean",
    "mu_sd",
    "mu_ci_lower",
    "mu_ci_upper",
    "pred_median",
    "pred_lower",
    "pred_upper",
    "log_marginal_likelihood",
    "bf_tau0",
    "integration_error",
)


@attrs.frozen(kw_only=True)
class BatchBayesResult:
    """Results of :func:`bayes_pool_many`: one array per statistic, one entry per analysis
    (the statistics of :class:`BayesPoolResult` of the same names; NaN where an analysis
    has no studies or the statistic does not exist). ``k`` counts each row's studies."""

    tau_median: FloatArray = array_field()
    tau_mean: FloatArray = array_field()
    tau_ci_lower: FloatArray = array_field()
    tau_ci_upper: FloatArray = array_field()
    mu_median: FloatArray = array_field()
    mu_mean: FloatArray = array_field()
    mu_sd: FloatArray = array_field()
    mu_ci_lower: FloatArray = array_field()
    mu_ci_upper: FloatArray = array_field()
    pred_median: FloatArray = array_field()
    pred_lower: FloatArray = array_field()
    pred_upper: FloatArray = array_field()
    log_marginal_likelihood: FloatArray = array_field()
    bf_tau0: FloatArray = array_field()
    integration_error: FloatArray = array_field()
    k: FloatArray = array_field()
    tau_prior: TauPrior = attrs.field(eq=False)
    mu_prior: NormalPrior | None
    level: float

    def __len__(self) -> int:
        return len(self.k)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (JSON-serialisable)."""
        d = {f: getattr(self, f) for f in (*BATCH_FIELDS, "k", "level")}
        d["tau_prior"] = self.tau_prior.describe()
        d["mu_prior"] = "flat (improper)" if self.mu_prior is None else self.mu_prior.describe()
        return plain(d)  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """A DataFrame with a row per analysis (requires pandas)."""
        pd = import_pandas()
        return pd.DataFrame({f: getattr(self, f) for f in (*BATCH_FIELDS, "k")})


#: analyses × nodes × studies per chunk of the batch (memory of the working arrays)
_CHUNK_ELEMENTS = 2**21


def bayes_pool_many(
    Y: Any,
    V: Any = None,
    *,
    SE: Any = None,
    tau_prior: Any,
    mu_prior: Any = None,
    level: float = 0.95,
    rtol: float = _eng.RTOL,
) -> BatchBayesResult:
    """Many Bayesian random-effects meta-analyses at once (rows of `Y` and `V`).

    NaN in `Y` or `V` marks an absent study, so rows may have different numbers of studies
    (as :func:`ketameta.pool_many`). Rows are processed in chunks on a shared quadrature
    rule in τ (each row with its own scale, the panels refined wherever any row of the
    chunk needs it), so each row equals :func:`bayes_pool` on that row to the stated
    accuracy (`rtol` on the normalising constant).

    Parameters
    ----------
    Y, V : array_like, shape (m, k)
        Effect sizes and sampling variances (or `SE`, standard errors).
    tau_prior, mu_prior, level, rtol
        As in :func:`bayes_pool` (one prior for all rows).

    Returns
    -------
    BatchBayesResult

    References
    ----------
    .. [1] Röver (2020), J Stat Softw 93(6):1-51.

    Examples
    --------
    >>> import numpy as np, ketameta
    >>> from ketameta.priors import HalfNormal
    >>> Y = np.array([[0.1, 0.3, 0.2], [0.5, np.nan, 0.4]])
    >>> V = np.array([[0.04, 0.05, 0.03], [0.02, np.nan, 0.02]])
    >>> res = ketameta.bayes_pool_many(Y, V, tau_prior=HalfNormal(0.5))
    >>> res.k.tolist()
    [3.0, 2.0]
    """
    prior, mp, lv, tol = _validate(tau_prior, mu_prior, level, rtol)
    y = np.array(Y, dtype=np.float64, copy=True)
    if (V is None) == (SE is None):
        msg = "give exactly one of `V` (sampling variances) or `SE=` (standard errors)"
        raise TypeError(msg)
    v = np.array(V if V is not None else np.asarray(SE, dtype=np.float64) ** 2, dtype=np.float64)
    if y.ndim != 2 or v.shape != y.shape:
        msg = f"`Y` and `V` must be 2-D arrays of the same shape, got {y.shape} and {v.shape}"
        raise ValueError(msg)
    present = ~(np.isnan(y) | np.isnan(v))
    with np.errstate(invalid="ignore"):
        bad = present & ~((v > 0) & np.isfinite(v) & np.isfinite(y))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        name = "V" if SE is None else "SE"
        msg = f"`{name}` must be positive and finite and `Y` finite; row {r}, study {c} is not"
        raise ValueError(msg)
    m, kmax = y.shape
    k = present.sum(axis=1)
    out = {f: np.full(m, np.nan) for f in BATCH_FIELDS}
    y0 = np.where(present, y, 0.0)
    v0 = np.where(present, v, 1.0)
    rows = np.flatnonzero(k > 0)
    for r in rows:  # improper posteriors: refuse the whole batch up front
        _posterior_proper(prior, mp, int(k[r]))
    size = max(1, _CHUNK_ELEMENTS // (1000 * max(kmax, 1)))
    probs = np.array([(1 - lv) / 2, 0.5, (1 + lv) / 2])
    for start in range(0, len(rows), size):
        idx = rows[start : start + size]
        post = _eng.fit(y0[idx], v0[idx], present[idx], prior, mp, rtol=tol)
        n = len(idx)
        tq = post.tau_quantile(np.broadcast_to(probs, (n, 3)).copy())
        w = post.weights()
        tm1 = (w * post.tau).sum(axis=1)
        kk = k[idx]
        tails = np.array([_tail(prior, mp, int(x)) for x in kk])
        out["tau_median"][idx] = tq[:, 1]
        out["tau_mean"][idx] = np.where(tails > 2, tm1, np.nan)
        out["tau_ci_lower"][idx] = tq[:, 0]
        out["tau_ci_upper"][idx] = tq[:, 2]
        sd_mu = np.sqrt(post.var)
        sd_pred = np.sqrt(post.var + post.tau**2)
        qm = _eng.mixture_quantile(np.broadcast_to(probs, (n, 3)).copy(), w, post.muhat, sd_mu)
        qp = _eng.mixture_quantile(np.broadcast_to(probs, (n, 3)).copy(), w, post.muhat, sd_pred)
        m1 = (w * post.muhat).sum(axis=1)
        dev = post.muhat - m1[:, None]
        mvar = (w * (post.var + dev * dev)).sum(axis=1)  # (about the mean: no cancellation)
        finite_mean = (tails > 2) | (mp is not None)
        finite_sd = (tails > 3) | (mp is not None)
        out["mu_median"][idx] = qm[:, 1]
        out["mu_mean"][idx] = np.where(finite_mean, m1, np.nan)
        out["mu_sd"][idx] = np.where(finite_sd, np.sqrt(mvar), np.nan)
        out["mu_ci_lower"][idx] = qm[:, 0]
        out["mu_ci_upper"][idx] = qm[:, 2]
        out["pred_median"][idx] = qp[:, 1]
        out["pred_lower"][idx] = qp[:, 0]
        out["pred_upper"][idx] = qp[:, 2]
        for j, r in enumerate(idx):
            logml, bf_tau, _ = _bayes_factors(post, j)
            out["log_marginal_likelihood"][r] = logml
            out["bf_tau0"][r] = bf_tau
        out["integration_error"][idx] = post.error
        if not (post.converged and (post.error <= tol).all()):
            warnings.warn(
                f"the integral over tau reached an estimated relative error of "
                f"{np.max(post.error):.2g} in some rows, not the requested {tol:g}",
                AccuracyWarning,
                stacklevel=2,
            )
    return BatchBayesResult(**out, k=k.astype(np.float64), tau_prior=prior, mu_prior=mp, level=lv)
