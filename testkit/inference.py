"""PyTorch models exported as the generated README shows, and a bounded load on a predict endpoint.

The models are `torch.nn.Sequential` networks with fixed seeds, exported with
`torch.onnx.export` (the TorchScript exporter, one input "features" [batch, width], one output
"probabilities", a dynamic batch axis). `Exported` keeps the file, its checksum and the module, so
a test compares the service's predictions with torch's own. torch is imported only when a model
is exported: the load clients and the benchmark report do not need it.

`predict_load` is closed-loop clients on keep-alive connections in one asyncio loop, each POSTing
a batch as soon as its last answer came, and waiting out a 503's Retry-After as a well-behaved
client does, while a probe GETs /health at a steady pace. Loopback only; bounded in requests and
time, and every read has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import itertools
import json
import random
import re
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PREDICT = "/api/v1/predict"
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
SEED = 0
# The example classifier's shape (the README's example): four measurements in, three classes out.
SMALL_LAYERS = (4, 16, 3)
# One inference of a 64-row batch takes 10-15 ms on one thread of this machine's CPUs: heavy
# enough that a few requests saturate a worker, small enough to export and load in seconds.
HEAVY_LAYERS = (4, 2048, 2048, 2048, 2048, 3)
BATCH_ROWS = 64


@dataclass(frozen=True)
class Exported:
    """A torch module exported to ONNX: the file the service loads and what torch answers."""

    path: Path
    sha256: str
    module: torch.nn.Module

    def torch_outputs(self, instances: list[list[float]]) -> list[list[float]]:
        import torch

        with torch.no_grad():
            return self.module(torch.tensor(instances, dtype=torch.float32)).tolist()

    def environment(self, name: str = "torch-mlp", version: str = "7") -> dict[str, str]:
        """The settings that point the service at this model."""
        return {
            "MODEL_PATH": str(self.path),
            "MODEL_SHA256": self.sha256,
            "MODEL_NAME": name,
            "MODEL_VERSION": version,
        }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mlp(layers: tuple[int, ...], seed: int = SEED) -> torch.nn.Sequential:
    """Linear layers of the given widths with ReLU between them and a softmax over the classes."""
    import torch

    torch.manual_seed(seed)
    modules: list[torch.nn.Module] = []
    for index, (inputs, outputs) in enumerate(itertools.pairwise(layers)):
        if index:
            modules.append(torch.nn.ReLU())
        modules.append(torch.nn.Linear(inputs, outputs))
    modules.append(torch.nn.Softmax(dim=1))
    return torch.nn.Sequential(*modules).eval()


@contextlib.contextmanager
def legacy_exporter() -> Iterator[None]:
    """torch warns that the TorchScript exporter (dynamo=False) is deprecated, at every export.

    It is the one that needs no onnxscript and exports a small module in a fraction of a second;
    the warning says nothing about the model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export(module: torch.nn.Module, example: torch.Tensor, path: Path) -> Exported:
    """The README's path: `torch.onnx.export` with named input and output, dynamic batch."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with legacy_exporter():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            dynamo=False,
        )
    return Exported(path, sha256(path), module)


def readme_export_code(readme: str) -> str:
    """The README's Python block that calls `torch.onnx.export`."""
    blocks = re.findall(r"^```python\n(.*?)^```", readme, flags=re.MULTILINE | re.DOTALL)
    (code,) = [block for block in blocks if "torch.onnx.export(" in block]
    return code


def export_as_readme_shows(readme: str, module: torch.nn.Module, directory: Path) -> Exported:
    """Run the README's export code on `module` (its `model`), in `directory` as the project.

    The code writes a path relative to the project (models/...), so it runs with `directory` as
    the working directory; the caller makes that safe (pytest's monkeypatch.chdir)."""
    code = readme_export_code(readme)
    (relative,) = re.findall(r"[\"']([^\"']+\.onnx)[\"']", code)
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if Path.cwd() != directory:
        raise RuntimeError(f"the README's code writes {relative}: run it from {directory}")
    with legacy_exporter():
        exec(compile(code, "README.md", "exec"), {"model": module})  # noqa: S102 - the README's
    return Exported(path, sha256(path), module)


def export_mlp(layers: tuple[int, ...], path: Path) -> Exported:
    import torch

    return export(mlp(layers), torch.zeros(1, layers[0]), path)


def small_classifier(path: Path) -> Exported:
    """Linear(4, 16) - ReLU - Linear(16, 3) - Softmax, seed 0."""
    return export_mlp(SMALL_LAYERS, path)


def heavy_mlp(path: Path) -> Exported:
    """4 -> 2048 -> 2048 -> 2048 -> 2048 -> 3: 10-15 ms per 64-row batch on one thread."""
    return export_mlp(HEAVY_LAYERS, path)


def three_dimensional_input(path: Path) -> Exported:
    """A model the service cannot feed: its input is [batch, 2, 2], not [batch, width]."""
    import torch

    torch.manual_seed(SEED)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    return export(module, torch.zeros(1, 2, 2), path)


def instances(rows: int, width: int = 4, seed: int = SEED) -> list[list[float]]:
    """Rows of plausible measurements (iris-like magnitudes), reproducible."""
    rng = random.Random(seed)  # noqa: S311 - reproducible inputs, not a secret
    return [[round(rng.uniform(0.1, 8.0), 3) for _ in range(width)] for _ in range(rows)]


