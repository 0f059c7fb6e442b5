import io
import json
import re

import pytest
import yaml
from django.test import Client

from deployments.forms import ComponentForm
from deployments.models import AuditEvent, Profile, SecretEntry
from tests.factories import PASSWORD, ClusterFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = "pl41ntext-S3CRET-never-shown"


def component_data(**overrides):
    data = {
        name: field.initial() if callable(field.initial) else field.initial
        for name, field in ComponentForm().fields.items()
    }
    data.update(name="web", image="demo-web", tag="1.0.0", port=8000, node_port="")
    data.update(overrides)
    return {
        k: "" if v is None else json.dumps(v) if isinstance(v, dict) else v for k, v in data.items()
    }


def form_data(
    *,
    name="demo",
    namespace=None,
    cluster="minikube",
    environment="dev",
    components=None,
    config=None,
    secrets=None,
    initial=(0, 0, 0),
):
    """POST data for the profile form: profile fields plus the three formsets."""
    components = [component_data()] if components is None else components
    config = config or {}
    secrets = secrets or []
    data = {
        "name": name,
        "namespace": namespace or name,
        "cluster": cluster,
        "environment": environment,
        "description": "",
    }
    for prefix, rows, first in (
        ("components", components, initial[0]),
        ("config", [{"key": k, "value": v} for k, v in config.items()], initial[1]),
        ("secrets", secrets, initial[2]),
    ):
        data[f"{prefix}-TOTAL_FORMS"] = str(len(rows))
        data[f"{prefix}-INITIAL_FORMS"] = str(first)
        data[f"{prefix}-MIN_NUM_FORMS"] = "0"
        data[f"{prefix}-MAX_NUM_FORMS"] = "1000"
        for i, row in enumerate(rows):
            for key, value in row.items():
                data[f"{prefix}-{i}-{key}"] = value
    return data


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def cluster(db):
    return ClusterFactory(name="minikube")


@pytest.fixture
def admin_client(login, cluster):
    return login("admin")


def test_it_creates_a_profile_and_audits_it(admin_client):
    data = form_data(
        config={"LOG_LEVEL": "info"},
        secrets=[{"key": "API_KEY", "source": "value", "value": SECRET}],
    )
    response = admin_client.post("/profiles/new/", data)
    assert response.status_code == 302
    assert response["Location"] == "/profiles/demo/"
    profile = Profile.objects.get(name="demo")
    assert profile.components.get().cpu_request == "500m"
    assert profile.config.get().value == "info"
    actions = set(AuditEvent.objects.filter(profile=profile).values_list("action", flat=True))
    assert {"profile.created", "config.created", "secret.created"} <= actions


def test_it_shows_a_bad_quantity_under_its_field_and_writes_nothing(admin_client):
    data = form_data(components=[component_data(cpu_request="lots", cpu_limit="lots")])
    response = admin_client.post("/profiles/new/", data)
    assert response.status_code == 200
    html = response.content.decode()
    errors = re.search(r'id="id_components-0-cpu_request-errors"[^>]*>(.*?)</div>', html, re.S)
    assert "must be a CPU quantity" in errors.group(1)
    assert not Profile.objects.exists()
    assert not AuditEvent.objects.exists()


def test_it_maps_cross_field_spec_errors_to_the_component_field(admin_client):
    data = form_data(components=[component_data(service_type="ClusterIP", node_port=30001)])
    response = admin_client.post("/profiles/new/", data)
    html = response.content.decode()
    errors = re.search(r'id="id_components-0-node_port-errors"[^>]*>(.*?)</div>', html, re.S)
    assert "only allowed with service type NodePort" in errors.group(1)
    assert not Profile.objects.exists()


def test_it_shows_a_limit_below_request_under_the_limit(admin_client):
    data = form_data(components=[component_data(memory_request="1Gi", memory_limit="512Mi")])
    html = admin_client.post("/profiles/new/", data).content.decode()
    errors = re.search(r'id="id_components-0-memory_limit-errors"[^>]*>(.*?)</div>', html, re.S)
    assert "below the request" in errors.group(1)
    assert not Profile.objects.exists()


def test_it_rejects_a_node_port_used_by_another_profile_on_the_cluster(admin_client, todo_app):
    data = form_data(components=[component_data(service_type="NodePort", node_port=30000)])
    html = admin_client.post("/profiles/new/", data).content.decode()
    errors = re.search(r'id="id_components-0-node_port-errors"[^>]*>(.*?)</div>', html, re.S)
    assert "already used on cluster minikube by todo-app/frontend" in errors.group(1)
    assert not Profile.objects.filter(name="demo").exists()


