"""The profile page's Resource usage section: loaded after the page (htmx) or as a page of
its own (no JavaScript), viewers only, and "metrics unavailable" against the shared
sandbox with its Metrics API taken away (a 404 from the aggregated API), never a 500."""

import pytest
from django.core.cache import cache

from deployments.models import Cluster, PodState, Profile
from deployments.services import usage
from tests.deployments.services.test_usage import pod_metrics
from tests.factories import PASSWORD, UserFactory

URL = "/profiles/todo-app/usage/"


@pytest.fixture
def no_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


@pytest.fixture
def metrics(monkeypatch, no_cache):
    """Set `metrics.items` to what the fake Metrics API answers."""

    class Answer:
        items = []

    monkeypatch.setattr(usage, "pod_metrics", lambda cluster, **kw: Answer.items)
    return Answer


@pytest.mark.django_db
def test_the_profile_page_loads_the_section_after_it_is_shown_with_a_plain_link(
    login, todo_app, metrics
):
    body = login("viewer").get("/profiles/todo-app/").content.decode()
    section = body[body.index('<section id="usage"') :]
    section = section[: section.index("</section>")]
    assert f'hx-get="{URL}"' in section and 'hx-trigger="load"' in section
    assert f'<a href="{URL}">Show resource usage</a>' in section


@pytest.mark.django_db
def test_it_shows_usage_beside_requests_and_limits_as_a_partial_for_htmx(login, todo_app, metrics):
    metrics.items = [
        pod_metrics("todo-app-backend-1", [("backend", "120m", "300Mi")]),
        pod_metrics("todo-app-frontend-1", [("frontend", "20m", "490Mi")], component="frontend"),
    ]
    response = login("viewer").get(URL, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert 'id="usage-body"' in body and 'hx-trigger="every 15s"' in body
    backend = body[body.index('id="usage-todo-app-backend-1-backend"') :]
    backend = backend[: backend.index("</tr>")]
    assert "120m</span> / 1000m / 1000m" in backend and "300Mi</span> / 1Gi / 1Gi" in backend
    assert 'value="0.120"' in backend and "12%" in backend and 'value="0.293"' in backend
    assert "OOM risk" in body and "memory is at 96% of its 512Mi limit" in body
    assert "usage-oom-risk" in body and "kubectl top pods -n todo-app" in body
    assert response["Cache-Control"] == "no-store"
    assert "HX-Request" in response["Vary"]


@pytest.mark.django_db
def test_without_javascript_it_is_a_page_that_refreshes_itself(login, todo_app, metrics):
    PodState.objects.create(profile=todo_app, namespace="todo-app", name="todo-app-backend-1")
    response = login("viewer").get(URL)
    body = response.content.decode()
    assert response.status_code == 200 and "<html" in body
    assert '<noscript><meta http-equiv="refresh" content="15"></noscript>' in body
    assert 'href="/profiles/todo-app/"' in body
    assert "No sample yet for todo-app-backend-1" in body


@pytest.mark.django_db
def test_it_has_an_empty_state_without_pods(login, todo_app, metrics):
    body = login("viewer").get(URL, headers={"HX-Request": "true"}).content.decode()
    assert "No running pods to measure: deploy the profile." in body


@pytest.mark.django_db
def test_it_is_for_logged_in_users_with_a_role_only(client, todo_app, metrics):
    anonymous = client.get(URL)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    user = UserFactory(role=None)
    assert client.login(username=user.username, password=PASSWORD)
    refused = client.get(URL)
    assert refused.status_code == 403 and "usage-body" not in refused.content.decode()


@pytest.mark.django_db
def test_an_unknown_profile_is_a_404(login, metrics):
    assert login("viewer").get("/profiles/nope/usage/").status_code == 404


@pytest.mark.django_db
def test_it_says_metrics_unavailable_when_the_cluster_is_unreachable(
    login, todo_app, unreachable_kubeconfig, no_cache
):
    Cluster.objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig)
    )
    response = login("viewer").get(URL, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "metrics unavailable: the cluster is unreachable" in response.content.decode()


@pytest.mark.integration
@pytest.mark.django_db
def test_against_the_sandbox_without_metrics_server_it_says_how_to_enable_it(
    login, todo_app, sandbox, redis_url, settings, no_metrics_api
):
    settings.CACHES = {
        "default": {
            "BACKEND": "controlpanel.cache.JSONRedisCache",  # as settings.CACHES
            "LOCATION": redis_url,
            "KEY_PREFIX": f"test-usage-{sandbox.namespace}",
        }
    }
    Cluster.objects.filter(pk=todo_app.cluster_id).update(kubeconfig_path=str(sandbox.kubeconfig))
    Profile.objects.filter(pk=todo_app.pk).update(namespace=sandbox.namespace)
    # without metrics-server's APIService the aggregated API is simply not there (404)
    assert "metrics.k8s.io" not in sandbox.kubectl("api-versions")
    client = login("viewer")
    try:
        response = client.get(URL, headers={"HX-Request": "true"})
        assert response.status_code == 200
        body = response.content.decode()
        assert (
            "<strong>metrics unavailable: <code>minikube addons enable metrics-server</code>"
            '</strong> <span class="muted">(the Metrics API answered 404 Not Found)</span>'
        ) in body
        page = client.get(URL)
        assert page.status_code == 200
        assert "metrics unavailable: <code>minikube addons enable" in page.content.decode()
    finally:
        cache.delete(f"usage:{todo_app.pk}")
