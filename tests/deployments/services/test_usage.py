"""Usage rows from PodMetrics (pure), their verdicts in the research's words, and the
brief cache in front of the Metrics API (the API itself is faked here; the real one is in
tests/deployments/views/test_usage_metrics.py)."""

from decimal import Decimal

import pytest

from deployments.services import usage
from deployments.services.usage import (
    Gauge,
    MetricsUnavailable,
    component_resources,
    profile_usage,
    usage_rows,
)
from tests.factories import ComponentFactory, ProfileFactory

MI = 2**20


def pod_metrics(name, containers, component="backend"):
    return {
        "metadata": {
            "name": name,
            "namespace": "todo-app",
            "labels": {
                "app.kubernetes.io/instance": "todo-app",
                "app.kubernetes.io/component": component,
            },
        },
        "timestamp": "2026-01-01T00:00:00Z",
        "window": "15s",
        "containers": [
            {"name": cname, "usage": {"cpu": cpu, "memory": memory}}
            for cname, cpu, memory in containers
        ],
    }


class FakeComponent:
    def __init__(self, name, cpu="500m", memory="512Mi", cpu_limit=None, memory_limit=None):
        self.name = name
        self.cpu_request, self.cpu_limit = cpu, cpu_limit or cpu
        self.memory_request, self.memory_limit = memory, memory_limit or memory


SEED = component_resources(
    [FakeComponent("frontend"), FakeComponent("backend", cpu="1000m", memory="1Gi")]
)


def test_it_reads_metrics_server_quantities_against_the_components_requests_and_limits():
    items = [
        pod_metrics("backend-1", [("backend", "250002806n", "307200Ki")]),
        pod_metrics("frontend-1", [("frontend", "5m", "128Mi")], component="frontend"),
    ]
    rows = usage_rows(items=items, resources=SEED, namespace="todo-app")
    assert [(r.component, r.pod) for r in rows] == [
        ("backend", "backend-1"),
        ("frontend", "frontend-1"),
    ]
    backend = rows[0]
    assert backend.cpu.used == Decimal("0.250002806")
    assert (backend.cpu.used_text, backend.cpu.request_text, backend.cpu.limit_text) == (
        "250m",
        "1000m",
        "1000m",
    )
    assert backend.memory.used == 300 * MI
    assert (backend.memory.used_text, backend.memory.limit_text) == ("300Mi", "1Gi")
    assert (backend.cpu.percent, backend.memory.percent) == (25, 29)
    assert backend.memory.meter == Decimal("0.293")
    assert not backend.oom_risk and backend.notes == ()
    assert rows[1].memory.percent == 25


def test_it_flags_memory_near_the_limit_as_an_oom_risk_with_the_researchs_fix():
    items = [pod_metrics("frontend-1", [("frontend", "100m", "480Mi")], component="frontend")]
    (row,) = usage_rows(items=items, resources=SEED, namespace="todo-app")
    assert row.oom_risk and row.memory.percent == 94
    (note,) = row.notes
    assert note.kind == "oom-risk"
    assert "OOM risk: memory is at 94% of its 512Mi limit" in note.message
    assert "OOMKilled" in note.message and "requests=limits" in note.message
    assert "kubectl top pods -n todo-app" in note.message
    assert "Increase the memory limit of frontend" in note.message


def test_it_fills_the_bar_at_the_limit_and_says_so_beyond_it():
    items = [pod_metrics("frontend-1", [("frontend", "600m", "600Mi")], component="frontend")]
    (row,) = usage_rows(items=items, resources=SEED, namespace="todo-app")
    assert row.memory.percent == 117 and row.memory.meter == 1
    assert row.cpu.percent == 120
    assert [n.kind for n in row.notes] == ["oom-risk", "cpu-throttled"]


def test_it_calls_a_mostly_unused_request_underutilized():
    items = [pod_metrics("backend-1", [("backend", "10m", "100Mi")])]
    (row,) = usage_rows(items=items, resources=SEED, namespace="todo-app")
    assert [n.kind for n in row.notes] == ["underused"]
    assert "Underutilized: memory uses 100Mi of its 1Gi request" in row.notes[0].message


