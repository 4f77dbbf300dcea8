"""Autoscaling and metrics scraping in the manifests: each `autoscaling` answer brings its own
autoscaler and no other, KEDA's ScaledObject scales on requests in flight per pod and on CPU
with the HPA's behaviour, the pods are scraped on their metrics port only from monitoring, and
the validator refuses the ScaledObject and PodMonitor mistakes it exists for.

Every combination of both answers is built and validated strictly by tests/test_manifests.py
(its manifest sets come from cookiecutter.json, `autoscaling` included) and by tests/test_matrix.py.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hooks.bakery.facts import derive
from testkit.render import context_for
from testkit.template import choice_options
from tests.test_manifests import (
    OVERLAYS,
    break_manifests,
    database_pairs,
    kustomize,
    locked_python,
    only,
    pair_id,
    run_validator,
    with_every_component,
    with_secrets,
)

AUTOSCALER_KINDS = {"hpa": "HorizontalPodAutoscaler", "keda": "ScaledObject"}
KEDA = {"autoscaling": "keda"}


def yaml_documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="module")
def built(baked: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """`built(overlay, **answers)`: the resources `kubectl kustomize` builds for an overlay."""

    def build(overlay: str, **answers: str) -> list[dict]:
        project = with_secrets(baked(**answers), tmp_path_factory.mktemp("built"))
        return yaml_documents(kustomize(project, overlay))

    return build


def app(resources: list[dict]) -> dict:
    """The project's own Deployment (the dev overlay also runs its database's)."""
    [deployment] = [
        r
        for r in resources
        if r["kind"] == "Deployment" and r["metadata"]["name"] == "orders-service"
    ]
    return deployment


def trigger(scaled_object: dict, kind: str) -> dict:
    [found] = [t for t in scaled_object["spec"]["triggers"] if t["type"] == kind]
    return found


def test_every_autoscaling_answer_has_an_autoscaler_kind() -> None:
    assert set(choice_options()["autoscaling"]) == set(AUTOSCALER_KINDS)
    assert choice_options()["autoscaling"][0] == "hpa", "the default works on every cluster"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("autoscaling", choice_options()["autoscaling"])
def test_each_answer_brings_its_own_autoscaler_and_never_a_second_one(
    built: Callable, overlay: str, autoscaling: str
) -> None:
    resources = built(overlay, autoscaling=autoscaling)
    kinds = [r["kind"] for r in resources if r["kind"] in AUTOSCALER_KINDS.values()]
    assert kinds == [AUTOSCALER_KINDS[autoscaling]]
    autoscaler = only(resources, AUTOSCALER_KINDS[autoscaling])
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "orders-service")
    assert "replicas" not in app(resources)["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaled_object_has_the_bounds_behaviour_and_cpu_target_of_the_hpa(
    built: Callable, overlay: str
) -> None:
    hpa = only(built(overlay), "HorizontalPodAutoscaler")["spec"]
    scaled_object = only(built(overlay, **KEDA), "ScaledObject")
    spec = scaled_object["spec"]

    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        hpa["minReplicas"],
        hpa["maxReplicas"],
    )
    assert spec["minReplicaCount"] >= 2
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    [cpu] = [m["resource"] for m in hpa["metrics"] if m["type"] == "Resource"]
    assert trigger(scaled_object, "cpu") == {
        "type": "cpu",
        "metricType": "Utilization",
        "metadata": {"value": str(cpu["target"]["averageUtilization"])},
    }
    # Blind to the queue (Prometheus down): as many pods as the overlay allows.
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": spec["maxReplicaCount"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_in_flight_trigger_queries_its_own_overlays_pods_and_fails_on_no_data(
    built: Callable, overlay: str
) -> None:
    resources = built(overlay, **KEDA)
    namespace = only(resources, "Namespace")["metadata"]["name"]
    prometheus = trigger(only(resources, "ScaledObject"), "prometheus")

    assert prometheus["metricType"] == "AverageValue"
    # Written on two lines (long names stay within yamllint's width); PromQL ignores the break.
    assert "".join(prometheus["metadata"]["query"].split()) == (
        f'sum(http_requests_in_flight{{namespace="{namespace}",'
        'app_kubernetes_io_name="orders-service"})'
    )
    assert prometheus["metadata"]["ignoreNullValues"] == "false"
    assert prometheus["metadata"]["serverAddress"].startswith("http://")


# --- The WebSocket channels' connections (websockets=yes) ---------------------------------------

CHANNELS = {"websockets": "yes"}


def query_trigger(scaled_object: dict, metric: str) -> dict:
    """The prometheus trigger whose query sums this metric."""
    [found] = [
        t
        for t in scaled_object["spec"]["triggers"]
        if t["type"] == "prometheus" and t["metadata"]["query"].startswith(f"sum({metric}{{")
    ]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_also_scales_on_open_connections_per_pod_of_its_own_overlay(
    built: Callable, overlay: str
) -> None:
    resources = built(overlay, **KEDA, **CHANNELS)
    namespace = only(resources, "Namespace")["metadata"]["name"]
    scaled_object = only(resources, "ScaledObject")
    connections = query_trigger(scaled_object, "websocket_connections")
    assert connections["metricType"] == "AverageValue"
    assert "".join(connections["metadata"]["query"].split()) == (
        f'sum(websocket_connections{{namespace="{namespace}",'
        'app_kubernetes_io_name="orders-service"})'
    )
    facts = derive(context_for(CHANNELS))
    assert connections["metadata"]["threshold"] == str(facts.channels.connections_per_pod)
    assert connections["metadata"]["ignoreNullValues"] == "false"
    # Beside, not instead of, the requests in flight and CPU.
    assert query_trigger(scaled_object, "http_requests_in_flight")
    assert trigger(scaled_object, "cpu")["metricType"] == "Utilization"
    # The target stays below what one pod's worker holds.
    config = only(resources, "ConfigMap")["data"]
    assert facts.channels.connections_per_pod < int(config["WS_MAX_CONNECTIONS"])


def test_the_hpa_scales_the_channels_on_cpu_alone(built: Callable) -> None:
    hpa = only(built("prod", autoscaling="hpa", **CHANNELS), "HorizontalPodAutoscaler")["spec"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]


# The default each framework and database pair runs at once per worker, as .env.example states it.
CONCURRENCY_SETTING = {
    ("django", "postgresql"): "WORKER_THREADS",
    ("django", "none"): "WORKER_THREADS",
    ("fastapi", "postgresql"): "DATABASE_POOL_SIZE",
    ("fastapi", "mongodb"): "MONGODB_MAX_POOL_SIZE",
}


def test_every_pair_has_a_known_per_pod_target() -> None:
    pairs = {(a["framework"], a["database"]) for a in database_pairs()}
    assert pairs - set(CONCURRENCY_SETTING) <= {("fastapi", "none")}


@pytest.mark.parametrize("answers", database_pairs(), ids=pair_id)
def test_per_pod_target_is_what_one_pod_runs_at_once(
    baked: Callable[..., Path], built: Callable, answers: dict[str, str]
) -> None:
    """One worker per pod at the 1-CPU limit, times the requests a worker runs at once."""
    resources = built("prod", **KEDA, **answers)
    [container] = app(resources)["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["cpu"] == "1"
    threshold = trigger(only(resources, "ScaledObject"), "prometheus")["metadata"]["threshold"]
    assert threshold == str(derive(context_for(answers)).requests_per_pod)
    setting = CONCURRENCY_SETTING.get((answers["framework"], answers["database"]))
    if setting is not None:
        example = (baked(**KEDA, **answers) / ".env.example").read_text()
        [default] = re.findall(rf"^{setting}=(\d+)$", example, re.MULTILINE)
        assert threshold == default


@pytest.mark.parametrize("autoscaling", choice_options()["autoscaling"])
def test_pods_serve_metrics_on_their_own_port_admitted_from_monitoring_only(
    built: Callable, autoscaling: str
) -> None:
    resources = built("prod", autoscaling=autoscaling)
    template = app(resources)["spec"]["template"]
    [container] = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "metrics": 9000}
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9000",
        "prometheus.io/path": "/metrics",
    }
    # The Service leads to the app port only.
    assert [p["targetPort"] for p in only(resources, "Service")["spec"]["ports"]] == ["http"]
    ingress = only(resources, "NetworkPolicy")["spec"]["ingress"]
    from_anywhere = [rule for rule in ingress if "from" not in rule]
    assert [rule["ports"] for rule in from_anywhere] == [[{"port": 8000, "protocol": "TCP"}]]
    [metrics] = [rule for rule in ingress if "from" in rule]
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert metrics == {
        "from": [{"namespaceSelector": monitoring}],
        "ports": [{"port": 9000, "protocol": "TCP"}],
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_an_overlay_that_opts_into_the_pod_monitor_scrapes_its_own_pods_metrics_port(
    baked: Callable[..., Path], project_venv: Callable[[Path], Path], tmp_path: Path, overlay: str
) -> None:
    project = with_secrets(baked(**KEDA), tmp_path)
    plain = {r["kind"] for r in yaml_documents(kustomize(project, overlay))}
    assert "PodMonitor" not in plain, "no overlay needs the Prometheus Operator by default"
    with_every_component(project)
    resources = yaml_documents(kustomize(project, overlay))
    monitor = only(resources, "PodMonitor")
    assert monitor["metadata"]["namespace"] == only(resources, "Namespace")["metadata"]["name"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        app(resources)["spec"]["template"]["metadata"]["labels"].items()
    )
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics"}]
    assert monitor["spec"]["podTargetLabels"] == ["app.kubernetes.io/name"]
    result = run_validator(
        project, overlay, "--require-tools", python=locked_python(project_venv, project)
    )
    assert result.returncode == 0, result.stderr


def test_validator_builds_each_overlay_with_each_component_too(
    baked: Callable[..., Path], project_venv: Callable[[Path], Path]
) -> None:
    project = baked(**KEDA)
    result = run_validator(project, "--require-tools", python=locked_python(project_venv, project))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid (each also with components/pod-monitor" in result.stdout


# Each ScaledObject and PodMonitor mistake the validator exists for, in a KEDA project: (id,
# edits as in tests/test_manifests.py, a pattern of its one-line finding).
SCALED_OBJECT = "k8s/base/scaledobject.yaml"
BROKEN = [
    (
        "unknown-field",
        [(SCALED_OBJECT, "  minReplicaCount: 2\n", "  minReplicaCount: 2\n  minReplicas: 2\n")],
        r"k8s/base/scaledobject\.yaml: ScaledObject/orders-service: schema of ScaledObject"
        r" \(cloudcoil-models-keda [\d.]+\): spec\.minReplicas: unknown field",
    ),
    (
        "unknown-nested-field",
        [(SCALED_OBJECT, "    failureThreshold: 3\n", "    failureThreshold: 3\n    retries: 3\n")],
        r"ScaledObject/orders-service: schema of ScaledObject \(cloudcoil-models-keda [\d.]+\):"
        r" spec\.fallback\.retries: unknown field",
    ),
    (
        "bad-type",
        [(SCALED_OBJECT, "failureThreshold: 3", 'failureThreshold: "3"')],
        r"ScaledObject/orders-service: schema of ScaledObject \(cloudcoil-models-keda [\d.]+\):"
        r" spec\.fallback\.failureThreshold: Input should be a valid integer",
    ),
    (
        "missing-target",
        [(SCALED_OBJECT, 'name: "orders-service"\n  # Two', 'name: "orders-api"\n  # Two')],
        r"k8s/base/scaledobject\.yaml: ScaledObject/orders-service: scaleTargetRef"
        r" Deployment/orders-api is not in the manifests",
    ),
    (
        "single-pod",
        [(SCALED_OBJECT, "minReplicaCount: 2", "minReplicaCount: 1")],
        r"ScaledObject/orders-service: minReplicaCount is 1: a single pod cannot be drained or"
        r" restarted without downtime",
    ),
    (
        "minimum-below-the-budget",
        [("k8s/base/pdb.yaml", "maxUnavailable: 1", "minAvailable: 2")],
        r"k8s/base/pdb\.yaml: PodDisruptionBudget/orders-service: allows no eviction at 2 pod\(s\),"
        r" the minimum of Deployment/orders-service: node drains would hang \(overlay dev\)",
    ),
    (
        "hpa-beside-it",
        [
            (
                "k8s/base/kustomization.yaml",
                "  - scaledobject.yaml\n",
                "  - scaledobject.yaml\n  - hpa.yaml\n",
            ),
            (
                "k8s/base/hpa.yaml",
                None,
                "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n"
                "  name: orders-service\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n"
                "    kind: Deployment\n    name: orders-service\n  minReplicas: 2\n"
                "  maxReplicas: 6\n",
            ),
        ],
        r"k8s/base/hpa\.yaml: HorizontalPodAutoscaler/orders-service: scales"
        r" Deployment/orders-service, which ScaledObject/orders-service scales too",
    ),
    (
        "query-in-another-namespace",
        [("k8s/overlays/prod/kustomization.yaml", "index: 1", "index: 3")],
        r"ScaledObject/orders-service: triggers\[0\]: the query counts pods of namespace"
        r" 'OVERLAY_NAMESPACE', not of 'orders-service'",
    ),
    (
        "pod-monitor-port",
        [("k8s/components/pod-monitor/podmonitor.yaml", "port: metrics", "port: metric")],
        r"k8s/components/pod-monitor/podmonitor\.yaml: PodMonitor/orders-service:"
        r" podMetricsEndpoints port 'metric' is not a port of Deployment/orders-service's"
        r" containers \(overlay dev with components/pod-monitor,"
        r" prod with components/pod-monitor\)",
    ),
    (
        "pod-monitor-unknown-field",
        [("k8s/components/pod-monitor/podmonitor.yaml", "path: /metrics", "paths: /metrics")],
        r"PodMonitor/orders-service: schema of PodMonitor \(cloudcoil-models-prometheus-operator"
        r" [\d.]+\): spec\.podMetricsEndpoints\.0\.paths: unknown field",
    ),
    (
        "scrape-annotation-port",
        [("k8s/base/deployment.yaml", 'prometheus.io/port: "9000"', 'prometheus.io/port: "9100"')],
        r"Deployment/orders-service: annotation prometheus\.io/port '9100' is not a containerPort"
        r" of its containers",
    ),
]


@pytest.mark.parametrize(
    ("edits", "pattern"), [pytest.param(edits, pattern, id=name) for name, edits, pattern in BROKEN]
)
def test_validator_refuses_a_broken_scaled_object_or_pod_monitor_in_one_line(
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    tmp_path: Path,
    edits: list,
    pattern: str,
) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked(**KEDA), project)
    break_manifests(project, edits)
    result = run_validator(project, python=locked_python(project_venv, project))
    assert result.returncode == 1, result.stdout
    assert re.search(pattern, result.stderr), result.stderr


# --- The event worker's autoscaler ------------------------------------------------------------

WORKER_ANSWERS = [
    {"worker": worker, "autoscaling": autoscaling}
    for worker in choice_options()["worker"]
    if worker != "none"
    for autoscaling in choice_options()["autoscaling"]
]


def answers_id(answers: dict[str, str]) -> str:
    return "-".join(answers.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("answers", WORKER_ANSWERS, ids=answers_id)
def test_the_worker_has_its_own_autoscaler_within_the_brokers_limits(
    built: Callable, overlay: str, answers: dict[str, str]
) -> None:
    resources = built(overlay, **answers)
    worker = derive(context_for(answers)).worker
    kind = AUTOSCALER_KINDS[answers["autoscaling"]]
    [autoscaler] = [
        r
        for r in resources
        if r["kind"] == kind and r["spec"]["scaleTargetRef"]["name"] == worker.name
    ]
    assert autoscaler["metadata"]["name"] == worker.name
    field = "minReplicas" if kind == "HorizontalPodAutoscaler" else "minReplicaCount"
    maximum = autoscaler["spec"]["maxReplicas" if field == "minReplicas" else "maxReplicaCount"]
    # At least one consumer always (two, so one can be drained), never beyond the partitions.
    assert autoscaler["spec"][field] >= 2
    config = only(resources, "ConfigMap")["data"]
    if worker.broker == "kafka":
        assert maximum <= int(config["KAFKA_TOPIC_PARTITIONS"])
    if kind == "ScaledObject":
        cpu = trigger(autoscaler, "cpu")
        assert cpu["metricType"] == "Utilization"
        assert autoscaler["spec"]["fallback"]["replicas"] == maximum


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_counts_the_rabbitmq_queue_through_the_management_api_from_the_secret(
    built: Callable, overlay: str
) -> None:
    answers = {"worker": "rabbitmq", **KEDA}
    resources = built(overlay, **answers)
    worker = derive(context_for(answers)).worker
    scaled_object = [
        r for r in resources if r["kind"] == "ScaledObject" and r["metadata"]["name"] == worker.name
    ]
    rabbitmq = trigger(scaled_object[0], "rabbitmq")
    # Only the management API counts unacknowledged messages.
    assert rabbitmq["metadata"]["protocol"] == "http"
    assert rabbitmq["metadata"]["mode"] == "QueueLength"
    assert rabbitmq["metadata"]["queueName"] == worker.events
    assert int(rabbitmq["metadata"]["value"]) > 0
    authentication = only(resources, "TriggerAuthentication")
    assert rabbitmq["authenticationRef"] == {"name": authentication["metadata"]["name"]}
    [target] = authentication["spec"]["secretTargetRef"]
    secret = only(resources, "Secret")
    # kustomize's hashed name, rewritten in the TriggerAuthentication too.
    assert (target["parameter"], target["name"]) == ("host", secret["metadata"]["name"])
    assert target["key"] == "RABBITMQ_MANAGEMENT_URL"
    assert target["key"] in secret["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_follows_the_kafka_groups_lag_with_the_workers_own_bootstrap_servers(
    built: Callable, overlay: str
) -> None:
    answers = {"worker": "kafka", **KEDA}
    resources = built(overlay, **answers)
    worker = derive(context_for(answers)).worker
    [scaled_object] = [
        r for r in resources if r["kind"] == "ScaledObject" and r["metadata"]["name"] == worker.name
    ]
    kafka = trigger(scaled_object, "kafka")["metadata"]
    assert kafka["bootstrapServersFromEnv"] == "BROKER_URL"
    assert kafka["consumerGroup"] == worker.consumer_group
    assert kafka["topic"] == worker.events
    assert int(kafka["lagThreshold"]) > 0
    # The env it names is the worker container's own, from the Secret.
    deployment = [
        r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == worker.name
    ]
    [container] = deployment[0]["spec"]["template"]["spec"]["containers"]
    assert "BROKER_URL" in [variable["name"] for variable in container["env"]]
    config = only(resources, "ConfigMap")["data"]
    assert config["KAFKA_CONSUMER_GROUP"] == worker.consumer_group
    assert config["EVENTS_TOPIC"] == worker.events
    assert "TriggerAuthentication" not in [r["kind"] for r in resources]


def test_validator_refuses_a_trigger_authentication_keda_would_reject(
    baked: Callable[..., Path], project_venv: Callable[[Path], Path], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked(worker="rabbitmq", **KEDA), project)
    edits = [
        (
            "k8s/base/worker-scaledobject.yaml",
            "    - parameter: host\n",
            "    - parameter: host\n      optional: true\n",
        )
    ]
    break_manifests(project, edits)
    result = run_validator(project, python=locked_python(project_venv, project))
    assert result.returncode == 1, result.stdout
    assert re.search(
        r"k8s/base/worker-scaledobject\.yaml: TriggerAuthentication/orders-service-worker-rabbitmq:"
        r" schema of TriggerAuthentication \(cloudcoil-models-keda [\d.]+\):"
        r" spec\.secretTargetRef\.0\.optional: unknown field",
        result.stderr,
    ), result.stderr
