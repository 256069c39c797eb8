"""The seed's network in plain NumPy, line by line: the oracle every kernel is tested against.

Readable, not fast. Each function computes one formula of the seed (SEED.md) and has the
same name as the C kernel that computes it fast (csrc/*.c, reachable as ``fastnet.kernels``):

    H_in  = X W1              feedforward()       (fn_forward)
    H_out = act(H_in)         activations below   (fn_activation)
    MSE   = 1/N sum (O_out - Y)^2                 mse()            (fn_mse)
    delta_O = (2/N)(O_out - Y) * act'(O_in)       output_delta()   (fn_output_delta)
    delta_H = (delta_O W2^T) * act'(H_in)         hidden_delta()   (fn_hidden_delta)
    dMSE/dW = A^T delta                           weight_gradient()(fn_weight_gradient)
    W := W - alpha dMSE/dW                        update()         (fn_update)

N is the number of rows (examples). Every derivative is computed from the layer's output,
as the C kernels do: sigmoid' = s(1 - s).
"""
from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------- activations


def identity(z):
    return np.array(z, copy=True)


def _float(z):
    z = np.asarray(z)
    return z if z.dtype.kind == "f" else z.astype(np.float64)


def sigmoid(z):
    """1 / (1 + e^-z), written so that no exponential overflows."""
    z = _float(z)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1 / (1 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1 + e)
    return out


def tanh(z):
    return np.tanh(z)


def relu(z):
    return np.maximum(z, 0)


def step(z, threshold=0.0):
    """0 if z < t, 1 if z >= t (the seed shows t = 2, then t = 0)."""
    z = _float(z)
    out = (z >= threshold).astype(z.dtype)
    return np.where(np.isnan(z), z, out)


def identity_derivative(out):
    return np.ones_like(out)


def sigmoid_derivative(out):
    """s'(z) = s(z)(1 - s(z)), from the stored output s."""
    return out * (1 - out)


def tanh_derivative(out):
    return 1 - out * out


def relu_derivative(out):
    return (out > 0).astype(out.dtype)


def step_derivative(out):
    """Zero wherever it exists: gradient descent cannot move a step network."""
    return np.zeros_like(out)


ACTIVATIONS = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "step": step,
}
DERIVATIVES = {
    "identity": identity_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "step": step_derivative,
}


def activate(name, z, threshold=0.0):
    return step(z, threshold) if name == "step" else ACTIVATIONS[name](z)


# ----------------------------------------------------------------------- the seed


def feedforward(X, weights, activations, biases=None, threshold=0.0):
    """H_in = X W1, H_out = act(H_in), O_in = H_out W2, O_out = act(O_in) (any depth).

    Returns the lists ``pre`` (H_in, ..., O_in) and ``post`` (H_out, ..., O_out).
    """
    pre, post = [], []
    A = X
    for i, W in enumerate(weights):
        Z = A @ W
        if biases:
            Z = Z + biases[i]
        A = activate(activations[i], Z, threshold)
        pre.append(Z)
        post.append(A)
    return pre, post


def mse(O_out, Y):
    """MSE = 1/N sum_e sum_n (O_out[e,n] - Y[e,n])^2, N = number of rows."""
    N = O_out.shape[0]
    return np.sum((O_out - Y) ** 2) / N


def output_delta(O_out, Y, activation):
    """delta_O = dMSE/dO_in = (2/N) (O_out - Y) * act'(O_in)."""
    N = O_out.shape[0]
    return (2 / N) * (O_out - Y) * DERIVATIVES[activation](O_out)


def hidden_delta(delta_O, W, H_out, activation):
    """delta_H = dMSE/dH_in = (delta_O W^T) * act'(H_in)."""
    return (delta_O @ W.T) * DERIVATIVES[activation](H_out)


def weight_gradient(A_out, delta):
    """dMSE/dW = A_out^T delta (H_out^T delta_O for W2, X^T delta_H for W1)."""
    return A_out.T @ delta


def bias_gradient(delta):
    """dMSE/db = sum over the rows of delta."""
    return delta.sum(axis=0)


def update(W, dW, learning_rate):
    """W := W - alpha * dMSE/dW (returns the new W)."""
    return W - learning_rate * dW


def gradients(X, Y, weights, activations, biases=None, threshold=0.0):
    """Backpropagation by the chain rule: (loss, dW list, db list)."""
    pre, post = feedforward(X, weights, activations, biases, threshold)
    loss = mse(post[-1], Y)
    delta = output_delta(post[-1], Y, activations[-1])
    dW = [None] * len(weights)
    db = [None] * len(weights) if biases else []
    for i in range(len(weights) - 1, -1, -1):
        A_in = post[i - 1] if i > 0 else X
        dW[i] = weight_gradient(A_in, delta)
        if biases:
            db[i] = bias_gradient(delta)
        if i > 0:
            delta = hidden_delta(delta, weights[i], post[i - 1], activations[i - 1])
    return loss, dW, db


def numerical_gradients(X, Y, weights, activations, biases=None, threshold=0.0, eps=1e-6):
    """Central finite differences of the MSE, for gradient checks (use float64)."""

    def loss():
        return mse(feedforward(X, weights, activations, biases, threshold)[1][-1], Y)

    def diff(P):
        G = np.zeros_like(P)
        for idx in np.ndindex(P.shape):
            keep = P[idx]
            P[idx] = keep + eps
            up = loss()
            P[idx] = keep - eps
            down = loss()
            P[idx] = keep
            G[idx] = (up - down) / (2 * eps)
        return G

    weights = [np.array(W, dtype=np.float64) for W in weights]
    biases = [np.array(b, dtype=np.float64) for b in biases] if biases else None
    dW = [diff(W) for W in weights]
    db = [diff(b) for b in biases] if biases else []
    return dW, db


def batches(n_rows, batch_size, order=None):
    """The row indices of each minibatch of one epoch, in the order used."""
    rows = np.arange(n_rows) if order is None else np.asarray(order)
    return [rows[s : s + batch_size] for s in range(0, n_rows, batch_size)]


def fit(X, Y, weights, activations, epochs, learning_rate, batch_size=None, orders=None,
        biases=None, threshold=0.0):
    """Minibatch gradient descent; returns (weights, biases, epoch losses).

    ``orders[i]`` is epoch i's row order (None: rows in order). An epoch's loss is
    (1/N) sum over its batches of sum (O_out - Y)^2, each taken before that batch's update.
    """
    weights = [np.array(W, copy=True) for W in weights]
    biases = [np.array(b, copy=True) for b in biases] if biases else []
    n_rows = X.shape[0]
    batch_size = n_rows if batch_size is None else min(batch_size, n_rows)
    history = []
    for epoch in range(epochs):
        order = None if orders is None else orders[epoch]
        total = 0.0
        for rows in batches(n_rows, batch_size, order):
            Xb, Yb = X[rows], Y[rows]
            loss, dW, db = gradients(Xb, Yb, weights, activations, biases, threshold)
            total += loss * len(rows)
            weights = [update(W, g, learning_rate) for W, g in zip(weights, dW)]
            biases = [update(b, g, learning_rate) for b, g in zip(biases, db)]
        history.append(total / n_rows)
    return weights, biases, history
