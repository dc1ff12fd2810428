"""Input validation shared by every public function (written once, used everywhere).

Messages name the argument in backticks and, where it applies, the index of the
offending study (0-based, as in NumPy), and say what was expected and what came in.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from collections.abc import Collection, Mapping
from decimal import Decimal
from fractions import Fraction
from numbers import Integral, Real
from typing import Any

import numpy as np

from ._engine.inference import critical_value
from ._typing import FloatArray

__all__ = [
    "as_float",
    "as_float_array",
    "as_number",
    "check_batch",
    "check_choice",
    "check_finite",
    "check_level",
    "check_nonnegative",
    "check_not_empty",
    "check_positive",
    "check_positive_int",
    "check_same_length",
    "check_within",
    "critical_value",
    "fixed_tau2",
    "prepare_batch",
    "sei_to_variance",
]


def _first_bad(mask: np.ndarray[Any, Any]) -> int:
    return int(np.flatnonzero(mask)[0])


def _where(i: int, shape: tuple[int, ...], axes: tuple[str, str] = ("study", "column")) -> str:
    """Where flat index `i` of an array of `shape` is: "study 3", or for a 2-D array the
    row and column named by `axes` ("study 0, column 1"; "analysis 2, study 4")."""
    if len(shape) == 1:
        return f"study {i}"
    if len(shape) == 2 and shape[1]:
        return f"{axes[0]} {i // shape[1]}, {axes[1]} {i % shape[1]}"
    return f"element {i}"


def _is_pandas_na(value: object) -> bool:
    """``pd.NA`` (pandas' missing-value scalar), recognised without importing pandas."""
    cls = type(value)
    return cls.__name__ == "NAType" and cls.__module__.startswith("pandas")


def _short(value: object) -> str:
    """A repr that stays readable for integers of thousands of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        # (str() of an integer of more than 4300 digits raises: count them from the bits)
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"an integer of about {digits} digits"
    if (
        isinstance(value, Fraction)
        and max(abs(value.numerator), value.denominator).bit_length() > 256
    ):
        return "a fraction of integers of hundreds of digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _element_to_float(value: object, name: str, where: str | None) -> float:
    """One element of an object array (`where`: "study 3") or an option (`where` None) as a
    float: None and ``pd.NA`` are missing (NaN); numbers (Python, NumPy, ``Decimal``,
    ``Fraction``, bools) are converted; numbers beyond the double-precision range and
    nested sequences are a ``ValueError``, anything else a ``TypeError``."""
    at = f" ({where})" if where else ""
    if value is None or _is_pandas_na(value):
        return math.nan
    if isinstance(value, _dt.timedelta | _dt.date | np.timedelta64 | np.datetime64):
        # (before the numbers: NumPy registers timedelta64 as an Integral)
        msg = (
            f"`{name}` must be numeric{at}: got the date/time value {_short(value)}; "
            "convert durations or dates to numbers first"
        )
        raise TypeError(msg)
    if isinstance(value, Real | Decimal | np.bool_):
        try:
            out = float(value)
        except OverflowError:
            out = math.inf
        except (TypeError, ValueError) as exc:  # e.g. Decimal('sNaN')
            msg = f"`{name}` must be numeric{at}: got {_short(value)}"
            raise TypeError(msg) from exc
        if math.isinf(out) and not _is_infinite_number(value):
            msg = (
                f"`{name}` is beyond the double-precision range{at}: got {_short(value)}; "
                "numbers must be below about 1.8e308 in absolute value"
            )
            raise ValueError(msg)
        if out == 0.0 and isinstance(value, int | Fraction | Decimal) and value != 0:
            msg = (
                f"`{name}` is outside the double-precision range{at}: got {_short(value)}; "
                "nonzero numbers must be above about 5e-324 in absolute value"
            )
            raise ValueError(msg)
        return out
    if isinstance(value, list | tuple | np.ndarray):
        msg = (
            f"`{name}` must hold one number per study{at}: got the sequence "
            f"{_short(value)} (a ragged nested input?)"
        )
        raise ValueError(msg)
    msg = f"`{name}` must be numeric{at}: got {_short(value)}"
    raise TypeError(msg)


def _is_infinite_number(value: object) -> bool:
    """True for numbers that are infinite themselves (float('inf'), Decimal('Infinity'))."""
    if isinstance(value, Decimal):
        return value.is_infinite()
    if isinstance(value, float | np.floating):
        return math.isinf(value)
    return False


def _object_to_float(
    arr: np.ndarray[Any, Any], name: str, axes: tuple[str, str] = ("study", "column")
) -> FloatArray:
    flat = arr.reshape(-1)
    out = np.empty(flat.shape, dtype=np.float64)
    for i, value in enumerate(flat):
        out[i] = _element_to_float(value, name, _where(i, arr.shape, axes))
    result: FloatArray = out.reshape(arr.shape)
    return result


def _from_pandas(x: Any) -> Any:
    """A pandas Series / Index / array as a NumPy array; nullable numeric and boolean
    dtypes (``Float64``, ``Int64``, ``boolean``) give float64 with NaN where they hold
    ``pd.NA``."""
    dtype = getattr(x, "dtype", None)
    if (
        dtype is not None
        and not isinstance(dtype, np.dtype)
        and getattr(dtype, "kind", "O") in "biuf"
    ):
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    return x.to_numpy()


def as_float(x: Any, name: str, axes: tuple[str, str] = ("study", "column")) -> FloatArray:
    """Return `x` (of any shape) as a new float64 array: the one conversion of every
    numeric input of ketameta (a copy: inputs are never modified).

    Input classes and what they get (``docs/contract.md``):

    * NumPy arrays of bools, integers and floats of any width; Python numbers, ``Decimal``,
      ``Fraction`` and NumPy scalars (also as elements of lists or object arrays);
    * missing values -- NaN, ``None``, ``pd.NA``, the masked entries of a NumPy masked array
      and the NA entries of pandas' nullable ``Float64`` / ``Int64`` / ``boolean`` dtypes --
      become NaN, which every public function treats as missing (omitted with an
      :class:`~ketameta.OmittedStudiesWarning`, or NaN out);
    * ``TypeError`` naming the argument for strings, complex numbers and dates or
      durations (``datetime64`` / ``timedelta64``), ``ValueError`` for ragged nested
      sequences and for numbers beyond the double-precision range (a Python integer of
      400 digits, a long double of 1e400).
    """
    if x is None:
        msg = f"`{name}` is required"
        raise TypeError(msg)
    if isinstance(x, str | bytes):
        msg = f"`{name}` must be numeric, got the string {_short(x)}"
        raise TypeError(msg)
    if np.ma.isMaskedArray(x):
        mask = np.ma.getmaskarray(x)
        data = np.ma.getdata(x)
        if data.dtype.kind in "OUS":  # masked entries may hold anything: skip them
            data = data.astype(object)
            data[mask] = None
        out = as_float(np.asarray(data), name, axes)
        out[mask] = np.nan
        return out
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):
        x = _from_pandas(x)  # pandas Series / Index / extension array
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # NumPy >= 1.24 refuses ragged nested sequences
        msg = (
            f"`{name}` must be a flat sequence of numbers (one per study), got a ragged "
            "nested sequence (rows of unequal length)"
        )
        raise ValueError(msg) from exc
    kind = arr.dtype.kind
    if kind in "biu":
        return np.array(arr, dtype=np.float64, copy=True)
    if kind == "f":
        if arr.dtype.itemsize <= 8:
            return np.array(arr, dtype=np.float64, copy=True)
        with np.errstate(over="ignore"):  # long double: values beyond the double range
            out = np.array(arr, dtype=np.float64, copy=True)
        overflow = (np.isinf(out) & np.isfinite(arr)).reshape(-1)
        if overflow.any():
            i = _first_bad(overflow)
            msg = (
                f"`{name}` is beyond the double-precision range ({_where(i, arr.shape, axes)}): "
                f"got {arr.reshape(-1)[i]!r}"
            )
            raise ValueError(msg)
        return out
    if kind == "c":
        msg = f"`{name}` must be real-valued, got complex numbers"
        raise TypeError(msg)
    if kind in "mM":
        what = "durations (timedelta64)" if kind == "m" else "dates (datetime64)"
        msg = f"`{name}` must be numeric, got {what}; convert them to numbers first"
        raise TypeError(msg)
    if kind in "US":  # a list mixing numbers and strings: find the string
        arr = np.asarray(x, dtype=object)
    return _object_to_float(arr, name, axes)


def as_float_array(x: Any, name: str, *, ndim: int = 1) -> FloatArray:
    """Return `x` as a new float64 array of `ndim` dimensions (a copy: inputs are never
    modified), converted by :func:`as_float` (masked arrays, nullable pandas dtypes,
    ``Decimal`` and NumPy scalars, ``pd.NA``; named errors for everything else).

    Scalars become length-1 arrays when ``ndim == 1``. Raises ``ValueError`` for the wrong
    number of dimensions.
    """
    if type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == ndim:
        return np.array(x, dtype=np.float64)  # the common case, fast (a copy)
    out = as_float(x, name)
    if ndim == 1 and out.ndim == 0:
        out = out.reshape(1)
    if out.ndim != ndim:
        msg = f"`{name}` must be {ndim}-dimensional, got an array of shape {out.shape}"
        raise ValueError(msg)
    return out


def check_not_empty(arr: FloatArray, name: str) -> None:
    """Reject an input without studies: ``ValueError`` "no studies: `name` is empty"."""
    if arr.size == 0:
        msg = f"no studies: `{name}` is empty"
        raise ValueError(msg)


def as_number(value: Any, name: str) -> float:
    """One number given as an option (``level``, ``tau2``, ``add``, ...) as a float.

    Accepts Python ints and floats, ``Decimal``, ``Fraction``, NumPy scalars and 0-d
    arrays; ``TypeError`` for bools, strings and anything else, ``ValueError`` for a
    number beyond the double-precision range. NaN and ±inf are returned as they are:
    the caller checks the range it needs.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real | Decimal):
        msg = f"`{name}` must be a number, got {_short(value)}"
        raise TypeError(msg)
    return _element_to_float(value, name, None)


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


