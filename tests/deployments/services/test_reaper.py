"""The reaper's requeue: a queued release whose task the broker lost is sent again, once
it has waited `grace` seconds; one the broker still holds, or one a `deploy --wait`
process owns, is left alone."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Release
from deployments.services.reaper import release_requeue
from deployments.services.releases import release_request

pytestmark = pytest.mark.django_db


def requeue(*, queued, grace=10, later=60):
    sent = []
    requeued = release_requeue(
        is_queued=lambda pk: queued,
        enqueue=lambda pk, kind: sent.append(pk if kind == "deploy" else (pk, kind)),
        grace=grace,
        now=timezone.now() + timedelta(seconds=later),
    )
    return requeued, sent


def test_it_sends_again_a_queued_release_the_broker_lost(todo_app):
    release = release_request(profile=todo_app, actor=None, build=False)
    requeued, sent = requeue(queued=False)
    assert requeued == sent == [release.pk]
    assert release.log_lines.get().text.endswith("queued again")


def test_it_leaves_a_release_the_broker_holds_or_that_is_too_young(todo_app):
    release_request(profile=todo_app, actor=None, build=False)
    assert requeue(queued=True) == ([], [])
    assert requeue(queued=False, later=0) == ([], [])


def test_it_leaves_a_release_a_cli_process_runs(todo_app):
    release = release_request(profile=todo_app, actor=None, build=False)
    Release.objects.filter(pk=release.pk).update(worker="cli")
    assert requeue(queued=False) == ([], [])


def test_it_sends_a_lost_teardown_as_a_teardown(todo_app):
    from tests.factories import make_release

    make_release(todo_app, "succeeded", revision=1)
    from deployments.services.releases import release_teardown_request

    release = release_teardown_request(profile=todo_app, actor=None)
    requeued, sent = requeue(queued=False)
    assert requeued == [release.pk] and sent == [(release.pk, "teardown")]
