"""Which rendered files belong to which option: the one table the post-generation hook applies.

Paths are relative to the generated project; `{package_name}` stands for the package directory.
A path listed under an option value is kept only when that value is chosen (under several values
of one option: when one of them is; under several options: when each of them is). Where two values
need different files at the same place, each value's version carries the value before its
extension (`settings.django.py`); the chosen one is renamed into place (`settings.py`), the others
removed. A version for two options' values carries both (`test_items.django.none.py`) and is
listed under both. Tests check the table against the template tree both ways, so it cannot go
stale.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

OPTION_FILES: dict[str, dict[str, list[str]]] = {
    "framework": {
        "fastapi": [
            "alembic.ini",
            "{package_name}/api",
            "{package_name}/db.py",
            "{package_name}/db.mongodb.py",
            "{package_name}/documents.py",
            "{package_name}/errors.py",
            "{package_name}/errors.mongodb.py",
            "{package_name}/limits.py",
            "{package_name}/logging_config.py",
            "{package_name}/main.py",
            "{package_name}/main.mongodb.py",
            "{package_name}/main.none.py",
            "{package_name}/middleware.py",
            "{package_name}/migrate.py",
            "{package_name}/migrate.mongodb.py",
            "{package_name}/migrations",
            "{package_name}/models.py",
            "{package_name}/schemas.py",
            "{package_name}/schemas.mongodb.py",
            "{package_name}/settings.py",
            "{package_name}/settings.mongodb.py",
            "{package_name}/settings.none.py",
            "{package_name}/shutdown.py",
            "{package_name}/store.py",
            "{package_name}/worker.py",
            "tests/conftest.py",
            "tests/conftest.mongodb.py",
            "tests/conftest.none.py",
            "tests/support.py",
            "tests/support.mongodb.py",
            "tests/support.none.py",
            "tests/test_documents.py",
            "tests/test_health.py",
            "tests/test_health.mongodb.py",
            "tests/test_health.none.py",
            "tests/test_items.py",
            "tests/test_items.mongodb.py",
            "tests/test_items.none.py",
            "tests/test_limits.py",
            "tests/test_logging.py",
            "tests/test_migrations.py",
            "tests/test_migrations.mongodb.py",
        ],
        "django": [
            "manage.py",
            "{package_name}/core",
            "{package_name}/items",
            "{package_name}/logging_config.django.py",
            "{package_name}/settings.django.py",
            "{package_name}/settings.django.none.py",
            "{package_name}/urls.py",
            "{package_name}/urls.none.py",
            "{package_name}/wsgi.py",
            "k8s/overlays/dev/secrets.env.none.example",
            "k8s/overlays/prod/secrets.env.none.example",
            "tests/conftest.django.py",
            "tests/settings.py",
            "tests/settings.none.py",
            "tests/support.django.py",
            "tests/support.django.none.py",
            "tests/test_deploy.py",
            "tests/test_deploy.none.py",
            "tests/test_health.django.py",
            "tests/test_health.django.none.py",
            "tests/test_items.django.py",
            "tests/test_items.django.none.py",
            "tests/test_logging.django.py",
            "tests/test_logging.django.none.py",
            "tests/test_migrations.django.py",
        ],
    },
    "database": {
        "postgresql": [
            "alembic.ini",
            "k8s/overlays/dev/secrets.env.example",
            "k8s/overlays/prod/secrets.env.example",
            # FastAPI
            "{package_name}/api/health.py",
            "{package_name}/api/items.py",
            "{package_name}/db.py",
            "{package_name}/errors.py",
            "{package_name}/main.py",
            "{package_name}/migrate.py",
            "{package_name}/migrations",
            "{package_name}/models.py",
            "{package_name}/schemas.py",
            "{package_name}/settings.py",
            "tests/conftest.py",
            "tests/support.py",
            "tests/test_health.py",
            "tests/test_items.py",
            "tests/test_migrations.py",
            # Django
            "{package_name}/core/database.py",
            "{package_name}/core/management",
            "{package_name}/core/views.py",
            "{package_name}/items/admin.py",
            "{package_name}/items/forms.py",
            "{package_name}/items/migrations",
            "{package_name}/items/models.py",
            "{package_name}/items/views.py",
            "{package_name}/settings.django.py",
            "{package_name}/urls.py",
            "tests/conftest.django.py",
            "tests/settings.py",
            "tests/support.django.py",
            "tests/test_deploy.py",
            "tests/test_health.django.py",
            "tests/test_items.django.py",
            "tests/test_logging.django.py",
            "tests/test_migrations.django.py",
        ],
        # FastAPI only (hooks/bakery/answers.py refuses it for Django).
        "mongodb": [
            "k8s/overlays/dev/secrets.env.example",
            "k8s/overlays/prod/secrets.env.example",
            "{package_name}/api/health.mongodb.py",
            "{package_name}/api/items.mongodb.py",
            "{package_name}/db.mongodb.py",
            "{package_name}/documents.py",
            "{package_name}/errors.mongodb.py",
            "{package_name}/main.mongodb.py",
            "{package_name}/migrate.mongodb.py",
            "{package_name}/schemas.mongodb.py",
            "{package_name}/settings.mongodb.py",
            "tests/conftest.mongodb.py",
            "tests/support.mongodb.py",
            "tests/test_documents.py",
            "tests/test_health.mongodb.py",
            "tests/test_items.mongodb.py",
            "tests/test_migrations.mongodb.py",
        ],
        "none": [
            # Django's SECRET_KEY is the only secret left.
            "k8s/overlays/dev/secrets.env.none.example",
            "k8s/overlays/prod/secrets.env.none.example",
            # FastAPI
            "{package_name}/api/health.none.py",
            "{package_name}/api/items.none.py",
            "{package_name}/main.none.py",
            "{package_name}/schemas.py",
            "{package_name}/settings.none.py",
            "{package_name}/store.py",
            "tests/conftest.none.py",
            "tests/support.none.py",
            "tests/test_health.none.py",
            "tests/test_items.none.py",
            # Django
            "{package_name}/core/views.none.py",
            "{package_name}/items/forms.none.py",
            "{package_name}/items/store.py",
            "{package_name}/items/views.none.py",
            "{package_name}/settings.django.none.py",
            "{package_name}/urls.none.py",
            "tests/settings.none.py",
            "tests/support.django.none.py",
            "tests/test_deploy.none.py",
            "tests/test_health.django.none.py",
            "tests/test_items.django.none.py",
            "tests/test_logging.django.none.py",
        ],
    },
    "ingress": {
        "yes": ["k8s/base/ingress.yaml"],
    },
    "ci": {
        "github": [".github"],
        "gitlab": [".gitlab-ci.yml"],
    },
}


def variant_target(path: str, value: str) -> str | None:
    """Where a value's version of a file goes: `a/settings.django.py` -> `a/settings.py`."""
    folder, slash, name = path.rpartition("/")
    marker = f".{value}."
    if marker not in name:
        return None
    return folder + slash + name.replace(marker, ".", 1)


