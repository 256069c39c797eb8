"""Validation at the public boundary: every entry point of fastnet calls these, once,
before anything is changed. Each error names the argument, what was expected and what
was given.
"""
from __future__ import annotations

import math
import numbers
import operator

import numpy as np

from . import _core

ACTIVATION_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "step": 4}
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype, name="dtype"):
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be numpy.float32 or numpy.float64; got {dtype!r}") from exc
    if dt not in DTYPES:
        raise TypeError(f"{name} must be numpy.float32 or numpy.float64; got {dt}")
    return dt


def check_activation(value, name="activation"):
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be one of {sorted(ACTIVATION_CODES)} (a string); got {value!r}"
        )
    if value not in ACTIVATION_CODES:
        raise ValueError(f"{name} must be one of {sorted(ACTIVATION_CODES)}; got {value!r}")
    return str(value)  # a str subclass (numpy.str_) as the plain name


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_real(value, name, *, positive=False, allow_none=False):
    if value is None and allow_none:
        return None
    if type(value) is not float:  # isinstance against numbers.Real costs 0.3 us a call
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number; got {value!r}")
        try:
            value = float(value)
        except OverflowError:  # an int beyond float's range
            raise ValueError(
                f"{name} must be finite; got an integer of {int(value).bit_length()} bits"
            ) from None
    if not math.isfinite(value):  # np.isfinite of a float: 0.4 us
        raise ValueError(f"{name} must be finite; got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value


def check_int(value, name, *, minimum=None, maximum=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    try:
        value = operator.index(value)
    except TypeError as exc:
        raise TypeError(f"{name} must be an integer; got {value!r}") from exc
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {value}")
    return value


# The most values of 8 bytes an array's size in bytes can count.
MAX_WEIGHTS = int(np.iinfo(np.intp).max) // 8

SEED_TYPES = (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)


def check_seed(seed):
    """None, an integer >= 0, a SeedSequence, a BitGenerator or a Generator, as
    ``numpy.random.default_rng`` takes them (a BitGenerator or Generator is used as it is,
    so its state advances; a SeedSequence gives the same stream each time)."""
    if seed is None or isinstance(seed, SEED_TYPES):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not hasattr(seed, "__index__"):
        raise TypeError(
            "seed must be None, an integer >= 0, or a numpy.random Generator, BitGenerator "
            f"or SeedSequence; got {seed!r}"
        )
    return check_int(seed, "seed", minimum=0)


def check_layers(layers):
    if (isinstance(layers, (str, bytes, set, frozenset, dict)) or not hasattr(layers, "__len__")
            or getattr(layers, "ndim", 1) != 1):  # unordered, or not a sequence of sizes
        raise TypeError(
            f"layers must be a sequence of layer sizes [n_in, n_hidden, ..., n_out]; got {layers!r}"
        )
    if len(layers) < 2:
        raise ValueError(
            f"layers must have at least 2 sizes [n_in, ..., n_out]; got {list(layers)!r}"
        )
    layers = tuple(check_int(n, f"layers[{i}]", minimum=1) for i, n in enumerate(layers))
    for i, (n_a, n_b) in enumerate(zip(layers[:-1], layers[1:])):
        if n_a * n_b > MAX_WEIGHTS:  # the weights are drawn in float64
            raise ValueError(
                f"layers[{i}] x layers[{i + 1}] is {n_a * n_b} weights, more than an array "
                f"can hold ({MAX_WEIGHTS}); got layers {list(layers)}"
            )
    return layers


def _real_array(value, name):
    """Any array-like of real numbers as an ndarray (no copy when possible)."""
    if value is None:
        raise TypeError(f"{name} must be an array of real numbers; got None")
    if isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):  # asarray drops masks
        raise ValueError(f"{name} has masked values, which fastnet would read as the values "
                         "under the mask; fill them (.filled()) or leave out their rows")
    try:
        arr = np.asarray(value)
    except OverflowError as exc:  # a Python int beyond every real dtype
        raise _int_too_large(name, exc) from exc
    except (ValueError, TypeError) as exc:  # ragged nested lists, odd objects
        raise ValueError(f"{name} must be a rectangular array of real numbers: {exc}") from exc
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except OverflowError as exc:
            raise _int_too_large(name, exc) from exc
        except (ValueError, TypeError) as exc:
            raise TypeError(
                f"{name} must be an array of real numbers; got objects that are not ({exc})"
            ) from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers; got dtype {arr.dtype}")
    return arr


def _int_too_large(name, exc):
    return ValueError(f"{name} holds an integer too large for a real number "
                      f"(float64's largest is {np.finfo(np.float64).max:.7g}): {exc}")


def check_finite(arr, name):
    # The common case (all finite) in one parallel pass at memory speed, in C; the
    # position of the first bad value only when there is one.
    if arr.dtype in DTYPES and arr.flags.c_contiguous:
        if _core.all_finite(arr):
            return
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise ValueError(
            f"{name} contains NaN or infinity (first at index [{where}]: {arr[tuple(bad)]}); "
            "fastnet needs finite inputs"
        )


def as_matrix(value, name, dtype, *, n_cols=None, cols_what="", allow_1d_column=False,
              finite=True, examples=True):
    """`value` as a C-contiguous 2-D array of `dtype`. With ``examples`` (the network's
    inputs) rows are examples: at least one row and one column. Without (the kernels'
    operands) any shape is a matrix, as in NumPy, empty ones too."""
    if type(value) is np.ndarray and value.ndim == 2 and value.dtype == dtype:
        # Already what C reads, the usual call: its own checks only (0.3 us, where the
        # whole way took 0.8, a tenth of predicting one row).
        rows, cols = value.shape
        flags = value.flags
        if (flags.c_contiguous and flags.aligned and (n_cols is None or cols == n_cols)
                and (rows and cols or not examples)):
            if finite and not _core.all_finite(value):  # check_finite's own first step
                check_finite(value, name)  # which says where
            return value
    arr = _real_array(value, name)
    if arr.ndim == 1 and allow_1d_column and n_cols == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        hint = " (use X.reshape(1, -1) for a single example)" if arr.ndim == 1 and examples else ""
        rows = " (one row per example)" if examples else ""
        raise ValueError(
            f"{name} must be 2-D{rows}; got {arr.ndim}-D with shape {arr.shape}{hint}"
        )
    if examples and arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows; at least one example is needed")
    if n_cols is not None and arr.shape[1] != n_cols:
        expects = "the network expects" if examples else "expected"
        raise ValueError(f"{name} has {arr.shape[1]} columns; {expects} {n_cols} ({cols_what})")
    if examples and arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 columns")
    out = c_array(arr, dtype, name if examples else None)
    if finite:
        check_finite(out, name)
    return out


def c_array(arr, dtype, name=None):
    """``arr`` itself when it is what C reads (``dtype``, C-contiguous, each value at an
    address of its size's multiple), else a copy that is. A view at an odd byte offset
    (``np.frombuffer(..., offset=4)``) is C-contiguous but not aligned, and
    ``np.ascontiguousarray`` returned it unchanged; vectorised C may assume the
    alignment. With ``name`` (the network's data and parameters) a finite value too large
    for ``dtype`` is a ValueError naming it; without (the kernels' operands) it becomes
    infinity, as rounding to ``dtype`` makes it."""
    if arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.aligned:
        return arr  # no copy
    with np.errstate(over="ignore" if name is None else "raise"):
        try:
            out = np.ascontiguousarray(arr, dtype=dtype)
        except FloatingPointError:
            raise _too_large(arr, dtype, name) from None
    return out if out.flags.aligned else out.copy()


def _too_large(arr, dtype, name):
    with np.errstate(over="ignore"):
        bad = np.argwhere(np.isfinite(arr) & np.isinf(arr.astype(dtype)))[0]
    where = ", ".join(str(int(i)) for i in bad)
    return ValueError(
        f"{name} has a value too large for {np.dtype(dtype).name} at index [{where}]: "
        f"{arr[tuple(bad)]} (its largest is {np.finfo(dtype).max:.7g})"
    )


def as_vector(value, name, dtype, *, size=None, what="", finite=True):
    arr = _real_array(value, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if size is not None and arr.shape[0] != size:
        raise ValueError(f"{name} has {arr.shape[0]} entries; expected {size} ({what})")
    out = c_array(arr, dtype, name if finite else None)
    if finite:
        check_finite(out, name)
    return out


def check_rows_match(X, Y, x_name="X", y_name="Y", what=" (examples)"):
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of rows{what}; "
            f"got {X.shape[0]} and {Y.shape[0]}"
        )
