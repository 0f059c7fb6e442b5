"""Who may open what: anonymous, a user without a role, viewer, deployer, admin x every URL."""

import pytest
from django.test import Client

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

VIEW, DEPLOY, EDIT = "view", "deploy", "edit"
# (method, url, data, needs, status for a user who may)
PAGES = [
    ("get", "/", None, VIEW, 200),
    ("get", "/profiles/", None, VIEW, 200),
    ("get", "/profiles/?q=todo", None, VIEW, 200),
    ("get", "/profiles/todo-app/", None, VIEW, 200),
    ("get", "/profiles/todo-app/export.yaml", None, VIEW, 200),
    ("get", "/profiles/todo-app/logs/", None, VIEW, 200),
    ("get", "/profiles/todo-app/logs/download/", None, VIEW, 400),  # no pod or component
    ("get", "/profiles/todo-app/usage/", None, VIEW, 200),
    ("get", "/profiles/new/", None, EDIT, 200),
    ("get", "/profiles/todo-app/edit/", None, EDIT, 200),
    ("get", "/profiles/todo-app/clone/", None, EDIT, 200),
    ("get", "/profiles/todo-app/delete/", None, EDIT, 200),
    ("get", "/profiles/import/", None, EDIT, 200),
    ("get", "/profiles/rows/components/?components-TOTAL_FORMS=1", None, EDIT, 200),
    ("get", "/profiles/rows/secrets/", None, EDIT, 200),
    ("post", "/profiles/new/", {}, EDIT, 200),
    ("post", "/profiles/todo-app/edit/", {}, EDIT, 200),
    ("post", "/profiles/validate/", {"name": "x"}, EDIT, 204),
    ("post", "/profiles/todo-app/clone/", {}, EDIT, 200),
    ("post", "/profiles/import/", {}, EDIT, 200),
    ("post", "/profiles/todo-app/delete/", {}, EDIT, 302),
]
# Release and cluster pages: {queued}, {succeeded}, {first} are release ids (see `releases`).
RELEASE_PAGES = [
    ("get", "/profiles/todo-app/deploy/", None, DEPLOY, 200),
    ("post", "/profiles/todo-app/deploy/", {}, DEPLOY, 400),  # invalid form: says why
    ("get", "/profiles/todo-app/releases/", None, VIEW, 200),
    ("get", "/releases/{queued}/", None, VIEW, 200),
    ("get", "/releases/{succeeded}/", None, VIEW, 200),
    ("get", "/releases/{queued}/cancel/", None, DEPLOY, 200),
    ("post", "/releases/{queued}/cancel/", {}, DEPLOY, 302),
    ("get", "/releases/{first}/diff/{succeeded}/", None, VIEW, 200),
    ("get", "/releases/{first}/rollback/", None, DEPLOY, 200),
    ("post", "/releases/{first}/rollback/", {}, DEPLOY, 409),  # {queued} is still active
    ("get", "/clusters/", None, VIEW, 200),
    ("get", "/clusters/minikube/", None, VIEW, 200),
    ("post", "/clusters/minikube/check/", {}, DEPLOY, 302),
    # actions on what runs: each page shows its form; a POST without one is a 400
    ("get", "/profiles/todo-app/components/backend/restart/", None, DEPLOY, 200),
    ("post", "/profiles/todo-app/components/backend/restart/", {}, DEPLOY, 400),
    ("get", "/profiles/todo-app/components/backend/scale/", None, DEPLOY, 200),
    ("post", "/profiles/todo-app/components/backend/scale/", {}, DEPLOY, 400),
    ("get", "/profiles/todo-app/pods/todo-app-backend-1/delete/", None, DEPLOY, 200),
    ("post", "/profiles/todo-app/pods/todo-app-backend-1/delete/", {}, DEPLOY, 400),
    ("get", "/profiles/todo-app/sleep/", None, DEPLOY, 200),
    ("post", "/profiles/todo-app/sleep/", {}, DEPLOY, 400),
    ("get", "/profiles/todo-app/sleep/schedule/", None, DEPLOY, 200),
    ("post", "/profiles/todo-app/sleep/schedule/", {"hours": "0"}, DEPLOY, 400),
    ("get", "/profiles/todo-app/wake/", None, DEPLOY, 200),
    ("post", "/profiles/todo-app/wake/", {}, DEPLOY, 400),
    # the pod terminal: admins only; off by default, where its page says how to turn it on
    ("get", "/profiles/todo-app/pods/todo-app-backend-1/terminal/", None, EDIT, 404),
    ("get", "/profiles/todo-app/teardown/", None, EDIT, 200),  # admins
    ("post", "/profiles/todo-app/teardown/", {}, EDIT, 400),
]
ADMIN_PAGES = [
    "/admin/",
    "/admin/deployments/profile/",
    "/admin/deployments/profile/add/",
    "/admin/deployments/cluster/",
    "/admin/deployments/auditevent/",
]
ROLES = [None, "", "viewer", "deployer", "admin"]  # None: anonymous, "": no role


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(role):
    client = Client()
    if role is not None:
        user = UserFactory(role=role or None)
        assert client.login(username=user.username, password=PASSWORD)
    return client


