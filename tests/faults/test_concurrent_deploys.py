"""Two people deploy the same profile at the same moment, and one person double-clicks
Confirm: real Chromium contexts against the real ASGI app and a real worker. Exactly one
release runs (one helm revision); the other request lands on it or says why not."""

import os
import re

import pytest

from deployments.models import Release
from tests.factories import PASSWORD, UserFactory
from tests.faults.conftest import assert_helm_settled, measure, release_page, wait_terminal
from tests.fixtures.faults import start_web, start_worker, stop

# Playwright's sync API keeps an event loop running in this thread (see tests/e2e)
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONFIRM = "button[type=submit].primary"


@pytest.fixture
def panel(fault_env):
    """(url of the web app, worker process) on the fault environment."""
    worker = start_worker(fault_env, "faults-browsers")
    web, url = start_web(fault_env)
    yield url
    stop(web)
    stop(worker)


def deploy_page(browser, url, profile):
    """A fresh browser context, logged in as a new deployer, on the profile's Deploy page."""
    user = UserFactory(role="deployer")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{url}/accounts/login/?next=/profiles/{profile.name}/deploy/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/profiles/{profile.name}/deploy/")
    return context, page


def settle(release, profile):
    release, took = wait_terminal(release, 120)
    assert release.status == Release.Status.SUCCEEDED, release.reason
    assert_helm_settled(profile, revisions=1)  # one deploy ran, once
    assert "succeeded" in release_page(release)
    return took


def test_it_runs_one_deploy_when_two_browsers_confirm_at_once(browser, panel, fault_profile):
    (ctx_a, a), (ctx_b, b) = (deploy_page(browser, panel, fault_profile) for _ in range(2))
    try:
        a.click(CONFIRM, no_wait_after=True)
        b.click(CONFIRM, no_wait_after=True)
        for page in (a, b):
            page.wait_for_load_state("load")
            page.wait_for_selector("h1")
        (release,) = Release.objects.all()  # exactly one row
        watching = [p for p in (a, b) if p.url.endswith(f"/releases/{release.pk}/")]
        refused = [p for p in (a, b) if "/deploy/" in p.url]
        assert len(watching) == 1 and len(refused) == 1, [a.url, b.url]
        alert = refused[0].inner_text("[role=alert]")
        assert f"already has release #{release.pk}" in alert
        assert "wait for it or cancel it" in alert
        assert refused[0].get_attribute("[role=alert] a", "href") == f"/releases/{release.pk}/"
        took = settle(release, fault_profile)
    finally:
        ctx_a.close()
        ctx_b.close()
    measure(
        "same profile deployed from two browsers",
        releases=1,
        refused=1,
        to_terminal_s=took,
        helm_revisions=1,
    )


SUBMIT_TWICE = """async () => {
  const form = document.querySelector("form.confirm");
  const body = new URLSearchParams(new FormData(form));
  const send = async () => {
    const response = await fetch(form.action, {method: "POST", body});
    return {status: response.status, url: response.url, text: await response.text()};
  };
  const both = await Promise.all([send(), send()]);
  return [...both, await send()];
}"""


def test_it_runs_one_deploy_when_the_form_is_submitted_twice(browser, panel, fault_profile):
    """One form (one token) posted twice at once (a double submit, a retrying proxy), once
    more later, and then double-clicked after the release ended: one release; a request
    either joins it or is refused in words with a link to it."""
    context, page = deploy_page(browser, panel, fault_profile)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    try:
        first, second, later = page.evaluate(SUBMIT_TWICE)
        (release,) = Release.objects.all()
        outcomes = []
        for response in (first, second, later):
            if response["url"].endswith(f"/releases/{release.pk}/"):
                outcomes.append("joined")
            else:
                assert response["status"] == 409, response
                assert f"already has release #{release.pk}" in response["text"]
                assert f'href="/releases/{release.pk}/"' in response["text"]
                outcomes.append("refused")
        assert "joined" in outcomes[:2] and outcomes[2] == "joined"  # the session knows it
        took = settle(release, fault_profile)
        # the same form once more, after the release ended: it still lands on that release
        page.dblclick(CONFIRM)  # Chromium sends a double-clicked form once
        page.wait_for_url(re.compile(r"/releases/\d+/$"))
    finally:
        context.close()
    assert page.url.endswith(f"/releases/{release.pk}/")
    assert Release.objects.count() == 1
    assert len(posts) >= 4  # 3 fetches, and the double click sent once or twice
    assert_helm_settled(fault_profile, revisions=1)
    measure(
        "deploy form submitted twice",
        posts=len(posts),
        releases=1,
        outcomes=outcomes,
        to_terminal_s=took,
        helm_revisions=1,
    )
