"""Notification channels and rules (admins, on the notifications page): a channel's Apprise
URL is checked, encrypted and never shown again; a test message goes through the same
delivery as every other (a task, retried, recorded)."""

from django.db import transaction
from django.utils import timezone

from deployments import crypto
from deployments.integrations import notify
from deployments.models import (
    CHANNEL_NAME_MAX,
    CHANNEL_URL_MAX,
    RULE_EVENTS,
    NotificationChannel,
    NotificationEvent,
    NotificationRule,
)
from deployments.services.notifications import notifications_send
from deployments.services.profiles import audit_record
from deployments.spec import FieldError, SpecError


def channel_create(*, name, url, actor):
    """A channel named `name` sending to the Apprise `url`. SpecError (paths `name`, `url`)
    when the name is taken or Apprise cannot use the URL; the errors never repeat it."""
    name, url = name.strip(), url.strip()
    errors = []
    if not name or len(name) > CHANNEL_NAME_MAX:
        errors.append(FieldError("name", f"Enter a name of 1 to {CHANNEL_NAME_MAX} characters"))
    elif NotificationChannel.objects.filter(name=name).exists():
        errors.append(FieldError("name", f"A channel named {name} exists already"))
    if len(url) > CHANNEL_URL_MAX:
        errors.append(FieldError("url", f"The URL is longer than {CHANNEL_URL_MAX} characters"))
    elif (problem := notify.url_problem(url)) is not None:
        errors.append(FieldError("url", problem))
    if errors:
        raise SpecError(errors)
    channel = NotificationChannel.objects.create(
        name=name,
        scheme=notify.url_scheme(url),
        ciphertext=crypto.encrypt(url),
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(actor=actor, action="notification_channel.created", target=name)
    return channel


def channel_delete(*, channel, actor):
    name = channel.name
    channel.delete()  # its messages stay, with its name, and fail if still pending; rules lose it
    audit_record(actor=actor, action="notification_channel.deleted", target=name)


def channel_set_enabled(*, channel, enabled, actor):
    NotificationChannel.objects.filter(pk=channel.pk).update(enabled=enabled)
    action = "enabled" if enabled else "disabled"
    audit_record(actor=actor, action=f"notification_channel.{action}", target=channel.name)


def channel_send_test(*, channel, actor):
    """Queue a test message to the channel (delivered, retried and recorded like any
    other). Returns the message."""
    who = getattr(actor, "username", "") or "system"
    now = timezone.now()
    with transaction.atomic():
        message = channel.notifications.create(
            channel_name=channel.name,
            key=f"test:{now.timestamp():.6f}",
            event=NotificationEvent.TEST,
            title="[Helmdeck] test message",
            body=f"A test of channel {channel.name}, sent by {who} from Helmdeck.",
        )
        notifications_send([message.pk])
    audit_record(actor=actor, action="notification_channel.tested", target=channel.name)
    return message


def rule_create(*, profile, events, channels, actor):
    """A rule: `events` (NotificationEvent values) of `profile` (None: the team default)
    go to `channels`. SpecError (paths `events`, `channels`) when either is empty or
    unknown."""
    errors = []
    unknown = sorted(set(events) - set(RULE_EVENTS))
    if not events or unknown:
        errors.append(FieldError("events", "Choose at least one event from the list"))
    if not channels:
        errors.append(FieldError("channels", "Choose at least one channel"))
    if errors:
        raise SpecError(errors)
    with transaction.atomic():
        rule = NotificationRule.objects.create(
            profile=profile,
            events=[e for e in RULE_EVENTS if e in set(events)],
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        rule.channels.set(channels)
        audit_record(
            actor=actor,
            action="notification_rule.created",
            profile=profile,
            target=str(rule),
            after={"events": rule.events, "channels": sorted(c.name for c in channels)},
        )
    return rule


def rule_delete(*, rule, actor):
    target = str(rule)
    profile = rule.profile
    rule.delete()
    audit_record(actor=actor, action="notification_rule.deleted", profile=profile, target=target)
