"""How many server workers this container should run, from its CPU quota.

`os.cpu_count()` reports the node's cores, not the container's share: on a 64-core node a pod
limited to 2 CPUs would start 64+ workers and be OOM-killed. The quota comes from cgroup v2
`cpu.max` or cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.
"""

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Without a quota (no CPU limit, or not in a container) we cannot know our share: stay modest and
# let the deployment say how many it wants through WEB_CONCURRENCY.
WORKERS_WITHOUT_QUOTA = 2


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


def worker_count(environ: dict[str, str] | None = None, cgroup_root: Path = CGROUP_ROOT) -> int:
    """WEB_CONCURRENCY if set, else one async worker per CPU of quota, rounded up.

    Async (uvicorn) workers each keep a core busy on their own event loop, so more workers than
    cores only adds context switches and memory; a fractional quota still needs one worker.
    """
    environ = os.environ if environ is None else environ
    if configured := environ.get("WEB_CONCURRENCY"):
        return max(1, int(configured))
    quota = cpu_quota(cgroup_root)
    if quota is None:
        return min(WORKERS_WITHOUT_QUOTA, len(os.sched_getaffinity(0)))
    return max(1, math.ceil(quota))