def expected(role, needs, allowed_status):
    if role is None:
        return 302
    if role == "admin" or (needs == VIEW and role in ("viewer", "deployer")):
        return allowed_status
    if needs == DEPLOY and role == "deployer":
        return allowed_status
    return 403


@pytest.mark.parametrize("role", ROLES, ids=lambda r: {None: "anonymous", "": "no-role"}.get(r, r))
@pytest.mark.parametrize(
    ("method", "url", "data", "needs", "status"), PAGES, ids=[f"{p[0]} {p[1]}" for p in PAGES]
)
def test_it_enforces_the_permission_matrix(todo_app, role, method, url, data, needs, status):
    client = client_for(role)
    response = getattr(client, method)(url, data) if data is not None else client.get(url)
    assert response.status_code == expected(role, needs, status)
    if role is None:
        assert response["Location"].startswith("/accounts/login/?next=")


@pytest.fixture
def releases(todo_app, monkeypatch):
    """Two succeeded releases and a queued one; the worker's side answers "still computing"."""
    from deployments.views import clusters, releases
    from tests.factories import make_release

    monkeypatch.setattr(releases, "preview_request", lambda profile: None)
    monkeypatch.setattr(releases, "release_enqueue", lambda release: None)
    monkeypatch.setattr(clusters, "doctor_request", lambda cluster: None)
    monkeypatch.setattr(clusters, "doctor_forget", lambda cluster: None)
    first = make_release(todo_app, revision=1)
    succeeded = make_release(todo_app, revision=2)
    queued = make_release(todo_app, "queued")
    return {"first": first.pk, "succeeded": succeeded.pk, "queued": queued.pk}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: {None: "anonymous", "": "no-role"}.get(r, r))
@pytest.mark.parametrize(
    ("method", "url", "data", "needs", "status"),
    RELEASE_PAGES,
    ids=[f"{p[0]} {p[1]}" for p in RELEASE_PAGES],
)
def test_it_enforces_the_permission_matrix_on_release_pages(
    releases, role, method, url, data, needs, status
):
    client = client_for(role)
    url = url.format(**releases)
    response = getattr(client, method)(url, data) if data is not None else client.get(url)
    assert response.status_code == expected(role, needs, status)
    if role is None:
        assert response["Location"].startswith("/accounts/login/?next=")


def test_it_refuses_the_release_stream_to_anonymous_users_and_users_without_a_role(releases):
    for role in (None, ""):
        response = client_for(role).get(f"/releases/{releases['queued']}/stream/")
        assert response.status_code == (401 if role is None else 403)


# The profile stream (viewers may watch; tests/deployments/views/test_pods.py streams it).
@pytest.mark.parametrize(("role", "status"), [(None, 401), ("", 403)], ids=["anonymous", "no-role"])
def test_it_refuses_the_profile_stream_to_anonymous_users_and_users_without_a_role(
    todo_app, role, status
):
    response = client_for(role).get("/profiles/todo-app/stream/")
    assert response.status_code == status


@pytest.mark.parametrize("role", ROLES, ids=lambda r: {None: "anonymous", "": "no-role"}.get(r, r))
@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_it_lets_only_the_admin_role_into_the_admin_site(todo_app, role, url):
    response = client_for(role).get(url)
    if role == "admin":
        assert response.status_code == 200
    else:
        assert response.status_code == 302
        assert response["Location"].startswith(("/admin/login/", "/accounts/login/"))


def test_it_explains_a_403_in_the_page_layout(todo_app):
    response = client_for("viewer").get("/profiles/new/")
    assert response.status_code == 403
    assert b"Your role does not allow" in response.content and b"Log out" in response.content


def test_it_serves_the_login_page_to_anonymous_users(db):
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="username"' in body and 'name="password"' in body and "autofocus" in body


def test_it_hides_edit_buttons_from_viewers_and_deployers(todo_app):
    for role in ("viewer", "deployer"):
        body = client_for(role).get("/profiles/todo-app/").content.decode()
        assert "/profiles/todo-app/edit/" not in body
        assert "/profiles/todo-app/delete/" not in body
        assert "/profiles/todo-app/clone/" not in body
        assert "/admin/" not in body
        assert "/profiles/todo-app/export.yaml" in body
    body = client_for("admin").get("/profiles/todo-app/").content.decode()
    assert "/profiles/todo-app/edit/" in body and "/admin/" in body


def test_it_answers_404_and_405_rather_than_500(todo_app):
    client = client_for("admin")
    missing = client.get("/profiles/nope/")
    assert missing.status_code == 404 and b"Not found" in missing.content
    assert client.get("/profiles/nope/edit/").status_code == 404
    assert client.get("/profiles/nope/export.yaml").status_code == 404
    assert client.get("/profiles/a%00b/").status_code == 404  # NUL never reaches PostgreSQL
    assert client.get("/profiles/a%00b/edit/").status_code == 404
    assert client.get("/profiles/?q=a%00b").status_code == 200
    assert client.put("/profiles/todo-app/").status_code == 405
    assert client.get("/profiles/validate/").status_code == 405
    assert client.post("/profiles/todo-app/export.yaml").status_code == 405


def test_it_logs_out_with_a_post(todo_app):
    client = client_for("viewer")
    assert b'action="/accounts/logout/"' in client.get("/").content
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_it_sends_an_expired_htmx_session_to_the_login_page(client):
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/accounts/login/?next=/")
