"""Streams through faults: a Redis restart (a private redis-server this test stops and
starts), after which the release stream replays what was written while Redis was away,
without loss or duplicates, and the status stream sends a fresh page; and a client too
slow to keep up, which is dropped with a retry hint and replays on reconnect."""

import asyncio
import contextlib
import threading
import time

import pytest
from django.test import AsyncClient

from deployments.models import Release, Step
from deployments.services.releases import release_request
from deployments.services.stage_run import StageRun, finish
from tests.conftest import stop_process
from tests.deployments.test_hub import private_redis  # noqa: F401  (fixture)
from tests.deployments.views.test_streams import in_own_loop, parse
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_it_replays_lines_written_while_redis_was_away(todo_app, private_redis, settings):  # noqa: F811
    settings.REDIS_URL = private_redis["url"]
    release = release_request(profile=todo_app, actor=None, build=False)
    run = StageRun(release)
    run.step = release.steps.get(name="render")
    run.log("line 1")
    client = AsyncClient()
    in_own_loop(client.aforce_login, UserFactory(role="viewer"))
    connected = threading.Event()

    def produce():
        from django.db import connection

        assert connected.wait(30)
        time.sleep(0.5)
        run = StageRun(Release.objects.get(pk=release.pk))
        run.step = Step.objects.get(release=release, name="render")
        run.log("line 2 live")
        time.sleep(0.5)
        stop_process(private_redis["procs"][-1], timeout=5)
        run.log("line 3 while Redis is down")  # a row; its publish fails
        run.log("line 4 while Redis is down")
        private_redis["start"]()
        time.sleep(1.5)  # the hub reconnects (backoff), resubscribes, replays
        run.log("line 5 after")
        finish(run, Release.Status.SUCCEEDED)
        connection.close()

    async def read():
        response = await client.get(f"/releases/{release.pk}/stream/")
        assert response.status_code == 200
        chunks = []
        thread = threading.Thread(target=produce)
        thread.start()

        async def collect():
            async for chunk in response.streaming_content:
                chunks.append(chunk.decode())
                connected.set()

        try:
            await asyncio.wait_for(collect(), timeout=60)
        finally:
            await asyncio.to_thread(thread.join)
        return chunks

    messages = parse(in_own_loop(read))
    ids = [event_id for event, event_id, _ in messages if event == "log"]
    assert ids == ["1", "2", "3", "4", "5"], ids
    assert messages[-1] == ("done", None, "succeeded")


def test_it_sends_the_status_page_again_after_redis_comes_back(todo_app, private_redis, settings):  # noqa: F811
    from deployments.models import PodState

    settings.REDIS_URL = private_redis["url"]
    client = AsyncClient()
    in_own_loop(client.aforce_login, UserFactory(role="viewer"))
    connected = threading.Event()

    def restart():
        from django.db import connection

        assert connected.wait(30)
        stop_process(private_redis["procs"][-1], timeout=5)
        # a pod appears while Redis is away: its publish is lost, the fresh page has it
        PodState.objects.create(
            profile=todo_app,
            namespace="todo-app",
            name="backend-1",
            phase="Running",
            ready=True,
            ready_containers=1,
            total_containers=1,
        )
        private_redis["start"]()
        connection.close()

    async def read():
        response = await client.get("/status/stream/")
        chunks = []
        thread = threading.Thread(target=restart)
        thread.start()

        async def collect():
            async for chunk in response.streaming_content:
                chunks.append(chunk.decode())
                connected.set()
                if sum(1 for m in parse(chunks) if m[0] == "table") >= 2:
                    return

        try:
            await asyncio.wait_for(collect(), timeout=60)
        finally:
            await asyncio.to_thread(thread.join)
        return chunks

    tables = [data for event, _, data in parse(in_own_loop(read)) if event == "table"]
    assert "health-not_deployed" in tables[0] and "1/1 pods ready" not in tables[0]
    assert "health-healthy" in tables[1] and "1/1 pods ready" in tables[1]


def events_of(chunks):
    """The chunks that are events (not a bare `retry:` hint)."""
    return [chunk for chunk in chunks if not chunk.startswith("retry:")]


def test_it_drops_a_slow_client_with_a_retry_hint_and_replays_on_reconnect(
    todo_app, redis_url, settings, monkeypatch
):
    from deployments import hub
    from deployments.views import sse_htmx

    monkeypatch.setattr(hub, "QUEUE_SIZE", 3)
    # far more than the client's whole buffer: the hub's queue, the stream's handover to
    # the user re-check (sse_view) and the one message each side holds
    lines = 3 + sse_htmx.HANDOVER_SIZE + 20
    settings.REDIS_URL = redis_url
    release = release_request(profile=todo_app, actor=None, build=False)
    run = StageRun(release)
    run.step = release.steps.get(name="render")
    run.log("line 1")
    client = AsyncClient()
    in_own_loop(client.aforce_login, UserFactory(role="viewer"))

    def write_many():
        from django.db import connection

        run = StageRun(Release.objects.get(pk=release.pk))
        run.step = Step.objects.get(release=release, name="render")
        for n in range(2, 2 + lines):
            run.log(f"line {n}")
        connection.close()

    def listeners():
        groups = hub.get_hub().listeners.values()
        return [one for by_events in groups for ls in by_events.values() for one in ls]

    async def read():
        response = await client.get(f"/releases/{release.pk}/stream/")
        stream = aiter(response.streaming_content)
        first = []
        while not any(m[0] == "status" for m in parse(first)):
            first.append((await anext(stream)).decode())
        [mine] = listeners()  # this stream's, kept: once dropped, the stream removes it
        # this client reads nothing while the lines are published
        await asyncio.to_thread(write_many)
        deadline = asyncio.get_running_loop().time() + 30
        while not mine.dropped:  # the condition itself: the hub gave up on this client
            assert asyncio.get_running_loop().time() < deadline, "the client was never dropped"
            await asyncio.sleep(0.05)

        async def drain():
            return [chunk.decode() async for chunk in stream]  # dropped: the stream ends

        rest = await asyncio.wait_for(drain(), 30)
        assert listeners() == []  # the dropped stream let go of its subscription
        last = max(int(i) for e, i, _ in parse(first + events_of(rest)) if e == "log")
        again = await client.get(
            f"/releases/{release.pk}/stream/", headers={"Last-Event-ID": str(last)}
        )
        replay, replayed = [], asyncio.Event()

        async def consume():
            async for chunk in again.streaming_content:
                replay.append(chunk.decode())
                if any(m[0] == "status" for m in parse(replay)):
                    replayed.set()

        task = asyncio.ensure_future(consume())
        await asyncio.wait_for(replayed.wait(), 30)
        task.cancel()  # the page goes away (as Django does on a disconnect)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return first, rest, replay, last

    first, rest, replay, last = in_own_loop(read)
    assert [i for e, i, _ in parse(first) if e == "log"] == ["1"]
    assert "".join(rest).endswith("retry: 1000\n\n")
    delivered = [int(i) for e, i, _ in parse(first + events_of(rest)) if e == "log"]
    # what the dropped client got is in order and without a gap, and stops well short
    assert delivered == list(range(1, last + 1)) and last < 1 + lines
    # the reconnect replays exactly the rest: no line lost, none twice
    assert [int(i) for e, i, _ in parse(replay) if e == "log"] == list(range(last + 1, 2 + lines))
