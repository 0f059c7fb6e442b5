"""The research's rules as checks on a profile, each with the research's reason and a fix.

Shown on the profile page and run before every deploy. `error` findings stop a deploy;
`warning` findings are shown and the deploy goes on.
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError

from deployments.build_sources import build_source
from deployments.integrations import IntegrationError
from deployments.integrations.kube import Kube, Resources
from deployments.models import Component
from deployments.services.capacity import namespace_capacity
from deployments.validators import NODE_PORT_MAX, NODE_PORT_MIN, parse_quantity

ERROR, WARNING = "error", "warning"
GiB = Decimal(2**30)


@dataclass(frozen=True)
class Finding:
    check: str
    level: str
    subject: str
    message: str
    reason: str
    fix: str


@dataclass(frozen=True)
class Capacity:
    needed: Resources
    free: Resources
    total: Resources
    source: str  # "cluster" (asked) or "configured" (the Cluster row's size)
    scope: str = ""  # which nodes were counted, when not all of the cluster's

    @property
    def where(self):
        return f"{self.source}: {self.scope}" if self.scope else self.source

    @property
    def fits(self):
        return self.needed.cpu <= self.free.cpu and self.needed.memory <= self.free.memory


def format_cpu(cores):
    return f"{cores.normalize():f} CPU"


def format_memory(amount):
    return f"{(amount / GiB).quantize(Decimal('0.01')).normalize():f}Gi"


def profile_checks(*, spec, cluster, profile=None, kube=None):
    """All findings for a profile spec. `kube`: a Kube to ask, or None to use configured sizes."""
    findings = []
    for comp in spec["components"]:
        findings += _component_findings(comp)
    findings += _node_port_findings(spec, cluster, profile, kube)
    findings += _ingress_findings(spec, cluster, profile, kube)
    capacity = capacity_fit(spec=spec, cluster=cluster, kube=kube)
    if not capacity.fits:
        findings.append(
            Finding(
                "capacity",
                ERROR,
                "profile",
                f"needs {format_cpu(capacity.needed.cpu)} and "
                f"{format_memory(capacity.needed.memory)} but the cluster has "
                f"{format_cpu(capacity.free.cpu)} and {format_memory(capacity.free.memory)} "
                f"free ({capacity.where})",
                "The scheduler leaves pods Pending with 'Insufficient cpu/memory' when requests "
                "do not fit; the research sizes Minikube at 4 CPUs / 8 GB for 1.5 CPU / 1.5 Gi.",
                "Lower requests or replicas, or give Minikube more: "
                "minikube start --cpus=4 --memory=8192 --driver=docker",
            )
        )
    return findings


def _component_findings(comp):
    name, found = comp["name"], []
    requests, limits = comp["resources"]["requests"], comp["resources"]["limits"]
    unequal = [
        r for r in ("cpu", "memory") if parse_quantity(requests[r]) != parse_quantity(limits[r])
    ]
    if unequal:
        found.append(
            Finding(
                "guaranteed-qos",
                WARNING,
                name,
                f"requests and limits differ for {' and '.join(unequal)}: the pod is Burstable, "
                "not Guaranteed",
                "Requests = limits gives Guaranteed QoS and prevents contention on a laptop; "
                "requests < limits can end in OOMKilled when the node runs short.",
                "Set limits equal to requests ("
                + ", ".join(f"{r} {requests[r]}" for r in unequal)
                + ").",
            )
        )
    live, ready = comp["probes"]["liveness"], comp["probes"]["readiness"]
    if live["initialDelaySeconds"] < ready["initialDelaySeconds"]:
        found.append(
            Finding(
                "probe-delays",
                WARNING,
                name,
                f"liveness starts after {live['initialDelaySeconds']}s, before readiness "
                f"({ready['initialDelaySeconds']}s)",
                "Liveness uses longer delays than readiness, so a slow start is reported "
                "not-ready instead of being restarted (e.g. liveness 30s, readiness 10s).",
                "Set liveness initialDelaySeconds to at least the readiness delay, e.g. 30 and 10.",
            )
        )
    if live["path"] == ready["path"] and live["path"] not in ("/",):
        found.append(
            Finding(
                "probe-paths",
                WARNING,
                name,
                f"liveness and readiness both probe {live['path']}",
                "A single endpoint cannot tell 'dead' from 'temporarily unavailable': a database "
                "outage would restart healthy pods.",
                "Serve /health (process alive) and /ready (dependencies reachable) separately.",
            )
        )
    for kind, probe in (("liveness", live), ("readiness", ready)):
        if probe["timeoutSeconds"] >= probe["periodSeconds"]:
            found.append(
                Finding(
                    "probe-timeout",
                    WARNING,
                    name,
                    f"{kind} timeout {probe['timeoutSeconds']}s is not shorter than its period "
                    f"{probe['periodSeconds']}s",
                    "Probes overlap when a timeout reaches the period (e.g. liveness "
                    "timeout 5s every 10s, readiness 3s every 5s).",
                    f"Lower the {kind} timeout below {probe['periodSeconds']}s.",
                )
            )
    if comp["tag"] == "latest":
        found.append(
            Finding(
                "latest-tag",
                WARNING,
                name,
                "the image tag is 'latest'",
                "A moving tag makes a release irreproducible: a rollback cannot restore the "
                "image it deployed.",
                "Use a version tag, e.g. 1.0.0.",
            )
        )
    user = dockerfile_user(comp)
    if user in ("", "root", "0"):
        found.append(
            Finding(
                "root-user",
                ERROR,
                name,
                f"{comp['build']['context']}/{comp['build']['dockerfile']} runs as root "
                "(no USER in its final stage)"
                if not user
                else f"{comp['build']['context']}/{comp['build']['dockerfile']} sets USER {user}",
                "The chart requires runAsNonRoot, so a root image never starts "
                "(CreateContainerConfigError); the research runs as uid 1001.",
                "Add `RUN useradd -m -u 1001 appuser` and `USER appuser` to the runner stage.",
            )
        )
    return found


def dockerfile_user(comp):
    """The USER of a built component's final stage ("" when none); None when not checkable."""
    build = comp.get("build")
    if not build:
        return None
    try:  # only a Dockerfile inside the source roots is read (build_sources.build_source)
        source = build_source(build["context"], build["dockerfile"], must_exist=True)
        text = (source.context / source.dockerfile).read_text()
    except (ValidationError, OSError, UnicodeDecodeError):
        return None
    user = ""
    for line in text.splitlines():
        words = line.strip().split()
        if not words:
            continue
        if words[0].upper() == "FROM":
            user = ""  # a new stage starts as root again
        elif words[0].upper() == "USER" and len(words) > 1:
            user = re.split(r"[:]", words[1])[0]
    return user


