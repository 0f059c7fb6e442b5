"""An Ingress deployed to the sandbox: the API server takes it (its own validation, not only
our schemas), labelled like every other resource, and the status page links to its host."""

import pytest
from kubernetes import client

from deployments.models import Component, Release
from deployments.selectors import status_row
from deployments.services.releases import release_request, release_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_deployed_ingress_routes_its_host_to_the_components_service(small_app, sandbox):
    Component.objects.filter(profile=small_app, name="web").update(
        ingress_host="small.example.test", ingress_path="/shop"
    )
    release = release_run(release_request(profile=small_app, actor=None, build=False).pk)
    assert release.status == Release.Status.SUCCEEDED, release.reason

    networking = client.NetworkingV1Api(sandbox.api)
    (ingress,) = networking.list_namespaced_ingress(sandbox.namespace).items
    assert ingress.metadata.name == "small-web"
    assert ingress.metadata.labels["app.kubernetes.io/instance"] == "small"
    assert ingress.spec.ingress_class_name == "nginx"
    (rule,) = ingress.spec.rules
    (path,) = rule.http.paths
    assert (rule.host, path.path, path.path_type) == ("small.example.test", "/shop", "Prefix")
    assert path.backend.service.name == "web-service"

    web_links = next(
        links for c, _, links in status_row(small_app.pk).component_rows if c.name == "web"
    )
    assert [link.url for link in web_links] == ["http://small.example.test/shop"]


def test_the_deploy_checks_see_an_ingress_another_release_made(small_app, sandbox):
    """A host taken by an Ingress made with kubectl (not a profile): the save path cannot
    see it; the deploy's checks ask the cluster and refuse with a field-level reason."""
    networking = client.NetworkingV1Api(sandbox.api)
    rule = client.V1IngressRule(
        host="taken.example.test",
        http=client.V1HTTPIngressRuleValue(
            paths=[
                client.V1HTTPIngressPath(
                    path="/",
                    path_type="Prefix",
                    backend=client.V1IngressBackend(
                        service=client.V1IngressServiceBackend(
                            name="other", port=client.V1ServiceBackendPort(number=80)
                        )
                    ),
                )
            ]
        ),
    )
    networking.create_namespaced_ingress(
        sandbox.namespace,
        client.V1Ingress(
            metadata=client.V1ObjectMeta(name="by-hand"), spec=client.V1IngressSpec(rules=[rule])
        ),
    )
    Component.objects.filter(profile=small_app, name="web").update(
        ingress_host="taken.example.test"
    )
    release = release_run(release_request(profile=small_app, actor=None, build=False).pk)
    assert release.status == Release.Status.FAILED
    assert (
        f"Ingress host taken.example.test is already used by Ingress {sandbox.namespace}/by-hand"
        in release.reason
    )
