"""python -m fastnet bench: fastnet against NumPy, PyTorch and scikit-learn, side by side.

For each workload, dtype and thread count it trains one epoch at a time with every
implementation in interleaved rounds (each implementation once per round, each call
after a pause so no other library's idle threads still spin on the cores it needs),
from the same initial weights on the same data, and prints the median time per epoch,
fastnet's speedup over each peer (the median over rounds of peer time / fastnet time in
the same round: above 1 fastnet is faster)
and how close fastnet comes to the machine's GEMM rate, measured in the same run with
NumPy on a square product:

    FLOP limit = epoch FLOPs / GEMM rate,   epoch FLOPs = 2 E (2 n_in n_h + 3 n_h n_out)
    (deeper networks: 3 products for each layer after the first)
    % of GEMM  = FLOP limit / fastnet's time per epoch

With several thread counts, each row after the first count also says how much faster
fastnet runs there than on the first ("scaling"), from rounds that time the two side by
side: fastnet alone, alternately on each count.

With two or more threads each round also measures a cache line's trip between two
threads' cores ("trip"): these machines' vCPUs move between cores that share a cache
(tens of ns) and cores that do not (hundreds), and the second state changes every
implementation's multi-thread time, so each row says which state its rounds saw.

Before timing, it checks that the implementations computing the workload's model (fastnet,
numpy, torch) reach the same losses and parameters after two epochs; a disagreement is
shown as ✗ and makes the exit status 1. scikit-learn's MLPRegressor (biases, identity
output layer) is checked on its own model, digits-regressor; elsewhere it is the nearest
peer only: timed, not checked, marked with *.

Only NumPy is needed; torch, scikit-learn, threadpoolctl (thread control and the BLAS
kernel name) and matplotlib (--plot) are used when installed (the bench extra).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

import fastnet

from . import _core, _peers

ALL_WORKLOADS = list(_peers.WORKLOADS) + list(_peers.PREDICTS)


def _default_repeats():
    """The workloads' default repeats (their rounds), for --repeats' help: "3 for mnist,
    wide, ..., 5 for xor and predict, ..."."""
    names = {}
    for name, wl in {**_peers.WORKLOADS, **_peers.PREDICTS}.items():
        names.setdefault(wl.rounds, []).append(name)
    return ", ".join(f"{rounds} for {', '.join(names[rounds])}" for rounds in sorted(names))


QUICK_ROWS = {"mnist": 6000, "mnist-shuffled": 6000, "wide": 2048, "predict": 6000}
QUICK_XOR_EPOCHS = 200


# --------------------------------------------------------------------------- arguments


def _csv(kind, choices=None, convert=str):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"empty list of {kind}")
        out = []
        for t in items:
            try:
                value = convert(t)
            except ValueError:
                raise argparse.ArgumentTypeError(f"bad {kind} {t!r}") from None
            if choices is not None and value not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {kind} {t!r} (choose from {', '.join(choices)})"
                )
            if value not in out:
                out.append(value)
        return out

    return parse


