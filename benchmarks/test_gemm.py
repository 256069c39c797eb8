"""The machine's GEMM rate with NumPy (4096^2): the yardstick for the FLOP limits."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import record

N = 4096


@pytest.mark.parametrize("threads", [1, 2], indirect=True, ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm(benchmark, dtype, threads):
    rng = np.random.default_rng(0)
    A, B = rng.random((N, N)).astype(dtype), rng.random((N, N)).astype(dtype)
    C = np.empty((N, N), dtype)
    benchmark.group = "gemm"
    benchmark.pedantic(np.matmul, args=(A, B), kwargs={"out": C}, rounds=3, iterations=1,
                       warmup_rounds=1)
    record(benchmark, 2 * N**3, 1, impl="numpy", dtype=dtype, threads=threads, n=N)
