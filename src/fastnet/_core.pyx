# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The seam between Python and the C kernels: check shapes, hold buffers, call C without the GIL.

No math lives here. Arguments arrive already validated and converted by fastnet's Python layer
(C-contiguous arrays of one dtype); this layer checks the shapes it relies on, so that a wrong
call raises instead of reaching C, and turns C's status codes into exceptions.
"""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_F_CONTIGUOUS, PyBUF_FORMAT, PyBUF_ND,
                             PyBUF_SIMPLE, PyBUF_STRIDES, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from libc.stdint cimport int64_t, uintptr_t
from libc.stdlib cimport malloc, free
cimport cython
from cython.parallel cimport parallel

from numpy import dtype as _dtype
from numpy import ndarray as _ndarray
from numpy import array as _np_array
from signal import SIGINT as _SIGINT
from signal import default_int_handler as _default_int_handler
try:  # signal.getsignal is this one, its result looked up in an enum of the default
    from _signal import getsignal as _getsignal  # handlers: 2 us a call, a fifth of a step
except ImportError:
    from signal import getsignal as _getsignal
from threading import main_thread as _main_thread

cdef extern from "Python.h":
    int _interrupt_occurred "PyOS_InterruptOccurred" () noexcept
    void _set_interrupt "PyErr_SetInterrupt" () noexcept

cdef extern from "fastnet.h" nogil:
    ctypedef enum fn_status:
        FN_OK
        FN_ENOMEM
        FN_NONFINITE
        FN_EINVAL
        FN_STOPPED
    int FN_NO_ACTIVATION
    ctypedef int (*fn_stop_check)() noexcept
    void fn_set_stop_check(fn_stop_check check)
    void fn_set_stop_check_every_batch(int every_batch)

    int fn_init(int force)
    int fn_isa_in_use()
    const char *fn_isa_name(int isa)
    int fn_cpu_supports(int isa)
    const char *fn_compiler()
    int fn_openmp_version()
    const char *fn_openmp_library()
    int64_t fn_l2_bytes()
    void fn_set_num_threads(int n)
    int fn_get_num_threads()
    int FN_POOL_AUTO
    int FN_POOL_WARM
    void fn_set_pool_policy(int policy)
    double fn_pool_wake_seconds(double set)
    int fn_last_team()
    int fn_threads_busy()
    int fn_last_grant()
    void fn_set_cores(int n)
    void fn_set_team_limit(int n)
    int fn_cores()
    void fn_barrier_waits(int64_t *sleeps, int64_t *yields)
    void fn_set_barrier_polls(int64_t polls)
    void fn_alloc_stats(int64_t *calls, int64_t *bytes)
    void fn_scratch_drop()
    void fn_gemm_force_share(double share)
    int FN_SHARING_AUTO
    int FN_SHARING_ALWAYS
    int FN_SHARING_PROBE_ALONE
    int FN_SHARING_PROBE_SHARED
    int FN_ONE_THREAD
    int FN_SHARED
    int FN_ALONE_AFTER_PROBE
    int FN_ALONE_AS_DECIDED
    int FN_ALONE_FOR_OTHERS
    void fn_set_sharing_policy(int policy)
    int fn_last_sharing()
    int FN_TRAINER_GENERAL
    int FN_TRAINER_SMALL
    int FN_TRAINER_TINY
    int fn_last_trainer()
    int fn_last_units()
    double fn_line_trip_ns()
    ctypedef struct fn_bitgen:
        pass
    void fn_permutations(fn_bitgen *bitgen, int64_t count, int64_t n, int64_t *out)
    const double FN_SLOW_LINE_NS

    ctypedef struct fn_config_f32:
        const char *name
        int64_t mr, nr, kc, mc
        void (*sigmoid_short)(int64_t n, const float *x, float *out) noexcept nogil
    ctypedef struct fn_config_f64:
        const char *name
        int64_t mr, nr, kc, mc
        void (*sigmoid_short)(int64_t n, const double *x, double *out) noexcept nogil
    const fn_config_f32 *fn_config_get_f32()
    const fn_config_f64 *fn_config_get_f64()

    ctypedef struct fn_epilogue_f32:
        const float *bias
        int act
        const float *deriv_of
        int64_t ld_deriv
        int deriv_act
        float threshold
    ctypedef struct fn_epilogue_f64:
        const double *bias
        int act
        const double *deriv_of
        int64_t ld_deriv
        int deriv_act
        double threshold

    ctypedef struct fn_net_f32:
        int n_layers
        const int64_t *sizes
        float **W
        float **b
        const int *act
        float threshold
    ctypedef struct fn_net_f64:
        int n_layers
        const int64_t *sizes
        double **W
        double **b
        const int *act
        double threshold

    fn_status fn_gemm_f32(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                          float *C, int64_t ldc, const fn_epilogue_f32 *ep)
    fn_status fn_gemm_f64(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                          const double *A, int64_t lda, const double *B, int64_t ldb,
                          double beta, double *C, int64_t ldc, const fn_epilogue_f64 *ep)
    void fn_gemm_naive_f32(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                           const float *A, int64_t lda, const float *B, int64_t ldb,
                           float beta, float *C, int64_t ldc)
    void fn_gemm_naive_f64(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                           const double *A, int64_t lda, const double *B, int64_t ldb,
                           double beta, double *C, int64_t ldc)
    int fn_all_finite_f32(int64_t n, const float *x)
    int fn_all_finite_f64(int64_t n, const double *x)
    void fn_activation_f32(int act, int64_t n, const float *z, float *out, float threshold)
    void fn_activation_f64(int act, int64_t n, const double *z, double *out, double threshold)
    void fn_activation_derivative_f32(int act, int64_t n, const float *out, float *dout)
    void fn_activation_derivative_f64(int act, int64_t n, const double *out, double *dout)
    double fn_mse_f32(int64_t N, int64_t n_out, const float *O_out, const float *Y)
    double fn_mse_f64(int64_t N, int64_t n_out, const double *O_out, const double *Y)
    fn_status fn_output_delta_f32(int act, int64_t N, int64_t n_out, const float *O_out,
                                  const float *Y, float *delta_O, double *loss)
    fn_status fn_output_delta_f64(int act, int64_t N, int64_t n_out, const double *O_out,
                                  const double *Y, double *delta_O, double *loss)
    fn_status fn_hidden_delta_f32(int act, int64_t N, int64_t n_h, int64_t n_o,
                                  const float *delta_O, const float *W, const float *H_out,
                                  float *delta_H)
    fn_status fn_hidden_delta_f64(int act, int64_t N, int64_t n_h, int64_t n_o,
                                  const double *delta_O, const double *W, const double *H_out,
                                  double *delta_H)
    fn_status fn_weight_gradient_f32(int64_t N, int64_t n_a, int64_t n_b, const float *A_out,
                                     const float *delta, float *dW)
    fn_status fn_weight_gradient_f64(int64_t N, int64_t n_a, int64_t n_b, const double *A_out,
                                     const double *delta, double *dW)
    void fn_bias_gradient_f32(int64_t N, int64_t n_b, const float *delta, float *db)
    void fn_bias_gradient_f64(int64_t N, int64_t n_b, const double *delta, double *db)
    void fn_update_f32(int64_t n, float *W, const float *dW, float alpha)
    void fn_update_f64(int64_t n, double *W, const double *dW, double alpha)
    fn_status fn_fused_update_f32(int64_t N, int64_t n_a, int64_t n_b, const float *A_out,
                                  const float *delta, float *W, float alpha)
    fn_status fn_fused_update_f64(int64_t N, int64_t n_a, int64_t n_b, const double *A_out,
                                  const double *delta, double *W, double alpha)
    fn_status fn_forward_f32(const fn_net_f32 *net, int64_t N, const float *X, float **pre,
                             float **post)
    fn_status fn_forward_f64(const fn_net_f64 *net, int64_t N, const double *X, double **pre,
                             double **post)
    fn_status fn_gradients_f32(const fn_net_f32 *net, int64_t N, const float *X,
                               const float *Y, float **dW, float **db, double *loss)
    fn_status fn_gradients_f64(const fn_net_f64 *net, int64_t N, const double *X,
                               const double *Y, double **dW, double **db, double *loss)
    fn_status fn_train_f32(const fn_net_f32 *net, int64_t N, const float *X, const float *Y,
                           const int64_t *order, int64_t n_epochs, int64_t batch_size,
                           float alpha, double *epoch_loss, int64_t *epochs_done)
    fn_status fn_train_f64(const fn_net_f64 *net, int64_t N, const double *X, const double *Y,
                           const int64_t *order, int64_t n_epochs, int64_t batch_size,
                           double alpha, double *epoch_loss, int64_t *epochs_done)

ctypedef fused real:
    float
    double


cdef int check(fn_status st) except -1:
    if st == FN_OK:
        return 0
    if st == FN_ENOMEM:
        raise MemoryError("fastnet: the C kernels could not allocate their workspace")
    if st == FN_NONFINITE:
        raise FloatingPointError("fastnet: the computation produced NaN or infinity")
    raise ValueError("fastnet: a C kernel rejected its arguments")


cdef int need(bint ok, str what) except -1:
    if not ok:
        raise ValueError("fastnet._core: " + what)
    return 0


# ---------------------------------------------------------------- machine and threads

def init(int force=-1):
    """Pick the micro-kernels (best the CPU supports, or `force`); return the ISA's name."""
    return fn_isa_name(fn_init(force)).decode()


