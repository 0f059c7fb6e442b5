"""The API's operations through Django's test client with real tokens (the Celery hand-off
recorded instead of sent; tests/e2e/test_api_cli.py runs a worker and a cluster)."""

import json

import pytest

from deployments.models import AuditEvent, Profile, Release
from tests.factories import make_release, pod_state

pytestmark = pytest.mark.django_db


def test_it_lists_profiles_with_health_and_last_release(todo_app, api_as):
    release = make_release(todo_app, "succeeded", revision=1)
    pod_state(todo_app, "frontend-1", component="frontend", ready=True, phase="Running")
    response = api_as("viewer").get("/api/v1/profiles")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 1 and body["pages"] == 1
    [item] = body["items"]
    assert item["name"] == "todo-app" and item["health"] == "healthy"
    assert (item["ready"], item["total"]) == (1, 1)
    assert item["last_release"] == {
        "id": release.pk,
        "status": "succeeded",
        "url": f"/releases/{release.pk}/",
    }


def test_it_returns_the_export_document_without_secret_values(todo_app, api_as):
    from deployments.services.profiles import secret_set

    secret_set(
        profile=todo_app, key="DATABASE_URL", value="postgresql://u:hunter2@db/x", actor=None
    )
    response = api_as("viewer").get("/api/v1/profiles/todo-app")
    assert response.status_code == 200
    document = response.json()["document"]
    assert document["name"] == "todo-app" and set(document["components"]) == {
        "frontend",
        "backend",
    }
    assert document["secrets"]["DATABASE_URL"] == {"stored": True}
    assert b"hunter2" not in response.content


def test_it_deploys_with_a_tag_override_for_this_release_only(todo_app, api_as, enqueued):
    response = api_as("deployer").post(
        "/api/v1/profiles/todo-app/releases", {"build": False, "tags": {"backend": "1.2.3"}}
    )
    assert response.status_code == 202, response.content
    body = response.json()
    release = Release.objects.get(pk=body["id"])
    assert enqueued == [release.pk] and body["status"] == "queued" and not release.build
    assert body["images"]["backend"] == "todo-backend:1.2.3"
    assert release.snapshot["components"]["backend"]["tag"] == "1.2.3"
    assert todo_app.components.get(name="backend").tag == "1.0.0"  # the profile keeps its own
    assert AuditEvent.objects.filter(action="api_token.used", target__contains="deploy").exists()


@pytest.mark.parametrize(
    ("tags", "path"),
    [
        ({"nope": "1.0"}, "tags.nope"),
        ({"backend": "bad tag!"}, "tags.backend"),
        ({"backend": ""}, "tags.backend"),
    ],
)
def test_it_refuses_a_bad_tag_with_its_path_and_queues_nothing(
    todo_app, api_as, enqueued, tags, path
):
    response = api_as("deployer").post("/api/v1/profiles/todo-app/releases", {"tags": tags})
    assert response.status_code == 400, response.content
    assert [e["path"] for e in response.json()["errors"]] == [path]
    assert enqueued == [] and not Release.objects.exists()


def test_a_second_deploy_while_one_is_active_is_409(todo_app, api_as, enqueued):
    client = api_as("deployer")
    assert client.post("/api/v1/profiles/todo-app/releases", {}).status_code == 202
    response = client.post("/api/v1/profiles/todo-app/releases", {})
    assert response.status_code == 409
    assert "already has release" in response.json()["errors"][0]["message"]


def test_it_rolls_back_and_cancels(todo_app, api_as, enqueued):
    make_release(todo_app, "succeeded", revision=1)
    make_release(todo_app, "succeeded", revision=2)
    client = api_as("deployer")
    response = client.post("/api/v1/profiles/todo-app/rollback", {"revision": 1})
    assert response.status_code == 202, response.content
    rollback = response.json()
    assert rollback["kind"] == "rollback" and enqueued == [rollback["id"]]
    cancel = client.post(f"/api/v1/releases/{rollback['id']}/cancel")
    assert cancel.status_code == 200
    assert cancel.json()["cancelled"] is True
    assert cancel.json()["release"]["status"] == "cancelled"


def test_it_pages_the_log_after_a_sequence(todo_app, api_as):
    release = make_release(todo_app, "succeeded", log=[f"line {n}" for n in range(1, 6)])
    client = api_as("viewer")
    first = client.get(f"/api/v1/releases/{release.pk}/log", {"limit": 3}).json()
    assert [line["text"] for line in first["lines"]] == ["line 1", "line 2", "line 3"]
    assert first["done"] is False
    rest = client.get(f"/api/v1/releases/{release.pk}/log", {"after": first["after"]}).json()
    assert [line["text"] for line in rest["lines"]] == ["line 4", "line 5"]
    assert rest["done"] is True and rest["status"] == "succeeded"


