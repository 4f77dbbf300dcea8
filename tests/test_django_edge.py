"""The Django service at its edge: what a client, a proxy or a broken configuration can make it do.

Each test runs the service as its image does (gunicorn with gunicorn.conf.py, from only the
files the Dockerfile copies), on the host, against the real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml

from testkit.services import (
    Service,
    collect_static,
    database_url,
    in_venv,
    throwaway_database,
)

pytestmark = pytest.mark.reliability

IN_NAMESPACE = ["ip", "netns", "exec"]
TO_HOST = ["10.200.0.1"]
CREATE_ADMIN = ["python", "manage.py", "createsuperuser", "--noinput"]
# What production settings refuse to start without, besides DATABASE_URL.
POD = {"ENVIRONMENT": "production", "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "localhost"}

# A password that must never reach output.
SECRET = "S3cretPassw0rd"  # noqa: S105


def image_tree(project: Path, destination: Path) -> Path:
    """What the Dockerfile copies into /app: no .env, no tests."""
    destination.mkdir(parents=True)
    for line in (project / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line and "requirements" not in line:
            for name in line.split()[1:-1]:
                source = project / name.rstrip("/")
                if source.is_dir():
                    shutil.copytree(source, destination / source.name)
                else:
                    shutil.copy2(source, destination / source.name)
    return destination


@pytest.fixture(scope="module")
def django_image(
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, Path]:
    """(baked project, its image's /app, the image's venv) for Django on PostgreSQL."""
    project = baked(framework="django", database="postgresql", exposure="ingress")
    venv = project_venv(project)
    app = image_tree(project, tmp_path_factory.mktemp("django-image") / "app")
    collect_static(app, venv)
    return project, app, venv


@pytest.fixture(scope="module")
def migrated(django_image: tuple[Path, Path, Path]) -> Iterator[str]:
    _, app, venv = django_image
    with throwaway_database() as name:
        url = database_url(name)
        result = run(app, venv, ["python", "manage.py", "migrate_locked"], **POD, DATABASE_URL=url)
        assert result.returncode == 0, result.stdout + result.stderr
        yield url


def run(app: Path, venv: Path, command: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        in_venv(venv, command),
        cwd=app,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def serve(
    django_image: tuple[Path, Path, Path], migrated: str, tmp_path: Path
) -> Iterator[Callable[..., Service]]:
    _, app, venv = django_image
    started: list[Service] = []

    def start(**env: str) -> Service:
        base = {
            "SECRET_KEY": "k" * 50,
            "DATABASE_URL": migrated,
            "WEB_CONCURRENCY": "1",
            "SHUTDOWN_DRAIN_SECONDS": "0",
        }
        service = Service(app, venv, {**base, **env}, tmp_path / f"server{len(started)}.log")
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


def raw(port: int, request: bytes, host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse_response(data)


OUTSIDE_CLIENT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=10) as sock:
    sock.sendall(sys.stdin.buffer.read())
    while chunk := sock.recv(65536):
        sys.stdout.buffer.write(chunk)
"""


