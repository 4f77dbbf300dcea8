"""/metrics on METRICS_PORT, served by gunicorn's master for all of its workers (gunicorn.conf.py).

Each worker writes its metrics (core/metrics.py) to files of its own in PROMETHEUS_MULTIPROC_DIR;
on each scrape the master adds up every worker's files, those of workers that have exited
included, so no count goes back when a worker restarts. The port is not the public one: neither
the Service nor what is in front of it routes to it.
"""

import shutil
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, multiprocess, start_http_server


def clear(directory: str) -> None:
    """Start from no values: files left by an earlier run would be counted again."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def serve(port: int, directory: str) -> WSGIServer:
    """Serve the workers' metrics, and the master's own process metrics, from a thread."""
    # No metric registers itself here (they go to the default registry), so each scrape reads
    # the files anew and counts nothing twice.
    registry = CollectorRegistry()
    # prometheus-client's multiprocess module is not annotated.
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    # The master's process only (its start time is the container's): the workers' CPU and memory
    # cannot be collected in multiprocess mode, and the kubelet reports the container's.
    ProcessCollector(registry=registry)
    server, _ = start_http_server(port, registry=registry)
    return server


def worker_exited(pid: int, directory: str) -> None:
    """Its counts stay in the totals; its share of the in-flight gauge leaves the sum."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
