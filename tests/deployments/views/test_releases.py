"""Release pages: Deploy (preview, confirm), the release page, cancel, history, diff and
roll back. The worker is replaced here (its results are what the fake returns); the
integration tests in test_release_pages_worker.py use a real one."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import AuditEvent, Component, Release
from deployments.views import releases as views
from tests.deployments.test_selectors_history import FULL, timed_release
from tests.factories import ComponentFactory, ProfileFactory, make_release

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}

PREVIEW = {
    "profile": "todo-app",
    "problems": ["Deployment/todo-app-backend (Kubernetes 1.30): spec.foo: unknown field"],
    "checks": [
        {
            "check": "latest-tag",
            "level": "warning",
            "subject": "backend",
            "message": "uses the tag latest",
            "reason": "latest hides which build runs",
            "fix": "pin a version tag",
        },
        {
            "check": "capacity",
            "level": "error",
            "subject": "profile",
            "message": "needs 9 CPU",
            "reason": "pods stay Pending",
            "fix": "lower requests",
        },
    ],
    "resources": {
        "ConfigMap/todo-app-config": "kind: ConfigMap\n",
        "Deployment/todo-app-backend": "kind: Deployment\nspec:\n  replicas: 2\n",
    },
    "diff": {
        "Deployment/todo-app-backend": "--- deployed/Deployment/todo-app-backend\n"
        "+++ new/Deployment/todo-app-backend\n@@ -1,3 +1,3 @@\n kind: Deployment\n"
        " spec:\n-  replicas: 1\n+  replicas: 2\n",
        "Service/todo-app-old": "--- deployed/Service/todo-app-old\n+++ new/Service/todo-app-old\n"
        "@@ -1 +0,0 @@\n-kind: Service\n",
    },
    "secrets": {"JWT_SECRET": "changed", "OPENAI_API_KEY": "unchanged", "NEW_KEY": "added"},
    "deployed": True,
    "lint": "==> Linting charts/app\n1 chart(s) linted, 0 chart(s) failed",
}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def worker(monkeypatch):
    """The worker's side: `worker.preview` is what preview_request returns (None: pending);
    `worker.enqueued` the releases handed to release_enqueue."""

    class Worker:
        preview = PREVIEW
        enqueued = []

    fake = Worker()
    fake.enqueued = []
    monkeypatch.setattr(views, "preview_request", lambda profile: fake.preview)
    monkeypatch.setattr(views, "release_enqueue", fake.enqueued.append)
    return fake


def form_fields(body):
    """The confirm form's hidden token and fingerprint."""
    return dict(re.findall(r'name="(token|fingerprint)" value="([^"]*)"', body))


def deploy(client, name="todo-app", build=True, **override):
    body = client.get(f"/profiles/{name}/deploy/").content.decode()
    data = {**form_fields(body), **({"build": "on"} if build else {}), **override}
    return client.post(f"/profiles/{name}/deploy/", data), data


# ---- deploy ---------------------------------------------------------------------------------


