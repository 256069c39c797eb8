"""Ctrl-C during fit: Python runs its signal handlers only between calls into C, so fit cuts
a long run into calls of about a tenth of a second. An interrupt then stops it at once,
and the network keeps exactly the epochs completed, as a fit of that many epochs gives.
The same for any exception a signal handler raises (an alarm's timeout)."""
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


def test_an_alarm_handlers_exception_stops_a_fit_as_ctrl_c_does():
    """A timeout raised by a SIGALRM handler stops the fit between calls, like Ctrl-C: the
    exception carries the completed epochs' losses and the network equals a fit of that
    many epochs (it had left the network partly trained with no history)."""
    layers, batch = [64, 64, 10], 32
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, layers[0])).astype(np.float32)
    Y = rng.uniform(0, 1, (1000, layers[-1])).astype(np.float32)
    net = fastnet.Network(layers, seed=1)

    def time_is_up(signum, frame):
        raise TimeoutError("time is up")

    previous = signal.signal(signal.SIGALRM, time_is_up)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(TimeoutError) as info:
            net.fit(X, Y, epochs=200_000, learning_rate=0.1, batch_size=batch, seed=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    history = info.value.history
    assert 0 < len(history) < 200_000
    again = fastnet.Network(layers, seed=1)
    assert again.fit(X, Y, epochs=len(history), learning_rate=0.1, batch_size=batch,
                     seed=2) == history
    assert again == net
