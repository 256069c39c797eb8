"""Threads: the results do not depend on the thread count (bit for bit), and the count is
the OpenMP runtime's, the one threadpoolctl controls. The autouse fixture in conftest
restores the count after each test."""
from __future__ import annotations

import contextlib
import os
import threading
import time

import numpy as np
import pytest
from conftest import DTYPES, FIT_CASES, PARALLEL_MIN_FLOP
from threadpoolctl import threadpool_limits

import fastnet
from fastnet import kernels


def _flop_per_batch(layers, batch):
    return 6 * batch * sum(a * b for a, b in zip(layers[:-1], layers[1:]))


def _with_threads(n, fn):
    fastnet.set_num_threads(n)
    assert fastnet.get_num_threads() == n
    return fn()


def test_set_num_threads_is_reflected_by_get_num_threads():
    for n in (1, 2, 3, 1):
        fastnet.set_num_threads(n)
        assert fastnet.get_num_threads() == n
    assert fastnet.show_config(print_out=False)["threads"] == 1


def test_threadpoolctl_limits_change_fastnet_threads():
    fastnet.set_num_threads(2)
    with threadpool_limits(1, user_api="openmp"):
        assert fastnet.get_num_threads() == 1
    assert fastnet.get_num_threads() == 2
    fastnet.set_num_threads(1)
    with threadpool_limits(2, user_api="openmp"):
        assert fastnet.get_num_threads() == 2
    assert fastnet.get_num_threads() == 1


SMALL_PARALLEL_MIN_FLOP = 5e5  # csrc/train_small.c: below this per batch, one thread trains
SMALL_UNITS_MIN_FLOP = 2e5  # the same for one hidden layer (the units scheme)
SMALL_MIN_ROWS_PER_THREAD = 16  # csrc/train_small.c


def _two_epochs(layers, batch, rows, dtype, bias, data_seed):
    """A fit of two epochs of shuffled batches (tanh, sigmoid output) on data drawn with
    ``data_seed``, as a function of no arguments returning (network, history), to run
    under different thread counts."""
    rng = np.random.default_rng(data_seed)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)

    def train():
        net = fastnet.Network(layers, activation="tanh", output_activation="sigmoid",
                              bias=bias, dtype=dtype, seed=4)
        if bias:
            net.biases = [np.full(n, 0.1) for n in layers[1:]]
        history = net.fit(X, Y, epochs=2, learning_rate=0.1, batch_size=batch, seed=9)
        return net, history

    train.data = X, Y
    return train


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_is_bitwise_identical_with_one_and_two_threads(dtype, bias, case):
    layers, batch, rows = FIT_CASES[case]
    if case == "general-deep-units":  # one barrier a batch: a team from UNITS_MIN_FLOP
        assert _flop_per_batch(layers, batch) >= UNITS_MIN_FLOP
    elif case.startswith("general"):
        assert _flop_per_batch(layers, batch) >= 3 * PARALLEL_MIN_FLOP
    else:
        assert _flop_per_batch(layers, batch) >= SMALL_PARALLEL_MIN_FLOP
        assert batch >= 2 * SMALL_MIN_ROWS_PER_THREAD
    train = _two_epochs(layers, batch, rows, dtype, bias, data_seed=0)
    net1, h1 = _with_threads(1, train)
    net2, h2 = _with_threads(2, train)
    assert h1 == h2
    for a, b in zip(net1.weights + net1.biases, net2.weights + net2.biases):
        assert np.array_equal(a, b)
    assert net1 == net2


@pytest.mark.parametrize("case", ["general-narrow-output", "general-deep-narrow-output"])
def test_narrow_output_layers_rows_give_the_same_bits_run_after_run(case):
    """A narrow output layer goes row by row on each thread with fewer barriers (its
    forward, deltas and update; train.c output_rows_team), where a missing barrier shows
    only in some runs, as a thread reading a buffer another one has begun to overwrite:
    eight two-thread fits all give the bits of one thread."""
    layers, batch, rows = FIT_CASES[case]
    train = _two_epochs(layers, batch, rows, np.float64, False, data_seed=3)
    net1, h1 = _with_threads(1, train)
    for _ in range(8):
        net2, h2 = _with_threads(2, train)
        assert h2 == h1 and net2 == net1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [3, 4])
def test_general_trainer_and_predict_teams_of_three_and_four_give_the_bits_of_one_thread(
        dtype, threads):
    """Teams that do not divide the GEMM's items evenly: the packed path's split of rows or
    columns, the panel-major W[0] (training, and predicting 2048 rows or more). Same bits
    as one thread."""
    layers, batch, rows = FIT_CASES["general-wide"]
    train = _two_epochs(layers, batch, rows, dtype, bias=True, data_seed=7)
    X = np.random.default_rng(8).standard_normal((2100, layers[0])).astype(dtype)

    def train_and_predict():
        net, history = train()
        return net, history, net.predict(X)

    from fastnet import _core

    net1, h1, p1 = _with_threads(1, train_and_predict)
    net_n, h_n, p_n = _with_threads(threads, train_and_predict)
    assert _core._last_grant() == threads  # the predict's team
    assert h1 == h_n
    assert net1 == net_n
    assert np.array_equal(p1, p_n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [3, 4])