def listed_paths(answers: Mapping[str, object]) -> Iterator[tuple[str, bool]]:
    """(path, whether the chosen value of its option lists it) for every entry of the table."""
    for option, files_by_value in OPTION_FILES.items():
        chosen = set(files_by_value.get(str(answers[option]), []))
        for paths in files_by_value.values():
            for path in paths:
                yield path, path in chosen


def unwanted_paths(answers: Mapping[str, object]) -> Iterator[str]:
    """Paths that belong to option values other than the chosen ones.

    A path listed under several values of one option stays when any of them is chosen; a path
    listed under several options stays only when each of them lists it under its chosen value.
    """
    for path, chosen in listed_paths(answers):
        if not chosen:
            yield path.format(package_name=answers["package_name"])


def final_path(path: str, answers: Mapping[str, object]) -> str:
    """Where a kept path goes: without the markers of the chosen values that list it.

    `tests/test_items.django.none.py` -> `tests/test_items.py` for framework=django, database=none.
    """
    target = path
    for option, files_by_value in OPTION_FILES.items():
        value = str(answers[option])
        if path in files_by_value.get(value, []):
            target = variant_target(target, value) or target
    return target


def variant_moves(answers: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    """(variant, target) for each kept file that has a version per value of its options."""
    unwanted = set(unwanted_paths(answers))
    package = answers["package_name"]
    for path in dict.fromkeys(path for path, chosen in listed_paths(answers) if chosen):
        variant = path.format(package_name=package)
        target = final_path(path, answers).format(package_name=package)
        inside_unwanted = any(
            variant == gone or variant.startswith(gone + "/") for gone in unwanted
        )
        if target != variant and not inside_unwanted:
            yield variant, target


def apply_layout(project: Path, answers: Mapping[str, object]) -> None:
    moves = list(variant_moves(answers))
    for relative in unwanted_paths(answers):
        path = project / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            # A path listed under several options may already be gone.
            path.unlink(missing_ok=True)
    for variant, target in moves:
        # Path.rename would silently replace a file the table forgot to remove.
        if (project / target).exists():
            raise FileExistsError(f"{target} exists; OPTION_FILES must remove it first")
        (project / variant).rename(project / target)
