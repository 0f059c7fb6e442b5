"""Who may call which API operation: every operation of the OpenAPI document against every
kind of caller. A new operation fails this test until it is given its row here."""

import pytest
from django.db import transaction
from django.utils import timezone

from deployments.api import api
from deployments.models import Profile, Release
from deployments.services.api_tokens import api_token_create, api_token_revoke
from deployments.services.webhooks import webhook_create
from tests.deployments.api.conftest import ApiClient, token_for
from tests.factories import ProfileFactory, UserFactory, make_release

pytestmark = pytest.mark.django_db

VIEWER, DEPLOYER, ADMIN = "viewer", "deployer", "admin"
RANK = {None: 0, VIEWER: 1, DEPLOYER: 2, ADMIN: 3}


def _document(name):
    return {
        "name": name,
        "namespace": name,
        "cluster": "minikube",
        "components": {"web": {"image": "web", "tag": "1.0", "port": 8080}},
    }


def _todo_document(world):
    from deployments.spec_rows import spec_from_profile

    return spec_from_profile(world["profile"])


# (method, path) -> (the least role, writes?, kind, request(world) -> (url, body))
OPERATIONS = {
    ("GET", "/api/v1/profiles"): (VIEWER, False, "list", lambda w: ("/api/v1/profiles", None)),
    ("POST", "/api/v1/profiles"): (
        ADMIN,
        True,
        "create",
        lambda w: ("/api/v1/profiles", _document("fresh")),
    ),
    ("GET", "/api/v1/profiles/{name}"): (
        VIEWER,
        False,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app", None),
    ),
    ("PUT", "/api/v1/profiles/{name}"): (
        ADMIN,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app", _todo_document(w)),
    ),
    ("DELETE", "/api/v1/profiles/{name}"): (
        ADMIN,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app", None),
    ),
    ("GET", "/api/v1/profiles/{name}/status"): (
        VIEWER,
        False,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/status", None),
    ),
    ("POST", "/api/v1/profiles/{name}/releases"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/releases", {"build": False}),
    ),
    ("GET", "/api/v1/profiles/{name}/releases"): (
        VIEWER,
        False,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/releases", None),
    ),
    ("POST", "/api/v1/profiles/{name}/rollback"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/rollback", {}),
    ),
    ("GET", "/api/v1/releases/{pk}"): (
        VIEWER,
        False,
        "profile",
        lambda w: (f"/api/v1/releases/{w['first'].pk}", None),
    ),
    ("POST", "/api/v1/releases/{pk}/cancel"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: (f"/api/v1/releases/{w['first'].pk}/cancel", None),
    ),
    ("GET", "/api/v1/releases/{pk}/log"): (
        VIEWER,
        False,
        "profile",
        lambda w: (f"/api/v1/releases/{w['first'].pk}/log", None),
    ),
    ("GET", "/api/v1/releases/{pk}/events"): (
        VIEWER,
        False,
        "profile",
        lambda w: (f"/api/v1/releases/{w['first'].pk}/events", None),
    ),
    ("GET", "/api/v1/profiles/{name}/logs"): (
        VIEWER,
        False,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/logs", None),
    ),
    ("GET", "/api/v1/clusters"): (VIEWER, False, "cluster", lambda w: ("/api/v1/clusters", None)),
    # no token needed, none enough: only the webhook's signature (unsigned here) opens it
    ("POST", "/api/v1/hooks/{public_id}"): (
        None,
        True,
        "webhook",
        lambda w: (f"/api/v1/hooks/{w['hook'].public_id}", {}),
    ),
    ("GET", "/api/v1/clusters/{name}/doctor"): (
        VIEWER,
        False,
        "cluster",
        lambda w: ("/api/v1/clusters/minikube/doctor", None),
    ),
    ("POST", "/api/v1/profiles/{name}/components/{component}/restart"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/components/backend/restart", None),
    ),
    ("POST", "/api/v1/profiles/{name}/components/{component}/scale"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/components/backend/scale", {"replicas": 2}),
    ),
    ("DELETE", "/api/v1/profiles/{name}/pods/{pod}"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/pods/todo-app-backend-1", None),
    ),
    ("POST", "/api/v1/profiles/{name}/sleep"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/sleep", None),
    ),
    ("PUT", "/api/v1/profiles/{name}/sleep-schedule"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/sleep-schedule", {"hours": 8}),
    ),
    ("POST", "/api/v1/profiles/{name}/teardown"): (
        ADMIN,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/teardown", {"confirm": "todo-app"}),
    ),
    ("POST", "/api/v1/profiles/{name}/wake"): (
        DEPLOYER,
        True,
        "profile",
        lambda w: ("/api/v1/profiles/todo-app/wake", None),
    ),
}
# actions on what runs, past the checks of who may: the cluster answers nothing here (502);
# waking a profile that is not asleep is refused before the cluster is asked (409)
ACTED = {"restart": {502}, "scale": {502}, "{pod}": {502}, "sleep": {502}, "wake": {409}}


