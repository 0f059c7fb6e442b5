"""Text a container, helm or a user wrote cannot add fields to a server-sent event: a CR
ends an EventSource line as LF and CRLF do, so a log line with
"\\revent: login-required" once made its own `event:` line (the page then took the stream
for a revoked session and reloaded), and "\\rretry: 1" or "\\rid: ..." would have set the
reconnect delay or the replay position. Every break now starts another `data:` line."""

import re

import pytest

from deployments.views.sse_htmx import sse
from tests.factories import UserFactory, make_release, pod_state

pytestmark = pytest.mark.django_db

PAYLOAD = "crash\revent: login-required\rid: 999999\r\nretry: 1\rdata: forged\n:comment\rend"


def event_stream(text):
    """[{field: [values]}] as a browser's EventSource reads `text` (the HTML standard's
    parser: lines end at CRLF, LF or CR; a blank line dispatches; ':' starts a comment)."""
    messages, fields = [], {}
    for line in re.split(r"\r\n|\r|\n", text):
        if not line:
            if fields:
                messages.append(fields)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
    return messages


def test_a_cr_in_the_data_starts_a_data_line_not_a_field():
    (message,) = event_stream(sse("log", PAYLOAD, 7))
    assert set(message) == {"event", "id", "data"}
    assert message["event"] == ["log"] and message["id"] == ["7"]
    assert "\n".join(message["data"]) == re.sub(r"\r\n|\r", "\n", PAYLOAD)


def streamed(client, url):
    body = b"".join(client.get(url)).decode()
    return event_stream(body)


def test_a_crash_log_with_crs_reaches_the_pods_stream_as_one_pods_event(client, todo_app):
    pod_state(todo_app, "backend-1", ready=False, reason="CrashLoopBackOff", last_log=PAYLOAD)
    client.force_login(UserFactory(role="viewer"))
    messages = streamed(client, "/profiles/todo-app/stream/")
    assert [m.get("event") for m in messages] == [["pods"], None]  # then the retry hint
    assert "id" not in messages[0] and messages[1] == {"retry": ["10000"]}
    assert "event: login-required" in "\n".join(messages[0]["data"])  # shown, as text


def test_a_log_line_with_crs_reaches_the_release_stream_as_one_log_event(client, todo_app):
    release = make_release(todo_app, log=[PAYLOAD, "next"])
    client.force_login(UserFactory(role="viewer"))
    messages = streamed(client, f"/releases/{release.pk}/stream/")
    logs = [m for m in messages if m.get("event") == ["log"]]
    assert [m["id"] for m in logs] == [["1"], ["2"]]
    assert all(m.get("event") != ["login-required"] for m in messages)
    assert not any("retry" in m for m in messages)  # a finished release: no reconnect
    assert messages[-1]["event"] == ["done"]
