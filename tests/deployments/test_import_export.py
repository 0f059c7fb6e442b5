import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from deployments import crypto, profile_yaml
from deployments.models import AuditEvent, Component, ConfigEntry, Profile, SecretEntry
from deployments.services.profiles import profile_import
from deployments.spec import SpecError
from deployments.spec_rows import spec_from_profile

EXAMPLE = Path(__file__).parents[2] / "examples/profiles/todo-app.yaml"
pytestmark = pytest.mark.django_db


def run(*args, stdin=None):
    """Run a management command; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # CommandError carries its returncode
        code = getattr(exc, "returncode", 1)
        err.write(str(exc))
    return code, out.getvalue(), err.getvalue()


def counts():
    return [m.objects.count() for m in (Profile, Component, ConfigEntry, SecretEntry, AuditEvent)]


def test_it_imports_the_seed_profile_with_the_seed_numbers(todo_app):
    frontend, backend = todo_app.components.all()
    assert (frontend.name, frontend.port, frontend.service_type, frontend.node_port) == (
        "frontend",
        3000,
        "NodePort",
        30000,
    )
    assert (
        frontend.cpu_request,
        frontend.cpu_limit,
        frontend.memory_request,
        frontend.memory_limit,
    ) == ("500m", "500m", "512Mi", "512Mi")
    assert (backend.name, backend.port, backend.service_type, backend.node_port) == (
        "backend",
        8000,
        "ClusterIP",
        None,
    )
    assert (backend.cpu_limit, backend.memory_limit) == ("1000m", "1Gi")
    assert (
        backend.liveness_path,
        backend.liveness_initial_delay,
        backend.liveness_period,
        backend.liveness_timeout,
        backend.liveness_failure_threshold,
    ) == ("/health", 30, 10, 5, 3)
    assert (
        backend.readiness_path,
        backend.readiness_initial_delay,
        backend.readiness_period,
        backend.readiness_timeout,
        backend.readiness_failure_threshold,
    ) == ("/ready", 10, 5, 3, 2)
    assert dict(todo_app.config.values_list("key", "value")) == {
        "BACKEND_URL": "http://backend-service:8000",
        "LOG_LEVEL": "info",
        "ENVIRONMENT": "development",
    }
    assert set(todo_app.secrets.values_list("key", flat=True)) == {
        "JWT_SECRET",
        "OPENAI_API_KEY",
        "DATABASE_URL",
    }


def test_it_round_trips_export_then_import(todo_app):
    code, exported, _ = run("export_profile", "todo-app")
    assert code == 0
    before = spec_from_profile(todo_app)
    Profile.objects.all().delete()
    profile_import(data=profile_yaml.load(exported.replace("{stored: true}", "")), actor=None)
    assert spec_from_profile(Profile.objects.get(name="todo-app")) == before


def test_it_keeps_a_stored_secret_when_the_export_is_imported_again(todo_app):
    profile_import(
        data={
            **profile_yaml.load(EXAMPLE.read_bytes()),
            "secrets": {"JWT_SECRET": {"value": "jwt-very-secret"}},
        },
        actor=None,
    )
    exported = profile_yaml.dump(todo_app)
    assert "jwt-very-secret" not in exported
    assert yaml.safe_load(exported)["secrets"] == {"JWT_SECRET": {"stored": True}}
    profile_import(data=yaml.safe_load(exported), actor=None)
    entry = SecretEntry.objects.get(profile=todo_app, key="JWT_SECRET")
    assert crypto.decrypt(entry.ciphertext) == "jwt-very-secret"


def test_it_refuses_stored_true_for_a_secret_it_does_not_have(todo_app):
    doc = {**profile_yaml.load(EXAMPLE.read_bytes()), "secrets": {"NEW_KEY": {"stored": True}}}
    with pytest.raises(SpecError) as info:
        profile_import(data=doc, actor=None)
    assert [str(e) for e in info.value.errors] == [
        'secrets.NEW_KEY: has no stored value to keep; give {value: "..."} or {fromEnv: ENV_NAME}'
    ]


BAD_FILES = {
    "not yaml": ("name: [unclosed", ["file: is not valid YAML at line 1"]),
    "a list": ("- a\n- b\n", ["file: must be a mapping"]),
    "empty": ("", ["file: is empty"]),
    "no name": ("components: {web: {port: 80}}\n", ["name: is required"]),
    "unknown keys": (
        "name: app\nreplicas: 3\ncomponents: {web: {port: 80, colour: red}}\n",
        ["replicas: is not a known key", "components.web.colour: is not a known key"],
    ),
    "many bad fields": (
        "name: Bad_Name\nnamespace: ok\ncluster: nowhere\ncomponents:\n"
        "  web:\n    port: 70000\n    replicas: 99\n"
        "    service: {type: ClusterIP, nodePort: 30001}\n"
        "    resources: {requests: {cpu: 2, memory: 1Gi}, limits: {cpu: 1, memory: 512MB}}\n"
        "    probes: {readiness: {path: ready, periodSeconds: 0}}\n"
        "config: {log.level: x, GOOD: {nested: 1}}\n"
        "secrets: {TOKEN: hunter2-inline, OTHER: {value: ''}}\n",
        [
            "name: must be lowercase",
            "cluster: names no known cluster; known clusters: minikube",
            "components.web.port: must be between 1 and 65535 (got 70000)",
            "components.web.replicas: must be between 0 and 50 (got 99)",
            "components.web.service.nodePort: is only allowed with service type NodePort",
            "components.web.resources.limits.cpu: limit 1 is below the request 2",
            "components.web.resources.limits.memory: must be a memory quantity",
            "components.web.probes.readiness.path: must be an HTTP path",
            "components.web.probes.readiness.periodSeconds: must be a positive number",
            "config.log.level: is injected as an environment variable",
            "config.GOOD: must be text",
            "secrets.TOKEN: must be one of",
            "secrets.OTHER.value: must be a non-empty text value",
        ],
    ),
    "duplicate nodePorts": (
        "name: app\ncomponents:\n"
        "  a: {port: 80, service: {type: NodePort, nodePort: 30080}}\n"
        "  b: {port: 81, service: {type: NodePort, nodePort: 30080}}\n",
        ["components.b.service.nodePort: 30080 is already used by component a"],
    ),
    "huge number": (
        "name: x\ncomponents: {web: {port: " + "9" * 5000 + "}}\n",
        ["file: holds a value YAML cannot convert"],
    ),
    "impossible date": ("name: x\ndescription: 2023-02-30\n", ["file: holds a value YAML"]),
    "duplicate keys": (
        "name: x\ncomponents:\n  web: {port: 80}\n  web: {port: 81}\n",
        ["file: is not valid YAML at line 4, column 3: the key 'web' appears twice"],
    ),
    "no components": ("name: app\ncomponents: {}\n", ["components: needs at least one component"]),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_it_rejects_a_bad_file_with_exit_2_one_line_per_field_and_writes_nothing(
    name, tmp_path, todo_app
):
    text, expected = BAD_FILES[name]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = counts()
    code, out, err = run("import_profile", str(path))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert len(lines) >= len(expected)
    assert counts() == before
    assert "hunter2" not in err


def test_it_rejects_a_nodeport_another_profile_uses_on_the_cluster(todo_app, tmp_path):
    doc = profile_yaml.load(EXAMPLE.read_bytes())
    doc["name"] = doc["namespace"] = "other-app"
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(doc))
    before = counts()
    code, _, err = run("import_profile", str(path))
    assert code == 2
    assert (
        "components.frontend.service.nodePort: 30000 is already used on cluster minikube "
        "by todo-app/frontend" in err
    )
    assert counts() == before


def test_it_replaces_an_existing_profile_and_audits_config_changes(todo_app, tmp_path):
    doc = profile_yaml.load(EXAMPLE.read_bytes())
    doc["config"] = {"LOG_LEVEL": "debug", "NEW_FLAG": "on"}
    doc["components"].pop("frontend")
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert run("import_profile", str(path))[0] == 0
    assert list(todo_app.components.values_list("name", flat=True)) == ["backend"]
    events = {(e.action, e.target): (e.before, e.after) for e in AuditEvent.objects.all()}
    assert events[("config.changed", "LOG_LEVEL")] == (
        {"LOG_LEVEL": "info"},
        {"LOG_LEVEL": "debug"},
    )
    assert events[("config.created", "NEW_FLAG")] == (None, {"NEW_FLAG": "on"})
    assert events[("config.deleted", "BACKEND_URL")][0] == {
        "BACKEND_URL": "http://backend-service:8000"
    }
    assert ("profile.changed", "todo-app") in events


def test_it_reports_a_missing_file_with_exit_2(tmp_path):
    code, _, err = run("import_profile", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "cannot read" in err


def test_it_exits_2_exporting_an_unknown_profile():
    code, _, err = run("export_profile", "ghost")
    assert code == 2
    assert "no profile named 'ghost'" in err


def test_it_imports_from_the_real_cli_with_exit_codes(tmp_path):
    """The contract is about a process: run manage.py for real."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncomponents: {web: {port: 0}}\n")
    root = Path(__file__).parents[2]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "-v", "0").returncode == 0
    result = manage("import_profile", str(bad))
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("components.web.port: must be between 1 and 65535 (got 0), e.g. 8000")
    )
    assert manage("import_profile", str(EXAMPLE)).returncode == 0
    exported = manage("export_profile", "todo-app")
    assert exported.returncode == 0
    assert yaml.safe_load(exported.stdout)["components"]["backend"]["port"] == 8000


