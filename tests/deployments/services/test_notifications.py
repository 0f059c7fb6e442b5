"""Notifications from rows to real receivers: rules pick the channels, Apprise sends to a
local HTTP server (json://) and a local SMTP server (aiosmtpd), a failing receiver gets
one message after retries, health notices wait for a state to hold, and neither a secret
value nor a channel's URL lands in a message, an attempt's reason or a log line."""

import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from deployments import crypto
from deployments.models import (
    Notification,
    NotificationAttempt,
    NotificationChannel,
    NotificationEvent,
    NotificationRule,
    Release,
)
from deployments.services import notifications
from deployments.services.notification_channels import channel_create, rule_create
from tests.factories import ProfileFactory, UserFactory, pod_state

pytestmark = pytest.mark.django_db

FAILED = NotificationEvent.RELEASE_FAILED


def _channel(name, url):
    return channel_create(name=name, url=url, actor=None)


def _rule(channels, events=(FAILED,), profile=None):
    return rule_create(profile=profile, events=list(events), channels=channels, actor=None)


def _ended(profile, status=Release.Status.FAILED, reason="", by="alice"):
    now = timezone.now()
    return Release.objects.create(
        profile=profile,
        snapshot={},
        status=status,
        reason=reason,
        requested_by=User.objects.filter(username=by).first() or UserFactory(username=by),
        requested_by_name=by,
        started_at=now - timedelta(seconds=42),
        finished_at=now,
    )


def _due(pk):
    """Its retry is due now (a test does not wait out the backoff)."""
    Notification.objects.filter(pk=pk).update(next_attempt_at=timezone.now())


def _deliver_all():
    outcomes = {}
    for pk in (
        Notification.objects.filter(status="pending").order_by("pk").values_list("pk", flat=True)
    ):
        _due(pk)
        outcomes[pk] = notifications.notification_deliver(notification_id=pk)
    return outcomes


