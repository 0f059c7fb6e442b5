"""Secret values out of stored text: every LogLine (build, helm, checks, diagnosis) and the
reason a release failed pass through `Redactor` before they are written.

A redactor masks the profile's secret values and the panel's own keys (SECRET_KEY and its
fallbacks, HELMDECK_SECRET_KEYS, the passwords of Redis, the broker and the database), each
as written, base64-encoded (a Secret's data), JSON-escaped and URL-encoded, and each line of
a multi-line value. Values shorter than MIN_LENGTH characters are left alone: masking "on"
or "1" would garble every line and hide nothing worth hiding.
"""

import base64
import contextlib
import json
import os
import re
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from deployments.services.values import secret_values

REDACTED = "<redacted>"
MIN_LENGTH = 4


def panel_keys():
    """The panel's own secrets, from its settings."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys += list(settings.HELMDECK_SECRET_KEYS)
    for name in ("REDIS_PASSWORD", "HELMDECK_REDIS_PASSWORD"):
        keys += [getattr(settings, name, None), os.environ.get(name)]
    urls = [
        getattr(settings, name, None)
        for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    ]
    for cache in settings.CACHES.values():
        location = cache.get("LOCATION")
        urls += location if isinstance(location, list | tuple) else [location]
    for url in urls:
        if isinstance(url, str):
            try:
                password = urlsplit(url).password
            except ValueError:
                continue
            keys += [password, unquote(password)] if password else []
    keys += [db.get("PASSWORD") for db in settings.DATABASES.values()]
    return [key for key in keys if isinstance(key, str) and key]


def _forms(value):
    """The ways `value` can show up in a line of output."""
    parts = {value, *value.splitlines()}
    found = set()
    for part in parts:
        part = part.rstrip("\r")
        if len(part) < MIN_LENGTH:
            continue
        encoded = base64.b64encode(part.encode()).decode()
        found |= {part, encoded, encoded.rstrip("="), json.dumps(part)[1:-1], quote(part, safe="")}
    return found


class Redactor:
    """`redactor(text)` -> text with every known secret replaced by <redacted>."""

    def __init__(self, values):
        forms = set()
        for value in values:
            if isinstance(value, str):
                forms |= _forms(value)
        alternatives = sorted(forms, key=len, reverse=True)  # the longest match wins
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if forms else None

    def __call__(self, text):
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)


def redactor_for(profile):
    """A Redactor for `profile`'s secret values (those the worker can read) and the panel's
    keys. With no profile, the panel's keys only."""
    values = panel_keys()
    if profile is not None:
        # with bad HELMDECK_SECRET_KEYS no stored value is readable, so none can be masked
        with contextlib.suppress(ImproperlyConfigured):
            values += list(secret_values(profile, available_only=True).values())
    return Redactor(values)