@pytest.mark.parametrize("layers", [FIT_CASES["general-units-partial"][0], [2000, 20, 3]])
def test_general_trainer_units_scheme_teams_of_three_and_four_give_the_bits_of_one_thread(
        dtype, threads, layers):
    """The units scheme (train.c units_batch) with teams that do not divide the groups of
    hidden units evenly (4 groups: 1, 1, 2 of them, or 1 each, the last partial), with
    biases (the output layer's bias is stepped by every thread in its own copy). Same bits
    as one thread, in each of four runs: threads sharing a buffer they should not (the
    partial group's product once overlapped a neighbour's part of the GEMM buffer) differ
    in some runs only. One group of 20 units takes no team: a thread that owned none would
    only wait at the barrier and add up the parts."""
    from fastnet import _core

    _, batch, rows = FIT_CASES["general-units-partial"]
    assert _flop_per_batch(layers, batch) >= 3 * PARALLEL_MIN_FLOP
    groups = -(-layers[1] // 32)
    train = _two_epochs(layers, batch, rows, dtype, bias=True, data_seed=9)
    net1, h1 = _with_threads(1, train)
    for _ in range(4):
        net_n, h_n = _with_threads(threads, train)
        assert _core._last_grant() == min(threads, groups)
        assert h1 == h_n
        assert net1 == net_n


# csrc/internal.h: the general trainer's units scheme takes a team from this many flop a
# batch (one barrier a batch)
UNITS_MIN_FLOP = 2e5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("batch", [1, 3, 7, 12])
def test_general_trainer_units_scheme_of_short_batches_gives_the_bits_of_one_thread(
        dtype, threads, batch):
    """Batches of fewer rows than the micro-tile (SGD and its like) in the units scheme:
    each thread steps its own groups' panels of W1 in the same pass that makes the next
    batch's H (units_fused_forward), reading its own copy of a shuffled batch's rows (one
    row: in place), and makes the epoch's last step after the last batch. Teams of 2-4
    on 4 groups, the last partial (100 hidden units): the same bits as one thread, and
    as one fit a batch (the groups, and so the output layer's sums, do not depend on the
    batch size; in batches of 12, unfused, the last of 3 rows against a fit of its own,
    fused)."""
    from fastnet import _core

    layers, rows = FIT_CASES["general-units-partial"][0], 4 * batch + 3
    assert _flop_per_batch(layers, 1) >= UNITS_MIN_FLOP
    train = _two_epochs(layers, batch, rows, dtype, bias=True, data_seed=11)
    net1, h1 = _with_threads(1, train)
    net_n, h_n = _with_threads(threads, train)
    assert (_core._last_trainer(), _core._last_grant()) == ("general", threads)
    assert h1 == h_n
    assert net1 == net_n
    # the same bits as fitting one batch a call, unshuffled (the last batch: 3 rows)
    rng = np.random.default_rng(12)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)
    whole, apart = (fastnet.Network(layers, activation="tanh", bias=True, dtype=dtype, seed=3)
                    for _ in range(2))
    whole.fit(X, Y, epochs=1, learning_rate=0.2, batch_size=batch, shuffle=False)
    for start in range(0, rows, batch):
        apart.fit(X[start:start + batch], Y[start:start + batch], epochs=1, learning_rate=0.2,
                  shuffle=False)
    assert whole == apart


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("layers", [[300, 100, 40, 10], [450, 72, 24, 30, 3], [280, 300, 24, 10],
                                    [260, 1100, 20, 10]])
