"""The API's URL patterns. Its operations authenticate by token, not by session, so
Django's login-required middleware lets them through (the docs page and the OpenAPI
document keep a login of their own: NinjaAPI's docs_decorator)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern

DOCS = ("openapi-json", "openapi-view")


def api_urls():
    from deployments.api import api

    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if isinstance(pattern, URLPattern) and pattern.name not in DOCS:
            login_not_required(pattern.callback)
    return patterns, app_name, namespace
