"""Reads for the history charts: a profile's recent releases with their time per step group
(the releases page's chart and table), and the DORA keys of the last 30 days per profile and
for the team (the status page).

Everything is summed or counted in the database: the chart is one query, the keys two,
whatever the number of releases or steps.
"""

import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from deployments import durations
from deployments.models import Release
from deployments.services.releases import step_kind_q

CHART_RELEASES = 30
KEYS_DAYS = 30

# A release's steps grouped as the chart stacks them, bottom to top: each group the step
# kinds it sums (services/releases.STEP_KINDS). A load (an image into the node's containerd)
# belongs to its build; a teardown's uninstall is not a deploy and teardowns are left out of
# the chart and the keys.
GROUP_KINDS = {
    "build": ("build", "load"),
    "render": ("render",),
    "upgrade": ("upgrade",),
    "verify": ("verify",),
}
STEP_GROUPS = tuple(GROUP_KINDS)
DEPLOY_KINDS = (Release.Kind.DEPLOY, Release.Kind.ROLLBACK)
FAILED = (Release.Status.FAILED, Release.Status.ROLLED_BACK)

# The chart's geometry (SVG user units; the SVG scales to its box, see helmdeck.css)
BAR_WIDTH, BAR_GAP = 14, 6
PLOT_HEIGHT = 160
AXIS_WIDTH = 48  # room for the scale's labels, left of the bars
RESULT_HEIGHT = 6  # the strip under each bar that shows its result
TOP = 12  # room above the tallest bar for the top label
DAY_WIDTH, DAY_GAP, DAY_PLOT_HEIGHT = 14, 4, 100  # the status page's deploys per day


# ---- the releases page's chart --------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    group: str
    seconds: float
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    """One release: its time per step group (None when no step of the group ran) and its
    wall time (started to finished, queueing aside), with where the chart draws it."""

    release_id: int
    kind: str
    status: str
    created_at: object
    groups: dict
    total: float | None
    x: float = 0
    segments: tuple = ()

    @property
    def steps_total(self):
        return sum(s for s in self.groups.values() if s is not None)

    @property
    def group_values(self):
        """[(group, seconds or None)] in STEP_GROUPS order (the table's columns)."""
        return [(g, self.groups.get(g)) for g in STEP_GROUPS]

    @property
    def label(self):
        parts = ", ".join(f"{g} {_short(s)}" for g, s in self.group_values if s is not None)
        return f"Release #{self.release_id} ({self.kind}), {self.status}: {parts or 'no step ran'}"


@dataclass(frozen=True)
class ReleaseChart:
    bars: list  # oldest first, left to right
    scale: float  # seconds at the top of the plot
    width: float
    height: float
    plot_bottom: float
    ticks: list = field(default_factory=list)  # [(y, seconds)]
    bar_width: int = BAR_WIDTH
    result_height: int = RESULT_HEIGHT
    axis_x: int = AXIS_WIDTH - 4

    @property
    def result_y(self):
        return self.plot_bottom + 2

    @property
    def groups(self):
        return STEP_GROUPS


def _short(seconds):
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def release_history(*, profile, limit=CHART_RELEASES):
    """The profile's last `limit` finished deploys and rollbacks (oldest first), each with
    the seconds its steps took per group, summed in SQL: one query."""
    step_time = durations.duration(
        "steps__started_at", Coalesce(F("steps__finished_at"), F("finished_at"))
    )
    ran = Q(steps__started_at__isnull=False)
    sums = {
        group: Sum(step_time, filter=ran & step_kind_q(*kinds, field="steps__name"))
        for group, kinds in GROUP_KINDS.items()
    }
    rows: list[Any] = list(
        Release.objects.filter(profile=profile, kind__in=DEPLOY_KINDS, status__in=Release.TERMINAL)
        .order_by("-created_at", "-id")
        .values("id", "kind", "status", "created_at", "started_at", "finished_at")
        .annotate(**sums)[:limit]
    )
    bars = [
        Bar(
            release_id=row["id"],
            kind=row["kind"],
            status=row["status"],
            created_at=row["created_at"],
            groups={g: durations.seconds(row[g]) for g in STEP_GROUPS},
            total=durations.seconds(
                row["finished_at"] - row["started_at"]
                if row["started_at"] and row["finished_at"]
                else None
            ),
        )
        for row in reversed(rows)
    ]
    return chart_layout(bars)