@pytest.mark.parametrize("batch", [1, 5, 12, 16])
def test_general_trainer_units_scheme_with_a_tail_matches_reference_on_every_team(
        dtype, threads, layers, batch):
    """Two or three hidden layers in batches of at most 16 rows: each thread its groups of
    the first hidden layer's units and their rows of W[1] (the groups' parts of layer 1's
    sums cross between the cores), every thread the layers after it in its own copy,
    trained alike (units_tail_run). Teams of 2-4 on 4 or 3 groups of 32 units (the last
    of 4 or 8), or a quarter of 300 units in whole panels (the last smaller), or 256 of
    1100 (5 groups; at most 256 for the direct products), fused steps (1, 5 rows) and
    unfused (12, 16), shuffled, with biases: the bits of one thread, and the reference's
    fit within float tolerance. 17 rows go to the team products."""
    from fastnet import _core, reference

    rows = 3 * batch + 2
    train = _two_epochs(layers, batch, rows, dtype, bias=True, data_seed=batch)
    net1, h1 = _with_threads(1, train)
    assert (_core._last_trainer(), _core._last_units()) == ("general", True)
    net_n, h_n = _with_threads(threads, train)
    assert _core._last_grant() == min(threads, 4, -(-layers[1] // 32))
    assert h1 == h_n and net1 == net_n
    X, Y = (a.astype(np.float64) for a in train.data)
    start = fastnet.Network(layers, dtype=dtype, seed=4)  # _two_epochs' first weights
    gen = np.random.default_rng(9)  # what fit draws with seed=9
    weights, biases, history = reference.fit(
        X, Y, [w.astype(np.float64) for w in start.weights], net1.activations, 2, 0.1,
        batch_size=batch, orders=[gen.permutation(rows) for _ in range(2)],
        biases=[np.full(n, 0.1, dtype).astype(np.float64) for n in layers[1:]])
    tol = 1e-11 if dtype == np.float64 else 2e-4
    for got, want in zip(net1.weights + net1.biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(h1, history, rtol=tol)
    net = fastnet.Network(layers, dtype=dtype, seed=5)
    net.fit(*(np.resize(a, (40, a.shape[1])) for a in train.data), epochs=1,
            learning_rate=0.3, batch_size=17)
    assert not _core._last_units()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [3, 4])
@pytest.mark.parametrize("case", ["small-deep", "small-units"])
def test_small_trainer_teams_of_three_and_four_give_the_bits_of_one_thread(
        sharing_policy, dtype, threads, case):
    """Teams of 3 and 4 in the small trainer: in a deep network each thread takes 16 of
    the 48 or 64 rows; with one hidden layer of 4 groups of units, groups 1, 1, 2 or one
    each. More threads than cores on a 2-core machine (the teams wait at libgomp's
    barriers), and on a bigger one at the small trainer's own spinning barrier. Same bits
    as one thread, and the call did run on that many threads."""
    from fastnet import _core

    layers, _, _ = FIT_CASES[case]
    batch = threads * SMALL_MIN_ROWS_PER_THREAD
    train = _two_epochs(layers, batch, 5 * batch + 7, dtype, bias=True, data_seed=5)
    net1, h1 = _with_threads(1, train)
    sharing_policy("always")
    net_n, h_n = _with_threads(threads, train)
    assert (_core._last_grant(), _core._last_sharing()) == (threads, "shared")
    assert h1 == h_n
    assert net1 == net_n


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_and_gradients_are_bitwise_identical_with_one_and_two_threads(dtype):
    layers = [256, 192, 64]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (300, layers[-1])).astype(dtype)
    net = fastnet.Network(layers, activation="sigmoid", bias=True, dtype=dtype, seed=2)
    net.biases = [rng.standard_normal(n) for n in layers[1:]]

    def run():
        return net.forward(X, trace=True)[1], net.gradients(X, Y), net.loss(X, Y)

    (t1, (dW1, db1), l1) = _with_threads(1, run)
    (t2, (dW2, db2), l2) = _with_threads(2, run)
    assert l1 == l2
    assert all(np.array_equal(t1[k], t2[k]) for k in t1)
    assert all(np.array_equal(a, b) for a, b in zip(dW1 + db1, dW2 + db2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_kernels_are_bitwise_identical_with_one_and_two_threads(isa, dtype):
    M, N, K = 301, 283, 517  # 2 M N K = 88 Mflop, several K blocks, edge tiles
    rng = np.random.default_rng(3)
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    H = np.tanh(rng.standard_normal((M, K))).astype(dtype)
    D = rng.standard_normal((M, N)).astype(dtype)

    def run():
        return [
            kernels.matmul(A, B),
            kernels.matmul(np.ascontiguousarray(A.T), B, trans_a=True),
            kernels.matmul(A, np.ascontiguousarray(B.T), trans_b=True),
            kernels.matmul(np.ascontiguousarray(A.T), np.ascontiguousarray(B.T), True, True),
            kernels.linear(A, B, np.ones(N, dtype), activation="sigmoid"),
            kernels.hidden_delta(D, W, H, "tanh"),
            kernels.weight_gradient(A, D),
            kernels.fused_update(np.ones((K, N), dtype), A, D, 0.5),
        ]

    one = _with_threads(1, run)
    two = _with_threads(2, run)
    for i, (a, b) in enumerate(zip(one, two)):
        assert a.dtype == dtype
        assert np.array_equal(a, b), i


# The small trainer decides by measuring whether its team shares the batches
# (csrc/train_small.c): a probe of SMALL_PROBE_BATCHES full batches shared and as many on
# thread 0 alone, when the first epoch has at least four times as many. These force the
# probe's outcome; the default ("auto") decides by the clock and is covered above.
SMALL_PROBE_BATCHES = 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["small-digits", "small-units", "small-deep"])
@pytest.mark.parametrize("policy, outcome", [("probe-alone", "alone after probe"),
                                             ("probe-shared", "shared"),
                                             ("always", "shared")])
def test_small_trainer_gives_the_same_bits_shared_alone_and_switching(
        sharing_policy, dtype, case, policy, outcome):
    """Two epochs of shuffled batches with a remainder: the probe's batches (shared, then
    on thread 0 alone), then the rest of the call on thread 0 alone (the other thread
    gone) or shared, equal bit for bit to one thread."""
    from fastnet import _core

    layers, batch, _ = FIT_CASES[case]
    rows = 5 * SMALL_PROBE_BATCHES * batch + 7
    fit = _two_epochs(layers, batch, rows, dtype, bias=True, data_seed=4)

    def train():
        return (*fit(), _core._last_sharing())

    net1, h1, ran1 = _with_threads(1, train)
    sharing_policy(policy)
    net2, h2, ran2 = _with_threads(2, train)
    assert (ran1, ran2) == ("one thread", outcome)
    assert h1 == h2
    assert net1 == net2


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["identity", "tanh", "relu"])
def test_small_trainer_units_scheme_sums_other_outputs_with_the_same_bits(
        sharing_policy, isa, dtype, output, bias):
    """One hidden layer in 4 groups of units and an output activation other than the
    sigmoid: every thread adds the groups' parts of the output layer's sums itself (in
    group order, from its own copy of the parts when shared: rows of the 12 outputs, not
    of the padded 16 or 32), then applies the activation (the identity and relu in the
    sigmoid's one pass of output_layer, over the packed parts when there is no bias; tanh
    by the generic steps). Two threads sharing every batch give the bits of one, and
    both the reference's fit, on every kernel set."""
    from fastnet import _core, reference

    layers, batch, rows = FIT_CASES["small-units"]
    rng = np.random.default_rng(8)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)

    def train():
        net = fastnet.Network(layers, activation="tanh", output_activation=output, bias=bias,
                              dtype=dtype, seed=6)
        start = [w.copy() for w in net.weights]
        history = net.fit(X, Y, epochs=2, learning_rate=0.05, batch_size=batch, shuffle=False)
        return net, history, start

    net1, h1, start = _with_threads(1, train)
    sharing_policy("always")
    net2, h2, _ = _with_threads(2, train)
    assert (_core._last_trainer(), _core._last_sharing()) == ("small", "shared")
    assert h1 == h2 and net1 == net2
    weights, biases, history = reference.fit(
        X.astype(np.float64), Y.astype(np.float64), [w.astype(np.float64) for w in start],
        net1.activations, 2, 0.05, batch_size=batch,
        biases=[np.zeros(n) for n in layers[1:]] if bias else None)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for got, want in zip(net1.weights + net1.biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


SMALL_DECISION_SECONDS = 1.0  # csrc/train_small.c: how long a probe's decision is kept


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_trainer_keeps_a_probes_decision_for_the_same_shape(sharing_policy, dtype):
    """A second call of the same shape within SMALL_DECISION_SECONDS goes alone without a
    probe, with the same bits as one thread; another batch size, a policy set again, or
    the time running out make the next call probe again."""
    from fastnet import _core

    layers, batch, _ = FIT_CASES["small-digits"]
    rows = 5 * SMALL_PROBE_BATCHES * batch + 7
    fit = _two_epochs(layers, batch, rows, dtype, bias=True, data_seed=4)
    wider = batch + 16
    other = _two_epochs(layers, wider, 5 * SMALL_PROBE_BATCHES * wider, dtype, bias=True,
                        data_seed=4)

    def train(f=fit):
        return (*f(), _core._last_sharing())

    net1, h1, _ = _with_threads(1, train)
    sharing_policy("probe-alone")
    ran = []
    for f in (fit, fit, fit, other, other, fit):
        net2, h2, outcome = _with_threads(2, lambda: train(f))
        ran.append(outcome)
        if f is fit:
            assert h1 == h2
            assert net1 == net2
    probed, kept = "alone after probe", "alone as decided before"
    assert ran == [probed, kept, kept, probed, kept, probed]
    sharing_policy("probe-alone")
    assert _with_threads(2, train)[2] == probed
    time.sleep(SMALL_DECISION_SECONDS * 1.1)
    assert _with_threads(2, train)[2] == probed
    assert _with_threads(2, train)[2] == kept


def test_small_trainer_does_not_probe_a_short_epoch(sharing_policy):
    """Fewer than 4 x SMALL_PROBE_BATCHES full batches: the team shares throughout."""
    from fastnet import _core

    layers, batch, _ = FIT_CASES["small-digits"]
    rows = (4 * SMALL_PROBE_BATCHES - 1) * batch + 5
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((rows, layers[0])), rng.uniform(0, 1, (rows, layers[-1]))
    sharing_policy("probe-alone")
    net = fastnet.Network(layers, seed=1)
    _with_threads(2, lambda: net.fit(X, Y, epochs=1, learning_rate=0.1, batch_size=batch))
    assert _core._last_sharing() == "shared"


def _identical_rows(layers, rows, dtype, target):
    """X: ``rows`` copies of one row of unit length; Y: ``target`` everywhere."""
    x = np.random.default_rng(6).standard_normal(layers[0])
    X = np.tile(x / np.linalg.norm(x), (rows, 1)).astype(dtype)
    return X, np.full((rows, layers[-1]), target, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_trainer_alone_after_probe_restores_a_diverging_epoch(sharing_policy, dtype):
    """Divergence epochs after the switch to thread 0 alone: the same DivergenceError
    history and restored start-of-epoch weights as on one thread. One linear layer on
    identical rows: each batch multiplies the error along x by 1 - 2 lr |x|^2 = -1.5."""
    layers, batch = [64, 64], 32
    rows = 5 * SMALL_PROBE_BATCHES * batch
    assert _flop_per_batch(layers, batch) >= SMALL_PARALLEL_MIN_FLOP
    X, Y = _identical_rows(layers, rows, dtype, 0)

    def train():
        net = fastnet.Network(layers, activation="identity", bias=True, dtype=dtype, seed=2)
        with pytest.raises(fastnet.DivergenceError) as info:
            net.fit(X, Y, epochs=200, learning_rate=1.25, batch_size=batch, seed=1)
        return net, info.value.history

    from fastnet import _core

    net1, h1 = _with_threads(1, train)
    sharing_policy("probe-alone")
    net2, h2 = _with_threads(2, train)
    assert _core._last_sharing() == "alone after probe"
    assert len(h1) >= 2
    assert h1 == h2
    assert net1 == net2
    assert all(np.isfinite(W).all() for W in net2.weights + net2.biases)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers, batch, ran", [
    ([64, 64, 10], 8, "shared"),      # 2.3e5 flop a batch: over the units scheme's cut
    ([64, 64, 10], 4, "one thread"),  # 1.1e5: under it
    ([40, 30, 20, 5], 32, "one thread"),  # 3.6e5, two hidden layers: the rows scheme's cut
])
def test_small_trainer_shares_batches_from_its_schemes_own_size(sharing_policy, dtype,
                                                                 layers, batch, ran):
    """The units scheme (one hidden layer) shares batches from SMALL_UNITS_MIN_FLOP, the
    rows scheme from SMALL_PARALLEL_MIN_FLOP; either way the bits of one thread."""
    from fastnet import _core

    flop = _flop_per_batch(layers, batch)
    if len(layers) == 3:
        assert (flop >= SMALL_UNITS_MIN_FLOP) == (ran == "shared")
    else:
        assert SMALL_UNITS_MIN_FLOP <= flop < SMALL_PARALLEL_MIN_FLOP
    train = _two_epochs(layers, batch, 10 * batch + 3, dtype, bias=True, data_seed=6)
    net1, h1 = _with_threads(1, train)
    sharing_policy("always")
    net2, h2 = _with_threads(2, train)
    assert _core._last_sharing() == ran
    assert h1 == h2
    assert net1 == net2


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_trainer_units_scheme_stops_every_thread_at_a_diverging_batch(sharing_policy,
                                                                          dtype):
    """One hidden layer, its units shared out: every thread computes the whole output
    layer and sees the non-finite loss itself, so all leave the batch loop together (a
    thread left waiting at a barrier would hang the call). Two identity layers on
    identical rows with a step too large: the first epoch diverges; the same error and
    restored weights as on one thread."""
    layers, batch = [64, 64, 16], 32
    rows = 5 * SMALL_PROBE_BATCHES * batch
    assert _flop_per_batch(layers, batch) >= SMALL_PARALLEL_MIN_FLOP
    X, Y = _identical_rows(layers, rows, dtype, 1)

    def train():
        net = fastnet.Network(layers, activation="identity", bias=True, dtype=dtype, seed=2)
        start = net.weights + net.biases
        with pytest.raises(fastnet.DivergenceError) as info:
            net.fit(X, Y, epochs=20, learning_rate=0.5, batch_size=batch, seed=1)
        assert all(np.array_equal(a, b) for a, b in zip(start, net.weights + net.biases))
        return net, info.value.history

    from fastnet import _core

    net1, h1 = _with_threads(1, train)
    sharing_policy("always")
    net2, h2 = _with_threads(2, train)
    assert _core._last_sharing() == "shared"
    assert h1 == h2
    assert net1 == net2


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_trainer_units_scheme_finds_weights_overflowing_under_a_finite_loss(
        sharing_policy, dtype):
    """Each thread checks its own groups' weights at the end of a shared call, and only if
    every group is finite is anything stored. W1 = 0 and rows of 1e10: the first step
    takes W1 past the largest value (to +-inf, the same in every row of a column), after
    which the hidden layer is saturated at 0 or 1, its deltas are 0 and every loss is
    finite: only the weights show the divergence. The same error, history and untouched
    weights as on one thread."""
    layers, batch = [64, 64, 10], 32
    lr = 1e31 if dtype == np.float32 else 1e300
    X = np.full((10 * batch, layers[0]), 1e10, dtype)
    Y = np.zeros((10 * batch, layers[-1]), dtype)

    def train():
        net = fastnet.Network(layers, dtype=dtype, seed=2)
        net.weights = [np.zeros((64, 64), dtype), net.weights[1]]
        start = [W.copy() for W in net.weights]
        with pytest.raises(fastnet.DivergenceError) as info:
            net.fit(X, Y, epochs=3, learning_rate=lr, batch_size=batch, shuffle=False)
        assert all(np.array_equal(a, b) for a, b in zip(start, net.weights))
        return net, info.value.history

    from fastnet import _core

    net1, h1 = _with_threads(1, train)
    sharing_policy("always")
    net2, h2 = _with_threads(2, train)
    assert _core._last_sharing() == "shared"
    assert h1 == h2 == []
    assert net1 == net2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lr", [5.0, 0.16])
