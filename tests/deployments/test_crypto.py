import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments import crypto
from tests.factories import SecretEntryFactory


def test_it_round_trips_and_never_stores_plaintext(settings):
    settings.HELMDECK_SECRET_KEYS = [Fernet.generate_key().decode()]
    token = crypto.encrypt("postgresql://user:pw@db/app")
    assert "pw@db" not in token
    assert crypto.decrypt(token) == "postgresql://user:pw@db/app"


def test_it_refuses_a_token_from_an_unknown_key_without_saying_the_value(settings):
    settings.HELMDECK_SECRET_KEYS = [Fernet.generate_key().decode()]
    token = crypto.encrypt("hunter2")
    settings.HELMDECK_SECRET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretDecryptError) as info:
        crypto.decrypt(token)
    assert "hunter2" not in str(info.value)


@pytest.mark.django_db
def test_it_rotates_every_secret_to_the_new_first_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.HELMDECK_SECRET_KEYS = [old]
    entries = [SecretEntryFactory(value=f"value-{n}") for n in range(3)]
    settings.HELMDECK_SECRET_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_secrets", stdout=out)
    assert "re-encrypted 3 secrets" in out.getvalue()
    settings.HELMDECK_SECRET_KEYS = [new]  # the old key is gone: values must still decrypt
    for n, entry in enumerate(entries):
        entry.refresh_from_db()
        assert crypto.decrypt(entry.ciphertext) == f"value-{n}"


@pytest.mark.django_db
def test_it_changes_nothing_when_a_secret_cannot_be_rotated(settings):
    settings.HELMDECK_SECRET_KEYS = [Fernet.generate_key().decode()]
    entry = SecretEntryFactory(value="keep-me")
    before = entry.ciphertext
    settings.HELMDECK_SECRET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError) as info:
        call_command("rotate_secrets")
    assert info.value.returncode == 2
    entry.refresh_from_db()
    assert entry.ciphertext == before


def test_it_derives_a_working_key_from_secret_key_when_none_is_configured(settings):
    settings.HELMDECK_SECRET_KEYS = []
    assert crypto.decrypt(crypto.encrypt("x")) == "x"


def test_it_explains_a_malformed_key(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.HELMDECK_SECRET_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="generate_secret_key"):
        crypto.encrypt("x")


@pytest.mark.django_db
def test_it_rotates_webhook_secrets_too(settings, todo_app):
    from deployments.services.webhooks import webhook_create

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.HELMDECK_SECRET_KEYS = [old]
    hook, secret = webhook_create(profile=todo_app, name="ci", build=False, actor=None)
    settings.HELMDECK_SECRET_KEYS = [new, old]
    call_command("rotate_secrets", stdout=io.StringIO())
    settings.HELMDECK_SECRET_KEYS = [new]
    hook.refresh_from_db()
    assert crypto.decrypt(hook.ciphertext) == secret