def check_positive_int(value: Any, name: str) -> int:
    """A count option (``maxiter``, ...) as an int: Python and NumPy integers >= 1;
    ``ValueError`` naming the option for 0, negatives, bools, floats and anything else."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
        msg = f"`{name}` must be a positive integer, got {_short(value)}"
        raise ValueError(msg)
    if value < 1:
        msg = f"`{name}` must be a positive integer (at least 1), got {value!r}"
        raise ValueError(msg)
    return int(value)


def merged_control(control: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A `control` dict merged over `defaults`: ``TypeError`` for anything but a dict,
    ``ValueError`` naming unknown keys, ``maxiter`` checked as a positive integer (the
    other keys are the caller's to check)."""
    ctl = dict(defaults)
    if control is None:
        return ctl
    if not isinstance(control, dict):
        msg = f"`control` must be a dict, got {type(control).__name__}"
        raise TypeError(msg)
    unknown = set(control) - set(ctl)
    if unknown:
        msg = f"unknown `control` keys {sorted(unknown)}; valid keys are {sorted(ctl)}"
        raise ValueError(msg)
    ctl.update(control)
    ctl["maxiter"] = check_positive_int(ctl["maxiter"], "control['maxiter']")
    return ctl


def check_level(level: Any, name: str = "level", example: str = "0.95") -> float:
    """Return a confidence level in the open interval (0, 1) (any number type:
    ``Decimal``, NumPy scalars and 0-d arrays too).

    Every level in the open interval is usable, up to ``np.nextafter(1, 0)``: critical
    values are computed from the tail probability ``1 - level`` (:func:`critical_value`),
    which is exact there, so intervals stay finite (as metafor, which works with
    ``alpha = 1 - level``).
    """
    if type(level) is float and 0.0 < level < 1.0:  # the common case, fast
        return level
    if isinstance(level, bool | np.bool_):
        msg = f"`{name}` must be a number in (0, 1), got {level!r}"
        raise TypeError(msg)
    try:
        lv = as_number(level, name)
    except TypeError:
        msg = f"`{name}` must be a number in (0, 1), got {_short(level)}"
        raise TypeError(msg) from None
    if not 0.0 < lv < 1.0:
        msg = f"`{name}` must be in (0, 1) (e.g. {example}), got {_short(level)}"
        raise ValueError(msg)
    return lv