def isa_name():
    return fn_isa_name(fn_isa_in_use()).decode()


def cpu_supports(int isa):
    return bool(fn_cpu_supports(isa))


def build():
    """The C compiler that built the kernels, the OpenMP version they were compiled for
    (yyyymm) and the OpenMP runtime library their teams come from."""
    return {"compiler": fn_compiler().decode().strip(), "openmp": fn_openmp_version(),
            "openmp_library": fn_openmp_library().decode(errors="replace")}


def l2_bytes():
    """The L2 cache of one core, in bytes, as the kernels see it."""
    return fn_l2_bytes()


def config():
    """Block sizes of the GEMM in use, per dtype."""
    cdef const fn_config_f32 *c32 = fn_config_get_f32()
    cdef const fn_config_f64 *c64 = fn_config_get_f64()
    return {
        "float32": dict(kernel=c32.name.decode(), mr=c32.mr, nr=c32.nr, kc=c32.kc, mc=c32.mc),
        "float64": dict(kernel=c64.name.decode(), mr=c64.mr, nr=c64.nr, kc=c64.kc, mc=c64.mc),
    }


def set_num_threads(int n):
    fn_set_num_threads(n)


def get_num_threads():
    return fn_get_num_threads()


def _set_cores(int n):
    """The cores the calls' teams share, and so the largest team (n <= 0: the CPUs of
    the affinity mask). Set at import (fastnet/_cpus.py) and by tests, never while calls
    run: a team's threads choose their barrier by it at each batch."""
    fn_set_cores(n)