def test_it_creates_and_replaces_a_profile_from_json_or_yaml(todo_app, api_as):
    from deployments import profile_yaml

    client = api_as("admin")
    document = client.get("/api/v1/profiles/todo-app").json()["document"]
    document.update(name="todo-copy", namespace="todo-copy")
    for component in document["components"].values():
        component["service"].pop("nodePort", None)
    document["secrets"] = {}
    created = client.post("/api/v1/profiles", document)
    assert created.status_code == 201, created.content
    document["config"]["LOG_LEVEL"] = "debug"
    text = profile_yaml.dump(Profile.objects.get(name="todo-copy")).replace(
        "LOG_LEVEL: info", "LOG_LEVEL: debug"
    )
    replaced = client.put("/api/v1/profiles/todo-copy", text, content_type="application/yaml")
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["document"]["config"]["LOG_LEVEL"] == "debug"


def test_a_bad_document_is_400_with_field_paths_and_writes_nothing(todo_app, api_as):
    client = api_as("admin")
    before = Profile.objects.count()
    response = client.post(
        "/api/v1/profiles",
        {"name": "Bad Name", "components": {"web": {"image": "x", "port": 99999}}},
    )
    assert response.status_code == 400
    paths = {e["path"] for e in response.json()["errors"]}
    assert "name" in paths and any(p.startswith("components.web") for p in paths)
    assert Profile.objects.count() == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" * 100_000, "application/json"),
        (b"{not json", "application/json"),
        (b"a: [b", "application/yaml"),
        (b"x" * (300 * 1024), "application/json"),
    ],
)
def test_a_body_that_cannot_be_read_is_400_not_500(todo_app, api_as, body, content_type):
    response = api_as("admin").post("/api/v1/profiles", body, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] in ("body", "file")


def test_a_bad_query_parameter_is_422_with_its_name(todo_app, api_as):
    response = api_as("viewer").get("/api/v1/profiles", {"page": "x"})
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["page"]


def test_status_lists_pods_with_their_problem(todo_app, api_as):
    make_release(todo_app, "succeeded", revision=1)
    pod_state(
        todo_app,
        "backend-1",
        component="backend",
        phase="Running",
        ready=False,
        restarts=5,
        reason="CrashLoopBackOff",
        exit_code=1,
    )
    body = api_as("viewer").get("/api/v1/profiles/todo-app/status").json()
    [pod] = body["pods"]
    assert pod["problem"]["kind"] == "crash" and pod["problem"]["fix"]
    assert body["health"] == "degraded" and body["current_release"]["status"] == "succeeded"


def test_the_openapi_document_needs_a_login_and_names_every_operation(client, admin_user):
    assert client.get("/api/v1/openapi.json").status_code == 302
    client.force_login(admin_user)
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/profiles/{name}/releases" in schema["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"swagger-ui-bundle.js" in docs.content
    # its assets are this installation's own files, not a CDN's
    from django.contrib.staticfiles import finders

    for asset in ("swagger-ui-bundle.js", "swagger-ui-init.js", "swagger-ui.css"):
        assert finders.find(f"ninja/{asset}"), asset
    assert b"cdn." not in docs.content and b"https://" not in docs.content


def test_wrong_tokens_from_one_address_are_refused_for_a_while(todo_app, api_as, settings):
    """After HELMDECK_API_AUTH_FAILURES wrong tokens in a minute, more wrong ones get 429."""
    from tests.deployments.api.conftest import ApiClient

    settings.HELMDECK_API_AUTH_FAILURES = 3
    wrong = ApiClient("hd_" + "w" * 43)
    assert [wrong.get("/api/v1/profiles").status_code for _ in range(3)] == [401] * 3
    refused = wrong.get("/api/v1/profiles")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    # a header the client writes does not make it another address
    spoofed = wrong.get("/api/v1/profiles", headers={"X-Forwarded-For": "198.18.0.9"})
    assert spoofed.status_code == 429
    assert api_as("viewer").get("/api/v1/profiles").status_code == 200  # a right token: yes


