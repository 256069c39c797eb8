"""One epoch of minibatch gradient descent (xor: 1000 epochs per call), per workload."""
from __future__ import annotations

import pytest
from conftest import require, time_epochs

from fastnet import _peers

IMPLS = list(_peers.DEFAULT_IMPLS)


@pytest.mark.parametrize("threads", [1, 2], indirect=True, ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("workload", list(_peers.WORKLOADS))
def test_epoch(benchmark, agreement, workload, impl, dtype, threads):
    require(impl)
    time_epochs(benchmark, agreement, workload, impl, dtype, threads, group=workload)
