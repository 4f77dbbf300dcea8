"""Facts derived from the answers, computed here once for the templates, the hooks and the tests.

Templates read them with `{%- set facts = project_facts(cookiecutter) %}` (the Jinja extension
registers `project_facts`); the hooks and the tests call `derive` with the answers.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass

from .pins import MODULES_FILE

DATABASE_PORTS = {"postgresql": 5432, "mongodb": 27017}
DATABASE_URL_VARIABLES = {"postgresql": "DATABASE_URL", "mongodb": "MONGODB_URL"}
# Requests one worker runs at once with the app's default settings: Django's WORKER_THREADS;
# FastAPI's database pool (DATABASE_POOL_SIZE, MONGODB_MAX_POOL_SIZE), which the in-memory store
# matches. A pod runs one worker at the Deployment's 1-CPU limit.
REQUESTS_PER_WORKER = {"django": 4, "fastapi": 10}


@dataclass(frozen=True)
class DevDatabase:
    """The throw-away database server the dev overlay runs next to the app."""

    # Its Deployment, Service, NetworkPolicy and `app.kubernetes.io/name` label.
    name: str
    image: str
    port: int
    # The image's own numeric user, which owns the data directory it creates.
    user_id: int
    # The account the server creates on first start, and the app's URL uses.
    username: str
    url_template: str
    # The key of the overlay's secrets.env that holds its password.
    password_key: str = "DATABASE_PASSWORD"  # noqa: S105 - a variable name

    def url(self, password: str) -> str:
        """What the app's URL variable holds to reach it, in the same namespace."""
        return self.url_template.format(password=password)


def dev_database(database: str, package_name: str) -> DevDatabase | None:
    if database not in DATABASE_PORTS:
        return None
    port = DATABASE_PORTS[database]
    if database == "postgresql":
        return DevDatabase(
            name="postgresql",
            image="postgres:17",
            port=port,
            user_id=999,
            username=package_name,
            url_template=f"postgresql://{package_name}:{{password}}@postgresql:{port}/{package_name}",
        )
    return DevDatabase(
        name="mongodb",
        image="mongo:8.0",
        port=port,
        user_id=999,
        username=package_name,
        # The account lives in the admin database, as the image creates it.
        url_template=f"mongodb://{package_name}:{{password}}@mongodb:{port}/?authSource=admin",
    )


@dataclass(frozen=True)
class Facts:
    # Variables the Kubernetes Secret holds.
    secret_names: tuple[str, ...]
    # The port the service reaches its database on; None without a database.
    database_port: int | None
    # What the migration initContainer (and `make migrate`) runs; empty without a database.
    migrate_command: tuple[str, ...]
    # {overlay: the Namespace it declares}, as k8s/overlays/<overlay>/namespace.yaml names it.
    namespaces: Mapping[str, str]
    # Requests in flight per pod that the autoscaler aims at (autoscaling=keda's threshold);
    # None for a framework REQUESTS_PER_WORKER does not know yet.
    requests_per_pod: int | None
    # The database server the dev overlay brings; None without a database.
    dev_database: DevDatabase | None = None

    @property
    def has_secrets(self) -> bool:
        return bool(self.secret_names)

    @property
    def has_database(self) -> bool:
        return self.database_port is not None


def overlay_namespaces(slug: str) -> dict[str, str]:
    return {"prod": slug, "dev": f"{slug}-dev"}


def derive(answers: Mapping[str, object]) -> Facts:
    framework, database = answers["framework"], str(answers["database"])
    secret_names = [DATABASE_URL_VARIABLES[database]] if database in DATABASE_URL_VARIABLES else []
    if framework == "django":
        secret_names.append("SECRET_KEY")
    migrate_command: tuple[str, ...] = ()
    if database in DATABASE_PORTS:
        migrate_command = (
            ("python", "manage.py", "migrate_locked")
            if framework == "django"
            else ("python", "-m", f"{answers['package_name']}.migrate")
        )
    return Facts(
        secret_names=tuple(secret_names),
        database_port=DATABASE_PORTS.get(database),
        migrate_command=migrate_command,
        namespaces=overlay_namespaces(str(answers.get("project_slug", ""))),
        requests_per_pod=REQUESTS_PER_WORKER.get(str(framework)),
        dev_database=dev_database(database, str(answers.get("package_name", ""))),
    )


def conditions(answers: Mapping[str, object]) -> dict[str, str]:
    """What a condition folder (`name=value`, see layout.py) can name: the answers, and facts
    that several answers decide."""
    facts = derive(answers)
    return {
        **{name: str(value) for name, value in answers.items() if not name.startswith("_")},
        "secrets": "yes" if facts.has_secrets else "no",
    }


@functools.cache
def shadowed_modules() -> frozenset[str]:
    """Every top-level module some shipped lock installs, on any platform its markers name.

    A project package of the same name would be imported in place of the dependency (the
    project's root comes first on sys.path), so no bake may choose one, whichever its lock set.
    `tools/regenerate_pins.py` records them from the pinned wheels.
    """
    recorded = json.loads(MODULES_FILE.read_text(encoding="utf-8"))["modules"]
    return frozenset(module for modules in recorded.values() for module in modules)
