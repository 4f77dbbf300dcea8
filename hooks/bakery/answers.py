"""Validation of the answers given to cookiecutter, before anything is rendered."""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Iterator, Mapping

from .facts import overlay_namespaces, shadowed_modules

# Kubernetes Service names are DNS-1035 labels (a letter first) of at most 63 characters. The
# slug also gets suffixes ("-migrate", kustomize hashes) and overlay prefixes, so keep headroom.
SLUG_MAX_LENGTH = 40
# The generated code is checked to fit its 100 columns with a package name this long.
PACKAGE_MAX_LENGTH = 40
SLUG_PATTERN = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
PACKAGE_PATTERN = re.compile(r"[a-z_][a-z0-9_]*")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# Names the project itself uses at its top level.
RESERVED_PACKAGE_NAMES = frozenset(
    {"tests", "test", "conftest", "migrations", "manage", "config", "k8s", "staticfiles"}
)

FREE_TEXT_FIELDS = ("project_name", "description", "author_name")

# Namespaces the cluster owns: an overlay declaring one with Pod Security labels would relabel it.
CLUSTER_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
CLUSTER_NAMESPACE_PREFIX = "kube-"
# Device names Windows reserves in every directory, whatever the case: the project's directory
# and its package could not be created or checked out there.
WINDOWS_RESERVED_NAMES = frozenset(
    {"con", "prn", "aux", "nul", *(f"{port}{n}" for port in ("com", "lpt") for n in range(10))}
)
WINDOWS_RULE = "is a device name Windows reserves (CON, PRN, AUX, NUL, COM0-9, LPT0-9)"

# The one table of combinations the template does not offer: when the first answer is given, the
# second option is limited to the listed values. tests/template.py reads it to tell supported
# combinations from refused ones.
SUPPORTED_WITH: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    # The Django example is built on the Django ORM, which has no MongoDB backend.
    ("framework", "django"): {"database": ("postgresql", "none")},
    # The worker's effect, its processed-message key and the API's outbox row are written in
    # PostgreSQL transactions; the template's MongoDB is a single server, without transactions.
    ("worker", "rabbitmq"): {"database": ("postgresql",)},
    ("worker", "kafka"): {"database": ("postgresql",)},
    # The channels are built on FastAPI's WebSocket routes; Django would need Channels.
    ("websockets", "yes"): {"framework": ("fastapi",)},
    # The predict endpoint is a FastAPI route with a typed body and a lifespan that loads the model.
    ("inference", "yes"): {"framework": ("fastapi",)},
}

# Pythons of the container image: the shipped locks hold wheels for CPython 3.11 to 3.13
# (tests/test_pins.py checks each), and the code supports 3.11 and newer.
PYTHON_MINORS = range(11, 14)
PYTHON_VERSION_PATTERN = re.compile(r"3\.(0|[1-9]\d*)")
# The distroless Python image is built on Debian 13 only, whose python3 is 3.13.
DISTROLESS_PYTHON = "3.13"

# The native preStop `sleep` action is on by default from 1.30; kubernetes-validate bundles
# schemas up to 1.37.
KUBERNETES_MINORS = range(30, 38)
KUBERNETES_VERSION_PATTERN = re.compile(r"1\.(0|[1-9]\d*)")


class InvalidAnswer(ValueError):
    def __init__(self, field: str, value: object, rule: str) -> None:
        super().__init__(f"{field}={value!r} is invalid: {rule}")
        self.field = field


