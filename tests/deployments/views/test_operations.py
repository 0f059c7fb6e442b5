"""The action pages (restart, scale, delete a pod, sleep, wake): who may use them, what a bad
form gets, the confirmation before anything stops pods, and (on the sandbox) what the
cluster runs afterwards, acted on once however often the form is sent."""

import re

import pytest
from django.urls import reverse

from deployments.models import AuditEvent, Profile
from deployments.services.releases import release_request
from tests.factories import ComponentFactory, ProfileFactory
from tests.fixtures.profiles import replicas_of


def urls(profile, component="web", pod="small-web-1"):
    name = profile.name
    return {
        "restart": reverse("deployments:component_restart", args=[name, component]),
        "scale": reverse("deployments:component_scale", args=[name, component]),
        "delete": reverse("deployments:pod_delete", args=[name, pod]),
        "sleep": reverse("deployments:profile_sleep", args=[name]),
        "wake": reverse("deployments:profile_wake", args=[name]),
    }


@pytest.fixture
def shop(db):
    profile = ProfileFactory(name="shop")
    ComponentFactory(profile=profile, name="web")
    return profile


@pytest.mark.django_db
@pytest.mark.parametrize("role", [None, "viewer"])
def test_only_deployers_and_admins_may_act(client, login, shop, role):
    if role:
        client = login(role)
    for url in urls(shop).values():
        for method in (client.get, client.post):
            response = method(url, {"token": "t", "replicas": "2", "confirmed": "on"})
            if role is None:
                assert response.status_code == 302 and "/accounts/login/" in response["Location"]
            else:
                assert response.status_code == 403, url
    assert not AuditEvent.objects.filter(action__regex=r"^(component|pod)\.").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("replicas", ["", "abc", "-1", "51", "1e3", "2.5"])
def test_a_bad_number_of_replicas_is_a_field_message(login, shop, replicas):
    client = login("deployer")
    response = client.post(urls(shop)["scale"], {"token": "t", "replicas": replicas})
    assert response.status_code == 400
    assert re.search(r'id="id_replicas-errors"[^>]*><p>[^<]+</p>', response.content.decode())
    assert not AuditEvent.objects.filter(action="component.scale").exists()


