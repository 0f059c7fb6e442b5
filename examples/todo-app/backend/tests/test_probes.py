from fastapi.testclient import TestClient

from src.config import Settings
from src.main import create_app


def test_it_answers_health_without_a_database():
    with TestClient(create_app(Settings(database_url=""))) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_it_is_ready_when_select_1_succeeds(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "connected"}


def test_it_is_not_ready_when_database_url_is_unset():
    with TestClient(create_app(Settings(database_url=""))) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["reason"] == "DATABASE_URL is not set"


def test_it_is_not_ready_when_the_database_refuses_without_leaking_the_password():
    url = "postgresql://todo:hunter2-secret@127.0.0.1:1/todo"
    with TestClient(create_app(Settings(database_url=url))) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["reason"].startswith("database unreachable")
    assert "hunter2-secret" not in response.text


def test_it_is_not_ready_when_the_password_is_wrong(database_url):
    url = database_url.replace("helmdeck:helmdeck@", "helmdeck:wrong-password@", 1)
    with TestClient(create_app(Settings(database_url=url))) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert "wrong-password" not in response.text


def test_it_returns_503_for_todos_when_the_database_is_down():
    with TestClient(create_app(Settings(database_url="postgresql://x:y@127.0.0.1:1/x"))) as client:
        response = client.get("/todos")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("database unreachable")
