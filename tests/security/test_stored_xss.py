"""Stored markup: text a user or the cluster controls (description, config values, pod
annotations, helm output in log lines, a release's reason and notes, a preview's manifests)
is shown escaped on every page, partial and stream that shows it, never as markup."""

import pytest
from asgiref.sync import async_to_sync

from deployments.services.profiles import config_set
from tests.factories import PASSWORD, UserFactory, make_release

pytestmark = pytest.mark.django_db

XSS = [
    '<script>alert("x")</script>',
    '"><img src=x onerror=alert(1)>',
    "</textarea><svg onload=alert(1)>",
]
RAW = [b"<script>alert(", b"<img src=x onerror", b"<svg onload"]


@pytest.fixture
def marked_up(todo_app, monkeypatch):
    from deployments.models import Component, Profile
    from deployments.views import releases

    payload = " ".join(XSS)
    Profile.objects.filter(pk=todo_app.pk).update(description=payload)
    config_set(profile=todo_app, key="BANNER", value=payload, actor=None)
    Component.objects.filter(profile=todo_app).update(pod_annotations={"example.com/x": payload})
    todo_app.refresh_from_db()
    first = make_release(todo_app, revision=1, notes=payload, log=[payload, f"helm: {payload}"])
    second = make_release(todo_app, "failed", reason=payload, log=[payload])
    monkeypatch.setattr(
        releases,
        "preview_request",
        lambda profile: {
            "resources": {"ConfigMap/todo-app-config": f"data:\n  BANNER: {payload}\n"},
            "diff": {"ConfigMap/todo-app-config": f"+  BANNER: {payload}\n"},
            "deployed": True,
            "checks": [{"level": "error", "subject": payload, "message": payload, "fix": payload}],
        },
    )
    return {"first": first.pk, "second": second.pk}


def streamed(response):
    async def read():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


def test_it_escapes_stored_markup_everywhere(marked_up, client):
    user = UserFactory(role="admin", is_superuser=True, is_staff=True)
    assert client.login(username=user.username, password=PASSWORD)
    urls = [
        "/",
        "/profiles/",
        "/profiles/todo-app/",
        "/profiles/todo-app/edit/",
        "/profiles/todo-app/deploy/",
        "/profiles/todo-app/releases/",
        f"/releases/{marked_up['first']}/",
        f"/releases/{marked_up['second']}/",
        f"/releases/{marked_up['first']}/diff/{marked_up['second']}/",
        f"/releases/{marked_up['first']}/rollback/",
        "/admin/deployments/profile/",
        "/admin/deployments/auditevent/",
    ]
    shown = 0
    for url in urls:
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            assert response.status_code < 500, url
            for raw in RAW:
                assert raw not in response.content, (url, headers, raw)
            shown += b"&lt;script&gt;alert(" in response.content
    assert shown >= 10  # the payload is shown, escaped, on most of them
    stream = client.get(f"/releases/{marked_up['first']}/stream/")
    text = streamed(stream)
    assert b"&lt;script&gt;alert(" in text and not any(raw in text for raw in RAW)
    pods = streamed(client.get("/profiles/todo-app/stream/"))
    assert not any(raw in pods for raw in RAW)
