"""The status page's SSE stream against real Redis: login and role checked, the current page
on (re)connect, one `profile-<pk>` event per changed row (pod changes from the watcher,
release status from the pipeline), a health filter kept, one render shared by every client,
and a replay-only stream under WSGI."""

import asyncio
import contextlib
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient

from deployments.models import PodState, Release
from deployments.services.pod_states import pod_state_publish
from tests.deployments.views.test_digest import opens_region
from tests.deployments.views.test_status import crashing, pod_state
from tests.deployments.views.test_streams import in_own_loop, parse
from tests.factories import ProfileFactory, UserFactory, make_release

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def logged_in(role="viewer"):
    client = AsyncClient()
    in_own_loop(client.aforce_login, UserFactory(role=role))
    return client


def later(fn, ready):
    """Run `fn` in a thread once `ready` (a threading.Event) is set: every stream has sent its
    first event, so it is subscribed (the hub confirms the subscription before that)."""

    def run():
        from django.db import connection

        assert ready.wait(60), "the streams never sent their first event"
        try:
            fn()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def read_stream(clients, url, *, until, produce=None, timeout=30):
    """Open `url` on every client at once, start `produce` once each has its first event, and read
    each stream until `until(messages)`; returns each client's messages."""

    connected, all_connected = [], threading.Event()

    async def one(client):
        response = await client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        chunks = []
        async for chunk in response.streaming_content:
            chunks.append(chunk.decode())
            if len(chunks) == 1:
                connected.append(client)
                if len(connected) == len(clients):
                    all_connected.set()
            if until(parse(chunks)):
                break
        return parse(chunks)

    async def all_of_them():
        tasks = [asyncio.ensure_future(one(client)) for client in clients]
        thread = later(produce, all_connected) if produce else None
        try:
            return await asyncio.wait_for(asyncio.gather(*tasks), timeout)
        finally:
            all_connected.set()  # a failed stream must not leave the producer waiting
            if thread:
                thread.join()

    return in_own_loop(all_of_them)


def events_named(messages, prefix):
    return [(event, data) for event, _, data in messages if event.startswith(prefix)]


def test_it_refuses_anonymous_and_roleless_users(db):
    assert in_own_loop(AsyncClient().get, "/status/stream/").status_code == 401
    client = AsyncClient()
    in_own_loop(client.aforce_login, User.objects.create_user("nobody"))
    assert in_own_loop(client.get, "/status/stream/").status_code == 403


def test_it_sends_the_page_then_a_row_when_a_pod_changes(todo_app, redis_url, settings):
    settings.REDIS_URL = redis_url
    other = ProfileFactory(name="other")
    make_release(todo_app, revision=1)
    row = pod_state(todo_app, "backend-1")

    def crash():
        changed = PodState.objects.get(pk=row.pk)
        changed.ready, changed.ready_containers = False, 0
        changed.reason, changed.exit_code, changed.restarts = "CrashLoopBackOff", 1, 3
        changed.save()
        pod_state_publish(changed)

    (messages,) = read_stream(
        [logged_in()],
        "/status/stream/",
        produce=crash,
        until=lambda m: any(e == "counts" for e, _, _ in m),
    )
    event, _, table = messages[0]
    assert event == "table" and opens_region(table, "status-profiles")
    assert "health-healthy" in table and 'data-profile="other"' in table
    assert 'id="health-summary"' in table and "1 Healthy" in table
    rows = events_named(messages, "profile-")
    assert [event for event, _ in rows] == [f"profile-{todo_app.pk}"]
    html = rows[0][1]
    assert html.startswith(f'<tr id="profile-row-{todo_app.pk}"')
    assert "health-degraded" in html and "Crash loop" in html and other.name not in html
    # the badge changed, so the counts above the table follow
    ((_, summary),) = events_named(messages, "counts")
    assert summary.startswith('<p id="health-summary"')
    assert "1 Degraded" in summary and "Healthy" not in summary


def test_it_sends_a_row_when_a_release_changes_status(todo_app, redis_url, settings):
    from deployments.services.stage_run import release_publish_status

    settings.REDIS_URL = redis_url
    release = make_release(todo_app, "queued")

    def upgrade_then_fail():
        Release.objects.filter(pk=release.pk).update(status=Release.Status.FAILED)
        release_publish_status(release.pk)

    (messages,) = read_stream(
        [logged_in()],
        "/status/stream/",
        produce=upgrade_then_fail,
        until=lambda m: any(e.startswith("profile-") for e, _, _ in m),
    )
    assert "health-progressing" in messages[0][2]
    (row,) = events_named(messages, "profile-")
    assert "health-failed" in row[1] and "badge-failed" in row[1]