def node_port_conflicts(*, spec, cluster, profile=None, kube=None):
    """[(port, component, owner)] for each nodePort of `spec` already taken on `cluster`:
    by another profile's component there ("shop/web"), and, when `kube` is given and
    answers, by a Service of another release in the cluster ("service ns/name"). The one
    rule behind the save path (profiles.profile_check_conflicts) and the deploy check."""
    wanted = {
        c["service"]["nodePort"]: c["name"]
        for c in spec["components"]
        if c["service"]["nodePort"] is not None
    }
    if not wanted:
        return []
    taken = Component.objects.filter(profile__cluster=cluster, node_port__in=wanted)
    if profile is not None:
        taken = taken.exclude(profile=profile)
    owners = {c.node_port: f"{c.profile.name}/{c.name}" for c in taken.select_related("profile")}
    if kube is not None:
        try:
            in_cluster = kube.node_ports()
        except IntegrationError:
            in_cluster = {}
        release_services = {f"{spec['namespace']}/{c['name']}-service" for c in spec["components"]}
        for port, service in in_cluster.items():
            if port in wanted and service not in release_services:
                owners.setdefault(port, f"service {service}")
    return [(port, wanted[port], owner) for port, owner in sorted(owners.items())]


def ingress_conflicts(*, spec, cluster, profile=None, kube=None):
    """[(host, component, owner)] for each Ingress host of `spec` that another profile's
    component on `cluster` already uses ("shop/web"), and, when `kube` is given and
    answers, an Ingress of another release in the cluster ("Ingress ns/name"): one ingress
    controller routes a host to one place. The save path (profiles.profile_check_conflicts)
    and the deploy check."""
    wanted = {c["ingress"]["host"]: c["name"] for c in spec["components"] if c.get("ingress")}
    if not wanted:
        return []
    taken = Component.objects.filter(profile__cluster=cluster, ingress_host__in=wanted)
    if profile is not None:
        taken = taken.exclude(profile=profile)
    owners: dict[str, str] = {}
    for c in taken.select_related("profile").order_by("profile__name", "name"):
        owners.setdefault(c.ingress_host, f"{c.profile.name}/{c.name}")
    if kube is not None:
        try:
            in_cluster = kube.ingress_hosts()
        except IntegrationError:
            in_cluster = {}
        ours = {f"{spec['namespace']}/{spec['name']}-{c['name']}" for c in spec["components"]}
        for host, ingress in in_cluster.items():
            if host in wanted and ingress not in ours:
                owners.setdefault(host, f"Ingress {ingress}")
    return [(host, wanted[host], owner) for host, owner in sorted(owners.items())]


