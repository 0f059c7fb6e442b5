"""Schemathesis over every operation of the OpenAPI document, with a real admin token:
whatever it sends, no 5xx, and every answer is what the document says (status, content
type, body schema). Releases are recorded instead of sent to Celery; the doctor answers
from a stored report."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from deployments.api import api
from tests.deployments.api.conftest import token_for
from tests.factories import make_release

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_dict(api.get_openapi_schema())
schema.app = get_wsgi_application()


@pytest.fixture
def same_connection():
    """The WSGI app is called in this process, inside the test's transaction: like Django's
    test Client, keep the end of a request from closing that database connection (SQLite in
    memory never closes; PostgreSQL, as in CI, would)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(todo_app, monkeypatch, unreachable_kubeconfig, same_connection, settings):
    from deployments.api import clusters, operations, profiles

    # the run sends many wrong tokens on purpose (schemathesis' auth check); the wrong-token
    # limit has tests of its own (test_api.py)
    settings.HELMDECK_API_AUTH_FAILURES = 10**6
    monkeypatch.setattr(profiles, "release_enqueue", lambda release: None)
    monkeypatch.setattr(operations, "release_enqueue", lambda release: None)
    report = [{"name": "helm", "ok": True, "detail": "v4.3.1", "fix": ""}]
    monkeypatch.setattr(clusters, "doctor_request", lambda cluster: report)
    # pod logs ask the cluster: here one that answers nothing at once (503, documented)
    type(todo_app.cluster).objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig)
    )
    make_release(todo_app, "succeeded", revision=1, log=["one", "two"])
    make_release(todo_app, "succeeded", revision=2)
    return {"token": token_for("admin")[1]}


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_operation_answers_5xx_or_off_its_document(case, world):
    headers = {"Authorization": f"Bearer {world['token']}"}
    response = case.call(headers=headers)
    assert response.status_code < 500, response.text[:2000]
    # Two checks are left out, each for a reason the API documents:
    # - "a schema-valid request is accepted": a request can fit the schema and still break a
    #   rule no JSON schema states (a component the profile lacks, a DNS name, a nodePort
    #   taken); it is refused with 400 and the field's path, an answer the document lists;
    # - "a schema-violating request is refused": its violations include query parameters
    #   the document does not name, which the API ignores, as most HTTP APIs do. Every
    #   declared parameter out of its range or type is refused: test_out_of_range_is_422.
    case.validate_response(
        response,
        headers=headers,
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("get", "/api/v1/profiles?page=0", None),
        ("get", "/api/v1/profiles?page_size=201", None),
        ("get", "/api/v1/profiles?page=x", None),
        ("get", "/api/v1/profiles/todo-app/releases?page=0", None),
        ("get", "/api/v1/releases/1/log?after=-1", None),
        ("get", "/api/v1/releases/1/log?limit=0", None),
        ("get", "/api/v1/releases/1/log?limit=5001", None),
        ("get", "/api/v1/releases/1/events?after=-1", None),
        ("get", "/api/v1/profiles/todo-app/logs?tail=0", None),
        ("get", "/api/v1/profiles/todo-app/logs?tail=10001", None),
        ("get", "/api/v1/profiles/todo-app/logs?previous=perhaps", None),
        ("post", "/api/v1/profiles/todo-app/releases", {"build": "yes"}),
        ("post", "/api/v1/profiles/todo-app/releases", {"tags": ["a"]}),
        ("post", "/api/v1/profiles/todo-app/releases", {"surprise": 1}),
        ("post", "/api/v1/profiles/todo-app/rollback", {"revision": 0}),
        ("post", "/api/v1/profiles/todo-app/rollback", {"revision": "two"}),
        ("post", "/api/v1/profiles/todo-app/components/backend/scale", {"replicas": 51}),
        ("post", "/api/v1/profiles/todo-app/components/backend/scale", {"replicas": -1}),
        ("post", "/api/v1/profiles/todo-app/components/backend/scale", {"replicas": "2"}),
        ("post", "/api/v1/profiles/todo-app/components/backend/scale", {}),
    ],
)
def test_out_of_range_is_422(world, method, url, body):
    from tests.deployments.api.conftest import ApiClient

    client = ApiClient(world["token"])
    response = client.get(url) if method == "get" else client.post(url, body)
    assert response.status_code == 422, (url, response.content)
    assert response.json()["errors"][0]["path"]
