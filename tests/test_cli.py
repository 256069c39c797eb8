"""``python -m fastnet config`` and ``python -m fastnet demo`` run in a fresh interpreter
(from a temporary directory, so the installed package is the one imported)."""
from __future__ import annotations

import subprocess
import sys

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


def test_demo_command_runs_and_tells_the_chain_rule_result_24(tmp_path):
    """The demo tells the seed's story; its chain-rule example gives dz/dx(2) = 24."""
    result = _run(tmp_path, "demo")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "24" in result.stdout


def test_unknown_command_exits_with_usage_error(tmp_path):
    result = _run(tmp_path, "frobnicate", timeout=120)
    assert result.returncode == 2
    assert "usage" in result.stderr
