"""Measure what the template produces, on this machine, and write docs/benchmarks.{md,json}.

    bash tests/run.sh -k benchmarks && .venv/bin/python -m benchmarks.run

(tests/run.sh installs the template's test tools into .venv; this installs wrk with apt-get
when it is missing.) In order: bake and install the default FastAPI and Django projects, wait
for a quiet machine, then measure serving side by side with the bare apps (benchmarks/serving.py),
the event worker beside a bare consumer of the same library (benchmarks/worker.py), one worker's
WebSocket channels beside a bare broadcast loop (benchmarks/websockets.py), one worker's predict
endpoint beside the naive one on the same model (benchmarks/inference.py), the default bake
(benchmarks/bake_time.py) and the whole matrix (benchmarks/matrix_time.py).
Loads are bounded in time and target loopback only. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import bake_time, inference, matrix_time, report, serving, websockets, worker
from testkit.template import COOKIECUTTER_JSON, TEMPLATE_ROOT, choice_options

QUIET_LOAD = 1.0
# The results before the template's performance fixes, with a "note" saying what changed.
BASELINE = TEMPLATE_ROOT / "docs" / "benchmarks-baseline.json"
# Tools the harness runs, and the Debian packages that bring them.
DEBIAN_TOOLS = {"wrk": "wrk", "psql": "postgresql-client"}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def install_missing_tools() -> None:
    missing = [package for tool, package in DEBIAN_TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    say(f"installing {' '.join(missing)} with apt-get")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def wait_for_quiet(max_wait: float, poll: float = 30) -> tuple[float, bool]:
    """Seconds waited until the 1-minute load average fell below QUIET_LOAD, and whether it did."""
    started = time.monotonic()
    while os.getloadavg()[0] >= QUIET_LOAD:
        waited = time.monotonic() - started
        if waited >= max_wait:
            say(f"load average still {os.getloadavg()[0]:.2f} after {waited:.0f} s: measuring")
            return waited, False
        say(f"load average {os.getloadavg()[0]:.2f}: waiting for < {QUIET_LOAD}")
        time.sleep(poll)
    return time.monotonic() - started, True


def proc_field(path: str, name: str) -> str:
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return "unknown"


def os_name() -> str:
    release = Path("/etc/os-release")
    if release.is_file():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def template_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=TEMPLATE_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" with local changes" if git("status", "--porcelain") else "")


def describe_machine(deployments: dict[str, serving.Deployment]) -> dict[str, Any]:
    packages: dict[str, str] = {}
    services_python = set()
    names = {"fastapi": ["fastapi", "starlette", "uvicorn", "gunicorn", "structlog", "asyncpg"]}
    names["django"] = ["django", "gunicorn", "uvicorn", "structlog", "psycopg"]
    for framework, deployment in deployments.items():
        versions = serving.package_versions(deployment.venv, names[framework])
        services_python.add(versions.pop("python"))
        packages |= versions
    wrk_version = subprocess.run(
        ["wrk", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    memory_kib = int(proc_field("/proc/meminfo", "MemTotal").split()[0])
    return {
        "cpu_model": proc_field("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gib": memory_kib / 1024**2,
        "kernel": platform.release(),
        "os": os_name(),
        "python": {
            "harness": platform.python_version(),
            "services": ", ".join(sorted(services_python)),
            "image": COOKIECUTTER_JSON["python_version"],
        },
        "packages": packages,
        "wrk": (wrk_version.stdout + wrk_version.stderr).split("[")[0].strip(),
        "load_average_at_start": list(os.getloadavg()),
        "template_commit": template_commit(),
    }


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=TEMPLATE_ROOT / "docs", help="output folder")
    parser.add_argument(
        "--frameworks",
        nargs="*",
        default=choice_options()["framework"],
        help="serving benchmarks (none: leave them out)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="N: WEB_CONCURRENCY of the rendered services and --workers of the bare apps"
        " (default: one per usable CPU, the template's formula for a CPU quota)",
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rendered/bare pairs per framework")
    parser.add_argument("--cold-starts", type=int, default=5, help="cold starts per app")
    parser.add_argument("--bake-runs", type=int, default=7, help="timed default bakes")
    parser.add_argument("--skip-matrix", action="store_true", help="leave the matrix out")
    parser.add_argument(
        "--worker-frameworks",
        nargs="*",
        default=choice_options()["framework"],
        help="event worker benchmarks (none: leave them out)",
    )
    parser.add_argument(
        "--worker-brokers",
        nargs="+",
        default=[answer for answer in choice_options()["worker"] if answer != "none"],
    )
    parser.add_argument("--worker-messages", type=int, default=3000, help="events per run")
    parser.add_argument("--worker-rounds", type=int, default=3, help="rendered/bare pairs")
    parser.add_argument(
        "--websocket-clients",
        type=int,
        default=websockets.Shape.clients,
        help="concurrent clients of the channels benchmark (0: leave it out)",
    )
    parser.add_argument(
        "--websocket-messages",
        type=int,
        default=websockets.Shape.messages,
        help="messages broadcast to them per run",
    )
    parser.add_argument(
        "--websocket-rounds", type=int, default=websockets.Shape.rounds, help="rendered/bare pairs"
    )
    parser.add_argument(
        "--websocket-client-processes",
        type=int,
        default=websockets.Shape.client_processes,
        help="processes the clients are spread over",
    )
    parser.add_argument(
        "--inference-clients",
        type=int,
        default=inference.Shape.clients,
        help="concurrent clients of the predict benchmark (0: leave it out)",
    )
    parser.add_argument(
        "--inference-requests",
        type=int,
        default=inference.Shape.requests,
        help="predict requests per run, 503s included",
    )
    parser.add_argument(
        "--inference-rounds", type=int, default=inference.Shape.rounds, help="rendered/naive pairs"
    )
    parser.add_argument(
        "--max-wait", type=float, default=900, help="seconds to wait for a quiet machine"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=BASELINE if BASELINE.is_file() else None,
        help=f"an earlier benchmarks.json, reported as 'before' (default: docs/{BASELINE.name})",
    )
    parser.add_argument(
        "--baseline-note", default="", help="what changed since then, unless the file says"
    )
    parser.add_argument(
        "--notes", type=Path, help="Markdown lines for the report, e.g. why a target is missed"
    )
    arguments = parser.parse_args()
    if arguments.cold_starts < 5 or arguments.bake_runs < 5:
        parser.error("medians need at least 5 runs: --cold-starts and --bake-runs >= 5")
    return arguments


def main() -> int:
    arguments = parse_arguments()
    install_missing_tools()
    shape = serving.LoadShape(seconds=arguments.seconds, rounds=arguments.rounds)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as scratch:
        workdir = Path(scratch)
        deployments = {}
        for framework in arguments.frameworks:
            say(f"baking and installing framework={framework}")
            deployments[framework] = serving.deploy(framework, workdir)
        worker_deployments = []
        for framework in arguments.worker_frameworks:
            for broker in arguments.worker_brokers:
                say(f"baking and installing framework={framework} worker={broker}")
                worker_deployments.append(worker.deploy(framework, broker, workdir))
        channels = None
        if arguments.websocket_clients:
            say("baking and installing framework=fastapi database=none websockets=yes")
            channels = websockets.deploy(workdir)
        predictor = None
        if arguments.inference_clients:
            say("baking and installing framework=fastapi database=none inference=yes")
            predictor = inference.deploy(workdir)

        waited, quiet = wait_for_quiet(arguments.max_wait)
        results["measured_at"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        results["machine"] = describe_machine(deployments)
        results["machine"] |= {"waited_for_quiet_seconds": waited, "quiet": quiet}
        results["serving"] = {}
        for framework, deployment in deployments.items():
            say(f"serving benchmark: {framework}")
            results["serving"][framework] = serving.compare(
                deployment, arguments.workers, shape, arguments.cold_starts, workdir, say
            )
            results["serving"][framework]["load_average_after"] = list(os.getloadavg())
        if worker_deployments:
            results["worker"] = {}
        for deployment in worker_deployments:
            key = f"{deployment.framework}-{deployment.broker}"
            say(f"worker benchmark: {key}")
            results["worker"][key] = worker.compare(
                deployment, arguments.worker_rounds, arguments.worker_messages, workdir, say
            )
            libraries = ["faststream", worker.CLIENT_LIBRARIES[deployment.broker]]
            packages = serving.package_versions(deployment.venv, libraries)
            packages.pop("python")  # the machine table names it
            results["worker"][key] |= {
                "framework": deployment.framework,
                "broker": deployment.broker,
                "packages": packages,
                "load_average_after": list(os.getloadavg()),
            }
        if channels is not None:
            say("WebSocket channels benchmark")
            channel_shape = websockets.Shape(
                clients=arguments.websocket_clients,
                messages=arguments.websocket_messages,
                rounds=arguments.websocket_rounds,
                client_processes=arguments.websocket_client_processes,
            )
            results["websockets"] = websockets.compare(channels, channel_shape, workdir, say)
            results["websockets"]["load_average_after"] = list(os.getloadavg())
        if predictor is not None:
            say("model inference benchmark")
            predict_shape = inference.Shape(
                clients=arguments.inference_clients,
                requests=arguments.inference_requests,
                rounds=arguments.inference_rounds,
            )
            results["inference"] = inference.compare(predictor, predict_shape, workdir, say)
            results["inference"]["load_average_after"] = list(os.getloadavg())

    say("default bake")
    results["bake"] = {"runs_seconds": bake_time.bake_timings(arguments.bake_runs)}
    results["bake"]["load_average_after"] = list(os.getloadavg())
    if not arguments.skip_matrix:
        say("whole matrix")
        timing = matrix_time.measure()
        results["matrix"] = dataclasses.asdict(timing) | {
            "total_seconds": timing.total_seconds,
            "load_average_after": list(os.getloadavg()),
        }
    if arguments.notes:
        results["notes"] = arguments.notes.read_text().splitlines()
    if arguments.baseline:
        baseline = json.loads(arguments.baseline.read_text())
        note = baseline.pop("note", arguments.baseline_note)
        baseline.pop("baseline", None)
        results["baseline"] = {"note": note, "results": baseline}
    for path in report.write_report(results, arguments.docs):
        say(f"wrote {path}")
    missed = [verdict for verdict in report.verdicts(results) if not verdict.met]
    for verdict in missed:
        say(f"target missed: {verdict.target}: {verdict.measured} ({verdict.shortfall})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
