"""What a deployer does to what runs between deploys: restart a component (a rolling restart,
as `kubectl rollout restart`), scale it, delete one of its pods, and put the whole profile to
sleep (every component at 0 replicas, the numbers remembered) and wake it again.

The page, the API and the remote CLI call these. Each one runs with the profile's row
locked (so do deploy requests: releases.release_request), so two actions, or an action and
a deploy, never interleave; each refuses while a release of the profile is active (helm
owns the Deployments then) and when nothing is deployed; each acts in the namespace of the
release that runs (the profile's namespace may have been edited since); each is audited
and publishes a "pod" event on the profile's channel so the profile and status pages redraw
at once; the pods' own changes follow from the watcher.

The profile stays the source of truth: a deploy sets every component's replicas from it
again, which also wakes a sleeping profile (`profile_live_reset`, called once helm has run).

A profile may also sleep on a schedule (`profile_sleep_schedule`, off by default): after N
hours without a deploy, an action or a visit of its page (`profiles_sleep_idle`, sent by the
workers' reaper round).
"""

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from deployments import events
from deployments.integrations.kube import COMPONENT_LABEL, RESTARTED_AT, Kube, KubeError
from deployments.models import Component, Profile, Release
from deployments.services.notifications import profile_notify_sleep
from deployments.services.profiles import audit_record, profile_touch
from deployments.services.releases import release_installed
from deployments.spec import FieldError, SpecError
from deployments.validators import validate_replicas, validate_sleep_after_hours

log = logging.getLogger(__name__)

# A second restart of a component this soon after one is a double click (or two people
# pressing at once), not a wish for two rollouts: it is refused, with the first one's age.
RESTART_GUARD = timedelta(seconds=10)
RESTART_ATTEMPTS = 3  # a Deployment's status changes its resourceVersion: read again


class ActionRefused(Exception):
    """An action that cannot run now, or did not fully happen. The message says why and
    what to do; `status` is the HTTP status that says it (409: the state forbids it, 404:
    no such pod, 502: the cluster did not do it)."""

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


@dataclass
class _Target:
    profile: Profile  # the row, locked
    namespace: str  # where the running release is


@contextlib.contextmanager
def _locked(
    profile, *, asleep_ok=False, asleep_refusal="{name} is asleep: wake it first", touch=True
):
    """The profile's row, locked until the block ends (PostgreSQL: FOR NO KEY UPDATE, which
    the watcher's inserts of pod rows do not wait for; SQLite has no row locks, and holding
    its one write lock across cluster calls would stall the watcher: no lock there), after
    the checks every action makes: no active release, something installed, and (unless
    `asleep_ok`) not asleep."""
    locks = connection.features.has_select_for_update
    with transaction.atomic() if locks else contextlib.nullcontext():
        rows = Profile.objects.filter(pk=profile.pk)
        row = (rows.select_for_update(no_key=True) if locks else rows).first()
        if row is None:
            raise ActionRefused(f"{profile.name} no longer exists", status=404)
        active = row.releases.filter(status__in=Release.ACTIVE).first()
        if active is not None:
            raise ActionRefused(
                f"release #{active.pk} of {row.name} is {active.status}; "
                "wait for it to end or cancel it first"
            )
        installed = release_installed(profile=row)
        if installed is None:
            raise ActionRefused(f"{row.name} is not deployed: deploy it first")
        if row.asleep_since is not None and not asleep_ok:
            raise ActionRefused(asleep_refusal.format(name=row.name))
        if touch:
            profile_touch(profile_id=row.pk)  # an action: the sleep schedule counts from now
        yield _Target(row, installed.snapshot.get("namespace") or row.namespace)


def _cluster_failed(exc, doing):
    if exc.status == 404:
        return ActionRefused(f"{doing}: it is no longer there; deploy it again")
    return ActionRefused(f"{doing}: {exc}", status=502)


