"""The backend image running: /health, /ready with and without PostgreSQL, CRUD, logs."""

from __future__ import annotations

import json

import pytest

from .conftest import free_port, http, published_port, running, wait_for_http

pytestmark = pytest.mark.integration


def test_it_answers_health_and_is_not_ready_without_a_database(dockerd, backend_image):
    # The image's own CMD (0.0.0.0:8000), published on a random host port.
    with running(dockerd, backend_image.tag, ports={"8000/tcp": ("127.0.0.1", None)}) as container:
        base = f"http://127.0.0.1:{published_port(container, '8000/tcp')}"
        health = wait_for_http(f"{base}/health")
        ready = http("GET", f"{base}/ready")
    assert (health.status, health.json()) == (200, {"status": "healthy"})
    assert ready.status == 503
    assert ready.json()["reason"] == "DATABASE_URL is not set"


def test_it_is_ready_and_serves_todos_with_postgres(dockerd, backend_image, todo_database_url):
    port = free_port()
    with running(
        dockerd,
        backend_image.tag,
        command=["uvicorn", "src.main:app", "--host", "127.0.0.1", "--port", str(port)],
        network_mode="host",
        environment={"DATABASE_URL": todo_database_url, "ENVIRONMENT": "test"},
    ):
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health")
        ready = http("GET", f"{base}/ready")
        created = http(
            "POST",
            f"{base}/todos",
            data=json.dumps({"title": "ship it"}).encode(),
            headers={"content-type": "application/json"},
        )
        todo_id = created.json()["id"]
        patched = http(
            "PATCH",
            f"{base}/todos/{todo_id}",
            data=b'{"done": true}',
            headers={"content-type": "application/json"},
        )
        listed = http("GET", f"{base}/todos")
        deleted = http("DELETE", f"{base}/todos/{todo_id}")
        after = http("GET", f"{base}/todos")
    assert (ready.status, ready.json()) == (200, {"status": "ready", "database": "connected"})
    assert created.status == 201
    assert patched.json()["done"] is True
    assert [(t["title"], t["done"]) for t in listed.json()] == [("ship it", True)]
    assert deleted.status == 204
    assert after.json() == []


def test_it_is_not_ready_when_postgres_rejects_the_password(
    dockerd, backend_image, todo_database_url
):
    port = free_port()
    secrets = {
        "DATABASE_URL": todo_database_url.replace("@", "-wrong-pw-1a2b@", 1),
        "JWT_SECRET": "jwt-value-3c4d",
        "OPENAI_API_KEY": "sk-value-5e6f",
    }
    with running(
        dockerd,
        backend_image.tag,
        command=["uvicorn", "src.main:app", "--host", "127.0.0.1", "--port", str(port)],
        network_mode="host",
        environment={**secrets, "LOG_LEVEL": "debug"},
    ) as container:
        wait_for_http(f"http://127.0.0.1:{port}/health")
        ready = http("GET", f"http://127.0.0.1:{port}/ready")
        logs = container.logs().decode(errors="replace")
    assert ready.status == 503
    assert ready.json()["reason"].startswith("database unreachable")
    assert "todo-backend starting" in logs
    assert "jwt_secret=set" in logs
    for text in (ready.body, logs):
        for secret in ("wrong-pw-1a2b", "jwt-value-3c4d", "sk-value-5e6f"):
            assert secret not in text
