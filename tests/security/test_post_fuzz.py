"""Hypothesis over the state-changing profile, release and cluster endpoints that the
profile form fuzz (tests/deployments/test_form_fuzz.py: new, edit, validate, import) does not
already cover: clone, delete, formset rows, blur validation, deploy, cancel, roll back,
cluster check. Accounts and the admin site: test_post_fuzz_accounts.py.

Each example runs in a transaction that is rolled back. The test client raises a view's
exception instead of rendering a 500, so a server error fails the example. A request that
is refused writes nothing (a digest of every table compared) and queues no Celery task; one
that is accepted writes exactly what it says (a clone, a release, an audit event).
"""

from urllib.parse import quote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from deployments.models import AuditEvent, Profile, Release
from deployments.services.preview import fingerprint
from deployments.services.profiles import parse_spec_of
from tests.security.fuzzing import (
    assert_rejected,
    budget,
    extra_fields,
    rolled_back,
    slug_or_hostile,
    snapshot,
    text,
    value,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("fast_password_hashing", "uninstrumented_templates"),
]


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
def test_deploy(deployer_client, fuzz_world, queued, build, token, print_, extra):
    def check():
        Release.objects.filter(status=Release.Status.QUEUED).update(status=Release.Status.CANCELLED)
        current = fingerprint(fuzz_world["profile"])
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
            assert release.status == Release.Status.QUEUED and queued == [release.pk]
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


def _release_url(fuzz_world, which, action):
    """The URL, the pk and the world's name for it: a drawn integer that happens to be one of
    the world's releases (the database's sequence is not reset between tests) is that release,
    not an unknown id."""
    names = {r.pk: name for name, r in fuzz_world.items() if isinstance(r, Release)}
    pk = fuzz_world[which].pk if isinstance(which, str) else which
    return f"/releases/{pk}/{action}/", pk, names.get(pk)


@budget(0.15)
@given(which=release_ids, extra=extra_fields)
def test_cancel(deployer_client, fuzz_world, queued, which, extra):
    def check():
        url, pk, which_ = _release_url(fuzz_world, which, "cancel")
        before = snapshot()
        response = deployer_client.post(url, extra)
        event(f"cancel {which_ or 'other'} -> {response.status_code}")
        if which_ == "active":
            assert response.status_code == 302
            assert Release.objects.get(pk=pk).status == Release.Status.CANCELLED
            assert AuditEvent.objects.filter(action="release.cancel").count() == 1
        elif which_:  # finished: nothing to cancel, and it says so
            assert response.status_code == 302 and snapshot() == before
        else:
            assert response.status_code == 404
            assert_rejected(response, before, queued=queued)
        assert queued == []

    rolled_back(check, queued)


@budget(0.15)
@given(which=release_ids, idle=st.booleans(), extra=extra_fields)
def test_rollback(deployer_client, fuzz_world, queued, which, idle, extra):
    def check():
        if idle:
            Release.objects.filter(status=Release.Status.QUEUED).update(
                status=Release.Status.CANCELLED
            )
        url, pk, which_ = _release_url(fuzz_world, which, "rollback")
        before = snapshot()
        response = deployer_client.post(url, extra)
        event(f"rollback {which_ or 'other'} idle={idle} -> {response.status_code}")
        if response.status_code == 302:
            assert idle and which_ in ("first", "second")
            release = Release.objects.latest("pk")
            assert release.kind == Release.Kind.ROLLBACK and release.rollback_of_id == pk
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
