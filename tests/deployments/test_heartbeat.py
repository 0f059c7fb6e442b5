"""The worker heartbeat names a worker process, not its Celery node name: a worker
SIGKILLed and started again as `-n name@host` (a container or service restart, often with
the same pid) is a new incarnation, and the reaper settles what the dead one held at once.

Redis is a fake here with a clock of its own (a key's TTL passes when the test says so);
tests/faults/test_worker_kill.py does the same with real workers, Redis and helm."""

import os
import threading
import time

import pytest
from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

from deployments import heartbeat
from deployments.models import Release
from deployments.services import reaper
from deployments.services.releases import release_request
from deployments.tasks import build_release

TTL = 30


class FakeRedis:
    """The three commands the heartbeat uses, with expiries on `self.now`."""

    def __init__(self):
        self.now, self.keys = 0.0, {}

    def _live(self):
        self.keys = {k: v for k, v in self.keys.items() if v[1] is None or v[1] > self.now}
        return self.keys

    def set(self, key, value, ex=None, nx=False):
        if nx and key in self._live():
            return None
        self.keys[key] = (value, None if ex is None else self.now + ex)
        return True

    def delete(self, *keys):
        return sum(self._live().pop(key, None) is not None for key in keys)

    def scan_iter(self, match, count=None):
        prefix = match.rstrip("*")
        return [k.encode() for k in list(self._live()) if k.startswith(prefix)]


@pytest.fixture
def fake_redis(monkeypatch, settings):
    fake = FakeRedis()
    settings.HELMDECK_WORKER_HEARTBEAT_TTL = TTL
    settings.HELMDECK_WORKER_HEARTBEAT_SECONDS = 3600  # one beat per start: the test's clock
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # publishes fail fast; nothing shared is used
    monkeypatch.setattr(heartbeat, "app_client", lambda: fake)
    monkeypatch.setattr(heartbeat, "reap_if_due", lambda conn: [])  # the test reaps itself
    # heartbeat.ID_ENV: unset during the test, and whatever a start set there undone after
    monkeypatch.setenv("HELMDECK_WORKER_ID", "")
    monkeypatch.delenv("HELMDECK_WORKER_ID")
    yield fake
    _stop_heartbeat()


def _stop_heartbeat():
    heartbeat._stop.set()
    for thread in threading.enumerate():
        if thread.name == "heartbeat":
            thread.join(timeout=10)
            assert not thread.is_alive()


class Worker:
    """The sender of the worker signals: a node name, and an app of its own so that Celery's
    Django fixup (which would take over this test process's database handling) ignores it."""

    app = Celery("not-controlpanel", set_as_current=False, fixups=[])

    def __init__(self, hostname):
        self.hostname = hostname


def start_worker(fake, monkeypatch, hostname, *, pid):
    """What `celery worker -n hostname` does at start-up, in this process: worker_init, then
    worker_ready (the heartbeat thread). Returns once its first beat is in Redis."""
    monkeypatch.setattr(os, "getpid", lambda: pid)
    worker = Worker(hostname)
    before = set(fake._live())
    worker_init.send(sender=worker)
    worker_ready.send(sender=worker)
    deadline = time.monotonic() + 10
    while not (set(fake._live()) - before) and hostname not in heartbeat.live_workers(fake):
        assert time.monotonic() < deadline, "the heartbeat thread never beat"
        time.sleep(0.01)
    return worker


def sigkill(fake):
    """The process vanishes: no worker_shutdown, its key stays until its TTL has passed."""
    _stop_heartbeat()
    fake.now += TTL + 1


def claim_as_this_worker(release):
    """The build stage run by this process's Celery task (a real claim, as a worker makes)."""
    build_release.apply(args=[release.pk])
    release.refresh_from_db()
    assert release.status == Release.Status.BUILDING
    return release


@pytest.fixture
def abandoned(monkeypatch):
    """release_abandon as it is, with `helm status` answering "no such release"."""
    monkeypatch.setattr(reaper, "_settled_status", lambda helm, name, namespace: None)


def reap(fake):
    return reaper.release_reap(live_workers=heartbeat.live_workers(fake))


# ---- incarnations ----------------------------------------------------------------------


@pytest.mark.parametrize("pid", [1, 4242])  # pid 1: every container start reuses it
def test_it_gives_each_start_under_the_same_name_and_pid_a_new_id(fake_redis, monkeypatch, pid):
    ids = []
    for _ in range(3):
        start_worker(fake_redis, monkeypatch, "worker@box", pid=pid)
        ids.append(heartbeat.worker_id())
        sigkill(fake_redis)
    assert len(set(ids)) == 3
    for identity in ids:
        assert identity.startswith(f"worker@box#{pid}.")


def test_it_takes_a_new_id_when_celery_re_execs_itself_with_the_old_environment(
    fake_redis, monkeypatch
):
    """SIGHUP: Celery execs itself again, same pid, environment inherited."""
    start_worker(fake_redis, monkeypatch, "worker@box", pid=7)
    first = heartbeat.worker_id()
    sigkill(fake_redis)
    assert os.environ[heartbeat.ID_ENV] == first  # what the exec'd process inherits
    start_worker(fake_redis, monkeypatch, "worker@box", pid=7)
    assert heartbeat.worker_id() not in ("", first)