def _deployments(kube, target):
    """{component: Deployment} of the running release, by the chart's labels."""
    found = kube.release_deployments(target.namespace, target.profile.name)
    by_component = {(d.metadata.labels or {}).get(COMPONENT_LABEL): d for d in found}
    by_component.pop(None, None)  # not one of the chart's components: not ours to scale
    return by_component


def _deployment_of(kube, target, component):
    deployment = _deployments(kube, target).get(component.name)
    if deployment is None:
        raise ActionRefused(
            f"{target.profile.name} has no {component.name} running in namespace "
            f"{target.namespace}: deploy it first"
        )
    return deployment


def _restarted_at(deployment):
    template = deployment.spec.template.metadata
    value = ((template.annotations if template else None) or {}).get(RESTARTED_AT)
    try:
        when = datetime.fromisoformat(value) if value else None
    except ValueError:  # someone else's format: no guard then
        return None
    return when.replace(tzinfo=UTC) if when and when.tzinfo is None else when


def _announce(profile, action):
    """Redraw the profile's pods partial and status row (the pages' streams hear "pod")."""
    events.publish(events.channel("profile", profile.pk), "pod", {"action": action})


def component_restart(*, profile, component, actor):
    """A rolling restart of one component: new pods replace the old ones one by one, each
    old pod going only when a new one is Ready (the chart's rolling update)."""
    with _locked(profile) as target:
        try:
            with Kube(target.profile.cluster) as kube:
                _restart(kube, target, component)
        except KubeError as exc:
            raise _cluster_failed(exc, f"restarting {component.name}") from None
        audit_record(
            actor=actor, action="component.restart", profile=target.profile, target=component.name
        )
    _announce(profile, "restart")
    return Done(
        f"Restarting {component.name}: new pods replace the old ones, each old one going when "
        "a new one is Ready."
    )


def _restart(kube, target, component):
    for attempt in range(RESTART_ATTEMPTS):
        deployment = _deployment_of(kube, target, component)
        now = timezone.now().replace(microsecond=0)
        last = _restarted_at(deployment)
        if last is not None and timedelta(0) <= now - last < RESTART_GUARD:
            raise ActionRefused(
                f"{component.name} was restarted {int((now - last).total_seconds())} s ago; "
                "its pods are rolling"
            )
        try:
            kube.deployment_restart(deployment, at=now.isoformat().replace("+00:00", "Z"))
            return
        except KubeError as exc:
            # 409: the Deployment changed since it was read (its status, or a restart from
            # elsewhere): read it again, and the guard above decides
            if exc.status != 409 or attempt == RESTART_ATTEMPTS - 1:
                raise


