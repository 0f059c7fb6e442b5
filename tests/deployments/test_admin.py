import json
import re

import pytest

from deployments.forms import COMPONENT_FIELDS
from deployments.models import AuditEvent, Cluster, Profile, SecretEntry
from tests.factories import ClusterFactory, SecretEntryFactory

pytestmark = pytest.mark.django_db

SECRET = "adm1n-S3CRET-plaintext"
CHANGE_URL = "/admin/deployments/profile/{}/change/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client(login):
    return login("admin")


def _formset(data, prefix, rows, initial):
    data[f"{prefix}-TOTAL_FORMS"] = str(len(rows))
    data[f"{prefix}-INITIAL_FORMS"] = str(initial)
    data[f"{prefix}-MIN_NUM_FORMS"] = "0"
    data[f"{prefix}-MAX_NUM_FORMS"] = "1000"
    for i, row in enumerate(rows):
        for key, value in row.items():
            if callable(value):
                value = value()
            if isinstance(value, dict):  # JSON fields (build arguments, pod annotations)
                value = json.dumps(value)
            data[f"{prefix}-{i}-{key}"] = "" if value is None else value


def change_data(profile, *, config=None, secrets=None, component_changes=None):
    """POST data for the admin change form of `profile`, as the page would send it."""
    data = {
        "namespace": profile.namespace,
        "cluster": profile.cluster_id,
        "environment": profile.environment,
        "description": profile.description,
        "_save": "Save",
    }
    components = []
    for c in profile.components.all():
        row = {
            "id": c.pk,
            "profile": profile.pk,
            **{name: getattr(c, name) for name in COMPONENT_FIELDS},
        }
        row.update((component_changes or {}).get(c.name, {}))
        components.append(row)
    _formset(data, "components", components, len(components))
    config_rows = (
        config
        if config is not None
        else [
            {"id": e.pk, "profile": profile.pk, "key": e.key, "value": e.value}
            for e in profile.config.all()
        ]
    )
    _formset(data, "config", config_rows, profile.config.count())
    secret_rows = (
        secrets
        if secrets is not None
        else [
            {
                "id": s.pk,
                "profile": profile.pk,
                "key": s.key,
                "from_env": s.from_env,
                "new_value": "",
            }
            for s in profile.secrets.all()
        ]
    )
    _formset(data, "secrets", secret_rows, profile.secrets.count())
    return data


def test_it_audits_a_config_change_in_the_inline_with_before_and_after(admin_client, todo_app):
    entries = list(todo_app.config.all())
    rows = [
        {
            "id": e.pk,
            "profile": todo_app.pk,
            "key": e.key,
            "value": "debug" if e.key == "LOG_LEVEL" else e.value,
        }
        for e in entries
    ]
    response = admin_client.post(CHANGE_URL.format(todo_app.pk), change_data(todo_app, config=rows))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert todo_app.config.get(key="LOG_LEVEL").value == "debug"
    event = AuditEvent.objects.get(action="config.changed")
    assert event.before == {"LOG_LEVEL": "info"} and event.after == {"LOG_LEVEL": "debug"}
    assert event.actor_name.startswith("user")


def test_it_audits_config_removal_in_the_inline(admin_client, todo_app):
    rows = [
        {
            "id": e.pk,
            "profile": todo_app.pk,
            "key": e.key,
            "value": e.value,
            "DELETE": "on" if e.key == "LOG_LEVEL" else "",
        }
        for e in todo_app.config.all()
    ]
    for row in rows:
        if not row["DELETE"]:
            del row["DELETE"]
    response = admin_client.post(CHANGE_URL.format(todo_app.pk), change_data(todo_app, config=rows))
    assert response.status_code == 302
    assert not todo_app.config.filter(key="LOG_LEVEL").exists()
    assert AuditEvent.objects.get(action="config.deleted").before == {"LOG_LEVEL": "info"}


