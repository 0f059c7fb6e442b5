"""In a real Chromium the profile page shows first, then its Resource usage section loads
(htmx, on load) and replaces the plain link with what the cluster said: against the shared
sandbox with its Metrics API taken away (no_metrics_api), the "metrics unavailable"
message and its fix."""

import pytest

from deployments.models import Cluster, Profile
from tests.factories import UserFactory


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_section_loads_after_the_page_and_says_metrics_are_unavailable(
    live_server, signed_in_page, todo_app, sandbox, settings, no_metrics_api
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    Cluster.objects.filter(pk=todo_app.cluster_id).update(kubeconfig_path=str(sandbox.kubeconfig))
    Profile.objects.filter(pk=todo_app.pk).update(namespace=sandbox.namespace)
    user = UserFactory(role="viewer")
    page = signed_in_page(live_server.url, user, "/profiles/todo-app/")
    section = page.locator("section#usage")
    section.locator(".usage-unavailable").wait_for()
    text = section.inner_text()
    assert "metrics unavailable: minikube addons enable metrics-server" in text
    assert "Show resource usage" not in text  # the link was replaced by the answer
    assert section.locator("#usage-body[hx-trigger='every 15s']").count() == 1
