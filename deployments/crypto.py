"""Secret values at rest: MultiFernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

Keys come from HELMDECK_SECRET_KEYS (comma-separated Fernet keys). The first key encrypts;
every key decrypts, so a rotation is: put a new key first, keep the old ones after it, run
`manage.py rotate_secrets` (re-encrypts every value with the first key), then drop the old
keys. Without HELMDECK_SECRET_KEYS a key is derived from SECRET_KEY (HKDF), which is only
fit for `make run` (it writes both to .env).
"""

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretDecryptError(Exception):
    """A stored value could not be decrypted with any configured key (says nothing more)."""


def _derived_key(secret_key):
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"helmdeck-secrets", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


@cache
def _fernet(keys):
    if not keys:
        keys = (_derived_key(settings.SECRET_KEY),)
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "HELMDECK_SECRET_KEYS must be comma-separated Fernet keys "
            "(make one with `python manage.py generate_secret_key`)"
        ) from exc


def fernet():
    return _fernet(tuple(settings.HELMDECK_SECRET_KEYS))


def encrypt(plaintext):
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token):
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptError(
            "a stored secret cannot be decrypted with the configured keys"
        ) from None


def rotate(token):
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptError(
            "a stored secret cannot be decrypted with the configured keys"
        ) from None


def generate_key():
    return Fernet.generate_key().decode()
