"""charts/app against real helm (4 and 3) and strict Kubernetes schemas."""

import io

import pytest
import yaml
from django.core.management import call_command

from deployments import crypto
from deployments.integrations.helm import Helm
from deployments.models import SecretEntry
from deployments.services.profiles import config_set, parse_spec_of, profile_import
from deployments.services.rendering import REDACTED, profile_render, spec_render

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
BOTH_HELMS = pytest.mark.parametrize("helm_bin", ["v4", "v3"], indirect=True)


def by_id(rendered):
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in rendered.manifests}


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


@BOTH_HELMS
def test_it_renders_the_todo_app_with_the_seed_numbers(todo_app, helm_bin):
    rendered = profile_render(profile=todo_app, helm=Helm(binary=helm_bin))
    assert rendered.problems == []
    docs = by_id(rendered)
    assert set(docs) == {
        "Deployment/todo-app-frontend",
        "Deployment/todo-app-backend",
        "Service/frontend-service",
        "Service/backend-service",
        "ConfigMap/todo-app-config",
        "Secret/todo-app-secrets",
    }

    frontend = container(docs["Deployment/todo-app-frontend"])
    assert frontend["image"] == "todo-frontend:1.0.0"
    assert frontend["imagePullPolicy"] == "Never"  # values-dev.yaml: built into Minikube
    assert frontend["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert frontend["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]

    backend = container(docs["Deployment/todo-app-backend"])
    assert backend["resources"]["limits"] == {"cpu": "1000m", "memory": "1Gi"}
    assert backend["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": "http"},
        "initialDelaySeconds": 30,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    assert backend["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": "http"},
        "initialDelaySeconds": 10,
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 2,
    }
    env = {e["name"]: e["valueFrom"] for e in backend["env"]}
    assert env["LOG_LEVEL"] == {"configMapKeyRef": {"name": "todo-app-config", "key": "LOG_LEVEL"}}
    assert env["JWT_SECRET"] == {"secretKeyRef": {"name": "todo-app-secrets", "key": "JWT_SECRET"}}
    assert set(env) == {
        "BACKEND_URL",
        "LOG_LEVEL",
        "ENVIRONMENT",
        "JWT_SECRET",
        "OPENAI_API_KEY",
        "DATABASE_URL",
    }
    assert backend["securityContext"]["allowPrivilegeEscalation"] is False
    pod = docs["Deployment/todo-app-backend"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1001

    frontend_svc = docs["Service/frontend-service"]["spec"]
    assert frontend_svc["type"] == "NodePort"
    assert frontend_svc["ports"][0]["nodePort"] == 30000
    backend_svc = docs["Service/backend-service"]["spec"]
    assert backend_svc["type"] == "ClusterIP"
    assert backend_svc["ports"][0]["port"] == 8000
    assert "nodePort" not in backend_svc["ports"][0]
    assert backend_svc["selector"]["app.kubernetes.io/component"] == "backend"

    assert docs["ConfigMap/todo-app-config"]["data"] == {
        "BACKEND_URL": "http://backend-service:8000",
        "LOG_LEVEL": "info",
        "ENVIRONMENT": "development",
    }
    assert docs["Secret/todo-app-secrets"]["data"] == {
        "JWT_SECRET": REDACTED,
        "OPENAI_API_KEY": REDACTED,
        "DATABASE_URL": REDACTED,
    }
    labels = docs["Deployment/todo-app-backend"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "todo-app"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_it_rolls_pods_when_config_or_secrets_change(todo_app, helm_bin):
    helm = Helm(binary=helm_bin)

    def annotations():
        spec = parse_spec_of(todo_app)
        rendered = spec_render(
            spec=spec, keys=list(spec["secrets"]), helm=helm, secrets={"JWT_SECRET": "a"}
        )
        return by_id(rendered)["Deployment/todo-app-backend"]["spec"]["template"]["metadata"][
            "annotations"
        ]

    before = annotations()
    config_set(profile=todo_app, key="LOG_LEVEL", value="debug", actor=None)
    after = annotations()
    assert before["checksum/config"] != after["checksum/config"]
    assert after["checksum/secrets"] == REDACTED  # the hash of secret values is not shown


HOSTILE_BUT_VALID = [
    {"name": "a", "components": {"x": {"port": 1}}},
    {
        "name": "n" * 53,
        "namespace": "m" * 63,
        "components": {"c" * 40: {"port": 65535, "replicas": 0}},
    },
    {
        "name": "9-lives",
        "environment": "prod",
        "components": {
            f"svc-{n}": {"port": 8000 + n, "service": {"type": "NodePort"}} for n in range(20)
        },
        "config": {f"K_{n}": "x" * 100 for n in range(50)},
        "secrets": {"TOKEN": {"value": "'quoted' \"value\" {{ .Values }}"}},
    },
    {
        "name": "quotes",
        "components": {"web": {"port": 80, "tag": "v1.0_rc-1"}},
        "config": {
            "JSON": '{"a": [1, 2]}',
            "YAML_LIKE": "key: value\n- item",
            "EMPTY": "",
            "TEMPLATE": "{{ .Release.Name }}",
            "NUMBER": 12,
        },
    },
]


@BOTH_HELMS
@pytest.mark.parametrize("doc", HOSTILE_BUT_VALID, ids=lambda d: d["name"][:12])
def test_it_lints_and_strictly_validates_odd_but_valid_profiles(doc, helm_bin, db):
    from tests.factories import ClusterFactory

    ClusterFactory()
    profile = profile_import(data=doc, actor=None)
    rendered = profile_render(profile=profile, helm=Helm(binary=helm_bin))
    assert rendered.problems == []
    docs = by_id(rendered)
    assert sum(1 for rid in docs if rid.startswith("Deployment/")) == len(doc["components"])
    if "config" in doc:
        data = docs[f"ConfigMap/{doc['name']}-config"]["data"]
        assert data == {k: str(v) for k, v in doc["config"].items()}  # verbatim, not templated


def test_it_reports_schema_problems_per_resource_and_version():
    from deployments.services.rendering import validate_manifests

    wrong_type = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}},
    }
    unknown_field = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "y"},
        "data": {},
        "bogus": 1,
    }
    problems = validate_manifests([wrong_type, unknown_field], versions=["1.28.0", "1.34.0"])
    assert len(problems) == 4
    assert any(p.startswith("Deployment/x (Kubernetes 1.28.0): spec.replicas: ") for p in problems)
    assert any(p.startswith("ConfigMap/y (Kubernetes 1.34.0)") and "bogus" in p for p in problems)


