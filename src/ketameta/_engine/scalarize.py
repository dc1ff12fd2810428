"""A function's Python-float version, generated from its array source.

Some of the engine's rules are written with the element-wise helpers of a namespace ``o``
(``o.where``, ``o.maximum``, ``o.isfinite``, ...) so that they run on ``(m,)`` arrays. One
analysis would call those helpers on Python floats, paying a function call for each
``where``; :func:`scalarize` instead rewrites the function's syntax tree once, at import,
into plain Python expressions (``a if c else b``, ``b if b > a else a``, ``not x``;
``math.sqrt`` for ``o.sqrt``) and compiles that. The rule exists once, in the array
source; the float version is generated from it, and ``tests/test_engine.py`` and
``tests/test_single_path.py`` check that the two agree bit for bit.

The function must bind ``o`` in a first statement ``o = ...`` (dropped in the float
version) and call only the helpers rewritten here. ``a & b`` and ``a | b`` of comparisons
are the same for Python bools.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
from collections.abc import Callable
from typing import Any

from . import _num


def _name(id_: str) -> ast.Name:
    return ast.Name(id=id_, ctx=ast.Load())


class _Rewrite(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> Any:
        node = self.generic_visit(node)  # type: ignore[assignment]
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
            return node
        if func.value.id != "o":
            return node
        args = node.args
        if func.attr == "where":
            return ast.IfExp(test=args[0], body=args[1], orelse=args[2])
        if func.attr in ("maximum", "minimum"):
            # NumPy's maximum propagates NaN from either side; `b if b > a else a` gives
            # `a` when either is NaN, and the first argument here is never NaN where the
            # second could be (see the uses)
            op = ast.Gt() if func.attr == "maximum" else ast.Lt()
            a, b = args
            return ast.IfExp(test=ast.Compare(left=b, ops=[op], comparators=[a]), body=b, orelse=a)
        if func.attr == "negate":
            return ast.UnaryOp(op=ast.Not(), operand=args[0])
        if func.attr == "isfinite":
            return ast.Call(func=_name("_isfinite"), args=args, keywords=[])
        if func.attr == "div":
            return ast.Call(func=_name("_div"), args=args, keywords=[])
        if func.attr == "sqrt":
            return ast.Call(func=_name("_sqrt"), args=args, keywords=[])
        msg = f"scalarize: no float rewrite for o.{func.attr}"
        raise NotImplementedError(msg)


def _sqrt(a: float) -> float:
    """:func:`ketameta._engine._num.sqrt` of a Python float (NaN below 0)."""
    return math.sqrt(a) if a >= 0.0 else math.nan


def scalarize(func: Callable[..., Any]) -> Callable[..., Any]:
    """The Python-float version of `func` (see the module docstring)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    fdef = tree.body[0]
    assert isinstance(fdef, ast.FunctionDef)
    fdef.decorator_list = []
    fdef.name = f"{func.__name__}_scalar"
    body = [
        s
        for s in fdef.body
        if not (
            isinstance(s, ast.Assign)
            and len(s.targets) == 1
            and isinstance(s.targets[0], ast.Name)
            and s.targets[0].id == "o"
        )
    ]
    fdef.body = [_Rewrite().visit(s) for s in body]
    # annotations are not needed at run time (and would refer to the module's names)
    for arg in fdef.args.args:
        arg.annotation = None
    fdef.returns = None
    module = ast.fix_missing_locations(ast.Module(body=[fdef], type_ignores=[]))
    namespace: dict[str, Any] = {
        **func.__globals__,
        "_isfinite": math.isfinite,
        "_div": _num.div,
        "_sqrt": _sqrt,
    }
    exec(compile(module, f"<scalar {func.__qualname__}>", "exec"), namespace)
    scalar: Callable[..., Any] = namespace[fdef.name]
    scalar.__doc__ = f"{func.__name__} for Python floats, generated from its array source."
    return scalar
