"""The elementwise and reduction kernels against ``fastnet.reference``: activations and
their derivatives, the MSE, the output delta, the bias gradient and the plain update, in
both dtypes, on drawn shapes, and on non-contiguous inputs (which must give the same
result as C-contiguous ones, bit for bit)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    ACTIVATIONS,
    CPU_SUPPORTS,
    DTYPES,
    ORIGINAL_ISA,
    as64,
    assert_close,
    assert_within,
    eps,
    k_sizes,
    layouts,
    random_matrix,
    seeds,
    small_sizes,
    tiny,
)
from hypothesis import given
from hypothesis import strategies as st

import fastnet
from fastnet import _core, kernels, reference

THRESHOLDS = (0.0, 2.0, -0.75, 0.5)  # exactly representable in float32


def _values(rng, shape, dtype, scale):
    return random_matrix(rng, shape, dtype, scale=scale)


def _outputs_of(activation, rng, shape, dtype):
    """Values a layer with this activation can output (act' is taken from them)."""
    return reference.activate(activation, 3 * rng.standard_normal(shape)).astype(dtype)


shapes = st.one_of(
    st.tuples(small_sizes()),
    st.tuples(small_sizes(), small_sizes()),
    st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6)),
)


# ---------------------------------------------------------------- activations


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@given(shape=shapes, scale=st.sampled_from([1.0, 10.0, 100.0]), seed=seeds,
       threshold=st.sampled_from(THRESHOLDS))
def test_activation_matches_reference(isa, activation, dtype, shape, scale, seed, threshold):
    rng = np.random.default_rng(seed)
    z = _values(rng, shape, dtype, scale)
    got = kernels.activation(activation, z, threshold=threshold)
    assert got.dtype == dtype and got.shape == z.shape
    want = reference.activate(activation, as64(z), threshold)
    if activation in ("identity", "relu", "step"):
        assert np.array_equal(got, want)  # exact operations
    else:
        assert_close(got, want, dtype, rtol_eps=8, what=activation)
    for name, z_nc in layouts(z):
        assert np.array_equal(kernels.activation(activation, z_nc, threshold=threshold), got), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@given(shape=shapes, seed=seeds)
