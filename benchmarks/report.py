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
from benchmarks.inference import HEALTH_P99_RATIO as INFERENCE_HEALTH_P99_RATIO
from benchmarks.inference import THROUGHPUT_RATIO as INFERENCE_THROUGHPUT_RATIO
from benchmarks.inference import health_p99_ratio as inference_health_ratio
from benchmarks.inference import throughput_ratio as inference_throughput_ratio
from benchmarks.matrix_time import TARGET_SECONDS as MATRIX_TARGET_SECONDS
from benchmarks.websockets import (
    SLOW_CLIENT_P99_RATIO,
    delivery_ratio,
    saturated_side,
    slow_client_ratio,
)
from benchmarks.websockets import TARGET_RATIO as CHANNELS_DELIVERY_RATIO
from benchmarks.worker import TARGET_RATIO as WORKER_THROUGHPUT_RATIO
from benchmarks.worker import throughput_ratio as worker_ratio

COMMAND = "bash tests/run.sh -k benchmarks && .venv/bin/python -m benchmarks.run"
# Rendered `/health` requests/s over the bare app's, at least; FastAPI's p99 at most the bare's.
HEALTH_THROUGHPUT_RATIO = {"fastapi": 1.0, "django": 0.8}
HEALTH_P99_RATIO = {"fastapi": 1.0}
# The rendered items list against the bare endpoint doing the same queries.
ITEMS_THROUGHPUT_RATIO = 0.9
ITEMS_P99_RATIO = 1.2
RSS_RATIO = 1.3
COLD_START_TARGET_SECONDS = {"fastapi": 1.0, "django": 1.5}
FRAMEWORK_NAMES = {"fastapi": "FastAPI", "django": "Django"}
BROKER_NAMES = {"rabbitmq": "RabbitMQ", "kafka": "Kafka"}


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


def ratios(serving: dict[str, Any], path: str, key: str = "requests_per_s") -> list[float]:
    """Rendered over bare, round by round (a round loads both, one after the other)."""
    runs = serving[path]
    rendered, bare = field(runs["rendered"], key), field(runs["bare"], key)
    return [ours / theirs for ours, theirs in zip(rendered, bare, strict=True)]


def ratio(serving: dict[str, Any], path: str, key: str = "requests_per_s") -> float:
    """The headline ratio: the rendered median over the bare median."""
    runs = serving[path]
    return median(field(runs["rendered"], key)) / median(field(runs["bare"], key))


def throughput_ratio(serving: dict[str, Any]) -> float:
    return ratio(serving, "health")


def worker_mib(serving: dict[str, Any], contender: str, moment: str) -> list[float]:
    return [worker["rss"] for worker in serving["memory_mib"][contender][moment]]


def at_least(target: str, value: float, limit: float) -> Verdict:
    return Verdict(target, f"{value:.2f}x", value >= limit, f"{limit - value:.2f}x short")


def at_most(target: str, value: float, limit: float) -> Verdict:
    return Verdict(target, f"{value:.2f}x", value <= limit, f"{value - limit:.2f}x over")


