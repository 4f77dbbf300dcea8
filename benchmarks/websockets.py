"""One worker of the rendered channels service beside a bare FastAPI broadcast loop.

Rendered: the bake `framework=fastapi database=none websockets=yes`, started as its container
starts it with WEB_CONCURRENCY=1, on the shared Redis. Bare: the FastAPI documentation's
broadcast loop (an in-process set of sockets, `for connection in connections: await
connection.send_text(...)`; no Redis, no queues, no limits) on the same routes, served by
uvicorn with the rendered worker's WebSocket settings, in the same venv.

Per round and contender: start it, hold N concurrent clients (client processes of this harness,
each an asyncio loop of websockets clients), read the server process's VmRSS before and after
they connect, then publish K messages back to back over HTTP. Each message carries the
publisher's clock; each client notes its own on arrival (one machine: one monotonic clock).
Delivery rate = messages x clients / (last arrival - first publish). The CPU each side used
while broadcasting says which was saturated (2 cores: the server's one worker, the clients).

Slow client (rendered only): M clients, messages published at a steady rate, with and without
one more client that stops reading (a 4 KiB receive window, its socket paused); the others'
p99 latency with it against without, and the close it got.
Every process is ended by its PID; loopback only, bounded in clients, messages and time.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import http.client
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from benchmarks.serving import IMAGE_ENV, bake_as_the_image_does, package_versions, run, worker_pids
from testkit import wsclients
from testkit.services import REDIS_URL, Service, free_port, pod_environment

ANSWERS = {"framework": "fastapi", "database": "none", "websockets": "yes"}
# Rendered delivery rate over the bare loop's, at least; the others' p99 with a stalled client
# over without, at most.
TARGET_RATIO = 0.8
SLOW_CLIENT_P99_RATIO = 2.0
CONNECT_CONCURRENCY = 200
# A few bytes beside the sequence number and clock, like a small event.
PADDING = 64
# The slow-client runs: larger messages, so that what the kernel holds for the stalled client
# (about 2.8 MB on loopback here), its transport buffer and then its queue (WS_SEND_QUEUE_SIZE,
# 256) fill within the run's messages.
SLOW_PADDING = 16_384
STALLED_RECEIVE_BUFFER = 4096
SATURATED = 0.9  # of one core

# FastAPI's documented broadcast loop on the rendered routes, so the same clients join both.
BARE_BROADCAST = """
    import json
    import uuid

    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

    app = FastAPI()
    connections: set[WebSocket] = set()


    @app.get("/health")
    async def health():
        return {"status": "ok"}


    @app.websocket("/api/v1/channels/{channel}/ws")
    async def join(websocket: WebSocket, channel: str):
        await websocket.accept()
        connections.add(websocket)
        await websocket.send_text(json.dumps({"type": "subscribed", "channel": channel}))
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            connections.discard(websocket)


    @app.post("/api/v1/channels/{channel}/messages", status_code=202)
    async def publish(channel: str, request: Request):
        data = (await request.json())["data"]
        message_id = uuid.uuid4().hex
        text = json.dumps({"type": "message", "channel": channel, "id": message_id, "data": data})
        for connection in list(connections):
            await connection.send_text(text)
        return {"id": message_id, "channel": channel}