def test_it_keeps_to_the_health_filter(todo_app, redis_url, settings):
    """A profile that turns Degraded joins a `?health=degraded` page: the table is sent again."""
    settings.REDIS_URL = redis_url
    make_release(todo_app, revision=1)
    row = pod_state(todo_app, "backend-1")
    crashing(ProfileFactory(name="already-bad"), "bad-1")

    def crash():
        changed = PodState.objects.get(pk=row.pk)
        changed.ready, changed.reason = False, "CrashLoopBackOff"
        changed.save()
        pod_state_publish(changed)

    (messages,) = read_stream(
        [logged_in()],
        "/status/stream/?health=degraded",
        produce=crash,
        until=lambda m: len(events_named(m, "table")) >= 2,
    )
    first, second = [data for _, data in events_named(messages, "table")]
    assert 'data-profile="already-bad"' in first and 'data-profile="todo-app"' not in first
    assert 'data-profile="already-bad"' in second and 'data-profile="todo-app"' in second


def test_it_renders_a_change_once_for_every_client(todo_app, redis_url, settings, monkeypatch):
    from deployments.views import status_stream

    settings.REDIS_URL = redis_url
    row = pod_state(todo_app, "backend-1")
    renders = []
    real_row = status_stream._row

    def counting_row(pk, role):
        renders.append(pk)
        return real_row(pk, role)

    monkeypatch.setattr(status_stream, "_row", counting_row)

    def change():
        changed = PodState.objects.get(pk=row.pk)
        changed.restarts = 1
        changed.save()
        pod_state_publish(changed)

    results = read_stream(
        [logged_in() for _ in range(10)],
        "/status/stream/",
        produce=change,
        until=lambda m: any(e.startswith("profile-") for e, _, _ in m),
    )
    assert all(len(events_named(messages, "profile-")) == 1 for messages in results)
    assert renders == [todo_app.pk]


def test_it_sends_the_page_and_a_retry_hint_under_wsgi(login, todo_app):
    response = login("viewer").get("/status/stream/?q=todo")
    body = b"".join(response).decode()
    assert body.startswith("event: table\n") and 'data-profile="todo-app"' in body
    assert body.endswith("retry: 10000\n\n")


def test_it_lets_go_of_its_subscription_when_the_client_goes(todo_app, redis_url, settings):
    import redis

    from deployments.hub import CLIENT_NAME, get_hub

    settings.REDIS_URL = redis_url
    client = logged_in()
    conn = redis.Redis.from_url(redis_url)
    database = conn.connection_pool.connection_kwargs.get("db", 0)

    def patterns():
        """Pattern subscriptions of hubs on this test process's Redis database (PUBSUB
        NUMPAT counts the whole server's, other test processes' streams included)."""
        return sum(
            int(c.get("psub", 0))
            for c in conn.client_list()
            if c.get("name") == CLIENT_NAME and int(c.get("db", -1)) == database
        )

    before = patterns()

    async def connect_then_leave():
        response = await client.get("/status/stream/")
        chunks, started = [], asyncio.Event()

        async def consume():
            async for chunk in response.streaming_content:
                chunks.append(chunk.decode())
                started.set()

        task = asyncio.ensure_future(consume())
        await asyncio.wait_for(started.wait(), 30)
        hub = get_hub()
        listeners = {
            listener
            for groups in hub.listeners.values()
            for members in groups.values()
            for listener in members
        }
        during = (conn.pubsub_numpat(), len(listeners))
        task.cancel()  # what Django's ASGI handler does when the client disconnects
        with contextlib.suppress(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 10
        while hub.listeners and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return chunks[0], during, dict(hub.listeners)

    first, during, left = in_own_loop(connect_then_leave)
    assert first.startswith("event: table")
    assert during == (before + 2, 1)  # two patterns, one listener
    assert left == {}
    deadline = time.monotonic() + 10
    while patterns() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert patterns() == before


def test_it_sends_the_page_again_when_a_heartbeat_finds_a_new_profile(
    todo_app, redis_url, settings, monkeypatch
):
    """Creating a profile publishes nothing; the next heartbeat's check shows it."""

    settings.REDIS_URL = redis_url
    settings.HELMDECK_SSE_HEARTBEAT_SECONDS = 0.5
    (messages,) = read_stream(
        [logged_in()],
        "/status/stream/",
        produce=lambda: ProfileFactory(name="brand-new"),
        until=lambda m: len(events_named(m, "table")) >= 2,
    )
    first, second = [data for _, data in events_named(messages, "table")]
    assert 'data-profile="brand-new"' not in first
    assert 'data-profile="brand-new"' in second and 'data-profile="todo-app"' in second
