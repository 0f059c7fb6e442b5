"""Redis (broker, pub/sub) is killed and started again: while a release streams to a page,
and while a deploy waits in the queue. Redis runs without persistence, as in
docker-compose.yml, so a restart loses whatever it held."""

import http.client
import threading
import time
from urllib.parse import urlsplit

import pytest
import redis
from django.test import Client

from deployments.models import LogLine, Release
from deployments.services.release_queue import QUEUED_KEY, release_enqueue
from deployments.services.releases import release_request
from tests.factories import PASSWORD, UserFactory
from tests.faults.conftest import (
    assert_helm_settled,
    assert_log_complete,
    measure,
    release_page,
    slow_build,
    wait_for,
    wait_terminal,
)
from tests.fixtures.faults import start_web, start_worker, stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def session_cookie():
    user = UserFactory(role="viewer")
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return f"sessionid={client.cookies['sessionid'].value}"


def sse_messages(url, cookie, last_id):
    """(event, id, data) from one connection to an SSE endpoint, until it ends."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(
            "GET",
            parts.path,
            headers={"Cookie": cookie, "Accept": "text/event-stream", "Last-Event-ID": last_id},
        )
        response = conn.getresponse()
        if response.status != 200:
            return
        fields = {}
        while line := response.readline():
            line = line.decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if not line:
                if "event" in fields:
                    yield fields["event"], fields.get("id"), fields.get("data", "")
                fields = {}
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
    finally:
        conn.close()


class Page(threading.Thread):
    """What a browser's EventSource does: read the stream, and on any break reconnect with
    the last id it saw in Last-Event-ID, until the `done` event."""

    def __init__(self, url, cookie):
        super().__init__(daemon=True)
        self.url, self.cookie = url, cookie
        self.ids, self.connections, self.done = [], 0, None

    def run(self):
        deadline = time.monotonic() + 180
        while self.done is None and time.monotonic() < deadline:
            self.connections += 1
            last = str(self.ids[-1]) if self.ids else ""
            try:
                for event, event_id, data in sse_messages(self.url, self.cookie, last):
                    if event == "log":
                        self.ids.append(int(event_id))
                    elif event == "done":
                        self.done = data
                        return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.5)  # EventSource's retry delay, shortened


def test_it_loses_no_line_for_a_page_that_reconnects_after_redis_restarts(
    fault_profile, fault_env, private_redis, docker_up, tmp_path
):
    slow_build(fault_profile, docker_up, tmp_path / "builds", lines=30, every=0.2)
    worker = start_worker(fault_env, "faults-stream")
    web, base = start_web(fault_env)
    try:
        release = release_request(profile=fault_profile, actor=None, build=True)
        page = Page(f"{base}/releases/{release.pk}/stream/", session_cookie())
        page.start()
        release_enqueue(release)
        wait_for(lambda: len(page.ids) >= 10, 90, "the page to show some lines", release)
        private_redis.restart(down=2)
        release, took = wait_terminal(release, 120)
        page.join(timeout=60)
    finally:
        stop(web)
        stop(worker)
    assert release.status == Release.Status.SUCCEEDED, release.reason
    total = assert_log_complete(release)
    assert page.done == "succeeded"
    assert page.ids == list(range(1, total + 1))  # every line, once, in order
    # (the web process's hub reconnects to Redis and the stream goes on from its rows; had
    # the stream broken, the page would have reconnected: either way every line, once)
    assert_helm_settled(fault_profile, revisions=1)
    assert "succeeded" in release_page(release)
    measure(
        "Redis restarted while a release streams",
        to_terminal_s=took,
        lines=total,
        lines_lost=total - len(set(page.ids)),
        duplicates=len(page.ids) - len(set(page.ids)),
        connections=page.connections,
        helm_revisions=1,
    )


def test_it_runs_a_queued_deploy_once_after_redis_lost_the_queue(
    fault_profile, fault_env, private_redis
):
    broker = redis.Redis.from_url(private_redis.url)
    release = release_request(profile=fault_profile, actor=None, build=False)
    release_enqueue(release)  # no worker yet: the task waits in Redis
    assert broker.llen("celery") == 1 and broker.exists(f"{QUEUED_KEY}{release.pk}")
    private_redis.restart()
    assert broker.llen("celery") == 0  # the queued task is gone
    started = time.monotonic()
    worker = start_worker(fault_env, "faults-queue")
    try:
        release, _ = wait_terminal(release, 120)
    finally:
        stop(worker)
    took = round(time.monotonic() - started, 1)
    assert release.status == Release.Status.SUCCEEDED, release.reason
    requeued = LogLine.objects.filter(release=release, text__contains="queued again")
    assert requeued.count() == 1
    upgrades = LogLine.objects.filter(release=release, text__startswith="helm upgrade --install")
    assert upgrades.count() == 1  # ran once
    assert_helm_settled(fault_profile, revisions=1)
    assert_log_complete(release)
    page = release_page(release)
    assert "queued again" in page and "succeeded" in page
    measure(
        "Redis restarted while a deploy is queued",
        to_terminal_after_worker_start_s=took,
        status=release.status,
        requeued=requeued.count(),
        helm_revisions=1,
    )
