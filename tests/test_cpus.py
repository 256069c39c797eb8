"""The CPUs a call may use (fastnet._cpus): the affinity mask, within the CPU quota of the
process's control group, read from fake cgroup trees (v2's cpu.max, v1's
cpu.cfs_quota_us and cpu.cfs_period_us) as containers and systemd lay them out."""
from __future__ import annotations

import os

import pytest

import fastnet
from fastnet import _cpus


def _tree(tmp_path, proc_cgroup, files):
    """A cgroup mount under tmp_path/cg with `files` ({relative path: text}), and a
    /proc/self/cgroup with the lines `proc_cgroup`; returns cgroup_quota's arguments."""
    root = tmp_path / "cg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("".join(line + "\n" for line in proc_cgroup))
    return str(root), str(proc)


V1_LINES = ["12:memory:/docker/abc", "4:cpu,cpuacct:/docker/abc", "1:name=systemd:/docker/abc"]


@pytest.mark.parametrize("proc, files, quota", [
    # v2 in a container (its own namespace: the group is the mount's root)
    (["0::/"], {"cpu.max": "150000 100000\n"}, 1.5),
    (["0::/"], {"cpu.max": "max 100000\n"}, None),
    # v2 under systemd: the smallest limit on the way up from the process's group
    (["0::/user.slice/app.scope"], {"cpu.max": "max 100000\n",
                                    "user.slice/cpu.max": "200000 100000\n",
                                    "user.slice/app.scope/cpu.max": "400000 100000\n"}, 2.0),
    (["0::/user.slice/app.scope"], {"user.slice/app.scope/cpu.max": "50000 100000\n"}, 0.5),
    # v1, the host's path of which only the container's own group (the mount) exists
    (V1_LINES, {"cpu,cpuacct/cpu.cfs_quota_us": "300000\n",
                "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 3.0),
    (V1_LINES, {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    # v1 mounted as "cpu" alone, the limit on the process's own group
    (V1_LINES, {"cpu/docker/abc/cpu.cfs_quota_us": "250000\n",
                "cpu/docker/abc/cpu.cfs_period_us": "100000\n"}, 2.5),
    # a hybrid host: v1's quota and v2's, the smaller counts
    (V1_LINES + ["0::/"], {"cpu.max": "100000 100000\n",
                           "cpu,cpuacct/cpu.cfs_quota_us": "300000\n",
                           "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 1.0),
    # nothing readable: no quota
    (["0::/"], {}, None),
    (["0::/"], {"cpu.max": "garbage\n"}, None),
    (["0::/"], {"cpu.max": "100000 0\n"}, None),
    (["4:memory:/x"], {"cpu.max": "100000 100000\n"}, None),  # no cpu controller line
])
def test_cgroup_quota_is_the_smallest_limit_of_the_processs_groups(tmp_path, proc, files,
                                                                   quota):
    root, proc_cgroup = _tree(tmp_path, proc, files)
    assert _cpus.cgroup_quota(root, proc_cgroup) == quota


def test_usable_cpus_are_the_affinity_mask_within_the_quota_rounded_up(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    assert _cpus.affinity_cpus() == cpus

    def usable(cpu_max):
        return _cpus.usable_cpus(*_tree(tmp_path, ["0::/"], {"cpu.max": cpu_max}))

    assert usable("max 100000") == cpus
    assert usable("50000 100000") == 1  # half a CPU: one thread
    assert usable("100001 100000") == min(cpus, 2)  # over one CPU: two threads, if there are
    assert usable(f"{100000 * (cpus + 3)} 100000") == cpus  # a quota above the mask
    assert _cpus.usable_cpus(str(tmp_path / "none"), str(tmp_path / "none")) == cpus


def test_the_package_counts_the_usable_cpus_at_import():
    from fastnet import _core

    assert _core.cores() == _cpus.usable_cpus() >= 1
    assert fastnet.show_config(print_out=False)["cores"] == _core.cores()
