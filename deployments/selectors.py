"""Reads for the pages: querysets shaped for one template each, no writes."""

from django.db.models import Prefetch, Q

from deployments.models import AuditEvent, Cluster, Component, Profile, SecretEntry

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
