"""Fixtures for tests that deploy the seed's todo-app into the sandbox."""

import pytest

from deployments.integrations.helm import Helm
from deployments.models import Cluster, Component, Profile

SECRETS = {
    "TODO_JWT_SECRET": "jwt-canary-4d1",
    "OPENAI_API_KEY": "sk-canary-4d1",
    "TODO_DATABASE_URL": "postgresql://canary:pw-4d1@db/todo",
}


@pytest.fixture
def deployable(todo_app, sandbox, dockerd, monkeypatch, helm_bin, settings):
    """todo-app aimed at the sandbox: local bases, a short readiness delay, secrets in env."""
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    settings.HELMDECK_HELM = str(helm_bin)
    settings.HELMDECK_HELM_TIMEOUT = 60
    # the same for worker processes a test starts
    monkeypatch.setenv("HELMDECK_HELM", str(helm_bin))
    monkeypatch.setenv("HELMDECK_HELM_TIMEOUT", "60")
    Cluster.objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(sandbox.kubeconfig), minikube_profile="", docker_host=dockerd.base_url
    )
    Profile.objects.filter(pk=todo_app.pk).update(namespace=sandbox.namespace)
    Component.objects.filter(profile=todo_app, name="backend").update(
        readiness_initial_delay=2, build_args={"BASE_IMAGE": dockerd.python_base}
    )
    Component.objects.filter(profile=todo_app, name="frontend").update(
        readiness_initial_delay=2, build_args={"BASE_IMAGE": dockerd.node_base}
    )
    todo_app.refresh_from_db()
    yield todo_app
    Helm(binary=helm_bin, kubeconfig=str(sandbox.kubeconfig)).uninstall(
        "todo-app", sandbox.namespace
    )