def slug_problems(slug: str) -> Iterator[str]:
    if not slug:
        yield "it is empty; give a project_name with letters or digits, or set project_slug"
    elif len(slug) > SLUG_MAX_LENGTH:
        yield (
            f"at most {SLUG_MAX_LENGTH} characters (it names Kubernetes objects), got {len(slug)};"
            " shorten project_name or set project_slug"
        )
    elif not SLUG_PATTERN.fullmatch(slug):
        yield (
            "must be a DNS-1123 label usable as a Kubernetes Service name: lowercase letters,"
            " digits and '-', starting with a letter and ending with a letter or digit"
        )
    elif slug in WINDOWS_RESERVED_NAMES:
        yield f"{WINDOWS_RULE}; choose another project_name or set project_slug"
    else:
        for overlay, namespace in overlay_namespaces(slug).items():
            if namespace in CLUSTER_NAMESPACES or namespace.startswith(CLUSTER_NAMESPACE_PREFIX):
                yield (
                    f"the {overlay} overlay would declare the Namespace {namespace!r}, a namespace"
                    " the cluster owns (default, kube-system, kube-public, kube-node-lease, any"
                    " kube- prefix), and relabel it on apply; choose another project_name or set"
                    " project_slug"
                )
                return


def package_problems(name: str) -> Iterator[str]:
    if not PACKAGE_PATTERN.fullmatch(name):
        yield "must be a lowercase Python identifier: letters, digits and '_', not a digit first"
    elif len(name) > PACKAGE_MAX_LENGTH:
        yield f"at most {PACKAGE_MAX_LENGTH} characters (it prefixes every import), got {len(name)}"
    elif keyword.iskeyword(name) or keyword.issoftkeyword(name):
        yield "is a Python keyword"
    elif name in sys.stdlib_module_names:
        yield "shadows the standard-library module of the same name"
    elif name in shadowed_modules():
        yield "shadows a module the generated project's dependencies install"
    elif name in RESERVED_PACKAGE_NAMES:
        yield "is a name the generated project uses for its own files"
    elif name in WINDOWS_RESERVED_NAMES:
        yield WINDOWS_RULE


def combination_problems(answers: Mapping[str, object]) -> Iterator[InvalidAnswer]:
    """An answer that the table above does not support next to another answer."""
    for (option, value), limits in SUPPORTED_WITH.items():
        if answers.get(option) != value:
            continue
        for limited, allowed in limits.items():
            if answers.get(limited) not in allowed:
                rule = f"{option}={value} supports {' or '.join(allowed)}"
                yield InvalidAnswer(limited, answers.get(limited), rule)


def validate(answers: Mapping[str, object]) -> None:
    """Raise InvalidAnswer for the first answer that breaks a rule."""
    for problem in combination_problems(answers):
        raise problem
    for field in FREE_TEXT_FIELDS:
        value = str(answers[field])
        if not value.strip():
            raise InvalidAnswer(field, value, "must not be empty")
        if CONTROL_CHARACTERS.search(value):
            raise InvalidAnswer(field, value, "must be one line without control characters")
    for rule in slug_problems(str(answers["project_slug"])):
        raise InvalidAnswer("project_slug", answers["project_slug"], rule)
    for rule in package_problems(str(answers["package_name"])):
        # Usually derived from project_name: say how to get another one.
        rule += "; choose another project_name or set package_name"
        raise InvalidAnswer("package_name", answers["package_name"], rule)
    version = str(answers["kubernetes_version"])
    match = KUBERNETES_VERSION_PATTERN.fullmatch(version)
    if not match or int(match.group(1)) not in KUBERNETES_MINORS:
        releases = f"1.{KUBERNETES_MINORS[0]} to 1.{KUBERNETES_MINORS[-1]}"
        raise InvalidAnswer("kubernetes_version", version, f"must be a release from {releases}")
    python = str(answers["python_version"])
    match = PYTHON_VERSION_PATTERN.fullmatch(python)
    if not match or int(match.group(1)) not in PYTHON_MINORS:
        releases = f"3.{PYTHON_MINORS[0]} to 3.{PYTHON_MINORS[-1]}"
        raise InvalidAnswer("python_version", python, f"must be a release from {releases}")
    if answers.get("image") == "distroless" and python != DISTROLESS_PYTHON:
        rule = f"image=distroless supports {DISTROLESS_PYTHON} (Debian 13's Python)"
        raise InvalidAnswer("python_version", python, rule)
    email = str(answers["author_email"])
    if not EMAIL_PATTERN.fullmatch(email):
        raise InvalidAnswer("author_email", email, "must look like name@example.com")
