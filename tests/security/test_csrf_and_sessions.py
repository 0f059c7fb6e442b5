"""CSRF on every state change, and sessions: logout, password change, fixation, a user
switched off or out of a role, cookie flags.

The state-changing requests are every POST row of the permission tables (pages, releases,
clusters, accounts, admin) plus the blur validation and import endpoints; each is sent by
the admin role (who may do all of them) without a CSRF token, which must be refused with
403 and nothing written, then with the token taken from the page, which must get past the
check (so the 403 was the CSRF check and not something else).
"""

import re

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client

from tests.deployments import test_permissions as table
from tests.deployments.test_permissions import fast_password_hashing, releases  # noqa: F401
from tests.factories import PASSWORD, UserFactory
from tests.security.fuzzing import snapshot
from tests.security.test_every_url import ROWS, world  # noqa: F401

pytestmark = pytest.mark.django_db

# The API (/api/v1/) is left out: it takes a token, never the session, so a browser's
# cookies give a forged request nothing (401: tests/security/test_every_url.py API rows)
POSTS = sorted(
    {
        url
        for method, url, *_ in table.PAGES + table.RELEASE_PAGES + ROWS
        if method == "post" and not url.startswith("/api/")
    }
    | {
        "/profiles/validate/",
        "/profiles/import/",
        "/accounts/password_change/",
        "/releases/{queued}/rollback/",
    }
)


def csrf_client(role="admin"):
    client = Client(enforce_csrf_checks=True)
    user = UserFactory(role=role)
    assert client.login(username=user.username, password=PASSWORD)
    client.user = user
    return client


def token_of(client):
    """The CSRF token a page would carry (the cookie is set by any page with a form)."""
    page = client.get("/accounts/login/" if client.user is None else "/profiles/")
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    return match.group(1).decode()


@pytest.mark.parametrize("url", POSTS)
def test_it_refuses_a_state_change_without_a_csrf_token(world, url):  # noqa: F811
    url = url.format(**world)
    client = csrf_client()
    before = snapshot()
    response = client.post(
        url,
        {
            "name": "csrf-probe",
            "username": client.user.username,
            "password": PASSWORD,
            "email": "x@example.com",
        },
    )
    assert response.status_code == 403, (url, response.status_code)
    assert b"CSRF" in response.content  # the 403 page says why
    assert snapshot() == before
    # a wrong token and a token only in the cookie are refused too
    assert client.post(url, {"csrfmiddlewaretoken": "x" * 64}).status_code == 403
    assert snapshot() == before
    # with the page's token the same request gets past the check
    token = token_of(client)
    allowed = client.post(url, {"csrfmiddlewaretoken": token})
    assert allowed.status_code != 403 or b"CSRF" not in allowed.content, url


def test_it_accepts_the_htmx_header_the_pages_send(todo_app):
    client = csrf_client()
    page = client.get("/profiles/todo-app/edit/").content.decode()
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    headers = {"HX-Request": "true", "HX-Trigger-Name": "name"}
    assert client.post("/profiles/validate/", {"name": "x"}, headers=headers).status_code == 403
    response = client.post(
        "/profiles/validate/", {"name": "Bad Name"}, headers={**headers, "X-CSRFToken": token}
    )
    assert response.status_code == 200


def test_it_refuses_a_login_without_a_token(db):
    user = UserFactory(role="viewer")
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 403 and "_auth_user_id" not in client.session


# ---- sessions --------------------------------------------------------------------------------


def test_it_invalidates_the_session_at_logout(todo_app):
    client = Client()
    user = UserFactory(role="admin")
    assert client.login(username=user.username, password=PASSWORD)
    stolen = client.cookies["sessionid"].value
    assert client.get("/profiles/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert not Session.objects.filter(session_key=stolen).exists()
    replay = Client()
    replay.cookies["sessionid"] = stolen
    response = replay.get("/profiles/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert replay.post("/profiles/todo-app/delete/").status_code == 302
    assert todo_app.__class__.objects.filter(name="todo-app").exists()


def test_it_gives_a_new_session_key_at_login(db):
    client = Client()
    client.get("/accounts/login/")
    session = client.session
    session["planted"] = True
    session.save()
    planted = session.session_key
    user = UserFactory(role="viewer")
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.cookies["sessionid"].value != planted  # no session fixation


def test_it_ends_other_sessions_when_the_password_changes(db):
    user = UserFactory(role="viewer")
    here, elsewhere = Client(), Client()
    for client in (here, elsewhere):
        assert client.login(username=user.username, password=PASSWORD)
    response = here.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "An0ther-long-phrase",
            "new_password2": "An0ther-long-phrase",
        },
    )
    assert response.status_code == 302
    assert here.get("/").status_code == 200  # the session that changed it stays
    assert elsewhere.get("/").status_code == 302


def test_it_checks_the_role_and_the_account_on_every_request(todo_app):
    user = UserFactory(role="deployer")
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    assert client.get("/profiles/todo-app/deploy/").status_code == 200
    user.groups.remove(Group.objects.get(name="deployer"))
    user.groups.add(Group.objects.get(name="viewer"))
    assert client.get("/profiles/todo-app/deploy/").status_code == 403
    user.is_active = False
    user.save()
    assert client.get("/profiles/").status_code == 302


def test_it_sets_cookie_flags(db, settings):
    assert settings.SESSION_COOKIE_HTTPONLY and settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.CSRF_COOKIE_SAMESITE == "Strict"
    client = Client()
    user = UserFactory(role="viewer")
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    page = client.get("/")
    assert page["X-Frame-Options"] == "DENY" and page["X-Content-Type-Options"] == "nosniff"