def serving_verdicts(framework: str, serving: dict[str, Any]) -> Iterator[Verdict]:
    name = FRAMEWORK_NAMES[framework]
    limit = HEALTH_THROUGHPUT_RATIO[framework]
    yield at_least(
        f"{name} `/health` requests/s >= {limit}x the bare app's, same worker count",
        ratio(serving, "health"),
        limit,
    )
    if framework in HEALTH_P99_RATIO:
        limit = HEALTH_P99_RATIO[framework]
        yield at_most(
            f"{name} `/health` p99 latency <= {limit}x the bare app's",
            ratio(serving, "health", "p99_ms"),
            limit,
        )
    yield at_least(
        f"{name} items list requests/s >= {ITEMS_THROUGHPUT_RATIO}x the bare endpoint's",
        ratio(serving, "items"),
        ITEMS_THROUGHPUT_RATIO,
    )
    yield at_most(
        f"{name} items list p99 latency <= {ITEMS_P99_RATIO}x the bare endpoint's",
        ratio(serving, "items", "p99_ms"),
        ITEMS_P99_RATIO,
    )
    rss = median(worker_mib(serving, "rendered", "idle"))
    yield at_most(
        f"{name} RSS per idle worker <= {RSS_RATIO}x the bare app's",
        rss / median(worker_mib(serving, "bare", "idle")),
        RSS_RATIO,
    )
    limit = COLD_START_TARGET_SECONDS[framework]
    seconds = median(serving["cold_start_seconds"]["rendered"])
    yield Verdict(
        f"{name} cold start to ready <= {limit} s",
        f"{seconds:.2f} s",
        seconds <= limit,
        f"{seconds - limit:.2f} s over",
    )


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    found = []
    for framework, serving in results.get("serving", {}).items():
        found += serving_verdicts(framework, serving)
    for measured in results.get("worker", {}).values():
        found.append(
            at_least(
                f"{worker_name(measured)} messages/s >= {WORKER_THROUGHPUT_RATIO}x a bare"
                f" FastStream consumer's, {measured['processes']} processes each",
                worker_ratio(measured),
                WORKER_THROUGHPUT_RATIO,
            )
        )
    if "websockets" in results:
        found += channels_verdicts(results["websockets"])
    if "inference" in results:
        found += inference_verdicts(results["inference"])
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


def channels_verdicts(measured: dict[str, Any]) -> Iterator[Verdict]:
    clients = measured["shape"]["clients"]
    held = min(run["held"] for run in measured["rendered"]["runs"])
    yield Verdict(
        f"Channels: one worker holds {clients:,} concurrent WebSocket clients",
        f"{held:,}",
        held >= clients,
        f"{clients - held:,} short",
    )
    yield at_least(
        f"Channels deliveries/s >= {CHANNELS_DELIVERY_RATIO}x a bare FastAPI broadcast loop's,"
        f" one worker, {clients:,} clients",
        delivery_ratio(measured),
        CHANNELS_DELIVERY_RATIO,
    )
    stalled = [run["stalled"] or {} for run in measured["slow_client"]["runs"]["with"]]
    codes = sorted({str(run.get("close_code")) for run in stalled})
    yield Verdict(
        "Channels: a client that stops reading is closed with 4008",
        ", ".join(codes),
        codes == ["4008"],
        "not closed with 4008",
    )
    yield at_most(
        f"Channels: the other clients' p99 latency with a client that stops reading"
        f" <= {SLOW_CLIENT_P99_RATIO}x without",
        slow_client_ratio(measured),
        SLOW_CLIENT_P99_RATIO,
    )


def inference_verdicts(measured: dict[str, Any]) -> Iterator[Verdict]:
    clients = measured["shape"]["clients"]
    yield at_least(
        f"Inference predictions/s >= {INFERENCE_THROUGHPUT_RATIO}x the naive endpoint's, one"
        f" worker, {clients} clients",
        inference_throughput_ratio(measured),
        INFERENCE_THROUGHPUT_RATIO,
    )
    # Three decimals: a rendered p99 of milliseconds against the naive one's seconds.
    value, limit = inference_health_ratio(measured), INFERENCE_HEALTH_P99_RATIO
    yield Verdict(
        f"Inference: `/health` p99 under that load <= {limit}x the naive endpoint's",
        f"{value:.3f}x",
        value <= limit,
        f"{value - limit:.3f}x over",
    )


def worker_name(measured: dict[str, Any]) -> str:
    return f"{FRAMEWORK_NAMES[measured['framework']]} worker on {BROKER_NAMES[measured['broker']]}"


