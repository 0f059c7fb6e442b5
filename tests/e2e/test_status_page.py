"""The team status page in a real Chromium against the real ASGI app (uvicorn), the real
watcher and the sandbox's real node: a pod that really crash-loops turns its profile's
badge from Healthy to Degraded, with the diagnosis, without a reload, and back to Healthy
when it is gone; a viewer without login gets no stream."""

import os
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

from deployments.models import Cluster, PodState
from tests.conftest import SSE_OPENED_SCRIPT, wait_for_js
from tests.deployments.views.test_logs_real_node import probe_pod
from tests.factories import ProfileFactory, UserFactory

# Playwright's sync API keeps an event loop running in this thread, which trips Django's
# async-safety check for ORM calls made by the test itself (not by the server).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_turns_a_badge_degraded_live_when_a_pod_starts_crash_looping(
    asgi_server, signed_in_page, real_node, watcher, probe_image
):
    """On the real node: the kubelet's own states, no simulation."""
    cluster = Cluster.objects.create(
        name=f"real-{real_node.namespace[-6:]}",
        kubeconfig_path=str(real_node.kubeconfig),
        minikube_profile="",
    )
    profile = ProfileFactory(name="shop", namespace=real_node.namespace, cluster=cluster)
    watcher()  # in this process; it publishes to the Redis the server's hub listens to
    probe_pod(real_node, "shop-web-1", probe_image)
    real_node.wait_until(
        lambda: PodState.objects.filter(profile=profile, name="shop-web-1", ready=True).exists(),
        timeout=60,
        what="the watcher to report the pod Ready",
    )
    user = UserFactory(role="viewer")

    with pytest.raises(HTTPError) as refused:  # no login: no stream
        urlopen(f"{asgi_server}/status/stream/", timeout=10)
    assert refused.value.code == 401

    page = signed_in_page(
        asgi_server,
        user,
        "/",
        timeout=30_000,
        init_script=SSE_OPENED_SCRIPT + "window.sseEvents = []; document.addEventListener("
        "'htmx:sseBeforeMessage', (e) => window.sseEvents.push(e.detail.type));",
    )
    row = f"#profile-row-{profile.pk}"
    assert page.inner_text(f"{row} .health") == "Healthy"
    assert "1/1 pods ready" in page.inner_text(row)
    assert page.inner_text("#health-summary").strip() == "1 Healthy"
    wait_for_js(page, "window.sseOpened >= 1")
    page.evaluate("window.sameDocument = true")

    # a second pod whose process exits on start: the kubelet restarts it, then backs off
    probe_pod(real_node, "shop-web-2", probe_image, EXIT_CODE="1")
    page.locator(f"{row} .health-degraded").wait_for(timeout=60_000)
    assert page.inner_text(f"{row} .health") == "Degraded"
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    page.wait_for_function(
        "row => document.querySelector(row + ' .diagnosis').innerText.includes('CrashLoopBackOff')",
        arg=row,
        timeout=60_000,
    )
    diagnosis = page.inner_text(f"{row} .diagnosis")
    assert "Crash loop" in diagnosis and "CrashLoopBackOff (exit code 1" in diagnosis
    link = page.get_attribute(f"{row} .diagnosis a.fix-link", "href")
    assert link.endswith("?pod=shop-web-2&previous=1")
    assert "1/2 pods ready" in page.inner_text(row)
    assert f"profile-{profile.pk}" in page.evaluate("window.sseEvents")  # a row event
    wait_for_js(page, "document.querySelector('#health-summary').innerText.includes('1 Degraded')")

    # the swapped-in row keeps listening: the crashing pod goes, the badge follows
    real_node.core.delete_namespaced_pod("shop-web-2", real_node.namespace)
    page.locator(f"{row} .health-healthy").wait_for(timeout=60_000)
    assert page.inner_text(f"{row} .diagnosis").strip() == "—"
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"


