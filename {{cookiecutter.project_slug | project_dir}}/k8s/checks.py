"""What schemas cannot see: checks across the resources of one built overlay.

Each check takes the overlay's resources and yields a Finding for every mistake: selectors that
match no pods, dangling references, ports that do not exist (probes, Services, scrape
annotations, PodMonitors), autoscalers that miss their target, fight over it or disagree with the
disruption budget, NetworkPolicies that block what a `*_URL` setting names, a termination budget
that does not add up, pods that do not run as the image's user{% if cookiecutter.websockets == "yes" %}, WebSocket limits that the
autoscaler{% if cookiecutter.exposure == "ingress" %} or the Ingress{% elif cookiecutter.exposure == "gateway" %} or the route{% endif %} contradict{% endif %}{% if cookiecutter.inference == "yes" %}, startup probes that the
model's load outlasts, queue targets a pod cannot hold{% endif %}. `k8s/validate.py` runs them all.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

# Seconds gunicorn's master needs after its workers' graceful timeout to exit on its own.
MIN_TERMINATION_MARGIN = 1
{%- if cookiecutter.worker != "none" %}
# The event worker's pods (`app.kubernetes.io/component`), and the setting that bounds their
# shutdown, with its default: the messages in flight. Other pods run gunicorn (GRACEFUL_TIMEOUT).
WORKER = "worker"
WORKER_GRACEFUL_TIMEOUT = ("CONSUMER_GRACEFUL_TIMEOUT", 20)
{%- endif %}
{%- if cookiecutter.inference == "yes" %}
# The pods that serve the model (`app.kubernetes.io/component`), and the seconds their
# startupProbe gives each worker to load it and run the warm-up inference (README).
WEB = "web"
MODEL_STARTUP_SECONDS = {{ project_facts(cookiecutter).inference.startup_seconds }}
# The gauge of requests waiting for an inference slot.
QUEUE_METRIC = "inference_queue_depth"
{%- endif %}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
PDB = "PodDisruptionBudget"
HPA = "HorizontalPodAutoscaler"
SCALED_OBJECT = "ScaledObject"
# Each autoscaler kind's minimum field, and its default when unset (KEDA's scales to zero).
AUTOSCALER_MINIMUM = {HPA: ("minReplicas", 1), SCALED_OBJECT: ("minReplicaCount", 0)}
# And its maximum field (an HPA's is required; KEDA's default is 100).
AUTOSCALER_MAXIMUM = {HPA: ("maxReplicas", 1), SCALED_OBJECT: ("maxReplicaCount", 100)}
# The namespace a PromQL selector names, as in `metric{namespace="shop"}`.
QUERY_NAMESPACE = re.compile(r'\bnamespace="([^"]*)"')
# The pods' `app.kubernetes.io/name` label as Prometheus names it (the PodMonitor's
# podTargetLabels), in a PromQL selector.
QUERY_APP = re.compile(r'\bapp_kubernetes_io_name="([^"]*)"')
{%- if cookiecutter.websockets == "yes" %}
# The gauge of open WebSocket connections.
CONNECTIONS_METRIC = "websocket_connections"
{%- if cookiecutter.exposure == "ingress" %}
# ingress-nginx's per-connection timeouts with their default: a WebSocket through it is cut after
# that long without a read, or a write.
PROXY_TIMEOUTS = (
    "nginx.ingress.kubernetes.io/proxy-read-timeout",
    "nginx.ingress.kubernetes.io/proxy-send-timeout",
)
PROXY_TIMEOUT_DEFAULT = 60
{%- elif cookiecutter.exposure == "gateway" %}
# A path of the WebSocket endpoint, `/api/v1/channels/{channel}/ws`, as an HTTPRoute matches it.
CHANNEL_PATH = "/api/v1/channels/any/ws"
# A Gateway API Duration: up to four numbers with units, `1h30m`, `3600s`, `500ms`.
DURATION_PART = re.compile(r"(\d+)(h|ms|m|s)")
DURATION_UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
{%- endif %}
{%- endif %}
# How a Service's name continues in a host name within the cluster: `name.namespace.svc...`.
CLUSTER_DOMAINS = ([], ["svc"], ["svc", "cluster", "local"])
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
VOLUME_SOURCES = (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName"))
# kustomize appends a content hash to generated ConfigMap and Secret names (no vowels, no 0, 1, 3).
GENERATED_NAME_SUFFIX = re.compile(r"-[bcdfghjklmnpqrstvwxz2456789]{10}$")


class Finding(NamedTuple):
    """What a check found wrong, and in which built resource."""

    resource: dict
    message: str


def ref(resource: dict) -> str:
    return f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"


def pod_spec(resource: dict) -> dict | None:
    if resource.get("kind") in WORKLOAD_KINDS:
        return resource.get("spec", {}).get("template", {}).get("spec", {})
    return None


def pod_labels(resource: dict) -> dict:
    return resource["spec"].get("template", {}).get("metadata", {}).get("labels", {})


{%- if cookiecutter.worker != "none" or cookiecutter.inference == "yes" %}


def component(workload: dict) -> str | None:
    """What the pods are: `web`, `worker`, `database`... (`app.kubernetes.io/component`)."""
    return pod_labels(workload).get("app.kubernetes.io/component")
{%- endif %}


def containers(resource: dict, init: bool = True) -> list[dict]:
    spec = pod_spec(resource) or {}
    return (spec.get("initContainers", []) if init else []) + spec.get("containers", [])


def selects(selector: dict | None, labels: dict) -> bool:
    """Kubernetes label-selector semantics; an absent selector selects nothing here."""
    if not selector:
        return False
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, values = expression["key"], expression.get("values", [])
        matched = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[expression["operator"]]
        if not matched:
            return False
    return True


class Manifests:
    """One overlay's resources, with the look-ups the checks share."""

    def __init__(self, resources: list[dict], project: Path) -> None:
        self.resources = resources
        self.project = project  # for the Dockerfile and gunicorn.conf.py beside the manifests
        self.workloads = [r for r in resources if r.get("kind") in WORKLOAD_KINDS]

    def of_kind(self, kind: str) -> list[dict]:
        return [r for r in self.resources if r.get("kind") == kind]

    def find(self, kind: str | None, name: str | None, namespace: str | None) -> dict | None:
        for resource in self.of_kind(kind):
            metadata = resource.get("metadata", {})
            if metadata.get("name") == name and metadata.get("namespace") == namespace:
                return resource
        return None

    def selected(self, selector: dict | None, namespace: str | None) -> list[dict]:
        return [
            w
            for w in self.workloads
            if w["metadata"].get("namespace") == namespace and selects(selector, pod_labels(w))
        ]

    @property
    def autoscalers(self) -> list[dict]:
        """HorizontalPodAutoscalers and KEDA ScaledObjects (which run one of their own)."""
        return [r for r in self.resources if r.get("kind") in AUTOSCALER_MINIMUM]

    def target_of(self, autoscaler: dict) -> dict | None:
        kind, name = scale_target(autoscaler)
        return self.find(kind, name, autoscaler["metadata"].get("namespace"))

    def autoscalers_of(self, workload: dict) -> list[dict]:
        return [a for a in self.autoscalers if self.target_of(a) is workload]


