"""gunicorn settings; every value can be overridden from the environment.

Termination budget (the Kubernetes manifests use the same numbers):
preStop sleep (5 s) + GRACEFUL_TIMEOUT (20 s) + margin (5 s) = terminationGracePeriodSeconds (30 s).
"""

import os
import tempfile
{%- if cookiecutter.framework == "django" %}

from django.conf import settings
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

# Imported first: the settings load the checkout's `.env` into the environment read below.
from {{ cookiecutter.package_name }} import settings as project_settings  # noqa: F401
from {{ cookiecutter.package_name }}.concurrency import worker_count

# Read here only for settings.LOGGING: the master process does not start Django.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.package_name }}.settings")

# An event loop per worker holds the connections, however many and however slow; Django's
# synchronous code runs on a bounded set of threads (core/serving.py, README).
wsgi_app = "{{ cookiecutter.package_name }}.asgi:application"
{%- else %}

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

{% if cookiecutter.inference == "yes" -%}
from {{ cookiecutter.package_name }}.concurrency import (
    inference_threads,
    thread_limits,
    worker_count,
)
{% else -%}
from {{ cookiecutter.package_name }}.concurrency import worker_count
{% endif -%}
from {{ cookiecutter.package_name }}.core.logging_config import logging_dict_config
from {{ cookiecutter.package_name }}.core.settings import get_settings

wsgi_app = "{{ cookiecutter.package_name }}.main:app"
{%- endif %}

# prometheus-client decides when it is first imported whether values go to files the master can
# add up, so the directory is set before anything imports it; the workers inherit it. Unset, each
# master makes its own under /tmp (the pod's emptyDir): two servers on one machine never count
# each other's requests.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")

from {{ cookiecutter.package_name }}.core import metrics_server  # noqa: E402 - reads the directory

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# uvicorn, with a drain on SIGTERM first (core/worker.py).
worker_class = "{{ cookiecutter.package_name }}.core.worker.DrainingUvicornWorker"
workers = worker_count()
{%- if cookiecutter.inference == "yes" %}
# Each worker's share of the CPUs, for the model's threads and any OpenMP or BLAS pool (the
# workers inherit the environment); a value already set wins.
for name, value in thread_limits(inference_threads()).items():
    os.environ.setdefault(name, value)
{%- endif %}

# Seconds a worker may stay silent before the master restarts it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Seconds in-flight requests get to finish after SIGTERM.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
# Above common load-balancer idle timeouts (60 s): the balancer closes idle connections first.
keepalive = int(os.environ.get("KEEPALIVE", "75"))
# Recycle workers now and then to bound slow leaks; jitter keeps them from restarting together.
# A restart costs a worker boot and drops its idle keep-alive connections; a worker serving
# thousands of requests per second would restart every few seconds at a count of thousands, so
# the count is in millions.
max_requests = int(os.environ.get("MAX_REQUESTS", "1000000"))
max_requests_jitter = int(os.environ.get("MAX_REQUESTS_JITTER", "100000"))
# Peers (addresses or CIDR ranges) whose X-Forwarded-Proto makes a request HTTPS, and whose
# X-Forwarded-For names the client: the proxies in front, never any peer (README).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Read-only root filesystem: heartbeat files in memory, no control socket in $HOME.
# /dev/shm is Linux-only; elsewhere gunicorn falls back to the system temp dir.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs on purpose
control_socket_disable = True

{% if cookiecutter.framework == "django" -%}
logconfig_dict = settings.LOGGING
{% else -%}
logconfig_dict = logging_dict_config(get_settings())
{% endif -%}
accesslog = None

# /metrics, for every worker, from the master (core/metrics_server.py): not on the public port.
metrics_port = int(os.environ.get("METRICS_PORT", "9000"))
metrics_directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server: Arbiter) -> None:
    metrics_server.clear(metrics_directory)


def when_ready(server: Arbiter) -> None:
    # The public port is bound by now, so a METRICS_PORT that repeats it cannot take it.
    try:
        metrics_server.serve(metrics_port, metrics_directory)
    except OSError as exc:
        # Stop with the reason in one log line, and on_exit's cleanup, rather than a traceback.
        server.halt(f"METRICS_PORT {metrics_port}: {exc.strerror}", exit_status=1)


def child_exit(server: Arbiter, worker: Worker) -> None:
    # An int in the master; typed str, its placeholder before the fork.
    metrics_server.worker_exited(int(worker.pid), metrics_directory)


def on_exit(server: Arbiter) -> None:
    metrics_server.remove(metrics_directory)
