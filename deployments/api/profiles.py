"""/api/v1/profiles: list (the status page's filter and health), one profile's document and
live status, create/replace from the import document (JSON or YAML), delete, and deploy /
roll back (releases.py holds the release resources)."""

import json

from ninja import Query, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field

from deployments import profile_yaml, selectors
from deployments.api import schemas
from deployments.api.auth import (
    ADD,
    CHANGE,
    DELETE,
    DEPLOY,
    VIEW,
    profile_or_404,
    require,
    token_used,
)
from deployments.api.releases import release_or_404
from deployments.models import Profile
from deployments.services.api_tokens import api_token_profiles
from deployments.services.profiles import (
    cluster_names,
    profile_apply_spec,
    profile_delete,
)
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request, release_rollback_request
from deployments.spec import FieldError, SpecError, parse_spec

router = Router(tags=["profiles"])

PAGE_SIZE_MAX = 200
DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "description": "The profile document, as `export_profile` writes it and "
        "`import_profile` reads it (README: Profile YAML), in JSON or YAML.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "object"}},
        },
    }
}


class ProfileQuery(Schema):
    q: str = Field("", max_length=200, description="name, namespace, cluster or image contains")
    health: str = Field("", description="healthy, progressing, degraded, failed, ...")
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=PAGE_SIZE_MAX)


@router.get("/profiles", response=schemas.answers(schemas.ProfileList), summary="List profiles")
def list_profiles(request, filters: Query[ProfileQuery]):
    require(request, VIEW)
    view = selectors.StatusView.from_params(
        {"q": filters.q, "health": filters.health, "page": filters.page}
    )
    page = selectors.status_page(
        view,
        page_size=filters.page_size,
        profiles=api_token_profiles(request.auth, Profile.objects.all()),
    )
    return {
        "count": page.total,
        "page": page.page,
        "pages": page.pages,
        "items": [schemas.profile_summary(row) for row in page.profiles],
    }


@router.get(
    "/profiles/{name}", response=schemas.answers(schemas.ProfileOut), summary="A profile's document"
)
def get_profile(request, name: str):
    profile = profile_or_404(request, selectors.profile_detail_queryset(), name, VIEW)
    return schemas.profile_out(profile)


@router.get(
    "/profiles/{name}/status",
    response=schemas.answers(schemas.ProfileStatus),
    summary="Health and pods",
)
def get_status(request, name: str):
    profile = profile_or_404(request, selectors.profile_page_queryset(), name, VIEW)
    return schemas.profile_status(profile)


def _document(request):
    """The request's body as a profile document: JSON, or YAML with a YAML content type.
    Raises SpecError, as the YAML import does."""
    body = request.body
    if len(body) > profile_yaml.MAX_BYTES:
        raise SpecError(
            [FieldError("body", f"is larger than {profile_yaml.MAX_BYTES // 1024} KiB")]
        )
    kind = (request.content_type or "").lower()
    if kind in ("application/yaml", "application/x-yaml", "text/yaml"):
        return profile_yaml.load(body)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise SpecError(
            [FieldError("body", "is not a JSON document (send YAML as application/yaml)")]
        ) from None


@router.post(
    "/profiles",
    response=schemas.answers(schemas.ProfileOut, 201),
    openapi_extra=DOCUMENT_BODY,
    summary="Create a profile from its document",
)
def create_profile(request):
    require(request, ADD, write=True)
    if request.auth.narrowed:
        raise HttpError(403, "this token is narrowed to some profiles and cannot create one")
    spec = parse_spec(_document(request), cluster_names=cluster_names())
    if Profile.objects.filter(name=spec["name"]).exists():
        raise SpecError([FieldError("name", f"a profile named {spec['name']} already exists")])
    profile = profile_apply_spec(spec=spec, actor=request.user)
    token_used(request, profile, f"create profile {profile.name}")
    return Status(201, schemas.profile_out(profile))


@router.put(
    "/profiles/{name}",
    response=schemas.answers(schemas.ProfileOut),
    openapi_extra=DOCUMENT_BODY,
    summary="Replace a profile with a document",
)
def replace_profile(request, name: str):
    profile = profile_or_404(request, Profile.objects.all(), name, CHANGE, write=True)
    spec = parse_spec(_document(request), cluster_names=cluster_names())
    if spec["name"] != name:
        raise SpecError(
            [
                FieldError(
                    "name", f"is {spec['name']}, but this is {name}'s address; rename in a page"
                )
            ]
        )
    profile = profile_apply_spec(spec=spec, profile=profile, actor=request.user)
    token_used(request, profile, f"replace profile {profile.name}")
    return schemas.profile_out(profile)


@router.delete("/profiles/{name}", response=schemas.answers(None, 204), summary="Delete a profile")
def delete_profile(request, name: str):
    profile = profile_or_404(request, Profile.objects.all(), name, DELETE, write=True)
    token_used(request, None, f"delete profile {profile.name}")
    profile_delete(profile=profile, actor=request.user)
    return Status(204, None)


# ---- deploy and roll back --------------------------------------------------------------------


def _accepted(request, release, action):
    release_enqueue(release)
    token_used(request, release.profile, f"{action} release #{release.pk}")
    return Status(202, schemas.release_out(release_or_404(release.pk)))


@router.post(
    "/profiles/{name}/releases",
    response=schemas.answers(schemas.ReleaseOut, 202),
    summary="Deploy: queue a release (202; follow its log or poll it)",
)
def deploy(request, name: str, body: schemas.DeployIn):
    profile = profile_or_404(request, selectors.profile_detail_queryset(), name, DEPLOY, write=True)
    release = release_request(profile=profile, actor=request.user, build=body.build, tags=body.tags)
    return _accepted(request, release, "deploy")


@router.post(
    "/profiles/{name}/rollback",
    response=schemas.answers(schemas.ReleaseOut, 202),
    summary="Roll back to an earlier successful release",
)
def rollback(request, name: str, body: schemas.RollbackIn):
    profile = profile_or_404(request, Profile.objects.all(), name, DEPLOY, write=True)
    release = release_rollback_request(profile=profile, actor=request.user, revision=body.revision)
    return _accepted(request, release, "rollback")


@router.get(
    "/profiles/{name}/releases",
    response=schemas.answers(schemas.ReleaseList),
    summary="Release history",
)
def list_releases(request, name: str, page: int = Query(1, ge=1, le=1_000_000)):
    profile = profile_or_404(request, Profile.objects.all(), name, VIEW)
    releases = selectors.profile_releases(profile=profile)
    count = releases.count()
    size = 50
    pages = max(1, -(-count // size))
    page = min(page, pages)
    rows = (
        selectors.release_detail_queryset()
        .filter(pk__in=[r.pk for r in releases[(page - 1) * size : page * size]])
        .order_by("-created_at", "-id")
    )
    return {
        "count": count,
        "page": page,
        "pages": pages,
        "items": [schemas.release_out(r) for r in rows],
    }
