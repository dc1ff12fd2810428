"""Helpers shared by the frozen result classes: conversion to plain Python and frames."""

from __future__ import annotations

import html
import math
from collections.abc import Callable
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


def coefficient_frame(result: Any, *, df: bool = False) -> Any:
    """The coefficient table of a fitted model as a pandas DataFrame indexed by coefficient
    name: estimate, se, statistic (with its df when `df`), p-value and confidence limits,
    from the result's fields ``names``, ``coef``, ``se``, ``statistic``, ``pvalue``,
    ``ci_lower``, ``ci_upper`` (and ``df``)."""
    pd = import_pandas()
    columns = {"estimate": result.coef, "se": result.se, "statistic": result.statistic}
    if df:
        columns["df"] = result.df
    columns.update(pvalue=result.pvalue, ci_lower=result.ci_lower, ci_upper=result.ci_upper)
    return pd.DataFrame(columns, index=pd.Index(result.names, name="coefficient"))


def format_p(p: float) -> str:
    """A p-value as metafor prints it."""
    if not math.isfinite(p):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


def format_p_with_sign(p: float) -> str:
    """``= 0.0123`` or ``< .0001``: a p-value after "p-val" as metafor prints it."""
    text = format_p(p)
    return "< .0001" if text.startswith("<") else f"= {text}"


def table_lines(
    headers: list[str],
    rows: list[list[str]],
    widths: list[int],
    stub: list[str] | None = None,
    corner: str = "",
) -> list[str]:
    """A printed table as metafor prints its coefficient tables: cells right-aligned in
    columns of at least `widths` (the first after the `stub` of row names, left-aligned,
    headed by `corner`) that widen so that every value keeps two spaces before it (e.g. a
    limit -164.1852)."""
    cols = [
        max(w, len(h) + 1, *(len(r[j]) + 2 for r in rows))
        for j, (h, w) in enumerate(zip(headers, widths, strict=True))
    ]
    names = [] if stub is None else stub
    first = max(len(corner), *(len(n) for n in names)) if names else len(corner)
    lead = [f"{n:{first}s}" for n in names] if stub is not None else [""] * len(rows)
    lines = [
        f"{corner:{first}s}" + "".join(f"{h:>{c}s}" for h, c in zip(headers, cols, strict=True))
    ]
    for start, row in zip(lead, rows, strict=True):
        lines.append(start + "".join(f"{v:>{c}s}" for v, c in zip(row, cols, strict=True)))
    return lines


def values_equal(a: Any, b: Any) -> bool:
    """Deep equality of result values where NaN equals NaN: arrays (by value, also Dask
    after computing), floats, tuples, lists, dicts and nested result objects."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
        except TypeError:  # (non-numeric arrays: NaN cannot occur)
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    if type(a).__module__.startswith("dask.") or type(b).__module__.startswith("dask."):
        return values_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, float | np.floating) and isinstance(b, float | np.floating):
        return bool(a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(map(values_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if attrs.has(type(a)):
        return type(a) is type(b) and all(
            values_equal(getattr(a, f.name), getattr(b, f.name))
            for f in attrs.fields(type(a))
            if f.eq
        )
    return bool(a == b)


def _result_eq(self: Any, other: Any) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return values_equal(self, other)


def _result_ne(self: Any, other: Any) -> Any:
    equal = _result_eq(self, other)
    return equal if equal is NotImplemented else not equal


def _repr_html_(self: Any) -> str:
    """The printed summary in a notebook (a monospace block: its columns stay aligned)."""
    text = html.escape(self.summary())
    title = html.escape(type(self).__name__)
    return (
        f'<div class="ketameta-result"><details open><summary><b>{title}</b></summary>'
        f'<pre style="font-size: 0.9em; line-height: 1.3">{text}</pre></details></div>'
    )


def finish_result_class(cls: type) -> type:
    """Give a frozen result class the equality and pickling every result has: ``==``
    compares every field by value with NaN equal to NaN (arrays element-wise), and an
    unpickled result's arrays are read-only again (NumPy's pickle does not keep the flag);
    a class with a ``summary()`` shows it in notebooks (``_repr_html_``).
    Applied to every public result class in ``ketameta/__init__.py``."""
    setattr(cls, "__eq__", _result_eq)  # noqa: B010 (a method on a class made elsewhere)
    setattr(cls, "__ne__", _result_ne)  # noqa: B010
    if callable(getattr(cls, "summary", None)) and "_repr_html_" not in vars(cls):
        setattr(cls, "_repr_html_", _repr_html_)  # noqa: B010
    setstate = getattr(cls, "__setstate__", None)
    if setstate is not None and not getattr(setstate, "_ketameta_readonly", False):

        def __setstate__(self: Any, state: Any) -> None:
            setstate(self, state)
            for field in attrs.fields(type(self)):
                value = getattr(self, field.name, None)
                if isinstance(value, np.ndarray):
                    value.setflags(write=False)

        __setstate__._ketameta_readonly = True  # type: ignore[attr-defined]
        cls.__setstate__ = __setstate__  # type: ignore[attr-defined]
    return cls


def trusted_constructor(
    cls: type, checked: dict[str, tuple[Any, Callable[[Any], Any]]] | None = None
) -> Callable[..., Any]:
    """A constructor of the frozen attrs class `cls` that stores values as given, without
    the per-field converters of ``cls(...)`` (generated once per class).

    Only for values the engine itself produced, already in their field's type: Python
    floats, ints and bools, fresh float64 arrays nothing else holds (made read-only here),
    the tuples the input check returned. The public constructor stays validated. Fields
    named in `checked` (name -> (default, converter)) still pass their converter when the
    value is not that default object (e.g. arrays that came from the caller's
    :class:`~ketameta.EffectSizes`, which a result copies). ``tests/test_single_path.py`` checks
    that the result equals the public constructor's, field by field and type by type."""
    fields = attrs.fields(cls)
    names = [f.name for f in fields]
    arrays = [f.name for f in fields if f.converter is readonly and f.name not in (checked or {})]
    lines = [f"def make(*, {', '.join(names)}):", "    self = _new(_cls)"]
    for name in arrays:
        lines.append(f"    {name}.setflags(write=False)")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_set": object.__setattr__}
    for name in names:
        if checked and name in checked:
            lines.append(f"    if {name} is not _default_{name}:")
            lines.append(f"        {name} = _convert_{name}({name})")
        slot = getattr(cls, name, None)
        if type(slot).__name__ == "member_descriptor":  # (a slot: its setter is cheapest)
            namespace[f"_slot_{name}"] = slot.__set__  # type: ignore[union-attr]
            lines.append(f"    _slot_{name}(self, {name})")
        else:
            lines.append(f"    _set(self, {name!r}, {name})")
    lines.append("    return self")
    for name, (default, convert) in (checked or {}).items():
        namespace[f"_default_{name}"] = default
        namespace[f"_convert_{name}"] = convert
    exec(compile("\n".join(lines), f"<trusted {cls.__qualname__}>", "exec"), namespace)
    make: Callable[..., Any] = namespace["make"]
    return make
