"""fit's memory, as the performance issue asks: nothing allocated per batch (the scratch
is sized once per call) and nothing sized by the data. The C library counts its own heap
allocations (``_core._alloc_stats``); tracemalloc sees NumPy's."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from conftest import DTYPES

import fastnet
from fastnet import _core

# (layers, batch) for each trainer and scheme, named by the trainer that runs it
FIT_CASES = {
    "tiny-xor": ([2, 4, 1], 4),
    "small-units": ([64, 64, 10], 32),
    "small-rows": ([20, 30, 20, 5], 32),
    # one hidden layer and fewer than 32 outputs (train.c FN_UNITS_MAX_OUTPUTS): the units
    # scheme whatever the kernels (with 32 or more, the team products, where a call of
    # fewer than 64 rows times epochs in batches fused by rows skips W[0]'s panels and
    # allocates less)
    "general-units": ([300, 128, 3], 64),
    "general-one-at-a-time": ([300, 13, 3], 1),
    "general-rows": ([300, 60, 40, 7], 50),
    # the units scheme with a tail (each thread its copy of the layers after the second)
    "general-deep-units": ([300, 100, 40, 10], 8),
}


def _fit_memory(layers, batch, rows, epochs, dtype, shuffle):
    """(C allocations, their bytes, NumPy's peak bytes) of one fit call, from a state
    with no scratch block kept."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)
    net = fastnet.Network(layers, dtype=dtype, seed=0)
    _core._scratch_drop()
    calls, nbytes = _core._alloc_stats()
    tracemalloc.start()
    try:
        net.fit(X, Y, epochs, 0.1, batch_size=batch, shuffle=shuffle, seed=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    calls_after, nbytes_after = _core._alloc_stats()
    return calls_after - calls, nbytes_after - nbytes, peak


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_allocates_once_a_call_whatever_the_rows_and_epochs(case, dtype, shuffle):
    layers, batch = FIT_CASES[case]
    few = _fit_memory(layers, batch, 2 * batch + 1, 2, dtype, shuffle)
    assert _core._last_trainer() == case.split("-")[0]
    if case.startswith("general-") and case.endswith(("units", "rows")):
        assert _core._last_units() == case.endswith("units")
    many = _fit_memory(layers, batch, 20 * batch + 3, 5, dtype, shuffle)
    # the C library: the same allocations (at most two: the workspace and its table of
    # pointers) for 10x the rows and batches and more epochs
    assert few[:2] == many[:2] and 1 <= many[0] <= 2
    # ... of O(batch x widths + weights) bytes, and the GEMM's packed blocks (a share of
    # L2 a thread)
    itemsize = np.dtype(dtype).itemsize
    weights = sum(a * b for a, b in zip(layers[:-1], layers[1:]))
    gemm_blocks = fastnet.get_num_threads() * _core.l2_bytes()
    assert many[1] <= itemsize * (16 * batch * sum(layers) + 3 * weights) + gemm_blocks
    # NumPy: a few small arrays, and with shuffling each epoch's order of the rows (int64)
    rows, epochs = 20 * batch + 3, 5
    assert many[2] <= 16 * 1024 + (8 * (epochs + 3) * rows if shuffle else 0), many[2]


def test_the_ledger_counts_what_the_library_allocates():
    """The counts the test above relies on move when the library allocates: a fit with no
    scratch block kept allocates one (the tiny trainer's whole workspace), and the next
    fit of the same size takes the kept one and allocates nothing."""
    layers, batch = FIT_CASES["tiny-xor"]
    first = _fit_memory(layers, batch, 12, 1, np.float32, False)
    assert first[0] == 1 and first[1] >= 4 * (2 * 4 + 4 * 1)
    calls, nbytes = _core._alloc_stats()
    fastnet.Network(layers, seed=0).fit(np.ones((12, 2), np.float32),
                                        np.zeros((12, 1), np.float32), 1, 0.1, batch_size=batch)
    assert _core._last_trainer() == "tiny"
    assert _core._alloc_stats() == (calls, nbytes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["small-units", "small-rows", "general-units"])
def test_a_second_fit_takes_the_kept_block(case, dtype):
    """Every trainer's workspace is the scratch block kept between calls: a second fit of
    the same size allocates at most its small table of pointers, not the workspace again
    (a fresh block's pages faulted in and, unmapped, flushed the other CPU's TLB: a
    one-epoch digits call in float64 on two threads spent about 80 us of 600 there)."""
    layers, batch = FIT_CASES[case]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4 * batch, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (4 * batch, layers[-1])).astype(dtype)
    net = fastnet.Network(layers, dtype=dtype, seed=0)
    _core._scratch_drop()
    net.fit(X, Y, 1, 0.1, batch_size=batch)
    assert _core._last_trainer() == case.split("-")[0]
    calls, nbytes = _core._alloc_stats()
    net.fit(X, Y, 1, 0.1, batch_size=batch)
    calls_after, nbytes_after = _core._alloc_stats()
    assert calls_after - calls <= 2 and nbytes_after - nbytes <= 1024


def _get_buffer(obj, flags):
    """PyObject_GetBuffer(obj, flags) from Python (the buffer released again)."""
    import ctypes

    view = ctypes.create_string_buffer(256)  # a Py_buffer is 80 bytes
    api = ctypes.pythonapi
    api.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
    api.PyBuffer_Release.argtypes = [ctypes.c_void_p]
    api.PyObject_GetBuffer(obj, ctypes.addressof(view), flags)
    api.PyBuffer_Release(ctypes.addressof(view))


@pytest.mark.parametrize("dtype", DTYPES)
def test_aligned_arrays_own_their_memory_and_free_it(dtype):
    """The arrays the network hands out (outputs, gradients, weights) come from
    ``_core.aligned_array``: uninitialised, on a cache line, writable, and alive as long
    as the array is, however it is viewed; freed with the last view (tracemalloc sees
    the allocations). Shapes of 0 rows or columns are arrays of size 0; impossible
    shapes raise."""
    single = dtype == np.float32
    for rows, cols, ndim in [(3, 5, 2), (1, 1, 2), (0, 7, 2), (4, 0, 2), (1, 9, 1), (1, 0, 1)]:
        a = _core.aligned_array(rows, cols, ndim, single)
        want = (rows, cols) if ndim == 2 else (cols,)
        assert a.shape == want and a.dtype == dtype and a.flags.c_contiguous
        assert a.flags.writeable and a.flags.aligned
        assert a.size == 0 or a.ctypes.data % 64 == 0
        a[...] = np.arange(a.size).reshape(want)
        assert type(a.base).__name__ == "_AlignedBlock"  # not a memoryview to release
        view = a.T[::-1]
        del a
        assert np.array_equal(view[::-1].T, np.arange(rows * cols if ndim == 2 else cols)
                              .reshape(want))
    block = _core.aligned_array(3, 5, 2, single).base
    m = memoryview(block)
    assert m.shape == (3, 5) and m.format == ("f" if single else "d") and m.c_contiguous
    with pytest.raises(BufferError):  # C order only: a request for Fortran order fails
        _get_buffer(block, 0x0058)  # PyBUF_F_CONTIGUOUS
    _get_buffer(block, 0x0020 | 0x0018)  # PyBUF_C_CONTIGUOUS: granted
    import copy
    import pickle

    for duplicate in (copy.copy, copy.deepcopy, pickle.dumps):  # its pointers: never copied
        with pytest.raises(TypeError):
            duplicate(block)
    with pytest.raises(BufferError):  # one not made by aligned_array has no memory
        memoryview(type(block)())
    for bad in [(-1, 3, 2), (2, -1, 2), (2, 3, 0), (2, 3, 3), (0, 5, 1), (4, 5, 1)]:
        with pytest.raises(ValueError, match="aligned_array"):
            _core.aligned_array(*bad, single)
    with pytest.raises(MemoryError):
        _core.aligned_array(2**40, 2**40, 2, single)

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        kept = [_core.aligned_array(64, 100, 2, single) for _ in range(50)]
        held = tracemalloc.get_traced_memory()[0] - base
        del kept
        left = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held >= 50 * 64 * 100 * np.dtype(dtype).itemsize
    assert left < 64 * 100 * np.dtype(dtype).itemsize
