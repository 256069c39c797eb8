"""Each C kernel, reachable with NumPy arrays: for the tests and for power users.

Names match ``fastnet.reference`` and the C functions (``fn_<name>_f32/_f64``). Inputs
are any array-likes of real numbers; the dtype is float32 when every array input is
float32 and float64 otherwise (or ``dtype=``). Results are new arrays; no input is
modified. Unlike ``Network``, the kernels accept NaN and infinity and propagate them as
IEEE arithmetic does. Empty matrices are matrices, as in NumPy: a product over an inner
size of 0 is zero (``linear`` gives ``act(b)``), and any other empty operand gives an empty
result; only the MSE, a mean over the rows, needs at least one row.
"""
from __future__ import annotations

import numpy as np

from . import _core
from . import _validation as v
from ._memory import aligned_copy, aligned_empty


def _dtype(dtype, *arrays):
    if dtype is not None:
        return v.check_dtype(dtype)
    kinds = [np.asarray(a).dtype for a in arrays if a is not None]
    return np.dtype(np.float32) if all(k == np.float32 for k in kinds) else np.dtype(np.float64)


def _m(value, name, dtype, n_cols=None, what=""):
    return v.as_matrix(value, name, dtype, n_cols=n_cols, cols_what=what, finite=False,
                       examples=False)


def _rows_match(A, B, a_name, b_name):
    v.check_rows_match(A, B, a_name, b_name, what="")


def _empty(*sizes):
    # C takes no empty operand (and a memoryview of one has no first element): the
    # kernels answer those in NumPy, as the reference does.
    return 0 in sizes


def _mean_rows(O_out):
    if O_out.shape[0] == 0:
        raise ValueError("O_out has 0 rows: the MSE is a mean over the rows, so at least one "
                         "row is needed")


def _act(name):
    return v.ACTIVATION_CODES[v.check_activation(name)]


def matmul(A, B, trans_a=False, trans_b=False, dtype=None, naive=False):
    """``op(A) @ op(B)`` with op = transpose when asked (the products of backpropagation:
    A B, A^T B, A B^T). ``naive=True`` runs the textbook triple loop instead of the
    blocked kernel (the oracle the fast kernel is tested against)."""
    trans_a, trans_b = v.check_bool(trans_a, "trans_a"), v.check_bool(trans_b, "trans_b")
    naive = v.check_bool(naive, "naive")
    dt = _dtype(dtype, A, B)
    A, B = _m(A, "A", dt), _m(B, "B", dt)
    M, K = (A.shape[1], A.shape[0]) if trans_a else A.shape
    Kb, N = (B.shape[1], B.shape[0]) if trans_b else B.shape
    if K != Kb:
        raise ValueError(f"op(A) is {M} x {K} but op(B) is {Kb} x {N}: inner sizes differ")
    C = aligned_empty((M, N), dt)
    if _empty(M, N, K):
        C.fill(0)  # a sum over no terms
    else:
        _core.gemm(trans_a, trans_b, A, B, C, naive=naive)
    return C


def linear(X, W, b=None, activation="identity", threshold=0.0, dtype=None):
    """One layer of the seed, fused: ``act(X W + b)`` with the bias and the activation
    applied to each tile of the product as it is written."""
    dt = _dtype(dtype, X, W, b)
    X = _m(X, "X", dt)
    W = _m(W, "W", dt)
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X has {X.shape[1]} columns; W has {W.shape[0]} rows")
    bias = None if b is None else v.as_vector(b, "b", dt, size=W.shape[1], what="W's columns",
                                              finite=False)
    threshold = v.check_real(threshold, "threshold")
    C = aligned_empty((X.shape[0], W.shape[1]), dt)
    if _empty(*X.shape, W.shape[1]):
        C.fill(0)
        return _apply(_act(activation), C if b is None else C + bias, threshold, dt)
    _core.gemm(False, False, X, W, C, bias=bias, act=_act(activation), threshold=threshold)
    return C


def activation(name, z, threshold=0.0, dtype=None):
    """``act(z)`` elementwise (``threshold`` is the step's t)."""
    code = _act(name)
    dt = _dtype(dtype, z)
    z = v.c_array(v._real_array(z, "z"), dt)
    return _apply(code, z, v.check_real(threshold, "threshold"), dt)


def _apply(code, z, threshold, dt):
    out = aligned_empty(z.shape, dt)
    _core.activation(code, z.reshape(-1), out.reshape(-1), threshold)
    return out


def activation_derivative(name, out, dtype=None):
    """``act'(z)`` from the stored output ``out = act(z)``."""
    code = _act(name)
    dt = _dtype(dtype, out)
    out = v.c_array(v._real_array(out, "out"), dt)
    d = aligned_empty(out.shape, dt)
    _core.activation_derivative(code, out.reshape(-1), d.reshape(-1))
    return d


