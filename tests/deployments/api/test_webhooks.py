"""Deploy webhooks: a signed call starts one release; a retry (same Idempotency-Key, or the
same signed call again) gets that release back; a bad signature or an old timestamp is 401
and audited; nothing else is written."""

import json
import time

import pytest

from deployments.models import AuditEvent, Release, WebhookDelivery
from deployments.services.webhooks import webhook_create, webhook_revoke, webhook_signature

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(todo_app, enqueued_hooks):
    from django.core.cache import cache

    made = webhook_create(profile=todo_app, name="registry", build=False, actor=None)
    cache.delete(f"helmdeck:webhook-refused:{made[0].pk}")  # the cache outlives a test's rows
    return made


@pytest.fixture
def enqueued_hooks(monkeypatch):
    from deployments.services import webhooks

    calls = []
    monkeypatch.setattr(webhooks, "release_enqueue", lambda release: calls.append(release.pk))
    return calls


def call(client, hook, payload=None, *, secret=None, at=None, skew=0, key=None, body=None):
    webhook, real_secret = hook
    body = body if body is not None else json.dumps(payload or {}).encode()
    at = int(time.time()) + skew if at is None else at
    headers = {
        "X-Helmdeck-Timestamp": str(at),
        "X-Helmdeck-Signature": webhook_signature(secret or real_secret, at, body),
    }
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(
        f"/api/v1/hooks/{webhook.public_id}", body, content_type="application/json", headers=headers
    )


def test_a_signed_call_starts_a_release_with_its_tag(client, hook, enqueued_hooks):
    response = call(client, hook, {"tags": {"backend": "2.0.1"}}, key="build-77")
    assert response.status_code == 202, response.content
    release = Release.objects.get(pk=response.json()["id"])
    assert release.snapshot["components"]["backend"]["tag"] == "2.0.1" and not release.build
    assert release.requested_by_name == "webhook registry"
    assert response.json()["url"] == f"/releases/{release.pk}/"
    assert enqueued_hooks == [release.pk]


def test_a_retry_with_the_same_key_gets_the_same_release(client, hook, enqueued_hooks):
    first = call(client, hook, {"tags": {"backend": "2.0.1"}}, key="build-77")
    again = call(client, hook, {"tags": {"backend": "2.0.1"}}, key="build-77")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Release.objects.count() == 1 and len(enqueued_hooks) == 1


@pytest.mark.parametrize("replayed_key", [None, "another-key", "build-77"])
def test_the_same_signed_call_replayed_starts_nothing_new(
    client, hook, enqueued_hooks, replayed_key
):
    at = int(time.time())
    first = call(client, hook, {"tags": {"backend": "2.0.1"}}, at=at, key="build-77")
    # a captured call sent again, its Idempotency-Key dropped or changed (it is not signed)
    replay = call(client, hook, {"tags": {"backend": "2.0.1"}}, at=at, key=replayed_key)
    assert (first.status_code, replay.status_code) == (202, 200)
    assert replay.json()["id"] == first.json()["id"]
    assert Release.objects.count() == 1 and len(enqueued_hooks) == 1


def test_a_key_reused_with_another_body_is_409_and_deploys_nothing(client, hook, enqueued_hooks):
    assert call(client, hook, {"tags": {"backend": "2.0.1"}}, key="k").status_code == 202
    other = call(client, hook, {"tags": {"backend": "3.0.0"}}, key="k")
    assert other.status_code == 409 and "new key" in other.json()["errors"][0]["message"]
    assert Release.objects.count() == 1


def test_a_flood_of_bad_calls_is_audited_once_a_minute(client, hook):
    for _ in range(5):
        assert call(client, hook, secret="whsec_wrong").status_code == 401
    assert AuditEvent.objects.filter(action="webhook.refused").count() == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"secret": "whsec_not-this-one"}, "signature does not match"),
        ({"skew": -302}, "timestamp more than 300 s"),
        ({"skew": 302}, "timestamp more than 300 s"),
    ],
)
def test_a_bad_signature_or_an_old_call_is_401_and_audited(client, hook, change, reason):
    response = call(client, hook, {"tags": {"backend": "2.0.1"}}, **change)
    assert response.status_code == 401
    assert reason in response.json()["errors"][0]["message"]
    assert not Release.objects.exists() and not WebhookDelivery.objects.exists()
    refused = AuditEvent.objects.get(action="webhook.refused")
    assert reason in refused.target and "127.0.0.1" in refused.target


def test_a_call_without_a_timestamp_or_signature_is_401(client, hook):
    response = client.post(
        f"/api/v1/hooks/{hook[0].public_id}", {}, content_type="application/json"
    )
    assert response.status_code == 401 and not Release.objects.exists()


def test_an_unknown_or_revoked_webhook_is_404(client, hook):
    webhook_revoke(webhook=hook[0], actor=None)
    assert call(client, hook).status_code == 404
    for odd in ("nope", "%00", "a%00b", "%C3%A9", "x" * 300):
        response = client.post(f"/api/v1/hooks/{odd}", {}, content_type="application/json")
        assert response.status_code == 404, odd
    assert not Release.objects.exists()


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"[1]", "body"),
        (b"{", "body"),
        (json.dumps({"tags": {"nope": "1"}}).encode(), "tags.nope"),
        (json.dumps({"tags": {"backend": "no good"}}).encode(), "tags.backend"),
        (json.dumps({"image": "x"}).encode(), "image"),
        (json.dumps({"build": "yes"}).encode(), "build"),
    ],
)
def test_a_signed_but_bad_body_is_400_with_its_path(client, hook, body, path):
    response = call(client, hook, body=body)
    assert response.status_code == 400
    assert path in [e["path"] for e in response.json()["errors"]]
    assert not Release.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_call_while_a_release_runs_is_409_and_can_be_retried(client, hook, enqueued_hooks):
    from tests.factories import make_release

    active = make_release(hook[0].profile, "queued")
    busy = call(client, hook, key="k1")
    assert busy.status_code == 409 and not WebhookDelivery.objects.exists()
    Release.objects.filter(pk=active.pk).update(status=Release.Status.SUCCEEDED)
    assert call(client, hook, key="k1").status_code == 202  # the retry is taken


@pytest.mark.parametrize("stamp", ["9" * 400, "1e9", "-5", " ", "١٢٣"])
def test_an_odd_timestamp_is_401_not_a_500(client, hook, stamp):
    webhook, secret = hook
    response = client.post(
        f"/api/v1/hooks/{webhook.public_id}",
        b"{}",
        content_type="application/json",
        headers={"X-Helmdeck-Timestamp": stamp, "X-Helmdeck-Signature": "sha256=00"},
    )
    assert response.status_code == 401


def test_a_secret_the_panels_keys_cannot_read_is_503_and_says_what_to_do(client, hook, settings):
    from cryptography.fernet import Fernet

    settings.HELMDECK_SECRET_KEYS = [Fernet.generate_key().decode()]  # the old key is gone
    response = call(client, hook)
    assert response.status_code == 503
    assert "create a new webhook" in response.json()["errors"][0]["message"]
    assert not Release.objects.exists()
