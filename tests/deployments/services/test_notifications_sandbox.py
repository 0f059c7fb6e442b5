"""Notifications for real: a release that fails on the sandbox, run by a real Celery worker,
reaches a local HTTP receiver (which answers 500 twice first) and a local SMTP server
through Apprise, once each; a pod crash-looping on the sandbox, read by the real watcher,
is one Degraded notice however many times it restarts."""

import time

import pytest
from django.contrib.auth.models import User

from deployments.models import (
    Cluster,
    Component,
    Notification,
    NotificationAttempt,
    NotificationEvent,
    PodState,
    Release,
)
from deployments.services import notifications
from deployments.services.notification_channels import channel_create, rule_create
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request
from tests.deployments.services.conftest import SECRETS
from tests.deployments.services.test_watcher_sandbox import make_pod
from tests.factories import ProfileFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# runs 1 s, backs off 3 s: mostly in CrashLoopBackOff, as a real crash loop (whose back-off
# grows to minutes) is; the upgrade's pod watcher looks every 2 s, and 1 s + 1 s would
# keep it in step with the restarts, never seeing the back-off
CRASH = {
    "helmdeck.dev/simulate": "crash-loop",
    "helmdeck.dev/crash-after": "1s",
    "helmdeck.dev/crash-backoff": "3s",
}
TOKEN = "tok-3Jx8Vq"


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.3)
    return result


def _state(http_receiver, smtp_receiver, release):
    """What was sent and recorded so far (for a timeout's message)."""
    rows = Notification.objects.values_list("channel_name", "status", "attempts", "last_error")
    return (
        f"release notified_at={Release.objects.get(pk=release.pk).notified_at}, "
        f"messages={list(rows)}, http={[r['status'] for r in http_receiver.requests]}, "
        f"mails={len(smtp_receiver.messages)}"
    )


def test_a_failed_release_reaches_a_webhook_and_an_inbox_once(
    deployable, http_receiver, smtp_receiver, monkeypatch, request
):
    monkeypatch.setenv("HELMDECK_NOTIFY_BACKOFF", "0.5")  # the worker's retries: 0.5 s, 1.5 s
    monkeypatch.setenv("HELMDECK_PUBLIC_URL", "https://deck.example.test")
    http_receiver.statuses = [500, 500]
    hook = channel_create(name="hook", url=http_receiver.url(f"deploys/{TOKEN}"), actor=None)
    mail = channel_create(name="mail", url=smtp_receiver.url(), actor=None)
    events = [NotificationEvent.RELEASE_FAILED, NotificationEvent.RELEASE_ROLLED_BACK]
    rule_create(profile=deployable, events=events, channels=[hook, mail], actor=None)
    Component.objects.filter(profile=deployable, name="backend").update(pod_annotations=CRASH)
    alice = User.objects.create_user("alice")

    release = release_request(profile=deployable, actor=alice, build=False)
    release_enqueue(release)
    request.getfixturevalue("celery_worker")
    wait_for(
        lambda: Release.objects.get(pk=release.pk).status in Release.TERMINAL,
        180,
        "the release to end",
    )
    release.refresh_from_db()
    assert release.status in (Release.Status.FAILED, Release.Status.ROLLED_BACK)
    assert "CrashLoopBackOff" in release.reason, release.reason
    wait_for(
        lambda: http_receiver.delivered and smtp_receiver.messages,
        60,
        lambda: f"the webhook and the mail: {_state(http_receiver, smtp_receiver, release)}",
    )
    time.sleep(3)  # nothing more comes: not a retry of a delivered message, not a duplicate
    assert len(http_receiver.delivered) == 1 and len(http_receiver.requests) == 3
    assert len(smtp_receiver.messages) == 1

    (sent,) = http_receiver.delivered
    title = f"[Helmdeck] todo-app: deploy #{release.pk} {release.get_status_display()}"
    assert sent["title"] == title
    body = sent["message"]
    assert "Started by: alice" in body
    assert f"Reason: {release.reason[:80]}" in body and "CrashLoopBackOff" in body
    assert f"https://deck.example.test/releases/{release.pk}/" in body
    mail_message = smtp_receiver.messages[0]
    assert mail_message["Subject"] == title
    text = mail_message.get_body(preferencelist=("plain",)).get_content()
    assert "Started by: alice" in text and "CrashLoopBackOff" in text

    attempts = list(
        NotificationAttempt.objects.filter(notification__channel=hook)
        .order_by("at", "id")
        .values_list("result", "reason")
    )
    assert [result for result, _ in attempts] == ["failed", "failed", "delivered"]
    scanned = [r["json"]["message"] for r in http_receiver.requests]
    scanned += [m.as_string() for m in smtp_receiver.messages]
    scanned += [reason for _, reason in attempts]
    for text in scanned:
        for value in [*SECRETS.values(), TOKEN, "smtp-pw-9c2"]:
            assert value not in text


def test_a_crash_looping_pod_is_one_degraded_notice(sandbox, watcher, http_receiver, settings):
    settings.HELMDECK_HEALTH_NOTICE_HOLD = 3
    cluster = Cluster.objects.create(
        name=f"sandbox-{sandbox.namespace[-6:]}",
        kubeconfig_path=str(sandbox.kubeconfig),
        minikube_profile="",
    )
    profile = ProfileFactory(name="shop", namespace=sandbox.namespace, cluster=cluster)
    events = [NotificationEvent.HEALTH_DEGRADED, NotificationEvent.HEALTH_RECOVERED]
    hook = channel_create(name="hook", url=http_receiver.url(), actor=None)
    rule_create(profile=None, events=events, channels=[hook], actor=None)
    make_pod(sandbox, "shop-web-1", annotations=CRASH)
    watcher()

    told = []

    def restarted_four_times():
        told.extend(notifications.health_notices_evaluate())
        row = PodState.objects.filter(profile=profile, name="shop-web-1").first()
        return row is not None and row.restarts >= 4

    wait_for(restarted_four_times, 120, "four restarts reported by the watcher")
    for _ in range(5):  # and a few more rounds while it keeps crashing
        told += notifications.health_notices_evaluate()
        time.sleep(1)
    assert len(told) == 1, list(Notification.objects.values_list("event", "title"))
    (notice,) = Notification.objects.all()
    assert notice.event == NotificationEvent.HEALTH_DEGRADED
    assert notice.title == "[Helmdeck] shop is Degraded"
    assert "0/1 pods ready" in notice.body and "shop-web-1" in notice.body
    outcome = notifications.notification_deliver(notification_id=notice.pk)
    assert outcome.status == "delivered"
    assert [m["title"] for m in http_receiver.delivered] == ["[Helmdeck] shop is Degraded"]
