"""Which rendered files belong to which option: the one table the post-generation hook applies.

Paths are relative to the generated project; `{package_name}` stands for the package directory.
A path listed under an option value is kept only when that value is chosen. Where two values need
different files at the same place, each value's version carries the value before its extension
(`settings.django.py`); the chosen one is renamed into place (`settings.py`), the others removed.
Tests check the table against the template tree both ways, so it cannot go stale.
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
            "{package_name}/errors.py",
            "{package_name}/limits.py",
            "{package_name}/logging_config.py",
            "{package_name}/main.py",
            "{package_name}/middleware.py",
            "{package_name}/migrate.py",
            "{package_name}/migrations",
            "{package_name}/models.py",
            "{package_name}/schemas.py",
            "{package_name}/settings.py",
            "{package_name}/shutdown.py",
            "{package_name}/worker.py",
            "tests/conftest.py",
            "tests/support.py",
            "tests/test_health.py",
            "tests/test_items.py",
            "tests/test_logging.py",
            "tests/test_migrations.py",
        ],
        "django": [
            "manage.py",
            "{package_name}/core",
            "{package_name}/items",
            "{package_name}/logging_config.django.py",
            "{package_name}/settings.django.py",
            "{package_name}/urls.py",
            "{package_name}/wsgi.py",
            "tests/conftest.django.py",
            "tests/settings.py",
            "tests/support.django.py",
            "tests/test_deploy.py",
            "tests/test_health.django.py",
            "tests/test_items.django.py",
            "tests/test_logging.django.py",
            "tests/test_migrations.django.py",
        ],
    },
    "database": {
        "postgresql": [
            "alembic.ini",
            "{package_name}/core/management",
            "{package_name}/migrate.py",
            "{package_name}/migrations",
            "tests/test_migrations.django.py",
            "tests/test_migrations.py",
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


def unwanted_paths(answers: Mapping[str, object]) -> Iterator[str]:
    """Paths that belong to option values other than the chosen ones."""
    for option, files_by_value in OPTION_FILES.items():
        for value, paths in files_by_value.items():
            if answers[option] != value:
                for path in paths:
                    yield path.format(package_name=answers["package_name"])


def variant_moves(answers: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    """(variant, target) for each kept file that has a version per value of its option."""
    unwanted = set(unwanted_paths(answers))
    for option, files_by_value in OPTION_FILES.items():
        value = str(answers[option])
        for path in files_by_value.get(value, []):
            target = variant_target(path, value)
            variant = path.format(package_name=answers["package_name"])
            if target is not None and variant not in unwanted:
                yield variant, target.format(package_name=answers["package_name"])


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
