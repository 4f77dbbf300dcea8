"""Dependency locks for the generated project: the pins the template's CI tested, or fresh ones.

The template ships one pair of pip-compatible lock files with hashes per distinct dependency set
in `pins/`; `pins/combinations.json` records the answers each pair serves (and, for the tests,
every combination it was regenerated for), and `pins/modules.json` the top-level modules each
pinned release installs, which the project's own package must not shadow. Copying a pair needs
neither uv nor a network.
`TEMPLATE_FRESH_LOCK=1` asks for the newest versions the project's ranges allow instead, resolved
with uv. `tools/regenerate_pins.py` rebuilds `pins/` with the helpers at the end of this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

PINS_DIR = Path(__file__).resolve().parents[2] / "pins"
INDEX_FILE = PINS_DIR / "combinations.json"
MODULES_FILE = PINS_DIR / "modules.json"
RUNTIME_LOCK = "requirements.lock"
DEV_LOCK = "requirements-dev.lock"
LOCK_FILES = (RUNTIME_LOCK, DEV_LOCK)
FRESH_VARIABLE = "TEMPLATE_FRESH_LOCK"
REGENERATE_COMMAND = "python -m tools.regenerate_pins"
MODULES_COMMAND = f"{REGENERATE_COMMAND} --modules-only"
NO_PINS = "the template ships no pinned dependencies"

# The generated Makefile's `lock` target passes the same options (a test holds them together).
# --python-version is the project's requires-python floor: a universal lock resolved for it
# covers every newer Python on Linux and macOS. Without annotations and with a fixed header
# command, the files never mention the project's name, so one pair serves every project.
PYTHON_FLOOR = "3.11"
COMPILE_OPTIONS = (
    "--universal",
    "--generate-hashes",
    "--python-version",
    PYTHON_FLOOR,
    "--no-annotate",
    "--custom-compile-command",
    "make lock",
    "--quiet",
)


class PinError(Exception):
    """The project cannot be pinned; the message is one line for the person baking."""


def fresh_requested(environ: Mapping[str, str]) -> bool:
    value = environ.get(FRESH_VARIABLE, "").strip().lower()
    if value in {"", "0", "false", "no"}:
        return False
    if value in {"1", "true", "yes"}:
        return True
    raise PinError(
        f"{FRESH_VARIABLE}={value!r} is invalid: set it to 1 to resolve the newest versions"
        " with uv, or leave it unset for the versions the template's CI tested"
    )


def combination_key(answers: Mapping[str, object], options: Iterable[str]) -> str:
    return " ".join(f"{option}={answers.get(option)}" for option in options)


def shipped_lock_set(answers: Mapping[str, object]) -> Path:
    """The directory holding the tested lock pair whose options match these answers.

    Options that never change the dependencies (exposure, ci and the like) name no lock set, so
    answers to them are not looked at; the locks are universal, for every Python the image may
    use.
    """
    try:
        index = json.loads(INDEX_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PinError(f"{NO_PINS} ({INDEX_FILE} is missing)") from None
    lock_sets = index["lock_sets"]
    matches = [
        name
        for name, lock_set in lock_sets.items()
        if all(answers.get(option) == value for option, value in lock_set["options"].items())
    ]
    if len(matches) != 1:
        naming = dict.fromkeys(
            option for lock_set in lock_sets.values() for option in lock_set["options"]
        )
        raise PinError(
            f"{NO_PINS} for {combination_key(answers, naming)}; its maintainers add them with"
            f" `{REGENERATE_COMMAND}`, or set {FRESH_VARIABLE}=1 to resolve them now with uv"
        )
    return PINS_DIR / matches[0]


def copy_shipped(project: Path, answers: Mapping[str, object]) -> str:
    lock_set = shipped_lock_set(answers)
    for lock in LOCK_FILES:
        shutil.copyfile(lock_set / lock, project / lock)
    return (
        f"pinned: {RUNTIME_LOCK} and {DEV_LOCK} hold the versions the template's CI tested"
        f" ({lock_set.name}); {FRESH_VARIABLE}=1 resolves the newest instead"
    )


def find_uv() -> str:
    try:
        # The uv wheel installed next to this Python (the template's own pinned tool) comes first.
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            raise PinError(
                f"{FRESH_VARIABLE}=1 needs uv on PATH; install uv, or leave {FRESH_VARIABLE}"
                " unset for the versions the template's CI tested"
            ) from None
        return found
    return find_uv_bin()


def resolve(project: Path, *, upgrade: bool) -> None:
    """What `make lock` does in the generated project; `upgrade` moves every pin to the newest.

    Without `upgrade`, uv keeps the pins already in the lock files wherever they still fit.
    """
    command = [find_uv(), "pip", "compile", "pyproject.toml", *COMPILE_OPTIONS]
    if upgrade:
        command.append("--upgrade")
    run_uv([*command, "--group", "dev", "--output-file", DEV_LOCK], project)
    # The runtime lock is held to the dev lock, so both agree on every package they share.
    run_uv([*command, "--constraints", DEV_LOCK, "--output-file", RUNTIME_LOCK], project)


def run_uv(command: list[str], project: Path) -> None:
    # The command is uv with the fixed options above; nothing in it comes from the answers.
    result = subprocess.run(  # noqa: S603
        command, cwd=project, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        reason = " ".join(result.stderr.split()).removeprefix("error: ")
        raise PinError(f"uv could not resolve pyproject.toml: {reason or result.returncode}")


def write_locks(
    project: Path, answers: Mapping[str, object], environ: Mapping[str, str] = os.environ
) -> str:
    """Write both lock files into the project; returns one line saying how they were made."""
    if fresh_requested(environ):
        resolve(project, upgrade=True)
        return (
            f"pinned: {RUNTIME_LOCK} and {DEV_LOCK} were resolved just now by uv to the newest"
            f" versions pyproject.toml allows ({FRESH_VARIABLE}=1); the template's CI did not"
            " test this set"
        )
    return copy_shipped(project, answers)


def dependency_inputs(pyproject: Mapping[str, object]) -> dict[str, object]:
    """The parts of a parsed pyproject.toml that decide what the locks must contain."""
    project = pyproject["project"]
    groups = pyproject.get("dependency-groups", {})
    return {
        "requires-python": project.get("requires-python", ""),
        "dependencies": list(project.get("dependencies", [])),
        "dev": list(groups.get("dev", [])),
    }


def naming_options(
    inputs_by_combination: list[tuple[dict[str, str], str]], options: list[str]
) -> list[str]:
    """The options whose answers decide the dependency set, in `options` order.

    `inputs_by_combination` pairs each combination's answers with a key of its dependency
    inputs. An option with several values that never changes the inputs (exposure, say) is left
    out; a single-valued one stays, to keep lock set names telling.
    """
    naming = [
        option
        for option in options
        if len({answers[option] for answers, _ in inputs_by_combination}) == 1
        or changes_inputs(option, inputs_by_combination)
    ]
    inputs_by_naming: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for answers, inputs in inputs_by_combination:
        inputs_by_naming[tuple(answers[option] for option in naming)].add(inputs)
    # Reachable only when refused combinations hide an option's effect: fail rather than mix sets.
    clashes = sorted("-".join(key) for key, inputs in inputs_by_naming.items() if len(inputs) > 1)
    if clashes:
        raise PinError(f"lock sets {clashes} would each mix several dependency sets")
    return naming


def changes_inputs(option: str, inputs_by_combination: list[tuple[dict[str, str], str]]) -> bool:
    """Whether two combinations that differ only in `option` have different dependency inputs."""
    inputs_by_rest: dict[tuple[tuple[str, str], ...], set[str]] = defaultdict(set)
    for answers, inputs in inputs_by_combination:
        rest = tuple(sorted((name, value) for name, value in answers.items() if name != option))
        inputs_by_rest[rest].add(inputs)
    return any(len(inputs) > 1 for inputs in inputs_by_rest.values())


# Any wheel of a release installs the same top-level modules, so one wheel per pin suffices,
# whichever platforms its marker names. pip widens a macOS tag to the older macOS releases but
# not a manylinux tag to the older glibc ones, so those are listed.
WHEEL_PLATFORMS = (
    *(
        f"manylinux_2_{glibc}_{machine}"
        for glibc in range(28, 4, -1)
        for machine in ("x86_64", "aarch64")
    ),
    *(
        f"manylinux{legacy}_{machine}"
        for legacy in ("2014", "2010", "1")
        for machine in ("x86_64", "aarch64")
    ),
    "macosx_15_0_arm64",
    "macosx_15_0_x86_64",
    "win_amd64",
)
# Top-level files that are modules: source, bytecode, and extensions on Linux, macOS, Windows.
MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


def download_wheels(
    releases: Mapping[str, Iterable[str]],
    directory: Path,
    pythons: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """One wheel of each release ("name==version" -> its sha256 hashes from the locks).

    pip checks every download against the lock's hashes, so the wheels are the locked files.
    Lock sets may pin different versions of one package; pip takes one version of a name per
    call, so each call gets at most one. `pythons` names the Python a release's wheel is for
    when its lock line's marker leaves out PYTHON_FLOOR (a release for 3.12 and newer, say).
    """
    pythons = pythons or {}
    batches: list[tuple[str, dict[str, Iterable[str]]]] = []
    for release, hashes in releases.items():
        name = release.partition("==")[0].lower()
        python = pythons.get(release, PYTHON_FLOOR)
        batch = next(
            (
                b
                for version, b in batches
                if version == python and name not in {r.partition("==")[0].lower() for r in b}
            ),
            None,
        )
        if batch is None:
            batch = {}
            batches.append((python, batch))
        batch[release] = hashes
    for number, (python, batch) in enumerate(batches):
        requirements = directory / f"requirements-{number}.txt"
        requirements.write_text(
            "".join(
                " ".join([release, *(f"--hash={value}" for value in sorted(hashes))]) + "\n"
                for release, hashes in batch.items()
            ),
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary", ":all:", "--implementation", "cp"]
        command += ["--python-version", python]
        command += [option for platform in WHEEL_PLATFORMS for option in ("--platform", platform)]
        command += ["--dest", str(directory), "--requirement", str(requirements)]
        # The command is pip with the fixed options above and the locks' own pins.
        result = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=1800, check=False
        )
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
            reason = " ".join(errors).replace("ERROR: ", "") or result.returncode
            raise PinError(f"pip could not download the pinned wheels: {reason}")
    by_hash = {value: release for release, hashes in releases.items() for value in hashes}
    wheels = {}
    for wheel in directory.glob("*.whl"):
        digest = "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
        wheels[by_hash[digest]] = wheel
    missing = sorted(set(releases) - set(wheels))
    if missing:
        raise PinError(f"pip downloaded no wheel for {', '.join(missing)}")
    return wheels


def wheel_modules(wheel: Path) -> list[str]:
    """The top-level modules installing the wheel adds: packages (namespace ones too) and
    single modules, plain or compiled; not its metadata, scripts, data or vendored libraries."""
    modules = set()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            top, *rest = PurePosixPath(name).parts
            if top.endswith(".data"):
                # Of a wheel's .data directories, only these two are installed beside its modules.
                if len(rest) < 2 or rest[0] not in {"purelib", "platlib"}:
                    continue
                top, *rest = rest[1:]
            if not rest:
                if not top.endswith(MODULE_SUFFIXES):
                    continue
                # "_cffi_backend.cpython-311-x86_64-linux-gnu.so" is the module _cffi_backend.
                top = top.split(".", 1)[0]
            if top.isidentifier():
                modules.add(top)
    return sorted(modules)
