"""The panel's own image and compose file, built and checked with the real tools."""

import contextlib
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import time
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, ProxyHandler, build_opener

import pytest

from tests.fixtures.infra import DOCKER_SOCK, missing

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
            "&& python manage.py check --deploy --fail-level ERROR >/dev/null && echo checked "
            f"&& python -c {COMPILED!r}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    uid, version, checked, compiled = run.stdout.split()
    assert uid == "1001"
    assert version.startswith("6.")
    assert checked == "checked"
    assert compiled == "compiled", "the image's packages or the panel's modules lack .pyc files"


# Run inside the image: Django's, the kubernetes client's and the panel's modules have their
# .pyc beside them (the process can write none: a root-owned venv, PYTHONDONTWRITEBYTECODE).
COMPILED = (
    "import importlib.util as u, os, django.db.models.base as a, kubernetes.client as b;"
    "files = [a.__file__, b.__file__, os.path.abspath('deployments/models/__init__.py')];"
    "missing = [f for f in files if not os.path.exists(u.cache_from_source(f))];"
    "print('missing:' + ','.join(missing) if missing else 'compiled')"
)


# ---- docker-compose up, for real ----------------------------------------------------
# The compose file's own images, on the test dockerd: helmdeck:local built from the
# Dockerfile on the local Python base, redis:7-alpine and postgres:16-alpine the local
# stand-ins (scripts/docker/compose-images). The stack gets a network of its own in
# 198.19.64.0/18 (no real network uses 198.18.0.0/15; 198.18.0.0/16 is the sandbox's node),
# and the test itself talks only to 127.0.0.1.

STACK_SUBNETS = ipaddress.ip_network("198.19.64.0/18")
STACK = {"web", "worker", "watcher", "redis", "postgres"}
ADMIN_LOGIN = re.compile(r"admin login: admin / (\S+)  \(shown once")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stack_network(client, name):
    """A bridge network on a free /24 of STACK_SUBNETS (docker refuses overlapping pools,
    so a subnet another run takes meanwhile is refused and the next one tried)."""
    import docker

    used = [
        ipaddress.ip_network(config["Subnet"], strict=False)
        for network in client.networks.list()
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []
        if config.get("Subnet")
    ]
    candidates = [
        subnet
        for subnet in STACK_SUBNETS.subnets(new_prefix=24)
        if not any(subnet.overlaps(u) for u in used)
    ]
    random.shuffle(candidates)
    for subnet in candidates[:10]:
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=str(subnet[1]))]
        )
        try:
            return client.networks.create(name, driver="bridge", ipam=ipam), subnet
        except docker.errors.APIError as exc:
            if "overlap" not in str(exc):
                raise
    raise AssertionError(f"no free /24 in {STACK_SUBNETS} (in use: {used})")