@pytest.mark.parametrize("case", ["general-narrow-output", "general-deep-units"])
def test_general_trainer_units_scheme_stops_every_thread_at_a_diverging_batch(dtype, lr, case):
    """The general trainer's units scheme (one hidden layer and a narrow output, or two
    and a tail): its batches end without a barrier, and each thread sees the non-finite
    loss of the whole output layer itself, so all leave the batch loop at the same batch.
    Identity layers on identical rows, diverging in the first epochs, leave the weights
    of its start: those a fit of the completed epochs gives (layer 1's bias and the tail
    included, which each thread steps in copies of its own during the call). The same
    error, history and weights as on one thread."""
    from fastnet import _core

    layers, batch, rows = FIT_CASES[case]
    X, Y = _identical_rows(layers, rows, dtype, 1)

    def new():
        return fastnet.Network(layers, activation="identity", bias=True, dtype=dtype, seed=2)

    def train():
        net = new()
        with pytest.raises(fastnet.DivergenceError) as info:
            net.fit(X, Y, epochs=50, learning_rate=lr, batch_size=batch, seed=1)
        completed = new()
        if info.value.history:
            completed.fit(X, Y, epochs=len(info.value.history), learning_rate=lr,
                          batch_size=batch, seed=1)
        assert net == completed
        return net, info.value.history

    net1, h1 = _with_threads(1, train)
    net2, h2 = _with_threads(2, train)
    assert _core._last_team() == 2 and _core._last_units()
    assert h1 == h2
    assert net1 == net2


