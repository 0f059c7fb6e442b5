"""The panel's metrics, computed when Prometheus scrapes: aggregate queries over the rows
(releases, steps, notification attempts) and a few Redis reads (open SSE clients, the
watcher's lag), so every web process answers with the same numbers whatever worker,
watcher or web process did the work. Nothing is counted in a process's memory: the panel
runs several (uvicorn, prefork Celery workers, the watcher), and each would see a part.

Counters and histograms are totals over the rows that exist: deleting a profile deletes
its releases and steps, and their counts go down, which Prometheus' rate() and increase()
read as a counter reset.
"""

from datetime import timedelta

from django.db.models import Case, CharField, Count, Q, Sum, Value, When
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.utils import floatToGoString

from deployments import durations
from deployments.integrations.redis import RedisError, app_client
from deployments.metrics.sse_clients import sse_clients_total
from deployments.metrics.watcher_lag import watcher_lag_read
from deployments.models import NotificationAttempt, Release, Step
from deployments.services.releases import STEP_KINDS, step_kind_q

# Seconds. A build can take minutes, helm --wait up to HELMDECK_HELM_TIMEOUT (300 s).
STEP_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
QUEUE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


def _bucket_counts(field, bounds):
    """Count(filter=...) per bucket bound: one aggregate query fills a whole histogram."""
    return {
        f"le_{i}": Count("pk", filter=Q(**{f"{field}__lte": timedelta(seconds=bound)}))
        for i, bound in enumerate(bounds)
    }


def _buckets(row, bounds):
    return [(floatToGoString(bound), row[f"le_{i}"]) for i, bound in enumerate(bounds)] + [
        ("+Inf", row["count"])
    ]


def release_families():
    """helmdeck_releases_total{kind,result} (ended releases) and
    helmdeck_releases_in_progress{kind,status} (the others): one query."""
    ended = CounterMetricFamily(
        "helmdeck_releases",
        "Releases that ended, by kind (deploy, rollback, teardown) and result "
        "(succeeded, failed, rolled_back, cancelled).",
        labels=["kind", "result"],
    )
    active = GaugeMetricFamily(
        "helmdeck_releases_in_progress",
        "Releases queued or running now, by kind and status.",
        labels=["kind", "status"],
    )
    counts = {
        (row["kind"], row["status"]): row["n"]
        for row in Release.objects.order_by().values("kind", "status").annotate(n=Count("pk"))
    }
    for kind in Release.Kind.values:
        for status in Release.TERMINAL:
            ended.add_metric([kind, status], counts.get((kind, status), 0))
        for status in Release.ACTIVE:
            active.add_metric([kind, status], counts.get((kind, status), 0))
    return [ended, active]


def _step_label():
    """The `step` label: a Step's kind (services/releases.STEP_KINDS: build and load once per
    image, render, upgrade, verify, uninstall), "other" for a name of no kind."""
    whens = [When(step_kind_q(kind), then=Value(kind)) for kind in STEP_KINDS]
    return Case(*whens, default=Value("other"), output_field=CharField())


def step_duration_family():
    """helmdeck_step_duration_seconds{step}: every finished step (done or failed), from its
    start to its end; one observation per Step row (a build per image). One query."""
    family = HistogramMetricFamily(
        "helmdeck_step_duration_seconds",
        "Duration of finished release steps (done or failed), by step: build and load (one "
        "per image), render, upgrade, verify, uninstall.",
        labels=["step"],
    )
    rows = {
        row["step"]: row
        for row in Step.objects.filter(
            status__in=(Step.Status.DONE, Step.Status.FAILED),
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .annotate(step=_step_label(), duration=durations.duration("started_at", "finished_at"))
        .order_by()
        .values("step")
        .annotate(
            count=Count("pk"), total=Sum("duration"), **_bucket_counts("duration", STEP_BUCKETS)
        )
    }
    empty = {"count": 0, "total": None, **{f"le_{i}": 0 for i in range(len(STEP_BUCKETS))}}
    for step in (*STEP_KINDS, *sorted(set(rows) - set(STEP_KINDS))):
        row = rows.get(step, empty)
        family.add_metric(
            [step], _buckets(row, STEP_BUCKETS), durations.seconds(row["total"]) or 0.0
        )
    return family


def queue_latency_family():
    """helmdeck_release_queue_seconds: from a release's request to a worker's first claim
    (Release.created_at -> started_at), for every release a worker started. One query."""
    family = HistogramMetricFamily(
        "helmdeck_release_queue_seconds",
        "Time releases waited in the queue, from the request to a worker starting it.",
    )
    row = (
        Release.objects.filter(started_at__isnull=False)
        .annotate(waited=durations.duration("created_at", "started_at"))
        .aggregate(
            count=Count("pk"), total=Sum("waited"), **_bucket_counts("waited", QUEUE_BUCKETS)
        )
    )
    family.add_metric([], _buckets(row, QUEUE_BUCKETS), durations.seconds(row["total"]) or 0.0)
    return family


def notification_families():
    """helmdeck_notification_deliveries_total{result}: every attempt at sending a
    notification to its channel (NotificationAttempt rows), delivered or failed. One query."""
    family = CounterMetricFamily(
        "helmdeck_notification_deliveries",
        "Attempts at delivering a notification to its channel, by result (delivered, failed).",
        labels=["result"],
    )
    counts = dict(
        NotificationAttempt.objects.order_by()
        .values("result")
        .annotate(n=Count("pk"))
        .values_list("result", "n")
    )
    for result in (
        *NotificationAttempt.Result.values,
        *sorted(set(counts) - set(NotificationAttempt.Result.values)),
    ):
        family.add_metric([result], counts.get(result, 0))
    return [family]


def redis_families():
    """helmdeck_sse_clients, helmdeck_watcher_lag_seconds (Redis: metrics/sse_clients.py,
    metrics/watcher_lag.py) and helmdeck_metrics_redis_up, 0 when Redis did not answer
    (then the other two are left out, not reported as zeros)."""
    up = GaugeMetricFamily(
        "helmdeck_metrics_redis_up",
        "1 when this scrape read Redis (SSE clients, watcher lag), 0 when Redis did not answer.",
    )
    conn = app_client()
    try:
        clients = sse_clients_total(conn)
        lag_buckets, lag_count, lag_sum = watcher_lag_read(conn)
    except RedisError:
        up.add_metric([], 0)
        return [up]
    finally:
        conn.close()
    up.add_metric([], 1)
    sse = GaugeMetricFamily(
        "helmdeck_sse_clients",
        "Live-page and API event streams (SSE) open now, summed over the web processes.",
    )
    sse.add_metric([], clients)
    lag = HistogramMetricFamily(
        "helmdeck_watcher_lag_seconds",
        "Time from a Kubernetes Event about a pod (its whole-second timestamp) to the watcher "
        "writing it to the pod's row.",
    )
    lag.add_metric(
        [],
        [(floatToGoString(bound), n) for bound, n in lag_buckets] + [("+Inf", lag_count)],
        lag_sum,
    )
    return [up, sse, lag]


class PanelCollector:
    """A prometheus_client Collector (registry.Collector's protocol) of everything above."""

    def collect(self):
        yield from release_families()
        yield step_duration_family()
        yield queue_latency_family()
        yield from notification_families()
        yield from redis_families()
