"""Reads for the pages: querysets shaped for one template each, no writes."""

import difflib
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import yaml
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.utils import timezone

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
from deployments.services.app_links import component_links, deployed_ingresses
from deployments.services.checks import profile_checks
from deployments.services.diagnosis import pod_state_problem, problem_q
from deployments.services.profile_health import LABELS as HEALTH_LABELS
from deployments.services.profile_health import ORDER as HEALTH_ORDER
from deployments.services.profile_health import Health, health_status
from deployments.services.profiles import parse_spec_of

AUDIT_LIMIT = 50


def cluster_names():
    return sorted(Cluster.objects.values_list("name", flat=True))


def profile_list(*, query=""):
    """Every profile with what the status and list pages show, in name order."""
    profiles = Profile.objects.select_related("cluster", "updated_by").prefetch_related(
        Prefetch("components", queryset=Component.objects.order_by("position", "name"))
    )
    # NUL cannot reach PostgreSQL even as a query parameter; nothing can match it anyway.
    query = (query or "").replace("\x00", "").strip()[:100]
    if query:
        profiles = profiles.filter(
            Q(name__icontains=query)
            | Q(namespace__icontains=query)
            | Q(cluster__name__icontains=query)
            | Q(components__image__icontains=query)
        ).distinct()
    return profiles.order_by("name")


def profile_detail_queryset():
    """Profiles with components, config and secrets (keys and sources only) prefetched."""
    return Profile.objects.select_related("cluster", "updated_by").prefetch_related(
        Prefetch("components", queryset=Component.objects.order_by("position", "name")),
        "config__updated_by",
        Prefetch(
            "secrets", queryset=SecretEntry.objects.defer("ciphertext").select_related("updated_by")
        ),
    )


def profile_audit(*, profile, limit=AUDIT_LIMIT):
    return (
        AuditEvent.objects.filter(Q(profile=profile) | Q(profile_name=profile.name))
        .select_related("actor")
        .order_by("-at", "-id")[:limit]
    )


# ---- releases ------------------------------------------------------------------------------


def _latest_release_prefetch():
    """Each profile's newest release in one query, whatever the number of profiles (a sliced
    Prefetch is a window function in SQL). Read it with `last_release(profile)`."""
    latest = Release.objects.order_by("-created_at", "-id").only(
        "id",
        "profile_id",
        "status",
        "kind",
        "helm_revision",
        "requested_by_name",
        "created_at",
        "started_at",
        "finished_at",
        "reason",
    )
    return Prefetch("releases", queryset=latest[:1], to_attr="latest_releases")


def last_release(profile):
    latest = getattr(profile, "latest_releases", None)
    if latest is None:
        latest = [profile.releases.order_by("-created_at", "-id").first()]
    return latest[0] if latest and latest[0] else None


def profile_pods(*, profile):
    """The profile's pods the watcher knows of (deleted ones left out), each with its
    problem or None: [(PodState, Problem | None)]."""
    rows = PodState.objects.filter(profile=profile, deleted=False).order_by("component", "name")
    return [(row, pod_state_problem(row)) for row in rows]


def profile_links(*, profile, pods):
    """[AppLink] of the profile's deployed Ingresses and NodePort components (`pods`: its
    live PodState rows)."""
    current = current_release(profile=profile)
    running = deployed_ingresses(current.snapshot) if current else {}
    return component_links(list(profile.components.all()), pods, running)


def profile_live_state(*, profile):
    """(profile row, components scaled apart from the profile) as the database has them now:
    what the pods partial says beside the pods (asleep since when and by whom, scaled
    components). Read afresh: a stream re-renders with the profile it started with."""
    fresh = (
        Profile.objects.only("asleep_since", "asleep_by", "sleep_replicas")
        .filter(pk=profile.pk)
        .first()
    )
    scaled = Component.objects.filter(profile_id=profile.pk, scaled_replicas__isnull=False)
    return fresh, list(scaled.order_by("position", "name"))


def profile_page_queryset():
    """Profiles for their page: profile_detail_queryset() plus the last release."""
    return profile_detail_queryset().prefetch_related(_latest_release_prefetch())


def profile_findings(*, profile):
    """The research's checks on a saved profile, computed from the database and the
    Dockerfiles only (no cluster): the configured capacity stands in for the cluster's."""
    return profile_checks(spec=parse_spec_of(profile), cluster=profile.cluster, profile=profile)


def release_detail_queryset():
    return Release.objects.select_related("profile__cluster", "rollback_of").prefetch_related(
        Prefetch("steps", queryset=Step.objects.order_by("position"))
    )


def release_log(*, release):
    return LogLine.objects.filter(release=release).select_related("step").order_by("sequence")


def active_release(*, profile):
    return profile.releases.filter(status__in=Release.ACTIVE).first()


