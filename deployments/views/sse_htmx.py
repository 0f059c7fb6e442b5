"""The plumbing every page and live stream shares: SSE messages and responses, `sse_view`
(login and role on connect, then re-checked every heartbeat while a stream is open), the
follow-or-poll switch, the database reader threads of live streams, a viewer's Role, and
rendering a page or, for htmx, its partial.

Every stream goes through `sse_view`, which checks the login and role when it connects and
then again every HELMDECK_SSE_HEARTBEAT_SECONDS while it is open, from the database (the
session row, the user row, the user's and groups' permissions: four queries per stream and
period, none per event). A stream whose session is gone (logged out, deleted, expired, or a
password changed), whose user is inactive or deleted, or whose role no longer lets it watch
ends with a `login-required` event (static/session.js then reloads the page, which sends
the browser to the login form or the 403 page).
"""

import asyncio
import functools
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from typing import NamedTuple

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.decorators import login_not_required
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render, resolve_url
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from deployments.metrics import sse_clients
from deployments.services.terminals import terminal_allowed

log = logging.getLogger(__name__)


def whole_page(request):
    """Whether a request wants the whole page: not htmx, or an htmx boosted page load or
    history restore; any other htmx request swaps in a part of the page."""
    htmx = request.htmx
    return not htmx or htmx.boosted or htmx.history_restore_request


def render_page_or_partial(request, name, partial, context):
    """The full page, or just its `partial` for an htmx request that does not want the
    whole page (whole_page)."""
    response = render(request, name if whole_page(request) else f"{name}#{partial}", context)
    patch_vary_headers(response, ("HX-Request",))
    return response


class Role(NamedTuple):
    """What a page's rows vary by between the users who may see it: the link to the
    profile form (can_edit), the invitation to add one (can_add) and the actions on what
    runs (can_deploy). A page and its stream render with the same Role; a stream whose
    user's Role changes is sent to reconnect (`revocable`)."""

    can_edit: bool = False
    can_add: bool = False
    can_deploy: bool = False
    can_exec: bool = False  # the pods' Terminal links (services/terminals.py)


def role_of(user):
    return Role(
        can_edit=user.has_perm("deployments.change_profile"),
        can_add=user.has_perm("deployments.add_profile"),
        can_deploy=user.has_perm("deployments.deploy_profile"),
        can_exec=terminal_allowed(user),
    )


def heartbeat_seconds():
    """Seconds of silence before a heartbeat comment; also how often an open stream checks
    its user again (settings.HELMDECK_SSE_HEARTBEAT_SECONDS, 15 by default)."""
    return settings.HELMDECK_SSE_HEARTBEAT_SECONDS


# What ends a line of an event stream (the HTML standard's EventSource parser): CRLF, a lone
# LF, and a lone CR too, so a CR in a log line would start a line of its own.
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def sse(event, data, event_id=None):
    """One SSE message; `data` may span lines: each gets its own data: field, whichever
    break ends it (text a container, helm or a user wrote cannot start an event:, id: or
    retry: line of its own; the browser joins the data lines with LF)."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {part}" for part in LINE_BREAK.split(str(data))]
    return "\n".join(lines) + "\n\n"


def _grant(user):
    """(may watch, Role) of a user: who may watch a stream (viewers may), and what its rows
    vary by. The one rule, on connect and at every re-check."""
    if not (user.is_authenticated and user.is_active):
        return False, Role()
    if not user.has_perm("deployments.view_profile"):
        return False, Role()
    return True, role_of(user)


def _access(request):
    """(refusal or None, Role): 401/403 for who may not watch."""
    if not request.user.is_authenticated:
        return HttpResponse("login required", status=401), Role()
    allowed, role = _grant(request.user)
    if not allowed:
        return HttpResponse("forbidden", status=403), Role()
    return None, role


async def _stream_refusal(request):
    """The login and permission reads of a live stream run in _DB_THREADS, so a hundred
    pages connecting at once do not each open a database connection in a thread of their
    own. Sets request.role."""
    refusal, request.role = await reader(request)(_access)(request)
    return refusal


# ---- re-checking an open stream's user -------------------------------------------------

ALLOWED, REVOKED, ROLE_CHANGED = "allowed", "revoked", "role changed"
ROLE_CHANGED_RETRY = "retry: 1000\n\n"  # come back at once: rows render for the new role
UNCHECKED_RETRY = "retry: 5000\n\n"  # the database did not answer the check: try later


class _SessionProbe(dict):
    """A session's data as auth.get_user reads it, without its side effects: flushing a
    session whose password hash is stale, or re-keying one signed with an old key, is for
    the browser's next request to do, not for a check beside its stream."""

    def flush(self):
        self.clear()

    def cycle_key(self):
        pass


def session_user(session_key, user_pk):
    """The user `session_key` still signs in, read from the database now, by Django's own
    rules for the next request of that browser (the session row, unexpired; its user,
    active, with the same password hash), or None when that is no longer `user_pk`.
    Open streams and the pod terminal's socket ask this while they stay open."""
    probe = HttpRequest()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    probe.session = _SessionProbe(store.load())  # type: ignore[assignment]  # a dict suffices
    user = auth.get_user(probe)
    if not user.is_authenticated or user.pk != user_pk:
        return None
    return user