class ComposeStack:
    """`docker-compose -p PROJECT -f docker-compose.yml -f OVERRIDE`, in a throwaway HOME."""

    def __init__(self, tmp_path, dockerd):
        binary = shutil.which("docker-compose")
        if binary is None:
            missing("docker-compose (scripts/ci/prepare installs Debian's)")
        self.project = f"hdkcompose{secrets.token_hex(4)}"
        self.client = dockerd.client
        self.port = _free_port()
        home = tmp_path / "home"
        (home / ".kube").mkdir(parents=True)  # empty: no cluster to watch
        (home / ".minikube").mkdir()
        # compose builds through the docker CLI (BuildKit, sharing the panel image test's
        # cache); Debian's CLI has BuildKit built in, the bare one in /usr/local/bin not
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "docker").symlink_to(dockerd.docker)
        empty = tmp_path / "empty.env"  # a developer's .env must not fill anything in
        empty.touch()
        override = tmp_path / "network.yml"  # YAML is a superset of JSON
        override.write_text(
            json.dumps({"networks": {"default": {"external": True, "name": self.project}}})
        )
        self.command = [
            binary, "--env-file", str(empty), "-p", self.project,
            "-f", str(ROOT / "docker-compose.yml"), "-f", str(override),
        ]  # fmt: skip
        from cryptography.fernet import Fernet

        self.env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HOME": str(home),
            "DOCKER_HOST": f"unix://{DOCKER_SOCK}",
            "DOCKER_BUILDKIT": "1",
            "COMPOSE_DOCKER_CLI_BUILD": "1",
            "HELMDECK_BASE_IMAGE": PYTHON_BASE,
            "HELMDECK_PORT": str(self.port),
            "DOCKER_SOCKET": DOCKER_SOCK,
            "DOCKER_GID": str(os.stat(DOCKER_SOCK).st_gid),
            # as `make run` writes them (scripts/dev/run.py)
            "SECRET_KEY": secrets.token_urlsafe(50),
            "HELMDECK_SECRET_KEYS": Fernet.generate_key().decode(),
            "REDIS_PASSWORD": secrets.token_urlsafe(32),
        }
        self.base = f"http://127.0.0.1:{self.port}"

    def run(self, *args, timeout=120):
        return subprocess.run(  # noqa: S603
            [*self.command, *args],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=self.env,
        )  # fmt: skip

    def exec(self, service, *command, timeout=60):
        return self.run("exec", "-T", service, *command, timeout=timeout)

    def logs(self, *services):
        return self.run("logs", "--no-color", *services).stdout

    def containers(self):
        found = self.client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={self.project}"}
        )
        return {c.labels["com.docker.compose.service"]: c for c in found}

    def report(self):
        """What a failure message needs: every container's state and its last log lines."""
        states = {
            name: (c.attrs["State"]["Status"], (c.attrs["State"].get("Health") or {}).get("Status"))
            for name, c in self.containers().items()
        }
        return f"containers: {states}\n{self.run('logs', '--no-color', '--tail', '40').stdout}"

    def wait_healthy(self, services, timeout):
        deadline = time.monotonic() + timeout
        while True:
            containers = self.containers()
            stopped = [
                name
                for name, c in containers.items()
                if c.attrs["State"]["Status"] in {"exited", "dead"}
            ]
            assert not stopped, f"{stopped} stopped\n{self.report()}"
            health = {
                name: (containers[name].attrs["State"].get("Health") or {}).get("Status")
                if name in containers
                else None
                for name in services
            }
            if all(status == "healthy" for status in health.values()):
                return
            assert time.monotonic() < deadline, (
                f"not healthy after {timeout}s: {health}\n{self.report()}"
            )
            time.sleep(1)


def _open(opener, url, data=None):
    with opener.open(url, data=urlencode(data).encode() if data else None, timeout=15) as response:
        return response.status, response.geturl(), response.read().decode()


