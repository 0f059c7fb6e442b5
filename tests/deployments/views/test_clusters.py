"""Cluster pages: the list, and one cluster with the doctor's results (worker faked here;
tests/deployments/views/test_release_pages_worker.py runs a real one)."""

import pytest

from deployments.views import clusters as views
from tests.factories import make_release

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
RESULTS = [
    {"name": "docker", "ok": True, "detail": "Docker 28.1, Minikube's daemon", "fix": ""},
    {
        "name": "cluster size",
        "ok": False,
        "detail": "1 node(s), 2 CPU and 4Gi: below 4/8",
        "fix": "minikube delete && minikube start --cpus=4 --memory=8192 --driver=docker",
    },
]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def doctor(monkeypatch):
    class Doctor:
        results = RESULTS
        forgotten = []

    fake = Doctor()
    monkeypatch.setattr(views, "doctor_request", lambda cluster: fake.results)
    monkeypatch.setattr(views, "doctor_forget", fake.forgotten.append)
    return fake


def test_it_lists_clusters_from_the_nav(login, todo_app):
    client = login("viewer")
    assert 'href="/clusters/"' in client.get("/").content.decode()
    body = client.get("/clusters/").content.decode()
    assert 'href="/clusters/minikube/"' in body and "4 CPU, 8Gi" in body


def test_it_polls_until_the_doctor_has_run(login, todo_app, doctor):
    doctor.results = None
    client = login("viewer")
    body = client.get("/clusters/minikube/").content.decode()
    assert "Checking…" in body and 'hx-trigger="every 1s"' in body
    refresh = '<noscript><meta http-equiv="refresh" content="2;url=/clusters/minikube/?polls=1"'
    assert refresh in body
    partial = client.get("/clusters/minikube/?polls=31", headers=HX).content.decode()
    assert partial.lstrip().startswith('<section id="doctor"') and "<html" not in partial
    assert "Is a worker running?" in partial


def test_it_shows_each_failed_check_with_its_fix(login, todo_app, doctor):
    release = make_release(todo_app, "succeeded", revision=3)
    body = login("viewer").get("/clusters/minikube/").content.decode()
    assert "every 1s" not in body and "http-equiv" not in body
    assert "1 of 2 checks failed." in body
    assert "below 4/8" in body and "minikube delete &amp;&amp; minikube start --cpus=4" in body
    assert "Minikube&#x27;s daemon" in body
    assert body.count("Fix:") == 1  # only failed checks get one
    assert 'href="/profiles/todo-app/"' in body and f'href="/releases/{release.pk}/"' in body


def test_it_checks_again_for_deployers_only(login, todo_app, doctor):
    viewer = login("viewer")
    assert "Check again" not in viewer.get("/clusters/minikube/").content.decode()
    assert viewer.post("/clusters/minikube/check/").status_code == 403
    assert doctor.forgotten == []
    deployer = login("deployer")
    response = deployer.post("/clusters/minikube/check/")
    assert response.status_code == 302 and response["Location"] == "/clusters/minikube/"
    assert [c.name for c in doctor.forgotten] == ["minikube"]
    assert deployer.get("/clusters/minikube/check/").status_code == 405


def test_it_says_how_images_reach_the_nodes(login, todo_app, doctor):
    from deployments.models import Cluster

    client = login("viewer")
    assert (
        "Minikube <code>minikube</code>'s Docker"
        in client.get("/clusters/minikube/").content.decode()
    )
    Cluster.objects.filter(name="minikube").update(
        image_delivery="containerd", containerd_address="/run/containerd/containerd.sock"
    )
    body = client.get("/clusters/minikube/").content.decode()
    assert (
        "builds into the local Docker, then loads images into the node's containerd "
        "(<code>/run/containerd/containerd.sock</code>)"
    ) in body
    assert (
        "local Docker, loaded into the node's containerd"
        in client.get("/clusters/").content.decode()
    )
