"""The pod terminal's WebSocket (deployments/views/terminal.py), driven by Channels' own
test client against the real ASGI stack (session cookie, user, routing, the database),
with the Kubernetes exec stream faked (the real one: tests/e2e/test_pod_terminal_real_node.py):
who is refused before the upgrade, what reaches the shell and the browser, the audit row,
and every way a session ends."""

import asyncio
import json
import queue
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from deployments.models import AuditEvent, TerminalSession
from deployments.services.terminals import TerminalTarget
from deployments.views import terminal
from tests.deployments.views.test_streams import in_own_loop
from tests.factories import ProfileFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/profiles/shop/pods/shop-web-1/terminal/socket?container=web"
ORIGIN = "http://testserver"


class FakeShell:
    """The exec stream's interface: echoes what is typed, ends on `exit`."""

    def __init__(self):
        self.written, self.sizes = [], []
        self.out: queue.Queue = queue.Queue()
        self.stopped = threading.Event()
        self.closed = threading.Event()
        self.status = "exit code 0"

    def read(self, timeout):
        if self.stopped.is_set():
            return None
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            return b""

    def write(self, data):
        self.written.append(data)
        if data == b"exit\r":
            self.out.put(None)
        else:
            self.out.put(b"echo:" + data)

    def resize(self, cols, rows):
        self.sizes.append((cols, rows))

    def end_status(self):
        return self.status

    def stop(self):
        self.stopped.set()

    def close(self):
        self.closed.set()


@pytest.fixture
def shell(monkeypatch, settings):
    settings.HELMDECK_POD_EXEC = True
    settings.HELMDECK_POD_EXEC_RECHECK_SECONDS = 0.3
    profile = ProfileFactory(name="shop")
    fake = FakeShell()
    target = TerminalTarget(profile, "shop-ns", "shop-web-1", "web", ("web",))
    asked = []

    def _target(name, pod, container):
        asked.append((name, pod, container))
        return target

    monkeypatch.setattr(terminal, "_target", _target)
    monkeypatch.setattr(terminal, "_open", lambda t: fake)
    fake.asked = asked
    return fake


