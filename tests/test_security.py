"""Login rate limiting and the production security settings."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import PASSWORD, UserFactory

ROOT = Path(__file__).parent.parent


@pytest.mark.django_db
def test_it_locks_a_username_out_after_five_wrong_passwords(client, settings):
    settings.AXES_ENABLED = True
    user = UserFactory(role="viewer")
    for _ in range(5):
        response = client.post(
            "/accounts/login/", {"username": user.username, "password": "wrong-password"}
        )
        assert response.status_code in (200, 429)
    locked = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    other = UserFactory(role="viewer")  # another account from the same address still works
    ok = client.post("/accounts/login/", {"username": other.username, "password": PASSWORD})
    assert ok.status_code == 302


@pytest.mark.django_db
def test_it_forgets_failures_after_a_successful_login(client, settings):
    settings.AXES_ENABLED = True
    user = UserFactory(role="viewer")
    for _ in range(4):
        client.post("/accounts/login/", {"username": user.username, "password": "nope"})
    assert (
        client.post(
            "/accounts/login/", {"username": user.username, "password": PASSWORD}
        ).status_code
        == 302
    )
    client.logout()
    for _ in range(4):
        client.post("/accounts/login/", {"username": user.username, "password": "nope"})
    assert (
        client.post(
            "/accounts/login/", {"username": user.username, "password": PASSWORD}
        ).status_code
        == 302
    )


def test_it_passes_the_deploy_checklist_behind_https():
    # a production process: no test-only switch (the browser fixture sets this one)
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "SECRET_KEY": secrets.token_urlsafe(60),
        "HELMDECK_HTTPS": "true",
        "ALLOWED_HOSTS": "panel.example",
        "DEBUG": "false",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
