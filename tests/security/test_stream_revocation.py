"""An open SSE stream must not outlive its user's access.

Every live stream (status page, profile pods, release log, pod log) is opened by a signed-in
viewer; then, in another client or straight in the database, an attacker's session loses its
grounds: logged out through the real logout view, session row deleted or expired, password
changed, user deactivated, removed from every group, or deleted. Each such stream must end with
a `login-required` event within a couple of heartbeats (HELMDECK_SSE_HEARTBEAT_SECONDS, short
here), while a stream of a user who lost nothing goes on (it gets heartbeats after the revoked
ones ended). The check is once per heartbeat per stream, never once per event.

The ASGI app runs in this process (Django's AsyncClient, follow mode, as a server runs it) on
the real Redis; tests/security/test_stream_revocation_server.py does the same through uvicorn.
"""

import asyncio
import time

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import AsyncClient, Client
from django.utils import timezone

from deployments.services.releases import release_request
from deployments.services.stage_run import StageRun
from tests.deployments.services.test_pod_logs import FakeCluster, ts
from tests.deployments.views.test_streams import in_own_loop
from tests.factories import ComponentFactory, ProfileFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HEARTBEAT = 1.0
# a couple of heartbeats, plus room for a loaded 2-core machine to run the check
DEADLINE = 2 * HEARTBEAT + 3.0
LOGIN_REQUIRED = "event: login-required\ndata: /accounts/login/\n\n"


def _logout_elsewhere(user, session_key):
    """A second browser with the same session cookie presses "Log out"."""
    other = Client()
    other.cookies["sessionid"] = session_key
    assert other.post("/accounts/logout/").status_code == 302


def _session_deleted(user, session_key):
    Session.objects.filter(session_key=session_key).delete()


def _session_expired(user, session_key):
    Session.objects.filter(session_key=session_key).update(
        expire_date=timezone.now() - timezone.timedelta(seconds=1)
    )


def _password_changed(user, session_key):
    user = User.objects.get(pk=user.pk)
    user.set_password("a-new-password-nobody-told-the-stream")
    user.save()


def _deactivated(user, session_key):
    User.objects.filter(pk=user.pk).update(is_active=False)


def _groups_removed(user, session_key):
    User.objects.get(pk=user.pk).groups.clear()


def _user_deleted(user, session_key):
    User.objects.filter(pk=user.pk).delete()


REVOCATIONS = {
    "logged out in another client": _logout_elsewhere,
    "session deleted": _session_deleted,
    "session expired": _session_expired,
    "password changed": _password_changed,
    "user deactivated": _deactivated,
    "removed from every group": _groups_removed,
    "user deleted": _user_deleted,
}


@pytest.fixture
def short_heartbeat(settings, redis_url, fast_password_hashing):
    settings.REDIS_URL = redis_url
    settings.HELMDECK_SSE_HEARTBEAT_SECONDS = HEARTBEAT


@pytest.fixture
def release(todo_app):
    release = release_request(profile=todo_app, actor=None, build=False)
    run = StageRun(release)
    run.step = release.steps.get(name="render")
    run.log("line 1")
    return release


@pytest.fixture
def shop(monkeypatch):
    profile = ProfileFactory(name="shop", namespace="shop")
    ComponentFactory(profile=profile, name="web")
    fake = FakeCluster(**{"web-1": "web"})
    fake.write("web-1", ts(1), "hello from web-1")
    monkeypatch.setattr("deployments.views.logs.Kube", lambda _cluster: fake)
    return fake


def signed_in(role="viewer"):
    user = UserFactory(role=role)
    client = AsyncClient()
    in_own_loop(client.aforce_login, user)
    return user, client, client.cookies["sessionid"].value


async def _open(client, url):
    """(response, its chunk iterator) once the stream sent its first message."""
    response = await client.get(url)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "text/event-stream"
    chunks = aiter(response.streaming_content)
    first = (await anext(chunks)).decode()
    assert first and "login-required" not in first
    return response, chunks


async def _read_to_end(chunks, timeout):
    """Everything the stream sends until it ends (TimeoutError if it does not)."""
    text = []

    async def drain():
        async for chunk in chunks:
            text.append(chunk.decode())

    await asyncio.wait_for(drain(), timeout)
    return "".join(text)


def revoke_each_and_watch(url):
    """Open `url` once per revocation and once for a user who keeps access; revoke each; return
    ({revocation: (seconds to the end, what the stream sent)}, what the kept stream sent
    after the revoked ones ended)."""
    sessions = {name: signed_in() for name in REVOCATIONS}
    kept = signed_in()

    async def scenario():
        opened = {}
        for name, (_, client, _) in {**sessions, "kept": kept}.items():
            opened[name] = await _open(client, url)
        # one after another (SQLite's shared in-memory test database locks a table per
        # writer); each stream's time counts from its own revocation
        revoked_at = {}
        for name, (user, _, session_key) in sessions.items():
            await asyncio.to_thread(_in_thread, REVOCATIONS[name], user, session_key)
            revoked_at[name] = time.monotonic()
        results = {}

        async def read(name):
            try:
                text = await _read_to_end(opened[name][1], DEADLINE * 3)
            except TimeoutError:
                text = None
            results[name] = (time.monotonic() - revoked_at[name], text)

        await asyncio.gather(*(read(name) for name in REVOCATIONS))
        # the kept stream is still open and still heartbeating after every check above
        chunks = opened["kept"][1]
        after = (await asyncio.wait_for(anext(chunks), DEADLINE * 3)).decode()
        await _leave(chunks)
        return results, after

    return in_own_loop(scenario)