def test_it_tells_a_failed_release_to_a_webhook_and_by_email(
    todo_app, http_receiver, smtp_receiver, settings
):
    settings.HELMDECK_PUBLIC_URL = "https://deck.example.test/"
    webhook = _channel("ops hook", http_receiver.url())
    email = _channel("ops mail", smtp_receiver.url())
    _rule([webhook, email])
    release = _ended(
        todo_app,
        reason="Pod backend-1: CrashLoopBackOff (exit code 1, 3 restarts); its logs say why",
    )

    queued = notifications.release_notify(release_id=release.pk)
    assert len(queued) == 2
    assert {o.status for o in _deliver_all().values()} == {"delivered"}

    (sent,) = http_receiver.delivered
    title = f"[Helmdeck] todo-app: deploy #{release.pk} failed"
    assert sent["title"] == title and sent["type"] == "info"
    body = sent["message"]
    assert "Profile: todo-app (namespace todo-app, cluster minikube)" in body
    assert f"Release: #{release.pk}, a deploy, failed after 42 s" in body
    assert "Started by: alice" in body
    assert "Reason: Pod backend-1: CrashLoopBackOff (exit code 1, 3 restarts)" in body
    assert body.rstrip().endswith(f"https://deck.example.test/releases/{release.pk}/")

    (mail,) = smtp_receiver.messages
    assert mail["Subject"] == title and mail["To"] == "team@helmdeck.test"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Started by: alice" in text and "CrashLoopBackOff (exit code 1" in text
    assert f"https://deck.example.test/releases/{release.pk}/" in text
    attempts = NotificationAttempt.objects.filter(result="delivered")
    assert attempts.count() == 2


def test_a_release_is_told_once(todo_app, http_receiver):
    _rule([_channel("hook", http_receiver.url())])
    release = _ended(todo_app)
    assert len(notifications.release_notify(release_id=release.pk)) == 1
    assert notifications.release_notify(release_id=release.pk) == []
    notifications.notifications_round()  # the round finds it told already
    assert Notification.objects.count() == 1
    _deliver_all()
    _deliver_all()  # a duplicated delivery task finds it delivered
    assert len(http_receiver.delivered) == 1


def test_an_active_release_is_not_told(todo_app, http_receiver):
    _rule([_channel("hook", http_receiver.url())])
    release = _ended(todo_app, status=Release.Status.UPGRADING)
    assert notifications.release_notify(release_id=release.pk) == []
    assert Release.objects.get(pk=release.pk).notified_at is None


def test_a_receiver_that_fails_twice_gets_one_message_after_retries(
    todo_app, http_receiver, settings
):
    settings.HELMDECK_NOTIFY_BACKOFF = 5.0
    http_receiver.statuses = [500, 500]
    _rule([_channel("flaky", http_receiver.url("flaky/tok-7Hq2"))])
    notifications.release_notify(release_id=_ended(todo_app).pk)
    (pk,) = Notification.objects.values_list("pk", flat=True)

    first = notifications.notification_deliver(notification_id=pk)
    assert (first.status, first.retry_in) == ("pending", 5.0)
    assert notifications.notification_deliver(notification_id=pk) is None  # not due yet
    _due(pk)
    second = notifications.notification_deliver(notification_id=pk)
    assert (second.status, second.retry_in) == ("pending", 15.0)
    _due(pk)
    third = notifications.notification_deliver(notification_id=pk)
    assert (third.status, third.retry_in) == ("delivered", None)
    assert notifications.notification_deliver(notification_id=pk) is None

    assert len(http_receiver.requests) == 3 and len(http_receiver.delivered) == 1
    results = list(
        NotificationAttempt.objects.filter(notification_id=pk)
        .order_by("at", "id")
        .values_list("result", "reason")
    )
    assert [r for r, _ in results] == ["failed", "failed", "delivered"]
    assert "error=500" in results[0][1]
    assert Notification.objects.get(pk=pk).attempts == 3


def test_it_gives_up_after_the_retries(todo_app, http_receiver, settings):
    settings.HELMDECK_NOTIFY_RETRIES = 2
    http_receiver.statuses = [503] * 5
    _rule([_channel("down", http_receiver.url())])
    notifications.release_notify(release_id=_ended(todo_app).pk)
    (pk,) = Notification.objects.values_list("pk", flat=True)
    outcomes = []
    for _ in range(4):
        _due(pk)
        outcomes.append(notifications.notification_deliver(notification_id=pk))
    assert [o and o.status for o in outcomes] == ["pending", "pending", "failed", None]
    message = Notification.objects.get(pk=pk)
    assert message.status == "failed" and "error=503" in message.last_error
    assert len(http_receiver.requests) == 3


def test_a_stored_url_the_keys_cannot_read_fails_at_once(todo_app, http_receiver):
    channel = _channel("hook", http_receiver.url())
    _rule([channel])
    NotificationChannel.objects.filter(pk=channel.pk).update(ciphertext="not-a-fernet-token")
    notifications.release_notify(release_id=_ended(todo_app).pk)
    (outcome,) = _deliver_all().values()
    assert outcome.status == "failed" and outcome.retry_in is None
    assert http_receiver.requests == []


def test_a_profiles_own_rules_replace_the_team_default(http_receiver):
    team, own = _channel("team", http_receiver.url("team")), _channel("own", http_receiver.url())
    off = _channel("off", http_receiver.url("off"))
    NotificationChannel.objects.filter(pk=off.pk).update(enabled=False)
    _rule([team], events=[FAILED, NotificationEvent.RELEASE_SUCCEEDED])
    with_rules, without = ProfileFactory(name="shop"), ProfileFactory(name="blog")
    _rule([own, off], profile=with_rules)

    notifications.release_notify(release_id=_ended(with_rules).pk)
    notifications.release_notify(release_id=_ended(without).pk)
    succeeded = _ended(with_rules, status=Release.Status.SUCCEEDED)
    assert notifications.release_notify(release_id=succeeded.pk) == []  # not in shop's rule
    sent = sorted(Notification.objects.values_list("profile_name", "channel__name"))
    assert sent == [("blog", "team"), ("shop", "own")]


@pytest.fixture
def logged():
    """What reaches the root logger's handlers (where the console handler writes), at every
    level. (Not caplog: pytest hangs its capture on every logger, even those that do not
    propagate, and would see what no handler of the panel's ever does.)"""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    root, handler = logging.getLogger(), Keep(logging.DEBUG)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(level)


def test_no_secret_value_and_no_channel_url_in_messages_reasons_or_logs(
    todo_app, http_receiver, smtp_receiver, monkeypatch, logged
):
    """The failure reason quotes a secret (the redactor masks it in the message), the
    receiver fails (its reason is recorded), and Apprise logs at every level."""
    monkeypatch.setenv("TODO_JWT_SECRET", "jwt-canary-0c7e")
    token = "tok-Zr4q9XkP"
    url = http_receiver.url(f"hooks/{token}").replace("json://", "json://deck:pw-Lm3v8@")
    http_receiver.statuses = [500]
    _rule([_channel("hook", url), _channel("mail", smtp_receiver.url())])
    release = _ended(todo_app, reason="helm said: JWT_SECRET=jwt-canary-0c7e rejected")

    notifications.release_notify(release_id=release.pk)
    _deliver_all()
    _deliver_all()

    assert len(http_receiver.delivered) == 1 and len(smtp_receiver.messages) == 1
    texts = [r["json"]["message"] for r in http_receiver.requests]
    texts += [m.as_string() for m in smtp_receiver.messages]
    texts += list(Notification.objects.values_list("body", flat=True))
    assert all("<redacted>" in t for t in texts[:1])
    secrets = ["jwt-canary-0c7e", token, "pw-Lm3v8", "smtp-pw-9c2"]
    reasons = list(NotificationAttempt.objects.values_list("reason", flat=True))
    assert any("error=500" in r for r in reasons)
    assert logged  # the handler heard the run (aiosmtpd's own lines, at least)
    for text in [*texts, *reasons, *logged]:
        for secret in secrets:
            assert secret not in text
    for channel in NotificationChannel.objects.all():
        assert token not in channel.ciphertext and crypto.decrypt(channel.ciphertext)


def test_a_failing_ntfy_topic_stays_out_of_the_logs(todo_app, http_receiver, logged, capfd):
    """ntfy names its topic (the secret of an ntfy channel) in its failure warning."""
    topic = "deploys-Qm7r2Zt9"
    http_receiver.statuses = [500] * 3
    _rule([_channel("ntfy", f"ntfy://127.0.0.1:{http_receiver.port}/{topic}")])
    notifications.release_notify(release_id=_ended(todo_app).pk)
    (outcome,) = _deliver_all().values()
    assert outcome.status == "pending" and http_receiver.requests  # it was sent, and refused
    (reason,) = NotificationAttempt.objects.values_list("reason", flat=True)
    assert reason and topic not in reason
    out, err = capfd.readouterr()
    for text in (*logged, out, err):
        assert topic not in text


# ---- health ------------------------------------------------------------------------------


@pytest.fixture
def shop(http_receiver, settings):
    settings.HELMDECK_HEALTH_NOTICE_HOLD = 60
    settings.HELMDECK_HEALTH_NOTICE_WINDOW = 3600
    profile = ProfileFactory(name="shop")
    events = [NotificationEvent.HEALTH_DEGRADED, NotificationEvent.HEALTH_RECOVERED]
    _rule([_channel("hook", http_receiver.url())], events=events)
    pod_state(profile, "shop-web-1")
    return profile


def _crash(profile, crashing):
    from deployments.models import PodState

    fields = (
        {"ready": False, "reason": "CrashLoopBackOff", "exit_code": 1, "restarts": 3}
        if crashing
        else {"ready": False, "reason": "", "started_at": timezone.now()}  # starting again
    )
    PodState.objects.filter(profile=profile, name="shop-web-2").update(**fields)


def test_a_crash_loop_is_one_degraded_notice_and_one_recovery(shop, http_receiver):
    start = timezone.now()
    pod_state(shop, "shop-web-2", ready=False, reason="CrashLoopBackOff", exit_code=1)
    told = []
    # a restart every 20 s: Degraded, then Progressing while it starts again, for 5 minutes
    for tick in range(16):
        _crash(shop, crashing=tick % 2 == 0)
        told += notifications.health_notices_evaluate(now=start + timedelta(seconds=20 * tick))
    assert len(told) == 1
    (degraded,) = Notification.objects.filter(id__in=told)
    assert degraded.event == NotificationEvent.HEALTH_DEGRADED
    assert degraded.title == "[Helmdeck] shop is Degraded"
    assert "1/2 pods ready" in degraded.body
    # told between two restarts: no diagnosis then, the restarts and the last exit
    assert "Problem: shop-web-2: not Ready (3 restarts, last exit code 1)" in degraded.body

    from deployments.models import PodState

    PodState.objects.filter(profile=shop, name="shop-web-2").update(deleted=True)
    later = start + timedelta(minutes=6)
    assert notifications.health_notices_evaluate(now=later) == []  # healthy, not held yet
    recovered = notifications.health_notices_evaluate(now=later + timedelta(seconds=61))
    assert [n.event for n in Notification.objects.filter(id__in=recovered)] == [
        NotificationEvent.HEALTH_RECOVERED
    ]
    _deliver_all()
    assert [m["title"] for m in http_receiver.delivered] == [
        "[Helmdeck] shop is Degraded",
        "[Helmdeck] shop recovered: Healthy",
    ]


def test_a_short_dip_is_not_told(shop):
    start = timezone.now()
    pod_state(shop, "shop-web-2", ready=False, reason="CrashLoopBackOff", exit_code=1)
    assert notifications.health_notices_evaluate(now=start) == []
    from deployments.models import PodState

    PodState.objects.filter(profile=shop, name="shop-web-2").update(ready=True, reason="")
    for seconds in (30, 100, 200):
        assert notifications.health_notices_evaluate(now=start + timedelta(seconds=seconds)) == []


def test_a_flapping_profile_is_told_at_most_once_per_window(shop):
    from deployments.models import PodState

    pod_state(shop, "shop-web-2", ready=False, reason="CrashLoopBackOff", exit_code=1)
    start, told = timezone.now(), []
    for minute in range(0, 50, 5):  # degraded 5 min, healthy 5 min, ... for 50 minutes
        crashing = minute % 10 == 0
        fields = {"ready": not crashing, "reason": "CrashLoopBackOff" if crashing else ""}
        PodState.objects.filter(profile=shop, name="shop-web-2").update(**fields)
        for seconds in (0, 70, 140):
            now = start + timedelta(minutes=minute, seconds=seconds)
            told += notifications.health_notices_evaluate(now=now)
    events = list(
        Notification.objects.filter(id__in=told).order_by("pk").values_list("event", flat=True)
    )
    assert events == [NotificationEvent.HEALTH_DEGRADED, NotificationEvent.HEALTH_RECOVERED]


def test_a_normal_deploy_is_not_a_health_notice(shop):
    """Pods starting inside their readiness delay, with a release running: Progressing,
    never Degraded."""
    Release.objects.create(profile=shop, snapshot={}, status=Release.Status.UPGRADING)
    pod_state(shop, "shop-web-2", ready=False, started_at=timezone.now())
    start = timezone.now()
    for seconds in range(0, 600, 30):
        assert notifications.health_notices_evaluate(now=start + timedelta(seconds=seconds)) == []


def test_rules_refuse_unknown_events_and_no_channels(http_receiver):
    from deployments.spec import SpecError

    channel = _channel("hook", http_receiver.url())
    with pytest.raises(SpecError) as refused:
        rule_create(profile=None, events=["release.exploded"], channels=[], actor=None)
    assert sorted(e.path for e in refused.value.errors) == ["channels", "events"]
    rule = rule_create(profile=None, events=[FAILED], channels=[channel], actor=None)
    assert NotificationRule.objects.get(pk=rule.pk).events == [FAILED]


def test_a_long_deploy_does_not_count_towards_the_degraded_hold(shop):
    """Ten minutes Progressing (a release running), then Degraded: the hold starts then."""
    from deployments.models import PodState

    release = Release.objects.create(profile=shop, snapshot={}, status=Release.Status.UPGRADING)
    pod_state(shop, "shop-web-2", ready=False, reason="CrashLoopBackOff", exit_code=1)
    start = timezone.now()
    for minute in range(10):
        assert notifications.health_notices_evaluate(now=start + timedelta(minutes=minute)) == []
    Release.objects.filter(pk=release.pk).update(status=Release.Status.SUCCEEDED)
    assert PodState.objects.filter(reason="CrashLoopBackOff").exists()
    then = start + timedelta(minutes=10)
    assert notifications.health_notices_evaluate(now=then) == []  # Degraded from now
    assert notifications.health_notices_evaluate(now=then + timedelta(seconds=30)) == []
    told = notifications.health_notices_evaluate(now=then + timedelta(seconds=61))
    assert [n.event for n in Notification.objects.filter(id__in=told)] == ["health.degraded"]


def test_a_release_whose_messages_could_not_be_queued_is_told_by_the_round(
    todo_app, http_receiver, monkeypatch
):
    _rule([_channel("hook", http_receiver.url())])
    release = _ended(todo_app)
    real = notifications._queue

    def broken(**kwargs):
        raise RuntimeError("the database went away mid-queue")

    monkeypatch.setattr(notifications, "_queue", broken)
    with pytest.raises(RuntimeError):
        notifications.release_notify(release_id=release.pk)
    assert Release.objects.get(pk=release.pk).notified_at is None  # the claim went back
    monkeypatch.setattr(notifications, "_queue", real)
    notifications.notifications_round()
    assert Notification.objects.filter(release=release).count() == 1


def test_the_round_leaves_releases_that_ended_before_any_rule(todo_app, http_receiver):
    earlier = _ended(todo_app)
    Release.objects.filter(pk=earlier.pk).update(finished_at=timezone.now() - timedelta(minutes=5))
    _rule([_channel("hook", http_receiver.url())])
    later = _ended(todo_app)
    notifications.notifications_round()
    assert list(Notification.objects.values_list("release_id", flat=True)) == [later.pk]


def test_the_round_sends_again_a_message_whose_retry_was_lost(
    todo_app, http_receiver, django_capture_on_commit_callbacks, monkeypatch
):
    _rule([_channel("hook", http_receiver.url())])
    notifications.release_notify(release_id=_ended(todo_app).pk)
    (pk,) = Notification.objects.values_list("pk", flat=True)
    long_ago = timezone.now() - timedelta(minutes=10)
    Notification.objects.filter(pk=pk).update(created_at=long_ago, next_attempt_at=long_ago)
    sent = []
    monkeypatch.setattr(notifications, "_send", lambda name, *args: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notifications_round()
    assert sent == [("deployments.tasks.deliver_notification", (pk,))]


def test_it_tells_a_profile_went_to_sleep_and_woke(todo_app, http_receiver):
    events = [NotificationEvent.PROFILE_ASLEEP, NotificationEvent.PROFILE_AWOKE]
    _rule([_channel("hook", http_receiver.url())], events=events)
    notifications.profile_notify_sleep(
        profile=todo_app, asleep=True, by="the sleep schedule", key=1
    )
    notifications.profile_notify_sleep(
        profile=todo_app, asleep=True, by="the sleep schedule", key=1
    )
    notifications.profile_notify_sleep(profile=todo_app, asleep=False, by="by alice", key=2)
    _deliver_all()
    assert [m["message"].splitlines()[0] for m in http_receiver.delivered] == [
        "todo-app went to sleep (the sleep schedule).",
        "todo-app woke up (by alice).",
    ]


def test_rotate_secrets_reencrypts_channel_urls(http_receiver, settings):
    from django.core.management import call_command

    old = crypto.generate_key()
    settings.HELMDECK_SECRET_KEYS = [old]
    channel = _channel("hook", http_receiver.url("rotated"))
    new = crypto.generate_key()
    settings.HELMDECK_SECRET_KEYS = [new, old]
    call_command("rotate_secrets")
    settings.HELMDECK_SECRET_KEYS = [new]
    stored = NotificationChannel.objects.get(pk=channel.pk).ciphertext
    assert crypto.decrypt(stored) == http_receiver.url("rotated")


def test_the_tasks_it_sends_by_name_are_the_workers_tasks():
    from deployments import tasks

    assert tasks.notify_release.name == notifications.NOTIFY_RELEASE_TASK
    assert tasks.deliver_notification.name == notifications.DELIVER_TASK
    assert tasks.deliver_notification.soft_time_limit < tasks.deliver_notification.time_limit


def test_every_terminal_status_is_an_event_rules_can_name():
    from deployments.models import RULE_EVENTS

    for status in Release.TERMINAL:
        assert NotificationEvent(f"release.{status}") in RULE_EVENTS