# A call that could use a team, on a thread pool idle for more than POOL_WARM_SECONDS,
# runs alone when it would take less, alone, than twice the pool's measured wake-up
# (csrc/dispatch.c); a call that closely follows it takes the team.
POOL_WARM_SECONDS = 2e-3


@pytest.fixture
def cold_pool():
    """The default pool policy ("auto"), and a function that lets the pool go cold."""
    from fastnet import _core

    _core._set_pool_policy("auto")
    wake = _core._pool_wake_seconds()
    yield lambda: time.sleep(50 * POOL_WARM_SECONDS)
    _core._pool_wake_seconds(wake)


def test_a_short_call_on_a_cold_pool_runs_alone_and_the_next_wakes_the_team(cold_pool):
    from fastnet import _core

    fastnet.set_num_threads(2)
    net = fastnet.Network([784, 128, 10], dtype=np.float32, seed=0)
    X = np.random.default_rng(7).standard_normal((512, 784)).astype(np.float32)
    assert 2 * 512 * (784 * 128 + 128 * 10) >= 3 * PARALLEL_MIN_FLOP
    _core._pool_wake_seconds(1.0)  # a wake-up longer than the call: alone
    cold_pool()
    alone = net.predict(X)
    assert _core._last_team() == 1
    team = net.predict(X)  # right after: a loop of calls, which wakes the pool once
    assert _core._last_team() == 2
    assert np.array_equal(alone, team)
    assert 0 < _core._pool_wake_seconds() < 1.0  # the cold start was measured
    _core._pool_wake_seconds(0.0)  # a wake-up that costs nothing: the team
    cold_pool()
    assert np.array_equal(net.predict(X), alone)
    assert _core._last_team() == 2
    _core._set_pool_policy("warm")  # for tests: the pool taken as awake
    _core._pool_wake_seconds(1.0)
    cold_pool()
    net.predict(X)
    assert _core._last_team() == 2


def test_a_one_epoch_fit_on_a_cold_pool_trains_alone_and_the_next_shares(
        cold_pool, sharing_policy):
    from fastnet import _core

    layers, batch, rows = FIT_CASES["small-digits"]
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((rows, layers[0])), rng.uniform(0, 1, (rows, layers[-1]))
    sharing_policy("always")
    fastnet.set_num_threads(2)
    _core._pool_wake_seconds(1.0)
    nets = [fastnet.Network(layers, seed=1) for _ in range(2)]
    cold_pool()
    ran = []
    for net in nets:
        net.fit(X, Y, epochs=1, learning_rate=0.1, batch_size=batch, seed=3)
        ran.append(_core._last_sharing())
    assert ran == ["one thread", "shared"]
    assert nets[0] == nets[1]


ONE_CORE_FLOP_RATE = 2.5e10  # csrc/dispatch.c: how long a call takes alone, at the least
WAKE_PAYBACK = 2.0  # csrc/dispatch.c: a team pays when it saves more than the wake-up