async def _leave(chunks):
    """Go away as a browser does: Django's handler cancels the stream's task mid-wait."""
    while True:
        try:
            await asyncio.wait_for(anext(chunks), HEARTBEAT / 5)
        except TimeoutError:
            return
        except StopAsyncIteration:
            return


def _in_thread(fn, *args):
    from django.db import connection

    try:
        fn(*args)
    finally:
        connection.close()


def assert_every_revoked_stream_ended(results, after):
    for name, (seconds, text) in results.items():
        assert text is not None, f"{name}: the stream was still open {DEADLINE * 3:.0f}s later"
        assert text.endswith(LOGIN_REQUIRED), f"{name}: ended without login-required: {text!r}"
        assert seconds <= DEADLINE, f"{name}: ended after {seconds:.1f}s (deadline {DEADLINE}s)"
    assert "login-required" not in after


def test_the_status_stream_ends_when_its_user_loses_access(short_heartbeat, todo_app):
    assert_every_revoked_stream_ended(*revoke_each_and_watch("/status/stream/"))


def test_the_profile_stream_ends_when_its_user_loses_access(short_heartbeat, todo_app):
    assert_every_revoked_stream_ended(*revoke_each_and_watch(f"/profiles/{todo_app.name}/stream/"))


def test_the_release_stream_ends_when_its_user_loses_access(short_heartbeat, release):
    assert_every_revoked_stream_ended(*revoke_each_and_watch(f"/releases/{release.pk}/stream/"))


def test_the_pod_log_stream_ends_when_its_user_loses_access(short_heartbeat, shop):
    assert_every_revoked_stream_ended(
        *revoke_each_and_watch("/profiles/shop/logs/stream/?pod=web-1")
    )


# ---- the re-check's cadence: once per heartbeat per stream, however busy or quiet --------


@pytest.fixture
def verdicts(monkeypatch):
    """Every re-check `revocable` makes, answered from `verdicts.answer` (no database)."""
    from deployments.views import sse_htmx as streams

    class Verdicts(list):
        answer = streams.ALLOWED

    calls = Verdicts()

    def verdict(session_key, user_pk, role):
        calls.append(time.monotonic())
        return calls.answer

    monkeypatch.setattr(streams, "stream_verdict", verdict)
    return calls


def _revocable(stream, every):
    from deployments.views.sse_htmx import Role, revocable

    return revocable(stream, session_key="k", user_pk=1, role=Role(), every=every)


def test_a_burst_of_events_costs_no_check_per_event(verdicts):
    async def burst():
        for n in range(20_000):
            yield f"event: log\ndata: {n}\n\n"

    async def read():
        started = time.monotonic()
        items = [item async for item in _revocable(burst(), every=HEARTBEAT)]
        return items, time.monotonic() - started

    items, seconds = in_own_loop(read)
    assert len(items) == 20_000
    assert len(verdicts) <= seconds / HEARTBEAT + 1


def test_a_stream_that_never_sends_is_still_checked_and_ended(verdicts):
    verdicts.answer = "revoked"

    async def silent():
        await asyncio.Event().wait()  # no event, no heartbeat, ever
        yield "never"

    async def read():
        return [item async for item in _revocable(silent(), every=HEARTBEAT / 2)]

    started = time.monotonic()
    assert in_own_loop(read) == [LOGIN_REQUIRED]
    assert len(verdicts) == 1 and time.monotonic() - started <= DEADLINE


def test_a_stream_busy_with_events_it_skips_is_still_checked_and_ended(verdicts):
    """The status stream drops messages for rows not on its page without sending anything:
    a flood of those must not keep a revoked stream open."""
    verdicts.answer = "revoked"

    async def flooded():
        while True:
            await asyncio.sleep(0)  # a message arrives, is skipped; the next one
        yield "never"

    async def read():
        return [item async for item in _revocable(flooded(), every=HEARTBEAT / 2)]

    started = time.monotonic()
    assert in_own_loop(read) == [LOGIN_REQUIRED]
    assert time.monotonic() - started <= DEADLINE


def test_a_stream_whose_role_changed_reconnects_for_its_new_rows(verdicts):
    verdicts.answer = "role changed"

    async def quiet():
        await asyncio.Event().wait()
        yield "never"

    async def read():
        return [item async for item in _revocable(quiet(), every=HEARTBEAT / 2)]

    assert in_own_loop(read) == ["retry: 1000\n\n"]


def test_a_check_the_database_cannot_answer_ends_the_stream_with_a_retry(monkeypatch):
    from deployments.views import sse_htmx as streams

    def unreachable(*args):
        raise OSError("database is away")

    monkeypatch.setattr(streams, "stream_verdict", unreachable)

    async def quiet():
        await asyncio.Event().wait()
        yield "never"

    async def read():
        return [item async for item in _revocable(quiet(), every=HEARTBEAT / 2)]

    assert in_own_loop(read) == ["retry: 5000\n\n"]


def test_a_check_reads_session_user_and_role_from_the_database_in_four_queries(
    fast_password_hashing, django_assert_num_queries
):
    from deployments.views.sse_htmx import ALLOWED, REVOKED, ROLE_CHANGED, Role, stream_verdict

    user, _, key = signed_in()
    with django_assert_num_queries(4):  # session, user, user's and groups' permissions
        assert stream_verdict(key, user.pk, Role()) == ALLOWED
    # an admin demoted to viewer
    assert stream_verdict(key, user.pk, Role(can_edit=True, can_add=True)) == ROLE_CHANGED
    assert stream_verdict(key, user.pk, Role(can_add=True)) == ROLE_CHANGED
    assert stream_verdict(key, user.pk + 1, Role()) == REVOKED  # not the session's user
    assert stream_verdict("no-such-session", user.pk, Role()) == REVOKED
    assert Session.objects.filter(session_key=key).exists()  # the check changed nothing
