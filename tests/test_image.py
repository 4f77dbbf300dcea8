"""Each framework's image, the distroless one (and the inference one), built from its own
Dockerfile and run the way a cluster runs it.

buildah builds it (chroot isolation, host network) on local stand-ins for the base images; see
testkit/images.py. Every container and process started here is removed again.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from hooks.bakery.jinja import dockerfile_string
from testkit.images import (
    ISOLATION,
    Container,
    build_image,
    buildah,
    descendants,
    in_container,
    inspect_image,
    layer_sizes,
    process_status,
    stage_bases,
)
from testkit.services import (
    database_url,
    free_port,
    migrate_command,
    pod_environment,
    psql,
    throwaway_database,
)
from testkit.template import COOKIECUTTER_JSON, choice_options, defaults

pytestmark = pytest.mark.image

FRAMEWORKS = choice_options()["framework"]
OTHER_IMAGES = choice_options()["image"][1:]
# Each framework's image on the default runtime, and the default answers' on each other runtime
# (the default Python, 3.13, is the one the distroless image has).
BAKES = {
    **{framework: {"framework": framework} for framework in FRAMEWORKS},
    **{image: {"image": image} for image in OTHER_IMAGES},
}
# The Kubernetes termination budget: terminationGracePeriodSeconds.
TERMINATION_GRACE_SECONDS = 30
# Measured about 108 MB for FastAPI (on slim and distroless alike) and 99 MB for Django (the
# locked runtime dependencies, the code and Django's collected static files); caches or dev
# dependencies would blow this.
ADDED_SIZE_BUDGET = 130 * 10**6
COMPILER_NAMES = re.compile(r"([\w-]+-linux-gnu-)?(gcc|cc|c\+\+|g\+\+|clang|make)(-[\d.]+)?")
# What the distroless image leaves out: any shell, and the package manager.
SHELLS = ("sh", "bash", "dash", "rbash")
PACKAGE_MANAGER = ("apt", "apt-get", "dpkg")


@pytest.fixture(scope="session", params=BAKES)
def bake(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def answers(bake: str) -> dict[str, str]:
    return {**defaults(), "database": "postgresql", **BAKES[bake]}


@pytest.fixture(scope="session")
def framework(answers: dict[str, str]) -> str:
    return answers["framework"]


@pytest.fixture(scope="session")
def project(baked: Callable[..., Path], answers: dict[str, str]) -> Path:
    return baked(**answers)


@pytest.fixture(scope="session")
def image(project: Path, bake: str) -> str:
    return build_image(project, f"localhost/{project.name}:test-{bake}")


@pytest.fixture(scope="session")
def image_config(image: str) -> dict:
    return inspect_image(image)["OCIv1"]["config"]


@pytest.fixture
def container(image: str) -> Iterator[Container]:
    container = Container(image)
    yield container
    container.remove()


def http_status(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def wait_until_listening(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            http_status(port, "/health")
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
        else:
            return
    pytest.fail(f"server did not answer on port {port} within 60 s:\n{log.read_text()[-3000:]}")


def parent(pid: int) -> int:
    return int(process_status(pid)["PPid"])


def uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem UIDs."""
    return [int(uid) for uid in process_status(pid)["Uid"].split()]


def stop(server: subprocess.Popen[bytes]) -> None:
    """Leave nothing running: kill what runs in the container, by PID; buildah then cleans up."""
    if server.poll() is None:
        for pid in descendants(server.pid):
            with contextlib.suppress(OSError):
                if in_container(pid):
                    os.kill(pid, signal.SIGKILL)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def files_owned_by(root: Path, uid: int) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.lstat().st_uid == uid and path.relative_to(root).parts[0] != "tmp"
    ]


# A query answering "1" once each framework's migrations have run: the head, the example app's one.
MIGRATED = {
    "fastapi": "SELECT count(*) FROM alembic_version",
    "django": "SELECT count(*) FROM django_migrations WHERE app = 'items'",
}
# Files the image serves itself: Django's, collected at build time.
STATIC_FILES = {"fastapi": [], "django": ["/static/admin/css/base.css"]}


