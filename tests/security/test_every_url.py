"""Every URL pattern the root resolver knows has a row in a permission table, and every row
is checked for anonymous / no role / viewer / deployer / admin.

The profile, release and cluster pages are the rows of tests/deployments/test_permissions.py;
this module adds accounts, health, the streams and every admin-site pattern, and fails, by
name, for any pattern that no row reaches (a new view must say who may open it).
"""

import pytest
from asgiref.sync import async_to_sync
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.urls import URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from deployments.models import AuditEvent, Cluster, Profile, TerminalSession
from deployments.services.api_tokens import api_token_create
from deployments.services.notification_channels import channel_create, rule_create
from deployments.services.profiles import audit_record
from deployments.services.webhooks import webhook_create
from tests.deployments import test_permissions as table
from tests.deployments.test_permissions import (  # noqa: F401 - fixtures used by name
    client_for,
    fast_password_hashing,
    releases,
)

pytestmark = pytest.mark.django_db

ROLES = table.ROLES
ROLE_IDS = {None: "anonymous", "": "no-role"}
# who may: PUBLIC everyone; LOGIN any signed-in user; STREAM a role that may view (SSE);
# ADMIN_SITE the admin role (others go to the admin login); SUPERUSER a superuser only (the
# admin role is refused with 403 by the admin itself); ADMIN_LOGIN the login form of the
# admin site (a signed-in admin is sent on to the index).
PUBLIC, LOGIN, STREAM = "public", "login", "stream"
# TOKEN: the HTTP API, which takes a token (or a webhook's signature), never the session:
# 401 for every browser, signed in or not (tests/deployments/api/ test it with tokens)
TOKEN = "token"
ADMIN_SITE, SUPERUSER, ADMIN_LOGIN = "admin-site", "superuser", "admin-login"

ACCOUNTS = [
    ("get", "/health", PUBLIC, 200),
    ("get", "/ready", PUBLIC, (200, 503)),  # 503 while a dependency is down: still answered
    # off (404) unless HELMDECK_METRICS_TOKEN or _ALLOW is set; then the token or the
    # address, never a session (tests/deployments/views/test_metrics.py)
    ("get", "/metrics", TOKEN, 404),
    ("get", "/accounts/login/", PUBLIC, 200),
    ("post", "/accounts/login/", PUBLIC, 200),  # wrong password: the form again
    ("get", "/accounts/password_change/", LOGIN, 200),
    ("get", "/accounts/password_change/done/", LOGIN, 200),
    ("post", "/accounts/logout/", LOGIN, 302),
]
TOKENS_AND_WEBHOOKS = [
    ("get", "/tokens/", LOGIN, 200),  # everyone manages their own tokens
    ("post", "/tokens/", LOGIN, 400),  # no name: the form says so
    ("get", "/tokens/{apitoken}/revoke/", LOGIN, 404),  # someone else's token
    ("post", "/tokens/{apitoken}/revoke/", LOGIN, 404),
    ("get", "/profiles/todo-app/webhooks/", table.EDIT, 200),
    ("post", "/profiles/todo-app/webhooks/", table.EDIT, 400),
    ("get", "/profiles/todo-app/webhooks/{webhook_pk}/revoke/", table.EDIT, 200),
    ("post", "/profiles/todo-app/webhooks/{webhook_pk}/revoke/", table.EDIT, 302),
]
NOTIFICATIONS = [  # the admin role (change_notificationchannel), as the profile editors
    ("get", "/notifications/", table.EDIT, 200),
    ("post", "/notifications/channels/", table.EDIT, 400),  # no name, no URL: the form says so
    ("post", "/notifications/channels/{channel}/test/", table.EDIT, 302),  # queued, not sent
    ("post", "/notifications/channels/{channel}/toggle/", table.EDIT, 302),
    ("get", "/notifications/channels/{channel}/delete/", table.EDIT, 200),  # asks first
    ("post", "/notifications/rules/", table.EDIT, 400),
    ("get", "/notifications/rules/{rule}/delete/", table.EDIT, 200),
]
API = [
    ("get", "/api/v1/openapi.json", LOGIN, 200),
    ("get", "/api/v1/docs", LOGIN, 200),
    ("get", "/api/v1/", TOKEN, 404),  # the root names no operation
    ("get", "/api/v1/profiles", TOKEN, 401),
    ("post", "/api/v1/profiles", TOKEN, 401),
    ("get", "/api/v1/profiles/todo-app", TOKEN, 401),
    ("get", "/api/v1/profiles/todo-app/status", TOKEN, 401),
    ("get", "/api/v1/profiles/todo-app/releases", TOKEN, 401),
    ("post", "/api/v1/profiles/todo-app/releases", TOKEN, 401),
    ("post", "/api/v1/profiles/todo-app/rollback", TOKEN, 401),
    ("get", "/api/v1/profiles/todo-app/logs", TOKEN, 401),
    ("get", "/api/v1/releases/{queued}", TOKEN, 401),
    ("post", "/api/v1/releases/{queued}/cancel", TOKEN, 401),
    ("get", "/api/v1/releases/{queued}/log", TOKEN, 401),
    ("get", "/api/v1/releases/{queued}/events", TOKEN, 401),
    ("get", "/api/v1/clusters", TOKEN, 401),
    ("get", "/api/v1/clusters/minikube/doctor", TOKEN, 401),
    ("post", "/api/v1/hooks/{webhook}", TOKEN, 401),  # unsigned
    ("post", "/api/v1/profiles/todo-app/components/backend/restart", TOKEN, 401),
    ("post", "/api/v1/profiles/todo-app/components/backend/scale", TOKEN, 401),
    ("delete", "/api/v1/profiles/todo-app/pods/todo-app-backend-1", TOKEN, 401),
    ("post", "/api/v1/profiles/todo-app/sleep", TOKEN, 401),
    ("post", "/api/v1/profiles/todo-app/wake", TOKEN, 401),
    ("put", "/api/v1/profiles/todo-app/sleep-schedule", TOKEN, 401),
    ("post", "/api/v1/profiles/todo-app/teardown", TOKEN, 401),
]
STREAMS = [
    ("get", "/profiles/todo-app/stream/", STREAM, 200),
    ("get", "/releases/{queued}/stream/", STREAM, 200),
    ("get", "/status/stream/", STREAM, 200),
    ("get", "/profiles/todo-app/logs/stream/", STREAM, 400),  # no pod or component: says so
]
ADMIN_SITE_ROWS = [
    ("get", "/admin/", ADMIN_SITE, 200),
    ("get", "/admin/login/", ADMIN_LOGIN, 302),
    ("get", "/admin/password_change/", ADMIN_SITE, 200),
    ("get", "/admin/password_change/done/", ADMIN_SITE, 200),
    ("get", "/admin/autocomplete/", ADMIN_SITE, 403),  # no model named: refused
    ("get", "/admin/jsi18n/", ADMIN_SITE, 200),
    ("get", "/admin/r/{ct}/{profile}/", ADMIN_SITE, 404),  # profiles have no public URL
    ("get", "/admin/deployments/", ADMIN_SITE, 200),
    ("get", "/admin/not-a-page/", ADMIN_SITE, 404),
    ("post", "/admin/logout/", PUBLIC, 302),  # anyone may log out
]
MODEL_PAGES = [  # (suffix, status for the admin role on a model it may change)
    ("", 200),
    ("add/", 200),
    ("{pk}/change/", 200),
    ("{pk}/history/", 200),
    ("{pk}/delete/", 200),
    ("{pk}/", 302),
]