def test_a_long_fit_of_short_batches_on_a_cold_pool_takes_the_team(cold_pool):
    """The general trainer weighs the pool's wake-up against the whole call, not against
    one batch: each batch here would take less alone than the wake-up it would pay for,
    the whole fit much more. (Weighing a batch ran every one-epoch mnist fit on a cold pool
    alone once a wake-up of 0.8 ms had been measured, and never measured it again.) A fit
    of one batch still runs alone; both give the same bits."""
    from fastnet import _core

    layers, batch, _ = FIT_CASES["general"]
    rows, wake = 4096, 0.02
    per_row = 6 * sum(a * b for a, b in zip(layers[:-1], layers[1:]))
    assert per_row * batch / ONE_CORE_FLOP_RATE < WAKE_PAYBACK * wake
    assert per_row * rows / ONE_CORE_FLOP_RATE > 2 * WAKE_PAYBACK * wake
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((rows, layers[0])), rng.uniform(0, 1, (rows, layers[-1]))
    fastnet.set_num_threads(2)
    teams, nets = [], []
    for n in (rows, batch):
        net = fastnet.Network(layers, seed=2)
        _core._pool_wake_seconds(wake)
        cold_pool()
        net.fit(X[:n], Y[:n], epochs=1, learning_rate=0.1, batch_size=batch, shuffle=False)
        teams.append(_core._last_team())
        nets.append(net)
    assert teams == [2, 1]
    fastnet.set_num_threads(1)
    again = fastnet.Network(layers, seed=2)
    again.fit(X, Y, epochs=1, learning_rate=0.1, batch_size=batch, shuffle=False)
    assert again == nets[0]


def test_fits_from_several_python_threads_end_as_fits_one_after_another():
    """C trains with the GIL released, so a thread pool can train several networks at
    once: each ends bit for bit as when trained alone (the calls share the cores, which
    changes who computes what, never a result)."""
    from concurrent.futures import ThreadPoolExecutor

    from fastnet import _core

    jobs = [_two_epochs(*FIT_CASES[case], dtype, False, data_seed=i)
            for i, case in enumerate(FIT_CASES) for dtype in DTYPES]

    def train(job):
        fastnet.set_num_threads(2)  # OpenMP's count is the calling thread's own
        return job()

    alone = [train(job) for job in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(train, jobs))
    for (net1, h1), (net2, h2) in zip(alone, together):
        assert h1 == h2
        assert net1 == net2
    assert _core._threads_busy() == 0


@contextlib.contextmanager
def _a_team_running_in_another_thread():
    """Starts a fit that runs one C call (no shuffling) on a team of 2 for about half a
    second in another Python thread, and yields once that team holds its cores; then
    waits for it to end. Yields a function telling whether the team still holds them."""
    from fastnet import _core

    layers, batch, rows = FIT_CASES["general"]
    X = np.random.default_rng(6).standard_normal((rows, layers[0])).astype(np.float32)
    Y = np.full((rows, layers[-1]), 0.5, np.float32)
    net = fastnet.Network(layers, seed=0)

    def long_fit():
        fastnet.set_num_threads(2)
        net.fit(X, Y, epochs=400, learning_rate=0.01, batch_size=batch, shuffle=False)

    with _one_call_per_fit():
        worker = threading.Thread(target=long_fit)
        worker.start()
        deadline = time.monotonic() + 30
        while _core._threads_busy() < 2 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        try:
            assert _core._threads_busy() == 2, "the other thread's fit did not start its team"
            yield lambda: _core._threads_busy() == 2
        finally:
            worker.join()


@contextlib.contextmanager
def _one_call_per_fit():
    """A fit makes one C call however long it runs (it is cut into calls of a tenth of a
    second so that Ctrl-C can stop it): for tests of what one call does."""
    from fastnet import network

    seconds = network._SECONDS_PER_CALL
    network._SECONDS_PER_CALL = 1e9
    try:
        yield
    finally:
        network._SECONDS_PER_CALL = seconds


def test_a_call_while_another_threads_team_runs_gets_the_cores_left():
    """A call that starts while another Python thread's call runs a team on every core gets
    one thread (its own), not a team of its own: two 2-thread digits fits on 2 cores ran
    5-6x slower than two 1-thread fits. A call alone keeps its team."""
    from fastnet import _core

    fastnet.set_num_threads(2)
    cores = len(os.sched_getaffinity(0))  # what OpenMP counts as the cores (omp_get_num_procs)
    A = np.random.default_rng(5).standard_normal((256, 256)).astype(np.float32)
    assert 2 * 256**3 >= 3 * PARALLEL_MIN_FLOP
    alone = kernels.matmul(A, A)
    assert _core._last_grant() == 2
    small = _two_epochs(*FIT_CASES["small-digits"], np.float32, False, data_seed=1)
    small_alone = small()
    assert _core._last_sharing() == "shared"
    with _a_team_running_in_another_thread() as team_holds_its_cores:
        shared = kernels.matmul(A, A)
        granted = _core._last_grant()
        small_shared = small()
        small_ran = _core._last_sharing()
        assert team_holds_its_cores(), "the other fit ended during these calls"
    assert granted == min(2, max(cores - 2, 1))  # 1 on two cores
    assert small_ran == ("one thread" if cores <= 3 else "shared")
    assert np.array_equal(shared, alone)
    assert small_shared[1] == small_alone[1] and small_shared[0] == small_alone[0]
    assert _core._threads_busy() == 0
    kernels.matmul(A, A)
    assert _core._last_grant() == 2


@pytest.mark.parametrize("case", ["general", "small-digits"])
def test_no_call_runs_more_threads_than_the_cores(case, capsys):
    """Asked for more threads than the cores, a call runs on the cores (a team larger
    waits for its own threads' time slices at every barrier: on 2 cores, 3 threads made
    [50, 70, 3] 7x slower than 2), with the same bits. The cores are what the package
    counted at import (the affinity mask, within the CPU quota: test_cpus.py), and
    _set_cores changes them, as a quota of one CPU would. The autouse fixture lifts the
    limit for the other tests; here it is the default."""
    from fastnet import _core

    _core._set_team_limit(0)
    cores = _core.cores()
    assert cores == fastnet._cpus.usable_cpus() == fastnet.show_config(False)["cores"]
    train = _two_epochs(*FIT_CASES[case], np.float32, True, data_seed=3)
    X = np.random.default_rng(4).standard_normal((2100, FIT_CASES[case][0][0]))
    net1, h1 = _with_threads(1, train)
    p1 = net1.predict(X)
    for asked, limit in ((cores + 2, cores), (2, 1)):
        if limit == 1:
            _core._set_cores(1)
        net_n, h_n = _with_threads(asked, train)
        assert (_core._last_grant(), h_n) == (limit, h1)
        assert net_n == net1
        assert np.array_equal(net_n.predict(X), p1)
        assert _core._last_grant() == limit
    fastnet.show_config()
    assert "threads: 2 (a call runs at most 1: the CPUs this process may use)" in (
        capsys.readouterr().out)


