"""The watcher's lag: an Event's time to its row, recorded by the event watch in Redis (the
rows cannot say it afterwards), read back as a cumulative histogram."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from kubernetes import client

from deployments.metrics import watcher_lag
from deployments.services.watch_streams import EventStream, Registry
from tests.factories import ProfileFactory, pod_state

pytestmark = pytest.mark.integration


def test_it_keeps_a_cumulative_histogram(metrics_redis):
    for seconds in (0.1, 0.5, 3, 400):
        watcher_lag.watcher_lag_observe(seconds)
    watcher_lag.watcher_lag_observe(-2)  # the watcher's clock behind the API server's: 0
    buckets, count, total = watcher_lag.watcher_lag_read(metrics_redis)
    assert dict(buckets) == {
        0.5: 3,
        1.0: 3,
        2.0: 3,
        5.0: 4,
        10.0: 4,
        30.0: 4,
        60.0: 4,
        300.0: 4,
    }
    assert count == 5 and total == pytest.approx(403.6)


def test_it_reads_nothing_as_zeros(metrics_redis):
    buckets, count, total = watcher_lag.watcher_lag_read(metrics_redis)
    assert (count, total) == (0, 0.0) and all(n == 0 for _, n in buckets)


def test_it_leaves_a_failing_redis_alone_for_a_while(metrics_redis, monkeypatch):
    calls = []

    class Down:
        def pipeline(self, transaction):
            calls.append(1)
            return self

        def hincrby(self, *args):
            pass

        hincrbyfloat = hincrby

        def execute(self):
            from deployments.integrations.redis import RedisError

            raise RedisError("down")

    watcher_lag.watcher_lag_observe(1.0, conn=Down())
    watcher_lag.watcher_lag_observe(1.0, conn=Down())  # quiet: not even tried
    assert calls == [1]
    monkeypatch.setattr(watcher_lag, "_quiet_until", 0.0)
    watcher_lag.watcher_lag_observe(1.0)
    assert watcher_lag.watcher_lag_read(metrics_redis)[1] == 1


def _event(namespace, pod, at):
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=f"{pod}.1", namespace=namespace),
        involved_object=client.V1ObjectReference(kind="Pod", name=pod, namespace=namespace),
        reason="Pulled",
        message="Container image pulled",
        last_timestamp=at,
    )


@pytest.mark.django_db
def test_the_event_watch_records_the_lag_of_what_it_writes(metrics_redis):
    profile = ProfileFactory()
    pod_state(profile, "p1")
    registry = Registry()
    registry.set_profiles({(profile.namespace, profile.name): profile.pk})
    stream = EventStream(SimpleNamespace(cluster=SimpleNamespace(name="c"), registry=registry))
    at = timezone.now().replace(microsecond=0) - timedelta(seconds=3)

    stream.apply("ADDED", _event(profile.namespace, "p1", at))
    buckets, count, total = watcher_lag.watcher_lag_read(metrics_redis)
    assert count == 1 and 3 <= total < 10 and dict(buckets)[2.0] == 0

    stream.apply("MODIFIED", _event(profile.namespace, "p1", at))  # the same: no write, no lag
    stream.apply("ADDED", _event(profile.namespace, "no-row", at))  # no row to write
    assert watcher_lag.watcher_lag_read(metrics_redis)[1] == 1

    # a relist reads events up to an hour old again: that is no lag of the watcher's
    stream.apply_list([_event(profile.namespace, "p1", at + timedelta(seconds=1))])
    assert watcher_lag.watcher_lag_read(metrics_redis)[1] == 1
