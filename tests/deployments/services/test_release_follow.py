"""release_follow (the CLI's `deploy --wait` with a worker): every log line once, in order,
whatever the channel delivers (late, with gaps, or nothing when Redis is away), and the
settled release once its row says it ended. The channel is a fake here; a real worker and
Redis: test_release_worker.py."""

import json

import pytest

from deployments.integrations.redis import RedisError
from deployments.models import LogLine, Release
from deployments.services import release_follow as follow
from tests.factories import make_release

pytestmark = pytest.mark.django_db


class FakePubSub:
    """Hands out `messages` one per get_message; None when empty; raises `error` first."""

    def __init__(self, messages=(), error=None):
        self.messages, self.error, self.closed = list(messages), error, False

    def get_message(self, timeout):
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.messages.pop(0) if self.messages else None

    def close(self):
        self.closed = True


def message(event, data, event_id=None):
    payload = {"event": event, "data": data, "id": event_id}
    return {"type": "message", "data": json.dumps(payload).encode()}


def followed(release, pubsub, monkeypatch, **after_each):
    """The lines on_line received, and the returned release. `after_each[n]` runs after the
    n-th line (the release moving on while the follower reads)."""
    monkeypatch.setattr(follow, "_subscribe", lambda channel: pubsub)
    seen = []

    def on_line(step, text):
        seen.append(f"{step}: {text}")
        action = after_each.get(f"line{len(seen)}")
        if action:
            action()

    settled = follow.release_follow(release_id=release.pk, on_line=on_line, poll=0.05)
    return seen, settled


def add_line(release, sequence, text):
    step = release.steps.get(name="upgrade")
    LogLine.objects.create(release=release, step=step, sequence=sequence, text=text)


def test_it_reads_the_rows_when_redis_is_away_and_returns_the_ended_release(todo_app, monkeypatch):
    release = make_release(todo_app, "failed", log=["one", "two"], reason="pods not Ready")
    seen, settled = followed(release, None, monkeypatch)
    assert [line.split(": ", 1)[1] for line in seen] == ["one", "two"]
    assert settled.pk == release.pk and settled.status == Release.Status.FAILED


def test_it_fills_a_gap_from_the_rows_and_never_prints_a_line_twice(todo_app, monkeypatch):
    release = make_release(todo_app, "upgrading")
    add_line(release, 1, "a")
    # line 1 arrives again (already read from the rows), then 3 (2's publish was missed):
    # the rows fill the gap; then the release ends
    pubsub = FakePubSub(
        [
            message("log", {"step": "upgrade", "text": "a"}, 1),
            message("log", {"step": "upgrade", "text": "c"}, 3),
            message("status", {"status": "succeeded"}),
        ]
    )

    def worker_writes_two_more():
        add_line(release, 2, "b")
        add_line(release, 3, "c")

    def worker_ends():
        add_line(release, 4, "d")
        Release.objects.filter(pk=release.pk).update(status=Release.Status.SUCCEEDED)

    seen, settled = followed(
        release, pubsub, monkeypatch, line1=worker_writes_two_more, line3=worker_ends
    )
    assert seen == ["upgrade: a", "upgrade: b", "upgrade: c", "upgrade: d"]
    assert settled.status == Release.Status.SUCCEEDED
    assert pubsub.closed


def test_a_live_line_is_printed_as_it_comes_and_a_lost_channel_falls_back_to_the_row(
    todo_app, monkeypatch
):
    release = make_release(todo_app, "upgrading")
    add_line(release, 1, "first")
    pubsub = FakePubSub([message("log", {"step": "upgrade", "text": "second"}, 2)])

    def lose_redis_then_end():
        pubsub.error = RedisError("connection lost")
        Release.objects.filter(pk=release.pk).update(status=Release.Status.CANCELLED)

    seen, settled = followed(release, pubsub, monkeypatch, line2=lose_redis_then_end)
    # "second" came from the channel alone (no row was written for it)
    assert seen == ["upgrade: first", "upgrade: second"]
    assert settled.status == Release.Status.CANCELLED


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "message", "data": b"not json"},
        {"type": "message", "data": b"[1, 2]"},
        message("log", "not a dict", 1),
        message("log", {"step": "upgrade", "text": "x"}, "1"),
        {"type": "subscribe", "data": 1},
    ],
)
def test_a_message_it_cannot_read_is_skipped(todo_app, monkeypatch, raw):
    release = make_release(todo_app, "succeeded", log=["only"])
    seen, settled = followed(release, FakePubSub([raw]), monkeypatch)
    assert seen == [f"{release.steps.order_by('position').first().name}: only"]


def test_a_line_cannot_drive_the_followers_terminal():
    """A build's RUN can print escape sequences (a window title, colours, cursor moves,
    a carriage return that hides what came before); the follower shows them inert."""
    hostile = "ok\x1b]0;owned\x07\x1b[2J\rhidden\x9b1m\tkept"
    assert follow.terminal_safe(hostile) == "ok?]0;owned??[2J?hidden?1m\tkept"


def test_ctrl_c_stops_following_not_the_release(todo_app, monkeypatch, capsys):
    """`deploy --wait` with a worker running: Ctrl-C ends the command (130) and says where
    the release goes on; the release itself is left to the worker."""
    from django.core.management import call_command

    from deployments.management.commands import deploy
    from deployments.services import release_queue

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(deploy, "_worker_running", lambda: True)
    monkeypatch.setattr(release_queue, "release_enqueue", lambda release: None)
    monkeypatch.setattr(follow, "release_follow", interrupted)
    with pytest.raises(SystemExit) as exited:
        call_command("deploy", todo_app.name, "--wait", "--no-build")
    release = Release.objects.get(profile=todo_app)
    err = capsys.readouterr().err
    assert exited.value.code == 130
    assert release.status == Release.Status.QUEUED
    assert f"release #{release.pk} goes on in the worker" in err
    assert f"its page, /releases/{release.pk}/," in err


def test_a_status_message_alone_does_not_end_the_follow_the_row_does(todo_app, monkeypatch):
    """Anyone who can publish on the channel could announce "succeeded"; the follower only
    takes it as a cue to read the release's row, and goes on while the row says upgrading."""
    release = make_release(todo_app, "upgrading")
    add_line(release, 1, "first")
    forged = message("status", {"status": "succeeded"})
    pubsub = FakePubSub([forged, message("log", {"step": "upgrade", "text": "second"}, 2)])

    def worker_ends():
        Release.objects.filter(pk=release.pk).update(status=Release.Status.FAILED)

    seen, settled = followed(release, pubsub, monkeypatch, line2=worker_ends)
    assert seen == ["upgrade: first", "upgrade: second"]  # it read on past the forged status
    assert settled.status == Release.Status.FAILED
