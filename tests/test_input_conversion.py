"""Inputs in any memory order and any real dtype (lists of ints, float64 into a float32
network, Fortran order, strided and transposed views, bool and integer arrays, 1-D Y
when there is one output) give exactly the result of the C-contiguous array of the
network's dtype."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES, layouts

import fastnet


def _variants(X):
    """(name, same values in another form) for a 2-D array X of small non-negative ints."""
    assert X.min() >= 0 and np.array_equal(X, np.round(X))
    out = [("list of ints", X.astype(np.int64).tolist()),
           ("int32", X.astype(np.int32)),
           ("uint8", X.astype(np.uint8)),
           ("float64", X.astype(np.float64)),
           ("float32", X.astype(np.float32)),
           ("list of floats", X.astype(np.float64).tolist())]
    out += [(name, arr) for name, arr in layouts(X.astype(np.float64))]
    out += [(f"float32 {name}", arr) for name, arr in layouts(X.astype(np.float32))]
    return out


def _expected_input(value, dtype):
    return np.ascontiguousarray(np.asarray(value), dtype=dtype)


def _results(net, X, Y):
    """Everything the network computes from (X, Y), on a copy for the training parts."""
    out, trace = net.forward(X, trace=True)
    dW, db = net.gradients(X, Y)
    loss = net.loss(X, Y)
    fitted = fastnet.Network(net.layers, bias=net.bias, dtype=net.dtype, seed=5)
    history = fitted.fit(X, Y, epochs=2, learning_rate=0.2, batch_size=3, seed=1)
    stepped = fastnet.Network(net.layers, bias=net.bias, dtype=net.dtype, seed=5)
    step_loss = stepped.step(X, Y, 0.2)
    return dict(out=out, trace=trace, dW=dW, db=db, loss=loss, history=history,
                fitted=fitted, step_loss=step_loss, stepped=stepped)


def _assert_same(a, b):
    assert np.array_equal(a["out"], b["out"]) and a["out"].dtype == b["out"].dtype
    assert all(np.array_equal(a["trace"][k], b["trace"][k]) for k in a["trace"])
    assert all(np.array_equal(x, y) for x, y in zip(a["dW"] + a["db"], b["dW"] + b["db"]))
    assert a["loss"] == b["loss"]
    assert a["history"] == b["history"]
    assert a["fitted"] == b["fitted"]
    assert a["step_loss"] == b["step_loss"]
    assert a["stepped"] == b["stepped"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_X_in_any_form_gives_the_result_of_the_contiguous_array(dtype):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, (7, 3)).astype(np.float64)
    Y = rng.uniform(0, 1, (7, 2)).astype(dtype)
    net = fastnet.Network([3, 4, 2], bias=True, dtype=dtype, seed=1)
    want = _results(net, _expected_input(X, dtype), Y)
    for name, X_variant in _variants(X):
        got = _results(net, X_variant, Y)
        assert got["trace"]["X"].dtype == dtype
        try:
            _assert_same(got, want)
        except AssertionError as exc:
            raise AssertionError(f"X as {name}: {exc}") from exc


@pytest.mark.parametrize("dtype", DTYPES)
def test_Y_in_any_form_gives_the_result_of_the_contiguous_array(dtype):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((7, 3)).astype(dtype)
    Y = rng.integers(0, 2, (7, 2)).astype(np.float64)
    net = fastnet.Network([3, 4, 2], dtype=dtype, seed=1)
    want = _results(net, X, _expected_input(Y, dtype))
    for name, Y_variant in _variants(Y) + [("bool", Y.astype(bool))]:
        try:
            _assert_same(_results(net, X, Y_variant), want)
        except AssertionError as exc:
            raise AssertionError(f"Y as {name}: {exc}") from exc


def test_float64_input_into_float32_network_is_rounded_to_float32():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((9, 4))  # not representable in float32
    Y = rng.uniform(0, 1, (9, 2))
    net = fastnet.Network([4, 5, 2], dtype=np.float32, seed=0)
    want = _results(net, X.astype(np.float32), Y.astype(np.float32))
    got = _results(net, X, Y)
    _assert_same(got, want)
    assert got["out"].dtype == np.float32
    assert all(g.dtype == np.float32 for g in got["dW"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_dimensional_Y_is_accepted_when_there_is_one_output(dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 3)).astype(dtype)
    y = rng.uniform(0, 1, 8)
    net = fastnet.Network([3, 4, 1], bias=True, dtype=dtype, seed=2)
    want = _results(net, X, y.reshape(-1, 1).astype(dtype))
    for name, y_variant in [("1-D float64", y), ("1-D list", y.tolist()),
                            ("1-D strided", np.repeat(y, 2)[::2])]:
        try:
            _assert_same(_results(net, X, y_variant), want)
        except AssertionError as exc:
            raise AssertionError(f"Y as {name}: {exc}") from exc


def test_inputs_are_never_modified():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 3))
    Y = rng.uniform(0, 1, (6, 2))
    X_f = np.asfortranarray(X)
    copies = [a.copy() for a in (X, Y, X_f)]
    net = fastnet.Network([3, 2], dtype=np.float64, seed=0)
    net.fit(X, Y, epochs=3, learning_rate=0.1, batch_size=4, seed=0)
    net.fit(X_f, Y, epochs=3, learning_rate=0.1, batch_size=4, seed=0)
    net.gradients(X, Y)
    for a, b in zip((X, Y, X_f), copies):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [2, 8, 128, 300])  # the tiny, small and general trainers
def test_fit_on_the_networks_own_arrays_is_fit_on_copies_of_them(dtype, n):
    """Data that is the network's own weights (or views of them) trains as copies of it
    would: the trainers update the weights in place between batches, and the general one
    had read the changing values (or not, where it keeps a layer's weights elsewhere)."""
    import copy

    rng = np.random.default_rng(n)
    net = fastnet.Network([n, n, n], activation="tanh", bias=True, dtype=dtype, seed=3)
    X, Y = rng.standard_normal((n, n)), rng.uniform(0, 1, (n, n))
    cases = {"X is W0": lambda m: (m.weights[0], Y),
             "Y is W1": lambda m: (X, m.weights[1]),
             "X a view of W1, Y is W0": lambda m: (m.weights[1][:, :], m.weights[0])}
    for name, data in cases.items():
        for batch_size, shuffle in [(2, False), (3, True), (None, False)]:
            a, b = copy.deepcopy(net), copy.deepcopy(net)
            args = dict(epochs=2, learning_rate=0.1, batch_size=batch_size, shuffle=shuffle,
                        seed=0)
            history = a.fit(*data(a), **args)
            assert history == b.fit(*(np.array(d) for d in data(b)), **args), name
            assert a == b, name


def _line_aligned(a):
    return a.ctypes.data % 64 == 0 and a.flags.c_contiguous and a.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_array_the_kernels_write_starts_on_a_cache_line(tmp_path, dtype):
    """Threads share out the columns of the weights and layer outputs: an array that
    starts inside a cache line makes two of them write one line (false sharing). NumPy
    only aligns to 16 bytes, so the network allocates its own arrays."""
    layers = [13, 128, 3]
    net = fastnet.Network(layers, bias=True, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((9, 13)), rng.uniform(0, 1, (9, 3))
    arrays = {"initial weights": net.weights, "initial biases": net.biases}
    # assigned from arrays that start 16 bytes into a line, of the other dtype
    offset = [np.empty(W.size + 8)[2:2 + W.size].reshape(W.shape) for W in net.weights]
    for W, src in zip(net.weights, offset):
        src[...] = W
    net.weights = offset
    net.biases = [b.tolist() for b in net.biases]
    arrays.update({"assigned weights": net.weights, "assigned biases": net.biases})
    out, trace = net.forward(X, trace=True)
    arrays["forward"] = [out, net.predict(X), net.predict(X[:1])] + list(trace.values())[1:]
    arrays["gradients"] = sum(net.gradients(X, Y), [])
    net.save(tmp_path / "n.npz")
    loaded = fastnet.load(tmp_path / "n.npz")
    arrays["loaded"] = loaded.weights + loaded.biases
    for what, got in arrays.items():
        assert len(got) >= 2, what
        assert all(_line_aligned(a) and a.dtype == dtype for a in got), what
    assert loaded == net
    k = fastnet.kernels
    H = k.linear(X, net.weights[0], dtype=dtype)
    results = [k.matmul(X, net.weights[0], dtype=dtype), H,
               k.activation("sigmoid", H), k.activation_derivative("sigmoid", H),
               k.output_delta(H[:, :3], Y, "sigmoid")[0],
               k.hidden_delta(H[:, :3], net.weights[1], H, "sigmoid"),
               k.weight_gradient(X, H), k.bias_gradient(H),
               k.update(net.weights[0], net.weights[0], 0.1),
               k.fused_update(net.weights[0], X, H, 0.1)]
    assert all(_line_aligned(a) for a in results)
