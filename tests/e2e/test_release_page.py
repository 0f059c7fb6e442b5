"""The release page in a real Chromium against the real ASGI app (uvicorn: Django's
live_server is WSGI and cannot stream): replayed lines, live lines through SSE, step
progress carried by the status events (no request per status), and a reload that loses
and repeats no line."""

import os
from pathlib import Path

import pytest

from deployments.models import LogLine, Release, Step
from deployments.services.releases import release_request
from deployments.services.stage_run import StageRun, finish
from tests.conftest import SSE_OPENED_SCRIPT, wait_for_js
from tests.factories import UserFactory

# Playwright's sync API keeps an event loop running in this thread, which trips Django's
# async-safety check for ORM calls made by the test itself (not by the server).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

REPO = Path(__file__).resolve().parents[2]


def line_ids(page):
    return page.eval_on_selector_all("#release-log .log-line", "lines => lines.map(l => l.id)")


def assert_log_matches_rows(page, release):
    ids = line_ids(page)
    rows = list(
        LogLine.objects.filter(release=release)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert len(ids) == len(set(ids)), f"a line is shown twice: {ids}"
    assert ids == [f"log-{n}" for n in rows]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_streams_the_log_live_and_loses_no_line_on_reload(asgi_server, signed_in_page, todo_app):
    user = UserFactory(role="viewer")
    release = release_request(profile=todo_app, actor=None, build=False)
    run = StageRun(release)
    run.begin("render")
    for n in range(1, 4):
        run.log(f"replayed line {n} <b>not bold</b>")

    page = signed_in_page(
        asgi_server, user, f"/releases/{release.pk}/", init_script=SSE_OPENED_SCRIPT
    )
    assert page.evaluate("typeof htmx") == "object"
    detail = f"{asgi_server}/releases/{release.pk}/"
    fetched = []  # every request htmx makes (the stream is the sse extension's): only `done`
    page.on("request", lambda r: fetched.append(r.url) if "hx-request" in r.headers else None)

    # replayed: rendered by the server, escaped
    assert line_ids(page) == ["log-1", "log-2", "log-3"]
    assert page.inner_text("#log-1") == "render replayed line 1 <b>not bold</b>"
    assert "now: render" in page.inner_text("#release-steps")
    wait_for_js(page, "window.sseOpened >= 1")

    # live: lines written (row, then publish) by "the worker" appear through SSE
    for n in range(4, 7):
        run.log(f"live line {n}")
    page.locator("#log-6").wait_for()
    assert page.inner_text("#log-6") == "render live line 6"
    assert_log_matches_rows(page, release)

    # a status event: the badge and the steps follow
    Release.objects.filter(pk=release.pk).update(status=Release.Status.UPGRADING)
    run.end()
    run.begin("upgrade")
    run.log("helm upgrade --install todo-app")
    page.locator("#release-status .badge-upgrading").wait_for()
    wait_for_js(page, "document.querySelector('#release-steps').innerText.includes('now: upgrade')")
    assert fetched == []  # the steps came with the status event (out of band)
    # swapped into their own place, not left inside the badge's
    assert page.evaluate("document.querySelectorAll('#release-steps').length") == 1
    assert page.evaluate("document.querySelector('#release-status section')") is None
    page.locator("#log-7").wait_for()
    assert_log_matches_rows(page, release)

    # reload: all rows replayed by the server, then the stream continues after them
    page.reload()
    wait_for_js(page, "window.sseOpened >= 1")
    assert_log_matches_rows(page, release)
    run.log("after the reload")
    page.locator("#log-8").wait_for()
    assert_log_matches_rows(page, release)

    # done: the page reloads its live part, stops streaming, shows the result
    run.end()
    Step.objects.filter(release=release, name="verify").update(status=Step.Status.DONE)
    finish(run, Release.Status.SUCCEEDED)
    page.locator("#release-status .badge-succeeded").wait_for()
    wait_for_js(page, "!document.querySelector('#release-live[sse-connect]')")
    assert "3/3 done" in page.inner_text("#release-steps")
    assert fetched == [detail]  # the live part, once, after `done`
    assert_log_matches_rows(page, release)
    assert LogLine.objects.filter(release=release).count() == 8
