import time

import pytest

from deployments.services.preview import preview_request

pytestmark = pytest.mark.integration


def test_it_computes_a_preview_in_a_real_worker_once(todo_app, celery_worker, settings):
    assert preview_request(todo_app) is None  # queued
    assert preview_request(todo_app) is None  # still pending: not queued twice
    deadline = time.monotonic() + 90
    while (report := preview_request(todo_app)) is None:
        assert time.monotonic() < deadline, "the worker never stored the preview"
        time.sleep(0.5)
    assert report["profile"] == "todo-app"
    assert "Deployment/todo-app-backend" in report["resources"]
    assert report["deployed"] is False or report["problems"]