def test_image_runs_gunicorn_as_a_numeric_non_root_user(image_config: dict) -> None:
    user, _, group = image_config["User"].partition(":")
    assert re.fullmatch(r"\d+", user), "Kubernetes runAsNonRoot can only verify a numeric user"
    assert re.fullmatch(r"\d+", group)
    assert int(user) >= 10000
    assert int(group) >= 10000
    # The command is CMD alone: no entrypoint (a base image's is cleared), no shell around it.
    assert not image_config.get("Entrypoint")
    assert image_config["Cmd"] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert image_config["StopSignal"] == "SIGTERM"
    env = dict(variable.split("=", 1) for variable in image_config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_image_carries_oci_labels(project: Path, image_config: dict) -> None:
    labels = image_config["Labels"]
    assert labels["org.opencontainers.image.title"] == project.name
    assert labels["org.opencontainers.image.description"] == COOKIECUTTER_JSON["description"]
    assert labels["org.opencontainers.image.version"]
    assert "org.opencontainers.image.source" in labels


def test_image_has_no_compiler_build_tools_or_caches(container: Container) -> None:
    with container.mounted() as root:
        compilers = [
            str(path.relative_to(root))
            for path in root.rglob("*")
            if COMPILER_NAMES.fullmatch(path.name) and not path.is_dir()
        ]
        assert compilers == []
        assert not (root / "root" / ".cache").exists()
        assert sorted(path.name for path in (root / "opt/venv/bin").glob("pip*")) == []


def test_image_adds_little_to_its_base(project: Path, image: str) -> None:
    base = layer_sizes(stage_bases(project / "Dockerfile")[-1])
    layers = layer_sizes(image)
    assert layers[: len(base)] == base
    added = sum(layers[len(base) :])
    assert added < ADDED_SIZE_BUDGET, f"the image adds {added / 1e6:.0f} MB to its base"


def test_image_migrates_then_serves_as_its_own_user(
    project: Path,
    framework: str,
    image_config: dict,
    container: Container,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    """The initContainer's command, then the image's own CMD, as the image's user."""
    app_uid = int(image_config["User"].partition(":")[0])
    with throwaway_database() as name:
        env = {**pod_environment(framework), "DATABASE_URL": database_url(name)}
        migrate = container.run(migrate_command(project), env)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert psql(MIGRATED[framework], database=name) == "1"

        port = free_port()
        log = tmp_path / "server.log"
        ports = {"PORT": str(port), "METRICS_PORT": str(free_port())}
        server = container.start(image_config["Cmd"], {**env, **ports}, log)
        try:
            wait_until_listening(server, port, log)
            assert http_status(port, "/health") == 200
            assert http_status(port, "/ready") == 200
            assert http_status(port, "/api/v1/items") == 200
            for path in STATIC_FILES[framework]:
                assert http_status(port, path) == 200, path

            inside = [pid for pid in descendants(server.pid) if in_container(pid)]
            assert {pid: uids(pid) for pid in inside} == {pid: [app_uid] * 4 for pid in inside}
            assert app_uid >= 10000
            gunicorn = [pid for pid in inside if process_status(pid)["Name"] == "gunicorn"]
            assert len(gunicorn) >= 2, "expected a gunicorn master and at least one worker"

            (master,) = [pid for pid in gunicorn if parent(pid) not in gunicorn]
            stop_signal = signal.Signals[image_config["StopSignal"]]
            stopping = time.monotonic()
            os.kill(master, stop_signal)
            assert server.wait(timeout=TERMINATION_GRACE_SECONDS) == 0, log.read_text()[-3000:]
            assert time.monotonic() - stopping < TERMINATION_GRACE_SECONDS
        finally:
            stop(server)

    # Nothing written outside /tmp (what the app user writes, it owns), so the image runs on a
    # read-only root filesystem with a writable /tmp.
    with container.mounted() as root:
        assert files_owned_by(root, app_uid) == []


@pytest.mark.parametrize("bake", OTHER_IMAGES, indirect=True)
def test_distroless_image_has_no_shell_and_no_package_manager(container: Container) -> None:
    for command in (["sh", "-c", "true"], ["/bin/sh", "-c", "true"], ["bash", "-c", "true"]):
        ran = container.run(command, user="0")
        assert ran.returncode != 0, f"{command} ran: {ran.stdout}{ran.stderr}"
    with container.mounted() as root:
        found = [
            str(path.relative_to(root))
            for path in root.rglob("*")
            if path.name in (*SHELLS, *PACKAGE_MANAGER) and not path.is_dir()
        ]
        assert found == []
    # The image's own interpreter runs, so a failure above is the shell's absence.
    assert container.run(["python3", "-c", "print('ok')"]).stdout == "ok\n"


def test_dockerfile_string_survives_buildahs_parser(tmp_path: Path) -> None:
    text = 'Say "hi" to $HOME and ${USER}: a \\ backslash, ünïcode, a trailing \\'
    (tmp_path / "Dockerfile").write_text(
        f"FROM scratch\nLABEL description={dockerfile_string(text)}\n", encoding="utf-8"
    )
    tag = f"localhost/label-check-{uuid.uuid4().hex[:8]}"
    buildah("bud", *ISOLATION, "--quiet", f"--tag={tag}", str(tmp_path))
    try:
        assert inspect_image(tag)["OCIv1"]["config"]["Labels"]["description"] == text
    finally:
        buildah("rmi", tag)


# --- Model inference (inference=yes): the image carries its model and serves it ---------------

INFERENCE_ANSWERS = {"framework": "fastapi", "database": "none", "inference": "yes"}
# Where the Dockerfile puts the shipped model: MODEL_PATH's default under the WORKDIR, /app.
MODEL_IN_IMAGE = "app/models/iris.onnx"
# A setosa of the iris data set, the model's first class.
SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="session")
def inference_project(baked: Callable[..., Path]) -> Path:
    return baked(**INFERENCE_ANSWERS)


@pytest.fixture(scope="session")
def inference_image(inference_project: Path) -> str:
    tag = f"localhost/{inference_project.name}:test-inference"
    return build_image(inference_project, tag)


@pytest.fixture
def inference_container(inference_image: str) -> Iterator[Container]:
    container = Container(inference_image)
    yield container
    container.remove()


def memory_limit(project: Path) -> int:
    """The app container's memory limit in bytes, as k8s/base/deployment.yaml sets it (Mi)."""
    deployment = yaml.safe_load((project / "k8s" / "base" / "deployment.yaml").read_text())
    [app] = deployment["spec"]["template"]["spec"]["containers"]
    limit = app["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), f"memory limit {limit}: update this test"
    return int(limit.removesuffix("Mi")) * 2**20


def http_json(port: int, method: str, path: str, body: object = None) -> tuple[int, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {} if body is None else {"Content-Type": "application/json"}
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_inference_image_carries_its_model_and_serves_it_as_its_own_user(
    inference_project: Path, inference_image: str, inference_container: Container, tmp_path: Path
) -> None:
    config = inspect_image(inference_image)["OCIv1"]["config"]
    app_uid = int(config["User"].partition(":")[0])
    with inference_container.mounted() as root:
        shipped = (inference_project / "models" / "iris.onnx").read_bytes()
        assert (root / MODEL_IN_IMAGE).read_bytes() == shipped

    port = free_port()
    log = tmp_path / "server.log"
    env = {**pod_environment("fastapi"), "PORT": str(port), "METRICS_PORT": str(free_port())}
    server = inference_container.start(config["Cmd"], env, log)
    try:
        wait_until_listening(server, port, log)
        status, ready = http_json(port, "GET", "/ready")
        assert status == 200, ready
        assert ready["checks"]["model"] == "ok"
        status, answer = http_json(port, "POST", "/api/v1/predict", {"instances": [SETOSA]})
        assert status == 200, answer
        [probabilities] = answer["predictions"]
        assert len(probabilities) == 3
        assert sum(probabilities) == pytest.approx(1, abs=1e-5)
        assert probabilities[0] == max(probabilities), "a setosa is the first class"

        inside = [pid for pid in descendants(server.pid) if in_container(pid)]
        assert inside
        assert {pid: uids(pid) for pid in inside} == {pid: [app_uid] * 4 for pid in inside}
        # The model is small: the master and its worker, model loaded, leave a quarter of the
        # Deployment's memory limit for requests (resident sizes summed, shared pages twice;
        # measured about 250 MiB of 512 MiB).
        resident = sum(int(process_status(pid)["VmRSS"].split()[0]) * 1024 for pid in inside)
        limit = memory_limit(inference_project)
        assert resident < limit * 3 / 4, f"{resident / 2**20:.0f} MiB resident"
    finally:
        stop(server)

    # The model loaded from the image's read-only files; nothing written outside /tmp.
    with inference_container.mounted() as root:
        assert files_owned_by(root, app_uid) == []
