"""Server-sent events: one stream per page, replayable, all fed by the process's hub.

Every stream listens through deployments.hub (one Redis connection per web process,
bounded per-client queues, shared renders). The release stream subscribes first, then
replays the LogLine rows after Last-Event-ID from the database, then relays live messages,
skipping any it already replayed: a page that reconnects misses no line and shows none
twice. The profile and status streams send the current rows on (re)connect, so a missed
message costs nothing. After a Redis reconnect (RESET) every stream sends what it would on
connect again; a client dropped for lagging (OVERFLOW) gets a retry hint and reconnects.
A comment line after HELMDECK_SSE_HEARTBEAT_SECONDS (15 s) of silence keeps proxies from
closing an idle stream. The status page's stream is in status_stream.py and the pod log
stream in logs.py, built on the same plumbing (sse_htmx.py).

Every stream goes through sse_htmx.sse_view (login and role, on connect and every heartbeat).
"""

from asgiref.sync import sync_to_async
from django.http import Http404
from django.template.loader import render_to_string
from django.utils.html import escape

from deployments import events
from deployments.hub import OVERFLOW, RESET, get_hub
from deployments.models import LogLine, Profile, Release
from deployments.templatetags.releases import status_badge
from deployments.views.pages import pods_context
from deployments.views.releases import steps_context
from deployments.views.sse_htmx import (
    HEARTBEAT,
    NO_FOLLOW_RETRY,
    OVERFLOW_RETRY,
    db,
    follows,
    heartbeat_seconds,
    reader,
    request_db_done,
    sse,
    sse_view,
    stream_response,
)


def log_html(sequence, step, text):
    return (
        f'<div class="log-line" id="log-{sequence}"><span class="log-step">{escape(step)}'
        f"</span> {escape(text)}</div>"
    )


class AsHtml:
    """The release stream's data for a page: a log line's div; the status badge with the
    Steps section out of band (hx-swap-oob), so the page needs no request per status. (The
    API's form, for programs, is deployments.api.releases.AsJson.) `status` runs where the
    database may be read."""

    log = staticmethod(log_html)

    @staticmethod
    def status(release):
        context = {**steps_context(release), "oob": True}
        steps = render_to_string("deployments/release_detail.html#steps", context).strip()
        return status_badge(release.status, release.reason) + steps


@sse_view
async def release_stream(request, pk):
    release = await reader(request)(Release.objects.filter(pk=pk).first)()
    if release is None:
        raise Http404("no such release")
    try:
        last_id = int(request.headers.get("Last-Event-ID") or request.GET.get("after") or 0)
    except ValueError:
        last_id = 0
    return stream_response(release_events(release, last_id, follow=follows(request)))


REPLAY_CHUNK = 1000


def _replay_rows(release, after, form=AsHtml):
    """[(sequence, SSE message)] of up to REPLAY_CHUNK rows after `after`; after the last
    chunk, the status (and `done`) too."""
    lines = list(
        LogLine.objects.filter(release=release, sequence__gt=after)
        .select_related("step")
        .order_by("sequence")[:REPLAY_CHUNK]
    )
    messages: list[tuple[int | None, str]] = [
        (
            line.sequence,
            sse(
                "log",
                form.log(line.sequence, line.step.name if line.step else "", line.text),
                line.sequence,
            ),
        )
        for line in lines
    ]
    if len(lines) < REPLAY_CHUNK:
        messages.append((None, _status_message(release, form)))
        if release.status in Release.TERMINAL:
            messages.append((None, sse("done", release.status)))
    return messages


def _status_message(release, form):
    """The release read again (its steps too), as a `status` message in `form`."""
    release.refresh_from_db()
    return sse("status", form.status(release))


def _live_status(release, form):
    """(status, `status` message) of the release read again: what every client following
    it live shares (hub.shared), since neither form depends on who reads it."""
    message = _status_message(release, form)
    return release.status, message


async def _replay(release, after, *, follow=True, form=AsHtml):
    """The rows after `after` in chunks (a long build log is never all in memory), then
    the status. Database work in _DB_THREADS when following."""
    run = db(_replay_rows) if follow else sync_to_async(_replay_rows)
    while True:
        messages = await run(release, after, form)
        for sequence, message in messages:
            after = sequence or after
            yield sequence, message
        if not messages or messages[-1][0] is None:
            return


async def release_events(release, last_id, *, follow=True, form=AsHtml):
    """The release's SSE messages after `last_id`: its log lines and status, replayed then
    live, until it ends. `form` makes their data (AsHtml for a page, AsJson for a program)."""
    if not follow:
        async for _, message in _replay(release, last_id, follow=False, form=form):
            yield message
        if release.status not in Release.TERMINAL:
            yield NO_FOLLOW_RETRY
        return
    await request_db_done()
    live_status = db(_live_status)
    hub = get_hub()
    heartbeat = heartbeat_seconds()
    # subscribed (and confirmed by Redis) before the replay: nothing published in between
    # is lost, and `seen` drops what the replay already sent
    async with hub.listen(channels=[events.channel("release", release.pk)]) as listener:
        seen, replay = last_id, True
        while True:
            if replay:  # on connect, and after a Redis reconnect (messages may be lost)
                async for sequence, message in _replay(release, seen, form=form):
                    seen = sequence or seen
                    yield message
                if release.status in Release.TERMINAL:
                    return
                replay = False
            item = await listener.get(heartbeat)
            if item is None:
                yield HEARTBEAT
            elif item is RESET:
                replay = True
            elif item is OVERFLOW:
                yield OVERFLOW_RETRY
                return
            elif item.event == "log":
                if item.id is None or item.id <= seen:
                    continue
                seen, data = item.id, item.data or {}
                yield sse("log", form.log(seen, data.get("step", ""), data.get("text", "")), seen)
            elif item.event == "status":
                key = ("release-status", release.pk, form)
                status, message = await hub.shared(
                    key, item.seq, lambda: live_status(release, form)
                )
                yield message
                if status in Release.TERMINAL:
                    yield sse("done", status)
                    return


# ---- a profile's pods ----------------------------------------------------------------------


@sse_view
async def profile_stream(request, name):
    """The profile page's live pods: an SSE `pods` event carrying the re-rendered `#pods`
    partial on connect (the rows are the replay) and after each "pod" publish."""
    profile = await reader(request)(Profile.objects.filter(name=name).first)()
    if profile is None:
        raise Http404("no such profile")
    return stream_response(_pod_events(profile, request.role, follow=follows(request)))


def _pods_html(profile, role):
    context = pods_context(profile, role=role)
    return render_to_string("deployments/profile_detail.html#pods", context).strip()


async def _pod_events(profile, role, *, follow=True):
    if not follow:
        yield sse("pods", await sync_to_async(_pods_html)(profile, role))
        yield NO_FOLLOW_RETRY
        return
    await request_db_done()
    render = db(_pods_html)
    hub = get_hub()
    heartbeat = heartbeat_seconds()
    key = ("pods", profile.pk, role)
    channel = events.channel("profile", profile.pk)
    async with hub.listen(channels=[channel], events={"pod"}) as listener:
        yield sse("pods", await hub.shared(key, hub.seq, lambda: render(profile, role)))
        while True:
            item = await listener.get(heartbeat)
            if item is None:
                yield HEARTBEAT
            elif item is OVERFLOW:
                yield OVERFLOW_RETRY
                return
            else:
                seq = hub.seq if item is RESET else item.seq
                html = await hub.shared(key, seq, lambda: render(profile, role))
                yield sse("pods", html, None if item is RESET else item.id)
