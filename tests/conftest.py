"""Shared helpers of the fastnet test suite.

* Hypothesis profiles: "fastnet" (modest example counts, no deadline: the machine is
  shared) and "stress" (3000 examples), chosen by ``FASTNET_HYPOTHESIS_PROFILE``.
* ``isa``: a fixture that switches the GEMM micro-kernels to each one the CPU supports
  and restores the original choice afterwards.
* An autouse fixture restoring the thread count, the cores and the micro-kernels after
  every test (teams may be larger than the cores while a test runs).
* Tolerances: rigorous forward-error bounds of floating-point sums and products,
  ``|fl(sum_k a_k b_k) - sum_k a_k b_k| <= gamma_K * sum_k |a_k b_k|`` with
  ``gamma_K ~ K u``; we use ``(K + c) * eps`` (eps = 2u), i.e. twice the bound.
* Non-contiguous layouts of an array (Fortran order, transposed views, step slices,
  negative strides) for the "any memory order" checks.
* Strategies for matrix sizes that straddle the GEMM's blocking (mr, nr, mc, kc),
  read from ``fastnet.show_config`` for every micro-kernel the CPU supports.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import fastnet
from fastnet import reference

settings.register_profile(
    "fastnet",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
# A long run for hunting rare draws: FASTNET_HYPOTHESIS_PROFILE=stress pytest ...
settings.register_profile("stress", parent=settings.get_profile("fastnet"), max_examples=3000)
settings.load_profile(os.environ.get("FASTNET_HYPOTHESIS_PROFILE", "fastnet"))

DTYPES = (np.float32, np.float64)
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "step")
SMOOTH_ACTIVATIONS = ("identity", "sigmoid", "tanh")
ALL_ISAS = ("generic", "avx2", "avx512")

# ---------------------------------------------------------------- reads past the end

# The start of a child process's script (run_child), which selects the micro-kernels
# named by sys.argv[1]: at_page_end(a) is a copy of a whose last byte is the last of a
# page, the next page unreadable, so that a kernel loading past the end of a (a whole
# register from a row's short end, say) crashes. `keep` holds the mappings.
AT_PAGE_END = r"""
import ctypes, json, mmap, sys
import numpy as np
import fastnet

libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
keep = []