def _nice(seconds):
    """The smallest 1, 2 or 5 times a power of ten (or a round minute count) >= seconds."""
    steps = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200]
    for step in steps:
        if seconds <= step:
            return step
    return 3600 * -(-seconds // 3600)


def chart_layout(bars):
    """Where each bar and segment goes: bars left to right, segments stacked bottom to top in
    STEP_GROUPS order, heights in proportion to the tallest bar (a pure function)."""
    tallest = max((b.steps_total for b in bars), default=0)
    scale = _nice(tallest) if tallest > 0 else 1
    bottom = TOP + PLOT_HEIGHT
    placed = []
    for i, bar in enumerate(bars):
        x = AXIS_WIDTH + BAR_GAP / 2 + i * (BAR_WIDTH + BAR_GAP)
        y, segments = bottom, []
        for group, seconds in bar.group_values:
            if not seconds or seconds <= 0:
                continue
            height = max(PLOT_HEIGHT * seconds / scale, 1)  # a short step stays visible
            y -= height
            segments.append(Segment(group, seconds, round(y, 2), round(height, 2)))
        placed.append(replace(bar, x=round(x, 2), segments=tuple(segments)))
    ticks = [(round(bottom - PLOT_HEIGHT * f, 2), scale * f) for f in (0, 0.5, 1)]
    width = AXIS_WIDTH + max(len(bars), 1) * (BAR_WIDTH + BAR_GAP)
    return ReleaseChart(
        bars=placed,
        scale=scale,
        width=width,
        height=bottom + RESULT_HEIGHT + 4,
        plot_bottom=bottom,
        ticks=ticks,
    )


# ---- the status page's DORA keys ------------------------------------------------------------


@dataclass
class Keys:
    """The DORA keys of one profile (or the team) over `days` days.

    - deploys: deploys and rollbacks that succeeded; per day = deploys / days
    - failed: those that ended failed or rolled back; change failure rate =
      failed / (deploys + failed) (cancelled ones are neither)
    - restores: the time from the first failure of a run of failures to the next deploy
      that succeeded, one per such run; open: runs no deploy has restored yet
    """

    name: str
    days: int
    deploys: int = 0
    failed: int = 0
    restores: list = field(default_factory=list)
    open: int = 0
    is_team: bool = False

    @property
    def finished(self):
        return self.deploys + self.failed

    @property
    def per_day(self):
        return self.deploys / self.days

    @property
    def failure_rate(self):
        """Percent, or None when nothing finished."""
        return 100 * self.failed / self.finished if self.finished else None

    @property
    def time_to_restore(self):
        """The median restore (a timedelta), or None when no failure was restored."""
        return statistics.median(self.restores) if self.restores else None


@dataclass(frozen=True)
class Day:
    """One day of the team's deploys chart, with where the chart draws it."""

    date: date
    deploys: int
    failed: int
    x: float = 0
    segments: tuple = ()
    axis_label: str = ""  # under every 7th bar, counted back from today
    label_x: float = 0

    @property
    def label(self):
        return f"{self.date:%a %d %b}: {self.deploys} succeeded, {self.failed} failed"


@dataclass(frozen=True)
class DayChart:
    days: list
    scale: int
    width: float
    height: float
    plot_bottom: float
    ticks: list = field(default_factory=list)  # [(y, deploys)]
    bar_width: int = DAY_WIDTH
    axis_x: int = AXIS_WIDTH - 4


@dataclass
class DeliveryKeys:
    days: int
    since: object
    team: Keys
    profiles: list  # [Keys] of the profiles asked for that have releases in the window
    chart: DayChart | None = None

    @property
    def empty(self):
        return self.team.finished == 0 and not self.team.open


def delivery_keys(*, profiles=None, days=KEYS_DAYS, now=None):
    """The team's keys, its deploys per day, and the keys of `profiles` (Profile rows, in
    that order; default none) over the last `days` days (today and the days before it, in
    the current time zone): two queries whatever the number of releases."""
    today = timezone.localdate(now or timezone.now())
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))
    window = Release.objects.filter(kind__in=DEPLOY_KINDS, finished_at__gte=since)
    counts = (
        window.filter(status__in=(Release.Status.SUCCEEDED, *FAILED))
        .annotate(day=TruncDate("finished_at", tzinfo=timezone.get_current_timezone()))
        .values("profile_id", "day")
        .annotate(
            deploys=Count("id", filter=Q(status=Release.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status__in=FAILED)),
        )
        .order_by()
    )
    restored_by = Release.objects.filter(
        profile_id=OuterRef("profile_id"),
        kind__in=DEPLOY_KINDS,
        status=Release.Status.SUCCEEDED,
        finished_at__gt=OuterRef("finished_at"),
    ).order_by("finished_at", "id")
    failures = (
        window.filter(status__in=FAILED)
        .annotate(restored_at=Subquery(restored_by.values("finished_at")[:1]))
        .values_list("profile_id", "finished_at", "restored_at")
        .order_by()
    )
    team = Keys("team", days, is_team=True)
    by_profile: dict[int, Keys] = defaultdict(lambda: Keys("", days))
    per_day: dict[date, list] = {first + timedelta(days=n): [0, 0] for n in range(days)}
    for row in counts:
        keys = by_profile[row["profile_id"]]
        keys.deploys += row["deploys"]
        keys.failed += row["failed"]
        team.deploys += row["deploys"]
        team.failed += row["failed"]
        if row["day"] in per_day:  # a clock a little ahead: tomorrow is not on the chart
            per_day[row["day"]][0] += row["deploys"]
            per_day[row["day"]][1] += row["failed"]
    # a run of failures ends at the deploy that restored it: one restore per run, timed from
    # its first failure; failures nothing restored yet are one open run per profile
    first_failure: dict[tuple, datetime] = {}
    unrestored = set()
    for profile_id, failed_at, restored_at in failures:
        if failed_at is None:  # (the window's filter leaves none)
            continue
        if restored_at is None:
            unrestored.add(profile_id)
            continue
        key = (profile_id, restored_at)
        first_failure[key] = min(failed_at, first_failure.get(key, failed_at))
    for (profile_id, restored_at), failed_at in first_failure.items():
        by_profile[profile_id].restores.append(restored_at - failed_at)
        team.restores.append(restored_at - failed_at)
    for profile_id in unrestored:
        by_profile[profile_id].open = 1
    team.open = len(unrestored)
    rows = []
    for profile in profiles or ():
        if profile.pk in by_profile:
            by_profile[profile.pk].name = profile.name
            rows.append(by_profile[profile.pk])
    chart = day_layout([Day(d, ok, bad) for d, (ok, bad) in per_day.items()])
    return DeliveryKeys(days=days, since=since, team=team, profiles=rows, chart=chart)


