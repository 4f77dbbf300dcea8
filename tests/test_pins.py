"""The pins the template ships: one lock pair per dependency set, tested, current, and offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from hooks.bakery import facts, pins
from hooks.bakery.facts import Platform
from testkit.locks import (
    SUPPORTED_PYTHONS,
    Pin,
    install_locked,
    range_problems,
    read_lock,
)
from testkit.render import context_for, render
from testkit.template import TEMPLATE_ROOT, defaults, supported_combinations

INDEX = json.loads(pins.INDEX_FILE.read_text(encoding="utf-8"))
PINNED_COMBINATIONS = [
    dict(part.split("=", 1) for part in key.split()) for key in INDEX["combinations"]
]
LOCK_SETS = sorted(set(INDEX["combinations"].values()))
MODULES_DATA = json.loads(pins.MODULES_FILE.read_text(encoding="utf-8"))
RECORDED_MODULES: dict[str, list[str]] = MODULES_DATA["modules"]
# Run in a venv: its distributions' versions, and importlib.metadata's top-level names of each.
INSTALLED_MODULES = """
import importlib.metadata as metadata, json
versions = {found.metadata["Name"]: found.version for found in metadata.distributions()}
print(json.dumps([versions, metadata.packages_distributions()]))
"""
# Inferred from an installed RECORD's byte-code of a single-module distribution; not importable.
NOT_MODULES = {"__pycache__"}


def lock_set_of(answers: dict[str, str]) -> Path:
    return pins.PINS_DIR / INDEX["combinations"][pins.combination_key(answers, INDEX["options"])]


def declared(project: Path) -> dict[str, object]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    return pins.dependency_inputs(pyproject)


def without_fresh_lock() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != pins.FRESH_VARIABLE}


def bake_with_cli(
    output_dir: Path, environment: dict[str, str], template: Path = TEMPLATE_ROOT, **answers: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(template)]
    command += ["-o", str(output_dir), *(f"{name}={value}" for name, value in answers.items())]
    return subprocess.run(
        command,
        cwd=output_dir.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def only_project_in(output_dir: Path) -> Path:
    (project,) = output_dir.iterdir()
    return project


@pytest.mark.parametrize(
    "answers", PINNED_COMBINATIONS, ids=[key.replace(" ", ",") for key in INDEX["combinations"]]
)
def test_each_combination_gets_its_tested_locks(answers: dict[str, str]) -> None:
    """From the rendering: the hook copies the lock set `shipped_lock_set` names (the matrix's
    real bakes match their renderings byte for byte, locks included)."""
    lock_set = lock_set_of(answers)
    inputs = pins.dependency_inputs(tomllib.loads(render("pyproject.toml", answers)))

    assert pins.shipped_lock_set(context_for(answers)) == lock_set
    assert inputs == INDEX["lock_sets"][lock_set.name]["inputs"], (
        f"pyproject.toml changed since the pins were resolved: run `{pins.REGENERATE_COMMAND}`"
    )


@pytest.mark.parametrize("name", LOCK_SETS)
def test_each_lock_set_is_within_the_ranges_its_combinations_declare(name: str) -> None:
    inputs = INDEX["lock_sets"][name]["inputs"]
    runtime = inputs["dependencies"]
    locks = pins.PINS_DIR / name
    assert range_problems(read_lock(locks / pins.RUNTIME_LOCK), runtime) == []
    assert range_problems(read_lock(locks / pins.DEV_LOCK), [*runtime, *inputs["dev"]]) == []


def test_pins_exist_for_every_combination_the_template_accepts() -> None:
    keys = {pins.combination_key(answers, INDEX["options"]) for answers in supported_combinations()}
    assert sorted(keys - set(INDEX["combinations"])) == [], f"run `{pins.REGENERATE_COMMAND}`"
    assert sorted(set(INDEX["combinations"]) - keys) == [], "pins for combinations not offered"


@pytest.mark.parametrize("name", LOCK_SETS)
def test_runtime_lock_is_the_dev_lock_without_the_dev_only_packages(name: str) -> None:
    runtime = read_lock(pins.PINS_DIR / name / pins.RUNTIME_LOCK)
    development = read_lock(pins.PINS_DIR / name / pins.DEV_LOCK)

    # Same versions and files; a marker may be narrower at runtime (needed only by some platforms
    # there, by every platform once a dev tool needs it too).
    def releases(lock: list) -> set:
        return {(pin.name, pin.version, pin.hashes) for pin in lock}

    assert releases(runtime) <= releases(development)
    assert len(development) > len(runtime)


def test_modules_are_recorded_for_exactly_the_pinned_releases() -> None:
    pinned = {
        f"{pin.name}=={pin.version}"
        for name in INDEX["lock_sets"]
        for lock in pins.LOCK_FILES
        for pin in read_lock(pins.PINS_DIR / name / lock)
    }

    assert sorted(set(RECORDED_MODULES) ^ pinned) == [], f"run `{pins.MODULES_COMMAND}`"


def test_a_wheels_modules_are_its_packages_and_single_modules_plain_or_compiled(
    tmp_path: Path,
) -> None:
    wheel = tmp_path / "example-1.0-cp311-cp311-macosx_11_0_arm64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in [
            "example/__init__.py",
            "example/_speedups.cpython-311-darwin.so",
            "example_namespace/part/__init__.py",  # no __init__.py of its own
            "_cffi_backend.cpython-311-darwin.so",
            "_native.pyd",
            "single.py",
            "example.libs/libssl.so.3",
            "example-1.0.data/purelib/from_purelib.py",
            "example-1.0.data/platlib/from_platlib/__init__.py",
            "example-1.0.data/scripts/example-cli",
            "example-1.0.data/data/share/man/example.1",
            "example-1.0.dist-info/RECORD",
            "example-1.0.dist-info/top_level.txt",
            "example.pth",
            "LICENSE",
        ]:
            archive.writestr(name, "")

    assert pins.wheel_modules(wheel) == [
        "_cffi_backend",
        "_native",
        "example",
        "example_namespace",
        "from_platlib",
        "from_purelib",
        "single",
    ]


def test_default_bake_copies_the_tested_locks_and_says_so(tmp_path: Path) -> None:
    result = bake_with_cli(tmp_path, without_fresh_lock())

    assert result.returncode == 0, result.stderr
    project = only_project_in(tmp_path)
    lock_set = lock_set_of(defaults())
    assert f"versions the template's CI tested ({lock_set.name})" in result.stdout
    for lock in pins.LOCK_FILES:
        assert (project / lock).read_bytes() == (lock_set / lock).read_bytes()


def test_bake_of_a_combination_without_pins_fails_and_leaves_nothing(tmp_path: Path) -> None:
    """A new framework offered before its pins were generated: the bake must not go unpinned."""
    template = tmp_path / "template"
    shutil.copytree(
        TEMPLATE_ROOT,
        template,
        ignore=shutil.ignore_patterns(".git", ".venv", "*_cache", "__pycache__", "output"),
    )
    questions = json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    questions["framework"].append("unpinned")
    (template / "cookiecutter.json").write_text(json.dumps(questions), encoding="utf-8")
    output = tmp_path / "output"

    result = bake_with_cli(output, without_fresh_lock(), template, framework="unpinned")

    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    # The options that name lock sets, with the answers the bake gave them.
    naming = dict.fromkeys(
        option for lock_set in INDEX["lock_sets"].values() for option in lock_set["options"]
    )
    answered = " ".join(
        f"{option}={'unpinned' if option == 'framework' else defaults()[option]}"
        for option in naming
    )
    assert errors == [
        f"error: the template ships no pinned dependencies for {answered}; its maintainers add"
        " them with"
        f" `{pins.REGENERATE_COMMAND}`, or set {pins.FRESH_VARIABLE}=1 to resolve them now with uv"
    ]
    assert list(output.glob("*")) == []


@pytest.mark.parametrize("value", ["", "0", "no", "false"])
def test_tested_pins_are_the_default(value: str) -> None:
    assert pins.fresh_requested({pins.FRESH_VARIABLE: value}) is False


@pytest.mark.parametrize("value", ["1", "yes", "true", "TRUE"])
def test_fresh_resolution_is_asked_for_with_the_environment_variable(value: str) -> None:
    assert pins.fresh_requested({pins.FRESH_VARIABLE: value}) is True


def test_a_garbled_fresh_setting_is_refused_naming_the_variable() -> None:
    with pytest.raises(pins.PinError, match=r"^TEMPLATE_FRESH_LOCK='maybe' is invalid: set it"):
        pins.fresh_requested({pins.FRESH_VARIABLE: "maybe"})


def test_lock_sets_are_told_apart_by_the_options_that_change_dependencies() -> None:
    combinations = [
        ({"framework": framework, "database": "postgresql", "exposure": exposure}, framework)
        for framework in ("fastapi", "django")
        for exposure in ("none", "ingress", "gateway")
    ]

    naming = pins.naming_options(combinations, ["framework", "database", "exposure"])

    assert naming == ["framework", "database"]


def test_lock_sets_that_would_mix_dependency_sets_are_refused() -> None:
    # Refused combinations can hide which option changes the dependencies.
    combinations = [
        ({"framework": "fastapi", "database": "postgresql"}, "fastapi on postgresql"),
        ({"framework": "django", "database": "mysql"}, "django on mysql"),
    ]

    with pytest.raises(pins.PinError, match="would each mix several dependency sets"):
        pins.naming_options(combinations, ["framework", "database"])


@pytest.mark.pins
def test_offline_bake_without_uv_installs_with_hashes_and_passes_its_tests(
    tmp_path: Path, postgres_url: str
) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"], check=False).returncode != 0:
        pytest.skip("`unshare -rn` is not permitted here: no network namespace to bake inside")
    offline = [unshare, "-rn", sys.executable]
    # Even the loopback interface is down in a fresh network namespace.
    probe = "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=2)"
    probed = subprocess.run([*offline, "-c", probe], capture_output=True, text=True, check=False)
    assert "Network is unreachable" in probed.stderr
    path = os.pathsep.join(
        directory
        for directory in os.environ["PATH"].split(os.pathsep)
        if not (Path(directory) / "uv").exists()
    )
    assert shutil.which("uv", path=path) is None

    result = subprocess.run(
        [*offline, "-m", "cookiecutter", "--no-input", str(TEMPLATE_ROOT), "-o", str(tmp_path)],
        env={**without_fresh_lock(), "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    project = only_project_in(tmp_path)
    for lock in pins.LOCK_FILES:
        assert (project / lock).read_bytes() == (lock_set_of(defaults()) / lock).read_bytes()
    python = install_locked(project, tmp_path / "venv")
    suite = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=project,
        env={**os.environ, "TEST_DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert suite.returncode == 0, suite.stdout[-5000:] + suite.stderr[-5000:]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`synced(name)` -> the python of a venv uv synced to lock set `name`, once per module.

    Runtime lock first, then the dev lock, each hash-checked and followed by `uv pip check`.
    """
    pythons: dict[str, Path] = {}

    def install(name: str) -> Path:
        if name not in pythons:
            uv, venv = pins.find_uv(), tmp_path_factory.mktemp(name) / "venv"
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, venv], check=True)
            for lock in pins.LOCK_FILES:
                sync = [uv, "pip", "sync", "--quiet", "--python", venv, "--require-hashes", lock]
                subprocess.run(sync, cwd=pins.PINS_DIR / name, check=True, timeout=600)
                subprocess.run([uv, "pip", "check", "--python", venv], check=True, timeout=120)
            pythons[name] = venv / "bin" / "python"
        return pythons[name]

    return install


