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
from conftest import DTYPES, FIT_CASES

import fastnet
from fastnet import _core


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


# every trainer's cases of test_threads, and the tiny trainer's, and batches of one row
STOP_CASES = {**FIT_CASES, "tiny": ([3, 4, 2], 4, 50), "general-rows-of-one": ([300, 40, 10],
                                                                            1, 40)}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(STOP_CASES))
def test_a_stop_between_batches_keeps_exactly_the_epochs_before_it(sharing_policy, case,
                                                                    dtype, threads):
    """C asks the stop check between batches (whether SIGINT arrived, in use; here the
    tests' check, asked at every batch, says so at its n-th asking): the call ends after
    that batch, on every thread of the team at once, with the weights of the start of
    the epoch it stopped in, and KeyboardInterrupt is raised. The first batch, the middle
    of the first epoch, the first batch of the second, and the middle of the third. The
    small and tiny trainers, which replay the epochs done to stop so, stop only while
    those are fewer than the epochs to come (the 4 epochs are one call): in the third
    epoch they end the call, and the interrupt comes after its 4 epochs."""
    layers, batch, rows = STOP_CASES[case]
    batches = -(-rows // batch)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)
    fastnet.set_num_threads(threads)
    sharing_policy("always")  # the small trainer's teams share every batch

    def net_and_fit(epochs):
        net = fastnet.Network(layers, activation="tanh", output_activation="sigmoid",
                              dtype=dtype, seed=4)
        return net, lambda: net.fit(X, Y, epochs=epochs, learning_rate=0.1,
                                    batch_size=batch, seed=9)

    for check in (1, batches // 2 + 1, batches + 1, 2 * batches + batches // 2 + 1):
        net, fit = net_and_fit(4)
        _core._stop_at_check(check)
        try:
            with pytest.raises(KeyboardInterrupt) as info:
                fit()
        finally:
            _core._stop_at_check(0)
        assert _core._last_trainer() == case.split("-")[0]
        history = info.value.history
        epoch = (check - 1) // batches
        stops = case.startswith("general") or 2 * epoch < 4
        assert len(history) == (epoch if stops else 4)
        again, fit_again = net_and_fit(len(history))
        assert fit_again() == history
        assert again == net


def test_ctrl_c_in_a_long_epoch_stops_it_before_its_end():
    """One epoch of minibatches taking seconds: Ctrl-C stops it between two batches
    (the check runs every tenth of a second) and restores the weights of its start; it
    had run to the end of the epoch, which it then kept."""
    rng = np.random.default_rng(0)
    layers = [512, 4096, 10]  # about 13 MFLOP a row: seconds for 20000 rows
    X = rng.standard_normal((20_000, layers[0])).astype(np.float32)
    Y = rng.uniform(0, 1, (20_000, layers[-1])).astype(np.float32)
    net = fastnet.Network(layers, seed=1)
    start = fastnet.Network(layers, seed=1)
    ctrl_c = threading.Timer(0.3, signal.pthread_kill,
                             (threading.main_thread().ident, signal.SIGINT))
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            net.fit(X, Y, epochs=3, learning_rate=0.01, batch_size=256, seed=2)
    finally:
        ctrl_c.cancel()
    assert info.value.history == []
    assert net == start


@pytest.mark.parametrize("trainer, n_in, n_h, batch, lr", [
    ("tiny", 3, 4, 7, 0.5), ("small", 3, 12, 7, 0.5), ("general", 300, 4, 7, 0.5),
    ("general", 300, 40, 1, 0.015)])
def test_a_stop_asked_near_the_epoch_that_diverges_keeps_the_epochs_before_it(
        trainer, n_in, n_h, batch, lr):
    """The cases of test_divergence that diverge in epoch k + 1, with a stop asked at each
    batch of epochs k and k + 1 in turn. A stop asked before the batch that diverges
    raises KeyboardInterrupt and keeps the epochs before its own; one asked in that batch
    too (the general and small trainers ask before a batch, so in the first batch of
    epoch k + 1, where these diverge: the call ends as diverged, the handler's exception
    still to raise); one asked after it is never asked, and the fit raises
    DivergenceError, keeping k epochs. Each time, the network is the fit of the epochs in
    the history."""
    rng = np.random.default_rng(0)
    X = 5 * rng.standard_normal((30, n_in)) / np.sqrt(n_in / 3)
    Y = rng.standard_normal((30, 2))

    def net_and_fit(epochs):
        net = fastnet.Network([n_in, n_h, 2], activation="identity", bias=True,
                              dtype=np.float64, seed=1)
        return net, lambda: net.fit(X, Y, epochs=epochs, learning_rate=lr, batch_size=batch,
                                    seed=3)

    net, fit = net_and_fit(500)
    with pytest.raises(fastnet.DivergenceError) as info:
        fit()
    assert _core._last_trainer() == trainer
    diverged = info.value.history
    k = len(diverged)
    assert k >= 1
    kept = {}
    for epochs in (k - 1, k):
        kept[epochs], fit_kept = net_and_fit(epochs)
        assert fit_kept() == diverged[:epochs]
    batches = -(-30 // batch)
    outcome = {}
    for check in range((k - 1) * batches + 1, (k + 1) * batches + 1):
        net, fit = net_and_fit(500)
        _core._stop_at_check(check)
        try:
            with pytest.raises((KeyboardInterrupt, fastnet.DivergenceError)) as info:
                fit()
        finally:
            _core._stop_at_check(0)
        outcome[check] = info.type
        epochs = (check - 1) // batches if info.type is KeyboardInterrupt else k
        assert info.value.history == diverged[:epochs]
        assert net == kept[epochs]
    assert outcome[(k - 1) * batches + 1] is KeyboardInterrupt
    if trainer != "tiny":
        assert outcome[k * batches + 1] is KeyboardInterrupt


def _long_epochs():
    """Data and a network whose epoch is a call of its own (tenths of a second)."""
    rng = np.random.default_rng(0)
    layers = [512, 2048, 10]  # about 6.4 MFLOP a row
    X = rng.standard_normal((10_000, layers[0])).astype(np.float32)
    Y = rng.uniform(0, 1, (10_000, layers[-1])).astype(np.float32)
    return layers, X, Y


def test_other_signals_handlers_run_between_calls_on_a_whole_network():
    """A handler of another signal that does not raise (a checkpoint on an alarm) runs
    when the call ends, where the network is that of the epochs done: never in the middle
    of a batch, where W[0] may still sit in the trainer's own copy."""
    layers, X, Y = _long_epochs()
    net = fastnet.Network(layers, seed=1)
    seen = []

    def checkpoint(signum, frame):
        seen.append([W.copy() for W in net.weights])

    previous = signal.signal(signal.SIGALRM, checkpoint)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        net.fit(X, Y, epochs=2, learning_rate=0.01, batch_size=256, seed=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(seen) == 1
    states = [fastnet.Network(layers, seed=1) for _ in range(2)]
    states[1].fit(X, Y, epochs=1, learning_rate=0.01, batch_size=256, seed=2)
    assert any(all(np.array_equal(a, b) for a, b in zip(seen[0], s.weights)) for s in states)


def test_a_sigint_handler_of_the_callers_own_does_not_cut_the_fit():
    """With a SIGINT handler of the caller's (one that only takes note), Ctrl-C is that
    handler's to act on: the fit is not cut inside a call, and it ends as it would have
    without the signal."""
    layers, X, Y = _long_epochs()
    net = fastnet.Network(layers, seed=1)
    noted = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    ctrl_c = threading.Timer(0.1, signal.pthread_kill,
                             (threading.main_thread().ident, signal.SIGINT))
    try:
        ctrl_c.start()
        history = net.fit(X, Y, epochs=2, learning_rate=0.01, batch_size=256, seed=2)
    finally:
        ctrl_c.cancel()
        signal.signal(signal.SIGINT, previous)
    assert noted == [signal.SIGINT]
    again = fastnet.Network(layers, seed=1)
    assert again.fit(X, Y, epochs=2, learning_rate=0.01, batch_size=256, seed=2) == history
    assert again == net