def component_scale(*, profile, component, replicas, actor):
    """Set how many pods of one component run, now, until the next deploy (which sets the
    profile's number again). Raises SpecError (path `replicas`) for a bad number."""
    try:
        validate_replicas(replicas)
    except ValidationError as exc:
        raise SpecError([FieldError("replicas", " ".join(exc.messages))]) from None
    with _locked(profile) as target:
        try:
            with Kube(target.profile.cluster) as kube:
                deployment = _deployment_of(kube, target, component)
                before = deployment.spec.replicas
                kube.deployment_scale(target.namespace, deployment.metadata.name, replicas)
        except KubeError as exc:
            raise _cluster_failed(exc, f"scaling {component.name}") from None
        scaled = None if replicas == component.replicas else replicas
        Component.objects.filter(pk=component.pk).update(scaled_replicas=scaled)
        component.scaled_replicas = scaled
        audit_record(
            actor=actor,
            action="component.scale",
            profile=target.profile,
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
    pod carrying this release's instance label, in its namespace, is deleted."""
    with _locked(profile, asleep_ok=True) as target:
        try:
            with Kube(target.profile.cluster) as kube:
                pods = kube.release_pods(target.namespace, target.profile.name)
                if pod not in {p.metadata.name for p in pods}:
                    raise ActionRefused(
                        f"{target.profile.name} has no pod {pod} in namespace {target.namespace}",
                        status=404,
                    )
                kube.pod_delete(target.namespace, pod)
        except KubeError as exc:
            raise _cluster_failed(exc, f"deleting pod {pod}") from None
        audit_record(actor=actor, action="pod.delete", profile=target.profile, target=pod)
    _announce(profile, "delete")
    return Done(f"Deleted pod {pod}; its Deployment starts a new one.")


def _scale_all(kube, target, deployments, wanted):
    """Scale each component's Deployment to wanted[component]; (scaled, failed) names,
    going on past a failure so that one bad component does not leave the others."""
    scaled, failed = [], []
    for name, deployment in sorted(deployments.items()):
        try:
            kube.deployment_scale(target.namespace, deployment.metadata.name, wanted[name])
            scaled.append(name)
        except KubeError as exc:
            failed.append(f"{name} ({exc})")
    return scaled, failed


def profile_sleep(*, profile, actor, schedule="", idle_before=None):
    """Scale every component to 0 and remember the replicas each ran with. The status page
    shows the profile asleep; the cluster's capacity is free again (no pods, no requests).
    When some component cannot be scaled, the profile is still asleep (Wake brings back
    every one) and the refusal says which. `schedule`: why the sleep schedule put it to
    sleep (profiles_sleep_idle), recorded as who and in the audit event; it does so only if
    the profile, read under the lock, has been idle since `idle_before`."""
    scheduled = {"touch": False} if schedule else {}
    with _locked(profile, asleep_refusal="{name} is already asleep", **scheduled) as target:
        active = target.profile.active_at
        if idle_before is not None and (active is None or active > idle_before):
            raise ActionRefused(f"{profile.name} was used since the round began")
        try:
            with Kube(target.profile.cluster) as kube:
                deployments = _deployments(kube, target)
                if not deployments:
                    raise ActionRefused(
                        f"{target.profile.name} has nothing running in namespace "
                        f"{target.namespace}: deploy it first"
                    )
                replicas = {name: d.spec.replicas or 0 for name, d in deployments.items()}
                scaled, failed = _scale_all(kube, target, deployments, dict.fromkeys(replicas, 0))
        except KubeError as exc:
            raise _cluster_failed(exc, f"putting {target.profile.name} to sleep") from None
        if scaled:
            Profile.objects.filter(pk=profile.pk).update(
                asleep_since=timezone.now(),
                asleep_by="the sleep schedule" if schedule else _actor_name(actor),
                sleep_replicas=replicas,
            )
            audited = audit_record(
                actor=actor,
                action="profile.sleep",
                profile=target.profile,
                target=profile.name,
                before=replicas,
                after={"schedule": schedule} if schedule else None,
            )
    if scaled:
        _announce(profile, "sleep")
        by = "the sleep schedule" if schedule else f"by {audited.actor_name}"
        profile_notify_sleep(profile=profile, asleep=True, by=by, key=audited.pk)
    if failed:
        raise ActionRefused(
            f"{profile.name} is only partly asleep: {', '.join(failed)} not scaled to 0; "
            "Wake brings back the others"
            if scaled
            else f"{profile.name} could not be put to sleep: {', '.join(failed)}",
            status=502,
        )
    profile.refresh_from_db()
    return Done(
        f"{profile.name} is asleep: every component is scaled to 0. Wake restores "
        f"{_replicas_text(replicas)}.",
        replicas,
    )


def profile_wake(*, profile, actor):
    """Scale every component back to the replicas it ran with when it went to sleep. The
    pods then start, and the pages show them become Ready. When some component cannot be
    scaled, the profile stays asleep (Wake again tries every one) and the refusal says
    which."""
    with _locked(profile, asleep_ok=True) as target:
        if target.profile.asleep_since is None:
            raise ActionRefused(f"{profile.name} is not asleep")
        remembered = target.profile.sleep_replicas or {}
        try:
            with Kube(target.profile.cluster) as kube:
                deployments = {
                    name: d for name, d in _deployments(kube, target).items() if name in remembered
                }
                wanted = {name: remembered[name] for name in deployments}
                scaled, failed = _scale_all(kube, target, deployments, wanted)
        except KubeError as exc:
            raise _cluster_failed(exc, f"waking {profile.name}") from None
        if not failed:
            Profile.objects.filter(pk=profile.pk).update(
                asleep_since=None, asleep_by="", sleep_replicas=None
            )
            audited = audit_record(
                actor=actor,
                action="profile.wake",
                profile=target.profile,
                target=profile.name,
                after=wanted,
            )
    if not failed:
        by = f"by {audited.actor_name}"
        profile_notify_sleep(profile=profile, asleep=False, by=by, key=audited.pk)
    if scaled:
        _announce(profile, "wake")
    if failed:
        raise ActionRefused(
            f"{profile.name} is only partly awake: {', '.join(failed)} not scaled up; "
            "Wake again to try every component",
            status=502,
        )
    profile.refresh_from_db()
    return Done(
        f"Waking {profile.name}: {_replicas_text(wanted)}. The pods table shows them start.",
        wanted,
    )


def profile_sleep_schedule(*, profile, hours, actor):
    """Put the profile to sleep after `hours` without a deploy, an action on what runs or a
    visit of its page (None: never, the default). SpecError (path `hours`) for anything but
    a whole number from 1 to 720 (validators.validate_sleep_after_hours). The hours count
    from now."""
    try:
        validate_sleep_after_hours(hours)
    except ValidationError as exc:
        raise SpecError([FieldError("hours", " ".join(exc.messages))]) from None
    before = Profile.objects.filter(pk=profile.pk).values_list("sleep_after_hours", flat=True)
    was = before.first()
    Profile.objects.filter(pk=profile.pk).update(
        sleep_after_hours=hours, active_at=timezone.now() if hours else None
    )
    if was != hours:
        audit_record(
            actor=actor,
            action="profile.sleep_schedule",
            profile=profile,
            target=profile.name,
            before={"hours": was},
            after={"hours": hours},
        )
    profile.refresh_from_db()
    if hours is None:
        return Done(f"{profile.name} no longer goes to sleep on its own.")
    return Done(
        f"{profile.name} goes to sleep after {hours} hour{'' if hours == 1 else 's'} without "
        "a deploy, an action or a visit of its page."
    )


def profiles_sleep_idle(*, now=None):
    """Put to sleep every profile whose schedule is due: awake, and no deploy, action or
    visit of its page for its sleep_after_hours. One that cannot sleep now (a release
    running, nothing deployed or running, the cluster away) is left for the next round,
    with the reason in the log. Returns the names put to sleep. The worker's reaper round
    sends this as a task (heartbeat.reap_if_due), once every HELMDECK_REAP_SECONDS."""
    now = now or timezone.now()
    slept = []
    scheduled = Profile.objects.filter(
        sleep_after_hours__isnull=False, asleep_since=None, active_at__isnull=False
    ).select_related("cluster")
    for profile in scheduled:
        hours = profile.sleep_after_hours or 0
        cutoff = now - timedelta(hours=hours)
        if profile.active_at is None or profile.active_at > cutoff:
            continue
        why = f"no deploy, action or visit for {hours} hour{'' if hours == 1 else 's'}"
        try:
            profile_sleep(profile=profile, actor=None, schedule=why, idle_before=cutoff)
        except ActionRefused as exc:
            log.info("sleep schedule: %s not put to sleep: %s", profile.name, exc)
            continue
        except Exception:  # one profile's failure is not the others'
            log.exception("sleep schedule: putting %s to sleep failed", profile.name)
            continue
        slept.append(profile.name)
    return slept


def profile_live_reset(*, profile_id):
    """helm has applied the chart (an upgrade ran, whatever its outcome, or a teardown
    removed it): every component's replicas are the profile's again, so the profile is
    awake and nothing is scaled apart from it."""
    Profile.objects.filter(pk=profile_id).exclude(asleep_since=None).update(
        asleep_since=None, asleep_by="", sleep_replicas=None
    )
    Component.objects.filter(profile_id=profile_id).exclude(scaled_replicas=None).update(
        scaled_replicas=None
    )
