"""What the manifests cost to run, per overlay: `python k8s/cost.py` (`make cost`).

Each overlay is built with `kubectl kustomize`, as k8s/validate.py builds it, so the estimate
follows every edit. For each Deployment and StatefulSet it takes the CPU and memory one pod
requests and the fewest and most pods its autoscaler allows (its `replicas` when nothing scales
it), and prices the total at on-demand rates per vCPU-hour and GiB-hour: each instance of
k8s/prices.json split into the two, or COST_VCPU_HOUR and COST_GIB_HOUR when set.

Requests are what the cluster reserves for the pods, so this is the share of the nodes they
occupy: no control plane, storage, traffic or idle node capacity.
Exit status: 0, or 1 when an overlay cannot be built or a price setting is invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from checks import Manifests, maximum_replicas, minimum_replicas, pod_spec, ref

K8S_DIR = Path(__file__).resolve().parent
PRICES_FILE = K8S_DIR / "prices.json"
PRICE_VARIABLES = {"COST_VCPU_HOUR": "vCPU-hour", "COST_GIB_HOUR": "GiB-hour"}
GIB = Decimal(2**30)
# Kubernetes' resource quantities: a decimal number, an optional exponent, an SI or binary suffix.
QUANTITY = re.compile(
    r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)"
)
SUFFIXES = {
    **{s: Decimal(10) ** (3 * p) for s, p in zip("num", (-3, -2, -1), strict=True)},
    "": Decimal(1),
    **{s: Decimal(10) ** (3 * p) for p, s in enumerate("kMGTPE", start=1)},
    **{s: Decimal(2) ** (10 * p) for p, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
}


class CostError(Exception):
    """A setting or a manifest the estimate cannot use; its text is one line for the user."""


def quantity(value: object) -> Decimal:
    """A resource quantity (`500m`, `1`, `512Mi`, `1e3`) as a plain number."""
    # Parsed here: the Kubernetes client's parser would be its only use of a large package.
    match = QUANTITY.fullmatch(str(value).strip())
    if match is None:
        raise CostError(f"{value!r} is not a Kubernetes resource quantity")
    return Decimal(match[1]) * SUFFIXES[match[2]]


@dataclass(frozen=True)
class Requests:
    cpu: Decimal = Decimal(0)  # cores
    memory: Decimal = Decimal(0)  # bytes

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu + other.cpu, self.memory + other.memory)

    def __mul__(self, pods: int) -> Requests:
        return Requests(self.cpu * pods, self.memory * pods)

    def most(self, other: Requests) -> Requests:
        return Requests(max(self.cpu, other.cpu), max(self.memory, other.memory))


def container_requests(container: dict) -> Requests:
    resources = container.get("resources", {})
    # A container that states a limit and no request is given its limit as the request.
    requested = {**resources.get("limits", {}), **resources.get("requests", {})}
    return Requests(quantity(requested.get("cpu", 0)), quantity(requested.get("memory", 0)))


def pod_requests(spec: dict) -> Requests:
    """What the scheduler reserves for one pod: its containers and sidecars, or its largest
    init container with the sidecars started before it, whichever is more."""
    sidecars, init_peak = Requests(), Requests()
    for init in spec.get("initContainers", []):
        if init.get("restartPolicy") == "Always":
            sidecars += container_requests(init)
        else:
            init_peak = init_peak.most(sidecars + container_requests(init))
    running = sum((container_requests(c) for c in spec.get("containers", [])), sidecars)
    return running.most(init_peak)


@dataclass(frozen=True)
class Workload:
    name: str
    fewest: int
    most: int
    per_pod: Requests


def replica_range(manifests: Manifests, workload: dict) -> tuple[int, int]:
    autoscalers = manifests.autoscalers_of(workload)
    if not autoscalers:
        replicas = workload["spec"].get("replicas", 1)
        return replicas, replicas
    return (
        min(minimum_replicas(a) for a in autoscalers),
        max(maximum_replicas(a) for a in autoscalers),
    )


def workloads(resources: list[dict]) -> tuple[list[Workload], list[str]]:
    """The priced workloads, and the DaemonSets: one pod per node, which the manifests do not
    count."""
    manifests = Manifests(resources, K8S_DIR.parent)
    priced, per_node = [], []
    for workload in manifests.workloads:
        if workload["kind"] == "DaemonSet":
            per_node.append(ref(workload))
            continue
        fewest, most = replica_range(manifests, workload)
        priced.append(Workload(ref(workload), fewest, most, pod_requests(pod_spec(workload) or {})))
    return priced, per_node


@dataclass(frozen=True)
class Price:
    name: str
    vcpu_hour: Decimal
    gib_hour: Decimal

    def monthly(self, requests: Requests, hours: Decimal) -> Decimal:
        return (requests.cpu * self.vcpu_hour + requests.memory / GIB * self.gib_hour) * hours


@dataclass(frozen=True)
class PriceList:
    prices: list[Price]
    hours_per_month: Decimal
    currency: str
    # Where the prices come from, for the output.
    basis: str


def number(value: object) -> Decimal:
    return Decimal(str(value))


def price_list(environ: Mapping[str, str]) -> PriceList:
    # JSON, not TOML: Python 3.10, which may run the bake's validator, has no tomllib.
    table = json.loads(PRICES_FILE.read_text(encoding="utf-8"), parse_float=Decimal)
    hours, currency = number(table["hours_per_month"]), table["currency"]
    given = {name: environ.get(name, "") for name in PRICE_VARIABLES}
    if any(given.values()):
        rates = []
        for name, text in given.items():
            try:
                rate = Decimal(text)
            except InvalidOperation:
                rate = Decimal(0)
            if not rate.is_finite() or rate <= 0:
                others = " and ".join(n for n in PRICE_VARIABLES if n != name)
                raise CostError(
                    f"{name}={text!r} is invalid: must be the price of a {PRICE_VARIABLES[name]}"
                    f" in {currency}, a positive number (set with {others})"
                )
            rates.append(rate)
        basis = " and ".join(f"{n}={v}" for n, v in given.items())
        return PriceList([Price("your prices", *rates)], hours, currency, basis)
    # A vCPU-hour is worth this many GiB-hours (the published split in prices.json).
    ratio = number(table["split"]["vcpu_hour"]) / number(table["split"]["gib_hour"])
    prices = []
    for instance in table["instances"]:
        gib_hour = number(instance["hourly"]) / (
            number(instance["vcpus"]) * ratio + number(instance["memory_gib"])
        )
        name = f"{instance['cloud']} {instance['type']} ({instance['region']})"
        prices.append(Price(name, gib_hour * ratio, gib_hour))
    basis = f"list prices of {table['as_of']} from k8s/prices.json"
    return PriceList(prices, hours, currency, basis)


def plain(value: Decimal) -> str:
    """`1.5`, `4`, `0.125`: at most three decimals, no trailing zeros."""
    rounded = round(value, 3).normalize()
    return f"{rounded:f}"


def span(low: str, high: str) -> str:
    return low if low == high else f"{low} to {high}"


def pods(fewest: int, most: int) -> str:
    return f"{span(str(fewest), str(most))} pod{'' if most == 1 else 's'}"


def money(value: Decimal, currency: str) -> str:
    return f"${value:,.2f}" if currency == "USD" else f"{value:,.2f} {currency}"


@dataclass(frozen=True)
class Estimate:
    overlay: str
    workloads: list[Workload]
    per_node: list[str]

    @classmethod
    def of(cls, overlay: str, resources: list[dict]) -> Estimate:
        return cls(overlay, *workloads(resources))

    @property
    def fewest(self) -> Requests:
        return sum((w.per_pod * w.fewest for w in self.workloads), Requests())

    @property
    def most(self) -> Requests:
        return sum((w.per_pod * w.most for w in self.workloads), Requests())

    def requested(self) -> str:
        cpu = span(plain(self.fewest.cpu), plain(self.most.cpu))
        memory = span(plain(self.fewest.memory / GIB), plain(self.most.memory / GIB))
        return f"{cpu} vCPU and {memory} GiB"

    def monthly(self, price: Price, prices: PriceList) -> tuple[Decimal, Decimal]:
        hours = prices.hours_per_month
        return price.monthly(self.fewest, hours), price.monthly(self.most, hours)

    def report(self, prices: PriceList) -> list[str]:
        fewest = sum(w.fewest for w in self.workloads)
        most = sum(w.most for w in self.workloads)
        lines = [f"{self.overlay}: {pods(fewest, most)} request {self.requested()}"]
        width = max((len(w.name) for w in self.workloads), default=0)
        for workload in self.workloads:
            each = workload.per_pod
            lines.append(
                f"  {workload.name:<{width}}  {pods(workload.fewest, workload.most)}"
                f" x {plain(each.cpu)} vCPU, {plain(each.memory / GIB)} GiB"
            )
        lines += [f"  {name}: one pod per node, not counted" for name in self.per_node]
        lines.append(f"  a month on demand ({plain(prices.hours_per_month)} h, {prices.basis}):")
        width = max(len(p.name) for p in prices.prices)
        for price in prices.prices:
            low, high = (money(v, prices.currency) for v in self.monthly(price, prices))
            lines.append(f"    {price.name:<{width}}  {span(low, high)}")
        return lines

    def summary(self, prices: PriceList) -> str:
        """One line: the requests, and the range over every price of the list."""
        ranges = [self.monthly(price, prices) for price in prices.prices]
        low = money(min(r[0] for r in ranges), prices.currency)
        high = money(max(r[1] for r in ranges), prices.currency)
        return (
            f"cost: {self.overlay} requests {self.requested()}, {span(low, high)} a month on"
            f" demand ({prices.basis}; make cost for each)"
        )


def main(argv: Iterable[str] | None = None) -> int:
    # validate.py imports this module for its summary line, so it is imported only here.
    from validate import find_tool, load_documents, overlay_names, with_secret_stand_ins

    parser = argparse.ArgumentParser(
        prog="python k8s/cost.py",
        description="Estimate what each kustomize overlay requests and costs a month.",
    )
    parser.add_argument("overlays", nargs="*", help="overlay names (default: all in k8s/overlays)")
    args = parser.parse_args(None if argv is None else list(argv))
    names, unknown = overlay_names(args.overlays)
    if unknown:
        print(f"error: no such overlays in k8s/overlays: {', '.join(unknown)}", file=sys.stderr)
        return 1
    kubectl = find_tool("kubectl")
    if kubectl is None:
        print("error: make cost needs kubectl to build the overlays: make install", file=sys.stderr)
        return 1
    try:
        prices = price_list(os.environ)
        with tempfile.TemporaryDirectory() as scratch:
            root = with_secret_stand_ins(Path(scratch)) or K8S_DIR
            reports = []
            for name in names:
                built = subprocess.run(  # noqa: S603 - fixed arguments, no shell
                    [kubectl, "kustomize", str(root / "overlays" / name)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if built.returncode != 0:
                    reason = " ".join(built.stderr.replace(str(root), "k8s").split())
                    raise CostError(f"overlay {name}: kubectl kustomize failed: {reason}")
                reports.append(Estimate.of(name, load_documents(built.stdout)).report(prices))
    except CostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n\n".join("\n".join(report) for report in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
