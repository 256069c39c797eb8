"""The facts of the seed (SEED.md), checked with the library: the chain-rule example,
the step function that cannot learn, sigmoid' = s(1 - s), the loss convention
(N = rows) and XOR learned by a sigmoid network."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES, as64, assert_close, to_reference

import fastnet
from fastnet import kernels, reference


def _chain_rule_network(x):
    """y = 3x - 2, z = y^2 as a 1-1-1 identity network.

    With input X = [[1]], the first weight W1 = x makes H_in = H_out = x; W2 = 3 and the
    output bias b2 = -2 make O_in = O_out = 3x - 2 = y; the target Y = [[0]] and N = 1 row
    make the MSE (O_out - Y)^2 = y^2 = z. Then dMSE/dW1 = dz/dx * dH_in/dW1 = dz/dx * 1,
    so the library's gradient for W1 *is* dz/dx; db2 = dz/dy and W2 = dy/dx.
    """
    net = fastnet.Network([1, 1, 1], activation="identity", bias=True, dtype=np.float64)
    net.weights = [[[x]], [[3.0]]]
    net.biases = [[0.0], [-2.0]]
    return net, np.array([[1.0]]), np.array([[0.0]])


def test_chain_rule_example_dz_dx_at_2_is_24():
    net, X, Y = _chain_rule_network(2.0)
    out, trace = net.forward(X, trace=True)
    assert trace["H_out"][0, 0] == 2.0  # x
    assert out[0, 0] == 4.0  # y = 3 * 2 - 2
    assert net.loss(X, Y) == 16.0  # z = y^2
    dW, db = net.gradients(X, Y)
    assert db[1][0] == 8.0  # dz/dy at y = 4
    assert net.weights[1][0, 0] == 3.0  # dy/dx
    assert dW[0][0, 0] == 24.0  # dz/dx = dz/dy * dy/dx = 8 * 3
    assert dW[1][0, 0] == 16.0  # dz/dW2 = dz/dy * x = 8 * 2
    # the reference's central differences agree
    W64, b64 = to_reference(net)
    dW_num, _ = reference.numerical_gradients(X, Y, W64, net.activations, b64)
    assert dW_num[0][0, 0] == pytest.approx(24.0, rel=1e-8)


@pytest.mark.parametrize("x", [-1.0, 0.5, 2.0, 3.0])
def test_chain_rule_matches_expanded_derivative_18x_minus_12(x):
    """z = 9x^2 - 12x + 4, dz/dx = 18x - 12: the gradient and a finite difference of the
    library's loss both give it."""
    net, X, Y = _chain_rule_network(x)
    assert net.loss(X, Y) == pytest.approx(9 * x * x - 12 * x + 4, rel=1e-15)
    assert net.gradients(X, Y)[0][0][0, 0] == pytest.approx(18 * x - 12, rel=1e-15)
    h = 1e-5
    up = _chain_rule_network(x + h)[0].loss(X, Y)
    down = _chain_rule_network(x - h)[0].loss(X, Y)
    assert (up - down) / (2 * h) == pytest.approx(18 * x - 12, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threshold", [2.0, 0.0])
@pytest.mark.parametrize("bias", [False, True])
def test_step_network_has_zero_gradients_and_fit_cannot_move_it(dtype, threshold, bias):
    net = fastnet.Network([3, 5, 2], activation="step", bias=bias, dtype=dtype, seed=1,
                          step_threshold=threshold)
    rng = np.random.default_rng(0)
    if bias:
        net.biases = [rng.standard_normal(5), rng.standard_normal(2)]
    X = 3 * rng.standard_normal((20, 3))
    Y = rng.uniform(0, 1, (20, 2))
    assert net.loss(X, Y) > 0
    dW, db = net.gradients(X, Y)
    for g in dW + db:
        assert np.all(g == 0)
    before = [p.copy() for p in net.weights + net.biases]
    history = net.fit(X, Y, epochs=20, learning_rate=5.0, batch_size=7, seed=0)
    for now, then in zip(net.weights + net.biases, before):
        assert np.array_equal(now, then)
    # the loss is not zero and does not move (up to the order of the batch sums)
    assert min(history) > 0
    assert max(history) - min(history) <= 1e-6 * max(history)


def test_sigmoid_network_with_the_same_weights_does_learn():
    """The seed's story: replacing the step by the sigmoid makes the network trainable."""
    step = fastnet.Network([2, 4, 1], activation="step", seed=0, dtype=np.float64)
    sig = fastnet.Network([2, 4, 1], activation="sigmoid", seed=0, dtype=np.float64)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    Y = np.array([[0], [1], [1], [0]], float)
    h_step = step.fit(X, Y, epochs=200, learning_rate=2.0)
    h_sig = sig.fit(X, Y, epochs=200, learning_rate=2.0)
    assert h_step[-1] == h_step[0]
    assert h_sig[-1] < h_sig[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_derivative_is_s_times_one_minus_s(dtype):
    z = np.linspace(-12, 12, 97)
    s = kernels.activation("sigmoid", z.astype(dtype))
    d = kernels.activation_derivative("sigmoid", s)
    assert_close(d, as64(s) * (1 - as64(s)), dtype, rtol_eps=3, what="sigmoid'")
    # and it is the derivative: central differences of sigmoid itself (float64)
    h = 1e-6
    fd = (kernels.activation("sigmoid", z + h) - kernels.activation("sigmoid", z - h)) / (2 * h)
    s64 = kernels.activation("sigmoid", z)
    np.testing.assert_allclose(kernels.activation_derivative("sigmoid", s64), fd, rtol=1e-7,
                               atol=1e-10)
    assert kernels.activation_derivative("sigmoid", np.array([0.5]))[0] == 0.25


def test_one_sigmoid_unit_gradient_by_hand():
    """O = s(x w), MSE = (s - y)^2 with N = 1: dMSE/dw = 2 (s - y) s (1 - s) x."""
    net = fastnet.Network([1, 1], activation="sigmoid", dtype=np.float64)
    net.weights = [[[0.5]]]
    x, y = 2.0, 0.25
    s = 1 / (1 + np.exp(-x * 0.5))
    dW, _ = net.gradients([[x]], [[y]])
    assert dW[0][0, 0] == pytest.approx(2 * (s - y) * s * (1 - s) * x, rel=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_divides_by_number_of_rows_not_number_of_entries(dtype):
    """MSE of a 4x3 output = sum of squares / 4 (N = rows), not / 12 (PyTorch's mean)."""
    Y = np.arange(12, dtype=dtype).reshape(4, 3)
    O = np.zeros((4, 3), dtype)
    sum_sq = float(sum(i * i for i in range(12)))  # 506
    assert kernels.mse(O, Y) == sum_sq / 4 == 126.5
    net = fastnet.Network([2, 3], activation="identity", dtype=dtype)
    net.weights = [np.zeros((2, 3))]
    assert net.loss(np.ones((4, 2)), Y) == 126.5
    # the gradient uses the same N: delta_O = (2/N)(O - Y) with N = 4
    delta, loss = kernels.output_delta(O, Y, "identity")
    assert loss == 126.5
    assert np.array_equal(delta, -Y / 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_xor_is_learned_by_a_sigmoid_network(dtype):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    Y = np.array([[0], [1], [1], [0]], float)
    net = fastnet.Network([2, 4, 1], activation="sigmoid", seed=0, dtype=dtype)
    history = net.fit(X, Y, epochs=2000, learning_rate=2.0)
    predictions = net.predict(X)
    assert np.array_equal(np.round(predictions), Y), predictions.ravel()
    assert np.all(np.abs(predictions - Y) < 0.2)
    assert history[0] > 0.2 and history[-1] < 0.01
    # deterministic: the same seed learns the same way
    again = fastnet.Network([2, 4, 1], activation="sigmoid", seed=0, dtype=dtype)
    assert again.fit(X, Y, epochs=2000, learning_rate=2.0) == history
    assert again == net
