"""Redis keys of the metrics' own for each test: other tests (and other people's test runs
on the same Redis) open streams and write lags meanwhile."""

import uuid

import pytest

from deployments.metrics import sse_clients, watcher_lag


@pytest.fixture
def metrics_redis(redis_url, settings, monkeypatch):
    """The app's Redis is the test Redis; the SSE and lag keys are this test's alone."""
    import redis

    settings.REDIS_URL = redis_url
    tag = uuid.uuid4().hex[:12]
    monkeypatch.setattr(sse_clients, "KEY_PREFIX", f"test:{tag}:sse-clients:")
    monkeypatch.setattr(watcher_lag, "KEY", f"test:{tag}:watcher-lag")
    monkeypatch.setattr(watcher_lag, "_quiet_until", 0.0)
    conn = redis.Redis.from_url(redis_url)
    yield conn
    for key in conn.scan_iter(f"test:{tag}:*"):
        conn.delete(key)
    conn.close()
