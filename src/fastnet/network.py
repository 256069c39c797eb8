"""fastnet.Network: the seed's multilayer perceptron, trained by the C kernels.

The API layer owns validation (through ``_validation``) and the network's state: the
weights, biases, activation names and dtype. Every public method validates all of its
arguments before it changes anything, so a call that raises leaves the network as it was.
"""
from __future__ import annotations

import functools
import math
import os
import time
import zipfile

import numpy as np

from . import _core
from . import _validation as v
from ._memory import ALIGN, aligned_copy, aligned_empty

FILE_FORMAT = "fastnet.Network"
FILE_VERSION = 1

# Epochs of row orders handed to C in one call: bounds the memory of shuffled orders.
_ORDER_ENTRIES_PER_CALL = 1 << 22

# Seconds of training per C call. Python runs signal handlers (Ctrl-C's KeyboardInterrupt)
# between calls (a call also asks, between batches, at most this often, whether SIGINT
# arrived: its epochs can be longer), so a fit is cut into calls of about this long; each
# costs ~10 us, and the results do not depend on the cut (every epoch's order comes from
# the same generator, and each call goes on from the weights the last one left).
_SECONDS_PER_CALL = 0.1
# A fast estimate of an epoch's time for the first call (one core's rate, plus the
# per-batch cost of the smallest networks): a short fit is one call, and a long one
# learns its real rate from that call.
_FAST_FLOP_RATE = 1.0e11
_FAST_BATCH_SECONDS = 1.0e-7

# The largest finite value of each dtype (a learning rate beyond it is infinity in C).
_LARGEST = {dt: float(np.finfo(dt).max) for dt in v.DTYPES}


def _own(a, dtype):
    """``a`` if the network may keep it as a parameter (writable, C-contiguous, on a cache
    line, of ``dtype``), else an aligned copy."""
    if (isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.c_contiguous
            and a.flags.writeable and a.ctypes.data % ALIGN == 0):
        return a
    return aligned_copy(a, dtype)


