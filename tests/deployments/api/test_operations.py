"""/api/v1 actions on what runs: who may, what a bad body gets, and (on the sandbox) what the
cluster runs afterwards."""

import pytest

from deployments.models import AuditEvent, Profile
from tests.fixtures.profiles import replicas_of

BASE = "/api/v1/profiles/small"


@pytest.fixture
def deployed(small_deployed):
    return small_deployed


CALLS = [
    ("post", f"{BASE}/components/web/restart", None),
    ("post", f"{BASE}/components/web/scale", {"replicas": 2}),
    ("delete", f"{BASE}/pods/small-web-1", None),
    ("post", f"{BASE}/sleep", None),
    ("post", f"{BASE}/wake", None),
]


def call(client, method, url, body):
    return client.delete(url) if method == "delete" else client.post(url, body)


@pytest.mark.django_db
def test_viewers_read_only_tokens_and_other_profiles_tokens_are_refused(api_as, todo_app):
    from tests.factories import ComponentFactory, ProfileFactory

    profile = ProfileFactory(name="small")
    ComponentFactory(profile=profile, name="web")
    clients = {
        403: [api_as("viewer"), api_as("deployer", read_only=True)],
        404: [api_as("deployer", profiles=[todo_app])],
    }
    for status, group in clients.items():
        for client in group:
            for method, url, body in CALLS:
                response = call(client, method, url, body)
                assert response.status_code == status, (url, response.content)
                assert response.json()["errors"][0]["message"]
    assert not AuditEvent.objects.filter(action__regex=r"^(component|pod)\.").exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_deployer_token_scales_sleeps_and_wakes(api_as, deployed, sandbox):
    client = api_as("deployer")
    response = client.post(f"{BASE}/components/web/scale", {"replicas": 2})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "message": "Scaled web to 2 pods. The profile says 1: the next deploy sets that again.",
        "replicas": {"web": 2},
    }
    assert replicas_of(sandbox) == {"api": 1, "web": 2}

    response = client.post(f"{BASE}/components/nope/restart")
    assert response.status_code == 404
    assert response.json()["errors"][0]["message"] == "small has no component nope"

    assert client.post(f"{BASE}/sleep").json()["replicas"] == {"api": 1, "web": 2}
    again = client.post(f"{BASE}/sleep")
    assert again.status_code == 409
    assert again.json()["errors"] == [{"path": "", "message": "small is already asleep"}]
    assert replicas_of(sandbox) == {"api": 0, "web": 0}
    response = client.post(f"{BASE}/components/web/scale", {"replicas": 1})
    assert response.status_code == 409 and "wake it" in response.json()["errors"][0]["message"]

    assert client.post(f"{BASE}/wake").json()["replicas"] == {"api": 1, "web": 2}
    assert replicas_of(sandbox) == {"api": 1, "web": 2}
    used = AuditEvent.objects.filter(action="api_token.used").values_list("target", flat=True)
    assert {t.split(": ", 1)[1] for t in used} == {"scale web to 2", "sleep", "wake"}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_admin_token_tears_down_through_a_worker(api_as, deployed, sandbox, celery_worker):
    from deployments.models import Release
    from tests.faults.conftest import wait_for

    client = api_as("admin")
    wrong = client.post(f"{BASE}/teardown", {"confirm": "smal"})
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == [
        {"path": "confirm", "message": "type small exactly to tear it down"}
    ]
    assert api_as("deployer").post(f"{BASE}/teardown", {"confirm": "small"}).status_code == 403

    response = client.post(f"{BASE}/teardown", {"confirm": "small"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["kind"] == "teardown" and [s["name"] for s in body["steps"]] == ["uninstall"]
    wait_for(lambda: Release.objects.get(pk=body["id"]).status in Release.TERMINAL, 120, "teardown")
    release = Release.objects.get(pk=body["id"])
    assert release.status == "succeeded", release.reason
    assert not sandbox.apps.list_namespaced_deployment(sandbox.namespace).items
    # the sandbox made the namespace, not Helmdeck: kept, and the log says why
    assert sandbox.core.read_namespace(sandbox.namespace).metadata.deletion_timestamp is None
    assert release.log_lines.filter(text__contains="kept: it was there before").exists()


@pytest.mark.django_db
def test_the_api_sets_it_with_a_token_and_says_which_field_is_wrong(api_as):
    from tests.factories import ProfileFactory

    shop = ProfileFactory(name="shop")
    client = api_as("deployer")
    url = "/api/v1/profiles/shop/sleep-schedule"
    ok = client.put(url, {"hours": 12})
    assert ok.status_code == 200, ok.content
    assert ok.json() == {
        "message": "shop goes to sleep after 12 hours without a deploy, an action or a visit "
        "of its page.",
        "hours": 12,
    }
    for body, path in [
        ({"hours": 0}, "hours"),
        ({"hours": 721}, "hours"),
        ({"hours": "12"}, "hours"),
        ({"hours": 12, "at": 1}, "at"),
        ({}, "hours"),
    ]:
        bad = client.put(url, body)
        assert bad.status_code == 422, (body, bad.content)
        assert [e["path"] for e in bad.json()["errors"]] == [path], (body, bad.json())
    off = client.put(url, {"hours": None})
    assert off.json()["hours"] is None
    viewer = api_as("viewer").put(url, {"hours": 1})
    assert viewer.status_code == 403
    assert Profile.objects.get(pk=shop.pk).sleep_after_hours is None
