"""Reads for the pages: querysets shaped for one template each, no writes."""

import difflib

import yaml
from django.db.models import Count, Prefetch, Q

from deployments.models import (
    AuditEvent,
    Cluster,
    Component,
    LogLine,
    PodState,
    Profile,
    Release,
    SecretEntry,
    Step,
)
from deployments.services.checks import profile_checks
from deployments.services.diagnosis import pod_state_problem
from deployments.services.profiles import parse_spec_of

AUDIT_LIMIT = 50


def cluster_names():
    return sorted(Cluster.objects.values_list("name", flat=True))


def profile_list(*, query=""):
    """Every profile with what the status and list pages show, in name order."""
    profiles = (
        Profile.objects.select_related("cluster", "updated_by")
        .prefetch_related(Prefetch("components", queryset=Component.objects.order_by("position",
                                                                                       "name")))
    )
    # NUL cannot reach PostgreSQL even as a query parameter; nothing can match it anyway.
    query = (query or "").replace("\x00", "").strip()[:100]
    if query:
        profiles = profiles.filter(
            Q(name__icontains=query) | Q(namespace__icontains=query)
            | Q(cluster__name__icontains=query) | Q(components__image__icontains=query)
        ).distinct()
    return profiles.order_by("name")


def profile_detail_queryset():
    """Profiles with components, config and secrets (keys and sources only) prefetched."""
    return Profile.objects.select_related("cluster", "updated_by").prefetch_related(
        Prefetch("components", queryset=Component.objects.order_by("position", "name")),
        "config__updated_by",
        Prefetch("secrets", queryset=SecretEntry.objects.defer("ciphertext")
                 .select_related("updated_by")),
    )


def profile_audit(*, profile, limit=AUDIT_LIMIT):
    return (AuditEvent.objects.filter(Q(profile=profile) | Q(profile_name=profile.name))
            .select_related("actor").order_by("-at", "-id")[:limit])


# ---- releases ------------------------------------------------------------------------------

def _latest_release_prefetch():
    """Each profile's newest release in one query, whatever the number of profiles (a sliced
    Prefetch is a window function in SQL). Read it with `last_release(profile)`."""
    latest = (Release.objects.order_by("-created_at", "-id")
              .only("id", "profile_id", "status", "kind", "helm_revision", "requested_by_name",
                    "created_at", "started_at", "finished_at", "reason"))
    return Prefetch("releases", queryset=latest[:1], to_attr="latest_releases")


def last_release(profile):
    latest = getattr(profile, "latest_releases", None)
    if latest is None:
        latest = [profile.releases.order_by("-created_at", "-id").first()]
    return latest[0] if latest and latest[0] else None


def status_profiles():
    """The status page: every profile, its components, its last release and its live pods
    (`live_pods`); query count independent of the number of profiles."""
    return profile_list().prefetch_related(
        _latest_release_prefetch(),
        Prefetch("pods", queryset=PodState.objects.filter(deleted=False), to_attr="live_pods"),
    )


def profile_pods(*, profile):
    """The profile's pods the watcher knows of (deleted ones left out), each with its
    problem or None: [(PodState, Problem | None)]."""
    rows = PodState.objects.filter(profile=profile, deleted=False).order_by("component", "name")
    return [(row, pod_state_problem(row)) for row in rows]


def profile_page_queryset():
    """Profiles for their page: profile_detail_queryset() plus the last release."""
    return profile_detail_queryset().prefetch_related(_latest_release_prefetch())


def profile_findings(*, profile):
    """The research's checks on a saved profile, computed from the database and the
    Dockerfiles only (no cluster): the configured capacity stands in for the cluster's."""
    return profile_checks(spec=parse_spec_of(profile), cluster=profile.cluster, profile=profile)


def release_detail_queryset():
    return Release.objects.select_related("profile__cluster", "rollback_of").prefetch_related(
        Prefetch("steps", queryset=Step.objects.order_by("position")))


def release_log(*, release):
    return LogLine.objects.filter(release=release).select_related("step").order_by("sequence")


def active_release(*, profile):
    return profile.releases.filter(status__in=Release.ACTIVE).first()


def profile_releases(*, profile):
    """A profile's releases, newest first, without their logs."""
    return profile.releases.select_related("rollback_of").defer("notes").order_by(
        "-created_at", "-id")


def current_release(*, profile):
    """The release whose snapshot runs now: the newest that succeeded."""
    return profile.releases.filter(status=Release.SUCCEEDED).order_by("-created_at", "-id").first()


def release_images(release):
    """[(component, image:tag)] from a release's snapshot (what it deploys)."""
    components = (release.snapshot or {}).get("components") or {}
    return [(name, f"{body.get('image')}:{body.get('tag')}") for name, body in components.items()]


def snapshot_yaml(snapshot):
    """A snapshot as YAML. Snapshots hold secret keys and sources, never values."""
    return yaml.safe_dump(snapshot or {}, sort_keys=False, allow_unicode=True)


def release_diff(*, older, newer):
    """A unified diff of two releases' snapshots as YAML ("" when they are the same)."""
    return "".join(difflib.unified_diff(
        snapshot_yaml(older.snapshot).splitlines(keepends=True),
        snapshot_yaml(newer.snapshot).splitlines(keepends=True),
        fromfile=f"release #{older.pk}", tofile=f"release #{newer.pk}"))


def cluster_list():
    return Cluster.objects.annotate(profile_count=Count("profiles")).order_by("name")


def cluster_detail_queryset():
    return Cluster.objects.prefetch_related(
        Prefetch("profiles", queryset=Profile.objects.order_by("name")
                 .prefetch_related(_latest_release_prefetch())))
