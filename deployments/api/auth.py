"""Who calls the API, and what they may do: `Authorization: Bearer <token>` (an ApiToken),
acting with its user's role (deployments.roles), narrowed by the token (read-only, some
profiles). Throttled per token and per address, and wrong tokens per address."""

import logging
import re
import threading

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import get_object_or_404
from ninja.errors import HttpError, Throttled
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

from deployments.integrations.redis import RedisError, shared_client
from deployments.services.api_tokens import api_token_allows, api_token_authenticate
from deployments.services.logins import login_client_address
from deployments.services.profiles import audit_record

log = logging.getLogger(__name__)

VIEW, DEPLOY = "deployments.view_profile", "deployments.deploy_profile"
ADD, CHANGE, DELETE = (
    "deployments.add_profile",
    "deployments.change_profile",
    "deployments.delete_profile",
)
WHAT = {
    VIEW: "see profiles",
    DEPLOY: "deploy, roll back, cancel, restart, scale or sleep",
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
        """The token's ApiToken; None (401) for a wrong one, Throttled (429) once an
        address sent more than HELMDECK_API_AUTH_FAILURES wrong ones in a minute. A right
        token costs no count: only a miss is counted (a guess costs one indexed lookup,
        as a request does; 256 random bits are not guessed)."""
        address = login_client_address(request)
        found = api_token_authenticate(raw=token, address=address)
        if found is None:
            key = _failures_key(address)
            try:
                cache.add(key, 0, FAILURE_WINDOW)
                try:
                    failures = cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, FAILURE_WINDOW)
                    failures = 1
            except RedisError as exc:  # not counted, still refused: a 401, not a 500
                log.warning("wrong API tokens not counted: Redis answered %s", type(exc).__name__)
                return None
            if failures > settings.HELMDECK_API_AUTH_FAILURES:
                raise Throttled(FAILURE_WINDOW)
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


class Rates(BaseThrottle):
    """Requests per token and per client address (HELMDECK_API_RATE_PER_TOKEN,
    HELMDECK_API_RATE_PER_ADDRESS: "N/s", "N/m", "N/h"), each a window that opens at its
    first request, both counted in one Redis round trip (Ninja's own throttles keep a list
    of times in the cache: four round trips a request for two limits). Redis away: the
    request goes through (and says so in the log) rather than failing."""

    def __init__(self):
        self._local = threading.local()  # one object serves every request thread

    def allow_request(self, request):
        token = getattr(request, "auth", None)
        limits = [
            ("address", login_client_address(request), settings.HELMDECK_API_RATE_PER_ADDRESS)
        ]
        if token is not None:  # the digest, not the pk: a pk can come again
            limits.append(("token", token.digest[:32], settings.HELMDECK_API_RATE_PER_TOKEN))
        pipe = shared_client().pipeline(transaction=False)
        windows = []
        for scope, ident, rate in limits:
            number, seconds = _rate(rate)
            key = f"helmdeck:api-rate:{scope}:{ident}"
            pipe.set(key, 0, ex=seconds, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
            windows.append(number)
        try:
            answers = pipe.execute()
        except RedisError as exc:
            log.warning("API rate limits not checked: Redis answered %s", type(exc).__name__)
            return True
        over = [
            answers[i * 3 + 2] for i, number in enumerate(windows) if answers[i * 3 + 1] > number
        ]
        self._local.wait = max((max(ttl, 1) for ttl in over), default=None)
        return not over

    def wait(self):
        return getattr(self._local, "wait", None)


def _rate(text):
    """ "600/m" -> (600, 60)."""
    number, _, period = text.partition("/")
    return int(number), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[:1] or "m"]
