"""Which rendered files belong to which option: the one table the post-generation hook applies.

Paths are relative to the generated project; `{package_name}` stands for the package directory.
A path listed under an option value is kept only when that value is chosen. A test checks that
every path exists in the template, so the table cannot go stale.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

OPTION_FILES: dict[str, dict[str, list[str]]] = {
    "database": {
        "postgresql": [
            "alembic.ini",
            "{package_name}/migrate.py",
            "{package_name}/migrations",
            "tests/test_migrations.py",
        ],
    },
}


def unwanted_paths(answers: Mapping[str, object]) -> Iterator[str]:
    """Paths that belong to option values other than the chosen ones."""
    for option, files_by_value in OPTION_FILES.items():
        for value, paths in files_by_value.items():
            if answers[option] != value:
                for path in paths:
                    yield path.format(package_name=answers["package_name"])


def remove_unwanted(project: Path, answers: Mapping[str, object]) -> None:
    for relative in unwanted_paths(answers):
        path = project / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
