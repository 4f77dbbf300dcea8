"""The rendered services side by side with the simplest apps a user could run instead.

Per framework: the default bake on PostgreSQL, started exactly as its container starts it (the
Dockerfile's CMD with gunicorn.conf.py, the Deployment's environment, the image's ENV), and a
bare two-route app in the same virtual environment with the same worker count. wrk loads them in
turns, over loopback only and for a fixed time; every process is ended by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
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
    # The simplest items list on the same database: one route, one session per request, the
    # rendered engine's pool options (POOL_OPTIONS, read from the rendered project).
    "app/items.py": """
        import json
        import os
        from datetime import datetime

        from fastapi import FastAPI
        from sqlalchemy import func, select
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
        from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


        class Base(DeclarativeBase):
            pass


        class Item(Base):
            __tablename__ = "items"
            id: Mapped[int] = mapped_column(primary_key=True)
            name: Mapped[str]
            description: Mapped[str | None]
            created_at: Mapped[datetime]


        engine = create_async_engine(
            os.environ["DATABASE_URL"], **json.loads(os.environ["POOL_OPTIONS"])
        )
        Session = async_sessionmaker(engine, expire_on_commit=False)
        app = FastAPI()


        @app.get("/api/v1/items")
        async def list_items(limit: int = 20, offset: int = 0):
            async with Session() as session:
                total = await session.scalar(select(func.count()).select_from(Item))
                rows = await session.scalars(
                    select(Item).order_by(Item.id).limit(limit).offset(offset)
                )
                items = [
                    {"id": i.id, "name": i.name, "description": i.description,
                     "created_at": i.created_at}
                    for i in rows
                ]
            return {"items": items, "total": total, "limit": limit, "offset": offset}
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
    # The simplest items list on the same database: one view, the rendered project's DATABASES
    # (driver, pool and all; BARE_DATABASE, read from the rendered project), no middleware.
    "app/items_settings.py": """
        import json
        import os

        SECRET_KEY = "bare-benchmark-app"
        DEBUG = False
        ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
        ROOT_URLCONF = "app.items_urls"
        INSTALLED_APPS = ["app"]
        USE_TZ = True
        DATABASES = {"default": json.loads(os.environ["BARE_DATABASE"])}
    """,
    "app/models.py": """
        from django.db import models


        class Item(models.Model):
            name = models.CharField(max_length=200)
            description = models.CharField(max_length=2000, blank=True)
            created_at = models.DateTimeField()

            class Meta:
                db_table = "items_item"
                managed = False
    """,
    "app/items_urls.py": """
        from django.http import JsonResponse
        from django.urls import path

        from app.models import Item


        def items(request):
            limit = int(request.GET.get("limit", 20))
            offset = int(request.GET.get("offset", 0))
            found = Item.objects.order_by("id")[offset : offset + limit]
            return JsonResponse({
                "items": [
                    {"id": i.pk, "name": i.name, "description": i.description,
                     "created_at": i.created_at}
                    for i in found
                ],
                "total": Item.objects.count(),
                "limit": limit,
                "offset": offset,
            })


        urlpatterns = [path("api/v1/items", items)]
    """,
    "app/wsgi.py": """
        import os

        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
        application = get_wsgi_application()
    """,
    "app/asgi.py": """
        import os

        from django.core.asgi import get_asgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
        application = get_asgi_application()
    """,
}

