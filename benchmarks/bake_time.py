"""How long a default bake takes: render plus every hook, through cookiecutter's CLI.

    python benchmarks/bake_time.py [--runs 7]

Each run is what a user waits for: a fresh interpreter, `cookiecutter --no-input`, into a new
output directory. One untimed warm-up run fills the bytecode caches first. Prints every run, the
median and the spread, and exits 1 when the median misses the target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.5


def bake_seconds(output_dir: Path) -> float:
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE_ROOT)]
    started = time.perf_counter()
    subprocess.run([*command, "-o", str(output_dir)], check=True, capture_output=True)
    return time.perf_counter() - started


def bake_timings(runs: int) -> list[float]:
    """Seconds of each timed bake, after one untimed warm-up."""
    with tempfile.TemporaryDirectory(prefix="bake-time-") as scratch:
        bake_seconds(Path(scratch) / "warm-up")
        return [bake_seconds(Path(scratch) / str(number)) for number in range(runs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed bakes (at least 5)")
    runs = parser.parse_args().runs
    if runs < 5:
        parser.error(f"--runs={runs} is too few: a median and spread need at least 5")

    timings = bake_timings(runs)

    median = statistics.median(timings)
    # Other work on the machine shows up in the numbers: say how busy it was.
    print(f"load:   {os.getloadavg()[0]:.2f} (1-minute average) on {os.cpu_count()} CPUs")
    print("runs:   " + " ".join(f"{seconds:.3f}" for seconds in timings))
    print(f"median: {median:.3f} s  (target < {TARGET_SECONDS} s)")
    print(
        f"spread: min {min(timings):.3f} s, max {max(timings):.3f} s,"
        f" stdev {statistics.stdev(timings):.3f} s"
    )
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
