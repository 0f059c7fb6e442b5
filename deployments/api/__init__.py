"""The HTTP API, /api/v1/ (Django Ninja: pydantic schemas, the OpenAPI 3 document at
/api/v1/openapi.json and its docs page at /api/v1/docs, both for signed-in users).

Every operation takes a Bearer token (deployments.api.auth) and calls the services the
pages call. Every error is JSON, {"errors": [{"path", "message"}]}: a field path for a
bad field, "" for the request as a whole; never a 500, never a secret value.
"""

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

from deployments.api import clusters, hooks, logs, operations, profiles, releases
from deployments.api.auth import Rates, TokenAuth
from deployments.services.operations import ActionRefused
from deployments.services.releases import ReleaseRefused
from deployments.spec import SpecError


class Docs(Swagger):
    """Swagger UI from Ninja's own static files (STATICFILES_DIRS), in our template: no CDN,
    no inline code (the Content-Security-Policy holds here too). Operations take a token,
    not the session: no CSRF token is wired in."""

    def render_page(self, request, api, **kwargs):
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {"swagger_settings": json.dumps(self.settings, indent=1), "api": api}
        return render(request, "api_docs.html", context)


api = NinjaAPI(
    title="Helmdeck API",
    version="1",
    description="Deploy, roll back and watch profiles. Authenticate with `Authorization: "
    "Bearer <token>` (create one on your Tokens page). Errors: "
    '`{"errors": [{"path": "...", "message": "..."}]}`.',
    auth=TokenAuth(),
    throttle=[Rates()],
    docs=Docs(),
    docs_decorator=login_required,
    urls_namespace="api",
)
api.add_router("", profiles.router)
api.add_router("", releases.router)
api.add_router("", clusters.router)
api.add_router("", hooks.router)
api.add_router("", logs.router)
api.add_router("", operations.router)


def errors(request, problems, status):
    body = {"errors": [{"path": path, "message": message} for path, message in problems]}
    response = api.create_response(request, body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="helmdeck"'
    return response


def _location(loc):
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "path"):
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "query" or parts and parts[0] in ("filters", "body"):
        parts = parts[1:]
    return ".".join(parts)


@api.exception_handler(NinjaValidationError)
def _invalid(request, exc):
    problems = [(_location(e.get("loc", ())), e.get("msg", "is not valid")) for e in exc.errors]
    return errors(request, problems, 422)


@api.exception_handler(SpecError)
def _bad_spec(request, exc):
    return errors(request, [(e.path, e.message) for e in exc.errors], 400)


@api.exception_handler(ReleaseRefused)
def _refused(request, exc):
    return errors(request, [("", str(exc))], 409)


@api.exception_handler(ActionRefused)
def _action_refused(request, exc):
    return errors(request, [("", str(exc))], exc.status)


@api.exception_handler(Http404)
def _not_found(request, exc):
    return errors(request, [("", "Not Found")], 404)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return errors(
        request, [("", "a valid API token is needed: Authorization: Bearer <token>")], 401
    )


@api.exception_handler(Throttled)
def _throttled(request, exc):
    response = errors(request, [("", "too many requests; wait and try again")], 429)
    if exc.wait:
        response["Retry-After"] = str(max(1, int(exc.wait)))
    return response


@api.exception_handler(HttpError)
def _http_error(request, exc):
    return errors(request, [("", exc.message)], exc.status_code)
