"""CPU and memory usage of a profile's pods beside its components' requests and limits.

The numbers come from the Metrics API (metrics.k8s.io, served by metrics-server: on Minikube
`minikube addons enable metrics-server`, what `kubectl top pods` reads). It is
an aggregated API: absent, the apiserver answers 404; registered but not answering, 503.
Either way the page says "metrics unavailable" with the command that fixes it, never 500.

- `usage_rows(...)` is pure: PodMetrics items + the profile's components -> rows, each
  with a verdict: requests = limits (Guaranteed QoS), a memory near its limit is an
  OOMKilled risk (raise the limit), a request far above use is waste (lower it).
- `profile_usage(profile=...)` asks the cluster (short timeouts) and caches the answer for
  a few seconds, so a page full of viewers costs the apiserver one request per profile.

Quantities are parsed by deployments.validators.parse_quantity, the project's one reading
of Kubernetes quantities (metrics-server writes CPU in nanocores, `1234567n`, and memory
in KiB, `20480Ki`).
"""

import contextlib
import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import urllib3
from django.core.cache import cache

from deployments.integrations import IntegrationError
from deployments.integrations.kube import COMPONENT_LABEL, INSTANCE_LABEL, api_client
from deployments.integrations.lazy import lazy
from deployments.models import PodState
from deployments.validators import parse_quantity

client = lazy("kubernetes.client")
rest = lazy("kubernetes.client.rest")
log = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
TIMEOUT = (2, 3)  # connect, read: a page waits on this (in its own htmx request)
CACHE_SECONDS = 10  # metrics-server samples every 15s (kwokctl) to 60s (minikube)
ENABLE_HINT = "minikube addons enable metrics-server"

# memory at or above this share of its limit is an OOM risk: the research sizes limits
# with headroom for spikes ("FastAPI + OpenAI SDK + MCP can spike to 800Mi, 1Gi provides
# safety margin"); a container living at its limit is OOMKilled by the next one
OOM_RISK = Decimal("0.9")
CPU_THROTTLED = Decimal("0.9")  # CPU at its limit is throttled, not killed
UNDERUSED = Decimal("0.25")  # below this share of its memory request: reserved, unused
MI, GI = Decimal(2**20), Decimal(2**30)


class MetricsUnavailable(Exception):  # noqa: N818 - a state the page shows, not a bug
    """The Metrics API did not answer with numbers; `str()` is the page's message."""


@dataclass(frozen=True)
class Gauge:
    """One resource of one container: usage against its request and limit (base units:
    cores, bytes). `share` is usage / limit (or / request without a limit), None without
    either."""

    resource: str  # "cpu" | "memory"
    used: Decimal
    request: Decimal | None = None
    limit: Decimal | None = None

    @property
    def ceiling(self):
        return self.limit or self.request

    @property
    def share(self):
        return self.used / self.ceiling if self.ceiling else None

    @property
    def percent(self):
        return None if self.share is None else int((self.share * 100).to_integral_value())

    @property
    def meter(self):
        """The <meter> value: the share, capped at 1 (the bar is full at the limit)."""
        if self.share is None:
            return None
        return min(self.share, Decimal(1)).quantize(Decimal("0.001"))

    def text(self, amount):
        if amount is None:
            return "—"
        if self.resource == "cpu":
            return f"{(amount * 1000).to_integral_value()}m"
        if amount >= GI and amount % GI == 0:  # as the research writes it: 1Gi, not 1024Mi
            return f"{amount // GI}Gi"
        return f"{(amount / MI).to_integral_value()}Mi"

    @property
    def used_text(self):
        return self.text(self.used)

    @property
    def request_text(self):
        return self.text(self.request)

    @property
    def limit_text(self):
        return self.text(self.limit)


@dataclass(frozen=True)
class Note:
    kind: str  # "oom-risk" | "cpu-throttled" | "underused"
    message: str


@dataclass(frozen=True)
class Row:
    pod: str
    container: str
    component: str
    cpu: Gauge
    memory: Gauge
    notes: tuple = ()

    @property
    def oom_risk(self):
        return any(note.kind == "oom-risk" for note in self.notes)

    @property
    def gauges(self):
        return (self.cpu, self.memory)


@dataclass(frozen=True)
class Usage:
    """What the usage partial shows: rows, or why there are none."""

    rows: tuple = ()
    unavailable: str = ""  # the message when metrics-server did not answer
    waiting: tuple = ()  # pods the watcher knows that have no sample yet
    window: str = ""  # metrics-server's sampling window, e.g. "15s"
    sampled_at: str = ""
    namespace: str = ""

    @property
    def oom_risks(self):
        return [row for row in self.rows if row.oom_risk]

    @property
    def missing_metrics_server(self):
        """What the API answered when metrics-server is absent or down (the page then
        shows the command that fixes it), else None."""
        prefix = f"metrics unavailable: {ENABLE_HINT}"
        return (
            self.unavailable[len(prefix) :].strip() if self.unavailable.startswith(prefix) else None
        )


def _quantity(value):
    try:
        return parse_quantity(value) if value not in (None, "") else None
    except ValueError:
        return None


def component_resources(components):
    """{component name: {"cpu": (request, limit), "memory": (request, limit)}} from
    Component rows (what the profile asks for; helm renders the same numbers)."""
    return {
        c.name: {
            "cpu": (_quantity(c.cpu_request), _quantity(c.cpu_limit)),
            "memory": (_quantity(c.memory_request), _quantity(c.memory_limit)),
        }
        for c in components
    }


