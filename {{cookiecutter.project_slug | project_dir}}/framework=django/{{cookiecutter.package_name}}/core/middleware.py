"""Middleware for running behind Kubernetes: probes, request ids and the client's address."""

import ipaddress
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from functools import cache
from typing import Any

import structlog
from django.conf import settings
from django.core.signals import got_request_exception
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from {{ cookiecutter.package_name }}.core import views

GetResponse = Callable[[HttpRequest], HttpResponse]
logger = structlog.stdlib.get_logger(__name__)


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
        # HEAD too: load balancers and some probes use it; gunicorn sends no body for it.
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)


# What proxies and meshes send (a UUID, or hex digits like nginx's $request_id).
# Anything else, a merged pair of headers included, is replaced by a fresh id.
REQUEST_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[0-9a-fA-F]{16,64}")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@cache
def trusted_proxies() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """FORWARDED_ALLOW_IPS as networks; None when it is "*" (every peer is trusted)."""
    if "*" in settings.FORWARDED_ALLOW_IPS:
        return None
    allowed = settings.FORWARDED_ALLOW_IPS
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in allowed)


def parse_address(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def is_trusted(address: IPAddress | None) -> bool:
    networks = trusted_proxies()
    if networks is None:
        return True
    return address is not None and any(address in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The client's address: the peer's, or the one the trusted proxies in front report.

    X-Forwarded-For is read from the right, where the nearest proxy appended; the first address
    no trusted proxy owns is the client. Any peer can send the header, so it counts only when
    the peer itself is a trusted proxy (FORWARDED_ALLOW_IPS, as for gunicorn's X-Forwarded-Proto).
    """
    peer = request.META.get("REMOTE_ADDR", "")
    if not is_trusted(parse_address(peer)):
        return peer
    hops = [parse_address(hop) for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    client = peer
    for hop in reversed(hops):
        if hop is None:
            break
        client = str(hop)
        if not is_trusted(hop):
            break
    return client


# Set while a request's failure has been logged, so that it is not logged as finished too.
failure_logged: ContextVar[bool] = ContextVar("failure_logged", default=False)


def described(request: HttpRequest) -> str:
    return f"{request.method} {request.get_full_path()}"


class RequestLogMiddleware:
    """Name each request, find its client, and log its start and its end.

    The id is the proxy's X-Request-ID when it is well formed, else a fresh UUID: no client
    writes markup or megabytes into the logs and responses. The client's address comes from
    forwarding headers only when a trusted proxy sent them. Both are bound to every log event of
    the request; the id is returned in the response's X-Request-ID.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request.META.get("HTTP_X_REQUEST_ID", "")
        if not REQUEST_ID.fullmatch(request_id):
            request_id = str(uuid.uuid4())
        address = client_address(request)
        request.META["REMOTE_ADDR"] = address
        token = failure_logged.set(False)
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id, ip=address):
                logger.info(
                    "request_started",
                    request=described(request),
                    user_agent=request.META.get("HTTP_USER_AGENT"),
                )
                response = self.get_response(request)
                code = response.status_code
                if not failure_logged.get():
                    log = logger.error if code >= 500 else logger.info
                    log = logger.warning if 400 <= code < 500 else log
                    log("request_finished", request=described(request), code=code)
        finally:
            failure_logged.reset(token)
        response["X-Request-ID"] = request_id
        return response


@receiver(got_request_exception, dispatch_uid="log_request_failure")
def log_request_failure(sender: Any, request: HttpRequest, **kwargs: Any) -> None:
    """An exception Django turned into a 500: logged once, with its traceback."""
    logger.exception("request_failed", request=described(request), code=500)
    failure_logged.set(True)
