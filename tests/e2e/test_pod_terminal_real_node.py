"""The pod terminal in a real Chromium, against uvicorn, a real container on the sandbox's
real node (kubelet, containerd) and Kubernetes exec: an admin opens it from the pods table,
runs a command and reads its output, resizes the window and the shell sees the new size,
exits; every session is in the audit log; signing out ends an open one; viewers and
deployers get 403, and so does a page of another origin, before any upgrade."""

import os
import re

import pytest
from django.conf import settings as django_settings
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from deployments.models import AuditEvent, PodState, Release, TerminalSession
from deployments.services.releases import release_request, release_run
from tests.conftest import wait_for_js
from tests.factories import UserFactory
from tests.fixtures.infra import wait_until

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop, as elsewhere
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROWS = "document.querySelector('.xterm-rows').innerText"


@pytest.fixture
def exec_on(child_env):
    """Before asgi_server copies the environment: the terminal on, re-checked every second."""
    child_env["HELMDECK_POD_EXEC"] = "true"
    child_env["HELMDECK_POD_EXEC_RECHECK_SECONDS"] = "1"


@pytest.fixture
def probe_running(probe_profile, watcher):
    release = release_run(release_request(profile=probe_profile, actor=None, build=False).pk)
    assert release.status == Release.Status.SUCCEEDED, release.reason
    watcher()
    pods = PodState.objects.filter(profile=probe_profile, ready=True, deleted=False)
    probe_profile_pod = None

    def ready_pod():
        nonlocal probe_profile_pod
        probe_profile_pod = pods.values_list("name", flat=True).first()
        return probe_profile_pod

    wait_until(ready_pod, timeout=60, what="the watcher to report the probe pod Ready")
    return probe_profile, probe_profile_pod


def run(page, command, marker):
    """Type `command` and Enter; the first text the terminal shows matching `marker`."""
    page.keyboard.type(command)
    page.keyboard.press("Enter")
    found = wait_for_js(
        page,
        f"(re) => {{ const m = {ROWS}.match(new RegExp(re)); return m && m.slice(1); }}",
        marker,
        timeout=30,
    )
    return found


def socket_status(url, *, origin, cookie=None):
    headers = {"Cookie": cookie} if cookie else None
    try:
        with connect(url, origin=origin, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def test_an_admin_runs_a_command_in_a_real_container(
    exec_on, asgi_server, signed_in_page, probe_running
):
    profile, pod = probe_running
    admin = UserFactory(role="admin")
    page = signed_in_page(asgi_server, admin, f"/profiles/{profile.name}/", timeout=30_000)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.click(f"#pod-{pod} a.terminal-link")
    page.wait_for_url(f"**/profiles/{profile.name}/pods/{pod}/terminal/")
    page.locator("#terminal-status[data-state=open]").wait_for()
    assert page.inner_text("#terminal-status") == f"Connected to {pod} / web"
    page.click("#terminal")

    assert run(page, "echo hd-$((6*7))-ok", r"(hd-42-ok)") == ["hd-42-ok"]
    wide = run(page, "echo W1 $(stty size)", r"W1 (\d+) (\d+)")
    page.set_viewport_size({"width": 700, "height": 800})
    # the page fits the terminal to its box and tells the server, which tells the shell:
    # asked a few times, as the window's resize event comes when the browser sends it
    for attempt in range(5):
        narrow = run(page, f"echo N{attempt} $(stty size)", rf"N{attempt} (\d+) (\d+)")
        if int(narrow[1]) < int(wide[1]):
            break
    assert int(narrow[1]) < int(wide[1]), (wide, narrow)  # fewer columns, told to the shell
    assert int(wide[0]) > 5

    page.keyboard.type("exit")
    page.keyboard.press("Enter")
    page.locator("#terminal-status[data-state=closed]").wait_for()
    assert page.inner_text("#terminal-status") == "Closed: the shell exited (exit code 0)"
    assert page.is_visible("#terminal-reconnect")

    session = TerminalSession.objects.get()
    assert (session.user, session.pod, session.container) == (admin, pod, "web")
    assert session.namespace == profile.namespace
    assert session.end_reason == "the shell exited (exit code 0)"
    assert session.bytes_in > 0 and session.bytes_out > 0 and session.input == ""
    actions = list(
        AuditEvent.objects.filter(action__startswith="pod.exec")
        .order_by("id")
        .values_list("action", "target")
    )
    assert actions == [("pod.exec", f"{pod}/web"), ("pod.exec.end", f"{pod}/web")]

    # a new session, then signing out (in another tab) ends it
    page.click("#terminal-reconnect")
    page.locator("#terminal-status[data-state=open]").wait_for()
    other = page.context.new_page()
    other.goto(f"{asgi_server}/profiles/{profile.name}/")
    other.click("form.logout button[type=submit]")
    other.wait_for_url("**/accounts/login/**")
    page.locator("#terminal-status[data-state=closed]").wait_for(timeout=15_000)
    assert page.inner_text("#terminal-status") == "Closed: you signed out (or your session ended)"
    assert TerminalSession.objects.filter(ended_at=None).count() == 0
    assert TerminalSession.objects.count() == 2


@pytest.mark.parametrize("role", ["viewer", "deployer"])
def test_others_get_403_for_the_page_and_the_socket(
    exec_on, asgi_server, signed_in_page, probe_running, role
):
    profile, pod = probe_running
    user = UserFactory(role=role)
    page = signed_in_page(asgi_server, user, f"/profiles/{profile.name}/")
    assert page.locator("a.terminal-link").count() == 0
    response = page.goto(f"{asgi_server}/profiles/{profile.name}/pods/{pod}/terminal/")
    assert response.status == 403

    cookie = next(
        c for c in page.context.cookies() if c["name"] == django_settings.SESSION_COOKIE_NAME
    )
    socket = re.sub(r"^http", "ws", asgi_server) + (
        f"/profiles/{profile.name}/pods/{pod}/terminal/socket?container=web"
    )
    jar = f"{cookie['name']}={cookie['value']}"
    assert socket_status(socket, origin=asgi_server, cookie=jar) == 403
    assert not TerminalSession.objects.exists()


def test_a_page_of_another_origin_gets_403_even_with_an_admins_cookie(
    exec_on, asgi_server, signed_in_page, probe_running
):
    profile, pod = probe_running
    page = signed_in_page(asgi_server, UserFactory(role="admin"), f"/profiles/{profile.name}/")
    cookie = next(
        c for c in page.context.cookies() if c["name"] == django_settings.SESSION_COOKIE_NAME
    )
    jar = f"{cookie['name']}={cookie['value']}"
    socket = re.sub(r"^http", "ws", asgi_server) + (
        f"/profiles/{profile.name}/pods/{pod}/terminal/socket?container=web"
    )
    port = int(asgi_server.rsplit(":", 1)[1])
    assert socket_status(socket, origin=f"http://127.0.0.1:{port + 1}", cookie=jar) == 403
    assert socket_status(socket, origin=asgi_server) == 403  # no cookie
    assert socket_status(socket, origin=asgi_server, cookie=jar) == 101  # the control
    wait_until(  # that socket closed at once: its shell is gone and its record ended
        lambda: TerminalSession.objects.filter(ended_at__isnull=False).count() == 1,
        timeout=60,
        what="the control session's record to end",
    )
    assert not TerminalSession.objects.filter(ended_at=None).exists()
