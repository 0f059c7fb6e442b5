"""Telling the team: which events go where (rules), the messages (one per channel and thing
told: a unique key), their delivery with retries, and the health notices.

- A release that ends is told once: release_publish_status (stage_run.py) calls
  `release_notify_request` when it announces a terminal status; the task claims the release
  (Release.notified_at) and queues one message per channel its rules name. The worker's
  round (`notifications_round`, sent by heartbeat.reap_if_due) tells any release whose task
  was lost, and sends again any message whose retry was lost.
- Health: each round samples every profile's health (the status page's badge). A notice
  goes out when the profile has stayed unhealthy (Degraded, or Progressing between a crash
  loop's restarts) for HELMDECK_HEALTH_NOTICE_HOLD seconds since it was first seen Degraded,
  at most once per HELMDECK_HEALTH_NOTICE_WINDOW; "recovered" when it has then been Healthy
  for the hold time. A crash-looping pod is one notice, not one per restart.
- Delivery (`notification_deliver`) is one attempt, recorded as a NotificationAttempt; the
  task retries with backoff (`retry_delay`) until HELMDECK_NOTIFY_RETRIES. A deploy never
  waits for any of it: everything here runs in its own tasks.
"""

import functools
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from deployments import crypto
from deployments.integrations import IntegrationError, notify
from deployments.models import (
    Notification,
    NotificationAttempt,
    NotificationEvent,
    NotificationRule,
    PodState,
    Profile,
    ProfileHealthWatch,
    Release,
)
from deployments.redaction import redactor_for
from deployments.services import profile_health
from deployments.services.db_retry import db_read_or
from deployments.services.diagnosis import pod_state_problem

log = logging.getLogger(__name__)

SWEEP_WINDOW = timedelta(hours=1)  # a release ended longer ago than this is not told late
LOST_AFTER = timedelta(minutes=5)  # a retry this late was lost with its task
UNHEALTHY = (profile_health.DEGRADED, profile_health.PROGRESSING)
EVENT_DEGRADED = NotificationEvent.HEALTH_DEGRADED
BODY_MAX = 4000


# ---- triggers -------------------------------------------------------------------------

# the tasks (deployments/tasks.py), sent by name
NOTIFY_RELEASE_TASK = "deployments.tasks.notify_release"
DELIVER_TASK = "deployments.tasks.deliver_notification"


def _send(name, *args):
    """Send a task by name (the sender needs the Celery app, not deployments.tasks and every
    stage's libraries it imports). A broker that is down now only delays it: the round
    sends it later."""
    from controlpanel.celery import app

    try:
        app.send_task(name, args, ignore_result=True, retry=False)
    except Exception as exc:  # kombu's OperationalError, redis' errors, OSError
        log.warning("%s%r not queued yet (%s); the next round sends it", name, args, exc)


def release_notify_request(release_id):
    """A release has ended: tell its rules' channels, in a task, once its row is committed.
    Nothing is sent when no rule exists anywhere (most installs; one query)."""
    if db_read_or(lambda: NotificationRule.objects.exists(), False):
        transaction.on_commit(functools.partial(_send, NOTIFY_RELEASE_TASK, release_id))


def notifications_send(notification_ids):
    """Send a delivery task for each message, once the rows are committed."""
    for pk in notification_ids:
        transaction.on_commit(functools.partial(_send, DELIVER_TASK, pk))


# ---- rules -> messages ---------------------------------------------------------------


def _channels_for(profile, event):
    """The enabled channels of the rules for `profile` that name `event`: the profile's own
    rules, or the team default's when it has none."""
    rules = NotificationRule.objects.filter(profile=profile).prefetch_related("channels")
    if not rules:
        rules = NotificationRule.objects.filter(profile=None).prefetch_related("channels")
    found = {}
    for rule in rules:
        if event in rule.events:
            found.update({c.pk: c for c in rule.channels.all() if c.enabled})
    return list(found.values())