def worker_rates(measured: dict[str, Any], contender: str) -> list[float]:
    return [run["messages_per_s"] for run in measured[contender]["runs"]]


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
        numbers[f"{name} rendered items list p99 ms"] = median(
            field(serving["items"]["rendered"], "p99_ms")
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


def missed(results: dict[str, Any], framework: str, start: str) -> bool:
    name = FRAMEWORK_NAMES[framework]
    return any(
        not verdict.met
        for verdict in verdicts({"serving": {framework: results["serving"][framework]}})
        if verdict.target.startswith(f"{name} {start}")
    )


def explanations(results: dict[str, Any]) -> Iterator[str]:
    """Each missed serving target, taken apart into what the measurements show."""
    for framework, serving in results.get("serving", {}).items():
        name = FRAMEWORK_NAMES[framework]
        costs = serving.get("app_cost_us")
        if missed(results, framework, "`/health`") and costs:
            rendered, bare = costs["rendered"], costs["bare"]["every middleware"]
            every = rendered["every middleware"]
            parts = [
                f"`{part.removeprefix('without ')}` {every - cost:.1f} µs"
                for part, cost in sorted(rendered.items(), key=lambda item: item[1])
                if part != "every middleware"
            ]
            yield (
                f"Why {name}'s `/health` target is missed: inside the app a request costs"
                f" {every:.1f} µs of CPU rendered against {bare:.1f} µs bare"
                f" ({every - bare:+.1f} µs), spent in the middleware the bare app does not have:"
                f" {', '.join(parts)} ({name} section, last table). The server's share (its"
                " access log for the bare app, none for the rendered one) is outside these"
                " numbers."
            )
            yield ""
        if missed(results, framework, "RSS"):
            ours = median(worker_mib(serving, "rendered", "idle"))
            theirs = median(worker_mib(serving, "bare", "idle"))
            database = median(worker_mib(serving, "bare_items", "after_load"))
            yield (
                f"Why {name}'s memory target is missed: a rendered worker holds {ours:.1f} MiB"
                f" against the bare app's {theirs:.1f} MiB. The bare items endpoint, which"
                f" loads only the framework, the ORM and the driver, holds {database:.1f} MiB:"
                f" {database - theirs:.1f} MiB of the difference is the database layer the"
                f" bare hello world does not load, {ours - database:.1f} MiB the template's"
                " own code and libraries (settings, logging, limits, probes, the routes)."
            )
            yield ""
        if missed(results, framework, "items"):
            items = serving["items"]
            yield (
                f"Why {name}'s items list target is missed: rendered p50 / p99"
                f" {median(field(items['rendered'], 'p50_ms')):.2f} /"
                f" {median(field(items['rendered'], 'p99_ms')):.2f} ms, bare endpoint"
                f" {median(field(items['bare'], 'p50_ms')):.2f} /"
                f" {median(field(items['bare'], 'p99_ms')):.2f} ms; rounds"
                f" {', '.join(f'{value:.2f}x' for value in ratios(serving, 'items'))} in"
                " requests/s."
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


def compared(
    label: str, serving: dict[str, Any], path: str, key: str, digits: int, headline: bool = False
) -> str:
    ours, theirs = field(serving[path]["rendered"], key), field(serving[path]["bare"], key)
    value = f"{median(ours) / median(theirs):.2f}x"
    if headline:
        value = f"**{value}**{round_ratios(serving, path)}"
    return f"| {label} | {spread(ours, digits)} | {spread(theirs, digits)} | {value} |"


def round_ratios(serving: dict[str, Any], path: str) -> str:
    found = ratios(serving, path)
    return f" (rounds {min(found):.2f}-{max(found):.2f})" if len(found) > 1 else ""


def serving_section(framework: str, serving: dict[str, Any]) -> Iterator[str]:
    name = FRAMEWORK_NAMES[framework]
    health, items, load = serving["health"], serving["items"], serving["load"]
    yield f"## {name}: rendered service and bare apps"
    yield ""
    if "measured_at" in serving:
        yield f"Measured {serving['measured_at']}, in a run of its own (see above)."
    yield (
        f"Rendered: the default bake with `framework={framework}`, started as its container"
        f" starts it (`{serving['rendered']['command']}`, WEB_CONCURRENCY={serving['workers']},"
        " the Deployment's production environment, JSON logs to a file), on a throw-away"
        " PostgreSQL database."
    )
    yield f"Bare app (`/health`): {serving['bare']['description']}, N = {serving['workers']}."
    yield f"Bare endpoint (items list): {serving['bare_items']['description']}."
    yield "All three in the same venv, on the same database, running at the same time."
    per_round = load.get("load_average_per_round") or []
    loads = ", ".join(f"{value:.1f}" for value in per_round)
    loads = f" (1-minute load average at each round: {loads})" if loads else ""
    yield (
        f"Load: `{load['tool']}` over loopback, {load['rounds']} rounds{loads};"
        " each round loads the rendered and the bare `/health` one after the other, then the"
        f" rendered and the bare items list (`{load['items_path']}`, {load['seeded_items']} rows"
        " seeded, the default page of 20); who goes first alternates. Cells are medians with"
        " (min-max)."
    )
    yield ""
    yield "| Measure | Rendered | Bare | Rendered / bare |"
    yield "| --- | --- | --- | --- |"
    yield compared("`/health` requests/s", serving, "health", "requests_per_s", 0, headline=True)
    yield compared("`/health` p50 latency, ms", serving, "health", "p50_ms", 2)
    yield compared("`/health` p99 latency, ms", serving, "health", "p99_ms", 2)
    yield compared("Items list requests/s", serving, "items", "requests_per_s", 0, headline=True)
    yield compared("Items list p50 latency, ms", serving, "items", "p50_ms", 2)
    yield compared("Items list p99 latency, ms", serving, "items", "p99_ms", 2)
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
    if serving["memory_mib"].get("bare_items"):
        database = worker_mib(serving, "bare_items", "after_load")
        yield f"| RSS per worker of the bare items endpoint, MiB | | {spread(database, 1)} | |"
    errors = {
        contender: sum(run["errors"] for run in health[contender] + items[contender])
        for contender in ("rendered", "bare")
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
        " directly; the best CPU time of 5 batches of 5,000, the variants taking turns, one"
        " core); a middleware's cost is the time saved by leaving it out. The bare app's server"
        " writes an access log line that these numbers do not include; the rendered app writes"
        " its own access event inside them."
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


def worker_section(results: dict[str, Any]) -> Iterator[str]:
    if not results.get("worker"):
        return
    yield "## Event workers: rendered worker and bare consumer"
    yield ""
    first = next(iter(results["worker"].values()))
    yield (
        f"Rendered: the bake with `worker=<broker>` on PostgreSQL, {first['processes']} worker"
        " processes started with the worker Deployment's command (the relay running in each,"
        " on an empty outbox), the production environment, JSON logs to a file."
        f" Bare: {first['bare']['description']} (`{first['bare']['command']}`), as many"
        f" processes, in the same venv. Prefetch {first['prefetch']} for both."
        f" Each run drains {first['messages']:,} item.created events from a queue or topic of"
        " its own (RabbitMQ: the shared server, published before the consumers start; Kafka: a"
        " tansu broker, produced to consumers that have joined their group); messages/s count"
        " from the first effect's `recorded_at` to the last. Who goes first alternates."
    )
    yield ""
    yield "| Combination | Rendered messages/s | Bare messages/s | Rendered / bare | Load (1 min) |"
    yield "| --- | --- | --- | --- | --- |"
    for measured in results["worker"].values():
        loads = ", ".join(f"{value:.1f}" for value in measured["load_average_per_round"])
        packages = ", ".join(f"{name} {version}" for name, version in measured["packages"].items())
        yield (
            f"| {worker_name(measured)} ({packages})"
            f" | {spread(worker_rates(measured, 'rendered'))}"
            f" | {spread(worker_rates(measured, 'bare'))}"
            f" | **{worker_ratio(measured):.2f}x** | {loads} |"
        )
    yield ""


def channels_section(results: dict[str, Any]) -> Iterator[str]:
    measured = results.get("websockets")
    if not measured:
        return
    shape, slow = measured["shape"], measured["slow_client"]
    rendered, bare = measured["rendered"]["runs"], measured["bare"]["runs"]
    packages = ", ".join(f"{name} {version}" for name, version in measured["packages"].items())
    loads = ", ".join(f"{value:.1f}" for value in measured["load_average_per_round"])
    yield "## WebSocket channels: one rendered worker and a bare broadcast loop"
    yield ""
    yield (
        f"Rendered: {measured['rendered']['description']}. Bare: {measured['bare']['description']}."
        f" Both in the same venv ({packages}). Each run holds {shape['clients']:,} clients"
        f" ({shape['client_processes']} client processes of the harness, one asyncio loop each),"
        f" then {shape['messages']} messages ({shape['padding_bytes']} bytes of padding) are"
        " POSTed back to back to the one channel they all joined. Latency: the publisher's"
        " clock in the message to the client's on arrival; deliveries/s: messages x clients"
        " over first publish to last arrival; RSS: the server process's VmRSS before the"
        f" clients connect and once they are idle. Rounds: {shape['rounds']}, who goes first"
        f" alternating (1-minute load average at each round: {loads}). Cells are medians with"
        " (min-max)."
    )
    yield ""
    yield "| Measure | Rendered | Bare | Rendered / bare |"
    yield "| --- | --- | --- | --- |"

    def row(label: str, key: str, digits: int, headline: bool = False) -> str:
        ours, theirs = field(rendered, key), field(bare, key)
        value = f"{median(ours) / median(theirs):.2f}x" if median(theirs) else ""
        if headline:
            value = f"**{value}**"
        return f"| {label} | {spread(ours, digits)} | {spread(theirs, digits)} | {value} |"

    yield row(f"Connections held (of {shape['clients']:,})", "held", 0)
    yield row("Server RSS before the clients connect, MiB", "rss_idle_mib", 1)
    yield row("RSS per 1,000 idle connections, MiB", "rss_per_1000_mib", 2)
    yield row("Deliveries/s (messages x clients)", "delivery_rate", 0, headline=True)
    yield row("p50 delivery latency, ms", "p50_ms", 1)
    yield row("p99 delivery latency, ms", "p99_ms", 1)
    yield row("Server CPU while broadcasting, share of one core", "server_cpu_share", 2)
    clients_cpu = {
        name: ", ".join(
            "/".join(f"{share:.2f}" for share in run["client_cpu_shares"]) for run in runs
        )
        for name, runs in (("rendered", rendered), ("bare", bare))
    }
    yield (
        f"| Client processes' CPU per run, share of one core each | {clients_cpu['rendered']}"
        f" | {clients_cpu['bare']} | |"
    )
    saturated = {
        name: ", ".join(saturated_side(run) for run in runs)
        for name, runs in (("rendered", rendered), ("bare", bare))
    }
    yield f"| CPU-bound side per run | {saturated['rendered']} | {saturated['bare']} | |"
    yield ""
    without, with_stalled = slow["runs"]["without"], slow["runs"]["with"]
    yield (
        f"Slow client (rendered only): {slow['clients']:,} clients, {slow['messages']} messages"
        f" of {slow['padding_bytes']:,} bytes of padding at {slow['rate']} messages/s, without"
        " and with one more client that stops reading (a 4 KiB receive window, its socket"
        " paused); latencies are the other clients'."
    )
    yield ""
    yield "| Measure | Without | With a stalled client | With / without |"
    yield "| --- | --- | --- | --- |"
    for label, key in (("p50 latency, ms", "p50_ms"), ("p99 latency, ms", "p99_ms")):
        ours, theirs = field(with_stalled, key), field(without, key)
        ratio_text = f"{median(ours) / median(theirs):.2f}x"
        if key == "p99_ms":
            ratio_text = f"**{ratio_text}**"
        yield f"| Others' {label} | {spread(theirs, 1)} | {spread(ours, 1)} | {ratio_text} |"
    closes = ", ".join(
        f"{run['close_code']} after {run['messages_before_close']} messages"
        for run in (run["stalled"] or {} for run in with_stalled)
        if run
    )
    yield f"| The stalled client's close | | {closes} | |"
    yield ""


def inference_section(results: dict[str, Any]) -> Iterator[str]:
    measured = results.get("inference")
    if not measured:
        return
    shape = measured["shape"]
    rendered, naive = measured["rendered"]["runs"], measured["naive"]["runs"]
    packages = ", ".join(f"{name} {version}" for name, version in measured["packages"].items())
    loads = ", ".join(f"{value:.1f}" for value in measured["load_average_per_round"])
    layers = " -> ".join(str(width) for width in shape["layers"])
    yield "## Model inference: one rendered worker and the naive endpoint"
    yield ""
    yield (
        f"Rendered: {measured['rendered']['description']}."
        f" Naive: {measured['naive']['description']}. Both in the same venv ({packages}), on"
        f" the same PyTorch MLP ({layers}) exported with"
        f" `torch.onnx.export`, {measured['cpus']} usable CPUs, no CPU quota. Each run:"
        f" {shape['clients']} clients on keep-alive connections POST batches of {shape['rows']}"
        f" rows back to back, {shape['requests']:,} requests in all (a 503 waited out for its"
        f" Retry-After), while a probe GETs `/health` every {shape['health_interval_ms']:.0f} ms."
        " Predictions/s count 200s; latencies are theirs. Rounds:"
        f" {shape['rounds']}, who goes first alternating (1-minute load average at each round:"
        f" {loads}). Cells are medians with (min-max)."
    )
    yield ""
    yield "| Measure | Rendered | Naive | Rendered / naive |"
    yield "| --- | --- | --- | --- |"

    def row(label: str, key: str, digits: int, headline: bool = False) -> str:
        ours, theirs = field(rendered, key), field(naive, key)
        value = f"{median(ours) / median(theirs):.2f}x" if median(theirs) else ""
        if headline:
            value = f"**{value}**"
        return f"| {label} | {spread(ours, digits)} | {spread(theirs, digits)} | {value} |"

    yield row("Predictions/s (batches answered 200)", "requests_per_s", 1, headline=True)
    yield row("p50 latency of a prediction, ms", "p50_ms", 1)
    yield row("p99 latency of a prediction, ms", "p99_ms", 1)
    yield row("Slowest prediction, ms", "max_ms", 1)
    yield row("`/health` p50 under load, ms", "health_p50_ms", 2)
    yield row("`/health` p99 under load, ms", "health_p99_ms", 2, headline=True)
    yield row("`/health` slowest under load, ms", "health_max_ms", 1)

    def total(runs: list[dict[str, Any]], status: str) -> int:
        return sum(run["statuses"].get(status, 0) for run in runs)

    yield (
        f"| Answered 503 at once (queue full), all runs | {total(rendered, '503'):,}"
        f" | {total(naive, '503'):,} | |"
    )
    errors = {
        name: sum(run["errors"] for run in runs) for name, runs in (("r", rendered), ("n", naive))
    }
    yield f"| Socket errors and timeouts | {errors['r']} | {errors['n']} | |"
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
            f"| Whole matrix: {matrix['combinations']} combinations ({matrix['supported']}"
            f" rendered and checked, {matrix['python_sets']} Python file sets baked and validated,"
            f" {matrix['refused']} refused), s"
            f" | {matrix['total_seconds']:.1f} (render {matrix['render_seconds']:.1f},"
            f" bake {matrix['bake_seconds']:.1f},"
            f" checks {matrix['checks_seconds']:.1f}, refusals {matrix['refusals_seconds']:.1f}) |"
        )
    yield ""


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['measured_at']} by `{COMMAND}` (issues 9 and 15). Every number"
        " below is from that one run on the machine described; ratios compare runs of the same"
        " session, taken in alternating rounds.",
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
    lines += explanations(results)
    lines += results.get("notes", [])
    if results.get("notes"):
        lines.append("")
    for framework, serving in results.get("serving", {}).items():
        lines += serving_section(framework, serving)
    sections: list[Callable[[dict[str, Any]], Iterator[str]]] = [
        worker_section,
        channels_section,
        inference_section,
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
