"""A release's stage chain sent to the workers, and sent again when the broker lost it.

Each stage is a Celery task (deployments.tasks) that claims the release's row, so a message
sent twice is harmless. A sent chain is marked in the broker's own Redis: the mark lives and
dies with the message (a Redis that restarts without persistence loses both), so the reaper
sends again what is queued but unmarked.
"""

import functools
import logging

from django.conf import settings
from django.db import transaction

from deployments.integrations.redis import broker_client
from deployments.models import Release
from deployments.services.reaper import release_requeue

log = logging.getLogger(__name__)
QUEUED_KEY = "helmdeck:queued:"
# The stages in order, by the names of their functions in services/release_stages.py: the
# chain sent to the workers, the tasks that run them and `deploy --wait --here` follow it
STAGES = ("release_build", "release_render", "release_upgrade", "release_verify")
# a teardown's one stage (services/teardown.py)
TEARDOWN_STAGES = ("release_teardown",)


def release_stage_task_name(stage):
    """The Celery task name of a stage (deployments.tasks registers one task per stage)."""
    return f"deployments.tasks.{stage}"


def release_enqueue(release):
    """Start a requested release's chain once its row is committed."""
    transaction.on_commit(functools.partial(release_send, release.pk, release.kind))


def release_send(release_id, kind=Release.Kind.DEPLOY):
    """Send a release's chain (a teardown's, or a deploy's and a rollback's), then mark it
    sent. A broker that is down now only delays the release: it stays queued, unmarked, and
    is sent once Redis is back."""
    from celery import chain

    from controlpanel.celery import app

    names = TEARDOWN_STAGES if kind == Release.Kind.TEARDOWN else STAGES
    # Sent by name: the sender (the web process, `deploy --wait`) needs the Celery app, not
    # the workers' side (deployments.tasks imports every stage's libraries: ~0.2 s more at
    # a CLI deploy's start, or at the web process's first deploy).
    stages = chain(
        *(
            # ignore_result as the tasks declare it: the sender does not see their options
            app.signature(
                release_stage_task_name(stage), (release_id,), immutable=True, ignore_result=True
            )
            for stage in names
        )
    )
    try:
        stages.apply_async()
        broker_client().set(f"{QUEUED_KEY}{release_id}", 1, ex=settings.HELMDECK_QUEUE_TIMEOUT)
    except Exception as exc:  # kombu's OperationalError, redis' errors, OSError
        log.warning("release #%s not sent to the queue yet: %s", release_id, exc)


def release_requeue_lost(conn=None):
    """Send again the queued releases whose message the broker lost (no mark)."""
    conn = conn or broker_client()
    return release_requeue(
        is_queued=lambda pk: bool(conn.exists(f"{QUEUED_KEY}{pk}")),
        enqueue=release_send,
        grace=settings.HELMDECK_WORKER_HEARTBEAT_TTL,
    )
