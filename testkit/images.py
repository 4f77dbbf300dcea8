"""Build and run container images with buildah, and local stand-ins for the base images.

No container registry is reachable from the machines this template is tested on, so buildah
cannot pull the images a generated Dockerfile starts from (the ARG defaults of its FROM lines).
A minimal Debian root filesystem (debootstrap) stands in for each under the same name: buildah
then uses the local image instead of pulling.

- `python:<version>-slim`: Debian's own Python. Its python is /usr/bin/python3 where the
  official image has /usr/local/bin/python3, which is why the Dockerfile relies only on
  `python3` and PATH.
- `debian:<suite>-slim`: the minimal system (with CA certificates; see `standin_for`).
- the distroless `python3-debian<N>` image: Debian's Python and CA certificates, with every shell,
  apt, dpkg and coreutils deleted again, so that a Dockerfile relying on any of them fails here
  as it would on the real image.

Each stand-in is built once per machine; buildah's image store keeps it, so later runs find it
there. A real image of that name, when present, is used as it is.

Run as a script to build stand-ins ahead of time:
`python -m testkit.images python:3.13-slim debian:trixie-slim` (default: `python:3.13-slim`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The Debian release that ships each Python version as its python3, and each release's suite.
DEBIAN_SUITES = {"3.11": "bookworm", "3.13": "trixie"}
DEBIAN_RELEASES = {"12": "bookworm", "13": "trixie"}
# Like the official images: no package lists or downloaded packages left behind.
APT_LEFTOVERS = ("var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb")
# What the real images' configuration sets and a Dockerfile may rely on.
PATH_ENV = "--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL = "--label=org.opencontainers.image.description=Local stand-in for the %s image"
# The distroless image has no shell, no package manager and no coreutils: their packages' files
# go, and then every file named like a shell, whichever package brought it.
DISTROLESS_WITHOUT = ("bash", "dash", "coreutils", "apt", "dpkg")
SHELL_NAMES = frozenset({"sh", "dash", "bash", "rbash"})
PACKAGE_MANAGER_STATE = ("etc/apt", "etc/dpkg", "var/lib/apt", "var/lib/dpkg", "var/cache/apt")
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


@dataclass(frozen=True)
class StandIn:
    """How a base image is stood in for: a debootstrapped Debian root filesystem."""

    suite: str
    packages: tuple[str, ...]
    # buildah config options: what the real image's configuration sets.
    config: tuple[str, ...]
    # Packages whose files are deleted again (and every shell with them).
    without: tuple[str, ...] = ()


def standin_for(name: str) -> StandIn:
    """The stand-in for the image `name` (as `qualified` spells it)."""
    python_slim = re.fullmatch(r"docker\.io/library/python:(3\.\d+)-slim", name)
    debian_slim = re.fullmatch(r"docker\.io/library/debian:([a-z]+)-slim", name)
    distroless = re.fullmatch(r"gcr\.io/distroless/python3-debian(\d+):latest", name)
    if python_slim and python_slim.group(1) in DEBIAN_SUITES:
        return StandIn(
            suite=DEBIAN_SUITES[python_slim.group(1)],
            packages=("python3", "python3-venv", "ca-certificates"),
            config=(PATH_ENV, "--env=LANG=C.UTF-8", "--cmd=python3", LABEL % "official Python"),
        )
    if debian_slim:
        # ca-certificates, which the real image lacks, comes configured: build_image mounts the
        # host's bundle read-only where installing the package later would write.
        config = (PATH_ENV, "--cmd=bash", LABEL % "official Debian")
        return StandIn(suite=debian_slim.group(1), packages=("ca-certificates",), config=config)
    if distroless and distroless.group(1) in DEBIAN_RELEASES:
        return StandIn(
            suite=DEBIAN_RELEASES[distroless.group(1)],
            packages=("python3", "ca-certificates"),
            config=(PATH_ENV, '--entrypoint=["/usr/bin/python3"]', LABEL % "distroless Python"),
            without=DISTROLESS_WITHOUT,
        )
    raise ImageError(
        f"no stand-in for {name} (Debian ships Python {', '.join(DEBIAN_SUITES)}); "
        "load the real image into buildah's store instead"
    )


def qualified(name: str) -> str:
    """An image reference as buildah stores it: `debian:trixie-slim` is
    `docker.io/library/debian:trixie-slim`, an untagged one is `:latest`."""
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined and
    comments left out: enough for the Dockerfiles this template renders."""
    found = []
    for line in dockerfile.replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            found.append((instruction.upper(), arguments.strip()))
    return found


