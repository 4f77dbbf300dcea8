"""How long rendering and validating every combination takes: what tests/test_matrix.py does.

    python -m benchmarks.matrix_time [--jobs 2]

Bakes every supported combination of cookiecutter.json's choices as a user would (in-process,
hooks included, so each bake also runs the project's manifest validator), then runs the checks
of testkit/matrix.py over all of them: leftovers, blank-line runs, ruff check and ruff format
--check (one run each), yamllint. The unsupported combinations go through the CLI and must be
refused. --jobs bakes in parallel processes (default: one per CPU; the test suite's xdist runs
the supported ones in one worker, as --jobs 1 does). Prints each stage's time and exits 1 when
the whole misses the target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cookiecutter.main import cookiecutter

from testkit.matrix import check_combinations
from testkit.template import (
    TEMPLATE_ROOT,
    answers_key,
    bake_in_subprocess,
    refusal,
    supported_combinations,
    unsupported_combinations,
)

TARGET_SECONDS = 120


def quiet() -> None:
    """The hooks print a few lines per bake; a benchmark of 60 bakes reads better without them."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def bake(answers: dict[str, str], output_dir: str) -> str:
    return cookiecutter(
        str(TEMPLATE_ROOT), no_input=True, extra_context=answers, output_dir=output_dir
    )


def refused_cleanly(answers: dict[str, str], output_dir: Path) -> bool:
    result = bake_in_subprocess(output_dir, **answers)
    errors = [line for line in result.stderr.splitlines() if "error: " in line]
    return (
        result.returncode != 0
        and errors == [f"error: {refusal(answers)}"]
        and not any(output_dir.iterdir())
    )


@dataclass
class MatrixTiming:
    combinations: int
    supported: int
    refused: int
    jobs: int
    bake_seconds: float
    checks_seconds: float
    refusals_seconds: float
    # Per combination, what the checks found; empty when the whole matrix is clean.
    problems: dict[str, list[str]] = field(default_factory=dict)
    all_refused_cleanly: bool = True

    @property
    def total_seconds(self) -> float:
        return self.bake_seconds + self.checks_seconds + self.refusals_seconds


def measure(jobs: int) -> MatrixTiming:
    supported, unsupported = supported_combinations(), unsupported_combinations()
    with tempfile.TemporaryDirectory(prefix="matrix-time-") as scratch:
        started = time.perf_counter()
        outputs = [str(Path(scratch, str(number))) for number in range(len(supported))]
        with ProcessPoolExecutor(max_workers=jobs, initializer=quiet) as pool:
            baked = dict(
                zip(
                    map(answers_key, supported),
                    pool.map(bake, supported, outputs),
                    strict=True,
                )
            )
        baked_at = time.perf_counter()
        problems = check_combinations(supported, lambda answers: Path(baked[answers_key(answers)]))
        checked_at = time.perf_counter()
        refused_dirs = [Path(scratch, f"refused-{number}") for number in range(len(unsupported))]
        for directory in refused_dirs:
            directory.mkdir()
        with ThreadPoolExecutor(max_workers=jobs) as threads:
            refused = list(threads.map(refused_cleanly, unsupported, refused_dirs))
        finished = time.perf_counter()
    return MatrixTiming(
        combinations=len(supported) + len(unsupported),
        supported=len(supported),
        refused=len(unsupported),
        jobs=jobs,
        bake_seconds=baked_at - started,
        checks_seconds=checked_at - baked_at,
        refusals_seconds=finished - checked_at,
        problems={key: found for key, found in problems.items() if found},
        all_refused_cleanly=all(refused),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel bakes")
    timing = measure(parser.parse_args().jobs)

    total = timing.total_seconds
    print(f"load:        {os.getloadavg()[0]:.2f} (1-minute average) on {os.cpu_count()} CPUs")
    print(
        f"matrix:      {timing.combinations} combinations:"
        f" {timing.supported} supported, {timing.refused} refused by the answer check"
    )
    bake, jobs = timing.bake_seconds, timing.jobs
    print(f"bake:        {bake:6.1f} s  ({jobs} parallel, manifests validated)")
    print(f"checks:      {timing.checks_seconds:6.1f} s  (leftovers, ruff check/format, yamllint)")
    print(f"refusals:    {timing.refusals_seconds:6.1f} s  (through the CLI)")
    print(f"total:       {total:6.1f} s  (target < {TARGET_SECONDS} s)")
    for key, found in timing.problems.items():
        print(f"problem: {key}: {found[:3]}", file=sys.stderr)
    if not timing.all_refused_cleanly:
        print("problem: an unsupported combination was not refused cleanly", file=sys.stderr)
    clean = not timing.problems and timing.all_refused_cleanly
    return 0 if total < TARGET_SECONDS and clean else 1


if __name__ == "__main__":
    sys.exit(main())
