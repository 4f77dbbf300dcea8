"""Probes, and the JSON error pages the URLconf names."""

import structlog
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse

from {{ cookiecutter.package_name }}.core.shutdown import is_draining

logger = structlog.stdlib.get_logger(__name__)


def health(request: HttpRequest) -> JsonResponse:
    """Liveness: answers as long as the process serves requests."""
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    if is_draining():
        return not_ready("shutdown", "draining")
    # Add a check here for each service the app comes to depend on, each under a time limit.
    return JsonResponse({"status": "ready", "checks": {}})


def not_ready(check: str, reason: str) -> JsonResponse:
    logger.warning("readiness check failed", check=check, reason=reason)
    return JsonResponse({"status": "unavailable", "checks": {check: reason}}, status=503)


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    # Django reports a body over DATA_UPLOAD_MAX_MEMORY_SIZE as a 400; 413 tells the client why.
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse({"detail": "Request body too large"}, status=413)
    return JsonResponse({"detail": "Bad request"}, status=400)


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse({"detail": "Not found"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal server error"}, status=500)