def test_compose_up_runs_the_whole_stack_for_real(tmp_path, dockerd, compose_images):
    """`docker-compose up -d --build` of docker-compose.yml: every service healthy, the panel
    ready on the published port, the bootstrapped profile there, Redis and PostgreSQL
    requiring their passwords, the worker answering and reaching Docker, the watcher alive.
    Afterwards `down --volumes` leaves no container or volume (the images stay cached)."""
    import docker
    import yaml

    stack = ComposeStack(tmp_path, dockerd)
    network, subnet = _stack_network(dockerd.client, stack.project)
    volumes = set()  # every volume the stack's containers mount (named and anonymous)
    started = time.monotonic()
    try:
        up = stack.run("up", "-d", "--build", timeout=900)
        assert up.returncode == 0, f"{up.stderr[-3000:]}\n{stack.report()}"
        up_seconds = time.monotonic() - started
        containers = stack.containers()
        volumes = {
            mount["Name"]
            for container in containers.values()
            for mount in container.attrs["Mounts"]
            if mount["Type"] == "volume"
        }
        assert set(containers) == STACK
        assert f"{stack.project}_postgres-data" in volumes
        stack.wait_healthy(["postgres", "redis", "web"], timeout=240)
        containers = stack.containers()
        # on the stack's own network only, and the panel published on 127.0.0.1 alone
        for name, container in containers.items():
            addresses = container.attrs["NetworkSettings"]["Networks"]
            assert list(addresses) == [network.name], (name, list(addresses))
            assert ipaddress.ip_address(addresses[network.name]["IPAddress"]) in subnet
        assert containers["web"].attrs["NetworkSettings"]["Ports"]["8000/tcp"] == [
            {"HostIp": "127.0.0.1", "HostPort": str(stack.port)}
        ]

        http = build_opener(ProxyHandler({}), HTTPCookieProcessor(CookieJar()))
        status, _, body = _open(http, f"{stack.base}/ready")
        assert status == 200
        assert json.loads(body) == {
            "status": "ready",
            "checks": {"database": "ok", "redis": "ok", "worker": "ok"},
        }

        # the login page, and the admin `manage.py bootstrap` created (its password is
        # printed once, in the web service's log) sees the todo-app profile it imported
        status, _, login_page = _open(http, f"{stack.base}/accounts/login/")
        assert status == 200
        assert 'name="username"' in login_page and 'name="password"' in login_page
        web_log = stack.logs("web")
        assert "imported profile todo-app from examples/profiles/todo-app.yaml" in web_log
        password = ADMIN_LOGIN.search(web_log)
        assert password, web_log[-2000:]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
        status, landed, status_page = _open(
            http,
            f"{stack.base}/accounts/login/",
            {"csrfmiddlewaretoken": token, "username": "admin", "password": password.group(1)},
        )
        assert (status, landed) == (200, f"{stack.base}/")
        assert "todo-app" in status_page
        status, _, exported = _open(http, f"{stack.base}/profiles/todo-app/export.yaml")
        assert status == 200
        profile = yaml.safe_load(exported)
        seed = yaml.safe_load((ROOT / "examples/profiles/todo-app.yaml").read_text())
        assert (profile["name"], profile["namespace"]) == ("todo-app", "todo-app")
        assert profile["config"] == seed["config"]
        assert set(profile["components"]) == set(seed["components"]) == {"frontend", "backend"}
        for name, component in seed["components"].items():
            assert {key: profile["components"][name][key] for key in component} == component

        # Redis and PostgreSQL over the stack's network, from the panel's container: no
        # password is refused, the right one is accepted (the panel's own URLs carry it)
        probe = stack.exec("web", "python", "-c", NETWORK_PROBE)
        assert probe.returncode == 0, probe.stderr[-2000:]
        assert json.loads(probe.stdout) == {
            "redis without a password": "AuthenticationError",
            "redis with REDIS_PASSWORD": "PONG",
            "postgres with a wrong password": "password authentication failed",
            "postgres with POSTGRES_PASSWORD": "helmdeck@helmdeck",
        }
        # inside the stand-ins: redis-cli without REDISCLI_AUTH is refused too, and both
        # servers dropped root (upstream's uid 999)
        redis_side = stack.exec("redis", "sh", "-c", REDIS_PROBE)
        assert redis_side.returncode == 0, redis_side.stderr
        assert [line for line in redis_side.stdout.splitlines() if line] == [
            "PONG",
            "NOAUTH Authentication required.",
            "redis-server uid 999",
        ]
        postgres_uid = stack.exec("postgres", "sh", "-c", "grep ^Uid: /proc/1/status")
        assert postgres_uid.stdout.split()[1:3] == ["999", "999"], postgres_uid

        # the worker: answers Celery's ping, and reaches this Docker daemon through the
        # mounted socket as uid 1001 with the socket's group (DOCKER_GID)
        ping = stack.exec(
            "worker", "celery", "-A", "controlpanel", "inspect", "ping", "--timeout", "10"
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "pong" in ping.stdout and "1 node online" in ping.stdout, ping.stdout
        docker_side = stack.exec("worker", "python", "-c", DOCKER_PROBE)
        assert docker_side.returncode == 0, docker_side.stderr[-2000:]
        assert docker_side.stdout.split() == ["1001", dockerd.client.version()["ApiVersion"]]

        # the watcher: alive (its heartbeat is fresh) although the empty ~/.kube gives it no
        # cluster: it watches the default cluster `minikube` for todo-app and says in its
        # log that the kubeconfig cannot be loaded, retrying
        check = stack.exec("watcher", "python", "manage.py", "watch_cluster", "--check")
        assert check.returncode == 0, check.stderr
        assert re.fullmatch(r"watcher alive \(heartbeat \d+s ago\)\n", check.stdout), check.stdout
        watcher_log = stack.logs("watcher")
        assert "cluster minikube: watching pods of 1 profile(s)" in watcher_log, watcher_log
        assert re.search(
            r"pods watch on cluster minikube: cannot load kubeconfig /kube/config: .*"
            r"reconnecting in [\d.]+s \(attempt 1\)",
            watcher_log,
        ), watcher_log

        # and Docker's own healthchecks agree for the worker and the watcher (first run 30s
        # after they start)
        stack.wait_healthy(["worker", "watcher"], timeout=120)

        # every service stops on docker's SIGTERM; none waits out the 10 s for a SIGKILL
        stopping = time.monotonic()
        stop = stack.run("stop", "--timeout", "10")
        assert stop.returncode == 0, stop.stderr
        exit_codes = {
            name: container.attrs["State"]["ExitCode"]
            for name, container in stack.containers().items()
        }
        stop_seconds = time.monotonic() - stopping
        assert exit_codes == dict.fromkeys(STACK, 0), f"{exit_codes} (137: SIGKILLed)"
        print(
            f"compose stack: up -d --build {up_seconds:.0f}s, healthy and checked "
            f"{stopping - started:.0f}s after starting, stopped in {stop_seconds:.1f}s"
        )
    finally:
        down = stack.run("down", "--volumes", "--remove-orphans", "--timeout", "10")
        left = {"containers": sorted(stack.containers()), "volumes": []}
        for container in stack.containers().values():  # what `down` left, removed anyway
            container.remove(force=True, v=True)
        for name in volumes:
            with contextlib.suppress(docker.errors.NotFound):
                dockerd.client.volumes.get(name).remove(force=True)
                left["volumes"].append(name)
        network.remove()
    assert down.returncode == 0, down.stderr
    assert left == {"containers": [], "volumes": []}, "left after docker-compose down -v"


NETWORK_PROBE = """
import json, os, psycopg, redis
from urllib.parse import urlsplit
out = {}
url = urlsplit(os.environ["REDIS_URL"])
try:
    redis.Redis(host=url.hostname, port=url.port, socket_timeout=5).ping()
    out["redis without a password"] = "accepted"
except redis.AuthenticationError as exc:
    out["redis without a password"] = type(exc).__name__
pong = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5).ping()
out["redis with REDIS_PASSWORD"] = "PONG" if pong is True else repr(pong)
db = urlsplit(os.environ["DATABASE_URL"])
try:
    psycopg.connect(host=db.hostname, user=db.username, password="wrong", dbname="helmdeck",
                    connect_timeout=5)
    out["postgres with a wrong password"] = "accepted"
except psycopg.OperationalError as exc:
    out["postgres with a wrong password"] = (
        "password authentication failed" if "password authentication failed" in str(exc)
        else str(exc))
with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as c:
    out["postgres with POSTGRES_PASSWORD"] = "@".join(
        c.execute("SELECT current_user, current_database()").fetchone())
print(json.dumps(out))
"""

REDIS_PROBE = """
redis-cli --no-auth-warning ping
env -u REDISCLI_AUTH redis-cli ping
for d in /proc/[0-9]*; do
  case "$(tr '\\0' ' ' < "$d/cmdline" 2>/dev/null)" in
    redis-server*) echo "redis-server uid $(awk '/^Uid:/{print $2}' "$d/status")";;
  esac
done
"""

DOCKER_PROBE = """
import os, docker
print(os.getuid(), docker.from_env().version()["ApiVersion"])
"""
