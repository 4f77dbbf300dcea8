"""`make cost` (k8s/cost.py): what the built overlays request, and what that costs a month."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

# The default bake, worked out by hand from its manifests and k8s/prices.json:
# - a web pod requests 500m CPU and 512Mi in its app container, and as much in its migrate
#   initContainer, which runs before it: 0.5 vCPU and 0.5 GiB;
# - prod: the HPA keeps 3 to 8 web pods: 1.5 to 4 vCPU and GiB;
# - dev: 2 to 3 web pods, and the database Deployment's 1 pod of 100m and 256Mi: 1.1 to 1.6 vCPU,
#   1.25 to 1.75 GiB.
# Each instance's hourly price is split so that a vCPU-hour costs r = 0.031611 / 0.004237 GiB-hours
# (Google Cloud's N2 prices): an instance of 2 vCPUs and 8 GiB costs a GiB-hour of
# price / (2r + 8), AWS m7i.large 0.1008 / 22.92144 = 0.0043976, Azure D2s v5 0.096 / 22.92144 =
# 0.0041882, Google Cloud n2-standard-2 0.097118 / 22.92144 = 0.004237; a vCPU-hour r times that:
# 0.032810, 0.031248, 0.031611. Over 730 hours, AWS's prod minimum is
# (1.5 x 0.032810 + 1.5 x 0.0043976) x 730 = 40.74.
DEFAULT_COST = """\
dev: 3 to 4 pods request 1.1 to 1.6 vCPU and 1.25 to 1.75 GiB
  Deployment/orders-service  2 to 3 pods x 0.5 vCPU, 0.5 GiB
  Deployment/postgresql      1 pod x 0.1 vCPU, 0.25 GiB
  a month on demand (730 h, list prices of 2025-06-01 from k8s/prices.json):
    AWS m7i.large (us-east-1)                 $30.36 to $43.94
    Azure D2s v5 (East US)                    $28.91 to $41.85
    Google Cloud n2-standard-2 (us-central1)  $29.25 to $42.33

prod: 3 to 8 pods request 1.5 to 4 vCPU and 1.5 to 4 GiB
  Deployment/orders-service  3 to 8 pods x 0.5 vCPU, 0.5 GiB
  a month on demand (730 h, list prices of 2025-06-01 from k8s/prices.json):
    AWS m7i.large (us-east-1)                 $40.74 to $108.64
    Azure D2s v5 (East US)                    $38.80 to $103.47
    Google Cloud n2-standard-2 (us-central1)  $39.25 to $104.68
"""


def cost(
    project: Path, *args: str, script: str = "k8s/cost.py", **environment: str
) -> subprocess.CompletedProcess[str]:
    """`python k8s/cost.py` (or another script of k8s/), with this test run's kubectl (the
    project's `make install` has one) and no COST_ settings but these."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("COST_")}
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**inherited, **environment},
        timeout=120,
        check=False,
    )


def cost_module(project: Path) -> ModuleType:
    """The project's k8s/cost.py, imported as the script imports it (k8s/ on the path)."""
    sys.path.insert(0, str(project / "k8s"))
    try:
        spec = importlib.util.spec_from_file_location("cost", project / "k8s" / "cost.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # dataclasses looks its module up while it is being executed.
        sys.modules["cost"] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(project / "k8s"))
        sys.modules.pop("cost", None)
        sys.modules.pop("checks", None)
    return module


def test_make_cost_of_the_default_bake_is_what_its_manifests_request_at_list_prices(
    default_project: Path,
) -> None:
    result = cost(default_project)

    assert result.returncode == 0, result.stderr
    assert result.stdout == DEFAULT_COST


def test_make_validate_ends_with_a_cost_line_per_overlay(default_project: Path) -> None:
    result = cost(default_project, script="k8s/validate.py")

    assert result.returncode == 0, result.stderr
    basis = "list prices of 2025-06-01 from k8s/prices.json; make cost for each"
    # The cheapest cloud's minimum to the dearest one's maximum.
    assert result.stdout.splitlines()[-2:] == [
        "cost: dev requests 1.1 to 1.6 vCPU and 1.25 to 1.75 GiB, $28.91 to $43.94 a month on"
        f" demand ({basis})",
        "cost: prod requests 1.5 to 4 vCPU and 1.5 to 4 GiB, $38.80 to $108.64 a month on"
        f" demand ({basis})",
    ]


