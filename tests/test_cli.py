"""``python -m fastnet config`` and ``python -m fastnet demo`` run in a fresh interpreter
(from a temporary directory, so the installed package is the one imported)."""
from __future__ import annotations

import subprocess
import sys

import pytest

import fastnet


def _run(tmp_path, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastnet", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


def test_config_command_runs_and_shows_the_kernels(tmp_path):
    result = _run(tmp_path, "config", timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"fastnet {fastnet.__version__}" in result.stdout
    config = fastnet.show_config(print_out=False)
    assert config["kernel"] in result.stdout
    for dtype, b in config["blocking"].items():
        assert f"{dtype}: {b['mr']}x{b['nr']} micro-tile, kc={b['kc']}" in result.stdout
    assert config["l2_bytes"] >= 256 * 1024
    assert f"L2 per core: {config['l2_bytes'] // 1024} KiB" in result.stdout
    assert f"built by {config['compiler']} for OpenMP {config['openmp']}" in result.stdout
    assert f"OpenMP runtime: {config['openmp_library']}" in result.stdout


def test_config_names_the_compiler_and_the_openmp_runtime_the_teams_come_from():
    """The build in show_config (which `config` prints, above): a compiler with its
    version, the OpenMP version compiled for, and the runtime library, which must be one
    threadpoolctl finds loaded as OpenMP after a call has run a team."""
    import os
    import re

    import numpy as np
    from threadpoolctl import threadpool_info

    config = fastnet.show_config(print_out=False)
    assert re.fullmatch(r"(GCC|clang) \d+\.\d+.*", config["compiler"]), config["compiler"]
    assert 200505 <= config["openmp"] < 210000
    net = fastnet.Network([4, 3, 2], seed=0)
    net.fit(np.ones((8, 4), np.float32), np.ones((8, 2), np.float32), 1, 0.1)
    loaded = {os.path.realpath(i["filepath"]) for i in threadpool_info()
              if i["user_api"] == "openmp"}
    assert os.path.realpath(config["openmp_library"]) in loaded


def test_demo_command_runs_and_tells_the_chain_rule_result_24(tmp_path):
    """The demo tells the seed's story; its chain-rule example gives dz/dx(2) = 24."""
    result = _run(tmp_path, "demo")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "24" in result.stdout


def test_bench_header_notes_thread_counts_above_the_cores():
    """Rows for more threads than fastnet runs (the CPUs this process may use) are said
    to run on that many, and nothing is said when every count fits."""
    import io

    from fastnet import _core, bench

    cores = _core.cores()
    out = io.StringIO()
    notes, _ = bench._header(out, ["fastnet"], True, [1, cores + 1])
    assert f"fastnet runs at most {cores} threads here" in out.getvalue()
    assert any(f"at most {cores} threads" in n for n in notes)
    notes, _ = bench._header(io.StringIO(), ["fastnet"], True, [1, cores])
    assert not any("threads here" in n for n in notes)


def test_unknown_command_exits_with_usage_error(tmp_path):
    result = _run(tmp_path, "frobnicate", timeout=120)
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_bench_command_times_every_peer_in_rounds_and_checks_the_loss(tmp_path):
    """A smoke run of the benchmark command: fastnet against the NumPy reference loop on
    XOR, one thread; both reach the same loss (✓) and the JSON keeps every round."""
    import json

    from fastnet import bench

    out = tmp_path / "bench.json"
    result = _run(tmp_path, "bench", "--workloads", "xor", "--impls", "fastnet,numpy",
                  "--threads", "1", "--quick", "--repeats", "3", "--gemm-size", "256",
                  "--json", str(out), "--plot", str(tmp_path / "bench.png"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "✓ xor float32" in result.stdout
    assert f"wrote {tmp_path / 'bench.png'}" in result.stdout
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(out.read_text())
    (row,) = doc["results"]
    assert [len(row["all_times"][i]) for i in ("fastnet", "numpy")] == [3, 3]
    assert row["times"]["numpy"] > 0 and row["speedup"]["numpy"] > 0
    assert row["line_trip_ns"] == [None] * 3  # one thread: no pair of cores to time
    # NumPy's GEMM rate at the start and at the end
    assert set(doc["gemm_gflops"]) == set(doc["gemm_gflops_end"]) == {"float32/1"}
    assert doc["gemm_gflops_end"]["float32/1"] > 0
    assert "GEMM rate at the end (NumPy, 256^2" in result.stdout
    # xor's targets in float32 (the run's workload and dtype), none measured on one thread
    xor = [t for t in bench.TARGETS if t.workload == "xor" and "float32" in t.dtypes]
    assert f"0 of {len(xor)} met, {len(xor)} not measured in this run" in result.stdout
    assert [(v["workload"], v["dtype"], v["met"]) for v in doc["targets"]] == \
        [("xor", "float32", None)] * len(xor)


def _row(workload, dtype, threads, speedup, **more):
    """A bench result row as main() builds it, with the given speedups over the peers (their
    times that many times fastnet's)."""
    return {"workload": workload, "dtype": dtype, "threads": threads,
            "times": {"fastnet": 0.5, **{p: 0.5 * x for p, x in speedup.items()}},
            "speedup": speedup, **more}


def test_bench_plot_draws_each_peers_speedup_of_each_row_as_a_bar(tmp_path):
    """--plot: for each peer that ran, one bar a row, as high as that row's speedup (0
    where the peer did not run), labelled by workload, dtype and threads; the PNG has the
    figure's size."""
    import matplotlib.image
    import matplotlib.pyplot as plt

    from fastnet import bench

    rows = [_row("xor", "float32", 1, {"numpy": 150.0, "sklearn": 2500.0}),
            _row("wide", "float64", 2, {"numpy": 1.29})]
    impls = ["fastnet", "numpy", "torch", "sklearn"]  # torch ran in no row: no bars
    fig = bench.speedup_figure(rows, impls)
    try:
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["numpy", "sklearn*"]
        heights = [[bar.get_height() for bar in bars] for bars in ax.containers]
        assert heights == [[150.0, 1.29], [2500.0, 0]]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["xor\n32b 1t", "wide\n64b 2t"]
        assert ax.get_yscale() == "log"
        width, height = fig.get_size_inches() * bench.PLOT_DPI
    finally:
        plt.close(fig)
    path = tmp_path / "speedups.png"
    bench.plot(rows, impls, path)
    assert matplotlib.image.imread(path).shape[:2] == (round(height), round(width))


def test_the_pytest_benchmark_suite_collects_and_its_small_cases_run(tmp_path):
    """benchmarks/ (pytest benchmarks/ --benchmark-only) is not part of this suite, so a
    change that broke it would go unseen: every file must collect, and the cheap cases
    (the training loop on XOR, predicting one row and the GEMM yardstick, fastnet and
    NumPy) run once each, untimed, through their agreement checks."""
    import os
    import pathlib
    import re

    suite = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
    if not suite.is_dir():  # tests/ run from a copy, outside the source tree
        pytest.skip("benchmarks/ is not beside tests/")
    base = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider"]
    collected = subprocess.run(base + ["--collect-only"], cwd=tmp_path, capture_output=True,
                               text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout[-3000:]
    assert re.search(r"^(\d+) tests collected", collected.stdout, re.M), collected.stdout[-500:]
    ran = subprocess.run(base + ["--benchmark-disable", "-k", "(xor or predict-1) and "
                                 "(fastnet or numpy) or gemm and float32 and 1thr"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:]
    # xor and predict-1: 2 implementations x 2 dtypes x the thread counts (1 and 2; 2 is
    # skipped on one CPU) each; the GEMM once
    thread_counts = sum(n <= (os.cpu_count() or 1) for n in (1, 2))
    expected = 2 * 2 * 2 * thread_counts + 1
    assert re.search(rf"^{expected} passed", ran.stdout, re.M), ran.stdout[-1000:]


def test_bench_judges_each_target_on_the_two_thread_rows_of_its_dtypes():
    """The targets read off a run's rows: a speedup over the named peer in the same dtype,
    the percent of the GEMM rate, or the 1 -> 2 thread scaling, each on two threads; met
    at the bound (predict: only above it), and not measured when the run lacks the
    two-thread row, the peer, or a scaling from one thread; workloads and dtypes the run
    did not time are left out."""
    from fastnet import bench

    rows = [_row("digits", "float32", 2, {"numpy": 5.0, "torch": 24.9}),
            _row("digits", "float64", 2, {"numpy": 4.04, "torch": 30.0}),
            _row("digits", "float32", 1, {"numpy": 9.0, "torch": 90.0}),  # one thread: unused
            _row("wide", "float32", 2, {"numpy": 1.31}, pct_gemm=74.9, scaling=1.8,
                 scaling_from=1),
            _row("wide", "float64", 1, {"numpy": 2.0}),  # timed, but not on two threads
            _row("mnist", "float32", 2, {"numpy": 2.0}, pct_gemm=80.0, scaling=1.9,
                 scaling_from=4),
            _row("predict", "float32", 2, {"numpy": 1.0}),
            _row("predict", "float64", 2, {"numpy": 1.01})]
    got = {(v["name"], v["dtype"]): (v["value"], v["met"]) for v in bench.target_verdicts(rows)}
    assert got[("digits vs numpy >= 5x", "float32")] == (5.0, True)
    assert got[("digits vs numpy >= 5x", "float64")] == (4.04, False)
    assert got[("digits vs torch >= 25x", "float32")] == (24.9, False)
    assert got[("digits vs torch >= 25x", "float64")] == (30.0, True)
    assert got[("digits vs torch-autograd >= 25x", "float32")] == (None, None)
    assert got[("wide vs numpy >= 1.3x", "float32")] == (1.31, True)
    assert got[("wide vs numpy >= 1.3x", "float64")] == (None, None)
    assert got[("wide % of GEMM rate >= 75%", "float32")] == (74.9, False)
    assert got[("wide 1 -> 2 threads >= 1.8x", "float32")] == (1.8, True)
    assert got[("mnist 1 -> 2 threads >= 1.8x", "float32")] == (None, None)  # from 4 threads
    assert got[("mnist % of GEMM rate >= 65%", "float32")] == (80.0, True)
    assert got[("predict vs numpy > 1x", "float32")] == (1.0, False)
    assert got[("predict vs numpy > 1x", "float64")] == (1.01, True)
    # each target in each of its dtypes whose workload the run timed, once
    timed = {(r["workload"], r["dtype"]) for r in rows}
    assert len(got) == sum((t.workload, dt) in timed for t in bench.TARGETS for dt in t.dtypes)
    assert ("wide % of GEMM rate >= 75%", "float64") not in got  # float32 only
    assert not any(name.startswith("xor") for name, _ in got)  # not timed


def test_bench_predict_one_row_times_a_call_over_many_calls(tmp_path):
    """predict-1: one row of the mnist shape, checked against NumPy's output, each timing
    over 1000 calls and reported per call."""
    import json

    out = tmp_path / "bench.json"
    result = _run(tmp_path, "bench", "--workloads", "predict-1", "--impls", "fastnet,numpy",
                  "--threads", "1", "--repeats", "2", "--gemm-size", "256", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "✓ predict (1 row) float32: outputs agree" in result.stdout
    (row,) = json.loads(out.read_text())["results"]
    assert row["workload"] == "predict-1" and row["rows"] == 1
    assert row["flops"] == 2 * (784 * 128 + 128 * 10)
    # per call: a call of one row takes microseconds, far below the 1000 calls' total
    assert all(1e-7 < t < 1e-3 for i in ("fastnet", "numpy") for t in row["all_times"][i])


def test_bench_rows_record_the_cache_line_trip_of_each_round(tmp_path):
    """On two threads every round measures the trip; the table shows its median, starred
    when some round saw cores that do not share a cache."""
    import json

    from fastnet import _core
    from fastnet.bench import fmt_trips

    out = tmp_path / "bench.json"
    result = _run(tmp_path, "bench", "--workloads", "xor", "--impls", "fastnet",
                  "--threads", "2", "--quick", "--repeats", "3", "--gemm-size", "256",
                  "--no-check", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads(out.read_text())["results"]
    trips = row["line_trip_ns"]
    # a measured time each round (milliseconds where a loaded host deschedules a thread)
    assert len(trips) == 3 and all(0 < t < 1e8 for t in trips)
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("xor ")]
    assert line.split()[-2:] == [fmt_trips(trips), "-"]  # trip, then ok: not checked
    slow = _core.SLOW_LINE_NS
    assert fmt_trips([40.0, 60.0, 50.0]) == "50"
    assert fmt_trips([40.0, slow + 90, 50.0]) == "50*"
    assert fmt_trips([None, None]) == "-"


def test_bench_thread_scaling_is_timed_side_by_side(tmp_path):
    """With threads 1,2 the two-thread row carries fastnet's speedup over its one-thread
    self: the median of the ratios of rounds that time the two alternately (the table's
    scaling cell); the first count's row has none."""
    import json
    import statistics

    from fastnet.bench import fmt_speedup

    out = tmp_path / "bench.json"
    result = _run(tmp_path, "bench", "--workloads", "xor", "--impls", "fastnet",
                  "--threads", "1,2", "--quick", "--repeats", "3", "--gemm-size", "256",
                  "--no-check", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = json.loads(out.read_text())["results"]
    assert (one["threads"], two["threads"]) == (1, 2)
    assert "scaling" not in one
    times = two["scaling_times"]
    assert two["scaling_from"] == 1 and [len(times[k]) for k in ("1", "2")] == [3, 3]
    assert two["scaling"] == statistics.median(a / b for a, b in zip(times["1"], times["2"]))
    lines = [x.split() for x in result.stdout.splitlines() if x.startswith("xor ")]
    assert [x[2] for x in lines] == ["1", "2"]
    # from the right: ok, trip, %GEMM, limit (a number and its unit), GFLOP/s, scaling
    assert lines[0][-7] == "-" and lines[1][-7] == fmt_speedup(two["scaling"])


def test_bench_warms_each_implementation_up_for_warm_up_seconds(monkeypatch):
    """After each pause: untimed calls for at least WARM_UP seconds, then one timed call,
    for every implementation alike (one warm-up call left short calls on 2 threads up to
    40% slow)."""
    import time

    from fastnet import _peers, bench

    calls = {}

    class Fake:
        def __init__(self, impl):
            self.impl = impl

        def epochs(self, k):
            calls[self.impl] = calls.get(self.impl, 0) + 1
            time.sleep(0.002)

    monkeypatch.setattr(bench, "SETTLE", 0.0)
    monkeypatch.setattr(_peers, "make_trainer", lambda impl, *args: Fake(impl))
    times = bench.measure(_peers.WORKLOADS["digits"], "float32", ["fastnet", "numpy"], 2, None)
    assert [len(times[i]) for i in ("fastnet", "numpy")] == [2, 2]
    least = 2 * (1 + bench.WARM_UP / 0.002 * 0.5)  # sleep(0.002) may take longer, not less
    assert all(n >= least for n in calls.values()), calls
    assert all(n <= 2 * (bench.WARM_UP / 0.002 + 3) for n in calls.values()), calls


def test_bench_speedup_is_the_median_of_same_round_ratios():
    from fastnet.bench import speedups

    # Round 2 ran while the machine was slow for both: the ratio of that round is still 2.
    times = {"fastnet": [1.0, 5.0, 1.0], "numpy": [2.0, 10.0, 2.5], "torch": [3.0, 3.0, 9.0]}
    assert speedups(times) == {"numpy": 2.0, "torch": 3.0}


def test_bench_warns_when_threads_do_not_scale_the_gemm():
    from fastnet.bench import shared_cores_note

    scaled = {("float32", 1): 100.0, ("float32", 2): 195.0}
    assert shared_cores_note(scaled, ["float32"], [1, 2]) is None
    shared = {("float32", 1): 100.0, ("float32", 2): 118.0}
    assert "1.18x" in shared_cores_note(shared, ["float32"], [1, 2])
    assert shared_cores_note(shared, ["float32"], [2]) is None  # no 1-thread rate to compare
    # the measured cache-line trip tells the two causes apart
    assert "physical cores" in shared_cores_note(shared, ["float32"], [1, 2], 40.0)
    slow = shared_cores_note(shared, ["float32"], [1, 2], 190.0)
    assert "do not share a cache" in slow and "190 ns" in slow


def test_bench_warns_when_the_machine_changed_speed_during_the_run():
    from fastnet.bench import drift_note

    start = {("float32", 1): 170.0, ("float32", 2): 320.0, ("float64", 2): 150.0}
    assert drift_note(start, dict(start)) is None
    assert drift_note(start, {k: r * 0.9 for k, r in start.items()}) is None  # within 15%
    slowed = {**start, ("float32", 2): 240.0, ("float64", 2): 135.0}
    note = drift_note(start, slowed)
    # the largest move is named, with both rates and their ratio
    assert "float32 GEMM on 2 threads" in note and "320.0" in note and "240.0" in note
    assert "0.75x" in note
    faster = drift_note(start, {**start, ("float32", 1): 210.0})
    assert "1 thread ran" in faster and "1.24x" in faster


def test_bench_names_a_slower_cpu_as_the_cause():
    from fastnet.bench import shared_cores_note

    shared = {("float32", 1): 100.0, ("float32", 2): 130.0}
    uneven = shared_cores_note(shared, ["float32"], [1, 2], 40.0, {0: 150.0, 1: 95.0})
    assert "CPU 1 at 0.63x" in uneven and "CPU 0" in uneven
    even = shared_cores_note(shared, ["float32"], [1, 2], 40.0, {0: 150.0, 1: 140.0})
    assert "physical cores" in even


def test_cpu_rates_time_each_cpu_and_restore_the_affinity():
    import os

    from fastnet.bench import cpu_rates

    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs this process may run on")
    allowed = os.sched_getaffinity(0)
    threads = fastnet.get_num_threads()
    cpus = sorted(allowed)[:2]
    rates = cpu_rates(n=128, repeats=3, cpus=cpus)
    assert sorted(rates) == cpus and all(r > 0 for r in rates.values())
    assert os.sched_getaffinity(0) == allowed
    assert fastnet.get_num_threads() == threads


def test_line_trip_is_measured_on_two_threads_only():
    from fastnet import _core

    fastnet.set_num_threads(2)
    ns = _core.line_trip_ns()
    assert ns is not None and 0 < ns < 1e8  # milliseconds where a loaded host deschedules
    fastnet.set_num_threads(1)
    assert _core.line_trip_ns() is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shuffled_bench_workload_trains_every_peer_on_the_same_new_orders(dtype):
    """The benchmark's shuffled workloads: fastnet (fit drawing its own orders) and the
    NumPy loop (gathering each batch by Generator.permutation from an alike-seeded
    generator) agree, epoch after epoch, and not with the same workload in row order."""
    import numpy as np

    from fastnet import _peers

    shuffled = _peers.WORKLOADS["digits-shuffled"].scaled(300)
    in_order = _peers.WORKLOADS["digits"].scaled(300)
    assert shuffled.shuffle and not in_order.shuffle
    assert _peers.check_agreement(shuffled, dtype, ["fastnet", "numpy"], epochs=3).ok
    a = _peers.make_trainer("numpy", shuffled, dtype)
    b = _peers.make_trainer("fastnet", shuffled, dtype)
    for _ in range(2):  # later calls go on with new orders, alike
        np.testing.assert_allclose(a.epochs(1), b.epochs(1), rtol=_peers.RTOL[dtype])
    for got, want in zip(a.weights(), b.weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 if dtype == "float32" else 1e-12)
    c = _peers.make_trainer("numpy", in_order, dtype)
    c.epochs(2)
    assert not np.allclose(c.weights()[0], a.weights()[0], rtol=0, atol=1e-4)


def _numpy_peer_trains_as_the_reference_does(wl, dtype):
    """The NumPy peer's two epochs of wl against the reference's fit (its activations:
    wl.activation on the hidden layers, wl.output on the output; biases from 0 if
    wl.bias), and fastnet agreeing with the peer. Returns the peer."""
    import numpy as np

    from fastnet import _peers, reference

    peer = _peers.make_trainer("numpy", wl, dtype)
    X, Y = _peers.make_data(wl, dtype)
    start = [W.astype(np.float64) for W in _peers.initial_weights(wl, dtype)]
    history = peer.epochs(2)
    acts = [wl.activation] * (len(wl.layers) - 2) + [wl.output]
    assert _peers.make_trainer("fastnet", wl, dtype).net.activations == acts
    zeros = [np.zeros(W.shape[1]) for W in start] if wl.bias else None
    weights, biases, want = reference.fit(X.astype(np.float64), Y.astype(np.float64), start,
                                          acts, 2, wl.learning_rate,
                                          batch_size=wl.batch_size, biases=zeros)
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(history, want, rtol=tol)
    assert len(peer.parameters()) == len(weights) * (2 if wl.bias else 1)
    for got, w in zip(peer.parameters(), weights + biases):
        np.testing.assert_allclose(got, w, rtol=0, atol=tol)
    assert _peers.check_agreement(wl, dtype, ["fastnet", "numpy"]).ok
    return peer


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deep_bench_workload_peer_trains_as_the_reference_does(dtype):
    """The benchmark's deep workload (two hidden layers): the NumPy peer's loop for more
    layers (deltas from the output down, then the updates) gives the reference's fit, and
    fastnet agrees with it; its FLOPs count 2 products of the first layer and 3 of each
    other a row."""
    from fastnet import _peers

    wl = _peers.WORKLOADS["deep"].scaled(100)
    assert len(wl.layers) == 4 and wl.batch_size <= 16
    peer = _numpy_peer_trains_as_the_reference_does(wl, dtype)
    assert type(peer) is _peers.NumpyTrainer and len(peer.weights()) == 3
    n = [784, 256, 128, 10]
    assert wl.epoch_flops() == 2 * 100 * (2 * n[0] * n[1] + 3 * (n[1] * n[2] + n[2] * n[3]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, depth", [("digits-relu", 3), ("deep", 4)])
@pytest.mark.parametrize("hidden", ["relu", "identity"])
def test_hidden_activation_bench_peer_trains_as_the_reference_does(dtype, name, depth,
                                                                   hidden):
    """A relu hidden layer in the benchmark's peers (the -relu workloads), or the
    identity: the NumPy peer's loop, unrolled for one hidden layer and looped for more,
    gives the reference's fit with those hidden layers and a sigmoid output, and fastnet
    agrees with it. A hidden activation the peers do not have is refused by name."""
    import dataclasses

    from fastnet import _peers

    wl = dataclasses.replace(_peers.WORKLOADS[name], activation=hidden).scaled(100)
    assert len(wl.layers) == depth and _peers.make_data(wl, dtype)[0].shape[0] == 100
    _numpy_peer_trains_as_the_reference_does(wl, dtype)
    with pytest.raises(ValueError, match="activation must be 'sigmoid', 'relu' or "
                                         "'identity'; got 'tanh'"):
        _peers.make_trainer("numpy", dataclasses.replace(wl, activation="tanh"), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("depth", [3, 4])
def test_regressor_bench_workload_is_sklearns_model_and_checks_it(dtype, depth):
    """digits-regressor, MLPRegressor's model (biases, identity output): the NumPy peer's
    loop, unrolled for one hidden layer and looped for more, gives the reference's fit
    with biases and an identity output, and fastnet and MLPRegressor agree with it, its
    losses and all its parameters. It is the one workload where sklearn is checked (its
    learning_rate_init must be 2 lr there, lr / 2 elsewhere)."""
    import dataclasses

    from fastnet import _peers

    wl = _peers.WORKLOADS["digits-regressor"].scaled(100)
    if depth == 4:  # a second hidden layer of 32 units
        wl = dataclasses.replace(wl, layers=(64, 32, 32, 10))
    assert wl.bias and wl.output == "identity" and wl.activation == "sigmoid"
    peer = _numpy_peer_trains_as_the_reference_does(wl, dtype)
    assert len(peer.biases()) == depth - 1 and all(b.any() for b in peer.biases())
    check = _peers.check_agreement(wl, dtype, ["fastnet", "sklearn"])
    assert check.ok and set(check.max_rel_diff) == {"sklearn"}, check.message
    assert _peers.make_trainer("sklearn", wl, dtype).checked
    assert not any(_peers.SklearnTrainer.checks(w) for name, w in _peers.WORKLOADS.items()
                   if name != "digits-regressor")


@pytest.mark.parametrize("option, value, says", [
    ("--threads", "0", "thread count must be >= 1; got 0"),
    ("--threads", "1,x", "bad thread count 'x'"),
    ("--repeats", "0", "repeat count must be >= 1; got 0"),
    ("--gemm-size", "-5", "GEMM size must be >= 1; got -5"),  # had ended in a traceback
    ("--gemm-size", "0", "GEMM size must be >= 1; got 0"),  # had meant the default
])
def test_bench_rejects_counts_below_one_as_usage_errors(capsys, option, value, says):
    from fastnet import bench

    with pytest.raises(SystemExit) as info:
        bench._parser().parse_args([option, value])
    assert info.value.code == 2
    assert f"argument {option}: {says}" in capsys.readouterr().err


def test_bench_marks_an_agreement_check_with_no_peer_as_not_compared(capsys):
    """With fastnet alone there is nothing to compare: the check line and the table's
    agree column say "-", not a pass."""
    from fastnet import bench

    assert bench.main(["--workloads", "xor", "--impls", "fastnet", "--threads", "1",
                       "--quick", "--repeats", "1", "--gemm-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "- xor float32: losses and weights after" in out
    assert "no peer to compare" in out
    assert "✓ xor" not in out
