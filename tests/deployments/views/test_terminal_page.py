"""The pod terminal's page and its links: admins only, off unless HELMDECK_POD_EXEC is set,
a readable refusal when there is no shell to open, and a Content-Security-Policy that
lets xterm.js's own <style> elements in on this page and nowhere else."""

import pytest

from deployments.models import TerminalSession
from tests.factories import ComponentFactory, ProfileFactory, pod_state

pytestmark = pytest.mark.django_db

URL = "/profiles/shop/pods/shop-web-1/terminal/"


@pytest.fixture
def shop():
    profile = ProfileFactory(name="shop")
    ComponentFactory(profile=profile, name="web")
    pod_state(profile, "shop-web-1", component="web")
    return profile


@pytest.mark.parametrize("role", ["viewer", "deployer"])
def test_only_admins_get_the_page(login, shop, settings, role):
    settings.HELMDECK_POD_EXEC = True
    response = login(role).get(URL)
    assert response.status_code == 403
    assert b"xterm" not in response.content


def test_an_admin_reads_how_to_turn_it_on_when_it_is_off(login, shop):
    response = login("admin").get(URL)
    assert response.status_code == 404
    assert b"The pod terminal is off" in response.content
    assert b"HELMDECK_POD_EXEC=true" in response.content
    assert b"xterm" not in response.content


def test_no_shell_in_a_profile_that_is_not_deployed(login, shop, settings):
    settings.HELMDECK_POD_EXEC = True
    response = login("admin").get(URL)
    assert response.status_code == 409
    assert b"shop is not deployed: there is no pod to open" in response.content
    assert not TerminalSession.objects.exists()


@pytest.mark.parametrize("pod", ["..", "Shop_Web", "a" * 254])
def test_a_name_that_cannot_be_a_pod_is_404(login, shop, settings, pod):
    settings.HELMDECK_POD_EXEC = True
    response = login("admin").get(f"/profiles/shop/pods/{pod}/terminal/")
    assert response.status_code == 404


def test_only_the_terminal_page_lets_inline_styles_in(login, shop, settings, monkeypatch):
    from deployments.services import terminals
    from deployments.services.terminals import TerminalTarget

    settings.HELMDECK_POD_EXEC = True
    target = TerminalTarget(shop, "shop", "shop-web-1", "web", ("web", "sidecar"))
    monkeypatch.setattr(terminals, "terminal_target", lambda **kw: target)
    client = login("admin")

    page = client.get(URL)
    assert page.status_code == 200
    policy = page["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src 'self';" in policy + ";"  # scripts: still /static/ only
    html = page.content.decode()
    assert 'data-socket="/profiles/shop/pods/shop-web-1/terminal/socket?container=web"' in html
    assert '<option value="sidecar">' in html  # the pod's other container to choose
    assert "kubectl exec -it -n shop shop-web-1 -c web -- sh" in html  # without JavaScript

    other = client.get("/profiles/shop/")
    assert "'unsafe-inline'" not in other["Content-Security-Policy"]
    # apart from style-src, the terminal's policy is every page's
    assert [d for d in policy.split("; ") if not d.startswith("style-src")] == [
        d for d in other["Content-Security-Policy"].split("; ") if not d.startswith("style-src")
    ]
    settings.HELMDECK_POD_EXEC = False  # the "off" page: the strict policy
    assert "'unsafe-inline'" not in client.get(URL)["Content-Security-Policy"]


def test_the_pods_table_links_a_terminal_for_admins_when_it_is_on(login, shop, settings):
    link = b'href="/profiles/shop/pods/shop-web-1/terminal/"'
    assert link not in login("admin").get("/profiles/shop/").content  # off
    settings.HELMDECK_POD_EXEC = True
    assert link in login("admin").get("/profiles/shop/").content
    assert link not in login("deployer").get("/profiles/shop/").content
    pod_state(shop, "shop-web-2", component="web", phase="Pending")
    assert b"/pods/shop-web-2/terminal/" not in login("admin").get("/profiles/shop/").content
