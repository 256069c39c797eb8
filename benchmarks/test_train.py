"""One epoch of minibatch gradient descent (xor: 1000 epochs per call), per workload."""
from __future__ import annotations

import pytest
from conftest import record, require

from fastnet import _peers

IMPLS = list(_peers.DEFAULT_IMPLS)


@pytest.mark.parametrize("threads", [1, 2], indirect=True, ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("workload", list(_peers.WORKLOADS))
def test_epoch(benchmark, agreement, workload, impl, dtype, threads):
    require(impl)
    wl = _peers.WORKLOADS[workload]
    check = agreement(wl, dtype)
    if not check.ok:
        pytest.fail(f"not timed: {check.message}")
    trainer = _peers.make_trainer(impl, wl, dtype)
    per = wl.epochs_per_call
    benchmark.group = workload
    losses = benchmark.pedantic(trainer.epochs, args=(per,), rounds=wl.rounds, iterations=1,
                                warmup_rounds=1)
    record(benchmark, wl.epoch_flops(), per, workload=workload, impl=impl, dtype=dtype,
           threads=threads, rows=wl.n_examples, layers=list(wl.layers),
           batch_size=wl.batch_size, learning_rate=wl.learning_rate,
           last_loss=float(losses[-1]), checked=trainer.checked,
           note=None if trainer.checked else
           "nearest peer: MLPRegressor has biases and an identity output layer")