def _positive(kind):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {kind} {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{kind} must be >= 1; got {value}")
        return value

    return parse


def _parser():
    cpus = os.cpu_count() or 1
    p = argparse.ArgumentParser(
        prog="python -m fastnet bench",
        description="Time fastnet against NumPy, PyTorch and scikit-learn on the seed's "
        "network; print time per epoch, speedups and percent of the GEMM rate.",
        epilog="Speedup = peer time / fastnet time (above 1: fastnet is faster). "
        "Exit status 1 if implementations disagree on the loss. For honest numbers run on "
        "a quiet machine with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`.",
    )
    p.add_argument("--workloads", type=_csv("workload", ALL_WORKLOADS), default=ALL_WORKLOADS,
                   help=f"comma-separated, from {','.join(ALL_WORKLOADS)} (default: all)")
    p.add_argument("--dtype", choices=["float32", "float64", "both"], default="float32",
                   help="default: float32")
    p.add_argument("--threads", type=_csv("thread count", convert=_positive("thread count")),
                   default=sorted({1, cpus}),
                   help=f"comma-separated thread counts, each given to every implementation "
                   f"(default: {','.join(map(str, sorted({1, cpus})))})")
    p.add_argument("--impls", type=_csv("implementation", list(_peers.TRAINERS)),
                   default=list(_peers.DEFAULT_IMPLS),
                   help=f"comma-separated, from {','.join(_peers.TRAINERS)} "
                   f"(default: {','.join(_peers.DEFAULT_IMPLS)}; fastnet is always included)")
    p.add_argument("--repeats", type=_positive("repeat count"), default=None,
                   help="timed epochs per implementation (median reported; predict-1: "
                   f"timings of 1000 one-row calls; default: {_default_repeats()}; "
                   "--quick: 2)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: fewer rows for mnist/wide/predict "
                   f"({QUICK_ROWS['mnist']}/{QUICK_ROWS['wide']}/{QUICK_ROWS['predict']}), "
                   f"{QUICK_XOR_EPOCHS} xor epochs per call, 2 repeats, a 2048^2 GEMM")
    p.add_argument("--gemm-size", type=_positive("GEMM size"), default=None,
                   help="side of the square GEMM that measures the machine's rate "
                   "(default 4096, --quick 2048)")
    p.add_argument("--no-check", action="store_true", help="skip the loss agreement check")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of speedups (needs matplotlib)")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table")
    return p


# --------------------------------------------------------------------------- formatting


def fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_speedup(x):
    if x is None:
        return ""
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


def fmt_trips(trips):
    """The rounds' cache-line trips (ns) as one cell: the median, with "*" when some round
    saw cores that do not share a cache (a trip over SLOW_LINE_NS); "-" on one thread."""
    trips = [t for t in trips if t is not None]
    if not trips:
        return "-"
    slow = any(t > _core.SLOW_LINE_NS for t in trips)
    return f"{statistics.median(trips):.0f}{'*' if slow else ''}"


def _result_cells(r, limit=False):
    """fastnet's thread scaling, GFLOP/s, (its FLOP limit,) %GEMM, the line trip and the
    check mark of a row: the columns after the peers', in the table and in the markdown
    alike."""
    cells = [fmt_speedup(r.get("scaling")) or "-"]
    cells += [f"{r['gflops']:.1f}" if r["gflops"] is not None else "-"]
    cells += [fmt_time(r["flop_limit"])] if limit else []
    return cells + [f"{r['pct_gemm']:.0f}%" if r["pct_gemm"] is not None else "-",
                    fmt_trips(r["line_trip_ns"]), MARKS[r["ok"]]]


# a check or target: passed, failed, not made
MARKS = {True: "✓", False: "✗", None: "-"}


def _label(impl):
    return "sklearn*" if impl == "sklearn" else impl


class Table:
    """Fixed-width rows, printed as soon as each is measured."""

    def __init__(self, impls, out, workloads=()):
        self.impls = impls
        self.out = out
        width = max([9] + [len(w) for w in workloads])
        self.cols = [("workload", width), ("dtype", 7), ("thr", 3), ("rows", 6), ("fastnet", 9)]
        self.cols += [(_label(i), 18) for i in impls if i != "fastnet"]
        self.cols += [("scaling", 7), ("GFLOP/s", 7), ("limit", 9), ("%GEMM", 5), ("trip", 6),
                      ("ok", 2)]

    def _line(self, cells):
        cols = zip(cells, self.cols)
        return "  ".join(
            (c.ljust(w) if i < 2 else c.rjust(w)) for i, (c, (_, w)) in enumerate(cols)
        ).rstrip()

    def header(self):
        print(self._line([n for n, _ in self.cols]), file=self.out)
        print(self._line(["-" * w for _, w in self.cols]), file=self.out, flush=True)

    def row(self, r):
        cells = [r["workload"], r["dtype"], str(r["threads"]), str(r["rows"]),
                 fmt_time(r["times"].get("fastnet"))]
        for impl in self.impls:
            if impl == "fastnet":
                continue
            t = r["times"].get(impl)
            if t is None:
                cells.append("n/a")
            else:
                cells.append(f"{fmt_time(t)} ({fmt_speedup(r['speedup'][impl])})")
        print(self._line(cells + _result_cells(r, limit=True)), file=self.out, flush=True)


