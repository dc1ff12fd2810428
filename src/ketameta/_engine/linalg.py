"""Small symmetric linear algebra whose entries are numbers per analysis.

A ``p × p`` matrix of the model (``XᵀWX`` and its relatives) is a nested list whose
entries are :data:`~ketameta._engine._num.Num`: Python floats for one analysis, ``(m,)``
arrays for a batch of ``m``. The same few lines then solve one analysis's system in
Python-float arithmetic and a million analyses' systems as ``p³/6`` vectorised
operations, without a per-analysis LAPACK call. ``p`` is the number of coefficients
(small); the intercept-only model (``p = 1``) takes the shortest path in each function.

The matrices come in an orthogonalised basis of the design (see
:mod:`ketameta._engine.design`), so the Cholesky factorisation needs no pivoting.
"""

from __future__ import annotations

import math
from typing import TypeAlias

from . import _num as nm
from ._num import Num

Vec: TypeAlias = list[Num]
Mat: TypeAlias = list[list[Num]]


def dot(a: Vec, b: Vec) -> Num:
    """``aᵀb``."""
    if len(a) == 1:
        return a[0] * b[0]
    total = a[0] * b[0]
    for i in range(1, len(a)):
        total = total + a[i] * b[i]
    return total


def matvec(a: Mat, x: Vec) -> Vec:
    """``A x``."""
    return [dot(row, x) for row in a]


def quad(a: Mat, x: Vec) -> Num:
    """``xᵀ A x``."""
    if len(x) == 1:
        return x[0] * a[0][0] * x[0]
    return dot(x, matvec(a, x))


def trace_product(a: Mat, b: Mat) -> Num:
    """``tr(A B) = Σ_ij A_ij B_ji``."""
    p = len(a)
    if p == 1:
        return a[0][0] * b[0][0]
    total = a[0][0] * b[0][0]
    for i in range(p):
        for j in range(p):
            if i or j:
                total = total + a[i][j] * b[j][i]
    return total


def matmul(a: Mat, b: Mat) -> Mat:
    """``A B``."""
    p = len(a)
    return [[dot(a[i], [b[m][j] for m in range(p)]) for j in range(p)] for i in range(p)]


class Factor:
    """The Cholesky factorisation ``A = L Lᵀ`` of a symmetric positive definite matrix.

    A pivot that is not positive (a batch row whose design is singular) becomes NaN, so
    that row's solutions are NaN; the caller reports it. For ``p = 1`` the factor is the
    number itself.
    """

    __slots__ = ("_inverse", "a", "low", "p")

    def __init__(self, a: Mat) -> None:
        self.a = a
        self.p = p = len(a)
        self._inverse: Mat | None = None
        if p == 1:
            self.low: Mat = a
            return
        low: Mat = [[0.0] * p for _ in range(p)]
        for j in range(p):
            pivot = a[j][j]
            for m in range(j):
                pivot = pivot - low[j][m] * low[j][m]
            root = nm.sqrt(nm.where(pivot > 0.0, pivot, math.nan))
            low[j][j] = root
            for i in range(j + 1, p):
                s = a[i][j]
                for m in range(j):
                    s = s - low[i][m] * low[j][m]
                low[i][j] = nm.div(s, root)
        self.low = low

    def solve(self, b: Vec) -> Vec:
        """``A⁻¹ b``."""
        if self.p == 1:
            return [nm.div(b[0], self.a[0][0])]
        low, p = self.low, self.p
        z: Vec = []
        for i in range(p):
            s = b[i]
            for m in range(i):
                s = s - low[i][m] * z[m]
            z.append(nm.div(s, low[i][i]))
        x: Vec = [0.0] * p
        for i in reversed(range(p)):
            s = z[i]
            for m in range(i + 1, p):
                s = s - low[m][i] * x[m]
            x[i] = nm.div(s, low[i][i])
        return x

    def inverse(self) -> Mat:
        """``A⁻¹`` (computed once)."""
        if self._inverse is None:
            if self.p == 1:
                self._inverse = [[nm.div(1.0, self.a[0][0])]]
            else:
                cols = [
                    self.solve([1.0 if i == j else 0.0 for i in range(self.p)])
                    for j in range(self.p)
                ]
                self._inverse = [[cols[j][i] for j in range(self.p)] for i in range(self.p)]
        return self._inverse

    def trace_solve(self, b: Mat) -> Num:
        """``tr(A⁻¹ B)`` of a symmetric ``B``."""
        if self.p == 1:
            return nm.div(b[0][0], self.a[0][0])
        return trace_product(self.inverse(), b)

    def solve_matrix(self, b: Mat) -> Mat:
        """``A⁻¹ B``."""
        if self.p == 1:
            return [[nm.div(b[0][0], self.a[0][0])]]
        return matmul(self.inverse(), b)

    def inverse_quad(self, x: Vec) -> Num:
        """``xᵀ A⁻¹ x``."""
        return dot(x, self.solve(x))

    def logdet(self) -> Num:
        """``log det A``."""
        if self.p == 1:
            return nm.log(self.a[0][0])
        total = nm.log(self.low[0][0])
        for j in range(1, self.p):
            total = total + nm.log(self.low[j][j])
        return 2.0 * total
