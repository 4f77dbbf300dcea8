"""POST /api/v1/predict: the model's outputs for a batch of rows (README, "Model inference")."""

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from {{ cookiecutter.package_name }}.api.responses import UNPARSEABLE_BODY, Responses
from {{ cookiecutter.package_name }}.inference.runner import InferenceRunner, QueueFull
from {{ cookiecutter.package_name }}.inference.schemas import PredictRequest, PredictResponse
from {{ cookiecutter.package_name }}.schemas import Error

router = APIRouter(prefix="/api/v1", tags=["inference"])

QUEUE_FULL: Responses = {
    503: {"model": Error, "description": "Every inference slot is taken: retry after Retry-After"}
}


def instance_errors(instances: list[list[float]], width: int, max_rows: int) -> list[Any]:
    """What the schema cannot know: the batch limit and the model's input width."""
    if len(instances) > max_rows:
        return [
            {
                "type": "too_long",
                "loc": ("body", "instances"),
                "msg": f"at most {max_rows} instances per request, got {len(instances)}",
            }
        ]
    return [
        {
            "type": "value_error",
            "loc": ("body", "instances", row),
            "msg": f"must have {width} values (the model's input width), got {len(values)}",
        }
        for row, values in enumerate(instances)
        if len(values) != width
    ]


@router.post(
    "/predict", response_model=PredictResponse, responses={**UNPARSEABLE_BODY, **QUEUE_FULL}
)
async def predict(body: PredictRequest, request: Request) -> PredictResponse | JSONResponse:
    runner: InferenceRunner = request.app.state.inference
    model = runner.model
    max_rows = request.app.state.settings.inference_max_batch_size
    if errors := instance_errors(body.instances, model.width, max_rows):
        raise RequestValidationError(errors)
    features = np.asarray(body.instances, dtype=np.float32)
    try:
        outputs = await runner.predict(features)
    except QueueFull:
        return JSONResponse(
            {"detail": "Every inference slot is taken, try again later"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    return PredictResponse(model=model.name, version=model.version, predictions=outputs.tolist())