"""

# The rendered worker's uvicorn settings for WebSockets, as its worker class applies them.
WS_CONFIG_PROBE = """
import json
from {package}.core.settings import get_settings
from {package}.core.worker import websocket_options
print(json.dumps(websocket_options(get_settings())))
"""
UVICORN_OPTIONS = {
    "ws": "--ws",
    "ws_max_size": "--ws-max-size",
    "ws_ping_interval": "--ws-ping-interval",
    "ws_ping_timeout": "--ws-ping-timeout",
    "ws_per_message_deflate": "--ws-per-message-deflate",
}


@dataclass(frozen=True)
class Shape:
    clients: int = 5000
    messages: int = 100
    rounds: int = 2
    client_processes: int = 2
    slow_clients: int = 200
    slow_messages: int = 600
    slow_rate: int = 50  # messages/s


@dataclass(frozen=True)
class ChannelsDeployment:
    project: Path
    venv: Path
    bare_dir: Path


def deploy(workdir: Path) -> ChannelsDeployment:
    """Bake, install the runtime lock and compile bytecode, as the image does."""
    project, venv, bare_dir = bake_as_the_image_does(
        workdir, "channels", ANSWERS, {"broadcast.py": BARE_BROADCAST}
    )
    return ChannelsDeployment(project, venv, bare_dir)


def raise_open_files_limit() -> None:
    """Each client is a file here and one in the server (which inherits this limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# The client processes: each holds its share of the connections in one asyncio loop.


def client_process(
    pipe: multiprocessing.connection.Connection, url: str, count: int, messages: int
) -> None:
    raise_open_files_limit()
    asyncio.run(hold_clients(pipe, url, count, messages))


async def hold_clients(
    pipe: multiprocessing.connection.Connection, url: str, count: int, messages: int
) -> None:
    """Connect, report, wait for "go", read `messages` message frames on every connection."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    latencies = array.array("d")
    arrivals: list[float] = []
    closes: Counter[str] = Counter()

    async def join() -> Any:
        async with gate:
            connection = await connect(
                url, open_timeout=wsclients.OPEN_TIMEOUT, compression=None, max_size=None
            )
            await connection.recv()  # the subscribed frame
            return connection

    started = time.monotonic()
    joined = await asyncio.gather(*(join() for _ in range(count)), return_exceptions=True)
    connections = [item for item in joined if not isinstance(item, BaseException)]
    failures = Counter(type(item).__name__ for item in joined if isinstance(item, BaseException))
    loop = asyncio.get_running_loop()
    pipe.send(("connected", len(connections), dict(failures), time.monotonic() - started))

    async def read(connection: Any) -> bool:
        received = 0
        try:
            while received < messages:
                frame = json.loads(await connection.recv())
                now = time.monotonic()
                if frame["type"] == "message":
                    latencies.append(now - frame["data"]["sent"])
                    received += 1
            arrivals.append(now)
            return True
        except ConnectionClosed:
            closes[str(connection.close_code)] += 1
            return False

    readers = [loop.create_task(read(connection)) for connection in connections]
    await loop.run_in_executor(None, pipe.recv)  # "go": the publisher starts
    cpu_at_go = time.process_time()
    deadline = await loop.run_in_executor(None, pipe.recv)
    done, pending = await asyncio.wait(readers, timeout=deadline) if readers else (set(), set())
    for task in pending:
        task.cancel()
    complete = sum(1 for task in done if task.result())
    pipe.send(
        (
            "done",
            {
                "latencies": latencies.tobytes(),
                "last_arrival": max(arrivals, default=0.0),
                "complete": complete,
                "closes": dict(closes),
                "cpu_seconds": time.process_time() - cpu_at_go,
            },
        )
    )
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)


@dataclass
class Clients:
    """The client processes of one run, and what they reported."""

    processes: list[Any]
    pipes: list[multiprocessing.connection.Connection]
    held: int = 0
    failures: Counter[str] | None = None
    connect_seconds: float = 0.0


@contextlib.contextmanager
def clients(url: str, count: int, processes: int, messages: int) -> Iterator[Clients]:
    context = multiprocessing.get_context("spawn")
    shares = [count // processes + (1 if n < count % processes else 0) for n in range(processes)]
    started = Clients([], [])
    try:
        for share in shares:
            ours, theirs = context.Pipe()
            process = context.Process(target=client_process, args=(theirs, url, share, messages))
            process.start()
            started.processes.append(process)
            started.pipes.append(ours)
        started.failures = Counter()
        for pipe in started.pipes:
            if not pipe.poll(300):
                raise RuntimeError("a client process did not connect its clients within 300 s")
            _, held, failures, seconds = pipe.recv()
            started.held += held
            started.failures.update(failures)
            started.connect_seconds = max(started.connect_seconds, seconds)
        yield started
    finally:
        for process in started.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()


def collect(group: Clients, deadline: float) -> dict[str, Any]:
    for pipe in group.pipes:
        pipe.send(deadline)
    reports = []
    for pipe in group.pipes:
        if not pipe.poll(deadline + 60):
            raise RuntimeError("a client process did not report")
        reports.append(pipe.recv()[1])
    latencies: list[float] = []
    closes: Counter[str] = Counter()
    for report in reports:
        latencies += array.array("d", report["latencies"]).tolist()
        closes.update(report["closes"])
    return {
        "latencies": latencies,
        "last_arrival": max(report["last_arrival"] for report in reports),
        "complete": sum(report["complete"] for report in reports),
        "closes": dict(closes),
        "client_cpu_seconds": [report["cpu_seconds"] for report in reports],
    }


class Publisher:
    """POSTs to the channel on one keep-alive connection, as a backend service would."""

    def __init__(self, port: int, channel: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.channel = channel

    def publish(self, seq: int, padding: int) -> int:
        data = {"seq": seq, "sent": time.monotonic(), "padding": "x" * padding}
        self.connection.request(
            "POST",
            f"/api/v1/channels/{self.channel}/messages",
            json.dumps({"data": data}),
            {"Content-Type": "application/json"},
        )
        response = self.connection.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.connection.close()


@dataclass
class Contender:
    name: str
    service: Callable[[Path], Service]
    server_pid: Callable[[Service], int]


def contenders(deployment: ChannelsDeployment, logs: Path) -> dict[str, Contender]:
    venv = deployment.venv
    ws_options = probe_ws_config(deployment)

    def rendered(log: Path, **env: str) -> Service:
        settings = {**pod_environment("fastapi"), **IMAGE_ENV, "REDIS_URL": REDIS_URL}
        settings |= {"WEB_CONCURRENCY": "1", **env}
        return Service(deployment.project, venv, settings, log)

    def bare(log: Path) -> Service:
        port = free_port()
        command = ["uvicorn", "broadcast:app", "--host", "127.0.0.1", "--port", str(port)]
        command += ws_options
        return Service(
            deployment.bare_dir,
            venv,
            dict(IMAGE_ENV),
            log,
            port=port,
            command=command,
            ready_path="/health",
        )

    return {
        "rendered": Contender("rendered", rendered, lambda s: worker_pids(s)[0]),
        "bare": Contender("bare", bare, lambda s: s.process.pid if s.process else 0),
    }


def probe_ws_config(deployment: ChannelsDeployment) -> list[str]:
    """uvicorn options matching the rendered worker's WebSocket settings."""
    package = deployment.project.name.replace("-", "_")
    env = {"PATH": f"{deployment.venv / 'bin'}:/usr/bin:/bin", **pod_environment("fastapi")}
    result = run(
        [str(deployment.venv / "bin" / "python"), "-c", WS_CONFIG_PROBE.format(package=package)],
        cwd=deployment.project,
        env={**env, "REDIS_URL": REDIS_URL},
    )
    config = json.loads(result.stdout.strip().splitlines()[-1])
    options = []
    for key, value in config.items():
        if key in UVICORN_OPTIONS and value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            options += [UVICORN_OPTIONS[key], text]
    return options


def broadcast_once(contender: Contender, shape: Shape, logs: Path, number: int) -> dict[str, Any]:
    """Hold shape.clients clients, then publish shape.messages back to back."""
    service = contender.service(logs / f"{contender.name}-{number}.log")
    service.start(timeout=60)
    try:
        pid = contender.server_pid(service)
        idle_rss = rss_mib(pid)
        # Its own channel: other runs may share the Redis.
        channel = f"bench.{uuid.uuid4().hex[:12]}"
        url = wsclients.channel_url(service.port, channel)
        with clients(url, shape.clients, shape.client_processes, shape.messages) as group:
            time.sleep(1)  # the last handshakes' garbage settles
            held_rss = rss_mib(pid)
            for pipe in group.pipes:
                pipe.send("go")
            server_cpu, started = cpu_seconds(pid), time.monotonic()
            publisher = Publisher(service.port, channel)
            first_sent = time.monotonic()
            statuses = Counter(publisher.publish(seq, PADDING) for seq in range(shape.messages))
            publisher.close()
            deadline = 60 + shape.clients * shape.messages / 10_000
            received = collect(group, deadline)
            server_cpu, wall = cpu_seconds(pid) - server_cpu, time.monotonic() - started
        latencies = received.pop("latencies")
        span = received["last_arrival"] - first_sent
        return {
            "clients": shape.clients,
            "held": group.held,
            "connect_failures": dict(group.failures or {}),
            "connect_seconds": round(group.connect_seconds, 2),
            "rss_idle_mib": round(idle_rss, 1),
            "rss_held_mib": round(held_rss, 1),
            "rss_per_1000_mib": round((held_rss - idle_rss) / max(group.held, 1) * 1000, 2),
            "publish_statuses": {str(code): count for code, count in statuses.items()},
            "delivered": len(latencies),
            "complete_clients": received["complete"],
            "closes": received["closes"],
            "seconds": round(span, 3),
            "delivery_rate": round(len(latencies) / span, 1) if span > 0 else 0.0,
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
            "cpus": len(os.sched_getaffinity(0)),
            "server_cpu_share": round(server_cpu / wall, 2),
            "client_cpu_shares": [round(cpu / wall, 2) for cpu in received["client_cpu_seconds"]],
        }
    finally:
        service.stop()


def slow_client_once(
    contender: Contender, shape: Shape, logs: Path, number: int, stalled: bool
) -> dict[str, Any]:
    """shape.slow_clients readers at shape.slow_rate messages/s, with or without a stalled
    client."""
    service = contender.service(logs / f"slow-{number}-{'with' if stalled else 'without'}.log")
    service.start(timeout=60)
    loop = wsclients.LoopThread()
    try:
        # Its own channel: other runs may share the Redis.
        channel = f"bench.{uuid.uuid4().hex[:12]}"
        url = wsclients.channel_url(service.port, channel)
        with clients(url, shape.slow_clients, shape.client_processes, shape.slow_messages) as group:
            stuck = None
            if stalled:
                stuck = loop.run(
                    wsclients.subscribe(url, receive_buffer=STALLED_RECEIVE_BUFFER, max_size=None)
                )
                loop.call(stuck.pause_reading)
            for pipe in group.pipes:
                pipe.send("go")
            publisher = Publisher(service.port, channel)
            started = time.monotonic()
            statuses: Counter[int] = Counter()
            for seq in range(shape.slow_messages):
                delay = started + seq / shape.slow_rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                statuses[publisher.publish(seq, SLOW_PADDING)] += 1
            publisher.close()
            received = collect(group, 60 + shape.slow_messages / shape.slow_rate)
            stalled_result = None
            if stuck is not None:
                loop.call(stuck.resume_reading)
                with contextlib.suppress(Exception):
                    loop.run(wsclients.wait_for(lambda: stuck.closed, 10, "the stalled close"))
                stalled_result = {
                    "close_code": stuck.close_code,
                    "close_reason": stuck.close_reason,
                    "messages_before_close": len(stuck.messages),
                }
        latencies = received.pop("latencies")
        return {
            "clients": shape.slow_clients,
            "held": group.held,
            "messages": shape.slow_messages,
            "rate": shape.slow_rate,
            "publish_statuses": {str(code): count for code, count in statuses.items()},
            "delivered": len(latencies),
            "complete_clients": received["complete"],
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
            "stalled": stalled_result,
        }
    finally:
        service.stop()
        loop.stop()


def compare(
    deployment: ChannelsDeployment, shape: Shape, workdir: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Alternating rounds of the rendered worker and the bare loop, then the slow-client runs."""
    raise_open_files_limit()
    logs = workdir / "channels-logs"
    logs.mkdir(exist_ok=True)
    pair = contenders(deployment, logs)
    runs: dict[str, list[dict[str, Any]]] = {"rendered": [], "bare": []}
    load_average = []
    for number in range(shape.rounds):
        load_average.append(os.getloadavg()[0])
        order = ["rendered", "bare"] if number % 2 == 0 else ["bare", "rendered"]
        for name in order:
            result = broadcast_once(pair[name], shape, logs, number)
            say(
                f"  {name}: {result['held']:,} held, {result['delivery_rate']:,.0f} deliveries/s,"
                f" p50/p99 {result['p50_ms']}/{result['p99_ms']} ms,"
                f" {result['rss_per_1000_mib']} MiB per 1,000, server CPU"
                f" {result['server_cpu_share']:.0%}, clients {result['client_cpu_shares']}"
            )
            runs[name].append(result)
    slow: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for number in range(shape.rounds):
        for stalled in (False, True) if number % 2 == 0 else (True, False):
            result = slow_client_once(pair["rendered"], shape, logs, number, stalled)
            key = "with" if stalled else "without"
            say(
                f"  slow client {key}: p50/p99 {result['p50_ms']}/{result['p99_ms']} ms,"
                f" stalled {result['stalled']}"
            )
            slow[key].append(result)
    packages = package_versions(deployment.venv, ["fastapi", "uvicorn", "websockets", "redis"])
    packages.pop("python")  # the machine table names it
    return {
        "shape": {
            "clients": shape.clients,
            "messages": shape.messages,
            "rounds": shape.rounds,
            "client_processes": shape.client_processes,
            "padding_bytes": PADDING,
        },
        "load_average_per_round": load_average,
        "packages": packages,
        "rendered": {
            "description": "the bake with websockets=yes, one gunicorn worker, the shared Redis",
            "runs": runs["rendered"],
        },
        "bare": {
            "description": "FastAPI's documented broadcast loop over an in-process set of"
            " sockets (no Redis, no queues, no limits), uvicorn with the same WebSocket settings",
            "runs": runs["bare"],
        },
        "slow_client": {
            "clients": shape.slow_clients,
            "messages": shape.slow_messages,
            "rate": shape.slow_rate,
            "padding_bytes": SLOW_PADDING,
            "runs": slow,
        },
    }


def delivery_ratio(result: dict[str, Any]) -> float:
    """Median rendered delivery rate over the median bare one."""

    def rates(contender: str) -> list[float]:
        return [run["delivery_rate"] for run in result[contender]["runs"]]

    return statistics.median(rates("rendered")) / statistics.median(rates("bare"))


def slow_client_ratio(result: dict[str, Any]) -> float:
    """The others' median p99 with a stalled client over the median p99 without."""
    runs = result["slow_client"]["runs"]

    def p99(key: str) -> float:
        return statistics.median(run["p99_ms"] for run in runs[key])

    return p99("with") / p99("without")


def saturated_side(run: dict[str, Any]) -> str:
    """Which side of one broadcast run was CPU-bound: the server's one process, a client
    process, or, with both short of a core, the machine's cores between them."""
    sides = []
    if run["server_cpu_share"] >= SATURATED:
        sides.append("server")
    if any(share >= SATURATED for share in run["client_cpu_shares"]):
        sides.append("clients")
    used = run["server_cpu_share"] + sum(run["client_cpu_shares"])
    if not sides and used >= SATURATED * run["cpus"]:
        sides.append("all cores (server and clients together)")
    return " and ".join(sides) or "neither"