def mse(O_out, Y, dtype=None):
    """``1/N sum_e sum_n (O_out - Y)^2``, N = number of rows."""
    dt = _dtype(dtype, O_out, Y)
    O_out = _m(O_out, "O_out", dt)
    Y = _m(Y, "Y", dt, O_out.shape[1], "O_out's columns")
    _rows_match(O_out, Y, "O_out", "Y")
    _mean_rows(O_out)
    return 0.0 if _empty(O_out.shape[1]) else float(_core.mse(O_out, Y))


def output_delta(O_out, Y, activation, dtype=None):
    """``(delta_O, MSE)``: ``delta_O = (2/N)(O_out - Y) * act'(O_in)`` and the loss, fused
    in one pass."""
    code = _act(activation)
    dt = _dtype(dtype, O_out, Y)
    O_out = _m(O_out, "O_out", dt)
    Y = _m(Y, "Y", dt, O_out.shape[1], "O_out's columns")
    _rows_match(O_out, Y, "O_out", "Y")
    _mean_rows(O_out)
    delta = aligned_empty(O_out.shape, dt)
    if _empty(O_out.shape[1]):
        return delta, 0.0
    loss = _core.output_delta(code, O_out, Y, delta)
    return delta, float(loss)


def hidden_delta(delta_O, W, H_out, activation, dtype=None):
    """``delta_H = (delta_O W^T) * act'(H_in)``, the derivative applied in the product's
    epilogue."""
    code = _act(activation)
    dt = _dtype(dtype, delta_O, W, H_out)
    delta_O = _m(delta_O, "delta_O", dt)
    W = _m(W, "W", dt, delta_O.shape[1], "delta_O's columns")
    H_out = _m(H_out, "H_out", dt, W.shape[0], "W's rows")
    _rows_match(delta_O, H_out, "delta_O", "H_out")
    delta_H = aligned_empty(H_out.shape, dt)
    if _empty(*H_out.shape):
        return delta_H
    if _empty(delta_O.shape[1]):  # delta_O W^T sums no terms: 0 * act'(H_in), in IEEE terms
        _core.activation_derivative(code, H_out.reshape(-1), delta_H.reshape(-1))
        with np.errstate(invalid="ignore"):  # 0 * inf is NaN, silently as in C
            delta_H *= 0
        return delta_H
    _core.hidden_delta(code, delta_O, W, H_out, delta_H)
    return delta_H


def weight_gradient(A_out, delta, dtype=None):
    """``dMSE/dW = A_out^T delta``."""
    dt = _dtype(dtype, A_out, delta)
    A_out, delta = _m(A_out, "A_out", dt), _m(delta, "delta", dt)
    _rows_match(A_out, delta, "A_out", "delta")
    dW = aligned_empty((A_out.shape[1], delta.shape[1]), dt)
    if _empty(*A_out.shape, delta.shape[1]):
        dW.fill(0)
    else:
        _core.weight_gradient(A_out, delta, dW)
    return dW


def bias_gradient(delta, dtype=None):
    """``dMSE/db`` = the column sums of delta."""
    dt = _dtype(dtype, delta)
    delta = _m(delta, "delta", dt)
    db = aligned_empty(delta.shape[1], dt)
    if _empty(*delta.shape):
        db.fill(0)
    else:
        _core.bias_gradient(delta, db)
    return db


def update(W, dW, learning_rate, dtype=None):
    """``W - learning_rate * dW`` (a new array)."""
    dt = _dtype(dtype, W, dW)
    W = aligned_copy(v._real_array(W, "W"), dt)
    dW = v.c_array(v._real_array(dW, "dW"), dt)
    if W.shape != dW.shape:
        raise ValueError(f"W has shape {W.shape} but dW has shape {dW.shape}")
    _core.update(W.reshape(-1), dW.reshape(-1), v.check_real(learning_rate, "learning_rate"))
    return W


def fused_update(W, A_out, delta, learning_rate, dtype=None):
    """``W - learning_rate * A_out^T delta``, the product written straight into the step."""
    dt = _dtype(dtype, W, A_out, delta)
    A_out, delta = _m(A_out, "A_out", dt), _m(delta, "delta", dt)
    _rows_match(A_out, delta, "A_out", "delta")
    W = aligned_copy(_m(W, "W", dt, delta.shape[1], "delta's columns"), dt)
    if W.shape[0] != A_out.shape[1]:
        raise ValueError(f"W has {W.shape[0]} rows; A_out has {A_out.shape[1]} columns")
    learning_rate = v.check_real(learning_rate, "learning_rate")
    if not _empty(*W.shape, A_out.shape[0]):  # else W - learning_rate * 0 is W
        _core.fused_update(A_out, delta, W, learning_rate)
    return W