def _link(path):
    return f"{settings.HELMDECK_PUBLIC_URL.rstrip('/')}{path}"


def _queue(*, profile, event, key, title, body, release=None):
    """One message per channel the rules name; a key already queued for a channel is not
    queued again. Returns the new messages' ids (sent once committed)."""
    body = redactor_for(profile)(body)[:BODY_MAX]
    created = []
    with transaction.atomic():
        for channel in _channels_for(profile, event):
            row, new = Notification.objects.get_or_create(
                channel=channel,
                key=key,
                defaults={
                    "channel_name": channel.name,
                    "event": event,
                    "profile": profile,
                    "profile_name": profile.name,
                    "release": release,
                    "title": title[:250],
                    "body": body,
                },
            )
            if new:
                created.append(row.pk)
        notifications_send(created)
    return created


def release_message(release):
    """(title, body) of a release's result: the profile, the release, who started it, how
    it ended and why (the diagnosis text a failure was recorded with), and a link."""
    profile = release.profile
    status = release.get_status_display()
    title = f"[Helmdeck] {profile.name}: {release.kind} #{release.pk} {status}"
    took = f" after {int(release.duration.total_seconds())} s" if release.duration else ""
    lines = [
        f"Profile: {profile.name} (namespace {profile.namespace}, cluster {profile.cluster.name})",
        f"Release: #{release.pk}, a {release.kind}, {status}{took}",
        f"Started by: {release.requested_by_name or 'unknown'}",
    ]
    if release.reason:
        lines.append(f"Reason: {release.reason}")
    lines.append(_link(reverse("deployments:release_detail", args=[release.pk])))
    return title, "\n".join(lines)


def release_notify(*, release_id):
    """Queue the messages telling that the release ended (once: the first call claims it).
    Returns the new messages' ids."""
    with transaction.atomic():  # claimed and queued together, or neither (the round retries)
        claimed = Release.objects.filter(
            pk=release_id, status__in=Release.TERMINAL, notified_at=None
        ).update(notified_at=timezone.now())
        if not claimed:
            return []
        release = Release.objects.select_related("profile__cluster").get(pk=release_id)
        title, body = release_message(release)
        return _queue(
            profile=release.profile,
            event=NotificationEvent(f"release.{release.status}"),  # one per terminal status
            key=f"release:{release.pk}",
            title=title,
            body=body,
            release=release,
        )


def profile_notify_sleep(*, profile, asleep, by, key):
    """Tell that the profile went to sleep (or woke up); `by`: "by <user>" or "the sleep
    schedule"; `key` names the change (its audit event)."""
    event = NotificationEvent.PROFILE_ASLEEP if asleep else NotificationEvent.PROFILE_AWOKE
    what = "went to sleep" if asleep else "woke up"
    title = f"[Helmdeck] {profile.name} {what}"
    body = f"{profile.name} {what} ({by}).\n" + _link(
        reverse("deployments:profile_detail", args=[profile.name])
    )
    return _queue(profile=profile, event=event, key=f"{event}:{key}", title=title, body=body)


# ---- health --------------------------------------------------------------------------


def _stretch(status):
    """The kind of state a health status belongs to: a crash loop's Degraded and
    Progressing are one unhealthy stretch."""
    return "unhealthy" if status in UNHEALTHY else status


def _pod_trouble(pod, now):
    """What is wrong with a pod that is not Ready: its diagnosis, or, between a crash
    loop's restarts (no diagnosis while it starts again), its restarts and last exit."""
    problem = pod_state_problem(pod, now=now)
    if problem is not None:
        return str(problem)
    code = f", last exit code {pod.exit_code}" if pod.exit_code is not None else ""
    return f"{pod.name}: not Ready ({pod.restarts} restarts{code})"