def markdown(rows, impls):
    peers = [i for i in impls if i != "fastnet"]
    head = (["workload", "dtype", "threads", "fastnet / epoch"]
            + [f"{_label(p)} / epoch (speedup)" for p in peers]
            + ["thread scaling", "fastnet GFLOP/s", "% of GEMM", "line trip (ns)", "agree"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["workload"], r["dtype"], str(r["threads"]), fmt_time(r["times"]["fastnet"])]
        for p in peers:
            t = r["times"].get(p)
            cells.append("n/a" if t is None else f"{fmt_time(t)} ({fmt_speedup(r['speedup'][p])})")
        lines.append("| " + " | ".join(cells + _result_cells(r)) + " |")
    return "\n".join(lines)


def speedup_figure(rows, impls):
    """A matplotlib figure of the rows' speedups: for each peer, a bar per row (its
    height the median same-round ratio; 0 where the peer did not run), on a log scale
    with a line at 1 (below it, the peer is faster)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = [i for i in impls if i != "fastnet" and any(r["times"].get(i) for r in rows)]
    labels = [f"{r['workload']}\n{r['dtype'][5:]}b {r['threads']}t" for r in rows]
    width = 0.8 / max(len(peers), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4.5))
    for k, p in enumerate(peers):
        xs = [i + (k - (len(peers) - 1) / 2) * width for i in range(len(rows))]
        ys = [r["speedup"].get(p) or 0 for r in rows]
        ax.bar(xs, ys, width, label=_label(p))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("fastnet speedup (peer time / fastnet time)")
    ax.set_title("fastnet vs peers, time per epoch (predict: per call)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


PLOT_DPI = 120


def plot(rows, impls, path):
    """speedup_figure as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    fig = speedup_figure(rows, impls)
    fig.savefig(path, dpi=PLOT_DPI)
    plt.close(fig)


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One of fastnet's performance targets, on two threads: on ``workload`` in each of
    ``dtypes``, ``metric`` (``speedup`` over ``peer``, ``pct_gemm`` of NumPy's GEMM rate,
    or ``scaling`` from one thread to two) at least ``least`` (more than it if
    ``strict``). Speedups hold against the peer in the same dtype."""
    workload: str
    metric: str
    least: float
    peer: str | None = None
    dtypes: tuple = ("float32", "float64")
    strict: bool = False


TARGET_THREADS = 2
# PyTorch targets are judged against both torch loops: the usual autograd one and
# hand-written backpropagation on preallocated tensors (the faster of the two).
TARGETS = (
    Target("xor", "speedup", 50, "numpy"),
    Target("xor", "speedup", 300, "torch-autograd"),
    Target("xor", "speedup", 300, "torch"),
    Target("digits", "speedup", 5, "numpy"),
    Target("digits", "speedup", 25, "torch-autograd"),
    Target("digits", "speedup", 25, "torch"),
    Target("mnist", "speedup", 1.5, "numpy"),
    Target("mnist", "speedup", 3, "torch-autograd"),
    Target("mnist", "speedup", 3, "torch"),
    Target("mnist", "pct_gemm", 65, dtypes=("float32",)),
    Target("mnist", "scaling", 1.8, dtypes=("float32",)),
    Target("wide", "speedup", 1.3, "numpy"),
    Target("wide", "pct_gemm", 75, dtypes=("float32",)),
    Target("wide", "scaling", 1.8, dtypes=("float32",)),
    Target("predict", "speedup", 1.0, "numpy", strict=True),
)


def _target_name(t):
    what = {"speedup": f"vs {t.peer}", "pct_gemm": "% of GEMM rate",
            "scaling": "1 -> 2 threads"}[t.metric]
    bound = f"{'>' if t.strict else '>='} {t.least:g}{'%' if t.metric == 'pct_gemm' else 'x'}"
    return f"{t.workload} {what} {bound}"


def target_verdicts(rows, targets=TARGETS):
    """Each target in each of its dtypes that the run timed its workload in: a dict with
    the target's ``name``, ``dtype``, the measured ``value`` (None when the run did not
    measure it: no two-thread row, peer or scaling) and ``met`` (None likewise)."""
    by_key = {(r["workload"], r["dtype"], r["threads"]): r for r in rows}
    timed = {(r["workload"], r["dtype"]) for r in rows}
    verdicts = []
    for t in targets:
        for dt in t.dtypes:
            if (t.workload, dt) not in timed:
                continue
            row = by_key.get((t.workload, dt, TARGET_THREADS))
            if row is None:
                value = None
            elif t.metric == "speedup":
                value = row["speedup"].get(t.peer)
            elif t.metric == "scaling" and row.get("scaling_from") != 1:
                value = None  # the run's first thread count was not 1
            else:
                value = row.get(t.metric)
            met = None if value is None else (value > t.least if t.strict
                                              else value >= t.least)
            verdicts.append({"name": _target_name(t), "workload": t.workload, "dtype": dt,
                             "metric": t.metric, "peer": t.peer, "least": t.least,
                             "value": value, "met": met})
    return verdicts


def _fmt_value(v):
    if v["value"] is None:
        return "not measured"
    return f"{v['value']:.0f}%" if v["metric"] == "pct_gemm" else fmt_speedup(v["value"])


def print_targets(verdicts, out):
    if not verdicts:
        return
    print(f"\nfastnet's performance targets ({TARGET_THREADS} threads):", file=out)
    for v in verdicts:
        print(f"  {MARKS[v['met']]} {v['name']}, {v['dtype']}: {_fmt_value(v)}", file=out)
    met = sum(v["met"] is True for v in verdicts)
    unmeasured = sum(v["met"] is None for v in verdicts)
    print(f"  {met} of {len(verdicts)} met"
          + (f", {unmeasured} not measured in this run" if unmeasured else ""), file=out)


def targets_markdown(verdicts):
    lines = ["| target | dtype | measured | met |", "|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v['name']} | {v['dtype']} | {_fmt_value(v)} | {MARKS[v['met']]} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- measuring


def gemm_rate(dtype, n, repeats):
    """NumPy's float GEMM rate in GFLOP/s on an n x n product (median of repeats)."""
    rng = np.random.default_rng(0)
    A = rng.random((n, n)).astype(dtype)
    B = rng.random((n, n)).astype(dtype)
    C = np.empty((n, n), dtype)
    np.matmul(A, B, out=C)  # warm up: threads, pages
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(A, B, out=C)
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / statistics.median(times) / 1e9


