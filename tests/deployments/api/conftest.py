"""Fixtures of the API tests: tokens of each role, and a client that sends one."""

import pytest
from django.test import Client

from deployments.services.api_tokens import api_token_create
from tests.factories import UserFactory


class ApiClient:
    """Django's test client with `Authorization: Bearer <token>` on every request."""

    def __init__(self, token=None, **defaults):
        self.client = Client(**defaults)
        self.token = token

    def _headers(self, headers):
        base = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**base, **(headers or {})}

    def get(self, path, data=None, headers=None):
        return self.client.get(path, data, headers=self._headers(headers))

    def delete(self, path, headers=None):
        return self.client.delete(path, headers=self._headers(headers))

    def post(self, path, data=None, content_type="application/json", headers=None):
        return self.client.post(
            path, data, content_type=content_type, headers=self._headers(headers)
        )

    def put(self, path, data=None, content_type="application/json", headers=None):
        return self.client.put(
            path, data, content_type=content_type, headers=self._headers(headers)
        )


def token_for(role, **options):
    user = UserFactory(role=role) if role else UserFactory()
    token, raw = api_token_create(user=user, name=f"{role or 'no-role'} token", **options)
    return token, raw


@pytest.fixture
def api_as():
    """api_as(role, **token options) -> an ApiClient with a fresh token of that role."""

    def make(role, **options):
        return ApiClient(token_for(role, **options)[1])

    return make


@pytest.fixture
def enqueued(monkeypatch):
    """Releases the API would hand to Celery, recorded instead of sent."""
    from deployments.api import profiles

    calls = []
    monkeypatch.setattr(profiles, "release_enqueue", lambda release: calls.append(release.pk))
    return calls


@pytest.fixture(autouse=True)
def fresh_address_limits():
    """The test client's address (127.0.0.1) starts each test with no wrong-token count
    and no requests counted (they live in Redis, which outlives a test's database)."""
    from django.core.cache import cache

    from deployments.api.auth import _failures_key
    from deployments.integrations.redis import shared_client

    def clear():
        cache.delete(_failures_key("127.0.0.1"))
        shared_client().delete("helmdeck:api-rate:address:127.0.0.1")

    clear()
    yield
    clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tokens need users; their passwords need not be hashed slowly here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
