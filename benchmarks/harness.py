"""What every benchmark needs: Django on the benchmark database, child processes (uvicorn,
a Celery worker, the watcher) started here and stopped by PID, namespaces on the sandbox
cluster, a logged-in session cookie, and the machine's description.

Everything talks to loopback: the sandbox apiserver, PostgreSQL and Redis of the env file
(`. /work/wt/<name>.env` or scripts/ci/prepare's env.sh), and servers started here.
"""

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PREFIX = "bench-"
# Secrets the todo-app profile reads from the worker's environment (fake, loopback only).
TODO_SECRETS = {
    "TODO_JWT_SECRET": "bench-jwt",
    "OPENAI_API_KEY": "bench-openai",
    "TODO_DATABASE_URL": "postgresql://bench@127.0.0.1/bench",
}
LOG_DIR = Path(tempfile.gettempdir()) / f"helmdeck-bench-{os.getpid()}"


class BenchError(Exception):
    """A benchmark cannot run (a server did not start, the cluster does not answer)."""


def setup_django():
    """Configure Django in this process and migrate the benchmark database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    logging.getLogger("axes").setLevel(logging.WARNING)  # one line per force_login otherwise
    from django.conf import settings
    from django.core.management import call_command

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        raise BenchError(
            "DATABASE_URL is SQLite: child processes must share the database; source the "
            "env file that sets a PostgreSQL DATABASE_URL"
        )
    call_command("migrate", verbosity=0, interactive=False)


def raise_open_files(wanted=8192):
    """Lift this process's soft RLIMIT_NOFILE (children inherit it): 500 SSE clients and
    the server's 500 sockets and Redis connections need more than the usual 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def child_env(**extra):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
        "PYTHONUNBUFFERED": "1",
        **TODO_SECRETS,
    }
    env.setdefault("CELERY_BROKER_URL", env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Child:
    """A child process started by the harness; stop() signals its PID only."""

    def __init__(self, name, argv, env=None):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - our own argv
            argv, cwd=ROOT, env=env or child_env(), stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def tail(self, chars=1500):
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def fail(self, what):
        self.stop(timeout=5)
        raise BenchError(f"{self.name} {what}: {self.tail()}")

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def rss_kib(self, key="VmRSS"):
        """VmRSS (or VmHWM, the peak) of the process from /proc, in KiB."""
        text = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1))


def wait_for(predicate, *, timeout, what, interval=0.1, child=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if child is not None and not child.alive():
            child.fail(f"exited while waiting for {what}")
        if time.monotonic() > deadline:
            if child is not None:
                child.fail(f"timed out after {timeout}s waiting for {what}")
            raise BenchError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_ok(url):
    try:
        with urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def web_server(**env):
    """uvicorn (one process, ASGI) serving benchmarks.asgi on a free loopback port.
    Yields (base url, Child). HELMDECK_SSE_HEARTBEAT in `env` shortens heartbeats."""
    port = free_port()
    argv = [PY, "-m", "uvicorn", "benchmarks.asgi:application", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    child = Child("uvicorn", argv, child_env(HELMDECK_SERVE_STATIC="true", **env))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{url}/health"), timeout=30, what="/health", child=child)
        yield url, child
    finally:
        child.stop(timeout=15)


@contextlib.contextmanager
def celery_worker(interval=0.1):
    """One Celery worker (solo pool: one task at a time, as `make run` starts it), once
    its heartbeat is seen (looked for every `interval` seconds)."""
    from deployments import heartbeat
    from deployments.integrations.redis import app_client

    name = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    argv = [PY, "-m", "celery", "-A", "controlpanel", "worker", "--pool", "solo"]
    argv += ["--hostname", f"{name}@%h", "--loglevel", "WARNING"]
    argv += ["--without-mingle", "--without-gossip"]
    child = Child("celery", argv)
    conn = app_client()
    try:
        wait_for(
            lambda: any(w.startswith(name) for w in heartbeat.live_workers(conn)),
            timeout=60,
            what="the worker's heartbeat",
            child=child,
            interval=interval,
        )
        yield child
    finally:
        child.stop(timeout=30)


@contextlib.contextmanager
def watcher(refresh=0.5):
    """`manage.py watch_cluster`, re-reading profiles every `refresh` seconds."""
    beat = LOG_DIR / f"watcher-{time.monotonic_ns()}.beat"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    argv = [PY, "manage.py", "watch_cluster", "--refresh", str(refresh)]
    child = Child("watcher", argv, child_env(HELMDECK_WATCHER_HEARTBEAT_FILE=beat))
    try:
        wait_for(beat.exists, timeout=30, what="the watcher's heartbeat file", child=child)
        yield child
    finally:
        child.stop(timeout=15)


# ---- Django rows and sessions --------------------------------------------------------------


def bench_user():
    """A superuser for the benchmarks' requests (created once)."""
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    return user


def session_cookie():
    """{"sessionid": ...} of a logged-in session, for clients of the web server."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(bench_user())
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def api_token():
    """A fresh API token of the benchmarks' user (the remote CLI's and the API's clients)."""
    from deployments.services.api_tokens import api_token_create

    _, raw = api_token_create(user=bench_user(), name=f"bench {time.monotonic_ns()}")
    return raw


def todo_spec(*, name, namespace, node_port=None):
    """The todo-app profile document (examples/profiles/todo-app.yaml), renamed, in
    `namespace`, with another nodePort (30000 may be held by a test beside us)."""
    from deployments import profile_yaml

    data = profile_yaml.load((ROOT / "examples/profiles/todo-app.yaml").read_bytes())
    data.update(name=name, namespace=namespace)
    if node_port:
        data["components"]["frontend"]["service"]["nodePort"] = node_port
    return data


def import_profile(data):
    from deployments.services.profiles import profile_import

    return profile_import(data=data, actor=None)


def delete_profiles(**filters):
    from deployments.models import Profile

    Profile.objects.filter(**filters).delete()


# ---- the machine ---------------------------------------------------------------------------