# Run in the rendered project (its venv, directory and pod environment): the server its
# gunicorn.conf.py configures, as the bare Django must run on the same one.
SERVER_PROBE = """
import json, runpy
from gunicorn.util import load_class
conf = runpy.run_path("gunicorn.conf.py")
worker = load_class(conf.get("worker_class", "sync"))
# The server's own class under the project's subclass of it.
servers = ("gunicorn", "uvicorn_worker")
base = next(c for c in worker.__mro__ if c.__module__.split(".")[0] in servers)
print(json.dumps({
    "worker_class": f"{base.__module__}.{base.__qualname__}",
    "interface": "asgi" if base.__module__.startswith("uvicorn") else "wsgi",
    "threads": conf.get("threads", 1),
}))
"""
# The rendered FastAPI engine's pool options, as its core/db.py passes them.
FASTAPI_POOL_PROBE = """
import json
from {package}.core import db
from {package}.core.settings import Settings
options = {{}}
db.create_async_engine = lambda url, **given: options.update(given)
db.create_engine(Settings())
pool = {{k: v for k, v in options.items() if k.startswith("pool") or k == "max_overflow"}}
print(json.dumps(pool))
"""
# The rendered Django project's database settings.
DJANGO_DATABASE_PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps(settings.DATABASES["default"], default=str))
"""


@dataclass(frozen=True)
class BareApp:
    description: str
    command: list[str]
    # What app_cost.py calls in-process: an ASGI app (or factory), or a Django settings module.
    in_process: str
    env: dict[str, str]


def bare_apps(deployment: Deployment, workers: int, database: str) -> dict[str, BareApp]:
    """The bare hello world (`/health`) and the bare items list, with their commands."""
    if deployment.framework == "fastapi":
        uvicorn = ["uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--workers", str(workers)]
        pool = probe(deployment, FASTAPI_POOL_PROBE.format(package=package(deployment)), database)
        url = database_url(database).replace("postgresql://", "postgresql+asyncpg://", 1)
        return {
            "health": BareApp(
                "the blueprint's bare app: a two-route FastAPI hello world (`/`, `/health`)"
                " started with `uvicorn app.main:app --workers N` (uvicorn's defaults"
                " otherwise, its access log among them)",
                [*uvicorn, "app.main:app"],
                "app.main:app",
                {},
            ),
            "items": BareApp(
                "one FastAPI route doing the same two queries through SQLAlchemy and asyncpg,"
                f" one session per request, with the rendered engine's pool options ({pool}),"
                " started like the bare app",
                [*uvicorn, "app.items:app"],
                "",
                {"DATABASE_URL": url, "POOL_OPTIONS": json.dumps(pool)},
            ),
        }
    server = probe(deployment, SERVER_PROBE, database)
    command = ["gunicorn", "--bind", "127.0.0.1:{port}", "--workers", str(workers)]
    command += ["--worker-class", server["worker_class"]]
    if server["interface"] == "wsgi":
        command += ["--threads", str(server["threads"])]
    command.append(f"app.{server['interface']}:application")
    served = f"gunicorn with the rendered service's worker class (`{server['worker_class']}`)"
    bare_database = probe(deployment, DJANGO_DATABASE_PROBE, database)
    pool = bare_database.get("OPTIONS", {}).get("pool")
    return {
        "health": BareApp(
            "a two-route Django hello world (`/`, `/health`; no apps, no middleware, no"
            f" database) served by {served} and the same worker count: the ratio is what the"
            " template adds to Django rather than Django against FastAPI",
            command,
            "app.settings",
            {},
        ),
        "items": BareApp(
            "one Django view doing the same two ORM queries, no middleware, with the rendered"
            f" project's DATABASES (psycopg, pool {pool}), served like the bare app",
            command,
            "",
            {
                "DJANGO_SETTINGS_MODULE": "app.items_settings",
                "BARE_DATABASE": json.dumps(bare_database),
            },
        ),
    }


def package(deployment: Deployment) -> str:
    return deployment.project.name.replace("-", "_")


def probe(deployment: Deployment, script: str, database: str) -> Any:
    """Run `script` in the rendered project, as its pods would run it; its JSON output."""
    venv = deployment.venv
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        **pod_environment(deployment.framework),
        "DATABASE_URL": database_url(database),
        "WEB_CONCURRENCY": "1",
        "DJANGO_SETTINGS_MODULE": f"{package(deployment)}.settings",
    }
    result = run([str(venv / "bin" / "python"), "-c", script], cwd=deployment.project, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


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


def write_baseline(directory: Path, files: Mapping[str, str]) -> Path:
    """A baseline app's files (name -> source) in this directory."""
    for name, source in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    return directory


def bake_as_the_image_does(
    workdir: Path, name: str, answers: Mapping[str, str], baseline: Mapping[str, str]
) -> tuple[Path, Path, Path]:
    """Bake these answers into workdir/name, install its runtime lock into workdir/name-venv and
    write the baseline app's files (name -> source) into workdir/name-bare, with the bytecode of
    all three compiled as the image compiles its own: (project, venv, baseline directory)."""
    output = workdir / name
    output.mkdir(parents=True)
    baked = bake_in_subprocess(output, **answers)
    if baked.returncode != 0:
        raise RuntimeError(f"baking {dict(answers)} failed:\n{baked.stderr}")
    (project,) = output.iterdir()
    venv = workdir / f"{name}-venv"
    python = str(install_locked(project, venv, "requirements.lock"))
    baseline_dir = write_baseline(workdir / f"{name}-bare", baseline)
    run([python, "-m", "compileall", "-q", str(project), str(baseline_dir), str(venv / "lib")])
    return project, venv, baseline_dir


def deploy(framework: str, workdir: Path) -> Deployment:
    """Bake, install the runtime lock, compile bytecode, collect static files: as the image does."""
    answers = {"framework": framework, "database": "postgresql"}
    baseline = BARE_FASTAPI if framework == "fastapi" else BARE_DJANGO
    project, venv, bare_dir = bake_as_the_image_does(workdir, framework, answers, baseline)
    collect_static(project, venv)
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
    """The rendered service and the bare apps of one framework, started on demand."""

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
        self.bare_apps = bare_apps(deployment, workers, database)

    def _log(self, name: str) -> Path:
        self.started += 1
        return self.logs / f"{self.deployment.framework}-{name}-{self.started}.log"

    def rendered(self, **env: str) -> Service:
        deployment = self.deployment
        env = {**self.env, **env}
        return Service(deployment.project, deployment.venv, env, self._log("rendered"))

    def bare(self, kind: str = "health") -> Service:
        port = free_port()
        app = self.bare_apps[kind]
        return Service(
            self.deployment.bare_dir,
            self.deployment.venv,
            {**IMAGE_ENV, **app.env},
            self._log(f"bare-{kind}"),
            port=port,
            command=[part.format(port=port) for part in app.command],
            ready_path="/health" if kind == "health" else ITEMS,
        )


