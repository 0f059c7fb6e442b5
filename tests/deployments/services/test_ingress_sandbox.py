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