def fixed_tau2(tau2: Any) -> float | None:
    """A user-fixed τ² as a float (None stays None): a number in [0, 1e100].

    The upper bound is the largest variance the pooling core accepts
    (``VARIANCE_RANGE[1]``): beyond it the weights ``1/(v + τ²)`` and their sums lose
    the precision the moments need, and near the largest double they overflow.
    """
    if tau2 is None:
        return None
    try:
        value = as_number(tau2, "tau2")
    except TypeError:
        msg = f"`tau2` must be a non-negative number or None, got {_short(tau2)}"
        raise TypeError(msg) from None
    high = VARIANCE_RANGE[1]
    if not (math.isfinite(value) and 0.0 <= value <= high):
        msg = f"`tau2` must be finite and within [0, {high:g}] (a variance), got {_short(tau2)}"
        raise ValueError(msg)
    return value


def sei_to_variance(sei: FloatArray, name: str = "sei") -> FloatArray:
    """Variances from standard errors, checked as given: positive, finite and within the
    square roots of ``VARIANCE_RANGE`` -- so messages report the `sei` the user passed,
    never its square (which could also underflow to 0 or overflow to inf)."""
    check_positive(sei, name)
    low, high = (math.sqrt(b) for b in VARIANCE_RANGE)
    with np.errstate(invalid="ignore"):
        bad = ((sei < low) | (sei > high)).reshape(-1)
    _check(sei, bad, name, f"standard errors within [{low:g}, {high:g}]")
    return sei * sei


