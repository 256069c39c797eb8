"""Every bad input gets a ValueError or TypeError whose message names the argument, and
the network is exactly as it was afterwards (weights and biases compared bit for bit)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import ACTIVATIONS, DTYPES, assert_unchanged, snapshot
from hypothesis import given
from hypothesis import strategies as st

import fastnet
from fastnet import kernels

N_IN, N_HIDDEN, N_OUT = 3, 4, 2
GOOD_X = np.linspace(-1, 1, 5 * N_IN).reshape(5, N_IN)
GOOD_Y = np.linspace(0, 1, 5 * N_OUT).reshape(5, N_OUT)


def _changeable(dtype=np.float32):
    """A network that any successful step/fit would change (bias on, nonzero biases)."""
    net = fastnet.Network([N_IN, N_HIDDEN, N_OUT], bias=True, dtype=dtype, seed=0)
    net.biases = [np.full(N_HIDDEN, 0.1), np.full(N_OUT, -0.1)]
    return net


@pytest.fixture
def net():
    return _changeable()


def _call(net, method, X=GOOD_X, Y=GOOD_Y, **kw):
    if method == "forward":
        return net.forward(X, trace=True)
    if method == "predict":
        return net.predict(X)
    if method == "loss":
        return net.loss(X, Y)
    if method == "gradients":
        return net.gradients(X, Y)
    if method == "step":
        return net.step(X, Y, kw.get("learning_rate", 0.1))
    if method == "fit":
        args = dict(epochs=2, learning_rate=0.1, batch_size=2, shuffle=True, seed=0)
        args.update(kw)
        return net.fit(X, Y, **args)
    raise AssertionError(method)


def test_good_calls_do_change_the_network(net):
    """Makes the 'unchanged' checks below meaningful: the same calls with good arguments
    do modify the network."""
    for method in ("step", "fit"):
        before = snapshot(net)
        _call(net, method)
        with pytest.raises(AssertionError):
            assert_unchanged(net, before)


def _nan_at(a, idx, value=np.nan):
    a = np.array(a, dtype=float)
    a[idx] = value
    return a


BAD_X = [
    ("1-D", np.ones(N_IN), ValueError, r"X must be 2-D"),
    ("3-D", np.ones((5, N_IN, 1)), ValueError, r"X must be 2-D"),
    ("0-D", np.float64(1.0), ValueError, r"X must be 2-D"),
    ("wrong columns", np.ones((5, N_IN + 1)), ValueError, r"X has 4 columns"),
    ("zero columns", np.ones((5, 0)), ValueError, r"X has 0 columns"),
    ("zero rows", np.ones((0, N_IN)), ValueError, r"X is empty"),
    ("strings", [["a", "b", "c"]] * 5, TypeError, r"X must be an array of real numbers"),
    ("mixed strings", [[1, 2, "c"]] * 5, TypeError, r"X must be an array of real numbers"),
    ("objects", np.array([[object()] * N_IN] * 5, dtype=object), TypeError, r"X must be"),
    ("complex", np.ones((5, N_IN), complex), TypeError, r"X must be an array of real"),
    ("None", None, TypeError, r"X must be"),
    ("ragged", [[1, 2, 3], [1, 2]], ValueError, r"X must be a rectangular"),
    ("NaN", _nan_at(GOOD_X, (2, 1)), ValueError, r"X contains NaN"),
    ("+inf", _nan_at(GOOD_X, (0, 0), np.inf), ValueError, r"X contains NaN or infinity"),
    ("-inf", _nan_at(GOOD_X, (4, 2), -np.inf), ValueError, r"X contains NaN or infinity"),
    ("overflows float32", _nan_at(GOOD_X, (1, 1), 1e300), ValueError,
     r"X has a value too large for float32 at index \[1, 1\]: 1e\+300"),
    ("int beyond float64", [[1.0, 2.0, 10**400]] * 5, ValueError,
     r"X holds an integer too large for a real number"),
    ("masked", np.ma.masked_greater(GOOD_X, 0.5), ValueError, r"X has masked values"),
]

BAD_Y = [
    ("1-D with 2 outputs", np.ones(5), ValueError, r"Y must be 2-D"),
    ("3-D", np.ones((5, N_OUT, 1)), ValueError, r"Y must be 2-D"),
    ("wrong columns", np.ones((5, N_OUT + 1)), ValueError, r"Y has 3 columns"),
    ("fewer rows than X", np.ones((4, N_OUT)), ValueError, r"X and Y must have the same number"),
    ("more rows than X", np.ones((6, N_OUT)), ValueError, r"X and Y must have the same number"),
    ("zero rows", np.ones((0, N_OUT)), ValueError, r"Y is empty"),
    ("strings", [["a", "b"]] * 5, TypeError, r"Y must be an array of real numbers"),
    ("objects", np.array([[object()] * N_OUT] * 5, dtype=object), TypeError, r"Y must be"),
    ("complex", np.ones((5, N_OUT), complex), TypeError, r"Y must be an array of real"),
    ("None", None, TypeError, r"Y must be"),
    ("NaN", _nan_at(GOOD_Y, (3, 1)), ValueError, r"Y contains NaN"),
    ("inf", _nan_at(GOOD_Y, (0, 0), np.inf), ValueError, r"Y contains NaN or infinity"),
    ("overflows float32", _nan_at(GOOD_Y, (4, 0), -1e39), ValueError,
     r"Y has a value too large for float32 at index \[4, 0\]: -1e\+39"),
    ("int beyond float64 among objects", np.array([[0, 10**400]] * 5, dtype=object), ValueError,
     r"Y holds an integer too large for a real number"),
]


@pytest.mark.parametrize("method", ["forward", "predict", "loss", "gradients", "step", "fit"])
@pytest.mark.parametrize("what,X,exc,match", BAD_X, ids=[c[0] for c in BAD_X])
def test_bad_X_is_rejected_and_network_unchanged(net, method, what, X, exc, match):
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        _call(net, method, X=X)
    assert_unchanged(net, before)


@pytest.mark.parametrize("method", ["loss", "gradients", "step", "fit"])
@pytest.mark.parametrize("what,Y,exc,match", BAD_Y, ids=[c[0] for c in BAD_Y])
def test_bad_Y_is_rejected_and_network_unchanged(net, method, what, Y, exc, match):
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        _call(net, method, Y=Y)
    assert_unchanged(net, before)


BAD_LEARNING_RATES = [
    (0, ValueError), (0.0, ValueError), (-0.1, ValueError), (np.nan, ValueError),
    (np.inf, ValueError), (-np.inf, ValueError), ("0.1", TypeError), (None, TypeError),
    (True, TypeError), (1 + 0j, TypeError), ([0.1], TypeError),
    (2**1100, ValueError),  # an int past float's range (was OverflowError)
    (1e39, ValueError),  # past float32's (was taken as infinity, then "diverged")
]


def _in_own_dtype(arg, methods, cases):
    """(arg, method, what, value, exc, match) for the float64 arrays among the cases, less
    those whose values float32 cannot hold: given in the network's own dtype, C-contiguous,
    they are what C reads already, and are checked on their own way (no copy made on the
    way to the checks)."""
    return [(arg, method, *case) for method in methods for case in cases
            if type(case[1]) is np.ndarray and case[1].dtype == np.float64
            and "too large" not in case[3]]


OWN_DTYPE = (_in_own_dtype("X", ["forward", "predict", "loss", "gradients", "step", "fit"], BAD_X)
             + _in_own_dtype("Y", ["loss", "gradients", "step", "fit"], BAD_Y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("arg,method,what,value,exc,match", OWN_DTYPE,
                         ids=[f"{c[0]} {c[2]}-{c[1]}" for c in OWN_DTYPE])
def test_bad_X_or_Y_in_the_networks_own_dtype_is_rejected_too(dtype, arg, method, what, value,
                                                              exc, match):
    net = _changeable(dtype)
    data = {"X": GOOD_X.astype(dtype), "Y": GOOD_Y.astype(dtype)}
    data[arg] = np.array(value, dtype=dtype, order="C")
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        _call(net, method, **data)
    assert_unchanged(net, before)


@pytest.mark.parametrize("method", ["step", "fit"])
@pytest.mark.parametrize("learning_rate,exc", BAD_LEARNING_RATES)
def test_bad_learning_rate_is_rejected_and_network_unchanged(net, method, learning_rate, exc):
    before = snapshot(net)
    with pytest.raises(exc, match="learning_rate"):
        _call(net, method, learning_rate=learning_rate)
    assert_unchanged(net, before)


@pytest.mark.parametrize("name,value,exc", [
    ("batch_size", 0, ValueError),
    ("batch_size", -3, ValueError),
    ("batch_size", 2.5, TypeError),
    ("batch_size", 2.0, TypeError),
    ("batch_size", "4", TypeError),
    ("batch_size", True, TypeError),
    ("epochs", -1, ValueError),
    ("epochs", 1.5, TypeError),
    ("epochs", None, TypeError),
    ("epochs", "3", TypeError),
    ("epochs", False, TypeError),
    ("shuffle", "yes", TypeError),
    ("shuffle", 1, TypeError),
    ("seed", -1, ValueError),
    ("seed", 1.5, TypeError),
    ("seed", "x", TypeError),
])
def test_bad_fit_argument_is_rejected_and_network_unchanged(net, name, value, exc):
    before = snapshot(net)
    with pytest.raises(exc, match=name):
        _call(net, "fit", **{name: value})
    assert_unchanged(net, before)


def test_several_bad_arguments_still_leave_the_network_unchanged(net):
    before = snapshot(net)
    with pytest.raises((ValueError, TypeError)):
        net.fit(GOOD_X, np.ones((4, N_OUT)), epochs=-1, learning_rate=0, batch_size=0)
    assert_unchanged(net, before)


# ---------------------------------------------------------------- constructor


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(layers=[3]), ValueError, r"layers must have at least 2"),
    (dict(layers=[]), ValueError, r"layers must have at least 2"),
    (dict(layers=5), TypeError, r"layers must be a sequence"),
    (dict(layers="34"), TypeError, r"layers must be a sequence"),
    (dict(layers=None), TypeError, r"layers must be a sequence"),
    (dict(layers={3, 4}), TypeError, r"layers must be a sequence"),  # unordered
    (dict(layers={3: 1, 4: 1}), TypeError, r"layers must be a sequence"),
    (dict(layers=np.array(3)), TypeError, r"layers must be a sequence"),
    (dict(layers=np.ones((2, 2), int)), TypeError, r"layers must be a sequence"),
    (dict(layers=[3, 0, 2]), ValueError, r"layers\[1\]"),
    (dict(layers=[0, 2]), ValueError, r"layers\[0\]"),
    (dict(layers=[3, -1]), ValueError, r"layers\[1\]"),
    (dict(layers=[3, 2.5]), TypeError, r"layers\[1\]"),
    (dict(layers=[3, 2.0]), TypeError, r"layers\[1\]"),
    (dict(layers=[3, "2"]), TypeError, r"layers\[1\]"),
    (dict(layers=[3, True]), TypeError, r"layers\[1\]"),
    (dict(layers=[3, None]), TypeError, r"layers\[1\]"),
    (dict(layers=[2**62, 2, 1]), ValueError,
     r"layers\[0\] x layers\[1\] is \d+ weights, more than an array can hold"),
    (dict(layers=[3, 2**64]), ValueError, r"layers\[0\] x layers\[1\]"),
    (dict(activation="softmax"), ValueError, r"^activation must be one of"),
    (dict(activation="Sigmoid"), ValueError, r"^activation must be one of"),
    (dict(activation=None), TypeError, r"^activation must be one of"),
    (dict(activation=3), TypeError, r"^activation must be one of"),
    (dict(output_activation="softmax"), ValueError, r"output_activation"),
    (dict(output_activation=1), TypeError, r"output_activation"),
    (dict(dtype=np.int32), TypeError, r"dtype"),
    (dict(dtype=np.float16), TypeError, r"dtype"),
    (dict(dtype="float128"), TypeError, r"dtype"),
    (dict(dtype="nonsense"), TypeError, r"dtype"),
    (dict(dtype=complex), TypeError, r"dtype"),
    (dict(bias="yes"), TypeError, r"bias"),
    (dict(bias=1), TypeError, r"bias"),
    (dict(seed=-1), ValueError, r"seed"),
    (dict(seed=1.5), TypeError, r"seed"),
    (dict(seed="0"), TypeError, r"seed"),
    (dict(step_threshold=np.nan), ValueError, r"step_threshold"),
    (dict(step_threshold=np.inf), ValueError, r"step_threshold"),
    (dict(step_threshold=-2**1100), ValueError, r"step_threshold"),
    (dict(step_threshold="2"), TypeError, r"step_threshold"),
])
def test_bad_constructor_arguments_are_rejected(kwargs, exc, match):
    args = dict(layers=[3, 4, 2])
    args.update(kwargs)
    layers = args.pop("layers")
    with pytest.raises(exc, match=match):
        fastnet.Network(layers, **args)


# ---------------------------------------------------------------- setters


@pytest.mark.parametrize("values,exc,match", [
    ([np.zeros((N_IN, N_HIDDEN))], ValueError, r"weights must have 2 arrays"),
    ([np.zeros((N_IN, N_HIDDEN))] * 3, ValueError, r"weights must have 2 arrays"),
    ([np.zeros((N_IN, N_HIDDEN + 1)), np.zeros((N_HIDDEN, N_OUT))], ValueError, r"weights\[0\]"),
    ([np.zeros((N_IN, N_HIDDEN)), np.zeros((N_OUT, N_HIDDEN))], ValueError, r"weights\[1\]"),
    ([np.zeros((N_IN, N_HIDDEN)), np.zeros(N_HIDDEN * N_OUT)], ValueError, r"weights\[1\]"),
    ([np.zeros((N_IN, N_HIDDEN)), _nan_at(np.zeros((N_HIDDEN, N_OUT)), (1, 1))], ValueError,
     r"weights\[1\]"),
    ([np.full((N_IN, N_HIDDEN), np.inf), np.zeros((N_HIDDEN, N_OUT))], ValueError,
     r"weights\[0\]"),
    ([np.full((N_IN, N_HIDDEN), "a"), np.zeros((N_HIDDEN, N_OUT))], TypeError, r"weights\[0\]"),
    ([np.zeros((N_IN, N_HIDDEN), complex), np.zeros((N_HIDDEN, N_OUT))], TypeError,
     r"weights\[0\]"),
    ([np.zeros((N_IN, N_HIDDEN)), _nan_at(np.zeros((N_HIDDEN, N_OUT)), (3, 0), 1e39)],
     ValueError, r"weights\[1\] has a value too large for float32 at index \[3, 0\]"),
    ([[[10**400] * N_HIDDEN] * N_IN, np.zeros((N_HIDDEN, N_OUT))], ValueError,
     r"weights\[0\] holds an integer too large"),
    (np.zeros((N_IN, N_HIDDEN)), TypeError, r"weights"),
    (None, TypeError, r"weights"),
    (5, TypeError, r"weights"),
])
def test_bad_weights_are_rejected_and_network_unchanged(net, values, exc, match):
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        net.weights = values
    assert_unchanged(net, before)


@pytest.mark.parametrize("values,exc,match", [
    ([np.zeros(N_HIDDEN)], ValueError, r"biases must have 2 arrays"),
    ([np.zeros(N_HIDDEN + 1), np.zeros(N_OUT)], ValueError, r"biases\[0\]"),
    ([np.zeros(N_HIDDEN), np.zeros((N_OUT, 1))], ValueError, r"biases\[1\]"),
    ([np.zeros(N_HIDDEN), [np.nan, 0]], ValueError, r"biases\[1\]"),
    ([np.zeros(N_HIDDEN), ["a", "b"]], TypeError, r"biases\[1\]"),
    ([np.zeros(N_HIDDEN), [0, -1e300]], ValueError, r"biases\[1\] has a value too large"),
    ([np.zeros(N_HIDDEN), [0, -10**400]], ValueError, r"biases\[1\] holds an integer too"),
    (np.zeros(N_HIDDEN), TypeError, r"biases"),
])
def test_bad_biases_are_rejected_and_network_unchanged(net, values, exc, match):
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        net.biases = values
    assert_unchanged(net, before)


def test_biases_on_a_network_without_bias_are_rejected():
    net = fastnet.Network([3, 2], seed=0)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"biases"):
        net.biases = [np.zeros(2)]
    assert_unchanged(net, before)
    net.biases = []  # an empty list is the state it already has
    assert net.biases == []


def test_good_weights_setter_copies_and_converts():
    net = fastnet.Network([2, 2], dtype=np.float32)
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    net.weights = [W]
    W[0, 0] = 99
    assert net.weights[0].dtype == np.float32
    assert net.weights[0].tolist() == [[1, 2], [3, 4]]


# ---------------------------------------------------------------- threads and kernels


@pytest.mark.parametrize("n,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                   ("2", TypeError), (None, TypeError), (True, TypeError),
                                   (2**31, ValueError)])
def test_bad_thread_count_is_rejected_and_count_unchanged(n, exc):
    before = fastnet.get_num_threads()
    with pytest.raises(exc, match=r"\bn\b"):
        fastnet.set_num_threads(n)
    assert fastnet.get_num_threads() == before


def test_unknown_kernel_name_is_rejected():
    before = fastnet.show_config(print_out=False)["kernel"]
    with pytest.raises(ValueError, match="kernel"):
        fastnet._use_kernels("sse9")
    assert fastnet.show_config(print_out=False)["kernel"] == before


@pytest.mark.parametrize("call,exc,match", [
    (lambda: kernels.matmul(np.ones((2, 3)), np.ones((4, 2))), ValueError, r"op\(A\)"),
    (lambda: kernels.matmul(np.ones(3), np.ones((3, 2))), ValueError, r"\bA\b"),
    (lambda: kernels.matmul(np.ones((2, 3)), "b"), (ValueError, TypeError), r"\bB\b"),
    (lambda: kernels.linear(np.ones((2, 3)), np.ones((4, 2))), ValueError, r"\bW\b"),
    (lambda: kernels.linear(np.ones((2, 3)), np.ones((3, 2)), b=np.ones(3)), ValueError,
     r"\bb\b"),
    (lambda: kernels.activation("softplus", np.ones(3)), ValueError, r"activation"),
    (lambda: kernels.matmul(np.ones((2, 3)), np.ones((2, 3)), trans_a="yes"), TypeError,
     r"trans_a"),
    (lambda: kernels.matmul(np.ones((2, 3)), np.ones((2, 3)), trans_b=1), TypeError,
     r"trans_b"),
    (lambda: kernels.activation("sigmoid", np.ones(3, complex)), TypeError, r"\bz\b"),
    (lambda: kernels.activation("step", np.ones(3), threshold=np.nan), ValueError, "threshold"),
    (lambda: kernels.mse(np.ones((2, 3)), np.ones((3, 3))), ValueError, r"O_out and Y"),
    (lambda: kernels.mse(np.ones((2, 3)), np.ones((2, 2))), ValueError, r"\bY\b"),
    (lambda: kernels.output_delta(np.ones((2, 3)), np.ones((2, 3)), "soft"), ValueError,
     r"activation"),
    (lambda: kernels.hidden_delta(np.ones((2, 3)), np.ones((4, 2)), np.ones((2, 4)), "tanh"),
     ValueError, r"\bW\b"),
    (lambda: kernels.weight_gradient(np.ones((2, 3)), np.ones((3, 3))), ValueError,
     r"A_out and delta"),
    (lambda: kernels.update(np.ones((2, 3)), np.ones((3, 2)), 0.1), ValueError, r"\bdW\b"),
    (lambda: kernels.update(np.ones(3), np.ones(3), np.inf), ValueError, r"learning_rate"),
    (lambda: kernels.fused_update(np.ones((2, 3)), np.ones((5, 4)), np.ones((5, 3)), 0.1),
     ValueError, r"\bW\b"),
    (lambda: kernels.matmul(np.ones((2, 2)), np.ones((2, 2)), dtype=np.int64), TypeError,
     r"dtype"),
    (lambda: kernels.matmul([[10**400]], [[1.0]]), ValueError, r"\bA holds an integer too"),
])
def test_kernels_reject_bad_arguments_by_name(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# fit looks for NaN and infinity in X and Y only when training fails (network.py): every
# such value must make the first epoch fail, in both trainers, whatever the activations.
_TRAINER_LAYERS = {"small": [5, 6, 3], "general": [300, 6, 3]}  # 300 > the small widths


@given(trainer=st.sampled_from(sorted(_TRAINER_LAYERS)),
       hidden=st.sampled_from(ACTIVATIONS), output=st.sampled_from(ACTIVATIONS),
       bias=st.booleans(), dtype=st.sampled_from(DTYPES), in_y=st.booleans(),
       value=st.sampled_from([np.nan, np.inf, -np.inf]), rows=st.integers(1, 9),
       batch=st.integers(1, 10), shuffle=st.booleans(), epochs=st.integers(1, 3),
       where=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), seed=st.integers(0, 99))
def test_fit_finds_every_nan_and_infinity_and_leaves_the_network_unchanged(
        trainer, hidden, output, bias, dtype, in_y, value, rows, batch, shuffle, epochs, where,
        seed):
    layers = _TRAINER_LAYERS[trainer]
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (rows, layers[0]))
    Y = rng.uniform(0, 1, (rows, layers[-1]))
    bad = Y if in_y else X
    at = (where[0] % rows, where[1] % bad.shape[1])
    bad[at] = value
    net = fastnet.Network(layers, activation=hidden, output_activation=output, bias=bias,
                          dtype=dtype, seed=seed)
    if bias:
        net.biases = [rng.uniform(-1, 1, n) for n in layers[1:]]
    before = snapshot(net)
    name = "Y" if in_y else "X"
    with pytest.raises(ValueError, match=rf"{name} contains NaN or infinity \(first at index "
                                         rf"\[{at[0]}, {at[1]}\]"):
        net.fit(X, Y, epochs=epochs, learning_rate=0.1, batch_size=batch, shuffle=shuffle,
                seed=seed)
    assert_unchanged(net, before)


def test_activation_names_from_numpy_strings_are_kept_as_plain_strings():
    """An activation given as numpy.str_ (read from an array, say) is stored as the plain
    name: the repr and saved files show 'tanh', not np.str_('tanh')."""
    net = fastnet.Network([2, 3, 1], activation=np.str_("tanh"),
                          output_activation=np.array(["sigmoid"])[0])
    assert type(net.activation) is str and type(net.output_activation) is str
    assert "activation='tanh'" in repr(net) and "np.str_" not in repr(net)
