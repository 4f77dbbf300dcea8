"""Middleware for running behind Kubernetes: probes and request ids."""

from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

from {{ cookiecutter.package_name }}.core import views

GetResponse = Callable[[HttpRequest], HttpResponse]


class ProbeMiddleware:
    """Answer /health and /ready before anything reads the Host header.

    Kubelet addresses probes to the pod's IP, which ALLOWED_HOSTS rightly does not list; the
    probes must not depend on it, on sessions, or on an HTTPS redirect.
    """

    probes = {"/health": views.health, "/ready": views.ready}

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = self.probes.get(request.path_info)
        if probe is not None and request.method == "GET":
            return probe(request)
        return self.get_response(request)


class RequestIdHeaderMiddleware:
    """Return the request id django-structlog bound, so a client can quote it."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id is not None:
            response["X-Request-ID"] = request_id
        return response
