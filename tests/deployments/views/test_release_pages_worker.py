"""The Deploy and cluster pages with a real Celery worker computing the preview and the
doctor: the page polls (as htmx would) until the worker stored its result, then shows it,
and no secret value reaches the page."""

import time

import pytest

from deployments.models import Cluster, Release
from deployments.services.profiles import secret_set
from tests.test_secret_leaks import CANARY, assert_clean

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def poll(client, url, target, *, done, timeout=120):
    """GET `url` as htmx polls it, until `done(body)`; returns that body."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        response = client.get(f"{url}?polls={polls}", headers={**HX, "HX-Target": target})
        assert response.status_code == 200
        body = response.content.decode()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"the worker never answered {url}: {body[-500:]}"
        polls += 1
        time.sleep(1)


def test_it_previews_a_deploy_computed_by_the_worker(
    celery_worker, todo_app, login, unreachable_kubeconfig
):
    Cluster.objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig)
    )
    for n, key in enumerate(todo_app.secrets.values_list("key", flat=True)):
        secret_set(profile=todo_app, key=key, value=f"{CANARY}{n}", actor=None)
    client = login("deployer")
    first = client.get("/profiles/todo-app/deploy/").content.decode()
    assert "Computing preview" in first and 'hx-trigger="every 1s"' in first
    body = poll(
        client,
        "/profiles/todo-app/deploy/",
        "preview",
        done=lambda text: "Computing preview" not in text,
    )
    assert "every 1s" not in body
    assert "Deployment/todo-app-backend" in body, body[:3000]
    assert "Service/frontend-service" in body
    assert "cannot read what is deployed now" in body  # the cluster is unreachable
    assert '<code>JWT_SECRET</code> <span class="tag state-added">added</span>' in body
    assert_clean(body, "the deploy preview")
    assert_clean(client.get("/profiles/todo-app/deploy/").content.decode(), "the deploy page")
    assert not Release.objects.exists()  # a preview deploys nothing


def test_it_shows_the_doctor_computed_by_the_worker(
    celery_worker, todo_app, login, unreachable_kubeconfig
):
    Cluster.objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig)
    )
    client = login("viewer")
    first = client.get("/clusters/minikube/").content.decode()
    assert "Checking…" in first
    body = poll(client, "/clusters/minikube/", "doctor", done=lambda text: "Checking…" not in text)
    assert "kube context" in body and "failed" in body
    # the unreachable cluster's check fails, with the research's fix
    kube = body.split("<strong>kube context</strong>")[1].split("</li>")[0]
    assert "Fix:" in kube and "minikube start" in kube
    assert "<strong>helm</strong>" in body and "<strong>kubectl</strong>" in body
