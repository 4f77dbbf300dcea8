"""Every target of the generated Makefile, run as a newcomer following the README would run it.

`install`, `lint`, `format`, `validate`, `test`, `migrate` and `run` do their real work here.
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
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest

pytestmark = pytest.mark.generated

# Each target `make help` lists, and the test below that runs it. A new target fails
# test_every_listed_target_is_exercised until it is added here and to a test.
EXERCISED = {
    "help": "test_every_listed_target_is_exercised",
    "install": "test_newcomer_installs_checks_tests_migrates_and_runs_the_project",
    "lint": "test_newcomer_installs_checks_tests_migrates_and_runs_the_project",
    "format": "test_newcomer_installs_checks_tests_migrates_and_runs_the_project",
    "validate": "test_newcomer_installs_checks_tests_migrates_and_runs_the_project",
    "test": "test_newcomer_installs_checks_tests_migrates_and_runs_the_project",
    "migrate": "test_newcomer_installs_checks_tests_migrates_and_runs_the_project",
    "run": "test_newcomer_installs_checks_tests_migrates_and_runs_the_project",
    "image": "test_image_says_it_needs_a_docker_engine",
    "deploy": "test_deploy_says_it_needs_a_cluster",
    "lock": "test_lock_and_upgrade_resolve_both_locks_with_uv",
    "upgrade": "test_lock_and_upgrade_resolve_both_locks_with_uv",
}


def make(project: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 300):
    return subprocess.run(
        ["make", *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def project(default_project: Path, tmp_path: Path) -> Path:
    """A private copy of the default bake: targets write .venv and may reformat files."""
    copy = tmp_path / default_project.name
    shutil.copytree(default_project, copy)
    return copy


def test_every_listed_target_is_exercised(project: Path) -> None:
    result = make(project)
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"^  ([a-z-]+) ", result.stdout, re.M)
    assert sorted(listed) == sorted(EXERCISED)


def test_targets_that_need_the_virtualenv_say_so_before_install(project: Path) -> None:
    for target in ("run", "test", "lint", "format", "migrate", "validate"):
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


@pytest.fixture
def throwaway_database(project: Path, postgres_url: str) -> Iterator[Callable[[], str]]:
    """A database of its own on the test server, dropped afterwards; created once .venv exists."""
    name = f"makefile_{uuid4().hex[:12]}"
    statement = (
        "import asyncio, sys, asyncpg\n"
        "async def main(url, sql):\n"
        "    connection = await asyncpg.connect(url)\n"
        "    await connection.execute(sql)\n"
        "    await connection.close()\n"
        "asyncio.run(main(*sys.argv[1:]))\n"
    )

    def execute(sql: str) -> None:
        python = project / ".venv" / "bin" / "python"
        subprocess.run([python, "-c", statement, postgres_url, sql], check=True, timeout=60)

    created = []

    def create() -> str:
        execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return database_url(postgres_url, name)

    yield create
    if created:
        execute(f'DROP DATABASE "{name}" WITH (FORCE)')


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


def test_newcomer_installs_checks_tests_migrates_and_runs_the_project(
    project: Path, postgres_url: str, throwaway_database: Callable[[], str]
) -> None:
    install = make(project, "install", timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr

    before = file_digests(project)
    for target in ("lint", "format", "validate"):
        result = make(project, target)
        assert result.returncode == 0, f"make {target}:\n{result.stdout}{result.stderr}"
    assert file_digests(project) == before, "make format changed a freshly generated project"

    tests = make(project, "test", env={"TEST_DATABASE_URL": postgres_url}, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert " passed" in tests.stdout

    settings = {"DATABASE_URL": throwaway_database(), "LOG_FORMAT": "json"}
    for attempt in ("first", "again"):
        migrate = make(project, "migrate", env=settings)
        assert migrate.returncode == 0, f"{attempt}:\n{migrate.stdout}{migrate.stderr}"

    port = free_port()
    log = project / "run.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=project,
            env={**os.environ, **settings},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/ready", time.monotonic() + 60)
        assert status == 200, body
        # --reload: a changed module restarts the app.
        main = next(project.glob("*/main.py"))
        main.write_text(main.read_text() + "\n# touched by the test\n")
        deadline = time.monotonic() + 30
        while "Reloading" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "Reloading" in log.read_text(), log.read_text()[-3000:]
        status, _ = wait_for(f"http://127.0.0.1:{port}/health", time.monotonic() + 30)
        assert status == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
