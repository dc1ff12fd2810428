"""Arithmetic that serves one analysis and a batch with the same code.

The engine's statistics are *numbers per analysis*: a Python float when one meta-analysis
is fitted (whose arithmetic costs a fraction of a NumPy scalar's), an ``(m,)`` float64
array for a batch. Python floats differ from NumPy in a few places — a division by zero
raises, ``math`` functions reject arrays, ``~`` on a bool is an integer — so every
operation where the two differ goes through a helper here, which picks the cheap scalar
path or the NumPy ufunc. Plain ``+ - * / <`` and ``& |`` on comparisons are the same for
both and are written directly.

Callers hold ``np.errstate(divide="ignore", invalid="ignore", over="ignore")``: a batch
row that divides by zero gets inf/NaN, as a Python float does through :func:`div`.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np

from .._typing import BoolArray, FloatArray

#: a number per analysis: a Python float (one analysis) or an (m,) array (a batch)
Num: TypeAlias = float | FloatArray
#: a flag per analysis
Flag: TypeAlias = bool | BoolArray
# (isinstance with a tuple: a union type would be built at every call)
_NUMBER = (float, int)
_BOOL = (bool, np.bool_)


def is_scalar(x: Num) -> bool:
    """Whether `x` is one analysis's number (a Python float or a NumPy scalar)."""
    return isinstance(x, _NUMBER)


def where(cond: Flag, a: Num, b: Num) -> Num:
    """``np.where`` that stays a Python float for one analysis."""
    if isinstance(cond, _BOOL):
        return a if cond else b
    return np.where(cond, a, b)


def maximum(a: Num, b: Num) -> Num:
    """``np.maximum`` (NaN propagates from `a`; a Python float for one analysis)."""
    if type(a) is float and type(b) is float:  # (one analysis: the cheapest check first)
        return b if b > a else a
    if isinstance(a, _NUMBER) and isinstance(b, _NUMBER):
        return b if b > a else a  # `a` when either is NaN and `a` is
    return np.maximum(a, b)


def minimum(a: Num, b: Num) -> Num:
    """``np.minimum`` (a Python float for one analysis)."""
    if type(a) is float and type(b) is float:
        return b if b < a else a
    if isinstance(a, _NUMBER) and isinstance(b, _NUMBER):
        return b if b < a else a
    return np.minimum(a, b)


def div(a: Num, b: Num) -> Num:
    """``a / b`` with IEEE semantics for Python floats too (``x / 0`` is ±inf or NaN)."""
    try:
        return a / b
    except ZeroDivisionError:  # (Python floats only; the caller holds np.errstate)
        return float(np.float64(a) / b)


def sqrt(a: Num) -> Num:
    """``np.sqrt`` (NaN below 0); a Python float stays a Python float."""
    if type(a) is float or isinstance(a, _NUMBER):
        return math.sqrt(a) if a >= 0.0 else math.nan
    return np.sqrt(a)


def log(a: Num) -> Num:
    """``np.log`` (-inf at 0, NaN below); a Python float stays a Python float."""
    if isinstance(a, _NUMBER):
        return math.log(a) if a > 0.0 else (-math.inf if a == 0.0 else math.nan)
    return np.log(a)


def isfinite(a: Num) -> Flag:
    """``np.isfinite``."""
    if isinstance(a, _NUMBER):
        return math.isfinite(a)
    return np.isfinite(a)


def negate(a: Flag) -> Flag:
    """Logical not (``~`` on a Python bool would be an integer)."""
    if isinstance(a, _BOOL):
        return not a
    return ~a


class ArrayOps:
    """Element-wise helpers for a batch's arrays, written as ``o.where(...)`` etc. in the
    rules that :func:`ketameta._engine.scalarize.scalarize` turns into plain Python for
    one analysis's floats (``o.where(c, a, b)`` → ``a if c else b``)."""

    @staticmethod
    def where(cond: Flag, a: Num, b: Num) -> FloatArray:
        return np.asarray(np.where(cond, a, b), dtype=np.float64)

    @staticmethod
    def maximum(a: Num, b: Num) -> FloatArray:
        return np.asarray(np.maximum(a, b), dtype=np.float64)

    @staticmethod
    def minimum(a: Num, b: Num) -> FloatArray:
        return np.asarray(np.minimum(a, b), dtype=np.float64)

    @staticmethod
    def isfinite(a: Num) -> BoolArray:
        return np.asarray(np.isfinite(a), dtype=bool)

    @staticmethod
    def negate(a: Flag) -> BoolArray:
        return np.asarray(np.logical_not(a), dtype=bool)

    @staticmethod
    def div(a: Num, b: Num) -> FloatArray:
        return np.asarray(np.divide(a, b), dtype=np.float64)
