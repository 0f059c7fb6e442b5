"""The pod terminal: who may open a shell in which container, and the audit of every
session (views/terminal.py holds the page and the WebSocket that carries the shell).

Off unless settings.HELMDECK_POD_EXEC is set; then for users with the exec_pod permission
(the admin role). A shell opens only in a Running pod of the profile's installed release
(by the chart's instance label, in the namespace that release went to) and only in one of
that pod's own containers. Every session leaves a TerminalSession row (who, where from,
pod, container, start, end and why) and an AuditEvent at its start and at its end; what is
typed is kept only when HELMDECK_POD_EXEC_RECORD_INPUT asks for it.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from deployments.integrations.kube import Kube, KubeError
from deployments.models import Profile, TerminalSession
from deployments.services.operations import ActionRefused
from deployments.services.profiles import audit_record
from deployments.services.releases import release_installed
from deployments.validators import validate_dns1123_label, validate_dns1123_subdomain

EXEC_PERMISSION = "deployments.exec_pod"


def terminal_enabled():
    return settings.HELMDECK_POD_EXEC


def terminal_allowed(user):
    """The one rule: the setting is on and the user, active, has the exec_pod permission."""
    return bool(
        terminal_enabled()
        and user.is_authenticated
        and user.is_active
        and user.has_perm(EXEC_PERMISSION)
    )


@dataclass(frozen=True)
class TerminalTarget:
    profile: Profile
    namespace: str
    pod: str
    container: str
    containers: tuple[str, ...]  # the pod's own containers, for the page's choice


def terminal_target(*, profile, pod, container=""):
    """Where a shell may open: a Running pod of the profile's installed release and one of
    its containers (the first when none is named). ActionRefused (404: no such pod or
    container; 409: nothing deployed, the pod not running; 502: the cluster did not answer)."""
    try:
        validate_dns1123_subdomain(pod)
        if container:
            validate_dns1123_label(container)
    except ValidationError:
        raise ActionRefused(f"{profile.name} has no pod {pod!r}", status=404) from None
    installed = release_installed(profile=profile)
    if installed is None:
        raise ActionRefused(f"{profile.name} is not deployed: there is no pod to open")
    namespace = installed.snapshot.get("namespace") or profile.namespace
    try:
        with Kube(profile.cluster) as kube:
            found = kube.pod(namespace, pod)
    except KubeError as exc:
        raise ActionRefused(f"reading pod {pod}: {exc}", status=502) from None
    labels = (found.metadata.labels or {}) if found is not None else {}
    if found is None or labels.get("app.kubernetes.io/instance") != profile.name:
        raise ActionRefused(f"{profile.name} has no pod {pod} in namespace {namespace}", status=404)
    containers = tuple(c.name for c in found.spec.containers)
    chosen = container or containers[0]
    if chosen not in containers:
        raise ActionRefused(
            f"pod {pod} has no container {chosen!r} (it has {', '.join(containers)})",
            status=404,
        )
    if found.metadata.deletion_timestamp is not None or found.status.phase != "Running":
        state = "being deleted" if found.metadata.deletion_timestamp else found.status.phase
        raise ActionRefused(f"pod {pod} is {state}, not Running: there is no shell to open")
    return TerminalTarget(profile, namespace, pod, chosen, containers)


def terminal_session_start(*, user, target, address):
    session = TerminalSession.objects.create(
        user=user,
        user_name=user.get_username(),
        profile=target.profile,
        profile_name=target.profile.name,
        namespace=target.namespace,
        pod=target.pod,
        container=target.container,
        address=(address or "")[:45],  # a zoned IPv6 address may be longer: kept in part
    )
    audit_record(
        actor=user,
        action="pod.exec",
        profile=target.profile,
        target=f"{target.pod}/{target.container}",
        after={"session": session.pk, "namespace": target.namespace},
    )
    return session


def terminal_session_end(*, session_id, reason, bytes_in, bytes_out, typed=b""):
    """Close the session's row once (a second call changes nothing) and audit the end."""
    ended = timezone.now()
    fields = {
        "ended_at": ended,
        "end_reason": reason[:200],
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
    }
    if settings.HELMDECK_POD_EXEC_RECORD_INPUT and typed:
        fields["input"] = typed[: TerminalSession.INPUT_KEPT].decode("utf-8", "replace")
    if not TerminalSession.objects.filter(pk=session_id, ended_at=None).update(**fields):
        return
    session = TerminalSession.objects.select_related("user", "profile").get(pk=session_id)
    duration = (ended - session.started_at).total_seconds()
    audit_record(
        actor=session.user,
        action="pod.exec.end",
        profile=session.profile,
        target=f"{session.pod}/{session.container}",
        after={"session": session.pk, "reason": session.end_reason, "seconds": round(duration)},
    )