CheckResult = Iterator[Finding]


def scale_target(autoscaler: dict) -> tuple[str | None, str | None]:
    """The kind and name an autoscaler scales; a ScaledObject's is a Deployment unless it says."""
    target = autoscaler.get("spec", {}).get("scaleTargetRef", {})
    default = "Deployment" if autoscaler["kind"] == SCALED_OBJECT else None
    return target.get("kind", default), target.get("name")


def check_selectors(manifests: Manifests) -> CheckResult:
    for workload in manifests.workloads:
        labels = pod_labels(workload)
        if not selects(workload["spec"].get("selector"), labels):
            yield Finding(workload, "spec.selector does not match the pod template's labels")
        spec = pod_spec(workload)
        for index, constraint in enumerate(spec.get("topologySpreadConstraints", [])):
            if not selects(constraint.get("labelSelector"), labels):
                yield Finding(
                    workload, f"topologySpreadConstraints[{index}] does not select its own pods"
                )
        anti_affinity = spec.get("affinity", {}).get("podAntiAffinity", {})
        terms = [t["podAffinityTerm"] for t in anti_affinity.get(PREFERRED, [])]
        for term in terms + anti_affinity.get(REQUIRED, []):
            if not selects(term.get("labelSelector"), labels):
                yield Finding(
                    workload, "podAntiAffinity does not select its own pods: it spreads nothing"
                )
    selectors = [(s, {"matchLabels": s["spec"].get("selector")}) for s in services(manifests)]
    selectors += [(p, p["spec"].get("selector")) for p in manifests.of_kind(PDB)]
    selectors += [(n, n["spec"].get("podSelector")) for n in manifests.of_kind("NetworkPolicy")]
    selectors += [(m, m["spec"].get("selector")) for m in own_namespace_monitors(manifests)]
    for resource, selector in selectors:
        if not manifests.selected(selector, resource["metadata"].get("namespace")):
            yield Finding(resource, f"selector {selector_text(selector)} matches no pod template")


def services(manifests: Manifests) -> list[dict]:
    return [s for s in manifests.of_kind("Service") if s.get("spec", {}).get("selector")]


def own_namespace_monitors(manifests: Manifests) -> list[dict]:
    """PodMonitors that look for pods in their own namespace, as they do without a
    namespaceSelector; others watch namespaces these manifests do not hold."""
    return [m for m in manifests.of_kind("PodMonitor") if not m["spec"].get("namespaceSelector")]


def selector_text(selector: dict | None) -> str:
    labels = (selector or {}).get("matchLabels", {})
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def minimum_replicas(autoscaler: dict) -> int:
    field_name, default = AUTOSCALER_MINIMUM[autoscaler["kind"]]
    return autoscaler.get("spec", {}).get(field_name, default)


def maximum_replicas(autoscaler: dict) -> int:
    field_name, default = AUTOSCALER_MAXIMUM[autoscaler["kind"]]
    return autoscaler.get("spec", {}).get(field_name, default)


def check_autoscaling(manifests: Manifests) -> CheckResult:
    for autoscaler in manifests.autoscalers:
        workload = manifests.target_of(autoscaler)
        if workload is None:
            kind, name = scale_target(autoscaler)
            yield Finding(autoscaler, f"scaleTargetRef {kind}/{name} is not in the manifests")
        elif "replicas" in workload["spec"]:
            yield Finding(
                workload,
                f"sets replicas although {ref(autoscaler)} scales it: every apply would reset the"
                " count",
            )
        if minimum_replicas(autoscaler) < 2:
            yield Finding(
                autoscaler,
                f"{AUTOSCALER_MINIMUM[autoscaler['kind']][0]} is {minimum_replicas(autoscaler)}:"
                " a single pod cannot be drained or restarted without downtime",
            )
    for workload in manifests.workloads:
        # A ScaledObject first: KEDA owns the HorizontalPodAutoscaler of what it scales.
        rivals = manifests.autoscalers_of(workload)
        rivals.sort(key=lambda autoscaler: autoscaler["kind"] != SCALED_OBJECT)
        owner = (
            " (KEDA runs the HorizontalPodAutoscaler of what a ScaledObject scales)"
            if rivals and rivals[0]["kind"] == SCALED_OBJECT
            else ""
        )
        for autoscaler in rivals[1:]:
            yield Finding(
                autoscaler,
                f"scales {ref(workload)}, which {ref(rivals[0])} scales too: two autoscalers would"
                f" fight over its replicas{owner}",
            )
    for scaled_object in manifests.of_kind(SCALED_OBJECT):
        yield from scaled_object_problems(manifests, scaled_object)
{%- if cookiecutter.worker == "kafka" %}
    yield from partition_problems(manifests)


