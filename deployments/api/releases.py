"""/api/v1/releases: one release, its log lines after a sequence number, cancel."""

from ninja import Query, Router

from deployments import selectors
from deployments.api import schemas
from deployments.api.auth import DEPLOY, VIEW, profile_or_404
from deployments.models import LogLine, Profile, Release
from deployments.services.releases import release_cancel

router = Router(tags=["releases"])

LOG_LIMIT_MAX = 5000


def _release(request, pk, permission, *, write=False):
    profile_id = selectors.release_profile_id(pk) if 0 < pk < 2**63 else None
    name = None
    if profile_id is not None:
        name = Profile.objects.filter(pk=profile_id).values_list("name", flat=True).first()
    # the profile's rules decide (role, read-only, narrowed token); a missing one is a 404
    profile_or_404(request, Profile.objects.all(), name or "", permission, write=write)
    return selectors.release_detail_queryset().get(pk=pk)


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
    release = selectors.release_detail_queryset().get(pk=pk)
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
