"""An AuditEvent, naming who did it, for every deploy, rollback, cancel and edit, done the
way a user does it: through the pages, the admin site and the commands."""

import io
import re

import pytest
from django.core.management import call_command

from deployments.models import AuditEvent, Profile, Release
from tests.deployments.test_admin import CHANGE_URL, change_data
from tests.deployments.test_views import component_data, form_data
from tests.factories import PASSWORD, UserFactory, make_release

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_workers(monkeypatch):
    from deployments.views import clusters, releases

    monkeypatch.setattr(releases, "preview_request", lambda profile: None)
    monkeypatch.setattr(releases, "release_enqueue", lambda release: None)
    monkeypatch.setattr(clusters, "doctor_forget", lambda cluster: None)


@pytest.fixture
def user(client):
    def _user(role):
        account = UserFactory(role=role)
        assert client.login(username=account.username, password=PASSWORD)
        return account

    return _user


def audited(action, actor, target=None):
    events = AuditEvent.objects.filter(action=action, actor_name=actor.username)
    if target is not None:
        events = events.filter(target=target)
    assert events.exists(), (
        action,
        list(AuditEvent.objects.values_list("action", "actor_name", "target")),
    )
    return events.latest("pk")


def test_deploy(todo_app, client, user):
    actor = user("deployer")
    page = client.get("/profiles/todo-app/deploy/").content.decode()
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    response = client.post("/profiles/todo-app/deploy/", {"token": token, "build": "on"})
    assert response.status_code == 302
    release = Release.objects.get()
    audited("release.deploy", actor, f"release #{release.pk}")


def test_rollback(todo_app, client, user):
    actor = user("deployer")
    target = make_release(todo_app, revision=1)
    make_release(todo_app, revision=2)
    assert client.post(f"/releases/{target.pk}/rollback/").status_code == 302
    audited("release.rollback", actor)


@pytest.mark.parametrize("status", ["queued", "upgrading"])
def test_cancel(todo_app, client, user, status):
    """A queued release is cancelled at once, a running one asked to stop: both audited
    (the queued case was not, before tests/security found it)."""
    actor = user("deployer")
    release = make_release(todo_app, status)
    assert client.post(f"/releases/{release.pk}/cancel/").status_code == 302
    audited("release.cancel", actor, f"release #{release.pk}")


def test_profile_form_create_and_edit(db, client, user):
    actor = user("admin")
    assert client.post("/profiles/new/", form_data(name="audited")).status_code == 302
    audited("profile.created", actor, "audited")
    profile = Profile.objects.get(name="audited")
    data = form_data(
        name="audited",
        components=[component_data(port=9000)],
        initial=(1, 0, 0),
        config={"LOG_LEVEL": "debug"},
    )
    data["components-0-id"] = profile.components.get().pk
    assert client.post("/profiles/audited/edit/", data).status_code == 302
    changed = audited("profile.changed", actor, "audited")
    assert changed.before["components"]["web"]["port"] == 8000
    assert changed.after["components"]["web"]["port"] == 9000
    audited("config.created", actor, "LOG_LEVEL")


def test_admin_config_and_secret_edits(todo_app, client, user):
    actor = user("admin")
    config = [
        {
            "id": e.pk,
            "profile": todo_app.pk,
            "key": e.key,
            "value": "warning" if e.key == "LOG_LEVEL" else e.value,
        }
        for e in todo_app.config.all()
    ]
    secrets = [
        {
            "id": s.pk,
            "profile": todo_app.pk,
            "key": s.key,
            "from_env": "" if s.key == "JWT_SECRET" else s.from_env,
            "new_value": "rotated-value" if s.key == "JWT_SECRET" else "",
        }
        for s in todo_app.secrets.all()
    ]
    response = client.post(
        CHANGE_URL.format(todo_app.pk), change_data(todo_app, config=config, secrets=secrets)
    )
    assert response.status_code == 302
    event = audited("config.changed", actor, "LOG_LEVEL")
    assert event.before == {"LOG_LEVEL": "info"} and event.after == {"LOG_LEVEL": "warning"}
    secret = audited("secret.changed", actor, "JWT_SECRET")
    assert "rotated-value" not in str(secret.before) + str(secret.after)


def test_admin_cluster_edit_and_profile_delete(todo_app, client, user):
    actor = user("admin")
    cluster = todo_app.cluster
    response = client.post(
        f"/admin/deployments/cluster/{cluster.pk}/change/",
        {
            "name": cluster.name,
            "kube_context": "other",
            "kubeconfig_path": "",
            "minikube_profile": "",
            "docker_host": "",
            "capacity_cpus": "4",
            "capacity_memory": "8Gi",
            "image_delivery": "docker",
            "containerd_address": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    audited("cluster.changed", actor, cluster.name)
    response = client.post(f"/admin/deployments/profile/{todo_app.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    audited("profile.deleted", actor, "todo-app")


def test_import_clone_and_delete_pages(todo_app, client, user):
    actor = user("admin")
    text = client.get("/profiles/todo-app/export.yaml").content.replace(b"info", b"debug")
    upload = io.BytesIO(text)
    upload.name = "todo-app.yaml"
    assert client.post("/profiles/import/", {"file": upload}).status_code == 302
    event = audited("config.changed", actor, "LOG_LEVEL")
    assert event.after == {"LOG_LEVEL": "debug"}
    response = client.post("/profiles/todo-app/clone/", {"name": "twin", "namespace": "twin"})
    assert response.status_code == 302
    audited("profile.cloned", actor, "twin")
    assert client.post("/profiles/twin/delete/").status_code == 302
    audited("profile.deleted", actor, "twin")


def test_the_import_command(todo_app, tmp_path):
    """import_profile from a shell is audited as the system."""
    path = tmp_path / "todo.yaml"
    from deployments import profile_yaml

    path.write_text(profile_yaml.dump(todo_app).replace("info", "debug"))
    call_command("import_profile", str(path), stdout=io.StringIO())
    assert AuditEvent.objects.filter(
        action="config.changed", actor_name="system", target="LOG_LEVEL"
    ).exists()