READ_ONLY_MODELS = ("auditevent", "apitoken", "terminalsession")
NO_POSTS = ("auditevent", "terminalsession")  # nothing to change, add or delete
MODEL_POSTS = ("add/", "{pk}/change/", "{pk}/delete/")


def admin_rows():
    """The admin site's pages for every registered model, and what the admin role gets."""
    rows = list(ADMIN_SITE_ROWS)
    for model in admin.site._registry:
        meta = model._meta
        key = meta.model_name
        for suffix, status in MODEL_PAGES:
            url = f"/admin/{meta.app_label}/{key}/" + suffix.replace("{pk}", f"{{{key}}}")
            if meta.app_label != "deployments":
                needs, status = SUPERUSER, (302 if suffix == "{pk}/" else 403)
            else:
                needs = ADMIN_SITE
                if key in READ_ONLY_MODELS and suffix in ("add/", "{pk}/delete/"):
                    status = 403  # the audit trail, API tokens: never added or deleted here
            rows.append(("get", url, needs, status))
        if meta.app_label == "deployments" and key not in NO_POSTS:
            # an empty POST: the form again (add/change) or the confirmation (delete); an
            # API token's change page has nothing to change: saved as it is
            suffixes = ("{pk}/change/",) if key == "apitoken" else MODEL_POSTS
            for suffix in suffixes:
                url = f"/admin/{meta.app_label}/{key}/" + suffix.replace("{pk}", f"{{{key}}}")
                rows.append(("post", url, ADMIN_SITE, 302 if key == "apitoken" else 200))
    rows.append(("get", "/admin/auth/user/{user}/password/", SUPERUSER, 403))
    return rows


ROWS = ACCOUNTS + TOKENS_AND_WEBHOOKS + NOTIFICATIONS + API + STREAMS + admin_rows()


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield (prefix + str(pattern.pattern)).replace("^", ""), pattern.name


def _route_of(url):
    try:
        return resolve(url.split("?")[0].format_map(_Ones())).route.replace("^", "")
    except Resolver404:
        return None


class _Ones(dict):
    def __missing__(self, key):
        return 1


