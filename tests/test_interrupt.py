"""Ctrl-C during fit: Python runs its signal handlers only between calls into C, so fit cuts
a long run into calls of about a tenth of a second. An interrupt then stops it at once,
and the network keeps exactly the epochs completed, as a fit of that many epochs gives."""
from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

import fastnet


@pytest.mark.parametrize("layers, batch", [([64, 64, 10], 32),  # the small trainer
                                           ([300, 64, 10], 64)])  # the general one
def test_ctrl_c_stops_a_long_fit_and_keeps_the_epochs_completed(layers, batch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, layers[0])).astype(np.float32)
    Y = rng.uniform(0, 1, (1000, layers[-1])).astype(np.float32)
    net = fastnet.Network(layers, seed=1)
    epochs = 200_000  # minutes, uninterrupted
    ctrl_c = threading.Timer(0.3, signal.pthread_kill,
                             (threading.main_thread().ident, signal.SIGINT))
    start = time.monotonic()
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            net.fit(X, Y, epochs=epochs, learning_rate=0.1, batch_size=batch, seed=2)
        stopped_after = time.monotonic() - start
    finally:
        ctrl_c.cancel()
    assert stopped_after < 5
    history = info.value.history
    assert 0 < len(history) < epochs
    again = fastnet.Network(layers, seed=1)
    assert again.fit(X, Y, epochs=len(history), learning_rate=0.1, batch_size=batch,
                     seed=2) == history
    assert again == net
