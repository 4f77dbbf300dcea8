"""The worker count follows the container's CPU quota, never the node's core count."""

{% if cookiecutter.inference == "yes" -%}
import os
{% endif -%}
from pathlib import Path

import pytest

{% if cookiecutter.inference == "yes" -%}
from {{ cookiecutter.package_name }}.concurrency import (
    WORKERS_WITHOUT_QUOTA,
    inference_threads,
    thread_limits,
    worker_count,
)
{%- else -%}
from {{ cookiecutter.package_name }}.concurrency import WORKERS_WITHOUT_QUOTA, worker_count
{%- endif %}

PERIOD_US = 100_000
# CPU limit -> workers: one per CPU, rounded up, at least one.
QUOTAS = [(0.5, 1), (1, 1), (1.5, 2), (2, 2), (4, 4)]


def cgroup_v2(root: Path, cpu_max: str) -> Path:
    (root / "cpu.max").write_text(f"{cpu_max}\n")
    return root


def cgroup_v1(root: Path, quota_us: int) -> Path:
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
    return root


@pytest.mark.parametrize(("cpus", "workers"), QUOTAS)
def test_cgroup_v2_quota_sets_the_worker_count(tmp_path: Path, cpus: float, workers: int) -> None:
    root = cgroup_v2(tmp_path, f"{int(cpus * PERIOD_US)} {PERIOD_US}")
    assert worker_count(environ={}, cgroup_root=root) == workers


@pytest.mark.parametrize(("cpus", "workers"), QUOTAS)
def test_cgroup_v1_quota_sets_the_worker_count(tmp_path: Path, cpus: float, workers: int) -> None:
    root = cgroup_v1(tmp_path, int(cpus * PERIOD_US))
    assert worker_count(environ={}, cgroup_root=root) == workers


@pytest.mark.parametrize(
    "make_root",
    [
        pytest.param(lambda root: cgroup_v2(root, f"max {PERIOD_US}"), id="v2-max"),
        pytest.param(lambda root: cgroup_v1(root, -1), id="v1-unlimited"),
        pytest.param(lambda root: root, id="no-cgroup-files"),
    ],
)
def test_without_a_quota_workers_stay_few(tmp_path: Path, make_root) -> None:
    workers = worker_count(environ={}, cgroup_root=make_root(tmp_path))
    assert 1 <= workers <= WORKERS_WITHOUT_QUOTA


def test_web_concurrency_overrides_the_quota(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path, f"{4 * PERIOD_US} {PERIOD_US}")
    assert worker_count(environ={"WEB_CONCURRENCY": "3"}, cgroup_root=root) == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_web_concurrency_is_refused_with_its_name(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match=rf"WEB_CONCURRENCY='{value}' is invalid"):
        worker_count(environ={"WEB_CONCURRENCY": value}, cgroup_root=tmp_path)
{%- if cookiecutter.inference == "yes" %}


@pytest.mark.parametrize(
    ("cpus", "environ", "threads"),
    [
        pytest.param(1, {}, 1, id="one-cpu"),
        pytest.param(0.5, {}, 1, id="half-a-cpu"),
        # One worker per CPU: each model copy gets one thread.
        pytest.param(4, {}, 1, id="four-cpus"),
        pytest.param(4, {"WEB_CONCURRENCY": "2"}, 2, id="four-cpus-two-workers"),
        pytest.param(4, {"WEB_CONCURRENCY": "1"}, 4, id="four-cpus-one-worker"),
        pytest.param(4, {"INFERENCE_THREADS": "3"}, 3, id="set"),
    ],
)
def test_inference_threads_share_the_quota(
    tmp_path: Path, cpus: float, environ: dict[str, str], threads: int
) -> None:
    root = cgroup_v2(tmp_path, f"{int(cpus * PERIOD_US)} {PERIOD_US}")
    assert inference_threads(environ=environ, cgroup_root=root) == threads


def test_inference_threads_never_exceed_the_usable_cpus_without_a_quota(tmp_path: Path) -> None:
    threads = inference_threads(environ={"WEB_CONCURRENCY": "1"}, cgroup_root=tmp_path)
    assert 1 <= threads <= (os.cpu_count() or 1)


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_bad_inference_threads_are_refused_with_its_name(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match=rf"INFERENCE_THREADS='{value}' is invalid"):
        inference_threads(environ={"INFERENCE_THREADS": value}, cgroup_root=tmp_path)


def test_openmp_and_blas_pools_get_the_same_threads() -> None:
    assert thread_limits(2) == {
        "OMP_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
    }
{%- endif %}
