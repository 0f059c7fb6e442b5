"""The history charts in a real Chromium against the real ASGI app (uvicorn): the releases
page draws one bar per release (the last 30) with a rect per step group that ran, coloured
by the stylesheet under the Content-Security-Policy; the status page draws one bar per day
of the last 30 beside the delivery keys, and keeps its live stream."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.selectors_history import CHART_RELEASES
from tests.conftest import SSE_OPENED_SCRIPT, wait_for_js
from tests.deployments.test_selectors_history import FULL, finished, timed_release
from tests.factories import ProfileFactory, UserFactory

# Playwright's sync API keeps an event loop running in this thread, which trips Django's
# async-safety check for ORM calls made by the test itself (not by the server).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

VIOLATIONS_SCRIPT = (
    "window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
    "(e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)
BARS = """svg => [...svg.querySelectorAll('g.bar')].map(g => {
  const rects = [...g.querySelectorAll('rect.step')].map(r => {
    const box = r.getBoundingClientRect();
    return {group: r.classList[1], width: box.width, height: box.height,
            fill: getComputedStyle(r).fill};
  });
  return {release: g.dataset.release, x: g.getBoundingClientRect().x, rects,
          result: g.querySelector('rect.result').classList[1],
          title: g.querySelector(':scope > title').textContent};
})"""


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_draws_one_bar_per_release_and_a_rect_per_step_group(asgi_server, signed_in_page):
    profile = ProfileFactory(name="shop")
    now = timezone.now()
    made = []
    for n in range(CHART_RELEASES + 4):
        at = now - timedelta(hours=CHART_RELEASES + 4 - n)
        if n % 5 == 4:  # a failed upgrade: build, render and upgrade only
            steps = {"build backend": 20, "render": 2, "upgrade": "open", "verify": None}
            made.append(timed_release(profile, "failed", at=at, steps=steps, gap=15))
        else:
            made.append(timed_release(profile, at=at, steps=FULL))
    shown = made[-CHART_RELEASES:]
    user = UserFactory(role="viewer")

    page = signed_in_page(
        asgi_server, user, "/profiles/shop/releases/", init_script=VIOLATIONS_SCRIPT
    )
    chart = page.locator("svg#release-chart")
    assert chart.get_attribute("role") == "img"
    bars = chart.evaluate(BARS)
    assert len(bars) == CHART_RELEASES
    assert [b["release"] for b in bars] == [str(r.pk) for r in shown]  # oldest on the left
    assert [b["x"] for b in bars] == sorted(b["x"] for b in bars)
    want_groups = [
        ["build", "render", "upgrade"] if r.status == "failed" else list(FULL_GROUPS) for r in shown
    ]
    assert [[r["group"].removeprefix("step-") for r in b["rects"]] for b in bars] == want_groups
    assert page.locator("svg#release-chart rect.step").count() == sum(map(len, want_groups))
    assert [b["result"] for b in bars] == [f"result-{r.status}" for r in shown]
    # drawn: every rect has a size, and its colour comes from the stylesheet (the CSP
    # allows no style attribute), one colour per step group
    rects = [r for b in bars for r in b["rects"]]
    assert all(r["width"] > 0 and r["height"] > 0 for r in rects)
    fills = {r["group"]: r["fill"] for r in rects}
    assert len(set(fills.values())) == 4 and "rgb(0, 0, 0)" not in fills.values()
    assert bars[-1]["title"].startswith(f"Release #{shown[-1].pk} (deploy), succeeded: build")
    # the same numbers in the table beside it, one row per bar
    assert page.locator("#release-chart-table tbody tr").count() == CHART_RELEASES
    assert page.evaluate("window.cspViolations") == []
    # a bar is a link to its release
    page.locator(f'svg#release-chart g.bar[data-release="{shown[-1].pk}"]').click()
    page.wait_for_url(f"{asgi_server}/releases/{shown[-1].pk}/")


FULL_GROUPS = ("build", "render", "upgrade", "verify")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_draws_a_bar_per_day_beside_the_delivery_keys_and_keeps_streaming(
    asgi_server, signed_in_page
):
    shop, blog = ProfileFactory(name="shop"), ProfileFactory(name="blog")
    noon = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)
    noon -= timedelta(days=1)  # yesterday: nothing of today's future
    for days, status in ((1, "succeeded"), (1, "failed"), (3, "succeeded"), (10, "rolled_back")):
        finished(shop, status, at=noon - timedelta(days=days))
    finished(blog, "succeeded", at=noon - timedelta(days=10, hours=-2))
    user = UserFactory(role="viewer")

    page = signed_in_page(asgi_server, user, "/", init_script=SSE_OPENED_SCRIPT + VIOLATIONS_SCRIPT)
    chart = page.locator("svg#deploys-chart")
    assert chart.get_attribute("aria-labelledby") == "deploys-chart-title deploys-chart-desc"
    assert page.locator("svg#deploys-chart g.day").count() == 30
    # a rect per kind of result on a day with deploys: days 1 (ok + failed), 3 (ok), 10
    # (failed for shop, ok for blog)
    assert page.locator("svg#deploys-chart rect.deploys-ok").count() == 3
    assert page.locator("svg#deploys-chart rect.deploys-failed").count() == 2
    heights = chart.evaluate(
        "svg => [...svg.querySelectorAll('rect.deploys')].map(r => r.getBoundingClientRect()"
        ".height)"
    )
    assert len(heights) == 5 and all(h > 0 for h in heights)
    assert page.inner_text("#key-per-day") == "0.10"
    assert page.inner_text("#key-failure-rate") == "40%"
    rows = page.locator("#delivery-table tbody tr")
    assert rows.count() == 2 and page.locator("#delivery-table tfoot tr").count() == 1
    # the page's live stream still opens, and its table events leave the keys in place
    wait_for_js(page, "window.sseOpened >= 1")
    assert page.locator("#status-profiles .status-row").count() == 2
    assert page.locator("svg#deploys-chart g.day").count() == 30
    assert page.evaluate("window.cspViolations") == []