def test_it_polls_while_the_preview_is_computed(login, todo_app, worker):
    worker.preview = None
    client = login("deployer")
    response = client.get("/profiles/todo-app/deploy/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Computing preview" in body
    assert 'hx-trigger="every 1s"' in body and "?polls=1" in body
    refresh = '<meta http-equiv="refresh" content="2;url=/profiles/todo-app/deploy/?polls=1"'
    assert refresh in body
    assert "Confirm deploy of todo-app" in body

    partial = client.get(
        "/profiles/todo-app/deploy/?polls=40", headers={**HX, "HX-Target": "preview"}
    )
    text = partial.content.decode()
    assert "<html" not in text and 'id="preview"' in text and "Confirm deploy" not in text
    assert "?polls=41" in text and "Is a worker running?" in text
    assert "HX-Request" in partial["Vary"]


def test_it_shows_the_preview_once_the_worker_stored_it(login, todo_app, worker):
    client = login("deployer")
    partial = client.get("/profiles/todo-app/deploy/", headers={**HX, "HX-Target": "preview"})
    text = partial.content.decode()
    assert "every 1s" not in text and "Computing preview" not in text
    assert '<span class="diff-del">-  replicas: 1</span>' in text
    assert '<span class="diff-add">+  replicas: 2</span>' in text
    assert "Service/todo-app-old" in text and ">removed<" in text
    assert "ConfigMap/todo-app-config" in text and ">unchanged<" in text
    assert "2 of 3 changes against what is deployed" in text
    for key, state in PREVIEW["secrets"].items():
        assert re.search(rf"<code>{key}</code> <span class=\"tag state-{state}\">{state}<", text)
    assert "spec.foo: unknown field" in text
    assert "latest hides which build runs" in text and "pin a version tag" in text
    assert "will stop at its render step" in text  # an error-level check
    assert "1 chart(s) linted" in text
    full = client.get("/profiles/todo-app/deploy/").content.decode()
    assert "<noscript><meta" not in full  # no refresh once the preview is there
    assert 'name="build"' in full and "checked" in full.split('name="build"')[1].split(">")[0]


def test_it_deploys_on_confirm_and_goes_to_the_release_page(login, todo_app, worker):
    client = login("deployer")
    response, _ = deploy(client)
    release = Release.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/releases/{release.pk}/"
    assert release.build is True and release.requested_by == client.user
    assert [s.name for s in release.steps.all()][:2] == ["build frontend", "build backend"]
    assert worker.enqueued == [release]
    page = client.get(response["Location"]).content.decode()
    assert f"Release #{release.pk} of todo-app queued." in page


def test_it_deploys_without_building_when_the_box_is_unchecked(login, todo_app, worker):
    response, _ = deploy(login("deployer"), build=False)
    release = Release.objects.get()
    assert response.status_code == 302 and release.build is False
    assert [s.name for s in release.steps.all()] == ["render", "upgrade", "verify"]


def test_it_starts_one_release_on_a_double_submit(login, todo_app, worker):
    client = login("deployer")
    first, data = deploy(client)
    second = client.post("/profiles/todo-app/deploy/", data)
    assert Release.objects.count() == 1
    assert second.status_code == 302 and second["Location"] == first["Location"]
    assert len(worker.enqueued) == 1


def test_it_refuses_a_deploy_while_one_is_active_and_links_to_it(login, todo_app, worker):
    active = make_release(todo_app, "upgrading")
    client = login("deployer")
    page = client.get("/profiles/todo-app/deploy/").content.decode()
    assert f'href="/releases/{active.pk}/"' in page  # warned before confirming
    response, _ = deploy(client)
    body = response.content.decode()
    assert response.status_code == 409
    assert f"already has release #{active.pk} upgrading" in body
    assert f'<a href="/releases/{active.pk}/">Watch release #{active.pk}' in body
    assert Release.objects.count() == 1 and worker.enqueued == []


def test_it_asks_again_when_the_profile_changed_since_the_preview(login, todo_app, worker):
    client = login("deployer")
    body = client.get("/profiles/todo-app/deploy/").content.decode()
    data = {**form_fields(body), "build": "on"}
    Component.objects.filter(profile=todo_app, name="backend").update(replicas=3)
    response = client.post("/profiles/todo-app/deploy/", data)
    assert response.status_code == 409
    assert "changed since this page was opened" in response.content.decode()
    assert not Release.objects.exists()
    again = client.post(
        "/profiles/todo-app/deploy/", {**form_fields(response.content.decode()), "build": "on"}
    )
    assert again.status_code == 302 and Release.objects.count() == 1


def test_it_forbids_viewers_to_deploy(login, todo_app, worker):
    client = login("viewer")
    assert client.get("/profiles/todo-app/deploy/").status_code == 403
    assert client.post("/profiles/todo-app/deploy/", {"token": "x"}).status_code == 403
    assert not Release.objects.exists()
    assert "/profiles/todo-app/deploy/" not in client.get("/profiles/todo-app/").content.decode()


def test_it_answers_404_for_unknown_profiles_and_releases(login, todo_app, worker):
    client = login("admin")
    release = make_release(todo_app, revision=1)
    for url in (
        "/profiles/nope/deploy/",
        "/profiles/nope/releases/",
        "/releases/999999/",
        "/releases/999999/cancel/",
        "/releases/999999/rollback/",
        f"/releases/{release.pk}/diff/999999/",
        "/releases/999999/diff/1/",
        "/clusters/nope/",
        "/profiles/todo-app/releases/?page=9",
    ):
        assert client.get(url).status_code == 404, url


# ---- the release page -----------------------------------------------------------------------


def test_it_renders_an_active_release_with_its_log_and_a_live_stream(login, todo_app):
    release = make_release(todo_app, "rendering", log=["first <b>line</b>", "second"])
    release.steps.filter(name="render").update(status="running")
    body = login("viewer").get(f"/releases/{release.pk}/").content.decode()
    assert f"Release #{release.pk}" in body and 'class="badge badge-rendering"' in body
    assert 'hx-ext="sse"' in body
    assert f'sse-connect="/releases/{release.pk}/stream/?after=2"' in body
    assert 'sse-swap="log" hx-swap="beforeend"' in body and 'sse-close="done"' in body
    assert 'hx-trigger="sse:done"' in body and 'hx-trigger="sse:status"' not in body
    assert 'id="release-steps"' in body and "hx-swap-oob" not in body  # the stream swaps it
    assert 'id="log-1"' in body and "first &lt;b&gt;line&lt;/b&gt;" in body and 'id="log-2"' in body
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in body
    assert "0/3 done" in body and 'aria-current="step"' in body
    assert '<progress max="3" value="0"' in body


def test_it_renders_a_finished_release_without_stream_or_refresh(login, todo_app):
    release = make_release(
        todo_app, "succeeded", revision=4, notes="Visit http://x:30000", log=["done"]
    )
    body = login("viewer").get(f"/releases/{release.pk}/").content.decode()
    assert "sse-connect" not in body and "http-equiv" not in body
    assert "Visit http://x:30000" in body and "NOTES.txt" in body
    assert "<dd>4</dd>" in body and "42.0s" in body
    assert "3/3 done" in body


def test_it_says_why_a_release_failed(login, todo_app):
    release = make_release(todo_app, "failed", reason="not Ready: todo-app-backend")
    body = login("viewer").get(f"/releases/{release.pk}/").content.decode()
    assert "Why it failed:" in body and "not Ready: todo-app-backend" in body


def test_it_renders_partials_for_htmx(login, todo_app):
    release = make_release(todo_app, "upgrading", log=["a"])
    client = login("viewer")
    live = client.get(f"/releases/{release.pk}/", headers={**HX, "HX-Target": "release-live"})
    text = live.content.decode()
    assert text.lstrip().startswith('<div id="release-live"') and 'id="log-1"' in text
    assert "<html" not in text
    assert "HX-Target" in live["Vary"]
    full = client.get(f"/releases/{release.pk}/").content.decode()
    assert "<html" in full


# ---- cancel ---------------------------------------------------------------------------------


def test_it_cancels_a_queued_release_after_confirmation(login, todo_app):
    release = make_release(todo_app, "queued")
    client = login("deployer")
    page = client.get(f"/releases/{release.pk}/").content.decode()
    assert f'href="/releases/{release.pk}/cancel/"' in page
    confirm = client.get(f"/releases/{release.pk}/cancel/")
    assert confirm.status_code == 200
    assert f"Cancel release #{release.pk} of todo-app?" in confirm.content.decode()
    release.refresh_from_db()
    assert release.status == "queued"  # a GET changes nothing
    response = client.post(f"/releases/{release.pk}/cancel/")
    assert response.status_code == 302 and response["Location"] == f"/releases/{release.pk}/"
    release.refresh_from_db()
    assert release.status == "cancelled"
    assert "cancel requested" in client.get(response["Location"]).content.decode()


def test_it_asks_a_running_release_to_stop_from_htmx(login, todo_app):
    release = make_release(todo_app, "building")
    response = login("deployer").post(f"/releases/{release.pk}/cancel/", headers=HX)
    assert response.status_code == 200 and response["HX-Redirect"] == f"/releases/{release.pk}/"
    release.refresh_from_db()
    assert release.cancel_requested and release.status == "building"
    assert AuditEvent.objects.filter(action="release.cancel").exists()


def test_it_has_nothing_to_cancel_on_a_finished_release(login, todo_app):
    release = make_release(todo_app, "succeeded", revision=1)
    client = login("deployer")
    assert "/cancel/" not in client.get(f"/releases/{release.pk}/").content.decode()
    response = client.get(f"/releases/{release.pk}/cancel/")
    assert response.status_code == 302
    response = client.post(f"/releases/{release.pk}/cancel/")
    assert response.status_code == 302
    release.refresh_from_db()
    assert release.status == "succeeded"


def test_it_forbids_viewers_to_cancel(login, todo_app):
    release = make_release(todo_app, "queued")
    client = login("viewer")
    assert "/cancel/" not in client.get(f"/releases/{release.pk}/").content.decode()
    assert client.get(f"/releases/{release.pk}/cancel/").status_code == 403
    assert client.post(f"/releases/{release.pk}/cancel/").status_code == 403
    release.refresh_from_db()
    assert release.status == "queued"


# ---- history, diff, roll back ---------------------------------------------------------------


@pytest.fixture
def history(todo_app):
    """Three releases: #1 succeeded (rev 1), #2 failed, #3 succeeded with a new tag (rev 2)."""
    first = make_release(todo_app, "succeeded", revision=1)
    failed = make_release(todo_app, "failed", reason="image pull failed")
    Component.objects.filter(profile=todo_app, name="backend").update(tag="1.1.0")
    todo_app.refresh_from_db()
    latest = make_release(todo_app, "succeeded", revision=2)
    return first, failed, latest


def test_it_lists_the_releases_of_a_profile(login, todo_app, history):
    first, failed, latest = history
    body = login("deployer").get("/profiles/todo-app/releases/").content.decode()
    table = body.split('<table class="releases">')[1]  # (after the chart's table)
    rows = table.split("<tbody>")[1].split("</tbody>")[0].split("<tr")[1:]
    assert [re.search(r'href="/releases/(\d+)/"', row).group(1) for row in rows] == [
        str(latest.pk),
        str(failed.pk),
        str(first.pk),
    ]
    assert "todo-backend:1.1.0" in rows[0] and "todo-backend:1.0.0" in rows[2]
    assert "last success" in rows[0] and "badge-succeeded" in rows[0]
    assert "badge-failed" in rows[1] and "image pull failed" in rows[1]
    assert "42.0s" in rows[0] and "<td>2</td>" in rows[0]
    assert f"/releases/{failed.pk}/diff/{latest.pk}/" in rows[0]
    assert f"/releases/{first.pk}/rollback/" in rows[2]  # an earlier success
    assert "/rollback/" not in rows[0] and "/rollback/" not in rows[1]  # current; failed


def test_it_hides_roll_back_from_viewers_and_renders_rows_for_htmx(login, todo_app, history):
    client = login("viewer")
    assert "/rollback/" not in client.get("/profiles/todo-app/releases/").content.decode()
    partial = client.get("/profiles/todo-app/releases/", headers=HX).content.decode()
    assert partial.lstrip().startswith('<div id="release-rows">') and "<html" not in partial


def test_it_sends_the_compare_form_to_the_diff_page(login, todo_app, history):
    first, _, latest = history
    response = login("viewer").get(f"/profiles/todo-app/releases/?a={first.pk}&b={latest.pk}")
    assert response.status_code == 302
    assert response["Location"] == f"/releases/{first.pk}/diff/{latest.pk}/"


def test_it_diffs_two_releases_snapshots(login, todo_app, history):
    first, _, latest = history
    body = login("viewer").get(f"/releases/{first.pk}/diff/{latest.pk}/").content.decode()
    assert '<span class="diff-del">-    tag: 1.0.0</span>' in body
    assert '<span class="diff-add">+    tag: 1.1.0</span>' in body
    same = login("viewer").get(f"/releases/{first.pk}/diff/{first.pk}/").content.decode()
    assert "No differences" in same


def test_it_rolls_back_after_confirmation(login, todo_app, history, worker):
    first, _, latest = history
    client = login("deployer")
    confirm = client.get(f"/releases/{first.pk}/rollback/")
    body = confirm.content.decode()
    assert confirm.status_code == 200
    assert f"Roll todo-app back to release #{first.pk}?" in body
    assert '<span class="diff-del">-    tag: 1.1.0</span>' in body  # from the last success
    assert Release.objects.count() == 3  # a GET changes nothing
    response = client.post(f"/releases/{first.pk}/rollback/")
    rollback = Release.objects.order_by("-pk").first()
    assert response.status_code == 302 and response["Location"] == f"/releases/{rollback.pk}/"
    assert rollback.kind == "rollback" and rollback.rollback_of == first
    assert rollback.snapshot == first.snapshot and rollback.build is False
    assert worker.enqueued == [rollback]


def test_it_refuses_to_roll_back_to_a_failed_release(login, todo_app, history, worker):
    _, failed, _ = history
    client = login("deployer")
    assert client.get(f"/releases/{failed.pk}/rollback/").status_code == 409
    response = client.post(f"/releases/{failed.pk}/rollback/")
    assert (
        response.status_code == 409 and "Only a release that succeeded" in response.content.decode()
    )
    assert Release.objects.count() == 3 and worker.enqueued == []


def test_it_refuses_to_roll_back_while_a_release_is_active(login, todo_app, history, worker):
    first, _, _ = history
    active = make_release(todo_app, "verifying")
    response = login("deployer").post(f"/releases/{first.pk}/rollback/")
    body = response.content.decode()
    assert response.status_code == 409 and f"already has release #{active.pk}" in body
    assert f'href="/releases/{active.pk}/"' in body
    assert worker.enqueued == []


def test_it_forbids_viewers_to_roll_back(login, todo_app, history, worker):
    first, _, _ = history
    client = login("viewer")
    assert client.get(f"/releases/{first.pk}/rollback/").status_code == 403
    assert client.post(f"/releases/{first.pk}/rollback/").status_code == 403
    assert Release.objects.count() == 3


# ---- status and profile pages ---------------------------------------------------------------


def test_it_shows_the_last_release_on_the_status_and_profile_pages(login, todo_app, history):
    _, _, latest = history
    client = login("viewer")
    for url in ("/", "/profiles/todo-app/"):
        body = client.get(url).content.decode()
        assert f'<a href="/releases/{latest.pk}/">#{latest.pk}</a>' in body, url
        assert "badge-succeeded" in body and "revision 2" in body
        assert "never deployed" not in body


def status_queries(client):
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    return len(queries)


def test_it_reads_the_status_page_in_a_fixed_number_of_queries(login, db):
    client = login("viewer")
    profile = ProfileFactory()
    ComponentFactory(profile=profile)
    make_release(profile, revision=1)
    one = status_queries(client)
    for _ in range(29):
        profile = ProfileFactory()
        ComponentFactory(profile=profile)
        ComponentFactory(profile=profile)
        make_release(profile, revision=1)
        make_release(profile, "failed")
    body = client.get("/").content.decode()
    assert body.count("badge-failed") == 29 and body.count("badge-succeeded") == 1
    assert status_queries(client) == one


def test_it_shows_the_seed_checks_and_a_deploy_button_on_the_profile_page(login, todo_app):
    Component.objects.filter(profile=todo_app, name="backend").update(cpu_limit="2")
    body = login("deployer").get("/profiles/todo-app/").content.decode()
    assert 'href="/profiles/todo-app/deploy/"' in body
    assert 'href="/profiles/todo-app/releases/"' in body
    assert 'href="/clusters/minikube/"' in body
    assert "guaranteed-qos" in body and "Why:" in body and "Set limits equal to requests" in body
    assert "never deployed" in body


# ---- secrets --------------------------------------------------------------------------------


def test_it_never_shows_a_secret_value_on_the_release_pages(login, todo_app, worker):
    from deployments.services.profiles import secret_set
    from tests.test_secret_leaks import CANARY, assert_clean

    secret_set(profile=todo_app, key="JWT_SECRET", value=CANARY, actor=None)
    first = make_release(todo_app, "succeeded", revision=1, log=["helm upgrade --install"])
    secret_set(profile=todo_app, key="OPENAI_API_KEY", value=CANARY + "2", actor=None)
    latest = make_release(todo_app, "succeeded", revision=2)
    queued = make_release(todo_app, "queued")
    assert first.snapshot["secrets"]["JWT_SECRET"] == {"stored": True}
    client = login("admin")
    for url in (
        "/",
        "/profiles/todo-app/",
        "/profiles/todo-app/deploy/",
        "/profiles/todo-app/releases/",
        f"/releases/{first.pk}/",
        f"/releases/{queued.pk}/",
        f"/releases/{queued.pk}/cancel/",
        f"/releases/{first.pk}/diff/{latest.pk}/",
        f"/releases/{first.pk}/rollback/",
        "/clusters/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_clean(response.content.decode(), url)
    diff = client.get(f"/releases/{first.pk}/diff/{latest.pk}/").content.decode()
    assert "OPENAI_API_KEY" in diff and "stored: true" in diff  # keys and sources only


def test_it_refreshes_the_status_page_faster_without_js_while_a_release_runs(login, todo_app):
    """Live over SSE with JavaScript; without it a meta refresh, faster while busy."""
    client = login("viewer")
    body = client.get("/").content.decode()
    assert 'sse-connect="/status/stream/"' in body and "hx-trigger" not in body
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in body
    release = make_release(todo_app, "building")
    assert 'http-equiv="refresh" content="10"' in client.get("/").content.decode()
    Release.objects.filter(pk=release.pk).update(status="succeeded")
    assert 'http-equiv="refresh" content="30"' in client.get("/").content.decode()


def test_it_offers_roll_back_on_an_earlier_success_only(login, todo_app, history):
    first, failed, latest = history
    client = login("deployer")
    body = client.get(f"/releases/{first.pk}/").content.decode()
    assert f"/releases/{first.pk}/rollback/" in body
    for release in (failed, latest):
        assert "/rollback/" not in client.get(f"/releases/{release.pk}/").content.decode()


# ---- the history chart --------------------------------------------------------------------


def chart_table_rows(body):
    """[[cell text]] of the chart's table, newest first."""
    table = body[body.index('<table id="release-chart-table"') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr data-release=\"\d+\">(.*?)</tr>", table, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


def test_it_charts_the_last_releases_with_the_numbers_in_a_table(login, todo_app):
    now = timezone.now()
    first = timed_release(todo_app, at=now - timedelta(hours=2), steps=FULL, gap=3)
    steps = {"build backend": None, "render": 1.5, "upgrade": "open"}
    failed = timed_release(todo_app, "failed", at=now - timedelta(hours=1), steps=steps, gap=70)
    body = login("viewer").get("/profiles/todo-app/releases/").content.decode()
    assert 'role="img" aria-labelledby="release-chart-title release-chart-desc"' in body
    assert body.count('<g class="bar"') == 2
    assert body.count('<rect class="step step-') == 4 + 2
    assert body.count('<rect class="result result-') == 2
    assert '<rect class="result result-succeeded" x="51.0"' in body  # oldest on the left
    assert chart_table_rows(body) == [
        [f"#{failed.pk}", "failed", "—", "1.5s", "1m 10s", "—", "1m 11s"],
        [f"#{first.pk}", "succeeded", "55.0s", "2.0s", "40.0s", "10.0s", "1m 50s"],
    ]


def test_it_shows_the_chart_on_the_whole_first_page_only(login, todo_app, history):
    client = login("viewer")
    assert 'id="release-chart"' in client.get("/profiles/todo-app/releases/").content.decode()
    partial = client.get("/profiles/todo-app/releases/", headers=HX).content.decode()
    assert "release-chart" not in partial and 'id="release-rows"' in partial


def test_it_shows_no_chart_before_the_first_release(login, todo_app):
    make_release(todo_app, "upgrading")  # running: not on the chart yet
    body = login("viewer").get("/profiles/todo-app/releases/").content.decode()
    assert "release-chart" not in body