def _notes(*, namespace, component, cpu, memory):
    notes = []
    if memory.limit and memory.share is not None and memory.used >= memory.limit * OOM_RISK:
        notes.append(
            Note(
                "oom-risk",
                f"OOM risk: memory is at {memory.percent}% of its {memory.limit_text} limit, "
                "no headroom left for a spike; at the limit the container is OOMKilled. "
                f"Increase the memory limit of {component or 'this component'} (and its "
                "request with it: requests=limits), then check actual usage with "
                f"kubectl top pods -n {namespace}.",
            )
        )
    if cpu.limit and cpu.used >= cpu.limit * CPU_THROTTLED:
        notes.append(
            Note(
                "cpu-throttled",
                f"CPU is at {cpu.percent}% of its {cpu.limit_text} limit: the container is "
                "throttled (slow, not killed). Raise the CPU request and limit together.",
            )
        )
    if memory.request and memory.used < memory.request * UNDERUSED:
        notes.append(
            Note(
                "underused",
                f"Underutilized: memory uses {memory.used_text} of its {memory.request_text} "
                "request. Requests=limits reserves all of it; lower both to free the cluster.",
            )
        )
    return tuple(notes)


def usage_rows(*, items, resources, namespace):
    """Rows for PodMetrics `items` (dicts as the API returns them); `resources` is
    component_resources(...). A container is matched to its component by name (the chart
    names each container after its component), else by the pod's component label."""
    rows = []
    for item in items:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        for container in item.get("containers") or []:
            name = container.get("name", "")
            component = name if name in resources else labels.get(COMPONENT_LABEL, "")
            asked = resources.get(component, {})
            usage = container.get("usage") or {}
            cpu_used = _quantity(usage.get("cpu"))
            memory_used = _quantity(usage.get("memory"))
            if cpu_used is None or memory_used is None:
                continue  # a container without a sample yet
            cpu = Gauge("cpu", cpu_used, *asked.get("cpu", (None, None)))
            memory = Gauge("memory", memory_used, *asked.get("memory", (None, None)))
            rows.append(
                Row(
                    pod=meta.get("name", ""),
                    container=name,
                    component=component,
                    cpu=cpu,
                    memory=memory,
                    notes=_notes(namespace=namespace, component=component, cpu=cpu, memory=memory),
                )
            )
    rows.sort(key=lambda r: (r.component, r.pod, r.container))
    return tuple(rows)


def pod_metrics(cluster, *, namespace, label_selector):
    """PodMetrics items of the pods matching `label_selector` in `namespace`. Raises
    MetricsUnavailable with the page's message when the API has no numbers to give."""
    api = None
    try:
        api = api_client(cluster)
        answer: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "pods",
            label_selector=label_selector,
            _request_timeout=TIMEOUT,
        )
    except rest.ApiException as exc:
        if exc.status in (404, 503):  # not installed / installed but not answering
            raise MetricsUnavailable(
                f"metrics unavailable: {ENABLE_HINT} (the Metrics API answered "
                f"{exc.status} {exc.reason})"
            ) from None
        raise MetricsUnavailable(
            f"metrics unavailable: the Metrics API answered {exc.status} {exc.reason}"
        ) from None
    except IntegrationError as exc:  # no usable kubeconfig
        raise MetricsUnavailable(f"metrics unavailable: {exc}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise MetricsUnavailable(
            f"metrics unavailable: the cluster is unreachable ({type(exc).__name__})"
        ) from None
    finally:
        if api is not None:
            api.close()
    return answer.get("items") or []


def usage_cache_key(profile):
    return f"usage:{profile.pk}"


def profile_usage(*, profile, waiting_pods=None, use_cache=True):
    """The Usage of a profile's pods (cached CACHE_SECONDS). `waiting_pods` are the pod
    names to expect (default: the live pods the watcher knows); those without a sample are
    listed as waiting for one."""
    if waiting_pods is None:
        waiting_pods = PodState.objects.filter(profile=profile, deleted=False).values_list(
            "name", flat=True
        )
    key = usage_cache_key(profile)
    # The cache holds the Metrics API's answer as it came (JSON), not the Usage built from
    # it: the cache stores JSON only (controlpanel/cache.py), and building is cheap.
    answer = None
    if use_cache:
        with contextlib.suppress(Exception):  # no Redis: ask the cluster every time
            answer = cache.get(key)
    if not _is_answer(answer):
        try:
            answer = {
                "items": pod_metrics(
                    profile.cluster,
                    namespace=profile.namespace,
                    label_selector=f"{INSTANCE_LABEL}={profile.name}",
                )
            }
        except MetricsUnavailable as exc:
            log.debug("usage of profile %s: %s", profile.name, exc)
            answer = {"unavailable": str(exc)}
        with contextlib.suppress(Exception):
            cache.set(key, answer, CACHE_SECONDS)
    usage = _usage_of(answer, profile)
    return _with_waiting(usage, waiting_pods)


def _is_answer(answer):
    return isinstance(answer, dict) and (
        (isinstance(items := answer.get("items"), list) and all(isinstance(i, dict) for i in items))
        or isinstance(answer.get("unavailable"), str)
    )


def _usage_of(answer, profile):
    if "unavailable" in answer:
        return Usage(unavailable=answer["unavailable"], namespace=profile.namespace)
    items = answer["items"]
    first = items[0] if items else {}
    return Usage(
        rows=usage_rows(
            items=items,
            resources=component_resources(profile.components.all()),
            namespace=profile.namespace,
        ),
        window=first.get("window", ""),
        sampled_at=first.get("timestamp", ""),
        namespace=profile.namespace,
    )


def _with_waiting(usage, waiting_pods):
    sampled = {row.pod for row in usage.rows}
    waiting = tuple(sorted(name for name in waiting_pods if name not in sampled))
    if waiting == usage.waiting:
        return usage
    return replace(usage, waiting=waiting)
