"""pytest-benchmark suite for fastnet: ``pytest benchmarks/ --benchmark-only``.

Every workload is timed for each implementation x dtype x thread count on the same data
from the same initial weights (``fastnet._peers``, shared with ``python -m fastnet bench``).
Before any timing, a workload's implementations must agree on the loss after two epochs.

By default the tables are split per workload, dtype and thread count (so each table lists
the implementations side by side); ``--benchmark-group-by=group`` gives one table per
workload. ``--benchmark-json FILE`` keeps everything, with FLOPs and GFLOP/s in
``extra_info``.
"""
from __future__ import annotations

import os

import pytest

import fastnet
from fastnet import _peers

DEFAULT_GROUP_BY = "group,param:dtype,param:threads"


def pytest_report_header(config):
    cfg = fastnet.show_config(print_out=False)
    v = _peers.versions()
    lines = [
        f"fastnet {cfg['version']}: micro-kernels {cfg['kernel']}, {cfg['threads']} threads",
        *_peers.describe_blas(),
        f"peers: numpy {v['numpy']}, torch {v['torch'] or 'not installed'}, "
        f"scikit-learn {v['scikit-learn'] or 'not installed'}; {os.cpu_count()} CPUs",
    ]
    warning = _peers.openblas_env_warning()
    if warning:
        lines.append("WARNING: " + warning)
    return lines


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    warning = _peers.openblas_env_warning()
    if warning:
        config.issue_config_time_warning(pytest.PytestWarning(warning), stacklevel=2)
    # One table per workload x dtype x threads unless the user chose a grouping.
    args = " ".join(map(str, config.invocation_params.args))
    if hasattr(config.option, "benchmark_group_by") and "--benchmark-group-by" not in args:
        config.option.benchmark_group_by = DEFAULT_GROUP_BY


@pytest.fixture(scope="session")
def agreement():
    """check(workload, dtype) -> the cached ``_peers.Agreement`` of that workload."""
    cache = {}

    def check(workload, dtype):
        key = (workload.name, workload.n_examples, dtype)
        if key not in cache:
            cache[key] = _peers.check_agreement(workload, dtype, _peers.DEFAULT_IMPLS)
        return cache[key]

    return check


@pytest.fixture
def threads(request):
    """Gives every implementation ``request.param`` threads, then restores the default."""
    n = request.param
    if n > (os.cpu_count() or 1):
        pytest.skip(f"{n} threads on {os.cpu_count()} CPUs")
    _peers.set_threads(n)
    yield n
    _peers.set_threads(os.cpu_count() or 1)


def require(impl):
    if not _peers.available(impl):
        mod = _peers.REQUIRES[impl]
        pytest.skip(f"{impl}: {mod} is not installed (pip install '.[bench]' in fastnet)")


def record(benchmark, flops, per_call, **info):
    """FLOPs, time per epoch and GFLOP/s into the result's extra_info."""
    benchmark.extra_info.update(info)
    benchmark.extra_info["flops"] = flops
    benchmark.extra_info["epochs_per_call"] = per_call
    benchmark.extra_info["fastnet_kernel"] = fastnet.show_config(print_out=False)["kernel"]
    meta = getattr(benchmark, "stats", None)
    stats = getattr(meta, "stats", None)
    if stats is not None and stats.median > 0:
        per = stats.median / per_call
        benchmark.extra_info["seconds_per_epoch_median"] = per
        benchmark.extra_info["gflops"] = flops / per / 1e9


def time_epochs(benchmark, agreement, workload, impl, dtype, threads, group):
    """Times ``impl``'s epochs of ``workload`` (after its agreement check) into ``group``."""
    wl = _peers.WORKLOADS[workload]
    check = agreement(wl, dtype)
    if not check.ok:
        pytest.fail(f"not timed: {check.message}")
    trainer = _peers.make_trainer(impl, wl, dtype)
    per = wl.epochs_per_call
    benchmark.group = group
    losses = benchmark.pedantic(trainer.epochs, args=(per,), rounds=wl.rounds, iterations=1,
                                warmup_rounds=1)
    record(benchmark, wl.epoch_flops(), per, workload=workload, impl=impl, dtype=dtype,
           threads=threads, rows=wl.n_examples, layers=list(wl.layers),
           batch_size=wl.batch_size, learning_rate=wl.learning_rate,
           last_loss=float(losses[-1]), checked=trainer.checked,
           note=None if trainer.checked else
           "nearest peer: MLPRegressor has biases and an identity output layer")
