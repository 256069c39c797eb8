"""One epoch with each kernel set the CPU supports (generic, avx2, avx512), beside NumPy.

A wheel runs the best set the CPU has, so most users' machines (no AVX-512) run the AVX2
or the baseline kernels, which the other benchmarks never time on a machine with
AVX-512. digits goes through the small trainer, mnist through the general one. One
thread, so the kernels are what differs; the table per workload and dtype lists each set
and NumPy side by side.
"""
from __future__ import annotations

import pytest
from conftest import time_epochs

import fastnet

KERNEL_SETS = ("generic", "avx2", "avx512")
WORKLOADS = ("digits", "mnist")


@pytest.fixture
def kernel_set(request):
    """Runs the benchmark with the named kernel set, then restores the one in use."""
    name = request.param
    config = fastnet.show_config(print_out=False)
    if not config["cpu_supports"][name]:
        pytest.skip(f"this CPU does not support the {name} kernels")
    before = config["kernel"]
    try:
        assert fastnet._use_kernels(name) == name
        yield name
    finally:
        fastnet._use_kernels(before)


@pytest.mark.parametrize("threads", [1], indirect=True, ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel_set", KERNEL_SETS, indirect=True)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_fastnet_epoch(benchmark, agreement, workload, kernel_set, dtype, threads):
    time_epochs(benchmark, agreement, workload, "fastnet", dtype, threads,
                group=f"kernel sets: {workload}")


@pytest.mark.parametrize("threads", [1], indirect=True, ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("workload", WORKLOADS)
def test_numpy_epoch(benchmark, agreement, workload, dtype, threads):
    time_epochs(benchmark, agreement, workload, "numpy", dtype, threads,
                group=f"kernel sets: {workload}")