@pytest.fixture(scope="module")
def outside() -> Iterator[Callable[[int, bytes], tuple[int, dict[str, str], bytes]]]:
    """A client on another host: a network namespace behind a veth pair, 10.200.0.2 -> .1.

    Its requests reach the service from a non-loopback address, as an ingress controller's
    (or any other pod's) do.
    """
    namespace, host_end, far_end = (
        f"tpl-edge-{os.getpid()}",
        f"tple{os.getpid()}",
        f"tplf{os.getpid()}",
    )
    commands = [
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", far_end],
        ["ip", "link", "set", far_end, "netns", namespace],
        ["ip", "addr", "add", "10.200.0.1/30", "dev", host_end],
        ["ip", "link", "set", host_end, "up"],
        ["ip", "netns", "exec", namespace, "ip", "addr", "add", "10.200.0.2/30", "dev", far_end],
        ["ip", "netns", "exec", namespace, "ip", "link", "set", far_end, "up"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, timeout=10)

        def send(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
            answer = subprocess.run(
                [
                    *IN_NAMESPACE,
                    namespace,
                    sys.executable,
                    "-c",
                    OUTSIDE_CLIENT,
                    *TO_HOST,
                    str(port),
                ],
                input=request,
                capture_output=True,
                check=True,
                timeout=30,
            ).stdout
            return parse_response(answer)

        yield send
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.lower(), value.strip())
        if name.lower() == "set-cookie":
            headers.setdefault("cookies", "")
            headers["cookies"] += value.strip().split(";")[0] + "; "
    return int(status_line.split()[1]), headers, body


# Item 4: a malformed DATABASE_URL.
@pytest.mark.parametrize(
    "url",
    [f"app:{SECRET}@db.example.com:5432/app", f"//app:{SECRET}@db.example.com/app", SECRET],
    ids=["no-scheme", "no-scheme-slashes", "bare-word"],
)
def test_a_malformed_database_url_stops_the_process_with_one_line_and_no_secret(
    django_image: tuple[Path, Path, Path], url: str
) -> None:
    _, app, venv = django_image
    env = {"ENVIRONMENT": "production", "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "x"}

    for command in (
        ["python", "manage.py", "migrate_locked"],
        ["gunicorn", "-c", "gunicorn.conf.py"],
    ):
        result = run(app, venv, command, **env, DATABASE_URL=url, PORT="0")
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert SECRET not in output
        assert SECRET[1:] not in output
        assert [line for line in output.splitlines() if line.strip()] == [
            "Configuration error: DATABASE_URL is not a postgresql://USER:PASSWORD@HOST:PORT/NAME"
            " URL (its value is not shown: it may hold a password)"
        ]


# Item 7: the image without its ConfigMap.
def test_the_image_is_production_unless_told_otherwise(
    django_image: tuple[Path, Path, Path], serve: Callable[..., Service]
) -> None:
    _, app, venv = django_image
    refused = run(app, venv, ["python", "manage.py", "check"], SECRET_KEY="k" * 50)
    assert refused.returncode != 0
    assert "ALLOWED_HOSTS" in refused.stderr

    service = serve(ALLOWED_HOSTS="localhost")
    status, headers, body = raw(
        service.port, b"GET /no/such/page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": "Not found"}


# Item 8: ALLOWED_HOSTS in the cluster.
@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_only_the_services_own_names_are_allowed_hosts(
    django_image: tuple[Path, Path, Path], serve: Callable[..., Service], overlay: str
) -> None:
    project, _, _ = django_image
    built = subprocess.run(
        ["kubectl", "kustomize", str(project / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"},
    )
    if built.returncode != 0:
        # Without secrets.env: build from the committed example, as `make validate` does.
        shutil.copy(
            project / "k8s" / "overlays" / overlay / "secrets.env.example",
            project / "k8s" / "overlays" / overlay / "secrets.env",
        )
        built = subprocess.run(
            ["kubectl", "kustomize", str(project / "k8s" / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"},
        )
    documents = list(yaml.safe_load_all(built.stdout))
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    namespace = next(d for d in documents if d["kind"] == "Deployment")["metadata"]["namespace"]
    service = serve(ENVIRONMENT="production", ALLOWED_HOSTS=config["ALLOWED_HOSTS"])

    def status(host: str) -> int:
        request = f"GET /api/v1/items HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        return raw(service.port, request.encode())[0]

    name = project.name
    for own in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc"):
        assert status(own) == 200, own
    assert status(f"{name}.{namespace}.svc.cluster.local") == 200
    for foreign in (
        f"other.{namespace}.svc",
        f"other.{namespace}.svc.cluster.local",
        "kube-dns.kube-system.svc.cluster.local",
        f"{name}.elsewhere.svc.cluster.local",
    ):
        assert status(foreign) == 400, foreign


# Item 9: HEAD on the probes.
def test_head_on_the_probes_answers_like_get_without_a_body(
    serve: Callable[..., Service],
) -> None:
    service = serve(ENVIRONMENT="production", ALLOWED_HOSTS="localhost")

    for path in ("/health", "/ready"):
        request = f"HEAD {path} HTTP/1.1\r\nHost: 10.1.2.3:8000\r\nConnection: close\r\n\r\n"
        status, headers, body = raw(service.port, request.encode())
        assert (path, status, body) == (path, 200, b"")
        assert headers["content-type"] == "application/json"


# Item 5: request ids and client addresses from the client.
def test_only_well_formed_request_ids_and_trusted_forwarding_headers_are_believed(
    serve: Callable[..., Service],
) -> None:
    service = serve(ENVIRONMENT="production", ALLOWED_HOSTS="localhost", LOG_LEVEL="INFO")
    hostile_ids = [
        "<script>alert(1)</script>",
        '{"level": "critical"}',
        "a" * 8000,
        "not-a-uuid",
    ]
    for request_id in hostile_ids:
        request = (
            f"GET /api/v1/items HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: {request_id}\r\n"
            "X-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 203.0.113.10\r\nConnection: close\r\n\r\n"
        )
        status, headers, _ = raw(service.port, request.encode())
        assert status == 200
        assert headers["x-request-id"] != request_id
        assert len(headers["x-request-id"]) == 36
    merged = (
        "GET /api/v1/items HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: " + "a" * 32 + "\r\n"
        "X-Request-ID: " + "b" * 32 + "\r\nConnection: close\r\n\r\n"
    )
    assert raw(service.port, merged.encode())[1]["x-request-id"] not in ("a" * 32, "b" * 32)
    good = "0123456789abcdef0123456789abcdef"
    request = (
        f"GET /api/v1/items HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: {good}\r\n"
        "Connection: close\r\n\r\n"
    )
    assert raw(service.port, request.encode())[1]["x-request-id"] == good

    events = [e for e in service.log_events() if e.get("event") == "request_started"]
    logged = json.dumps(events)
    assert "<script>" not in logged
    assert "a" * 100 not in logged
    # The peer (loopback) is the trusted proxy by default, and it forwarded no address here
    # except in the hostile requests, which came from it too: those name 203.0.113.9 (XFF,
    # appended by the proxy) and never X-Real-IP's.
    assert "203.0.113.10" not in logged


def pod_config(project: Path) -> dict[str, str]:
    """The ConfigMap every pod gets (k8s/base/config.env)."""
    lines = (project / "k8s" / "base" / "config.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def ingress_host(project: Path) -> str:
    ingress = yaml.safe_load((project / "k8s" / "base" / "ingress.yaml").read_text())
    return ingress["spec"]["rules"][0]["host"]


def via_ingress(method: str, path: str, host: str, extra: str = "", body: str = "") -> bytes:
    """A request as an ingress controller forwards it after ending TLS."""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Proto: https\r\n"
        f"X-Forwarded-For: 198.51.100.7, 203.0.113.9\r\nX-Real-IP: 203.0.113.10\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()


def request_ips(service: Service, path: str) -> list[str]:
    """The client address logged for each request to `path` (startup probes come from loopback)."""
    return [
        event["ip"]
        for event in service.log_events()
        if event.get("event") == "request_started"
        and event["request"].split()[1].partition("?")[0] == path
    ]


# Items 3 and 5: X-Forwarded-* from a peer that is not a trusted proxy.
def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    django_image: tuple[Path, Path, Path],
    serve: Callable[..., Service],
    outside: Callable[[int, bytes], tuple[int, dict[str, str], bytes]],
) -> None:
    project, _, _ = django_image
    host = ingress_host(project)
    service = serve(ENVIRONMENT="production", ALLOWED_HOSTS=host)  # trusts loopback only

    status, headers, _ = outside(service.port, via_ingress("GET", "/api/v1/items", host))

    assert status == 200
    assert "strict-transport-security" not in headers
    assert request_ips(service, "/api/v1/items") == ["10.200.0.2"]


# Item 3: the admin behind the generated Ingress, from its ConfigMap.
def test_admin_login_works_through_the_ingress(
    django_image: tuple[Path, Path, Path],
    migrated: str,
    serve: Callable[..., Service],
    outside: Callable[[int, bytes], tuple[int, dict[str, str], bytes]],
) -> None:
    project, app, venv = django_image
    host = ingress_host(project)
    config = {**pod_config(project), "ALLOWED_HOSTS": host}
    created = run(
        app,
        venv,
        [*CREATE_ADMIN, "--username", "ingress-admin", "--email", "admin@example.com"],
        **config,
        SECRET_KEY="k" * 50,
        DATABASE_URL=migrated,
        DJANGO_SUPERUSER_PASSWORD=SECRET,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    service = serve(**config)

    status, headers, page = outside(service.port, via_ingress("GET", "/admin/login/", host))
    assert status == 200
    assert headers["strict-transport-security"].startswith("max-age=")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1].decode()
    form = urlencode(
        {
            "csrfmiddlewaretoken": token,
            "username": "ingress-admin",
            "password": SECRET,
            "next": "/admin/",
        }
    )
    status, headers, body = outside(
        service.port,
        via_ingress(
            "POST",
            "/admin/login/?next=/admin/",
            host,
            f"Origin: https://{host}\r\nReferer: https://{host}/admin/login/\r\n"
            f"Cookie: {headers['cookies']}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n",
            form,
        ),
    )

    assert (status, headers.get("location")) == (302, "/admin/"), body[:300]
    assert "sessionid=" in headers["cookies"]
    # The client is the address the ingress appended, not what the client claimed before it.
    assert request_ips(service, "/admin/login/") == ["203.0.113.9", "203.0.113.9"]


# Item 10: what gunicorn answers itself, before Django sees the request.
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"NOT AN HTTP REQUEST\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n", 400),
    ],
    ids=["request-line-too-long", "header-too-large", "garbage", "invalid-header-name"],
)
def test_the_servers_own_errors_are_json_like_the_apps(
    serve: Callable[..., Service], request_bytes: bytes, status: int
) -> None:
    service = serve(ENVIRONMENT="production", ALLOWED_HOSTS="localhost")

    answer = raw(service.port, request_bytes)

    assert answer[0] == status
    assert answer[1]["content-type"] == "application/json"
    assert set(json.loads(answer[2])) == {"detail"}


# Item 20: PostgreSQL down while developing.
def test_without_postgresql_make_test_and_make_run_say_so_in_one_line(
    django_image: tuple[Path, Path, Path],
) -> None:
    project, _, venv = django_image
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens once the socket is closed
    down = f"postgresql://postgres@127.0.0.1:{closed}/postgres"
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TEST_DATABASE_URL": down,
        "DATABASE_URL": down,
    }

    outputs = {}
    for target in ("test", "run"):
        make = subprocess.Popen(
            ["make", target, f"VENV={venv}", f"PORT={closed}", "PYTEST_ARGS=-p no:cacheprovider"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = make.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            output, _ = make.communicate()
            pytest.fail(f"make {target} still runs after 45 s:\n{output[-2000:]}")
        assert make.returncode != 0, output
        outputs[target] = output

    for target, output in outputs.items():
        said = [line for line in output.splitlines() if "unreachable" in line]
        assert len(said) == 1, f"make {target}:\n{output[-3000:]}"
        assert f"127.0.0.1:{closed}" in said[0]
        assert "docker compose up -d db" in said[0]
        assert "Traceback" not in output
        assert "Warning" not in output
