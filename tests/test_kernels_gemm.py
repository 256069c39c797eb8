"""The kernels built on the blocked GEMM, against ``fastnet.reference`` / exact float64
products, for every micro-kernel the CPU supports (fixture ``isa``), both dtypes, sizes
that straddle the blocking, and non-contiguous inputs.

Oracle: the product of the same (dtype-rounded) values in float64. Tolerance: the forward
error bound of a length-K dot product, ``(K + c) eps |A||B|`` elementwise.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    ACTIVATIONS,
    AT_PAGE_END,
    BLOCKING,
    DTYPES,
    ISA_PARAMS,
    as64,
    assert_within,
    check_hidden_delta,
    check_linear,
    eps,
    k_sizes,
    layouts,
    mn_sizes,
    product_bound,
    random_matrix,
    run_child,
    seeds,
    tiny,
)
from hypothesis import given
from hypothesis import strategies as st

from fastnet import kernels, reference

TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]


def _stored(A, trans):
    """The array to pass so that op(stored) == A."""
    return np.ascontiguousarray(A.T) if trans else A


def _draw_mnk(data, dtype):
    """M and N around the micro-tile and mc, K around kc, for the dtype's blocking."""
    return (data.draw(mn_sizes(dtype), label="M"), data.draw(mn_sizes(dtype), label="N"),
            data.draw(k_sizes(dtype), label="K"))


def _check_matmul_all_transposes(A, B, dtype, naive=False):
    K = A.shape[1]
    want = as64(A) @ as64(B)
    bound = product_bound(A, B, K, dtype)
    for ta, tb in TRANSPOSES:
        got = kernels.matmul(_stored(A, ta), _stored(B, tb), trans_a=ta, trans_b=tb, naive=naive)
        assert got.dtype == dtype
        assert_within(got, want, bound, f"matmul(trans_a={ta}, trans_b={tb}, naive={naive})")


