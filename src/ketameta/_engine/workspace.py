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

#: the buffers a thread keeps (beyond them, a new buffer replaces the smallest free one)
POOL_SIZE = 24
#: buffers above this many doubles are not kept (the engine's chunks are ~2^17)
MAX_DOUBLES = 2**20


class _Pool(threading.local):
    def __init__(self) -> None:
        self.buffers: list[FloatArray] = []


_POOL = _Pool()


def _free(buffers: list[FloatArray], i: int) -> bool:
    # (references: the list's and getrefcount's argument; a view of the buffer holds one)
    return sys.getrefcount(buffers[i]) <= 2


def like(a: FloatArray) -> FloatArray:
    """An uninitialised float64 array shaped like the 2-D batch array `a` with its
    analyses (axis 0) varying fastest in memory, from this thread's pool (see the module
    docstring); for another shape or layout, a fresh array laid out as NumPy's ufuncs
    would lay out their result."""
    if a.ndim != 2 or a.shape[0] < 2 or not 0 < a.strides[0] < a.strides[1]:
        return np.empty_like(a, dtype=np.float64)
    n, k = a.shape
    size = n * k
    if size > MAX_DOUBLES or size == 0:
        fresh: FloatArray = np.empty((k, n)).T
        return fresh
    buffers = _POOL.buffers
    smallest = -1
    for i in range(len(buffers)):
        if _free(buffers, i):
            if buffers[i].shape[0] >= size:
                out: FloatArray = buffers[i][:size].reshape(k, n).T
                return out
            if smallest < 0 or buffers[i].shape[0] < buffers[smallest].shape[0]:
                smallest = i
    buffer = np.empty(size)
    if len(buffers) < POOL_SIZE:
        buffers.append(buffer)
    elif smallest >= 0:
        buffers[smallest] = buffer
    new: FloatArray = buffer.reshape(k, n).T
    return new


def clear() -> None:
    """Release this thread's buffers (the memory goes back to the allocator)."""
    _POOL.buffers = []
