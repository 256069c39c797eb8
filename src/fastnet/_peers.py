"""The benchmark's workloads and the implementations fastnet is compared with.

Shared by ``python -m fastnet bench`` (``fastnet.bench``) and the pytest-benchmark suite
(``benchmarks/``), so both time exactly the same code on the same data.

Every trainer computes the seed's model: ``H = sig(X W1)``, ``O = sig(H W2)``, no bias,
loss ``1/N sum (O - Y)^2`` (N = rows of the batch), plain minibatch gradient descent over
the rows in order, starting from the same initial weights. The ``-relu`` workloads put a
relu on the hidden layers in place of the sigmoid (the output keeps it). ``digits-regressor``
is scikit-learn's ``MLPRegressor`` model instead: biases (started at 0) and an identity
output layer, the hidden layer's sigmoid kept (its "logistic"). The ``-shuffled``
workloads visit the rows of each epoch in a new order instead, as ``fit`` does by default: every
checked trainer draws the same orders (``Generator.permutation``, one an epoch, from a
generator seeded alike) and gathers each batch's rows by them. The one exception is
scikit-learn's ``MLPRegressor``: it always adds biases and its output layer is the
identity, so it is checked on ``digits-regressor`` only, and elsewhere timed as the
nearest peer it has.

Only NumPy is required; PyTorch, scikit-learn and threadpoolctl are used when importable.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, replace

import numpy as np

import fastnet

SEED = 20240607

# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    name: str
    n_examples: int
    layers: tuple
    batch_size: int
    learning_rate: float
    epochs_per_call: int = 1  # xor: one epoch is too short to time alone (predict: calls)
    rounds: int = 5  # pytest-benchmark rounds / default bench repeats
    shuffle: bool = False  # each epoch's rows in a new order (the same for every trainer)
    activation: str = "sigmoid"  # the hidden layers'
    output: str = "sigmoid"  # the output layer's activation ("sigmoid" or "identity")
    bias: bool = False  # biases on every layer, started at 0

    @property
    def data_name(self):
        """The workload whose data this one trains on (digits-shuffled, digits-relu,
        digits-regressor: digits')."""
        return self.name.split("-")[0]

    @property
    def n_in(self):
        return self.layers[0]

    @property
    def n_out(self):
        return self.layers[-1]

    def _products(self):
        """n_l n_(l+1) for each layer l (the seed's network: n_in n_h and n_h n_out)."""
        return [a * b for a, b in zip(self.layers[:-1], self.layers[1:])]

    def epoch_flops(self, n_examples=None):
        """FLOPs of one training epoch: forward X W1 and H W2, backward dO W2^T, H^T dO and
        X^T dH: ``2 E (2 n_in n_h + 3 n_h n_out)`` (element-wise work not counted); with
        more layers, 2 products for the first and 3 for each after it."""
        e = self.n_examples if n_examples is None else n_examples
        first, *rest = self._products()
        return 2 * e * (2 * first + 3 * sum(rest))

    def predict_flops(self, n_examples=None):
        """FLOPs of one forward pass: ``2 E (n_in n_h + n_h n_out)``."""
        e = self.n_examples if n_examples is None else n_examples
        return 2 * e * sum(self._products())

    def scaled(self, n_examples):
        """The same workload on fewer rows (``--quick``)."""
        n = min(n_examples, self.n_examples)
        return replace(self, n_examples=n, batch_size=min(self.batch_size, n))


WORKLOADS = {
    "xor": Workload("xor", 4, (2, 4, 1), 4, 2.0, epochs_per_call=1000, rounds=5),
    "digits": Workload("digits", 1797, (64, 64, 10), 32, 0.5, rounds=10),
    "mnist": Workload("mnist", 60000, (784, 128, 10), 64, 0.1, rounds=3),
    "wide": Workload("wide", 16384, (1024, 1024, 256), 256, 0.1, rounds=3),
    # the mnist network trained one example at a time (stochastic gradient descent)
    "sgd": Workload("sgd", 2000, (784, 128, 10), 1, 0.01, rounds=3),
    # two hidden layers in short batches
    "deep": Workload("deep", 4000, (784, 256, 128, 10), 16, 0.1, rounds=3),
    # fit's default: each epoch's rows in a new order, each batch gathered by it
    "digits-shuffled": Workload("digits-shuffled", 1797, (64, 64, 10), 32, 0.5, rounds=10,
                                shuffle=True),
    "mnist-shuffled": Workload("mnist-shuffled", 60000, (784, 128, 10), 64, 0.1, rounds=3,
                               shuffle=True),
    # the hidden layer as most MLPs now have it: a relu (the output keeps the sigmoid)
    "digits-relu": Workload("digits-relu", 1797, (64, 64, 10), 32, 0.1, rounds=10,
                            activation="relu"),
    # scikit-learn's MLPRegressor model (its one checked workload): biases, identity output
    "digits-regressor": Workload("digits-regressor", 1797, (64, 64, 10), 32, 0.1, rounds=10,
                                 output="identity", bias=True),
}
# predict(X) on the mnist shape: 60000 x 784 -> 10
PREDICT = Workload("predict", 60000, (784, 128, 10), 64, 0.5, rounds=5)
# predict on one example of that shape (requests served one at a time): the cost of a
# call. A timing is of epochs_per_call calls, one call being too short to time alone.
PREDICT_ONE = Workload("predict", 1, (784, 128, 10), 1, 0.5, epochs_per_call=1000, rounds=7)
# the bench's names of the predict workloads
PREDICTS = {"predict": PREDICT, "predict-1": PREDICT_ONE}

DTYPES = {"float32": np.float32, "float64": np.float64}

# Agreement after two epochs from the same weights on the same data. Different GEMMs sum
# in different orders, so float32 results differ by rounding that grows a little per
# step (measured: losses <= 7e-6 apart, weights <= 8e-6 in relative Frobenius norm
# (torch, full mnist); float64 <= 2e-14). The loss alone is a blunt test (a 0.1% error
# in the learning rate moves it by 8e-6 on digits) so the trained weights are compared
# too (that error moves them by >= 1.1e-4 on every full-size workload).
RTOL = {"float32": 5e-5, "float64": 1e-10}
WEIGHTS_RTOL = {"float32": 4e-5, "float64": 1e-10}
PREDICT_ATOL = {"float32": 1e-5, "float64": 1e-12}

# --------------------------------------------------------------------------- data

_DATA_CACHE = {}


def make_data(workload, dtype):
    """Deterministic synthetic data: X uniform in [0, 1), Y the one-hot argmax of a random
    linear teacher on the centred inputs (xor: the XOR truth table)."""
    dtype = np.dtype(dtype)
    key = (workload.data_name, workload.n_examples, workload.layers, dtype.name)
    if key not in _DATA_CACHE:
        if workload.data_name == "xor":
            X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
            Y = np.array([[0], [1], [1], [0]], np.float64)
        else:
            rng = np.random.default_rng([SEED, workload.n_in, workload.n_out])
            X = rng.random((workload.n_examples, workload.n_in))
            teacher = rng.standard_normal((workload.n_in, workload.n_out))
            labels = np.argmax((X - 0.5) @ teacher, axis=1)
            Y = np.zeros((workload.n_examples, workload.n_out))
            Y[np.arange(workload.n_examples), labels] = 1.0
        _DATA_CACHE[key] = (np.ascontiguousarray(X, dtype), np.ascontiguousarray(Y, dtype))
    return _DATA_CACHE[key]


def clear_data_cache():
    _DATA_CACHE.clear()


def initial_weights(workload, dtype, seed=SEED):
    """fastnet's own Glorot-uniform initialisation (float64 draws rounded to dtype)."""
    net = fastnet.Network(list(workload.layers), dtype=dtype, seed=seed)
    return [np.array(W, copy=True) for W in net.weights]


# --------------------------------------------------------------------------- optional peers


def optional(module):
    """The module, or None if it is not importable."""
    try:
        return importlib.import_module(module)
    except Exception:  # ImportError, or a broken install raising something else
        return None


def versions():
    """Versions of the peers (None when missing)."""
    out = {"fastnet": fastnet.__version__, "numpy": np.__version__}
    for name, mod in (("torch", "torch"), ("scikit-learn", "sklearn"),
                      ("threadpoolctl", "threadpoolctl"), ("matplotlib", "matplotlib")):
        m = optional(mod)
        out[name] = getattr(m, "__version__", None) if m is not None else None
    return out


def openblas_info():
    """threadpoolctl's view of the BLAS libraries loaded (NumPy's first), or None if
    threadpoolctl is missing."""
    tpc = optional("threadpoolctl")
    if tpc is None:
        return None
    info = [d for d in tpc.threadpool_info() if d.get("user_api") == "blas"]
    info.sort(key=lambda d: "numpy" not in d.get("filepath", ""))
    return info


def describe_blas():
    """One line per BLAS library: which one NumPy uses and its kernel (architecture)."""
    info = openblas_info()
    if info is None:
        return ["BLAS: threadpoolctl not installed (pip install threadpoolctl) - kernel unknown"]
    lines = []
    for d in info:
        who = "numpy" if "numpy" in d.get("filepath", "") else os.path.basename(
            os.path.dirname(d.get("filepath", ""))) or "?"
        lines.append(
            f"BLAS ({who}): {d.get('internal_api')} {d.get('version')}, kernel "
            f"{d.get('architecture', '?')}, {d.get('threading_layer', '?')} threading, "
            f"{d.get('num_threads')} threads"
        )
    return lines or ["BLAS: none found by threadpoolctl"]


OPENBLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def openblas_env_warning():
    """A warning text if an environment variable pins NumPy's OpenBLAS to other kernels
    or block sizes, else None."""
    found = {k: os.environ[k] for k in OPENBLAS_ENV_VARS if k in os.environ}
    if not found:
        return None
    setting = ", ".join(f"{k}={v}" for k, v in found.items())
    return (
        f"{setting} is set: it pins NumPy's OpenBLAS (and so the numpy and scikit-learn "
        "peers) to other kernels or cache sizes than it would choose for this CPU, which "
        "makes them slower here. For an honest comparison run with "
        "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...`."
    )


_BLAS_LIMITER = None


def set_threads(n):
    """Give every implementation ``n`` threads: fastnet's OpenMP, NumPy's BLAS (through
    threadpoolctl; returns False if it is missing so NumPy keeps its default) and
    PyTorch's intra-op pool (if torch has been imported)."""
    global _BLAS_LIMITER
    fastnet.set_num_threads(n)
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    tpc = optional("threadpoolctl")
    if tpc is None:
        return False
    _BLAS_LIMITER = tpc.threadpool_limits(limits=n, user_api="blas")
    return True


# --------------------------------------------------------------------------- trainers


class Trainer:
    """One implementation set up on one workload: ``epochs(k)`` trains k epochs (each
    over all rows, in order) and returns the k epoch losses."""

    name = "?"

    @classmethod
    def checks(cls, workload):
        """True if this implementation computes the workload's model, so that its losses
        and parameters are checked against fastnet's (every one but sklearn's, on every
        workload); the instance's ``checked``."""
        return True

    def __init__(self, workload, X, Y, weights):
        if workload.activation not in ("sigmoid", "relu", "identity"):
            raise ValueError("activation must be 'sigmoid', 'relu' or 'identity'; got "
                             f"{workload.activation!r}")
        if workload.output not in ("sigmoid", "identity"):
            raise ValueError(f"output must be 'sigmoid' or 'identity'; got {workload.output!r}")
        self.workload = workload
        self.X, self.Y = X, Y
        self.lr = float(workload.learning_rate)
        self.batch = min(workload.batch_size, X.shape[0])
        # shuffled: every trainer's orders from a generator seeded alike, one an epoch
        self.shuffled = workload.shuffle and self.batch < X.shape[0]
        self.rng = np.random.default_rng(SEED) if self.shuffled else None
        self.bias = workload.bias
        # each layer's activation: the hidden layers', then the output layer's
        self.acts = [workload.activation] * (len(weights) - 1) + [workload.output]
        self.checked = self.checks(workload)

    def order(self):
        """The next epoch's order of the rows (shuffled workloads)."""
        return self.rng.permutation(self.X.shape[0])

    def epochs(self, k):
        raise NotImplementedError

    def weights(self):
        raise NotImplementedError

    def biases(self):
        """The trained biases (none in the seed's model)."""
        return []

    def parameters(self):
        """The trained weights, then the biases."""
        return list(self.weights()) + list(self.biases())


class FastnetTrainer(Trainer):
    name = "fastnet"

    def __init__(self, workload, X, Y, weights):
        super().__init__(workload, X, Y, weights)
        self.net = fastnet.Network(list(workload.layers), workload.activation,
                                   workload.output, bias=workload.bias, dtype=X.dtype, seed=0)
        self.net.weights = weights  # the biases start at 0

    def epochs(self, k):
        # fit draws its orders from the generator itself, as order() does
        return self.net.fit(self.X, self.Y, k, self.lr, batch_size=self.batch,
                            shuffle=self.shuffled, seed=self.rng)

    def weights(self):
        return self.net.weights

    def biases(self):
        return self.net.biases


def _sigmoid_(A):
    """A := 1 / (1 + exp(-A)) in place (exp overflow gives inf, then exactly 0)."""
    np.negative(A, out=A)
    np.exp(A, out=A)
    np.add(A, 1, out=A)
    np.reciprocal(A, out=A)
    return A


def _relu_(A):
    """A := max(A, 0) in place."""
    return np.maximum(A, 0, out=A)


# the activations in place, by name
_NUMPY_ACTIVATIONS = {"sigmoid": _sigmoid_, "relu": _relu_, "identity": lambda A: A}


def _numpy_derivative(act, A, T):
    """T := act'(A) from the layer's output A: the sigmoid's A (1 - A), or relu's [A > 0]
    (the sign of A >= 0, exactly 0 or 1). The identity's is 1: callers skip the product."""
    if act == "relu":
        return np.sign(A, out=T)
    np.subtract(1, A, out=T)
    return np.multiply(T, A, out=T)


def _numpy_bias_step(b, G, D):
    """b -= the sum of D's rows (D holds lr * delta), G the sum's buffer."""
    np.sum(D, axis=0, out=G)
    np.subtract(b, G, out=b)


def _torch_activation_(act, A):
    """A := act(A) in place."""
    if act == "sigmoid":
        return A.sigmoid_()
    return A.relu_() if act == "relu" else A


def _torch_derivative(torch, act, A, T):
    """_numpy_derivative in torch: A - A^2, or the sign of A."""
    if act == "relu":
        return torch.sign(A, out=T)
    torch.mul(A, A, out=T)
    return torch.sub(A, T, out=T)


def _torch_linear(torch, A, W, b, out):
    """out := A W (+ b), the bias added by the product (addmm) as PyTorch users write it."""
    return torch.mm(A, W, out=out) if b is None else torch.addmm(b, A, W, out=out)


def _layer_views(trainer, Xb, b):
    """A deep step's buffers (NumpyTrainer's and TorchTrainer's A, T, D, one a layer) cut
    to the batch's b rows, and each layer's input (Xb, then the outputs before it)."""
    A = [a[:b] for a in trainer.A]
    return A, [t[:b] for t in trainer.T], [d[:b] for d in trainer.D], [Xb] + A[:-1]


class NumpyTrainer(Trainer):
    """The same loop as ``fastnet.reference.fit`` written for speed: every buffer is
    allocated once, GEMMs write into them (``np.matmul(..., out=)``, transposes as views
    so BLAS reads them in place), element-wise steps run in place, and the learning rate
    and 2/N are folded into delta_O so each update is a single ``W -= G`` (biases:
    ``b -= sum of delta's rows``). Two layers unrolled (xor and digits time its Python);
    more (``deep``) a loop over the layers of the same steps (_deep_step)."""

    name = "numpy"

    def __init__(self, workload, X, Y, weights):
        super().__init__(workload, X, Y, weights)
        self.W = [np.array(W, copy=True) for W in weights]
        B, dt = self.batch, X.dtype
        self.A = [np.empty((B, W.shape[1]), dt) for W in self.W]  # each layer's output
        self.T = [np.empty_like(A) for A in self.A]  # act' = A (1 - A)
        self.D = [np.empty_like(A) for A in self.A]  # lr * delta
        self.G = [np.empty_like(W) for W in self.W]
        self.b = [np.zeros(W.shape[1], dt) for W in self.W] if self.bias else []
        self.Gb = [np.empty_like(b) for b in self.b]
        if self.shuffled:  # each batch's rows gathered into these (np.take(out=))
            self.Xb = np.empty((B, X.shape[1]), dt)
            self.Yb = np.empty((B, Y.shape[1]), dt)

    def _deep_step(self, Xb, Yb, b):
        """One batch of a network of more than two layers: the deltas from the output down
        (each from the forward pass's weights), then the updates. Returns sum (O - Y)^2."""
        W, G, L, acts = self.W, self.G, len(self.W), self.acts
        A, T, D, inputs = _layer_views(self, Xb, b)
        for l in range(L):
            np.matmul(inputs[l], W[l], out=A[l])
            if self.bias:
                np.add(A[l], self.b[l], out=A[l])
            _NUMPY_ACTIVATIONS[acts[l]](A[l])
        np.subtract(A[-1], Yb, out=D[-1])
        total = float(np.vdot(D[-1], D[-1]))
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                np.matmul(D[l + 1], W[l + 1].T, out=D[l])
            if acts[l] != "identity":
                np.multiply(D[l], _numpy_derivative(acts[l], A[l], T[l]), out=D[l])
            if l == L - 1:
                np.multiply(D[l], 2 * self.lr / b, out=D[l])
        for l in range(L):
            np.matmul(inputs[l].T, D[l], out=G[l])
            np.subtract(W[l], G[l], out=W[l])
        for bl, Gl, Dl in zip(self.b, self.Gb, D):
            _numpy_bias_step(bl, Gl, Dl)
        return total

    def epochs(self, k):
        X, Y = self.X, self.Y
        deep = len(self.W) > 2
        if not deep:  # the unrolled loop's names
            (W1, W2), (G1, G2) = self.W, self.G
            (H_all, O_all), (TH_all, TO_all), (dH_all, dO_all) = self.A, self.T, self.D
            if self.bias:
                (b1, b2), (Gb1, Gb2) = self.b, self.Gb
        E, B = X.shape[0], self.batch
        (hidden, output), bias = self.acts[-2:], self.bias
        hidden_, output_ = _NUMPY_ACTIVATIONS[hidden], _NUMPY_ACTIVATIONS[output]
        history = []
        with np.errstate(over="ignore"):
            for _ in range(k):
                total = 0.0
                perm = self.order() if self.shuffled else None
                for s in range(0, E, B):
                    b = min(B, E - s)
                    if perm is None:
                        Xb, Yb = X[s : s + b], Y[s : s + b]
                    else:
                        # mode="clip": the indices are in range, and with the default
                        # ("raise") out= is written through a temporary buffer
                        idx = perm[s : s + b]
                        Xb = np.take(X, idx, axis=0, out=self.Xb[:b], mode="clip")
                        Yb = np.take(Y, idx, axis=0, out=self.Yb[:b], mode="clip")
                    if deep:
                        total += self._deep_step(Xb, Yb, b)
                        continue
                    H, TH, dH = H_all[:b], TH_all[:b], dH_all[:b]
                    O, TO, dO = O_all[:b], TO_all[:b], dO_all[:b]
                    np.matmul(Xb, W1, out=H)
                    if bias:
                        np.add(H, b1, out=H)
                    hidden_(H)  # H_out = sig(X W1 (+ b1)) (or relu)
                    np.matmul(H, W2, out=O)
                    if bias:
                        np.add(O, b2, out=O)
                    output_(O)  # O_out = sig(H_out W2 (+ b2)) (or the identity)
                    np.subtract(O, Yb, out=dO)
                    total += float(np.vdot(dO, dO))  # sum (O - Y)^2
                    if output != "identity":  # sig' = O (1 - O)
                        np.multiply(dO, _numpy_derivative(output, O, TO), out=dO)
                    np.multiply(dO, 2 * self.lr / b, out=dO)  # lr * delta_O
                    np.matmul(dO, W2.T, out=dH)
                    if hidden != "identity":  # lr * delta_H
                        np.multiply(dH, _numpy_derivative(hidden, H, TH), out=dH)
                    np.matmul(H.T, dO, out=G2)
                    np.subtract(W2, G2, out=W2)  # W2 -= lr H^T delta_O
                    np.matmul(Xb.T, dH, out=G1)
                    np.subtract(W1, G1, out=W1)  # W1 -= lr X^T delta_H
                    if bias:
                        _numpy_bias_step(b2, Gb2, dO)
                        _numpy_bias_step(b1, Gb1, dH)
                history.append(total / E)
        return history

    def weights(self):
        return self.W

    def biases(self):
        return self.b


class TorchTrainer(Trainer):
    """PyTorch CPU with manual backprop on preallocated tensors (no autograd graph, no
    per-step allocation): ``torch.mm(out=)``, in-place sigmoid, and the update fused into
    the gradient GEMM with ``W.addmm_(A.t(), delta, alpha=-1)`` (biases: added by
    ``addmm``, stepped by ``b -= sum of delta's rows``). The strongest plain
    PyTorch a user would write for this model. Two layers unrolled, more a loop over the
    layers (_deep_step), as NumpyTrainer."""

    name = "torch"

    def __init__(self, workload, X, Y, weights):
        super().__init__(workload, X, Y, weights)
        import torch

        self.torch = torch
        self.Xt, self.Yt = torch.from_numpy(X), torch.from_numpy(Y)
        self.W = [torch.from_numpy(np.array(W, copy=True)) for W in weights]
        B, dt = self.batch, self.W[0].dtype
        self.A = [torch.empty((B, W.shape[1]), dtype=dt) for W in self.W]
        self.T = [torch.empty_like(A) for A in self.A]
        self.D = [torch.empty_like(A) for A in self.A]
        self.b = [torch.zeros(W.shape[1], dtype=dt) for W in self.W] if self.bias else []
        self.Gb = [torch.empty_like(b) for b in self.b]
        if self.shuffled:  # each batch's rows gathered into these (index_select(out=))
            self.Xb = torch.empty((B, X.shape[1]), dtype=dt)
            self.Yb = torch.empty((B, Y.shape[1]), dtype=dt)

    def _deep_step(self, Xb, Yb, b):
        """NumpyTrainer._deep_step in torch; returns sum (O - Y)^2 as a tensor."""
        torch, W, L, acts = self.torch, self.W, len(self.W), self.acts
        A, T, D, inputs = _layer_views(self, Xb, b)
        for l in range(L):
            bias = self.b[l] if self.bias else None
            _torch_activation_(acts[l], _torch_linear(torch, inputs[l], W[l], bias, A[l]))
        torch.sub(A[-1], Yb, out=D[-1])
        total = torch.dot(D[-1].view(-1), D[-1].view(-1))
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                torch.mm(D[l + 1], W[l + 1].t(), out=D[l])
            if acts[l] != "identity":
                D[l].mul_(_torch_derivative(torch, acts[l], A[l], T[l]))
            if l == L - 1:
                D[l].mul_(2 * self.lr / b)
        for l in range(L):
            W[l].addmm_(inputs[l].t(), D[l], alpha=-1)
        for bl, Gl, Dl in zip(self.b, self.Gb, D):
            bl.sub_(torch.sum(Dl, 0, out=Gl))
        return total

    def epochs(self, k):
        torch = self.torch
        X, Y = self.Xt, self.Yt
        deep = len(self.W) > 2
        if not deep:  # the unrolled loop's names
            W1, W2 = self.W
            (H_all, O_all), (TH_all, TO_all), (dH_all, dO_all) = self.A, self.T, self.D
            (b1, b2), (Gb1, Gb2) = self.b or (None, None), self.Gb or (None, None)
        E, B = X.shape[0], self.batch
        hidden, output = self.acts[-2:]
        history = []
        with torch.no_grad():
            for _ in range(k):
                total = torch.zeros((), dtype=torch.float64)
                perm = torch.from_numpy(self.order()) if self.shuffled else None
                for s in range(0, E, B):
                    b = min(B, E - s)
                    if perm is None:
                        Xb, Yb = X[s : s + b], Y[s : s + b]
                    else:
                        Xb = torch.index_select(X, 0, perm[s : s + b], out=self.Xb[:b])
                        Yb = torch.index_select(Y, 0, perm[s : s + b], out=self.Yb[:b])
                    if deep:
                        total += self._deep_step(Xb, Yb, b)
                        continue
                    H, TH, dH = H_all[:b], TH_all[:b], dH_all[:b]
                    O, TO, dO = O_all[:b], TO_all[:b], dO_all[:b]
                    _torch_activation_(hidden, _torch_linear(torch, Xb, W1, b1, H))
                    _torch_activation_(output, _torch_linear(torch, H, W2, b2, O))
                    torch.sub(O, Yb, out=dO)
                    total += torch.dot(dO.view(-1), dO.view(-1))
                    if output != "identity":  # O (1 - O)
                        dO.mul_(_torch_derivative(torch, output, O, TO))
                    dO.mul_(2 * self.lr / b)  # lr * delta_O
                    torch.mm(dO, W2.t(), out=dH)
                    if hidden != "identity":  # lr * delta_H
                        dH.mul_(_torch_derivative(torch, hidden, H, TH))
                    W2.addmm_(H.t(), dO, alpha=-1)
                    W1.addmm_(Xb.t(), dH, alpha=-1)
                    if b1 is not None:
                        b2.sub_(torch.sum(dO, 0, out=Gb2))
                        b1.sub_(torch.sum(dH, 0, out=Gb1))
                history.append(float(total) / E)
        return history

    def weights(self):
        return [W.numpy() for W in self.W]

    def biases(self):
        return [b.numpy() for b in self.b]


class TorchAutogradTrainer(Trainer):
    """PyTorch the usual way: ``nn.Linear`` layers (with biases, started at 0, where the
    workload has them), autograd and ``torch.optim.SGD``, with the loss in the seed's
    convention ``((O-Y)**2).sum()/N``."""

    name = "torch-autograd"

    def __init__(self, workload, X, Y, weights):
        super().__init__(workload, X, Y, weights)
        import torch

        self.torch = torch
        self.Xt, self.Yt = torch.from_numpy(X), torch.from_numpy(Y)
        dt = self.Xt.dtype
        self.linears = [torch.nn.Linear(*W.shape, bias=self.bias, dtype=dt) for W in weights]
        with torch.no_grad():  # Linear stores W^T: y = x W^T
            for lin, W in zip(self.linears, weights):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                if self.bias:
                    lin.bias.zero_()
        modules = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}
        self.model = torch.nn.Sequential(*(
            m for lin, act in zip(self.linears, self.acts)
            for m in ((lin, modules[act]()) if act in modules else (lin,))))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=0.0)

    def epochs(self, k):
        torch = self.torch
        X, Y, model, opt = self.Xt, self.Yt, self.model, self.opt
        E, B = X.shape[0], self.batch
        history = []
        for _ in range(k):
            total = torch.zeros((), dtype=torch.float64)
            perm = torch.from_numpy(self.order()) if self.shuffled else None
            for s in range(0, E, B):
                if perm is None:
                    Xb, Yb = X[s : s + B], Y[s : s + B]
                else:  # the usual X[idx]
                    idx = perm[s : s + B]
                    Xb, Yb = X[idx], Y[idx]
                opt.zero_grad(set_to_none=True)
                sq = ((model(Xb) - Yb) ** 2).sum()
                loss = sq / Xb.shape[0]
                loss.backward()
                opt.step()
                total += sq.detach()
            history.append(float(total) / E)
        return history

    def weights(self):
        return [lin.weight.detach().numpy().T for lin in self.linears]

    def biases(self):
        return [lin.bias.detach().numpy() for lin in self.linears] if self.bias else []