def _calls(fn, n):
    for _ in range(n):
        fn()


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# Seconds to let the previous implementation's idle threads stop spinning (OpenBLAS
# workers busy-wait ~2^28 cycles after a call, libgomp a while too) before the next one.
SETTLE = 0.2

# Seconds of untimed calls (at least one) after that pause, before the timed call. One
# call was not enough for short ones: after the pause, fastnet's 2-thread digits epoch
# timed right after one warm-up call took 426-531 us, and 378-381 us (what a training
# loop sees) after 5 ms or more of calls; one-thread times did not change.
WARM_UP = 0.02


def measure(workload, dtype, impls, repeats, weights, trips=None):
    """Seconds per epoch (predict: per call) of each implementation, timed in this run in
    interleaved rounds: in each round every implementation in turn pauses, makes
    untimed warm-up calls (for WARM_UP seconds, at least one) and one timed call. A drift
    in the machine's load (these shared machines drift by 2x within seconds) then falls on
    all implementations of a round alike instead of on whichever ran during it. The pause
    keeps the turns fair with 2 threads on 2 cores: without it the previous library's idle
    threads still spin and steal a core (measured 2x on fastnet's mnist epoch); the
    warm-up after it wakes the threads (a sleeping thread took 7-8 ms to join) and refills
    the caches the pause let go cold (a timed call straight after the pause measured XOR
    6x slower). With ``trips``, a list, each round first appends the cache line's trip
    between two threads' cores (ns; None on one thread): the host state that round ran
    in. Returns {impl: [seconds of each round]}."""
    calls = _epoch_calls(workload, dtype, impls, weights)
    return _rounds(calls, repeats, workload.epochs_per_call, trips)