def cores():
    """The cores the calls' teams share: no call runs more threads."""
    return fn_cores()


def _barrier_waits():
    """For tests: (sleeps, yields) at the trainers' batch barrier since the process
    started: waits long enough to sleep, and polls that yielded the CPU to the thread
    waited for, on the same CPU."""
    cdef int64_t sleeps, yields
    fn_barrier_waits(&sleeps, &yields)
    return sleeps, yields


def _set_barrier_polls(int64_t polls):
    """For tests: the polls before a wait at the trainers' batch barrier sleeps (0: every
    wait sleeps; < 0: the default)."""
    fn_set_barrier_polls(polls)


def _set_team_limit(int n):
    """For tests: the largest team instead of the cores (n <= 0: the cores), to run
    teams of more threads than the machine has cores."""
    fn_set_team_limit(n)


SHARING_POLICIES = {"auto": FN_SHARING_AUTO, "always": FN_SHARING_ALWAYS,
                    "probe-alone": FN_SHARING_PROBE_ALONE,
                    "probe-shared": FN_SHARING_PROBE_SHARED}
SHARING_OUTCOMES = {FN_ONE_THREAD: "one thread", FN_SHARED: "shared",
                    FN_ALONE_AFTER_PROBE: "alone after probe",
                    FN_ALONE_AS_DECIDED: "alone as decided before",
                    FN_ALONE_FOR_OTHERS: "alone while others ran"}


def _set_sharing_policy(str policy):
    """For tests: how the small trainer decides whether a team shares its batches
    (see train_small.c): measured ("auto"), "always", or a probe that then goes
    alone or shared whatever it measured. Forgets the decision kept from earlier calls."""
    fn_set_sharing_policy(SHARING_POLICIES[policy])


SLOW_LINE_NS = FN_SLOW_LINE_NS  # line_trip_ns above this: the cores do not share a cache


def line_trip_ns():
    """The one-way time (ns) of a cache line between the cores of two OpenMP threads, or
    None when two threads are not available: tens of ns between cores that share a
    cache, a few hundred between cores that do not."""
    cdef double ns
    with nogil:
        ns = fn_line_trip_ns()
    return None if ns < 0 else ns


def permutations(bit_generator, int64_t[:, ::1] out):
    """Fill each row of out (count x n) with a permutation of range(n), drawn from
    bit_generator (a numpy.random.BitGenerator, e.g. Generator.bit_generator) exactly as
    Generator.permutation(n) would draw it, one row after the other."""
    capsule = bit_generator.capsule
    if not PyCapsule_IsValid(capsule, b"BitGenerator"):
        raise TypeError(f"bit_generator must be a numpy.random.BitGenerator; got "
                        f"{type(bit_generator).__name__}")
    cdef fn_bitgen *bg = <fn_bitgen *>PyCapsule_GetPointer(capsule, b"BitGenerator")
    cdef int64_t count = out.shape[0], n = out.shape[1]
    if count == 0 or n == 0:
        return
    with bit_generator.lock, nogil:
        fn_permutations(bg, count, n, &out[0, 0])


POOL_POLICIES = {"auto": FN_POOL_AUTO, "warm": FN_POOL_WARM}


def _set_pool_policy(str policy):
    """For tests: "warm" takes the thread pool as awake, so every call big enough for a
    team gets one; "auto" (the default) lets a short call on a cold pool run alone."""
    fn_set_pool_policy(POOL_POLICIES[policy])


def _pool_wake_seconds(double set=-1.0):
    """The thread pool's wake-up as measured so far (seconds); with ``set`` >= 0, for
    tests, replaces it first. A call that would start a team on a pool idle for a few
    milliseconds runs on one thread when it is short next to this (dispatch.c)."""
    return fn_pool_wake_seconds(set)


def _last_team():
    """The team the last call that could use one was given (1: it ran alone)."""
    return fn_last_team()


def _call_in_parallel_region(fn, int threads=2):
    """For tests: calls ``fn()`` from each thread of an OpenMP parallel region of
    ``threads`` threads, one after another (each takes the GIL), as code that calls
    fastnet from inside its own parallel loops would."""
    with nogil, parallel(num_threads=threads):
        with gil:
            fn()


def _threads_busy():
    """Threads granted to the fastnet calls now running, from every Python thread."""
    return fn_threads_busy()


def _last_grant():
    """The team this Python thread's last call was granted: calls running at the same
    time from several threads share the cores instead of each starting a full team."""
    return fn_last_grant()


def _alloc_stats():
    """(allocations, bytes) the C library has made since the process started."""
    cdef int64_t calls, nbytes
    fn_alloc_stats(&calls, &nbytes)
    return calls, nbytes


def _scratch_drop():
    """Free the scratch block kept between calls (the next call allocates its own)."""
    fn_scratch_drop()


def _force_gemm_share(double share):
    """Tests: thread 0's share of a product split by speed (< 0: the measured split)."""
    fn_gemm_force_share(share)


def _last_sharing():
    """How the small trainer's last call in this thread ran: "one thread", "shared",
    "alone after probe", "alone as decided before" (by an earlier call's probe) or "alone
    while others ran" (it gave its team's other cores to calls from other threads)."""
    return SHARING_OUTCOMES[fn_last_sharing()]


