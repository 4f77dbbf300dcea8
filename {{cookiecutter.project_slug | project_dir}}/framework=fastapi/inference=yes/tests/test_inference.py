"""The predict endpoint, the bounded runner and the model checks, on the shipped model."""

import asyncio
import hashlib
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper
from prometheus_client import REGISTRY

from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.inference import model as inference_model
from {{ cookiecutter.package_name }}.inference.runner import InferenceRunner, QueueFull
from {{ cookiecutter.package_name }}.main import create_app

PREDICT = "/api/v1/predict"
SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
MODELS = Path(__file__).resolve().parents[1] / "models"


class BlockedModel:
    """Stands in for the model while a test holds its inferences."""

    name, version, width = "blocked", "0", 4

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    def predict(self, features: np.ndarray) -> np.ndarray:
        self.started.release()
        self.release.wait(timeout=10)
        return np.zeros((len(features), 3), dtype=np.float32)


def write_model(path: Path, input_shape: list[int | str | None], output: str = "y") -> Settings:
    """An Identity model with the given input shape, and settings that accept its checksum."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], [output])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, input_shape)],
    )
    content = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    content.ir_version = 9
    path.write_bytes(content.SerializeToString())
    return settings_for(path, output=output)


def settings_for(path: Path, output: str = "probabilities") -> Settings:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Settings(model_path=path, model_sha256=digest, model_output=output)


async def test_predicts_the_species_of_each_row(client: httpx.AsyncClient) -> None:
    response = await client.post(PREDICT, json={"instances": [SETOSA, VIRGINICA]})
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"]) == ("iris", "1")
    setosa, virginica = body["predictions"]
    assert np.argmax(setosa) == 0
    assert np.argmax(virginica) == 2
    assert sum(setosa) == pytest.approx(1, abs=1e-5)


async def test_each_inference_is_measured(client: httpx.AsyncClient) -> None:
    before = REGISTRY.get_sample_value("inference_batch_size_sum") or 0
    response = await client.post(PREDICT, json={"instances": [SETOSA, SETOSA, SETOSA]})
    assert response.status_code == 200
    assert REGISTRY.get_sample_value("inference_batch_size_sum") == before + 3


@pytest.mark.parametrize(
    ("instances", "loc"),
    [
        pytest.param([[5.1, 3.5, 1.4]], ["body", "instances", 0], id="too-narrow"),
        pytest.param([SETOSA, [*SETOSA, 1.0]], ["body", "instances", 1], id="too-wide"),
        pytest.param([SETOSA] * 65, ["body", "instances"], id="batch-over-the-limit"),
        pytest.param([], ["body", "instances"], id="no-rows"),
        pytest.param([["5.1", 3.5, 1.4, 0.2]], ["body", "instances", 0, 0], id="string"),
        pytest.param([[True, 3.5, 1.4, 0.2]], ["body", "instances", 0, 0], id="boolean"),
        pytest.param([[None, 3.5, 1.4, 0.2]], ["body", "instances", 0, 0], id="null"),
        pytest.param("5.1,3.5,1.4,0.2", ["body", "instances"], id="not-a-list"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    client: httpx.AsyncClient, instances: object, loc: list[object]
) -> None:
    response = await client.post(PREDICT, json={"instances": instances})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    # The service stays up: the next good request is answered.
    assert (await client.post(PREDICT, json={"instances": [SETOSA]})).status_code == 200


async def test_non_finite_values_are_refused(client: httpx.AsyncClient) -> None:
    body = '{"instances": [[NaN, 3.5, 1.4, 0.2]]}'
    response = await client.post(
        PREDICT, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_a_full_queue_is_answered_503_at_once(settings: Settings) -> None:
    blocked = BlockedModel()
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        app.state.inference = InferenceRunner(blocked, concurrency=1, queue_size=1)
        running = asyncio.create_task(client.post(PREDICT, json={"instances": [SETOSA]}))
        waiting = asyncio.create_task(client.post(PREDICT, json={"instances": [SETOSA]}))
        assert await asyncio.to_thread(blocked.started.acquire, timeout=5)
        await asyncio.sleep(0.05)
        refused = await client.post(PREDICT, json={"instances": [SETOSA]})
        # The event loop is not held by the inference in progress.
        health = await client.get("/health")
        blocked.release.set()
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert health.status_code == 200
        assert [(await task).status_code for task in (running, waiting)] == [200, 200]


async def test_a_cancelled_request_keeps_its_thread_until_the_run_ends() -> None:
    blocked = BlockedModel()
    runner = InferenceRunner(blocked, concurrency=1, queue_size=0)
    features = np.zeros((1, 4), dtype=np.float32)
    first = asyncio.create_task(runner.predict(features))
    assert await asyncio.to_thread(blocked.started.acquire, timeout=5)
    first.cancel()
    await asyncio.sleep(0.05)
    # Still running on its thread: no second inference may start beside it.
    with pytest.raises(QueueFull):
        await runner.predict(features)
    blocked.release.set()
    await asyncio.sleep(0.1)
    assert (await runner.predict(features)).shape == (1, 3)
    runner.close()


def test_the_shipped_model_matches_its_checksum() -> None:
    content = (MODELS / "iris.onnx").read_bytes()
    assert hashlib.sha256(content).hexdigest() == Settings().model_sha256


def test_make_model_rebuilds_the_same_bytes() -> None:
    from models.build_iris import build

    assert build() == (MODELS / "iris.onnx").read_bytes()


def test_a_missing_model_is_one_line_naming_its_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    settings = Settings(model_path=path)
    with pytest.raises(inference_model.ModelError, match=rf"^MODEL_PATH {path}: No such file"):
        inference_model.load(settings, threads=1)


def test_a_changed_model_is_refused_by_its_checksum(tmp_path: Path) -> None:
    path = tmp_path / "iris.onnx"
    path.write_bytes((MODELS / "iris.onnx").read_bytes() + b"\0")
    with pytest.raises(inference_model.ModelError, match="MODEL_SHA256 expects"):
        inference_model.load(Settings(model_path=path), threads=1)


def test_a_file_that_is_no_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(inference_model.ModelError, match="ONNX Runtime cannot load it"):
        inference_model.load(settings_for(path), threads=1)


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        pytest.param([None, 2, 2], "the service feeds float32", id="three-dimensions"),
        pytest.param([None, "width"], "the service feeds float32", id="dynamic-width"),
        pytest.param([1, 4], "batch dimension is fixed", id="fixed-batch"),
    ],
)
def test_a_model_of_another_shape_is_refused(
    tmp_path: Path, shape: list[int | str | None], reason: str
) -> None:
    settings = write_model(tmp_path / "model.onnx", shape)
    with pytest.raises(inference_model.ModelError, match=reason):
        inference_model.load(settings, threads=1)


def test_a_missing_output_is_refused_naming_the_outputs(tmp_path: Path) -> None:
    settings = write_model(tmp_path / "model.onnx", [None, 4], output="scores")
    settings = settings.model_copy(update={"model_output": "probabilities"})
    with pytest.raises(inference_model.ModelError, match="its outputs: scores"):
        inference_model.load(settings, threads=1)


def test_any_model_of_the_served_shape_is_served(tmp_path: Path) -> None:
    settings = write_model(tmp_path / "model.onnx", [None, 4], output="probabilities")
    model = inference_model.load(settings, threads=1)
    features = np.array([SETOSA], dtype=np.float32)
    np.testing.assert_array_equal(model.predict(features), features)
