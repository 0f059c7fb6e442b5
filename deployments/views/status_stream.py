"""The team status page's SSE stream (`/status/stream/?q=&health=&page=`).

On (re)connect a `table` event with the page as the client's query string shows it; then
one `profile-<pk>` event per changed row on the page (pod changes from the watcher,
release status from the pipeline, both through the process's hub), a `counts` event when
a row's badge changed, and a `table` event again when a change moves a profile into or
out of a health filter, or when a heartbeat finds the page's profiles or counts changed.
Every render is shared by all clients of the same view (Hub.shared).
"""

from asgiref.sync import sync_to_async
from django.template.loader import render_to_string

from deployments import events, selectors
from deployments.hub import OVERFLOW, RESET, get_hub
from deployments.views.pages import status_context
from deployments.views.sse_htmx import (
    HEARTBEAT,
    NO_FOLLOW_RETRY,
    OVERFLOW_RETRY,
    db,
    follows,
    heartbeat_seconds,
    request_db_done,
    sse,
    sse_view,
    stream_response,
)

# Pod changes (the watcher) and release status changes (the pipeline) of every profile; log
# lines on release channels are dropped by the hub before they reach a status client.
STATUS_PATTERNS = (events.pattern("profile"), events.pattern("release"))
STATUS_EVENTS = ("pod", "status")
_release_profiles: dict[int, int] = {}  # release pk -> profile pk (it never changes)


@sse_view
async def status_stream(request):
    """The status page's one stream. On (re)connect a `table` event with the current page
    (same query string as the page: filter, health, page number), then one
    `profile-<pk>` event per changed row on the page; a `table` event again when a change
    moves a profile into or out of a health filter, and when the page's profiles or counts
    changed (new or deleted profiles: checked at each heartbeat)."""
    view = selectors.StatusView.from_params(request.GET)
    return stream_response(_status_events(view, request.role, follow=follows(request)))


class _Table:
    def __init__(self, page, html):
        self.html = html
        self.ids = frozenset(page.ids)
        self.counts = tuple(sorted(page.counts.items()))
        self.healths = {p.pk: p.health.status for p in page.profiles}


def _summary(view):
    """(html, counts) of the health summary above the table (its `counts` event)."""
    page = selectors.status_summary(view)
    html = render_to_string("deployments/status.html#summary", {"status": page}).strip()
    return html, tuple(sorted(page.counts.items()))


def _table(view, role):
    page = selectors.status_page(view)
    context = status_context(page, role=role)
    return _Table(page, render_to_string("deployments/status.html#table", context).strip())


def _row(pk, role):
    """(html, health status) of one profile's row; (None, None) when it is gone."""
    profile = selectors.status_row(pk)
    if profile is None:
        return None, None
    # `changed`: the row flashes once in the page (a class the CSS animates)
    context = {"p": profile, "can_edit": role.can_edit, "changed": True}
    html = render_to_string("deployments/status.html#row", context).strip()
    return html, profile.health.status


async def _profile_of(item):
    kind, _, pk = item.channel.rpartition(":")
    if not pk.isdigit():
        return None
    if kind == events.channel("profile", "")[:-1]:
        return int(pk)
    if item.event != "status":
        return None
    release = int(pk)
    if release not in _release_profiles:
        if len(_release_profiles) > 10_000:
            _release_profiles.clear()
        profile = await db(selectors.release_profile_id)(release)
        if profile is None:  # not committed yet, or deleted: ask again next time
            return None
        _release_profiles[release] = profile
    return _release_profiles[release]


async def _status_events(view, role, *, follow=True):
    if not follow:
        yield sse("table", (await sync_to_async(_table)(view, role)).html)
        yield NO_FOLLOW_RETRY
        return
    await request_db_done()
    table, row, counted = db(_table), db(_row), db(_summary)
    hub = get_hub()
    heartbeat = heartbeat_seconds()

    def fresh_table(seq, max_age=None):
        # shared by every client of this view; a Redis reconnect starts a new generation
        key = ("table", view.key, role, hub.connects)
        return hub.shared(key, seq, lambda: table(view, role), max_age=max_age)

    async with hub.listen(patterns=STATUS_PATTERNS, events=STATUS_EVENTS) as listener:
        shown = await fresh_table(hub.seq)
        counts, healths = shown.counts, dict(shown.healths)
        yield sse("table", shown.html)
        while True:
            item = await listener.get(heartbeat)
            if item is OVERFLOW:
                yield OVERFLOW_RETRY
                return
            if item is None:
                # a heartbeat also catches what no message announces (profiles created,
                # edited or deleted): one render per view and heartbeat period, shared
                fresh = await fresh_table(hub.seq, max_age=heartbeat / 2)
                if (fresh.ids, fresh.counts) == (shown.ids, counts):
                    yield HEARTBEAT
                    continue
            elif item is RESET:
                fresh = await fresh_table(hub.seq)
            else:
                pk = await _profile_of(item)
                if pk is None or (pk not in shown.ids and not view.health):
                    continue
                html, health = await hub.shared(
                    ("row", pk, role, hub.connects), item.seq, lambda pk=pk: row(pk, role)
                )
                fits = not view.health or health == view.health
                if pk in shown.ids and html is not None and fits:
                    yield sse(f"profile-{pk}", html, item.id)
                    if healths.get(pk) != health:  # the health counts above changed too
                        healths[pk] = health
                        summary, counts = await hub.shared(
                            ("counts", view.query, hub.connects), item.seq, lambda: counted(view)
                        )
                        yield sse("counts", summary)
                    continue
                if not (pk in shown.ids or fits):
                    continue
                # it left or joined this view: the page changes
                fresh = await fresh_table(item.seq)
            shown = fresh
            counts, healths = shown.counts, dict(shown.healths)
            yield sse("table", shown.html)
