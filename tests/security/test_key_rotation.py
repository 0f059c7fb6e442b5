"""Encryption key rotation as an operator does it (crypto.py's docstring): put a new key
first and keep the old one, run rotate_secrets, drop the old key. At every stage a
deploy can read every stored secret, and nothing but the ciphertext changes.

tests/deployments/test_crypto.py covers the command itself; this follows one profile's
secrets through the three stages with the function a deploy calls (values.secret_values).
"""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from deployments import crypto
from deployments.services.profiles import secret_set
from deployments.services.values import secret_values

pytestmark = pytest.mark.django_db


def test_it_keeps_old_secrets_readable_through_a_rotation(todo_app, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.HELMDECK_SECRET_KEYS = [old]
    for key in ("JWT_SECRET", "OPENAI_API_KEY", "DATABASE_URL"):
        secret_set(profile=todo_app, key=key, value=f"{key.lower()}-value", actor=None)
    expected = {
        key: f"{key.lower()}-value" for key in ("JWT_SECRET", "OPENAI_API_KEY", "DATABASE_URL")
    }
    before = dict(todo_app.secrets.values_list("key", "ciphertext"))
    assert secret_values(todo_app, environ={}) == expected

    settings.HELMDECK_SECRET_KEYS = [new, old]  # stage 1: new key first, old kept
    assert secret_values(todo_app, environ={}) == expected
    secret_set(profile=todo_app, key="JWT_SECRET", value="written-after", actor=None)
    assert secret_values(todo_app, environ={})["JWT_SECRET"] == "written-after"

    out = io.StringIO()  # stage 2: re-encrypt everything with the new key
    call_command("rotate_secrets", stdout=out)
    assert "re-encrypted 3 secrets" in out.getvalue()
    after = dict(todo_app.secrets.values_list("key", "ciphertext"))
    assert all(after[key] != before[key] for key in before)

    settings.HELMDECK_SECRET_KEYS = [new]  # stage 3: the old key is gone
    assert secret_values(todo_app, environ={}) == {**expected, "JWT_SECRET": "written-after"}
    settings.HELMDECK_SECRET_KEYS = [old]  # and the old key alone reads none of them
    with pytest.raises(crypto.SecretDecryptError):
        secret_values(todo_app, environ={})
