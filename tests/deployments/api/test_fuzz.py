"""Schemathesis over every operation of the OpenAPI document, with a real admin token:
whatever it sends, no 5xx, and every answer is what the document says (status, content
type, body schema). Releases are recorded instead of sent to Celery; the doctor answers
from a stored report."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

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
def world(todo_app, monkeypatch, unreachable_kubeconfig, same_connection):
    from deployments.api import clusters, profiles

    monkeypatch.setattr(profiles, "release_enqueue", lambda release: None)
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
    case.validate_response(response, headers=headers)