def measure_scaling(workload, dtype, repeats, weights, threads):
    """fastnet alone on each thread count of ``threads`` in turn, in interleaved rounds
    as ``measure`` times the peers (fastnet's other settings, and the peers' threads, as
    they are): the thread scaling as a ratio of times taken side by side. Taken from rows
    timed minutes apart, the host's spells had moved it by 10% (mnist 1 -> 2 threads:
    1.71x from two rows, 1.9-1.98x alternating calls). Returns {n: [seconds a round]}."""
    fn = _epoch_calls(workload, dtype, ["fastnet"], weights)["fastnet"]
    return _rounds({n: fn for n in threads}, repeats, workload.epochs_per_call,
                   prepare=fastnet.set_num_threads)


def _epoch_calls(workload, dtype, impls, weights):
    """{impl: a call of workload.epochs_per_call epochs (predict: calls)}."""
    per = workload.epochs_per_call
    if workload.name == "predict":
        return {i: (lambda p=_peers.make_predictor(i, workload, dtype, weights): _calls(p, per))
                for i in impls}
    trainers = {i: _peers.make_trainer(i, workload, dtype, weights) for i in impls}
    return {i: (lambda t=t: t.epochs(per)) for i, t in trainers.items()}


def _rounds(calls, repeats, per, trips=None, prepare=None):
    """measure's rounds over {key: call}; ``prepare(key)`` first in each turn."""
    times = {i: [] for i in calls}
    for _ in range(repeats):
        if trips is not None:
            trips.append(_core.line_trip_ns())
        for i, fn in calls.items():
            if prepare is not None:
                prepare(i)
            time.sleep(SETTLE)
            start = time.perf_counter()
            fn()
            while time.perf_counter() - start < WARM_UP:
                fn()
            times[i].append(_timed(fn) / per)
    return times


def speedups(times, base="fastnet"):
    """The speedup of ``base`` over each other key: the median over rounds of the ratio
    of the two times of the same round (robust to drift between rounds, unlike a ratio of
    medians)."""
    fast = times[base]
    return {i: statistics.median(t / f for t, f in zip(ts, fast))
            for i, ts in times.items() if i != base}


# cpu_rates times at most this many CPUs (about 0.2 s each)
MAX_RATED_CPUS = 8


