"""The ``random`` argument of :func:`ketameta.pool_mv`: metafor's random-effects formulas,
parsed by a small grammar (no R, no formula library), and the random-effects structures
they give on the studies used.

Grammar (one formula; a list of formulas adds crossed or further terms)::

    formula := "~" lhs "|" rhs
    lhs     := "1"                       a random intercept per level of rhs
             | name                      ~ inner | outer (with a `struct`)
    rhs     := name ("/" name)*          nesting (only after "1"): ~ 1 | a/b is ~ 1 | a
                                         plus ~ 1 | a/b (the a:b combinations)
    name    := [A-Za-z._][A-Za-z0-9._]* | `any text`   (a column of `data`)

As in metafor, ``~ 1 | a/b/c`` gives one variance component per level of nesting (named
``a``, ``a/b``, ``a/b/c``), ``~ inner | outer`` correlated effects of the levels of
``inner`` within each level of ``outer`` (the structure ``struct``: ``CS``, ``HCS``,
``UN``, ``AR``, ``ID``, ``DIAG``), at most two such terms (their parameters are τ²/ρ and
γ²/φ).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ._engine.mv import STRUCTURES, Basis, Structure
from ._modelmatrix import _level_label

IntArray = npt.NDArray[np.intp]

_NAME = r"(?:`[^`]+`|[A-Za-z._][A-Za-z0-9._]*)"
_FORMULA = re.compile(
    rf"^\s*~\s*(?P<lhs>1|{_NAME})\s*\|\s*(?P<rhs>{_NAME}(?:\s*/\s*{_NAME})*)\s*$"
)


def _unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1] if name.startswith("`") and name.endswith("`") else name


@attrs.frozen
class RandomTerm:
    """One random-effects term: a random intercept for the combinations of `variables`
    (``kind="intercept"``, ``factor`` ``"a/b"``), or ``~ inner | outer``
    (``kind="inner_outer"``, `variables` ``(inner, outer)``) with its `struct`."""

    kind: str
    variables: tuple[str, ...]
    struct: str = ""

    @property
    def factor(self) -> str:
        return "/".join(self.variables) if self.kind == "intercept" else self.variables[0]


def parse_random(random: Any, struct: Any) -> list[RandomTerm]:
    """The terms of `random` (a formula string, a sequence of them, or None)."""
    if isinstance(random, str) and isinstance(struct, str):
        return list(_parse_cached(random, struct))
    return _parse(random, struct)


@functools.lru_cache(maxsize=64)
def _parse_cached(random: str, struct: str) -> tuple[RandomTerm, ...]:
    return tuple(_parse(random, struct))


def _parse(random: Any, struct: Any) -> list[RandomTerm]:
    if random is None:
        return []
    formulas = [random] if isinstance(random, str) else random
    if not isinstance(formulas, Sequence) or isinstance(formulas, bytes) or not formulas:
        msg = (
            "`random` must be a formula such as '~ 1 | study' or a list of formulas, "
            f"got {random!r}"
        )
        raise TypeError(msg)
    structs = _structs(struct)
    terms: list[RandomTerm] = []
    n_io = 0
    for formula in formulas:
        if not isinstance(formula, str):
            msg = f"`random` must hold formula strings such as '~ 1 | study', got {formula!r}"
            raise TypeError(msg)
        m = _FORMULA.match(formula)
        if m is None:
            msg = (
                f"`random`: cannot read {formula!r}; write '~ 1 | id', '~ 1 | outer/inner' "
                "(nested) or '~ inner | outer' (names of columns of `data`)"
            )
            raise ValueError(msg)
        rhs = [_unquote(n) for n in m.group("rhs").split("/")]
        if m.group("lhs") == "1":
            terms.extend(RandomTerm("intercept", tuple(rhs[: i + 1])) for i in range(len(rhs)))
            continue
        if len(rhs) > 1:
            msg = (
                f"`random`: {formula!r}: the outer factor of '~ inner | outer' cannot be "
                "nested; add a separate '~ 1 | ...' term"
            )
            raise ValueError(msg)
        if n_io == 2:
            msg = "`random` may hold at most two '~ inner | outer' formulas (as metafor)"
            raise ValueError(msg)
        inner = _unquote(m.group("lhs"))
        st = structs[min(n_io, len(structs) - 1)] if structs else "CS"
        terms.append(RandomTerm("inner_outer", (inner, rhs[0]), st))
        n_io += 1
    n_structs = len(structs)
    if n_structs > 1 and n_structs != n_io:
        msg = (
            f"`struct` gives {n_structs} structures but `random` has {n_io} "
            "'~ inner | outer' formulas"
        )
        raise ValueError(msg)
    return terms


def _structs(struct: Any) -> list[str]:
    items = [struct] if isinstance(struct, str) else list(struct)
    if not items or len(items) > 2:
        msg = f"`struct` must be one structure or a pair of them, got {struct!r}"
        raise ValueError(msg)
    out = []
    for s in items:
        if not isinstance(s, str) or s.upper() not in STRUCTURES:
            msg = f"`struct` must be one of {list(STRUCTURES)}, got {s!r}"
            raise ValueError(msg)
        out.append(s.upper())
    return out


def variables_of(terms: Sequence[RandomTerm]) -> list[str]:
    """The columns the terms use, each once, in order."""
    out: list[str] = []
    for t in terms:
        for v in t.variables:
            if v not in out:
                out.append(v)
    return out


def column(data: Any, name: str) -> Any:
    """Column `name` of `data` (a DataFrame or mapping), for the `random` formulas."""
    if data is None:
        msg = f"`random` names the column {name!r}, so `data` is required"
        raise TypeError(msg)
    try:
        return data[name]
    except (KeyError, IndexError, TypeError):
        msg = f"`random`: `data` has no column {name!r}"
        raise ValueError(msg) from None


@attrs.frozen(eq=False)
class Coded:
    """A grouping variable on the studies used: level labels and each study's code."""

    levels: tuple[Any, ...]
    codes: IntArray


