"""services.operations without a cluster: a fake adapter (unit tests), for what a real
cluster will not do on demand: a component that refuses to scale halfway through a sleep or
a wake, a restartedAt annotation without a timezone, a Deployment changed under a restart."""

from datetime import UTC, datetime
from types import SimpleNamespace as Obj

import pytest

from deployments.integrations.kube import RESTARTED_AT, KubeError
from deployments.models import AuditEvent, Profile
from deployments.services import operations
from deployments.services.operations import ActionRefused
from tests.factories import ComponentFactory, ProfileFactory, make_release

pytestmark = pytest.mark.django_db


def deployment(component, replicas=1, restarted=None):
    annotations = {RESTARTED_AT: restarted} if restarted else {}
    return Obj(
        metadata=Obj(
            name=f"shop-{component}",
            namespace="shop",
            resource_version="1",
            labels={"app.kubernetes.io/component": component},
        ),
        spec=Obj(replicas=replicas, template=Obj(metadata=Obj(annotations=annotations))),
    )


class FakeKube:
    """Deployments `web` (2 replicas) and `api` (1); scaling `failing` raises."""

    failing: set = set()
    conflicts = 0
    restarted_at = None
    scaled: list = []

    def __init__(self, cluster):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def release_deployments(self, namespace, release):
        return [deployment("web", 2, FakeKube.restarted_at), deployment("api", 1)]

    def deployment_scale(self, namespace, name, replicas):
        if name.removeprefix("shop-") in FakeKube.failing:
            raise KubeError("the API answered 500 Internal Server Error", permanent=False)
        FakeKube.scaled.append((name, replicas))

    def deployment_restart(self, deployment, *, at):
        if FakeKube.conflicts:
            FakeKube.conflicts -= 1
            raise KubeError("the API answered 409 Conflict", permanent=True, status=409)
        FakeKube.scaled.append((deployment.metadata.name, "restart"))


@pytest.fixture
def shop(monkeypatch):
    monkeypatch.setattr(operations, "Kube", FakeKube)
    monkeypatch.setattr(FakeKube, "failing", set())
    monkeypatch.setattr(FakeKube, "scaled", [])
    monkeypatch.setattr(FakeKube, "conflicts", 0)
    monkeypatch.setattr(FakeKube, "restarted_at", None)
    profile = ProfileFactory(name="shop")
    ComponentFactory(profile=profile, name="web", replicas=2)
    ComponentFactory(profile=profile, name="api")
    make_release(profile, "succeeded", revision=1)
    return profile


def test_a_sleep_that_fails_halfway_is_asleep_and_says_which(shop):
    FakeKube.failing = {"api"}
    with pytest.raises(ActionRefused) as refused:
        operations.profile_sleep(profile=shop, actor=None)
    assert refused.value.status == 502
    assert str(refused.value).startswith("shop is only partly asleep: api (the API answered 500")
    assert "Wake brings back the others" in str(refused.value)
    assert FakeKube.scaled == [("shop-web", 0)]
    row = Profile.objects.get(pk=shop.pk)
    assert row.asleep_since is not None and row.sleep_replicas == {"api": 1, "web": 2}


def test_a_sleep_where_nothing_scales_changes_nothing(shop):
    FakeKube.failing = {"api", "web"}
    with pytest.raises(ActionRefused, match="shop could not be put to sleep"):
        operations.profile_sleep(profile=shop, actor=None)
    assert Profile.objects.get(pk=shop.pk).asleep_since is None
    assert not AuditEvent.objects.filter(action="profile.sleep").exists()


def test_a_wake_that_fails_halfway_stays_asleep_for_the_next_wake(shop):
    operations.profile_sleep(profile=shop, actor=None)
    FakeKube.failing, FakeKube.scaled = {"web"}, []
    with pytest.raises(ActionRefused, match="shop is only partly awake: web .* Wake again"):
        operations.profile_wake(profile=shop, actor=None)
    assert FakeKube.scaled == [("shop-api", 1)]
    assert Profile.objects.get(pk=shop.pk).sleep_replicas == {"api": 1, "web": 2}
    FakeKube.failing, FakeKube.scaled = set(), []
    assert operations.profile_wake(profile=shop, actor=None).replicas == {"api": 1, "web": 2}
    assert Profile.objects.get(pk=shop.pk).asleep_since is None


def test_a_restarted_at_without_a_timezone_is_read_as_utc(shop):
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    FakeKube.restarted_at = now.isoformat()  # as another tool may have written it
    web = shop.components.get(name="web")
    with pytest.raises(ActionRefused, match=r"web was restarted \d+ s ago"):
        operations.component_restart(profile=shop, component=web, actor=None)
    FakeKube.restarted_at = "yesterday"  # not a time at all: no guard
    operations.component_restart(profile=shop, component=web, actor=None)
    assert FakeKube.scaled == [("shop-web", "restart")]


def test_a_restart_racing_a_status_update_reads_again_and_restarts_once(shop):
    FakeKube.conflicts = 2  # the Deployment's status moved twice between read and patch
    web = shop.components.get(name="web")
    operations.component_restart(profile=shop, component=web, actor=None)
    assert FakeKube.scaled == [("shop-web", "restart")]
    FakeKube.conflicts, FakeKube.scaled = 3, []  # it keeps moving: said, not hidden
    with pytest.raises(ActionRefused, match="409 Conflict") as refused:
        operations.component_restart(profile=shop, component=web, actor=None)
    assert refused.value.status == 502 and FakeKube.scaled == []


# ---- the sleep schedule -----------------------------------------------------------------


