"""Model inference (inference=yes) of a rendered service, serving models exported from PyTorch.

The bake `framework=fastapi database=none inference=yes` runs as its container does (the
Dockerfile's CMD with gunicorn.conf.py), on the host, one worker, pointed through MODEL_PATH and
MODEL_SHA256 at models exported here with `torch.onnx.export` as the generated README shows
(testkit/inference.py). A pod's CPU limit reaches the service as the kernel shows it: a quota
file bind-mounted over the cgroup's, in a mount namespace of the service's own. Loopback only,
bounded in clients and requests, and every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hooks.bakery.facts import inference_facts
from testkit.inference import (
    PREDICT,
    SMALL_LAYERS,
    Exported,
    LoadShape,
    export_as_readme_shows,
    heavy_mlp,
    instances,
    metrics,
    mlp,
    percentile,
    predict,
    predict_load,
    sha256,
    small_classifier,
    three_dimensional_input,
)
from testkit.services import Service, container_command, pod_environment

pytestmark = pytest.mark.inference

ANSWERS = {"framework": "fastapi", "database": "none", "inference": "yes"}
# What the service derives threads from, or takes them from: the tests set them, or leave them
# unset on purpose, whatever the environment running the tests has.
THREAD_SETTINGS = (
    "WEB_CONCURRENCY",
    "INFERENCE_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)
CGROUP = Path("/sys/fs/cgroup")
# INFERENCE_MAX_BATCH_SIZE's default.
MAX_BATCH_SIZE = inference_facts(ANSWERS).max_batch_size
HEALTH_P99_SECONDS = 0.050


@dataclass(frozen=True)
class Models:
    small: Exported
    heavy: Exported


@pytest.fixture(scope="module")
def inference_project(installed_copy: Callable[..., tuple[Path, Path]]) -> tuple[Path, Path]:
    return installed_copy(**ANSWERS)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    directory = tmp_path_factory.mktemp("models")
    return Models(
        small_classifier(directory / "classifier.onnx"), heavy_mlp(directory / "mlp.onnx")
    )


@pytest.fixture(autouse=True)
def no_thread_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in THREAD_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def cpu_quota_command(project: Path, scratch: Path, cpus: int | None) -> list[str]:
    """The container's command, seeing a CPU quota of `cpus` (None: no quota) where the kernel
    shows it, whatever the machine's own cgroup says."""
    if (CGROUP / "cpu.max").is_file():
        target, period = CGROUP / "cpu.max", 100_000
        text = f"{'max' if cpus is None else cpus * period} {period}\n"
    else:
        target = CGROUP / "cpu" / "cpu.cfs_quota_us"
        period = int((CGROUP / "cpu" / "cpu.cfs_period_us").read_text())
        text = f"{-1 if cpus is None else cpus * period}\n"
    quota = scratch / f"cpu-quota-{cpus}"
    quota.write_text(text)
    # The bind mount lives in the namespace unshare makes (private: it never reaches the host's),
    # and ends with the service.
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    mount = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    return [*mount, str(quota), str(target), *container_command(project)]


# start()'s default: the service sees the machine's own cgroup.
AS_THE_MACHINE = -1


