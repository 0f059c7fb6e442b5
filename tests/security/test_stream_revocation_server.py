"""Open SSE streams outlive no revocation, through a real server.

uvicorn serves the panel on a loopback port with a 1 s stream heartbeat (the
HELMDECK_SSE_HEARTBEAT_SECONDS setting from its environment), on the test's database and
Redis. Viewers open the status, profile and release streams over HTTP as a browser's
EventSource does; then one logs out through the real logout form in another client, and the
others lose their session row, their active flag, their groups or their user row. Each of
their streams must end with `login-required` within a couple of heartbeats; the stream of a
viewer who lost nothing must still be open (and heartbeating) afterwards. The pod log
stream (which needs a cluster) is covered in-process in test_stream_revocation.py.
"""

import re
import threading
import time
from urllib.parse import urlencode
from urllib.request import HTTPRedirectHandler, Request, build_opener

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from deployments.services.releases import release_request
from deployments.services.stage_run import StageRun
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HEARTBEAT = 1.0
DEADLINE = 2 * HEARTBEAT + 3.0  # a couple of heartbeats, plus a loaded machine's slack
LOGIN_REQUIRED = "event: login-required\ndata: /accounts/login/\n\n"


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


HTTP = build_opener(_NoRedirect)


@pytest.fixture
def short_heartbeat(child_env, settings):
    """Before asgi_server copies the environment: the server's heartbeat (and re-check) 1 s."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    child_env["HELMDECK_SSE_HEARTBEAT_SECONDS"] = str(HEARTBEAT)


class Stream:
    """One EventSource-like reader in a thread: what it got, and when it ended."""

    def __init__(self, url, session_key):
        self.text, self.ended_at, self.error = "", None, None
        self.request = Request(
            url, headers={"Cookie": f"sessionid={session_key}", "Accept": "text/event-stream"}
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            with HTTP.open(self.request, timeout=DEADLINE * 4) as response:
                assert response.status == 200
                while line := response.readline():
                    self.text += line.decode()
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            self.error = exc
        self.ended_at = time.monotonic()

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate(self):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.text!r}"
            time.sleep(0.05)


def _logout_through_the_form(base, session_key):
    """Another browser with the same session cookie: load a page, press "Log out"."""
    cookie = f"sessionid={session_key}"
    with HTTP.open(Request(f"{base}/", headers={"Cookie": cookie}), timeout=10) as page:
        html = page.read().decode()
        csrf_cookie = re.search(r"csrftoken=([^;]+)", page.headers["Set-Cookie"] or "").group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    request = Request(
        f"{base}/accounts/logout/",
        data=urlencode({"csrfmiddlewaretoken": token}).encode(),
        headers={"Cookie": f"{cookie}; csrftoken={csrf_cookie}"},
    )
    try:
        HTTP.open(request, timeout=10)
    except Exception as exc:  # the 302 to the login page surfaces as an HTTPError here
        assert getattr(exc, "code", None) == 302, exc
    assert not Session.objects.filter(session_key=session_key).exists()


REVOCATIONS = {
    "logged out in another client": lambda base, user, key: _logout_through_the_form(base, key),
    "session deleted": lambda base, user, key: Session.objects.filter(session_key=key).delete(),
    "user deactivated": lambda base, user, key: User.objects.filter(pk=user.pk).update(
        is_active=False
    ),
    "removed from every group": lambda base, user, key: user.groups.clear(),
    "user deleted": lambda base, user, key: User.objects.filter(pk=user.pk).delete(),
}


def _signed_in():
    user = UserFactory(role="viewer")
    client = Client()
    client.force_login(user)
    return user, client.cookies["sessionid"].value


def revoke_each_and_watch(base, path):
    sessions = {name: _signed_in() for name in REVOCATIONS}  # fresh users for each stream
    _, kept_key = _signed_in()
    streams = {name: Stream(f"{base}{path}", key) for name, (_, key) in sessions.items()}
    kept = Stream(f"{base}{path}", kept_key)
    for stream in [*streams.values(), kept]:
        stream.wait_for(lambda s: s.text.count("\n\n") >= 1, 30, "the stream's first message")
    revoked_at = {}
    for name, (user, key) in sessions.items():
        REVOCATIONS[name](base, user, key)
        revoked_at[name] = time.monotonic()
    for name, stream in streams.items():
        stream.wait_for(lambda s: s.ended_at is not None, DEADLINE * 3, f"{name}: the end")
        assert stream.error is None, f"{name}: {stream.error!r}"
        assert stream.text.endswith(LOGIN_REQUIRED), f"{name}: {stream.text[-300:]!r}"
        seconds = stream.ended_at - revoked_at[name]
        assert seconds <= DEADLINE, f"{name}: ended {seconds:.1f}s after (deadline {DEADLINE}s)"
    # the viewer who lost nothing: still open, still heartbeating after every check above
    seen = len(kept.text)
    kept.wait_for(lambda s: ": heartbeat" in s.text[seen:], DEADLINE * 3, "a later heartbeat")
    assert kept.ended_at is None and "login-required" not in kept.text
    Session.objects.filter(session_key=kept_key).delete()  # and it ends too, once revoked
    kept.wait_for(lambda s: s.ended_at is not None, DEADLINE * 3, "the kept stream's end")
    assert kept.text.endswith(LOGIN_REQUIRED)


def test_every_stream_ends_for_a_revoked_user(short_heartbeat, asgi_server, todo_app):
    """One server (its start-up is most of the time) for the status, profile and release
    streams in turn."""
    release = release_request(profile=todo_app, actor=None, build=False)
    run = StageRun(release)
    run.step = release.steps.get(name="render")
    run.log("line 1")
    paths = ["/status/stream/", f"/profiles/{todo_app.name}/stream/"]
    for path in [*paths, f"/releases/{release.pk}/stream/"]:
        revoke_each_and_watch(asgi_server, path)
