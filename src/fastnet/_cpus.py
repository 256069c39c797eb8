"""The CPUs this process may use: those of its affinity mask, and no more than the CPU
quota of its control group (a container's ``--cpus``, a Kubernetes CPU limit, systemd's
CPUQuota), which the affinity mask does not show: a container limited to 2 CPUs on a
64-CPU host sees 64. A team of more threads than that waits for its own threads' time
slices at every barrier (on 2 cores, 3 threads made some fits 2-7x slower than 2), so
no call runs more (``_core._set_cores``)."""
from __future__ import annotations

import math
import os


def affinity_cpus():
    """The CPUs of this process's affinity mask (the CPU count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _quota(quota, period):
    """quota / period in CPUs, or None for no limit ("max", -1) or unreadable values."""
    try:
        q, p = int(quota), int(period)
    except (TypeError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None


def _v2(directory):
    fields = (_read(os.path.join(directory, "cpu.max")) or "").split()
    return _quota(*fields[:2]) if len(fields) >= 2 else None  # "max 100000", "200000 100000"


def _v1(directory):
    quota = _read(os.path.join(directory, "cpu.cfs_quota_us"))  # -1: no limit
    period = _read(os.path.join(directory, "cpu.cfs_period_us"))
    return _quota(quota.strip(), period.strip()) if quota and period else None


def _up_from(mount, path):
    """mount/path and every directory above it, up to mount itself. Inside a container
    the cgroup's path may be the host's, of which only the mount (the container's own
    group) exists there."""
    parts = [p for p in path.strip().strip("/").split("/") if p and p != ".."]
    return [os.path.join(mount, *parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_quota(root="/sys/fs/cgroup", proc_cgroup="/proc/self/cgroup"):
    """The CPU quota of this process's control group in CPUs (quota / period; the
    smallest of its group's and every enclosing group's, in cgroup v2 and v1), or None
    when there is none or it cannot be read."""
    limits = []
    for line in (_read(proc_cgroup) or "").splitlines():
        fields = line.split(":", 2)  # "0::/path" (v2), "4:cpu,cpuacct:/path" (v1)
        if len(fields) != 3:
            continue
        controllers, path = fields[1], fields[2]
        if controllers == "":
            limits += [_v2(d) for d in _up_from(root, path)]
        elif "cpu" in controllers.split(","):
            for mount in dict.fromkeys((controllers, "cpu", "cpu,cpuacct")):
                limits += [_v1(d) for d in _up_from(os.path.join(root, mount), path)]
    limits = [q for q in limits if q is not None]
    return min(limits) if limits else None


def usable_cpus(root="/sys/fs/cgroup", proc_cgroup="/proc/self/cgroup"):
    """The affinity mask's CPUs, no more than the quota rounded up, and at least 1."""
    cpus = affinity_cpus()
    quota = cgroup_quota(root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)
