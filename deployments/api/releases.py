"""/api/v1/releases: one release, its log lines after a sequence number or live (SSE),
cancel."""

import json

from asgiref.sync import sync_to_async
from ninja import Query, Router
from ninja.errors import HttpError
from ninja.responses import NinjaJSONEncoder

from deployments import selectors
from deployments.api import schemas
from deployments.api.auth import DEPLOY, VIEW, profile_or_404, token_used
from deployments.models import LogLine, Profile, Release
from deployments.services.api_tokens import api_token_active
from deployments.services.releases import release_cancel
from deployments.views.sse_htmx import (
    ALLOWED,
    REVOKED,
    db,
    follows,
    heartbeat_seconds,
    revocable,
    stream_response,
)
from deployments.views.streams import release_events

router = Router(tags=["releases"])

LOG_LIMIT_MAX = 5000


def _release(request, pk, permission, *, write=False):
    profile_id = selectors.release_profile_id(pk) if 0 < pk < 2**63 else None
    name = None
    if profile_id is not None:
        name = Profile.objects.filter(pk=profile_id).values_list("name", flat=True).first()
    # the profile's rules decide (role, read-only, narrowed token); a missing one is a 404
    profile_or_404(request, Profile.objects.all(), name or "", permission, write=write)
    return release_or_404(pk)


def release_or_404(pk):
    """The release with its steps; 404 when it is gone (its profile deleted meanwhile)."""
    release = selectors.release_detail_queryset().filter(pk=pk).first()
    if release is None:
        raise HttpError(404, "Not Found")
    return release


@router.get(
    "/releases/{pk}",
    response=schemas.answers(schemas.ReleaseOut),
    summary="One release and its steps",
)
def get_release(request, pk: int):
    return schemas.release_out(_release(request, pk, VIEW))


@router.post(
    "/releases/{pk}/cancel", response=schemas.answers(schemas.CancelOut), summary="Cancel a release"
)
def cancel(request, pk: int):
    release = _release(request, pk, DEPLOY, write=True)
    cancelled = release_cancel(release=release, actor=request.user)
    token_used(request, release.profile, f"cancel release #{pk}")
    release = release_or_404(pk)
    return {"cancelled": cancelled, "release": schemas.release_out(release)}


@router.get(
    "/releases/{pk}/log",
    response=schemas.answers(schemas.LogOut),
    summary="Log lines after `after`",
)
def log(
    request,
    pk: int,
    after: int = Query(0, ge=0, le=2**31),
    limit: int = Query(1000, ge=1, le=LOG_LIMIT_MAX),
):
    release = _release(request, pk, VIEW)
    lines = list(
        LogLine.objects.filter(release=release, sequence__gt=after)
        .select_related("step")
        .order_by("sequence")[:limit]
    )
    last = lines[-1].sequence if lines else after
    release.refresh_from_db(fields=["status"])
    more = LogLine.objects.filter(release=release, sequence__gt=last).exists()
    return {
        "lines": [
            {
                "sequence": line.sequence,
                "step": line.step.name if line.step else "",
                "text": line.text,
            }
            for line in lines
        ],
        "after": last,
        "status": release.status,
        "done": release.status in Release.TERMINAL and not more,
    }


class AsJson:
    """The release stream's data for a program (the remote CLI): a log line, and at each
    status the release itself, as GET /releases/{pk} gives it (steps included). A client
    follows the steps and reads the final state from the stream, with no call of its own
    at every status change and at the end."""

    @staticmethod
    def log(sequence, step, text):
        return json.dumps({"sequence": sequence, "step": step, "text": text})

    @staticmethod
    def status(release):
        body = {"status": release.status, "reason": release.reason}
        return json.dumps({**body, "release": schemas.release_out(release)}, cls=NinjaJSONEncoder)


EVENTS_DOC = {
    "responses": {
        200: {
            "description": "Server-sent events: `log` (id: the line's sequence; data: JSON "
            '{"sequence", "step", "text"}), `status` (data: JSON {"status", "reason", '
            '"release"}, the release as GET /releases/{pk} gives it, steps included), `done` '
            "(data: the final status, after the last `status`), and `login-required` if the "
            "token is revoked while it streams. Resume with Last-Event-ID.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }
}


@router.get(
    "/releases/{pk}/events",
    response=dict.fromkeys(schemas.ERROR_STATUSES, schemas.Errors),
    openapi_extra=EVENTS_DOC,
    summary="The release's log and status, live (SSE), until it ends",
)
async def events(request, pk: int, after: int = Query(0, ge=0, le=2**31)):
    release = await sync_to_async(_release)(request, pk, VIEW)
    try:
        last_id = min(max(int(request.headers.get("Last-Event-ID") or after), 0), 2**31)
    except ValueError:
        last_id = after
    follow = follows(request)
    stream = release_events(release, last_id, follow=follow, form=AsJson)
    if follow:  # re-checked every heartbeat, as a page's stream is
        token_pk, check = request.auth.pk, db(api_token_active)

        async def verdict():
            return ALLOWED if await check(token_pk, VIEW) else REVOKED

        stream = revocable(stream, every=heartbeat_seconds(), verdict=verdict)
    return stream_response(stream)