def seconds_to_ready(service: Service) -> float:
    """From exec to the first 200 on the ready path (Service.start polls it)."""
    started = time.perf_counter()
    try:
        service.start(timeout=60)
        return round(time.perf_counter() - started, 3)
    finally:
        service.stop()


def app_costs(contenders: Contenders, scratch: Path) -> dict[str, Any]:
    """Microseconds per in-process /health request, rendered and bare (see app_cost.py)."""
    deployment = contenders.deployment
    kind, rendered = ("asgi", f"{package(deployment)}.main:create_app")
    if deployment.framework == "django":
        kind, rendered = ("wsgi", f"{package(deployment)}.settings")
    costs = {}
    for name, directory, target in (
        ("rendered", deployment.project, rendered),
        ("bare", deployment.bare_dir, contenders.bare_apps["health"].in_process),
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
                **contenders.env,
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


def alternate(
    services: dict[str, Service],
    path: str,
    shape: LoadShape,
    number: int,
    progress: Callable[[str], None],
    label: str,
) -> dict[str, dict[str, Any]]:
    """One wrk run on `path` per service; who goes first alternates from round to round."""
    names = list(services) if number % 2 == 0 else list(reversed(services))
    found = {}
    for name in names:
        found[name] = wrk(services[name].port, path, shape)
        progress(f"{label} {name} {path}: {found[name]}")
    return found


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
    items: dict[str, list[dict[str, Any]]] = {"rendered": [], "bare": []}
    memory: dict[str, dict[str, list[dict[str, float]]]] = {
        "rendered": {},
        "bare": {},
        "bare_items": {},
    }
    cold: dict[str, list[float]] = {"rendered": [], "bare": []}
    load_average: list[float] = []
    with throwaway_database() as database:
        migrate(deployment, database)
        contenders = Contenders(deployment, database, workers, logs)
        started = contenders.rendered(), contenders.bare("health"), contenders.bare("items")
        with running(*started) as (rendered, bare, bare_items):
            seed(rendered)
            for name, service in (("rendered", rendered), ("bare", bare)):
                memory[name]["idle"] = worker_memory(service)
                wrk(service.port, "/health", shape, shape.warmup_seconds)
            # Idle, once its pool holds connections (a pool opens them on first use).
            wrk(bare_items.port, ITEMS, shape, shape.warmup_seconds)
            memory["bare_items"]["after_load"] = worker_memory(bare_items)
            wrk(rendered.port, ITEMS, shape, shape.warmup_seconds)
            for number in range(shape.rounds):
                load_average.append(os.getloadavg()[0])
                runs = alternate(
                    {"rendered": rendered, "bare": bare},
                    "/health",
                    shape,
                    number,
                    progress,
                    framework,
                )
                for name, result in runs.items():
                    health[name].append(result)
                runs = alternate(
                    {"rendered": rendered, "bare": bare_items},
                    ITEMS,
                    shape,
                    number,
                    progress,
                    framework,
                )
                for name, result in runs.items():
                    items[name].append(result)
            for name, service in (("rendered", rendered), ("bare", bare)):
                memory[name]["after_load"] = worker_memory(service)
        for _ in range(cold_starts):
            # No drain on the way out: it only delays the exit, which is not measured here.
            cold["rendered"].append(
                seconds_to_ready(contenders.rendered(SHUTDOWN_DRAIN_SECONDS="0"))
            )
            cold["bare"].append(seconds_to_ready(contenders.bare()))
        progress(f"{framework} cold starts: {cold}")
        in_process = app_costs(contenders, logs)
        progress(f"{framework} in-process cost per /health request, us: {in_process}")
    bare_apps_used = contenders.bare_apps
    return {
        "workers": workers,
        "rendered": {
            "command": shlex.join(container_command(deployment.project)),
            "environment": sorted(contenders.env),
            "ready_path": "/ready",
        },
        "bare": {
            "description": bare_apps_used["health"].description,
            "command": shlex.join(bare_apps_used["health"].command).replace("{port}", "8000"),
            "ready_path": "/health",
        },
        "bare_items": {
            "description": bare_apps_used["items"].description,
            "command": shlex.join(bare_apps_used["items"].command).replace("{port}", "8000"),
        },
        "load": {
            "tool": shape.describe(),
            "rounds": shape.rounds,
            "items_path": ITEMS,
            "seeded_items": SEEDED_ITEMS,
            "load_average_per_round": load_average,
        },
        "health": health,
        "items": items,
        "cold_start_seconds": cold,
        "memory_mib": memory,
        "app_cost_us": in_process,
    }