def predict(port: int, body: Any, timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    """One POST of `body` (JSON-encoded unless bytes) on a connection of its own."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", PREDICT, payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, json.loads(raw) if raw else None
    finally:
        conn.close()


def metrics(port: int) -> dict[str, float]:
    """The samples a Prometheus endpoint exposes, by name with labels as written."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            samples[sample] = float(value)
    return samples


# The load: closed-loop clients and a /health probe, in one asyncio loop.


@dataclass(frozen=True)
class LoadShape:
    clients: int = 32
    # POSTs in all, 503s included, shared by the clients.
    requests: int = 400
    rows: int = BATCH_ROWS
    width: int = 4
    # Seconds between /health probes (one at a time, on a connection of its own).
    health_interval: float = 0.01
    # A client waits out a 503's Retry-After (at most this long), spread by +-50% as clients
    # that retry together would otherwise come back together.
    retry_after_cap: float = 1.0
    # No answer within this: the request counts as an error, its connection is dropped.
    request_timeout: float = 30.0
    # The whole run stops sending after this.
    deadline: float = 120.0


@dataclass
class LoadResult:
    seconds: float = 0.0
    # Seconds from sending a request to its whole answer, by status.
    latencies: dict[int, list[float]] = field(default_factory=dict)
    retry_after: Counter[str] = field(default_factory=Counter)
    bodies_503: Counter[str] = field(default_factory=Counter)
    # Rows per 200 answer that did not match the request: every answer must carry one per row.
    wrong_rows: int = 0
    errors: list[str] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    health_statuses: Counter[int] = field(default_factory=Counter)

    def count(self, status: int) -> int:
        return len(self.latencies.get(status, []))

    def throughput(self) -> float:
        """Successful predictions per second."""
        return self.count(200) / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        """The numbers a report reads, in milliseconds."""
        ok = self.latencies.get(200, [])
        rejected = self.latencies.get(503, [])
        return {
            "seconds": round(self.seconds, 3),
            "statuses": {str(code): len(values) for code, values in sorted(self.latencies.items())},
            "requests_per_s": round(self.throughput(), 1),
            "p50_ms": milliseconds(percentile(ok, 0.5)),
            "p99_ms": milliseconds(percentile(ok, 0.99)),
            "max_ms": milliseconds(max(ok, default=None)),
            "rejected_p99_ms": milliseconds(percentile(rejected, 0.99)),
            "health_probes": len(self.health),
            "health_p50_ms": milliseconds(percentile(self.health, 0.5)),
            "health_p99_ms": milliseconds(percentile(self.health, 0.99)),
            "health_max_ms": milliseconds(max(self.health, default=None)),
            "errors": len(self.errors),
        }


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def median(values: list[float]) -> float:
    return statistics.median(values)


class Connection:
    """One keep-alive HTTP/1.1 connection: requests written whole, answers read by length."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(self.timeout):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            self.writer.write(request)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None


def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def run_load(port: int, shape: LoadShape) -> LoadResult:
    result = LoadResult()
    body = json.dumps({"instances": instances(shape.rows, shape.width)}).encode()
    request = http_request("POST", PREDICT, body)
    tickets = iter(range(shape.requests))
    stop_at = time.monotonic() + shape.deadline
    finished = asyncio.Event()
    jitter = random.Random(SEED)  # noqa: S311 - reproducible jitter, not a secret

    async def client() -> None:
        connection = Connection(port, shape.request_timeout)
        try:
            for _ in tickets:
                if time.monotonic() >= stop_at:
                    return
                sent = time.monotonic()
                try:
                    status, headers, answer = await connection.send(request)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    connection.close()
                    continue
                result.latencies.setdefault(status, []).append(time.monotonic() - sent)
                if status == 200:
                    rows = len(json.loads(answer)["predictions"])
                    result.wrong_rows += rows != shape.rows
                elif status == 503:
                    result.retry_after[headers.get("retry-after", "")] += 1
                    result.bodies_503[answer.decode(errors="replace")[:200]] += 1
                    delay = retry_delay(headers, shape.retry_after_cap)
                    await asyncio.sleep(delay * jitter.uniform(0.5, 1.5))
        finally:
            connection.close()

    async def probe_health() -> None:
        connection = Connection(port, shape.request_timeout)
        probe = http_request("GET", "/health")
        try:
            while not finished.is_set():
                sent = time.monotonic()
                try:
                    status, _, _ = await connection.send(probe)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.errors.append(f"/health: {type(exc).__name__}: {exc}")
                    connection.close()
                    status = 0
                else:
                    result.health.append(time.monotonic() - sent)
                result.health_statuses[status] += 1
                with_rest = shape.health_interval - (time.monotonic() - sent)
                await asyncio.sleep(max(0.0, with_rest))
        finally:
            connection.close()

    prober = asyncio.create_task(probe_health())
    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(shape.clients)))
    result.seconds = time.monotonic() - started
    finished.set()
    await prober
    return result


def retry_delay(headers: dict[str, str], cap: float) -> float:
    try:
        return min(cap, max(0.0, float(headers.get("retry-after", "0"))))
    except ValueError:
        return 0.0


def predict_load(port: int, shape: LoadShape) -> LoadResult:
    """The load on 127.0.0.1:port, run to its end in a loop of its own."""
    return asyncio.run(run_load(port, shape))