def cpu_rates(n=768, repeats=9, cpus=None):
    """{cpu: GFLOP/s} of fastnet's one-thread float32 GEMM (n x n) on the calling thread
    pinned to each CPU in turn (by default the first MAX_RATED_CPUS this process may run
    on), round after round (the median of repeats rounds: the rates drift within
    seconds), the affinity restored after; None where threads cannot be pinned. A shared
    host can run one vCPU much slower than another: on this project's machines one ran
    the same product at 0.6-0.7x the other's rate for minutes (XOR's epoch too, at
    0.7-1.0x), and a team whose work is split evenly then waits for the slow one."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except OSError:
        return None
    cpus = allowed[:MAX_RATED_CPUS] if cpus is None else cpus
    if len(cpus) < 2:
        return None
    rng = np.random.default_rng(0)
    A = rng.random((n, n), dtype=np.float32)
    B = rng.random((n, n), dtype=np.float32)
    threads = fastnet.get_num_threads()
    try:
        fastnet.set_num_threads(1)
        times = {cpu: [] for cpu in cpus}
        for _ in range(repeats):
            for cpu in cpus:
                os.sched_setaffinity(0, {cpu})
                fastnet.kernels.matmul(A, B)  # warm up on this CPU
                times[cpu].append(_timed(lambda: fastnet.kernels.matmul(A, B)))
        rates = {cpu: 2.0 * n**3 / statistics.median(t) / 1e9 for cpu, t in times.items()}
    except OSError:
        return None
    finally:
        os.sched_setaffinity(0, allowed)
        fastnet.set_num_threads(threads)
    return rates


def shared_cores_note(gemm, dtypes, threads, line_ns=None, rates=None):
    """A warning when NumPy's GEMM gained much less than the thread count from 1 to the most
    threads. Three host states do that, and this project's machines switch between them
    and the normal one within minutes: one vCPU slower than the other (``rates``, each
    CPU's one-thread GEMM rate, shows it), the two vCPUs on one physical core (a 2-thread
    FMA loop ran at 117 against 232 GFLOP/s), or on cores that do not share a cache (the
    FMA loop at full speed, but a cache line takes 165-270 ns between them against
    27-67 ns, and OpenBLAS's threads share packed panels). ``line_ns``, the measured trip,
    tells the last two apart. None when there is no such pair."""
    most = max(threads)
    if most <= 1 or 1 not in threads:
        return None
    for dt in dtypes:
        gain = gemm[(dt, most)] / gemm[(dt, 1)]
        if gain < 0.7 * most:
            slowest = min(rates, key=rates.get) if rates else None
            fastest = max(rates, key=rates.get) if rates else None
            if rates and rates[slowest] < 0.8 * rates[fastest]:
                why = (f"one CPU runs slower than another right now (CPU {slowest} at "
                       f"{rates[slowest] / rates[fastest]:.2f}x the GEMM rate of CPU "
                       f"{fastest}), which caps every implementation that splits its work "
                       "evenly between threads")
            elif line_ns is not None and line_ns > _core.SLOW_LINE_NS:
                why = ("the threads' cores do not share a cache right now (a cache line takes "
                       f"{line_ns:.0f} ns between them), which slows every implementation "
                       "that shares data between threads")
            else:
                why = ("the CPUs seem to share physical cores right now, which caps every "
                       "implementation's multi-thread speed")
            return (f"NumPy's {dt} GEMM ran only {gain:.2f}x faster on {most} threads than "
                    f"on 1: {why}")
    return None


# NumPy's GEMM rate at the end of a run may differ from the start's by this fraction
# before the report says the machine's speed changed during the run.
DRIFT = 0.15


def drift_note(start, end, tolerance=DRIFT):
    """A warning when NumPy's GEMM rate, measured again at the end of the run, moved by more
    than ``tolerance`` from the start's ({(dtype, threads): GFLOP/s} each), naming the
    largest move; None when none did. This project's machines change speed within
    minutes (one run measured NumPy's GEMM faster at its start than the run before it,
    then timed every implementation slower than that run did): %GEMM, taken against the
    start's rate, then misreads, and times of workloads measured minutes apart are not
    comparable, while the speedups, ratios of rounds timed side by side, still are."""
    moved = {k: end[k] / start[k] for k in start if k in end and start[k] > 0
             and abs(end[k] / start[k] - 1) > tolerance}
    if not moved:
        return None
    (dt, n), ratio = max(moved.items(), key=lambda kv: abs(kv[1] - 1))
    return (f"the machine's speed changed during the run: NumPy's {dt} GEMM on {n} "
            f"thread{'s' if n > 1 else ''} ran at {start[(dt, n)]:.1f} GFLOP/s at the start "
            f"and {end[(dt, n)]:.1f} at the end ({ratio:.2f}x), so %GEMM, against the "
            "start's rate, and times measured minutes apart are not comparable; the "
            "speedups are (each is the median of ratios of rounds timed side by side)")


def _gemm_rates(dtypes, threads, n, repeats):
    """NumPy's GEMM rate for each dtype and thread count, and the header line saying them."""
    rates, parts = {}, []
    for dt in dtypes:
        for t in threads:
            _peers.set_threads(t)
            time.sleep(SETTLE)  # as before each timed call: the last library's threads idle
            rates[(dt, t)] = gemm_rate(np.dtype(dt), n, repeats)
            parts.append(f"{dt} {t} thr {rates[(dt, t)]:.1f}")
    return rates, ", ".join(parts)


def _cpu_model():
    """The CPU's name, family and model as Linux reports them; else what platform knows."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" in fields:
        return (f"{fields['model name']}, family {fields.get('cpu family', '?')} model "
                f"{fields.get('model', '?')}")
    return platform.processor() or platform.machine()


def _header(out, impls, thread_control, threads=()):
    cfg = fastnet.show_config(print_out=False)
    print("fastnet bench", file=out)
    print(f"  fastnet {cfg['version']}: micro-kernels {cfg['kernel']} "
          f"(CPU supports {', '.join(k for k, ok in cfg['cpu_supports'].items() if ok)}), "
          + "; ".join(f"{dt} {b['mr']}x{b['nr']} kc={b['kc']} mc={b['mc']}"
                      for dt, b in cfg["blocking"].items())
          + f"; L2 {cfg['l2_bytes'] // 1024} KiB a core", file=out)
    for line in _peers.describe_blas():
        print("  " + line, file=out)
    v = _peers.versions()
    print(f"  python {platform.python_version()}, numpy {v['numpy']}, torch {v['torch'] or '-'}, "
          f"scikit-learn {v['scikit-learn'] or '-'}, {os.cpu_count()} CPUs "
          f"({_cpu_model()})", file=out)
    notes = []
    for impl in impls:
        if not _peers.available(impl):
            mod = {"sklearn": "scikit-learn"}.get(_peers.REQUIRES[impl], _peers.REQUIRES[impl])
            notes.append(f"{impl} skipped: {mod} is not installed "
                         "(pip install '.[bench]' from fastnet's source, or that package)")
    if not thread_control:
        notes.append("threadpoolctl is not installed: NumPy/scikit-learn use their default "
                     "BLAS threads whatever --threads says")
    if threads and max(threads) > cfg["cores"]:
        notes.append(f"fastnet runs at most {cfg['cores']} threads here (the CPUs this "
                     "process may use): its rows for more threads run on that many")
    for n in notes:
        print(f"  note: {n}", file=out)
    warning = _peers.openblas_env_warning()
    if warning:
        print(f"  WARNING: {warning}", file=out)
    return notes, warning


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `python -m fastnet bench -- --quick` (see fastnet.__main__)
        argv = argv[1:]
    args = _parser().parse_args(argv)
    out = sys.stdout
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("python -m fastnet bench: --plot needs matplotlib, which is not installed "
                  "(pip install matplotlib)", file=sys.stderr)
            return 2
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]
    impls = ["fastnet"] + [i for i in args.impls if i != "fastnet"]
    gemm_n = args.gemm_size if args.gemm_size is not None else 2048 if args.quick else 4096

    thread_control = _peers.optional("threadpoolctl") is not None
    notes, warning = _header(out, impls, thread_control, args.threads)
    for i in impls:
        if _peers.available(i) and _peers.REQUIRES.get(i) == "torch":
            import torch  # noqa: F401  (so that set_threads reaches it)
    present = [i for i in impls if _peers.available(i)]

    # The machine's GEMM rate, per dtype and thread count, in this same run (and again at
    # its end, below).
    gemm_repeats = 2 if args.quick else 3
    gemm, said = _gemm_rates(dtypes, args.threads, gemm_n, gemm_repeats)
    print(f"  GEMM rate (NumPy, {gemm_n}^2, GFLOP/s): {said}", file=out)
    line_ns = None
    if max(args.threads) >= 2:
        _peers.set_threads(max(args.threads))
        line_ns = _core.line_trip_ns()
    if line_ns is not None:
        where = "cores not sharing a cache" if line_ns > _core.SLOW_LINE_NS else "a shared cache"
        print(f"  cache line between two threads' cores: {line_ns:.0f} ns one way ({where})",
              file=out)
    rates = cpu_rates() if max(args.threads) >= 2 else None
    if rates:
        print("  one-thread GEMM rate by CPU (fastnet, float32, GFLOP/s): "
              + ", ".join(f"CPU {c} {r:.1f}" for c, r in rates.items()), file=out)
    # without threadpoolctl NumPy ran its default threads at every count: nothing to compare
    shared = (shared_cores_note(gemm, dtypes, args.threads, line_ns, rates)
              if thread_control else None)
    if shared:
        notes.append(shared)
        print(f"  WARNING: {shared}", file=out)
    print(f"  time per epoch (predict: per call), median of the rounds; (Nx) = fastnet's "
          f"speedup over that peer, median of its per-round ratios; limit = epoch FLOPs / "
          f"GEMM rate; scaling = fastnet's speedup over itself on {args.threads[0]} "
          f"thread(s), median of the ratios of rounds timed side by side; "
          f"%GEMM = limit / fastnet time; trip = cache line between two "
          f"threads' cores, ns, median of the rounds (*: some round over "
          f"{_core.SLOW_LINE_NS:.0f}, cores not sharing a cache)"
          f"{'; --quick: fewer rows' if args.quick else ''}", file=out)
    if "sklearn" in present:
        print("  * sklearn = MLPRegressor (biases, identity output): checked on its own "
              "model (digits-regressor), elsewhere the nearest peer, not the same model, "
              "not checked", file=out)
    print(file=out)

    table = Table(impls, out, args.workloads)
    table.header()
    rows, checks = [], []
    for name in args.workloads:
        wl = _peers.PREDICTS[name] if name in _peers.PREDICTS else _peers.WORKLOADS[name]
        if args.quick:
            if name in QUICK_ROWS:
                wl = wl.scaled(QUICK_ROWS[name])
            if name == "xor":
                wl = replace(wl, epochs_per_call=QUICK_XOR_EPOCHS)
        repeats = args.repeats or (2 if args.quick else wl.rounds)
        flops = wl.predict_flops() if name in _peers.PREDICTS else wl.epoch_flops()
        for dt in dtypes:
            weights = _peers.initial_weights(wl, dt)
            ok = None
            if not args.no_check:
                _peers.set_threads(args.threads[-1])
                agreement = _peers.check_agreement(wl, dt, present)
                checks.append(agreement)
                ok = agreement.verdict
            for n in args.threads:
                _peers.set_threads(n)
                trips = []
                res = measure(wl, dt, present, repeats, weights, trips)
                times = {i: statistics.median(res[i]) for i in present}
                t_fast = times["fastnet"]
                limit = flops / (gemm[(dt, n)] * 1e9)
                row = {
                    "workload": name, "dtype": dt, "threads": n, "rows": wl.n_examples,
                    "layers": list(wl.layers), "batch_size": wl.batch_size,
                    "flops": flops, "repeats": repeats,
                    "times": times,
                    "all_times": res,
                    "speedup": speedups(res),
                    "gflops": flops / t_fast / 1e9,
                    "flop_limit": limit,
                    "pct_gemm": 100.0 * limit / t_fast,
                    "gemm_gflops": gemm[(dt, n)],
                    "line_trip_ns": trips,
                    "ok": ok,
                }
                if n != args.threads[0]:  # fastnet on the first count and on n, side by side
                    base = args.threads[0]
                    scaling = measure_scaling(wl, dt, repeats, weights, [base, n])
                    row.update(scaling=speedups(scaling, base=n)[base], scaling_from=base,
                               scaling_times=scaling)
                rows.append(row)
                table.row(row)
            _peers.clear_data_cache()

    # The GEMM rate again: did the machine's speed hold through the run?
    gemm_end, said = _gemm_rates(dtypes, args.threads, gemm_n, gemm_repeats)
    print(f"\n  GEMM rate at the end (NumPy, {gemm_n}^2, GFLOP/s): {said}", file=out)
    drift = drift_note(gemm, gemm_end)
    if drift:
        notes.append(drift)
        print(f"  WARNING: {drift}", file=out)

    if checks:
        print(file=out)
        for c in checks:
            print(f"{MARKS[c.verdict]} {c.message}", file=out)
    failed = [c for c in checks if not c.ok]
    verdicts = target_verdicts(rows)
    print_targets(verdicts, out)

    if args.markdown:
        print(file=out)
        print(markdown(rows, impls), file=out)
        if verdicts:
            print(file=out)
            print(targets_markdown(verdicts), file=out)
    if args.json:
        doc = {
            "fastnet_config": fastnet.show_config(print_out=False),
            "blas": _peers.openblas_info(),
            "versions": _peers.versions(),
            "cpus": os.cpu_count(),
            "openblas_env_warning": warning,
            "notes": notes,
            "quick": args.quick,
            "gemm_size": gemm_n,
            "gemm_gflops": {f"{dt}/{n}": r for (dt, n), r in gemm.items()},
            "gemm_gflops_end": {f"{dt}/{n}": r for (dt, n), r in gemm_end.items()},
            "line_trip_ns": line_ns,
            "cpu_gemm_gflops": rates,
            "results": rows,
            "checks": [c.__dict__ for c in checks],
            "targets": verdicts,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=str)
        print(f"\nwrote {args.json}", file=out)
    if args.plot:
        plot(rows, impls, args.plot)
        print(f"wrote {args.plot}", file=out)
    if failed:
        print(f"\n✗ {len(failed)} check(s) failed: a benchmark of a wrong answer counts for "
              "nothing", file=out)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
