"""Turn a missing database into a fast 503 with a JSON body, not a 500 and a traceback."""

import structlog
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from {{ cookiecutter.package_name }}.core.middleware import GetResponse

logger = structlog.stdlib.get_logger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable", error=type(exception).__name__)
        response = JsonResponse({"detail": "Database unavailable, try again later"}, status=503)
        response["Retry-After"] = "1"
        return response
