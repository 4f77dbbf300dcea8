"""How long rendering and checking every combination takes: what tests/test_matrix.py does.

    python -m benchmarks.matrix_time

Renders every supported combination of cookiecutter.json's choices in memory, runs the checks of
testkit/matrix.py once per distinct file (leftovers, blank-line runs, foreign mentions, yamllint)
and once per distinct Python file set (ruff check, ruff format --check), then bakes each
distinct Python file set's first combination for real (hooks included, so the project's manifest
validator runs) and compares it with its rendering. (tests/test_manifests.py validates every
distinct manifest set strictly; that is not timed here.) The unsupported combinations must be
refused: through cookiecutter's API each, and through the CLI once per distinct reason. Prints
each stage's time and exits 1 when the whole misses the target or anything is unclean.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from testkit.matrix import (
    VALIDATED,
    bake_differences,
    bake_in_process,
    file_problems,
    render_matrix,
)
from testkit.template import (
    answers_key,
    bake_in_subprocess,
    refusal,
    supported_combinations,
    unsupported_combinations,
)

TARGET_SECONDS = 180


@contextlib.contextmanager
def hook_output_to(log: Path):
    """The hooks print a few lines per bake, from subprocesses: kept in a file to be read."""
    saved = os.dup(1)
    with log.open("wb") as file:
        os.dup2(file.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def refused_cleanly(answers: dict[str, str], scratch: Path, *, command_line: bool) -> bool:
    if command_line:
        scratch.mkdir(parents=True)
        result = bake_in_subprocess(scratch, **answers)
        errors = [line for line in result.stderr.splitlines() if "error: " in line]
        return (
            result.returncode != 0
            and errors == [f"error: {refusal(answers)}"]
            and not any(scratch.iterdir())
        )
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            bake_in_process(answers, scratch)
    except Exception as error:  # noqa: BLE001 - the refusal is whatever cookiecutter raises
        return str(error) == refusal(answers) and not any((scratch / "out").iterdir())
    return False


@dataclass
class MatrixTiming:
    combinations: int
    supported: int
    refused: int
    distinct_files: int
    python_sets: int
    manifest_sets: int
    render_seconds: float
    checks_seconds: float
    # The real bakes, one per distinct Python file set.
    bake_seconds: float
    refusals_seconds: float
    # Per combination, what the checks found; empty when the whole matrix is clean.
    problems: dict[str, list[str]] = field(default_factory=dict)
    all_refused_cleanly: bool = True

    @property
    def total_seconds(self) -> float:
        return self.render_seconds + self.checks_seconds + self.bake_seconds + self.refusals_seconds


def measure() -> MatrixTiming:
    supported, unsupported = supported_combinations(), unsupported_combinations()
    started = time.perf_counter()
    matrix = render_matrix(supported)
    rendered_at = time.perf_counter()
    problems = file_problems(matrix)
    checked_at = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="matrix-time-") as scratch:
        for number, keys in enumerate(matrix.python_sets):
            log = Path(scratch, f"hook-{number}.log")
            with hook_output_to(log):
                project = bake_in_process(matrix.answers(keys[0]), Path(scratch, str(number)))
            if not VALIDATED.search(log.read_text()):
                problems[keys[0]].append(f"validator did not pass: {log.read_text()[-500:]}")
            problems[keys[0]] += bake_differences(project, matrix.rendered[keys[0]])
        baked_at = time.perf_counter()
        reasons = {refusal(answers): answers_key(answers) for answers in unsupported}
        refused = [
            refused_cleanly(
                answers,
                Path(scratch, f"refused-{number}"),
                command_line=answers_key(answers) in reasons.values(),
            )
            for number, answers in enumerate(unsupported)
        ]
        finished = time.perf_counter()
    return MatrixTiming(
        combinations=len(supported) + len(unsupported),
        supported=len(supported),
        refused=len(unsupported),
        distinct_files=matrix.distinct_files,
        python_sets=len(matrix.python_sets),
        manifest_sets=len(matrix.manifest_sets),
        render_seconds=rendered_at - started,
        checks_seconds=checked_at - rendered_at,
        bake_seconds=baked_at - checked_at,
        refusals_seconds=finished - baked_at,
        problems={key: found for key, found in problems.items() if found},
        all_refused_cleanly=all(refused),
    )


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    timing = measure()

    total = timing.total_seconds
    print(f"load:        {os.getloadavg()[0]:.2f} (1-minute average) on {os.cpu_count()} CPUs")
    print(
        f"matrix:      {timing.supported} supported combinations ({timing.distinct_files}"
        f" distinct files, {timing.python_sets} distinct Python file sets,"
        f" {timing.manifest_sets} distinct manifest sets), {timing.refused} unsupported"
    )
    print(f"render:      {timing.render_seconds:6.1f} s  (in memory, hooks' layout and locks)")
    print(f"checks:      {timing.checks_seconds:6.1f} s  (per distinct file; ruff per file set)")
    print(f"bakes:       {timing.bake_seconds:6.1f} s  (per Python file set, with the validator)")
    print(f"refusals:    {timing.refusals_seconds:6.1f} s  (API each, CLI per distinct reason)")
    print(f"total:       {total:6.1f} s  (target < {TARGET_SECONDS} s)")
    for key, found in timing.problems.items():
        print(f"problem: {key}: {found[:3]}", file=sys.stderr)
    if not timing.all_refused_cleanly:
        print("problem: an unsupported combination was not refused cleanly", file=sys.stderr)
    clean = not timing.problems and timing.all_refused_cleanly
    return 0 if total < TARGET_SECONDS and clean else 1


if __name__ == "__main__":
    sys.exit(main())
