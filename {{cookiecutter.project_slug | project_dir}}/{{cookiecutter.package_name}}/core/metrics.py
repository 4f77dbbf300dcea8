{% if cookiecutter.websockets == "yes" -%}
"""The request and WebSocket metrics, recorded by each worker (README, "Metrics").
{%- else -%}
"""The request metrics, recorded by each worker (README, "Metrics").
{%- endif %}

gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR, so prometheus-client keeps every worker's values
in files of its own there, and the master adds them up for each scrape (core/metrics_server.py).
Without it (`make run`, the tests) the values stay in the process's memory, and nothing serves
them.

Every label takes a bounded set of values, so no client can add series: the route is the path
pattern a request matched, never its path, and methods outside HTTP's standard set are one.
"""

from prometheus_client import Counter, Gauge, Histogram

UNMATCHED = "unmatched"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
OTHER_METHOD = "_OTHER"
# Not measured: the kubelet's polling is not client traffic (it would pose as load to the
# autoscaler and dilute every rate and latency), and the kubelet reports probe results itself.
PROBES = frozenset({"/health", "/ready"})

# From 1 ms (an answer from memory) to 30 s, past the timeouts that end a stuck request, so such
# requests land in buckets of their own and +Inf holds only what no timeout ended. Steps of
# about 2.5x: each bucket is one more series per route and method.
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)  # fmt: skip

REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, probes excluded, by method, route template and status.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Seconds from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=DURATION_BUCKETS,
)
# livesum: the workers' values added up, a worker that exited left out.
IN_FLIGHT = Gauge(
    "http_requests_in_flight",
    "Requests received and not yet answered, probes excluded.",
    multiprocess_mode="livesum",
)

{%- if cookiecutter.websockets == "yes" %}
WEBSOCKET_CONNECTIONS = Gauge(
    "websocket_connections",
    "Open WebSocket connections.",
    multiprocess_mode="livesum",
)
WEBSOCKET_MESSAGES_SENT = Counter(
    "websocket_messages_sent",
    "Message frames sent, or queued to be sent, to WebSocket clients.",
)
# The codes the server closes with (README, "Real-time channels"), and "client" for every close
# the client started: its codes are its own, and would add series.
WEBSOCKET_CLOSES = Counter(
    "websocket_closes",
    "WebSocket connections closed, by close code; client: closed by the client.",
    ["code"],
)
{%- endif %}

{%- if cookiecutter.inference == "yes" %}
# From 1 ms to 10 s: a small model answers in the first buckets, a large batch in the last.
INFERENCE_DURATION = Histogram(
    "inference_duration_seconds",
    "Seconds the model took for one request's batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INFERENCE_BATCH_SIZE = Histogram(
    "inference_batch_size",
    "Rows in one inference.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
INFERENCE_QUEUE_DEPTH = Gauge(
    "inference_queue_depth",
    "Requests waiting for an inference thread; the autoscaling signal with KEDA.",
    multiprocess_mode="livesum",
)
INFERENCE_REJECTED = Counter(
    "inference_rejected",
    "Requests answered 503 because the inference queue was full.",
)
{%- endif %}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration."""
    method = method if method in METHODS else OTHER_METHOD
    REQUESTS.labels(method, route, str(status)).inc()
    DURATION.labels(method, route).observe(seconds)