def _operations_in_the_document():
    schema = api.get_openapi_schema()
    prefix = "/api/v1"
    return {
        (method.upper(), path if path.startswith(prefix) else prefix + path)
        for path, methods in schema["paths"].items()
        for method in methods
    }


def test_every_operation_has_a_row():
    missing = _operations_in_the_document() - set(OPERATIONS)
    assert not missing, f"add these operations to OPERATIONS: {sorted(missing)}"
    assert not set(OPERATIONS) - _operations_in_the_document()


@pytest.fixture
def world(todo_app, monkeypatch, unreachable_kubeconfig):
    from deployments.api import clusters, operations, profiles

    monkeypatch.setattr(profiles, "release_enqueue", lambda release: None)
    monkeypatch.setattr(operations, "release_enqueue", lambda release: None)
    monkeypatch.setattr(clusters, "doctor_request", lambda cluster: None)
    type(todo_app.cluster).objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig)
    )
    first = make_release(todo_app, "succeeded", revision=1)
    make_release(todo_app, "succeeded", revision=2)
    other = ProfileFactory(name="other", namespace="other")
    hook, _ = webhook_create(profile=todo_app, name="ci", build=False, actor=None)
    return {"profile": todo_app, "first": first, "other": other, "hook": hook}


def _caller(kind, world):
    """(an ApiClient, its role, read-only?, narrowed to another profile?)"""
    if kind == "no token":
        return ApiClient(), "unauthenticated", False, False
    if kind == "wrong token":
        return ApiClient("hd_" + "x" * 43), "unauthenticated", False, False
    if kind in ("revoked", "expired"):
        user = UserFactory(role=ADMIN)
        token, raw = api_token_create(user=user, name=kind, expires_in_days=1)
        if kind == "revoked":
            api_token_revoke(token=token, actor=user)
        else:
            type(token).objects.filter(pk=token.pk).update(expires_at=timezone.now())
        return ApiClient(raw), "unauthenticated", False, False
    if kind == "deactivated":
        token, raw = token_for(ADMIN)
        token.user.is_active = False
        token.user.save()
        return ApiClient(raw), "unauthenticated", False, False
    if kind == "read-only admin":
        return ApiClient(token_for(ADMIN, read_only=True)[1]), ADMIN, True, False
    if kind == "admin narrowed to another profile":
        raw = token_for(ADMIN, profiles=[world["other"]])[1]
        return ApiClient(raw), ADMIN, False, True
    if kind == "no role":
        return ApiClient(token_for(None)[1]), None, False, False
    return ApiClient(token_for(kind)[1]), kind, False, False


CALLERS = [
    "no token",
    "wrong token",
    "revoked",
    "expired",
    "deactivated",
    "no role",
    VIEWER,
    DEPLOYER,
    ADMIN,
    "read-only admin",
    "admin narrowed to another profile",
]


def _expected(operation, role, read_only, narrowed):
    least, writes, kind, _ = OPERATIONS[operation]
    if kind == "webhook" or role == "unauthenticated":
        return {401}
    if RANK[role] < RANK[least] or (writes and read_only):
        return {403}
    if narrowed and kind == "create":
        return {403}
    if narrowed and kind == "profile":
        return {404}
    if operation[1].endswith("/logs"):  # the cluster answers nothing here: 503, after the checks
        return {503}
    if (last := operation[1].rsplit("/", 1)[1]) in ACTED:
        return ACTED[last]
    return {200, 201, 202, 204}


@pytest.mark.parametrize("operation", sorted(OPERATIONS), ids=lambda o: f"{o[0]} {o[1]}")
def test_each_caller_gets_what_its_role_and_token_allow(operation, world):
    method = operation[0]
    results = []
    for kind in CALLERS:
        with transaction.atomic():
            client, role, read_only, narrowed = _caller(kind, world)
            if operation[1].endswith("/cancel"):  # something to cancel
                Release.objects.filter(status__in=Release.ACTIVE).delete()
                world["first"] = make_release(world["profile"], "queued")
            url, body = OPERATIONS[operation][3](world)
            before = (Profile.objects.count(), Release.objects.count())
            if method == "GET":
                response = client.get(url)
            elif method == "DELETE":
                response = client.delete(url)
            else:
                response = getattr(client, method.lower())(url, body or {})
            expected = _expected(operation, role, read_only, narrowed)
            results.append((kind, response.status_code, expected))
            if response.status_code >= 400:
                assert "errors" in response.json(), (kind, response.content)
                # a refused call wrote nothing
                assert (Profile.objects.count(), Release.objects.count()) == before, kind
            transaction.set_rollback(True)
    wrong = [(k, got, sorted(want)) for k, got, want in results if got not in want]
    assert not wrong, f"{operation}: (caller, status, expected) {wrong}"