TRAINERS = {FN_TRAINER_GENERAL: "general", FN_TRAINER_SMALL: "small", FN_TRAINER_TINY: "tiny"}


def _last_trainer():
    """Which trainer this Python thread's last fit ran: "tiny" (csrc/train_tiny.c),
    "small" (csrc/train_small.c) or "general" (csrc/train.c)."""
    return TRAINERS[fn_last_trainer()]


def _last_units():
    """Whether this Python thread's last fit by the general trainer took its units scheme
    (each thread its groups of the first hidden layer's units; csrc/train.c units_fits)."""
    return bool(fn_last_units())


# ---------------------------------------------------------------- single kernels

def gemm(bint trans_a, bint trans_b, const real[:, ::1] A, const real[:, ::1] B, real[:, ::1] C,
         double alpha=1.0, double beta=0.0, const real[::1] bias=None, int act=FN_NO_ACTIVATION,
         double threshold=0.0, const real[:, ::1] deriv_of=None, int deriv_act=0,
         bint naive=False):
    """C = alpha op(A) op(B) + beta C, then the epilogue (bias, activation, derivative)."""
    cdef int64_t M = A.shape[1] if trans_a else A.shape[0]
    cdef int64_t K = A.shape[0] if trans_a else A.shape[1]
    cdef int64_t Kb = B.shape[1] if trans_b else B.shape[0]
    cdef int64_t N = B.shape[0] if trans_b else B.shape[1]
    need(K == Kb and C.shape[0] == M and C.shape[1] == N, "gemm shapes do not agree")
    need(bias is None or bias.shape[0] == N, "bias must have N entries")
    need(deriv_of is None or (deriv_of.shape[0] == M and deriv_of.shape[1] == N),
         "deriv_of must be M x N")
    cdef fn_epilogue_f32 e32
    cdef fn_epilogue_f64 e64
    cdef bint has_ep = bias is not None or act != FN_NO_ACTIVATION or deriv_of is not None
    cdef fn_status st = FN_OK
    if M == 0 or N == 0:
        return
    cdef const real *pa = &A[0, 0] if A.shape[0] * A.shape[1] else NULL
    cdef const real *pb = &B[0, 0] if B.shape[0] * B.shape[1] else NULL
    if real is float:
        e32.bias = &bias[0] if bias is not None else NULL
        e32.act = act
        e32.deriv_of = &deriv_of[0, 0] if deriv_of is not None else NULL
        e32.ld_deriv = N
        e32.deriv_act = deriv_act
        e32.threshold = <float>threshold
        with nogil:
            if naive:
                fn_gemm_naive_f32(trans_a, trans_b, M, N, K, <float>alpha, pa, A.shape[1],
                                  pb, B.shape[1], <float>beta, &C[0, 0], N)
            else:
                st = fn_gemm_f32(trans_a, trans_b, M, N, K, <float>alpha, pa, A.shape[1],
                                 pb, B.shape[1], <float>beta, &C[0, 0], N,
                                 &e32 if has_ep else NULL)
    else:
        e64.bias = &bias[0] if bias is not None else NULL
        e64.act = act
        e64.deriv_of = &deriv_of[0, 0] if deriv_of is not None else NULL
        e64.ld_deriv = N
        e64.deriv_act = deriv_act
        e64.threshold = threshold
        with nogil:
            if naive:
                fn_gemm_naive_f64(trans_a, trans_b, M, N, K, alpha, pa, A.shape[1],
                                  pb, B.shape[1], beta, &C[0, 0], N)
            else:
                st = fn_gemm_f64(trans_a, trans_b, M, N, K, alpha, pa, A.shape[1],
                                 pb, B.shape[1], beta, &C[0, 0], N, &e64 if has_ep else NULL)
    check(st)


def address_of(obj):
    """The address of the first byte of a contiguous buffer (an array's data): 0.1 us,
    where NumPy's ``arr.ctypes.data`` takes 1."""
    cdef Py_buffer view
    PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE)
    cdef uintptr_t address = <uintptr_t>view.buf
    PyBuffer_Release(&view)
    return address


