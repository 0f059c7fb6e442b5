"""What a deployer does to what runs between deploys: restart a component (a rolling restart,
as `kubectl rollout restart`), scale it, delete one of its pods, and put the whole profile to
sleep (every component at 0 replicas, the numbers remembered) and wake it again.

The page, the API and the remote CLI call these. Each one refuses while a release of the
profile is active (helm owns the Deployments then), is audited, and publishes a "pod" event
on the profile's channel so the profile and status pages redraw at once; the pods' own
changes follow from the watcher.

The profile stays the source of truth: a deploy sets every component's replicas from it
again, which also wakes a sleeping profile (`profile_live_reset`, called when a release
succeeds).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from deployments import events
from deployments.integrations.kube import COMPONENT_LABEL, RESTARTED_AT, Kube, KubeError
from deployments.models import Component, Profile, Release
from deployments.services.profiles import audit_record
from deployments.spec import FieldError, SpecError
from deployments.validators import validate_replicas

# A second restart of a component this soon after one is a double click (or two people
# pressing at once), not a wish for two rollouts: it is refused, with the first one's age.
RESTART_GUARD = timedelta(seconds=10)


class ActionRefused(Exception):
    """An action that cannot run now. The message says why and what to do; `status` is the
    HTTP status that says it (409: the state forbids it, 404: no such thing running, 502:
    the cluster did not do it)."""

    def __init__(self, message, *, status=409):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Done:
    """What an action did, in a sentence for the page's message and the API's answer, and
    the replicas it set ({component: n}; sleep: what wake restores)."""

    message: str
    replicas: dict = field(default_factory=dict)


def _replicas_text(numbers):
    return ", ".join(f"{name} {n}" for name, n in sorted(numbers.items())) or "nothing"


def _actor_name(actor):
    return getattr(actor, "username", "") or "cli"


def _refuse_while_releasing(profile):
    active = profile.releases.filter(status__in=Release.ACTIVE).first()
    if active is not None:
        raise ActionRefused(
            f"release #{active.pk} of {profile.name} is {active.status}; "
            "wait for it to end or cancel it first"
        )


def _refuse_while_asleep(profile, what):
    if profile.asleep_since is not None:
        raise ActionRefused(f"{profile.name} is asleep: wake it before you {what}")


def _failed(exc, doing):
    if isinstance(exc, KubeError) and exc.status == 404:
        return ActionRefused(f"{doing}: it is no longer there", status=404)
    return ActionRefused(f"{doing}: {exc}", status=502)


def _deployments(kube, profile):
    """{component: Deployment} of the profile's release, by the chart's labels."""
    found = kube.release_deployments(profile.namespace, profile.name)
    return {(d.metadata.labels or {}).get(COMPONENT_LABEL): d for d in found}


def _deployment_of(kube, profile, component):
    deployment = _deployments(kube, profile).get(component.name)
    if deployment is None:
        raise ActionRefused(
            f"{profile.name} has no {component.name} running in namespace "
            f"{profile.namespace}: deploy it first",
            status=404,
        )
    return deployment


def _restarted_at(deployment):
    template = deployment.spec.template.metadata
    value = ((template.annotations if template else None) or {}).get(RESTARTED_AT)
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:  # someone else's format: no guard then
        return None


def _announce(profile, action):
    """Redraw the profile's pods partial and status row (the pages' streams hear "pod")."""
    events.publish(events.channel("profile", profile.pk), "pod", {"action": action})


def component_restart(*, profile, component, actor):
    """A rolling restart of one component: new pods replace the old ones one by one, each
    old pod going only when a new one is Ready (the chart's rolling update)."""
    _refuse_while_releasing(profile)
    _refuse_while_asleep(profile, "restart it")
    doing = f"restarting {component.name}"
    now = timezone.now().replace(microsecond=0)
    try:
        with Kube(profile.cluster) as kube:
            deployment = _deployment_of(kube, profile, component)
            last = _restarted_at(deployment)
            if last is not None and timedelta(0) <= now - last < RESTART_GUARD:
                raise ActionRefused(
                    f"{component.name} was restarted {int((now - last).total_seconds())} s "
                    "ago; its pods are rolling"
                )
            kube.deployment_restart(deployment, at=now.isoformat().replace("+00:00", "Z"))
    except KubeError as exc:
        if exc.status == 409:  # another restart changed it since we read it
            raise ActionRefused(
                f"{component.name} was restarted just now; its pods are rolling"
            ) from None
        raise _failed(exc, doing) from None
    audit_record(actor=actor, action="component.restart", profile=profile, target=component.name)
    _announce(profile, "restart")
    return Done(
        f"Restarting {component.name}: new pods replace the old ones, each old one going when "
        "a new one is Ready."
    )


def component_scale(*, profile, component, replicas, actor):
    """Set how many pods of one component run, now, until the next deploy (which sets the
    profile's number again). Raises SpecError (path `replicas`) for a bad number."""
    try:
        validate_replicas(replicas)
    except ValidationError as exc:
        raise SpecError([FieldError("replicas", " ".join(exc.messages))]) from None
    _refuse_while_releasing(profile)
    _refuse_while_asleep(profile, "scale it")
    try:
        with Kube(profile.cluster) as kube:
            deployment = _deployment_of(kube, profile, component)
            before = deployment.spec.replicas
            kube.deployment_scale(profile.namespace, deployment.metadata.name, replicas)
    except KubeError as exc:
        raise _failed(exc, f"scaling {component.name}") from None
    scaled = None if replicas == component.replicas else replicas
    Component.objects.filter(pk=component.pk).update(scaled_replicas=scaled)
    component.scaled_replicas = scaled
    audit_record(
        actor=actor,
        action="component.scale",
        profile=profile,
        target=component.name,
        before={"replicas": before},
        after={"replicas": replicas},
    )
    _announce(profile, "scale")
    note = (
        ""
        if scaled is None
        else f" The profile says {component.replicas}: the next deploy sets that again."
    )
    return Done(
        f"Scaled {component.name} to {replicas} pod{'s' if replicas != 1 else ''}.{note}",
        {component.name: replicas},
    )


def pod_delete(*, profile, pod, actor):
    """Delete one pod of the profile's release (its controller starts a new one). Only a
    pod carrying this release's instance label, in the profile's namespace, is deleted."""
    _refuse_while_releasing(profile)
    try:
        with Kube(profile.cluster) as kube:
            names = {p.metadata.name for p in kube.release_pods(profile.namespace, profile.name)}
            if pod not in names:
                raise ActionRefused(
                    f"{profile.name} has no pod {pod} in namespace {profile.namespace}",
                    status=404,
                )
            kube.pod_delete(profile.namespace, pod)
    except KubeError as exc:
        raise _failed(exc, f"deleting pod {pod}") from None
    audit_record(actor=actor, action="pod.delete", profile=profile, target=pod)
    _announce(profile, "delete")
    return Done(f"Deleted pod {pod}; its Deployment starts a new one.")


def profile_sleep(*, profile, actor):
    """Scale every component to 0 and remember the replicas each ran with. The status page
    shows the profile asleep; the cluster's capacity is free again (no pods, no requests)."""
    _refuse_while_releasing(profile)
    if profile.asleep_since is not None:
        raise ActionRefused(f"{profile.name} is already asleep")
    try:
        with Kube(profile.cluster) as kube:
            deployments = _deployments(kube, profile)
            if not deployments:
                raise ActionRefused(
                    f"{profile.name} has nothing running in namespace {profile.namespace}",
                    status=404,
                )
            replicas = {name: d.spec.replicas or 0 for name, d in deployments.items() if name}
            claimed = Profile.objects.filter(pk=profile.pk, asleep_since__isnull=True).update(
                asleep_since=timezone.now(),
                asleep_by=_actor_name(actor),
                sleep_replicas=replicas,
            )
            if not claimed:  # a second click, or someone else just now
                raise ActionRefused(f"{profile.name} is already asleep")
            for deployment in deployments.values():
                kube.deployment_scale(profile.namespace, deployment.metadata.name, 0)
    except KubeError as exc:
        # asleep as far as we know: wake scales every component back to what it ran
        raise _failed(exc, f"putting {profile.name} to sleep") from None
    profile.refresh_from_db()
    audit_record(
        actor=actor, action="profile.sleep", profile=profile, target=profile.name, before=replicas
    )
    _announce(profile, "sleep")
    return Done(
        f"{profile.name} is asleep: every component is scaled to 0. Wake restores "
        f"{_replicas_text(replicas)}.",
        replicas,
    )


def profile_wake(*, profile, actor):
    """Scale every component back to the replicas it ran with when it went to sleep (a
    component added since then: the profile's number). The pods then start, and the pages
    show them become Ready."""
    with transaction.atomic():
        row = Profile.objects.select_for_update().filter(pk=profile.pk).first()
        if row is None or row.asleep_since is None:
            raise ActionRefused(f"{profile.name} is not asleep")
        remembered = row.sleep_replicas or {}
        Profile.objects.filter(pk=profile.pk).update(
            asleep_since=None, asleep_by="", sleep_replicas=None
        )
    components = {c.name: c for c in profile.components.all()}
    wanted = {}
    try:
        with Kube(profile.cluster) as kube:
            for name, deployment in _deployments(kube, profile).items():
                component = components.get(name)
                if name in remembered:
                    wanted[name] = remembered[name]
                elif component is not None:
                    wanted[name] = component.scaled_replicas or component.replicas
                else:
                    continue
                kube.deployment_scale(profile.namespace, deployment.metadata.name, wanted[name])
    except KubeError as exc:
        # still asleep: the next Wake tries again with the same numbers
        Profile.objects.filter(pk=profile.pk).update(
            asleep_since=row.asleep_since, asleep_by=row.asleep_by, sleep_replicas=remembered
        )
        raise _failed(exc, f"waking {profile.name}") from None
    profile.refresh_from_db()
    audit_record(
        actor=actor, action="profile.wake", profile=profile, target=profile.name, after=wanted
    )
    _announce(profile, "wake")
    return Done(
        f"Waking {profile.name}: {_replicas_text(wanted)}. The pods table shows them start.",
        wanted,
    )


def profile_live_reset(*, profile_id):
    """A release succeeded: helm set every component's replicas from the profile, so the
    profile is awake and nothing is scaled apart from it."""
    Profile.objects.filter(pk=profile_id).exclude(asleep_since=None).update(
        asleep_since=None, asleep_by="", sleep_replicas=None
    )
    Component.objects.filter(profile_id=profile_id).exclude(scaled_replicas=None).update(
        scaled_replicas=None
    )
