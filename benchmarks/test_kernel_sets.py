"""One epoch with each kernel set the CPU supports (generic, avx2, avx512), beside NumPy.

A wheel runs the best set the CPU has, so most users' machines (no AVX-512) run the AVX2
or the baseline kernels, which the other benchmarks never time on a machine with
AVX-512. digits goes through the small trainer, mnist through the general one. One
thread, so the kernels are what differs; the table per workload and dtype lists each set
and NumPy side by side.
"""
from __future__ import annotations

import pytest
from conftest import record

import fastnet
from fastnet import _peers

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


def _time_epochs(benchmark, agreement, workload, impl, dtype, threads):
    wl = _peers.WORKLOADS[workload]
    check = agreement(wl, dtype)
    if not check.ok:
        pytest.fail(f"not timed: {check.message}")
    trainer = _peers.make_trainer(impl, wl, dtype)
    benchmark.group = f"kernel sets: {workload}"
    losses = benchmark.pedantic(trainer.epochs, args=(wl.epochs_per_call,), rounds=wl.rounds,
                                iterations=1, warmup_rounds=1)
    record(benchmark, wl.epoch_flops(), wl.epochs_per_call, workload=workload, impl=impl,
           dtype=dtype, threads=threads, rows=wl.n_examples, last_loss=float(losses[-1]))


@pytest.mark.parametrize("threads", [1], indirect=True, ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel_set", KERNEL_SETS, indirect=True)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_fastnet_epoch(benchmark, agreement, workload, kernel_set, dtype, threads):
    _time_epochs(benchmark, agreement, workload, "fastnet", dtype, threads)


@pytest.mark.parametrize("threads", [1], indirect=True, ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("workload", WORKLOADS)
def test_numpy_epoch(benchmark, agreement, workload, dtype, threads):
    _time_epochs(benchmark, agreement, workload, "numpy", dtype, threads)
