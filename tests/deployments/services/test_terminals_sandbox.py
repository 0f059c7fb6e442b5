"""Where a pod terminal may open (services/terminals.terminal_target), asked of the
sandbox's API server: only a Running pod of the profile's installed release, in the
namespace that release went to, and only one of its own containers."""

import pytest
from kubernetes import client

from deployments.integrations import kube as kube_module
from deployments.services.operations import ActionRefused
from deployments.services.terminals import terminal_target

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def a_pod(sandbox, component):
    pods = sandbox.pods(f"app.kubernetes.io/component={component}")
    return next(
        p.metadata.name
        for p in pods
        if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
    )


def refused(**kwargs):
    with pytest.raises(ActionRefused) as caught:
        terminal_target(**kwargs)
    return caught.value.status, str(caught.value)


def test_only_a_running_pod_of_the_release_and_its_own_containers(small_deployed, sandbox):
    web = "app.kubernetes.io/component=web"
    sandbox.wait_until(
        lambda: any(p.status.phase == "Running" for p in sandbox.pods(web)),
        timeout=60,
        what="a Running web pod",
    )
    pod = a_pod(sandbox, "web")

    target = terminal_target(profile=small_deployed, pod=pod)
    assert (target.namespace, target.pod, target.container) == (sandbox.namespace, pod, "web")
    assert target.containers == ("web",)
    assert terminal_target(profile=small_deployed, pod=pod, container="web") == target

    status, message = refused(profile=small_deployed, pod=pod, container="db")
    assert status == 404 and message == f"pod {pod} has no container 'db' (it has web)"
    status, message = refused(profile=small_deployed, pod="small-web-nothere")
    assert status == 404 and f"no pod small-web-nothere in namespace {sandbox.namespace}" in message

    # a pod of the same namespace that is not this release's: not ours to open
    sandbox.core.create_namespaced_pod(
        sandbox.namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(
                name="stranger", labels={"app.kubernetes.io/instance": "someone-else"}
            ),
            spec=client.V1PodSpec(containers=[client.V1Container(name="x", image="x:1")]),
        ),
    )
    assert refused(profile=small_deployed, pod="stranger")[0] == 404

    def no_cluster(*args, **kwargs):
        raise AssertionError("the cluster was asked")

    # names that cannot be a pod's or a container's never reach the cluster
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kube_module.Kube, "pod", no_cluster)
        for name, container in [("../etc", ""), (pod, "Bad_Name"), ("a" * 254, "")]:
            assert refused(profile=small_deployed, pod=name, container=container)[0] == 404


def test_a_profile_that_is_not_deployed_has_no_shell(small_app):
    assert refused(profile=small_app, pod="small-web-1") == (
        409,
        "small is not deployed: there is no pod to open",
    )