def test_activation_derivative_matches_reference(isa, activation, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    out = _outputs_of(activation, rng, shape, dtype)
    got = kernels.activation_derivative(activation, out)
    assert got.dtype == dtype and got.shape == out.shape
    want = reference.DERIVATIVES[activation](as64(out))
    # 1 - t^2 cancels near |t| = 1: its error is absolute, ~eps (|act'| + out^2).
    bound = 4 * eps(dtype) * (np.abs(want) + as64(out) ** 2) + tiny(dtype)
    assert_within(got, want, bound, f"{activation}'")
    # the formula in the dtype, each operation rounded (no FMA): the same bits
    exact = {"sigmoid": lambda o: o * (1 - o), "tanh": lambda o: 1 - o * o,
             "relu": lambda o: (o > 0).astype(dtype), "identity": np.ones_like,
             "step": np.zeros_like}[activation](out)
    assert np.array_equal(got, exact)
    for name, out_nc in layouts(out):
        assert np.array_equal(kernels.activation_derivative(activation, out_nc), got), name


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_uses_its_threshold_and_is_one_at_the_threshold(dtype):
    """The seed's step: 0 if x < t, 1 if x >= t; the slides use t = 2, then t = 0."""
    for t in (2.0, 0.0):
        below = np.nextafter(dtype(t), dtype(-np.inf))
        z = np.array([-5, below, t, np.nextafter(dtype(t), dtype(np.inf)), 7], dtype)
        assert kernels.activation("step", z, threshold=t).tolist() == [0, 0, 1, 1, 1]
        assert np.array_equal(kernels.activation("step", z, threshold=t),
                              reference.step(z, t))
    # the default threshold is 0
    assert kernels.activation("step", np.array([-1e-30, 0.0, 1e-30], dtype)).tolist() == [0, 1, 1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_propagate_nan(activation, dtype):
    z = np.array([np.nan, 1.0, np.nan], dtype)
    got = kernels.activation(activation, z, threshold=0.0)
    assert np.isnan(got[[0, 2]]).all()
    assert not np.isnan(got[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_and_its_derivative_keep_their_definitions_on_special_values(isa, dtype):
    """Relu and relu' go by masks in each target's registers: relu(z) is z where z > 0 or
    z is NaN (its payload kept), else +0; relu' multiplies the incoming delta by 1 where
    out > 0, else by 0, so an infinite or NaN delta stays visible as NaN instead of
    vanishing. Bit for bit, at every length up to three registers (the tails)."""
    info = np.finfo(dtype)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    special = np.array([0.0, -0.0, 1.5, -1.5, np.inf, -np.inf, np.nan, -np.nan, info.max,
                        -info.max, info.tiny, -info.tiny, info.smallest_subnormal,
                        -info.smallest_subnormal], dtype)
    payload = np.array([np.iinfo(uint).max >> 1, (np.iinfo(uint).max >> 1) - 5], uint)
    special = np.concatenate([special, payload.view(dtype)])  # NaNs with payloads
    rng = np.random.default_rng(3)
    for n in range(1, 3 * 16 + 2):
        z = rng.choice(special, n)
        want = np.where((z > 0) | np.isnan(z), z, dtype(0))
        assert np.array_equal(kernels.activation("relu", z).view(uint), want.view(uint)), n
        # relu' times a delta: delta_H = (delta_O W^T) * relu'(H_out) with W a column of
        # ones, so that delta_H[i, j] = delta_O[i] relu'(H_out[i, j]) for any delta_O[i]
        rows = -(-n // 4)
        out = rng.choice(special, (rows, n))
        delta = rng.choice(special, (rows, 1))
        with np.errstate(invalid="ignore"):
            want = delta * (out > 0).astype(dtype)
        got = kernels.hidden_delta(delta, np.ones((n, 1), dtype), out, "relu")
        assert np.array_equal(got, want, equal_nan=True), n  # (the product's zeros are +0)


# ---------------------------------------------------------------- sigmoid stability


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_of_huge_inputs_is_finite_and_matches_reference(isa, dtype):
    big = float(np.finfo(dtype).max)
    z = np.array([1e4, -1e4, 88, -88, 89, -89, 710, -710, 745, -745, big, -big, 0.0],
                 np.float64).clip(-big, big).astype(dtype)
    with np.errstate(all="raise"):
        got = kernels.activation("sigmoid", z)
    assert np.isfinite(got).all()
    assert ((got >= 0) & (got <= 1)).all()
    want = reference.sigmoid(as64(z))
    assert_within(got, want, 4 * eps(dtype) * want + tiny(dtype), "sigmoid(huge)")
    assert got[0] == 1 and got[1] == 0 and got[-1] == 0.5
    # its derivative from those outputs is finite too (0 in the saturated tails)
    d = kernels.activation_derivative("sigmoid", got)
    assert np.isfinite(d).all() and d[0] == 0 and d[1] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_of_nan_is_nan_and_of_infinities_is_zero_and_one(isa, dtype):
    got = kernels.activation("sigmoid", np.array([np.nan, np.inf, -np.inf], dtype))
    assert np.isnan(got[0])
    assert got[1] == 1 and got[2] == 0


def _short_sigmoid(z):
    """The sigmoid by its polynomial's short chain (the tiny trainer's)."""
    out = np.empty_like(z)
    _core._sigmoid_short(z, out)
    return out


SIGMOIDS = {"sigmoid": lambda z: kernels.activation("sigmoid", z), "short": _short_sigmoid}


def _sigmoid_sweep(dtype):
    lo = -110.0 if dtype == np.float32 else -750.0
    return np.concatenate([np.linspace(lo, -lo, 40001), np.linspace(-30, 30, 20001),
                           np.linspace(-1e-3, 1e-3, 2001)]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(SIGMOIDS))
def test_sigmoid_dense_sweep_is_accurate_down_to_subnormals(isa, dtype, kind):
    """Each micro-kernel set brings its own vectorised sigmoid, in two forms (the usual
    one, and the short chain the tiny trainer waits on): within a few eps of the
    reference where the result is normal, within 2 subnormal units where it underflows
    (to -110 in float32, -750 in float64, past the subnormal range)."""
    z = _sigmoid_sweep(dtype)
    got = SIGMOIDS[kind](z)
    want = reference.sigmoid(as64(z))
    normal = want >= np.finfo(dtype).tiny
    assert_within(got[normal], want[normal], 4 * eps(dtype) * want[normal], "sigmoid")
    sub = float(np.finfo(dtype).smallest_subnormal)
    assert_within(got[~normal], want[~normal], 2 * sub, "sigmoid (subnormal results)")
    order = np.argsort(z, kind="stable")
    assert np.all(np.diff(as64(got[order])) >= 0), "sigmoid must be non-decreasing"
    special = SIGMOIDS[kind](np.array([np.nan, np.inf, -np.inf, 0.0, 1e4, -1e4], dtype))
    assert np.isnan(special[0]) and list(special[1:]) == [1, 0, 0.5, 1, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_short_sigmoid_is_within_two_ulps_of_the_usual_one(isa, dtype):
    """The short chain rounds some values differently (float32: about 4% of them), by 2
    ulps at most; float64's polynomial is already the short one, so the bits agree."""
    z = _sigmoid_sweep(dtype)
    uint = np.int32 if dtype == np.float32 else np.int64
    apart = np.abs(_short_sigmoid(z).view(uint) - kernels.activation("sigmoid", z).view(uint))
    assert apart.max() <= (2 if dtype == np.float32 else 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_dense_sweep_is_accurate_odd_and_saturates(isa, dtype):
    """Each micro-kernel set brings its own vectorised tanh (from e^-2|x| - 1): within a
    few eps of tanh in long double everywhere, including where tanh(x) ~ x, and down to
    the subnormals; odd bit for bit; +-1 in the tails and at the infinities; NaN stays
    NaN and the sign of zero is kept."""
    big = float(np.finfo(dtype).max)
    z = np.concatenate([np.linspace(-40, 40, 40001), np.linspace(-1, 1, 20001),
                        np.geomspace(1e-3, 1e-30, 2001), [1e3, big],
                        np.geomspace(float(np.finfo(dtype).tiny), 1e-3, 2001)]).astype(dtype)
    got = kernels.activation("tanh", z)
    want = np.tanh(z.astype(np.longdouble))
    normal = np.abs(want) >= np.finfo(dtype).tiny
    got_n, want_n = as64(got[normal]), as64(want[normal])
    assert_within(got_n, want_n, 4 * eps(dtype) * np.abs(want_n), "tanh")
    # Near saturation within 1.25 units in the last place (an exhaustive float32 sweep of
    # [1, 10) found 1.04 at most): there tanh' = 1 - t^2 cancels and multiplies t's error
    # (t from e^-2|x| - 1 alone had been 2.3-2.5 ulps off). The unit is that of the exact
    # value's binade, below 1 also for a result rounded up to 1.
    x = np.concatenate([z[np.abs(as64(z)) >= 1],
                        np.random.default_rng(0).uniform(1, 10, 200_000).astype(dtype)])
    t, exact = kernels.activation("tanh", x), np.tanh(x.astype(np.longdouble))
    ulp = np.spacing(np.nextafter(np.abs(exact).astype(dtype), dtype(0)))
    assert_within(as64(t), as64(exact), 1.25 * as64(ulp), "tanh for |x| >= 1")
    assert np.array_equal(kernels.activation("tanh", -z), -got), "tanh must be odd"
    order = np.argsort(z, kind="stable")
    assert np.all(np.diff(as64(got[order])) >= 0), "tanh must be non-decreasing"
    special = kernels.activation("tanh", np.array([np.inf, -np.inf, 0.0, -0.0, np.nan], dtype))
    assert special[0] == 1 and special[1] == -1
    assert special[2] == 0 and not np.signbit(special[2])
    assert special[3] == 0 and np.signbit(special[3])
    assert np.isnan(special[4])


# ---------------------------------------------------------------- loss and deltas


def _rows_cols(dtype):
    return st.tuples(k_sizes(dtype), st.one_of(st.integers(1, 5), small_sizes()))


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_mse_matches_reference(dtype, data):
    rows, cols = data.draw(_rows_cols(dtype), label="shape")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    O_out = random_matrix(rng, (rows, cols), dtype)
    Y = random_matrix(rng, (rows, cols), dtype)
    got = kernels.mse(O_out, Y)
    assert isinstance(got, float)
    want = reference.mse(as64(O_out), as64(Y))
    # summed in double: error ~ (rows * cols) eps64 whatever the input dtype
    assert abs(got - want) <= (rows * cols + 4) * eps(np.float64) * want + 1e-300
    for (n1, O_nc), (n2, Y_nc) in zip(layouts(O_out), layouts(Y)):
        assert kernels.mse(O_nc, Y_nc) == got, n1


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_output_delta_matches_reference(dtype, data):
    rows, cols = data.draw(_rows_cols(dtype), label="shape")
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    O_out = _outputs_of(activation, rng, (rows, cols), dtype)
    Y = random_matrix(rng, (rows, cols), dtype)
    delta, loss = kernels.output_delta(O_out, Y, activation)
    assert delta.dtype == dtype and delta.shape == O_out.shape
    want = reference.output_delta(as64(O_out), as64(Y), activation)
    deriv = reference.DERIVATIVES[activation](as64(O_out))
    scale = (2 / rows) * np.abs(as64(O_out) - as64(Y)) * (np.abs(deriv) + as64(O_out) ** 2)
    assert_within(delta, want, 8 * eps(dtype) * scale + tiny(dtype), f"delta_O({activation})")
    want_loss = reference.mse(as64(O_out), as64(Y))
    assert abs(loss - want_loss) <= (4 * eps(dtype) + rows * cols * eps(np.float64)) * want_loss
    for (n1, O_nc), (n2, Y_nc) in zip(layouts(O_out), layouts(Y)):
        d2, l2 = kernels.output_delta(O_nc, Y_nc, activation)
        assert np.array_equal(d2, delta) and l2 == loss, n1


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_bias_gradient_is_column_sum_of_delta(isa, dtype, data):
    """Each column summed over the rows in order, in the dtype, on every kernel set (the
    same bits as that plain loop); columns straddle the registers the kernel sums at once
    (4 registers: 16 to 64 values)."""
    cols_strategy = st.one_of(small_sizes(), st.sampled_from([15, 17, 33, 63, 64, 65, 129]))
    rows, cols = data.draw(st.tuples(k_sizes(dtype), cols_strategy), label="shape")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    delta = random_matrix(rng, (rows, cols), dtype)
    got = kernels.bias_gradient(delta)
    assert got.dtype == dtype and got.shape == (cols,)
    want = reference.bias_gradient(as64(delta))
    bound = (rows + 2) * eps(dtype) * np.abs(as64(delta)).sum(axis=0) + tiny(dtype)
    assert_within(got, want, bound, "bias_gradient")
    in_order = np.zeros(cols, dtype)
    for row in delta:
        in_order += row
    assert np.array_equal(got, in_order)
    for name, d_nc in layouts(delta):
        assert np.array_equal(kernels.bias_gradient(d_nc), got), name


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes, seed=seeds, learning_rate=st.sampled_from([0.1, 1.0, 2.5, 1e-3]))
def test_update_is_w_minus_learning_rate_times_gradient(dtype, shape, seed, learning_rate):
    rng = np.random.default_rng(seed)
    W = random_matrix(rng, shape, dtype)
    dW = random_matrix(rng, shape, dtype)
    W_before = W.copy()
    got = kernels.update(W, dW, learning_rate)
    assert np.array_equal(W, W_before), "update must return a new array, not modify W"
    assert got.dtype == dtype and got.shape == W.shape
    want = reference.update(as64(W), as64(dW), learning_rate)
    bound = 3 * eps(dtype) * (np.abs(as64(W)) + learning_rate * np.abs(as64(dW))) + tiny(dtype)
    assert_within(got, want, bound, "update")
    for (n1, W_nc), (n2, dW_nc) in zip(layouts(W), layouts(dW)):
        assert np.array_equal(kernels.update(W_nc, dW_nc, learning_rate), got), n1


def test_kernels_pick_float32_only_when_every_input_is_float32():
    a32 = np.ones((2, 2), np.float32)
    a64 = np.ones((2, 2), np.float64)
    assert kernels.matmul(a32, a32).dtype == np.float32
    assert kernels.matmul(a32, a64).dtype == np.float64
    assert kernels.matmul([[1, 2]], [[3], [4]]).dtype == np.float64
    assert kernels.matmul(a32, a32, dtype=np.float64).dtype == np.float64
    assert kernels.matmul([[1, 2]], [[3], [4]]).tolist() == [[11.0]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_avx512_sigmoid_and_tanh_give_the_bits_of_avx2(dtype):
    """The AVX-512 sigmoid takes its cap, its sign select and its power of two from
    single AVX-512 instructions (min, masked blend, scalef), where the AVX2 build keeps
    the generic vector code (compare and bit blends, the exponent built by integer
    operations): both round the same operations the same way, so the bits agree on a
    dense sweep past both ends of the range, the subnormal results, the specials and
    random bit patterns (NaN payloads included)."""
    if not (CPU_SUPPORTS["avx512"] and CPU_SUPPORTS["avx2"]):
        pytest.skip("needs a CPU with both AVX2 and AVX-512")
    info = np.finfo(dtype)
    rng = np.random.default_rng(11)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    z = np.concatenate([
        np.linspace(-800, 800, 400_001), 30 * rng.standard_normal(100_000),
        1e-3 * rng.standard_normal(10_000),
        [0.0, -0.0, np.inf, -np.inf, np.nan, info.max, -info.max, info.tiny, -info.tiny,
         info.smallest_subnormal]]).astype(dtype)
    z = np.concatenate([z, rng.integers(0, np.iinfo(uint).max, 200_000, dtype=uint).view(dtype)])
    got = {}
    try:
        for name in ("avx512", "avx2"):
            assert fastnet._use_kernels(name) == name
            got[name] = [kernels.activation(act, z).view(uint) for act in ("sigmoid", "tanh")]
            got[name].append(_short_sigmoid(z).view(uint))
    finally:
        fastnet._use_kernels(ORIGINAL_ISA)
    for act, a, b in zip(("sigmoid", "tanh", "short sigmoid"), got["avx512"], got["avx2"]):
        assert np.array_equal(a, b), (act, z[a != b][:5])
