"""Sensitivity analyses: leave-one-out, cumulative meta-analysis and influence diagnostics
(metafor's ``leave1out``, ``cumul`` and ``influence``).

Each analysis is a batch of meta-analyses over the same studies (one per omitted study,
or one per prefix of the ordered studies), fitted in one call of the numeric core that
also serves :func:`ketameta.pool`.

References
----------
.. [1] Viechtbauer, W., & Cheung, M. W.-L. (2010). Outlier and influence diagnostics for
   meta-analysis. Research Synthesis Methods, 1(2), 112-125.
   https://doi.org/10.1002/jrsm.11
.. [2] Lau, J., Antman, E. M., Jimenez-Silva, J., Kupelnick, B., Mosteller, F., &
   Chalmers, T. C. (1992). Cumulative meta-analysis of therapeutic trials for myocardial
   infarction. New England Journal of Medicine, 327(4), 248-254.
   https://doi.org/10.1056/NEJM199207233270406
.. [3] Belsley, D. A., Kuh, E., & Welsch, R. E. (1980). Regression Diagnostics. Wiley.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from scipy import special

from . import _engine, _transf
from ._fitted import MODEL_DEFAULTS, model_options, studies_and_settings
from ._results import (
    TableResult,
    array_field,
    format_p,
    import_pandas,
    plain,
    readonly_bool,
    table_lines,
)
from ._typing import FloatArray
from ._validation import as_float_array, check_length, default_labels, strings
from .metareg import MetaRegResult
from .pooling import (
    PoolResult,
    _indices,
    omitted_lines,
    pool,
)

__all__ = [
    "CumulativeResult",
    "InfluenceResult",
    "LeaveOneOutResult",
    "cumulative",
    "influence",
    "leave_one_out",
]

_ROW_FIELDS = (
    "estimate",
    "se",
    "statistic",
    "pvalue",
    "ci_lower",
    "ci_upper",
    "q",
    "q_pvalue",
    "tau2",
    "i2",
    "h2",
)


def _study_indices(x: Any) -> Any:
    arr = np.array(x, dtype=np.intp, copy=True).reshape(-1)
    arr.setflags(write=False)
    return arr


class _Table(TableResult):
    """Results with one row per study: a text table for ``summary``, a frame with the
    studies' labels."""

    study: Any
    labels: tuple[str, ...]
    omitted: tuple[int, ...]
    omitted_reasons: tuple[str, ...]
    measure: str | None

    @property
    def study_labels(self) -> tuple[str, ...]:
        """One label per input study (the defaults "Study 1", ... when none were kept)."""
        n = len(self.labels)
        if not n:
            n = int(max([*self.study.tolist(), *self.omitted], default=-1)) + 1
            return default_labels(n)
        return self.labels

    @property
    def row_labels(self) -> list[str]:
        """The label of each row's study."""
        names = self.study_labels
        return [names[int(i)] for i in self.study]

    def _rows(self, title: str, columns: tuple[str, ...]) -> str:
        names = self.row_labels
        if self.measure is not None:
            title += f" ({_transf.scale(self.measure).name})"
        values = [np.asarray(getattr(self, c), dtype=np.float64) for c in columns]
        rows = [
            [
                format_p(float(v[i])) if c.endswith("pvalue") else f"{v[i]:.4f}"
                for c, v in zip(columns, values, strict=True)
            ]
            for i in range(len(names))
        ]
        lines = [title, ""]
        lines += table_lines(
            list(columns), rows, [10] * len(columns), stub=list(names), corner="study"
        )
        omitted = omitted_lines(self.omitted, self.omitted_reasons, self.study_labels)
        return "\n".join(lines + (["", *omitted] if omitted else []))

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable; NaN/inf become ``None``)."""
        d: dict[str, Any] = plain(self)
        d["labels"] = list(self.study_labels)
        return d

    def to_frame(self, transf: Any = None) -> Any:
        """A pandas DataFrame with a row per study (requires pandas): ``study`` (its
        0-based input index), ``label`` and the statistics.

        With `transf` (``"auto"``: the measure's own back-transformation, a name or a
        function, as :meth:`ketameta.PoolResult.summary`), the estimates and their
        confidence and prediction limits are back-transformed, ``se`` is NaN and a
        ``scale`` column names the scale (the statistics and p-values stay those of the
        analysis scale). Transformations that need sample sizes (Freeman-Tukey) are
        refused: apply them to a pooled result.
        """
        pd = import_pandas()
        n = len(self.study)
        frame: dict[str, Any] = {"study": self.study.tolist(), "label": self.row_labels}
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]  # (an attrs subclass)
            value = getattr(self, field.name)
            if field.name != "study" and isinstance(value, np.ndarray) and value.shape == (n,):
                frame[field.name] = value
        t = _transf.resolve(transf, self.measure)
        if t.function is not None:
            if t.needs_n:
                msg = f"`transf` {t.name!r} needs sample sizes: apply it to a pooled result"
                raise ValueError(msg)
            for name in ("estimate", "ci_lower", "ci_upper", "pred_lower", "pred_upper"):
                if name in frame:
                    frame[name] = t(frame[name])
            if "se" in frame:
                frame["se"] = np.full(n, np.nan)
        if "estimate" in frame:
            frame["scale"] = t.scale
        return pd.DataFrame(frame)

    def __repr__(self) -> str:
        measure = "" if self.measure is None else f"measure={self.measure!r}, "
        est = getattr(self, "estimate", None)
        span = (
            f", estimate from {np.nanmin(est):.4g} to {np.nanmax(est):.4g}"
            if est is not None and np.isfinite(est).any()
            else ""
        )
        return f"{type(self).__name__}({measure}rows={len(self.study)}{span})"


def _fit_batch(
    y: FloatArray,
    v: FloatArray,
    present: np.ndarray[Any, Any],
    method: str,
    test: str,
    level: float,
    ctl: dict[str, Any],
) -> dict[str, Any]:
    """Fit one meta-analysis per row of `present` (absent studies get v = inf)."""
    yy = np.where(present, y, 0.0)
    vv = np.where(present, v, np.inf)
    out = _engine.fit(yy, vv, padded=True, method=method, test=test, level=level, control=ctl)
    return _engine.intercept_view(out)


@attrs.frozen(kw_only=True, repr=False)
class _RowFits(_Table):
    """One fitted model per row: the fields shared by leave-one-out and cumulative results."""

    study: Any = attrs.field(converter=_study_indices, eq=attrs.cmp_using(eq=np.array_equal))
    estimate: Any = array_field()
    se: Any = array_field()
    statistic: Any = array_field()
    pvalue: Any = array_field()
    ci_lower: Any = array_field()
    ci_upper: Any = array_field()
    q: Any = array_field()
    q_pvalue: Any = array_field()
    tau2: Any = array_field()
    i2: Any = array_field()
    h2: Any = array_field()
    method: str
    test: str
    level: float
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())


@attrs.frozen(kw_only=True, repr=False)
class LeaveOneOutResult(_RowFits):
    """One row per study left out (see :func:`leave_one_out`): the model without that
    study. ``overall`` is the model with all studies (for comparison; the forest plot
    draws it). ``study`` holds the 0-based input index of the study left out, ``labels``
    one label per input study."""

    overall: PoolResult | None = None

    def summary(self) -> str:
        """A table of the leave-one-out fits."""
        return self._rows(
            "Leave-one-out analysis (row i: study i omitted)",
            ("estimate", "ci_lower", "ci_upper", "pvalue", "tau2", "i2", "q"),
        )


def leave_one_out(
    yi: Any,
    vi: Any = None,
    *,
    sei: Any = None,
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    control: dict[str, Any] | None = None,
    labels: Any = None,
    measure: str | None = None,
) -> LeaveOneOutResult:
    """Refit the model k times, each time without one study (metafor's ``leave1out``) [1]_.

    Parameters
    ----------
    yi, vi, sei, method, test, level, control, labels, measure
        As in :func:`ketameta.pool`; `yi` may also be a model fitted by
        :func:`ketameta.pool` (metafor's ``leave1out(res)``): its studies (the omitted
        ones stay omitted) and its method, test, level and control are used, and giving
        `vi`, `sei`, `labels`, `measure` or a setting with it is a ``TypeError``.

    Returns
    -------
    LeaveOneOutResult
        Arrays indexed by the omitted study: estimate, se, statistic, p-value, CI, Q and
        its p-value, τ², I², H².

    References
    ----------
    .. [1] Viechtbauer & Cheung (2010), Res Synth Methods 1(2):112-125.

    Examples
    --------
    >>> import ketameta
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> round(float(ketameta.leave_one_out(es).estimate[0]), 4)
    -0.7071
    """
    prep, settings, _ = studies_and_settings(
        yi,
        function="leave_one_out",
        data={"vi": vi, "sei": sei, "labels": labels, "measure": measure},
        settings={"method": method, "test": test, "level": level, "control": control},
        defaults=MODEL_DEFAULTS,
    )
    control = settings["control"]
    method, test, lv, ctl = model_options(settings)
    y, v, kept = prep.yi, prep.vi, prep.kept
    k = len(y)
    if k < 2:
        msg = f"leave-one-out needs at least 2 studies, got k = {k}"
        raise ValueError(msg)
    out = _fit_batch(y, v, ~np.eye(k, dtype=bool), method, test, lv, ctl)
    fields = prep.fields()
    overall = attrs.evolve(
        pool(y, v, method=method, test=test, level=lv, control=control), **fields
    )
    return LeaveOneOutResult(
        study=kept,
        **{f: out[f] for f in _ROW_FIELDS},
        method=method,
        test=test,
        level=lv,
        overall=overall,
        measure=fields["measure"],
        labels=fields["labels"],
        omitted=fields["omitted"],
        omitted_reasons=fields["omitted_reasons"],
    )


@attrs.frozen(kw_only=True, repr=False)
class CumulativeResult(_RowFits):
    """Row j: the model fitted to the first j + 1 studies in `order` (see :func:`cumulative`)."""

    k: Any = array_field()

    def summary(self) -> str:
        """A table of the cumulative fits."""
        return self._rows(
            "Cumulative meta-analysis (row: study added)",
            ("estimate", "ci_lower", "ci_upper", "pvalue", "tau2", "i2"),
        )


def cumulative(
    yi: Any,
    vi: Any = None,
    *,
    sei: Any = None,
    order: Any = None,
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    control: dict[str, Any] | None = None,
    labels: Any = None,
    measure: str | None = None,
) -> CumulativeResult:
    """Cumulative meta-analysis: studies added one at a time (metafor's ``cumul``) [2]_.

    Parameters
    ----------
    order : array_like, optional
        A sort key, one value per study (e.g. the publication year): studies are added in
        increasing order of it, ties in input order (as metafor's ``cumul(order=)``).
        Default: the input order. A study with missing values is skipped (and reported by
        an :class:`~ketameta.OmittedStudiesWarning`), whatever its key; a missing key of a
        study that is pooled is a ``ValueError``.
    yi, vi, sei, method, test, level, control, labels, measure
        As in :func:`ketameta.pool`. The first row has one study: τ² = 0 and a z interval.
        `yi` may also be a model fitted by :func:`ketameta.pool` (metafor's
        ``cumul(res)``): its studies and settings, as :func:`leave_one_out`; `order` then
        still has one key per input study, the omitted ones included.

    Returns
    -------
    CumulativeResult

    References
    ----------
    .. [2] Lau et al. (1992), N Engl J Med 327(4):248-254.

    Examples
    --------
    >>> import ketameta
    >>> data = ketameta.datasets.bcg()
    >>> es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> cm = ketameta.cumulative(es, order=data["year"])
    >>> round(float(cm.estimate[-1]), 4) == round(ketameta.pool(es).estimate, 4)
    True
    """
    prep, settings, _ = studies_and_settings(
        yi,
        function="cumulative",
        data={"vi": vi, "sei": sei, "labels": labels, "measure": measure},
        settings={"method": method, "test": test, "level": level, "control": control},
        defaults=MODEL_DEFAULTS,
    )
    method, test, lv, ctl = model_options(settings)
    y, v, kept, omitted = prep.yi, prep.vi, prep.kept, prep.omitted
    n_input = len(kept) + len(omitted)
    if order is None:
        sequence = kept
    else:
        keys = as_float_array(order, "order")
        check_length(keys, "order", n_input)
        # (a missing key of a study omitted anyway for missing data does not matter: the
        # study is dropped, as in metafor)
        missing_key = np.isnan(keys[kept])
        if missing_key.any():
            i = int(kept[np.flatnonzero(missing_key)[0]])
            msg = (
                f"`order` must not be missing for a study that is pooled; study {i} has order=nan"
            )
            raise ValueError(msg)
        sequence = kept[np.argsort(keys[kept], kind="stable")]  # ties keep the input order
    position = {int(i): j for j, i in enumerate(kept)}
    perm = np.array([position[int(i)] for i in sequence])
    ys, vs = y[perm], v[perm]
    k = len(ys)
    present = np.tri(k, dtype=bool)  # row j: the first j + 1 studies
    out = _fit_batch(ys, vs, present, method, test, lv, ctl)
    fields = prep.fields()
    return CumulativeResult(
        study=sequence,
        k=np.arange(1, k + 1),
        **{f: out[f] for f in _ROW_FIELDS},
        method=method,
        test=test,
        level=lv,
        measure=fields["measure"],
        labels=fields["labels"],
        omitted=fields["omitted"],
        omitted_reasons=fields["omitted_reasons"],
    )


@attrs.frozen(kw_only=True, repr=False)
class InfluenceResult(_Table):
    """Case-deletion diagnostics of a fitted model (see :func:`influence`); ``study`` holds
    the 0-based input index of each study, ``labels`` one label per input study."""

    study: Any = attrs.field(converter=_study_indices, eq=attrs.cmp_using(eq=np.array_equal))
    rstudent: Any = array_field()
    dffits: Any = array_field()
    cook_d: Any = array_field()
    cov_r: Any = array_field()
    tau2_del: Any = array_field()
    q_del: Any = array_field()
    hat: Any = array_field()
    weight: Any = array_field()
    dfbetas: Any = array_field()
    influential: Any = attrs.field(converter=readonly_bool, eq=attrs.cmp_using(eq=np.array_equal))
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())

    def summary(self) -> str:
        """A table of the diagnostics, influential studies marked with ``*``."""
        text = self._rows(
            "Influence diagnostics",
            ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "q_del", "hat", "weight"),
        )
        lines = text.split("\n")
        for i, flag in enumerate(self.influential):
            if flag:
                lines[3 + i] += " *"
        if self.influential.any():
            lines.append("* influential (Viechtbauer & Cheung 2010 criteria)")
        return "\n".join(lines)


def influence(result: object) -> InfluenceResult:
    """Outlier and influence diagnostics of a fitted model (metafor's ``influence``) [1]_.

    For each study i, with the model refitted without it (estimate :math:`\\hat\\mu_{(-i)}`,
    its variance :math:`V_{(-i)}` and :math:`\\hat\\tau^2_{(-i)}`), the full model's
    weights :math:`w_i` and hat values :math:`h_i = w_i/\\sum w`:

    * externally studentized residual
      :math:`(y_i - \\hat\\mu_{(-i)})/\\sqrt{v_i + \\hat\\tau^2_{(-i)} + V_{(-i)}}`;
    * DFFITS :math:`(\\hat\\mu - \\hat\\mu_{(-i)})/\\sqrt{h_i(\\hat\\tau^2_{(-i)} + v_i)}`;
    * Cook's distance :math:`(\\hat\\mu - \\hat\\mu_{(-i)})^2 / V`;
    * covariance ratio :math:`V_{(-i)}/V`; DFBETAS
      :math:`(\\hat\\mu - \\hat\\mu_{(-i)})/\\sqrt{V^*_i}`, with :math:`V^*_i` the
      variance of the estimate from all studies at :math:`\\hat\\tau^2_{(-i)}`;
    * τ² and Q without the study, hat values and weights (%).

    A study is flagged influential, as in metafor, when
    :math:`|DFFITS| > 3\\sqrt{p/(k-p)}`, :math:`P(\\chi^2_p \\le D_i) > 0.5`,
    :math:`h_i > 3p/k` or :math:`|DFBETAS| > 1` (p = 1) [1]_ [3]_.

    Parameters
    ----------
    result : PoolResult
        A model fitted by :func:`ketameta.pool` (the refits use its method, test and level).

    References
    ----------
    .. [1] Viechtbauer & Cheung (2010), Res Synth Methods 1(2):112-125.
    .. [3] Belsley, Kuh & Welsch (1980), Regression Diagnostics.

    Examples
    --------
    >>> import ketameta
    >>> es = ketameta.escalc("RR", data=ketameta.datasets.bcg(),
    ...                      ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> inf = ketameta.influence(ketameta.pool(es))
    >>> round(float(inf.rstudent[0]), 4), bool(inf.influential.any())
    (-0.2181, False)
    """
    if not isinstance(result, PoolResult):
        # the wording of the rule for methods applied to a fitted model (_fitted.py);
        # metafor's influence() also takes meta-regressions, ketameta's not yet
        if isinstance(result, MetaRegResult):
            msg = (
                "`result`: influence needs an intercept-only model, got a meta-regression "
                "(MetaRegResult); influence diagnostics of models with moderators (metafor's "
                "influence(res) of rma(mods=)) are not available yet: pass a ketameta.pool "
                "result"
            )
        else:
            msg = f"`result` must be a PoolResult from ketameta.pool, got {type(result).__name__}"
        raise TypeError(msg)
    if result.tau2_fixed:
        msg = "influence diagnostics need a model with estimated tau^2 (not tau2=...)"
        raise ValueError(msg)
    y, v, k = result.yi, result.vi, result.k
    if k < 3:
        msg = f"influence diagnostics need at least 3 studies, got k = {k}"
        raise ValueError(msg)
    ctl = {**_engine.DEFAULT_CONTROL, **result.control}
    out = _fit_batch(y, v, ~np.eye(k, dtype=bool), result.method, result.test, result.level, ctl)
    mu_del, se_del, tau2_del = out["estimate"], out["se"], out["tau2"]
    var_full = result.se**2
    weight = result.weights
    hat = weight / 100.0
    delta = result.estimate - mu_del
    rstudent = (y - mu_del) / np.sqrt(v + tau2_del + se_del**2)
    dffits = delta / np.sqrt(hat * (tau2_del + v))
    cook_d = delta**2 / var_full
    cov_r = se_del**2 / var_full
    # DFBETAS scales by the SE of the estimate on all studies at τ²_(-i) (Viechtbauer &
    # Cheung 2010, eq. 16)
    se_all_at_del = 1.0 / np.sqrt(np.sum(1.0 / (v[None, :] + tau2_del[:, None]), axis=-1))
    dfbetas = delta / se_all_at_del
    p = 1
    influential = (
        (np.abs(dffits) > 3 * np.sqrt(p / (k - p)))
        | (special.chdtr(p, cook_d) > 0.5)
        | (hat > 3 * p / k)
        | (np.abs(dfbetas) > 1)
    )
    omitted = set(result.omitted)
    study = np.array([i for i in range(k + len(omitted)) if i not in omitted])
    return InfluenceResult(
        study=study,
        rstudent=rstudent,
        dffits=dffits,
        cook_d=cook_d,
        cov_r=cov_r,
        tau2_del=tau2_del,
        q_del=out["q"],
        hat=hat,
        weight=weight,
        dfbetas=dfbetas,
        influential=influential,
        measure=result.measure,
        labels=result.study_labels,
        omitted=result.omitted,
        omitted_reasons=result.omitted_reasons,
    )