@contextlib.contextmanager
def _every_thread_on_one_cpu():
    """Every thread of the process on one CPU of its mask (threads started meanwhile
    inherit it), then every thread back on the whole mask: as a team of two finds itself
    after NumPy's OpenBLAS, whose threads spin for about 0.1 s after a call, took the
    other CPU (dispatch.c, fn_team_barrier)."""
    mask = os.sched_getaffinity(0)
    cpu = min(mask)

    def set_all(cpus):
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), cpus)

    set_all({cpu})
    try:
        yield
    finally:
        set_all(mask)


BARRIER_CASES = ["general-narrow-output", "small-digits", "small-deep"]


@pytest.mark.parametrize("case", BARRIER_CASES)
def test_a_team_on_one_cpu_takes_turns_at_its_barriers_with_the_same_bits(case,
                                                                         sharing_policy):
    """A team of two with both threads on one CPU: a thread that waits at the batch
    barrier for the other, on its own CPU, yields the CPU to it (spinning, it held the
    CPU the other needed for a whole time slice at every batch: a one-epoch mnist-sized
    fit took 58-66 ms against 13 on one thread). Every trainer's team that waits at that
    barrier (the general trainer's units scheme, the small trainer's two schemes) takes
    turns so, and trains the bits of one thread. The cores stay counted as two
    (_set_cores), so the team is not capped to the one CPU."""
    from fastnet import _core

    sharing_policy("always")  # the small trainer shares without timing a line's trip
    train = _two_epochs(*FIT_CASES[case], np.float32, True, data_seed=11)
    net1, h1 = _with_threads(1, train)
    _core._set_cores(2)
    _, yields = _core._barrier_waits()
    with _every_thread_on_one_cpu():
        net2, h2 = _with_threads(2, train)
        grant = _core._last_grant()
    assert grant == 2
    assert _core._barrier_waits()[1] > yields
    assert h2 == h1
    assert net2 == net1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", BARRIER_CASES)
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_teams_whose_every_barrier_wait_sleeps_give_the_bits_of_one_thread(case, threads,
                                                                            dtype,
                                                                            sharing_policy):
    """Every wait at the batch barrier sleeps on a futex (its polls before sleeping set
    to none) and the thread that passes wakes the sleepers: teams of 2-4 (counted as
    fitting the cores, so the barrier is the trainers' own) train the bits of one thread,
    four times over, without a lost wake-up (a hang)."""
    from fastnet import _core

    sharing_policy("always")
    train = _two_epochs(*FIT_CASES[case], dtype, True, data_seed=12)
    net1, h1 = _with_threads(1, train)
    _core._set_cores(4)
    sleeps, _ = _core._barrier_waits()
    _core._set_barrier_polls(0)
    try:
        for _ in range(4):
            net_n, h_n = _with_threads(threads, train)
            assert _core._last_grant() > 1  # a team (the small trainer's, up to its groups)
            assert h_n == h1
            assert net_n == net1
    finally:
        _core._set_barrier_polls(-1)
    assert _core._barrier_waits()[0] > sleeps


def test_a_small_fit_gives_its_team_cores_to_calls_from_other_threads(sharing_policy):
    """A small trainer's team that shares its batches leaves its other cores to calls that
    other Python threads start while it trains, when there are not cores for all: it
    finishes alone (its other threads leave at the end of a batch), with the same bits."""
    from fastnet import _core

    cores = len(os.sched_getaffinity(0))
    sharing_policy("probe-shared")  # the team shares, whatever the host's line trip
    layers, batch, _ = FIT_CASES["small-digits"]
    rng = np.random.default_rng(12)
    X = rng.standard_normal((640, layers[0])).astype(np.float32)  # 20 batches: a probe
    Y = rng.uniform(0, 1, (640, layers[-1])).astype(np.float32)

    def train(out, epochs=2000):  # one C call of about half a second
        fastnet.set_num_threads(2)
        net = fastnet.Network(layers, seed=2)
        out["history"] = net.fit(X, Y, epochs=epochs, learning_rate=0.1, batch_size=batch,
                                 seed=5)
        out["net"], out["ran"] = net, _core._last_sharing()

    alone, together = {}, {}
    with _one_call_per_fit():
        train(alone)
        assert alone["ran"] == "shared"
        worker = threading.Thread(target=train, args=(together,))
        worker.start()
        deadline = time.monotonic() + 30
        while _core._threads_busy() < 2 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        busy, calls = _core._threads_busy(), 0
        while worker.is_alive():  # calls from this thread meanwhile: granted one thread each
            train({}, epochs=20)
            calls += 1
        worker.join()
    assert busy == 2 and calls > 1, "the shared fit was not running its team"
    assert together["ran"] == ("alone while others ran" if cores < 3 else "shared")
    assert together["history"] == alone["history"]
    assert together["net"] == alone["net"]
    assert _core._threads_busy() == 0


