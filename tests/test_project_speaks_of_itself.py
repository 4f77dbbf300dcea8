"""A generated project speaks only of itself: no template history, no variant the user did not
choose, and no setting that is documented but changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.matrix import foreign_mentions
from testkit.render import context_for
from testkit.template import defaults, supported_combinations

PAIRS = list(dict.fromkeys((c["framework"], c["database"]) for c in supported_combinations()))


@pytest.mark.parametrize(("framework", "database"), PAIRS)
def test_no_file_tells_template_history_or_names_another_variant(
    baked: Callable[..., Path], framework: str, database: str
) -> None:
    answers = {**defaults(), "framework": framework, "database": database}
    project = baked(framework=framework, database=database)

    assert foreign_mentions(project, answers) == []


DOCS = ("/docs", "/redoc", "/openapi.json")
PROBE = """
import json, sys
from fastapi.testclient import TestClient
from {package}.core.settings import get_settings
from {package}.main import create_app

with TestClient(create_app(get_settings())) as client:
    print(json.dumps({{path: client.get(path).status_code for path in {paths!r}}}))
"""


@pytest.mark.generated
@pytest.mark.parametrize("environment", ["development", "production"])
def test_fastapi_environment_decides_whether_the_api_docs_are_served(
    baked: Callable[..., Path], project_venv: Callable[[Path], Path], environment: str
) -> None:
    project = baked(framework="fastapi", database="none")
    python = project_venv(project) / "bin" / "python"
    code = PROBE.format(package=context_for(defaults())["package_name"], paths=DOCS)

    result = subprocess.run(
        [str(python), "-c", code],
        cwd=project,
        env={"ENVIRONMENT": environment, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    statuses = set(__import__("json").loads(result.stdout.splitlines()[-1]).values())
    assert statuses == ({200} if environment == "development" else {404})
