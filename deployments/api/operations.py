"""/api/v1/profiles/{name}/...: actions on what runs, as the profile page has them (restart
or scale a component, delete a pod, sleep, wake, the sleep schedule). Each answers 200 with
what it did; a state that forbids it is 409 with the reason (a release running, asleep,
nothing deployed, ...), a component or pod that does not exist 404, a cluster that did not
do it 502.
Teardown is a release: 202, as deploy."""

from ninja import Router, Schema, Status
from ninja.errors import HttpError
from pydantic import ConfigDict, Field

from deployments.api import schemas
from deployments.api.auth import DELETE, DEPLOY, named, profile_or_404, token_used
from deployments.api.releases import release_or_404
from deployments.models import Profile
from deployments.services import operations as ops
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_teardown_request
from deployments.spec import FieldError, SpecError
from deployments.validators import REPLICAS_MAX, SLEEP_AFTER_MAX

router = Router(tags=["operate"])


class ActionOut(Schema):
    message: str = Field(description="what it did, in a sentence")
    replicas: dict[str, int] = Field(
        description="component -> replicas it set (sleep: what wake restores)"
    )


class ScaleIn(Schema):
    model_config = ConfigDict(extra="forbid")

    replicas: int = Field(
        strict=True,
        ge=0,
        le=REPLICAS_MAX,
        description="pods of the component until the next deploy (which sets the profile's)",
    )


def _profile(request, name):
    return profile_or_404(
        request, Profile.objects.select_related("cluster"), name, DEPLOY, write=True
    )


def _component(profile, name):
    component = profile.components.filter(name=named(name)).first()
    if component is None:
        raise HttpError(404, f"{profile.name} has no component {name}")
    return component


def _done(request, profile, done, what):
    token_used(request, profile, what)
    return {"message": done.message, "replicas": done.replicas}


@router.post(
    "/profiles/{name}/components/{component}/restart",
    response=schemas.answers(ActionOut),
    summary="Restart a component (rolling, as kubectl rollout restart)",
)
def restart(request, name: str, component: str):
    profile = _profile(request, name)
    part = _component(profile, component)
    done = ops.component_restart(profile=profile, component=part, actor=request.user)
    return _done(request, profile, done, f"restart {part.name}")


@router.post(
    "/profiles/{name}/components/{component}/scale",
    response=schemas.answers(ActionOut),
    summary="Scale a component until the next deploy",
)
def scale(request, name: str, component: str, body: ScaleIn):
    profile = _profile(request, name)
    part = _component(profile, component)
    done = ops.component_scale(
        profile=profile, component=part, replicas=body.replicas, actor=request.user
    )
    return _done(request, profile, done, f"scale {part.name} to {body.replicas}")


@router.delete(
    "/profiles/{name}/pods/{pod}",
    response=schemas.answers(ActionOut),
    summary="Delete one pod of the profile (its Deployment starts a new one)",
)
def delete_pod(request, name: str, pod: str):
    profile = _profile(request, name)
    done = ops.pod_delete(profile=profile, pod=named(pod), actor=request.user)
    return _done(request, profile, done, f"delete pod {pod}")


@router.post(
    "/profiles/{name}/sleep",
    response=schemas.answers(ActionOut),
    summary="Put a profile to sleep: every component at 0, the replicas remembered",
)
def sleep(request, name: str):
    profile = _profile(request, name)
    done = ops.profile_sleep(profile=profile, actor=request.user)
    return _done(request, profile, done, "sleep")


@router.post(
    "/profiles/{name}/wake",
    response=schemas.answers(ActionOut),
    summary="Wake a sleeping profile: every component back to what it ran",
)
def wake(request, name: str):
    profile = _profile(request, name)
    done = ops.profile_wake(profile=profile, actor=request.user)
    return _done(request, profile, done, "wake")


class SleepScheduleIn(Schema):
    model_config = ConfigDict(extra="forbid")

    hours: int | None = Field(
        strict=True,
        ge=1,
        le=SLEEP_AFTER_MAX,
        description=(
            "sleep after this many hours without a deploy, an action or a visit of the "
            "profile's page; null: never"
        ),
    )


class SleepScheduleOut(Schema):
    message: str = Field(description="what is set now, in a sentence")
    hours: int | None = Field(description="the schedule's hours; null: never")


@router.put(
    "/profiles/{name}/sleep-schedule",
    response=schemas.answers(SleepScheduleOut),
    summary="Set (or turn off) a profile's sleep schedule",
)
def sleep_schedule(request, name: str, body: SleepScheduleIn):
    profile = _profile(request, name)
    done = ops.profile_sleep_schedule(profile=profile, hours=body.hours, actor=request.user)
    token_used(request, profile, f"sleep schedule {body.hours or 'off'}")
    return {"message": done.message, "hours": profile.sleep_after_hours}


class TeardownIn(Schema):
    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(
        max_length=253, description="the profile's name, typed: what the page asks for too"
    )


@router.post(
    "/profiles/{name}/teardown",
    response=schemas.answers(schemas.ReleaseOut, 202),
    summary="Tear down: helm uninstall (and the namespace when Helmdeck created it); admins",
)
def teardown(request, name: str, body: TeardownIn):
    profile = profile_or_404(
        request, Profile.objects.select_related("cluster"), name, DELETE, write=True
    )
    if body.confirm != profile.name:
        raise SpecError([FieldError("confirm", f"type {profile.name} exactly to tear it down")])
    release = release_teardown_request(profile=profile, actor=request.user)
    release_enqueue(release)
    token_used(request, profile, f"teardown release #{release.pk}")
    return Status(202, schemas.release_out(release_or_404(release.pk)))
