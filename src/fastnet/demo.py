"""python -m fastnet demo: the seed's story, told by the library on data it makes itself.

1. the chain rule: y = 3x - 2, z = y^2, dz/dx(2) = 24, through fastnet's own kernels;
2. XOR with the step activation: every gradient is 0, gradient descent cannot move;
3. XOR with the sigmoid: the same network learns all four cases;
4. a digits-sized classification task trained by fastnet and by fastnet.reference.
"""
from __future__ import annotations

import time

import numpy as np

import fastnet
from fastnet import kernels, reference

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float64)


def chain_rule():
    """z = y^2 with y = 3x - 2, as a network: one input x, a hidden identity unit
    H = 3x - 2 (weight 3, bias -2), output O = H (weight 1), loss (O - 0)^2 = z. The
    deltas of backpropagation carry dz/dO back through W2 and W1 to the input."""
    x = 2.0
    net = fastnet.Network([1, 1, 1], activation="identity", bias=True, dtype=np.float64)
    net.weights = [[[3.0]], [[1.0]]]
    net.biases = [[-2.0], [0.0]]
    X, Y = np.array([[x]]), np.array([[0.0]])
    _, t = net.forward(X, trace=True)
    y, z = t["H_out"][0, 0], net.loss(X, Y)
    delta_O, _ = kernels.output_delta(t["O_out"], Y, "identity")  # dz/dO = 2y
    delta_H = kernels.hidden_delta(delta_O, net.weights[1], t["H_out"], "identity")  # dz/dy
    dz_dx = kernels.hidden_delta(delta_H, net.weights[0], X, "identity")[0, 0]  # * dy/dx
    h = 1e-6
    numeric = (net.loss([[x + h]], Y) - net.loss([[x - h]], Y)) / (2 * h)
    print("1. Chain rule: y = 3x - 2, z = y^2, at x = 2")
    print(f"   y(2) = {y:g}, z(4) = {z:g}, dz/dy(4) = {delta_H[0, 0]:g}, dy/dx = 3")
    print(f"   dz/dx(2) = dz/dy * dy/dx = {dz_dx:g}   (finite difference: {numeric:.6f})")
    ok = dz_dx == 24 and abs(numeric - 24) < 1e-5
    print(f"   {'OK' if ok else 'MISMATCH'}: 8 * 3 = 24, and 18x - 12 at x = 2 is 24\n")
    return ok


def xor_step():
    net = fastnet.Network([2, 4, 1], activation="step", seed=1)
    before = [W.copy() for W in net.weights]
    dW, _ = net.gradients(XOR_X, XOR_Y)
    zero = all(not g.any() for g in dW)
    history = net.fit(XOR_X, XOR_Y, epochs=1000, learning_rate=2.0)
    moved = any(not np.array_equal(a, b) for a, b in zip(before, net.weights))
    print("2. XOR with the step activation (threshold t = 0)")
    print(f"   every gradient is exactly 0: {zero}")
    print(f"   after 1000 epochs the weights moved: {moved}; loss {history[0]:.3f} -> "
          f"{history[-1]:.3f}")
    print("   step'(x) = 0 wherever it exists, so W := W - alpha * 0 never changes.\n")
    return zero and not moved


def xor_sigmoid():
    net = fastnet.Network([2, 4, 1], activation="sigmoid", seed=1)
    history = net.fit(XOR_X, XOR_Y, epochs=3000, learning_rate=2.0)
    out = net.predict(XOR_X).ravel()
    learned = np.array_equal(np.round(out), XOR_Y.ravel())
    print("3. XOR with the sigmoid (same network, same start)")
    print(f"   loss {history[0]:.3f} -> {history[-1]:.4f} after 3000 epochs")
    for x, o, y in zip(XOR_X, out, XOR_Y.ravel()):
        print(f"   {x.astype(int)} -> {o:.3f}  (target {int(y)})")
    print(f"   all four cases learned: {learned}\n")
    return learned


def make_digits(n, rng):
    """8x8 'digits': ten fixed stroke templates, each sample shifted by up to a pixel
    and blurred by noise. Returns X (n, 64) in [0, 1] and one-hot Y (n, 10)."""
    templates = np.zeros((10, 10, 10))
    t = np.random.default_rng(12345)
    for k in range(10):
        for _ in range(3):  # three random strokes per class
            r0, c0, r1, c1 = t.integers(1, 9, 4)
            for s in np.linspace(0, 1, 12):
                templates[k, int(round(r0 + s * (r1 - r0))), int(round(c0 + s * (c1 - c0)))] = 1
    labels = rng.integers(0, 10, n)
    shifts = rng.integers(0, 3, (n, 2))
    X = np.empty((n, 64))
    for i in range(n):
        r, c = shifts[i]
        X[i] = templates[labels[i], r : r + 8, c : c + 8].ravel()
    X = np.clip(X + rng.normal(0, 0.25, X.shape), 0, 1)
    return X, np.eye(10)[labels], labels


def digits():
    rng = np.random.default_rng(0)
    X, Y, labels = make_digits(6000, rng)
    X_train, Y_train, X_test, y_test = X[:5000], Y[:5000], X[5000:], labels[5000:]
    epochs, lr, batch = 40, 2.0, 32
    net = fastnet.Network([64, 64, 10], dtype=np.float64, seed=0)
    W0 = [W.copy() for W in net.weights]
    orders_rng = np.random.default_rng(7)
    orders = [orders_rng.permutation(len(X_train)) for _ in range(epochs)]

    t0 = time.perf_counter()
    history = net.fit(X_train, Y_train, epochs, lr, batch_size=batch, shuffle=True, seed=7)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    W_ref, _, ref_history = reference.fit(X_train, Y_train, W0, net.activations, epochs, lr,
                                          batch_size=batch, orders=orders)
    t_ref = time.perf_counter() - t0

    acc = np.mean(np.argmax(net.predict(X_test), axis=1) == y_test)
    _, post = reference.feedforward(X_test, W_ref, net.activations)
    acc_ref = np.mean(np.argmax(post[-1], axis=1) == y_test)
    diff = max(np.abs(a - b).max() for a, b in zip(net.weights, W_ref))
    print("4. Digits-sized task: 8x8 images, 10 classes, 5000 training / 1000 test examples")
    print(f"   network [64, 64, 10], sigmoid, {epochs} epochs of minibatch GD (batch {batch}, "
          f"alpha {lr}), float64")
    print(f"   fastnet:   loss {history[0]:.3f} -> {history[-1]:.4f}, test accuracy "
          f"{acc:.1%}, {t_fast * 1e3:8.1f} ms")
    print(f"   reference: loss {ref_history[0]:.3f} -> {ref_history[-1]:.4f}, test accuracy "
          f"{acc_ref:.1%}, {t_ref * 1e3:8.1f} ms")
    print(f"   same batches, same steps: largest weight difference {diff:.1e}; "
          f"fastnet is {t_ref / t_fast:.0f}x faster")
    return acc > 0.9 and diff < 1e-8


def main():
    cfg = fastnet.show_config(print_out=False)
    print(f"fastnet {fastnet.__version__}: {cfg['kernel']} kernels, {cfg['threads']} threads\n")
    results = [chain_rule(), xor_step(), xor_sigmoid(), digits()]
    print("\nAll four parts behaved as the seed says." if all(results)
          else "\nSomething did not behave as the seed says (see above).")
    return 0 if all(results) else 1
