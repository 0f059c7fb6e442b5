"""What the API answers with and accepts (pydantic, through Django Ninja), and the functions
that fill the answers from rows. Secrets appear as keys and sources only: the profile
document is the export's (spec_rows.spec_from_profile), which never holds a value."""

from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict

from deployments import selectors
from deployments.services.profile_health import profile_health
from deployments.spec_rows import spec_from_profile

# ---- errors -----------------------------------------------------------------------------------


class Problem(Schema):
    path: str = Field(description='where: a field path ("components.frontend.tag"), or ""')
    message: str


class Errors(Schema):
    errors: list[Problem]


ERROR_STATUSES = (400, 401, 403, 404, 409, 422, 429, 502)


def answers(ok, status=200):
    """An operation's responses for Ninja: `ok` on `status`, Errors on every refusal."""
    return {status: ok, **dict.fromkeys(ERROR_STATUSES, Errors)}


# ---- releases ---------------------------------------------------------------------------------


class ReleaseRef(Schema):
    id: int
    status: str
    url: str


class StepOut(Schema):
    name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    detail: str


class ReleaseOut(Schema):
    id: int
    profile: str
    kind: str
    status: str
    build: bool
    images: dict[str, str] = Field(description="component -> image:tag this release deploys")
    requested_by: str
    helm_revision: int | None
    reason: str
    notes: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rollback_of: int | None
    url: str = Field(description="the release's page")
    steps: list[StepOut]


class ReleaseList(Schema):
    count: int
    page: int
    pages: int
    items: list[ReleaseOut]


class DeployIn(Schema):
    model_config = ConfigDict(extra="forbid")

    build: bool = Field(
        True, strict=True, description="build the images first (false: deploy existing ones)"
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="component -> image tag, for this release only (the profile keeps its own)",
    )


class RollbackIn(Schema):
    model_config = ConfigDict(extra="forbid")

    revision: int | None = Field(
        None,
        strict=True,
        ge=1,
        le=2**31 - 1,
        description="the helm revision to return to; default: the one before now",
    )


class CancelOut(Schema):
    cancelled: bool = Field(description="false when the release had already ended")
    release: ReleaseOut


class LogLineOut(Schema):
    sequence: int
    step: str
    text: str


class LogOut(Schema):
    lines: list[LogLineOut]
    after: int = Field(description="pass this as `after` to get the lines that follow")
    status: str
    done: bool = Field(description="the release has ended: no line will follow")


# ---- profiles ---------------------------------------------------------------------------------


class ProfileSummary(Schema):
    name: str
    namespace: str
    cluster: str
    environment: str
    health: str
    ready: int
    total: int
    last_release: ReleaseRef | None
    url: str


class ProfileList(Schema):
    count: int
    page: int
    pages: int
    items: list[ProfileSummary]


class PodProblem(Schema):
    kind: str = Field(description="crash, oom, image, pending or not-ready")
    label: str
    message: str
    fix: str


class PodOut(Schema):
    name: str
    component: str
    phase: str
    ready: bool
    restarts: int
    node: str
    problem: PodProblem | None = Field(description="what is wrong, when something is")


class ProfileStatus(Schema):
    name: str
    health: str
    ready: int
    total: int
    pods: list[PodOut]
    current_release: ReleaseRef | None = Field(description="the newest that succeeded")
    last_release: ReleaseRef | None
    active_release: ReleaseRef | None


class ProfileOut(Schema):
    document: dict[str, Any] = Field(
        description="the import/export document (secrets: keys and sources, never values)"
    )
    url: str


# ---- clusters ---------------------------------------------------------------------------------


class ClusterOut(Schema):
    name: str
    profiles: int
    image_delivery: str


class CheckOut(Schema):
    name: str
    ok: bool
    detail: str
    fix: str


class DoctorOut(Schema):
    ready: bool = Field(description="false while a worker runs the checks: ask again")
    checks: list[CheckOut]


# ---- filling them -----------------------------------------------------------------------------


def release_url(release_id):
    from django.urls import reverse

    return reverse("deployments:release_detail", args=[release_id])


def release_ref(release):
    if release is None:
        return None
    return {"id": release.pk, "status": release.status, "url": release_url(release.pk)}


def release_out(release):
    return {
        "id": release.pk,
        "profile": release.profile.name,
        "kind": release.kind,
        "status": release.status,
        "build": release.build,
        "images": dict(selectors.release_images(release)),
        "requested_by": release.requested_by_name,
        "helm_revision": release.helm_revision,
        "reason": release.reason,
        "notes": release.notes,
        "created_at": release.created_at,
        "started_at": release.started_at,
        "finished_at": release.finished_at,
        "rollback_of": release.rollback_of_id,
        "url": release_url(release.pk),
        "steps": [
            {
                "name": s.name,
                "status": s.status,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "detail": s.detail,
            }
            for s in release.steps.all()
        ],
    }


def profile_summary(row):
    """A status-page row (selectors.status_page) as the API lists it."""
    from django.urls import reverse

    return {
        "name": row.name,
        "namespace": row.namespace,
        "cluster": row.cluster.name,
        "environment": row.environment,
        "health": row.health.status,
        "ready": row.health.ready,
        "total": row.health.total,
        "last_release": release_ref(row.last),
        "url": reverse("deployments:profile_detail", args=[row.name]),
    }


def profile_status(profile):
    pods = selectors.profile_pods(profile=profile)
    last = selectors.last_release(profile)
    health = profile_health(
        pods=[pod for pod, _ in pods], last_release=last, asleep=profile.asleep_since is not None
    )
    return {
        "name": profile.name,
        "health": health.status,
        "ready": health.ready,
        "total": health.total,
        "pods": [
            {
                "name": pod.name,
                "component": pod.component,
                "phase": pod.phase,
                "ready": pod.ready,
                "restarts": pod.restarts,
                "node": pod.node,
                "problem": (
                    {
                        "kind": problem.kind,
                        "label": problem.label,
                        "message": problem.message,
                        "fix": problem.fix,
                    }
                    if problem
                    else None
                ),
            }
            for pod, problem in pods
        ],
        "current_release": release_ref(selectors.current_release(profile=profile)),
        "last_release": release_ref(last),
        "active_release": release_ref(selectors.active_release(profile=profile)),
    }


def profile_out(profile):
    from django.urls import reverse

    return {
        "document": spec_from_profile(profile),
        "url": reverse("deployments:profile_detail", args=[profile.name]),
    }
