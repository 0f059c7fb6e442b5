import os
from pathlib import Path

import pytest

from deployments import crypto
from deployments.models import SecretEntry
from deployments.services.profiles import parse_spec_of
from deployments.services.values import MissingSecret, secret_values, secrets_file, values_for

pytestmark = pytest.mark.django_db

LIVENESS = {
    "initialDelaySeconds": 30,
    "periodSeconds": 10,
    "timeoutSeconds": 5,
    "failureThreshold": 3,
}
READINESS = {
    "initialDelaySeconds": 10,
    "periodSeconds": 5,
    "timeoutSeconds": 3,
    "failureThreshold": 2,
}


def test_it_turns_the_todo_app_profile_into_exactly_the_seed_values(todo_app):
    assert values_for(parse_spec_of(todo_app)) == {
        "config": {
            "BACKEND_URL": "http://backend-service:8000",
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "info",
        },
        "components": {
            "frontend": {
                "image": {"repository": "todo-frontend", "tag": "1.0.0"},
                "port": 3000,
                "replicas": 1,
                "service": {"type": "NodePort", "nodePort": 30000},
                "resources": {
                    "requests": {"cpu": "500m", "memory": "512Mi"},
                    "limits": {"cpu": "500m", "memory": "512Mi"},
                },
                "probes": {
                    "liveness": {"path": "/", **LIVENESS},
                    "readiness": {"path": "/", **READINESS},
                },
            },
            "backend": {
                "image": {"repository": "todo-backend", "tag": "1.0.0"},
                "port": 8000,
                "replicas": 1,
                "service": {"type": "ClusterIP"},
                "resources": {
                    "requests": {"cpu": "1000m", "memory": "1Gi"},
                    "limits": {"cpu": "1000m", "memory": "1Gi"},
                },
                "probes": {
                    "liveness": {"path": "/health", **LIVENESS},
                    "readiness": {"path": "/ready", **READINESS},
                },
            },
        },
    }


def test_it_keeps_secret_values_out_of_the_values(todo_app):
    SecretEntry.objects.filter(profile=todo_app, key="JWT_SECRET").update(
        from_env="", ciphertext=crypto.encrypt("jwt-canary-77")
    )
    assert "jwt-canary-77" not in repr(values_for(parse_spec_of(todo_app)))


def test_it_resolves_stored_and_environment_secrets(todo_app):
    SecretEntry.objects.filter(profile=todo_app, key="JWT_SECRET").update(
        from_env="", ciphertext=crypto.encrypt("stored-jwt")
    )
    environ = {"OPENAI_API_KEY": "sk-test", "TODO_DATABASE_URL": "postgresql://db/todo"}
    assert secret_values(todo_app, environ=environ) == {
        "JWT_SECRET": "stored-jwt",
        "OPENAI_API_KEY": "sk-test",
        "DATABASE_URL": "postgresql://db/todo",
    }


def test_it_names_the_missing_variable_but_no_value(todo_app):
    try:
        secret_values(todo_app, environ={"OPENAI_API_KEY": "sk-leak"})
    except MissingSecret as exc:
        assert "$TODO_JWT_SECRET" in str(exc) or "$TODO_DATABASE_URL" in str(exc)
        assert "sk-leak" not in str(exc)
    else:
        raise AssertionError("a missing environment variable must fail")


def test_it_hands_secrets_to_helm_in_memory_never_on_disk():
    with secrets_file({"JWT_SECRET": "x"}) as path:
        assert path.startswith("/dev/fd/")
        assert os.readlink(path).startswith("/memfd:helmdeck-secrets")  # no file on disk
        assert "JWT_SECRET: x" in Path(path).read_text()
        fd = int(path.removeprefix("/dev/fd/"))
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: gone with the block


def test_it_closes_the_secrets_file_even_when_the_run_fails():
    with pytest.raises(RuntimeError), secrets_file({"K": "v"}) as path:
        raise RuntimeError("helm failed")
    with pytest.raises(OSError):
        os.fstat(int(path.removeprefix("/dev/fd/")))


def test_helm_sees_only_what_it_needs_of_the_environment(monkeypatch):
    from deployments.integrations.helm import helm_env, passed_fds

    monkeypatch.setenv("TODO_JWT_SECRET", "from-env-secret")
    monkeypatch.setenv("HELMDECK_SECRET_KEYS", "key")
    monkeypatch.setenv("KUBECONFIG", "/k/config")
    monkeypatch.setenv("HELM_CACHE_HOME", "/h")
    env = helm_env()
    assert env["KUBECONFIG"] == "/k/config" and env["HELM_CACHE_HOME"] == "/h"
    assert env["HELM_NO_PLUGINS"] == "1" and "PATH" in env
    assert "TODO_JWT_SECRET" not in env and "HELMDECK_SECRET_KEYS" not in env
    assert "DATABASE_URL" not in env
    assert passed_fds(["helm", "-f", "/dev/fd/7", "-f", "/tmp/x.yaml", "/dev/fd/x"]) == (7,)
