"""The team status page: one row per profile (health, pods, revision and tags, last deploy,
diagnosis with a link to the fix), pagination, text and health filters, a fixed number of
queries at 10 or 1,000 profiles, and the same view over its SSE stream."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Component, PodState, Profile, Release
from deployments.selectors import STATUS_PAGE_SIZE, StatusView, status_page
from tests.deployments.test_selectors_history import finished
from tests.deployments.views.test_digest import opens_region
from tests.factories import (
    ClusterFactory,
    ComponentFactory,
    ProfileFactory,
    make_release,
    pod_state,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def crashing(profile, name="backend-crash", **fields):
    return pod_state(
        profile,
        name,
        ready=False,
        ready_containers=0,
        reason="CrashLoopBackOff",
        exit_code=1,
        restarts=4,
        **fields,
    )


def make_profiles(count, *, pods=10, prefix="app"):
    """`count` profiles with one component, a succeeded release and `pods` PodState rows
    each, in bulk (a thousand profiles in a few seconds)."""
    cluster = ClusterFactory()
    profiles = Profile.objects.bulk_create(
        Profile(name=f"{prefix}-{n:04d}", namespace=f"ns-{n:04d}", cluster=cluster)
        for n in range(count)
    )
    Component.objects.bulk_create(
        Component(profile=p, name="web", image=f"img-{p.name}", tag="1.0.0", port=80)
        for p in profiles
    )
    snapshot = {"components": {"web": {"image": "img", "tag": "1.0.0"}}}
    Release.objects.bulk_create(
        Release(
            profile=p,
            status=Release.Status.SUCCEEDED,
            snapshot=snapshot,
            helm_revision=1,
            started_at=NOW,
            finished_at=NOW,  # in the delivery keys' 30 days
        )
        for p in profiles
    )
    PodState.objects.bulk_create(
        PodState(
            profile=p,
            namespace=p.namespace,
            name=f"{p.name}-web-{i}",
            component="web",
            phase="Running",
            ready=i != 0,
            reason="" if i else "CrashLoopBackOff",
            total_containers=1,
            ready_containers=1 if i else 0,
            started_at=NOW,
        )
        for p in profiles
        for i in range(pods)
    )
    return profiles


# ---- rows ---------------------------------------------------------------------------------


def test_it_shows_health_pods_revision_tags_last_deploy_and_diagnosis(login, todo_app):
    make_release(todo_app, revision=3)
    Release.objects.filter(profile=todo_app).update(requested_by_name="alice")
    pod_state(todo_app, "backend-ok")
    crashing(todo_app)
    body = login("viewer").get("/").content.decode()
    row = body[body.index('id="profile-row-') : body.index("</tr>", body.index('id="profile-row-'))]
    assert f'sse-swap="profile-{todo_app.pk}"' in row
    assert "health-degraded" in row and "Degraded" in row and "1/2 pods ready" in row
    assert "revision 3" in row and "todo-backend:1.0.0" in row and "todo-frontend:1.0.0" in row
    assert "deploy by alice" in row and "badge-succeeded" in row
    assert "Crash loop" in row and "CrashLoopBackOff (exit code 1, 4 restarts)" in row
    assert "Fix: The container exits on start" in row
    assert 'href="/profiles/todo-app/logs/?pod=backend-crash&amp;previous=1"' in row


@pytest.mark.parametrize(
    ("fields", "label", "anchor"),
    [
        ({"reason": "OOMKilled", "exit_code": 137}, "OOMKilled", "component-backend-memory_limit"),
        ({"reason": "ImagePullBackOff"}, "Image pull", "component-backend-image"),
        (
            {"phase": "Pending", "reason": "Unschedulable", "message": "Insufficient cpu"},
            "Unschedulable",
            "component-backend-cpu_request",
        ),
        (
            {"last_event": "Unhealthy: Readiness probe failed: 503"},
            "Not ready",
            "component-backend-readiness_path",
        ),
    ],
)
def test_it_links_each_diagnosis_to_the_field_to_change(login, todo_app, fields, label, anchor):
    pod_state(todo_app, "backend-bad", ready=False, ready_containers=0, **fields)
    admin = login("admin")
    for url in ("/", "/profiles/todo-app/"):
        body = admin.get(url).content.decode()
        assert label in body, url
        assert f'href="/profiles/todo-app/edit/#{anchor}"' in body, url
    form = admin.get("/profiles/todo-app/edit/").content.decode()
    assert f'id="{anchor}"' in form and "field-anchor.js" in form


def test_it_notes_the_pull_policy_for_an_image_pull_error(login, todo_app):
    pod_state(todo_app, "backend-bad", ready=False, ready_containers=0, reason="ErrImagePull")
    body = login("viewer").get("/").content.decode()
    assert "imagePullPolicy: Never" in body and "minikube docker-env" in body


def test_it_gives_viewers_the_fix_but_no_link_to_a_form_they_cannot_use(login, todo_app):
    pod_state(todo_app, "backend-bad", ready=False, ready_containers=0, reason="OOMKilled")
    body = login("viewer").get("/").content.decode()
    assert "Raise the component" in body and "/edit/#" not in body


def test_it_gives_saved_components_stable_field_anchors(login, todo_app):
    form = login("admin").get("/profiles/todo-app/edit/").content.decode()
    for component in ("frontend", "backend"):
        for field in ("image", "tag", "memory_limit", "cpu_request", "readiness_path"):
            assert form.count(f'id="component-{component}-{field}"') == 1
    new = login("admin").get("/profiles/new/").content.decode()
    assert 'id="component-' not in new.replace('id="component-components-', "")


# ---- pagination and filters ----------------------------------------------------------------


def test_it_pages_fifty_profiles_at_a_time(login):
    make_profiles(STATUS_PAGE_SIZE + 5, pods=1)
    client = login("viewer")
    first = client.get("/").content.decode()
    assert first.count('class="status-row') == STATUS_PAGE_SIZE
    assert "Page 1 of 2" in first and 'href="?page=2" rel="next"' in first
    second = client.get("/?page=2").content.decode()
    assert second.count('class="status-row') == 5 and "app-0054" in second
    assert 'sse-connect="/status/stream/?page=2"' in second
    assert client.get("/?page=99").status_code == 200  # the last page
    assert client.get("/?page=x").status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("shop", {"shop"}),  # name
        ("team-b", {"blog"}),  # namespace
        ("edge", {"edge-api"}),  # cluster
        ("registry.local/blog", {"blog"}),  # image
        ("nothing-matches", set()),
    ],
)
def test_it_filters_by_name_namespace_cluster_and_image(login, query, expected):
    shop = ProfileFactory(name="shop", namespace="team-a")
    blog = ProfileFactory(name="blog", namespace="team-b")
    edge = ProfileFactory(name="edge-api", cluster=ClusterFactory(name="edge"))
    ComponentFactory(profile=blog, image="registry.local/blog-web")
    ComponentFactory(profile=shop, image="shop-web")
    ComponentFactory(profile=edge, image="api")
    body = login("viewer").get("/", {"q": query}).content.decode()
    shown = {name for name in ("shop", "blog", "edge-api") if f'data-profile="{name}"' in body}
    assert shown == expected
    if not expected:
        assert "No profile matches" in body and "Show all profiles" in body


def test_it_filters_by_health_and_counts_each_health(login):
    healthy, degraded, failed, _ = ProfileFactory.create_batch(4)
    pod_state(healthy, "ok-1")
    make_release(degraded, revision=1)
    pod_state(degraded, "ok-2")
    crashing(degraded, "bad-2")
    make_release(failed, "failed")
    client = login("viewer")
    body = client.get("/", {"health": "degraded"}).content.decode()
    assert f'data-profile="{degraded.name}"' in body
    assert f'data-profile="{healthy.name}"' not in body
    assert 'sse-connect="/status/stream/?health=degraded"' in body
    everything = client.get("/").content.decode()
    for label in ("1 Healthy", "1 Degraded", "1 Failed", "1 Not deployed"):
        assert label in everything
    assert client.get("/", {"health": "bogus"}).content.decode().count("status-row") == 4


def test_it_reads_the_same_health_from_sql_as_from_the_rows(db):
    """The filter (counts in SQL) and the badge of a row agree, case by case."""
    from deployments.services.profile_health import profile_health

    cases = ProfileFactory.create_batch(6)
    pod_state(cases[0], "a")
    crashing(cases[1], "b")
    make_release(cases[2], "upgrading")
    make_release(cases[3], "failed")
    pod_state(cases[4], "c", ready=False, ready_containers=0, started_at=NOW)  # starting
    make_release(cases[5], revision=1)  # no pods reported
    page = status_page(StatusView())
    for profile in page.profiles:
        pods = list(PodState.objects.filter(profile=profile))
        last = Release.objects.filter(profile=profile).order_by("-created_at", "-id").first()
        assert profile.health == profile_health(pods=pods, last_release=last), profile.name
    assert len({p.health.status for p in page.profiles}) == 5


def test_it_reads_the_page_in_a_fixed_number_of_queries(login, django_assert_num_queries):
    client = login("viewer")
    client.get("/")  # session and permission caches warm, as on any later page view
    make_profiles(10)
    # the 11th: where NodePorts answer; the 12th and 13th: the delivery keys
    with django_assert_num_queries(13) as small:
        body = client.get("/").content.decode()
    assert body.count('class="status-row') == 10 and body.count("Crash loop") == 10
    assert body.count('<tr data-profile="app-') == 10  # their delivery keys
    make_profiles(990, prefix="more")
    with django_assert_num_queries(len(small.captured_queries)):
        body = client.get("/?q=more&page=3").content.decode()
    assert body.count('class="status-row') == STATUS_PAGE_SIZE and "Page 3 of 20" in body
    assert body.count('<tr data-profile="more-') == STATUS_PAGE_SIZE


def test_it_answers_htmx_with_the_table_partial(login, todo_app):
    response = login("viewer").get("/", headers={"HX-Request": "true"})
    body = response.content.decode().strip()
    assert opens_region(body, "status-profiles") and "<html" not in body


@pytest.mark.parametrize(
    "params",
    [
        {"q": "<script>alert(1)</script>"},
        {"q": "a\x00b"},
        {"q": "x" * 5000},
        {"page": "-5"},
        {"page": "99999999999999999999"},
        {"health": "<b>bad</b>"},
    ],
)
def test_it_takes_any_query_string_without_error_or_injection(login, todo_app, params):
    for url in ("/", "/status/stream/"):
        response = login("viewer").get(url, params)
        assert response.status_code == 200, url
        body = b"".join(response).decode() if response.streaming else response.content.decode()
        assert "<script>alert" not in body and "<b>bad</b>" not in body


def test_it_reads_a_view_from_the_query_string():
    view = StatusView.from_params({"q": "  shop\x00 ", "health": "degraded", "page": "3"})
    assert view == StatusView("shop", "degraded", 3)
    assert view.querystring() == "q=shop&health=degraded&page=3"
    assert view.querystring(page=1) == "q=shop&health=degraded"
    assert StatusView.from_params({"health": "nope", "page": "x"}) == StatusView()
    assert len(StatusView.from_params({"q": "y" * 500}).query) == 100


# ---- the delivery keys (DORA) -------------------------------------------------------------


def keys_rows(body):
    """{profile name or "Team": [cell text]} of the delivery keys' table."""
    table = body[body.index('<table id="delivery-table"') :]
    table = table[: table.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr[ >].*?</tr>", table, re.S)[1:]:
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        text = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", c)).strip() for c in cells]
        rows[text[0]] = text[1:]
    return rows


def test_it_shows_the_delivery_keys_of_the_team_and_of_the_page_profiles(login):
    shop, blog = ProfileFactory(name="shop"), ProfileFactory(name="blog")
    ProfileFactory(name="idle")
    start = NOW - timedelta(days=3)
    finished(shop, "succeeded", at=start)
    finished(shop, "failed", at=start + timedelta(hours=1))
    finished(shop, "succeeded", at=start + timedelta(hours=1, minutes=30))
    finished(blog, "rolled_back", at=start)
    finished(blog, "succeeded", at=start + timedelta(hours=2))
    finished(blog, "failed", at=start + timedelta(hours=5))
    finished(blog, "cancelled", at=start + timedelta(hours=6))
    body = login("viewer").get("/").content.decode()
    assert 'id="delivery-heading">Delivery, last 30 days' in body
    assert keys_rows(body) == {
        "blog": ["0.03", "1", "2", "67%", "2h 00m (1 open)"],
        "shop": ["0.07", "2", "1", "33%", "30m 00s"],
        "Team": ["0.10", "3", "3", "50%", "1h 15m (1 open)"],
    }
    assert '<dd id="key-per-day">0.10</dd>' in body
    assert '<dd id="key-failure-rate">50%</dd>' in body
    assert '<dd id="key-restore">1h 15m</dd>' in body
    assert 'id="deploys-chart"' in body and body.count('<g class="day"') == 30
    assert "Lead time for changes" in body and "not computed" in body


def test_it_keeps_the_keys_to_the_profiles_of_the_page_shown(login):
    shop, blog = ProfileFactory(name="shop"), ProfileFactory(name="blog")
    finished(shop, "succeeded", at=NOW - timedelta(hours=1))
    finished(blog, "succeeded", at=NOW - timedelta(hours=1))
    body = login("viewer").get("/?q=shop").content.decode()
    assert list(keys_rows(body)) == ["shop", "Team"]
    assert keys_rows(body)["Team"][1] == "2"


def test_it_says_so_when_nothing_was_deployed_in_30_days(login, todo_app):
    finished(todo_app, "succeeded", at=NOW - timedelta(days=40))
    body = login("viewer").get("/").content.decode()
    assert 'id="delivery-empty"' in body and "delivery-table" not in body
    assert "deploys-chart" not in body


def test_it_leaves_the_keys_out_of_the_live_table(login, todo_app):
    finished(todo_app, "succeeded", at=NOW - timedelta(hours=1))
    partial = login("viewer").get("/", headers={"HX-Request": "true"}).content.decode()
    assert "delivery" not in partial