class SklearnTrainer(Trainer):
    """scikit-learn's ``MLPRegressor``: logistic hidden layer (relu in the -relu
    workloads), plain SGD (no momentum, no L2, constant learning rate), the same batches in
    the same order, one ``partial_fit`` per epoch (= ``max_iter=1``), starting from the same
    W1, W2. It always has biases (started at 0) and an identity output layer.

    On a workload of that model (``digits-regressor``) it is checked like the others: its
    loss is ``sum/(2N)``, so ``learning_rate_init = 2 lr`` takes the same steps. Elsewhere it
    is the nearest peer, a different model timed but not checked (shuffled: its own orders,
    from its random_state); there its output has no sigmoid' (<= 1/4) factor, so
    ``learning_rate_init = lr / 2`` bounds its steps by the seed's largest (``2 lr`` diverges
    on xor and digits)."""

    name = "sklearn"

    @classmethod
    def checks(cls, workload):
        return workload.bias and workload.output == "identity" and not workload.shuffle

    def __init__(self, workload, X, Y, weights):
        super().__init__(workload, X, Y, weights)
        import warnings

        from sklearn.neural_network import MLPRegressor

        self.Yfit = Y.ravel() if Y.shape[1] == 1 else Y
        self.model = MLPRegressor(
            hidden_layer_sizes=tuple(W.shape[1] for W in weights[:-1]),
            activation={"sigmoid": "logistic"}.get(workload.activation, workload.activation),
            solver="sgd",
            learning_rate="constant",
            learning_rate_init=self.lr * 2 if self.checked else self.lr / 2, momentum=0.0,
            nesterovs_momentum=False, alpha=0.0, batch_size=self.batch, shuffle=self.shuffled,
            max_iter=1, early_stopping=False,
            # a generator, not a seed: from a seed, each partial_fit (an epoch here) would
            # start the same generator again and shuffle the rows the same way every epoch
            random_state=np.random.RandomState(SEED),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(X[: self.batch], self.Yfit[: self.batch])  # allocates
        # The optimizer holds these very arrays: overwrite them in place.
        for P, W in zip(self.model.coefs_, weights):
            P[...] = W
        for b in self.model.intercepts_:
            b[...] = 0

    def epochs(self, k):
        history = []
        for _ in range(k):
            self.model.partial_fit(self.X, self.Yfit)
            # its loss_ is mean/2 over all entries; convert to sum/N
            history.append(float(self.model.loss_) * 2 * self.Y.shape[1])
        return history

    def weights(self):
        return list(self.model.coefs_)

    def biases(self):
        return list(self.model.intercepts_) if self.bias else []


TRAINERS = {
    "fastnet": FastnetTrainer,
    "numpy": NumpyTrainer,
    "torch": TorchTrainer,
    "torch-autograd": TorchAutogradTrainer,
    "sklearn": SklearnTrainer,
}
# Which optional module each implementation needs.
REQUIRES = {"torch": "torch", "torch-autograd": "torch", "sklearn": "sklearn"}
DEFAULT_IMPLS = ("fastnet", "numpy", "torch", "sklearn")


def available(name):
    """True if the implementation's optional dependency imports."""
    mod = REQUIRES.get(name)
    return mod is None or optional(mod) is not None


def make_trainer(name, workload, dtype, weights=None):
    X, Y = make_data(workload, dtype)
    if weights is None:
        weights = initial_weights(workload, dtype)
    return TRAINERS[name](workload, X, Y, weights)


# --------------------------------------------------------------------------- predictors


def make_predictor(name, workload, dtype, weights=None):
    """A zero-argument callable computing O_out for the workload's X with the given
    implementation (sklearn: its MLPRegressor with these weights, zero biases, identity
    output)."""
    X, _ = make_data(workload, dtype)
    if weights is None:
        weights = initial_weights(workload, dtype)
    W1, W2 = (np.array(W, copy=True) for W in weights)
    if name == "fastnet":
        net = fastnet.Network(list(workload.layers), dtype=dtype, seed=0)
        net.weights = [W1, W2]
        return lambda: net.predict(X)
    if name == "numpy":

        def predict():  # sigmoid(sigmoid(X @ W1) @ W2), sigmoids in place
            with np.errstate(over="ignore"):
                return _sigmoid_(_sigmoid_(X @ W1) @ W2)

        return predict
    if name == "torch":
        import torch

        Xt, W1t, W2t = torch.from_numpy(X), torch.from_numpy(W1), torch.from_numpy(W2)

        def predict():
            with torch.inference_mode():
                return torch.mm(torch.mm(Xt, W1t).sigmoid_(), W2t).sigmoid_().numpy()

        return predict
    if name == "torch-autograd":
        import torch

        Y = np.zeros((X.shape[0], W2.shape[1]), X.dtype)
        t = TorchAutogradTrainer(workload, X, Y, [W1, W2])

        def predict():
            with torch.inference_mode():
                return t.model(t.Xt).numpy()

        return predict
    if name == "sklearn":
        Y = np.zeros((X.shape[0], W2.shape[1]), X.dtype)
        model = SklearnTrainer(workload, X, Y, [W1, W2]).model
        return lambda: model.predict(X)
    raise ValueError(f"unknown implementation {name!r}")


# --------------------------------------------------------------------------- the gate


@dataclass
class Agreement:
    workload: str
    dtype: str
    ok: bool
    losses: dict  # implementation -> list of epoch losses (or predict outputs' checksum)
    max_rel_diff: dict  # implementation -> max relative loss difference to fastnet (predict:
    #                     max absolute output difference)
    weights_rel_diff: dict  # implementation -> relative norm of the weights' difference
    message: str

    @property
    def verdict(self):
        """ok, or None when no peer was compared (fastnet alone, or none installed)."""
        return self.ok if self.max_rel_diff else None


def check_agreement(workload, dtype, impls, epochs=2):
    """Trains ``epochs`` epochs with each checked implementation from the same weights on
    the same data and compares each epoch loss with fastnet's (``RTOL[dtype]``) and the
    final weights (relative Frobenius norm of the difference, ``WEIGHTS_RTOL``). For the
    predict workload compares the outputs instead. Unchecked or missing implementations
    are left out."""
    dtype = np.dtype(dtype)
    names = [n for n in impls if n != "fastnet" and available(n)
             and (workload.name == "predict" or TRAINERS[n].checks(workload))]
    results, diffs, wdiffs, bad = {}, {}, {}, []
    if workload.name == "predict":
        atol = PREDICT_ATOL[dtype.name]
        ref = make_predictor("fastnet", workload, dtype)()
        results["fastnet"] = float(ref.sum())
        for n in names:
            if n == "sklearn":
                continue  # identity output: a different function
            out = np.asarray(make_predictor(n, workload, dtype)())
            results[n] = float(out.sum())
            diffs[n] = float(np.max(np.abs(out - ref)))
            try:
                np.testing.assert_allclose(out, ref, rtol=0, atol=atol)
            except AssertionError:
                bad.append(f"{n} (max abs diff {diffs[n]:.2e} > {atol:g})")
    else:
        k = epochs * workload.epochs_per_call if workload.data_name == "xor" else epochs
        rtol, wtol = RTOL[dtype.name], WEIGHTS_RTOL[dtype.name]
        fast = make_trainer("fastnet", workload, dtype)
        ref = np.array(fast.epochs(k))
        ref_w = fast.parameters()
        results["fastnet"] = ref.tolist()
        for n in names:
            trainer = make_trainer(n, workload, dtype)
            got = np.array(trainer.epochs(k))
            results[n] = got.tolist()
            diffs[n] = float(np.max(np.abs(got - ref) / np.abs(ref)))
            params = trainer.parameters()
            if len(params) != len(ref_w):
                raise RuntimeError(f"{n} has {len(params)} parameter arrays; fastnet has "
                                   f"{len(ref_w)}")
            wdiffs[n] = wdiff = max(
                float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))
                for a, b in zip(params, ref_w)
            )
            try:
                np.testing.assert_allclose(got, ref, rtol=rtol, atol=0)
            except AssertionError:
                bad.append(f"{n} (loss max rel diff {diffs[n]:.2e} > {rtol:g})")
            if not wdiff <= wtol:
                bad.append(f"{n} (weights rel diff {wdiff:.2e} > {wtol:g})")
    params = "losses, weights and biases" if workload.bias else "losses and weights"
    what = "outputs" if workload.name == "predict" else f"{params} after {k} epochs"
    label = workload.name
    if workload.name == "predict":
        label += f" ({workload.n_examples} row{'s' if workload.n_examples > 1 else ''})"
    if bad:
        msg = (f"{label} {dtype.name}: {what} disagree with fastnet: "
               + ", ".join(bad))
    else:
        if workload.name == "predict":
            kind = "max abs diff"
            shown = ", ".join(f"{n} {d:.1e}" for n, d in diffs.items())
        else:
            kind = "rel diff of loss / weights"
            shown = ", ".join(f"{n} {d:.1e} / {wdiffs[n]:.1e}" for n, d in diffs.items())
        shown = shown or "no peer to compare"
        msg = f"{label} {dtype.name}: {what} agree with fastnet ({kind}: {shown})"
    return Agreement(workload.name, dtype.name, not bad, results, diffs, wdiffs, msg)
