"""Releases: asking for one (deploy or rollback), cancelling it, and running all its
stages in one process (`deploy --wait`). The stages themselves are in release_stages.py,
the reaper in reaper.py."""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from deployments.models import Profile, Release, Step
from deployments.services.db_retry import db_retry
from deployments.services.profiles import audit_record, cluster_names, profile_touch
from deployments.services.reaper import release_abandon
from deployments.services.stage_run import RetryLater, release_publish_status
from deployments.spec import FieldError, SpecError, key_path, parse_spec
from deployments.spec_rows import spec_from_profile

log = logging.getLogger(__name__)


# A release's Step rows are named by their kind: "build <component>" and, on clusters that
# load images into the node's containerd, "load <component>", once per built image; then
# "render", "upgrade", "verify". A teardown's one step is "uninstall". The stages begin them
# by these names (release_stages.py, teardown.py); the metrics label steps by their kind and
# the history chart groups them (metrics/collector.py, selectors_history.py).
STEP_KINDS = ("build", "load", "render", "upgrade", "verify", "uninstall")
PER_IMAGE_STEPS = ("build", "load")


def step_name(kind, component=None):
    """The name of a Step of this kind (of this component's image for build and load)."""
    return f"{kind} {component}" if kind in PER_IMAGE_STEPS else kind


def step_kind_q(*kinds, field="name"):
    """A filter on Steps of any of these kinds, by their name (`field`: its path from the
    model the query is on, e.g. "steps__name" from Release)."""
    q = Q()
    for kind in kinds:
        if kind in PER_IMAGE_STEPS:
            q |= Q(**{f"{field}__startswith": step_name(kind, "")})
        else:
            q |= Q(**{field: kind})
    return q


class ReleaseRefused(Exception):
    """A release cannot start (another is active, nothing to roll back to, ...)."""


def release_request(
    *,
    profile,
    actor,
    build=True,
    kind=Release.Kind.DEPLOY,
    snapshot=None,
    rollback_of=None,
    tags=None,
):
    """Create a queued release with its steps. Raises ReleaseRefused while one is active,
    SpecError (paths `tags.<component>`) for a bad tag override.

    `tags` ({component: tag}) override the profile's tags for this release only: its
    snapshot records them; the profile keeps its own.

    The database's partial unique index (one active release per profile) decides races:
    of two simultaneous requests, exactly one row is inserted.
    """
    snapshot = snapshot or spec_from_profile(profile)
    if tags:
        snapshot = _with_tags(snapshot, tags)
    try:
        with transaction.atomic():
            # the lock every action on what runs takes (services/operations.py): a deploy
            # is requested before or after one, never in the middle of it
            Profile.objects.select_for_update(no_key=True).filter(pk=profile.pk).exists()
            profile_touch(profile_id=profile.pk)  # a deploy: the sleep schedule counts from now
            release = Release.objects.create(
                profile=profile,
                kind=kind,
                build=build,
                snapshot=snapshot,
                rollback_of=rollback_of,
                requested_by=actor if getattr(actor, "pk", None) else None,
                requested_by_name=getattr(actor, "username", "") or "cli",
                deadline=timezone.now() + timedelta(seconds=settings.HELMDECK_QUEUE_TIMEOUT),
            )
            # each built image is then loaded into the node's containerd when that is how
            # the cluster's images reach its nodes (decided now, like the build flag)
            load = profile.cluster.loads_into_containerd
            names = [
                step_name(step, c)
                for c, body in snapshot["components"].items()
                if build and body.get("build")
                for step in (PER_IMAGE_STEPS if load else ("build",))
            ]
            names += [step_name(step) for step in ("render", "upgrade", "verify")]
            if kind == Release.Kind.TEARDOWN:
                names = [step_name("uninstall")]
            Step.objects.bulk_create(
                Step(release=release, position=i, name=name) for i, name in enumerate(names)
            )
    except IntegrityError:
        active = profile.releases.filter(status__in=Release.ACTIVE).first()
        raise ReleaseRefused(
            f"{profile.name} already has release #{active.pk if active else '?'} "
            f"{active.status if active else 'running'}; wait for it or cancel it"
        ) from None
    audit_record(
        actor=actor, action=f"release.{kind}", profile=profile, target=f"release #{release.pk}"
    )
    return release


def _with_tags(snapshot, tags):
    """`snapshot` with these tags, checked by the profile document's own rules; every
    problem at once (unknown components and bad tags)."""
    components = snapshot["components"]
    errors = [
        FieldError(key_path("tags", name), f"{snapshot['name']} has no component of this name")
        for name in tags
        if name not in components
    ]
    changed = {
        **snapshot,
        "components": {
            name: {**body, "tag": tags[name]} if name in tags else body
            for name, body in components.items()
        },
    }
    try:
        parse_spec(changed, cluster_names=cluster_names())
    except SpecError as exc:
        prefix = "components."
        errors += [
            FieldError(f"tags.{e.path[len(prefix) :].split('.')[0]}", e.message)
            if e.path.startswith(prefix) and e.path.endswith(".tag")
            else e
            for e in exc.errors
        ]
    if errors:
        raise SpecError(errors)
    return changed