@pytest.mark.pins
@pytest.mark.parametrize("name", LOCK_SETS)
def test_each_lock_set_installs_with_hash_checking(
    name: str, synced: Callable[[str], Path]
) -> None:
    """With uv, for speed: plain pip installs each framework's set in test_generated_suite.py."""
    assert synced(name).exists()


@pytest.mark.pins
@pytest.mark.parametrize("name", LOCK_SETS)
def test_installed_lock_set_has_exactly_the_recorded_modules(
    name: str, synced: Callable[[str], Path]
) -> None:
    """The modules data is what the pinned releases install, not a list someone keeps."""
    # Markers as the venv sees them: it runs this interpreter. The dev lock holds every runtime
    # pin too, and uv's venv holds nothing else, not even pip.
    pinned_here = {
        f"{pin.name}=={pin.version}"
        for pin in read_lock(pins.PINS_DIR / name / pins.DEV_LOCK)
        if pin.applies({})
    }
    inspected = subprocess.run(
        [synced(name), "-c", INSTALLED_MODULES],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    versions, top_level = json.loads(inspected.stdout)
    installed: dict[str, set[str]] = {
        f"{canonicalize_name(distribution)}=={Version(version)}": set()
        for distribution, version in versions.items()
    }
    for module, distributions in top_level.items():
        for distribution in distributions:
            if module.isidentifier() and module not in NOT_MODULES:
                release = f"{canonicalize_name(distribution)}=={Version(versions[distribution])}"
                installed[release].add(module)

    assert sorted(installed) == sorted(pinned_here)
    recorded = {release: set(RECORDED_MODULES[release]) for release in pinned_here}
    assert installed == recorded, f"run `{pins.MODULES_COMMAND}`"


def lock_platforms(name: str) -> tuple[Platform, ...]:
    """Where a lock set installs, as the facts of the combinations it serves say."""
    answers = next(
        combination
        for combination, lock_set in zip(
            PINNED_COMBINATIONS, INDEX["combinations"].values(), strict=True
        )
        if lock_set == name
    )
    return facts.derive(context_for(answers)).lock_platforms


def pinned_layers(lock_sets: list[str]) -> list[list[Pin]]:
    """Every distinct pin of these dev locks (which hold the runtime pins too), in as few lists
    as keep one pin per package each: the lock sets share most releases."""
    distinct = dict.fromkeys(
        pin for name in lock_sets for pin in read_lock(pins.PINS_DIR / name / pins.DEV_LOCK)
    )
    layers: list[dict[str, Pin]] = []
    for pin in distinct:
        layer = next((layer for layer in layers if pin.name not in layer), None)
        if layer is None:
            layers.append(layer := {})
        layer[pin.name] = pin
    return [list(layer.values()) for layer in layers]


def pin_line(pin: Pin) -> str:
    marker = f" ; {pin.marker}" if pin.marker else ""
    return f"{pin.name}=={pin.version}{marker} " + " ".join(f"--hash={h}" for h in pin.hashes)


@pytest.mark.pins
@pytest.mark.parametrize("python", SUPPORTED_PYTHONS)
def test_every_pinned_release_has_wheels_for_every_supported_platform(
    python: str, tmp_path: Path
) -> None:
    """No compiler needed anywhere: each file a lock's hashes allow, for each platform."""

    def problem(layer: Path, platform: Platform) -> str | None:
        check = [pins.find_uv(), "pip", "compile", str(layer), "--no-deps", "--quiet"]
        check += ["--only-binary", ":all:", "--python-version", python]
        check += ["--python-platform", platform.target, "--output-file", os.devnull]
        check += ["--no-python-downloads"]  # uv would fetch an interpreter it does not need
        environment = dict(os.environ)
        if platform.macos:
            environment["MACOSX_DEPLOYMENT_TARGET"] = platform.macos
        result = subprocess.run(
            check, capture_output=True, text=True, timeout=600, check=False, env=environment
        )
        where = f"{platform.target}{f' (macOS {platform.macos})' if platform.macos else ''}"
        return f"Python {python} on {where}: {result.stderr.strip()}" if result.returncode else None

    lock_sets_by_platform: dict[Platform, list[str]] = {}
    for name in LOCK_SETS:
        for platform in lock_platforms(name):
            lock_sets_by_platform.setdefault(platform, []).append(name)
    targets = []
    for platform, lock_sets in lock_sets_by_platform.items():
        for layer in pinned_layers(lock_sets):
            targets.append((tmp_path / f"pins-{len(targets)}.txt", platform))
            targets[-1][0].write_text(
                "".join(f"{pin_line(pin)}\n" for pin in layer), encoding="utf-8"
            )
    # Each check mostly waits for the package index, so they run side by side.
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        problems = [found for found in pool.map(lambda target: problem(*target), targets) if found]
    assert problems == []


@pytest.mark.pins
def test_fresh_resolution_on_request_resolves_within_the_ranges_and_says_so(
    tmp_path: Path,
) -> None:
    result = bake_with_cli(tmp_path, {**os.environ, pins.FRESH_VARIABLE: "1"})

    assert result.returncode == 0, result.stderr
    assert "resolved just now by uv to the newest versions" in result.stdout
    project = only_project_in(tmp_path)
    inputs = declared(project)
    runtime = read_lock(project / pins.RUNTIME_LOCK)
    development = read_lock(project / pins.DEV_LOCK)
    assert range_problems(runtime, inputs["dependencies"]) == []
    assert range_problems(development, [*inputs["dependencies"], *inputs["dev"]]) == []
    assert set(runtime) <= set(development)


@pytest.mark.pins
def test_make_lock_in_a_fresh_bake_keeps_the_tested_pins(
    default_project: Path, tmp_path: Path
) -> None:
    """The generated Makefile resolves exactly as the template does: nothing to change."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed, so the generated Makefile cannot run here")
    project = tmp_path / "project"
    shutil.copytree(default_project, project)
    uv_directory = str(Path(pins.find_uv()).parent)

    subprocess.run(
        [make, "lock"],
        cwd=project,
        env={**os.environ, "PATH": uv_directory + os.pathsep + os.environ["PATH"]},
        check=True,
        timeout=600,
    )

    for lock in pins.LOCK_FILES:
        assert (project / lock).read_bytes() == (default_project / lock).read_bytes()