class DivergenceError(FloatingPointError):
    """Training produced NaN or infinity. The network keeps the last finite weights (those
    at the start of the epoch that diverged); ``history`` holds the completed epochs' losses."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


class Network:
    """A multilayer perceptron ``layers = [n_in, n_hidden, ..., n_out]``.

    The seed's network is ``Network([n_in, n_hidden, n_out])``: H_in = X W1,
    H_out = act(H_in), O_in = H_out W2, O_out = act(O_in), no bias (``bias=True`` adds
    the usual bias vectors). ``activation`` is used by every hidden layer and, unless
    ``output_activation`` is given, by the output layer too. ``step_threshold`` is the
    ``t`` of the step activation.

    Weights start Glorot-uniform: ``W_i ~ U(-r, r)``, ``r = sqrt(6 / (n_i + n_{i+1}))``,
    drawn in float64 by ``numpy.random.default_rng(seed)`` and rounded to ``dtype``;
    biases start at zero. The same seed gives the same network.

    The loss is the seed's ``MSE = 1/N sum_e sum_n (O_out - Y)^2`` with N the number of
    rows (examples), not N * n_out.
    """

    def __init__(self, layers, activation="sigmoid", output_activation=None, bias=False,
                 dtype=np.float32, seed=None, step_threshold=0.0):
        seed = v.check_seed(seed)
        self._settings(layers, activation, output_activation, bias, dtype, step_threshold)
        rng = np.random.default_rng(seed)
        self._weights = []
        for n_a, n_b in zip(self._layers[:-1], self._layers[1:]):
            r = np.sqrt(6.0 / (n_a + n_b))
            self._weights.append(aligned_copy(rng.uniform(-r, r, (n_a, n_b)), self._dtype))
        self._biases = ([aligned_copy(np.zeros(n), self._dtype) for n in self._layers[1:]]
                        if self._bias else [])

    def _settings(self, layers, activation, output_activation, bias, dtype, step_threshold):
        """Checks and sets everything but the parameters (``load`` reads those)."""
        layers = v.check_layers(layers)
        activation = v.check_activation(activation, "activation")
        output_activation = v.check_activation(
            activation if output_activation is None else output_activation, "output_activation"
        )
        bias = v.check_bool(bias, "bias")
        dtype = v.check_dtype(dtype)
        step_threshold = v.check_real(step_threshold, "step_threshold")

        self._layers = layers
        self._activation = activation
        self._output_activation = output_activation
        self._bias = bool(bias)
        self._dtype = dtype
        self._step_threshold = step_threshold

    # ------------------------------------------------------------------ state

    @property
    def layers(self):
        return self._layers

    @property
    def activation(self):
        return self._activation

    @property
    def output_activation(self):
        return self._output_activation

    @property
    def activations(self):
        """The activation after each weight matrix."""
        return [self._activation] * (len(self._layers) - 2) + [self._output_activation]

    @property
    def bias(self):
        return self._bias

    @property
    def dtype(self):
        return self._dtype

    @property
    def step_threshold(self):
        return self._step_threshold

    @property
    def weights(self):
        """``[W1, W2, ...]``, ``W_i`` of shape ``(n_i, n_{i+1})``. The arrays are the
        network's own (edit them in place, or assign a whole new list to replace them)."""
        return list(self._weights)

    @weights.setter
    def weights(self, values):
        self._weights = self._check_params(values, "weights", self._weight_shapes())

    @property
    def biases(self):
        """``[b1, b2, ...]`` (``b_i`` of shape ``(n_{i+1},)``), or ``[]`` without bias."""
        return list(self._biases)

    @biases.setter
    def biases(self, values):
        if not self._bias:
            if values is None or len(values) == 0:
                return
            raise ValueError("biases: this network was made with bias=False; it has no biases")
        self._biases = self._check_params(values, "biases", [(n,) for n in self._layers[1:]])

    def _weight_shapes(self):
        return list(zip(self._layers[:-1], self._layers[1:]))

    def _check_params(self, values, name, shapes):
        if isinstance(values, np.ndarray) or not hasattr(values, "__len__"):
            raise TypeError(f"{name} must be a list of {len(shapes)} arrays; got {type(values)}")
        if len(values) != len(shapes):
            raise ValueError(f"{name} must have {len(shapes)} arrays; got {len(values)}")
        out = []
        for i, (value, shape) in enumerate(zip(values, shapes)):
            arr = v._real_array(value, f"{name}[{i}]")
            if arr.shape != shape:
                raise ValueError(f"{name}[{i}] must have shape {shape}; got {arr.shape}")
            arr = aligned_copy(v.c_array(arr, self._dtype, f"{name}[{i}]"), self._dtype)
            v.check_finite(arr, f"{name}[{i}]")
            out.append(arr)
        return out

    def __repr__(self):
        return (
            f"Network(layers={list(self._layers)}, activation={self._activation!r}, "
            f"output_activation={self._output_activation!r}, bias={self._bias}, "
            f"dtype=numpy.{self._dtype.name}, step_threshold={self._step_threshold})"
        )

    # ------------------------------------------------------------------ helpers

    def _c_net(self):
        # The C view of the network (pointers to the weight arrays) is built once for the
        # current lists of weights and biases; the setters put in new lists. Building it
        # took 1.3 us a call, a tenth of predicting one row.
        cached = self.__dict__.get("_c_net_cache")
        if cached is None or cached[1] is not self._weights or cached[2] is not self._biases:
            codes = [v.ACTIVATION_CODES[a] for a in self.activations]
            net = _core._Net(self._weights, self._biases, codes, self._step_threshold,
                             self._dtype == np.float32)
            cached = self._c_net_cache = (net, self._weights, self._biases)
        return cached[0]

    def __getstate__(self):  # copy and pickle: without the C view (rebuilt on use)
        state = dict(self.__dict__)
        state.pop("_c_net_cache", None)
        return state

    def __copy__(self):
        # a shallow copy shares the parameters, frozen or not (so fit of the copy refuses
        # a frozen one as fit of the original does, instead of updating the rest)
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__getstate__())
        return clone

    def __setstate__(self, state):
        # The parameters as writable arrays on cache lines, as the network's own always
        # are: unpickled ones need not be either (protocol 5's out-of-band buffers are
        # read-only bytes, which fit had written into; deep copies lose the alignment).
        self.__dict__.update(state)
        self._weights = [_own(W, self._dtype) for W in self._weights]
        self._biases = [_own(b, self._dtype) for b in self._biases]

    def _X(self, X, name="X", finite=True):
        return v.as_matrix(X, name, self._dtype, n_cols=self._layers[0], cols_what="layers[0]",
                           finite=finite)

    def _XY(self, X, Y, finite=True):
        X = self._X(X, finite=finite)
        Y = v.as_matrix(Y, "Y", self._dtype, n_cols=self._layers[-1], cols_what="layers[-1]",
                        allow_1d_column=True, finite=finite)
        v.check_rows_match(X, Y)
        return X, Y

    def _buffers(self, n_rows):
        return [aligned_empty((n_rows, n), self._dtype) for n in self._layers[1:]]

    def _output_only(self, X):
        """O_out for the rows of X (validated); the hidden layers' outputs stay in C's
        scratch instead of arrays made here."""
        out = _core.aligned_array(X.shape[0], self._layers[-1], 2, self._dtype.itemsize == 4)
        _core.forward(self._c_net(), X, None, [None] * (len(self._layers) - 2) + [out])
        return out

    # ------------------------------------------------------------------ the seed

    def forward(self, X, trace=False):
        """``O_out`` for the rows of X. With ``trace=True`` returns ``(O_out, trace)`` where
        ``trace`` holds every intermediate of the seed: ``X``, then ``H_in``, ``H_out``
        (``H1_in``, ``H1_out``, ``H2_in``, ... with more than one hidden layer), ``O_in``
        and ``O_out``."""
        X = self._X(X)
        if not trace:
            return self._output_only(X)
        post, pre = self._buffers(X.shape[0]), self._buffers(X.shape[0])
        _core.forward(self._c_net(), X, pre, post)
        names = _trace_names(len(self._layers) - 1)
        out = {"X": X}
        for name, a, b in zip(names, pre, post):
            out[f"{name}_in"] = a
            out[f"{name}_out"] = b
        return post[-1], out

    def predict(self, X):
        """The network's output ``O_out`` for the rows of X."""
        return self._output_only(self._X(X))  # forward(X) without its choice (0.1 us)

    def loss(self, X, Y):
        """The seed's ``MSE = 1/N sum_e sum_n (O_out - Y)^2``, N = number of rows."""
        X, Y = self._XY(X, Y)
        return float(_core.mse(self._output_only(X), Y))

    def gradients(self, X, Y):
        """Backpropagation: ``(dW, db)``, ``dW[i] = dMSE/dW_i`` (same shapes as the
        weights) and ``db[i] = dMSE/db_i`` (empty without bias)."""
        X, Y = self._XY(X, Y)
        dW = [aligned_empty(W.shape, self._dtype) for W in self._weights]
        db = [aligned_empty(b.shape, self._dtype) for b in self._biases]
        _core.gradients(self._c_net(), X, Y, dW, db)
        return dW, db

    def step(self, X, Y, learning_rate):
        """One gradient-descent step ``W := W - learning_rate * dMSE/dW`` on all rows of X;
        returns the loss before the step.

        The same as ``fit(X, Y, 1, learning_rate)[0]``, without fit's loop over calls:
        a step of a digits-sized batch cost 17 us through fit, whose own work is 8."""
        X, Y, learning_rate = self._trainable(X, Y, learning_rate)
        losses = np.empty(1)
        losses.fill(np.nan)
        _, diverged = _core.train(self._c_net(), X, Y, None, 1, X.shape[0], learning_rate,
                                  losses)
        if diverged:
            _diverged(self, X, Y, learning_rate, [])
        return float(losses[0])

    def _trainable(self, X, Y, learning_rate):
        """fit's and step's checks: (X, Y, learning_rate) validated, the parameters
        writable."""
        X, Y = self._XY(X, Y, finite=False)
        for name, params in (("weights", self._weights), ("biases", self._biases)):
            for i, p in enumerate(params):
                if not p.flags.writeable:
                    raise ValueError(
                        f"{name}[{i}] is read-only (flags.writeable is False); fit and step "
                        "update the network's arrays in place"
                    )
        learning_rate = v.check_real(learning_rate, "learning_rate", positive=True)
        if learning_rate > _LARGEST[self._dtype]:  # C would take it as infinity
            raise ValueError(
                f"learning_rate is too large for {self._dtype.name}: {learning_rate} (its "
                f"largest is {_LARGEST[self._dtype]:.7g})"
            )
        return X, Y, learning_rate

    def fit(self, X, Y, epochs, learning_rate, batch_size=None, shuffle=True, seed=None):
        """Minibatch gradient descent; returns the list of each epoch's loss.

        ``batch_size=None`` is the seed's full-batch gradient descent (every step uses all
        rows). With ``shuffle`` each epoch visits the rows in a new order drawn from
        ``numpy.random.default_rng(seed)`` (full batches need no order: the sum is the
        same). An epoch's loss is (1/N) sum of (O_out - Y)^2 over its batches, each taken
        with the weights before that batch's update; for full batches it is the MSE before
        the step. All epochs run in C with the GIL released.

        If training diverges to NaN or infinity, raises ``DivergenceError`` and keeps the
        weights of the start of the epoch that diverged.

        Ctrl-C (KeyboardInterrupt) stops a fit within about a tenth of a second, at the end
        of the batch running then (with full batches, the epoch): the network keeps the
        epochs completed by then, with the weights of the start of the epoch it stopped
        in, and their losses are the exception's ``history``. Other signal handlers run
        between the calls into C (about every tenth of a second, or after an epoch longer
        than that), on the network of the epochs done; an exception one raises ends the
        fit the same way.
        """
        # NaN and infinity in X and Y are looked for only if training fails: any of them
        # makes the first epoch's loss or weights non-finite (each X[e, i] enters W[0]'s
        # gradient as X[e, i] * delta[e, j], and inf * 0 is NaN), so the run stops there
        # and the weights are restored to those given. Good data is then read once a
        # call, not twice (2% of a digits or mnist epoch in a loop of one-epoch fits).
        X, Y, learning_rate = self._trainable(X, Y, learning_rate)
        epochs = v.check_int(epochs, "epochs", minimum=0)
        batch_size = v.check_int(batch_size, "batch_size", minimum=1, allow_none=True)
        shuffle = v.check_bool(shuffle, "shuffle")
        seed = v.check_seed(seed)

        if epochs == 0:  # no training to find them
            _check_finite(X, Y)
        n_rows = X.shape[0]
        batch = n_rows if batch_size is None else min(batch_size, n_rows)
        shuffled = bool(shuffle) and batch < n_rows
        rng = np.random.default_rng(seed) if shuffled else None
        net = self._c_net()
        per_call = max(1, _ORDER_ENTRIES_PER_CALL // n_rows) if shuffled else max(epochs, 1)
        batches = -(-n_rows // batch)
        flop = 6.0 * n_rows * _mac_per_row(self._layers)
        epoch_seconds = flop / _FAST_FLOP_RATE + batches * _FAST_BATCH_SECONDS
        # Each call's losses, NaN until C completes the epoch: wherever an interrupt lands,
        # the epochs completed are exactly those with a loss.
        calls, completed = [], 0
        try:
            while completed < epochs:
                count = min(per_call, epochs - completed,
                            max(1, int(_SECONDS_PER_CALL / epoch_seconds)))
                order = None
                if shuffled:  # rng.permutation(n_rows) for each epoch, drawn in C
                    order = np.empty((count, n_rows), np.int64)
                    _core.permutations(rng.bit_generator, order)
                losses = np.empty(count)  # np.full costs 0.8 us, this 0.3
                losses.fill(np.nan)
                calls.append(losses)
                start = time.perf_counter()
                done, diverged = _core.train(net, X, Y, order, count, batch, learning_rate,
                                             losses)
                epoch_seconds = max(time.perf_counter() - start, 1e-9) / count
                completed += done
                if diverged:
                    _diverged(self, X, Y, learning_rate, _completed(calls))
        except BaseException as stop:  # Ctrl-C (a signal handler's exception), among others
            stop.history = _completed(calls)
            raise
        return _completed(calls)

    # ------------------------------------------------------------------ persistence

    def save(self, path):
        """Writes the network to ``path`` (exactly that name) as an ``.npz`` archive:
        ``format`` ("fastnet.Network"), ``format_version`` (1), ``layers`` (int64),
        ``activation``, ``output_activation`` (strings), ``bias`` (bool), ``dtype``
        ("float32"/"float64"), ``step_threshold`` (float64), ``W0``..``W{L-1}`` and, with
        bias, ``b0``..``b{L-1}``. Nothing in it needs pickle to read. Parameters set to NaN
        or infinity in place raise ValueError, as ``load`` would refuse the file."""
        for name, params in (("weights", self._weights), ("biases", self._biases)):
            for i, p in enumerate(params):
                try:
                    v.check_finite(p, f"{name}[{i}]")
                except ValueError as exc:
                    raise ValueError(f"cannot save this network: {exc}") from None
        arrays = {
            "format": np.array(FILE_FORMAT),
            "format_version": np.array(FILE_VERSION, np.int64),
            "layers": np.array(self._layers, np.int64),
            "activation": np.array(self._activation),
            "output_activation": np.array(self._output_activation),
            "bias": np.array(self._bias),
            "dtype": np.array(self._dtype.name),
            "step_threshold": np.array(self._step_threshold, np.float64),
        }
        for i, W in enumerate(self._weights):
            arrays[f"W{i}"] = W
        for i, b in enumerate(self._biases):
            arrays[f"b{i}"] = b
        with open(os.fspath(path), "wb") as f:
            np.savez(f, **arrays)

    def __eq__(self, other):
        if not isinstance(other, Network):
            return NotImplemented
        return (
            self._layers == other._layers
            and self.activations == other.activations
            and self._bias == other._bias
            and self._dtype == other._dtype
            and self._step_threshold == other._step_threshold
            and all(np.array_equal(a, b) for a, b in zip(self._weights, other._weights))
            and all(np.array_equal(a, b) for a, b in zip(self._biases, other._biases))
        )

    __hash__ = None


def _check_finite(X, Y):
    v.check_finite(X, "X")
    v.check_finite(Y, "Y")


def _diverged(net, X, Y, learning_rate, history):
    """Raises for a fit or step of ``net`` that diverged after the epochs of ``history``:
    bad data (found in the first epoch, the weights as given) as ValueError, else
    DivergenceError, which says when the loss overflows at the weights kept, where no
    learning rate helps."""
    _check_finite(X, Y)
    where = (f"training diverged to NaN or infinity in epoch {len(history) + 1} "
             f"(learning_rate={learning_rate}); the weights are those at the start of that "
             "epoch.")
    if math.isfinite(net.loss(X, Y)):
        advice = "A smaller learning_rate may help."
    else:
        advice = (f"The loss at those weights is already infinite: (O_out - Y)^2 overflows "
                  f"{net.dtype.name} (|X| up to {np.abs(X).max():.3g}, |Y| up to "
                  f"{np.abs(Y).max():.3g}), and no learning_rate helps; scale the data down.")
    raise DivergenceError(f"{where} {advice}", history)


@functools.lru_cache(maxsize=64)
def _mac_per_row(layers):
    """Multiply-adds of one row through every layer (0.6 us to sum: kept per shape)."""
    return sum(a * b for a, b in zip(layers[:-1], layers[1:]))


def _completed(calls):
    """The losses of the epochs completed by a fit's calls: each call's leading losses
    (C writes an epoch's loss when it completes it; the rest stay NaN)."""
    history = []
    for losses in calls:
        if math.isnan(losses[-1]):  # cut short; when all are done this check (0.1 us) is all
            done = np.flatnonzero(np.isnan(losses))
            history.extend(losses[:done[0]].tolist())
        else:
            history.extend(losses.tolist())
    return history


def _trace_names(n_layers):
    if n_layers == 1:
        return ["O"]
    if n_layers == 2:
        return ["H", "O"]
    return [f"H{i}" for i in range(1, n_layers)] + ["O"]


def load(path):
    """Reads a network written by ``Network.save`` (no pickle is involved). A file that is
    missing raises ``FileNotFoundError``; one that is damaged or not a fastnet network
    raises ``ValueError``."""
    try:
        archive = np.load(os.fspath(path), allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # truncated zips, foreign formats: zipfile, OS and value errors
        raise ValueError(f"{path!s} is not a fastnet network file (.npz): {exc}") from exc
    if not hasattr(archive, "files"):
        raise ValueError(f"{path!s} is not a fastnet network file: it holds a single array")
    with archive:
        return _load_archive(archive, f"{path!s}")


# The longest string a field may hold (activation names, dtypes, the format's name).
_FIELD_CHARS = 64
# The most bytes a zip member's packed byte can unpack to, by method (stored, deflated).
_PACKING = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: 1032}
_FIELDS = {"format": "U", "format_version": "iu", "activation": "U",
           "output_activation": "U", "bias": "b", "dtype": "U", "step_threshold": "fiu"}


def _load_archive(archive, path):
    """The network in an open .npz archive. Every member's name, and each array's shape
    and dtype (from its .npy header), is checked against the declared layers before an
    array is read or a network built: a file of a few KB that declared layers of 10^12
    units, or held a member that inflates to gigabytes, had been read or allocated
    first."""
    damaged = f"{path} is a damaged fastnet network file"
    archive_files = set(archive.files)

    def broken(name, exc):
        """The error for member `name` failing to read with `exc` (an EOFError's message
        says nothing: its type does)."""
        return ValueError(f"{damaged}: {name}: {str(exc) or type(exc).__name__}")

    def read(name):
        try:
            return archive[name]
        except Exception as exc:  # damaged members: zip or format errors of any kind
            raise broken(name, exc) from exc

    def field(name):
        if name not in archive_files:
            raise ValueError(f"{path} is not a fastnet network file: it has no '{name}'")
        shape, dtype = header(name)
        if (shape != () or dtype.kind not in _FIELDS[name]
                or dtype.itemsize > _FIELD_CHARS * np.dtype("U1").itemsize):
            raise ValueError(
                f"{damaged}: '{name}' should be a single value of kind {_FIELDS[name]!r} "
                f"(strings of at most {_FIELD_CHARS} characters); got dtype {dtype}, "
                f"shape {shape}"
            )
        return read(name).item()

    def header(name):
        """(shape, dtype) of member `name` from its .npy header alone, once the member is
        known to hold as many bytes as the header declares."""
        try:
            with archive.zip.open(name + ".npy") as f:
                major, _ = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(f)
                declared = f.tell() + math.prod(shape) * dtype.itemsize
            info = archive.zip.getinfo(name + ".npy")
        except Exception as exc:
            raise broken(name, exc) from exc
        # the zip's own size of the member, which its packed bytes bound (deflate packs at
        # most 1032 to 1): a size the zip claims but cannot hold is not allocated for
        held = info.file_size
        if info.compress_type in _PACKING:
            held = min(held, _PACKING[info.compress_type] * info.compress_size + 1024)
        if held < declared:
            raise ValueError(f"{damaged}: {name} declares shape {shape} of {dtype} "
                             f"({declared} bytes) but holds {held} bytes at most")
        return shape, dtype

    if field("format") != FILE_FORMAT:
        raise ValueError(f"{path} is not a fastnet network file (format {read('format')!s})")
    version = field("format_version")
    if version != FILE_VERSION:
        raise ValueError(
            f"{path} has format_version {version}; this fastnet reads version {FILE_VERSION}"
        )
    settings = {name: field(name) for name in ("activation", "output_activation", "bias",
                                                "dtype", "step_threshold")}
    if "layers" not in archive_files:
        raise ValueError(f"{damaged}: it has no 'layers'")
    shape, dtype = header("layers")
    # each layer but the first has its W member: no more sizes than members
    if (len(shape) != 1 or dtype.kind not in "iu"
            or not 2 <= shape[0] <= len(archive_files) + 1):
        raise ValueError(f"{damaged}: 'layers' should be a 1-D integer array of at least 2 "
                         f"sizes, one more than its W members; got dtype {dtype}, shape "
                         f"{shape}, {len(archive_files)} members in all")
    layers = [int(n) for n in read("layers")]
    n, bias = len(layers) - 1, bool(settings["bias"])
    expected = set(_FIELDS) | {"layers"} | {f"W{i}" for i in range(n)}
    expected |= {f"b{i}" for i in range(n)} if bias else set()
    if archive_files != expected:
        extra = sorted(archive_files - expected)
        missing = sorted(expected - archive_files)
        raise ValueError(f"{damaged}: its arrays do not match layers {layers} "
                         f"(unexpected: {extra}, missing: {missing})")
    for i in range(n):
        for name, want in [(f"W{i}", (layers[i], layers[i + 1]))] + (
                [(f"b{i}", (layers[i + 1],))] if bias else []):
            shape, dtype = header(name)
            if shape != want:
                raise ValueError(f"{damaged}: {name} has shape {shape}; layers {layers} "
                                 f"make it {want}")
            if dtype.kind not in "biuf":
                raise ValueError(f"{damaged}: {name} holds {dtype}, not real numbers")
    net = Network.__new__(Network)  # its parameters are the file's: none are drawn
    net._biases = []  # what the biases setter keeps without bias
    try:  # the settings before any array is read
        net._settings(layers, settings["activation"], settings["output_activation"], bias,
                      settings["dtype"], float(settings["step_threshold"]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{damaged}: {exc}") from exc
    weights = [read(f"W{i}") for i in range(n)]
    biases = [read(f"b{i}") for i in range(n)] if bias else []
    try:
        net.weights = weights
        net.biases = biases
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{damaged}: {exc}") from exc
    return net
