"""Working arrays of a batch's chunks, recycled within a thread instead of freed.

A batch chunk's fit makes a few dozen temporaries of the chunk's size (weights, their
powers, centred effects, ...). Each is a fresh allocation; when the C allocator hands
the freed memory back to the system between chunks (glibc does whenever the top of its
heap exceeds ``M_TRIM_THRESHOLD``, which Dask's workers set to 64 KiB), every temporary
is faulted in again, page by page, and the page faults cost several times the
arithmetic (issue #20). Environment settings of the allocator are process-global, so a
library keeps its own: :func:`like` hands out an array from this thread's pool of
buffers, one that no Python object references any more (its reference count says so:
an array, or a view of it, still alive keeps its buffer out of the pool), or a new one
that joins the pool. Nothing is ever written into memory that is still referenced, so
results cannot alias a workspace buffer that is reused; the values written are those of
the same ufunc without ``out=`` (element by element the same operation).
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from .._typing import FloatArray

#: the buffers a thread keeps per shape
POOL_SIZE = 32
#: the shapes a thread keeps buffers of (beyond them, the first one's are dropped)
POOL_SHAPES = 8
#: buffers above this many doubles are not kept (the engine's chunks are ~2^17)
MAX_DOUBLES = 2**20


class _Pool(threading.local):
    def __init__(self) -> None:
        #: ``(k, n)`` arrays (handed out transposed) by shape, the one handed out last
        #: last
        self.shapes: dict[tuple[int, int], list[FloatArray]] = {}


_POOL = _Pool()


def _free_count() -> int:
    """The reference count :func:`like` sees for a buffer that only its list holds, taken
    the way :func:`like` takes it (interpreters differ: some borrow the argument's
    reference)."""
    buffers = [np.empty(0)]
    return sys.getrefcount(buffers[0])


#: see :func:`_free_count`
_FREE = _free_count()


def like(a: FloatArray) -> FloatArray:
    """An uninitialised float64 array shaped like the 2-D batch array `a` with its
    analyses (axis 0) varying fastest in memory, from this thread's pool (see the module
    docstring); for another shape or layout, a fresh array laid out as NumPy's ufuncs
    would lay out their result."""
    if a.ndim != 2 or a.shape[0] < 2 or not 0 < a.strides[0] < a.strides[1]:
        return np.empty_like(a, dtype=np.float64)
    n, k = a.shape
    key = (k, n)
    shapes = _POOL.shapes
    buffers = shapes.get(key)
    if buffers is None:
        if n * k > MAX_DOUBLES:
            fresh: FloatArray = np.empty(key).T
            return fresh
        if len(shapes) >= POOL_SHAPES:  # (the shape seen first goes)
            del shapes[next(iter(shapes))]
        buffers = shapes[key] = []
    refs = sys.getrefcount
    # the most recent first: a chunk's temporaries are mostly released in the reverse
    # order of their making, and its long-lived arrays were made first
    i = len(buffers)
    while i:
        i -= 1
        # (references: the list's and getrefcount's argument; a live view holds one more)
        if refs(buffers[i]) <= _FREE:
            buffer = buffers[i]
            if i < len(buffers) - 1:
                buffers.append(buffers.pop(i))
            out: FloatArray = buffer.T
            return out
    buffer = np.empty(key)
    if len(buffers) < POOL_SIZE:
        buffers.append(buffer)
    new: FloatArray = buffer.T
    return new


def clear() -> None:
    """Release this thread's buffers (the memory goes back to the allocator)."""
    _POOL.shapes = {}
