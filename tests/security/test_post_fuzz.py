"""Hypothesis over every state-changing endpoint that the profile form fuzz
(tests/deployments/test_form_fuzz.py: new, edit, validate, import) does not already cover:
clone, delete, deploy, cancel, roll back, cluster check, formset rows, blur validation,
login, password change and reset, and the admin's profile and cluster forms.

Each example runs in a transaction that is rolled back. The test client raises a view's
exception instead of rendering a 500, so a server error fails the example. A request that
is refused writes nothing (every table's rows compared) and queues no Celery task; one that
is accepted writes exactly what it says (a clone, a release, an audit event).
"""

from urllib.parse import quote

import pytest
from celery.app.task import Task
from celery.contrib.django.task import DjangoTask
from django.contrib.auth.models import User
from django.core import mail
from django.db import transaction
from django.test import Client
from django.utils.http import url_has_allowed_host_and_scheme
from hypothesis import event, given
from hypothesis import strategies as st

from deployments.models import AuditEvent, Cluster, Profile, Release
from deployments.services.preview import fingerprint
from deployments.services.profiles import parse_spec_of
from tests.factories import PASSWORD, UserFactory, make_release
from tests.security.fuzzing import (
    FormFields,
    assert_rejected,
    budget,
    extra_fields,
    snapshot,
    text,
    value,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def uninstrumented_templates(monkeypatch):
    """As in test_form_fuzz: the test client's per-template context copies are most of an
    example's time on the big pages (admin change form, deploy page)."""
    from django.template.base import Template
    from django.test import utils

    original = getattr(getattr(utils._TestState, "saved_data", None), "template_render", None)
    if original is not None:
        monkeypatch.setattr(Template, "_render", original)


@pytest.fixture
def queued(monkeypatch):
    """Every Celery task a request would queue (the views' enqueue helpers and any task's
    apply_async / delay_on_commit), recorded instead of sent."""
    from deployments.views import clusters, releases

    calls = []
    monkeypatch.setattr(releases, "release_enqueue", lambda release: calls.append(release.pk))
    monkeypatch.setattr(releases, "preview_request", lambda profile: None)
    monkeypatch.setattr(clusters, "doctor_request", lambda cluster: None)
    monkeypatch.setattr(clusters, "doctor_forget", lambda cluster: calls.append(cluster.name))
    monkeypatch.setattr(Task, "apply_async", lambda self, *a, **k: calls.append(self.name))
    monkeypatch.setattr(
        DjangoTask, "delay_on_commit", lambda self, *a, **k: calls.append(self.name)
    )
    return calls


@pytest.fixture
def world(todo_app, queued):
    first = make_release(todo_app, revision=1)
    second = make_release(todo_app, revision=2)
    failed = make_release(todo_app, "failed")
    active = make_release(todo_app, "queued")
    return {
        "profile": todo_app,
        "first": first,
        "second": second,
        "failed": failed,
        "active": active,
    }


def signed_in(role, **fields):
    client = Client()
    user = UserFactory(role=role, **fields)
    assert client.login(username=user.username, password=PASSWORD)
    assert client.raise_request_exception  # a view's exception fails the example
    client.user = user
    return client


@pytest.fixture
def admin_client(world):
    return signed_in("admin")


@pytest.fixture
def viewer_client(world):
    client = signed_in("viewer")
    client.session_key = client.cookies["sessionid"].value
    return client


@pytest.fixture
def deployer_client(world):
    return signed_in("deployer")


def rolled_back(check, queued):
    """Run `check` in a transaction that is undone afterwards (examples stay independent)."""
    queued.clear()
    with transaction.atomic():
        check()
        transaction.set_rollback(True)


slug_or_hostile = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z"),
    value,
    st.sampled_from(["todo-app", "todo-app-copy", "new", "import", "a" * 54, "Todo-App"]),
)


# ---- profile actions -------------------------------------------------------------------------


@budget(0.15)
@given(name=slug_or_hostile, namespace=slug_or_hostile, extra=extra_fields)
def test_clone(admin_client, queued, name, namespace, extra):
    def check():
        before = snapshot()
        response = admin_client.post(
            "/profiles/todo-app/clone/", {**extra, "name": name, "namespace": namespace}
        )
        event(f"clone -> {response.status_code}")
        if response.status_code == 302:
            clone = Profile.objects.get(name=name)
            assert parse_spec_of(clone)["namespace"] == namespace
            assert AuditEvent.objects.filter(action="profile.cloned", target=name).exists()
        else:
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


@budget(0.1)
@given(name=slug_or_hostile, extra=extra_fields)
def test_delete(admin_client, queued, name, extra):
    def check():
        before = snapshot()
        response = admin_client.post(f"/profiles/{quote(name, safe='')}/delete/", extra)
        event(f"delete -> {response.status_code}")
        if response.status_code == 302:
            assert name == "todo-app" and not Profile.objects.filter(name=name).exists()
            assert AuditEvent.objects.filter(action="profile.deleted", target=name).exists()
        else:
            assert response.status_code == 404
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