def test_fits_started_at_random_moments_in_two_python_threads_end_as_fits_alone():
    """Two Python threads each start a 4-thread fit of a small network with one hidden
    layer (the small trainer's units scheme) a few milliseconds apart, so the first call's
    team gives its other cores away in the middle of its batches: every fit returns, with
    the bits of the same fit alone. The team's other threads had read thread 0's decision
    to give way as a flag one batch too early (a single barrier a batch): the call summed
    a batch without their groups and waited forever for them (a hang within a few
    rounds)."""
    layers, batch = [50, 70, 3], 17
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (87, layers[0])).astype(np.float32)
    Y = rng.uniform(0, 1, (87, layers[-1])).astype(np.float32)

    def fit(epochs, out):
        fastnet.set_num_threads(4)
        net = fastnet.Network(layers, seed=1)
        history = net.fit(X, Y, epochs, 0.1, batch_size=batch, shuffle=False)
        out[epochs] = (history, net)

    alone = {}
    for epochs in (200, 50):
        fit(epochs, alone)
    for _ in range(40):
        together = {}
        first = threading.Thread(target=fit, args=(200, together), daemon=True)
        second = threading.Thread(target=fit, args=(50, together), daemon=True)
        first.start()
        time.sleep(rng.uniform(0, 0.004))
        second.start()
        first.join(30)
        second.join(30)
        assert not first.is_alive() and not second.is_alive(), "a fit never returned"
        for epochs in (200, 50):
            assert together[epochs][0] == alone[epochs][0]
            assert together[epochs][1] == alone[epochs][1]


def test_a_child_forked_while_a_thread_trains_counts_no_busy_threads():
    """A process forked while another thread's call runs its team: the child has only the
    forking thread, so none of the cores are taken (or every call of the child would get a
    reduced team)."""
    from fastnet import _core

    with _a_team_running_in_another_thread() as team_holds_its_cores:
        pid = os.fork()
        if pid == 0:  # the child: report and leave at once (no OpenMP, no cleanup)
            os._exit(10 + _core._threads_busy())
        held = team_holds_its_cores()
        _, status = os.waitpid(pid, 0)
    assert held, "the other fit ended before the fork"
    assert os.WEXITSTATUS(status) == 10
    assert _core._threads_busy() == 0


_INSIDE_A_PARALLEL_REGION = r'''
import numpy as np
import fastnet
from fastnet import _core, kernels

rng = np.random.default_rng(0)
X = rng.standard_normal((640, 300)).astype(np.float32)
Y = rng.uniform(0, 1, (640, 10)).astype(np.float32)
W = rng.standard_normal((300, 128)).astype(np.float32)
D = rng.standard_normal((640, 128)).astype(np.float32)


def fit(layers, batch):
    net = fastnet.Network(layers, seed=1)
    history = net.fit(X[:, :layers[0]], Y, epochs=2, learning_rate=0.1, batch_size=batch,
                      seed=2)
    return history, net.weights, net.predict(X[:, :layers[0]]), net.gradients(X[:, :layers[0]], Y)


CALLS = {
    "small trainer": lambda: fit([64, 64, 10], 32),
    "general trainer": lambda: fit([300, 128, 10], 64),
    "matmul": lambda: kernels.matmul(X, W),
    "linear": lambda: kernels.linear(X, W, activation="sigmoid"),
    "output_delta": lambda: kernels.output_delta(Y, Y[::-1].copy(), "sigmoid"),
    "bias_gradient": lambda: kernels.bias_gradient(D),
    "fused_update": lambda: kernels.fused_update(W, X, D, 0.1),
}


def same(a, b):
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


fastnet.set_num_threads(2)
for name, call in CALLS.items():
    outside = call()
    inside = []
    _core._call_in_parallel_region(lambda: inside.append(call()), 2)
    assert len(inside) == 2 and all(same(r, outside) for r in inside), name
print("ok")
'''


def test_calls_from_inside_the_callers_own_parallel_region_run_as_outside():
    """fastnet called from the threads of the caller's own OpenMP parallel region (a
    Cython prange or numba loop taking the GIL to call it): each call runs on a team of its
    own (of one), with the same results as outside. The kernels' worksharing used to bind
    to the caller's team, whose other threads were not in the same call: it hung, or
    crashed. In a child process, so that a hang fails the test instead of the suite."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _INSIDE_A_PARALLEL_REGION], timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_child_forked_after_a_team_ran_trains_on_one_thread_with_the_same_bits():
    """GNU OpenMP's thread pool does not survive fork: in a process forked after a team had
    run (multiprocessing's default start method on Linux), the next team waited for the
    parent's threads forever. There every call runs on its calling thread, with the same
    results, and get_num_threads says 1."""
    import signal

    from fastnet import _core

    fastnet.set_num_threads(2)
    jobs = [_two_epochs(*FIT_CASES[case], np.float32, True, data_seed=3)
            for case in ("general", "small-digits")]
    expected = [job() for job in jobs]
    assert _core._last_grant() == 2  # a team ran in this process
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if every fit matched on one thread
        status = 1
        try:
            fastnet.set_num_threads(2)
            got = [job() for job in jobs]
            if fastnet.get_num_threads() == 1 and all(
                    g[0] == e[0] and g[1] == e[1] for g, e in zip(got, expected)):
                status = 0
        finally:
            os._exit(status)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if not done:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done, "the forked child hung"
    assert os.WEXITSTATUS(status) == 0
    assert fastnet.get_num_threads() == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("outputs", [10, 24, 31, 32])
def test_one_hidden_layer_takes_the_units_scheme_below_32_outputs_with_every_kernel_set(
        isa, dtype, outputs):
    """The units scheme for one hidden layer and fewer than 32 outputs, whichever
    micro-kernels run (it was "narrower than the micro-tile": with AVX2's float64 kernels
    or the portable ones, mnist's 10 outputs went to the team products, and SGD ran on
    one thread). One row a batch: two threads share it, with the bits of one."""
    from fastnet import _core

    layers = [300, 128, outputs]
    assert _flop_per_batch(layers, 1) >= UNITS_MIN_FLOP  # worth a team in one row
    train = _two_epochs(layers, 1, 9, dtype, bias=True, data_seed=outputs)
    net1, h1 = _with_threads(1, train)
    net2, h2 = _with_threads(2, train)
    units = outputs < 32
    assert (_core._last_trainer(), _core._last_units()) == ("general", units)
    assert _core._last_grant() == (2 if units else 1)
    assert h1 == h2 and net1 == net2