# -- many analyses: (analyses, studies) arrays ----------------------------------------------


def check_batch(y: FloatArray, v: FloatArray, name_v: str, row_offset: int = 0) -> bool:
    """Reject ±inf, non-positive variances or standard errors and values beyond the
    documented limits in 2-D `y`, `v` (`v` holds standard errors when `name_v` is
    ``"SE"``), naming the analysis (``row_offset`` + row: the index in the whole input, for
    a block of a Dask array) and the study, and the value as given. NaN marks an absent
    study and passes. Returns whether every study is present (no NaN)."""
    if y.size == 0:
        return True
    se = name_v == "SE"
    with np.errstate(invalid="ignore", over="ignore"):
        v2 = v * v if se else v
        # quick tests first, without temporaries: the extremes (NaN if any value is NaN),
        # then the NaN-ignoring extremes (an all-NaN input fails both harmlessly and goes
        # on to the detailed test)
        low, high = VARIANCE_RANGE
        for lowest, highest, complete in (
            (np.minimum, np.maximum, True),
            (np.fmin, np.fmax, False),
        ):
            if (
                -MAX_ABS_EFFECT
                <= lowest.reduce(y, axis=None)
                <= highest.reduce(y, axis=None)
                <= MAX_ABS_EFFECT
                and low <= lowest.reduce(v2, axis=None) <= highest.reduce(v2, axis=None) <= high
                and (not se or lowest.reduce(v, axis=None) > 0.0)
            ):
                return complete
        bad = (np.abs(y) > MAX_ABS_EFFECT) | (v2 < low) | (v2 > high) | (v <= 0.0)
    if not bad.any():
        return False
    row, col = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), v.shape)
    yv, vv = y[row, col], v[row, col]
    where = f"analysis {int(row) + row_offset}, study {col}"
    if np.isinf(yv) or np.isinf(vv):
        name, value = ("Y", yv) if np.isinf(yv) else (name_v, vv)
        msg = f"`{name}` must be finite (NaN marks an absent study); {where} is {float(value)!r}"
    elif vv <= 0:
        msg = f"`{name_v}` must be positive; {where} has {name_v}={float(vv)!r}"
    else:
        msg = (
            f"`Y` must be at most {MAX_ABS_EFFECT:g} in absolute value and `{name_v}` give "
            f"variances within [{VARIANCE_RANGE[0]:g}, {VARIANCE_RANGE[1]:g}]; {where} has "
            f"Y={float(yv)!r}, {name_v}={float(vv)!r}"
        )
    raise ValueError(msg)


def batch_arrays(
    Y: Any, V: Any, SE: Any, axis: int, *, copy: bool = True
) -> tuple[FloatArray, FloatArray, tuple[int, ...], str]:
    """`Y` and `V` (or `SE`) as 2-D (analyses, studies) float64 arrays, the shape of the
    analyses and the name of the second argument (``"V"`` or ``"SE"``); not validated
    beyond their type and shapes (see :func:`prepare_batch`). Every input class of
    :func:`as_float` is accepted (masked entries and pandas NA become NaN).
    ``copy=False``: float64 NumPy arrays are not copied (views of the input, which the
    caller must not modify)."""
    if (V is None) == (SE is None):
        msg = "give exactly one of `V` (sampling variances) or `SE=` (standard errors)"
        raise TypeError(msg)
    name_v = "V" if SE is None else "SE"

    def convert(x: Any, name: str) -> FloatArray:
        if not copy and type(x) is np.ndarray and x.dtype == np.float64:
            return x
        return as_float(x, name, ("analysis", "study"))

    y = convert(Y, "Y")
    v = convert(V if SE is None else SE, name_v)
    if y.ndim == 0:
        msg = "`Y` must have a study axis"
        raise ValueError(msg)
    if y.shape != v.shape:
        msg = f"`Y` has shape {y.shape} but `{name_v}` has shape {v.shape}"
        raise ValueError(msg)
    if not -y.ndim <= axis < y.ndim:
        msg = (
            f"`axis` must be in [-{y.ndim}, {y.ndim}) for arrays of shape {y.shape}, got {axis!r}"
        )
        raise ValueError(msg)
    if axis not in (-1, y.ndim - 1):
        y, v = np.moveaxis(y, axis, -1), np.moveaxis(v, axis, -1)
    batch_shape = y.shape[:-1]
    k = y.shape[-1]
    return y.reshape(-1, k), v.reshape(-1, k), batch_shape, name_v


