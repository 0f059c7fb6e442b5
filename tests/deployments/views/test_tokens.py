"""The Tokens page: create (shown once, stored hashed), list with last use, revoke."""

import pytest

from deployments.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db


def test_it_creates_a_token_shows_it_once_and_stores_a_hash(login, todo_app):
    client = login("viewer")
    response = client.post(
        "/tokens/",
        {
            "name": "CI deploy",
            "expires_in_days": "30",
            "read_only": "on",
            "profiles": [todo_app.pk],
        },
    )
    assert response.status_code == 201
    raw = response.context["created"][1]
    assert raw.startswith("hd_") and raw.encode() in response.content
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(name="CI deploy")
    assert token.read_only and list(token.profiles.all()) == [todo_app]
    assert raw not in {token.digest, token.prefix} and token.digest != raw
    assert AuditEvent.objects.filter(action="api_token.created").exists()
    # the list shows its prefix, never the token again
    again = client.get("/tokens/")
    assert raw.encode() not in again.content and token.prefix.encode() in again.content
    api = client.get("/api/v1/profiles", headers={"Authorization": f"Bearer {raw}"})
    assert api.status_code == 200


def test_a_token_without_a_name_is_a_field_error(login):
    client = login("viewer")
    response = client.post("/tokens/", {"name": "  ", "expires_in_days": ""})
    assert response.status_code == 400
    assert response.context["form"].errors["name"]
    assert not ApiToken.objects.exists()


def test_a_second_active_token_of_the_same_name_is_a_field_error(login):
    client = login("viewer")
    assert client.post("/tokens/", {"name": "laptop"}).status_code == 201
    response = client.post("/tokens/", {"name": "laptop"})
    assert response.status_code == 400
    assert "already have a token named laptop" in str(response.context["form"].errors["name"])


def test_revoking_asks_first_then_the_token_stops_working(login):
    client = login("deployer")
    raw = client.post("/tokens/", {"name": "laptop"}).context["created"][1]
    token = ApiToken.objects.get(name="laptop")
    assert client.get(f"/tokens/{token.pk}/revoke/").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None  # a GET changes nothing
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 302
    api = client.get("/api/v1/profiles", headers={"Authorization": f"Bearer {raw}"})
    assert api.status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoked").exists()


def test_nobody_revokes_or_sees_another_users_token(login):
    owner = login("admin")
    owner.post("/tokens/", {"name": "mine"})
    token = ApiToken.objects.get(name="mine")
    other = login("admin")
    assert b"mine" not in other.get("/tokens/").content
    assert other.post(f"/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_an_admin_revokes_anyones_token_in_the_admin_site(login):
    from deployments.services.api_tokens import api_token_create
    from tests.factories import UserFactory

    token, _ = api_token_create(user=UserFactory(role="viewer"), name="someone's")
    client = login("admin")
    listed = client.get("/admin/deployments/apitoken/")
    assert listed.status_code == 200 and b"someone&#x27;s" in listed.content
    response = client.post(
        "/admin/deployments/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert AuditEvent.objects.filter(action="api_token.revoked").exists()


def test_a_deployer_has_no_admin_page_of_tokens(login):
    assert login("deployer").get("/admin/deployments/apitoken/").status_code in (302, 403)