# ---------------------------------------------------------------- matmul


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_matmul_matches_float64_product_for_every_transpose(isa, dtype, data):
    M, N, K = _draw_mnk(data, dtype)
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    A = random_matrix(rng, (M, K), dtype)
    B = random_matrix(rng, (K, N), dtype)
    _check_matmul_all_transposes(A, B, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_matmul_naive_matches_float64_product_for_every_transpose(dtype, data):
    M, N, K = _draw_mnk(data, dtype)
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    A = random_matrix(rng, (M, K), dtype)
    B = random_matrix(rng, (K, N), dtype)
    _check_matmul_all_transposes(A, B, dtype, naive=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_matmul_noncontiguous_inputs_give_the_contiguous_result(isa, dtype, data):
    M, N, K = _draw_mnk(data, dtype)
    ta, tb = data.draw(st.sampled_from(TRANSPOSES), label="trans")
    naive = data.draw(st.booleans(), label="naive")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    A = _stored(random_matrix(rng, (M, K), dtype), ta)
    B = _stored(random_matrix(rng, (K, N), dtype), tb)
    expected = kernels.matmul(A, B, trans_a=ta, trans_b=tb, naive=naive)
    for (name_a, A_nc), (name_b, B_nc) in zip(layouts(A), layouts(B)):
        got = kernels.matmul(A_nc, B_nc, trans_a=ta, trans_b=tb, naive=naive)
        assert got.dtype == dtype
        assert np.array_equal(got, expected), (name_a, name_b)


def _beyond_block_shapes(dtype):
    shapes = set()
    for blocking in BLOCKING.values():
        b = blocking[np.dtype(dtype).name]
        shapes.add((8 * b["mc"] + b["mr"] + 1, 3, 2))  # more than one chunk of M
        shapes.add((3, 4096 + b["nr"] + 1, 2))  # very wide C: many nr panels
        shapes.add((5, 7, 3 * b["kc"] + 1))  # four blocks of K
    return sorted(shapes)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_beyond_the_cache_blocks(isa, dtype):
    """M over many mc blocks, a very wide N, K over several kc blocks."""
    rng = np.random.default_rng(7)
    for M, N, K in _beyond_block_shapes(dtype):
        A = random_matrix(rng, (M, K), dtype)
        B = random_matrix(rng, (K, N), dtype)
        _check_matmul_all_transposes(A, B, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_with_b_transposed_is_the_product_with_its_transpose_in_memory(isa, dtype):
    """op(B) = B^T is copied into padded rows or packed panels by blocks transposed in
    registers (16 floats or 8 doubles a side on AVX-512, 4 or 2 elsewhere, the edges by
    smaller blocks and single values): the copy is exact, so A B^T must be bit for bit
    the product with B^T laid out in memory, for every count of rows and columns on and
    off those blocks, in the direct path (few rows) and the packed one."""
    rng = np.random.default_rng(11)
    sizes = [1, 2, 3, 5, 8, 15, 16, 17, 31, 33, 64, 100]
    for M in (1, 7, 40):
        for N in sizes:
            for K in sizes:
                A = random_matrix(rng, (M, K), dtype)
                B = random_matrix(rng, (N, K), dtype)
                got = kernels.matmul(A, B, trans_b=True)
                want = kernels.matmul(A, np.ascontiguousarray(B.T))
                assert np.array_equal(got, want), (M, N, K)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_of_exact_integers_is_exact(isa, dtype):
    """Small integers: every partial sum is exactly representable, so the product must be
    exact whatever the blocking (a wrong index or a lost K block cannot hide in rounding)."""
    rng = np.random.default_rng(3)
    b = BLOCKING[isa][np.dtype(dtype).name]
    M, N, K = 2 * b["mc"] + 5, 2 * b["nr"] + 3, b["kc"] + 7
    A = rng.integers(-3, 4, (M, K)).astype(dtype)
    B = rng.integers(-3, 4, (K, N)).astype(dtype)
    want = A.astype(np.int64) @ B.astype(np.int64)
    for ta, tb in TRANSPOSES:
        for naive in (False, True):
            got = kernels.matmul(_stored(A, ta), _stored(B, tb), trans_a=ta, trans_b=tb,
                                 naive=naive)
            assert np.array_equal(got, want), (ta, tb, naive)


# ---------------------------------------------------------------- linear


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_linear_is_activation_of_product_plus_bias(isa, dtype, data):
    M, N, K = _draw_mnk(data, dtype)
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    threshold = data.draw(st.sampled_from([0.0, 2.0, -1.5]), label="threshold")
    with_bias = data.draw(st.booleans(), label="bias")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    X = random_matrix(rng, (M, K), dtype)
    W = random_matrix(rng, (K, N), dtype, scale=1 / np.sqrt(K))
    b = random_matrix(rng, (N,), dtype) if with_bias else None
    got = kernels.linear(X, W, b, activation=activation, threshold=threshold)
    check_linear(X, W, b, activation, threshold, dtype, got)
    for (name_x, X_nc), (name_w, W_nc) in zip(layouts(X), layouts(W)):
        b_nc = None if b is None else dict(layouts(b)).get(name_x, b)
        again = kernels.linear(X_nc, W_nc, b_nc, activation=activation, threshold=threshold)
        assert np.array_equal(again, got), (name_x, name_w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_applies_bias_and_activation_once_over_several_k_blocks(isa, dtype, activation):
    """The epilogue must run only after the last K block (K > kc), on edge tiles too."""
    b_cfg = BLOCKING[isa][np.dtype(dtype).name]
    M, N, K = 2 * b_cfg["mc"] + 5, b_cfg["nr"] + 1, 2 * b_cfg["kc"] + 1
    rng = np.random.default_rng(11)
    X = random_matrix(rng, (M, K), dtype)
    W = random_matrix(rng, (K, N), dtype, scale=1 / np.sqrt(K))
    b = random_matrix(rng, (N,), dtype, scale=3.0)
    threshold = 2.0
    got = kernels.linear(X, W, b, activation=activation, threshold=threshold)
    check_linear(X, W, b, activation, threshold, dtype, got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_step_thresholds_two_and_zero(isa, dtype):
    """The seed's step: 0 if x < t, 1 if x >= t, for t = 2 and t = 0 (x exactly at t is 1)."""
    X = np.array([[-1.0], [0.0], [1.0], [1.9375], [2.0], [2.5], [100.0]], dtype)
    W = np.ones((1, 1), dtype)
    assert kernels.linear(X, W, activation="step", threshold=2).ravel().tolist() == [
        0, 0, 0, 0, 1, 1, 1]
    assert kernels.linear(X, W, activation="step", threshold=0).ravel().tolist() == [
        0, 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_fused_sigmoid_is_stable_for_huge_inputs(isa, dtype):
    big = float(np.finfo(dtype).max)
    X = np.array([[1e4], [-1e4], [88], [-88], [710], [-710], [big], [-big]], np.float64)
    X = X.clip(-big, big).astype(dtype)
    got = kernels.linear(X, np.ones((1, 1), dtype), activation="sigmoid")
    assert np.isfinite(got).all()
    want = reference.sigmoid(as64(X))
    assert_within(got, want, 4 * eps(dtype) * want + tiny(dtype), "sigmoid(huge)")


# ---------------------------------------------------------------- backprop products


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_hidden_delta_matches_reference(isa, dtype, data):
    rows = data.draw(mn_sizes(dtype), label="rows")
    n_h = data.draw(mn_sizes(dtype), label="n_h")
    n_o = data.draw(k_sizes(dtype), label="n_o")
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    delta_O = random_matrix(rng, (rows, n_o), dtype)
    W = random_matrix(rng, (n_h, n_o), dtype)
    H_out = reference.activate(activation, rng.standard_normal((rows, n_h))).astype(dtype)
    got = kernels.hidden_delta(delta_O, W, H_out, activation)
    check_hidden_delta(delta_O, W, H_out, activation, dtype, got)
    for (n1, d_nc), (n2, W_nc), (n3, H_nc) in zip(layouts(delta_O), layouts(W), layouts(H_out)):
        assert np.array_equal(kernels.hidden_delta(d_nc, W_nc, H_nc, activation), got), n1


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_weight_gradient_matches_reference(isa, dtype, data):
    rows = data.draw(k_sizes(dtype), label="rows")
    n_a = data.draw(mn_sizes(dtype), label="n_a")
    n_b = data.draw(mn_sizes(dtype), label="n_b")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    A_out = random_matrix(rng, (rows, n_a), dtype)
    delta = random_matrix(rng, (rows, n_b), dtype)
    got = kernels.weight_gradient(A_out, delta)
    assert got.dtype == dtype and got.shape == (n_a, n_b)
    want = reference.weight_gradient(as64(A_out), as64(delta))
    assert_within(got, want, product_bound(A_out.T, delta, rows, dtype), "weight_gradient")
    for (n1, A_nc), (n2, d_nc) in zip(layouts(A_out), layouts(delta)):
        assert np.array_equal(kernels.weight_gradient(A_nc, d_nc), got), n1


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_fused_update_is_update_by_weight_gradient(isa, dtype, data):
    rows = data.draw(k_sizes(dtype), label="rows")
    n_a = data.draw(mn_sizes(dtype), label="n_a")
    n_b = data.draw(mn_sizes(dtype), label="n_b")
    learning_rate = data.draw(st.sampled_from([0.5, 0.01, 3.0]), label="learning_rate")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    W = random_matrix(rng, (n_a, n_b), dtype)
    A_out = random_matrix(rng, (rows, n_a), dtype)
    delta = random_matrix(rng, (rows, n_b), dtype)
    W_before = W.copy()
    got = kernels.fused_update(W, A_out, delta, learning_rate)
    assert np.array_equal(W, W_before), "fused_update must not modify its input W"
    assert got.dtype == dtype and got.shape == W.shape
    want = reference.update(
        as64(W), reference.weight_gradient(as64(A_out), as64(delta)), learning_rate)
    bound = (rows + 4) * eps(dtype) * (
        np.abs(as64(W)) + learning_rate * (np.abs(as64(A_out)).T @ np.abs(as64(delta)))
    ) + tiny(dtype)
    assert_within(got, want, bound, "fused_update")
    for (n1, W_nc), (n2, A_nc), (n3, d_nc) in zip(layouts(W), layouts(A_out), layouts(delta)):
        assert np.array_equal(kernels.fused_update(W_nc, A_nc, d_nc, learning_rate), got), n1


# ---------------------------------------------------------------- empty operands

EMPTY_SHAPES = [(M, K, N) for M in (0, 1, 5) for K in (0, 1, 5) for N in (0, 1, 5)
                if 0 in (M, K, N)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M, K, N", EMPTY_SHAPES)
def test_every_kernel_takes_empty_matrices_as_the_reference_does(dtype, M, K, N):
    """Empty matrices are matrices, as in NumPy: a product over an inner size of 0 is zero
    (linear gives act(b); hidden_delta 0 * act', NaN where act' is infinite), any other
    empty operand an empty result of the right shape."""
    rng = np.random.default_rng(M * 100 + K * 10 + N)
    A, B = random_matrix(rng, (M, K), dtype), random_matrix(rng, (K, N), dtype)
    b = random_matrix(rng, (1, N), dtype)[0]
    delta_O = random_matrix(rng, (M, N), dtype)
    H_out = random_matrix(rng, (M, K), dtype)
    if H_out.size:
        H_out.flat[0] = np.inf  # sigmoid' of an infinite output is -inf: times 0, NaN
    lr = 0.5

    def same(got, want):  # exact, but for activations of nonempty operands (4 ulps)
        assert got.dtype == dtype and got.shape == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=4 * eps(dtype), atol=0, equal_nan=True)

    for ta, tb in TRANSPOSES:
        same(kernels.matmul(_stored(A, ta), _stored(B, tb), trans_a=ta, trans_b=tb), A @ B)
    same(kernels.matmul(A, B, naive=True), A @ B)
    same(kernels.linear(A, B, b, "sigmoid"), reference.sigmoid(A @ B + b))
    same(kernels.linear(A, B, activation="step", threshold=-1.0),
         reference.step(A @ B, threshold=-1.0))
    with np.errstate(invalid="ignore"):
        want_delta_H = reference.hidden_delta(delta_O, B, H_out, "sigmoid")
    same(kernels.hidden_delta(delta_O, B, H_out, "sigmoid"), want_delta_H)
    same(kernels.weight_gradient(H_out, delta_O), reference.weight_gradient(H_out, delta_O))
    same(kernels.bias_gradient(delta_O), reference.bias_gradient(delta_O))
    W = random_matrix(rng, (K, N), dtype)
    same(kernels.fused_update(W, H_out, delta_O, lr),
         reference.update(W, reference.weight_gradient(H_out, delta_O), lr))
    same(kernels.update(W, B, lr), reference.update(W, B, lr))
    same(kernels.activation("tanh", A), reference.tanh(A))
    same(kernels.activation_derivative("tanh", A), reference.tanh_derivative(A))
    if M and not N:  # the MSE is a mean over the rows: defined for no columns, not rows
        O_out = random_matrix(rng, (M, N), dtype)
        assert kernels.mse(O_out, delta_O) == reference.mse(O_out, delta_O) == 0.0
        got_delta, got_loss = kernels.output_delta(O_out, delta_O, "sigmoid")
        same(got_delta, reference.output_delta(O_out, delta_O, "sigmoid"))
        assert got_loss == 0.0
    elif not M:
        for call in (lambda: kernels.mse(delta_O, delta_O),
                     lambda: kernels.output_delta(delta_O, delta_O, "sigmoid")):
            with pytest.raises(ValueError, match="O_out has 0 rows"):
                call()


# Products by the direct path with B read in place (N not a multiple of the kernel's
# register width, so each row of B ends inside a register: the short last block is read
# masked), by the micro-tile and narrower rows: (M, K, N, dtype, trans_a), each with
# M N K <= 32768 or N below the micro-tile's width (csrc/gemm.c, direct), else B would be
# packed.
PAGE_END_GEMMS = [
    (1, 128, 10, "float32", False),
    (1, 7, 1, "float64", False),
    (3, 33, 20, "float32", True),
    (8, 64, 10, "float32", False),
    (8, 64, 10, "float64", True),
    (9, 40, 41, "float32", False),
    (5, 16, 13, "float64", False),
    (16, 64, 27, "float64", False),
]

PAGE_END_GEMM_SCRIPT = AT_PAGE_END + r"""
from fastnet import kernels
for M, K, N, dtype, trans_a in json.loads(sys.argv[2]):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    Bg = at_page_end(B)
    assert np.array_equal(kernels.matmul(A, Bg, trans_a=trans_a),
                          kernels.matmul(A, B, trans_a=trans_a))
    if not trans_a:
        assert np.array_equal(kernels.linear(A, Bg, at_page_end(b), "sigmoid"),
                              kernels.linear(A, B, b, "sigmoid"))
print("ok", len(keep))
"""


@pytest.mark.parametrize("kernel", ISA_PARAMS)
def test_small_products_read_no_value_past_the_end_of_b(kernel):
    """B (and the bias) end at the end of a page, the next page unreadable: the direct
    path reads B's rows in place, and one that loaded a whole register from a row's short
    end would crash on B's last row. In a child process, whose crash fails the test; the
    products must be the bits of the same ones on ordinary arrays."""
    out = run_child(PAGE_END_GEMM_SCRIPT, kernel, PAGE_END_GEMMS)
    n_linear = sum(not case[-1] for case in PAGE_END_GEMMS)
    assert out.split() == ["ok", str(len(PAGE_END_GEMMS) + n_linear)]