def test_it_matches_containers_by_name_then_by_the_pods_component_label():
    items = [
        pod_metrics(
            "backend-1",
            [("backend", "1m", "600Mi"), ("istio-proxy", "1m", "30Mi")],
        ),
        pod_metrics("renamed-1", [("app", "1m", "600Mi")], component="frontend"),
    ]
    rows = {r.container: r for r in usage_rows(items=items, resources=SEED, namespace="ns")}
    assert rows["backend"].memory.limit == 1024 * MI
    # a sidecar in a labelled pod: the pod's component (the label), its numbers unmatched
    assert rows["istio-proxy"].component == "backend"
    assert rows["app"].component == "frontend" and rows["app"].memory.limit == 512 * MI
    unknown = usage_rows(
        items=[pod_metrics("x-1", [("x", "1m", "1Mi")], component="gone")],
        resources=SEED,
        namespace="ns",
    )
    (row,) = unknown
    assert row.memory.limit is None and row.memory.percent is None and row.memory.meter is None
    assert row.memory.limit_text == "—" and row.notes == ()


def test_it_skips_containers_without_a_sample_and_bad_quantities():
    items = [
        pod_metrics("a-1", [("backend", "bogus", "1Mi")]),
        {"metadata": {"name": "b-1"}, "containers": [{"name": "backend", "usage": {}}]},
        {"metadata": {}},
    ]
    assert usage_rows(items=items, resources=SEED, namespace="ns") == ()


def test_it_shows_usage_against_the_request_when_there_is_no_limit():
    gauge = Gauge("memory", Decimal(256 * MI), request=Decimal(512 * MI))
    assert (gauge.percent, gauge.limit_text) == (50, "—")
    assert Gauge("memory", Decimal(2 * 1024 * MI)).used_text == "2Gi"
    assert Gauge("memory", Decimal(1536 * MI)).used_text == "1536Mi"
    assert Gauge("cpu", Decimal("1.5")).used_text == "1500m"


@pytest.mark.django_db
def test_it_caches_the_answer_briefly_and_lists_pods_waiting_for_a_sample(monkeypatch, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    profile = ProfileFactory(name="shop", namespace="shop")
    ComponentFactory(profile=profile, name="web", memory_request="256Mi", memory_limit="256Mi")
    calls = []

    def fake(cluster, *, namespace, label_selector):
        calls.append((namespace, label_selector))
        return [pod_metrics("web-1", [("web", "20m", "200Mi")], component="web")]

    monkeypatch.setattr(usage, "pod_metrics", fake)
    first = profile_usage(profile=profile, waiting_pods=["web-1", "web-2"])
    assert calls == [("shop", "app.kubernetes.io/instance=shop")]
    assert [r.pod for r in first.rows] == ["web-1"] and first.waiting == ("web-2",)
    assert (first.window, first.sampled_at) == ("15s", "2026-01-01T00:00:00Z")
    assert first.rows[0].memory.percent == 78

    again = profile_usage(profile=profile, waiting_pods=[])
    assert len(calls) == 1 and again.waiting == () and again.rows == first.rows
    profile_usage(profile=profile, use_cache=False)
    assert len(calls) == 2


@pytest.mark.django_db
def test_it_turns_an_unavailable_metrics_api_into_the_pages_message(monkeypatch, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    profile = ProfileFactory(name="shop", namespace="shop")

    def fake(cluster, *, namespace, label_selector):
        raise MetricsUnavailable("metrics unavailable: minikube addons enable metrics-server")

    monkeypatch.setattr(usage, "pod_metrics", fake)
    answer = profile_usage(profile=profile, waiting_pods=["web-1"])
    assert answer.unavailable.startswith("metrics unavailable: minikube addons enable")
    assert answer.rows == () and answer.waiting == ("web-1",)


@pytest.mark.django_db
def test_it_reports_an_unreadable_kubeconfig_and_an_unreachable_cluster_as_unavailable(
    tmp_path, unreachable_kubeconfig
):
    from deployments.models import Cluster

    missing = Cluster(name="nowhere", kubeconfig_path=str(tmp_path / "absent"))
    with pytest.raises(MetricsUnavailable, match="metrics unavailable: cannot load kubeconfig"):
        usage.pod_metrics(missing, namespace="ns", label_selector="a=b")
    down = Cluster(name="down", kubeconfig_path=str(unreachable_kubeconfig))
    with pytest.raises(MetricsUnavailable, match="the cluster is unreachable"):
        usage.pod_metrics(down, namespace="ns", label_selector="a=b")
