"""What every stage of a release shares (release_stages.py): the StageRun that logs lines and
steps, the claim that moves a release into a stage's status with a conditional update (so a
redelivered or duplicate task does nothing), the transient-failure retry, and how a release
ends (finished, failed, cancelled) and is announced ("status" events)."""

import logging
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from deployments import events
from deployments.integrations.helm import Helm
from deployments.integrations.kube import kubeconfig_path
from deployments.models import LogLine, Release, Step
from deployments.redaction import redactor_for
from deployments.services.db_retry import db_read_or, db_retry
from deployments.services.notifications import release_notify_request
from deployments.spec import parse_spec

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """A stage met a transient failure and put the release back; run it again after
    `delay` seconds with attempt + 1 (the Celery task retries, the CLI sleeps)."""

    def __init__(self, delay):
        super().__init__(f"retry in {delay}s")
        self.delay = delay


def retry_or_fail(run, exc, *, back_to, attempt):
    """After a transient error (cluster or daemon unreachable) retry with exponential
    backoff, at most HELMDECK_TRANSIENT_RETRIES times; then, or for a permanent error, fail
    the release with the reason."""
    retries = settings.HELMDECK_TRANSIENT_RETRIES
    if exc.permanent or attempt >= retries:
        tried = f" (after {attempt + 1} attempts)" if not exc.permanent and attempt else ""
        fail(run, f"{exc}{tried}")
        return False
    delay = settings.HELMDECK_RETRY_BACKOFF * 2**attempt
    run.log(f"{exc}; retrying in {delay:g}s (attempt {attempt + 2} of {retries + 1})")
    if run.step is not None:
        db_retry(
            lambda: Step.objects.filter(pk=run.step.pk).update(
                status=Step.Status.PENDING, started_at=None
            )
        )
    db_retry(
        lambda: Release.objects.filter(pk=run.release.pk, status__in=Release.ACTIVE).update(
            status=back_to
        )
    )
    raise RetryLater(delay)


def helm_timeout():
    return settings.HELMDECK_HELM_TIMEOUT


class StageRun:
    """What a stage needs: the release, its spec, and a way to log lines and steps."""

    def __init__(self, release):
        self.release = release
        self.profile = release.profile
        self.cluster = self.profile.cluster
        self.spec = parse_spec(release.snapshot, cluster_names={self.cluster.name})
        self._next = (
            release.log_lines.order_by("-sequence").values_list("sequence", flat=True).first() or 0
        )
        self._lock = threading.Lock()
        self.step: Any = None  # the Step row of the stage running
        # Every text this run stores goes through it: no secret value in a log or a reason.
        self.redact = redactor_for(self.profile)

    def log(self, text):
        """The one writer of LogLine rows: a redacted row, then a publish. The write waits
        out a database restart (the lock keeps lines in order meanwhile; helm's output
        waits in its pipe)."""
        with self._lock:
            self._next += 1
            sequence, text = self._next, self.redact(text)[:4000]
            db_retry(
                lambda: LogLine.objects.create(
                    release=self.release, step=self.step, sequence=sequence, text=text
                ),
                done=lambda: LogLine.objects.filter(
                    release=self.release, sequence=sequence
                ).exists(),
            )
        events.publish(
            events.channel("release", self.release.pk),
            "log",
            {"step": self.step.name if self.step else "", "text": text},
            event_id=sequence,
        )

    def begin(self, name):
        self.step = db_retry(lambda: self.release.steps.get(name=name))
        db_retry(
            lambda: Step.objects.filter(pk=self.step.pk).update(
                status=Step.Status.RUNNING, started_at=timezone.now()
            )
        )
        release_publish_status(self.release.pk)

    def end(self, status=Step.Status.DONE, detail=""):
        db_retry(
            lambda: Step.objects.filter(pk=self.step.pk).update(
                status=status, finished_at=timezone.now(), detail=self.redact(detail)[:2000]
            )
        )
        release_publish_status(self.release.pk)

    def cancelled(self):
        """Polled every half second while helm or docker runs: an unreachable database
        means "not cancelled", never an exception that would orphan the child process."""
        return db_read_or(
            lambda: Release.objects.filter(pk=self.release.pk, cancel_requested=True).exists(),
            False,
        )

    def helm(self):
        return Helm(kubeconfig=kubeconfig_path(self.cluster), context=self.cluster.kube_context)


def claim(release_id, from_statuses, to_status, *, budget, worker="", **extra):
    """Move a release into a stage. Returns the release, or None when another run has it.

    The stage's deadline (now + budget) is when the reaper may assume its worker died;
    before it, a `worker` id whose heartbeat is gone (heartbeat.py) tells it so. The claim
    always names who holds the release now ("" when no heartbeat speaks for it), never the
    previous stage's worker.
    """
    now = timezone.now()
    if Release.Status.QUEUED in from_statuses:
        extra.setdefault("started_at", Coalesce(F("started_at"), Value(now)))
    extra["worker"] = worker
    extra["deadline"] = now + timedelta(seconds=budget)
    updated = Release.objects.filter(
        pk=release_id, status__in=from_statuses, cancel_requested=False
    ).update(status=to_status, **extra)
    if not updated:
        settle_cancel(release_id)
        return None
    release_publish_status(release_id, to_status)
    return Release.objects.select_related("profile__cluster").get(pk=release_id)


def settle_cancel(release_id):
    if Release.objects.filter(
        pk=release_id, status__in=Release.ACTIVE, cancel_requested=True
    ).update(status=Release.Status.CANCELLED, finished_at=timezone.now(), reason="cancelled"):
        release_publish_status(release_id, Release.Status.CANCELLED)


def finish(run, status, reason=""):
    reason = run.redact(reason)
    db_retry(
        lambda: Release.objects.filter(pk=run.release.pk, status__in=Release.ACTIVE).update(
            status=status, reason=reason[:4000], finished_at=timezone.now()
        )
    )
    if reason:
        run.log(f"{status.replace('_', ' ')}: {reason}")
    db_retry(
        lambda: Step.objects.filter(release=run.release, status=Step.Status.PENDING).update(
            status=Step.Status.SKIPPED
        )
    )
    release_publish_status(run.release.pk)


def fail(run, reason, status=Release.Status.FAILED):
    if run.step is not None:
        run.end(Step.Status.FAILED, reason)
    if run.cancelled():
        status, reason = Release.Status.CANCELLED, f"cancelled: {reason}"
    finish(run, status, reason)


def release_publish_status(release_id, status=None):
    """A "status" event with the release's status: `status` when the caller has just
    written it, else read. A terminal status is also the release's notifications' cue."""
    if status is None:
        status = db_read_or(
            lambda: Release.objects.filter(pk=release_id).values_list("status", flat=True).first(),
            None,
        )
    if status is not None:  # else the database is away: pages catch up when they reconnect
        events.publish(events.channel("release", release_id), "status", {"status": status})
    if status in Release.TERMINAL:
        release_notify_request(release_id)
