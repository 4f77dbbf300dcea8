"""pytest fixtures that deploy a rendered project as its image and Deployment would, on the host.

A test module takes them as module attributes (`deployed = deployment.deployed`, and the
others it needs); `deployed_projects` caches per session whichever module asked first.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.services import (
    Service,
    collect_static,
    database_url,
    in_venv,
    migrate_command,
    pod_environment,
    throwaway_database,
)
from testkit.template import choice_options

FRAMEWORKS = choice_options()["framework"]


@dataclass(frozen=True)
class Deployed:
    """A rendered project as its image holds it, and what its pods get from the Deployment."""

    framework: str
    project: Path
    venv: Path
    env: dict[str, str]

    @property
    def package(self) -> Path:
        return self.project / self.project.name.replace("-", "_")


# Each module that takes the fixture registers it anew: the cache makes one deployment (a bake
# copied, its venv installed) per framework and session all the same.
_DEPLOYED: dict[str, Deployed] = {}


@pytest.fixture(scope="session")
def deployed_projects(
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], Deployed]:
    def deploy(framework: str) -> Deployed:
        if framework not in _DEPLOYED:
            baked_project = baked(framework=framework, database="postgresql")
            # A copy, so what the image build adds stays out of the bake other tests read.
            project = tmp_path_factory.mktemp(framework) / baked_project.name
            shutil.copytree(baked_project, project)
            venv = project_venv(project)
            env = pod_environment(framework)
            collect_static(project, venv)
            _DEPLOYED[framework] = Deployed(framework, project, venv, env)
        return _DEPLOYED[framework]

    return deploy


@pytest.fixture(params=FRAMEWORKS)
def deployed(
    request: pytest.FixtureRequest, deployed_projects: Callable[[str], Deployed]
) -> Deployed:
    return deployed_projects(request.param)


def run_command(
    deployed: Deployed, command: list[str], url: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """A command in the project's directory, with the pod's environment and this database."""
    venv = deployed.venv
    return subprocess.run(
        in_venv(venv, command),
        cwd=deployed.project,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", **deployed.env, "DATABASE_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_migrations(deployed: Deployed, url: str) -> subprocess.CompletedProcess[str]:
    return run_command(deployed, migrate_command(deployed.project), url)


@pytest.fixture
def migrated_database(deployed: Deployed) -> Iterator[str]:
    with throwaway_database() as name:
        result = run_migrations(deployed, database_url(name))
        assert result.returncode == 0, result.stdout + result.stderr
        yield name


@pytest.fixture
def service_factory(deployed: Deployed, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Starts the service as its container does; two workers unless WEB_CONCURRENCY says."""
    started: list[Service] = []

    def start(url: str, **env: str) -> Service:
        settings = {**deployed.env, "DATABASE_URL": url, "WEB_CONCURRENCY": "2", **env}
        log = tmp_path / f"service-{len(started)}.log"
        service = Service(project=deployed.project, venv=deployed.venv, env=settings, log_path=log)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()
