"""A profile's Webhooks page: admins create one (URL and secret shown once, secret stored
encrypted), see its last delivery, revoke it; deployers and viewers are refused."""

import pytest

from deployments import crypto
from deployments.models import AuditEvent, DeployWebhook

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_webhook_and_sees_its_secret_once(login, todo_app):
    client = login("admin")
    response = client.post("/profiles/todo-app/webhooks/", {"name": "registry"})
    assert response.status_code == 201
    created = response.context["created"]
    hook, secret = created["hook"], created["secret"]
    assert created["url"].endswith(f"/api/v1/hooks/{hook.public_id}")
    assert secret.encode() in response.content and "no-store" in response["Cache-Control"]
    stored = DeployWebhook.objects.get(pk=hook.pk)
    assert secret not in stored.ciphertext and crypto.decrypt(stored.ciphertext) == secret
    assert secret.encode() not in client.get("/profiles/todo-app/webhooks/").content
    assert AuditEvent.objects.filter(action="webhook.created").exists()


def test_revoking_asks_first(login, todo_app):
    client = login("admin")
    hook = client.post("/profiles/todo-app/webhooks/", {"name": "ci"}).context["created"]["hook"]
    url = f"/profiles/todo-app/webhooks/{hook.pk}/revoke/"
    assert client.get(url).status_code == 200
    assert DeployWebhook.objects.get(pk=hook.pk).revoked_at is None
    assert client.post(url).status_code == 302
    assert DeployWebhook.objects.get(pk=hook.pk).revoked_at is not None


@pytest.mark.parametrize("role", ["viewer", "deployer"])
def test_only_admins_manage_webhooks(login, todo_app, role):
    client = login(role)
    assert client.get("/profiles/todo-app/webhooks/").status_code == 403
    assert client.post("/profiles/todo-app/webhooks/", {"name": "x"}).status_code == 403
    assert not DeployWebhook.objects.exists()
