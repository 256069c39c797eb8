"""Training that blows up raises fastnet.DivergenceError (a FloatingPointError) and keeps
the last finite weights: those at the start of the epoch that diverged."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES
from hypothesis import assume, event, given
from hypothesis import strategies as st

import fastnet
from fastnet import _core, reference


def _all_finite(net):
    return all(np.isfinite(p).all() for p in net.weights + net.biases)


@pytest.mark.parametrize("dtype", DTYPES)
def test_absurd_learning_rate_raises_divergence_error_and_keeps_finite_weights(dtype):
    """1-1 identity net, x = 10, y = 0: each full-batch step multiplies w by
    (1 - 2 lr x^2) = 1 - 2e8, so w overflows after a few dozen epochs at most."""
    net = fastnet.Network([1, 1], activation="identity", dtype=dtype)
    net.weights = [[[1.0]]]
    with pytest.raises(fastnet.DivergenceError) as info:
        net.fit([[10.0]], [[0.0]], epochs=1000, learning_rate=1e6)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert "diverged" in str(err)
    assert _all_finite(net)
    k = len(err.history)
    assert 0 < k < 1000
    assert all(np.isfinite(h) for h in err.history)
    # the weights are those at the start of the epoch that diverged: w_k = (1 - 2e8)^k
    factor = 1 - 2e8
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    w_k = factor**k
    assert net.weights[0][0, 0] == pytest.approx(w_k, rel=rtol * k)
    # history[i] is the loss before epoch i: (x w_i)^2 with N = 1
    for i, h in enumerate(err.history):
        assert h == pytest.approx(100 * factor ** (2 * i), rel=2 * rtol * (i + 1))


def test_a_loss_that_overflows_at_the_start_says_no_learning_rate_helps():
    """Targets so large that (O_out - Y)^2 overflows at the weights given: the loss is
    infinite before any step (the reference's is inf there too), so the advice is to scale
    the data, not the learning rate; a learning rate too large for finite data still gets
    the learning-rate advice (above). Float64 only: float32 errors are squared and summed
    in double, where no float32 value overflows."""
    X = np.random.default_rng(0).standard_normal((10, 3))
    Y = np.full((10, 1), 1e200)
    net = fastnet.Network([3, 4, 1], "relu", "identity", dtype=np.float64, seed=0)
    before = [W.copy() for W in net.weights]
    with np.errstate(over="ignore"):
        O_out = reference.feedforward(X, before, net.activations)[1][-1]
        assert np.isinf(reference.mse(O_out, Y))
    with pytest.raises(fastnet.DivergenceError) as info:
        net.fit(X, Y, epochs=1, learning_rate=1e-30)
    message = str(info.value)
    assert "no learning_rate helps" in message
    assert "|Y| up to 1e+200" in message
    assert "A smaller learning_rate" not in message
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, before))


# the tiny trainer (widths <= 8); the small one (widths <= 256); the general one; the
# general one with batches of one, whose first layer's update waits for the next batch's
# product (fused_step), diverging in epoch 3; the general one with batches too large to
# fuse, which keeps W1 panel-major
@pytest.mark.parametrize("trainer, n_in, n_h, batch, lr", [
    ("tiny", 3, 4, 7, 0.5), ("small", 3, 12, 7, 0.5), ("general", 300, 4, 7, 0.5),
    ("general", 300, 40, 1, 0.015), ("general", 300, 4, 9, 0.5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_in_minibatches_restores_the_start_of_that_epoch(dtype, trainer, n_in, n_h,
                                                                    batch, lr):
    """Diverging in epoch k+1 (shuffled minibatches) leaves exactly the network a fit of k
    epochs with the same seed gives (the first k row orders are the same draws)."""
    rng = np.random.default_rng(0)
    X = 5 * rng.standard_normal((30, n_in)) / np.sqrt(n_in / 3)
    Y = rng.standard_normal((30, 2))
    a = fastnet.Network([n_in, n_h, 2], activation="identity", bias=True, dtype=dtype, seed=1)
    b = fastnet.Network([n_in, n_h, 2], activation="identity", bias=True, dtype=dtype, seed=1)
    with pytest.raises(fastnet.DivergenceError) as info:
        a.fit(X, Y, epochs=500, learning_rate=lr, batch_size=batch, seed=3)
    assert _core._last_trainer() == trainer
    k = len(info.value.history)
    assert k < 500 and (k > 0 or batch > 1)
    assert _all_finite(a)
    history_b = b.fit(X, Y, epochs=k, learning_rate=lr, batch_size=batch, seed=3)
    assert history_b == info.value.history
    assert a == b


@pytest.mark.parametrize("dtype", DTYPES)
def test_diverging_step_leaves_weights_as_they_were(dtype):
    net = fastnet.Network([2, 1], activation="identity", dtype=dtype)
    big = 1e30 if dtype == np.float32 else 1e300
    net.weights = [[[big], [big]]]
    before = [W.copy() for W in net.weights]
    with pytest.raises(fastnet.DivergenceError):
        net.step([[1e5, 1e5]], [[0.0]], learning_rate=1e10)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, before))


@pytest.mark.parametrize("trainer, n_in", [("tiny", 1), ("small", 20), ("general", 300)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_overflowing_under_a_finite_loss_is_divergence(dtype, trainer, n_in):
    """The first update overflows every weight to +inf; from then on the sigmoid is
    saturated at exactly 1 = Y, so every later epoch's loss is 0 and its gradient 0: only
    a check of the weights themselves finds the divergence, in epoch 1, and the network
    keeps its starting weights."""
    X = np.full((1, n_in), 1e10 / n_in)
    net = fastnet.Network([n_in, 1], dtype=dtype)
    net.weights = [np.full((n_in, 1), 1e-10)]
    before = [W.copy() for W in net.weights]
    # step 1 of w: -lr x dMSE/dO... = lr (1e10 / n_in) 0.106, past the largest float
    lr = 1e307 if dtype == np.float64 else 1e37
    with pytest.raises(fastnet.DivergenceError) as info:
        net.fit(X, [[1.0]], epochs=5, learning_rate=lr)
    assert _core._last_trainer() == trainer
    assert info.value.history == []
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, before))


@pytest.mark.parametrize("epochs", [1, 5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_in_the_first_epoch_with_first_layer_panel_major(dtype, epochs):
    """The general trainer with batches too large to fuse keeps W1 panel-major during the
    call and leaves the caller's W1 unwritten until the end: in the first epoch that W1 is
    the snapshot (a call of one epoch keeps no other copy of it). Diverging there leaves
    every weight exactly as it was, whether the call asked for one epoch or more. (From
    epoch 1 on the snapshot holds the panels: the (300, 4, 9) case above diverges in
    epoch 1.)"""
    rng = np.random.default_rng(5)
    X = 50 * rng.standard_normal((90, 300))
    Y = rng.standard_normal((90, 3))
    net = fastnet.Network([300, 70, 3], activation="identity", bias=True, dtype=dtype, seed=2)
    before = [W.copy() for W in net.weights + net.biases]
    with pytest.raises(fastnet.DivergenceError) as info:
        lr = 1e3 if dtype == np.float32 else 1e60
        net.fit(X, Y, epochs=epochs, learning_rate=lr, batch_size=40, shuffle=False)
    assert info.value.history == []
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, before))


# (layers, rows, batch, learning rate, trainer): identity networks whose weights grow
# until they overflow, in epochs after the first; every padded trainer and scheme
OVERFLOW_LATER_CASES = [
    ([2, 4, 1], 4, None, 1.0, "tiny"),
    ([2, 4, 1], 8, 3, 0.5, "tiny"),
    ([20, 33, 10], 64, 32, 0.5, "small"),  # the units scheme, a partial group
    ([20, 30, 20, 5], 64, 32, 0.5, "small"),  # the rows scheme
    ([64, 64, 10], 128, 32, 0.5, "small"),  # the units scheme, two groups
]


@pytest.mark.parametrize("layers, rows, batch, lr, trainer", OVERFLOW_LATER_CASES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_after_good_epochs_keeps_them_in_the_padded_trainers(
        sharing_policy, dtype, threads, layers, rows, batch, lr, trainer):
    """Weights that overflow in epoch k+1 > 1 leave the network of k epochs, as a fit of k
    epochs gives. The failed run's infinities made NaN (0 * inf) in the padded copies'
    padding lanes, which the replay's reload did not rewrite: its first epoch's check
    failed, and a float32 fit kept none of its good epochs (the tiny and small trainers).
    The replay runs on one thread whatever the team; of these cases only [64, 64, 10] on
    two threads trains as a team first (the units scheme on pages, whose team zeroes its
    own slabs: it kept the epochs, so the result had depended on the team)."""
    fastnet.set_num_threads(threads)
    sharing_policy("always")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, layers[0]))
    Y = rng.standard_normal((rows, layers[-1]))
    a = fastnet.Network(layers, activation="identity", dtype=dtype, seed=0)
    b = fastnet.Network(layers, activation="identity", dtype=dtype, seed=0)
    with pytest.raises(fastnet.DivergenceError) as info:
        a.fit(X, Y, epochs=2000, learning_rate=lr, batch_size=batch, seed=1)
    assert _core._last_trainer() == trainer
    k = len(info.value.history)
    assert 0 < k < 2000
    assert _all_finite(a)
    assert b.fit(X, Y, epochs=k, learning_rate=lr, batch_size=batch, seed=1) == \
        info.value.history
    assert a == b


@given(layers=st.one_of(
           st.lists(st.integers(1, 8), min_size=2, max_size=4),  # the tiny trainer's
           st.lists(st.sampled_from([9, 16, 17, 33, 64, 65]), min_size=2, max_size=4),
           st.tuples(st.integers(257, 280), st.integers(1, 40), st.integers(1, 12))
           .map(list)),  # the general trainer's
       rows=st.integers(1, 40), batch=st.one_of(st.none(), st.integers(1, 12)),
       dtype=st.sampled_from(DTYPES), activation=st.sampled_from(["identity", "relu"]),
       bias=st.booleans(), shuffle=st.booleans(), threads=st.sampled_from([1, 2]),
       lr=st.sampled_from([0.5, 1.0, 3.0]), seed=st.integers(0, 2**16))
def test_a_diverging_fit_equals_a_fit_of_the_epochs_it_kept(
        sharing_policy, layers, rows, batch, dtype, activation, bias, shuffle, threads, lr, seed):
    """The divergence contract as a property, in every trainer: a fit that raises
    DivergenceError after k epochs leaves the network, bit for bit, and the history that
    the same fit run one epoch a call gives up to its first DivergenceError (its orders
    drawn from one generator: the same orders); its weights are finite. (Against a fit of
    k epochs instead, a fit that wrongly kept no epoch passes: the padded trainers'
    replay did so on NaN left in its padding lanes.)"""
    fastnet.set_num_threads(threads)
    sharing_policy("always")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, layers[0]))
    Y = rng.standard_normal((rows, layers[-1]))
    kwargs = dict(learning_rate=lr, batch_size=batch, shuffle=shuffle, seed=seed)
    a = fastnet.Network(layers, activation=activation, bias=bias, dtype=dtype, seed=seed)
    b = fastnet.Network(layers, activation=activation, bias=bias, dtype=dtype, seed=seed)
    try:
        a.fit(X, Y, epochs=1000, **kwargs)
    except fastnet.DivergenceError as err:
        history = err.history
    else:
        assume(False)  # no divergence to check
    event(f"{_core._last_trainer()}, {'none' if not history else 'some'} kept")
    assert _all_finite(a)
    kwargs["seed"] = np.random.default_rng(seed)
    one_a_call = []
    while len(one_a_call) <= len(history):
        try:
            one_a_call += b.fit(X, Y, epochs=1, **kwargs)
        except fastnet.DivergenceError:
            break
    assert one_a_call == history
    assert a == b
