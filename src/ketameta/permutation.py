"""Permutation tests of a fitted model (metafor's ``permutest``).

:func:`permutation_test` refits a :class:`~ketameta.PoolResult` or
:class:`~ketameta.MetaRegResult` under every permutation of the data that the null
hypothesis leaves exchangeable (or under random ones) and reports, for each coefficient
and for the omnibus test ``QM``, the share of permutations whose statistic is at least as
extreme as the observed one [1]_ [2]_.

* **Models with moderators**: the rows of the design ``X`` are permuted against the
  studies' ``(y_i, v_i)``, which stay in place [1]_ [2]_. Fitting ``y ~ X[π]`` is fitting
  ``(y, v)[π⁻¹] ~ X`` (the same studies, reordered), so every permutation becomes one row
  of a batch that shares the design ``X``: the engine fits them all with one basis and
  matrix products (:mod:`ketameta._engine`).
* **Intercept-only models**: the signs of the effects are permuted (all ``2ᵏ`` sign
  patterns, or random ones) [2]_ [3]_.

The exact test uses each *distinct* permutation once: ``2ᵏ`` sign patterns, or
``k!/(n₁!⋯n_r!)`` orders of the rows of ``X`` when it has groups of ``n₁, …, n_r``
identical rows (a factor, tied moderator values); they are enumerated by unranking, chunk
by chunk, so memory stays bounded however many there are.

References
----------
.. [1] Higgins, J. P. T., & Thompson, S. G. (2004). Controlling the risk of spurious
   findings from meta-regression. Stat Med, 23(11), 1663-1682.
   https://doi.org/10.1002/sim.1752
.. [2] Viechtbauer, W., López-López, J. A., Sánchez-Meca, J., & Marín-Martínez, F. (2015).
   A comparison of procedures to test for moderators in mixed-effects meta-regression
   models. Psychol Methods, 20(3), 360-374. https://doi.org/10.1037/met0000023
.. [3] Follmann, D. A., & Proschan, M. A. (1999). Valid inference in random effects
   meta-analysis. Biometrics, 55(3), 732-737.
   https://doi.org/10.1111/j.0006-341x.1999.00732.x
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from . import _engine
from ._engine.design import Design
from ._engine.model import fit_design
from ._results import RecordResult, array_field, format_p, format_p_with_sign, import_pandas, plain
from ._typing import BoolArray, FloatArray
from ._validation import check_positive_int, ints, strings
from .metareg import MetaRegResult
from .pooling import ModelFit, PoolResult

__all__ = ["MAX_EXACT", "PermutationTestResult", "permutation_test"]

#: the most permutations ``exact=True`` enumerates (more: a ``ValueError``)
MAX_EXACT = 10**6
#: metafor's ``comptol``: a permuted statistic within this (absolute) distance below the
#: observed one counts as at least as extreme (ties of floating-point noise)
TOLERANCE = math.sqrt(np.finfo(np.float64).eps)
#: doubles per ``(chunk, k)`` working array: ~1 MiB
_CHUNK_DOUBLES = 2**17


def _optional_array(x: Any) -> FloatArray | None:
    if x is None:
        return None
    arr = np.array(x, dtype=np.float64, copy=True)
    arr.setflags(write=False)
    return arr


def _optional_eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b, equal_nan=True))


@attrs.frozen(kw_only=True, repr=False)
class PermutationTestResult(RecordResult):
    """The result of :func:`permutation_test` (metafor's ``permutest``).

    Attributes
    ----------
    names : tuple of str
        Coefficient names (``("intrcpt",)`` for an intercept-only model).
    coef, se, statistic, ci_lower, ci_upper, pvalue_model : ndarray, shape (p,)
        The observed model's coefficient table: estimates, standard errors, z or t
        statistics, confidence limits and the model-based p-values.
    pvalue : ndarray, shape (p,)
        Two-sided permutation p-values: the share of the permutations fitted whose
        ``|statistic|`` is at least the observed one (less :data:`TOLERANCE`).
    count : tuple of int
        Their numerators (the observed data are one of the permutations, so each is ≥ 1).
    btt : tuple of int
        The coefficients of the omnibus test (0-based).
    qm, qm_df, qm_df_residual, qm_pvalue_model
        The observed omnibus statistic (χ² ``QM`` for ``test="z"``, else the F statistic),
        its degrees of freedom and model-based p-value.
    qm_pvalue, qm_count
        The permutation p-value of ``QM`` and its numerator.
    n_permutations : int
        Permutations run (the observed data included); the p-values' denominator is
        ``n_permutations - n_failed``.
    n_failed : int
        Permutations whose fit failed (the τ² estimator did not converge, or the fit
        overflowed); left out of numerators and denominator, as metafor.
    exact : bool
        Whether every distinct permutation was used once.
    n_exact : int
        The number of distinct permutations (``2ᵏ`` sign patterns for an intercept-only
        model, ``k!/(n₁!⋯n_r!)`` row orders of the design otherwise).
    seed : int or None
        The seed of the random permutations (with ``seed=None``, the entropy NumPy drew,
        so ``permutation_test(result, n, seed=res.seed)`` repeats the run); None for an
        exact test or a generator passed in.
    intercept_only : bool
        Signs were permuted (intercept-only model) rather than the rows of the design.
    k, method, test, level, tau2_fixed
        The model's settings, used for every refit.
    tolerance : float
        The absolute tolerance of the comparisons (:data:`TOLERANCE`).
    statistic_distribution, qm_distribution : ndarray or None
        With ``keep_distribution=True``: the statistics of every permutation, shape
        ``(n_permutations, p)`` and ``(n_permutations,)`` (NaN for failed fits), in the
        order they were run (the observed data first for a random test).
    """

    names: tuple[str, ...] = attrs.field(converter=strings)
    coef: FloatArray = array_field()
    se: FloatArray = array_field()
    statistic: FloatArray = array_field()
    ci_lower: FloatArray = array_field()
    ci_upper: FloatArray = array_field()
    pvalue_model: FloatArray = array_field()
    pvalue: FloatArray = array_field()
    count: tuple[int, ...] = attrs.field(converter=ints)
    btt: tuple[int, ...] = attrs.field(converter=ints)
    qm: float
    qm_df: int
    qm_df_residual: float
    qm_pvalue_model: float
    qm_pvalue: float
    qm_count: int
    n_permutations: int
    n_failed: int
    exact: bool
    n_exact: int
    seed: int | None
    intercept_only: bool
    k: int
    method: str
    test: str
    level: float
    tau2_fixed: bool
    tolerance: float = TOLERANCE
    statistic_distribution: FloatArray | None = attrs.field(
        default=None, converter=_optional_array, eq=attrs.cmp_using(eq=_optional_eq)
    )
    qm_distribution: FloatArray | None = attrs.field(
        default=None, converter=_optional_array, eq=attrs.cmp_using(eq=_optional_eq)
    )

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable; NaN/inf become ``None``)."""
        return plain({f.name: getattr(self, f.name) for f in attrs.fields(type(self))})  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """The coefficient table with the permutation p-values, indexed by coefficient name
        (requires pandas)."""
        pd = import_pandas()
        return pd.DataFrame(
            {
                "estimate": self.coef,
                "se": self.se,
                "statistic": self.statistic,
                "pvalue": self.pvalue,
                "count": np.asarray(self.count, dtype=np.int64),
                "pvalue_model": self.pvalue_model,
                "ci_lower": self.ci_lower,
                "ci_upper": self.ci_upper,
            },
            index=pd.Index(self.names, name="coefficient"),
        )

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "random"
        ps = ", ".join(f"{n}={p:.4g}" for n, p in zip(self.names, self.pvalue, strict=True))
        return (
            f"PermutationTestResult({kind}, n_permutations={self.n_permutations}, "
            f"pvalue: {ps}, qm_pvalue={self.qm_pvalue:.4g})"
        )

    def summary(self) -> str:
        """As metafor prints ``permutest``: the omnibus test and the coefficient table with
        permutation p-values (marked ¹), the confidence limits of the model."""
        lines = [self._header(), ""]
        t_based = self.test != "z"
        if not self.intercept_only:
            which = _format_btt(self.btt)
            plural = "s" if len(self.btt) > 1 else ""
            lines.append(f"Test of Moderators (coefficient{plural} {which}):\u00b9")
            if t_based:
                stat = f"F(df1 = {self.qm_df}, df2 = {self.qm_df_residual:g}) = {self.qm:.4f}"
            else:
                stat = f"QM(df = {self.qm_df}) = {self.qm:.4f}"
            lines += [f"{stat}, p-val {format_p_with_sign(self.qm_pvalue)}", ""]
        lines += ["Model Results:", ""]
        # columns as wide as their widest entry, right-aligned (as R prints a table)
        columns: list[list[str]] = []
        if not self.intercept_only:
            columns.append(["", *self.names])
        columns.append(["estimate", *(f"{b:.4f}" for b in self.coef)])
        columns.append(["se", *(f"{s:.4f}" for s in self.se)])
        columns.append(["tval" if t_based else "zval", *(f"{z:.4f}" for z in self.statistic)])
        if t_based:
            columns.append(["df", *(f"{self.qm_df_residual:g}" for _ in self.names)])
        columns.append(["pval\u00b9", *(format_p(float(q)) for q in self.pvalue)])
        columns.append(["ci.lb", *(f"{c:.4f}" for c in self.ci_lower)])
        columns.append(["ci.ub", *(f"{c:.4f}" for c in self.ci_upper)])
        widths = [max(len(cell) for cell in col) for col in columns]
        for i in range(len(self.names) + 1):
            cells = []
            for j, (col, w) in enumerate(zip(columns, widths, strict=True)):
                left = j == 0 and not self.intercept_only
                cells.append(col[i].ljust(w) if left else col[i].rjust(w))
            lines.append("  ".join(cells).rstrip())
        plural = "s" if len(self.names) > 1 else ""
        lines += ["", f"1) p-value{plural} based on permutation testing"]
        if self.n_failed:
            lines.append(
                f"   ({self.n_failed} of {self.n_permutations} permutations could not be "
                "fitted and were left out)"
            )
        return "\n".join(lines)

    def _header(self) -> str:
        what = "sign patterns" if self.intercept_only else "permutations"
        if self.exact:
            return f"Exact permutation test ({self.n_permutations:,} distinct {what})"
        seed = "" if self.seed is None else f", seed {self.seed}"
        return (
            f"Permutation test ({self.n_permutations:,} random {what} of {self.n_exact:,}{seed})"
        )


def _format_btt(btt: tuple[int, ...]) -> str:
    """1-based coefficient numbers as metafor prints them (``2:3`` for a run)."""
    one = [i + 1 for i in btt]
    if len(one) > 1 and all(b - a == 1 for a, b in itertools.pairwise(one)):
        return f"{one[0]}:{one[-1]}"
    return ",".join(str(i) for i in one)


def _groups(x: FloatArray) -> tuple[np.ndarray[Any, np.dtype[np.intp]], list[int]]:
    """The group (0, 1, ...) of every row of `x` (identical rows share one, in order of
    first appearance) and the group sizes."""
    seen: dict[tuple[float, ...], int] = {}
    labels = np.empty(x.shape[0], dtype=np.intp)
    for i, row in enumerate(x.tolist()):
        labels[i] = seen.setdefault(tuple(row), len(seen))
    sizes = np.bincount(labels, minlength=len(seen)).tolist()
    return labels, [int(s) for s in sizes]


def _n_distinct(k: int, sizes: list[int] | None) -> int:
    """Distinct permutations: ``2ᵏ`` sign patterns (`sizes` None), else the multinomial
    ``k!/∏n_r!`` (exact, a Python int)."""
    if sizes is None:
        return int(2**k)
    out: int = math.factorial(k)
    for s in sizes:
        out //= math.factorial(s)
    return out


def _unrank_multiset(ranks: np.ndarray[Any, Any], sizes: list[int], total: int) -> Any:
    """The multiset permutations of ranks `ranks` (lexicographic order) of the labels
    ``0..r-1`` with multiplicities `sizes`, one row each (``total`` = their number).

    Position by position: of the ``M`` arrangements of the remaining labels, ``M n_a/N``
    begin with label ``a`` (``N`` labels remain, ``n_a`` of them ``a``), so the rank falls
    into the block of one label, which is taken."""
    c, k = ranks.shape[0], sum(sizes)
    counts = np.tile(np.asarray(sizes, dtype=np.int64), (c, 1))
    block = np.full(c, total, dtype=np.int64)
    r = ranks.astype(np.int64, copy=True)
    rows = np.arange(c)
    out = np.empty((c, k), dtype=np.intp)
    for pos in range(k):
        sub = block[:, None] * counts // (k - pos)  # (exact: M n_a is divisible by N)
        cum = np.cumsum(sub, axis=1)
        label = (r[:, None] >= cum).sum(axis=1)
        r -= cum[rows, label] - sub[rows, label]
        block = sub[rows, label]
        counts[rows, label] -= 1
        out[:, pos] = label
    return out


def _exact_chunks(
    k: int,
    labels: np.ndarray[Any, Any] | None,
    sizes: list[int] | None,
    total: int,
    chunk: int,
) -> Iterator[Any]:
    """Every distinct permutation once, `chunk` at a time: sign arrays ``(c, k)`` (±1),
    or the study order ``(c, k)`` to pair with the rows of the shared design."""
    if labels is not None:
        order = np.argsort(labels, kind="stable")  # rows of X by (group, index)
    for start in range(0, total, chunk):
        ranks = np.arange(start, min(start + chunk, total), dtype=np.int64)
        if sizes is None:  # bit i of the rank: the sign of study i (rank 0: the data)
            bits = (ranks[:, None] >> np.arange(k, dtype=np.int64)) & 1
            yield 1.0 - 2.0 * bits
            continue
        assert labels is not None
        # study i is paired with a row of X of group g[i]; the studies of each group, in
        # index order, take that group's rows of X in index order
        g = _unrank_multiset(ranks, sizes, total)
        idx = np.empty_like(g)
        idx[:, order] = np.argsort(g, axis=1, kind="stable")
        yield idx


def _random_chunks(
    rng: np.random.Generator, n: int, k: int, intercept_only: bool, chunk: int
) -> Iterator[Any]:
    """`n` random permutations (the first replaced by the data), `chunk` at a time: random
    signs, or uniformly random study orders. The stream of random numbers (``k`` uniforms
    per permutation) does not depend on the chunk size."""
    for start in range(0, n, chunk):
        u = rng.random((min(chunk, n - start), k))
        out = np.where(u < 0.5, -1.0, 1.0) if intercept_only else np.argsort(u, axis=1)
        if start == 0:
            out[0] = 1.0 if intercept_only else np.arange(k)
        yield out


def _fit_chunk(
    y: FloatArray,
    v: FloatArray,
    x: FloatArray | None,
    perm: Any,
    *,
    intercept_only: bool,
    intercept: bool,
    settings: dict[str, Any],
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Refit the permuted data of one chunk: statistics ``(c, p)``, ``QM`` ``(c,)`` and
    which fits failed."""
    if intercept_only:
        yy = perm * y
        vv = np.broadcast_to(v, yy.shape)
    else:
        yy, vv = y[perm], v[perm]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        design = Design(yy, vv, x, padded=False, intercept=intercept)
        out = fit_design(design, **settings)
    stat = np.column_stack([np.asarray(s, dtype=np.float64) for s in out["statistic"]])
    qm = np.asarray(out["qm"], dtype=np.float64)
    failed = ~np.asarray(out["converged"], dtype=bool) | ~np.isfinite(
        np.asarray(out["coef"][0], dtype=np.float64)
    )
    return stat, qm, failed


def _observed(result: ModelFit) -> dict[str, Any]:
    """The observed model's table, omnibus test and design."""
    if isinstance(result, MetaRegResult):
        p = result.p
        intercept_only = p == 1 and result.intercept
        return {
            "names": result.names,
            "coef": result.coef,
            "se": result.se,
            "statistic": result.statistic,
            "pvalue_model": result.pvalue,
            "ci_lower": result.ci_lower,
            "ci_upper": result.ci_upper,
            "btt": result.btt,
            "qm": result.qm,
            "qm_pvalue_model": result.qm_pvalue,
            "x": result.X,
            "intercept": result.intercept,
            "intercept_only": intercept_only,
        }
    if isinstance(result, PoolResult):
        stat = result.statistic
        return {
            "names": ("intrcpt",),
            "coef": [result.estimate],
            "se": [result.se],
            "statistic": [stat],
            "pvalue_model": [result.pvalue],
            "ci_lower": [result.ci_lower],
            "ci_upper": [result.ci_upper],
            "btt": (0,),
            # the omnibus test of the intercept: z² (χ²(1)) or t² (F(1, k - 1))
            "qm": stat * stat,
            "qm_pvalue_model": result.pvalue,
            "x": None,
            "intercept": True,
            "intercept_only": True,
        }
    msg = (
        "`result` must be a PoolResult (ketameta.pool) or a MetaRegResult "
        f"(ketameta.metareg), got {type(result).__name__}"
    )
    raise TypeError(msg)


def _flag(value: object, name: str, *, optional: bool = False) -> bool | None:
    """A yes/no option (Python or NumPy bool; None too when `optional`)."""
    if value is None and optional:
        return None
    if not isinstance(value, bool | np.bool_):
        allowed = "None, True or False" if optional else "True or False"
        msg = f"`{name}` must be {allowed}, got {value!r}"
        raise TypeError(msg)
    return bool(value)


def _check_seed(seed: Any) -> tuple[np.random.Generator, int | None]:
    """The generator and the seed to record (the entropy drawn for ``seed=None``)."""
    if isinstance(seed, np.random.Generator):
        return seed, None
    if seed is None:
        sequence = np.random.SeedSequence()
        entropy = sequence.entropy
        assert isinstance(entropy, int)
        return np.random.default_rng(sequence), entropy
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer):
        msg = (
            "`seed` must be None, a non-negative integer or a numpy.random.Generator, "
            f"got {type(seed).__name__} {seed!r}"
        )
        raise TypeError(msg)
    if seed < 0:
        msg = f"`seed` must be a non-negative integer, got {seed!r}"
        raise ValueError(msg)
    return np.random.default_rng(int(seed)), int(seed)


def permutation_test(
    result: PoolResult | MetaRegResult,
    n: int = 1000,
    *,
    exact: bool | None = None,
    seed: int | np.random.Generator | None = None,
    keep_distribution: bool = False,
    chunk_size: int | None = None,
) -> PermutationTestResult:
    """Permutation p-values for the coefficients and the omnibus test of a fitted model
    (metafor's ``permutest``) [1]_ [2]_ [3]_.

    Parameters
    ----------
    result : PoolResult or MetaRegResult
        The fitted model (:func:`ketameta.pool`, :func:`ketameta.metareg`). Every
        permutation is refitted with its τ² estimator, test, control settings and
        omnibus-test coefficients (``btt``); a fixed τ² stays fixed.
    n : int
        The number of random permutations (the observed data are the first); when the
        number of distinct permutations is at most `n`, the exact test is run instead
        (unless ``exact=False``).
    exact : bool, optional
        ``None`` (default): exact when the distinct permutations number at most `n`, as
        metafor's default ``exact=FALSE``. ``True``: the exact test (refused above
        :data:`MAX_EXACT` = 10⁶ permutations). ``False``: `n` random permutations always.
    seed : int or numpy.random.Generator, optional
        Seed of the random permutations (``numpy.random.default_rng(seed)``). With
        ``None`` the run's seed is drawn and recorded in ``result.seed``. ketameta's
        random permutations cannot equal R's draw by draw (other generator), so a random
        test reproduces metafor's p-values only within Monte Carlo error; the exact test
        reproduces them exactly.
    keep_distribution : bool
        Keep the statistics of every permutation (``statistic_distribution``,
        ``qm_distribution``); ``8 (p + 1)`` bytes per permutation.
    chunk_size : int, optional
        Permutations fitted per batch (default: ~1 MiB per ``(chunk, k)`` array). The
        results do not depend on it.

    Returns
    -------
    PermutationTestResult

    Raises
    ------
    TypeError
        `result` is not a fitted model; `seed` is not an integer or generator.
    ValueError
        ``exact=True`` with more than :data:`MAX_EXACT` distinct permutations; `n` or
        `chunk_size` not a positive integer.

    Notes
    -----
    *Models with moderators*: the rows of ``X`` are permuted against ``(y_i, v_i)``; the
    exact test uses each distinct order of the rows once, ``k!/(n₁!⋯n_r!)`` of them with
    groups of ``n₁, …, n_r`` identical rows. *Intercept-only models*: the signs of the
    ``y_i`` are permuted, ``2ᵏ`` patterns (the observed one included) [3]_. With ``z_j(π)``
    the test statistic of coefficient ``j`` (z, or t with the model's standard error,
    e.g. Knapp-Hartung's) and ``QM(π)`` the omnibus statistic (χ², or F for t-based
    tests) of permutation ``π``, over the ``N`` permutations whose fit succeeded::

        p_j = #{π : |z_j(π)| ≥ |z_j| - ε} / N,    p_QM = #{π : QM(π) ≥ QM - ε} / N

    with ``ε = √(machine ε) ≈ 1.5e-8`` (metafor's ``comptol``). The observed data are
    one of the permutations, so ``p ≥ 1/N`` [1]_ [2]_. A random test draws `n`
    permutations uniformly (with replacement), the first replaced by the observed data,
    as metafor. The confidence limits reported are the model's.

    References
    ----------
    .. [1] Higgins & Thompson (2004), Stat Med 23(11):1663-1682.
       https://doi.org/10.1002/sim.1752
    .. [2] Viechtbauer, López-López, Sánchez-Meca & Marín-Martínez (2015), Psychol Methods
       20(3):360-374. https://doi.org/10.1037/met0000023
    .. [3] Follmann & Proschan (1999), Biometrics 55(3):732-737.
       https://doi.org/10.1111/j.0006-341x.1999.00732.x

    Examples
    --------
    The BCG trials: is the latitude effect more than chance? 1,000 random permutations
    of the latitudes (of 389,188,800 distinct ones):

    >>> import ketameta
    >>> dat = ketameta.datasets.bcg()
    >>> es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> res = ketameta.metareg(es, mods=dat["ablat"])
    >>> perm = ketameta.permutation_test(res, seed=1)
    >>> perm.exact, perm.n_permutations, perm.count[1], float(perm.pvalue[1])
    (False, 1000, 10, 0.01)

    (metafor's ``permutest(res)`` draws other permutations: its p-value, like this one,
    estimates the exact p-value with a binomial standard error of about 0.003 here.)

    Six studies, intercept only: the exact test over all 64 sign patterns:

    >>> exact = ketameta.permutation_test(ketameta.pool(es.yi[:6], es.vi[:6]))
    >>> exact.exact, exact.n_permutations, exact.count[0], float(exact.pvalue[0])
    (True, 64, 2, 0.03125)
    """
    obs = _observed(result)
    n = check_positive_int(n, "n")
    exact = _flag(exact, "exact", optional=True)
    keep_distribution = bool(_flag(keep_distribution, "keep_distribution"))
    y, v = np.asarray(result.yi), np.asarray(result.vi)
    k = int(y.shape[0])
    x: FloatArray | None = obs["x"]
    intercept_only: bool = obs["intercept_only"]
    labels, sizes = (None, None) if intercept_only or x is None else _groups(x)
    n_exact = _n_distinct(k, sizes)
    run_exact = n_exact <= n if exact is None else exact
    if run_exact and exact and n_exact > MAX_EXACT:
        msg = (
            f"`exact=True`: the exact test needs {n_exact:,} distinct permutations, more "
            f"than {MAX_EXACT:,}; use random permutations (`exact=False`, or the default "
            f"with `n` below {n_exact:,})"
        )
        raise ValueError(msg)
    if run_exact and n_exact * k >= 2**62:  # (int64 unranking; n below 2^62/k asked for it)
        msg = f"the exact test needs {n_exact:,} permutations: too many to enumerate"
        raise ValueError(msg)
    if chunk_size is None:
        chunk = max(256, _CHUNK_DOUBLES // max(k, 1))
    else:
        chunk = check_positive_int(chunk_size, "chunk_size")
    rng, seed_used = _check_seed(seed)  # (validated even when the test is exact)
    if run_exact:
        seed_used = None

    total = n_exact if run_exact else n
    settings: dict[str, Any] = {
        "method": result.method,
        "test": result.test,
        "level": result.level,
        "tau2_fixed": result.tau2 if result.tau2_fixed else None,
        "control": {**_engine.DEFAULT_CONTROL, **result.control, "raise_on_failure": False},
        "btt": list(obs["btt"]),
    }
    chunks = (
        _exact_chunks(k, labels, sizes, n_exact, chunk)
        if run_exact
        else _random_chunks(rng, n, k, intercept_only, chunk)
    )
    stat_obs = np.abs(np.asarray(obs["statistic"], dtype=np.float64)) - TOLERANCE
    qm_obs = float(obs["qm"]) - TOLERANCE
    p = stat_obs.shape[0]
    count = np.zeros(p, dtype=np.int64)
    qm_count = 0
    failed_total = 0
    keep_stat = np.empty((total, p)) if keep_distribution else None
    keep_qm = np.empty(total) if keep_distribution else None
    row = 0
    for perm in chunks:
        stat, qm, failed = _fit_chunk(
            y,
            v,
            x,
            perm,
            intercept_only=intercept_only,
            intercept=bool(obs["intercept"]),
            settings=settings,
        )
        ok = ~failed
        with np.errstate(invalid="ignore"):
            count += (np.abs(stat[ok]) >= stat_obs).sum(axis=0)
            qm_count += int((qm[ok] >= qm_obs).sum())
        failed_total += int(failed.sum())
        if keep_stat is not None and keep_qm is not None:
            c = stat.shape[0]
            keep_stat[row : row + c] = np.where(failed[:, None], np.nan, stat)
            keep_qm[row : row + c] = np.where(failed, np.nan, qm)
        row += stat.shape[0]
    valid = total - failed_total
    # (an undefined observed statistic, e.g. Knapp-Hartung's 0/0 on identical effects of
    # 0, has no p-value)
    pvalue = np.where(np.isnan(stat_obs) | (valid == 0), np.nan, count / max(valid, 1))
    qm_pvalue = math.nan if math.isnan(qm_obs) or not valid else qm_count / valid
    return PermutationTestResult(
        names=obs["names"],
        coef=obs["coef"],
        se=obs["se"],
        statistic=obs["statistic"],
        ci_lower=obs["ci_lower"],
        ci_upper=obs["ci_upper"],
        pvalue_model=obs["pvalue_model"],
        pvalue=pvalue,
        count=count.tolist(),
        btt=obs["btt"],
        qm=float(obs["qm"]),
        qm_df=len(obs["btt"]),
        qm_df_residual=float(result.df),
        qm_pvalue_model=float(obs["qm_pvalue_model"]),
        qm_pvalue=qm_pvalue,
        qm_count=qm_count,
        n_permutations=total,
        n_failed=failed_total,
        exact=run_exact,
        n_exact=n_exact,
        seed=seed_used,
        intercept_only=intercept_only,
        k=k,
        method=result.method,
        test=result.test,
        level=result.level,
        tau2_fixed=result.tau2_fixed,
        statistic_distribution=keep_stat,
        qm_distribution=keep_qm,
    )
