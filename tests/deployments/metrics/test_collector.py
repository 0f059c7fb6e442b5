"""The collector's numbers against rows made as the services make them, read back through
prometheus_client's own parser."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deployments.metrics import watcher_lag
from deployments.metrics.exposition import metrics_exposition
from deployments.models import Release, Step
from deployments.services.releases import release_request
from tests.factories import ProfileFactory, make_release

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def scrape():
    body, content_type = metrics_exposition()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_it_counts_ended_releases_by_kind_and_result(metrics_redis):
    profile = ProfileFactory()
    for status in ["failed", "failed", "succeeded", "succeeded", "succeeded"]:
        make_release(profile, status)
    make_release(ProfileFactory(), "cancelled")
    release_request(profile=profile, actor=None, build=False)  # queued, not ended

    samples = scrape()
    releases = "helmdeck_releases_total"
    assert value(samples, releases, kind="deploy", result="failed") == 2
    assert value(samples, releases, kind="deploy", result="succeeded") == 3
    assert value(samples, releases, kind="deploy", result="cancelled") == 1
    assert value(samples, releases, kind="rollback", result="succeeded") == 0  # there, as 0
    assert value(samples, "helmdeck_releases_in_progress", kind="deploy", status="queued") == 1
    assert value(samples, "helmdeck_releases_in_progress", kind="deploy", status="building") == 0


def _timed(release, name, seconds, status=Step.Status.DONE):
    start = timezone.now() - timedelta(minutes=10)
    Step.objects.filter(release=release, name=name).update(
        status=status, started_at=start, finished_at=start + timedelta(seconds=seconds)
    )


def test_it_puts_step_durations_in_their_buckets_by_step(metrics_redis):
    profile = ProfileFactory()
    first = make_release(profile, "succeeded")
    second = make_release(profile, "failed")
    _timed(first, "upgrade", 4.2)
    _timed(second, "upgrade", 40, status=Step.Status.FAILED)
    _timed(first, "render", 0.5)
    Step.objects.filter(release=second, name="render").update(
        status=Step.Status.SKIPPED, finished_at=None
    )  # a step that never ran is no observation
    Step.objects.filter(release=second, name="verify").update(
        status=Step.Status.RUNNING, finished_at=None
    )
    build = Step.objects.create(release=first, position=9, name="build backend")
    _timed(first, build.name, 125)

    samples = scrape()
    bucket = "helmdeck_step_duration_seconds_bucket"
    assert value(samples, bucket, step="upgrade", le="2.5") == 0
    assert value(samples, bucket, step="upgrade", le="5.0") == 1  # 4.2 s
    assert value(samples, bucket, step="upgrade", le="30.0") == 1
    assert value(samples, bucket, step="upgrade", le="60.0") == 2  # 40 s (failed counts too)
    assert value(samples, bucket, step="upgrade", le="+Inf") == 2
    assert value(samples, "helmdeck_step_duration_seconds_count", step="upgrade") == 2
    assert value(samples, "helmdeck_step_duration_seconds_sum", step="upgrade") == pytest.approx(
        44.2
    )
    assert value(samples, "helmdeck_step_duration_seconds_count", step="render") == 1
    assert value(samples, bucket, step="render", le="1.0") == 1
    # `build <component>` is one "build" series, whatever the component
    assert value(samples, bucket, step="build", le="120.0") == 0
    assert value(samples, bucket, step="build", le="300.0") == 1
    # make_release's other finished steps took 0 s; the running verify is not counted
    assert value(samples, "helmdeck_step_duration_seconds_count", step="verify") == 1
    assert value(samples, "helmdeck_step_duration_seconds_count", step="uninstall") == 0


def test_it_measures_the_queue_from_request_to_start(metrics_redis):
    profile = ProfileFactory()
    waited = make_release(profile, "succeeded")
    Release.objects.filter(pk=waited.pk).update(started_at=waited.created_at + timedelta(seconds=7))
    make_release(profile, "cancelled", started_at=None)  # cancelled while queued: no wait

    samples = scrape()
    assert value(samples, "helmdeck_release_queue_seconds_count") == 1
    assert value(samples, "helmdeck_release_queue_seconds_bucket", le="5.0") == 0
    assert value(samples, "helmdeck_release_queue_seconds_bucket", le="10.0") == 1
    assert value(samples, "helmdeck_release_queue_seconds_sum") == pytest.approx(7)


def test_it_reads_the_watcher_lag_and_sse_clients_from_redis(metrics_redis):
    for seconds in (0.2, 1.5, 1.5, 45):
        watcher_lag.watcher_lag_observe(seconds)
    from deployments.metrics import sse_clients

    metrics_redis.set(f"{sse_clients.KEY_PREFIX}web-1:10", 3, ex=30)
    metrics_redis.set(f"{sse_clients.KEY_PREFIX}web-2:11", 2, ex=30)

    samples = scrape()
    assert value(samples, "helmdeck_sse_clients") == 5
    assert value(samples, "helmdeck_metrics_redis_up") == 1
    bucket = "helmdeck_watcher_lag_seconds_bucket"
    assert value(samples, bucket, le="0.5") == 1
    assert value(samples, bucket, le="1.0") == 1
    assert value(samples, bucket, le="2.0") == 3
    assert value(samples, bucket, le="30.0") == 3
    assert value(samples, bucket, le="60.0") == 4
    assert value(samples, bucket, le="+Inf") == 4
    assert value(samples, "helmdeck_watcher_lag_seconds_sum") == pytest.approx(48.2)


def test_it_says_redis_is_down_and_still_answers_from_the_rows(metrics_redis, settings):
    make_release(ProfileFactory(), "succeeded")
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there

    samples = scrape()
    assert value(samples, "helmdeck_metrics_redis_up") == 0
    assert not any(name == "helmdeck_sse_clients" for name, _ in samples)
    assert value(samples, "helmdeck_releases_total", kind="deploy", result="succeeded") == 1


def test_it_counts_notification_deliveries_by_result(metrics_redis):
    from deployments.models import Notification, NotificationAttempt
    from deployments.services.notification_channels import channel_create

    channel = channel_create(name="ops", url="json://127.0.0.1:9/hook", actor=None)
    for n, results in enumerate([["failed", "failed", "delivered"], ["delivered"], ["failed"]]):
        message = Notification.objects.create(
            channel=channel, key=f"k{n}", event="release.failed", title="t", body="b"
        )
        for result in results:
            NotificationAttempt.objects.create(notification=message, result=result)

    samples = scrape()
    deliveries = "helmdeck_notification_deliveries_total"
    assert value(samples, deliveries, result="delivered") == 2
    assert value(samples, deliveries, result="failed") == 3


def test_it_answers_with_a_fixed_number_of_queries(metrics_redis, django_assert_max_num_queries):
    """Aggregates, never a query per release or step: the same count for 1 or 30 releases."""
    profile = ProfileFactory()
    for _ in range(30):
        make_release(profile, "succeeded")
    # releases, steps, the queue, notification attempts
    with django_assert_max_num_queries(4):
        scrape()


def test_it_has_no_process_series_of_the_answering_process(metrics_redis):
    names = {name for name, _ in scrape()}
    assert not [name for name in names if name.startswith(("process_", "python_"))]
