"""The release SSE stream against real Redis: replay after Last-Event-ID, then live lines,
no line lost or repeated, closed once the release is terminal."""

import asyncio
import threading

import pytest
from django.test import AsyncClient

from deployments.models import LogLine, Release, Step
from deployments.services.releases import release_request
from deployments.services.stage_run import StageRun, finish
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def in_own_loop(fn, *args, **kwargs):
    """Run an async callable to completion on a fresh event loop in another thread, so the
    test works even when a session fixture (Playwright's sync API) holds this thread's loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, fn(*args, **kwargs)).result()


def parse(chunks):
    """SSE text -> [(event, id, data)] (heartbeat comments dropped)."""
    messages = []
    for block in "".join(chunks).split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields.setdefault(key, []).append(value)
        if fields:
            messages.append(
                (
                    fields["event"][0],
                    (fields.get("id") or [None])[0],
                    "\n".join(fields.get("data", [])),
                )
            )
    return messages


def follow_live(aclient, url, headers, *, replayed_when, produce, readers=1):
    """GET the stream at `url` (`readers` times at once) and read it until it ends; once
    `replayed_when(messages)` holds for every reader, `produce()` runs in a thread with its
    own database connection (the stream subscribes before it replays: what it writes then
    is live). Returns the messages (a list of them per reader when readers > 1)."""
    replayed = threading.Event()

    def producer():
        from django.db import connection

        assert replayed.wait(60), "the stream never replayed"
        produce()
        connection.close()

    async def read(ready):
        response = await aclient.get(url, headers=headers)
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        chunks = []
        async for chunk in response.streaming_content:
            chunks.append(chunk.decode())
            if not ready.is_set() and replayed_when(parse(chunks)):
                ready.set()
        return chunks

    async def read_all():
        ready = [asyncio.Event() for _ in range(readers)]
        threading.Thread(target=producer).start()

        async def all_replayed():
            await asyncio.gather(*(event.wait() for event in ready))
            replayed.set()

        waiter = asyncio.ensure_future(all_replayed())
        try:
            return await asyncio.wait_for(
                asyncio.gather(*(read(event) for event in ready)), timeout=30
            )
        finally:
            waiter.cancel()
            replayed.set()

    results = [parse(chunks) for chunks in in_own_loop(read_all)]
    return results if readers > 1 else results[0]


@pytest.fixture
def release(todo_app, redis_url, settings):
    settings.REDIS_URL = redis_url
    release = release_request(profile=todo_app, actor=None, build=False)
    run = StageRun(release)
    run.step = release.steps.get(name="render")
    for n in range(1, 4):
        run.log(f"line {n} <b>escaped</b>")
    return release


def test_it_replays_after_last_event_id_then_streams_live_until_done(release, client):
    user = UserFactory(role="viewer")
    aclient = AsyncClient()
    in_own_loop(aclient.aforce_login, user)

    def produce():
        run = StageRun(Release.objects.get(pk=release.pk))
        run.step = Step.objects.get(release=release, name="render")
        run.log("line 4 live")
        finish(run, Release.Status.SUCCEEDED)

    messages = follow_live(
        aclient,
        f"/releases/{release.pk}/stream/",
        {"Last-Event-ID": "1"},
        replayed_when=lambda messages: any(e == "log" and i == "3" for e, i, _ in messages),
        produce=produce,
    )
    logs = [(event_id, data) for event, event_id, data in messages if event == "log"]
    assert [event_id for event_id, _ in logs] == ["2", "3", "4"]
    assert "line 2 &lt;b&gt;escaped&lt;/b&gt;" in logs[0][1]
    assert "line 4 live" in logs[2][1]
    assert messages[-1] == ("done", None, "succeeded")
    assert any(event == "status" and "queued" in data for event, _, data in messages)
    assert LogLine.objects.filter(release=release).count() == 4


def test_it_refuses_anonymous_streams(release):
    response = in_own_loop(AsyncClient().get, f"/releases/{release.pk}/stream/")
    assert response.status_code in (302, 401)


def test_it_ends_the_stream_after_the_replay_under_wsgi(release, client):
    """runserver / live_server cannot hold a stream open: replay, a retry hint, the end."""
    user = UserFactory(role="viewer")
    client.force_login(user)
    response = client.get(f"/releases/{release.pk}/stream/", headers={"Last-Event-ID": "2"})
    assert response.status_code == 200
    body = b"".join(response).decode()  # __iter__ consumes the async stream
    messages = parse([body.rsplit("retry:", 1)[0]])
    logs = [event_id for event, event_id, _ in messages if event == "log"]
    assert logs == ["3"]
    assert body.endswith("retry: 10000\n\n")


def follow_render_to_success(client, url, headers, release, *, readers=1):
    """The messages of a release stream followed live (follow_live) while "the worker" runs
    render (a live status: render running) and finishes the release succeeded."""

    def produce():
        run = StageRun(Release.objects.get(pk=release.pk))
        run.begin("render")
        run.end()
        finish(run, Release.Status.SUCCEEDED)

    return follow_live(
        client,
        url,
        headers,
        replayed_when=lambda messages: any(e == "status" for e, _, _ in messages),
        produce=produce,
        readers=readers,
    )


STEPS_OOB = '<section id="release-steps" aria-labelledby="h-steps" hx-swap-oob="true">'


def test_the_pages_status_events_carry_the_steps_section_out_of_band(release, client):
    """Each `status` event of the page's stream carries the badge and the Steps section as
    the page renders it, marked hx-swap-oob: the page makes no request per status."""
    user = UserFactory(role="viewer")
    aclient = AsyncClient()
    in_own_loop(aclient.aforce_login, user)
    messages = follow_render_to_success(aclient, f"/releases/{release.pk}/stream/", {}, release)
    statuses = [data for event, _, data in messages if event == "status"]
    assert len(statuses) >= 2  # the replay's, then live ones (a burst may be one)
    for data in statuses:
        badge, _, steps = data.partition(STEPS_OOB)
        assert 'class="badge badge-' in badge and steps.rstrip().endswith("</section>"), data
    assert "badge-queued" in statuses[0] and "0/3 done" in statuses[0]
    assert "badge-succeeded" in statuses[-1]
    assert 'class="step step-done"' in statuses[-1] and "step-skipped" in statuses[-1]
    assert messages[-1] == ("done", None, "succeeded")

    # the last event's section is the page's own, but for the out-of-band mark
    client.force_login(user)
    page = client.get(f"/releases/{release.pk}/").content.decode()
    start = page.index('<section id="release-steps"')
    on_page = page[start : page.index("</section>", start) + len("</section>")]
    streamed = STEPS_OOB + statuses[-1].partition(STEPS_OOB)[2]
    assert streamed.strip().replace(' hx-swap-oob="true"', "", 1) == on_page


def test_clients_following_one_release_share_each_status_render(release, monkeypatch):
    """Five pages follow one release: each live status is rendered once for all of them
    (hub.shared), not once per page, and every page gets the same events."""
    from deployments.views.streams import AsHtml

    renders = []
    render = AsHtml.status

    def counted(release):
        renders.append(release.status)
        return render(release)

    monkeypatch.setattr(AsHtml, "status", staticmethod(counted))
    readers = 5
    aclient = AsyncClient()
    in_own_loop(aclient.aforce_login, UserFactory(role="viewer"))
    followed = follow_render_to_success(
        aclient, f"/releases/{release.pk}/stream/", {}, release, readers=readers
    )
    live = [[data for event, _, data in messages if event == "status"][1:] for messages in followed]
    assert all(statuses and statuses[-1] == live[0][-1] for statuses in live), live
    assert "badge-succeeded" in live[0][-1]
    assert all(messages[-1] == ("done", None, "succeeded") for messages in followed)
    # one render per reader on connect (the replay), then at most one per live status for
    # all of them (a reader that is behind takes a newer render; unshared: one per event)
    assert len(renders) <= readers + max(len(statuses) for statuses in live), renders


def test_the_apis_live_status_events_carry_the_release(release):
    """The API's stream (a token, JSON): a status published while it follows carries the
    release as GET /releases/{pk} gives it, read in the stream's database thread."""
    import json

    from tests.deployments.api.conftest import token_for

    _, raw = token_for("viewer")
    messages = follow_render_to_success(
        AsyncClient(),
        f"/api/v1/releases/{release.pk}/events",
        {"Authorization": f"Bearer {raw}"},
        release,
    )
    statuses = [json.loads(data) for event, _, data in messages if event == "status"]
    assert len(statuses) >= 2  # the replay's, then live ones (a burst may be one)
    replayed_first, live = statuses[0], statuses[-1]
    assert replayed_first["release"]["status"] == "queued"
    assert live["status"] == live["release"]["status"] == "succeeded"
    assert live["release"]["id"] == release.pk and live["release"]["finished_at"]
    steps = {step["name"]: step["status"] for step in live["release"]["steps"]}
    assert steps["render"] == "done" and steps["upgrade"] == "skipped"
    assert messages[-1] == ("done", None, "succeeded")
