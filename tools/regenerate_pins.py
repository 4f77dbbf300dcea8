"""Regenerate the pinned dependencies the template ships in `pins/`, for every combination.

    python -m tools.regenerate_pins                 # keep each pin that still fits the ranges
    python -m tools.regenerate_pins --upgrade       # move every pin to the newest version allowed
    python -m tools.regenerate_pins --modules-only  # only re-record pins/modules.json
    python -m tools.regenerate_pins --index-only    # only re-record which combinations use
                                                    # which lock set (a new non-dependency answer)

Bakes each combination of cookiecutter.json's choices as a user would (combinations the
answer check refuses, per hooks/bakery/answers.py, are skipped), groups them by the
dependencies their pyproject.toml declares, and resolves one lock pair per group with uv. Then
records in pins/modules.json the top-level modules of every pinned release, read from one of its
locked wheels, for the answer check to refuse as package names. Needs uv and the package
index (--modules-only: only the index, through pip).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import tomllib
from collections import defaultdict
from pathlib import Path

from hooks.bakery import pins
from testkit.locks import SUPPORTED_PYTHONS, read_lock
from testkit.render import render
from testkit.template import (
    all_combinations,
    bake_in_subprocess,
    choice_options,
    defaults,
    refusal,
)


def bake(output: Path, answers: dict[str, str], *, fresh: bool) -> Path:
    os.environ[pins.FRESH_VARIABLE] = "1" if fresh else "0"
    result = bake_in_subprocess(output, **answers)
    if result.returncode == 0:
        (project,) = output.iterdir()
        return project
    if not fresh and f"error: {pins.NO_PINS}" in result.stderr:
        # A dependency set the pins do not cover yet: bake it with freshly resolved locks.
        shutil.rmtree(output, ignore_errors=True)
        return bake(output, answers, fresh=True)
    raise SystemExit(f"error: baking {answers} failed:\n{result.stdout}{result.stderr}")


def regenerate(*, upgrade: bool) -> None:
    options = list(choice_options())
    with tempfile.TemporaryDirectory(prefix="regenerate-pins-") as scratch_name:
        scratch = Path(scratch_name)
        baked: list[tuple[dict[str, str], Path]] = []
        for number, answers in enumerate(all_combinations()):
            if reason := refusal(answers):
                print(f"skipped, refused by the answer check: {reason}")
            else:
                baked.append((answers, bake(scratch / str(number), answers, fresh=False)))

        inputs: dict[str, dict[str, object]] = {}
        keyed: list[tuple[dict[str, str], str]] = []
        for answers, project in baked:
            pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
            declared = pins.dependency_inputs(pyproject)
            inputs_key = json.dumps(declared, sort_keys=True)
            inputs[inputs_key] = declared
            keyed.append((answers, inputs_key))
        naming = pins.naming_options(keyed, options)

        new_pins = scratch / "pins"
        new_pins.mkdir()
        combinations: dict[str, str] = {}
        lock_sets: dict[str, dict[str, object]] = {}
        for (answers, project), (_, inputs_key) in zip(baked, keyed, strict=True):
            name = "-".join(answers[option] for option in naming) or "default"
            combinations[pins.combination_key(answers, options)] = name
            if name in lock_sets:
                continue
            # The bake left the previous pins (or fresh ones, for a new set) in the project:
            # without --upgrade uv keeps every one that still fits.
            pins.resolve(project, upgrade=upgrade)
            (new_pins / name).mkdir()
            for lock in pins.LOCK_FILES:
                shutil.copyfile(project / lock, new_pins / name / lock)
            lock_sets[name] = {
                "options": {option: answers[option] for option in naming},
                "inputs": inputs[inputs_key],
            }

        index = {
            "regenerate": pins.REGENERATE_COMMAND,
            "lock_sets": lock_sets,
            # Every combination the template accepted; the tests check each against its set.
            "options": options,
            "combinations": combinations,
        }
        (new_pins / pins.INDEX_FILE.name).write_text(json.dumps(index, indent=2) + "\n")
        record_modules(new_pins)
        shutil.rmtree(pins.PINS_DIR, ignore_errors=True)
        shutil.copytree(new_pins, pins.PINS_DIR)
    for name in lock_sets:
        count = sum(value == name for value in combinations.values())
        print(f"pins/{name}: {count} combinations")


def reindex() -> None:
    """Record each accepted combination's lock set again, the locks as they are: each one's
    dependency inputs, rendered in memory, must be those of a shipped lock set."""
    index = json.loads(pins.INDEX_FILE.read_text(encoding="utf-8"))
    by_inputs = {
        json.dumps(lock_set["inputs"], sort_keys=True): name
        for name, lock_set in index["lock_sets"].items()
    }
    options = list(choice_options())
    combinations = {}
    for answers in (a for a in all_combinations() if not refusal(a)):
        pyproject = tomllib.loads(render("pyproject.toml", {**defaults(), **answers}))
        declared = json.dumps(pins.dependency_inputs(pyproject), sort_keys=True)
        if declared not in by_inputs:
            raise SystemExit(
                f"error: {pins.combination_key(answers, options)} declares dependencies no lock"
                f" set holds: run `{pins.REGENERATE_COMMAND}`"
            )
        combinations[pins.combination_key(answers, options)] = by_inputs[declared]
    index |= {"options": options, "combinations": combinations}
    pins.INDEX_FILE.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    print(f"pins/{pins.INDEX_FILE.name}: {len(combinations)} combinations")


def locked_releases(pins_dir: Path) -> dict[str, set[str]]:
    """Every release pinned in every lock set the index names: "name==version" -> its hashes."""
    index = json.loads((pins_dir / pins.INDEX_FILE.name).read_text(encoding="utf-8"))
    releases: dict[str, set[str]] = defaultdict(set)
    for name in index["lock_sets"]:
        for lock in pins.LOCK_FILES:
            for pin in read_lock(pins_dir / name / lock):
                releases[f"{pin.name}=={pin.version}"].update(pin.hashes)
    return dict(sorted(releases.items()))


def oldest_pythons(pins_dir: Path) -> dict[str, str]:
    """The oldest supported Python the lock lines of each release admit ("name==version" ->
    "3.12"), for the releases whose markers leave out the oldest (numpy's newest need 3.12)."""
    index = json.loads((pins_dir / pins.INDEX_FILE.name).read_text(encoding="utf-8"))
    admitted: dict[str, set[str]] = defaultdict(set)
    for name in index["lock_sets"]:
        for lock in pins.LOCK_FILES:
            for pin in read_lock(pins_dir / name / lock):
                admitted[f"{pin.name}=={pin.version}"].update(
                    python
                    for python in SUPPORTED_PYTHONS
                    if pin.applies({"python_version": python, "python_full_version": f"{python}.0"})
                )
    return {
        release: min(found, key=lambda python: tuple(map(int, python.split("."))))
        for release, found in admitted.items()
        if found and pins.PYTHON_FLOOR not in found
    }


def record_modules(pins_dir: Path) -> None:
    """Write the modules file for the locks in `pins_dir`, as they are."""
    releases = locked_releases(pins_dir)
    with tempfile.TemporaryDirectory(prefix="pinned-wheels-") as wheels_name:
        wheels = pins.download_wheels(releases, Path(wheels_name), oldest_pythons(pins_dir))
        modules = {release: pins.wheel_modules(wheels[release]) for release in releases}
    recorded = {
        "regenerate": pins.MODULES_COMMAND,
        # What installing each pinned release adds to sys.path, on every platform alike.
        "modules": modules,
    }
    output = pins_dir / pins.MODULES_FILE.name
    output.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
    count = len({module for names in modules.values() for module in names})
    print(f"pins/{output.name}: {count} modules of {len(releases)} pinned releases")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="move every pin to the newest version the ranges allow (default: keep those that fit)",
    )
    parser.add_argument(
        "--index-only",
        action="store_true",
        help="only record which lock set each accepted combination uses, the locks as they are",
    )
    parser.add_argument(
        "--modules-only",
        action="store_true",
        help=f"keep the locks; only re-record {pins.MODULES_FILE.name} from them (no uv needed)",
    )
    arguments = parser.parse_args(argv)
    if (arguments.modules_only or arguments.index_only) and arguments.upgrade:
        parser.error("--modules-only and --index-only keep the locks as they are: no --upgrade")
    try:
        if arguments.index_only:
            reindex()
        elif arguments.modules_only:
            record_modules(pins.PINS_DIR)
        else:
            regenerate(upgrade=arguments.upgrade)
    except pins.PinError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