def partition_problems(manifests: Manifests) -> CheckResult:
    """A Kafka consumer beyond the topic's partitions gets none and idles: an autoscaler of an
    event worker that creates its topic (KAFKA_TOPIC_PARTITIONS) stays at or below that count."""
    for autoscaler in manifests.autoscalers:
        workload = manifests.target_of(autoscaler)
        if workload is None or component(workload) != WORKER:
            continue
        field_name = AUTOSCALER_MAXIMUM[autoscaler["kind"]][0]
        maximum = maximum_replicas(autoscaler)
        for container in containers(workload, init=False):
            value = environment_value(manifests, workload, container, "KAFKA_TOPIC_PARTITIONS")
            if value is not None and value.isdigit() and maximum > int(value):
                yield Finding(
                    autoscaler,
                    f"{field_name} {maximum} exceeds KAFKA_TOPIC_PARTITIONS {value} of"
                    f" {ref(workload)}: consumers beyond the partitions get none and idle",
                )
{%- endif %}


def scaled_object_problems(manifests: Manifests, scaled_object: dict) -> CheckResult:
    """What KEDA would refuse or silently get wrong in one ScaledObject."""
    spec = scaled_object.get("spec", {})
    namespace = scaled_object["metadata"].get("namespace")
    triggers = spec.get("triggers", [])
    target = manifests.target_of(scaled_object)
    app = pod_labels(target).get("app.kubernetes.io/name") if target else None
    for index, trigger in enumerate(triggers):
        if trigger.get("type") != "prometheus":
            continue
        query = trigger.get("metadata", {}).get("query", "")
        named = QUERY_NAMESPACE.findall(query)
        if namespace and any(name != namespace for name in named):
            yield Finding(
                scaled_object,
                f"triggers[{index}]: the query counts pods of namespace {named[0]!r}, not of"
                f" {namespace!r}, where the ScaledObject and its target live",
            )
        counted = QUERY_APP.findall(query)
        if app and any(name != app for name in counted):
            yield Finding(
                scaled_object,
                f"triggers[{index}]: the query counts pods labelled app.kubernetes.io/name"
                f" {counted[0]!r}, not {ref(target)}'s {app!r}: it would scale on another app",
            )
    # KEDA applies a fallback only through a trigger other than cpu or memory with an
    # AverageValue target (its default); cpu and memory triggers cannot fall back.
    if "fallback" in spec and not any(
        t.get("type") not in ("cpu", "memory")
        and t.get("metricType", "AverageValue") == "AverageValue"
        for t in triggers
    ):
        yield Finding(
            scaled_object,
            "fallback needs a trigger other than cpu or memory with metricType AverageValue;"
            " KEDA refuses it otherwise",
        )


def allowed_disruptions(pdb: dict, replicas: int) -> int:
    spec = pdb["spec"]

    def count(value: int | str) -> int:
        if isinstance(value, str) and value.endswith("%"):
            return math.ceil(replicas * int(value[:-1]) / 100)
        return int(value)

    if "maxUnavailable" in spec:
        return min(replicas, count(spec["maxUnavailable"]))
    return max(0, replicas - count(spec.get("minAvailable", 1)))


def check_disruption_budget(manifests: Manifests) -> CheckResult:
    budgets = manifests.of_kind(PDB)
    for workload in manifests.workloads:
        namespace = workload["metadata"].get("namespace")
        covering = [
            b
            for b in budgets
            if b["metadata"].get("namespace") == namespace
            and selects(b["spec"].get("selector"), pod_labels(workload))
        ]
        if not covering:
            yield Finding(workload, "no PodDisruptionBudget selects its pods")
        autoscalers = manifests.autoscalers_of(workload)
        replicas = (
            min(minimum_replicas(a) for a in autoscalers)
            if autoscalers
            else workload["spec"].get("replicas", 1)
        )
        for budget in covering:
            if allowed_disruptions(budget, replicas) < 1:
                yield Finding(
                    budget,
                    f"allows no eviction at {replicas} pod(s), the minimum of {ref(workload)}:"
                    " node drains would hang",
                )
    for budget in budgets:
        if "unhealthyPodEvictionPolicy" not in budget["spec"]:
            yield Finding(
                budget,
                "unhealthyPodEvictionPolicy is not set: pods that are not ready could block"
                " drains (set AlwaysAllow)",
            )


def port_names_and_numbers(container: dict) -> set:
    ports = container.get("ports", [])
    return {p.get("name") for p in ports if p.get("name")} | {p["containerPort"] for p in ports}