# Counts each stream event the page is sent (window.streamed.<event>) and marks the live
# regions the page was served with (a property, not an attribute: the DOM stays as served).
REGIONS_SCRIPT = (
    "window.streamed = new Proxy({}, {get: (o, k) => o[k] || 0});"
    "document.addEventListener('htmx:sseBeforeMessage', (e) => {"
    " window.streamed[e.detail.type] += 1; });"
    "document.addEventListener('DOMContentLoaded', () => {"
    " for (const id of ['pods', 'status-profiles']) {"
    "  const region = document.getElementById(id); if (region) region.served = true; } });"
)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_region_the_stream_sends_again_unchanged_is_not_replaced(
    asgi_server, signed_in_page, todo_app
):
    """On connect each stream sends its region again (it cannot know what the page shows).
    The same HTML is not swapped in, so the keyboard focus (and a click in progress, a
    selection) stays where it was; a change is swapped in."""
    from deployments.services.pod_states import pod_state_publish
    from tests.factories import pod_state

    pod_state(todo_app, "backend-oom", ready=False, ready_containers=0, reason="OOMKilled")
    user = UserFactory(role="admin")
    pages = {}
    for path, region, event in (
        ("/", "status-profiles", "table"),
        ("/profiles/todo-app/", "pods", "pods"),
    ):
        page = pages[region] = signed_in_page(asgi_server, user, path, init_script=REGIONS_SCRIPT)
        page.focus(f"#{region} a.fix-link")
        wait_for_js(page, f"window.streamed.{event} >= 1")
        assert page.evaluate(f"document.getElementById('{region}').served") is True, path
        assert page.evaluate(f"!!document.activeElement.closest('#{region} .fix-link')"), path

    pod_state_publish(pod_state(todo_app, "backend-2"))  # a change: both pages show it
    profile_page, status_page = pages["pods"], pages["status-profiles"]
    wait_for_js(profile_page, "!document.getElementById('pods').served")
    assert "backend-2" in profile_page.inner_text("#pods")
    # the status page swaps the row inside the table: the table's digest, which described
    # the table as served, is dropped, so no later copy of the table is mistaken for it
    row = f"#profile-row-{todo_app.pk}"
    wait_for_js(status_page, f"document.querySelector('{row}').innerText.includes('1/2')")
    assert status_page.evaluate("document.getElementById('status-profiles').served") is True
    assert status_page.get_attribute("#status-profiles", "data-digest") is None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_diagnosis_link_lands_on_and_focuses_the_field_to_change(
    asgi_server, signed_in_page, todo_app
):
    """OOMKilled -> the memory limit; not Ready -> the readiness probe path, inside the
    closed "Build and probes" section, which opens."""
    from tests.factories import pod_state

    pod_state(todo_app, "backend-oom", ready=False, ready_containers=0, reason="OOMKilled")
    user = UserFactory(role="admin")
    page = signed_in_page(asgi_server, user, "/", init_script=REGIONS_SCRIPT)
    wait_for_js(page, "window.streamed.table >= 1")  # the stream's first say is in
    page.click(f"#profile-row-{todo_app.pk} a.fix-link")
    page.wait_for_url("**/profiles/todo-app/edit/#component-backend-memory_limit")
    wait_for_js(page, "document.activeElement.name === 'components-1-memory_limit'")

    PodState.objects.filter(name="backend-oom").update(
        reason="", phase="Running", last_event="Unhealthy: Readiness probe failed: 503"
    )
    page.goto(f"{asgi_server}/profiles/todo-app/")
    wait_for_js(page, "window.streamed.pods >= 1")
    page.click("#pods a.fix-link")
    page.wait_for_url("**/profiles/todo-app/edit/#component-backend-readiness_path")
    wait_for_js(page, "document.activeElement.name === 'components-1-readiness_path'")
    assert page.is_visible("#component-backend-readiness_path input")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("role", "offer", "not_offered"),
    [
        ("admin", "Create a profile", "Ask an admin"),
        ("viewer", "Ask an admin", "Create a profile"),
    ],
)
def test_an_empty_status_page_keeps_offering_what_its_user_may_do_once_the_stream_renders(
    asgi_server, signed_in_page, role, offer, not_offered
):
    """The stream's `table` event renders the empty page for the user's Role, as the page
    did (it once rendered it as nobody's, and an admin's "Create a profile" turned into
    "Ask an admin" a moment after loading). Rendered alike, it is the same HTML, which the
    page keeps rather than swapping it in (static/streams.js)."""
    user = UserFactory(role=role)
    page = signed_in_page(asgi_server, user, "/", init_script=REGIONS_SCRIPT)
    empty = page.locator("#status-profiles .empty")
    assert offer in empty.inner_text() and not_offered not in empty.inner_text()
    wait_for_js(page, "window.streamed.table >= 1")
    assert page.evaluate("document.getElementById('status-profiles').served") is True
    text = page.locator("#status-profiles .empty").inner_text()
    assert "No profiles yet" in text
    assert offer in text and not_offered not in text
    if role == "admin":
        assert page.is_visible("#status-profiles .empty a[href$='/profiles/new/']")
