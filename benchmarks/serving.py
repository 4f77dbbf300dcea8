"""The rendered services side by side with the simplest apps a user could run instead.

Per framework: the default bake on PostgreSQL, started exactly as its container starts it (the
Dockerfile's CMD with gunicorn.conf.py, the Deployment's environment, the image's ENV), and a
bare two-route app in the same virtual environment with the same worker count. wrk loads them in
turns, over loopback only and for a fixed time; every process is ended by its PID.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.locks import install_locked
from testkit.services import (
    Service,
    collect_static,
    container_command,
    database_url,
    free_port,
    in_venv,
    migrate_command,
    pod_environment,
    throwaway_database,
)
from testkit.template import bake_in_subprocess

WRK_SUMMARY = Path(__file__).with_name("wrk_summary.lua")
APP_COST = Path(__file__).with_name("app_cost.py")
# The runtime image's ENV (Dockerfile): bytecode is compiled at build time, output unbuffered.
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
# gunicorn.conf.py's GUNICORN_THREADS default for Django; the bare Django app gets the same.
DJANGO_THREADS = 4
ITEMS = "/api/v1/items"
SEEDED_ITEMS = 50

BARE_FASTAPI = {
    "app/__init__.py": "",
    "app/main.py": """
        from fastapi import FastAPI

        app = FastAPI()


        @app.get("/")
        async def root():
            return {"message": "Hello World"}


        @app.get("/health")
        async def health():
            return {"status": "ok"}
    """,
}

BARE_DJANGO = {
    "app/__init__.py": "",
    "app/settings.py": """
        SECRET_KEY = "bare-benchmark-app"
        DEBUG = False
        ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
        ROOT_URLCONF = "app.urls"
    """,
    "app/urls.py": """
        from django.http import JsonResponse
        from django.urls import path


        def root(request):
            return JsonResponse({"message": "Hello World"})


        def health(request):
            return JsonResponse({"status": "ok"})


        urlpatterns = [path("", root), path("health", health)]
    """,
    "app/wsgi.py": """
        import os

        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
        application = get_wsgi_application()
    """,
}


@dataclass(frozen=True)
class BareApp:
    description: str
    files: dict[str, str]
    command: Callable[[int, int], list[str]]
    # What app_cost.py calls in-process: an ASGI app (or factory), or a Django settings module.
    in_process: str


BARE_APPS = {
    "fastapi": BareApp(
        description=(
            "the blueprint's bare app: a two-route FastAPI hello world (`/`, `/health`) started"
            " with `uvicorn app.main:app --workers N` (uvicorn's defaults otherwise)"
        ),
        files=BARE_FASTAPI,
        in_process="app.main:app",
        command=lambda port, workers: [
            *("uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", str(workers)),
        ],
    ),
    # A bare Django, not the bare FastAPI app: the same server (gunicorn gthread, same workers and
    # threads) with nothing of the template's, so the ratio is the template's cost, not Django's.
    "django": BareApp(
        description=(
            "a two-route Django hello world (`/`, `/health`; no apps, no middleware, no database)"
            f" started with `gunicorn app.wsgi --workers N --threads {DJANGO_THREADS}`: the"
            " rendered service's server and threads, so the ratio is what the template adds to"
            " Django rather than Django against FastAPI"
        ),
        files=BARE_DJANGO,
        in_process="app.settings",
        command=lambda port, workers: [
            *("gunicorn", "app.wsgi", "--bind", f"127.0.0.1:{port}"),
            *("--workers", str(workers), "--threads", str(DJANGO_THREADS)),
        ],
    ),
}


@dataclass(frozen=True)
class LoadShape:
    """One wrk run: its threads, open connections and seconds; `rounds` pairs per path."""

    threads: int = 2
    connections: int = 50
    seconds: int = 10
    rounds: int = 3
    warmup_seconds: int = 2

    def describe(self) -> str:
        return f"wrk -t{self.threads} -c{self.connections} -d{self.seconds}s"


@dataclass(frozen=True)
class Deployment:
    """A rendered project as its image holds it, with its runtime dependencies installed."""

    framework: str
    project: Path
    venv: Path
    bare_dir: Path


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 600)
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result


def deploy(framework: str, workdir: Path) -> Deployment:
    """Bake, install the runtime lock, compile bytecode, collect static files: as the image does."""
    output = workdir / framework
    output.mkdir(parents=True)
    baked = bake_in_subprocess(output, framework=framework, database="postgresql")
    if baked.returncode != 0:
        raise RuntimeError(f"baking framework={framework} failed:\n{baked.stderr}")
    (project,) = output.iterdir()
    venv = workdir / f"{framework}-venv"
    python = str(install_locked(project, venv, "requirements.lock"))
    run([python, "-m", "compileall", "-q", str(project), str(venv / "lib")])
    collect_static(project, venv)
    bare_dir = workdir / f"{framework}-bare"
    for name, source in BARE_APPS[framework].files.items():
        path = bare_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    run([python, "-m", "compileall", "-q", str(bare_dir)])
    return Deployment(framework, project, venv, bare_dir)


def package_versions(venv: Path, names: list[str]) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json, sys;"
        "print(json.dumps({'python': sys.version.split()[0],"
        f" **{{n: m.version(n) for n in {names!r}}}}}))"
    )
    return json.loads(run([str(venv / "bin" / "python"), "-c", script]).stdout)


def wrk(port: int, path: str, shape: LoadShape, seconds: int | None = None) -> dict[str, Any]:
    seconds = seconds or shape.seconds
    command = [
        *("wrk", f"-t{shape.threads}", f"-c{shape.connections}", f"-d{seconds}s"),
        *("--timeout", "5s", "--script", str(WRK_SUMMARY), f"http://127.0.0.1:{port}{path}"),
    ]
    return parse_wrk(run(command, timeout=seconds + 60).stdout)


def parse_wrk(stdout: str) -> dict[str, Any]:
    """The numbers of one run, from the JSON line wrk_summary.lua prints."""
    line = next(line for line in reversed(stdout.splitlines()) if line.startswith("{"))
    raw = json.loads(line)
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "errors": errors,
    }


def worker_pids(service: Service) -> list[int]:
    """The server's worker processes (uvicorn --workers also spawns multiprocessing's tracker)."""
    pids = sorted(service.worker_pids())
    return [
        pid for pid in pids if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def worker_memory(service: Service) -> list[dict[str, float]]:
    """Resident (RSS) and proportional (PSS, shared pages split) memory of each worker, in MiB."""
    memory = []
    for pid in worker_pids(service):
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        )
        memory.append(
            {kind.lower(): round(int(fields[kind].split()[0]) / 1024, 1) for kind in ("Rss", "Pss")}
        )
    return memory


class Contenders:
    """The rendered service and the bare app of one framework, started on demand."""

    def __init__(self, deployment: Deployment, database: str, workers: int, logs: Path) -> None:
        self.deployment = deployment
        self.workers = workers
        self.logs = logs
        self.started = 0
        self.env = {
            **pod_environment(deployment.framework),
            **IMAGE_ENV,
            "DATABASE_URL": database_url(database),
            "WEB_CONCURRENCY": str(workers),
        }
        if deployment.framework == "django":
            self.env["GUNICORN_THREADS"] = str(DJANGO_THREADS)

    def _log(self, name: str) -> Path:
        self.started += 1
        return self.logs / f"{self.deployment.framework}-{name}-{self.started}.log"

    def rendered(self, **env: str) -> Service:
        deployment = self.deployment
        env = {**self.env, **env}
        return Service(deployment.project, deployment.venv, env, self._log("rendered"))

    def bare(self) -> Service:
        port = free_port()
        return Service(
            self.deployment.bare_dir,
            self.deployment.venv,
            dict(IMAGE_ENV),
            self._log("bare"),
            port=port,
            command=BARE_APPS[self.deployment.framework].command(port, self.workers),
            ready_path="/health",
        )


def seconds_to_ready(service: Service) -> float:
    """From exec to the first 200 on the ready path (Service.start polls it)."""
    started = time.perf_counter()
    try:
        service.start(timeout=60)
        return round(time.perf_counter() - started, 3)
    finally:
        service.stop()


def app_costs(deployment: Deployment, env: dict[str, str], scratch: Path) -> dict[str, Any]:
    """Microseconds per in-process /health request, rendered and bare (see app_cost.py)."""
    package = deployment.project.name.replace("-", "_")
    kind, rendered = ("asgi", f"{package}.main:create_app")
    if deployment.framework == "django":
        kind, rendered = ("wsgi", f"{package}.settings")
    costs = {}
    for name, directory, target in (
        ("rendered", deployment.project, rendered),
        ("bare", deployment.bare_dir, BARE_APPS[deployment.framework].in_process),
    ):
        output = scratch / f"{deployment.framework}-{name}-app-cost.json"
        python = str(deployment.venv / "bin" / "python")
        run(
            [python, str(APP_COST), kind, target, str(output)],
            cwd=directory,
            # The app under test is imported from its own directory, as its server would.
            env={
                "PATH": f"{deployment.venv / 'bin'}:/usr/bin:/bin",
                "PYTHONPATH": str(directory),
                **env,
            },
        )
        costs[name] = json.loads(output.read_text())
    return costs


def migrate(deployment: Deployment, database: str) -> None:
    venv = deployment.venv
    run(
        in_venv(venv, migrate_command(deployment.project)),
        cwd=deployment.project,
        env={
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            **pod_environment(deployment.framework),
            "DATABASE_URL": database_url(database),
        },
    )


def seed(service: Service) -> None:
    for number in range(SEEDED_ITEMS):
        body = json.dumps({"name": f"item {number}", "description": "seeded by the benchmark"})
        status, _ = service.request(
            "POST", ITEMS, body.encode(), {"Content-Type": "application/json"}
        )
        if status != 201:
            raise RuntimeError(f"seeding {ITEMS} answered {status}\n{service.log_tail()}")


@contextlib.contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    try:
        for service in services:
            service.start(timeout=60)
        yield services
    finally:
        for service in services:
            service.stop()


def compare(
    deployment: Deployment,
    workers: int,
    shape: LoadShape,
    cold_starts: int,
    logs: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Everything measured for one framework, as plain data for the report."""
    framework = deployment.framework
    health: dict[str, list[dict[str, Any]]] = {"rendered": [], "bare": []}
    items: list[dict[str, Any]] = []
    memory: dict[str, dict[str, list[dict[str, float]]]] = {"rendered": {}, "bare": {}}
    cold: dict[str, list[float]] = {"rendered": [], "bare": []}
    with throwaway_database() as database:
        migrate(deployment, database)
        contenders = Contenders(deployment, database, workers, logs)
        with running(contenders.rendered(), contenders.bare()) as (rendered, bare):
            seed(rendered)
            by_name = {"rendered": rendered, "bare": bare}
            for name, service in by_name.items():
                memory[name]["idle"] = worker_memory(service)
                wrk(service.port, "/health", shape, shape.warmup_seconds)
            wrk(rendered.port, ITEMS, shape, shape.warmup_seconds)
            for number in range(shape.rounds):
                # Alternate who goes first, so a drift in the machine's load favours neither.
                order = ("rendered", "bare") if number % 2 == 0 else ("bare", "rendered")
                for name in order:
                    health[name].append(wrk(by_name[name].port, "/health", shape))
                    progress(f"{framework} {name} /health: {health[name][-1]}")
                items.append(wrk(rendered.port, ITEMS, shape))
                progress(f"{framework} rendered {ITEMS}: {items[-1]}")
            for name, service in by_name.items():
                memory[name]["after_load"] = worker_memory(service)
        for _ in range(cold_starts):
            # No drain on the way out: it only delays the exit, which is not measured here.
            cold["rendered"].append(
                seconds_to_ready(contenders.rendered(SHUTDOWN_DRAIN_SECONDS="0"))
            )
            cold["bare"].append(seconds_to_ready(contenders.bare()))
        progress(f"{framework} cold starts: {cold}")
        in_process = app_costs(deployment, contenders.env, logs)
        progress(f"{framework} in-process cost per /health request, us: {in_process}")
    return {
        "workers": workers,
        "rendered": {
            "command": shlex.join(container_command(deployment.project)),
            "environment": sorted(contenders.env),
            "ready_path": "/ready",
        },
        "bare": {
            "description": BARE_APPS[framework].description,
            "command": shlex.join(BARE_APPS[framework].command(8000, workers)),
            "ready_path": "/health",
        },
        "load": {
            "tool": shape.describe(),
            "rounds": shape.rounds,
            "items_path": ITEMS,
            "seeded_items": SEEDED_ITEMS,
        },
        "health": health,
        "items": {"rendered": items},
        "cold_start_seconds": cold,
        "memory_mib": memory,
        "app_cost_us": in_process,
    }
