"""A scan: a stored secret value appears in no page, admin page, export, audit row,
error message or log line (nor does its base64 form)."""

import base64
import logging

import pytest
from django.contrib import admin
from django.core.management import call_command

from deployments.models import AuditEvent, Profile
from deployments.services.profiles import profile_import, secret_set
from tests.factories import PASSWORD, UserFactory

CANARY = "canary-Zx9-secret-value"
FORMS = [CANARY, base64.b64encode(CANARY.encode()).decode(), CANARY[:12]]

pytestmark = pytest.mark.django_db


def assert_clean(text, where):
    for form in FORMS:
        assert form not in text, f"secret value ({form!r}) leaked in {where}"


@pytest.fixture
def secret_profile(todo_app):
    secret_set(profile=todo_app, key="JWT_SECRET", value=CANARY, actor=None)
    return todo_app


def admin_urls():
    """Every registered model's list, and the change page of each of its rows."""
    urls = []
    for model in admin.site._registry:
        meta = model._meta
        base = f"/admin/{meta.app_label}/{meta.model_name}/"
        urls += [
            base,
            *[f"{base}{pk}/change/" for pk in model.objects.values_list("pk", flat=True)],
        ]
    return urls


def test_it_never_shows_a_secret_in_pages_admin_or_export(secret_profile, client, caplog):
    caplog.set_level(logging.DEBUG)
    admin = UserFactory(role="admin", is_superuser=True, is_staff=True)
    assert client.login(username=admin.username, password=PASSWORD)
    urls = [
        "/",
        "/profiles/",
        "/profiles/new/",
        "/profiles/import/",
        f"/profiles/{secret_profile.name}/",
        f"/profiles/{secret_profile.name}/edit/",
        f"/profiles/{secret_profile.name}/clone/",
        f"/profiles/{secret_profile.name}/delete/",
        f"/profiles/{secret_profile.name}/export.yaml",
        "/admin/",
        *admin_urls(),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_clean(response.content.decode(), url)
    # an edit that fails validation re-renders the form: still no value
    response = client.post(f"/profiles/{secret_profile.name}/edit/", {"name": "Bad Name"})
    assert response.status_code == 200
    assert_clean(response.content.decode(), "a failed edit")
    assert_clean(caplog.text, "log records")


def test_it_keeps_secrets_out_of_audit_rows_and_cli_output(secret_profile, capsys, tmp_path):
    secret_set(profile=secret_profile, key="JWT_SECRET", value=CANARY + "-2", actor=None)
    for event in AuditEvent.objects.all():
        assert_clean(repr((event.before, event.after, event.target, str(event))), "AuditEvent")
    call_command("export_profile", secret_profile.name)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: x\ncomponents: {{web: {{port: 0}}}}\nsecrets: {{K: {CANARY}}}\n")
    with pytest.raises(SystemExit):
        call_command("import_profile", str(bad))
    out, err = capsys.readouterr()
    assert_clean(out + err, "CLI output")


def test_it_keeps_inline_secret_mistakes_out_of_error_messages(db):
    from deployments.spec import SpecError

    with pytest.raises(SpecError) as info:
        profile_import(
            data={
                "name": "leaky",
                "components": {"web": {"port": 80}},
                "secrets": {"TOKEN": CANARY, "OTHER": {"value": 42}, "THIRD": {"fromEnv": CANARY}},
            },
            actor=None,
        )
    assert_clean(str(info.value), "SpecError")
    assert not Profile.objects.filter(name="leaky").exists()


def test_it_keeps_secrets_out_of_every_api_answer(secret_profile, caplog):
    """Every GET operation of the API with an admin token, and refused writes that carry
    the value inline (a bad document, a bad tag): the value is in no answer."""
    from django.test import Client

    from deployments.services.api_tokens import api_token_create
    from tests.factories import make_release

    caplog.set_level(logging.DEBUG)
    release = make_release(secret_profile, "succeeded", revision=1, log=["deployed"])
    admin = UserFactory(role="admin")
    _, raw = api_token_create(user=admin, name="leak scan")
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    name = secret_profile.name
    for url in (
        "/api/v1/profiles",
        f"/api/v1/profiles/{name}",
        f"/api/v1/profiles/{name}/status",
        f"/api/v1/profiles/{name}/releases",
        f"/api/v1/releases/{release.pk}",
        f"/api/v1/releases/{release.pk}/log",
        "/api/v1/clusters",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_clean(response.content.decode(), url)
    bad = {
        "name": name,
        "components": {"web": {"port": 0}},
        "secrets": {"JWT_SECRET": CANARY, "OTHER": {"fromEnv": CANARY}},
    }
    response = client.put(f"/api/v1/profiles/{name}", bad, content_type="application/json")
    assert response.status_code == 400
    assert_clean(response.content.decode(), "a refused document")
    response = client.post(
        f"/api/v1/profiles/{name}/releases",
        {"tags": {"backend": CANARY + " !"}},
        "application/json",
    )
    assert response.status_code == 400
    assert_clean(response.content.decode(), "a refused tag")
    assert_clean(caplog.text, "log records")