def profile_releases(*, profile):
    """A profile's releases, newest first, without their logs."""
    return (
        profile.releases.select_related("rollback_of").defer("notes").order_by("-created_at", "-id")
    )


def current_release(*, profile):
    """The release whose snapshot runs now: the newest that succeeded (None when that was a
    teardown: nothing runs)."""
    newest = (
        profile.releases.filter(status=Release.Status.SUCCEEDED)
        .order_by("-created_at", "-id")
        .first()
    )
    return None if newest is None or newest.kind == Release.Kind.TEARDOWN else newest


def release_images(release):
    """[(component, image:tag)] from a release's snapshot (what it deploys)."""
    components = (release.snapshot or {}).get("components") or {}
    return [(name, f"{body.get('image')}:{body.get('tag')}") for name, body in components.items()]


def snapshot_yaml(snapshot):
    """A snapshot as YAML. Snapshots hold secret keys and sources, never values."""
    return yaml.safe_dump(snapshot or {}, sort_keys=False, allow_unicode=True)


def release_diff(*, older, newer):
    """A unified diff of two releases' snapshots as YAML ("" when they are the same)."""
    return "".join(
        difflib.unified_diff(
            snapshot_yaml(older.snapshot).splitlines(keepends=True),
            snapshot_yaml(newer.snapshot).splitlines(keepends=True),
            fromfile=f"release #{older.pk}",
            tofile=f"release #{newer.pk}",
        )
    )


def cluster_list():
    return Cluster.objects.annotate(profile_count=Count("profiles")).order_by("name")


def cluster_detail_queryset():
    return Cluster.objects.prefetch_related(
        Prefetch(
            "profiles",
            queryset=Profile.objects.order_by("name").prefetch_related(_latest_release_prefetch()),
        )
    )


# ---- the status page -----------------------------------------------------------------------

STATUS_PAGE_SIZE = 50
QUERY_MAX = 100
# The diagnosis badge shows the worst problem of a profile's pods.
PROBLEM_ORDER = ("crash", "oom", "image", "pending", "not-ready")


@dataclass(frozen=True)
class StatusView:
    """What one status page shows: a text filter (name, namespace, cluster or image), a
    health filter and a page number, read from the query string (bad values are ignored).
    The page's SSE stream gets the same query string, so live updates keep to the view."""

    query: str = ""
    health: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params):
        # NUL cannot reach PostgreSQL even as a query parameter; nothing can match it anyway.
        query = (params.get("q") or "").replace("\x00", "").strip()[:QUERY_MAX]
        health = params.get("health") or ""
        try:
            page = max(1, min(int(params.get("page") or 1), 1_000_000))
        except ValueError:
            page = 1
        return cls(query, health if health in HEALTH_LABELS else "", page)

    def querystring(self, **changes):
        view = replace(self, **changes)
        given = {"q": view.query, "health": view.health}
        params: dict[str, object] = {k: v for k, v in given.items() if v}
        if view.page > 1:
            params["page"] = view.page
        return urlencode(params)

    @property
    def key(self):
        return (self.query, self.health, self.page)


@dataclass
class StatusPage:
    view: StatusView
    profiles: list
    counts: dict  # health status -> profiles matching the text filter
    total: int  # profiles matching the view (text and health)
    pages: int
    ids: list = field(default_factory=list)

    @property
    def page(self):
        return self.view.page

    @property
    def health_choices(self):
        """[(status, label, profiles, query string of that filter)], worst first."""
        return [
            (s, HEALTH_LABELS[s], self.counts.get(s, 0), self.view.querystring(health=s, page=1))
            for s in HEALTH_ORDER
        ]

    @property
    def health_label(self):
        return HEALTH_LABELS.get(self.view.health, "")

    @property
    def previous_query(self):
        return self.view.querystring(page=self.page - 1) if self.page > 1 else None

    @property
    def next_query(self):
        return self.view.querystring(page=self.page + 1) if self.page < self.pages else None


def _status_filter(profiles, query):
    if not query:
        return profiles
    images = Component.objects.filter(image__icontains=query).values("profile_id")
    return profiles.filter(
        Q(name__icontains=query)
        | Q(namespace__icontains=query)
        | Q(cluster__name__icontains=query)
        | Q(pk__in=images)
    )