def day_layout(days):
    """Where each day's bar goes: succeeded at the bottom, failed on top (a pure function)."""
    tallest = max((d.deploys + d.failed for d in days), default=0)
    scale = int(_nice(tallest)) if tallest > 0 else 1
    bottom = TOP + DAY_PLOT_HEIGHT
    placed = []
    for i, day in enumerate(days):
        y, segments = bottom, []
        for kind, count in (("ok", day.deploys), ("failed", day.failed)):
            if count:
                height = DAY_PLOT_HEIGHT * count / scale
                y -= height
                segments.append(Segment(kind, count, round(y, 2), round(height, 2)))
        x = AXIS_WIDTH + DAY_GAP / 2 + i * (DAY_WIDTH + DAY_GAP)
        back = len(days) - 1 - i
        label = "today" if back == 0 else (f"{day.date:%d %b}" if back % 7 == 0 else "")
        placed.append(
            replace(
                day,
                x=round(x, 2),
                segments=tuple(segments),
                axis_label=label,
                label_x=round(x + DAY_WIDTH / 2, 2),
            )
        )
    ticks = [(round(bottom - DAY_PLOT_HEIGHT * f, 2), round(scale * f, 1)) for f in (0, 0.5, 1)]
    return DayChart(
        days=placed,
        scale=scale,
        width=AXIS_WIDTH + max(len(days), 1) * (DAY_WIDTH + DAY_GAP) + DAY_WIDTH,
        height=bottom + 18,
        plot_bottom=bottom,
        ticks=ticks,
    )
