"""Preview and install of the seed's todo-app on the sandbox, with helm 4 and helm 3."""

import pytest
from django.core.cache import cache

from deployments.integrations.helm import Helm
from deployments.models import Cluster, Profile
from deployments.services import rendering
from deployments.services.preview import fingerprint, helm_for, profile_preview
from deployments.services.profiles import config_set, parse_spec_of, secret_set
from deployments.services.values import (
    CHART_DIR,
    secret_values,
    secrets_file,
    value_files,
    values_file,
    values_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
BOTH_HELMS = pytest.mark.parametrize("helm_bin", ["v4", "v3"], indirect=True)
SECRET_ENV = {
    "TODO_JWT_SECRET": "jwt-one",
    "OPENAI_API_KEY": "sk-one",
    "TODO_DATABASE_URL": "postgresql://db/one",
}


@pytest.fixture
def todo_in_sandbox(todo_app, sandbox, monkeypatch, helm_bin):
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    Cluster.objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(sandbox.kubeconfig), minikube_profile=""
    )
    Profile.objects.filter(pk=todo_app.pk).update(namespace=sandbox.namespace)
    # A short readiness delay keeps the test quick; the rollout still waits for it.
    todo_app.components.update(readiness_initial_delay=2)
    todo_app.refresh_from_db()
    yield todo_app
    # nodePort 30000 is cluster-wide: free it before the next test installs again.
    Helm(binary=helm_bin, kubeconfig=str(sandbox.kubeconfig)).uninstall(
        "todo-app", sandbox.namespace
    )


def install(profile, helm):
    spec = parse_spec_of(profile)
    with values_file(values_for(spec)) as path, secrets_file(secret_values(profile)) as secrets:
        return helm.upgrade_install(
            spec["name"],
            spec["namespace"],
            CHART_DIR,
            [*value_files(spec), path, secrets],
            wait=True,
            timeout=120,
        )


@BOTH_HELMS
def test_it_installs_the_todo_app_and_it_becomes_ready(todo_in_sandbox, sandbox, helm_bin):
    helm = Helm(binary=helm_bin, kubeconfig=str(sandbox.kubeconfig))
    notes = install(todo_in_sandbox, helm)
    assert "frontend: reachable from your machine" in notes
    assert "open http://$(minikube ip):30000" in notes
    assert "backend: inside the cluster at http://backend-service:8000" in notes
    deployments = {
        d.metadata.name: d for d in sandbox.apps.list_namespaced_deployment(sandbox.namespace).items
    }
    assert set(deployments) == {"todo-app-frontend", "todo-app-backend"}
    assert all(d.status.ready_replicas == 1 for d in deployments.values())
    pods = sandbox.pods("app.kubernetes.io/instance=todo-app")
    assert len(pods) == 2
    assert all(
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions) for p in pods
    )
    secret = sandbox.core.read_namespaced_secret("todo-app-secrets", sandbox.namespace)
    assert sorted(secret.data) == ["DATABASE_URL", "JWT_SECRET", "OPENAI_API_KEY"]
    svc = sandbox.core.read_namespaced_service("frontend-service", sandbox.namespace)
    assert svc.spec.ports[0].node_port == 30000


def test_it_previews_a_first_deploy_then_only_what_changed(
    todo_in_sandbox, sandbox, helm_bin, settings
):
    settings.HELMDECK_HELM = str(helm_bin)
    first = profile_preview(profile=todo_in_sandbox)
    assert first["problems"] == []
    assert first["deployed"] is False
    assert (
        set(first["diff"])
        == set(first["resources"])
        == {
            "Deployment/todo-app-frontend",
            "Deployment/todo-app-backend",
            "Service/frontend-service",
            "Service/backend-service",
            "ConfigMap/todo-app-config",
            "Secret/todo-app-secrets",
        }
    )
    assert first["secrets"] == dict.fromkeys(
        ["DATABASE_URL", "JWT_SECRET", "OPENAI_API_KEY"], "added"
    )
    assert [c["check"] for c in first["checks"] if c["level"] == "error"] in (
        [],
        ["root-user", "root-user"],
    )

    install(todo_in_sandbox, Helm(binary=helm_bin, kubeconfig=str(sandbox.kubeconfig)))
    assert profile_preview(profile=todo_in_sandbox)["diff"] == {}

    before = fingerprint(todo_in_sandbox)
    config_set(profile=todo_in_sandbox, key="LOG_LEVEL", value="debug", actor=None)
    secret_set(profile=todo_in_sandbox, key="JWT_SECRET", value="jwt-two", actor=None)
    assert fingerprint(todo_in_sandbox) != before
    changed = profile_preview(profile=todo_in_sandbox)
    assert set(changed["diff"]) == {
        "ConfigMap/todo-app-config",
        "Deployment/todo-app-frontend",
        "Deployment/todo-app-backend",
    }
    assert "-  LOG_LEVEL: info\n+  LOG_LEVEL: debug" in changed["diff"]["ConfigMap/todo-app-config"]
    assert changed["secrets"] == {
        "DATABASE_URL": "unchanged",
        "JWT_SECRET": "changed",
        "OPENAI_API_KEY": "unchanged",
    }
    text = repr(changed)
    for value in ("jwt-one", "jwt-two", "sk-one", "postgresql://db/one"):
        assert value not in text


def test_it_reports_a_missing_secret_variable_as_a_problem(todo_in_sandbox, monkeypatch):
    monkeypatch.delenv("TODO_JWT_SECRET")
    report = profile_preview(profile=todo_in_sandbox)
    assert any("$TODO_JWT_SECRET" in p for p in report["problems"])
    assert report["secrets"] == {}


def test_a_preview_leaves_the_deploys_render_in_the_cache(todo_in_sandbox, redis_url, monkeypatch):
    """The user reads the preview, then clicks Confirm: the deploy's render step (placeholder
    secrets, rendering.spec_render_check) finds what the preview's worker already rendered."""
    spec, helm = parse_spec_of(todo_in_sandbox), helm_for(todo_in_sandbox.cluster)
    keys = list(spec["secrets"])
    key = f"helmdeck:render:{rendering.render_inputs_digest(spec, keys, helm)}"
    cache.delete(key)
    profile_preview(profile=todo_in_sandbox)
    kept = cache.get(key)
    assert kept is not None and kept["resources"] == 6
    assert not any(value in str(kept) for value in SECRET_ENV.values())

    rendered = []
    monkeypatch.setattr(rendering, "spec_render", lambda **kw: rendered.append(kw))
    assert rendering.spec_render_check(spec=spec, keys=keys, helm=helm).resources == 6
    assert rendered == []
