"""Restart, scale, delete a pod, sleep and wake, against the sandbox: a small two-component
profile deployed by helm, then each action checked on what the cluster runs afterwards."""

from decimal import Decimal

import pytest
from kubernetes import client

from deployments.integrations.kube import Kube
from deployments.models import AuditEvent, Component, Profile, Release
from deployments.services.capacity import pod_requests
from deployments.services.operations import (
    ActionRefused,
    component_restart,
    component_scale,
    pod_delete,
    profile_sleep,
    profile_wake,
)
from deployments.services.releases import release_request, release_run
from deployments.spec import SpecError
from tests.factories import UserFactory
from tests.fixtures.profiles import replicas_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def deploy(profile):
    release = release_run(release_request(profile=profile, actor=None, build=False).pk)
    assert release.status == Release.Status.SUCCEEDED, release.reason
    return release


def running(sandbox, component):
    """Names of the component's pods that are Ready and not going away."""
    pods = sandbox.pods(f"app.kubernetes.io/component={component}")
    return {
        p.metadata.name
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    }


def requested(profile, sandbox):
    """CPU the namespace's live pods request, as the capacity check counts them (the
    cluster-wide sum moves with the other tests running beside this one)."""
    with Kube(profile.cluster) as kube:
        pods = [p for p in kube.active_pods() if p["metadata"]["namespace"] == sandbox.namespace]
    return sum(
        (pod_requests(p).cpu for p in pods if p["metadata"].get("deletionTimestamp") is None),
        Decimal(0),
    )


@pytest.fixture
def deployed(small_deployed):
    return small_deployed


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def test_it_restarts_a_component_by_rolling_its_pods_once(deployed, sandbox, alice):
    api = deployed.components.get(name="api")
    before = running(sandbox, "api")
    component_restart(profile=deployed, component=api, actor=alice)
    with pytest.raises(ActionRefused, match=r"restarted \d+ s ago"):  # the double click
        component_restart(profile=deployed, component=api, actor=alice)
    after = sandbox.wait_until(
        lambda: (now := running(sandbox, "api")) and not now & before and now,
        timeout=60,
        what="new api pods Ready, the old ones gone",
    )
    assert len(after) == 1
    assert running(sandbox, "web")  # the other component untouched
    assert list(
        AuditEvent.objects.filter(action="component.restart").values_list("actor_name", "target")
    ) == [("alice", "api")]


def test_it_scales_until_the_next_deploy_sets_the_profiles_number(deployed, sandbox, alice):
    api = deployed.components.get(name="api")
    component_scale(profile=deployed, component=api, replicas=3, actor=alice)
    assert replicas_of(sandbox)["api"] == 3
    assert Component.objects.get(pk=api.pk).scaled_replicas == 3
    sandbox.wait_until(lambda: len(running(sandbox, "api")) == 3, what="3 api pods")
    component_scale(profile=deployed, component=api, replicas=0, actor=alice)
    sandbox.wait_until(
        lambda: not sandbox.pods("app.kubernetes.io/component=api"), what="no api pod"
    )
    with pytest.raises(SpecError) as bad:
        component_scale(profile=deployed, component=api, replicas=51, actor=alice)
    assert [e.path for e in bad.value.errors] == ["replicas"]
    event = AuditEvent.objects.filter(action="component.scale").order_by("at", "id").last()
    assert (event.before, event.after) == ({"replicas": 3}, {"replicas": 0})

    deploy(deployed)  # the profile says 1
    assert replicas_of(sandbox)["api"] == 1
    assert Component.objects.get(pk=api.pk).scaled_replicas is None


def test_sleep_frees_the_cluster_and_wake_restores_what_ran(deployed, sandbox, alice):
    web = deployed.components.get(name="web")
    component_scale(profile=deployed, component=web, replicas=2, actor=alice)
    sandbox.wait_until(lambda: len(running(sandbox, "web")) == 2, what="2 web pods")
    awake = requested(deployed, sandbox)
    assert awake == Decimal("0.15")  # api 50m, web 2 x 50m
    profile_sleep(profile=deployed, actor=alice)
    profile = Profile.objects.get(pk=deployed.pk)
    assert profile.asleep_since is not None and profile.asleep_by == "alice"
    assert profile.sleep_replicas == {"api": 1, "web": 2}
    assert replicas_of(sandbox) == {"api": 0, "web": 0}
    sandbox.wait_until(lambda: not sandbox.pods(), what="every pod gone")
    # nothing of it holds requests now: what the next deploy's capacity check counts
    assert requested(deployed, sandbox) == 0
    with pytest.raises(ActionRefused, match="small is already asleep"):
        profile_sleep(profile=profile, actor=alice)
    with pytest.raises(ActionRefused, match="wake it"):
        component_restart(profile=profile, component=web, actor=alice)

    assert profile_wake(profile=profile, actor=alice).replicas == {"api": 1, "web": 2}
    with pytest.raises(ActionRefused, match="not asleep"):
        profile_wake(profile=profile, actor=alice)
    sandbox.wait_until(
        lambda: len(running(sandbox, "web")) == 2 and len(running(sandbox, "api")) == 1,
        what="every pod Ready again",
    )
    assert Profile.objects.get(pk=deployed.pk).asleep_since is None
    assert list(
        AuditEvent.objects.filter(action__startswith="profile.").values_list("action", flat=True)
    ) == ["profile.wake", "profile.sleep"]


