"""Compare what two versions of the template render, for every supported combination.

    python -m tools.compare_renders --base REV [--renames FILE] [--show-diff]

Bakes each supported combination (hooks included) from the template as committed at REV and from
the working tree, then compares the two projects file by file. A refactoring of the template
source should print `identical` for every combination; any other change is listed with its
paths. `--renames` takes a JSON object `{"option=value": {"old/path": "new/path"}}` (with
`{package}` for the package directory): moves made for the combinations with that answer, so that
moved files are compared with their new place. `.env` holds a secret
generated per bake, so only its variable names are compared.
"""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from testkit.template import TEMPLATE_ROOT, answers_key, supported_combinations

GENERATED_PER_BAKE = {".env"}


def export(rev: str, destination: Path) -> Path:
    """The template as committed at `rev`, as plain files."""
    archive = subprocess.run(
        ["git", "-C", str(TEMPLATE_ROOT), "archive", "--format=tar", rev],
        capture_output=True,
        check=True,
    )
    destination.mkdir(parents=True)
    subprocess.run(
        ["tar", "-x", "-C", str(destination)],
        input=archive.stdout,
        check=True,
    )
    return destination


def bake(template: str, answers: dict[str, str], output: str) -> str:
    command = [sys.executable, "-m", "cookiecutter", "--no-input", template, "-o", output]
    command += [f"{name}={value}" for name, value in answers.items()]
    # `-m` imports from the working directory: the template's own Jinja extension and hooks.
    result = subprocess.run(command, cwd=template, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"baking {answers} from {template} failed:\n{result.stderr}")
    (project,) = Path(output).iterdir()
    return str(project)


def contents(project: Path) -> dict[str, bytes]:
    found = {}
    for path in sorted(project.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        if path.is_dir() and not any(path.iterdir()):
            # Files are what matter, but an empty folder is a leftover a user would see.
            found[path.relative_to(project).as_posix() + "/"] = b""
        elif path.is_file():
            relative = path.relative_to(project).as_posix()
            data = path.read_bytes()
            if relative in GENERATED_PER_BAKE:
                names = [line.split(b"=", 1)[0] for line in data.splitlines() if b"=" in line]
                data = b"\n".join(names)
            found[relative] = data
    return found


def compare(
    before: dict[str, bytes], after: dict[str, bytes], renames: dict[str, str]
) -> dict[str, list[str]]:
    moved = {renames.get(path, path): data for path, data in before.items()}
    changes: dict[str, list[str]] = {"changed": [], "removed": [], "added": []}
    for path in sorted(moved.keys() | after.keys()):
        if path not in after:
            changes["removed"].append(path)
        elif path not in moved:
            changes["added"].append(path)
        elif moved[path] != after[path]:
            changes["changed"].append(path)
    return changes


def unified(before: bytes, after: bytes, path: str) -> str:
    lines = difflib.unified_diff(
        before.decode(errors="replace").splitlines(keepends=True),
        after.decode(errors="replace").splitlines(keepends=True),
        f"before/{path}",
        f"after/{path}",
    )
    return "".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--renames", type=Path, help="JSON object of moved paths")
    parser.add_argument("--show-diff", action="store_true", help="print each changed file's diff")
    args = parser.parse_args()
    renames_template = json.loads(args.renames.read_text()) if args.renames else {}

    combinations = supported_combinations()
    with tempfile.TemporaryDirectory(prefix="compare-renders-") as scratch_name:
        scratch = Path(scratch_name)
        base = export(args.base, scratch / "base")
        jobs = []
        with ProcessPoolExecutor() as pool:
            for number, answers in enumerate(combinations):
                for side, template in (("before", base), ("after", TEMPLATE_ROOT)):
                    output = scratch / side / str(number)
                    jobs.append(pool.submit(bake, str(template), answers, str(output)))
            projects = [Path(job.result()) for job in jobs]

        tally: Counter[str] = Counter()
        for number, answers in enumerate(combinations):
            before_project, after_project = projects[2 * number], projects[2 * number + 1]
            package = after_project.name.replace("-", "_")
            package = answers.get("package_name", package)
            renames = {
                old.format(package=package): new.format(package=package)
                for condition, moves in renames_template.items()
                if answers.get(condition.partition("=")[0]) == condition.partition("=")[2]
                for old, new in moves.items()
            }
            before, after = contents(before_project), contents(after_project)
            changes = compare(before, after, renames)
            key = answers_key(answers)
            if not any(changes.values()):
                tally["identical"] += 1
                print(f"identical  {key}")
                continue
            tally["different"] += 1
            print(f"different  {key}")
            for kind, paths in changes.items():
                for path in paths:
                    print(f"    {kind}: {path}")
                    if kind == "changed" and args.show_diff:
                        old = (
                            next(p for p, n in renames.items() if n == path)
                            if path in renames.values()
                            else path
                        )
                        print(unified(before[old], after[path], path))
        print(
            f"{len(combinations)} combinations: {tally['identical']} identical,"
            f" {tally['different']} different"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
