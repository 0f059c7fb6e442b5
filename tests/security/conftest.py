"""Fixtures of the endpoint fuzz tests (tests/security/test_post_fuzz*.py)."""

import pytest
from celery.app.task import Task
from celery.contrib.django.task import DjangoTask

from tests.factories import make_release
from tests.security.fuzzing import signed_in


@pytest.fixture
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def uninstrumented_templates(monkeypatch):
    """As in test_form_fuzz: the test client's per-template context copies are most of an
    example's time on the big pages (admin change form, deploy page)."""
    from django.template.base import Template
    from django.test import utils

    original = getattr(getattr(utils._TestState, "saved_data", None), "template_render", None)
    if original is not None:
        monkeypatch.setattr(Template, "_render", original)


@pytest.fixture
def queued(monkeypatch):
    """Every Celery task a request would queue (the views' enqueue helpers and any task's
    apply_async / delay_on_commit), recorded instead of sent."""
    from deployments.views import clusters, releases

    calls = []
    monkeypatch.setattr(releases, "release_enqueue", lambda release: calls.append(release.pk))
    monkeypatch.setattr(releases, "preview_request", lambda profile: None)
    monkeypatch.setattr(clusters, "doctor_request", lambda cluster: None)
    monkeypatch.setattr(clusters, "doctor_forget", lambda cluster: calls.append(cluster.name))
    monkeypatch.setattr(Task, "apply_async", lambda self, *a, **k: calls.append(self.name))
    monkeypatch.setattr(
        DjangoTask, "delay_on_commit", lambda self, *a, **k: calls.append(self.name)
    )
    return calls


@pytest.fixture
def fuzz_world(todo_app, queued):
    first = make_release(todo_app, revision=1)
    second = make_release(todo_app, revision=2)
    failed = make_release(todo_app, "failed")
    active = make_release(todo_app, "queued")
    return {
        "profile": todo_app,
        "first": first,
        "second": second,
        "failed": failed,
        "active": active,
    }


@pytest.fixture
def admin_client(fuzz_world):
    return signed_in("admin")


@pytest.fixture
def viewer_client(fuzz_world):
    client = signed_in("viewer")
    client.session_key = client.cookies["sessionid"].value
    return client


@pytest.fixture
def deployer_client(fuzz_world):
    return signed_in("deployer")
