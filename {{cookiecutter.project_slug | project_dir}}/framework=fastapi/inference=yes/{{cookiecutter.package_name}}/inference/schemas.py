"""The predict endpoint's request and response bodies."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# JSON numbers only: no strings, no booleans, no NaN or infinities.
Feature = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[list[Feature]] = Field(
        min_length=1,
        description="Rows of the model's input, each as wide as the model's input (4 for iris),"
        " at most INFERENCE_MAX_BATCH_SIZE rows.",
        examples=[[[5.1, 3.5, 1.4, 0.2]]],
    )


class PredictResponse(BaseModel):
    model: str
    version: str
    # One row of the model's output per instance, in order.
    predictions: list[list[float]]
