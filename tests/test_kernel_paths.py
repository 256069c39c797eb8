"""The GEMM's code paths that depend on the problem's size, each against the float64 product
and across thread counts: B read in place or packed (B^T, a partial last column panel),
op(A) small enough for column-panel-major items or large enough for row-block-major items,
rows split finer than mc when items are scarce, the packed path of wide products (both
operands copied into micro-panels); and the C finiteness check on arrays larger than its
chunks."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    BLOCKING,
    DTYPES,
    PARALLEL_MIN_FLOP,
    as64,
    assert_within,
    check_hidden_delta,
    check_linear,
    eps,
    product_bound,
    tiny,
)
from hypothesis import given
from hypothesis import strategies as st

import fastnet
from fastnet import _core, kernels, reference

A_RESIDENT_BYTES = 512 * 1024  # csrc/gemm.c FN_A_RESIDENT_BYTES
SMALL_MAC = 32768  # csrc/internal.h FN_SMALL_MAC: one thread below this many multiply-adds
PACK_MIN_N = 256  # csrc/gemm.c FN_PACK_MIN_N: the packed path's fewest columns (and 2 mr rows)
# csrc/gemm.c FN_K_SUPER: K is walked in super-blocks of this many (doubles: one K block)
K_SUPER = {"float32": 1024, "float64": 256}
B_BLOCK_BYTES = 4 << 20  # csrc/gemm.c FN_B_BLOCK_BYTES: the packed path's block of op(B)


def _check_product(M, N, K, trans_a, trans_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    results = []
    for threads in (1, 2):
        fastnet.set_num_threads(threads)
        results.append(kernels.matmul(A, B, trans_a, trans_b))
    opA = as64(A).T if trans_a else as64(A)
    opB = as64(B).T if trans_b else as64(B)
    assert np.array_equal(results[0], results[1]), "1 and 2 threads differ"
    assert_within(results[1], opA @ opB, product_bound(opA, opB, K, dtype), "op(A) op(B)")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_large_op_a_runs_row_blocks_outermost(isa, dtype, trans_a, trans_b):
    M, N, K = 700, 200, 300  # op(A) is 700 x 300: larger than the L2 budget
    assert M * K * np.dtype(dtype).itemsize > A_RESIDENT_BYTES
    _check_product(M, N, K, trans_a, trans_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_small_op_a_runs_column_panels_outermost(isa, dtype, trans_a, trans_b):
    M, N, K = 64, 200, 130  # a minibatch product: op(A) stays in L2
    assert M * K * np.dtype(dtype).itemsize <= A_RESIDENT_BYTES
    _check_product(M, N, K, trans_a, trans_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [10, 33, 64])  # one partial panel; full + partial; full only
def test_few_items_split_rows_finer_than_mc(isa, dtype, N):
    """The output layer's products have one or two column panels: rows are split finer."""
    _check_product(130, N, 100, False, False, dtype)
    _check_product(130, N, 100, True, False, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("last_group", ["whole", "partial"])
def test_narrow_products_share_out_row_groups(isa, dtype, last_group):
    """Products narrower than the micro-tile with K in one block (the output layer's)
    take the direct path; above the one-thread size each thread of the team takes a run of
    mr-row groups. Equal on 1 and 2 threads and within the product's bound, with every
    transpose and with the fused epilogues (bias + activation, activation derivative)."""
    blocking = BLOCKING[isa][np.dtype(dtype).name]
    K, mr = blocking["kc"], blocking["mr"]
    for N in sorted(n for n in {1, 10, blocking["nr"] - 1} if n < blocking["nr"]):
        # enough rows for a team of two (kernels run alone below PARALLEL_MIN_FLOP)
        M = (-(-PARALLEL_MIN_FLOP // (2 * N * K)) // mr + 1) * mr
        M += 0 if last_group == "whole" else mr // 2 + 1
        assert M * N * K > SMALL_MAC and 2 * M * N * K >= PARALLEL_MIN_FLOP
        for trans_a in (False, True):
            for trans_b in (False, True):
                _check_product(M, N, K, trans_a, trans_b, dtype, seed=N)
        rng = np.random.default_rng(N)
        X = rng.standard_normal((M, K)).astype(dtype)
        W = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(dtype)
        b = rng.standard_normal(N).astype(dtype)
        H = rng.uniform(0, 1, (M, N)).astype(dtype)
        got = {}
        for threads in (1, 2):
            fastnet.set_num_threads(threads)
            got[threads] = (kernels.linear(X, W, b, activation="sigmoid"),
                            kernels.hidden_delta(X, W.T, H, "sigmoid"))
        assert all(np.array_equal(a, c) for a, c in zip(got[1], got[2])), "threads differ"
        check_linear(X, W, b, "sigmoid", 0.0, dtype, got[2][0])
        check_hidden_delta(X, W.T, H, "sigmoid", dtype, got[2][1])


EDGE_GROUP = 8  # csrc/gemm.c FN_EDGE_GROUP: column panels per item when M < mr


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_fewer_rows_than_the_micro_tile(isa, dtype, trans_a, trans_b):
    """C with 1 .. mr - 1 rows (predicting a few examples, batches smaller than mr): the
    edge kernel runs only those rows (4, 2, 1 at a time), against several column panels
    at once when B is read in place. Whole groups of panels, a short group, a partial last
    panel, a single partial panel; K over two blocks."""
    blocking = BLOCKING[isa][np.dtype(dtype).name]
    mr, nr, kc = blocking["mr"], blocking["nr"], blocking["kc"]
    for N in (EDGE_GROUP * nr, (EDGE_GROUP + 3) * nr + 3, 2 * EDGE_GROUP * nr + nr, nr - 1):
        for M in range(1, mr):
            _check_product(M, N, kc + 9, trans_a, trans_b, dtype, seed=M)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_a_last_panel_of_at_most_half_the_columns(isa, dtype, trans_a, trans_b):
    """A partial last column panel of at most nr / 2 columns goes through the edge kernel
    at half width, for full and short row panels; wider ones through the micro-kernel."""
    blocking = BLOCKING[isa][np.dtype(dtype).name]
    mr, nr, kc = blocking["mr"], blocking["nr"], blocking["kc"]
    for N in (1, nr // 2, nr + 1, nr + nr // 2, nr + nr // 2 + 1, 2 * nr - 1):
        for M in (mr, mr + 3, 2 * mr + 1, 3):
            _check_product(M, N, kc + 9, trans_a, trans_b, dtype, seed=N + M)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [[64, 64, 10], [300, 150, 10], [300, 260, 10]])
def test_a_rows_output_does_not_depend_on_the_batch_it_is_in(isa, dtype, layers):
    """Every path sums each element over K in the same order, so a row predicted alone
    (the small path's short row groups, the edge kernel) has the same bits as in a
    batch of full micro-tiles: [64, 64, 10] takes the small path up to 8 rows, [300, 150,
    10] the general one with K over two blocks, [300, 260, 10] the packed path for a
    batch of 2 mr rows or more."""
    rng = np.random.default_rng(5)
    net = fastnet.Network(layers, dtype=dtype, seed=4)
    X = rng.standard_normal((67, layers[0])).astype(dtype)
    whole = net.predict(X)
    for k in range(1, 12):
        assert np.array_equal(net.predict(X[:k]), whole[:k]), k
    for i in (5, 66):
        assert np.array_equal(net.predict(X[i:i + 1]), whole[i:i + 1]), i


FORWARD_PANEL_ROWS = 2048  # csrc/train.c FN_FORWARD_PANEL_ROWS: predict reads W[0] panel-major


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [[300, 45, 3], [300, 300, 5], [260, 33, 7, 2],
                                    [70, 40, 5]])
def test_predicting_many_rows_from_w0s_panels_gives_the_bits_of_fewer(isa, dtype, layers):
    """From FORWARD_PANEL_ROWS rows on, the feedforward reads W[0] from a panel-major copy
    when K spans several blocks and W[0] is at least a panel wide (a partial last panel;
    the packed path; one whole panel and a column, then two more layers; and K in one
    block, which reads W[0] in place): each row has the bits it has when predicted among
    fewer rows (W[0] read in place), and the result is the reference's within its bound."""
    rng = np.random.default_rng(3)
    net = fastnet.Network(layers, activation="tanh", output_activation="sigmoid", bias=True,
                          dtype=dtype, seed=2)
    net.biases = [rng.uniform(-0.5, 0.5, n) for n in layers[1:]]
    X = rng.standard_normal((FORWARD_PANEL_ROWS + 37, layers[0])).astype(dtype)
    whole = net.predict(X)
    parts = np.concatenate([net.predict(X[:1000]), net.predict(X[1000:2000]),
                            net.predict(X[2000:])])
    assert np.array_equal(whole, parts)
    _, post = reference.feedforward(as64(X), [as64(W) for W in net.weights],
                                    ["tanh"] * (len(layers) - 2) + ["sigmoid"],
                                    [as64(b) for b in net.biases])
    assert_within(whole, post[-1], 64 * max(layers) * eps(dtype), "predict")


FORWARD_CHUNK_ROWS = 4096  # csrc/train.c FN_FORWARD_CHUNK_ROWS: the feedforward's chunks


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [[300, 45, 3], [20, 7, 9, 2]])
def test_feedforward_in_chunks_of_rows_gives_every_output_the_bits_of_one_call(isa, dtype,
                                                                              layers):
    """The feedforward takes FORWARD_CHUNK_ROWS rows at a time, the hidden outputs nobody
    asked for in scratch of one chunk: over two chunks and a short third, predict gives
    each row the bits it has predicted alone, the traced forward the same outputs and
    every layer's pre- and post-activations for all rows (written chunk by chunk into
    the caller's arrays), and the reference's values within its bound."""
    rng = np.random.default_rng(11)
    net = fastnet.Network(layers, activation="tanh", output_activation="sigmoid", bias=True,
                          dtype=dtype, seed=6)
    net.biases = [rng.uniform(-0.5, 0.5, n) for n in layers[1:]]
    n = 2 * FORWARD_CHUNK_ROWS + 29
    X = rng.standard_normal((n, layers[0])).astype(dtype)
    whole = net.predict(X)
    for i in (0, FORWARD_CHUNK_ROWS - 1, FORWARD_CHUNK_ROWS, n - 1):
        assert np.array_equal(net.predict(X[i:i + 1]), whole[i:i + 1]), i
    out, trace = net.forward(X, trace=True)
    assert np.array_equal(out, whole)
    pre, post = reference.feedforward(as64(X), [as64(W) for W in net.weights],
                                      ["tanh"] * (len(layers) - 2) + ["sigmoid"],
                                      [as64(b) for b in net.biases])
    names = [f"H{i + 1}" if len(layers) > 3 else "H" for i in range(len(layers) - 2)] + ["O"]
    for name, want_in, want_out in zip(names, pre, post):
        bound = 64 * max(layers) * eps(dtype)
        assert_within(trace[f"{name}_in"], want_in, bound * (1 + np.abs(want_in).max()), name)
        assert_within(trace[f"{name}_out"], want_out, bound, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_b_with_a_power_of_two_leading_dimension(isa, dtype):
    """B's rows read in place with ldb = 1024 (every row in the same cache set)."""
    _check_product(96, 1024, 300, False, False, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_packed_path_at_the_edges_of_its_panels(isa, dtype, trans_a, trans_b):
    """Products of at least PACK_MIN_N columns and 2 mr rows copy op(A) into mr-row
    micro-panels and op(B) into nr-column panels: whole panels, a partial last one wider
    and narrower than half a panel, the fewest rows the path takes, a partial last row
    group, K in one short block and over two. Two threads split the rows (M > N) or the
    columns (N > M) between them; either way the bits of one thread."""
    blocking = BLOCKING[isa][np.dtype(dtype).name]
    mr, nr, kc = blocking["mr"], blocking["nr"], blocking["kc"]
    for N in (PACK_MIN_N, PACK_MIN_N + nr // 2, PACK_MIN_N + nr - 1, 3 * PACK_MIN_N + 1):
        for M in (2 * mr, 2 * mr + 3, 5 * mr + 1):
            _check_product(M, N, kc + 9, trans_a, trans_b, dtype, seed=M + N)
    _check_product(2 * mr + 1, PACK_MIN_N + 1, 7, trans_a, trans_b, dtype)
    _check_product(3 * PACK_MIN_N + 5, PACK_MIN_N + 2, kc + 9, trans_a, trans_b, dtype)


@pytest.fixture
def forced_share():
    """Sets thread 0's share of a product the packed path splits by speed; restores the
    measured split after."""
    from fastnet import _core

    yield _core._force_gemm_share
    _core._force_gemm_share(-1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_packed_path_split_anywhere_gives_the_bits_of_one_thread(isa, dtype, trans_a, trans_b,
                                                                  forced_share):
    """Two threads split a packed product by their measured speeds (one item each, of rows
    when M > N, of columns when N > M, or runs of row blocks), and a narrower product
    whose large op(A) is streamed row block by row block: wherever the split falls,
    nothing to thread 0, everything to it, or a partial panel on either side, each tile is
    computed as on one thread. K in one block and over two super-blocks. A share of more
    rows than a packed block holds goes in pieces (whole, its copy ran past the thread's
    buffer)."""
    from fastnet import _core

    blocking = BLOCKING[isa][np.dtype(dtype).name]
    mr, nr, kc = blocking["mr"], blocking["nr"], blocking["kc"]
    ks = K_SUPER[np.dtype(dtype).name]
    rows = _core.l2_bytes() // 2 // (ks * np.dtype(dtype).itemsize) // mr * mr
    # a packed block's rows at K = 40 (the super-block: K): two blocks of rows, one a
    # thread, so a share above one half holds more rows than a block
    rows_40 = _core.l2_bytes() // 2 // (40 * np.dtype(dtype).itemsize) // mr * mr
    shapes = [(5 * mr + 3, PACK_MIN_N + nr // 2 + 1, kc + 9),  # columns split
              (3 * PACK_MIN_N + 5, PACK_MIN_N + 2, 7),  # rows split
              (2 * rows_40 - 3 * mr + 1, PACK_MIN_N + 2, 40),  # rows split, a share > a block
              (2 * mr + 1, 2 * PACK_MIN_N + 3, ks + 37),  # columns, two super-blocks
              (2 * max(rows, blocking["mc"]) + mr + 3, PACK_MIN_N + 11, ks + 37),  # row blocks
              (3001, nr + 5, kc + 44)]  # narrower: op(A) streamed, runs of row blocks
    for share in (0.0, 0.13, 0.5, 0.71, 1.0):
        forced_share(share)
        for M, N, K in shapes:
            _check_product(M, N, K, trans_a, trans_b, dtype, seed=M + N + K)


def test_training_with_products_split_by_speed_gives_the_bits_of_one_thread(forced_share):
    """The general trainer's packed products (a 260-wide hidden layer) on two threads,
    with the split measured from each product's timings, or forced far from even: the
    weights of one thread."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((96, 40))
    Y = rng.uniform(0, 1, (96, 3))
    results = {}
    for threads, share in ((1, -1.0), (2, -1.0), (2, 0.2), (2, 0.85)):
        forced_share(share)
        fastnet.set_num_threads(threads)
        net = fastnet.Network([40, 260, 270, 3], dtype=np.float64, seed=3)
        net.fit(X, Y, 3, 0.05, batch_size=32, shuffle=True, seed=5)
        results[(threads, share)] = net.weights
    for key, weights in results.items():
        assert all(np.array_equal(a, b) for a, b in zip(weights, results[(1, -1.0)])), key


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_packed_path_over_super_blocks_and_row_blocks(isa, dtype, trans_a, trans_b):
    """K over two super-blocks (the packed op(A) holds one at a time), and M over two row
    blocks and a partial third (a row block: half of L2 over a super-block's depth, at
    least mc rows; csrc/gemm.c packed_rows)."""
    from fastnet import _core

    blocking = BLOCKING[isa][np.dtype(dtype).name]
    mr, ks = blocking["mr"], K_SUPER[np.dtype(dtype).name]
    rows = _core.l2_bytes() // 2 // (ks * np.dtype(dtype).itemsize) // mr * mr
    M = 2 * max(rows, blocking["mc"]) + mr + 3
    _check_product(M, PACK_MIN_N + 11, ks + 37, trans_a, trans_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_packed_path_block_of_b_over_row_blocks(isa, dtype, trans_a, trans_b):
    """A thread with two row blocks or more copies op(B) once per block of columns and
    super-block and runs each row block against it (csrc/gemm.c, block mode): two blocks
    of columns (the last with a partial panel), two super-blocks, three row blocks. The
    rows of one row block computed alone (one row block: no block mode) have the same
    bits."""
    blocking = BLOCKING[isa][np.dtype(dtype).name]
    mr, nr, ks = blocking["mr"], blocking["nr"], K_SUPER[np.dtype(dtype).name]
    size = np.dtype(dtype).itemsize
    rows = max(_core.l2_bytes() // 2 // (ks * size) // mr * mr, blocking["mc"])
    cols = max(B_BLOCK_BYTES // (ks * size * nr), 1) * nr
    M, N, K = 2 * rows + mr + 3, cols + nr + 5, ks + 37
    _check_product(M, N, K, trans_a, trans_b, dtype, seed=3)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    whole = kernels.matmul(A, B, trans_a, trans_b)
    m = 2 * mr
    part = kernels.matmul(A[:, :m] if trans_a else A[:m], B, trans_a, trans_b)
    assert np.array_equal(whole[:m], part)


@pytest.mark.parametrize("dtype", DTYPES)
def test_packed_path_epilogues(isa, dtype):
    """The fused epilogues on the packed path: act(X W + b), (delta W^T) * act'(H) and
    W - lr A^T delta, against the reference, on 1 and 2 threads."""
    blocking = BLOCKING[isa][np.dtype(dtype).name]
    mr, nr, kc = blocking["mr"], blocking["nr"], blocking["kc"]
    M, N, K = 4 * mr + 5, PACK_MIN_N + nr // 2 + 1, kc + 9
    rng = np.random.default_rng(11)
    X = rng.standard_normal((M, K)).astype(dtype)
    W = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    D = rng.standard_normal((M, K)).astype(dtype)
    H = rng.uniform(0, 1, (M, N)).astype(dtype)
    A = rng.standard_normal((M, K)).astype(dtype)
    Dn = rng.standard_normal((M, N)).astype(dtype)
    got = {}
    for threads in (1, 2):
        fastnet.set_num_threads(threads)
        got[threads] = (kernels.linear(X, W, b, activation="sigmoid"),
                        kernels.hidden_delta(D, W.T, H, "sigmoid"),
                        kernels.fused_update(W, A, Dn, 0.3))
    assert all(np.array_equal(a, c) for a, c in zip(got[1], got[2])), "threads differ"
    check_linear(X, W, b, "sigmoid", 0.0, dtype, got[2][0])
    check_hidden_delta(D, W.T, H, "sigmoid", dtype, got[2][1])
    want = as64(W) - 0.3 * (as64(A).T @ as64(Dn))
    bound = (M + 4) * eps(dtype) * (np.abs(as64(W)) + 0.3 * (np.abs(as64(A)).T @ np.abs(as64(Dn))))
    assert_within(got[2][2], want, bound + tiny(dtype), "fused_update")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", [0, 31, 32, 63, 16383, 16384, 16385, 99_999, 100_002])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_one_bad_value_anywhere(isa, dtype, where, bad):
    """Several of the check's 16384-element chunks, each in blocks of 4 vectors (64 floats,
    32 doubles) and a tail of single values; the extremes of the finite range pass."""
    info = np.finfo(dtype)
    extremes = np.array([info.max, -info.max, info.tiny, info.smallest_subnormal, -0.0], dtype)
    x = np.resize(extremes, 100_003)
    assert _core.all_finite(x)
    x[where] = bad
    assert not _core.all_finite(x)
    assert _core.all_finite(x[:100_002].reshape(-1, 6)) == (where >= 100_002)  # any shape


def test_all_finite_takes_contiguous_floats_only():
    assert _core.all_finite(np.empty((0, 3))) and _core.all_finite(np.ones(0, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.all_finite(np.ones(4, np.int64))
    with pytest.raises(ValueError, match="contiguous"):
        _core.all_finite(np.ones((4, 4))[:, ::2])


def test_fit_rejects_one_nan_deep_in_a_large_input():
    rng = np.random.default_rng(0)
    X = rng.random((5000, 40), dtype=np.float32)
    Y = rng.random((5000, 1), dtype=np.float32)
    X[4321, 17] = np.nan
    net = fastnet.Network([40, 8, 1], seed=0)
    before = [W.copy() for W in net.weights]
    with pytest.raises(ValueError, match=r"X contains NaN or infinity .*\[4321, 17\]"):
        net.fit(X, Y, epochs=1, learning_rate=0.1)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_keeps_unrequested_hidden_outputs_in_scratch(dtype):
    """The seam's forward takes None for a hidden layer's output when the activations are
    fused (predict and loss ask only for O_out) and gives the traced O_out; it refuses
    None for the output layer, or with the pre-activations kept, before reaching C."""
    rng = np.random.default_rng(3)
    net = fastnet.Network([5, 7, 6, 3], activation="tanh", dtype=dtype, seed=2)
    X = rng.standard_normal((9, 5)).astype(dtype)
    want, _ = net.forward(X, trace=True)
    out = np.empty((9, 3), dtype)
    _core.forward(net._c_net(), X, None, [None, None, out])
    assert np.array_equal(out, want)
    hidden = [np.empty((9, n), dtype) for n in (7, 6)]
    for pre, post in [(None, [*hidden, None]),
                      ([*hidden, np.empty((9, 3), dtype)], [None, hidden[1], out])]:
        with pytest.raises(ValueError, match="buffer shape"):
            _core.forward(net._c_net(), X, pre, post)
    other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    for bad_X, bad_out, what in [(X.astype(other), out, "values"),
                                 (X, out.astype(other), "values"),
                                 (X[0], out, "2-D"),
                                 (np.asfortranarray(X), out, "contiguous")]:
        with pytest.raises(ValueError, match=what):
            _core.forward(net._c_net(), bad_X, None, [None, None, bad_out])


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_on_a_kept_scratch_block_gives_the_same_bits(dtype):
    """The general trainer keeps its scratch block for the next call and hands it, dirty,
    to any call that needs no more: the same fit run again after a larger fit (whose block
    it then reuses) and after a smaller one (which reused that block too) gives the bits
    of its first run, and those are the reference's values. (That reuse pays shows in
    the page faults of a call, not here: this shows that it changes no result.)"""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((200, 300)).astype(dtype)
    Y = rng.random((200, 3)).astype(dtype)

    def fit():
        net = fastnet.Network([300, 70, 3], dtype=dtype, seed=4)
        return net, net.fit(X, Y, epochs=2, learning_rate=0.5, batch_size=40, shuffle=False)

    first, history = fit()
    for shape in ([400, 300, 20], [260, 8, 2]):  # a larger block, then a smaller one
        other = fastnet.Network(shape, dtype=dtype, seed=1)
        Xo = rng.standard_normal((300, shape[0])).astype(dtype)
        other.fit(Xo, rng.random((300, shape[-1])).astype(dtype), 1, 0.1, batch_size=128)
        again, history_again = fit()
        assert history_again == history and again == first
    start = fastnet.Network([300, 70, 3], dtype=dtype, seed=4).weights
    W, _, ref_history = reference.fit(as64(X), as64(Y), [as64(w) for w in start],
                                      ["sigmoid", "sigmoid"], 2, 0.5, batch_size=40)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    assert np.allclose(history, ref_history, rtol=tol)
    for w, w_ref in zip(first.weights, W):
        assert np.allclose(w, w_ref, rtol=tol, atol=tol)


def _one_batch_step(dtype, layers, bias=False, rows=64):
    """A network, its weights after fit() on one full batch, and W - lr dW (gradients())."""
    rng = np.random.default_rng(12)
    net = fastnet.Network(layers, activation="tanh", output_activation="sigmoid", bias=bias,
                          dtype=dtype, seed=3)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.random((rows, layers[-1])).astype(dtype)
    dW, db = net.gradients(X, Y)
    want = [p - 0.3 * g for p, g in zip(net.weights + net.biases, dW + db)]
    net.fit(X, Y, epochs=1, learning_rate=0.3, batch_size=rows, shuffle=False)
    return net.weights + net.biases, want


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_narrow_output_layers_rows_give_the_team_products_bits(isa, dtype):
    """In training, a narrow last layer (of three) has its forward and deltas go row by
    row on each thread (train.c output_rows_team), its update by W's rows; gradients()
    takes the team products for the same values. A fit of one full batch leaves exactly
    W - lr dW."""
    got, want = _one_batch_step(dtype, [300, 60, 40, 7])
    for i, (g, w) in enumerate(zip(got, want)):
        assert np.array_equal(g, w), i


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_layers_narrow_output_in_long_batches_give_the_team_products_bits(isa, dtype):
    """Two layers, a narrow output, batches longer than the kc block (no units scheme):
    the output layer's rows go by train.c output_rows_team on each thread, which writes
    the hidden delta panel by panel (nr columns, a partial last panel) for W[0]'s update
    to read in place. A fit of one full batch leaves W - lr dW, within a few units in the
    last place: its steps subtract each kc block's sum over the rows in turn, where
    gradients() adds the blocks first."""
    kc = BLOCKING[isa][np.dtype(dtype).name]["kc"]
    got, want = _one_batch_step(dtype, [300, 75, 3], rows=kc + 44)
    assert not _core._last_units()
    tol = 1e-13 if dtype == np.float64 else 1e-5
    for i, (g, w) in enumerate(zip(got, want)):
        assert np.allclose(g, w, rtol=tol, atol=tol), i


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [[300, 128, 10], [300, 100, 10], [300, 20, 3]])
@pytest.mark.parametrize("bias", [False, True])
def test_the_units_scheme_takes_the_gradients_step(isa, dtype, layers, bias):
    """Two layers with a narrow output (train.c units_batch): each group of hidden units'
    part of O_in summed apart, then added in group order, so O_in differs from
    gradients()' one sum over all hidden units by rounding only: W - lr dW within a few
    units in the last place of the step. Whole groups, a partial last one, a single
    partial one."""
    got, want = _one_batch_step(dtype, layers, bias)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape
        assert np.allclose(g, w, rtol=tol, atol=tol), i


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_updates_bits_do_not_depend_on_the_path(isa, dtype):
    """W - lr A^T delta is rounded as round(W - round(lr * sum)) on every path of the GEMM
    (FN_ROUNDED in csrc/internal.h): the micro-kernel's full tiles, its edge tiles (a last
    panel wider and narrower than half of one, short rows) and the direct path. So a row or
    a column of W updated alone (the direct path) has the bits it has in the whole update,
    in place or on the packed path.
    The learning rate is not a power of two, or both roundings would agree."""
    blocking = BLOCKING[isa][np.dtype(dtype).name]
    mr, nr = blocking["mr"], blocking["nr"]
    rng = np.random.default_rng(9)
    M, K = 3 * mr + 3, 200
    # in place (a last panel wider and narrower than half), then packed (the same two)
    for N in (2 * nr + 3, 2 * nr + nr // 2 + 3, PACK_MIN_N + 3, PACK_MIN_N + nr // 2 + 3):
        W = rng.standard_normal((M, N)).astype(dtype)
        A = rng.standard_normal((K, M)).astype(dtype)
        D = rng.standard_normal((K, N)).astype(dtype)
        assert M * N * K > SMALL_MAC  # the whole update takes the general path
        whole = kernels.fused_update(W, A, D, 0.3)
        for i in range(M):
            assert np.array_equal(kernels.fused_update(W[i:i + 1], A[:, i:i + 1], D, 0.3),
                                  whole[i:i + 1]), ("row", i, N)
        for j in range(N):
            assert np.array_equal(kernels.fused_update(W[:, j:j + 1], A, D[:, j:j + 1], 0.3),
                                  whole[:, j:j + 1]), ("column", j, N)


# (layers, batch sizes) for the fused first-layer step: K over two blocks and a tail of
# columns past the last whole register; K over super-blocks (csrc/gemm.c FN_K_SUPER: two
# of 4096 floats, 17 of 256 doubles) with one register and a tail; a hidden layer
# narrower than one register,
# four layers; two groups of registers; a batch of one big enough for a team of two.
FUSED_CASES = [
    ([300, 150, 10], None),
    ([4100, 20, 3], None),
    ([520, 7, 4, 2], None),
    ([600, 264, 5], None),
    ([2000, 400, 10], (1, 3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(FUSED_CASES)))
def test_fused_first_layer_step_gives_the_bits_of_the_separate_products(isa, dtype, case):
    """With batches of fewer rows than mr (up to 4 with AVX2's 16 registers) the general
    trainer makes each batch's update of W1 in the same pass over W1 as the next batch's
    product X W1 (csrc/train.c, forward_fused_team). The weights must have the bits the
    two products give apart: those of one fit call per batch, whose one batch has no next
    one to fuse with (its update is made alone at the end of the epoch). With 1 and 2
    threads, biases, tanh."""
    layers, batches = FUSED_CASES[case]
    mr = BLOCKING[isa][np.dtype(dtype).name]["mr"]
    rng = np.random.default_rng(case)
    for batch in batches or range(1, mr):
        rows = 2 * batch + 1
        X = rng.standard_normal((rows, layers[0])).astype(dtype)
        Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)
        results = []
        for threads in (1, 2):
            fastnet.set_num_threads(threads)
            fused, apart = (fastnet.Network(layers, activation="tanh", bias=True, dtype=dtype,
                                            seed=case) for _ in range(2))
            fused.fit(X, Y, epochs=2, learning_rate=0.3, batch_size=batch, shuffle=False)
            for _ in range(2):
                for start in range(0, rows, batch):
                    apart.fit(X[start:start + batch], Y[start:start + batch], epochs=1,
                              learning_rate=0.3, batch_size=batch, shuffle=False)
            for a, b in zip(fused.weights + fused.biases, apart.weights + apart.biases):
                assert np.array_equal(a, b), (batch, threads)
            results.append(fused.weights)
        for a, b in zip(*results):
            assert np.array_equal(a, b), f"batch {batch}: 1 and 2 threads differ"


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_steps_on_panels_give_the_bits_of_row_major_ones(isa, dtype):
    """Short batches of a deeper network fuse W1's steps by rows (csrc/train.c,
    forward_fused_team), W1 panel-major in a call of 64 rows or more and row-major in a
    shorter one: a fit of 3 epochs of 40 rows (panel-major) has the bits of 3 fits of one
    epoch (row-major), shuffled, with biases, on 1 and 2 threads."""
    layers, rows = [300, 70, 40, 3], 40
    fused_rows = BLOCKING[isa][np.dtype(dtype).name]["mr"] - 1
    rng = np.random.default_rng(3)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)
    for batch in sorted({1, 2, fused_rows}):
        for threads in (1, 2):
            fastnet.set_num_threads(threads)
            whole, apart = (fastnet.Network(layers, activation="tanh", bias=True, dtype=dtype,
                                            seed=4) for _ in range(2))
            args = dict(learning_rate=0.2, batch_size=batch, shuffle=True)
            h_whole = whole.fit(X, Y, epochs=3, seed=np.random.default_rng(5), **args)
            gen = np.random.default_rng(5)
            h_apart = [apart.fit(X, Y, epochs=1, seed=gen, **args)[0] for _ in range(3)]
            assert h_whole == h_apart, (batch, threads)
            assert whole == apart, (batch, threads)


# Shuffled, each trainer reads a batch's rows of X in place through a table of pointers
# to them (gathered: the products' packing, micro-kernel tiles and edges; the small
# trainer's small product) where the others read a contiguous block: (layers, batch,
# rows) of each scheme.
GATHER_CASES = {
    "tiny": ([2, 4, 1], 3, 10),
    "small-units": ([64, 64, 10], 32, 97),
    "small-rows": ([40, 48, 24, 10], 24, 61),
    "general-units": ([300, 128, 10], 64, 150),
    # the rows scheme: X W1 on the packed path (2 mr rows or more, 260 columns, K over two
    # blocks) and X^T delta_H too; the last batch of 17 rows
    "general-rows-packed": ([300, 260, 20, 7], 40, 97),
    # the rows scheme: X W1 and X^T delta_H by column panels (fewer than 256 columns); the
    # last batch of 13 rows
    "general-rows-panels": ([300, 29, 13], 16, 61),
    # an output layer of a panel or more: every layer by the team's products; the last
    # batch of 3 rows (fewer than mr: edge rows)
    "general-wide-output": ([300, 40, 40], 24, 51),
    # batches fewer than mr rows: W1's step fused with the next product (X copied)
    "general-fused": ([300, 150, 10], 3, 17),
}


@pytest.mark.parametrize("case", list(GATHER_CASES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_shuffled_fit_gives_the_bits_of_its_rows_in_order(isa, dtype, case, threads, bias):
    """A shuffled fit's epoch is an unshuffled one on X[perm], Y[perm] (perm: that epoch's
    order, Generator.permutation's): the same weights and losses to the bit, whether the
    trainer reads the rows in place through pointers or from a contiguous copy."""
    layers, batch, rows = GATHER_CASES[case]
    fastnet.set_num_threads(threads)
    rng = np.random.default_rng(11)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)
    shuffled = fastnet.Network(layers, bias=bias, dtype=dtype, seed=3)
    history = shuffled.fit(X, Y, epochs=3, learning_rate=0.3, batch_size=batch, seed=21)
    assert _core._last_trainer() == case.split("-")[0]
    in_order = fastnet.Network(layers, bias=bias, dtype=dtype, seed=3)
    orders = np.random.default_rng(21)
    expected = []
    for _ in range(3):
        perm = orders.permutation(rows)
        expected += in_order.fit(X[perm], Y[perm], epochs=1, learning_rate=0.3,
                                 batch_size=batch, shuffle=False)
    assert history == expected
    assert shuffled == in_order
    assert not np.array_equal(shuffled.weights[0], fastnet.Network(layers, dtype=dtype,
                                                                   seed=3).weights[0])


@given(k=st.sampled_from([16, 40, 64, 300]), widths=st.lists(
           st.sampled_from([1, 7, 40, 256, 260, 300]), min_size=1, max_size=3),
       fill=st.floats(0.5, 2.0), share=st.sampled_from([0.0, 0.1, 0.5, 0.7, 1.0]),
       dtype=st.sampled_from(DTYPES), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_tall_products_split_anywhere_give_the_bits_of_one_thread(forced_share, k, widths,
                                                                  fill, share, dtype, bias,
                                                                  seed):
    """predict and gradients on many rows (fill: rows in packed blocks of op(A) at K = k,
    so often one block a thread and more than a block for a share over one half), two
    threads splitting each packed product wherever the share falls (up to everything to
    one thread): the bits of one thread. Such a share had been copied past the thread's
    buffer (wrong values, or a corrupted heap)."""
    block = _core.l2_bytes() // 2 // (k * np.dtype(dtype).itemsize)
    rows = max(1, min(int(fill * block), 20000))
    layers = [k] + widths
    net = fastnet.Network(layers, activation="tanh", output_activation="sigmoid", bias=bias,
                          dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (rows, layers[-1])).astype(dtype)
    fastnet.set_num_threads(1)
    want_out, (want_dW, want_db) = net.predict(X), net.gradients(X, Y)
    fastnet.set_num_threads(2)
    forced_share(share)
    out, (dW, db) = net.predict(X), net.gradients(X, Y)
    assert np.array_equal(out, want_out)
    assert all(np.array_equal(a, b) for a, b in zip(dW + db, want_dW + want_db))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["sigmoid", "identity", "relu"])
@pytest.mark.parametrize("layers", [[40, 16, 12], [30, 32, 10]])  # one group of units
def test_small_trainers_output_pass_gives_loss_c_s_loss(isa, dtype, output, layers):
    """The small trainer's one pass over the output layer (the parts' sum, the activation,
    delta_O and the rows' losses in registers) sums each row's squares as loss.c does,
    each square rounded before it joins its sum (AVX2 had fused them into FMAs: float64
    losses then differed in their last bits): one full batch's loss, taken at the weights
    given, is the output delta kernel's loss of predict's outputs, bit for bit (one group
    of hidden units: with more, the trainer adds the groups' parts, predict sums in one
    product)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (200, layers[-1])).astype(dtype)
    net = fastnet.Network(layers, activation="tanh", output_activation=output, dtype=dtype,
                          seed=2)
    _, want = kernels.output_delta(net.predict(X), Y, output)
    history = net.fit(X, Y, epochs=1, learning_rate=0.01)  # one batch: the loss before it
    assert _core._last_trainer() == "small"
    assert history[0] == want
