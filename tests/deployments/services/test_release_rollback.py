"""release_rollback_request(target=...): the rollback the history page's button asks for."""

import pytest

from deployments.models import Release
from deployments.services.releases import ReleaseRefused, release_rollback_request
from tests.factories import make_release

pytestmark = pytest.mark.django_db


def test_it_rolls_back_to_the_release_it_is_given(todo_app):
    older = make_release(todo_app, revision=1)
    make_release(todo_app, revision=1)  # same revision number (after an uninstall): not this one
    rollback = release_rollback_request(profile=todo_app, actor=None, target=older)
    assert rollback.kind == Release.Kind.ROLLBACK and rollback.rollback_of == older
    assert rollback.snapshot == older.snapshot and rollback.build is False


def test_it_refuses_a_target_that_did_not_succeed(todo_app):
    failed = make_release(todo_app, "failed")
    with pytest.raises(ReleaseRefused, match=f"release #{failed.pk} of todo-app did not succeed"):
        release_rollback_request(profile=todo_app, actor=None, target=failed)
    assert not Release.objects.filter(kind=Release.Kind.ROLLBACK).exists()
