"""Helpers shared by the frozen result classes: conversion to plain Python and frames."""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from ._typing import FloatArray


def array_eq(a: Any, b: Any) -> bool:
    """Equality of array fields (NaN equal to NaN), for ``attrs.cmp_using``."""
    return bool(np.array_equal(a, b, equal_nan=True))


class Owned:
    """A float64 array that ketameta itself just created and hands to a result: taken
    over without a copy (every other array a result receives is copied)."""

    __slots__ = ("array",)

    def __init__(self, array: FloatArray) -> None:
        self.array = array


def readonly(x: Any) -> FloatArray:
    """A read-only float64 copy (results never share memory with inputs), or the array of
    an :class:`Owned` made read-only."""
    arr = x.array if type(x) is Owned else np.array(x, dtype=np.float64, copy=True)
    arr.setflags(write=False)
    return arr


def readonly_bool(x: Any) -> np.ndarray[Any, np.dtype[np.bool_]]:
    arr = np.array(x, dtype=bool, copy=True)
    arr.setflags(write=False)
    return arr


def array_field() -> Any:
    """An attrs field holding a read-only float array, compared element-wise."""
    return attrs.field(converter=readonly, eq=attrs.cmp_using(eq=array_eq))


def plain(value: Any) -> Any:
    """Nested NumPy/attrs values as JSON-serialisable Python (non-finite floats → None)."""
    if attrs.has(type(value)):
        return {f.name: plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class RecordResult:
    """``to_dict`` / ``to_frame`` of a frozen result describing one analysis."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable; NaN/inf become ``None``)."""
        return plain(self)  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """A one-row pandas DataFrame of the scalar fields (requires pandas)."""
        pd = import_pandas()
        d = self.to_dict()
        return pd.DataFrame([{k: v for k, v in d.items() if not isinstance(v, list | dict)}])


class TableResult(RecordResult):
    """A frozen result with one entry per study or analysis: ``to_frame`` gives one row each."""

    def to_frame(self) -> Any:
        """A pandas DataFrame with a row per entry of the array fields (requires pandas)."""
        pd = import_pandas()
        d = self.to_dict()
        n = next(len(v) for v in d.values() if isinstance(v, list))
        return pd.DataFrame({k: v for k, v in d.items() if isinstance(v, list) and len(v) == n})


def import_pandas() -> Any:
    """pandas, or an ImportError with the install hint."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = "to_frame() needs pandas: pip install pandas"
        raise ImportError(msg) from exc
    return pd


def format_p(p: float) -> str:
    """A p-value as metafor prints it."""
    if not math.isfinite(p):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


def format_p_with_sign(p: float) -> str:
    """``= 0.0123`` or ``< .0001``: a p-value after "p-val" as metafor prints it."""
    text = format_p(p)
    return "< .0001" if text.startswith("<") else f"= {text}"