def test_it_beats_under_the_id_it_claims_with_and_removes_it_on_a_clean_stop(
    fake_redis, monkeypatch, todo_app
):
    worker = start_worker(fake_redis, monkeypatch, "worker@box", pid=10)
    release = claim_as_this_worker(release_request(profile=todo_app, actor=None, build=False))
    assert release.worker == heartbeat.worker_id()
    assert heartbeat.live_workers(fake_redis) == [release.worker]
    worker_shutdown.send(sender=worker)
    assert heartbeat.live_workers(fake_redis) == []


def test_it_leaves_no_id_behind_in_the_test_process():
    assert "HELMDECK_WORKER_ID" not in os.environ  # the tests above started "workers" here


def test_it_keeps_an_id_within_the_claim_column_and_unique_for_a_long_node_name():
    hostname = "w" * 300 + "@" + "h" * 100
    first, second = heartbeat.new_worker_id(hostname), heartbeat.new_worker_id(hostname)
    assert len(first) <= Release._meta.get_field("worker").max_length
    assert first != second
    assert first.startswith("w" * 200)


def test_it_has_no_id_outside_a_worker_so_its_claims_wait_for_their_deadline(
    fake_redis, todo_app, abandoned
):
    release = claim_as_this_worker(release_request(profile=todo_app, actor=None, build=False))
    assert release.worker == ""
    assert reap(fake_redis) == []


# ---- the reaper against a restart under the same name ----------------------------------


@pytest.mark.parametrize("pid", [1, 4242])
def test_it_settles_the_release_of_a_worker_restarted_under_the_same_name(
    fake_redis, monkeypatch, todo_app, abandoned, pid
):
    start_worker(fake_redis, monkeypatch, "worker@box", pid=pid)
    release = claim_as_this_worker(release_request(profile=todo_app, actor=None, build=False))
    sigkill(fake_redis)
    start_worker(fake_redis, monkeypatch, "worker@box", pid=pid)  # same -n, maybe same pid
    assert len(heartbeat.live_workers(fake_redis)) == 1  # a worker of that name is alive

    assert reap(fake_redis) == [release.pk]
    release.refresh_from_db()
    assert release.status == Release.Status.FAILED
    assert release.reason == "the worker running it stopped during building"


def test_it_settles_it_among_other_live_workers_and_ids_that_only_share_a_prefix(
    fake_redis, monkeypatch, todo_app, abandoned
):
    start_worker(fake_redis, monkeypatch, "worker@box", pid=3)
    release = claim_as_this_worker(release_request(profile=todo_app, actor=None, build=False))
    dead = release.worker
    sigkill(fake_redis)
    start_worker(fake_redis, monkeypatch, "worker@box", pid=3)
    fake_redis.set(f"{heartbeat.KEY_PREFIX}other@box#9.abc", 1, ex=TTL)
    fake_redis.set(f"{heartbeat.KEY_PREFIX}{dead}0", 1, ex=TTL)  # longer id, same start
    fake_redis.set(f"{heartbeat.KEY_PREFIX}worker@box", 1, ex=TTL)  # a bare node name
    assert reap(fake_redis) == [release.pk]


def test_it_leaves_the_release_of_the_live_incarnation_alone(
    fake_redis, monkeypatch, todo_app, abandoned
):
    start_worker(fake_redis, monkeypatch, "worker@box", pid=5)
    release = claim_as_this_worker(release_request(profile=todo_app, actor=None, build=False))
    fake_redis.now += TTL - 1  # still fresh
    assert reap(fake_redis) == []
    release.refresh_from_db()
    assert release.status == Release.Status.BUILDING


def test_it_settles_a_claim_made_before_incarnations_once_its_node_name_beats_no_more(
    fake_redis, monkeypatch, todo_app, abandoned
):
    """Rows an old-version worker claimed say `name@host`: alive while that exact key (only
    an old worker writes it) is fresh; a new-version worker of the same name does not keep
    them alive."""
    release = release_request(profile=todo_app, actor=None, build=False)
    Release.objects.filter(pk=release.pk).update(
        status=Release.Status.UPGRADING, worker="worker@box"
    )
    fake_redis.set(f"{heartbeat.KEY_PREFIX}worker@box", 1, ex=TTL)  # the old worker, alive
    assert reap(fake_redis) == []
    sigkill(fake_redis)
    start_worker(fake_redis, monkeypatch, "worker@box", pid=1)  # upgraded, same name
    assert reap(fake_redis) == [release.pk]
    release.refresh_from_db()
    assert release.reason == "the worker running it stopped during upgrading"


def test_it_still_leaves_queued_and_cli_releases_to_their_deadlines(
    fake_redis, monkeypatch, todo_app, abandoned
):
    start_worker(fake_redis, monkeypatch, "worker@box", pid=1)
    queued = release_request(profile=todo_app, actor=None, build=False)
    Release.objects.filter(pk=queued.pk).update(worker="worker@box#1.dead")
    assert reap(fake_redis) == []
    Release.objects.filter(pk=queued.pk).update(status=Release.Status.UPGRADING, worker="cli")
    assert reap(fake_redis) == []