def test_own_rates_replace_the_price_table(default_project: Path) -> None:
    result = cost(default_project, "prod", COST_VCPU_HOUR="0.04", COST_GIB_HOUR="0.005")

    assert result.returncode == 0, result.stderr
    # (1.5 x 0.04 + 1.5 x 0.005) x 730 = 49.275, and (4 x 0.04 + 4 x 0.005) x 730 = 131.40.
    assert result.stdout.splitlines()[-2:] == [
        "  a month on demand (730 h, COST_VCPU_HOUR=0.04 and COST_GIB_HOUR=0.005):",
        "    your prices  $49.28 to $131.40",
    ]


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (
            {"COST_VCPU_HOUR": "abc", "COST_GIB_HOUR": "0.005"},
            "error: COST_VCPU_HOUR='abc' is invalid: must be the price of a vCPU-hour in USD, a"
            " positive number (set with COST_GIB_HOUR)",
        ),
        (
            {"COST_VCPU_HOUR": "0.04"},
            "error: COST_GIB_HOUR='' is invalid: must be the price of a GiB-hour in USD, a"
            " positive number (set with COST_VCPU_HOUR)",
        ),
        (
            {"COST_VCPU_HOUR": "0.04", "COST_GIB_HOUR": "-1"},
            "error: COST_GIB_HOUR='-1' is invalid: must be the price of a GiB-hour in USD, a"
            " positive number (set with COST_VCPU_HOUR)",
        ),
    ],
)
def test_a_bad_rate_is_one_error_line_naming_it(
    default_project: Path, settings: dict[str, str], error: str
) -> None:
    result = cost(default_project, **settings)

    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"{error}\n")


def test_an_unknown_overlay_is_one_error_line(default_project: Path) -> None:
    result = cost(default_project, "dev", "staging")

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: no such overlays in k8s/overlays: staging\n"


def test_the_estimate_follows_edits_to_the_manifests(project: Path) -> None:
    deployment = project / "k8s" / "base" / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace("cpu: 500m", "cpu: 250m"))

    result = cost(project, "prod")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "prod: 3 to 8 pods request 0.75 to 2 vCPU and 1.5 to 4 GiB",
        "  Deployment/orders-service  3 to 8 pods x 0.25 vCPU, 0.5 GiB",
    ]


def test_a_pod_requests_its_containers_and_sidecars_or_its_largest_init_container(
    default_project: Path,
) -> None:
    module = cost_module(default_project)
    spec = {
        "initContainers": [
            {
                "name": "sidecar",
                "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "100m"}},
            },
            # A limit and no request: Kubernetes requests the limit.
            {"name": "setup", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}},
        ],
        "containers": [
            {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
            {"name": "exporter", "resources": {"requests": {"cpu": "0.1", "memory": "64Mi"}}},
        ],
    }

    requests = module.pod_requests(spec)

    # CPU: setup and the sidecar started before it (2.1) outweigh app + exporter + sidecar
    # (0.7); memory: setup's 1 GiB outweighs 320 MiB.
    assert (requests.cpu, requests.memory) == (module.Decimal("2.1"), 2**30)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", "0.5"),
        ("2", "2"),
        ("0.1", "0.1"),
        ("1e3", "1000"),
        ("1k", "1000"),
        ("512Mi", 512 * 2**20),
        ("1G", 10**9),
        ("1.5Gi", 3 * 2**29),
        ("250u", "0.00025"),
    ],
)
def test_kubernetes_quantities_are_read_as_kubernetes_reads_them(
    default_project: Path, text: str, value: object
) -> None:
    module = cost_module(default_project)

    assert module.quantity(text) == module.Decimal(value)


def test_a_malformed_quantity_names_itself(default_project: Path) -> None:
    module = cost_module(default_project)

    with pytest.raises(module.CostError, match="'12x' is not a Kubernetes resource quantity"):
        module.quantity("12x")
