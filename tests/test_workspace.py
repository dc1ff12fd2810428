"""The engine's recycled working arrays (`_engine/workspace.py`): a buffer is handed out
again only when nothing references it, and batch results do not depend on recycling."""

from __future__ import annotations

import threading

import numpy as np

import ketameta
from ketameta._engine import workspace


def _rows_inner(n: int, k: int) -> np.ndarray:
    return np.zeros((k, n)).T


def test_a_referenced_buffer_is_never_handed_out_again() -> None:
    workspace.clear()
    a = _rows_inner(100, 10)
    first = workspace.like(a)
    first[...] = 1.0
    view = first[:, 3]  # (a view keeps the buffer in use)
    del first
    second = workspace.like(a)
    assert not np.shares_memory(second, view)
    second[...] = 2.0
    assert np.all(view == 1.0)
    del view, second
    third = workspace.like(a)  # (now free: recycled, with the layout of `a`)
    assert third.shape == a.shape
    assert third.strides[0] == 8
    assert third.strides[1] == 8 * 100
    workspace.clear()


def test_a_free_buffer_of_the_shape_is_recycled() -> None:
    workspace.clear()
    first = workspace.like(_rows_inner(200, 10))
    address = first.__array_interface__["data"][0]
    del first  # (an address, not a reference: the buffer is free again)
    again = workspace.like(_rows_inner(200, 10))
    assert again.__array_interface__["data"][0] == address
    other = workspace.like(_rows_inner(50, 4))  # (another shape: its own buffer)
    assert other.shape == (50, 4)
    assert not np.shares_memory(other, again)
    workspace.clear()


def test_other_layouts_get_fresh_arrays() -> None:
    c_order = np.zeros((100, 10))
    out = workspace.like(c_order)
    assert out.flags.c_contiguous
    assert workspace.like(np.zeros((1, 10))).shape == (1, 10)


def test_each_thread_has_its_own_pool() -> None:
    workspace.clear()
    mine = workspace.like(_rows_inner(100, 10))
    seen: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: seen.append(workspace.like(_rows_inner(100, 10))))
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, seen[0])
    workspace.clear()


def test_batch_results_are_the_same_bits_with_a_warm_or_cold_pool() -> None:
    # exact equality of two runs: the recycled buffers (filled by the first call's chunks)
    # must not change a bit of the second; results own their arrays (never a buffer)
    rng = np.random.default_rng(3)
    v = rng.uniform(0.01, 1.0, (3000, 8))
    y = rng.normal(0.0, np.sqrt(v + 0.2))
    y[rng.random(y.shape) < 0.3] = np.nan
    for method in ("DL", "REML"):
        workspace.clear()
        cold = ketameta.pool_many(y, v, method=method, chunk_size=256)
        warm = ketameta.pool_many(y, v, method=method, chunk_size=700)
        for name in ("estimate", "se", "tau2", "tau2_se", "q", "iterations"):
            a, b = getattr(cold, name), getattr(warm, name)
            assert a.tobytes() == b.tobytes(), name
        for buffers in workspace._POOL.shapes.values():
            for buffer in buffers:
                assert not np.shares_memory(buffer, cold.estimate)
                assert not np.shares_memory(buffer, cold.tau2)
