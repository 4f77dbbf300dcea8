"""The generated project's own tooling: what `make install` and `make lock` need before they start,
and the bots that keep its pinned dependencies current."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from testkit.template import make, supported_combinations

pytestmark = pytest.mark.generated

LOCKS = ("requirements.lock", "requirements-dev.lock")


def python_310() -> str:
    """A real Python 3.10: one pyenv installed, or python3.10 on PATH (not a pyenv shim)."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    candidates.append(shutil.which("python3.10") or "")
    for candidate in filter(None, candidates):
        version = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if version.stdout.strip() == "(3, 10)":
            return candidate
    pytest.skip("needs a Python 3.10 interpreter (python3.10 on PATH or under ~/.pyenv)")


def test_install_on_a_too_old_python_says_which_python_to_install_and_leaves_no_venv(
    project: Path,
) -> None:
    result = make(project, "install", f"PYTHON={python_310()}")

    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stderr, result.stderr
    assert "3.10" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (project / ".venv").exists()


def test_install_that_fails_midway_removes_the_half_built_venv(project: Path) -> None:
    # A lock whose hash no longer matches: pip refuses after the venv exists.
    lock = project / "requirements-dev.lock"
    lock.write_text(re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, lock.read_text()))

    result = make(project, "install", env={"PIP_NO_INDEX": "1"})

    assert result.returncode != 0
    assert not (project / ".venv").exists()
    assert "removed the incomplete .venv" in result.stderr


def test_lock_without_uv_says_how_to_install_it(project: Path) -> None:
    # PATH with make, sh and python, but not uv (the template's venv has it; the system has not).
    assert shutil.which("uv", path="/usr/bin:/bin") is None
    result = make(project, "lock", env={"PATH": "/usr/bin:/bin"})

    assert result.returncode != 0
    assert "uv: not found" not in result.stderr
    assert "make lock needs uv" in result.stderr
    assert "https://docs.astral.sh/uv/" in result.stderr
    assert [path for path in LOCKS if (project / path).read_bytes() == b""] == []


# --- Dependency bots -----------------------------------------------------------------------------


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def renovate_lock_patterns(project: Path) -> list[re.Pattern[str]]:
    config = json.loads((project / "renovate.json").read_text(encoding="utf-8"))
    patterns = config["pip_requirements"]["managerFilePatterns"]
    return [re.compile(pattern.strip("/")) for pattern in patterns]


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_a_bot_proposes_updates_of_both_python_locks(baked: Callable[..., Path], ci: str) -> None:
    project = baked(ci=ci)
    assert (project / "renovate.json").is_file(), "nothing updates the Python locks"
    result = check_jsonschema("vendor.renovate", project / "renovate.json")
    assert result.returncode == 0, result.stdout + result.stderr

    patterns = renovate_lock_patterns(project)
    assert [lock for lock in LOCKS if not any(p.search(lock) for p in patterns)] == []
    config = json.loads((project / "renovate.json").read_text(encoding="utf-8"))
    # Both locks move in one change: requirements.lock is constrained by requirements-dev.lock.
    (rule,) = [r for r in config["packageRules"] if "pip_requirements" in r["matchManagers"]]
    assert rule["groupName"]


def test_dependabot_keeps_the_pinned_actions_current_and_renovate_the_locks(
    default_project: Path,
) -> None:
    dependabot = yaml.safe_load((default_project / ".github/dependabot.yml").read_text())
    ecosystems = [update["package-ecosystem"] for update in dependabot["updates"]]
    assert ecosystems == ["github-actions"]
    config = json.loads((default_project / "renovate.json").read_text(encoding="utf-8"))
    # One bot per file: Renovate leaves the workflow's actions to Dependabot.
    assert config["enabledManagers"] == ["pip_requirements"]


def test_no_project_without_ci_gets_a_bot(baked: Callable[..., Path]) -> None:
    assert any(c["ci"] == "none" for c in supported_combinations())
    assert not (baked(ci="none") / "renovate.json").exists()