def test_it_rejects_a_taken_name_under_the_name_field(admin_client, todo_app):
    html = admin_client.post("/profiles/new/", form_data(name="todo-app")).content.decode()
    errors = re.search(r'id="id_name-errors"[^>]*>(.*?)</div>', html, re.S)
    assert "already exists" in errors.group(1)


def test_it_edits_a_profile_keeping_a_blank_secret_and_audits(admin_client, todo_app):
    assert admin_client.post("/profiles/todo-app/edit/", {}).status_code == 200  # no formsets
    page = admin_client.get("/profiles/todo-app/edit/")
    assert page.status_code == 200
    components = [
        component_data(
            name=c.name,
            image=c.image,
            tag=c.tag,
            port=c.port,
            service_type=c.service_type,
            node_port=c.node_port,
            build_context=c.build_context,
            cpu_request=c.cpu_request,
            cpu_limit=c.cpu_limit,
            memory_request=c.memory_request,
            memory_limit=c.memory_limit,
        )
        for c in todo_app.components.all()
    ]
    components[0]["replicas"] = 3
    secrets = [
        {"key": s.key, "source": "env", "from_env": s.from_env} for s in todo_app.secrets.all()
    ]
    data = form_data(
        name="todo-app",
        components=components,
        secrets=secrets,
        config={"LOG_LEVEL": "debug"},
        initial=(len(components), 1, len(secrets)),
    )
    response = admin_client.post("/profiles/todo-app/edit/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    todo_app.refresh_from_db()
    assert todo_app.components.get(name=components[0]["name"]).replicas == 3
    assert todo_app.config.get().value == "debug"
    changed = AuditEvent.objects.get(action="config.changed", target="LOG_LEVEL")
    assert changed.before == {"LOG_LEVEL": "info"} and changed.after == {"LOG_LEVEL": "debug"}
    assert AuditEvent.objects.filter(action="profile.changed", profile=todo_app).exists()


def test_it_never_renders_a_saved_secret_value(admin_client):
    data = form_data(secrets=[{"key": "API_KEY", "source": "value", "value": SECRET}])
    assert admin_client.post("/profiles/new/", data).status_code == 302
    # an edit that fails validation must not echo the new value back either
    bad = form_data(
        name="demo",
        components=[component_data(cpu_request="lots")],
        secrets=[{"key": "API_KEY", "source": "value", "value": SECRET + "2"}],
        initial=(1, 0, 1),
    )
    pages = [admin_client.post("/profiles/demo/edit/", bad)]
    for url in (
        "/",
        "/profiles/",
        "/profiles/demo/",
        "/profiles/demo/edit/",
        "/profiles/demo/clone/",
        "/profiles/demo/delete/",
        "/profiles/demo/export.yaml",
    ):
        pages.append(admin_client.get(url))
    for response in pages:
        assert response.status_code == 200
        body = response.content.decode()
        assert SECRET not in body
        assert SecretEntry.objects.get().ciphertext not in body
    detail = pages[3].content.decode()
    assert "stored value" in detail and "set · changed" in detail


def test_it_keeps_a_stored_secret_when_the_value_is_left_blank(admin_client):
    data = form_data(secrets=[{"key": "API_KEY", "source": "value", "value": SECRET}])
    admin_client.post("/profiles/new/", data)
    ciphertext = SecretEntry.objects.get().ciphertext
    keep = form_data(secrets=[{"key": "API_KEY", "source": "keep", "value": ""}], initial=(1, 0, 1))
    assert admin_client.post("/profiles/demo/edit/", keep).status_code == 302
    assert SecretEntry.objects.get().ciphertext == ciphertext


def test_it_clones_a_profile_and_audits(admin_client, todo_app):
    response = admin_client.post(
        "/profiles/todo-app/clone/", {"name": "todo-copy", "namespace": "todo-copy"}
    )
    assert response.status_code == 302
    clone = Profile.objects.get(name="todo-copy")
    assert clone.components.count() == 2
    assert AuditEvent.objects.filter(action="profile.cloned", profile=clone).exists()


def test_it_shows_clone_errors_under_the_field(admin_client, todo_app):
    response = admin_client.post(
        "/profiles/todo-app/clone/", {"name": "todo-app2", "namespace": "Bad Namespace"}
    )
    assert response.status_code == 200
    assert "must be lowercase letters" in response.content.decode()
    response = admin_client.post(
        "/profiles/todo-app/clone/", {"name": "todo-app", "namespace": "todo"}
    )
    assert "a profile named todo-app already exists" in response.content.decode()
    assert Profile.objects.count() == 1


def test_it_confirms_before_deleting_and_audits(admin_client, todo_app):
    page = admin_client.get("/profiles/todo-app/delete/")
    assert page.status_code == 200 and b"Delete todo-app?" in page.content
    assert Profile.objects.exists()
    response = admin_client.post("/profiles/todo-app/delete/")
    assert response.status_code == 302
    assert not Profile.objects.exists()
    assert AuditEvent.objects.filter(action="profile.deleted", profile_name="todo-app").exists()


def test_it_exports_yaml_as_an_attachment_without_secret_values(admin_client):
    data = form_data(secrets=[{"key": "API_KEY", "source": "value", "value": SECRET}])
    admin_client.post("/profiles/new/", data)
    response = admin_client.get("/profiles/demo/export.yaml")
    assert response["Content-Disposition"] == 'attachment; filename="demo.yaml"'
    body = response.content.decode()
    assert SECRET not in body
    assert yaml.safe_load(body)["secrets"] == {"API_KEY": {"stored": True}}


def _upload(text, name="profile.yaml"):
    upload = io.BytesIO(text.encode() if isinstance(text, str) else text)
    upload.name = name
    return upload


def test_it_imports_a_good_yaml(admin_client):
    text = "name: up\ncomponents:\n  api:\n    image: up-api\n    port: 8000\nconfig:\n  A: b\n"
    response = admin_client.post("/profiles/import/", {"file": _upload(text)})
    assert response.status_code == 302
    assert Profile.objects.get(name="up").config.get().value == "b"


def test_it_lists_import_errors_one_per_line_and_writes_nothing(admin_client):
    text = (
        "name: Bad_Name\ncomponents:\n  api:\n    image: up-api\n    port: 99999\n"
        "    resources: {requests: {cpu: lots}}\n"
    )
    response = admin_client.post("/profiles/import/", {"file": _upload(text)})
    assert response.status_code == 200
    items = re.findall(r"<li><code>(.*?)</code></li>", response.content.decode())
    paths = [item.split(":")[0] for item in items]
    assert "name" in paths
    assert "components.api.port" in paths
    assert "components.api.resources.requests.cpu" in paths
    assert not Profile.objects.exists()


def test_it_rejects_invalid_yaml_and_oversized_uploads(admin_client, settings):
    response = admin_client.post("/profiles/import/", {"file": _upload("name: [unclosed")})
    assert b"not valid YAML" in response.content
    settings.PROFILE_UPLOAD_MAX_BYTES = 100
    response = admin_client.post("/profiles/import/", {"file": _upload("#" * 200)})
    assert b"larger than" in response.content
    response = admin_client.post("/profiles/import/", {"file": _upload(b"\xff\xfe")})
    assert response.status_code == 200
    assert not Profile.objects.exists()


@pytest.mark.parametrize(
    "text",
    [
        'config: {A: "x\\0y"}',
        'description: "x\\0y"',
        'config: {A: "x\\ud800y"}',
        'secrets: {S: {value: "x\\ud800y"}}',
        '"\\ud800": 1',
    ],
)
def test_it_rejects_text_a_database_cannot_store(admin_client, text):
    doc = f"name: up\ncomponents: {{api: {{port: 80}}}}\n{text}\n"
    response = admin_client.post("/profiles/import/", {"file": _upload(doc)})
    assert response.status_code == 200
    assert b"The file was not imported" in response.content
    assert not Profile.objects.exists()


def test_it_returns_partials_to_htmx_and_full_pages_otherwise(admin_client, todo_app):
    full = admin_client.get("/")
    assert b"<html" in full.content and b"todo-app" in full.content
    partial = admin_client.get("/", headers={"HX-Request": "true"})
    assert b"<html" not in partial.content and b'id="status-profiles"' in partial.content
    assert "HX-Request" in partial["Vary"]
    restore = admin_client.get(
        "/", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert b"<html" in restore.content
    rows = admin_client.get("/profiles/?q=todo", headers={"HX-Request": "true"})
    assert b"<html" not in rows.content and b"todo-app" in rows.content
    bad = admin_client.post("/profiles/new/", form_data(name="BAD"), headers={"HX-Request": "true"})
    assert bad.status_code == 200
    assert bad.content.lstrip().startswith(b"<form") and b"<html" not in bad.content
    assert b"The profile was not saved" in bad.content
    ok = admin_client.post("/profiles/new/", form_data(), headers={"HX-Request": "true"})
    assert ok.status_code == 200 and ok["HX-Redirect"] == "/profiles/demo/"


def test_it_validates_one_field_on_blur(admin_client):
    data = form_data(components=[component_data(cpu_request="lots")])
    response = admin_client.post(
        "/profiles/validate/",
        data,
        headers={"HX-Request": "true", "HX-Trigger-Name": "components-0-cpu_request"},
    )
    body = response.content.decode()
    assert 'id="id_components-0-cpu_request-errors"' in body
    assert "must be a CPU quantity" in body
    ok = admin_client.post(
        "/profiles/validate/", data, headers={"HX-Request": "true", "HX-Trigger-Name": "name"}
    )
    assert "<p>" not in ok.content.decode()
    assert not Profile.objects.exists()


@pytest.mark.parametrize(
    ("kind", "field"), [("components", "name"), ("config", "key"), ("secrets", "key")]
)
def test_it_adds_a_row_with_and_without_js(admin_client, kind, field):
    row = admin_client.get(
        f"/profiles/rows/{kind}/?{kind}-TOTAL_FORMS=1", headers={"HX-Request": "true"}
    )
    body = row.content.decode()
    assert f'name="{kind}-1-{field}"' in body
    assert f'id="id_{kind}-TOTAL_FORMS" hx-swap-oob="true"' in body and 'value="2"' in body
    data = form_data(config={"A": "b"}, secrets=[{"key": "S", "source": "env", "from_env": "E"}])
    data[f"_add_{kind}"] = "1"
    page = admin_client.post("/profiles/new/", data)
    assert page.status_code == 200
    assert f'name="{kind}-1-{field}"'.encode() in page.content
    assert not Profile.objects.exists()


def test_it_refuses_unknown_row_kinds_and_too_many_rows(admin_client):
    assert admin_client.get("/profiles/rows/nope/").status_code == 404
    assert (
        admin_client.get("/profiles/rows/components/?components-TOTAL_FORMS=20").status_code == 204
    )
    assert admin_client.get("/profiles/rows/config/?config-TOTAL_FORMS=x").status_code == 200


def test_it_accepts_htmx_posts_with_the_csrf_token_from_hx_headers(cluster):
    user = UserFactory(role="admin")
    client = Client(enforce_csrf_checks=True)
    client.login(username=user.username, password=PASSWORD)
    page = client.get("/profiles/new/").content.decode()
    headers = json.loads(re.search(r"hx-headers='([^']+)'", page).group(1))
    response = client.post("/profiles/new/", form_data(), headers={"HX-Request": "true", **headers})
    assert response.status_code == 200 and response["HX-Redirect"] == "/profiles/demo/"
    refused = client.post("/profiles/validate/", form_data(), headers={"HX-Request": "true"})
    assert refused.status_code == 403


def test_it_tells_a_new_user_how_to_start_on_an_empty_status_page(admin_client):
    body = admin_client.get("/").content.decode()
    assert "No profiles yet" in body and "/profiles/new/" in body and "/profiles/import/" in body


def test_it_shows_components_and_a_never_deployed_profile_on_the_status_page(login, todo_app):
    body = login("viewer").get("/").content.decode()
    assert "todo-frontend:1.0.0" in body and "NodePort :30000" in body
    assert "never deployed" in body
    assert "/profiles/new/" not in body  # no create button for viewers


def test_it_shows_the_audit_trail_on_the_detail_page(admin_client, todo_app):
    body = admin_client.get("/profiles/todo-app/").content.decode()
    assert "profile.created" in body and "config.created" in body
    assert "from $TODO_JWT_SECRET" in body


def test_it_keeps_build_arguments_and_pod_annotations_through_an_edit(admin_client, todo_app):
    from deployments.forms import profile_initial
    from deployments.models import Component

    Component.objects.filter(profile=todo_app, name="backend").update(
        build_args={"BASE_IMAGE": "python:3.11-slim"},
        pod_annotations={"prometheus.io/scrape": "true"},
    )
    initial = profile_initial(todo_app)
    components = [component_data(**row) for row in initial["components"]]
    secrets = [dict(row) for row in initial["secrets"]]
    data = form_data(
        name="todo-app",
        components=components,
        secrets=secrets,
        config={row["key"]: row["value"] for row in initial["config"]},
        initial=(len(components), len(initial["config"]), len(secrets)),
    )
    response = admin_client.post("/profiles/todo-app/edit/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    backend = todo_app.components.get(name="backend")
    assert backend.build_args == {"BASE_IMAGE": "python:3.11-slim"}
    assert backend.pod_annotations == {"prometheus.io/scrape": "true"}
    assert todo_app.components.get(name="frontend").build_args == {}
