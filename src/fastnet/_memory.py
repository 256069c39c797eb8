"""Cache-line aligned arrays for everything the C kernels write from several threads.

NumPy aligns its data to 16 bytes. When the rows of an array the threads share out by
columns (the weights in the weight-gradient product, the layer outputs) are whole cache
lines, but the array starts 16 bytes into a line, each row's last columns share a line
with the next row's first ones, and two threads write that line. On the mnist network
([784, 128, 10], batch 64, 2 threads) that false sharing made the thread owning the last
column panel of W1 take 43 instead of 30 us per batch for its half of the update, and the
2-thread epoch 12% longer.
"""
from __future__ import annotations

import math

import numpy as np

from . import _core
from ._validation import DTYPES

ALIGN = 64  # bytes: a cache line on x86-64 (and the AVX-512 register width)


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on an ALIGN-byte boundary:
    for float32 and float64 of 1 or 2 dimensions (every array the kernels write) an array
    on a block of its own (``_core.aligned_array``), else a view into a slightly larger
    buffer, which it keeps alive."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if dtype in DTYPES and 1 <= len(shape) <= 2:  # 0.8 us from here (the block: 0.3), not 1.0
        return _core.aligned_array(shape[0] if len(shape) == 2 else 1, shape[-1], len(shape),
                                   dtype.itemsize == 4)
    size = math.prod(shape) * dtype.itemsize  # np.prod of a tuple costs 3 us a call
    buf = np.empty(size + ALIGN, np.uint8)
    # the address from C and the view by the constructor: 1 us a call in all; with
    # buf.ctypes.data and slicing, viewing and reshaping it took 2.8, a quarter of
    # predicting one row
    return np.ndarray(shape, dtype, buf, -_core.address_of(buf) % ALIGN)


def aligned_copy(a, dtype):
    """``a`` converted to ``dtype`` in a new aligned C-contiguous array."""
    out = aligned_empty(np.shape(a), dtype)
    out[...] = a
    return out
