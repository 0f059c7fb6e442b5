"""Server-sent events: one stream per page, replayable.

On connect the view subscribes to the release's Redis channel first, then replays the
LogLine rows after Last-Event-ID from the database, then relays live messages, skipping
any it already replayed. So a page that reconnects misses no line and shows none twice.
A comment line every 15 s keeps proxies from closing an idle stream.
"""

import contextlib
import json

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.utils.html import escape

from deployments import events
from deployments.models import LogLine, Profile, Release
from deployments.views.pages import pods_context

HEARTBEAT_SECONDS = 15


def sse(event, data, event_id=None):
    """One SSE message; `data` may span lines (each gets its own data: field)."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {part}" for part in str(data).split("\n")]
    return "\n".join(lines) + "\n\n"


def log_html(sequence, step, text):
    return (
        f'<div class="log-line" id="log-{sequence}"><span class="log-step">{escape(step)}'
        f"</span> {escape(text)}</div>"
    )


def status_html(status, reason=""):
    return (
        f'<span class="badge badge-{escape(status)}">{escape(status.replace("_", " "))}'
        f"</span>" + (f' <span class="reason">{escape(reason)}</span>' if reason else "")
    )


async def _refusal(request):
    """401/403 for who may not watch (viewers may), else None."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse("login required", status=401)
    if not await sync_to_async(user.has_perm)("deployments.view_profile"):
        return HttpResponse("forbidden", status=403)
    return None


def _follows(request):
    """Only an ASGI server can hold a stream open. Under WSGI (runserver, a test's
    live_server) Django would buffer an endless async stream in a thread forever, so a
    stream there sends what there is now and a `retry:` hint, and ends; the browser's
    EventSource reconnects, which makes it a poll."""
    return hasattr(request, "scope")


NO_FOLLOW_RETRY = "retry: 10000\n\n"


def _stream_response(stream):
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def release_stream(request, pk):
    if (refusal := await _refusal(request)) is not None:
        return refusal
    release = await Release.objects.filter(pk=pk).afirst()
    if release is None:
        raise Http404("no such release")
    try:
        last_id = int(request.headers.get("Last-Event-ID") or request.GET.get("after") or 0)
    except ValueError:
        last_id = 0
    return _stream_response(_events(release, last_id, follow=_follows(request)))


@contextlib.asynccontextmanager
async def _subscription(channel_name):
    """A Redis pub/sub subscription, subscribed before the caller replays rows (so nothing
    published meanwhile is missed) and closed however the stream ends."""
    conn = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    pubsub = conn.pubsub()
    try:
        await pubsub.subscribe(channel_name)
        yield pubsub
    finally:
        await pubsub.aclose()
        await conn.aclose()


async def _published(pubsub):
    """Each published payload, or None after HEARTBEAT_SECONDS of silence."""
    while True:
        message = await pubsub.get_message(
            ignore_subscribe_messages=True, timeout=HEARTBEAT_SECONDS
        )
        yield None if message is None else json.loads(message["data"])


HEARTBEAT = ": heartbeat\n\n"


async def _events(release, last_id, *, follow=True):
    async with _subscription(events.channel("release", release.pk)) as pubsub:
        seen = last_id
        async for line in (
            LogLine.objects.filter(release=release, sequence__gt=last_id)
            .select_related("step")
            .order_by("sequence")
        ):
            seen = line.sequence
            yield sse(
                "log",
                log_html(line.sequence, line.step.name if line.step else "", line.text),
                line.sequence,
            )
        await release.arefresh_from_db()
        yield sse("status", status_html(release.status, release.reason))
        if release.status in Release.TERMINAL:
            yield sse("done", release.status)
            return
        if not follow:
            yield NO_FOLLOW_RETRY
            return
        async for payload in _published(pubsub):
            if payload is None:
                yield HEARTBEAT
            elif payload["event"] == "log":
                if payload["id"] is None or payload["id"] <= seen:
                    continue
                seen = payload["id"]
                yield sse(
                    "log", log_html(seen, payload["data"]["step"], payload["data"]["text"]), seen
                )
            elif payload["event"] == "status":
                await release.arefresh_from_db()
                yield sse("status", status_html(release.status, release.reason))
                if release.status in Release.TERMINAL:
                    yield sse("done", release.status)
                    return


# ---- a profile's pods ----------------------------------------------------------------------


async def profile_stream(request, name):
    """The profile page's live pods: an SSE `pods` event carrying the re-rendered `#pods`
    partial on connect (the rows are the replay) and after each "pod" publish."""
    if (refusal := await _refusal(request)) is not None:
        return refusal
    profile = await Profile.objects.filter(name=name).afirst()
    if profile is None:
        raise Http404("no such profile")
    return _stream_response(_pod_events(profile, follow=_follows(request)))


def _pods_html(profile):
    return render_to_string("deployments/profile_detail.html#pods", pods_context(profile)).strip()


async def _pod_events(profile, *, follow=True):
    render = sync_to_async(_pods_html)
    async with _subscription(events.channel("profile", profile.pk)) as pubsub:
        yield sse("pods", await render(profile))
        if not follow:
            yield NO_FOLLOW_RETRY
            return
        async for payload in _published(pubsub):
            if payload is None:
                yield HEARTBEAT
            elif payload["event"] == "pod":
                yield sse("pods", await render(profile), payload["id"])
