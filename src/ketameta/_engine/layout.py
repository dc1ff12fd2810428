"""Where each weighted sum of a model sits in a *row* of sums (see :class:`Layout`)."""

from __future__ import annotations

import functools

from ._num import Num
from .linalg import Mat, Vec


def pairs(p: int) -> list[tuple[int, int]]:
    """The entries ``(a, b)``, ``a ≤ b``, of a symmetric ``p × p`` matrix, in storage order."""
    return [(a, b) for a in range(p) for b in range(a, p)]


@functools.lru_cache(maxsize=64)
def layout(p: int, intercept: bool) -> Layout:
    """The (shared, immutable) :class:`Layout` of `p` coefficients."""
    return Layout(p, intercept)


class Layout:
    """Where each weighted sum sits in a *row* of sums (a list of numbers per analysis):
    ``XᵀUX`` entry ``(a, b)`` at ``xx[a][b]`` (stored once for a ≤ b), ``XᵀUy`` entry
    ``a`` at ``xy[a]``, ``yᵀUy`` at ``yy`` and ``Σu`` at ``ones`` (the ``(0, 0)`` entry
    when the first column is the intercept)."""

    __slots__ = ("ones", "p", "size", "xx", "xy", "yy")

    def __init__(self, p: int, intercept: bool) -> None:
        self.p = p
        self.xx = [[0] * p for _ in range(p)]
        for n, (a, b) in enumerate(pairs(p)):
            self.xx[a][b] = self.xx[b][a] = n
        n = len(pairs(p))
        self.xy = list(range(n, n + p))
        self.yy = n + p
        self.ones = 0 if intercept else n + p + 1
        self.size = n + p + (1 if intercept else 2)

    def matrix(self, row: list[Num]) -> Mat:
        """The ``p × p`` matrix ``XᵀUX`` of a row."""
        return [[row[i] for i in line] for line in self.xx]

    def vector(self, row: list[Num]) -> Vec:
        """The vector ``XᵀUy`` of a row."""
        return [row[i] for i in self.xy]