def at_page_end(a):
    page = mmap.PAGESIZE
    pages = -(-a.nbytes // page) + 1
    mm = mmap.mmap(-1, pages * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    assert libc.mprotect(base + (pages - 1) * page, page, 0) == 0  # PROT_NONE
    out = np.frombuffer(mm, a.dtype, a.size, (pages - 1) * page - a.nbytes).reshape(a.shape)
    out[...] = a
    keep.append(mm)
    return out

assert fastnet._use_kernels(sys.argv[1]) == sys.argv[1]
"""


def run_child(script, kernel, cases):
    """Runs script (AT_PAGE_END + its own part) in a child process with sys.argv[1] the
    micro-kernels' name and sys.argv[2] the cases as JSON; a crash fails the calling test
    rather than ending pytest. Returns its output."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script, kernel, json.dumps(cases)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    return done.stdout


# ---------------------------------------------------------------- micro-kernels

_CONFIG = fastnet.show_config(print_out=False)
ORIGINAL_ISA = _CONFIG["kernel"]
CPU_SUPPORTS = _CONFIG["cpu_supports"]
SUPPORTED_ISAS = tuple(name for name in ALL_ISAS if CPU_SUPPORTS[name])


def _blocking_of_every_isa():
    """{isa: {"float32": {...}, "float64": {...}}} for each supported micro-kernel."""
    out = {}
    try:
        for name in SUPPORTED_ISAS:
            assert fastnet._use_kernels(name) == name
            out[name] = fastnet.show_config(print_out=False)["blocking"]
    finally:
        fastnet._use_kernels(ORIGINAL_ISA)
    return out


BLOCKING = _blocking_of_every_isa()

# csrc/internal.h FN_PARALLEL_MIN_FLOP: below this many flop per call (or per minibatch)
# one thread works; a team from here on.
PARALLEL_MIN_FLOP = 4_000_000

ISA_PARAMS = [
    pytest.param(
        name,
        id=name,
        marks=pytest.mark.skipif(not CPU_SUPPORTS[name],
                                 reason=f"this CPU does not support the {name} micro-kernel"),
    )
    for name in ALL_ISAS
]


@pytest.fixture(params=ISA_PARAMS)
def isa(request):
    """Runs the test with the named GEMM micro-kernels, then restores the original."""
    name = request.param
    before = fastnet.show_config(print_out=False)["kernel"]
    try:
        assert fastnet._use_kernels(name) == name
        config = fastnet.show_config(print_out=False)
        assert config["kernel"] == name
        assert config["blocking"]["float32"]["kernel"] == name
        yield name
    finally:
        fastnet._use_kernels(before)


@pytest.fixture(autouse=True)
def _restore_threads_and_kernels():
    """No test may leak a thread count or a micro-kernel choice into the next one. Each
    test runs with the thread pool taken as awake: a call big enough for a team gets one
    even after a pause (by default a short call on a cold pool runs alone, see
    test_threads.py), so the tests of teams run teams, and teams may be larger than the
    machine's cores (by default no call runs more threads than the cores: see
    test_threads.py), so that teams of 3 and 4 run on 2 cores too."""
    from fastnet import _core

    threads = fastnet.get_num_threads()
    kernel = fastnet.show_config(print_out=False)["kernel"]
    cores = _core.cores()
    _core._set_pool_policy("warm")
    _core._set_team_limit(8)
    yield
    _core._set_team_limit(0)
    _core._set_cores(cores)
    _core._set_pool_policy("auto")
    fastnet.set_num_threads(threads)
    fastnet._use_kernels(kernel)


# (layers, batch, rows) for each trainer, big enough to use 2 threads in each.
FIT_CASES = {
    # train.c: the GEMM team splits each product's tiles; 2 batches and one of 188 rows
    "general": ([256, 256, 64], 256, 700),
    # train.c with a layer wide enough for the GEMM's packed path (FN_PACK_MIN_N): the
    # team splits rows or columns; 250 = 2 x 100 + 50 rows
    "general-wide": ([300, 520, 40], 100, 250),
    # train.c with one hidden layer and an output layer narrower than the micro-tile (the
    # units scheme): each thread its groups of 32 hidden units (one panel of floats, two of
    # doubles), 2 of 4; the last batch has 5 rows
    "general-narrow-output": ([300, 128, 10], 64, 197),
    # the same with a partial last group, of 4 units (one panel of floats, partial; of
    # doubles, one partial panel of the two)
    "general-units-partial": ([400, 100, 10], 64, 197),
    # the same as the last of three layers
    "general-deep-narrow-output": ([300, 160, 96, 10], 64, 197),
    # train.c, two hidden layers in batches of at most 16 rows (the units scheme with a
    # tail): each thread its groups of the first hidden layer's units (4, the last of 4),
    # and so its rows of W[1]; every thread the rest in its own copy; 100 = 8 x 12 + 4
    "general-deep-units": ([300, 100, 40, 10], 12, 100),
    # train_small.c, one hidden layer: each thread its groups of 32 hidden units (2 of
    # the digits shape's 64), then the whole output layer; 100 = 3 x 32 + 4 rows
    "small-digits": ([64, 64, 10], 32, 100),
    # the same with 4 groups, the last of 4 units
    "small-units": ([40, 100, 12], 32, 100),
    # train_small.c, more layers: each batch's rows, then each W's rows, split
    "small-deep": ([37, 50, 23, 3], 48, 100),
}


@pytest.fixture
def sharing_policy():
    """Sets how the small trainer's teams decide to share their batches (see
    ``_core._set_sharing_policy``) for one test, then restores the measured default."""
    from fastnet import _core

    yield _core._set_sharing_policy
    _core._set_sharing_policy("auto")


# ---------------------------------------------------------------- sizes

_SMALL_PRIMES = (1, 2, 3, 5, 7, 11, 13, 37)


def _interesting_sizes(dtype, *, with_k=False):
    """Sizes around every blocking parameter of every supported micro-kernel."""
    name = np.dtype(dtype).name
    sizes = set(_SMALL_PRIMES)
    for blocking in BLOCKING.values():
        b = blocking[name]
        mr, nr, kc, mc = b["mr"], b["nr"], b["kc"], b["mc"]
        sizes |= {mr - 1, mr, mr + 1, 2 * mr + 1, nr - 1, nr, nr + 1, 2 * nr + 1,
                  mc - 1, mc + 1, 2 * mc + 5}
        if with_k:
            sizes |= {kc - 1, kc, kc + 1, 2 * kc + 1}
    return sorted(s for s in sizes if s >= 1)


def mn_sizes(dtype):
    """Strategy for an M or N dimension: small sizes or sizes that straddle a block."""
    return st.one_of(st.integers(1, 20), st.sampled_from(_interesting_sizes(dtype)))


def k_sizes(dtype):
    """Strategy for a reduction length K: also straddles kc (several K blocks)."""
    return st.one_of(st.integers(1, 20), st.sampled_from(_interesting_sizes(dtype, with_k=True)))


def small_sizes():
    return st.one_of(st.integers(1, 9), st.sampled_from((12, 13, 16, 17, 31, 32, 33)))


seeds = st.integers(0, 2**32 - 1)

# ---------------------------------------------------------------- data


def random_matrix(rng, shape, dtype, scale=1.0):
    """Standard normal values, rounded to ``dtype``."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def as64(a):
    return np.asarray(a, dtype=np.float64)


def layouts(a):
    """(name, array) pairs holding the values of ``a`` in memory other than a writable,
    aligned C-contiguous array: non-contiguous views, a read-only array (a memory-mapped
    file's, say) and a C-contiguous view at an odd byte offset (NumPy's flags.aligned
    False: ``np.frombuffer(..., offset=...)``)."""
    a = np.asarray(a)
    out = [("fortran", np.asfortranarray(a))]
    read_only = np.array(a, order="C")
    read_only.setflags(write=False)
    out.append(("read-only", read_only))
    raw = np.zeros(a.nbytes + 1, np.uint8)
    unaligned = np.frombuffer(raw.data, a.dtype, a.size, offset=1).reshape(a.shape)
    unaligned.setflags(write=True)
    unaligned[...] = a
    assert unaligned.flags.c_contiguous and not unaligned.flags.aligned
    out.append(("unaligned", unaligned))
    if a.ndim == 2:
        m, n = a.shape
        out.append(("transposed-view", np.ascontiguousarray(a.T).T))
        big = np.full((2 * m + 1, 3 * n + 2), np.nan, a.dtype)
        view = big[1::2, 2::3][:m, :n]
        view[...] = a
        out.append(("step-slice", view))
        out.append(("negative-strides", np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]))
    elif a.ndim == 1:
        big = np.full(3 * a.shape[0] + 1, np.nan, a.dtype)
        view = big[1::3]
        view[...] = a
        out.append(("step-slice", view))
        out.append(("negative-strides", np.ascontiguousarray(a[::-1])[::-1]))
    for name, arr in out:
        assert np.array_equal(arr, a), name
    return out


# ---------------------------------------------------------------- tolerances


def eps(dtype):
    return float(np.finfo(dtype).eps)


def tiny(dtype):
    """Room for underflow (subnormal) effects."""
    return float(np.finfo(dtype).tiny) * 4


def product_bound(A, B, K, dtype, extra=2):
    """Forward-error bound of op(A) @ op(B) computed in ``dtype`` (A, B already op'd)."""
    return (K + extra) * eps(dtype) * (np.abs(as64(A)) @ np.abs(as64(B))) + tiny(dtype)


def assert_within(got, want, bound, what="result"):
    """Elementwise ``|got - want| <= bound`` (NaN anywhere fails), with a readable report."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    err = np.abs(as64(got) - as64(want))
    bound = np.broadcast_to(np.asarray(bound, np.float64), err.shape)
    bad = ~(err <= bound)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} entries off; first at {idx}: "
            f"got {got[idx]!r}, expected {want[idx]!r}, error {err[idx]:.3g} > bound "
            f"{bound[idx]:.3g}"
        )


LIPSCHITZ = {"identity": 1.0, "sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}


def check_linear(X, W, b, activation, threshold, dtype, got):
    """``got`` = act(X W + b) against the reference: within the product's bound times the
    activation's Lipschitz constant, plus its own rounding (the step: exact wherever the
    pre-activation is decided, 0 or 1 elsewhere)."""
    K = X.shape[1]
    pre = as64(X) @ as64(W) + (0 if b is None else as64(b))
    pre_bound = (K + 3) * eps(dtype) * (
        np.abs(as64(X)) @ np.abs(as64(W)) + (0 if b is None else np.abs(as64(b)))
    ) + tiny(dtype)
    want = reference.activate(activation, pre, threshold)
    assert got.dtype == dtype
    assert got.shape == want.shape
    if activation == "step":
        decided = np.abs(pre - threshold) > pre_bound
        assert np.array_equal(got[decided], want[decided])
        assert np.isin(got[~decided], (0.0, 1.0)).all()
    else:
        bound = LIPSCHITZ[activation] * pre_bound + 4 * eps(dtype) * np.abs(want) + tiny(dtype)
        assert_within(got, want, bound, f"linear({activation})")


def check_hidden_delta(delta_O, W, H_out, activation, dtype, got):
    """``got`` = (delta_O W^T) * act'(H_out) against the reference. act' is computed from
    H_out in ``dtype``: 1 - t^2 (tanh) cancels, so its error is absolute,
    ~eps (|act'| + H_out^2), not relative to act'."""
    assert got.dtype == dtype
    want = reference.hidden_delta(as64(delta_O), as64(W), as64(H_out), activation)
    deriv = reference.DERIVATIVES[activation](as64(H_out))
    deriv_scale = np.abs(deriv) + as64(H_out) ** 2
    n_o = W.shape[1]
    bound = (n_o + 10) * eps(dtype) * (np.abs(as64(delta_O)) @ np.abs(as64(W)).T) * deriv_scale
    assert_within(got, want, bound + tiny(dtype), f"hidden_delta({activation})")


def assert_close(got, want, dtype, rtol_eps=8, what="result"):
    """``|got - want| <= rtol_eps * eps * (|want| + tiny)``: for elementwise results."""
    want64 = as64(want)
    assert_within(got, want, rtol_eps * eps(dtype) * np.abs(want64) + tiny(dtype), what)


def net_tolerance(dtype, layers):
    """A scale-relative tolerance for whole-network results with O(1) values: the
    reduction lengths are the layer sizes; depth multiplies the error."""
    return 8 * eps(dtype) * (sum(layers) + 8) * len(layers)


def to_reference(net):
    """The network's parameters in float64 for ``fastnet.reference``."""
    weights = [as64(W).copy() for W in net.weights]
    biases = [as64(b).copy() for b in net.biases] if net.bias else None
    return weights, biases


def snapshot(net):
    """Copies of the network's parameters (the getters return the live arrays)."""
    return [W.copy() for W in net.weights], [b.copy() for b in net.biases]


def assert_unchanged(net, before):
    weights, biases = before
    assert len(net.weights) == len(weights)
    for W_now, W_then in zip(net.weights, weights):
        assert W_now.dtype == W_then.dtype
        assert np.array_equal(W_now, W_then)
    assert len(net.biases) == len(biases)
    for b_now, b_then in zip(net.biases, biases):
        assert np.array_equal(b_now, b_then)
