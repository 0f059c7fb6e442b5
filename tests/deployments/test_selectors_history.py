"""The history charts' reads: a profile's recent releases with their time per step group
(one query, however many releases and steps) and the DORA keys of the last 30 days per
profile and for the team (two queries)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Release, Step
from deployments.selectors_history import (
    CHART_RELEASES,
    PLOT_HEIGHT,
    TOP,
    delivery_keys,
    release_history,
)
from tests.factories import ProfileFactory, make_release

pytestmark = pytest.mark.django_db

NOW = timezone.now()
FULL = {"build backend": 30, "load backend": 5, "build frontend": 20, "render": 2}
FULL |= {"upgrade": 40, "verify": 10}


def timed_release(profile, status="succeeded", *, at, steps=None, kind="deploy", gap=0):
    """A finished release whose steps ran one after the other from `at` for the seconds in
    `steps` ({name: seconds}; None: skipped, never started; "open": started, never ended),
    finishing `gap` seconds after its last step."""
    release = make_release(profile, status)
    release.steps.all().delete()
    clock, rows = at, []
    for position, (name, seconds) in enumerate((steps or {}).items()):
        step = Step(release=release, position=position, name=name, status=Step.Status.DONE)
        if seconds is None:
            step.status = Step.Status.SKIPPED
        elif seconds == "open":
            step.status, step.started_at = Step.Status.FAILED, clock
        else:
            step.started_at, step.finished_at = clock, clock + timedelta(seconds=seconds)
            clock = step.finished_at
        rows.append(step)
    Step.objects.bulk_create(rows)
    Release.objects.filter(pk=release.pk).update(
        kind=kind, created_at=at, started_at=at, finished_at=clock + timedelta(seconds=gap)
    )
    release.refresh_from_db()
    return release


def finished(profile, status, *, at, kind="deploy"):
    """A release of `profile` that ended in `status` at `at` (no steps)."""
    return timed_release(profile, status, at=at, kind=kind)


# ---- the releases page's chart -------------------------------------------------------------


def test_it_sums_each_release_step_time_per_group():
    profile = ProfileFactory()
    release = timed_release(profile, at=NOW - timedelta(hours=1), steps=FULL, gap=3)
    chart = release_history(profile=profile)
    (bar,) = chart.bars
    assert bar.release_id == release.pk and bar.status == "succeeded"
    # builds and loads are one group; the wall time holds the gap after the last step
    assert bar.groups == {"build": 55, "render": 2, "upgrade": 40, "verify": 10}
    assert bar.total == 110
    assert [g for g, _ in bar.group_values] == ["build", "render", "upgrade", "verify"]


def test_it_counts_a_step_that_never_ended_until_its_release_ended_and_skips_steps_never_run():
    profile = ProfileFactory()
    steps = {"build backend": None, "render": 4, "upgrade": "open", "verify": None}
    timed_release(profile, "failed", at=NOW - timedelta(hours=1), steps=steps, gap=20)
    (bar,) = release_history(profile=profile).bars
    assert bar.groups == {"build": None, "render": 4, "upgrade": 20, "verify": None}
    assert [s.group for s in bar.segments] == ["render", "upgrade"]


def test_it_keeps_the_last_releases_oldest_first_without_teardowns_or_active_ones():
    profile = ProfileFactory()
    made = [
        timed_release(profile, at=NOW - timedelta(hours=40 - n), steps={"render": 1})
        for n in range(CHART_RELEASES + 3)
    ]
    timed_release(profile, at=NOW, kind="teardown", steps={"uninstall": 3})
    make_release(profile, "upgrading")  # still running: no bar yet
    timed_release(ProfileFactory(), at=NOW, steps={"render": 1})  # another profile's
    bars = release_history(profile=profile).bars
    assert [b.release_id for b in bars] == [r.pk for r in made[-CHART_RELEASES:]]


def test_it_reads_the_chart_in_one_query(django_assert_max_num_queries):
    profile = ProfileFactory()
    for n in range(CHART_RELEASES + 5):
        status = "failed" if n % 4 else "succeeded"
        timed_release(profile, status, at=NOW - timedelta(hours=n), steps=FULL)
    with django_assert_max_num_queries(1):
        chart = release_history(profile=profile)
    assert len(chart.bars) == CHART_RELEASES
    assert all(len(b.segments) == 4 for b in chart.bars)


def test_it_stacks_the_groups_bottom_up_in_proportion_to_the_scale():
    profile = ProfileFactory()
    timed_release(profile, at=NOW - timedelta(hours=2), steps=FULL)  # 107 s
    timed_release(profile, at=NOW - timedelta(hours=1), steps={"render": 0, "upgrade": 30})
    chart = release_history(profile=profile)
    assert chart.scale == 120  # the next round number above the tallest bar
    tall, short = chart.bars
    assert short.x > tall.x
    bottom = TOP + PLOT_HEIGHT
    assert [s.group for s in tall.segments] == ["build", "render", "upgrade", "verify"]
    y = bottom
    for segment in tall.segments:  # each sits on the one below it
        assert segment.y == pytest.approx(y - segment.height, abs=0.02)
        assert segment.height == pytest.approx(PLOT_HEIGHT * segment.seconds / 120, abs=0.02)
        y = segment.y
    # a group that took no time draws nothing
    assert [s.group for s in short.segments] == ["upgrade"]
    assert chart.ticks[-1] == (TOP, 120)


# ---- the status page's DORA keys -----------------------------------------------------------


def test_it_counts_deploys_per_day_and_the_change_failure_rate():
    shop, blog = ProfileFactory(name="shop"), ProfileFactory(name="blog")
    for hours in (1, 30, 50):
        finished(shop, "succeeded", at=NOW - timedelta(hours=hours))
    finished(shop, "failed", at=NOW - timedelta(hours=60))
    finished(shop, "succeeded", at=NOW - timedelta(hours=61), kind="rollback")
    finished(blog, "rolled_back", at=NOW - timedelta(days=3))
    finished(blog, "succeeded", at=NOW - timedelta(days=2))
    # not counted: cancelled, teardowns, older than 30 days, still running
    finished(blog, "cancelled", at=NOW - timedelta(days=1))
    finished(blog, "succeeded", at=NOW - timedelta(hours=2), kind="teardown")
    finished(blog, "failed", at=NOW - timedelta(days=31))
    make_release(blog, "verifying")
    keys = delivery_keys(profiles=[blog, shop], now=NOW)
    assert [k.name for k in keys.profiles] == ["blog", "shop"]
    blog_keys, shop_keys = keys.profiles
    assert (shop_keys.deploys, shop_keys.failed) == (4, 1)
    assert shop_keys.failure_rate == 20
    assert shop_keys.per_day == pytest.approx(4 / 30)
    assert (blog_keys.deploys, blog_keys.failed, blog_keys.failure_rate) == (1, 1, 50)
    team = keys.team
    assert (team.deploys, team.failed, team.finished) == (5, 2, 7)
    assert team.per_day == pytest.approx(5 / 30)
    assert team.failure_rate == pytest.approx(200 / 7)


def test_it_times_a_restore_from_the_first_failure_of_a_run_to_the_next_success():
    shop, blog = ProfileFactory(name="shop"), ProfileFactory(name="blog")
    start = NOW - timedelta(days=5)
    # shop: two failures, then a success 90 minutes after the first: one restore
    finished(shop, "failed", at=start)
    finished(shop, "rolled_back", at=start + timedelta(minutes=30))
    finished(shop, "succeeded", at=start + timedelta(minutes=90))
    # shop again: a failure restored by a rollback 10 minutes later
    finished(shop, "failed", at=start + timedelta(days=1))
    finished(shop, "succeeded", at=start + timedelta(days=1, minutes=10), kind="rollback")
    # blog: restored after 4 hours, then a failure nothing has restored yet
    finished(blog, "failed", at=start)
    finished(blog, "succeeded", at=start + timedelta(hours=4))
    finished(blog, "failed", at=start + timedelta(days=2))
    finished(blog, "failed", at=start + timedelta(days=2, hours=1))
    keys = delivery_keys(profiles=[shop, blog], now=NOW)
    shop_keys, blog_keys = keys.profiles
    assert sorted(shop_keys.restores) == [timedelta(minutes=10), timedelta(minutes=90)]
    assert shop_keys.time_to_restore == timedelta(minutes=50)
    assert (shop_keys.open, blog_keys.open) == (0, 1)
    assert blog_keys.time_to_restore == timedelta(hours=4)
    assert keys.team.time_to_restore == timedelta(minutes=90)  # median of 10 m, 90 m, 4 h
    assert keys.team.open == 1


def test_it_counts_the_team_over_every_profile_and_lists_only_those_asked_for():
    shop, blog = ProfileFactory(name="shop"), ProfileFactory(name="blog")
    idle = ProfileFactory(name="idle")
    finished(shop, "succeeded", at=NOW - timedelta(hours=1))
    finished(blog, "succeeded", at=NOW - timedelta(hours=1))
    keys = delivery_keys(profiles=[shop, idle], now=NOW)
    assert [k.name for k in keys.profiles] == ["shop"]  # idle deployed nothing
    assert keys.team.deploys == 2
    assert delivery_keys(now=NOW).profiles == []


def test_it_charts_the_team_deploys_per_day():
    shop = ProfileFactory()
    today = timezone.localtime(NOW).replace(hour=12, minute=0, second=0, microsecond=0)
    finished(shop, "succeeded", at=today - timedelta(days=2))
    finished(shop, "succeeded", at=today - timedelta(days=2, minutes=5))
    finished(shop, "failed", at=today - timedelta(days=2, minutes=10))
    finished(shop, "succeeded", at=today - timedelta(days=29))
    finished(shop, "succeeded", at=today - timedelta(days=30))  # before the 30 days
    chart = delivery_keys(now=today).chart
    assert len(chart.days) == 30
    assert chart.days[-1].date == today.date()
    by_date = {d.date: (d.deploys, d.failed) for d in chart.days}
    assert by_date[(today - timedelta(days=2)).date()] == (2, 1)
    assert by_date[(today - timedelta(days=29)).date()] == (1, 0)
    assert sum(d.deploys for d in chart.days) == 3
    assert chart.scale == 5
    day = next(d for d in chart.days if d.deploys == 2)
    assert [s.group for s in day.segments] == ["ok", "failed"]


def test_it_reads_the_keys_in_two_queries(django_assert_max_num_queries):
    profiles = [ProfileFactory() for _ in range(5)]
    for n in range(40):
        status = ("succeeded", "failed", "rolled_back", "cancelled")[n % 4]
        finished(profiles[n % 5], status, at=NOW - timedelta(hours=n * 7))
    with django_assert_max_num_queries(2):
        keys = delivery_keys(profiles=profiles, now=NOW)
    assert keys.team.finished == 30 and len(keys.profiles) == 5


def test_it_is_empty_without_releases():
    keys = delivery_keys(profiles=[ProfileFactory()], now=NOW)
    assert keys.empty and keys.profiles == []
    assert keys.team.failure_rate is None and keys.team.time_to_restore is None
    assert keys.team.per_day == 0
    assert len(keys.chart.days) == 30 and not any(d.segments for d in keys.chart.days)
