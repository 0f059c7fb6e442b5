"""db_retry: a write that meets a lost database connection is tried again until a budget
runs out; a read that must not fail answers a default."""

import pytest
from django.db import IntegrityError, OperationalError

from deployments.services import db_retry as module
from deployments.services.db_retry import db_read_or, db_retry


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(module.time, "sleep", lambda seconds: None)


def flaky(failures, result="written", error=OperationalError):
    calls = []

    def write():
        calls.append(1)
        if len(calls) <= failures:
            raise error("server closed the connection unexpectedly")
        return result

    return write, calls


def test_it_retries_a_write_until_the_database_answers():
    write, calls = flaky(3)
    assert db_retry(write) == "written"
    assert len(calls) == 4


def test_it_gives_up_once_the_budget_is_spent():
    write, calls = flaky(100)
    with pytest.raises(OperationalError):
        db_retry(write, budget=0)
    assert len(calls) == 1


def test_it_takes_a_collision_with_its_own_first_try_as_done():
    attempts = []

    def write():
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError("the answer was lost")
        raise IntegrityError("duplicate key value violates unique constraint")

    assert db_retry(write, done=lambda: True) is None
    with pytest.raises(IntegrityError):  # a first-try collision is a real one
        db_retry(lambda: (_ for _ in ()).throw(IntegrityError("dup")), done=lambda: True)


def test_it_answers_the_default_while_the_database_is_away():
    write, _ = flaky(1)
    assert db_read_or(write, False) is False
    assert db_read_or(lambda: True, False) is True
