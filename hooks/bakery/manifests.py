"""Validate the freshly rendered Kubernetes manifests with the project's own validator.

The bake runs exactly the command the project ships (`python k8s/validate.py`), with the Python
that runs cookiecutter, so the template and the projects it generates never disagree about what
a valid manifest is. That Python often lacks kubectl and the other validators: the validator then
checks what it can without them and says in one line what it did not check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VALIDATOR = Path("k8s", "validate.py")


def validate_manifests(project: Path) -> int:
    """The validator's exit status; it prints its findings and what it skipped itself."""
    command = [sys.executable, str(VALIDATOR)]
    # A fresh project holds no __pycache__ of its own tools.
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(command, cwd=project, env=environment, check=False)  # noqa: S603
    return result.returncode
