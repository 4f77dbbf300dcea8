"""The results as docs/benchmarks.md (for people) and docs/benchmarks.json (for tools).

The JSON holds every run; the Markdown shows medians with their spread (min to max), ratios
from the same session, and a verdict per target.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bake_time import TARGET_SECONDS as BAKE_TARGET_SECONDS
from benchmarks.matrix_time import TARGET_SECONDS as MATRIX_TARGET_SECONDS

COMMAND = "bash tests/run.sh -k benchmarks && .venv/bin/python -m benchmarks.run"
FASTAPI_THROUGHPUT_RATIO = 0.9
COLD_START_TARGET_SECONDS = {"fastapi": 1.0, "django": 1.5}
FRAMEWORK_NAMES = {"fastapi": "FastAPI", "django": "Django"}


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool
    shortfall: str


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], digits: int = 0) -> str:
    """Median with min-max, e.g. `9,812 (9,540-10,020)`."""
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    low, high = min(values), max(values)
    return f"{median(values):,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def field(runs: list[dict[str, Any]], name: str) -> list[float]:
    return [run[name] for run in runs]


def throughput_ratios(serving: dict[str, Any]) -> list[float]:
    """Rendered over bare requests/s, round by round (a round loads both, one after the other)."""
    rendered = field(serving["health"]["rendered"], "requests_per_s")
    bare = field(serving["health"]["bare"], "requests_per_s")
    return [ours / theirs for ours, theirs in zip(rendered, bare, strict=True)]


def throughput_ratio(serving: dict[str, Any]) -> float:
    """The headline ratio: median rendered requests/s over median bare requests/s."""
    rendered = median(field(serving["health"]["rendered"], "requests_per_s"))
    return rendered / median(field(serving["health"]["bare"], "requests_per_s"))


def worker_mib(serving: dict[str, Any], contender: str, moment: str) -> list[float]:
    return [worker["rss"] for worker in serving["memory_mib"][contender][moment]]


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    found = []
    serving = results.get("serving", {})
    if "fastapi" in serving:
        ratio = throughput_ratio(serving["fastapi"])
        found.append(
            Verdict(
                f"Rendered FastAPI `/health` throughput >= {FASTAPI_THROUGHPUT_RATIO}x the bare"
                " app's, same worker count",
                f"{ratio:.2f}x",
                ratio >= FASTAPI_THROUGHPUT_RATIO,
                f"{FASTAPI_THROUGHPUT_RATIO - ratio:.2f}x short",
            )
        )
    for framework, limit in COLD_START_TARGET_SECONDS.items():
        if framework in serving:
            seconds = median(serving[framework]["cold_start_seconds"]["rendered"])
            found.append(
                Verdict(
                    f"{FRAMEWORK_NAMES[framework]} cold start to ready <= {limit} s",
                    f"{seconds:.2f} s",
                    seconds <= limit,
                    f"{seconds - limit:.2f} s over",
                )
            )
    if "bake" in results:
        seconds = median(results["bake"]["runs_seconds"])
        found.append(
            Verdict(
                f"Default bake <= {BAKE_TARGET_SECONDS} s",
                f"{seconds:.2f} s",
                seconds <= BAKE_TARGET_SECONDS,
                f"{seconds - BAKE_TARGET_SECONDS:.2f} s over",
            )
        )
    if "matrix" in results:
        matrix = results["matrix"]
        seconds = matrix["total_seconds"]
        clean = not matrix["problems"] and matrix["all_refused_cleanly"]
        found.append(
            Verdict(
                f"Whole-matrix render and validate <= {MATRIX_TARGET_SECONDS // 60} min",
                f"{seconds:.0f} s" + ("" if clean else " (with problems: see the JSON)"),
                seconds <= MATRIX_TARGET_SECONDS and clean,
                f"{seconds - MATRIX_TARGET_SECONDS:.0f} s over" if clean else "problems found",
            )
        )
    return found


def headline(results: dict[str, Any]) -> dict[str, float]:
    """The few numbers worth comparing across runs (before and after a change)."""
    numbers: dict[str, float] = {}
    for framework, serving in results.get("serving", {}).items():
        name = FRAMEWORK_NAMES[framework]
        health = serving["health"]
        numbers[f"{name} rendered /health requests/s"] = median(
            field(health["rendered"], "requests_per_s")
        )
        numbers[f"{name} bare /health requests/s"] = median(field(health["bare"], "requests_per_s"))
        numbers[f"{name} rendered/bare throughput"] = throughput_ratio(serving)
        numbers[f"{name} rendered /health p99 ms"] = median(field(health["rendered"], "p99_ms"))
        numbers[f"{name} rendered items list requests/s"] = median(
            field(serving["items"]["rendered"], "requests_per_s")
        )
        numbers[f"{name} cold start to ready s"] = median(serving["cold_start_seconds"]["rendered"])
        numbers[f"{name} RSS per worker after load MiB"] = median(
            worker_mib(serving, "rendered", "after_load")
        )
    if "bake" in results:
        numbers["Default bake s"] = median(results["bake"]["runs_seconds"])
    if "matrix" in results:
        numbers["Whole matrix s"] = results["matrix"]["total_seconds"]
    return numbers


def number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def throughput_gap(results: dict[str, Any]) -> Iterator[str]:
    """Where the FastAPI throughput ratio falls short, what the app spends its time on."""
    serving = results.get("serving", {}).get("fastapi")
    if not serving or throughput_ratio(serving) >= FASTAPI_THROUGHPUT_RATIO:
        return
    costs = serving.get("app_cost_us")
    if not costs:
        return
    rendered, bare = costs["rendered"], costs["bare"]["every middleware"]
    every = rendered["every middleware"]
    parts = [
        f"`{name.removeprefix('without ')}` {every - cost:.1f} µs"
        for name, cost in sorted(rendered.items(), key=lambda item: item[1])
        if name != "every middleware"
    ]
    yield (
        f"Why the throughput target is missed: inside the app a `/health` request costs"
        f" {every:.1f} µs rendered against {bare:.1f} µs bare ({every - bare:+.1f} µs), spent in"
        f" the middleware the bare app does not have: {', '.join(parts)} (FastAPI section, last"
        " table). The bare app's server writes a plain-text access line of its own, outside these"
        " numbers; the rendered app's JSON access event with its request id costs more than that."
    )
    yield ""


def machine_rows(machine: dict[str, Any]) -> Iterator[str]:
    load = machine["load_average_at_start"]
    wait = machine.get("waited_for_quiet_seconds", 0)
    quiet = machine.get("quiet", True)
    cpus = f"{machine['cpus']} CPUs ({machine['usable_cpus']} usable)"
    yield f"| CPU | {machine['cpu_model']}, {cpus} |"
    yield f"| Memory | {machine['memory_gib']:.1f} GiB |"
    yield f"| Kernel | {machine['kernel']} |"
    yield f"| OS | {machine['os']} |"
    pythons = machine["python"]
    yield (
        f"| Python | harness {pythons['harness']}; services {pythons['services']}"
        f" (the images use {pythons['image']}) |"
    )
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    yield f"| Packages (from the locks) | {packages} |"
    yield f"| wrk | {machine['wrk']} |"
    waited = f"waited {wait:.0f} s for the 1-minute average to drop below 1.0" if wait else ""
    if not quiet:
        waited = f"waited {wait:.0f} s; the 1-minute average never dropped below 1.0"
    yield (
        f"| Load average at start | {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
        f" (1 / 5 / 15 min){'; ' + waited if waited else ''} |"
    )
    yield f"| Template | commit {machine['template_commit']} |"


def load_during(results: dict[str, Any]) -> str:
    """The 1-minute load average after each part: other work on the machine shows up here."""
    parts = {FRAMEWORK_NAMES[name]: part for name, part in results.get("serving", {}).items()}
    parts |= {"bake": results.get("bake", {}), "matrix": results.get("matrix", {})}
    found = [
        f"{name} {part['load_average_after'][0]:.2f}"
        for name, part in parts.items()
        if "load_average_after" in part
    ]
    return f"| Load average (1 min) after each part | {', '.join(found)} |" if found else ""


def serving_section(framework: str, serving: dict[str, Any]) -> Iterator[str]:
    name = FRAMEWORK_NAMES[framework]
    health, load = serving["health"], serving["load"]
    rendered, bare = health["rendered"], health["bare"]
    items = serving["items"]["rendered"]
    ratios = throughput_ratios(serving)
    yield f"## {name}: rendered service and bare app"
    yield ""
    yield (
        f"Rendered: the default bake with `framework={framework}`, started as its container"
        f" starts it (`{serving['rendered']['command']}`, WEB_CONCURRENCY={serving['workers']},"
        " the Deployment's production environment, JSON logs to a file), on a throw-away"
        " PostgreSQL database."
    )
    yield f"Bare: {serving['bare']['description']}, N = {serving['workers']}, same venv."
    yield (
        f"Load: `{load['tool']}` over loopback, {load['rounds']} rounds; each round loads both"
        " apps' `/health` one after the other (who goes first alternates), then the rendered"
        f" items list (`{load['items_path']}`, {load['seeded_items']} rows seeded, PostgreSQL)."
        " Cells are medians with (min-max)."
    )
    yield ""
    yield "| Measure | Rendered | Bare | Rendered / bare |"
    yield "| --- | --- | --- | --- |"
    ratio_spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
    yield (
        f"| `/health` requests/s | {spread(field(rendered, 'requests_per_s'))}"
        f" | {spread(field(bare, 'requests_per_s'))} | **{throughput_ratio(serving):.2f}x**"
        f"{f' (rounds {ratio_spread})' if ratio_spread else ''} |"
    )
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        ours, theirs = median(field(rendered, key)), median(field(bare, key))
        yield (
            f"| `/health` {label} latency, ms | {spread(field(rendered, key), 2)}"
            f" | {spread(field(bare, key), 2)} | {ours / theirs:.2f}x |"
        )
    yield f"| Items list requests/s | {spread(field(items, 'requests_per_s'))} | (no database) | |"
    yield (
        f"| Items list p50 / p99 latency, ms | {median(field(items, 'p50_ms')):.2f}"
        f" / {median(field(items, 'p99_ms')):.2f} | | |"
    )
    cold = serving["cold_start_seconds"]
    yield (
        f"| Cold start: exec to first 200, s | {spread(cold['rendered'], 2)} (`/ready`)"
        f" | {spread(cold['bare'], 2)} (`/health`)"
        f" | {median(cold['rendered']) / median(cold['bare']):.2f}x |"
    )
    for label, moment in (("idle", "idle"), ("after load", "after_load")):
        ours = worker_mib(serving, "rendered", moment)
        theirs = worker_mib(serving, "bare", moment)
        yield (
            f"| RSS per worker {label}, MiB | {spread(ours, 1)} | {spread(theirs, 1)}"
            f" | {median(ours) / median(theirs):.2f}x |"
        )
    errors = {
        contender: sum(run["errors"] for run in runs)
        for contender, runs in (("rendered", rendered + items), ("bare", bare))
    }
    yield f"| Socket errors and non-2xx responses | {errors['rendered']} | {errors['bare']} | |"
    yield ""
    yield from app_cost_rows(serving)


def app_cost_rows(serving: dict[str, Any]) -> Iterator[str]:
    """The in-process cost of each middleware: what the throughput ratio is made of."""
    costs = serving.get("app_cost_us")
    if not costs:
        return
    rendered, bare = costs["rendered"], costs["bare"]
    every = rendered["every middleware"]
    yield (
        "Inside the app, without server or network (benchmarks/app_cost.py: GET `/health` called"
        " directly, best of 5 batches of 5,000, one core); a middleware's cost is the time saved"
        " by leaving it out. The bare app's server writes an access log line that these"
        " numbers do not include; the rendered app writes its own access event inside them."
    )
    yield ""
    yield "| In-process `/health` | µs per request |"
    yield "| --- | --- |"
    yield f"| Bare app | {bare['every middleware']:.1f} |"
    yield f"| Rendered app, every middleware | {every:.1f} |"
    for name, cost in rendered.items():
        if name != "every middleware":
            middleware = name.removeprefix("without ")
            yield f"| of which `{middleware}` | {every - cost:.1f} |"
    yield ""


def fixes_section(results: dict[str, Any]) -> Iterator[str]:
    baseline = results.get("baseline")
    if not baseline:
        return
    before, after = headline(baseline["results"]), headline(results)
    yield "## Before and after the template changes"
    yield ""
    yield baseline["note"]
    yield ""
    yield (
        f"Before: template commit {baseline['results']['machine']['template_commit']},"
        f" measured {baseline['results']['measured_at']}; after: this run."
    )
    yield ""
    yield "| Measure | Before | After |"
    yield "| --- | --- | --- |"
    for key, value in after.items():
        if key in before:
            yield f"| {key} | {number(before[key])} | {number(value)} |"
    yield ""


def bake_section(results: dict[str, Any]) -> Iterator[str]:
    if "bake" not in results and "matrix" not in results:
        return
    yield "## Baking"
    yield ""
    yield "| Measure | Result |"
    yield "| --- | --- |"
    if "bake" in results:
        runs = results["bake"]["runs_seconds"]
        yield (
            f"| Default bake (`cookiecutter --no-input`, fresh interpreter, hooks included),"
            f" {len(runs)} runs, s | {spread(runs, 3)}, stdev {statistics.stdev(runs):.3f} |"
        )
    if "matrix" in results:
        matrix = results["matrix"]
        yield (
            f"| Whole matrix: {matrix['combinations']} combinations ({matrix['supported']} baked"
            f" and validated, {matrix['refused']} refused), {matrix['jobs']} parallel, s"
            f" | {matrix['total_seconds']:.1f} (bake {matrix['bake_seconds']:.1f},"
            f" checks {matrix['checks_seconds']:.1f}, refusals {matrix['refusals_seconds']:.1f}) |"
        )
    yield ""


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['measured_at']} by `{COMMAND}` (issue 9). Every number below is from"
        " that one run on the machine described; ratios compare runs of the same session.",
        "",
        "| Machine | |",
        "| --- | --- |",
        *machine_rows(results["machine"]),
        *filter(None, [load_during(results)]),
        "",
        "## Targets",
        "",
        "| Target | Measured | Verdict |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {v.target} | {v.measured} | {'met' if v.met else f'**missed**: {v.shortfall}'} |"
        for v in verdicts(results)
    ]
    lines.append("")
    lines += throughput_gap(results)
    lines += results.get("notes", [])
    if results.get("notes"):
        lines.append("")
    for framework, serving in results.get("serving", {}).items():
        lines += serving_section(framework, serving)
    sections: list[Callable[[dict[str, Any]], Iterator[str]]] = [
        bake_section,
        fixes_section,
    ]
    for section in sections:
        lines += section(results)
    lines.append("Every run, with its raw numbers: [benchmarks.json](benchmarks.json).")
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], docs: Path) -> tuple[Path, Path]:
    docs.mkdir(parents=True, exist_ok=True)
    markdown_path, json_path = docs / "benchmarks.md", docs / "benchmarks.json"
    markdown_path.write_text(markdown(results))
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    return markdown_path, json_path