def _table_rows():
    return (
        [(m, u) for m, u, _, _, _ in table.PAGES + table.RELEASE_PAGES]
        + [("get", u) for u in table.ADMIN_PAGES]
        + [(m, u) for m, u, _, _ in ROWS]
    )


def test_every_url_pattern_has_a_permission_row():
    covered = {_route_of(url) for _, url in _table_rows()}
    missing = [
        f"{route!r} (name: {name})"
        for route, name in _routes(get_resolver().url_patterns)
        if route not in covered
    ]
    assert not missing, (
        "URL patterns without a row in the permission tables (add (method, url, needs, "
        "status) to tests/security/test_every_url.py ACCOUNTS/STREAMS or to "
        "tests/deployments/test_permissions.py PAGES/RELEASE_PAGES):\n  " + "\n  ".join(missing)
    )


def test_the_table_reaches_only_real_pages():
    assert [url for _, url in _table_rows() if _route_of(url) is None] == []


def expected(role, needs, status):
    """The status a role gets; a 302 means "to the login page" unless the row says 302."""
    if needs in (PUBLIC, TOKEN):
        return status
    if needs in (ADMIN_SITE, SUPERUSER):
        return status if role == "admin" else "admin login"
    if needs == ADMIN_LOGIN:
        return status if role == "admin" else 200
    if needs == STREAM:  # 401, not a login redirect: an EventSource cannot follow one
        return {None: 401, "": 403}.get(role, status)
    if role is None:
        return "login"
    if needs == LOGIN:
        return status
    return table.expected(role, needs, status)


@pytest.fixture
def world(todo_app, releases):  # noqa: F811 - the fixture imported above
    """One row of each model the admin site lists, and the releases of test_permissions."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    event = audit_record(actor=None, action="profile.changed", profile=todo_app)
    ids = {
        **releases,
        "profile": todo_app.pk,
        "cluster": Cluster.objects.get(name="minikube").pk,
        "auditevent": event.pk,
        "user": User.objects.create_user("someone").pk,
        "group": Group.objects.get(name="viewer").pk,
        "accessattempt": AccessAttempt.objects.create(username="x", failures_since_start=1).pk,
        "accesslog": AccessLog.objects.create(username="x").pk,
        "accessfailurelog": AccessFailureLog.objects.create(username="x").pk,
        "ct": ContentType.objects.get_for_model(Profile).pk,
    }
    ids["terminalsession"] = TerminalSession.objects.create(
        user_name="someone", profile_name="todo-app", namespace="todo", pod="p", container="c"
    ).pk
    token, _ = api_token_create(user=User.objects.create_user("token-owner"), name="t")
    hook, _ = webhook_create(profile=todo_app, name="ci", build=False, actor=None)
    ids.update(apitoken=token.pk, webhook=hook.public_id, webhook_pk=hook.pk)
    channel = channel_create(name="ops", url="json://127.0.0.1:9/hook", actor=None)
    rule = rule_create(profile=None, events=["release.failed"], channels=[channel], actor=None)
    ids.update(channel=channel.pk, rule=rule.pk)
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    return ids


def body(response):
    """A streamed response read to its end (an SSE stream under the test client sends its
    replay and ends), or the content of any other response."""
    if not response.streaming:
        return response.content
    if response.is_async:

        async def read():
            return b"".join([chunk async for chunk in response.streaming_content])

        return async_to_sync(read)()  # ORM calls stay on this thread: the test's transaction
    return b"".join(response.streaming_content)


def check(response, want, url):
    status = response.status_code
    if want == "login":
        assert status == 302 and response["Location"].startswith("/accounts/login/?next="), url
    elif want == "admin login":
        assert status == 302 and response["Location"].startswith(
            ("/admin/login/", "/accounts/login/")
        ), url
    elif want is None:
        assert 200 <= status < 400, (url, status)
    elif isinstance(want, tuple):
        assert status in want, (url, status)
    else:
        assert status == want, (url, status, response.get("Location"))


@pytest.mark.parametrize(
    ("method", "url", "needs", "status"), ROWS, ids=[f"{r[0]} {r[1]}" for r in ROWS]
)
def test_it_enforces_the_permission_matrix_everywhere(world, method, url, needs, status):
    """Each row for the five roles in turn (no row writes: an empty POST is refused)."""
    url = url.format(**world)
    for role in ROLES:
        client = client_for(role)
        response = getattr(client, method)(url, {}) if method != "get" else client.get(url)
        want = expected(role, needs, status)
        check(response, want, f"{ROLE_IDS.get(role, role)}: {method} {url}")
        content = body(response)
        if needs == STREAM and want == 200:
            assert response["Content-Type"] == "text/event-stream" and b"event: " in content


@pytest.mark.parametrize("url", [url for _, url, _, _ in STREAMS])
def test_streams_answer_only_get(world, url):
    response = client_for("viewer").post(url.format(**world))
    assert response.status_code == 405
    assert response["Allow"] == "GET"
