import signal
import socket

import pytest
import redis

from deployments import heartbeat
from deployments.integrations.redis import app_client


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_answers_health_without_login_or_dependencies(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


@pytest.mark.django_db
def test_it_is_not_ready_when_redis_is_down(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unreachable: ")
    assert "Connection" in body["checks"]["redis"]


@pytest.mark.integration
@pytest.mark.django_db
def test_it_is_not_ready_without_a_worker_heartbeat(client, settings, redis_url):
    settings.REDIS_URL = redis_url
    conn = redis.Redis.from_url(redis_url)
    for key in conn.scan_iter(f"{heartbeat.KEY_PREFIX}*"):
        conn.delete(key)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "redis": "ok",
        "worker": "no heartbeat in the last 30s",
    }


@pytest.mark.integration
def test_it_is_ready_while_a_real_worker_runs_and_not_after_it_stops(client, celery_worker):
    response = client.get("/ready")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "worker": "ok"},
    }
    celery_worker.send_signal(signal.SIGTERM)
    celery_worker.wait(timeout=30)
    assert heartbeat.live_workers(app_client()) == []  # a clean shutdown removes its key
    assert client.get("/ready").status_code == 503


def test_it_rejects_post_to_the_probes(client):
    assert client.post("/health").status_code == 405