def stage_bases(dockerfile: Path) -> list[str]:
    """The image each stage starts from (qualified), with the ARG defaults its FROM refers to."""
    defaults: dict[str, str] = {}
    stages: set[str] = set()
    bases = []
    for instruction, arguments in instructions(dockerfile.read_text(encoding="utf-8")):
        words = [word for word in arguments.split() if not word.startswith("--")]
        # Only the ARGs before the first FROM are in scope for FROM lines.
        if instruction == "ARG" and not bases and not stages:
            name, _, default = words[0].partition("=")
            defaults[name] = default
        elif instruction == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda arg: defaults[arg.group(1)], words[0])
            if image not in stages and image != "scratch":
                bases.append(qualified(image))
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    return bases


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """One holder at a time across this machine: pytest-xdist workers, other checkouts' runs."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_image(name: str) -> str:
    """The image `name` in the local store, built as a stand-in if missing; its qualified name."""
    name = qualified(name)
    with machine_lock(re.sub(r"[^\w.-]+", "-", name.rsplit("/", 1)[-1])):
        if not image_exists(name):
            build_standin(name, standin_for(name))
    return name


def build_image(context: Path, tag: str) -> str:
    """Build a project's image from its own Dockerfile, on the (stand-in) base images.

    Returns the image's ID: a concurrent build elsewhere on the machine may move the tag.
    """
    for base in dict.fromkeys(stage_bases(context / "Dockerfile")):
        ensure_image(base)
    with machine_lock("build"), tempfile.TemporaryDirectory() as scratch:
        id_file = Path(scratch) / "image-id"
        buildah(
            "bud",
            *ISOLATION,
            "--network=host",
            # Intermediate layers are kept, so an unchanged project rebuilds in seconds.
            "--layers",
            # A failed step leaves no working container behind.
            "--force-rm",
            "--pull=never",
            # The package index is reached with the host's CA bundle (a proxy may re-sign TLS).
            "--volume=/etc/ssl/certs:/etc/ssl/certs:ro",
            f"--tag={tag}",
            f"--iidfile={id_file}",
            str(context),
        )
        return id_file.read_text().strip()


def build_standin(name: str, standin: StandIn) -> None:
    with tempfile.TemporaryDirectory(prefix="standin-", dir=CACHE_DIR) as scratch:
        rootfs = Path(scratch) / "rootfs"
        debootstrap = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(standin.packages)}",
                standin.suite,
                str(rootfs),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if debootstrap.returncode != 0:
            log = debootstrap.stdout[-3000:] + debootstrap.stderr[-3000:]
            raise ImageError(f"debootstrap {standin.suite} failed:\n{log}")
        for pattern in APT_LEFTOVERS:
            for leftover in rootfs.glob(pattern):
                leftover.unlink()
        if standin.without:
            delete_packages(rootfs, standin.without)
        container = buildah("from", "scratch")
        try:
            buildah("copy", container, str(rootfs), "/")
            buildah("config", *standin.config, container)
            buildah("commit", "--quiet", container, name)
        finally:
            buildah("rm", container)


def delete_packages(rootfs: Path, packages: tuple[str, ...]) -> None:
    """Delete the files dpkg lists for `packages`, every file named like a shell, and the
    package manager's state. Directories stay: other packages' files live in them too."""
    info = rootfs / "var/lib/dpkg/info"
    listed = [
        rootfs / entry.lstrip("/")
        for package in packages
        for entry in (info / f"{package}.list").read_text(encoding="utf-8").splitlines()
        if entry != "/."
    ]
    shells = [path for path in rootfs.rglob("*") if path.name in SHELL_NAMES]
    root = rootfs.resolve()
    for path in [*listed, *shells]:
        # Through the rootfs's own links (bin -> usr/bin), never out of it.
        if not path.parent.resolve().is_relative_to(root):
            raise ImageError(f"{path} leads out of the stand-in's root filesystem")
        if not path.is_dir():  # a link to a directory, such as bin -> usr/bin, is kept too
            path.unlink(missing_ok=True)
    for state in PACKAGE_MANAGER_STATE:
        shutil.rmtree(rootfs / state, ignore_errors=True)


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
    for image in sys.argv[1:] or ["python:3.13-slim"]:
        print(ensure_image(image))
