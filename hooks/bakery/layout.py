"""Shape the rendered project to the answers: the template tree's condition folders.

A folder named `name=value` holds what that answer adds; `name` is a question of
cookiecutter.json or a fact from `facts.conditions` (`secrets=yes`), and `value` may list
alternatives (`database=postgresql,mongodb`). When the answer matches, the folder's content is
merged into the folder that contains it; otherwise the folder is removed. Condition folders nest
for combinations (`framework=fastapi/database=postgresql/`). Two sources for one path are an
error: no file is a default that another one replaces.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

CONDITION = re.compile(r"(?P<name>[a-z_]+)=(?P<values>[a-z0-9._-]+(,[a-z0-9._-]+)*)")


class LayoutError(Exception):
    """The template tree is inconsistent; the message names the paths."""


def condition_of(folder: Path) -> tuple[str, list[str]] | None:
    match = CONDITION.fullmatch(folder.name)
    return None if match is None else (match["name"], match["values"].split(","))


def holds(condition: tuple[str, list[str]], conditions: Mapping[str, str]) -> bool:
    name, values = condition
    if name not in conditions:
        raise LayoutError(f"condition folder {name}={','.join(values)}: no answer or fact {name}")
    return conditions[name] in values


def merge(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_dir():
            continue
        destination = target / path.relative_to(source)
        if destination.exists():
            raise LayoutError(f"{destination} comes from two places; one is {path}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        path.rename(destination)
    shutil.rmtree(source)


def apply_layout(directory: Path, conditions: Mapping[str, str]) -> None:
    """Resolve every condition folder below `directory`, innermost first."""
    for child in sorted(path for path in directory.iterdir() if path.is_dir()):
        condition = condition_of(child)
        if condition is not None and not holds(condition, conditions):
            shutil.rmtree(child)
            continue
        apply_layout(child, conditions)
        if condition is not None:
            merge(child, directory)


def landing_path(template_path: str, conditions: Mapping[str, str]) -> str | None:
    """Where a template file lands for these answers (`framework=fastapi/main.py` -> `main.py`),
    or None when one of its condition folders does not hold."""
    parts = []
    for part in template_path.split("/"):
        condition = condition_of(Path(part))
        if condition is None:
            parts.append(part)
        elif not holds(condition, conditions):
            return None
    return "/".join(parts)
