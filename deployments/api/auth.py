"""Who calls the API, and what they may do: `Authorization: Bearer <token>` (an ApiToken),
acting with its user's role (deployments.roles), narrowed by the token (read-only, some
profiles). Throttled per token and per address; wrong tokens per address too, before any
is looked up."""

import re

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import get_object_or_404
from ninja.errors import HttpError, Throttled
from ninja.security import HttpBearer
from ninja.throttling import SimpleRateThrottle

from deployments.services.api_tokens import api_token_allows, api_token_authenticate
from deployments.services.logins import login_client_address
from deployments.services.profiles import audit_record

VIEW, DEPLOY = "deployments.view_profile", "deployments.deploy_profile"
ADD, CHANGE, DELETE = (
    "deployments.add_profile",
    "deployments.change_profile",
    "deployments.delete_profile",
)
WHAT = {
    VIEW: "see profiles",
    DEPLOY: "deploy, roll back or cancel",
    ADD: "create profiles",
    CHANGE: "change profiles",
    DELETE: "delete profiles",
    "deployments.view_cluster": "see clusters",
}
FAILURE_WINDOW = 60  # seconds
# what a name in a path may be (profiles, clusters: DNS labels; webhook ids: URL-safe
# base64): anything else is a 404 before a query (PostgreSQL refuses a NUL in text)
NAME = re.compile(r"[-A-Za-z0-9_]{1,253}")


def named(value):
    """404 unless `value` can be a name at all."""
    if not NAME.fullmatch(value):
        raise HttpError(404, "Not Found")
    return value


def _failures_key(address):
    return f"api:auth-failures:{address}"


class TokenAuth(HttpBearer):
    def authenticate(self, request, token):
        address = login_client_address(request)
        key = _failures_key(address)
        if (cache.get(key) or 0) >= settings.HELMDECK_API_AUTH_FAILURES:
            raise Throttled(FAILURE_WINDOW)
        found = api_token_authenticate(raw=token, address=address)
        if found is None:
            cache.add(key, 0, FAILURE_WINDOW)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, FAILURE_WINDOW)
            return None
        request.user = found.user
        return found


def require(request, permission, *, write=False):
    """403 unless the token's user has `permission` (and the token may write, for a write)."""
    if write and request.auth.read_only:
        raise HttpError(403, "this token is read-only")
    if not request.user.has_perm(permission):
        raise HttpError(403, f"your role cannot {WHAT.get(permission, permission)}")


def profile_or_404(request, queryset, name, permission, *, write=False):
    """The profile `name` if the token may reach it (404 if not: a narrowed token does not
    learn which other profiles exist), after `require`."""
    require(request, permission, write=write)
    profile = get_object_or_404(queryset, name=named(name))
    if not api_token_allows(request.auth, profile):
        raise HttpError(404, "Not Found")
    return profile


def token_used(request, profile, what):
    """The audit event of a change made with a token: which token, what it did."""
    audit_record(
        actor=request.user,
        action="api_token.used",
        profile=profile,
        target=f"token {request.auth.name}: {what}",
    )


class _Rate(SimpleRateThrottle):
    """A SimpleRateThrottle whose rate is read from settings on every request (a test or an
    operator's override takes effect without re-creating the API)."""

    setting = ""

    def __init__(self):
        super().__init__(getattr(settings, self.setting))

    def allow_request(self, request):
        self.rate = getattr(settings, self.setting)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request)


class PerToken(_Rate):
    scope, setting = "api-token", "HELMDECK_API_RATE_PER_TOKEN"

    def get_cache_key(self, request):
        token = getattr(request, "auth", None)
        # the digest, not the pk: a pk can come again (a test database, a restored backup)
        ident = token.digest[:32] if token is not None else login_client_address(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class PerAddress(_Rate):
    scope, setting = "api-address", "HELMDECK_API_RATE_PER_ADDRESS"

    def get_cache_key(self, request):
        return self.cache_format % {"scope": self.scope, "ident": login_client_address(request)}
