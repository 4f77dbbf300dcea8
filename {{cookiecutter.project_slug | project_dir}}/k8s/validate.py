"""Validate the Kubernetes manifests before they reach a cluster: `python k8s/validate.py`.

Every overlay in k8s/overlays/ is

1. built with `kubectl kustomize`, as it is and once more with each component of k8s/components/
   it does not list, so a component is checked before an overlay opts into it;
2. linted with yamllint and the project's .yamllint.yaml, the source files and kubectl's output;
3. validated in strict mode against the target Kubernetes version's schemas with
   kubernetes-validate (offline), its custom resources against their CRDs' schemas
   (`k8s/custom_resources.py`), and with `kubeconform -strict` when it is on PATH;
4. checked for what schemas cannot see (`k8s/checks.py`, next to this script): selectors match
   the pods, references resolve, ports exist, the autoscaler and the disruption budget agree,
   the NetworkPolicies let through what the `*_URL` settings name, the termination budget
   holds, and the pods run as the image's user.

When every overlay is valid, a line per overlay gives what its pods request and cost a month
(`k8s/cost.py`, which `make cost` runs for the details).

Unknown kinds, removed APIs and duplicate YAML keys are errors. What a missing tool would have
checked is named in one line, never skipped silently. Without kubectl nothing is built: the
source files are still parsed and linted, and those a kustomization lists as resources validated
against the schemas. `--require-tools` makes a missing kubectl, yamllint, kubernetes-validate or
custom resource schema package a failure (for CI); kubeconform stays optional: no package index
ships it.
Exit status: 0 when no problem was found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from checks import CHECKS, GENERATED_NAME_SUFFIX, Finding, Manifests, ref
from cost import CostError, Estimate, price_list
{%- if cookiecutter.exposure == "gateway" %}
from custom_resources import (
    CUSTOM_RESOURCES,
    UNPACKAGED,
    custom_resource_problems,
    is_custom,
    schema_installed,
)
{%- else %}
from custom_resources import CUSTOM_RESOURCES, custom_resource_problems, is_custom, schema_installed
{%- endif %}

# The oldest Kubernetes release these manifests must run on; chosen when the project was created.
KUBERNETES_VERSION = "{{ cookiecutter.kubernetes_version }}"

K8S_DIR = Path(__file__).resolve().parent
PROJECT_DIR = K8S_DIR.parent
YAMLLINT_CONFIG = PROJECT_DIR / ".yamllint.yaml"
# The tools the project's dev dependencies bring (`make install`); kubeconform is a separate binary.
DEV_TOOLS = frozenset(
    {"kubectl", "yamllint", "kubernetes-validate", *(c.package for c in CUSTOM_RESOURCES.values())}
)
KUSTOMIZATION_KINDS = ("Kustomization", "Component")
# How findings name a build of an overlay with one more component: `dev with components/x`.
WITH = " with "


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


def find_tool(name: str) -> str | None:
    """The tool installed with this Python (an active or not virtualenv) first, else on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    return str(candidate) if candidate.is_file() else shutil.which(name)


def relative(path: Path) -> str:
    return (
        path.relative_to(PROJECT_DIR).as_posix() if path.is_relative_to(PROJECT_DIR) else str(path)
    )


class Report:
    """Each problem once, with the overlays it shows up in."""

    def __init__(self, overlays: Iterable[str]) -> None:
        self.overlays = frozenset(overlays)
        self.found: dict[str, set[str]] = {}

    def add(
        self, overlays: Iterable[str], message: str, source: str = "", resource: dict | None = None
    ) -> None:
        parts = (source, ref(resource) if resource else "", message)
        line = ": ".join(part for part in parts if part)
        self.found.setdefault(line, set()).update(overlays)

    def lines(self) -> list[str]:
        """One line per problem; overlays are named when it does not show up in all of them,
        an overlay built with a component only when the overlay alone does not have it."""
        found = []
        for line, overlays in self.found.items():
            if overlays == self.overlays:
                found.append(line)
                continue
            named = [o for o in sorted(overlays) if overlay_of(o) not in overlays - {o}]
            found.append(f"{line} (overlay {', '.join(named)})")
        return found


def overlay_of(label: str) -> str:
    """The overlay a build label names: `dev` for `dev with components/pod-monitor` too."""
    return label.partition(WITH)[0]