def test_the_sleep_schedule_puts_a_profile_to_sleep_once_it_has_been_idle_long_enough(shop):
    from datetime import timedelta

    from django.utils import timezone

    done = operations.profile_sleep_schedule(profile=shop, hours=8, actor=None)
    assert done.message == (
        "shop goes to sleep after 8 hours without a deploy, an action or a visit of its page."
    )
    start = Profile.objects.get(pk=shop.pk).active_at
    assert start is not None
    assert operations.profiles_sleep_idle(now=start + timedelta(hours=7, minutes=59)) == []
    assert FakeKube.scaled == []
    assert operations.profiles_sleep_idle(now=start + timedelta(hours=8)) == ["shop"]
    assert sorted(FakeKube.scaled) == [("shop-api", 0), ("shop-web", 0)]
    row = Profile.objects.get(pk=shop.pk)
    assert row.asleep_since is not None and row.asleep_by == "the sleep schedule"
    event = AuditEvent.objects.get(action="profile.sleep")
    assert event.after == {"schedule": "no deploy, action or visit for 8 hours"}
    assert event.actor_name == "system"
    # asleep: the next rounds leave it alone
    assert operations.profiles_sleep_idle(now=timezone.now() + timedelta(days=9)) == []


def test_activity_moves_the_schedule_and_off_means_never(shop):
    from datetime import timedelta

    from deployments.services.profiles import profile_touch

    operations.profile_sleep_schedule(profile=shop, hours=1, actor=None)
    start = Profile.objects.get(pk=shop.pk).active_at
    later = start + timedelta(minutes=50)
    profile_touch(profile_id=shop.pk, now=later)  # a visit, 50 minutes in
    assert Profile.objects.get(pk=shop.pk).active_at == later
    profile_touch(profile_id=shop.pk, now=later + timedelta(minutes=4))  # within 5: no write
    assert Profile.objects.get(pk=shop.pk).active_at == later
    assert operations.profiles_sleep_idle(now=start + timedelta(minutes=61)) == []
    assert operations.profiles_sleep_idle(now=later + timedelta(minutes=60)) == ["shop"]

    other = ProfileFactory(name="other")
    profile_touch(profile_id=other.pk)  # no schedule: nothing is written
    assert Profile.objects.get(pk=other.pk).active_at is None

    operations.profile_wake(profile=shop, actor=None)
    done = operations.profile_sleep_schedule(profile=shop, hours=None, actor=None)
    assert done.message == "shop no longer goes to sleep on its own."
    row = Profile.objects.get(pk=shop.pk)
    assert (row.sleep_after_hours, row.active_at) == (None, None)
    assert operations.profiles_sleep_idle(now=later + timedelta(days=99)) == []
    changes = AuditEvent.objects.filter(action="profile.sleep_schedule").order_by("id")
    assert [(e.before, e.after) for e in changes] == [
        ({"hours": None}, {"hours": 1}),
        ({"hours": 1}, {"hours": None}),
    ]


@pytest.mark.parametrize("hours", [0, 721, -1, "8", 8.5, True])
def test_a_schedule_out_of_range_is_a_field_error_and_changes_nothing(shop, hours):
    from deployments.spec import SpecError

    with pytest.raises(SpecError) as refused:
        operations.profile_sleep_schedule(profile=shop, hours=hours, actor=None)
    assert [e.path for e in refused.value.errors] == ["hours"]
    assert Profile.objects.get(pk=shop.pk).sleep_after_hours is None
    assert not AuditEvent.objects.filter(action="profile.sleep_schedule").exists()


def test_a_due_profile_that_cannot_sleep_now_is_left_for_the_next_round(shop, caplog):
    from datetime import timedelta

    from tests.factories import make_release

    operations.profile_sleep_schedule(profile=shop, hours=1, actor=None)
    make_release(shop, "upgrading")  # a deploy is running: helm owns the Deployments
    start = Profile.objects.get(pk=shop.pk).active_at
    with caplog.at_level("INFO", logger="deployments.services.operations"):
        assert operations.profiles_sleep_idle(now=start + timedelta(hours=2)) == []
    assert "shop not put to sleep: release #" in caplog.text
    assert FakeKube.scaled == []


def test_the_reaper_round_sends_the_sleep_round_only_when_a_schedule_is_set(
    shop, monkeypatch, settings
):
    settings.HELMDECK_REAP_SECONDS = 60
    from deployments import heartbeat, tasks

    sent = []
    monkeypatch.setattr(
        tasks.sleep_idle_profiles, "apply_async", lambda **options: sent.append(options)
    )
    heartbeat._send_sleep_round()
    assert sent == []
    operations.profile_sleep_schedule(profile=shop, hours=3, actor=None)
    heartbeat._send_sleep_round()
    assert sent == [{"expires": 60, "retry": False}]  # dropped if not run before the next
    operations.profile_sleep(profile=shop, actor=None)  # asleep: nothing to do
    heartbeat._send_sleep_round()
    assert len(sent) == 1


def test_a_profile_used_after_the_round_read_it_is_not_put_to_sleep(shop):
    from datetime import timedelta

    from django.utils import timezone

    operations.profile_sleep_schedule(profile=shop, hours=1, actor=None)
    now = timezone.now()
    Profile.objects.filter(pk=shop.pk).update(active_at=now - timedelta(hours=2))
    stale = Profile.objects.get(pk=shop.pk)  # what the round read
    Profile.objects.filter(pk=shop.pk).update(active_at=now)  # a visit meanwhile
    with pytest.raises(ActionRefused, match="was used since the round began"):
        operations.profile_sleep(
            profile=stale, actor=None, schedule="idle", idle_before=now - timedelta(hours=1)
        )
    assert FakeKube.scaled == []
