"""The pod log viewer in a real Chromium against the real ASGI app and the sandbox cluster:
lines written after the page opened appear, pause holds them and resume catches up, the
live filter hides lines, and a reload shows every line once."""

import os

import pytest

from deployments.models import Cluster
from tests.conftest import SSE_OPENED_SCRIPT, wait_for_js
from tests.deployments.views.test_logs_sandbox import make_pod
from tests.factories import ComponentFactory, ProfileFactory, UserFactory

# Playwright's sync API keeps an event loop running in this thread (see test_release_page)
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def shown(page):
    return page.eval_on_selector_all("#pod-log .log-line", "lines => lines.map(l => l.textContent)")


def wait_for_line(page, text):
    wait_for_js(
        page,
        "text => [...document.querySelectorAll('#pod-log .log-line')]"
        ".some(l => l.textContent === text)",
        arg=text,
    )


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_follows_pauses_resumes_and_reloads_without_loss_or_repeats(
    asgi_server, signed_in_page, sandbox
):
    cluster = Cluster.objects.create(
        name=f"sandbox-{sandbox.namespace[-6:]}",
        kubeconfig_path=str(sandbox.kubeconfig),
        minikube_profile="",
    )
    profile = ProfileFactory(name="shop", namespace=sandbox.namespace, cluster=cluster)
    ComponentFactory(profile=profile, name="web")
    pod = make_pod(sandbox, "shop-web-1")
    sandbox.write_log(pod, "web", "boot 1", "boot 2 <b>not bold</b>")
    user = UserFactory(role="viewer")
    expected = ["boot 1", "boot 2 <b>not bold</b>"]

    url = f"/profiles/shop/logs/?pod={pod}"
    page = signed_in_page(asgi_server, user, url, timeout=20_000, init_script=SSE_OPENED_SCRIPT)
    assert shown(page) == expected  # rendered by the server, escaped
    wait_for_js(page, "window.sseOpened >= 1")

    # live: lines written after the page opened
    sandbox.write_log(pod, "web", "live 1", "live 2")
    expected += ["live 1", "live 2"]
    wait_for_line(page, "live 2")
    assert shown(page) == expected

    # pause holds new lines (counted in the status), resume shows them in order
    page.keyboard.press("Tab")  # the controls are buttons: focus and Enter work
    page.focus("#log-pause")
    page.keyboard.press("Enter")
    assert page.get_attribute("#log-pause", "aria-pressed") == "true"
    sandbox.write_log(pod, "web", "held 1", "held 2", "held 3")
    wait_for_js(page, "document.getElementById('log-status').textContent.includes('3 new lines')")
    assert shown(page) == expected
    page.click("#log-pause")
    expected += ["held 1", "held 2", "held 3"]
    assert shown(page) == expected
    assert page.get_attribute("#log-pause", "aria-pressed") == "false"

    # the live filter hides lines without the text, including new ones
    page.fill("#log-filter", "HELD")
    sandbox.write_log(pod, "web", "after filter")
    expected += ["after filter"]
    wait_for_line(page, "after filter")
    visible = page.eval_on_selector_all(
        "#pod-log .log-line:not([hidden])", "lines => lines.map(l => l.textContent)"
    )
    assert visible == ["held 1", "held 2", "held 3"]
    page.fill("#log-filter", "")

    # a reload: the server renders the tail, the stream resumes after it
    page.reload()
    wait_for_js(page, "window.sseOpened >= 1")
    sandbox.write_log(pod, "web", "after reload")
    expected += ["after reload"]
    wait_for_line(page, "after reload")
    assert shown(page) == expected