@cython.auto_pickle(False)  # its pointers must not be copied: a copy would free them too
cdef class _AlignedBlock:
    """Uninitialised memory starting on a cache line, exported through the buffer protocol
    as a C-contiguous float32 or float64 array of 1 or 2 dimensions; the NumPy array made
    of it (``aligned_array``) has it as its base and keeps it alive."""
    cdef char *raw
    cdef char *data
    cdef Py_ssize_t shape[2]
    cdef Py_ssize_t strides[2]
    cdef Py_ssize_t itemsize, nbytes
    cdef int ndim

    def __cinit__(self):
        self.raw = self.data = NULL
        self.ndim = 0

    def __dealloc__(self):
        PyMem_RawFree(self.raw)

    def __getbuffer__(self, Py_buffer *view, int flags):
        if self.data == NULL:
            raise BufferError("an aligned block is made by aligned_array only")
        # PEP 3118: shape, strides and format only when asked for; C order only
        if ((flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS and self.ndim == 2
                and self.shape[0] > 1 and self.shape[1] > 1):
            raise BufferError("an aligned block is C-contiguous, not Fortran-contiguous")
        view.buf = self.data
        view.obj = self
        view.len = self.nbytes
        view.readonly = 0
        view.itemsize = self.itemsize
        view.format = NULL
        if flags & PyBUF_FORMAT:
            if self.itemsize == 4:
                view.format = b"f"
            else:
                view.format = b"d"
        view.ndim = self.ndim if (flags & PyBUF_ND) == PyBUF_ND else 1
        view.shape = self.shape if (flags & PyBUF_ND) == PyBUF_ND else NULL
        view.strides = self.strides if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


_FLOAT32, _FLOAT64 = _dtype("float32"), _dtype("float64")


def aligned_array(Py_ssize_t rows, Py_ssize_t cols, int ndim, bint single):
    """An uninitialised C-contiguous NumPy array of rows x cols values (ndim 1: cols values,
    rows 1) of float32 (single) or float64, its data on a 64-byte boundary, its base the
    block that owns the memory: 0.3 us, where NumPy's empty and a view of it at the offset
    that aligns it had taken 1.0."""
    if rows < 0 or cols < 0 or not (ndim == 2 or (ndim == 1 and rows == 1)):
        raise ValueError(f"aligned_array: bad shape ({rows}, {cols}) of {ndim} dimensions")
    cdef _AlignedBlock block = _AlignedBlock.__new__(_AlignedBlock)
    block.itemsize = 4 if single else 8
    if cols and rows > (<Py_ssize_t>0x7fffffffffffffff - 64) // block.itemsize // cols:
        raise MemoryError(f"aligned_array: {rows} x {cols} values do not fit in memory")
    block.nbytes = rows * cols * block.itemsize
    block.raw = <char *>PyMem_RawMalloc(block.nbytes + 64)  # seen by tracemalloc
    if block.raw == NULL:
        raise MemoryError()
    block.data = block.raw + (-<uintptr_t>block.raw) % 64
    block.ndim = ndim
    cdef tuple shape
    if ndim == 2:
        block.shape[0], block.shape[1] = rows, cols
        block.strides[0], block.strides[1] = cols * block.itemsize, block.itemsize
        shape = (rows, cols)
    else:
        block.shape[0], block.strides[0] = cols, block.itemsize
        shape = (cols,)
    return _ndarray(shape, _FLOAT32 if single else _FLOAT64, block)


cdef int float_size(Py_buffer *view):
    """4 for a buffer of float32 values, 8 for float64, else 0 (the view taken with
    PyBUF_FORMAT)."""
    cdef char kind = view.format[0] if view.format != NULL else 0
    if kind == b'f' and view.itemsize == 4:
        return 4
    if kind == b'd' and view.itemsize == 8:
        return 8
    return 0


def all_finite(x):
    """True when no entry of x, a C-contiguous float32 or float64 array of any shape, is
    NaN or infinite. Through the buffer protocol: a call took 0.65 us as a typed
    memoryview of fused type (and its caller 0.2 more to flatten the array), now about
    0.15 (every input of every call is checked so)."""
    cdef Py_buffer view
    cdef int ok = 1, size
    PyObject_GetBuffer(x, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
    try:
        size = float_size(&view)
        if size == 8:
            with nogil:
                ok = fn_all_finite_f64(view.len // 8, <const double *>view.buf)
        elif size == 4:
            with nogil:
                ok = fn_all_finite_f32(view.len // 4, <const float *>view.buf)
        else:
            raise TypeError(f"all_finite: expected float32 or float64 values; got format "
                            f"{(view.format or b'?').decode()!r}")
    finally:
        PyBuffer_Release(&view)
    return bool(ok)


def activation(int act, const real[::1] z, real[::1] out, double threshold=0.0):
    need(z.shape[0] == out.shape[0], "activation: z and out differ in size")
    if z.shape[0] == 0:
        return
    with nogil:
        if real is float:
            fn_activation_f32(act, z.shape[0], &z[0], &out[0], <float>threshold)
        else:
            fn_activation_f64(act, z.shape[0], &z[0], &out[0], threshold)


def _sigmoid_short(const real[::1] z, real[::1] out):
    """The sigmoid by its polynomial's short chain, as the tiny trainer computes it."""
    need(z.shape[0] == out.shape[0], "_sigmoid_short: z and out differ in size")
    if z.shape[0] == 0:
        return
    with nogil:
        if real is float:
            fn_config_get_f32().sigmoid_short(z.shape[0], &z[0], &out[0])
        else:
            fn_config_get_f64().sigmoid_short(z.shape[0], &z[0], &out[0])


def activation_derivative(int act, const real[::1] out, real[::1] dout):
    need(out.shape[0] == dout.shape[0], "activation_derivative: sizes differ")
    if out.shape[0] == 0:
        return
    with nogil:
        if real is float:
            fn_activation_derivative_f32(act, out.shape[0], &out[0], &dout[0])
        else:
            fn_activation_derivative_f64(act, out.shape[0], &out[0], &dout[0])


def mse(const real[:, ::1] O_out, const real[:, ::1] Y):
    need(O_out.shape[0] == Y.shape[0] and O_out.shape[1] == Y.shape[1], "mse: shapes differ")
    need(O_out.shape[0] > 0 and O_out.shape[1] > 0, "mse: empty input")
    cdef double loss
    with nogil:
        if real is float:
            loss = fn_mse_f32(O_out.shape[0], O_out.shape[1], &O_out[0, 0], &Y[0, 0])
        else:
            loss = fn_mse_f64(O_out.shape[0], O_out.shape[1], &O_out[0, 0], &Y[0, 0])
    return loss


def output_delta(int act, const real[:, ::1] O_out, const real[:, ::1] Y, real[:, ::1] delta_O):
    need(O_out.shape[0] == Y.shape[0] and O_out.shape[1] == Y.shape[1]
         and delta_O.shape[0] == Y.shape[0] and delta_O.shape[1] == Y.shape[1],
         "output_delta: shapes differ")
    need(O_out.shape[0] > 0 and O_out.shape[1] > 0, "output_delta: empty input")
    cdef double loss = 0
    cdef fn_status st
    with nogil:
        if real is float:
            st = fn_output_delta_f32(act, O_out.shape[0], O_out.shape[1], &O_out[0, 0],
                                     &Y[0, 0], &delta_O[0, 0], &loss)
        else:
            st = fn_output_delta_f64(act, O_out.shape[0], O_out.shape[1], &O_out[0, 0],
                                     &Y[0, 0], &delta_O[0, 0], &loss)
    check(st)
    return loss


def hidden_delta(int act, const real[:, ::1] delta_O, const real[:, ::1] W,
                 const real[:, ::1] H_out, real[:, ::1] delta_H):
    cdef int64_t N = delta_O.shape[0], n_o = delta_O.shape[1], n_h = W.shape[0]
    need(W.shape[1] == n_o and H_out.shape[0] == N and H_out.shape[1] == n_h
         and delta_H.shape[0] == N and delta_H.shape[1] == n_h, "hidden_delta: shapes differ")
    need(N > 0 and n_o > 0 and n_h > 0, "hidden_delta: empty input")
    cdef fn_status st
    with nogil:
        if real is float:
            st = fn_hidden_delta_f32(act, N, n_h, n_o, &delta_O[0, 0], &W[0, 0], &H_out[0, 0],
                                     &delta_H[0, 0])
        else:
            st = fn_hidden_delta_f64(act, N, n_h, n_o, &delta_O[0, 0], &W[0, 0], &H_out[0, 0],
                                     &delta_H[0, 0])
    check(st)


def weight_gradient(const real[:, ::1] A_out, const real[:, ::1] delta, real[:, ::1] dW):
    cdef int64_t N = A_out.shape[0], n_a = A_out.shape[1], n_b = delta.shape[1]
    need(delta.shape[0] == N and dW.shape[0] == n_a and dW.shape[1] == n_b,
         "weight_gradient: shapes differ")
    need(N > 0 and n_a > 0 and n_b > 0, "weight_gradient: empty input")
    cdef fn_status st
    with nogil:
        if real is float:
            st = fn_weight_gradient_f32(N, n_a, n_b, &A_out[0, 0], &delta[0, 0], &dW[0, 0])
        else:
            st = fn_weight_gradient_f64(N, n_a, n_b, &A_out[0, 0], &delta[0, 0], &dW[0, 0])
    check(st)


def bias_gradient(const real[:, ::1] delta, real[::1] db):
    need(delta.shape[1] == db.shape[0], "bias_gradient: shapes differ")
    need(delta.shape[0] > 0 and delta.shape[1] > 0, "bias_gradient: empty input")
    with nogil:
        if real is float:
            fn_bias_gradient_f32(delta.shape[0], delta.shape[1], &delta[0, 0], &db[0])
        else:
            fn_bias_gradient_f64(delta.shape[0], delta.shape[1], &delta[0, 0], &db[0])


def update(real[::1] W, const real[::1] dW, double alpha):
    need(W.shape[0] == dW.shape[0], "update: sizes differ")
    if W.shape[0] == 0:
        return
    with nogil:
        if real is float:
            fn_update_f32(W.shape[0], &W[0], &dW[0], <float>alpha)
        else:
            fn_update_f64(W.shape[0], &W[0], &dW[0], alpha)


def fused_update(const real[:, ::1] A_out, const real[:, ::1] delta, real[:, ::1] W,
                 double alpha):
    cdef int64_t N = A_out.shape[0], n_a = A_out.shape[1], n_b = delta.shape[1]
    need(delta.shape[0] == N and W.shape[0] == n_a and W.shape[1] == n_b,
         "fused_update: shapes differ")
    need(N > 0 and n_a > 0 and n_b > 0, "fused_update: empty input")
    cdef fn_status st
    with nogil:
        if real is float:
            st = fn_fused_update_f32(N, n_a, n_b, &A_out[0, 0], &delta[0, 0], &W[0, 0],
                                     <float>alpha)
        else:
            st = fn_fused_update_f64(N, n_a, n_b, &A_out[0, 0], &delta[0, 0], &W[0, 0], alpha)
    check(st)


# ---------------------------------------------------------------- whole network

cdef void *data_of(obj, int ndim, bint single, int64_t *shape, bint writable) except? NULL:
    """The data of obj, a C-contiguous array of ndim dimensions of float32 (single) or
    float64, through the buffer protocol (writable: one C may write); its shape into shape
    (if not NULL). The caller keeps obj alive while it uses the pointer. A typed
    memoryview took 0.25-0.3 us an array (and of fused type, 0.3 more to choose its
    type), this 0.05."""
    cdef Py_buffer view
    cdef int d
    PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                       (PyBUF_WRITABLE if writable else 0))
    try:
        if view.ndim != ndim:  # the message built only then: an f-string costs a call 0.1 us
            need(False, f"expected a {ndim}-D array")
        need(float_size(&view) == (4 if single else 8),
             "expected float32 values" if single else "expected float64 values")
        if shape != NULL:
            for d in range(ndim):
                shape[d] = view.shape[d]
        return view.buf
    finally:
        PyBuffer_Release(&view)


cdef void **pointers(list arrays, int L, bint matrix, bint single, bint writable) except NULL:
    """C array of the data pointers of L arrays (writable: outputs C writes), NULL for
    None (caller frees)."""
    cdef void **p = <void **>malloc(sizeof(void *) * L)
    if p == NULL:
        raise MemoryError("fastnet: out of memory")
    try:
        for l in range(L):
            p[l] = NULL if arrays[l] is None else data_of(arrays[l], 2 if matrix else 1,
                                                          single, NULL, writable)
    except BaseException:
        free(p)
        raise
    return p


cdef class _Net:
    """Borrowed C view of a network: pointers into the weight arrays, which the caller's
    lists keep alive for the duration of one call."""
    cdef fn_net_f32 n32
    cdef fn_net_f64 n64
    cdef int64_t *sizes
    cdef int *acts
    cdef void **W
    cdef void **b  # NULL without bias
    cdef int L
    cdef bint single
    cdef object keep

    def __cinit__(self, list weights, list biases, list acts, double threshold, bint single):
        cdef int L = len(weights)
        cdef int l
        need(L >= 1 and len(acts) == L and (not biases or len(biases) == L),
             "network: inconsistent layer lists")
        for l in range(L):
            need(weights[l].ndim == 2 and (l == 0 or weights[l].shape[0] == weights[l - 1].shape[1])
                 and (not biases or biases[l].shape == (weights[l].shape[1],)),
                 "network: weight and bias shapes do not chain")
        self.L = L
        self.single = single
        self.keep = (weights, biases)
        self.sizes = <int64_t *>malloc(sizeof(int64_t) * (L + 1))
        self.acts = <int *>malloc(sizeof(int) * L)
        if not (self.sizes and self.acts):
            raise MemoryError("fastnet: out of memory")
        for l in range(L):
            self.sizes[l] = weights[l].shape[0]
            self.sizes[l + 1] = weights[l].shape[1]
            self.acts[l] = acts[l]
        # pointers() checks each array's dtype, dimensions and C-contiguity.
        # (not asked to be writable: predict only reads them, and fit checks them)
        self.W = pointers(weights, L, True, single, False)
        self.b = pointers(biases, L, False, single, False) if biases else NULL
        self.n32.n_layers = self.n64.n_layers = L
        self.n32.sizes = self.n64.sizes = self.sizes
        self.n32.act = self.n64.act = self.acts
        self.n32.W = <float **>self.W
        self.n64.W = <double **>self.W
        self.n32.b = <float **>self.b if biases else NULL
        self.n64.b = <double **>self.b if biases else NULL
        self.n32.threshold = <float>threshold
        self.n64.threshold = threshold

    def __dealloc__(self):
        free(self.sizes)
        free(self.acts)
        free(self.W)
        free(self.b)


cdef int _check_rows(_Net net, list arrays, int64_t N, int offset,
                     bint hidden_optional=False) except -1:
    """Each of the L arrays is N x sizes[l + offset]; with hidden_optional all but the last
    may be None instead."""
    cdef int l
    need(len(arrays) == net.L, "buffer count")
    for l in range(net.L):
        if arrays[l] is None and hidden_optional and l < net.L - 1:
            continue
        need(arrays[l] is not None and arrays[l].shape == (N, net.sizes[l + offset]),
             "buffer shape")
    return 0


def forward(_Net net, X, list pre, list post):
    """post[l] = act(pre[l]), pre[l] = post[l-1] W[l] (+ b[l]); pre=None fuses them, and
    then the hidden layers' post[l] may be None (C keeps them in scratch). X, pre and post
    in the network's dtype (C-contiguous)."""
    cdef int64_t shape[2]
    cdef bint single = net.single
    cdef void *x = data_of(X, 2, single, shape, False)
    cdef int64_t N = shape[0]
    need(N > 0 and shape[1] == net.sizes[0], "forward: X shape")
    _check_rows(net, post, N, 1, pre is None)
    if pre is not None:
        _check_rows(net, pre, N, 1)
    cdef void **ppost = pointers(post, net.L, True, single, True)
    cdef void **ppre = NULL
    try:
        ppre = pointers(pre, net.L, True, single, True) if pre is not None else NULL
    except BaseException:
        free(ppost)
        raise
    cdef fn_status st
    with nogil:
        if single:
            st = fn_forward_f32(&net.n32, N, <const float *>x, <float **>ppre,
                                <float **>ppost)
        else:
            st = fn_forward_f64(&net.n64, N, <const double *>x, <double **>ppre,
                                <double **>ppost)
    free(ppost)
    free(ppre)
    check(st)


def gradients(_Net net, const real[:, ::1] X, const real[:, ::1] Y, list dW, list db):
    """dW[l], db[l] = dMSE/dW[l], dMSE/db[l]; returns the MSE."""
    cdef int64_t N = X.shape[0]
    cdef bint single = real is float
    need(N > 0 and X.shape[1] == net.sizes[0] and Y.shape[0] == N
         and Y.shape[1] == net.sizes[net.L], "gradients: X/Y shape")
    for l in range(net.L):
        need(dW[l].shape == (net.sizes[l], net.sizes[l + 1]), "gradients: dW shape")
    cdef void **pdW = pointers(dW, net.L, True, single, True)
    cdef void **pdb = pointers(db, net.L, False, single, True) if db else NULL
    cdef double loss = 0
    cdef fn_status st
    with nogil:
        if real is float:
            st = fn_gradients_f32(&net.n32, N, &X[0, 0], &Y[0, 0], <float **>pdW,
                                  <float **>pdb, &loss)
        else:
            st = fn_gradients_f64(&net.n64, N, &X[0, 0], &Y[0, 0], <double **>pdW,
                                  <double **>pdb, &loss)
    free(pdW)
    free(pdb)
    check(st)
    return loss


cdef bint _shares_params(_Net net, const void *p, int64_t n) noexcept:
    """Whether the n values at p overlap a weight or bias of net."""
    cdef uintptr_t item = 4 if net.single else 8
    cdef uintptr_t a = <uintptr_t>p, e = a + <uintptr_t>n * item, s
    cdef int l
    for l in range(net.L):
        s = <uintptr_t>net.W[l]
        if a < s + item * <uintptr_t>(net.sizes[l] * net.sizes[l + 1]) and s < e:
            return True
        if net.b != NULL:
            s = <uintptr_t>net.b[l]
            if a < s + item * <uintptr_t>net.sizes[l + 1] and s < e:
                return True
    return False


# Python runs signal handlers in its main thread, between bytecodes, so not while a training
# call runs in C (the GIL released): a call holds at least one epoch, which can take
# seconds. For Ctrl-C, C asks between batches, every 0.1 s, whether SIGINT arrived
# (fn_set_stop_check); if so the call ends after that batch with the weights of the start
# of its epoch, and Python's handler runs as the call returns, raising KeyboardInterrupt
# with the network as fit left it. Only with Python's own SIGINT handler (a handler of the
# caller's may not stop the fit, which must then go on as if never cut) and only in the
# main thread, where the handlers run. Other signals' handlers run between calls, never
# on a network half through a batch.
cdef unsigned long _main_ident = _main_thread().ident
cdef int64_t _checks_until_stop = 0  # for tests: the check that says stop, as Ctrl-C would


cdef int _ctrl_c() noexcept nogil:
    """fn_train's stop check: 1 when SIGINT arrived, which is signalled again for
    Python's handler to run when the call returns."""
    with gil:
        if _interrupt_occurred():  # clears it
            _set_interrupt()
            return 1
        return 0


cdef int _stop_by_count() noexcept nogil:
    """The tests' stop check: 1 at the _checks_until_stop-th asking, with SIGINT
    signalled as it arrives on Ctrl-C."""
    global _checks_until_stop
    with gil:
        _checks_until_stop -= 1
        if _checks_until_stop != 0:
            return 0
        _set_interrupt()
        return 1


cdef fn_stop_check _stop_check():
    if _checks_until_stop > 0:
        return _stop_by_count
    if (PyThread_get_thread_ident() == _main_ident
            and _getsignal(_SIGINT) is _default_int_handler):
        return _ctrl_c
    return NULL


def _stop_at_check(int64_t n, bint every_batch=True):
    """For tests, from the main thread: the n-th stop check of the training calls from now
    on (asked at every batch with every_batch) says stop and signals SIGINT, as Ctrl-C
    would; 0 restores the SIGINT check, asked every 0.1 s."""
    global _checks_until_stop
    _checks_until_stop = n
    fn_set_stop_check_every_batch(1 if n > 0 and every_batch else 0)


def train(_Net net, const real[:, ::1] X, const real[:, ::1] Y, const int64_t[:, ::1] order,
          int64_t epochs, int64_t batch_size, double alpha, double[::1] epoch_loss):
    """Minibatch gradient descent in place; returns (epochs done, diverged)."""
    cdef int64_t N = X.shape[0]
    cdef int64_t done = 0
    need(N > 0 and X.shape[1] == net.sizes[0] and Y.shape[0] == N
         and Y.shape[1] == net.sizes[net.L], "train: X/Y shape")
    # Data in the network's own arrays (fit(net.weights[0], Y)) is read from a copy: the
    # trainers update the weights in place between batches, and the bigger ones keep
    # some of them elsewhere while they run, so the data would change under them, or not,
    # by trainer and size. Looking costs under 0.1 us a call.
    if _shares_params(net, &X[0, 0], N * X.shape[1]):
        X = _np_array(X)
    if _shares_params(net, &Y[0, 0], N * Y.shape[1]):
        Y = _np_array(Y)
    need(epochs >= 0 and epoch_loss.shape[0] >= epochs and batch_size >= 1, "train: sizes")
    need(order is None or (order.shape[0] >= epochs and order.shape[1] == N), "train: order")
    if epochs == 0:
        return 0, False
    cdef const int64_t *porder = &order[0, 0] if order is not None else NULL
    cdef fn_status st
    fn_set_stop_check(_stop_check())
    with nogil:
        if real is float:
            st = fn_train_f32(&net.n32, N, &X[0, 0], &Y[0, 0], porder, epochs, batch_size,
                              <float>alpha, &epoch_loss[0], &done)
        else:
            st = fn_train_f64(&net.n64, N, &X[0, 0], &Y[0, 0], porder, epochs, batch_size,
                              alpha, &epoch_loss[0], &done)
    fn_set_stop_check(NULL)
    PyErr_CheckSignals()  # Ctrl-C's handler, if the check saw SIGINT: KeyboardInterrupt
    if st == FN_STOPPED:  # only for SIGINT, whose handler raised above; if it did not
        raise KeyboardInterrupt
    if st == FN_NONFINITE:
        return done, True
    check(st)
    return done, False
