"""fastnet: fast CPU training of multilayer perceptrons.

The model is the seed's: H_in = X W1, H_out = act(H_in), O_in = H_out W2,
O_out = act(O_in), MSE = 1/N sum (O_out - Y)^2 (N = rows), trained by gradient descent
with backpropagation. The hot loops are C with OpenMP; ``fastnet.reference`` is the same
model in plain NumPy, the oracle the tests compare against.
"""
from __future__ import annotations

from . import _core, _cpus, kernels, reference
from ._validation import check_int as _check_int
from .network import DivergenceError, Network, load

__version__ = "0.1.0"
__all__ = [
    "Network",
    "load",
    "DivergenceError",
    "kernels",
    "reference",
    "set_num_threads",
    "get_num_threads",
    "show_config",
    "__version__",
]

_ISAS = ("generic", "avx2", "avx512")
_core.init(-1)
_core._set_cores(_cpus.usable_cpus())


def set_num_threads(n):
    """Threads for the C kernels: the OpenMP runtime's setting, which threadpoolctl and
    OMP_NUM_THREADS also set. As in OpenMP, it applies to calls made from the thread that
    set it (Python threads started later begin with OMP_NUM_THREADS or the core count).
    No call runs more threads than the CPUs this process may use (its affinity mask and
    its control group's CPU quota: ``show_config()["cores"]``), whatever n says: more would
    wait for each other's time slices. Calls running at the same time from several Python
    threads share those cores: one that starts while other calls run gets only the cores
    left (at least its own thread). In a
    process forked after a team ran (multiprocessing's default start method on Linux),
    GNU OpenMP's threads are gone: there every call runs on one thread, and
    get_num_threads() returns 1.
    Results do not depend on it: every thread count gives bitwise the same numbers."""
    _core.set_num_threads(_check_int(n, "set_num_threads: n (the number of threads)", minimum=1,
                                     maximum=2**31 - 1))  # OpenMP's count is a C int


def get_num_threads():
    """The thread count asked for (set_num_threads, OMP_NUM_THREADS, or the CPU count);
    a call runs at most ``show_config()["cores"]`` of them."""
    return _core.get_num_threads()


def _use_kernels(name):
    """Select the micro-kernels by name ("generic", "avx2", "avx512"), if the CPU has
    them; returns the name in use. For tests and benchmarks."""
    if name not in _ISAS:
        raise ValueError(f"kernel must be one of {_ISAS}; got {name!r}")
    return _core.init(_ISAS.index(name))


# _OPENMP's values (yyyymm) and the specifications they stand for.
_OPENMP_SPECS = {200505: "2.5", 200805: "3.0", 201107: "3.1", 201307: "4.0", 201511: "4.5",
                 201811: "5.0", 202011: "5.1", 202111: "5.2", 202411: "6.0"}


def show_config(print_out=True):
    """Which micro-kernels run, what the CPU supports, block sizes, threads (and the
    cores, the most a call runs), the L2 size the blocking uses, and the build: the C
    compiler, the OpenMP version it compiled for and the OpenMP runtime in use."""
    info = {
        "version": __version__,
        "kernel": _core.isa_name(),
        "cpu_supports": {n: _core.cpu_supports(i) for i, n in enumerate(_ISAS)},
        "threads": get_num_threads(),
        "cores": _core.cores(),
        "blocking": _core.config(),
        "l2_bytes": _core.l2_bytes(),
        **_core.build(),
    }
    if print_out:
        print(f"fastnet {info['version']}")
        print(f"  micro-kernels in use: {info['kernel']}")
        print("  CPU supports: " + ", ".join(k for k, ok in info["cpu_supports"].items() if ok))
        extra = (f" (a call runs at most {info['cores']}: the CPUs this process may use)"
                 if info["threads"] > info["cores"] else "")
        print(f"  threads: {info['threads']}{extra}")
        for dt, b in info["blocking"].items():
            print(f"  {dt}: {b['mr']}x{b['nr']} micro-tile, kc={b['kc']} mc={b['mc']}")
        print(f"  L2 per core: {info['l2_bytes'] // 1024} KiB (the packed GEMM's row blocks"
              " take half)")
        spec = _OPENMP_SPECS.get(info["openmp"])
        print(f"  built by {info['compiler']} for OpenMP {info['openmp']}"
              + (f" ({spec})" if spec else ""))
        print(f"  OpenMP runtime: {info['openmp_library'] or 'unknown'}")
    return info
