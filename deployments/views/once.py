"""A confirm form submitted twice (a double click, the browser re-sending a POST) acts once:
each form carries a random token, and the session remembers the last tokens it acted on
with what came of them (a release's pk, an action's message). After it acts, the answer
is a redirect, which htmx follows as a whole page."""

import secrets

from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect

KEPT = 20


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
