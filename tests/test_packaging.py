"""The panel's own image and compose file, built and checked with the real tools."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PYTHON_BASE = os.environ.get("HELMDECK_BASE_PANEL_PYTHON", "helmdeck/python:3.13")

pytestmark = pytest.mark.integration


def compose(tmp_path, *args, env=None):
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is not installed (scripts/ci/prepare installs it)")
        pytest.skip("docker-compose is not installed")
    # An empty env file: a developer's .env must not fill in what the test leaves out.
    empty = tmp_path / "empty.env"
    empty.touch()
    return subprocess.run(
        [binary, "--env-file", str(empty), "-f", str(ROOT / "docker-compose.yml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": "/home/someone", **(env or {})},
    )


def test_it_has_a_valid_compose_file_with_healthchecks_and_mounts(tmp_path):
    import yaml

    keys = {"SECRET_KEY": "k", "HELMDECK_SECRET_KEYS": "f", "REDIS_PASSWORD": "r-pw"}
    result = compose(tmp_path, "config", env=keys)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"web", "worker", "watcher", "redis", "postgres"}
    assert all("healthcheck" in service for service in services.values())
    worker_mounts = {
        v if isinstance(v, str) else f"{v['source']}:{v['target']}"
        for v in services["worker"]["volumes"]
    }
    assert any(m.startswith("/var/run/docker.sock:/var/run/docker.sock") for m in worker_mounts)
    assert any(m.startswith("/home/someone/.kube:/kube") for m in worker_mounts)
    assert any(
        m.startswith("/home/someone/.minikube:/home/someone/.minikube") for m in worker_mounts
    )
    assert services["worker"]["environment"]["KUBECONFIG"] == "/kube/config"
    watcher = services["watcher"]
    assert watcher["command"] == "python manage.py watch_cluster"
    assert watcher["environment"]["KUBECONFIG"] == "/kube/config"
    assert {
        v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in watcher["volumes"]
    } == {
        "/home/someone/.kube:/kube:ro",
        "/home/someone/.minikube:/home/someone/.minikube:ro",
    }
    assert services["web"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_it_takes_the_published_port_and_the_docker_socket_from_the_environment(tmp_path):
    import yaml

    keys = {"SECRET_KEY": "k", "HELMDECK_SECRET_KEYS": "f", "REDIS_PASSWORD": "r-pw"}
    default = compose(tmp_path, "config", env=keys)
    chosen = compose(
        tmp_path,
        "config",
        env={**keys, "HELMDECK_PORT": "18123", "DOCKER_SOCKET": "/run/other/docker.sock"},
    )
    assert default.returncode == chosen.returncode == 0, default.stderr + chosen.stderr
    default, chosen = (yaml.safe_load(r.stdout)["services"] for r in (default, chosen))
    assert default["web"]["ports"] == ["127.0.0.1:8000:8000/tcp"]
    assert chosen["web"]["ports"] == ["127.0.0.1:18123:8000/tcp"]
    assert "/var/run/docker.sock:/var/run/docker.sock:rw" in default["worker"]["volumes"]
    assert "/run/other/docker.sock:/var/run/docker.sock:rw" in chosen["worker"]["volumes"]


def test_it_refuses_to_start_without_the_keys(tmp_path):
    result = compose(tmp_path, "config")
    assert result.returncode != 0
    assert "set SECRET_KEY in .env" in result.stderr
    without_redis_password = compose(
        tmp_path, "config", env={"SECRET_KEY": "k", "HELMDECK_SECRET_KEYS": "f"}
    )
    assert without_redis_password.returncode != 0
    assert "REDIS_PASSWORD" in without_redis_password.stderr


def test_it_builds_the_panel_image_from_a_local_base_and_runs_it_as_1001(dockerd):
    image = "helmdeck-panel:test"
    build = subprocess.run(
        [dockerd.docker, "build", "--build-arg", f"BASE_IMAGE={PYTHON_BASE}", "-t", image, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run(
        [
            dockerd.docker,
            "run",
            "--rm",
            image,
            "sh",
            "-c",
            "id -u && python -c 'import django, celery; print(django.get_version())' "
            "&& python manage.py check --deploy --fail-level ERROR >/dev/null && echo checked",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    uid, version, checked = run.stdout.split()
    assert uid == "1001"
    assert version.startswith("6.")
    assert checked == "checked"
