"""Straight-line kernels for the quadratic forms of a model with ``p`` coefficients.

The forms of :mod:`ketameta._engine.moments` are sums over the coefficients
(``β̂ = A⁻¹XᵀWy``, ``Σw r² = yᵀWy - β̂ᵀXᵀWy``, ``tr(A⁻¹B)``, ...). Written as loops, they
would spend most of a single analysis's time in Python's loop and call machinery (each
form is evaluated a few times per τ² iteration, with ``p = 1`` or 2). Instead, each form
is written once below as a *template* over the coefficient indices, and :func:`kernels`
unrolls the templates into straight-line Python functions for a given ``p`` and layout of
the sums (generated once per ``(p, layout)`` and cached). The generated code is plain
arithmetic (``+ - * /``), so the same function evaluates one analysis in Python floats
and a batch on ``(m,)`` arrays.

``A`` is symmetric positive definite (the design's basis makes it well conditioned); its
inverse comes from the ``LDLᵀ`` factorisation, which needs no square roots. A division by
a zero pivot raises ``ZeroDivisionError`` for Python floats (the callers retry in NumPy
scalars, which give inf/NaN) and gives inf/NaN for arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs

from .layout import Layout


@attrs.frozen
class Kernels:
    """The generated functions for one ``(p, layout)``.

    Rows ``r`` are lists of sums (see :class:`~ketameta._engine.design.Layout`), `inv` is
    ``A⁻¹`` as a nested list, `d` is ``β̂``.

    * ``solve(r) -> (inv, d)``: ``A⁻¹`` and ``β̂ = A⁻¹XᵀWy`` from the row of ``w``;
    * ``rss1(r, d)``: ``yᵀWy - β̂ᵀXᵀWy`` (= ``Σ w r²`` at β̂, since ``Aβ̂ = XᵀWy``);
    * ``rss(r, d)``: ``yᵀUy - 2β̂ᵀXᵀUy + β̂ᵀXᵀUXβ̂`` (= ``Σ u r²``) for another weight ``u``;
    * ``trace(inv, r)``: ``tr(A⁻¹B)``, ``B`` the matrix of row `r`;
    * ``trace_sq(inv, r)``: ``tr((A⁻¹B)²)``;
    * ``g_quad(inv, r, d)``: ``gᵀA⁻¹g`` with ``g = XᵀUy - XᵀUXβ̂`` (``= XᵀUr``);
    * ``pivots(r)``: the pivots ``D`` of ``A = LDLᵀ`` (``log det A = Σ log D_j``).
    """

    solve: Callable[..., Any]
    rss1: Callable[..., Any]
    rss: Callable[..., Any]
    trace: Callable[..., Any]
    trace_sq: Callable[..., Any]
    g_quad: Callable[..., Any]
    pivots: Callable[..., Any]


def _sum(terms: list[str]) -> str:
    return " + ".join(terms) if terms else "0.0"


@functools.lru_cache(maxsize=32)
def kernels(p: int, intercept: bool) -> Kernels:
    """The kernels for `p` coefficients (the layout of :class:`Layout` ``(p, intercept)``)."""
    namespace: dict[str, Any] = {}
    code = compile(source(p, intercept), f"<ketameta kernels p={p}>", "exec")
    exec(code, namespace)
    return Kernels(*(namespace[name] for name in attrs.fields_dict(Kernels)))


def solve(k: Kernels, row: list[Any]) -> tuple[Any, Any]:
    """``k.solve(row)``; a zero pivot of one analysis (Python floats raise) is redone in
    NumPy scalars, which give inf/NaN as a batch row would (the caller holds
    ``np.errstate``)."""
    try:
        return k.solve(row)  # type: ignore[no-any-return]
    except ZeroDivisionError:
        import numpy as np

        inv, beta = k.solve([np.float64(x) for x in row])
        return [[float(x) for x in line] for line in inv], [float(b) for b in beta]


def source(p: int, intercept: bool = True) -> str:
    """The Python source of the kernels for `p` coefficients (read it to see the code)."""
    lay = Layout(p, intercept)
    xx, xy, yy = lay.xx, lay.xy, lay.yy
    rp = range(p)

    def product(*factors: str) -> str:
        kept = [f for f in factors if f != "1.0"]
        return " * ".join(kept) if kept else "1.0"

    def m(i: int, j: int) -> str:
        return "1.0" if i == j else f"m{i}{j}"

    def v(i: int, j: int) -> str:
        return f"v{max(i, j)}{min(i, j)}"

    def listing(items: list[str]) -> str:
        return "[" + ", ".join(items) + "]"

    # LDLᵀ of A (unit lower L): d_j = a_jj - Σ_k<j l_jk² d_k,
    # l_ij = (a_ij - Σ_k<j l_ik l_jk d_k) / d_j
    factor = [f"    a{i}{j} = r[{xx[i][j]}]" for i in rp for j in range(i + 1)]
    for j in rp:
        squares = "".join(f" - l{j}{k} * l{j}{k} * d{k}" for k in range(j))
        factor.append(f"    d{j} = a{j}{j}{squares}")
        if j + 1 < p:
            factor.append(f"    e{j} = 1.0 / d{j}")
        for i in range(j + 1, p):
            terms = "".join(f" - l{i}{k} * l{j}{k} * d{k}" for k in range(j))
            factor.append(f"    l{i}{j} = (a{i}{j}{terms}) * e{j}")
    # β̂ by substitution: L z = XᵀWy, then Lᵀ β̂ = z / d
    subst = []
    for i in rp:
        subst.append(f"    z{i} = r[{xy[i]}]" + "".join(f" - l{i}{k} * z{k}" for k in range(i)))
    for i in reversed(rp):
        terms = "".join(f" - l{k}{i} * b{k}" for k in range(i + 1, p))
        subst.append(f"    b{i} = z{i} / d{i}{terms}")
    # A⁻¹ = Mᵀ D⁻¹ M with M = L⁻¹ (unit lower): m_ij = -Σ_{j≤k<i} l_ik m_kj,
    # inv_ij = Σ_{k ≥ max(i, j)} m_ki m_kj / d_k
    inverse = [f"    f{j} = 1.0 / d{j}" for j in rp]
    for i in rp:
        for j in range(i):
            parts = [f"l{i}{j}"] + [f"l{i}{k} * m{k}{j}" for k in range(j + 1, i)]
            inverse.append(f"    m{i}{j} = -(" + " + ".join(parts) + ")")
    for i in rp:
        for j in range(i + 1):
            products = [product(m(k, i), m(k, j), f"f{k}") for k in range(i, p)]
            inverse.append(f"    v{i}{j} = " + _sum(products))
    inv = listing([listing([v(i, j) for j in rp]) for i in rp])
    beta = listing([f"b{i}" for i in rp])
    lines = ["def solve(r):", *factor, *subst, *inverse, f"    return {inv}, {beta}", ""]
    pivots = listing([f"d{j}" for j in rp])
    lines += ["def pivots(r):", *factor, f"    return {pivots}", ""]

    dxy = _sum([f"d[{a}] * r[{xy[a]}]" for a in rp])
    quad = _sum([f"d[{a}] * r[{xx[a][b]}] * d[{b}]" for a in rp for b in rp])
    lines += ["def rss1(r, d):", f"    return r[{yy}] - ({dxy})", ""]
    lines += ["def rss(r, d):", f"    return r[{yy}] - 2.0 * ({dxy}) + ({quad})", ""]
    trace = _sum([f"inv[{a}][{b}] * r[{xx[b][a]}]" for a in rp for b in rp])
    lines += ["def trace(inv, r):", f"    return {trace}", ""]
    # M = A⁻¹B; tr(M²) = Σ_ab M_ab M_ba
    body = [
        f"    t{a}{b} = " + _sum([f"inv[{a}][{c}] * r[{xx[c][b]}]" for c in rp])
        for a in rp
        for b in rp
    ]
    squared = _sum([f"t{a}{b} * t{b}{a}" for a in rp for b in rp])
    lines += ["def trace_sq(inv, r):", *body, f"    return {squared}", ""]
    body = [
        f"    g{a} = r[{xy[a]}] - (" + _sum([f"r[{xx[a][b]}] * d[{b}]" for b in rp]) + ")"
        for a in rp
    ]
    gq = _sum([f"g{a} * inv[{a}][{b}] * g{b}" for a in rp for b in rp])
    lines += ["def g_quad(inv, r, d):", *body, f"    return {gq}", ""]
    return "\n".join(lines)
