"""Teardown against the sandbox: helm uninstall of a deployed profile, its namespace deleted
only when Helmdeck created it, the history recording it, and a redeploy that works."""

import contextlib

import pytest
from kubernetes.client.rest import ApiException

from deployments.integrations.helm import Helm
from deployments.models import Component, Profile, Release
from deployments.selectors import current_release, status_row
from deployments.services import teardown
from deployments.services.releases import (
    ReleaseRefused,
    release_request,
    release_rollback_request,
    release_run,
    release_teardown_request,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def deploy(profile):
    release = release_run(release_request(profile=profile, actor=None, build=False).pk)
    assert release.status == Release.Status.SUCCEEDED, release.reason
    return release


def tear_down(profile):
    release = release_teardown_request(profile=profile, actor=None)
    assert [s.name for s in release.steps.all()] == ["uninstall"]
    teardown.release_teardown(release.pk)
    release.refresh_from_db()
    assert release.status == Release.Status.SUCCEEDED, release.reason
    return release, [line.text for line in release.log_lines.all()]


def test_it_uninstalls_keeps_a_namespace_it_did_not_create_and_deploys_again(
    small_app, sandbox, helm_bin
):
    with pytest.raises(ReleaseRefused, match="small is not deployed"):
        release_teardown_request(profile=small_app, actor=None)
    deploy(small_app)
    # the namespace edited since the deploy: the teardown goes where the release runs
    Profile.objects.filter(pk=small_app.pk).update(namespace="edited-since")
    release, log = tear_down(Profile.objects.get(pk=small_app.pk))
    assert f"namespace {sandbox.namespace} kept: it was there before small's first deploy" in log
    helm = Helm(binary=helm_bin, kubeconfig=str(sandbox.kubeconfig))
    assert helm.run("list", "--namespace", sandbox.namespace, "--short").strip() == ""
    assert not sandbox.apps.list_namespaced_deployment(sandbox.namespace).items
    assert sandbox.core.read_namespace(sandbox.namespace).metadata.deletion_timestamp is None
    assert current_release(profile=small_app) is None
    sandbox.wait_until(lambda: not sandbox.pods(), what="every pod gone")
    assert status_row(small_app.pk).health.status == "not_deployed"
    with pytest.raises(ReleaseRefused, match="was torn down"):
        release_rollback_request(profile=small_app, actor=None)
    with pytest.raises(ReleaseRefused, match="small is not deployed"):
        release_teardown_request(profile=small_app, actor=None)

    Profile.objects.filter(pk=small_app.pk).update(namespace=sandbox.namespace)
    again = deploy(Profile.objects.get(pk=small_app.pk))
    assert again.helm_revision == 1  # a fresh install
    assert current_release(profile=small_app).pk == again.pk


def test_it_deletes_the_namespace_it_created(small_app, sandbox, helm_bin):
    namespace = f"{sandbox.namespace[:55]}-own"
    Profile.objects.filter(pk=small_app.pk).update(namespace=namespace)
    # no pods: a namespace made by helm has no toleration for the simulated nodes
    Component.objects.filter(profile=small_app).update(replicas=0)
    small_app.refresh_from_db()
    try:
        deploy(small_app)
        created = sandbox.core.read_namespace(namespace)
        assert created.metadata.annotations[teardown.CREATED_FOR] == "small"
        # another profile deploys into it too: kept
        other = Profile.objects.create(name="other", namespace=namespace, cluster=small_app.cluster)
        _, log = tear_down(small_app)
        assert f"namespace {namespace} kept: in use by profile other" in log
        assert sandbox.core.read_namespace(namespace).metadata.deletion_timestamp is None
        other.delete()
        deploy(Profile.objects.get(pk=small_app.pk))
        _, log = tear_down(Profile.objects.get(pk=small_app.pk))
        assert f"namespace {namespace} deleted: Helmdeck created it for small" in log

        def gone():
            try:
                return sandbox.core.read_namespace(namespace).metadata.deletion_timestamp
            except ApiException as exc:
                return exc.status == 404

        sandbox.wait_until(gone, what=f"namespace {namespace} deleted")
    finally:
        with contextlib.suppress(ApiException):
            sandbox.core.delete_namespace(namespace)


def test_it_keeps_a_namespace_holding_what_helm_does_not_manage(small_app, sandbox):
    from kubernetes import client

    namespace = f"{sandbox.namespace[:50]}-tls"
    Profile.objects.filter(pk=small_app.pk).update(namespace=namespace)
    Component.objects.filter(profile=small_app).update(replicas=0)
    small_app.refresh_from_db()
    try:
        deploy(small_app)
        secret = client.V1Secret(
            metadata=client.V1ObjectMeta(name="shop-tls"),
            type="kubernetes.io/tls",
            string_data={"tls.crt": "x", "tls.key": "y"},
        )
        sandbox.core.create_namespaced_secret(namespace, secret)  # made by hand, as README says
        _, log = tear_down(small_app)
        assert any(
            line.startswith(f"namespace {namespace} kept: it holds what helm does not manage")
            and "Secret shop-tls" in line
            for line in log
        ), log
        assert sandbox.core.read_namespace(namespace).metadata.deletion_timestamp is None
    finally:
        with contextlib.suppress(ApiException):
            sandbox.core.delete_namespace(namespace)