def _health_message(profile, health, since, now, degraded):
    minutes = max(1, int((now - since).total_seconds() // 60))
    link = _link(reverse("deployments:profile_detail", args=[profile.name]))
    if not degraded:
        title = f"[Helmdeck] {profile.name} recovered: Healthy"
        body = f"{profile.name} is Healthy again: {health.ready_label} pods ready.\n{link}"
        return title, body
    problems = [
        _pod_trouble(pod, now)
        for pod in PodState.objects.filter(profile=profile, deleted=False, ready=False)[:20]
    ]
    title = f"[Helmdeck] {profile.name} is Degraded"
    body = (
        f"{profile.name} has been Degraded for {minutes} min: {health.ready_label} pods "
        "ready.\n" + "".join(f"Problem: {p}\n" for p in problems[:5]) + link
    )
    return title, body


def health_notices_evaluate(*, now=None):
    """Sample every profile's health and queue the notices that are due (module docstring).
    Returns the new messages' ids."""
    from deployments.selectors import profiles_health

    now = now or timezone.now()
    watches = {w.profile_id: w for w in ProfileHealthWatch.objects.all()}
    created = []
    for pk, health in profiles_health().items():
        try:
            with transaction.atomic():  # one profile's row and notices, or none of them
                created += _health_sample(pk, health, watches.get(pk), now)
        except (Profile.DoesNotExist, IntegrityError):  # deleted while sampled
            continue
    return created


def _health_sample(pk, health, watch, now):
    hold = timedelta(seconds=settings.HELMDECK_HEALTH_NOTICE_HOLD)
    window = timedelta(seconds=settings.HELMDECK_HEALTH_NOTICE_WINDOW)
    degraded = health.status == profile_health.DEGRADED
    if watch is None:
        ProfileHealthWatch.objects.create(
            profile_id=pk,
            status=health.status,
            since=now,
            degraded_since=now if degraded else None,
            told="" if health.status in UNHEALTHY else health.status,
        )
        return []
    before = (watch.status, watch.since, watch.degraded_since, watch.told)
    if _stretch(watch.status) != _stretch(health.status):
        watch.since, watch.degraded_since = now, None
    watch.status = health.status
    if degraded and watch.degraded_since is None:
        watch.degraded_since = now
    tell = None
    if health.status in UNHEALTHY and watch.degraded_since is not None:
        held = now - watch.degraded_since >= hold
        recent = watch.degraded_told_at is not None and now - watch.degraded_told_at < window
        if held and watch.told != profile_health.DEGRADED and not recent:
            tell, watch.told, watch.degraded_told_at = EVENT_DEGRADED, profile_health.DEGRADED, now
    elif health.status == profile_health.HEALTHY and now - watch.since >= hold:
        if watch.told == profile_health.DEGRADED:
            tell = NotificationEvent.HEALTH_RECOVERED
        watch.told = profile_health.HEALTHY
    created = []
    if tell is not None:
        watch.told_at = now
        profile = Profile.objects.select_related("cluster").get(pk=pk)
        start = watch.degraded_since if tell == EVENT_DEGRADED else watch.since
        title, body = _health_message(profile, health, start, now, tell == EVENT_DEGRADED)
        key = f"{tell}:{pk}:{start.timestamp():.0f}"
        created = _queue(profile=profile, event=tell, key=key, title=title, body=body)
    if tell is not None or before != (watch.status, watch.since, watch.degraded_since, watch.told):
        watch.save()
    return created


# ---- delivery ------------------------------------------------------------------------


# the delivery task's hard limit: a send (HELMDECK_NOTIFY_TIMEOUT) and the rows around it
DELIVERY_TIME_LIMIT = settings.HELMDECK_NOTIFY_TIMEOUT * 2 + 60


@dataclass(frozen=True)
class Delivery:
    status: str  # a Notification.Status
    retry_in: float | None = None  # seconds until the next attempt, when there is one


def retry_delay(attempts):
    """Seconds before attempt `attempts + 1`: HELMDECK_NOTIFY_BACKOFF, tripled each time,
    at most 15 minutes."""
    return min(settings.HELMDECK_NOTIFY_BACKOFF * 3 ** (attempts - 1), 900.0)


def _attempt(notification):
    """Send it once: (None, None) when delivered, else (reason, permanent)."""
    if notification.channel is None:
        return "the channel was deleted", True
    if not notification.channel.enabled:
        return "the channel is turned off", True
    try:
        url = crypto.decrypt(notification.channel.ciphertext)
        notify.send(
            url,
            title=notification.title,
            body=notification.body,
            timeout=settings.HELMDECK_NOTIFY_TIMEOUT,
        )
    except crypto.SecretDecryptError as exc:
        return str(exc), True
    except IntegrationError as exc:
        return str(exc), exc.permanent
    return None, None


def notification_deliver(*, notification_id):
    """One attempt at a pending message, claimed (lease) so that two tasks for it never
    send it twice at once. None when there is nothing to do (delivered, failed, or being
    sent right now)."""
    now = timezone.now()
    lease = now + timedelta(seconds=DELIVERY_TIME_LIMIT + 30)  # outlives the task's own limit
    claimed = (
        Notification.objects.filter(pk=notification_id, status=Notification.Status.PENDING)
        .filter(Q(lease_until=None) | Q(lease_until__lt=now))
        .filter(Q(next_attempt_at=None) | Q(next_attempt_at__lte=now))
        .update(lease_until=lease, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    notification = Notification.objects.select_related("channel").get(pk=notification_id)
    started = time.monotonic()
    reason, permanent = _attempt(notification)
    took = int((time.monotonic() - started) * 1000)
    done = timezone.now()
    if reason is None:
        NotificationAttempt.objects.create(
            notification=notification, result=NotificationAttempt.Result.DELIVERED, duration_ms=took
        )
        Notification.objects.filter(pk=notification.pk).update(
            status=Notification.Status.DELIVERED, delivered_at=done, lease_until=None
        )
        return Delivery(Notification.Status.DELIVERED)
    NotificationAttempt.objects.create(
        notification=notification,
        result=NotificationAttempt.Result.FAILED,
        reason=reason,
        duration_ms=took,
    )
    if permanent or notification.attempts > settings.HELMDECK_NOTIFY_RETRIES:
        Notification.objects.filter(pk=notification.pk).update(
            status=Notification.Status.FAILED, last_error=reason, lease_until=None
        )
        return Delivery(Notification.Status.FAILED)
    delay = retry_delay(notification.attempts)
    Notification.objects.filter(pk=notification.pk).update(
        last_error=reason, lease_until=None, next_attempt_at=done + timedelta(seconds=delay)
    )
    return Delivery(Notification.Status.PENDING, retry_in=delay)


# ---- the round -----------------------------------------------------------------------


def notifications_round(*, now=None):
    """The worker's periodic round: releases whose notify task was lost are told, messages
    whose retry was lost are sent again, and the health notices are evaluated."""
    now = now or timezone.now()
    first_rule = (
        NotificationRule.objects.order_by("created_at").values_list("created_at", flat=True).first()
    )
    if first_rule is None:
        return
    # releases that ended before any rule existed were never meant to be told
    since = max(now - SWEEP_WINDOW, first_rule)
    late = Release.objects.filter(
        status__in=Release.TERMINAL, notified_at=None, finished_at__gte=since
    ).values_list("pk", flat=True)[:100]
    for release_id in late:
        release_notify(release_id=release_id)
    lost = (
        Notification.objects.filter(status=Notification.Status.PENDING)
        .filter(Q(lease_until=None) | Q(lease_until__lt=now))
        .filter(
            Q(next_attempt_at__lt=now - LOST_AFTER)
            | Q(next_attempt_at=None, created_at__lt=now - LOST_AFTER)
        )
        .values_list("pk", flat=True)[:100]
    )
    notifications_send(list(lost))
    health_notices_evaluate(now=now)