def test_a_deploy_wakes_a_sleeping_profile(deployed, sandbox, alice):
    profile_sleep(profile=deployed, actor=alice)
    deploy(Profile.objects.get(pk=deployed.pk))
    assert replicas_of(sandbox) == {"api": 1, "web": 1}
    assert Profile.objects.get(pk=deployed.pk).asleep_since is None


def test_it_deletes_only_a_pod_of_its_own_release(deployed, sandbox, alice):
    stranger = client.V1Pod(
        metadata=client.V1ObjectMeta(name="stranger", labels={"app": "other"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="c:1")]),
    )
    sandbox.core.create_namespaced_pod(sandbox.namespace, stranger)
    with pytest.raises(ActionRefused, match="has no pod stranger") as refused:
        pod_delete(profile=deployed, pod="stranger", actor=alice)
    assert refused.value.status == 404
    assert sandbox.pod("stranger").metadata.deletion_timestamp is None

    (old,) = running(sandbox, "api")
    pod_delete(profile=deployed, pod=old, actor=alice)
    sandbox.wait_until(
        lambda: (now := running(sandbox, "api")) and old not in now,
        what="a new api pod Ready",
    )
    assert AuditEvent.objects.filter(action="pod.delete", target=old).exists()


def test_every_action_waits_for_an_active_release(deployed, sandbox, alice):
    api = deployed.components.get(name="api")
    release = release_request(profile=deployed, actor=None, build=False)  # queued, not run
    for act in (
        lambda: component_restart(profile=deployed, component=api, actor=alice),
        lambda: component_scale(profile=deployed, component=api, replicas=2, actor=alice),
        lambda: pod_delete(profile=deployed, pod="x", actor=alice),
        lambda: profile_sleep(profile=deployed, actor=alice),
        lambda: profile_wake(profile=deployed, actor=alice),
    ):
        with pytest.raises(ActionRefused, match=f"release #{release.pk} .* is queued"):
            act()
    assert replicas_of(sandbox) == {"api": 1, "web": 1}
    assert not AuditEvent.objects.filter(
        action__regex=r"^(component|pod|profile\.(sleep|wake))"
    ).exists()


def test_a_cluster_that_does_not_answer_is_a_reason_not_a_crash(
    deployed, sandbox, alice, unreachable_kubeconfig
):
    deployed.cluster.kubeconfig_path = str(unreachable_kubeconfig)
    deployed.cluster.save()
    api = deployed.components.get(name="api")
    with pytest.raises(ActionRefused, match="unreachable") as refused:
        component_scale(profile=deployed, component=api, replicas=2, actor=alice)
    assert refused.value.status == 502
    with pytest.raises(ActionRefused, match="unreachable") as refused:
        component_restart(profile=deployed, component=api, actor=alice)
    assert refused.value.status == 502
    with pytest.raises(ActionRefused, match="unreachable"):
        profile_sleep(profile=deployed, actor=alice)
    assert Profile.objects.get(pk=deployed.pk).asleep_since is None


def test_nothing_deployed_is_a_refusal_not_a_crash(small_app, alice):
    web = small_app.components.get(name="web")
    for act in (
        lambda: component_restart(profile=small_app, component=web, actor=alice),
        lambda: component_scale(profile=small_app, component=web, replicas=2, actor=alice),
        lambda: profile_sleep(profile=small_app, actor=alice),
    ):
        with pytest.raises(ActionRefused, match="small is not deployed: deploy it first") as no:
            act()
        assert no.value.status == 409


def test_actions_follow_the_release_to_the_namespace_it_runs_in(deployed, sandbox, alice):
    """The profile's namespace edited after the deploy: what runs is still where it was."""
    Profile.objects.filter(pk=deployed.pk).update(namespace="somewhere-else")
    deployed.refresh_from_db()
    web = deployed.components.get(name="web")
    component_scale(profile=deployed, component=web, replicas=2, actor=alice)
    assert replicas_of(sandbox) == {"api": 1, "web": 2}
