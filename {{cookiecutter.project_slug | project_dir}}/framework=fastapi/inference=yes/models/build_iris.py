"""Build the example model, models/iris.onnx: `make model`.

A scikit-learn pipeline (standard scaling, logistic regression) trained on the iris measurements
that scikit-learn ships inside its wheel, so the build needs no download, and converted to ONNX
with skl2onnx. With the locked versions the file comes out byte for byte the same: its checksum,
MODEL_SHA256's default, still holds. A PyTorch model takes the other road, `torch.onnx.export`
(README, "Model inference").
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODEL_FILE = Path(__file__).with_name("iris.onnx")
# The oldest opset every supported ONNX Runtime release runs.
TARGET_OPSET = 17


def build() -> bytes:
    features, species = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(features.astype(np.float32), species)
    model = to_onnx(
        pipeline,
        # A dynamic batch of rows of four measurements: the shape the service serves.
        initial_types=[("features", FloatTensorType([None, 4]))],
        # Plain tensors out ("label", "probabilities"), not skl2onnx's list of dictionaries.
        options={id(pipeline): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    return model.SerializeToString()


def main() -> None:
    content = build()
    MODEL_FILE.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    print(f"{MODEL_FILE.name}: {len(content)} bytes, MODEL_SHA256 {digest}", file=sys.stderr)


if __name__ == "__main__":
    main()