def test_it_renders_from_the_cli_with_secret_values_redacted(todo_app, helm_bin, settings):
    settings.HELMDECK_HELM = str(helm_bin)
    SecretEntry.objects.filter(profile=todo_app, key="JWT_SECRET").update(
        from_env="", ciphertext=crypto.encrypt("cli-canary-secret")
    )
    out = io.StringIO()
    call_command("render", "todo-app", stdout=out)
    docs = {d["kind"] + "/" + d["metadata"]["name"]: d for d in yaml.safe_load_all(out.getvalue())}
    assert docs["Secret/todo-app-secrets"]["data"]["JWT_SECRET"] == REDACTED
    assert "cli-canary-secret" not in out.getvalue()
    assert "Y2xpLWNhbmFyeS1zZWNyZXQ" not in out.getvalue()  # nor its base64


@BOTH_HELMS
def test_it_renders_an_ingress_per_component_that_asks_for_one(helm_bin, db):
    from tests.factories import ClusterFactory

    ClusterFactory()
    profile = profile_import(
        data={
            "name": "shop",
            "components": {
                "web": {
                    "port": 3000,
                    "ingress": {"host": "shop.example.test", "tlsSecret": "shop-tls"},
                },
                "api": {"port": 8000, "ingress": {"host": "shop.example.test", "path": "/api"}},
                "worker": {"port": 9000},
            },
        },
        actor=None,
    )
    rendered = profile_render(profile=profile, helm=Helm(binary=helm_bin))
    assert rendered.problems == []  # lint and the strict schemas of every version we check
    docs = by_id(rendered)
    assert sorted(rid for rid in docs if rid.startswith("Ingress/")) == [
        "Ingress/shop-api",
        "Ingress/shop-web",
    ]
    web = docs["Ingress/shop-web"]
    assert web["metadata"]["labels"]["app.kubernetes.io/component"] == "web"
    assert web["spec"]["ingressClassName"] == "nginx"
    assert web["spec"]["tls"] == [{"hosts": ["shop.example.test"], "secretName": "shop-tls"}]
    (rule,) = docs["Ingress/shop-api"]["spec"]["rules"]
    assert rule["host"] == "shop.example.test"
    assert rule["http"]["paths"] == [
        {
            "path": "/api",
            "pathType": "Prefix",
            "backend": {"service": {"name": "api-service", "port": {"name": "http"}}},
        }
    ]
    assert "tls" not in docs["Ingress/shop-api"]["spec"]