@budget(0.1)
@given(
    kind=st.one_of(st.sampled_from(["components", "config", "secrets"]), text),
    total=st.one_of(value, st.integers(-5, 600).map(str)),
)
def test_formset_rows(admin_client, queued, kind, total):
    def check():
        before = snapshot()
        response = admin_client.get(
            f"/profiles/rows/{quote(kind, safe='')}/",
            {
                "components-TOTAL_FORMS": total,
                "config-TOTAL_FORMS": total,
                "secrets-TOTAL_FORMS": total,
            },
        )
        event(f"rows -> {response.status_code}")
        assert response.status_code in (200, 204, 404)
        assert snapshot() == before and queued == []

    rolled_back(check, queued)


@budget(0.1)
@given(
    data=extra_fields,
    trigger=st.one_of(
        st.sampled_from(
            [
                "name",
                "components-0-cpu_request",
                "config-0-value",
                "secrets-0-new_value",
                "components-0-build_args",
                "components-99-port",
            ]
        ),
        text,
    ),
)
def test_blur_validation(admin_client, queued, data, trigger):
    def check():
        before = snapshot()
        response = admin_client.post(
            "/profiles/validate/",
            {**data, "_field": trigger},
            headers={"HX-Request": "true", "HX-Trigger-Name": trigger},
        )
        assert response.status_code in (200, 204)
        assert snapshot() == before and queued == []

    rolled_back(check, queued)


# ---- releases and clusters -------------------------------------------------------------------


@budget(0.15)
@given(
    build=st.one_of(st.sampled_from(["on", "true", "", "off"]), value),
    token=st.one_of(st.just(None), st.sampled_from(["tok-1", "x" * 64, "x" * 65]), value),
    print_=st.sampled_from(["current", "", "stale", "x" * 65]),
    extra=extra_fields,
)
def test_deploy(deployer_client, world, queued, build, token, print_, extra):
    def check():
        Release.objects.filter(status=Release.QUEUED).update(status=Release.CANCELLED)
        current = fingerprint(world["profile"])
        data = {
            **extra,
            "build": build,
            "fingerprint": {"current": current, "stale": "0" * 16}.get(print_, print_),
        }
        if token is not None:
            data["token"] = token
        before = snapshot()
        response = deployer_client.post("/profiles/todo-app/deploy/", data)
        event(f"deploy -> {response.status_code}")
        if response.status_code == 302:
            release = Release.objects.latest("pk")
            assert release.status == Release.QUEUED and queued == [release.pk]
            assert AuditEvent.objects.filter(
                action="release.deploy", target=f"release #{release.pk}"
            ).exists()
        else:
            assert response.status_code in (400, 409)
            assert b"Not started" in response.content
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


release_ids = st.one_of(
    st.sampled_from(["first", "second", "failed", "active"]),
    st.integers(0, 2**70),
    st.sampled_from([2**31, 2**63, -1]),
)


def _release_url(world, which, action):
    pk = world[which].pk if isinstance(which, str) else which
    return f"/releases/{pk}/{action}/", pk


@budget(0.15)
@given(which=release_ids, extra=extra_fields)
def test_cancel(deployer_client, world, queued, which, extra):
    def check():
        url, pk = _release_url(world, which, "cancel")
        before = snapshot()
        response = deployer_client.post(url, extra)
        event(f"cancel {which if isinstance(which, str) else 'other'} -> {response.status_code}")
        if which == "active":
            assert response.status_code == 302
            assert Release.objects.get(pk=pk).status == Release.CANCELLED
            assert AuditEvent.objects.filter(action="release.cancel").count() == 1
        elif isinstance(which, str):  # finished: nothing to cancel, and it says so
            assert response.status_code == 302 and snapshot() == before
        else:
            assert response.status_code == 404
            assert_rejected(response, before, queued=queued)
        assert queued == []

    rolled_back(check, queued)


@budget(0.15)
@given(which=release_ids, idle=st.booleans(), extra=extra_fields)
def test_rollback(deployer_client, world, queued, which, idle, extra):
    def check():
        if idle:
            Release.objects.filter(status=Release.QUEUED).update(status=Release.CANCELLED)
        url, pk = _release_url(world, which, "rollback")
        before = snapshot()
        response = deployer_client.post(url, extra)
        event(
            f"rollback {which if isinstance(which, str) else 'other'} idle={idle} -> "
            f"{response.status_code}"
        )
        if response.status_code == 302:
            assert idle and which in ("first", "second")
            release = Release.objects.latest("pk")
            assert release.kind == Release.ROLLBACK and release.rollback_of_id == pk
            assert queued == [release.pk]
            assert AuditEvent.objects.filter(action="release.rollback").exists()
        else:
            assert response.status_code in (404, 409)
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