def _ingress_findings(spec, cluster, profile, kube):
    return [
        Finding(
            "ingress-host-taken",
            ERROR,
            component,
            f"Ingress host {host} is already used by {owner}",
            "The ingress controller routes a host to one place: two profiles cannot share it.",
            "Pick another host (or a path under the other profile's host, in that profile).",
        )
        for host, component, owner in ingress_conflicts(
            spec=spec, cluster=cluster, profile=profile, kube=kube
        )
    ]


def _node_port_findings(spec, cluster, profile, kube):
    return [
        Finding(
            "node-port-taken",
            ERROR,
            component,
            f"nodePort {port} is already used by {owner}",
            "A nodePort is one port on every node: two services cannot share it.",
            f"Pick another port in {NODE_PORT_MIN}-{NODE_PORT_MAX}, or leave it empty to let "
            "Kubernetes choose.",
        )
        for port, component, owner in node_port_conflicts(
            spec=spec, cluster=cluster, profile=profile, kube=kube
        )
    ]


def spec_requests(spec):
    total = Resources()
    for comp in spec["components"]:
        req = comp["resources"]["requests"]
        per_pod = Resources(parse_quantity(req["cpu"]), parse_quantity(req["memory"]))
        total += Resources(per_pod.cpu * comp["replicas"], per_pod.memory * comp["replicas"])
    return total


def capacity_fit(*, spec, cluster, kube=None):
    """The profile's total requests against what its namespace's nodes have free.

    Asked from the cluster when `kube` answers: the allocatable of the nodes the
    namespace's pods may land on, summed (no per-node bin packing; Minikube has one node),
    minus requests of pods already bound to them, this release's own pods excluded since
    an upgrade replaces them (services/capacity.py). Else the Cluster's configured size
    with nothing else running.
    """
    needed = spec_requests(spec)
    if kube is not None:
        try:
            found = namespace_capacity(
                kube=kube, namespace=spec["namespace"], exclude_release=spec["name"]
            )
        except IntegrationError:
            pass
        else:
            scope = ""
            if len(found.nodes) != found.of_nodes:
                scope = (
                    f"{len(found.nodes)} of {found.of_nodes} nodes take pods of namespace "
                    f"{spec['namespace']}"
                )
            return Capacity(needed, found.total - found.used, found.total, "cluster", scope)
    total = Resources(Decimal(cluster.capacity_cpus), parse_quantity(cluster.capacity_memory))
    return Capacity(needed, total, total, "configured")


def kube_for(cluster, *, shared=False):
    """A Kube for the cluster (`shared`: see Kube), or None when its kubeconfig cannot even
    be loaded."""
    try:
        return Kube(cluster, shared=shared)
    except IntegrationError:
        return None
