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
    * ``pivots(r)``: the pivots ``D`` of ``A = LDLᵀ`` (``log det A = Σ log D_j``);
    * ``score_q(r1, r2, a, target)``, ``score_ml(r1, r2, r3, a, target)``,
      ``score_reml(r1, r2, r3, a, target, traces=None)``: (score, derivative, information)
      of the τ² equations, scaled (see the comment in :func:`source`), from the rows of
      ``w``, ``w²``, ``w³``.
    """

    solve: Callable[..., Any]
    rss1: Callable[..., Any]
    rss: Callable[..., Any]
    trace: Callable[..., Any]
    trace_sq: Callable[..., Any]
    g_quad: Callable[..., Any]
    pivots: Callable[..., Any]
    score_q: Callable[..., Any]
    score_ml: Callable[..., Any]
    score_reml: Callable[..., Any]


def _sum(terms: list[str]) -> str:
    return " + ".join(terms) if terms else "0.0"


@functools.lru_cache(maxsize=32)
def kernels(p: int, intercept: bool, vectorized: bool = False) -> Kernels:
    """The kernels for `p` coefficients (the layout of :class:`Layout` ``(p, intercept)``),
    for one analysis's Python floats or (`vectorized`) a batch's arrays."""
    import numpy as np

    namespace: dict[str, Any] = {"_maximum": np.maximum}
    code = compile(source(p, intercept, vectorized), f"<ketameta kernels p={p}>", "exec")
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


def source(p: int, intercept: bool = True, vectorized: bool = False) -> str:
    """The Python source of the kernels for `p` coefficients (read it to see the code);
    `vectorized`: for arrays (a batch; ``max(x, 0)`` by NumPy) rather than Python floats."""
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

    # -- the quadratic forms, each written once as a template of code lines ------------
    def rss1_code(out: str, r: str, d: str) -> list[str]:
        # Σ w r² at β̂ = yᵀWy - β̂ᵀXᵀWy (Aβ̂ = XᵀWy)
        dxy = _sum([f"{d}[{a}] * {r}[{xy[a]}]" for a in rp])
        return [f"    {out} = {r}[{yy}] - ({dxy})"]

    def rss_code(out: str, r: str, d: str) -> list[str]:
        # Σ u r² = yᵀUy - 2β̂ᵀXᵀUy + β̂ᵀXᵀUXβ̂
        dxy = _sum([f"{d}[{a}] * {r}[{xy[a]}]" for a in rp])
        quad = _sum([f"{d}[{a}] * {r}[{xx[a][b]}] * {d}[{b}]" for a in rp for b in rp])
        return [f"    {out} = {r}[{yy}] - 2.0 * ({dxy}) + ({quad})"]

    def trace_code(out: str, inv: str, r: str) -> list[str]:
        # tr(A⁻¹B)
        return [
            f"    {out} = " + _sum([f"{inv}[{a}][{b}] * {r}[{xx[b][a]}]" for a in rp for b in rp])
        ]

    def trace_sq_code(out: str, inv: str, r: str) -> list[str]:
        # M = A⁻¹B; tr(M²) = Σ_ab M_ab M_ba
        body = [
            f"    t{a}{b} = " + _sum([f"{inv}[{a}][{c}] * {r}[{xx[c][b]}]" for c in rp])
            for a in rp
            for b in rp
        ]
        return [*body, f"    {out} = " + _sum([f"t{a}{b} * t{b}{a}" for a in rp for b in rp])]

    def g_quad_code(out: str, inv: str, r: str, d: str) -> list[str]:
        # gᵀA⁻¹g, g = XᵀUy - XᵀUXβ̂ = XᵀUr
        body = [
            f"    g{a} = {r}[{xy[a]}] - ("
            + _sum([f"{r}[{xx[a][b]}] * {d}[{b}]" for b in rp])
            + ")"
            for a in rp
        ]
        return [
            *body,
            f"    {out} = " + _sum([f"g{a} * {inv}[{a}][{b}] * g{b}" for a in rp for b in rp]),
        ]

    def clamp(name: str) -> list[str]:
        # max(x, 0) that keeps NaN: for floats a comparison, for arrays NumPy's maximum
        if vectorized:
            return [f"    {name} = _maximum({name}, 0.0)"]
        return [f"    {name} = 0.0 if {name} < 0.0 else {name}"]

    def one(code: list[str], name: str, args: str) -> list[str]:
        return [f"def {name}({args}):", *code, "    return out", ""]

    lines += one(rss1_code("out", "r", "d"), "rss1", "r, d")
    lines += one(rss_code("out", "r", "d"), "rss", "r, d")
    lines += one(trace_code("out", "inv", "r"), "trace", "inv, r")
    lines += one(trace_sq_code("out", "inv", "r"), "trace_sq", "inv, r")
    lines += one(g_quad_code("out", "inv", "r", "d"), "g_quad", "inv, r, d")

    # -- the scores of the τ² equations, composed of the forms above -------------------
    # Each returns (score, its derivative, Fisher information) times g = a^q, a = v̄_h + τ²
    # (v̄_h the harmonic mean of the v_i; q = 1 for Q, 2 for the likelihoods): the scaling
    # keeps the score's sign and roots but makes it linear in τ² when all v_i are equal
    # (w = 1/(v̄_h + τ²): the REML score w² Σr² - (k - 1) w becomes Σr² - (k - 1)(v̄_h + τ²)),
    # so Newton steps overshoot far less and, where the likelihood has several maxima, stay
    # in the basin of the start as Fisher scoring does (metafor); the information is scaled
    # alike, so a Fisher step is unchanged.
    ones = lay.ones
    solve_inline = ["    r = r1", *factor, *subst, *inverse]
    d_list = f"    d = {beta}"
    inv_list = f"    inv = {inv}"
    # Q(τ²) - target (PM, EB, Q-profile): derivative -Σw²r², information Σw²r²
    body = [
        *solve_inline,
        d_list,
        *rss1_code("q", "r1", "d"),
        *clamp("q"),
        *rss_code("s2", "r2", "d"),
        *clamp("s2"),
        "    value = q - target",
    ]
    body += ["    return value * a, -s2 * a + value, s2 * a", ""]
    lines += ["def score_q(r1, r2, a, target):", *body]
    # ML (Viechtbauer 2005, eq. 11): Σw²r² - Σw, information Σw², derivative Σw² - 2yᵀP³y
    body = [
        *solve_inline,
        d_list,
        inv_list,
        *rss_code("s2", "r2", "d"),
        *clamp("s2"),
        *rss_code("s3", "r3", "d"),
        *clamp("s3"),
        *g_quad_code("gq", "inv", "r2", "d"),
        f"    value = s2 - r1[{ones}]",
        f"    info = r2[{ones}]",
        "    deriv = info - 2.0 * (s3 - gq)",
        "    g = a * a",
    ]
    body += ["    return value * g, deriv * g + 2.0 * value * a, info * g", ""]
    lines += ["def score_ml(r1, r2, r3, a, target):", *body]
    # REML (eq. 13): yᵀP²y - tr P, information tr P², derivative tr P² - 2yᵀP³y; `traces`
    # (tr P, tr P²) when the caller computed them without cancellation, else None
    body = [
        *solve_inline,
        d_list,
        inv_list,
        *rss_code("s2", "r2", "d"),
        *clamp("s2"),
        *rss_code("s3", "r3", "d"),
        *clamp("s3"),
        *g_quad_code("gq", "inv", "r2", "d"),
        "    if traces is None:",
        *("    " + ln for ln in trace_code("t2", "inv", "r2")),
        *("    " + ln for ln in trace_code("t3", "inv", "r3")),
        *("    " + ln for ln in trace_sq_code("tsq", "inv", "r2")),
        f"        trp = r1[{ones}] - t2",
        f"        trpp = r2[{ones}] - 2.0 * t3 + tsq",
        "    else:",
        "        trp, trpp = traces",
        "    value = s2 - trp",
        "    info = trpp",
        "    deriv = info - 2.0 * (s3 - gq)",
        "    g = a * a",
    ]
    body += ["    return value * g, deriv * g + 2.0 * value * a, info * g", ""]
    lines += ["def score_reml(r1, r2, r3, a, target, traces=None):", *body]
    return "\n".join(lines)