def test_one_token_is_throttled_on_its_own(todo_app, api_as, settings):
    settings.HELMDECK_API_RATE_PER_TOKEN = "3/m"
    busy = api_as("viewer")
    codes = [busy.get("/api/v1/profiles").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert api_as("viewer").get("/api/v1/profiles").status_code == 200  # another token


def test_a_token_records_when_and_from_where_it_was_last_used(todo_app):
    from deployments.models import ApiToken
    from tests.deployments.api.conftest import ApiClient, token_for

    token, raw = token_for("viewer")
    assert token.last_used_at is None
    ApiClient(raw, REMOTE_ADDR="198.18.0.7").get("/api/v1/profiles")
    token = ApiToken.objects.get(pk=token.pk)
    assert token.last_used_at is not None and token.last_used_address == "198.18.0.7"


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_the_event_stream_replays_log_and_status_as_json(todo_app, api_as):
    release = make_release(todo_app, "succeeded", revision=1, log=["one", "two", "three"])
    response = api_as("viewer").get(
        f"/api/v1/releases/{release.pk}/events", headers={"Last-Event-ID": "1"}
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    text = b"".join(response).decode()  # an async stream, read to its end
    blocks = [b for b in text.split("\n\n") if b.strip()]
    logs = [json.loads(b.split("data: ", 1)[1]) for b in blocks if b.startswith("event: log")]
    assert [line["text"] for line in logs] == ["two", "three"]
    status = [json.loads(b.split("data: ", 1)[1]) for b in blocks if b.startswith("event: status")]
    assert status[0]["status"] == "succeeded"
    # the release as GET /releases/{pk} gives it: a client needs no call to report the end
    got = api_as("viewer").get(f"/api/v1/releases/{release.pk}").json()
    assert status[0]["release"] == got and got["helm_revision"] == 1 and got["steps"]
    assert blocks[-1] == "event: done\ndata: succeeded"


@pytest.mark.parametrize("revision", [2**31, 2**63, 10**30])
def test_a_revision_past_any_database_integer_is_422_not_a_500(todo_app, api_as, revision):
    response = api_as("deployer").post("/api/v1/profiles/todo-app/rollback", {"revision": revision})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "revision"


def test_a_narrowed_token_whose_profiles_are_deleted_reaches_nothing(todo_app, api_as, enqueued):
    from tests.factories import ProfileFactory

    other = ProfileFactory(name="staging", namespace="staging")
    client = api_as("admin", profiles=[other])
    assert client.get("/api/v1/profiles/todo-app").status_code == 404
    assert client.delete("/api/v1/profiles/staging").status_code == 204
    # its only profile is gone: still narrowed, to nothing (never widened to all)
    assert client.get("/api/v1/profiles/todo-app").status_code == 404
    assert client.post("/api/v1/profiles/todo-app/releases", {}).status_code == 404
    assert client.get("/api/v1/profiles").json()["count"] == 0
    assert client.post("/api/v1/profiles", {"name": "new"}).status_code == 403
    assert [c["profiles"] for c in client.get("/api/v1/clusters").json()] == [0]
    assert enqueued == []


@pytest.mark.parametrize("odd", ["%00", "a%00b", "%C3%A9t%C3%A9", "x" * 300, "a.b"])
def test_an_odd_name_in_a_path_is_404_not_a_500(todo_app, api_as, odd):
    client = api_as("admin")
    for url in (
        f"/api/v1/profiles/{odd}",
        f"/api/v1/profiles/{odd}/status",
        f"/api/v1/clusters/{odd}/doctor",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["errors"][0]["message"] == "Not Found"


def test_a_hostile_log_position_is_not_a_500(todo_app, api_as, monkeypatch, unreachable_kubeconfig):
    from deployments.models import Cluster

    Cluster.objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig)
    )
    response = api_as("viewer").get(
        "/api/v1/profiles/todo-app/logs", {"after": "x@0001-01-01T00:00:00+05:00#0"}
    )
    assert response.status_code == 503  # read as "from the start"; the cluster answers nothing


def test_every_change_made_with_a_token_names_it_in_the_audit(todo_app, api_as, enqueued):
    client = api_as("admin")
    make_release(todo_app, "queued")
    release = Release.objects.get()
    assert client.post(f"/api/v1/releases/{release.pk}/cancel").status_code == 200
    document = client.get("/api/v1/profiles/todo-app").json()["document"]
    assert client.put("/api/v1/profiles/todo-app", document).status_code == 200
    used = list(AuditEvent.objects.filter(action="api_token.used").values_list("target", flat=True))
    assert any("cancel release" in t for t in used) and any("replace profile" in t for t in used)
