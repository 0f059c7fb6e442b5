"""A confirm form submitted twice (a double click, the browser re-sending a POST) acts once:
each form carries a random token. `claim` takes the token in the cache (an atomic add, so
of two requests at the same moment one acts), and the session remembers the last tokens it
acted on with what came of them (a release's pk, an action's message). After it acts, the
answer is a redirect, which htmx follows as a whole page."""

import contextlib
import logging
import secrets

from django.core.cache import cache
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect

KEPT = 20
CLAIM_SECONDS = 3600
log = logging.getLogger(__name__)


def new_token():
    return secrets.token_urlsafe(16)


def acted(request, kind, token):
    """What the form with `token` did before, or None."""
    return request.session.get(f"{kind}_tokens", {}).get(token)


def remember(request, kind, token, outcome):
    tokens = request.session.get(f"{kind}_tokens", {})
    tokens[token] = outcome
    request.session[f"{kind}_tokens"] = dict(list(tokens.items())[-KEPT:])


def redirect_after_post(request, url):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _claim_key(request, kind, token):
    return f"helmdeck:once:{kind}:{request.user.pk}:{token}"


def claim(request, kind, token):
    """True for the one request that may act on this form; False for the same form sent
    again meanwhile. With the cache away, the session's record is the guard left."""
    try:
        return bool(cache.add(_claim_key(request, kind, token), 1, CLAIM_SECONDS))
    except Exception as exc:  # noqa: BLE001 - Redis away: act, as without the cache
        log.warning("form token not claimed (the cache answered %s)", type(exc).__name__)
        return True


def release(request, kind, token):
    """The action did not happen (refused, bad input): the same form may be sent again."""
    with contextlib.suppress(Exception):  # the cache away: the claim expires by itself
        cache.delete(_claim_key(request, kind, token))