def test_it_audits_a_secret_change_without_its_value(admin_client, todo_app):
    secret = todo_app.secrets.get(key="JWT_SECRET")
    rows = [
        {
            "id": s.pk,
            "profile": todo_app.pk,
            "key": s.key,
            "from_env": "" if s.pk == secret.pk else s.from_env,
            "new_value": SECRET if s.pk == secret.pk else "",
        }
        for s in todo_app.secrets.all()
    ]
    response = admin_client.post(
        CHANGE_URL.format(todo_app.pk), change_data(todo_app, secrets=rows)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    secret.refresh_from_db()
    assert secret.ciphertext and not secret.from_env and SECRET not in secret.ciphertext
    event = AuditEvent.objects.get(action="secret.changed", target="JWT_SECRET")
    assert SECRET not in str(event.before) + str(event.after)
    assert secret.ciphertext not in str(event.after)
    # untouched secrets are not re-audited
    assert AuditEvent.objects.filter(action="secret.changed").count() == 1


def test_it_keeps_a_stored_secret_when_the_new_value_is_blank(admin_client, todo_app):
    stored = SecretEntryFactory(profile=todo_app, key="DB_PASSWORD", value=SECRET)
    response = admin_client.post(CHANGE_URL.format(todo_app.pk), change_data(todo_app))
    assert response.status_code == 302
    stored_again = SecretEntry.objects.get(pk=stored.pk)
    assert stored_again.ciphertext == stored.ciphertext


def test_it_never_renders_a_secret_in_the_admin(admin_client, todo_app):
    stored = SecretEntryFactory(profile=todo_app, key="DB_PASSWORD", value=SECRET)
    pages = [
        admin_client.get(url)
        for url in (
            CHANGE_URL.format(todo_app.pk),
            "/admin/deployments/profile/",
            "/admin/deployments/auditevent/",
            f"/admin/deployments/profile/{todo_app.pk}/history/",
        )
    ]
    # a failed save (bad quantity) must not echo a freshly typed value either
    rows = [
        {
            "id": s.pk,
            "profile": todo_app.pk,
            "key": s.key,
            "from_env": s.from_env,
            "new_value": SECRET + "-new" if s.pk == stored.pk else "",
        }
        for s in todo_app.secrets.all()
    ]
    first = todo_app.components.first().name
    bad = change_data(todo_app, secrets=rows, component_changes={first: {"cpu_request": "lots"}})
    pages.append(admin_client.post(CHANGE_URL.format(todo_app.pk), bad))
    for response in pages:
        assert response.status_code == 200
        body = response.content.decode()
        assert SECRET not in body and stored.ciphertext not in body
    assert 'name="secrets-0-new_value"' in pages[0].content.decode()


def test_it_shows_spec_errors_under_the_inline_field_and_writes_nothing(admin_client, todo_app):
    first = todo_app.components.get(name="backend")
    bad = change_data(
        todo_app,
        component_changes={
            "backend": {"memory_request": "2Gi", "memory_limit": "1Gi"},
            "frontend": {"service_type": "ClusterIP", "node_port": 30000},
        },
    )
    response = admin_client.post(CHANGE_URL.format(todo_app.pk), bad)
    assert response.status_code == 200
    body = response.content.decode()
    assert "below the request" in body
    assert "only allowed with service type NodePort" in body
    assert todo_app.components.get(pk=first.pk).memory_limit == "1Gi"
    assert not AuditEvent.objects.exclude(
        action__in=["profile.created", "config.created", "secret.created"]
    ).exists()


def test_it_rejects_a_new_secret_without_value_or_source(admin_client, todo_app):
    rows = [
        {"id": s.pk, "profile": todo_app.pk, "key": s.key, "from_env": s.from_env, "new_value": ""}
        for s in todo_app.secrets.all()
    ]
    rows.append({"profile": todo_app.pk, "key": "NEW_ONE", "from_env": "", "new_value": ""})
    data = change_data(todo_app, secrets=rows)
    data["secrets-INITIAL_FORMS"] = str(len(rows) - 1)
    response = admin_client.post(CHANGE_URL.format(todo_app.pk), data)
    assert response.status_code == 200
    assert "a value to store encrypted" in response.content.decode()
    assert not todo_app.secrets.filter(key="NEW_ONE").exists()


def test_it_creates_and_deletes_profiles_through_the_services(admin_client):
    cluster = ClusterFactory(name="minikube")
    data = {
        "name": "adm",
        "namespace": "adm",
        "cluster": cluster.pk,
        "environment": "dev",
        "description": "",
        "_save": "Save",
    }
    _formset(
        data,
        "components",
        [
            {
                "name": "api",
                "image": "adm-api",
                "tag": "1",
                "port": 80,
                "replicas": 1,
                "service_type": "ClusterIP",
                **_component_defaults(),
            }
        ],
        0,
    )
    _formset(data, "config", [{"key": "MODE", "value": "x"}], 0)
    _formset(data, "secrets", [{"key": "TOKEN", "from_env": "", "new_value": SECRET}], 0)
    response = admin_client.post("/admin/deployments/profile/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    profile = Profile.objects.get(name="adm")
    assert profile.components.get().image == "adm-api"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"profile.created", "config.created", "secret.created"} <= actions
    response = admin_client.post(
        f"/admin/deployments/profile/{profile.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Profile.objects.exists()
    assert AuditEvent.objects.filter(action="profile.deleted", profile_name="adm").exists()


def _component_defaults():
    from deployments.forms import ComponentForm

    fields = ComponentForm().fields
    return {
        name: fields[name].initial
        for name in COMPONENT_FIELDS
        if name not in ("name", "image", "tag", "port", "replicas", "service_type", "node_port")
        and fields[name].initial is not None
    }


def test_it_keeps_the_audit_log_read_only(admin_client, todo_app):
    event = AuditEvent.objects.first()
    listing = admin_client.get("/admin/deployments/auditevent/?action=config.created")
    assert listing.status_code == 200
    rows = re.findall(r"<tr>.*?</tr>", listing.content.decode(), flags=re.S)
    assert rows and all("config.created" in row for row in rows[1:])
    assert admin_client.get("/admin/deployments/auditevent/add/").status_code == 403
    detail = admin_client.get(f"/admin/deployments/auditevent/{event.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert (
        admin_client.post(
            f"/admin/deployments/auditevent/{event.pk}/change/", {"action": "forged"}
        ).status_code
        == 403
    )
    assert (
        admin_client.post(
            f"/admin/deployments/auditevent/{event.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    event.refresh_from_db()
    assert event.action != "forged"


def test_it_reports_a_profile_without_components_on_the_components_inline(admin_client, todo_app):
    rows = [
        {
            "id": c.pk,
            "profile": todo_app.pk,
            "DELETE": "on",
            **{name: getattr(c, name) for name in COMPONENT_FIELDS},
        }
        for c in todo_app.components.all()
    ]
    data = change_data(todo_app)
    _formset(data, "components", rows, len(rows))
    response = admin_client.post(CHANGE_URL.format(todo_app.pk), data)
    assert response.status_code == 200
    assert "at least one component" in response.content.decode()
    assert todo_app.components.count() == 2


def test_it_reports_undecodable_json_in_the_component_inline(admin_client, todo_app):
    component = todo_app.components.first()
    data = change_data(todo_app, component_changes={component.name: {"build_args": "9" * 5000}})
    response = admin_client.post(f"/admin/deployments/profile/{todo_app.pk}/change/", data)
    assert response.status_code == 200
    assert "Enter a valid JSON" in response.content.decode()


# ---- clusters: how built images reach the nodes


CLUSTER_ADD_URL = "/admin/deployments/cluster/add/"


def _cluster_data(**changes):
    data = {
        "name": "kind",
        "kubeconfig_path": "",
        "kube_context": "",
        "minikube_profile": "",
        "docker_host": "",
        "image_delivery": "docker",
        "containerd_address": "",
        "capacity_cpus": "4",
        "capacity_memory": "8Gi",
    }
    return {**data, **changes}


def test_it_shows_the_image_delivery_fields_on_the_cluster_form(admin_client):
    page = admin_client.get(CLUSTER_ADD_URL).content.decode()
    assert 'name="image_delivery"' in page and 'name="containerd_address"' in page
    assert "Load into the node&#x27;s containerd" in page
    assert "Push to a registry — not yet supported" in page


def test_it_saves_a_cluster_that_loads_into_containerd(admin_client):
    response = admin_client.post(
        CLUSTER_ADD_URL,
        _cluster_data(
            image_delivery="containerd", containerd_address="/run/containerd/containerd.sock"
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    cluster = Cluster.objects.get(name="kind")
    assert cluster.image_delivery == Cluster.CONTAINERD and cluster.loads_into_containerd
    assert cluster.containerd_address == "/run/containerd/containerd.sock"
    changes = AuditEvent.objects.get(action="cluster.created").after
    assert changes["image_delivery"] == "containerd"


def test_it_refuses_registry_delivery_with_a_clear_message(admin_client):
    response = admin_client.post(CLUSTER_ADD_URL, _cluster_data(image_delivery="registry"))
    assert response.status_code == 200
    assert "Pushing to a registry is not supported yet" in response.content.decode()
    assert not Cluster.objects.filter(name="kind").exists()


@pytest.mark.parametrize(
    "address, message",
    [
        ("", "Required when images are loaded into the node"),
        ("run/containerd.sock", "must be the absolute path of containerd"),
        ("/run/containerd.sock --debug", "must be the absolute path of containerd"),
    ],
)
def test_it_needs_a_containerd_socket_path_for_containerd_delivery(admin_client, address, message):
    response = admin_client.post(
        CLUSTER_ADD_URL, _cluster_data(image_delivery="containerd", containerd_address=address)
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Cluster.objects.filter(name="kind").exists()


def test_it_defaults_to_the_clusters_docker():
    assert Cluster.objects.create(name="plain").image_delivery == Cluster.DOCKER