def prepare_batch(
    Y: Any, V: Any, SE: Any, axis: int
) -> tuple[FloatArray, FloatArray, tuple[int, ...], bool]:
    """The 2-D (analyses, studies) float64 arrays of valid effects and variances (new
    arrays: results never share memory with the input), the shape of the analyses and
    whether every study is present. Every input class of :func:`as_float` is accepted
    (masked entries and pandas NA are absent studies)."""
    y2, v2, batch_shape, name_v = batch_arrays(Y, V, SE, axis)
    complete = check_batch_rows(y2, v2, name_v)
    return y2, v2, batch_shape, complete


def check_batch_rows(y: FloatArray, v: FloatArray, name_v: str, row_offset: int = 0) -> bool:
    """:func:`check_batch` on arrays that the caller owns, then made consistent in place:
    a study missing in either array (NaN) is missing in both, and standard errors
    (`name_v` ``"SE"``) become variances. Returns whether every study is present."""
    complete = check_batch(y, v, name_v, row_offset=row_offset)
    if not complete:
        # a missing value in either marks the study absent in both
        absent = np.isnan(y) | np.isnan(v)
        y[absent] = np.nan
        v[absent] = np.nan
    if name_v == "SE":
        np.multiply(v, v, out=v)
    return complete


@functools.lru_cache(maxsize=64)
def default_labels(n: int) -> tuple[str, ...]:
    """The labels of studies given without any: "Study 1", "Study 2", ... (1-based, for
    people; error messages keep 0-based indices)."""
    return tuple(f"Study {i + 1}" for i in range(n))


def name_studies(idx: Any, labels: Any = None) -> str:
    """Studies named for a warning or error unambiguously: by label with the 0-based index
    of the whole input, ``"Rosenthal (index 2)"``, or without labels by the default label
    the summaries print, ``"Study 3 (index 2)"``."""
    return ", ".join(
        f"{labels[i] if labels is not None else f'Study {i + 1}'} (index {i})"
        for i in (int(j) for j in idx)
    )


def _label_text(value: object, i: int) -> str:
    """One study label as text: numbers as printed (1948, not 1948.0); a missing label
    is the default "Study i"."""
    if value is None or _is_pandas_na(value):
        return f"Study {i + 1}"
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return f"Study {i + 1}"
        return str(int(f)) if f.is_integer() and abs(f) < 2.0**53 else repr(f)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def study_labels(
    labels: Any, n: int, data: Mapping[str, Any] | None = None, name: str = "labels"
) -> tuple[str, ...]:
    """One label per input study: from `labels` (a sequence, or a column name of `data`),
    or the defaults "Study 1", .... A wrong length is a ``ValueError`` naming both counts."""
    if labels is None:
        return default_labels(n)
    if isinstance(labels, str):
        if data is None:
            msg = (
                f"`{name}` must hold one label per study, got the string {labels!r} "
                "(a column name needs `data=`)"
            )
            raise TypeError(msg)
        if labels not in data:
            msg = f"`{name}`={labels!r} is not a column of `data`"
            raise ValueError(msg)
        labels = data[labels]
    if type(labels) is tuple and all(type(s) is str for s in labels):
        out: tuple[str, ...] = labels
    else:
        try:
            values = list(labels)
        except TypeError:
            msg = f"`{name}` must be a sequence of labels, got {_short(labels)}"
            raise TypeError(msg) from None
        out = tuple(_label_text(v, i) for i, v in enumerate(values))
    if len(out) != n:
        msg = f"`{name}` has {len(out)} entries but there are {n} studies"
        raise ValueError(msg)
    return out


def strings(x: Any) -> tuple[str, ...]:
    """A tuple of str (an attrs converter; a tuple of str is kept as it is)."""
    if type(x) is tuple and (
        not x or x is default_labels(len(x)) or all(type(s) is str for s in x)
    ):  # (the default labels, cached, are the usual case)
        return x
    return tuple(str(s) for s in x)


def ints(x: Any) -> tuple[int, ...]:
    """A tuple of int (an attrs converter)."""
    return tuple(int(i) for i in x)


def floats(x: Any) -> tuple[float, ...]:
    """A tuple of float (an attrs converter)."""
    return tuple(float(f) for f in x)


def bools(x: Any) -> tuple[bool, ...]:
    """A tuple of bool (an attrs converter)."""
    return tuple(bool(b) for b in x)
