"""Following a release a worker runs, from another process (`manage.py deploy --wait`): its
log lines in order as they are written, then the settled release.

The release's own stream: the Redis channel its stages publish on (events.channel), the
one the release page's SSE follows. Rows come first (LogLine.sequence), so a line written
before the subscription, or one whose publish nobody heard, is read from the database; a
gap in the sequence is filled the same way. Redis being away only slows the follow down:
the release's row is read every `poll` seconds whatever the channel says.
"""

import contextlib
import re
import time

from deployments import events
from deployments.integrations.redis import RedisError, app_client
from deployments.models import LogLine, Release

POLL = 5.0  # seconds between reads of the release's row, messages or not
# C0 controls but tab, DEL and C1: what a terminal would act on (colours, titles, cursor)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def terminal_safe(text):
    """`text` with every control character but tab shown as "?": a log line holds what a
    build or helm printed, and a Dockerfile's RUN can print escape sequences that would
    retitle, recolour or rewrite the terminal of whoever follows the release."""
    return _CONTROL.sub("?", text)


def release_follow(*, release_id, on_line, poll=POLL):
    """Call on_line(step_name, text) for each log line of the release, in order, until it
    has ended; return the settled release."""
    last = 0

    def catch_up():
        nonlocal last
        lines = (
            LogLine.objects.filter(release_id=release_id, sequence__gt=last)
            .select_related("step")
            .order_by("sequence")
        )
        for line in lines:
            on_line(line.step.name if line.step else "", line.text)
            last = line.sequence

    def ended():
        status = Release.objects.filter(pk=release_id).values_list("status", flat=True).get()
        return status in Release.TERMINAL

    pubsub = _subscribe(events.channel("release", release_id))
    try:
        catch_up()
        checked = time.monotonic()
        while True:
            message = None
            if pubsub is not None:
                try:
                    message = pubsub.get_message(timeout=min(1.0, poll))
                except RedisError:
                    _close(pubsub)
                    pubsub = None  # the row alone from now on
            if pubsub is None:
                time.sleep(min(1.0, poll))
            event, data, event_id = _decode(message)
            if event == "log" and isinstance(event_id, int) and event_id > last:
                if event_id == last + 1 and isinstance(data, dict):
                    on_line(str(data.get("step") or ""), str(data.get("text") or ""))
                    last = event_id
                else:
                    catch_up()
            finished = (
                event == "status"
                and isinstance(data, dict)
                and (data.get("status") in Release.TERMINAL)
            )
            if finished or time.monotonic() - checked >= poll:
                checked = time.monotonic()
                if ended():
                    catch_up()
                    return Release.objects.select_related("profile").get(pk=release_id)
    finally:
        _close(pubsub)


def _subscribe(channel):
    try:
        pubsub = app_client().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel)
    except RedisError:
        return None  # the row alone, every POLL seconds
    return pubsub


def _close(pubsub):
    if pubsub is not None:
        with contextlib.suppress(RedisError, OSError):
            pubsub.close()


def _decode(message):
    """(event, data, id) of a published message; Nones for anything else."""
    if not message or message.get("type") != "message":
        return None, None, None
    return events.message_fields(message["data"]) or (None, None, None)
