"""How many server workers this container should run, from its CPU quota.

`os.cpu_count()` reports the node's cores, not the container's share: on a 64-core node a pod
limited to 2 CPUs would start 64+ workers and be OOM-killed. The quota comes from cgroup v2
`cpu.max` or cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.

The formula: WEB_CONCURRENCY when set; otherwise one worker per CPU of quota, rounded up, at
least one (0.5 CPU -> 1, 1 -> 1, 1.5 -> 2, 2 -> 2, 4 -> 4). A worker is one process that keeps
about one core busy (an event loop, or threads sharing one GIL), so more workers than cores only
add context switches and memory (gunicorn's `2 * cores + 1` is for blocking sync workers).
Without a quota the container's share is unknown: at most WORKERS_WITHOUT_QUOTA, fewer if fewer
CPUs are usable.
{%- if cookiecutter.inference == "yes" %}

The model's threads come from the same quota: each worker holds its own copy of the model and
runs it on INFERENCE_THREADS threads when set, otherwise on its share of the CPUs (the quota, or
the usable CPUs without one, divided by the workers, at least one). Workers x threads stays
within the quota, so inference is never throttled by threads the quota cannot run at once.
{%- endif %}
"""

import math
import os
from collections.abc import Mapping
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
WORKERS_WITHOUT_QUOTA = 2
{%- if cookiecutter.inference == "yes" %}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
{%- endif %}


def cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The CPU limit in cores, or None when there is none."""
    cpu_max = cgroup_root / "cpu.max"
    if cpu_max.is_file():
        quota, _, period = cpu_max.read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or 100_000)
    quota_file = cgroup_root / "cpu" / "cpu.cfs_quota_us"
    period_file = cgroup_root / "cpu" / "cpu.cfs_period_us"
    if quota_file.is_file() and period_file.is_file():
        quota_us = int(quota_file.read_text())
        if quota_us <= 0:
            return None
        return quota_us / int(period_file.read_text())
    return None


def usable_cpus() -> int:
    """CPUs this process may run on; CPU affinity is Linux-only, so fall back elsewhere."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count(environ: Mapping[str, str] | None = None, cgroup_root: Path = CGROUP_ROOT) -> int:
    """The number of gunicorn workers; see the module docstring for the formula."""
    environ = os.environ if environ is None else environ
    if configured := environ.get("WEB_CONCURRENCY"):
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"WEB_CONCURRENCY={configured!r} is invalid: must be an integer >= 1")
        return int(configured)
    quota = cpu_quota(cgroup_root)
    if quota is None:
        return min(WORKERS_WITHOUT_QUOTA, usable_cpus())
    return max(1, math.ceil(quota))
{%- if cookiecutter.inference == "yes" %}


def inference_threads(
    environ: Mapping[str, str] | None = None, cgroup_root: Path = CGROUP_ROOT
) -> int:
    """Intra-op threads per model copy; see the module docstring for the formula."""
    environ = os.environ if environ is None else environ
    if configured := environ.get("INFERENCE_THREADS"):
        if not configured.isdigit() or int(configured) < 1:
            rule = "must be an integer >= 1"
            raise ValueError(f"INFERENCE_THREADS={configured!r} is invalid: {rule}")
        return int(configured)
    cpus = cpu_quota(cgroup_root) or usable_cpus()
    return max(1, math.floor(cpus / worker_count(environ, cgroup_root)))


def thread_limits(threads: int) -> dict[str, str]:
    """The variables that size OpenMP's and the BLAS libraries' pools, which default to the
    node's cores too."""
    return {name: str(threads) for name in THREAD_VARIABLES}
{%- endif %}
