"""Strict schemas for the custom resources in k8s/: KEDA's ScaledObject and TriggerAuthentication,
the Prometheus Operator's PodMonitor{% if cookiecutter.exposure == "gateway" %}; the Gateway API's HTTPRoute by its apiVersion only{% endif %}.

kubernetes-validate knows only Kubernetes' own kinds. These come from the pydantic models that
the cloudcoil-models-keda and cloudcoil-models-prometheus-operator packages generate from each
project's CustomResourceDefinitions. The models accept unknown fields, which the API server
rejects (kubectl's strict field validation): they are validated here with unknown fields
forbidden at every level, as kubeconform's -strict closes a JSON schema, and with the manifest's
spelling of each field only. `k8s/validate.py` uses this module.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from checks import Finding


class CustomResource(NamedTuple):
    """Where the model of one custom resource kind comes from."""

    package: str
    module: str
    api_version: str


CUSTOM_RESOURCES = {
    "ScaledObject": CustomResource(
        "cloudcoil-models-keda", "cloudcoil.models.keda.v1alpha1", "keda.sh/v1alpha1"
    ),
    "TriggerAuthentication": CustomResource(
        "cloudcoil-models-keda", "cloudcoil.models.keda.v1alpha1", "keda.sh/v1alpha1"
    ),
    "PodMonitor": CustomResource(
        "cloudcoil-models-prometheus-operator",
        "cloudcoil.models.prometheus_operator.v1",
        "monitoring.coreos.com/v1",
    ),
}


{%- if cookiecutter.exposure == "gateway" %}
# Custom resources whose CRD schema no Python package publishes: only their apiVersion is checked
# here; a server-side dry run on a cluster with their CRDs checks their fields.
UNPACKAGED = {"HTTPRoute": "gateway.networking.k8s.io/v1"}


def is_custom(resource: dict) -> bool:
    return resource.get("kind") in CUSTOM_RESOURCES or resource.get("kind") in UNPACKAGED
{%- else %}


def is_custom(resource: dict) -> bool:
    return resource.get("kind") in CUSTOM_RESOURCES
{%- endif %}


def schema_installed(kind: str) -> bool:
    """Whether the package with this kind's model is installed, without importing it."""
    try:
        return importlib.util.find_spec(CUSTOM_RESOURCES[kind].module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@functools.cache
def model(kind: str) -> Any:
    # Imported only when a resource of this kind is checked: a module holds thousands of models.
    return getattr(importlib.import_module(CUSTOM_RESOURCES[kind].module), kind)


def custom_resource_problems(resources: Iterable[dict]) -> Iterator[Finding]:
    """Every schema violation of these custom resources, one Finding each."""
    for resource in resources:
        kind = resource["kind"]
{%- if cookiecutter.exposure == "gateway" %}
        if kind in UNPACKAGED:
            if resource.get("apiVersion") != UNPACKAGED[kind]:
                yield Finding(
                    resource,
                    f"apiVersion {resource.get('apiVersion')} of {kind} is not served; it is"
                    f" {UNPACKAGED[kind]}",
                )
            continue
{%- endif %}
        source = CUSTOM_RESOURCES[kind]
        schema = f"schema of {kind} ({source.package} {importlib.metadata.version(source.package)})"
        if resource.get("apiVersion") != source.api_version:
            yield Finding(
                resource,
                f"{schema}: apiVersion {resource.get('apiVersion')} is not served; it is"
                f" {source.api_version}",
            )
            continue
        for problem in model_problems(kind, resource):
            yield Finding(resource, f"{schema}: {problem}")


def model_problems(kind: str, resource: dict) -> Iterator[str]:
    import pydantic  # installed with the model packages

    try:
        # As JSON, the way the API server reads it: strict types (no "2" for 2), no field the
        # schema does not declare, and only the manifest's spelling of each field.
        model(kind).model_validate_json(
            json.dumps(resource), strict=True, extra="forbid", by_alias=True, by_name=False
        )
    except pydantic.ValidationError as error:
        for problem in error.errors(include_url=False):
            message = "unknown field" if problem["type"] == "extra_forbidden" else problem["msg"]
            where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            yield f"{where}: {message}"
