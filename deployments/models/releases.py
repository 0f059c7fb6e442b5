"""Releases (one deploy or rollback run each), their steps and their log lines."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from deployments.models.profiles import Profile


class ReleaseStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    BUILDING = "building", "building"
    RENDERING = "rendering", "rendering"
    UPGRADING = "upgrading", "upgrading"
    VERIFYING = "verifying", "verifying"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    ROLLED_BACK = "rolled_back", "rolled back"
    CANCELLED = "cancelled", "cancelled"


# The one split of the statuses, used by Release's unique index, the pipeline's claims, the
# reaper and the pages (as Release.ACTIVE / Release.TERMINAL): a release is active until it
# ends in a terminal status.
ACTIVE_RELEASE_STATUSES = (
    ReleaseStatus.QUEUED,
    ReleaseStatus.BUILDING,
    ReleaseStatus.RENDERING,
    ReleaseStatus.UPGRADING,
    ReleaseStatus.VERIFYING,
)
TERMINAL_RELEASE_STATUSES = tuple(s for s in ReleaseStatus if s not in ACTIVE_RELEASE_STATUSES)


class Release(models.Model):
    """One deploy, rollback or teardown run of a profile: what was asked, what happened, how
    it ended."""

    Status = ReleaseStatus
    ACTIVE, TERMINAL = ACTIVE_RELEASE_STATUSES, TERMINAL_RELEASE_STATUSES

    class Kind(models.TextChoices):
        DEPLOY = "deploy", "deploy"
        ROLLBACK = "rollback", "rollback"
        TEARDOWN = "teardown", "teardown"  # helm uninstall (services/teardown.py)

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="releases")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.DEPLOY)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    # The profile exactly as deployed (spec.py shape; secret keys and sources, never values).
    snapshot = models.JSONField()
    build = models.BooleanField(default=True)
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    images = models.JSONField(default=dict, blank=True)  # {component: {"ref":…, "id":…}}
    helm_revision = models.PositiveIntegerField(null=True, blank=True)
    notes = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    worker = models.CharField(max_length=255, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    # when its result went to the notification rules (services/notifications.py claims it)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One active release per profile, enforced by the database itself.
            models.UniqueConstraint(
                fields=["profile"],
                condition=Q(status__in=ACTIVE_RELEASE_STATUSES),
                name="one_active_release_per_profile",
            ),
        ]

    def __str__(self):
        return f"{self.profile.name} #{self.pk} ({self.status})"

    @property
    def is_active(self):
        return self.status in self.ACTIVE

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class Step(models.Model):
    """One stage of a release (build one image, render, upgrade, verify), with timings."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        SKIPPED = "skipped", "skipped"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=80)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["release", "position"]
        constraints = [
            models.UniqueConstraint(fields=["release", "position"], name="step_position_unique")
        ]

    def __str__(self):
        return f"{self.release_id}:{self.name}"


class LogLine(models.Model):
    """One line of build or helm output. `sequence` orders a release's lines and is the SSE
    event id a reconnecting page replays from."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="log_lines")
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.CASCADE, related_name="log_lines"
    )
    sequence = models.PositiveIntegerField()
    text = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["release", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["release", "sequence"], name="log_sequence_unique")
        ]

    def __str__(self):
        return self.text[:80]
