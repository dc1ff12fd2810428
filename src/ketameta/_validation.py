"""Input validation shared by every public function (written once, used everywhere).

Messages name the argument in backticks and, where it applies, the index of the
offending study (0-based, as in NumPy), and say what was expected and what came in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from numbers import Real
from typing import Any

import numpy as np

from ._typing import FloatArray

__all__ = [
    "as_float_array",
    "check_choice",
    "check_finite",
    "check_level",
    "check_nonnegative",
    "check_positive",
    "check_same_length",
    "check_within",
]


def _first_bad(mask: np.ndarray[Any, Any]) -> int:
    return int(np.flatnonzero(mask)[0])


def as_float_array(x: Any, name: str, *, ndim: int = 1) -> FloatArray:
    """Return `x` as a new float64 array of `ndim` dimensions (a copy: inputs are never modified).

    Scalars become length-1 arrays when ``ndim == 1``. Raises ``TypeError`` naming the
    first non-numeric element and ``ValueError`` for the wrong number of dimensions.
    """
    if type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == ndim:
        return np.array(x, dtype=np.float64)  # the common case, fast (a copy)
    if x is None:
        msg = f"`{name}` is required"
        raise TypeError(msg)
    if isinstance(x, str | bytes):
        msg = f"`{name}` must be numeric, got the string {x!r}"
        raise TypeError(msg)
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):
        x = x.to_numpy()  # pandas Series / Index
    arr = np.asarray(x)
    if arr.dtype.kind in "biuf":
        out = np.array(arr, dtype=np.float64, copy=True)
    elif arr.dtype.kind == "c":
        msg = f"`{name}` must be real-valued, got complex numbers"
        raise TypeError(msg)
    else:
        if arr.dtype.kind in "US":  # a list mixing numbers and strings: find the string
            arr = np.asarray(x, dtype=object)
        flat = arr.reshape(-1)
        out_flat = np.empty(flat.shape, dtype=np.float64)
        for i, value in enumerate(flat):
            if value is None:
                out_flat[i] = np.nan
            elif isinstance(value, Real | np.bool_):
                out_flat[i] = float(value)
            else:
                where = f" (study {i})" if arr.ndim == 1 else f" (element {i})"
                msg = f"`{name}` must be numeric{where}: got {value!r}"
                raise TypeError(msg)
        out = out_flat.reshape(arr.shape)
    if ndim == 1 and out.ndim == 0:
        out = out.reshape(1)
    if out.ndim != ndim:
        msg = f"`{name}` must be {ndim}-dimensional, got an array of shape {out.shape}"
        raise ValueError(msg)
    return out


def check_same_length(arrays: Mapping[str, FloatArray]) -> int:
    """Check that all named 1-D arrays have the same length; return it."""
    items = list(arrays.items())
    first_name, first = items[0]
    for name, arr in items[1:]:
        if arr.shape[-1] != first.shape[-1]:
            msg = (
                f"`{name}` has {arr.shape[-1]} studies but `{first_name}` has "
                f"{first.shape[-1]}; all inputs must have the same length"
            )
            raise ValueError(msg)
    return int(first.shape[-1])


def check_length(arr: FloatArray, name: str, n: int, of: str = "yi") -> None:
    """Check that a per-study array has one entry for each of the `n` studies of `of`."""
    if arr.shape[-1] != n:
        msg = (
            f"`{name}` has {arr.shape[-1]} studies but `{of}` has {n}; all inputs must have "
            "the same length"
        )
        raise ValueError(msg)


def _check(arr: FloatArray, bad: np.ndarray[Any, Any], name: str, requirement: str) -> None:
    if bad.any():
        i = _first_bad(bad)
        msg = f"`{name}` must be {requirement}; study {i} has {name}={float(arr.reshape(-1)[i])!r}"
        raise ValueError(msg)


def check_finite(arr: FloatArray, name: str) -> None:
    """Reject ±inf (NaN is allowed and means 'missing')."""
    _check(arr, np.isinf(arr).reshape(-1), name, "finite (NaN marks a missing value)")


def check_nonnegative(arr: FloatArray, name: str) -> None:
    """Reject negative values and ±inf."""
    check_finite(arr, name)
    with np.errstate(invalid="ignore"):
        _check(arr, (arr < 0).reshape(-1), name, "non-negative")


def check_positive(arr: FloatArray, name: str) -> None:
    """Reject zero, negative values and ±inf."""
    check_finite(arr, name)
    with np.errstate(invalid="ignore"):
        _check(arr, (arr <= 0).reshape(-1), name, "positive")


#: representable range of effect sizes and variances for the pooling core: weights up to
#: their cubes, and squared effects times weights, must stay within double precision
MAX_ABS_EFFECT = 1e50
VARIANCE_RANGE = (1e-100, 1e100)


def check_magnitudes(y: FloatArray, v: FloatArray, name_y: str, name_v: str) -> None:
    """Reject effects beyond ±1e50 and variances outside [1e-100, 1e100] (documented
    limits: beyond them the weighted moments overflow double precision)."""
    with np.errstate(invalid="ignore"):
        _check(
            y,
            (np.abs(y) > MAX_ABS_EFFECT).reshape(-1),
            name_y,
            f"at most {MAX_ABS_EFFECT:g} in absolute value",
        )
        low, high = VARIANCE_RANGE
        label = "standard errors" if name_v in ("sei", "SE") else "variances"
        _check(
            v,
            ((v < low) | (v > high)).reshape(-1),
            name_v,
            f"{label} within [{low:g}, {high:g}] (as variances)",
        )


def check_within(arr: FloatArray, name: str, low: float, high: float) -> None:
    """Reject values outside the closed interval [low, high]."""
    check_finite(arr, name)
    with np.errstate(invalid="ignore"):
        bad = ((arr < low) | (arr > high)).reshape(-1)
    _check(arr, bad, name, f"within [{low:g}, {high:g}]")


def check_choice(value: Any, name: str, choices: Collection[str]) -> str:
    """Return `value` if it is one of `choices`, else raise listing the valid ones."""
    if not isinstance(value, str):
        msg = f"`{name}` must be a string, one of {sorted(choices)}; got {value!r}"
        raise TypeError(msg)
    if value not in choices:
        msg = f"unknown `{name}` {value!r}; valid values are {', '.join(map(repr, choices))}"
        raise ValueError(msg)
    return value


def check_level(level: Any, name: str = "level") -> float:
    """Return a confidence level in the open interval (0, 1)."""
    if isinstance(level, bool) or not isinstance(level, Real):
        msg = f"`{name}` must be a number in (0, 1), got {level!r}"
        raise TypeError(msg)
    lv = float(level)
    if not 0.0 < lv < 1.0:
        msg = f"`{name}` must be in (0, 1) (e.g. 0.95), got {level!r}"
        raise ValueError(msg)
    return lv
