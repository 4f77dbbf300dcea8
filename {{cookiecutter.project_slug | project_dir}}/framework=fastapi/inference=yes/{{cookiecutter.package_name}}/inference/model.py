"""The model the service serves: checked against its checksum, loaded, warmed up.

Any ONNX model with one float32 input of shape [batch, width] (the batch dynamic, the width
fixed) and a float output named MODEL_OUTPUT of shape [batch, n] can be served; a PyTorch model
gets there through `torch.onnx.export` (README, "Model inference").
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import structlog

from {{ cookiecutter.package_name }}.core.settings import Settings

logger = structlog.get_logger(__name__)

FLOAT_TENSOR = "tensor(float)"


class ModelError(Exception):
    """The model cannot be served; the message is one line naming the file and the reason."""


@dataclass(frozen=True)
class Model:
    name: str
    version: str
    session: ort.InferenceSession
    input_name: str
    output_name: str
    # Values per row: the input's fixed second dimension.
    width: int

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Run the model on a [rows, width] float32 batch; blocks the calling thread."""
        (outputs,) = self.session.run([self.output_name], {self.input_name: features})
        return np.asarray(outputs)


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # From the CPU quota (concurrency.py): ONNX Runtime would size its pool from the node's cores.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Waiting pool threads sleep rather than spin: spinning spends the quota requests need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def read_verified(path: Path, sha256: str) -> bytes:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"MODEL_PATH {path}: {exc.strerror}") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256:
        raise ModelError(
            f"MODEL_PATH {path}: its sha256 is {digest}, MODEL_SHA256 expects {sha256}"
        )
    return content


def load(settings: Settings, threads: int) -> Model:
    """The model at MODEL_PATH, loaded and run once on zeros; raises ModelError."""
    started = time.perf_counter()
    path = settings.model_path
    content = read_verified(path, settings.model_sha256)
    try:
        session = ort.InferenceSession(
            content, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors share no base class but Exception
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"MODEL_PATH {path}: ONNX Runtime cannot load it: {reason}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"MODEL_PATH {path}: takes {len(inputs)} inputs, the service feeds one")
    (model_input,) = inputs
    shape = model_input.shape
    if model_input.type != FLOAT_TENSOR or len(shape) != 2 or not isinstance(shape[1], int):
        raise ModelError(
            f"MODEL_PATH {path}: its input {model_input.name!r} is {model_input.type} {shape},"
            " the service feeds float32 [batch, width]"
        )
    if isinstance(shape[0], int):
        raise ModelError(
            f"MODEL_PATH {path}: its input's batch dimension is fixed at {shape[0]}; export it"
            " with a dynamic first axis"
        )
    outputs = {output.name: output for output in session.get_outputs()}
    output = outputs.get(settings.model_output)
    if output is None or output.type != FLOAT_TENSOR:
        raise ModelError(
            f"MODEL_PATH {path}: has no float output {settings.model_output!r} (MODEL_OUTPUT);"
            f" its outputs: {', '.join(sorted(outputs))}"
        )
    model = Model(
        name=settings.model_name,
        version=settings.model_version,
        session=session,
        input_name=model_input.name,
        output_name=output.name,
        width=shape[1],
    )
    # The first run allocates and plans; done here, before /ready, not on a client's request.
    try:
        warm = model.predict(np.zeros((1, model.width), dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - as above
        raise ModelError(f"MODEL_PATH {path}: the warm-up inference failed: {exc}") from None
    if warm.ndim != 2 or warm.shape[0] != 1:
        raise ModelError(
            f"MODEL_PATH {path}: {output.name!r} came out {list(warm.shape)} for one row,"
            " the service answers [batch, n]"
        )
    logger.info(
        "model loaded",
        model=model.name,
        version=model.version,
        path=str(path),
        intra_op_threads=threads,
        seconds=round(time.perf_counter() - started, 3),
    )
    return model
