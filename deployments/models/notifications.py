"""Notifications: channels (an Apprise URL each, stored encrypted: it holds credentials),
rules (which events go to which channels, per profile or as the team default), the messages
those produce (one per channel and event: the dedup key is unique) with every delivery
attempt, and the health each profile was last seen and told in (services/notifications.py
waits for a state to hold before it tells anyone)."""

from django.conf import settings
from django.db import models

from deployments.models.profiles import Profile
from deployments.models.releases import Release


class NotificationEvent(models.TextChoices):
    RELEASE_SUCCEEDED = "release.succeeded", "Release succeeded"
    RELEASE_FAILED = "release.failed", "Release failed"
    RELEASE_ROLLED_BACK = "release.rolled_back", "Release rolled back"
    RELEASE_CANCELLED = "release.cancelled", "Release cancelled"
    HEALTH_DEGRADED = "health.degraded", "Health became Degraded"
    HEALTH_RECOVERED = "health.recovered", "Health recovered"
    PROFILE_ASLEEP = "profile.asleep", "Profile went to sleep"
    PROFILE_AWOKE = "profile.awoke", "Profile woke up"
    TEST = "test", "Test message"  # "Send test" on the page; no rule names it


RULE_EVENTS = [e for e in NotificationEvent.values if e != NotificationEvent.TEST]
CHANNEL_NAME_MAX, CHANNEL_URL_MAX = 100, 2000


class NotificationChannel(models.Model):
    name = models.CharField(max_length=CHANNEL_NAME_MAX, unique=True)
    # what kind of channel it is (the URL's scheme: "slack", "mailto", "json"...): shown on
    # pages in place of the URL, which is never shown again
    scheme = models.CharField(max_length=32)
    ciphertext = models.TextField(editable=False)  # the Apprise URL (deployments.crypto)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.scheme})"


class NotificationRule(models.Model):
    """Events of a profile (or, with no profile, of every profile that has no rule of its
    own: the team default) go to these channels."""

    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_rules"
    )
    events = models.JSONField(default=list)  # NotificationEvent values
    channels = models.ManyToManyField(NotificationChannel, related_name="rules")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["profile__name", "id"]

    def __str__(self):
        return f"{self.profile.name if self.profile else 'team default'}: {', '.join(self.events)}"


class Notification(models.Model):
    """One message to one channel. `key` names what it is about (the release's result, a
    health change since a moment): a second evaluation of the same thing finds the row and
    sends nothing."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"

    # a deleted channel's messages stay, with its name: the record of what was sent
    channel = models.ForeignKey(
        NotificationChannel, null=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    channel_name = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    event = models.CharField(max_length=32, choices=NotificationEvent.choices)
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    profile_name = models.CharField(max_length=63, blank=True)
    release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    title = models.CharField(max_length=250)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # a worker sending it holds it until then; a lost task is sent again after it
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "key"], name="notification_once"),
        ]

    def __str__(self):
        return f"{self.channel_name}: {self.title}"


class NotificationAttempt(models.Model):
    """One try at sending a Notification, and how it went (the reason never holds the
    channel's URL)."""

    class Result(models.TextChoices):
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="attempt_rows"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    result = models.CharField(max_length=16, choices=Result.choices)
    reason = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.notification_id}: {self.result}"


class ProfileHealthWatch(models.Model):
    """A profile's health as the notifier last sampled it (`status`), since when it has been
    in that kind of state (`since`: a crash-looping profile flips between Degraded and
    Progressing at every restart, one unhealthy stretch), when Degraded was first seen in
    that stretch (`degraded_since`: a long deploy's Progressing does not count towards the
    hold), and what the team was last told (`told`, at `told_at`)."""

    profile = models.OneToOneField(
        Profile, primary_key=True, on_delete=models.CASCADE, related_name="health_watch"
    )
    status = models.CharField(max_length=16)
    since = models.DateTimeField()
    degraded_since = models.DateTimeField(null=True, blank=True)
    told = models.CharField(max_length=16, blank=True)
    told_at = models.DateTimeField(null=True, blank=True)
    degraded_told_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.profile_id}: {self.status} since {self.since:%Y-%m-%d %H:%M}"