@budget(0.15)
@given(name=st.one_of(st.just("minikube"), slug_or_hostile), extra=extra_fields)
def test_cluster_check(deployer_client, queued, name, extra):
    def check():
        before = snapshot()
        response = deployer_client.post(f"/clusters/{quote(name, safe='')}/check/", extra)
        if name == "minikube":
            assert response.status_code == 302 and queued == ["minikube"]
            assert snapshot() == before
        else:
            assert response.status_code == 404
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


# ---- accounts --------------------------------------------------------------------------------

hostile_next = st.sampled_from(
    [
        "/",
        "/profiles/",
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        "%2F%2Fevil",
    ]
)


@budget(0.35)
@given(
    username=st.one_of(st.just("REAL"), value),
    password=st.one_of(st.just(PASSWORD), value),
    next_=hostile_next,
    extra=extra_fields,
)
def test_login(world, queued, username, password, next_, extra):
    def check():
        user = UserFactory(role="viewer")
        client = Client()
        name = user.username if username == "REAL" else username
        before = snapshot()
        response = client.post(
            "/accounts/login/", {**extra, "username": name, "password": password, "next": next_}
        )
        event(f"login -> {response.status_code}")
        if response.status_code == 302:
            assert name == user.username and password == PASSWORD
            # never to another site: relative, or this host only
            assert url_has_allowed_host_and_scheme(response["Location"], {"testserver"})
        else:
            assert_rejected(response, before, queued=queued)  # no session row either
            assert "sessionid" not in response.cookies

    rolled_back(check, queued)


@budget(0.1)
@given(
    old=st.one_of(st.just(PASSWORD), value),
    new1=st.one_of(st.just("N3w-pass-phrase!"), value),
    same=st.booleans(),
    extra=extra_fields,
)
def test_password_change(viewer_client, queued, old, new1, same, extra):
    client = viewer_client
    # a change cycles the session key; the rollback brings back the old session's row
    client.cookies["sessionid"] = viewer_client.session_key

    def check():
        before = snapshot()
        new2 = new1 if same else new1 + "x"
        response = client.post(
            "/accounts/password_change/",
            {**extra, "old_password": old, "new_password1": new1, "new_password2": new2},
        )
        event(f"password change -> {response.status_code}")
        if response.status_code == 302:
            assert old == PASSWORD and same
            assert User.objects.get(pk=client.user.pk).check_password(new1)
        else:
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


@budget(0.15)
@given(email=st.one_of(st.just("REAL"), st.emails(), value), extra=extra_fields)
def test_password_reset(world, queued, email, extra):
    def check():
        user = UserFactory(role="viewer", email="someone@example.com")
        mail.outbox.clear()
        before = snapshot()
        address = user.email if email == "REAL" else email
        response = Client().post("/accounts/password_reset/", {**extra, "email": address})
        event(f"password reset -> {response.status_code}")
        assert snapshot() == before and queued == []
        if response.status_code == 302:  # the same answer for known and unknown addresses
            assert response["Location"] == "/accounts/password_reset/done/"
            assert len(mail.outbox) == (1 if address.lower() == user.email else 0)
        else:
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


# ---- the admin site --------------------------------------------------------------------------


@pytest.fixture
def profile_admin_form(admin_client, world):
    url = f"/admin/deployments/profile/{world['profile'].pk}/change/"
    return url, FormFields(admin_client.get(url).content.decode()).data


@budget(0.05)
@given(changes=st.data())
def test_admin_profile_change(admin_client, world, queued, profile_admin_form, changes):
    url, base = profile_admin_form
    keys = sorted(k for k in base if k != "csrfmiddlewaretoken")
    data = dict(base)
    for key in changes.draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        data[key] = changes.draw(value)
    data.update(changes.draw(extra_fields))

    def check():
        before, events = snapshot(), AuditEvent.objects.count()
        spec = parse_spec_of(world["profile"])
        response = admin_client.post(url, data)
        event(f"admin profile -> {response.status_code}")
        if response.status_code == 302:
            profile = Profile.objects.get(pk=world["profile"].pk)
            if parse_spec_of(profile) != spec:
                assert AuditEvent.objects.count() > events
        else:
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


@budget(0.1)
@given(
    name=slug_or_hostile,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "kube_context",
                "kubeconfig_path",
                "minikube_profile",
                "docker_host",
                "capacity_cpus",
                "capacity_memory",
            ]
        ),
        value,
        max_size=4,
    ),
    extra=extra_fields,
)
def test_admin_cluster_add(admin_client, queued, name, fields, extra):
    def check():
        before = snapshot()
        response = admin_client.post(
            "/admin/deployments/cluster/add/",
            {"capacity_cpus": "4", "capacity_memory": "8Gi", **extra, **fields, "name": name},
        )
        event(f"admin cluster -> {response.status_code}")
        if response.status_code == 302:
            assert Cluster.objects.filter(name=name).exists()
            assert AuditEvent.objects.filter(action="cluster.created", target=name).exists()
        else:
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)
