import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

from tests.factories import PASSWORD, UserFactory

pytest_plugins = [
    "tests.fixtures.parallel",
    "tests.fixtures.infra",
    "tests.fixtures.faults",
    "tests.fixtures.profiles",
    "tests.fixtures.receivers",
]

ROLES = ("viewer", "deployer", "admin")


@pytest.fixture(autouse=True)
def _login_rate_limit_off(settings):
    """django-axes needs the request to authenticate; the test client's login() has none.
    Tests of the limit itself turn it back on (tests/test_security.py)."""
    settings.AXES_ENABLED = False


@pytest.fixture(autouse=True)
def _migration_rows(request):
    """Rows the migrations make (permissions, roles, the default cluster) are gone after a
    transactional test flushed the database: put them back for every test that uses it."""
    if "django_db_setup" not in request.fixturenames:
        return
    from django.apps import apps

    from deployments.roles import ensure_default_cluster, sync_roles

    request.getfixturevalue("_django_db_helper")
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.management import create_contenttypes
    from django.contrib.contenttypes.models import ContentType

    if not Permission.objects.filter(codename="deploy_profile").exists():
        # a serialized_rollback test flushes without post_migrate: no content types and
        # no permissions are left for the tests after it
        ContentType.objects.clear_cache()
        for app_config in apps.get_app_configs():
            create_contenttypes(app_config, verbosity=0)
            create_permissions(app_config, verbosity=0)
    sync_roles(apps)
    ensure_default_cluster(apps)


@pytest.fixture
def todo_app(db):
    """The seed's profile, imported from examples/profiles/todo-app.yaml."""
    from deployments import profile_yaml
    from deployments.services.profiles import profile_import

    text = (Path(__file__).parent.parent / "examples/profiles/todo-app.yaml").read_bytes()
    return profile_import(data=profile_yaml.load(text), actor=None)


@pytest.fixture
def login(client):
    """login(role) -> a Django test client logged in as a fresh user of that role."""

    def _login(role):
        user = UserFactory(role=role)
        assert client.login(username=user.username, password=PASSWORD)
        client.user = user
        return client

    return _login


def pytest_sessionfinish(session, exitstatus):
    """In CI a skipped test is a failure: the harness must have started what it needs."""
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"CI=true: {len(skipped)} test(s) skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def child_env(redis_url, settings, transactional_db):
    """Environment for a child process (worker, web server, watcher) that shares this
    test's database and Redis. Needs a database another process can open (PostgreSQL,
    as in CI); an in-memory SQLite test database cannot be shared."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("a child process cannot share an in-memory SQLite test database")
    settings.REDIS_URL = redis_url
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}"
        f"/{db['NAME']}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
    }


def stop_process(proc, timeout=30):
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def celery_worker(child_env):
    """A real Celery worker process on the test database and Redis; stopped afterwards."""
    import subprocess
    import sys
    import time

    from deployments import heartbeat
    from deployments.integrations.redis import app_client

    name = f"test-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "controlpanel",
            "worker",
            "--pool",
            "solo",
            "--hostname",
            f"{name}@%h",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=Path(__file__).parent.parent,
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    conn = app_client()
    deadline = time.monotonic() + 120
    while not any(w.startswith(name) for w in heartbeat.live_workers(conn)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the Celery worker did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield proc
    stop_process(proc)


@pytest.fixture
def unreachable_kubeconfig(tmp_path):
    """A kubeconfig whose API server address answers nothing (port 9, discard)."""
    path = tmp_path / "unreachable-kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: u}}]\n"
        "users: [{name: u, user: {}}]\n"
    )
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def asgi_server(child_env):
    """uvicorn serving controlpanel.asgi:application on the test database and Redis (this
    process publishes; the server's stream relays)."""
    port = free_port()
    env = {**child_env, "HELMDECK_SERVE_STATIC": "true"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "controlpanel.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    # a wait on the condition: on a loaded 2-core machine uvicorn's start took 22 s once
    deadline = time.monotonic() + 120
    while True:
        try:
            with urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"uvicorn did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield url
    stop_process(proc, timeout=15)


@pytest.fixture
def signed_in_page(browser):
    """signed_in_page(base_url, user, path, timeout=15_000, init_script=None): a Chromium
    page in a browser context of its own, signed in through the login form as `user` and
    showing `path`; every context is closed after the test."""
    from urllib.parse import quote

    contexts = []

    def open_page(base_url, user, path, *, timeout=15_000, init_script=None):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(timeout)
        if init_script:
            page.add_init_script(init_script)
        page.goto(f"{base_url}/accounts/login/?next={quote(path)}")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}{path}")
        return page

    yield open_page
    for context in contexts:
        context.close()


def wait_for_js(page, expression, arg=None, *, timeout=60):
    """Wait until `expression` (or the function with `arg`) is truthy in the page; return it.
    Not page.wait_for_function: its polling runs the expression through the page's eval,
    which the Content-Security-Policy refuses (script-src has no 'unsafe-eval'); each
    page.evaluate here is a DevTools call, which the policy does not restrict."""
    from tests.fixtures.infra import wait_until

    return wait_until(
        lambda: page.evaluate(expression, arg), timeout=timeout, interval=0.1, what=expression
    )


SSE_OPENED_SCRIPT = (
    "document.addEventListener('htmx:sseOpen', () => { window.sseOpened = "
    "(window.sseOpened || 0) + 1; });"
)


@pytest.fixture
def watcher(redis_url, settings):
    """watcher() runs the cluster Watcher in a thread of this process (publishing to the
    test's Redis); every one started is stopped after the test."""
    import threading

    from deployments.services.cluster_watch import Watcher

    settings.REDIS_URL = redis_url
    running = []

    def start():
        w = Watcher(refresh=0.3)
        thread = threading.Thread(target=w.run, daemon=True, name="test-watcher")
        thread.start()
        running.append((w, thread))
        return w

    yield start
    for w, thread in running:
        w.stop()
        thread.join(15)
        assert not thread.is_alive(), "the watcher did not stop within 15s"
