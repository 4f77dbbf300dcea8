"""Build and run container images with buildah, and a local stand-in for the Python base image.

No container registry is reachable from the machines this template is tested on, so buildah
cannot pull the `python:<version>-slim` image a generated Dockerfile starts from. A minimal
Debian root filesystem with Debian's own Python (debootstrap) stands in for it under the same
name: buildah then uses the local image instead of pulling. The stand-in's python is
/usr/bin/python3 where the official image has /usr/local/bin/python3, which is why the Dockerfile
relies only on `python3` and PATH.

The stand-in is built once per machine and Python version; buildah's image store keeps it, so
later runs find it there. A real image of that name, when present, is used as it is.

Run as a script to build the stand-in ahead of time: `python -m testkit.images 3.13`.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The Debian release that ships each Python version as its python3.
DEBIAN_SUITES = {"3.11": "bookworm", "3.13": "trixie"}
STANDIN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Like the official image: no package lists or downloaded packages left behind.
APT_LEFTOVERS = ("var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb")
# What the official image's configuration sets and the Dockerfile may rely on.
STANDIN_CONFIG = (
    "--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--env=LANG=C.UTF-8",
    "--cmd=python3",
    "--label=org.opencontainers.image.description=Local stand-in for the official Python image",
)
# buildah's chroot isolation works where its default (OCI runtime) does not: cgroup v1 hybrid
# hosts and unprivileged CI sandboxes.
ISOLATION = ("--isolation", "chroot")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "template-images"


class ImageError(RuntimeError):
    pass


def buildah(*args: str, timeout: float = 600) -> str:
    result = subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise ImageError(f"buildah {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


def image_exists(name: str) -> bool:
    result = subprocess.run(
        ["buildah", "inspect", "--type", "image", name], capture_output=True, check=False
    )
    return result.returncode == 0


def inspect_image(name: str) -> dict:
    return json.loads(buildah("inspect", "--type", "image", name))


def layer_sizes(name: str) -> list[int]:
    """Each layer's uncompressed size in bytes, base image layers first."""
    manifest = json.loads(inspect_image(name)["Manifest"])
    return [layer["size"] for layer in manifest["layers"]]


def base_image_name(python_version: str) -> str:
    return f"docker.io/library/python:{python_version}-slim"


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """One holder at a time across this machine: pytest-xdist workers, other checkouts' runs."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_base_image(python_version: str) -> str:
    """The `python:<version>-slim` image in the local store, built as a stand-in if missing."""
    name = base_image_name(python_version)
    with machine_lock(f"python-{python_version}-slim"):
        if not image_exists(name):
            build_standin(python_version, name)
    return name


def build_image(context: Path, tag: str, python_version: str) -> str:
    """Build a project's image from its own Dockerfile, on the (stand-in) base image.

    Returns the image's ID: a concurrent build elsewhere on the machine may move the tag.
    """
    ensure_base_image(python_version)
    with machine_lock("build"), tempfile.TemporaryDirectory() as scratch:
        id_file = Path(scratch) / "image-id"
        buildah(
            "bud",
            *ISOLATION,
            "--network=host",
            # Intermediate layers are kept, so an unchanged project rebuilds in seconds.
            "--layers",
            "--pull=never",
            # The package index is reached with the host's CA bundle (a proxy may re-sign TLS).
            "--volume=/etc/ssl/certs:/etc/ssl/certs:ro",
            f"--tag={tag}",
            f"--iidfile={id_file}",
            str(context),
        )
        return id_file.read_text().strip()


def build_standin(python_version: str, name: str) -> None:
    suite = DEBIAN_SUITES.get(python_version)
    if suite is None:
        raise ImageError(
            f"no stand-in for python:{python_version}-slim: Debian ships Python "
            f"{', '.join(DEBIAN_SUITES)} only; load the real image into buildah's store instead"
        )
    with tempfile.TemporaryDirectory(prefix="standin-", dir=CACHE_DIR) as scratch:
        rootfs = Path(scratch) / "rootfs"
        debootstrap = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(STANDIN_PACKAGES)}",
                suite,
                str(rootfs),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if debootstrap.returncode != 0:
            log = debootstrap.stdout[-3000:] + debootstrap.stderr[-3000:]
            raise ImageError(f"debootstrap {suite} failed:\n{log}")
        for pattern in APT_LEFTOVERS:
            for leftover in rootfs.glob(pattern):
                leftover.unlink()
        container = buildah("from", "scratch")
        try:
            buildah("copy", container, str(rootfs), "/")
            buildah("config", *STANDIN_CONFIG, container)
            buildah("commit", "--quiet", container, name)
        finally:
            buildah("rm", container)


class Container:
    """A working container made from an image; commands run in it as `docker run` would."""

    def __init__(self, image: str) -> None:
        self.name = buildah("from", "--pull=never", image)

    def command(self, command: list[str], env: dict[str, str], user: str | None) -> list[str]:
        options = [*ISOLATION, "--network=host", *(f"--env={k}={v}" for k, v in env.items())]
        if user is not None:
            options.append(f"--user={user}")
        return ["buildah", "run", *options, self.name, "--", *command]

    def run(
        self, command: list[str], env: dict[str, str] | None = None, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion as the image's user (or `user`), like `docker run --rm`."""
        return subprocess.run(
            self.command(command, env or {}, user),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def start(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start in the background; stop it by signalling the processes inside, by PID."""
        with log.open("wb") as output:
            return subprocess.Popen(
                self.command(command, env, user=None), stdout=output, stderr=subprocess.STDOUT
            )

    @contextmanager
    def mounted(self) -> Iterator[Path]:
        """The container's root filesystem, seen from the host."""
        root = Path(buildah("mount", self.name))
        try:
            yield root
        finally:
            buildah("umount", self.name)

    def remove(self) -> None:
        buildah("rm", self.name)


def process_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def in_container(pid: int) -> bool:
    """Chroot isolation: a process inside the container has the container's root, not /."""
    return os.readlink(f"/proc/{pid}/root") != "/"


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through their parent ids (chroot isolation shares /proc)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            parent = int(process_status(int(status.parent.name))["PPid"])
        except (OSError, KeyError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(status.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


if __name__ == "__main__":
    for version in sys.argv[1:] or ["3.13"]:
        print(ensure_base_image(version))