def recode(levels: Sequence[Any], codes: IntArray) -> Coded:
    """Keep the levels that occur (in their order) and renumber the codes."""
    present = np.unique(codes)
    lookup = np.full(len(levels), -1, dtype=np.intp)
    lookup[present] = np.arange(present.size)
    return Coded(levels=tuple(levels[i] for i in present), codes=lookup[codes])


@attrs.frozen(eq=False)
class Component:
    """A term on the studies used: its engine structure and bases, and what the summary
    prints (factor name, number of levels, inner levels, studies per inner level)."""

    term: RandomTerm
    structure: Structure
    bases: tuple[Basis, ...]
    nlevels: int  # levels of the factor (intercept) or of the outer factor
    inner_levels: tuple[str, ...] = ()
    inner_counts: tuple[int, ...] = ()  # studies per inner level (metafor's k.lvl)
    pair_counts: tuple[int, ...] = ()  # outer levels where each pair of inner levels meet
    groups: tuple[IntArray, ...] = ()  # the codes whose levels make the blocks of M


def build(terms: Sequence[RandomTerm], coded: Mapping[str, Coded]) -> list[Component]:
    """The components of `terms` on the studies used (`coded`: each variable's codes)."""
    out = []
    for term in terms:
        if term.kind == "intercept":
            g = _combined(coded[v] for v in term.variables)
            n = int(g.max()) + 1 if g.size else 0
            out.append(
                Component(
                    term=term,
                    structure=Structure("sigma2"),
                    bases=(Basis(group=g, inner=None, relation=("all",)),),
                    nlevels=n,
                    groups=(g,),
                )
            )
            continue
        inner, outer = coded[term.variables[0]], coded[term.variables[1]]
        o, q = outer.codes, inner.codes
        n_inner = len(inner.levels)
        counts = tuple(int(c) for c in np.bincount(q, minlength=n_inner))
        pairs = [(j, ell) for j in range(n_inner) for ell in range(j + 1, n_inner)]
        meet = _pair_counts(o, q, n_inner)
        names = tuple(_level_label(v) for v in inner.levels)
        st = term.struct
        bases: list[Basis]
        if st in ("CS", "ID"):
            bases = [Basis(group=o, inner=q, relation=("same",))]
            if st == "CS":
                bases.append(Basis(group=o, inner=q, relation=("different",)))
            structure = Structure(st)
        elif st == "AR":
            lags = sorted({abs(a - b) for a, b in pairs if meet[(a, b)] > 0})
            bases = [Basis(group=o, inner=q, relation=("same",))]
            bases += [Basis(group=o, inner=q, relation=("lag", d)) for d in lags]
            structure = Structure("AR", n_levels=n_inner, lags=tuple(lags))
        else:
            bases = [Basis(group=o, inner=q, relation=("levels", j, j)) for j in range(n_inner)]
            used = [] if st == "DIAG" else pairs
            bases += [Basis(group=o, inner=q, relation=("levels", a, b)) for a, b in used]
            structure = Structure(st, n_levels=n_inner, pairs=tuple(used))
        out.append(
            Component(
                term=term,
                structure=structure,
                bases=tuple(bases),
                nlevels=len(outer.levels),
                inner_levels=names,
                inner_counts=counts,
                pair_counts=tuple(meet[pr] for pr in pairs),
                groups=(o,),
            )
        )
    return out


def unique_codes(values: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], IntArray]:
    """``np.unique(values, return_inverse=True)`` for integer `values` (1-D): the sorted
    distinct values and each value's index among them, found by a binary search (exact for
    integers; about half the time of the inverse NumPy computes by a second sort)."""
    uniq = np.unique(values)
    return uniq, np.asarray(np.searchsorted(uniq, values), dtype=np.intp)


def _combined(variables: Iterable[Coded]) -> IntArray:
    """The codes of the combinations of the levels of `variables` (``a/b``: the pairs
    ``(a, b)`` that occur), numbered in lexicographic order of the codes."""
    g: IntArray | None = None
    for var in variables:
        if g is None:
            g = var.codes
            continue
        joint = g * max(1, len(var.levels)) + var.codes
        g = unique_codes(joint)[1]
    assert g is not None
    return np.asarray(g, dtype=np.intp)


def _pair_counts(o: IntArray, q: IntArray, n_inner: int) -> dict[tuple[int, int], int]:
    """For each pair of inner levels, the number of outer levels where both occur."""
    n_outer = int(o.max()) + 1 if o.size else 0
    present = np.zeros((n_outer, n_inner), dtype=bool)
    present[o, q] = True
    both = present.T.astype(np.intp) @ present.astype(np.intp)
    return {(j, ell): int(both[j, ell]) for j in range(n_inner) for ell in range(j + 1, n_inner)}