class WebsocketCommunicator(ApplicationCommunicator):
    """A browser's side of one socket, as the ASGI server would deliver it (channels.testing
    has one too, but importing it needs daphne, a server this project does not use)."""

    def __init__(self, application, path, headers):
        path, _, query = path.partition("?")
        scope = {
            "type": "websocket",
            "path": path,
            "query_string": query.encode(),
            "headers": headers,
            "subprotocols": [],
            "scheme": "ws",
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        super().__init__(application, scope)

    async def connect(self, timeout=5):
        """(accepted, close code)."""
        await self.send_input({"type": "websocket.connect"})
        message = await self.receive_output(timeout)
        return message["type"] == "websocket.accept", message.get("code")

    async def send_to(self, text_data=None, bytes_data=None):
        await self.send_input({"type": "websocket.receive", "text": text_data, "bytes": bytes_data})

    async def disconnect(self, code=1000, timeout=5):
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def session_of(role):
    user = UserFactory(role=role)
    client = Client()
    client.force_login(user)
    return user, client.cookies[django_settings.SESSION_COOKIE_NAME].value


def communicator(session_key=None, *, origin=ORIGIN, host="testserver", path=PATH):
    headers = [(b"host", host.encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    if session_key:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={session_key}".encode()))
    return WebsocketCommunicator(terminal.websocket_application(), path, headers=headers)


async def next_text(comm, timeout=5):
    while True:
        message = await comm.receive_output(timeout)
        if message["type"] == "websocket.close":
            raise AssertionError(f"closed before a text message: {message}")
        if message.get("text") is not None:
            return json.loads(message["text"])


async def until_closed(comm, timeout=10):
    """(the last status message, the close code)."""
    said = None
    while True:
        message = await comm.receive_output(timeout)
        if message["type"] == "websocket.close":
            return said, message.get("code")
        if message.get("text") is not None:
            said = json.loads(message["text"])


@pytest.mark.parametrize(
    "case",
    ["anonymous", "viewer", "deployer", "turned off", "other port", "no origin", "other host"],
)
def test_it_is_refused_before_the_upgrade(shell, settings, case):
    _, key = session_of(case if case in ("viewer", "deployer") else "admin")
    kwargs = {}
    if case == "anonymous":
        key = None
    if case == "turned off":
        settings.HELMDECK_POD_EXEC = False
    if case == "other port":  # another local server's page, same host: cookies ride along
        kwargs = {"origin": "http://testserver:9999"}
    if case == "no origin":
        kwargs = {"origin": ""}
    if case == "other host":  # DNS rebinding: a name the settings do not allow
        kwargs = {"origin": "http://evil.example", "host": "evil.example"}

    async def run():
        comm = communicator(key, **kwargs)
        connected, _ = await comm.connect(timeout=5)
        await comm.disconnect()  # as the server sends it after the 403
        return connected

    assert in_own_loop(run) is False
    assert shell.asked == []  # no cluster call for a refused socket
    assert not TerminalSession.objects.exists()


def test_a_session_carries_keys_and_sizes_and_is_audited_from_start_to_exit(shell):
    user, key = session_of("admin")

    async def run():
        comm = communicator(key)
        connected, _ = await comm.connect(timeout=5)
        assert connected
        opened = await next_text(comm)
        await comm.send_to(bytes_data=b"ls\r")
        echoed = await comm.receive_output(5)
        await comm.send_to(text_data=json.dumps({"resize": {"cols": 120, "rows": 40}}))
        for bad in (
            {"resize": {"cols": 0, "rows": 40}},
            {"resize": {"cols": "80", "rows": 24}},
            {"resize": {"cols": 10**6, "rows": 24}},
            {"other": 1},
        ):
            await comm.send_to(text_data=json.dumps(bad))
        await comm.send_to(text_data="not json")
        await comm.send_to(bytes_data=b"x")
        await comm.receive_output(5)  # echo:x, after the texts above were handled
        shell.status = "exit code 3"
        await comm.send_to(bytes_data=b"exit\r")
        return opened, echoed, await until_closed(comm)

    opened, echoed, (said, code) = in_own_loop(run)
    assert opened == {
        "status": "open",
        "pod": "shop-web-1",
        "container": "web",
        "idle_seconds": django_settings.HELMDECK_POD_EXEC_IDLE_SECONDS,
    }
    assert echoed == {"type": "websocket.send", "bytes": b"echo:ls\r"}
    assert shell.sizes == [(120, 40)]  # the four bad ones ignored
    assert shell.written == [b"ls\r", b"x", b"exit\r"]
    assert said == {"status": "closed", "reason": "the shell exited (exit code 3)"}
    assert code == 1000
    assert shell.asked == [("shop", "shop-web-1", "web")]
    assert shell.closed.wait(5)

    row = TerminalSession.objects.get()
    assert (row.user, row.user_name, row.profile_name) == (user, user.username, "shop")
    assert (row.namespace, row.pod, row.container) == ("shop-ns", "shop-web-1", "web")
    assert row.ended_at is not None and row.ended_at >= row.started_at
    assert row.end_reason == "the shell exited (exit code 3)"
    assert (row.bytes_in, row.bytes_out) == (3 + 1 + 5, len(b"echo:ls\r") + len(b"echo:x"))
    assert row.input == ""  # not recorded unless the setting asks
    events = list(AuditEvent.objects.order_by("id").values_list("action", "target", "actor"))
    assert events == [
        ("pod.exec", "shop-web-1/web", user.pk),
        ("pod.exec.end", "shop-web-1/web", user.pk),
    ]
    assert AuditEvent.objects.get(action="pod.exec.end").after["reason"] == row.end_reason


def test_what_is_typed_is_kept_only_when_the_setting_asks(shell, settings):
    settings.HELMDECK_POD_EXEC_RECORD_INPUT = True
    _, key = session_of("admin")

    async def run():
        comm = communicator(key)
        assert (await comm.connect(timeout=5))[0]
        await next_text(comm)
        for keys in (b"echo hi\r", "é".encode(), b"exit\r"):
            await comm.send_to(bytes_data=keys)
        return await until_closed(comm)

    in_own_loop(run)
    assert TerminalSession.objects.get().input == "echo hi\ré" + "exit\r"


def accepted_then_closed():
    """Open a socket as an admin that the server accepts; (last status, close code)."""
    _, key = session_of("admin")

    async def run():
        comm = communicator(key)
        assert (await comm.connect(timeout=5))[0]
        return await until_closed(comm)

    return in_own_loop(run)


def end_by(shell, action, settings=None):
    """Open a session as an admin, do `action(user)`, read until closed."""
    user, key = session_of("admin")

    async def run():
        comm = communicator(key)
        assert (await comm.connect(timeout=5))[0]
        await next_text(comm)
        await asyncio.to_thread(action, user)
        return await until_closed(comm)

    said, code = in_own_loop(run)
    assert shell.stopped.is_set() and shell.closed.wait(5)
    return said["reason"], code, TerminalSession.objects.get()


def test_signing_out_ends_it(shell):
    reason, code, row = end_by(shell, lambda user: Session.objects.all().delete())
    assert (reason, code) == ("you signed out (or your session ended)", 4003)
    assert row.end_reason == reason and row.ended_at is not None


def test_losing_the_role_ends_it(shell):
    reason, code, _ = end_by(shell, lambda user: User.objects.get(pk=user.pk).groups.clear())
    assert (reason, code) == ("your role no longer allows a terminal", 4003)


def test_a_deactivated_user_is_ended(shell):
    reason, code, _ = end_by(
        shell, lambda user: User.objects.filter(pk=user.pk).update(is_active=False)
    )
    assert code == 4003 and "signed out" in reason


def test_it_ends_after_the_idle_time_without_a_keystroke(shell, settings):
    settings.HELMDECK_POD_EXEC_IDLE_SECONDS = 1
    reason, code, row = end_by(shell, lambda user: None)
    assert (reason, code) == ("no keystroke for 1 second", 4008)
    assert row.end_reason == reason


def test_a_message_too_large_ends_it(shell):
    _, key = session_of("admin")

    async def run():
        comm = communicator(key)
        assert (await comm.connect(timeout=5))[0]
        await next_text(comm)
        await comm.send_to(bytes_data=b"a" * (terminal.MAX_INPUT + 1))
        return await until_closed(comm)

    said, code = in_own_loop(run)
    assert code == 4400 and "at most 65536" in said["reason"]
    assert shell.written == []


def test_the_browser_leaving_ends_the_shell(shell):
    _, key = session_of("admin")

    async def run():
        comm = communicator(key)
        assert (await comm.connect(timeout=5))[0]
        await next_text(comm)
        await comm.disconnect()

    in_own_loop(run)
    assert shell.stopped.is_set() and shell.closed.wait(5)
    row = TerminalSession.objects.get()
    assert row.end_reason == "the browser closed the terminal"


def test_a_refusal_after_the_upgrade_says_why_and_records_nothing(shell, monkeypatch):
    from deployments.services.operations import ActionRefused

    def _target(name, pod, container):
        raise ActionRefused("shop has no pod shop-web-1 in namespace shop-ns", status=404)

    monkeypatch.setattr(terminal, "_target", _target)
    said, code = accepted_then_closed()
    assert said == {"status": "closed", "reason": "shop has no pod shop-web-1 in namespace shop-ns"}
    assert code == 4004
    assert not TerminalSession.objects.exists()


def test_any_other_socket_path_is_refused(shell):
    _, key = session_of("admin")

    async def run():
        comm = communicator(key, path="/status/stream/")
        connected, _ = await comm.connect(timeout=5)
        await comm.disconnect()  # as the server sends it after the 403
        return connected

    assert in_own_loop(run) is False


def test_a_shell_that_opens_too_late_is_closed_and_its_record_says_why(shell, monkeypatch):
    import time

    monkeypatch.setattr(terminal, "OPEN_TIMEOUT", 0.5)

    def slow_open(target):
        time.sleep(1.5)
        return shell

    monkeypatch.setattr(terminal, "_open", slow_open)
    said, code = accepted_then_closed()
    assert code == 4502 and said["reason"] == "the cluster did not open a shell within 0.5s"
    assert shell.closed.wait(5)  # opened after all: closed, unused
    row = TerminalSession.objects.get()
    assert row.end_reason == said["reason"] and row.ended_at is not None
    assert shell.written == []


def test_a_browser_gone_while_the_shell_opened_leaves_no_shell_and_no_open_record(
    shell, monkeypatch
):
    sent = terminal.TerminalSocket.send

    async def send(self, text_data=None, bytes_data=None, close=False):
        if text_data and '"open"' in text_data:
            raise OSError("the client is gone")  # what uvicorn raises for a send then
        return await sent(self, text_data=text_data, bytes_data=bytes_data, close=close)

    monkeypatch.setattr(terminal.TerminalSocket, "send", send)
    accepted_then_closed()
    assert shell.stopped.is_set() and shell.closed.wait(5)
    row = TerminalSession.objects.get()
    assert row.end_reason == "the terminal stopped while opening (OSError)"