@pytest.fixture
def start(inference_project: tuple[Path, Path], tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Starts the service as its container does, one worker, on `model`; with `cpu_quota`, as
    in a pod limited to that many CPUs (None: a pod without a limit)."""
    project, venv = inference_project
    started: list[Service] = []

    def start_service(
        model: Exported, *, cpu_quota: int | None = AS_THE_MACHINE, **env: str
    ) -> Service:
        settings = {**pod_environment("fastapi"), "WEB_CONCURRENCY": "1", **model.environment()}
        # No drain on the way out: stopping at the end of a test is quick.
        settings["SHUTDOWN_DRAIN_SECONDS"] = "0"
        log = tmp_path / f"service-{len(started)}.log"
        service = Service(project, venv, {**settings, **env}, log)
        if cpu_quota != AS_THE_MACHINE:
            service.command = cpu_quota_command(project, tmp_path, cpu_quota)
        started.append(service)
        return service.start(timeout=60)

    yield start_service
    for service in started:
        service.stop()


def start_to_exit(
    inference_project: tuple[Path, Path], log: Path, **env: str
) -> tuple[int, list[str]]:
    """Start the service on settings it must refuse: its exit status and every output line."""
    project, venv = inference_project
    settings = {**pod_environment("fastapi"), "WEB_CONCURRENCY": "1", **env}
    service = Service(project, venv, settings, log)
    with pytest.raises(AssertionError, match="service exited"):
        service.start(timeout=60)
    service.stop()
    assert service.process is not None
    return service.process.returncode, log.read_text(errors="replace").splitlines()


def model_loaded(service: Service) -> dict[str, Any]:
    (event,) = [event for event in service.log_events() if event.get("event") == "model loaded"]
    return event


def thread_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def close_to(got: list[list[float]], expected: list[list[float]], tolerance: float) -> bool:
    return len(got) == len(expected) and all(
        row == pytest.approx(want, abs=tolerance) for row, want in zip(got, expected, strict=True)
    )


def test_a_torch_model_exported_by_the_readmes_code_serves_torchs_predictions(
    inference_project: tuple[Path, Path],
    start: Callable[..., Service],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, _ = inference_project
    # The README's own code block, run on a freshly trained module as its `model`.
    monkeypatch.chdir(tmp_path)
    readme = (project / "README.md").read_text()
    exported = export_as_readme_shows(readme, mlp(SMALL_LAYERS), tmp_path)
    service = start(exported)
    rows = instances(32)

    status, _, body = predict(service.port, {"instances": rows})

    assert status == 200, body
    assert (body["model"], body["version"]) == ("torch-mlp", "7")
    assert close_to(body["predictions"], exported.torch_outputs(rows), 1e-5), body
    status, _, ready = service.get("/ready")
    assert status == 200
    assert json.loads(ready)["checks"]["model"] == "ok"
    loaded = model_loaded(service)
    assert (loaded["model"], loaded["version"]) == ("torch-mlp", "7")
    assert loaded["seconds"] >= 0


def test_with_a_cpu_quota_of_one_the_model_runs_one_thread_not_one_per_host_core(
    start: Callable[..., Service], models: Models
) -> None:
    host = len(os.sched_getaffinity(0))
    assert host >= 2, "telling the quota from the host's cores needs 2 usable CPUs"
    rows = {"instances": instances(MAX_BATCH_SIZE)}
    limited, unlimited = start(models.small, cpu_quota=1), start(models.small, cpu_quota=None)
    threads = {}
    for name, service in (("limited", limited), ("unlimited", unlimited)):
        # Every pool the worker has, the inference thread included, exists after one prediction.
        assert predict(service.port, rows)[0] == 200
        (worker,) = service.worker_pids()
        threads[name] = thread_count(worker)

    assert model_loaded(limited)["intra_op_threads"] == 1
    # Without a quota the runtime may use every usable CPU: that is what the quota must stop.
    assert model_loaded(unlimited)["intra_op_threads"] == host
    # ONNX Runtime's pool alone has host - 1 more threads without the quota than with it.
    assert threads["unlimited"] - threads["limited"] >= host - 1, threads


def served(service: Service, status: int) -> list[float]:
    """Seconds the service took for each predict request answered `status`, from its access log."""
    return [
        event["duration_ms"] / 1000
        for event in service.log_events()
        if event.get("event") == "request"
        and event.get("path") == PREDICT
        and event.get("status") == status
    ]


@contextlib.contextmanager
def sampled(port: int, name: str, interval: float = 0.02) -> Iterator[list[float]]:
    """A metric's values every `interval` seconds while the block runs."""
    values: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            values.append(metrics(port).get(name, 0.0))

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        yield values
    finally:
        done.set()
        thread.join(timeout=10)


def test_under_a_load_that_saturates_the_model_health_stays_fast_and_the_excess_gets_503_at_once(
    start: Callable[..., Service], models: Models
) -> None:
    queue_size = 4
    # As in a pod at a 1-CPU limit: one worker, one inference thread, one inference at a time.
    service = start(models.heavy, cpu_quota=1, INFERENCE_QUEUE_SIZE=str(queue_size))
    shape = LoadShape(clients=48, requests=400)

    with sampled(service.metrics_port, "inference_queue_depth") as queue_depths:
        result = predict_load(service.port, shape)

    summary = result.summary()
    assert not result.errors, result.errors[:5]
    assert set(result.latencies) == {200, 503}, summary
    assert result.wrong_rows == 0
    rejected = result.count(503)
    assert result.retry_after == {"1": rejected}
    assert all(json.loads(body)["detail"] for body in result.bodies_503), result.bodies_503
    # The queue filled, and never held more than INFERENCE_QUEUE_SIZE: the rest were turned away.
    assert 0 < max(queue_depths) <= queue_size, queue_depths
    samples = metrics(service.metrics_port)
    assert samples["inference_rejected_total"] == rejected
    assert samples["inference_queue_depth"] == 0
    assert samples["inference_duration_seconds_count"] == result.count(200)
    # One inference of a batch, as the service measured it during the load.
    inference = samples["inference_duration_seconds_sum"] / result.count(200)
    # /health answers while the model is saturated: inference runs off the event loop.
    assert result.health_statuses == {200: len(result.health)}
    assert len(result.health) >= 50, summary
    assert summary["health_p99_ms"] / 1000 < HEALTH_P99_SECONDS, summary
    # Turned away at once: inside the service no 503 waits for an inference, and at the client
    # a 503 comes back much sooner than a request that was let in.
    rejections = served(service, 503)
    assert len(rejections) == rejected
    # (The last tenth is left to the machine: a busy one deschedules the worker now and then.)
    assert percentile(rejections, 0.5) < inference / 10, (inference, sorted(rejections))
    assert percentile(rejections, 0.9) < inference / 2, (inference, sorted(rejections))
    assert percentile(result.latencies[503], 0.5) < percentile(result.latencies[200], 0.5) / 2
    # An admitted request waits for at most the others admitted (the capacity), not for every
    # client's request as it would with no bound: the machine's own load gets a factor of 3.
    capacity = 1 + queue_size
    answered = served(service, 200)
    assert percentile(answered, 0.99) < 3 * (capacity + 1) * inference, (inference, summary)
    # The service is still there for the next request.
    assert predict(service.port, {"instances": instances(1)})[0] == 200


def corrupt_copy(model: Exported, path: Path) -> dict[str, str]:
    content = bytearray(model.path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    # The checksum of the file as it was exported: the copy no longer matches it.
    return {"MODEL_PATH": str(path), "MODEL_SHA256": model.sha256}


def not_onnx(path: Path) -> dict[str, str]:
    path.write_bytes(b"weights saved with torch.save, not an ONNX model\n")
    return {"MODEL_PATH": str(path), "MODEL_SHA256": sha256(path)}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "no such file"),
        ("corrupt", "sha256"),
        ("not onnx", "load"),
        ("wrong input shape", "input"),
    ],
)
def test_a_model_the_service_cannot_serve_stops_it_with_one_line_and_no_traceback(
    inference_project: tuple[Path, Path], models: Models, tmp_path: Path, case: str, reason: str
) -> None:
    settings = {
        "missing": lambda: {"MODEL_PATH": str(tmp_path / "absent.onnx"), "MODEL_SHA256": "0" * 64},
        "corrupt": lambda: corrupt_copy(models.small, tmp_path / "corrupt.onnx"),
        "not onnx": lambda: not_onnx(tmp_path / "weights.bin"),
        "wrong input shape": lambda: three_dimensional_input(tmp_path / "grid.onnx").environment(),
    }[case]()

    status, lines = start_to_exit(inference_project, tmp_path / "service.log", **settings)

    output = "\n".join(lines)
    assert status != 0, output
    assert "Traceback" not in output, output
    naming = [line for line in lines if settings["MODEL_PATH"] in line]
    assert len(naming) == 1, output
    assert reason in naming[0].lower(), naming[0]