def _with_ingress(doc, name, **ingress):
    doc = {**doc, "name": name, "namespace": name}
    doc["components"] = {**doc["components"]}
    doc["components"]["frontend"] = {
        **doc["components"]["frontend"],
        "service": {"type": "ClusterIP"},
        "ingress": ingress,
    }
    return doc


def test_an_ingress_round_trips_and_a_host_another_profile_uses_is_refused(todo_app, tmp_path):
    base = profile_yaml.load(EXAMPLE.read_bytes())
    shop = profile_import(
        data=_with_ingress(base, "shop", host="shop.example.test", path="/", tlsSecret="shop-tls"),
        actor=None,
    )
    front = shop.components.get(name="frontend")
    assert (front.ingress_host, front.ingress_path, front.ingress_class) == (
        "shop.example.test",
        "/",
        "nginx",
    )
    exported = spec_from_profile(shop)
    assert exported["components"]["frontend"]["ingress"] == {
        "host": "shop.example.test",
        "path": "/",
        "className": "nginx",
        "tlsSecret": "shop-tls",
    }
    assert "ingress" not in exported["components"]["backend"]

    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(_with_ingress(base, "other", host="shop.example.test")))
    before = counts()
    code, _, err = run("import_profile", str(path))
    assert code == 2
    assert (
        "components.frontend.ingress.host: shop.example.test is already routed on cluster "
        "minikube to shop/frontend; pick another host" in err
    )
    assert counts() == before


