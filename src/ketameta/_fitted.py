"""Methods applied to a fitted model, as metafor's ``regtest(res)``, ``trimfill(res)``,
``leave1out(res)``, ...: the studies and settings taken from a :class:`PoolResult` (written
once for every such function).

The rule (one for every function): with a fitted model as the first argument, the studies
(effect sizes, variances, labels, measure, the omitted studies) *and* the model settings
(method, test, level, control) come from the model. Giving any of them again (``vi``,
``sei``, ``labels``, ``measure``, ``method``, ``test``, ``level``, ``control``) is a
``TypeError`` naming the argument: metafor ignores them there (with a warning for the
data, silently for the settings); here a setting that would not be used is refused, and
the model is refitted with :func:`ketameta.pool` to change it. Arguments of the method
itself (``predictor``, ``estimator``, ``order``, ...) are given as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .effect_sizes import EffectSizes
from .metareg import MetaRegResult
from .pooling import ModelFit, PoolResult, Prepared, prepare_studies, validate_options

__all__ = ["MODEL_DEFAULTS", "SETTINGS", "model_options", "studies_and_settings"]

SETTINGS = ("method", "test", "level", "control")
#: the model settings' defaults on effect sizes (as :func:`ketameta.pool`)
MODEL_DEFAULTS: Mapping[str, Any] = {"method": "REML", "test": "z", "level": 0.95, "control": None}
_DATA = ("vi", "sei", "labels", "measure")


def _is_ketameta_result(x: object) -> bool:
    module = type(x).__module__
    return (module == "ketameta" or module.startswith("ketameta.")) and not isinstance(
        x, EffectSizes
    )


def studies_and_settings(
    yi: Any,
    *,
    function: str,
    data: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    refits: bool = True,
    moderators: bool = False,
    stacklevel: int = 4,
) -> tuple[Prepared, dict[str, Any], ModelFit | None]:
    """The studies, the settings and the fitted model (or None) of a call of `function`.

    Parameters
    ----------
    yi
        The first argument: effect sizes, an :class:`~ketameta.EffectSizes`, or a
        :class:`~ketameta.PoolResult`.
    data
        The data arguments as given (``vi``, ``sei``, ``labels``, ``measure``; None = not
        given).
    settings, defaults
        The model settings as given (None = not given) and their defaults for effect
        sizes. With a fitted model they come from the model.
    refits
        Whether `function` refits the random-effects model (then a model whose τ² was fixed
        with ``pool(tau2=...)`` is refused: the function estimates τ²).
    moderators
        Whether `function` also takes a meta-regression (:class:`MetaRegResult`); else
        only an intercept-only model.

    Returns
    -------
    prep, settings, model
        The :class:`~ketameta.pooling.Prepared` studies (with a model: its studies, the
        omitted ones still named, no second warning), the settings to use, the model.
    """
    given_settings = dict(settings or {})
    takes_it = isinstance(yi, PoolResult) or (moderators and isinstance(yi, MetaRegResult))
    if isinstance(yi, ModelFit) and not takes_it:
        kind = "a meta-regression (MetaRegResult)" if isinstance(yi, MetaRegResult) else ""
        msg = (
            f"`yi`: {function} needs an intercept-only model, got {kind or type(yi).__name__}; "
            "as metafor, it is defined for models without moderators: pass a "
            "ketameta.pool result or the effect sizes"
        )
        raise TypeError(msg)
    if not isinstance(yi, ModelFit):
        if _is_ketameta_result(yi):
            fits = "ketameta.pool or ketameta.metareg" if moderators else "ketameta.pool"
            msg = (
                f"`yi` must be effect sizes, an EffectSizes or a fitted model of {fits}; "
                f"{function} cannot use a {type(yi).__name__}"
            )
            raise TypeError(msg)
        resolved = {
            name: (dict(defaults or {})[name] if value is None else value)
            for name, value in given_settings.items()
        }
        prep = prepare_studies(
            yi,
            data.get("vi"),
            data.get("sei"),
            nan_policy="omit",
            stacklevel=stacklevel,
            labels=data.get("labels"),
            measure=data.get("measure"),
        )
        return prep, resolved, None
    for name in (*_DATA, *SETTINGS):
        if (data if name in _DATA else given_settings).get(name) is not None:
            what = "studies" if name in _DATA else "settings"
            msg = (
                f"`{name}` cannot be given with a fitted model: {function} takes the "
                f"{what} from the {type(yi).__name__} (refit it to change them)"
            )
            raise TypeError(msg)
    if refits and yi.tau2_fixed:
        msg = (
            f"`yi`: {function} refits the model and estimates tau^2, but this model's tau^2 "
            "was fixed (tau2=...): pass the effect sizes with the settings instead"
        )
        raise ValueError(msg)
    info = {
        "measure": yi.measure,
        "labels": yi.labels,
        "inputs": yi.inputs,
        "input_names": yi.input_names,
    }
    prep = Prepared(yi.yi, yi.vi, yi.used, yi.omitted, yi.omitted_reasons, info)
    model_settings = {name: getattr(yi, name) for name in given_settings}
    if "control" in model_settings:
        model_settings["control"] = dict(yi.control) or None
    return prep, model_settings, yi


def model_options(settings: Mapping[str, Any]) -> tuple[str, str, float, dict[str, Any]]:
    """The validated ``method, test, level, control`` of the `settings` that
    :func:`studies_and_settings` returned (:func:`ketameta.pooling.validate_options`)."""
    method, test, lv, _, _, ctl = validate_options(
        settings["method"], settings["test"], settings["level"], None, "omit", settings["control"]
    )
    return method, test, lv, ctl