BAD_BODIES: dict[str, bytes] = {
    "a row narrower than the model's input": json.dumps({"instances": [[5.1, 3.5, 1.4]]}).encode(),
    "a row wider than the model's input": json.dumps({"instances": [[1.0] * 5]}).encode(),
    "more rows than INFERENCE_MAX_BATCH_SIZE": json.dumps(
        {"instances": instances(MAX_BATCH_SIZE + 1)}
    ).encode(),
    "a string": json.dumps({"instances": [["5.1", 3.5, 1.4, 0.2]]}).encode(),
    "a boolean": json.dumps({"instances": [[True, 3.5, 1.4, 0.2]]}).encode(),
    "NaN": b'{"instances": [[NaN, 3.5, 1.4, 0.2]]}',
    "an infinity": b'{"instances": [[5.1, Infinity, 1.4, 0.2]]}',
    "a null": json.dumps({"instances": [[None, 3.5, 1.4, 0.2]]}).encode(),
    "no rows": json.dumps({"instances": []}).encode(),
    "no instances field": json.dumps({"rows": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
    "instances that are not a list of rows": json.dumps({"instances": [5.1, 3.5]}).encode(),
}


def test_bad_input_is_a_422_naming_instances_and_the_service_stays_up(
    start: Callable[..., Service], models: Models
) -> None:
    service = start(models.small)
    answers = {case: predict(service.port, body) for case, body in BAD_BODIES.items()}

    for case, (status, headers, body) in answers.items():
        assert status == 422, (case, status, body)
        assert headers["content-type"].startswith("application/json"), case
        assert body["detail"], (case, body)
        locations = [error["loc"] for error in body["detail"]]
        assert all(loc[0] == "body" for loc in locations), (case, body)
        assert any(loc[:2] == ["body", "instances"] for loc in locations), (case, body)
        assert all(error["msg"] for error in body["detail"]), (case, body)
    assert service.process is not None
    assert service.process.poll() is None
    rows = instances(MAX_BATCH_SIZE)
    status, _, body = predict(service.port, {"instances": rows})
    assert status == 200
    assert close_to(body["predictions"], models.small.torch_outputs(rows), 1e-5)
    assert "Traceback" not in "\n".join(service.log_lines())
