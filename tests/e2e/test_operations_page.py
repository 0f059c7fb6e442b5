"""Operating a deployed profile from its page in a real Chromium, against uvicorn, the
watcher and the sandbox: scale 1 -> 3 -> 0 shows on the open page within a second of the
watcher seeing each pod come or go; the page's own Restart, Scale and Sleep buttons act
(sleep after its confirmation) and say what they did; a viewer sees no action."""

import os
import time

import pytest

from deployments.models import AuditEvent, PodState
from deployments.services.operations import component_scale
from tests.conftest import SSE_OPENED_SCRIPT, wait_for_js
from tests.factories import UserFactory

# Playwright's sync API keeps an event loop running in this thread (see test_status_page.py)
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# When each pod's row first appeared in, and left, the pods table (epoch ms, this page).
ROWS_SCRIPT = """
window.rowSeen = {}; window.rowGone = {};
new MutationObserver(() => {
  const now = Date.now();
  const names = new Set([...document.querySelectorAll('#pods tr.pod')].map(r => r.id.slice(4)));
  for (const n of names) if (!(n in window.rowSeen)) window.rowSeen[n] = now;
  for (const n in window.rowSeen)
    if (!names.has(n) && !(n in window.rowGone)) window.rowGone[n] = now;
}).observe(document, {subtree: true, childList: true});
"""
LIVE = 1.0  # seconds from the watcher's row to the page


@pytest.fixture
def deployed(small_deployed, watcher):
    watcher()
    return small_deployed


def watch_rows(profile, component, until, timeout=60):
    """Poll the watcher's rows every 20 ms until `until(live names)`; returns {pod: epoch s}
    of when each row was first seen live and {pod: epoch s} of when each went."""
    seen, gone = {}, {}
    deadline = time.monotonic() + timeout
    while True:
        now = time.time()
        live = set(
            PodState.objects.filter(
                profile=profile, component=component, deleted=False
            ).values_list("name", flat=True)
        )
        for name in live:
            seen.setdefault(name, now)
        for name in set(seen) - live:
            gone.setdefault(name, now)
        if until(live):
            return seen, gone
        assert time.monotonic() < deadline, f"rows of {component}: {sorted(live)}"
        time.sleep(0.02)


def test_scale_shows_live_within_a_second_of_the_watcher(deployed, asgi_server, signed_in_page):
    user = UserFactory(role="deployer")
    page = signed_in_page(
        asgi_server, user, "/profiles/small/", init_script=SSE_OPENED_SCRIPT + ROWS_SCRIPT
    )
    wait_for_js(
        page, "window.sseOpened >= 1 && document.querySelectorAll('#pods tr.pod').length === 2"
    )
    before = set(page.evaluate("Object.keys(window.rowSeen)"))
    api = deployed.components.get(name="api")

    component_scale(profile=deployed, component=api, replicas=3, actor=user)
    seen, _ = watch_rows(deployed, "api", lambda live: len(live) == 3)
    new = set(seen) - before
    assert len(new) == 2
    wait_for_js(page, "names => names.every(n => n in window.rowSeen)", sorted(new))
    shown = page.evaluate("window.rowSeen")
    lags = {name: shown[name] / 1000 - seen[name] for name in new}
    assert all(lag < LIVE for lag in lags.values()), lags
    page.wait_for_function(
        "() => document.querySelector('#pods').innerText.includes('api is scaled to 3 pods')"
    )

    component_scale(profile=deployed, component=api, replicas=0, actor=user)
    _, gone = watch_rows(deployed, "api", lambda live: not live)
    wait_for_js(page, "names => names.every(n => n in window.rowGone)", sorted(gone))
    shown = page.evaluate("window.rowGone")
    lags = {name: shown[name] / 1000 - gone[name] for name in gone}
    assert len(lags) == 3 and all(lag < LIVE for lag in lags.values()), lags
    assert page.locator("#pods tr.pod").count() == 1  # web's pod stays


def test_the_page_restarts_scales_and_puts_to_sleep(deployed, asgi_server, signed_in_page, sandbox):
    user = UserFactory(role="deployer")
    page = signed_in_page(asgi_server, user, "/profiles/small/")
    page.click("button[aria-label='Restart web']")
    page.wait_for_selector(".messages >> text=Restarting web")
    page.fill("#replicas-web", "2")
    page.click("button[aria-label='Scale web']")
    page.wait_for_selector(".messages >> text=Scaled web to 2 pods.")
    assert "running 2" in page.inner_text("section[aria-labelledby=h-components]")
    page.locator("#pods tr.pod[id^='pod-small-web-']").nth(1).wait_for()

    page.click("text=Sleep…")
    page.wait_for_url("**/profiles/small/sleep/")
    assert "Put small to sleep?" in page.inner_text("h1")
    page.click("button:has-text('Put small to sleep')")
    page.wait_for_url("**/profiles/small/")
    assert "small is asleep" in page.inner_text(".messages")
    page.locator("#pods .asleep-note").wait_for()
    sandbox.wait_until(lambda: not sandbox.pods(), what="every pod gone")
    page.wait_for_function("() => !document.querySelector('#pods tr.pod')", timeout=10_000)

    page.goto(f"{asgi_server}/")
    assert page.inner_text(f"#profile-row-{deployed.pk} .health") == "Asleep"
    actions = list(AuditEvent.objects.order_by("at", "id").values_list("action", flat=True))
    assert actions[-3:] == ["component.restart", "component.scale", "profile.sleep"]


def test_a_viewer_sees_no_action(deployed, asgi_server, signed_in_page):
    page = signed_in_page(asgi_server, UserFactory(role="viewer"), "/profiles/small/")
    page.locator("#pods tr.pod").first.wait_for()
    for hidden in (
        "button[aria-label^='Restart']",
        "button[aria-label^='Scale']",
        "a.pod-delete",
        "text=Sleep…",
    ):
        assert page.locator(hidden).count() == 0, hidden


def test_a_burst_of_pod_changes_leaves_both_pages_current(asgi_server, signed_in_page, todo_app):
    """Changes published a few ms apart, as the watcher does when pods go together: the last
    one must show. (With htmx's default 20 ms settle, the element that had just replaced
    itself was not listening yet, and the page kept the state before it.)"""
    from deployments.services.pod_states import pod_state_mark_deleted, pod_state_publish
    from tests.factories import pod_state

    user = UserFactory(role="viewer")
    profile_page = signed_in_page(
        asgi_server, user, "/profiles/todo-app/", init_script=SSE_OPENED_SCRIPT
    )
    status_page = signed_in_page(asgi_server, user, "/", init_script=SSE_OPENED_SCRIPT)
    for page in (profile_page, status_page):
        wait_for_js(page, "window.sseOpened >= 1")
    row = f"#profile-row-{todo_app.pk}"
    for burst in range(5):
        names = [f"backend-{burst}-{i}" for i in range(3)]
        for name in names:
            pod_pub = pod_state(todo_app, name)
            pod_state_publish(pod_pub)
        wait_for_js(profile_page, "() => document.querySelectorAll('#pods tr.pod').length === 3")
        status_page.wait_for_function(
            "row => document.querySelector(row).innerText.includes('3/3 pods ready')", arg=row
        )
        for name in names:
            pod_state_publish(pod_state_mark_deleted(namespace=todo_app.namespace, name=name))
        wait_for_js(profile_page, "() => !document.querySelector('#pods tr.pod')", timeout=5)
        status_page.wait_for_function(
            "row => !document.querySelector(row).innerText.includes('pods ready')",
            arg=row,
            timeout=5_000,
        )
