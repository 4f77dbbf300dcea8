"""Inference off the event loop, on a bounded pool, behind a bounded queue.

The model runs on INFERENCE_CONCURRENCY threads of its own, so the event loop keeps answering
/health and every other route while it computes (ONNX Runtime releases the GIL). Requests that
find every thread busy wait, at most INFERENCE_QUEUE_SIZE of them; the next is turned away at
once (503 with Retry-After) rather than waiting longer and longer: another pod may have room.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from {{ cookiecutter.package_name }}.core.metrics import (
    INFERENCE_BATCH_SIZE,
    INFERENCE_DURATION,
    INFERENCE_QUEUE_DEPTH,
    INFERENCE_REJECTED,
)
from {{ cookiecutter.package_name }}.inference.model import Model


class QueueFull(Exception):
    """Every inference thread is busy and the queue is full."""


class InferenceRunner:
    def __init__(self, model: Model, *, concurrency: int, queue_size: int) -> None:
        self.model = model
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="inference")
        self._threads = asyncio.Semaphore(concurrency)
        self._capacity = concurrency + queue_size
        # Requests admitted and not finished: waiting for a thread, or running on one.
        self._admitted = 0

    async def predict(self, features: np.ndarray) -> np.ndarray:
        """The model's outputs for the batch; raises QueueFull when no place is left."""
        if self._admitted >= self._capacity:
            INFERENCE_REJECTED.inc()
            raise QueueFull
        self._admitted += 1
        INFERENCE_QUEUE_DEPTH.inc()
        try:
            await self._threads.acquire()
        except BaseException:
            self._admitted -= 1
            raise
        finally:
            INFERENCE_QUEUE_DEPTH.dec()
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._run, features)
        # The thread and the place are given back when the run ends, even if the request is
        # cancelled first: the thread cannot be stopped, so it still counts until then.
        future.add_done_callback(self._release)
        return await asyncio.shield(future)

    def _run(self, features: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        outputs = self.model.predict(features)
        INFERENCE_DURATION.observe(time.perf_counter() - started)
        INFERENCE_BATCH_SIZE.observe(len(features))
        return outputs

    def _release(self, _: object) -> None:
        self._threads.release()
        self._admitted -= 1

    def close(self) -> None:
        """Wait for runs in progress, then stop the threads."""
        self._executor.shutdown(wait=True)
