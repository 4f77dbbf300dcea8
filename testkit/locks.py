"""Read pip-compatible lock files, check them against pyproject.toml ranges, install them."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from hooks.bakery.answers import PYTHON_MINORS
from hooks.bakery.facts import LOCK_PLATFORMS
from hooks.bakery.pins import find_uv

# Where generated projects run: the CPython releases the answer check accepts, on the platforms
# any combination's locks install on, with the values the environment markers see there.
SUPPORTED_PYTHONS = tuple(f"3.{minor}" for minor in PYTHON_MINORS)
TARGET_ENVIRONMENTS: dict[str, dict[str, str]] = {
    f"CPython {python} on {platform.target}": {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": python,
        "python_full_version": f"{python}.0",
        "os_name": "posix",
        "sys_platform": platform.system.lower(),
        "platform_system": platform.system,
        "platform_machine": platform.machine,
    }
    for python in SUPPORTED_PYTHONS
    for platform in LOCK_PLATFORMS
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies(self, environment: Mapping[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(dict(environment))


def read_lock(path: Path) -> list[Pin]:
    """The pins of a lock file; raises ValueError for a line that is not an exact, hashed pin."""
    pins = []
    for line in path.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement_text, *hashes = re.split(r"\s+--hash=", line.strip())
        requirement = Requirement(requirement_text)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            raise ValueError(f"{path.name}: not an exact pin: {requirement_text}")
        if not hashes or not all(value.startswith("sha256:") for value in hashes):
            raise ValueError(f"{path.name}: {requirement.name} lacks sha256 hashes")
        pins.append(
            Pin(
                name=canonicalize_name(requirement.name),
                version=Version(specifiers[0].version),
                marker=requirement.marker,
                hashes=tuple(hashes),
            )
        )
    return pins


def range_problems(pins: list[Pin], requirements: Iterable[str]) -> list[str]:
    """What breaks the declared ranges, in any target environment; empty when the lock fits."""
    problems: dict[str, None] = {}
    for environment_name, environment in TARGET_ENVIRONMENTS.items():
        active: dict[str, Pin] = {}
        for pin in pins:
            if pin.applies(environment):
                if pin.name in active:
                    problems[f"{pin.name} is pinned twice for {environment_name}"] = None
                active[pin.name] = pin
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            pin = active.get(canonicalize_name(requirement.name))
            if pin is None:
                problems[f"{text}: not pinned for {environment_name}"] = None
            elif not requirement.specifier.contains(pin.version, prereleases=True):
                problems[f"{text}: pinned to {pin.version}, outside the range"] = None
    return list(problems)


def install_locked(project: Path, venv: Path, lock: str = "requirements-dev.lock") -> Path:
    """A fresh virtual environment holding exactly the lock's packages, hashes checked.

    uv rather than pip, which `make install` uses: the same hash-checked files, linked from uv's
    cache in seconds instead of unpacked and compiled for a minute, for each of the dozens of
    lock sets a run installs.
    """
    uv = find_uv()
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    # Bytecode now, as pip writes it: servers the tests start must not compile it at their start.
    install = [uv, "pip", "install", "--quiet", "--python", str(python), "--require-hashes"]
    install += ["--compile-bytecode"]
    subprocess.run([*install, "--no-deps", "-r", lock], cwd=project, check=True, timeout=600)
    # --no-deps installs only what the lock names: a lock missing part of the closure shows here.
    subprocess.run(
        [uv, "pip", "check", "--quiet", "--python", str(python)], check=True, timeout=120
    )
    return python