def _status_health(profiles):
    """{pk: Health} in name order, for every profile of `profiles`, in ONE query: pods are
    counted (live, Ready, with a problem) and the last release's status read in SQL, so
    the health filter and its counts need no pod rows in Python."""
    latest = Release.objects.filter(profile=OuterRef("pk")).order_by("-created_at", "-id")
    live = Q(pods__deleted=False)
    rows = (
        profiles.annotate(
            last_status=Subquery(latest.values("status")[:1]),
            last_kind=Subquery(latest.values("kind")[:1]),
            n_live=Count("pods", filter=live),
            n_ready=Count("pods", filter=live & Q(pods__ready=True)),
            n_problems=Count("pods", filter=problem_q(prefix="pods__", now=timezone.now())),
        )
        .order_by("name")
        .values_list(
            "pk", "last_status", "last_kind", "n_live", "n_ready", "n_problems", "asleep_since"
        )
    )
    return {
        pk: Health(
            health_status(
                release_status=status,
                live=live,
                ready=ready,
                problems=problems,
                asleep=asleep_since is not None,
                torn_down=kind == Release.Kind.TEARDOWN,
            ),
            ready,
            live,
        )
        for pk, status, kind, live, ready, problems, asleep_since in rows
    }


def _status_rows(ids, health):
    """The profiles `ids` (in that order) with what a status row shows: components, last
    release, current release (newest succeeded: revision and image tags), the problems of
    its pods and where its NodePorts answer. Six queries whatever the number of ids."""
    now = timezone.now()
    current = (
        Release.objects.filter(status=Release.Status.SUCCEEDED)
        .order_by("-created_at", "-id")
        .only("id", "profile_id", "kind", "helm_revision", "snapshot", "created_at")
    )
    profiles = (
        Profile.objects.filter(pk__in=ids)
        .select_related("cluster")
        .prefetch_related(
            Prefetch("components", queryset=Component.objects.order_by("position", "name")),
            _latest_release_prefetch(),
            Prefetch("releases", queryset=current[:1], to_attr="current_releases"),
            # only pods with a problem: the counts came from SQL, and a page of healthy
            # profiles then loads no pod rows at all
            Prefetch(
                "pods",
                queryset=PodState.objects.filter(problem_q(now=now)).order_by("component", "name"),
                to_attr="problem_pods",
            ),
            # where each NodePort component answers (services/app_links.py)
            Prefetch(
                "pods",
                queryset=PodState.objects.filter(deleted=False)
                .exclude(host_ip="")
                .only("profile_id", "name", "component", "ready", "host_ip", "deleted"),
                to_attr="placed_pods",
            ),
        )
    )
    # the rows carry what the template shows beside the model's fields (attributes set here)
    by_pk: dict[int, Any] = {p.pk: p for p in profiles}
    rows = []
    for pk in ids:
        profile = by_pk.get(pk)
        if profile is None:
            continue
        profile.health = health[pk]
        profile.last = last_release(profile)
        newest = profile.current_releases[0] if profile.current_releases else None
        profile.current = None if newest and newest.kind == Release.Kind.TEARDOWN else newest
        deployed = dict(release_images(profile.current)) if profile.current else {}
        components = list(profile.components.all())
        running = deployed_ingresses(profile.current.snapshot) if profile.current else {}
        links = component_links(components, profile.placed_pods, running)
        profile.component_rows = [
            (c, deployed.get(c.name), [link for link in links if link.component == c.name])
            for c in components
        ]
        problems = [p for pod in profile.problem_pods if (p := pod_state_problem(pod, now=now))]
        problems.sort(key=lambda p: PROBLEM_ORDER.index(p.kind))
        profile.problems = problems
        profile.problem = problems[0] if problems else None
        rows.append(profile)
    return rows


def status_page(view, *, page_size=STATUS_PAGE_SIZE, profiles=None):
    """One page of the team status page (of `profiles`, default all): six queries at 10 or
    10,000 profiles."""
    base = Profile.objects.all() if profiles is None else profiles
    health = _status_health(_status_filter(base, view.query))
    counts = Counter(h.status for h in health.values())
    ids = [pk for pk, h in health.items() if not view.health or h.status == view.health]
    pages = max(1, math.ceil(len(ids) / page_size))
    view = replace(view, page=min(view.page, pages))
    start = (view.page - 1) * page_size
    page_ids = ids[start : start + page_size]
    rows = _status_rows(page_ids, health)
    return StatusPage(view, rows, dict(counts), len(ids), pages, page_ids)


def status_summary(view):
    """The health counts of the profiles matching `view`'s text filter (one query)."""
    health = _status_health(_status_filter(Profile.objects.all(), view.query))
    counts = Counter(h.status for h in health.values())
    return StatusPage(view, [], dict(counts), len(health), 1)


def status_row(pk):
    """One profile's status row (for a live update), or None when it is gone."""
    health = _status_health(Profile.objects.filter(pk=pk))
    rows = _status_rows([pk], health) if pk in health else []
    return rows[0] if rows else None


def release_profile_id(release_pk):
    return Release.objects.filter(pk=release_pk).values_list("profile_id", flat=True).first()


def profiles_health():
    """{profile pk: Health} of every profile (one query): what the notifier samples."""
    return _status_health(Profile.objects.all())