# --- Sources: duplicate keys, yamllint, where each resource comes from -------------------------


@dataclass
class Sources:
    """The YAML files under k8s/, parsed, and where each resource and generator is defined."""

    documents: dict[Path, list[dict]] = field(default_factory=dict)
    defined_in: dict[tuple[str, str], Path] = field(default_factory=dict)
    generated_by: dict[str, list[Path]] = field(default_factory=dict)
    # What kustomizations list as resources: whole resources (and bases), unlike patches.
    listed: set[Path] = field(default_factory=set)

    def origin(self, resource: dict, overlay: Path) -> str:
        """The source file of a resource an overlay built, for messages."""
        kind, name = resource.get("kind"), resource.get("metadata", {}).get("name", "")
        if (kind, name) in self.defined_in:
            return relative(self.defined_in[(kind, name)])
        # A generated ConfigMap or Secret: the kustomization nearest to the overlay made it.
        candidates = self.generated_by.get(GENERATED_NAME_SUFFIX.sub("", name), [])
        nearest = [c for c in candidates if c.parent == overlay] + candidates
        return relative(nearest[0] if nearest else overlay / "kustomization.yaml")


def source_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


def read_sources(files: Iterable[Path], report: Report) -> Sources:
    """Parse every source file, rejecting duplicate keys, and note what each one defines."""
    sources = Sources()
    for path in files:
        try:
            documents = load_documents(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            report.add(report.overlays, yaml_error_text(error), relative(path))
            continue
        sources.documents[path] = documents
        for doc in (d for d in documents if isinstance(d, dict)):
            if doc.get("kind") not in KUSTOMIZATION_KINDS:
                sources.defined_in[(doc.get("kind"), doc.get("metadata", {}).get("name"))] = path
                continue
            for generator in doc.get("configMapGenerator", []) + doc.get("secretGenerator", []):
                sources.generated_by.setdefault(generator.get("name"), []).append(path)
            sources.listed.update((path.parent / p).resolve() for p in doc.get("resources", []))
    return sources


def yamllint_problems(inputs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """Lint (name, text) pairs with the project's yamllint configuration: (name, message)."""
    from yamllint import linter  # optional tool, imported only when installed
    from yamllint.config import YamlLintConfig

    if not YAMLLINT_CONFIG.is_file():
        yield relative(YAMLLINT_CONFIG), "missing: yamllint has no configuration"
        return
    config = YamlLintConfig(file=str(YAMLLINT_CONFIG))
    for name, text in inputs:
        for lint in linter.run(text, config):
            yield name, f"yamllint: line {lint.line}: {lint.message}"


# --- Schemas ----------------------------------------------------------------------------------


@functools.cache
def bundled_versions() -> list[str]:
    from kubernetes_validate import utils

    return [".".join(v.split(".")[:2]) for v in utils.all_versions()]


def load_schema_validator(versions: list[str], report: Report) -> None:
    """Import kubernetes-validate, an optional tool, only when it is installed."""
    import kubernetes_validate
    from kubernetes_validate import utils

    # It re-reads a 1.5 MB definitions file for every resource; the files never change during a
    # run, so reading each once makes validation five times faster.
    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.lru_cache(utils.schema_contents)
    bundled = bundled_versions()
    for version in (v for v in versions if v not in bundled):
        report.add(
            report.overlays,
            f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for"
            f" Kubernetes {version} (it has {bundled[0]} to {bundled[-1]})",
        )


def schema_problems(resources: list[dict], versions: list[str]) -> Iterator[Finding]:
    for version in (v for v in versions if v in bundled_versions()):
        for resource in resources:
            text = json.dumps(resource, sort_keys=True)
            for message in resource_schema_problems(text, version):
                yield Finding(resource, message)


@functools.cache
def resource_schema_problems(text: str, version: str) -> tuple[str, ...]:
    """Once per distinct resource: most are the same in every build of an overlay."""
    import kubernetes_validate

    resource = json.loads(text)
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path) or "(top level)"
        return (f"schema for Kubernetes {version}: {path}: {error.message}",)
    except kubernetes_validate.SchemaNotFoundError:
        return (
            f"{resource.get('apiVersion')} {resource.get('kind')} does not exist in"
            f" Kubernetes {version} (unknown kind or removed API)",
        )
    return ()


def kubeconform_problems(
    kubeconform: str, text: str, versions: list[str], custom_kinds: Iterable[str]
) -> Iterator[str]:
    # It has no schemas for custom resources; custom_resources.py validates those.
    skip = ["-skip", ",".join(sorted(custom_kinds))] if custom_kinds else []
    for version in versions:
        command = [kubeconform, "-strict", "-summary", *skip]
        command += ["-kubernetes-version", f"{version}.0", "-"]
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            command, input=text, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            yield " ".join((result.stdout + result.stderr).split())


# --- Building and checking the overlays -------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    kubectl: str | None
    kubeconform: str | None
    yamllint: bool
    kubernetes_validate: bool
    # The custom resource kinds whose schema package is installed.
    custom_schemas: frozenset[str]

    @classmethod
    def installed(cls) -> Tools:
        return cls(
            kubectl=find_tool("kubectl"),
            kubeconform=find_tool("kubeconform"),
            yamllint=importlib.util.find_spec("yamllint") is not None,
            kubernetes_validate=importlib.util.find_spec("kubernetes_validate") is not None,
{%- if cookiecutter.exposure == "gateway" %}
            custom_schemas=frozenset(kind for kind in CUSTOM_RESOURCES if schema_installed(kind))
            | UNPACKAGED.keys(),
{%- else %}
            custom_schemas=frozenset(kind for kind in CUSTOM_RESOURCES if schema_installed(kind)),
{%- endif %}
        )

    def missing(self, custom_kinds: Iterable[str]) -> list[str]:
        """The tools not installed, the schema packages of the custom kinds in use among them."""
        found = {
            "kubectl": self.kubectl,
            "yamllint": self.yamllint,
            "kubernetes-validate": self.kubernetes_validate,
            **{
                CUSTOM_RESOURCES[kind].package: kind in self.custom_schemas
                for kind in sorted(custom_kinds)
{%- if cookiecutter.exposure == "gateway" %}
                if kind in CUSTOM_RESOURCES
{%- endif %}
            },
            "kubeconform": self.kubeconform,
        }
        return [name for name, present in found.items() if not present]


def with_secret_stand_ins(scratch: Path) -> Path | None:
    """A copy of k8s/ in which every missing file that has an `.example` is that example.

    Fresh clones and CI have no secrets.env (it is git-ignored), and kustomize cannot generate a
    Secret without it. None when nothing is missing: then k8s/ itself is built.
    """
    missing = [e for e in K8S_DIR.rglob("*.example") if not e.with_suffix("").exists()]
    if not missing:
        return None
    copy = scratch / "k8s"
    shutil.copytree(K8S_DIR, copy)
    for example in missing:
        shutil.copyfile(example, copy / example.with_suffix("").relative_to(K8S_DIR))
    return copy


@dataclass(frozen=True)
class Build:
    """One `kubectl kustomize` run: an overlay, as it is or with one more component."""

    overlay: str
    component: str | None = None

    @property
    def label(self) -> str:
        """How findings name it: `dev`, or `dev with components/pod-monitor`."""
        return self.overlay if self.component is None else f"{self.overlay}{WITH}{self.component}"

    def directory(self, root: Path) -> Path:
        return root / "overlays" / self.overlay


def components() -> list[str]:
    """The kustomize components in k8s/components/, as an overlay lists them."""
    return sorted(
        p.parent.relative_to(K8S_DIR).as_posix()
        for p in K8S_DIR.glob("components/*/kustomization.yaml")
    )


def listed_components(overlay: str) -> list[str] | None:
    """The components an overlay's kustomization lists, relative to k8s/; None when it cannot
    be read (read_sources and the overlay's own build report why)."""
    directory = K8S_DIR / "overlays" / overlay
    try:
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    except yaml.YAMLError:
        return None
    if not isinstance(kustomization, dict):
        return None
    listed = kustomization.get("components", [])
    return [relative((directory / c).resolve()).removeprefix("k8s/") for c in listed]


def overlay_names(requested: list[str]) -> tuple[list[str], list[str]]:
    """The overlays to build (those requested, or every one in k8s/overlays), and those of them
    that k8s/overlays does not have."""
    names = requested or sorted(
        p.parent.name for p in K8S_DIR.glob("overlays/*/kustomization.yaml")
    )
    unknown = [n for n in names if not (K8S_DIR / "overlays" / n / "kustomization.yaml").is_file()]
    return names, unknown


def planned_builds(names: list[str]) -> list[Build]:
    builds = [Build(name) for name in names]
    for name in names:
        listed = listed_components(name)
        if listed is not None:
            builds += [Build(name, c) for c in components() if c not in listed]
    return builds


def with_component(root: Path, build: Build, scratch: Path) -> Path:
    """A copy of the k8s/ at `root` whose overlay also lists the build's component."""
    copy = scratch / build.label.replace(" ", "-").replace("/", "-") / "k8s"
    shutil.copytree(root, copy)
    path = build.directory(copy) / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8"))
    kustomization["components"] = [*kustomization.get("components", []), f"../../{build.component}"]
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
    return copy


def check_build(
    build: Build, output: str, sources: Sources, versions: list[str], tools: Tools, report: Report
) -> list[dict]:
    """Lint, validate and cross-check what `kubectl kustomize` built for one overlay; its
    resources."""
    directory = build.directory(K8S_DIR)
    where = relative(directory / "kustomization.yaml")
    resources = load_documents(output)

    def add(findings: Iterable[Finding]) -> None:
        for resource, message in findings:
            report.add([build.label], message, sources.origin(resource, directory), resource)

    # A component's build adds the component's resources, whose files are linted as sources.
    if tools.yamllint and build.component is None:
        lint = [(f"kubectl kustomize {relative(directory)}", output)]
        for source, message in yamllint_problems(lint):
            report.add([build.label], message, source)
    if tools.kubernetes_validate:
        add(schema_problems([r for r in resources if not is_custom(r)], versions))
    add(custom_resource_problems(r for r in resources if r.get("kind") in tools.custom_schemas))
    if tools.kubeconform:
        custom_kinds = {r["kind"] for r in resources if is_custom(r)}
        for failure in kubeconform_problems(tools.kubeconform, output, versions, custom_kinds):
            report.add([build.label], f"kubeconform: {failure}", where)
    manifests = Manifests(resources, PROJECT_DIR)
    for check in CHECKS:
        try:
            add(check(manifests))
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            # A resource too malformed to check; the schema errors above say what is wrong.
            message = f"{check.__name__} could not run: malformed resource ({error!r})"
            report.add([build.label], message, where)
    return resources


@dataclass
class Outcome:
    report: Report
    # Whether secrets came from `.example` stand-ins.
    stand_ins: bool
    # The components each overlay was built with once more.
    components: list[str]
    # The custom resource kinds the source files hold.
    custom_kinds: set[str]
    # Each overlay's resources as kubectl built it alone; none without kubectl.
    built: dict[str, list[dict]]


def validate(names: list[str], versions: list[str], tools: Tools) -> Outcome:
    """Check the sources and build and check every overlay (without kubectl: only the sources)."""
    planned = planned_builds(names) if tools.kubectl else []
    report = Report([b.label for b in planned] or names)
    with tempfile.TemporaryDirectory() as scratch:
        builds: dict[Build, tuple[Path, subprocess.Popen[str]]] = {}
        built: dict[str, list[dict]] = {}
        stand_ins = with_secret_stand_ins(Path(scratch)) if tools.kubectl else None
        project_root = stand_ins or K8S_DIR
        for build in planned:
            root = project_root
            if build.component is not None:
                root = with_component(project_root, build, Path(scratch))
            command = [str(tools.kubectl), "kustomize", str(build.directory(root))]
            process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            builds[build] = root, process
        # While kubectl builds: the sources, for duplicate keys, lint and each resource's origin.
        files = source_files()
        sources = read_sources(files, report)
        custom_kinds = {
            doc["kind"] for docs in sources.documents.values() for doc in docs if is_custom(doc)
        }
        if tools.yamllint:
            lint = [(relative(path), path.read_text(encoding="utf-8")) for path in files]
            for source, message in yamllint_problems(lint):
                report.add(report.overlays, message, source)
        if tools.kubernetes_validate:
            load_schema_validator(versions, report)
        if not builds:
            # Nothing is built, but the files that hold whole resources can be validated alone.
            for path in (p for p in sources.documents if p in sources.listed):
                documents = sources.documents[path]
                own = [d for d in documents if not is_custom(d)]
                found = list(schema_problems(own, versions)) if tools.kubernetes_validate else []
                custom = (d for d in documents if d.get("kind") in tools.custom_schemas)
                for resource, message in found + list(custom_resource_problems(custom)):
                    report.add(report.overlays, message, relative(path), resource)
        for build, (root, process) in builds.items():
            output, errors = process.communicate()
            if process.returncode == 0:
                resources = check_build(build, output, sources, versions, tools, report)
                if build.component is None:
                    built[build.overlay] = resources
                continue
            # Name files as they are in the project, not in the scratch copy.
            errors = " ".join(errors.replace(str(root), relative(K8S_DIR)).split())
            where = relative(build.directory(K8S_DIR) / "kustomization.yaml")
            what = "cannot build" + (f" with {build.component}" if build.component else "")
            report.add([build.label], f"{what}: kubectl kustomize failed: {errors}", where)
    used = sorted({b.component for b in planned if b.component is not None})
    return Outcome(report, stand_ins is not None, used, custom_kinds, built)


def skipped_line(tools: Tools, names: list[str], custom_kinds: set[str]) -> str | None:
    """One line naming everything that did not run, and how to run it."""
    missing = tools.missing(custom_kinds)
    kinds_of: dict[str, list[str]] = {}
{%- if cookiecutter.exposure == "gateway" %}
    for kind in sorted(custom_kinds.intersection(CUSTOM_RESOURCES)):
{%- else %}
    for kind in sorted(custom_kinds):
{%- endif %}
        kinds_of.setdefault(CUSTOM_RESOURCES[kind].package, []).append(kind)
    skipped = [
        f"overlays {', '.join(names)} (not built without kubectl: no schema or cross-resource"
        " checks of them)"
        if name == "kubectl"
        else f"{name} (the {' and '.join(kinds_of[name])} schema"
        f"{'s' if len(kinds_of[name]) > 1 else ''})"
        if name in kinds_of
        else name
        for name in missing
    ]
    if not (PROJECT_DIR / "Dockerfile").is_file():
        skipped.append("the image user check (no Dockerfile)")
    if not skipped:
        return None
    how = (
        "make install && make validate"
        if DEV_TOOLS.intersection(missing)
        else "python k8s/validate.py"
    )
    if "kubeconform" in missing:
        how += ", with kubeconform on PATH"
    return f"k8s: skipped {', '.join(skipped)}; to run them: {how}"


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
    names, unknown = overlay_names(args.overlays)
    if not names or unknown:
        print(f"error: no such overlays in k8s/overlays: {', '.join(names)}", file=sys.stderr)
        return 1
    tools = Tools.installed()
    outcome = validate(names, versions, tools)
    lines = outcome.report.lines()
    for line in lines:
        print(line, file=sys.stderr)
    missing = tools.missing(outcome.custom_kinds)
    required_missing = args.require_tools and bool(DEV_TOOLS.intersection(missing))
    if skipped := skipped_line(tools, names, outcome.custom_kinds):
        print(skipped, file=sys.stderr if required_missing else sys.stdout)
    checked = (
        f"overlays {', '.join(names)} for Kubernetes {', '.join(versions)}"
        if tools.kubectl
        else "source files in k8s/"
    )
    if lines:
        print(f"k8s: {len(lines)} problem(s) in {checked}", file=sys.stderr)
        return 1
    if required_missing:
        return 1
    notes = [f"each also with {', '.join(outcome.components)}"] if outcome.components else []
    notes += ["secrets from *.example stand-ins"] if outcome.stand_ins else []
{%- if cookiecutter.exposure == "gateway" %}
    notes += [
        f"{kind} by its apiVersion only: kubectl apply --dry-run=server checks its fields"
        for kind in sorted(outcome.custom_kinds.intersection(UNPACKAGED))
    ]
{%- endif %}
    print(f"k8s: {checked} valid" + (f" ({'; '.join(notes)})" if notes else ""))
    try:
        prices = price_list(os.environ)
        for name, resources in outcome.built.items():
            print(Estimate.of(name, resources).summary(prices))
    except CostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
