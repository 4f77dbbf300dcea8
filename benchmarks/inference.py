"""One worker of the rendered predict endpoint beside the naive endpoint, on the same model.

Rendered: the bake `framework=fastapi database=none inference=yes`, started as its container
starts it with WEB_CONCURRENCY=1 (its threads from the CPUs it may use: no quota here), pointed
at a PyTorch MLP exported with `torch.onnx.export` as its README shows (testkit/inference.py,
4 -> 2048 x 4 -> 3). Naive: the endpoint a first version is: an `async def` route that calls
`session.run` itself, on the event loop, with ONNX Runtime's default threads and no queue limit,
served by the same gunicorn and uvicorn worker class with one worker, in the same venv.

Per round and contender: start it, warm it up, then the same closed-loop load (N clients on
keep-alive connections, each POSTing a batch of 64 rows as soon as it has its last answer, a 503
waited out for its Retry-After as a well-behaved client does) while a probe GETs /health every
10 ms. Throughput counts predictions answered 200; latencies are the 200s'. Who goes first
alternates. Every process is ended by its PID; loopback only, bounded in requests and time.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.serving import (
    IMAGE_ENV,
    SERVER_PROBE,
    Deployment,
    bake_as_the_image_does,
    package_versions,
    probe,
)
from testkit import inference
from testkit.services import Service, free_port, pod_environment

ANSWERS = {"framework": "fastapi", "database": "none", "inference": "yes"}
# Rendered over naive, round medians: predictions/s at least, /health p99 under load at most.
THROUGHPUT_RATIO = 1.0
HEALTH_P99_RATIO = 0.1
WARMUP_REQUESTS = 20

NAIVE_APP = """
    import os

    import numpy as np
    import onnxruntime as ort
    from fastapi import FastAPI
    from pydantic import BaseModel

    # ONNX Runtime's defaults: its thread pool sized from the machine's cores.
    session = ort.InferenceSession(os.environ["MODEL_PATH"], providers=["CPUExecutionProvider"])
    app = FastAPI()


    class PredictRequest(BaseModel):
        instances: list[list[float]]


    @app.get("/health")
    async def health():
        return {"status": "ok"}


    @app.post("/api/v1/predict")
    async def predict(request: PredictRequest):
        features = np.asarray(request.instances, dtype=np.float32)
        (probabilities,) = session.run(["probabilities"], {"features": features})
        return {"predictions": probabilities.tolist()}
"""


@dataclass(frozen=True)
class Shape:
    clients: int = 32
    requests: int = 1500
    rounds: int = 3


@dataclass(frozen=True)
class InferenceDeployment:
    project: Path
    venv: Path
    naive_dir: Path
    model: inference.Exported


def deploy(workdir: Path) -> InferenceDeployment:
    """Bake, install the runtime lock, compile bytecode as the image does; export the model."""
    project, venv, naive_dir = bake_as_the_image_does(
        workdir, "inference", ANSWERS, {"naive.py": NAIVE_APP}
    )
    model = inference.heavy_mlp(workdir / "inference-model" / "mlp.onnx")
    return InferenceDeployment(project, venv, naive_dir, model)


def worker_class(deployment: InferenceDeployment) -> str:
    """The server class under the rendered worker's (uvicorn's worker for gunicorn)."""
    served = Deployment("fastapi", deployment.project, deployment.venv, deployment.naive_dir)
    return probe(served, SERVER_PROBE, "none")["worker_class"]


def contenders(deployment: InferenceDeployment, logs: Path) -> dict[str, Callable[[int], Service]]:
    server_class = worker_class(deployment)
    model_env = deployment.model.environment()

    def rendered(number: int) -> Service:
        settings = {**pod_environment("fastapi"), **IMAGE_ENV, "WEB_CONCURRENCY": "1", **model_env}
        return Service(
            deployment.project, deployment.venv, settings, logs / f"rendered-{number}.log"
        )

    def naive(number: int) -> Service:
        port = free_port()
        command = ["gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
        command += ["--worker-class", server_class, "naive:app"]
        return Service(
            deployment.naive_dir,
            deployment.venv,
            {**IMAGE_ENV, "MODEL_PATH": model_env["MODEL_PATH"]},
            logs / f"naive-{number}.log",
            port=port,
            command=command,
            ready_path="/health",
        )

    return {"rendered": rendered, "naive": naive}


def measure_once(service: Service, shape: Shape) -> dict[str, Any]:
    service.start(timeout=120)
    try:
        warmup = inference.LoadShape(clients=2, requests=WARMUP_REQUESTS, health_interval=0.05)
        inference.predict_load(service.port, warmup)
        load = inference.LoadShape(clients=shape.clients, requests=shape.requests)
        return inference.predict_load(service.port, load).summary()
    finally:
        service.stop()


def compare(
    deployment: InferenceDeployment, shape: Shape, workdir: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    logs = workdir / "inference-logs"
    logs.mkdir(exist_ok=True)
    start = contenders(deployment, logs)
    runs: dict[str, list[dict[str, Any]]] = {"rendered": [], "naive": []}
    load_average = []
    for number in range(shape.rounds):
        load_average.append(os.getloadavg()[0])
        order = ["rendered", "naive"] if number % 2 == 0 else ["naive", "rendered"]
        for name in order:
            result = measure_once(start[name](number), shape)
            say(
                f"  {name}: {result['requests_per_s']:,.1f} predictions/s, p50/p99"
                f" {result['p50_ms']}/{result['p99_ms']} ms, /health p99"
                f" {result['health_p99_ms']} ms, statuses {result['statuses']}"
            )
            runs[name].append(result)
    packages = package_versions(deployment.venv, ["fastapi", "uvicorn", "onnxruntime", "numpy"])
    packages.pop("python")  # the machine table names it
    return {
        "shape": {
            "clients": shape.clients,
            "requests": shape.requests,
            "rounds": shape.rounds,
            "rows": inference.BATCH_ROWS,
            "layers": list(inference.HEAVY_LAYERS),
            "health_interval_ms": inference.LoadShape.health_interval * 1000,
        },
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_per_round": load_average,
        "packages": packages,
        "rendered": {
            "description": "the bake with inference=yes, one gunicorn worker, its defaults"
            " (threads from the usable CPUs, one inference at a time, 16 waiting, then 503)",
            "runs": runs["rendered"],
        },
        "naive": {
            "description": "an `async def` FastAPI route calling `session.run` on the event"
            " loop, ONNX Runtime's default threads, no queue limit; gunicorn with the same"
            " worker class, one worker",
            "runs": runs["naive"],
        },
    }


def median_of(result: dict[str, Any], contender: str, key: str) -> float:
    return statistics.median(run[key] for run in result[contender]["runs"])


def throughput_ratio(result: dict[str, Any]) -> float:
    """Median rendered predictions/s over the median naive one."""
    return median_of(result, "rendered", "requests_per_s") / median_of(
        result, "naive", "requests_per_s"
    )


def health_p99_ratio(result: dict[str, Any]) -> float:
    """Median rendered /health p99 under load over the median naive one."""
    return median_of(result, "rendered", "health_p99_ms") / median_of(
        result, "naive", "health_p99_ms"
    )