def stream_verdict(session_key, user_pk, role):
    """ALLOWED, REVOKED or ROLE_CHANGED for a stream opened by `user_pk` in session
    `session_key`: its session's user (`session_user`), then the role."""
    user = session_user(session_key, user_pk)
    if user is None:
        return REVOKED
    allowed, now = _grant(user)
    if not allowed:
        return REVOKED
    return ALLOWED if now == role else ROLE_CHANGED


def login_required_event():
    """The last message of a revoked stream; its data is the login page's address."""
    return sse("login-required", resolve_url(settings.LOGIN_URL))


_END = object()
HANDOVER_SIZE = 8  # messages a stream may run ahead of its client (one slot: 40 µs a message)


class _Failed:
    def __init__(self, exc):
        self.exc = exc


async def revocable(stream, *, every, session_key=None, user_pk=None, role=None, verdict=None):
    """`stream`'s messages, with the user checked again every `every` seconds, however
    busy or quiet the stream is (a timer beside it, not a count of its events); on
    REVOKED a `login-required` event ends it, on ROLE_CHANGED a short retry hint (the
    browser reconnects and gets rows for its new role).

    The stream runs in one task of its own that hands its messages over a short queue (at
    most HANDOVER_SIZE ahead of the client); its generators are closed in their own frames
    however this one ends (revoked, finished, or cancelled by a client gone)."""
    if verdict is None:  # a browser's stream: its session, user and role
        check = db(stream_verdict)

        async def verdict():
            return await check(session_key, user_pk, role)

    loop = asyncio.get_running_loop()
    items = aiter(stream)
    handover: asyncio.Queue = asyncio.Queue(HANDOVER_SIZE)

    async def pump():
        try:
            async for item in items:
                await handover.put(item)
        except Exception as exc:
            await handover.put(_Failed(exc))
        else:
            await handover.put(_END)

    pumping = asyncio.ensure_future(pump())
    due = loop.time() + every
    sse_clients.opened()  # helmdeck_sse_clients on /metrics (metrics/sse_clients.py)
    try:
        while True:
            if loop.time() >= due:  # checked even when messages never stop coming
                try:
                    answer = await verdict()
                except Exception as exc:  # the database is away: nobody vouches for the user
                    log.warning("could not check a stream's user (%s)", type(exc).__name__)
                    yield UNCHECKED_RETRY
                    return
                due = loop.time() + every
                if answer == REVOKED:
                    yield login_required_event()
                    return
                if answer == ROLE_CHANGED:
                    yield ROLE_CHANGED_RETRY
                    return
            if handover.empty():
                try:
                    async with asyncio.timeout_at(due):
                        item = await handover.get()
                except TimeoutError:
                    continue
            else:
                item = handover.get_nowait()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        sse_clients.closed()
        pumping.cancel()
        await asyncio.wait({pumping})
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


def sse_view(view):
    """An SSE endpoint: GET only, and 401 (not a redirect to the login page, which an
    EventSource would read as a broken stream) or 403 before the view runs; a stream it
    answers with is re-checked every heartbeat while it is open (`revocable`)."""

    @login_not_required
    @require_GET
    @functools.wraps(view)
    async def wrapped(request, *args, **kwargs):
        if (refusal := await _stream_refusal(request)) is not None:
            return refusal
        response = await view(request, *args, **kwargs)
        if follows(request) and getattr(response, "is_async", False):
            response.streaming_content = revocable(
                response.streaming_content,
                session_key=request.session.session_key,
                user_pk=request.user.pk,
                role=request.role,
                every=heartbeat_seconds(),
            )
        return response

    return wrapped


def reader(request):
    return db if follows(request) else sync_to_async


def follows(request):
    """Only an ASGI server can hold a stream open. Under WSGI (runserver, a test's
    live_server) Django would buffer an endless async stream in a thread forever, so a
    stream there sends what there is now and a `retry:` hint, and ends; the browser's
    EventSource reconnects, which makes it a poll."""
    return hasattr(request, "scope")


NO_FOLLOW_RETRY = "retry: 10000\n\n"
OVERFLOW_RETRY = "retry: 1000\n\n"  # dropped for lagging: come back soon, and replay
HEARTBEAT = ": heartbeat\n\n"


# Database work of live streams runs in these two threads, each job ending like a request
# (close_old_connections). Under ASGI, sync code of a request runs in that request's own
# thread, which keeps its database connection while its stream is open: 500 open pages
# would hold 500 PostgreSQL connections. Here they hold at most two, plus none per stream.
_DB_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sse-db")


def db(fn):
    """`fn` as a coroutine function run in _DB_THREADS (for follow mode only: under WSGI
    and in tests the caller's transaction must keep its connection)."""

    def job(*args):
        close_old_connections()
        try:
            return fn(*args)
        finally:
            close_old_connections()

    return sync_to_async(job, thread_sensitive=False, executor=_DB_THREADS)


async def request_db_done():
    """Close the connection the request's thread opened (login, permission checks) before
    the stream starts waiting: it would otherwise stay open as long as the page does."""
    await sync_to_async(close_old_connections)()


def stream_response(stream):
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