@pytest.mark.django_db
def test_scaling_to_zero_asks_first(login, shop):
    client = login("deployer")
    response = client.post(urls(shop)["scale"], {"token": "t1", "replicas": "0"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Scale web of shop?" in page and "lost" in page
    assert 'name="confirmed" value="True"' in page and 'name="token" value="t1"' in page
    assert not AuditEvent.objects.filter(action="component.scale").exists()


@pytest.mark.django_db
def test_an_unknown_component_or_profile_is_404(login, shop):
    client = login("deployer")
    assert client.get(urls(shop, component="nope")["restart"]).status_code == 404
    other = ProfileFactory.build(name="nope")
    assert client.get(urls(other)["sleep"]).status_code == 404


@pytest.mark.django_db
def test_an_action_refused_says_why_and_does_nothing(login, shop):
    from tests.factories import make_release

    client = login("deployer")
    response = client.post(urls(shop)["restart"], {"token": "t0"})
    assert response.status_code == 409 and "shop is not deployed" in response.content.decode()
    make_release(shop, "succeeded", revision=1)
    release = release_request(profile=shop, actor=None, build=False)
    response = client.post(urls(shop)["restart"], {"token": "t"})
    assert response.status_code == 409
    assert f"release #{release.pk} of shop is queued" in response.content.decode()
    release.delete()
    response = client.post(urls(shop)["wake"], {"token": "t2"})
    assert response.status_code == 409 and "shop is not asleep" in response.content.decode()
    # a pod name no pod can have: 404 before anything is asked
    bad = reverse("deployments:pod_delete", args=["shop", "Not_A_Pod"])
    assert client.get(bad).status_code == 404


# ---- on the sandbox ------------------------------------------------------------------------


@pytest.fixture
def deployed(small_deployed):
    return small_deployed


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_profile_page_restarts_scales_and_sleeps_each_once(login, deployed, sandbox):
    client = login("deployer")
    page = client.get(reverse("deployments:profile_detail", args=[deployed.name]))
    html = page.content.decode()
    assert 'aria-label="Restart web"' in html and 'aria-label="Scale api"' in html
    assert "Sleep…" in html
    links = urls(deployed)
    back = reverse("deployments:profile_detail", args=[deployed.name])

    template = sandbox.apps.read_namespaced_deployment("small-web", sandbox.namespace)
    assert "kubectl.kubernetes.io/restartedAt" not in (
        template.spec.template.metadata.annotations or {}
    )
    for _ in range(2):  # a double click: the same form twice
        response = client.post(links["restart"], {"token": "r1"})
        assert response.status_code == 302 and response["Location"] == back
    assert AuditEvent.objects.filter(action="component.restart").count() == 1
    restarted = sandbox.apps.read_namespaced_deployment("small-web", sandbox.namespace)
    assert restarted.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]

    response = client.post(links["scale"], {"token": "s1", "replicas": "3"}, follow=True)
    assert "Scaled web to 3 pods. The profile says 1" in response.content.decode()
    assert replicas_of(sandbox)["web"] == 3
    assert "web is scaled to 3 pods; the profile says 1" in response.content.decode()

    response = client.post(links["sleep"], {"token": "z1"})
    assert response.status_code == 200 and "Put small to sleep?" in response.content.decode()
    assert replicas_of(sandbox) == {"api": 1, "web": 3}  # asked, not yet done
    first, again = (
        client.post(links["sleep"], {"token": "z1", "confirmed": "True"}, follow=True)
        for _ in range(2)
    )
    html = first.content.decode()
    assert again.status_code == 200 and "Not done" not in again.content.decode()
    assert "small is asleep: every component is scaled to 0. Wake restores api 1, web 3." in html
    assert replicas_of(sandbox) == {"api": 0, "web": 0}
    assert "Wake…" in html and "put to sleep by" in html
    assert AuditEvent.objects.filter(action="profile.sleep").count() == 1

    status = client.get(reverse("deployments:status")).content.decode()
    assert re.search(r'health-asleep">Asleep<', status)

    response = client.post(links["wake"], {"token": "w1"}, follow=True)
    assert "Waking small: api 1, web 3." in response.content.decode()
    assert replicas_of(sandbox) == {"api": 1, "web": 3}
    assert Profile.objects.get(pk=deployed.pk).asleep_since is None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_pod_is_deleted_after_its_confirmation(login, deployed, sandbox):
    client = login("deployer")
    (pod,) = [p.metadata.name for p in sandbox.pods("app.kubernetes.io/component=api")]
    url = reverse("deployments:pod_delete", args=[deployed.name, pod])
    response = client.get(url)
    assert response.status_code == 200 and f"Delete pod {pod}" in response.content.decode()
    assert sandbox.pod(pod).metadata.deletion_timestamp is None
    response = client.post(url, {"token": "d1"})  # the form of the confirmation page asks too
    assert response.status_code == 200
    response = client.post(url, {"token": "d1", "confirmed": "True"})
    assert response.status_code == 302
    sandbox.wait_until(
        lambda: (
            pod not in {p.metadata.name for p in sandbox.pods()}
            or sandbox.pod(pod).metadata.deletion_timestamp
        ),
        what=f"{pod} going",
    )
    assert AuditEvent.objects.filter(action="pod.delete", target=pod).count() == 1
    response = client.post(
        reverse("deployments:pod_delete", args=[deployed.name, "kube-apiserver"]),
        {"token": "d2", "confirmed": "True"},
    )
    assert response.status_code == 404 and "has no pod kube-apiserver" in response.content.decode()


@pytest.mark.django_db
def test_teardown_is_for_admins_and_asks_for_the_name(client, login, shop, monkeypatch):
    from deployments.models import Release
    from deployments.views import operations
    from tests.factories import make_release

    sent = []
    monkeypatch.setattr(operations, "release_enqueue", lambda release: sent.append(release.pk))
    url = reverse("deployments:profile_teardown", args=[shop.name])
    deployer = login("deployer")
    assert deployer.get(url).status_code == 403
    assert deployer.post(url, {"token": "t", "name": "shop"}).status_code == 403
    client.logout()

    admin = login("admin")
    page = admin.get(url).content.decode()
    assert "Type the profile&#x27;s name to confirm" in page and "helm uninstall shop" in page
    response = admin.post(url, {"token": "t1", "name": "Shop"})
    assert response.status_code == 400
    assert "type shop exactly to tear it down" in response.content.decode()
    response = admin.post(url, {"token": "t1", "name": "shop"})
    assert response.status_code == 409 and "shop is not deployed" in response.content.decode()
    assert not Release.objects.filter(kind="teardown").exists()

    make_release(shop, "succeeded", revision=1)
    first, again = (admin.post(url, {"token": "t2", "name": "shop"}) for _ in range(2))
    (teardown,) = Release.objects.filter(kind="teardown")
    assert first["Location"] == again["Location"] == f"/releases/{teardown.pk}/"
    assert sent == [teardown.pk]
    assert [s.name for s in teardown.steps.all()] == ["uninstall"]