@pytest.mark.parametrize(
    ("ingress", "path", "message"),
    [
        ({}, "components.frontend.ingress.host", "is required"),
        ({"host": "Shop.example.test"}, "components.frontend.ingress.host", "lowercase"),
        ({"host": "localhost"}, "components.frontend.ingress.host", "a full hostname"),
        ({"host": "a." * 130 + "test"}, "components.frontend.ingress.host", "at most 253"),
        ({"host": "s.example.test", "path": "api"}, "components.frontend.ingress.path", "'/'"),
        ({"host": "s.example.test", "path": "/a?b"}, "components.frontend.ingress.path", "'/'"),
        ({"host": "10.0.0.1"}, "components.frontend.ingress.host", "not an IP address"),
        ({"host": "s.example.test", "path": "/v1.0"}, "components.frontend.ingress.path", "'_'"),
        ({"host": "s.example.test", "path": "/a//b"}, "components.frontend.ingress.path", "'_'"),
        ({"host": ["a"]}, "components.frontend.ingress.host", "is required"),
        ({"host": {"a": 1}, "path": ["/"]}, "components.frontend.ingress.host", "is required"),
        (
            {"host": "s.example.test", "className": "Nginx"},
            "components.frontend.ingress.className",
            "e.g. nginx",
        ),
        (
            {"host": "s.example.test", "tlsSecret": "a b"},
            "components.frontend.ingress.tlsSecret",
            "e.g. todo-tls",
        ),
        (
            {"host": "s.example.test", "port": 80},
            "components.frontend.ingress.port",
            "not a known key",
        ),
    ],
)
def test_a_bad_ingress_is_one_line_with_its_field_path(todo_app, ingress, path, message):
    doc = _with_ingress(profile_yaml.load(EXAMPLE.read_bytes()), "shop", **ingress)
    with pytest.raises(SpecError) as info:
        profile_import(data=doc, actor=None)
    found = {e.path: e.message for e in info.value.errors}
    assert message in found.get(path, ""), found
    assert not Profile.objects.filter(name="shop").exists()


def test_two_components_cannot_route_the_same_host_and_path(todo_app):
    doc = _with_ingress(
        profile_yaml.load(EXAMPLE.read_bytes()), "shop", host="s.example.test", path="/"
    )
    doc["components"]["backend"] = {
        **doc["components"]["backend"],
        "ingress": {"host": "s.example.test"},
    }
    with pytest.raises(SpecError) as info:
        profile_import(data=doc, actor=None)
    assert [(e.path, e.message) for e in info.value.errors] == [
        (
            "components.backend.ingress.path",
            "s.example.test/ is already routed to component frontend",
        )
    ]
