"""predict on the mnist shape (784 -> 128 -> 10): fastnet vs sigmoid(sigmoid(X@W1)@W2),
on 60000 rows (throughput) and on one row (the cost of a call, 1000 calls a round)."""
from __future__ import annotations

import pytest
from conftest import record, require

from fastnet import _peers

IMPLS = list(_peers.DEFAULT_IMPLS)


@pytest.mark.parametrize("threads", [1, 2], indirect=True, ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("workload", list(_peers.PREDICTS))
def test_predict(benchmark, agreement, workload, impl, dtype, threads):
    require(impl)
    wl = _peers.PREDICTS[workload]
    check = agreement(wl, dtype)
    if not check.ok:
        pytest.fail(f"not timed: {check.message}")
    predict = _peers.make_predictor(impl, wl, dtype)
    benchmark.group = workload
    benchmark.pedantic(predict, rounds=wl.rounds, iterations=wl.epochs_per_call,
                       warmup_rounds=1)
    record(benchmark, wl.predict_flops(), 1, workload=workload, impl=impl, dtype=dtype,
           threads=threads, rows=wl.n_examples, layers=list(wl.layers),
           note="MLPRegressor: biases (zero) and identity output" if impl == "sklearn" else None)