def release_rollback_request(*, profile, actor, revision=None, target=None):
    """Queue a rollback to an earlier successful release: `target` (a Release of this
    profile), the one with helm `revision`, or by default the one before now."""
    last = profile.releases.filter(status=Release.Status.SUCCEEDED).first()
    if last is not None and last.kind == Release.Kind.TEARDOWN:
        raise ReleaseRefused(
            f"{profile.name} was torn down (release #{last.pk}): helm keeps no revision to "
            "return to; deploy it again"
        )
    done = profile.releases.filter(status=Release.Status.SUCCEEDED, helm_revision__isnull=False)
    if target is not None:
        if not done.filter(pk=target.pk).exists():
            raise ReleaseRefused(
                f"release #{target.pk} of {profile.name} did not succeed with a helm revision; "
                "only a successful release can be rolled back to"
            )
    elif revision is not None:
        target = done.filter(helm_revision=revision).first()
        if target is None:
            raise ReleaseRefused(
                f"{profile.name} has no successful release with helm revision {revision}"
            )
    else:
        succeeded = list(done.order_by("-created_at")[:2])
        if len(succeeded) < 2:
            raise ReleaseRefused(
                f"{profile.name} has no earlier successful release to roll back to"
            )
        target = succeeded[1]
    return release_request(
        profile=profile,
        actor=actor,
        build=False,
        kind=Release.Kind.ROLLBACK,
        snapshot=target.snapshot,
        rollback_of=target,
    )


def release_installed(*, profile):
    """The release whose install runs now: the newest that installed a helm revision (a
    deploy or a rollback, one whose verify failed included), unless a teardown succeeded
    after it; None when nothing is installed. Teardown and the actions on what runs act on
    it, in the namespace its snapshot names (the profile's may have been edited since)."""
    releases = profile.releases.order_by("-created_at", "-id")
    torn_down = (
        releases.filter(kind=Release.Kind.TEARDOWN, status=Release.Status.SUCCEEDED)
        .values_list("created_at", flat=True)
        .first()
    )
    installed = releases.filter(helm_revision__isnull=False).exclude(kind=Release.Kind.TEARDOWN)
    if torn_down is not None:
        installed = installed.filter(created_at__gt=torn_down)
    return installed.first()


def release_teardown_request(*, profile, actor):
    """Queue a teardown of what runs: `helm uninstall` of the installed release in the
    namespace it went to, and that namespace when Helmdeck created it (services/teardown.py).
    The profile stays and can be deployed again; the release history records the teardown."""
    installed = release_installed(profile=profile)
    if installed is None:
        raise ReleaseRefused(f"{profile.name} is not deployed: there is nothing to tear down")
    return release_request(
        profile=profile,
        actor=actor,
        build=False,
        kind=Release.Kind.TEARDOWN,
        snapshot=installed.snapshot,
    )


def release_cancel(*, release, actor):
    """Ask the running stage to stop; a queued release is cancelled at once."""
    if Release.objects.filter(pk=release.pk, status=Release.Status.QUEUED).update(
        status=Release.Status.CANCELLED,
        finished_at=timezone.now(),
        reason=f"cancelled by {getattr(actor, 'username', 'cli')} before it started",
    ):
        release_publish_status(release.pk)
        changed = 1
    else:
        changed = Release.objects.filter(pk=release.pk, status__in=Release.ACTIVE).update(
            cancel_requested=True
        )
    if changed:  # a queued release cancelled at once is audited too (tests/security/)
        audit_record(
            actor=actor,
            action="release.cancel",
            profile=release.profile,
            target=f"release #{release.pk}",
        )
    return bool(changed)


def release_run(release_id, worker="cli"):
    """All stages in this process (`deploy --wait --here`). Returns the settled release.
    The stages (docker, helm, the schema validator) are imported here, not with this
    module: `deploy --wait` with a worker running never needs them."""
    from deployments.services import release_stages
    from deployments.services.release_queue import STAGES

    for name in STAGES:
        stage = getattr(release_stages, name)
        attempt = 0
        while True:
            try:
                ok = stage(release_id, worker, attempt)
                break
            except RetryLater as retry:
                time.sleep(retry.delay)
                attempt += 1
        if not ok:
            break
    return Release.objects.get(pk=release_id)


def release_stage_attempt(*, stage, release_id, attempt, worker):
    """Run one stage (release_queue.STAGES) of a release for `worker` (the id its claim
    records); True when it holds the release and ended well. RetryLater passes through;
    anything unforeseen ends the release now, with words, rather than leaving it active
    until the reaper's deadline (hours for a build)."""
    try:
        return stage(release_id, worker, attempt)
    except RetryLater:
        raise
    except Exception:
        log.exception("%s of release #%s failed", stage.__name__, release_id)
        _abandon(
            release_id,
            f"its {stage.__name__.removeprefix('release_')} stage stopped "
            "on an unexpected error (the worker's log has the details)",
        )
        return False


def _abandon(release_id, reason):
    try:
        release = db_retry(
            lambda: (
                Release.objects.select_related("profile__cluster")
                .filter(pk=release_id, status__in=Release.ACTIVE)
                .first()
            )
        )
        if release is not None:
            release_abandon(release=release, reason=reason)
    except Exception:  # the reaper's deadline remains the last resort
        log.exception("release #%s could not be marked failed", release_id)