def check_ports(manifests: Manifests) -> CheckResult:
    for workload in manifests.workloads:
        for container in containers(workload):
            known = port_names_and_numbers(container)
            for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container.get(probe_name, {})
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    port = probe.get(handler, {}).get("port")
                    if port is not None and port not in known:
                        yield Finding(
                            workload,
                            f"container {container['name']}: {probe_name} port {port!r} is not"
                            " a port of the container",
                        )
    for service in services(manifests):
        namespace = service["metadata"].get("namespace")
        for workload in manifests.selected({"matchLabels": service["spec"]["selector"]}, namespace):
            known = set().union(*(port_names_and_numbers(c) for c in containers(workload, False)))
            for port in service["spec"].get("ports", []):
                target = port.get("targetPort", port.get("port"))
                if target not in known:
                    yield Finding(
                        service,
                        f"targetPort {target!r} is not a port of {ref(workload)}'s containers",
                    )
    for policy in manifests.of_kind("NetworkPolicy"):
        namespace = policy["metadata"].get("namespace")
        for workload in manifests.selected(policy["spec"].get("podSelector"), namespace):
            known = set().union(*(port_names_and_numbers(c) for c in containers(workload, False)))
            for rule in policy["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    if port.get("port") is not None and port["port"] not in known:
                        yield Finding(
                            policy,
                            f"ingress port {port['port']!r} is not a port of {ref(workload)}'s"
                            " containers",
                        )
    for ingress in manifests.of_kind("Ingress"):
        yield from ingress_backend_problems(manifests, ingress)
{%- if cookiecutter.exposure == "gateway" %}
    for route in manifests.of_kind("HTTPRoute"):
        yield from route_backend_problems(manifests, route)
{%- endif %}
    yield from scrape_port_problems(manifests)
{%- if cookiecutter.worker != "none" %}
    yield from consumer_port_problems(manifests)


def consumer_port_problems(manifests: Manifests) -> CheckResult:
    """The event worker serves its probes on CONSUMER_PORT: it must be a port of its container."""
    for workload in manifests.workloads:
        if component(workload) != WORKER:
            continue
        for container in containers(workload, init=False):
            value = environment_value(manifests, workload, container, "CONSUMER_PORT")
            numbers = {p["containerPort"] for p in container.get("ports", [])}
            if value is not None and (not value.isdigit() or int(value) not in numbers):
                yield Finding(
                    workload,
                    f"container {container['name']}: CONSUMER_PORT {value} is not one of its"
                    " containerPorts: its probes would find nothing",
                )
{%- endif %}


def scrape_port_problems(manifests: Manifests) -> CheckResult:
    """Where Prometheus is told to scrape: the pods' annotations, PodMonitors, METRICS_PORT."""
    for workload in manifests.workloads:
        template = workload["spec"].get("template", {})
        annotations = template.get("metadata", {}).get("annotations", {})
        known = set().union(*(port_names_and_numbers(c) for c in containers(workload, False)))
        port = annotations.get("prometheus.io/port")
        if port is not None and (not port.isdigit() or int(port) not in known):
            yield Finding(
                workload,
                f"annotation prometheus.io/port {port!r} is not a containerPort of its containers",
            )
        for container in containers(workload, init=False):
            numbers = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            value = environment_value(manifests, workload, container, "METRICS_PORT")
            if value is not None and "metrics" in numbers and value != str(numbers["metrics"]):
                yield Finding(
                    workload,
                    f"container {container['name']}: METRICS_PORT {value} is not its port"
                    f" metrics ({numbers['metrics']}): the scrapes would find nothing",
                )
    for monitor in own_namespace_monitors(manifests):
        namespace = monitor["metadata"].get("namespace")
        for workload in manifests.selected(monitor["spec"].get("selector"), namespace):
            known = set().union(*(port_names_and_numbers(c) for c in containers(workload, False)))
            for endpoint in monitor["spec"].get("podMetricsEndpoints", []):
                port = endpoint.get("port", endpoint.get("portNumber"))
                if port is not None and port not in known:
                    yield Finding(
                        monitor,
                        f"podMetricsEndpoints port {port!r} is not a port of {ref(workload)}'s"
                        " containers",
                    )


def ingress_backend_problems(manifests: Manifests, ingress: dict) -> CheckResult:
    namespace = ingress["metadata"].get("namespace")
    backends = [ingress["spec"].get("defaultBackend")]
    for rule in ingress["spec"].get("rules", []):
        backends += [path.get("backend") for path in rule.get("http", {}).get("paths", [])]
    for backend in filter(None, backends):
        target = backend.get("service", {})
        service = manifests.find("Service", target.get("name"), namespace)
        if service is None:
            yield Finding(ingress, f"backend Service/{target.get('name')} is not in the manifests")
            continue
        wanted = target.get("port", {})
        ports = service["spec"].get("ports", [])
        if not any(
            wanted.get("name", p.get("name")) == p.get("name")
            and wanted.get("number", p["port"]) == p["port"]
            for p in ports
        ):
            port = wanted.get("name", wanted.get("number"))
            yield Finding(ingress, f"backend port {port!r} is not a port of {ref(service)}")


{%- if cookiecutter.exposure == "gateway" %}


def service_backends(rules: list[dict], namespace: str | None) -> Iterator[dict]:
    """The backendRefs of these HTTPRoute rules that are Services of the route's namespace (one
    elsewhere needs that namespace's ReferenceGrant, which is not in these manifests)."""
    for rule in rules:
        for backend in rule.get("backendRefs", []):
            kind = (backend.get("group", ""), backend.get("kind", "Service"))
            if kind == ("", "Service") and backend.get("namespace", namespace) == namespace:
                yield backend


def route_backend_problems(manifests: Manifests, route: dict) -> CheckResult:
    namespace = route["metadata"].get("namespace")
    for backend in service_backends(route["spec"].get("rules", []), namespace):
        service = manifests.find("Service", backend.get("name"), namespace)
        if service is None:
            problem = f"backendRef Service/{backend.get('name')} is not in the manifests"
        elif backend.get("port") is None:
            problem = f"backendRef {ref(service)} names no port (a Service's is required)"
        elif backend["port"] not in [p["port"] for p in service["spec"].get("ports", [])]:
            problem = f"backendRef port {backend['port']!r} is not a port of {ref(service)}"
        else:
            continue
        yield Finding(route, problem)
{%- endif %}


def references(workload: dict) -> Iterator[tuple[str, str, str, str | None]]:
    """(where, kind, name, key) for every required object the pods refer to."""
    spec = pod_spec(workload)
    if account := spec.get("serviceAccountName"):
        yield "serviceAccountName", "ServiceAccount", account, None
    for volume in spec.get("volumes", []):
        for field_name, kind, name_field in VOLUME_SOURCES:
            source = volume.get(field_name)
            if source and not source.get("optional"):
                yield f"volume {volume['name']}", kind, source[name_field], None
    for container in containers(workload):
        where = f"container {container['name']}"
        for source in container.get("envFrom", []):
            for field_name, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                reference = source.get(field_name)
                if reference and not reference.get("optional"):
                    yield f"{where}: envFrom", kind, reference["name"], None
        for variable in container.get("env", []):
            for field_name, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                reference = variable.get("valueFrom", {}).get(field_name)
                if reference and not reference.get("optional"):
                    name, key = reference["name"], reference["key"]
                    yield f"{where}: env {variable['name']}", kind, name, key


def check_references(manifests: Manifests) -> CheckResult:
    for workload in manifests.workloads:
        namespace = workload["metadata"].get("namespace")
        for where, kind, name, key in references(workload):
            target = manifests.find(kind, name, namespace)
            name = GENERATED_NAME_SUFFIX.sub("", name)  # as written in the sources
            if target is None:
                yield Finding(workload, f"{where}: {kind} {name!r} is not in the manifests")
            elif key is not None and key not in {
                **target.get("data", {}),
                **target.get("stringData", {}),
            }:
                yield Finding(workload, f"{where}: {kind} {name!r} has no key {key!r}")


def environment_value(
    manifests: Manifests, workload: dict, container: dict, name: str
) -> str | None:
    namespace = workload["metadata"].get("namespace")
    for variable in container.get("env", []):
        if variable["name"] == name:
            if "value" in variable:
                return variable["value"]
            reference = variable.get("valueFrom", {}).get("configMapKeyRef")
            config = reference and manifests.find("ConfigMap", reference["name"], namespace)
            return (config or {}).get("data", {}).get(reference["key"]) if reference else None
    for source in reversed(container.get("envFrom", [])):
        reference = source.get("configMapRef")
        config = reference and manifests.find("ConfigMap", reference["name"], namespace)
        if config and name in config.get("data", {}):
            return config["data"][name]
    return None


def secret_value(secret: dict, key: str) -> str | None:
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    try:
        return base64.b64decode(secret.get("data", {})[key]).decode()
    except (KeyError, binascii.Error, UnicodeDecodeError):
        return None


def settings_of(manifests: Manifests, workload: dict, container: dict) -> dict[str, str]:
    """The container's environment as far as the manifests hold it: values, ConfigMaps, Secrets."""
    namespace = workload["metadata"].get("namespace")
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if reference := source.get("configMapRef"):
            config = manifests.find("ConfigMap", reference["name"], namespace) or {}
            values.update(config.get("data", {}))
        elif reference := source.get("secretRef"):
            secret = manifests.find("Secret", reference["name"], namespace) or {}
            keys = {**secret.get("data", {}), **secret.get("stringData", {})}
            values.update({key: secret_value(secret, key) or "" for key in keys})
    for variable in container.get("env", []):
        value_from = variable.get("valueFrom", {})
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        elif reference := value_from.get("configMapKeyRef"):
            config = manifests.find("ConfigMap", reference["name"], namespace) or {}
            if reference["key"] in config.get("data", {}):
                values[variable["name"]] = config["data"][reference["key"]]
        elif reference := value_from.get("secretKeyRef"):
            secret = manifests.find("Secret", reference["name"], namespace) or {}
            if (value := secret_value(secret, reference["key"])) is not None:
                values[variable["name"]] = value
    return values


def url_endpoints(value: str) -> list[tuple[str, int]]:
    """The (host, port) pairs a URL setting names with an explicit port: `scheme://user@host:port/`,
    several hosts separated by commas, or `host:port,host:port` without a scheme."""
    netloc = urlsplit(value).netloc.rpartition("@")[2] if "://" in value else value
    endpoints = []
    for item in netloc.split(","):
        try:
            parts = urlsplit(f"//{item.strip()}")
            port = parts.port
        except ValueError:
            continue
        if parts.hostname and port is not None:
            endpoints.append((parts.hostname, port))
    return endpoints


def service_for_host(manifests: Manifests, host: str, namespace: str | None) -> dict | None:
    """The Service of these manifests a host name reaches: `name`, `name.namespace`, ..."""
    name, *rest = host.split(".")
    if rest and rest[1:] not in CLUSTER_DOMAINS:
        return None
    return manifests.find("Service", name, rest[0] if rest else namespace)


def selects_all(selector: dict | None) -> bool:
    """A NetworkPolicy's empty podSelector: every pod of the namespace."""
    return not (selector or {}).get("matchLabels") and not (selector or {}).get("matchExpressions")


def policies_of(manifests: Manifests, workload: dict, direction: str) -> list[dict]:
    """The NetworkPolicies that restrict the workload's pods in this direction."""
    namespace = workload["metadata"].get("namespace")
    found = []
    for policy in manifests.of_kind("NetworkPolicy"):
        spec = policy["spec"]
        types = spec.get("policyTypes") or ["Ingress"] + (["Egress"] if "egress" in spec else [])
        selector = spec.get("podSelector")
        if (
            policy["metadata"].get("namespace") == namespace
            and direction in types
            and (selects_all(selector) or selects(selector, pod_labels(workload)))
        ):
            found.append(policy)
    return found


def rules_of(policies: list[dict], direction: str) -> list[dict]:
    """The rules of these policies in one direction: `ingress` or `egress`."""
    return [rule for policy in policies for rule in policy["spec"].get(direction, [])]


def rule_allows_port(rule: dict, number: int, name: str | None) -> bool:
    ports = rule.get("ports") or [{}]
    for port in ports:
        value = port.get("port")
        if value is None or value == number or (name is not None and value == name):
            return True
        if isinstance(value, int) and value <= number <= port.get("endPort", value):
            return True
    return False


def peer_admits(peer: dict, workload: dict | None) -> bool:
    """Whether a rule's peer may be the given pods; peers in other namespaces or address
    ranges, and pods these manifests do not hold, are given the benefit of the doubt."""
    if workload is None or "podSelector" not in peer or "namespaceSelector" in peer:
        return True
    return selects_all(peer["podSelector"]) or selects(peer["podSelector"], pod_labels(workload))


def allowed(
    rules: list[dict], peer_key: str, peer: dict | None, number: int, name: str | None
) -> bool:
    """Whether a rule lets the port through, to or from (peer_key) the peer's pods."""
    return any(
        rule_allows_port(rule, number, name)
        and (not rule.get(peer_key) or any(peer_admits(p, peer) for p in rule[peer_key]))
        for rule in rules
    )


def target_port(service: dict, port: int, workload: dict) -> tuple[int, str | None] | None:
    """The container port (number, name) a Service port leads to in one of its workloads."""
    for entry in service["spec"].get("ports", []):
        if entry.get("port") != port:
            continue
        target = entry.get("targetPort", port)
        for container in containers(workload, init=False):
            for declared in container.get("ports", []):
                if target in (declared["containerPort"], declared.get("name")):
                    return declared["containerPort"], declared.get("name")
        return (target, None) if isinstance(target, int) else None
    return None


def url_settings(manifests: Manifests, workload: dict) -> Iterator[tuple[str, str, int]]:
    """(where, host, port) for every host a `*_URL` setting of the pods names with a port."""
    for container in containers(workload, init=False):
        for setting, value in sorted(settings_of(manifests, workload, container).items()):
            if not setting.endswith("_URL"):
                continue
            for host, port in url_endpoints(value):
                yield f"container {container['name']}: {setting} names {host}:{port}", host, port


def check_reachability(manifests: Manifests) -> CheckResult:
    """Every `*_URL` setting's host and port are reachable through the NetworkPolicies: out of
    the pods, and, for a Service of these manifests, into the pods behind it."""
    for workload in manifests.workloads:
        namespace = workload["metadata"].get("namespace")
        egress = policies_of(manifests, workload, "Egress")
        for where, host, port in url_settings(manifests, workload):
            service = service_for_host(manifests, host, namespace)
            if service is None:
                if egress and not allowed(rules_of(egress, "egress"), "to", None, port, None):
                    yield Finding(
                        workload,
                        f"{where}, but no egress rule of {ref(egress[0])} lets its pods out to"
                        f" port {port}",
                    )
                continue
            selector = {"matchLabels": service["spec"].get("selector", {})}
            servers = manifests.selected(selector, service["metadata"].get("namespace"))
            reached = [(s, target_port(service, port, s)) for s in servers]
            if not any(target for _, target in reached):
                yield Finding(workload, f"{where}, but {ref(service)} has no port {port}")
                continue
            yield from reachability_problems(manifests, workload, egress, where, reached)


def reachability_problems(
    manifests: Manifests,
    client: dict,
    egress: list[dict],
    where: str,
    reached: list[tuple[dict, tuple[int, str | None] | None]],
) -> CheckResult:
    """Whether the client's pods may connect to the pods behind a Service, on the port the
    Service leads to (NetworkPolicies see the pod's port, not the Service's)."""
    for server, target in reached:
        if target is None:
            continue
        number, name = target
        if egress and not allowed(rules_of(egress, "egress"), "to", server, number, name):
            yield Finding(
                client,
                f"{where}, but no egress rule of {ref(egress[0])} lets its pods reach"
                f" {ref(server)} on port {number}",
            )
        ingress = policies_of(manifests, server, "Ingress")
        if ingress and not allowed(rules_of(ingress, "ingress"), "from", client, number, name):
            yield Finding(
                client,
                f"{where}, but {ref(ingress[0])} admits no connection from its pods to"
                f" {ref(server)} on port {number}",
            )


{%- if cookiecutter.websockets == "yes" or cookiecutter.inference == "yes" %}


def workers_per_pod(container: dict) -> int:
    """WEB_CONCURRENCY as the Deployment sets it: the CPU limit, rounded up (divisor 1)."""
    limit = str(container.get("resources", {}).get("limits", {}).get("cpu", "1"))
    cores = int(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    return max(1, math.ceil(cores))


def per_pod_target_problems(
    manifests: Manifests, metric: str, setting: str, unit: str, consequence: str
) -> CheckResult:
    """A ScaledObject trigger on the sum of `metric` aims below what a pod of its target holds:
    `setting` per worker x its workers. At or above it, pods turn work away before any is added."""
    for scaled_object in manifests.of_kind(SCALED_OBJECT):
        workload = manifests.target_of(scaled_object)
        if workload is None:
            continue
        for index, trigger in enumerate(scaled_object["spec"].get("triggers", [])):
            metadata = trigger.get("metadata", {})
            if metric not in metadata.get("query", ""):
                continue
            for container in containers(workload, init=False):
                value = settings_of(manifests, workload, container).get(setting)
                if value is None or not value.isdigit():
                    continue
                held = int(value) * workers_per_pod(container)
                if float(metadata.get("threshold", 0)) >= held:
                    yield Finding(
                        scaled_object,
                        f"triggers[{index}]: threshold {metadata.get('threshold')} {unit} per"
                        f" pod is not below what a pod of {ref(workload)} holds ({setting}"
                        f" {value} x {workers_per_pod(container)} worker(s)): pods would"
                        f" {consequence} before any is added",
                    )
{%- endif %}
{%- if cookiecutter.websockets == "yes" %}


def check_websockets(manifests: Manifests) -> CheckResult:
{%- if cookiecutter.exposure == "ingress" %}
    """The WebSocket limits agree with what is in front of the pods and what scales them: the
    connections trigger aims below what a pod holds, the Ingress outlasts the connection age."""
{%- elif cookiecutter.exposure == "gateway" %}
    """The WebSocket limits agree with what is in front of the pods and what scales them: the
    connections trigger aims below what a pod holds, the route's timeout outlasts the connection
    age."""
{%- else %}
    """The WebSocket limits agree with what scales the pods: the connections trigger aims below
    what a pod holds."""
{%- endif %}
    yield from per_pod_target_problems(
        manifests, CONNECTIONS_METRIC, "WS_MAX_CONNECTIONS", "connections", "refuse connections"
    )
{%- if cookiecutter.exposure == "ingress" %}
    for ingress in manifests.of_kind("Ingress"):
        namespace = ingress["metadata"].get("namespace")
        annotations = ingress["metadata"].get("annotations", {})
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                name = path.get("backend", {}).get("service", {}).get("name")
                for workload, age in connection_ages(manifests, name, namespace):
                    yield from proxy_timeout_problems(ingress, annotations, workload, age)
{%- elif cookiecutter.exposure == "gateway" %}
    for route in manifests.of_kind("HTTPRoute"):
        yield from route_timeout_problems(manifests, route)
{%- endif %}
{%- if cookiecutter.exposure != "none" %}


def connection_ages(
    manifests: Manifests, service_name: str | None, namespace: str | None
) -> Iterator[tuple[dict, int]]:
    """(workload, WS_MAX_CONNECTION_AGE) for each container of the pods behind this Service."""
    service = manifests.find("Service", service_name, namespace)
    if service is None:
        return  # check_ports names it
    selector = {"matchLabels": service["spec"].get("selector", {})}
    for workload in manifests.selected(selector, namespace):
        for container in containers(workload, init=False):
            age = settings_of(manifests, workload, container).get("WS_MAX_CONNECTION_AGE")
            if age is not None and age.isdigit():
                yield workload, int(age)
{%- endif %}
{%- if cookiecutter.exposure == "ingress" %}


def proxy_timeout_problems(
    ingress: dict, annotations: dict, workload: dict, age: int
) -> CheckResult:
    for annotation in PROXY_TIMEOUTS:
        timeout = annotations.get(annotation, str(PROXY_TIMEOUT_DEFAULT))
        if timeout.isdigit() and int(timeout) < age:
            yield Finding(
                ingress,
                f"{annotation} {timeout} s is below WS_MAX_CONNECTION_AGE {age} s of"
                f" {ref(workload)}: the proxy, rather than the app's ping and age limits,"
                " could end a connection",
            )
{%- elif cookiecutter.exposure == "gateway" %}


def channel_rule(route: dict) -> dict | None:
    """The rule that serves the WebSocket path: the longest PathPrefix match wins (Gateway API's
    precedence). An exact or regular expression match is not taken for it."""
    prefixes = [
        (match.get("path", {}).get("value", "/"), rule)
        for rule in route["spec"].get("rules", [])
        for match in rule.get("matches") or [{}]
        if match.get("path", {}).get("type", "PathPrefix") == "PathPrefix"
    ]
    # A prefix matches whole path segments: /api covers /api/v1, not /apis.
    covering = [
        (len(prefix), rule)
        for prefix, rule in prefixes
        if f"{CHANNEL_PATH}/".startswith(f"{prefix.rstrip('/')}/")
    ]
    return max(covering, key=lambda found: found[0])[1] if covering else None


def duration_seconds(duration: str) -> float | None:
    """A Gateway API Duration in seconds; None when it is not one."""
    parts = DURATION_PART.findall(duration)
    if not parts or "".join(number + unit for number, unit in parts) != duration:
        return None
    return sum(int(number) * DURATION_UNITS[unit] for number, unit in parts)


def route_timeout_problems(manifests: Manifests, route: dict) -> CheckResult:
    rule = channel_rule(route)
    if rule is None:
        return
    namespace = route["metadata"].get("namespace")
    timeout = rule.get("timeouts", {}).get("request")
    seconds = None if timeout is None else duration_seconds(timeout)
    if seconds == 0:
        return  # "0s" turns the timeout off
    limit = f"request timeout {timeout}" if timeout else "the default timeout"
    for backend in service_backends([rule], namespace):
        for workload, age in connection_ages(manifests, backend.get("name"), namespace):
            if seconds is None or seconds < age:
                yield Finding(
                    route,
                    f"the rule for {CHANNEL_PATH} has {limit}, below WS_MAX_CONNECTION_AGE"
                    f" {age} s of {ref(workload)}: the gateway, rather than the app's ping and"
                    " age limits, could end a connection",
                )
{%- endif %}
{%- endif %}
{%- if cookiecutter.inference == "yes" %}


def probe_budget(probe: dict) -> tuple[int, str]:
    """Seconds a probe may fail before the kubelet acts, and how they add up (Kubernetes'
    defaults for what it leaves out)."""
    delay = probe.get("initialDelaySeconds", 0)
    period, threshold = probe.get("periodSeconds", 10), probe.get("failureThreshold", 3)
    sum_text = f"{threshold} x {period} s" + (f" + initialDelaySeconds {delay} s" if delay else "")
    return delay + period * threshold, sum_text


def check_inference(manifests: Manifests) -> CheckResult:
    """Each worker of the web pods loads the model and runs a warm-up inference before it answers:
    the startupProbe (without one, the livenessProbe) waits that long before restarting them. The
    queue trigger aims below what a pod lets wait."""
    for workload in manifests.workloads:
        if component(workload) != WEB:
            continue
        for container in containers(workload, init=False):
            name = "startupProbe" if "startupProbe" in container else "livenessProbe"
            if name not in container:
                continue  # check_probes names it
            budget, sum_text = probe_budget(container[name])
            if budget < MODEL_STARTUP_SECONDS:
                yield Finding(
                    workload,
                    f"container {container['name']}: {name} allows {budget} s ({sum_text}) before"
                    f" a restart, less than the {MODEL_STARTUP_SECONDS} s the model's load and"
                    " warm-up are given: pods could be restarted before they ever serve",
                )
    yield from per_pod_target_problems(
        manifests, QUEUE_METRIC, "INFERENCE_QUEUE_SIZE", "requests waiting", "answer 503"
    )
{%- endif %}


def gunicorn_default_graceful_timeout(project: Path) -> int:
    """The default in gunicorn.conf.py, or gunicorn's own (30 s) without one."""
    config = project / "gunicorn.conf.py"
    if config.is_file():
        found = re.search(r"GRACEFUL_TIMEOUT\"?,\s*\"(\d+)\"", config.read_text())
        if found:
            return int(found.group(1))
    return 30


def shutdown_setting(manifests: Manifests, workload: dict) -> tuple[str, int]:
    """The variable that bounds the pods' graceful shutdown, and its default."""
{%- if cookiecutter.worker != "none" %}
    if component(workload) == WORKER:
        return WORKER_GRACEFUL_TIMEOUT
{%- endif %}
    return "GRACEFUL_TIMEOUT", gunicorn_default_graceful_timeout(manifests.project)


def check_termination_budget(manifests: Manifests) -> CheckResult:
    for workload in manifests.workloads:
        grace = pod_spec(workload).get("terminationGracePeriodSeconds", 30)
        name, default = shutdown_setting(manifests, workload)
        for container in containers(workload, init=False):
            pre_stop = container.get("lifecycle", {}).get("preStop", {})
            sleep = pre_stop.get("sleep", {}).get("seconds", 0)
            value = environment_value(manifests, workload, container, name)
            graceful = int(float(value)) if value else default
            if sleep + graceful + MIN_TERMINATION_MARGIN > grace:
                yield Finding(
                    workload,
                    f"container {container['name']}: termination budget does not hold: preStop"
                    f" sleep {sleep} s + {name} {graceful} s + a margin of at least"
                    f" {MIN_TERMINATION_MARGIN} s exceeds terminationGracePeriodSeconds {grace} s",
                )


def image_user(dockerfile: Path) -> tuple[str | None, str | None] | str:
    """The final stage's numeric (uid, gid), or a sentence saying why there is none."""
    user = None
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        instruction, _, argument = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            user = None
        elif instruction.upper() == "USER":
            user = argument.strip()
    if user is None:
        return "the Dockerfile's final stage sets no USER, so the image runs as root"
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        return f"the Dockerfile's USER {user} is not numeric, so runAsNonRoot cannot verify it"
    return uid, gid or None


def project_images(manifests: Manifests) -> set[str]:
    """The images built from the Dockerfile: those the project's own workloads run (named after
    the project: `app.kubernetes.io/name` equals `app.kubernetes.io/part-of`). Others, such as
    a development database, run a third-party image as that image's own user."""
    own = [
        w
        for w in manifests.workloads
        if pod_labels(w).get("app.kubernetes.io/name")
        == pod_labels(w).get("app.kubernetes.io/part-of")
    ]
    return {container.get("image") for workload in own for container in containers(workload)}


def check_image_user(manifests: Manifests) -> CheckResult:
    dockerfile = manifests.project / "Dockerfile"
    if not dockerfile.is_file():
        return
    user = image_user(dockerfile)
    images = project_images(manifests)
    for workload in manifests.workloads:
        if not images.intersection(c.get("image") for c in containers(workload)):
            continue
        if isinstance(user, str):
            yield Finding(workload, user)
            continue
        pod_context = pod_spec(workload).get("securityContext", {})
        for container in (c for c in containers(workload) if c.get("image") in images):
            context = {**pod_context, **container.get("securityContext", {})}
            for field_name, expected in zip(("runAsUser", "runAsGroup"), user, strict=True):
                actual = context.get(field_name)
                if expected is not None and str(actual) != expected:
                    yield Finding(
                        workload,
                        f"container {container['name']}: {field_name} {actual} does not match the"
                        f" image's USER {':'.join(filter(None, user))} (Dockerfile)",
                    )


def check_init_containers(manifests: Manifests) -> CheckResult:
    for workload in manifests.workloads:
        spec = pod_spec(workload)
        app = spec.get("containers", [{}])[0]
        for init in spec.get("initContainers", []):
            for field_name in ("image", "securityContext", "resources"):
                if init.get(field_name) != app.get(field_name):
                    yield Finding(
                        workload,
                        f"initContainer {init['name']}: {field_name} differs from container"
                        f" {app.get('name')}'s; it runs the same code, so it needs the same",
                    )


def check_probes(manifests: Manifests) -> CheckResult:
    for workload in manifests.workloads:
        for container in containers(workload, init=False):
            where = f"container {container['name']}"
            liveness, readiness = container.get("livenessProbe"), container.get("readinessProbe")
            if not liveness or not readiness:
                yield Finding(workload, f"{where}: needs both a livenessProbe and a readinessProbe")
            elif liveness == readiness or (
                liveness.get("httpGet", {}).get("path")
                == readiness.get("httpGet", {}).get("path")
                is not None
            ):
                yield Finding(
                    workload,
                    f"{where}: livenessProbe and readinessProbe check the same thing: a failing"
                    " dependency would restart every pod",
                )


CHECKS: tuple[Callable[[Manifests], CheckResult], ...] = (
    check_selectors,
    check_autoscaling,
    check_disruption_budget,
    check_ports,
    check_references,
    check_reachability,
{%- if cookiecutter.websockets == "yes" %}
    check_websockets,
{%- endif %}
{%- if cookiecutter.inference == "yes" %}
    check_inference,
{%- endif %}
    check_termination_budget,
    check_image_user,
    check_init_containers,
    check_probes,
)
