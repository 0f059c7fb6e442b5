import os
from pathlib import Path

import pytest

from tests.factories import PASSWORD, UserFactory

pytest_plugins = ["tests.fixtures.infra"]

ROLES = ("viewer", "deployer", "admin")


@pytest.fixture(autouse=True)
def _migration_rows(request):
    """Rows the data migration makes (roles, the default cluster) are gone after a
    transactional test flushed the database: put them back for every test that uses it."""
    if "django_db_setup" not in request.fixturenames:
        return
    from django.apps import apps

    from deployments.roles import ensure_default_cluster, sync_roles

    request.getfixturevalue("_django_db_helper")
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
def celery_worker(redis_url, settings, transactional_db):
    """A real Celery worker process on the test database and Redis; stopped afterwards.

    Needs a database another process can open (PostgreSQL, as in CI).
    """
    import signal
    import subprocess
    import sys
    import time

    from django.db import connection

    from deployments import heartbeat

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("a worker process cannot share an in-memory SQLite test database")
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    settings.REDIS_URL = redis_url
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
    }
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
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    conn = heartbeat.client()
    deadline = time.monotonic() + 60
    while not any(w.startswith(name) for w in heartbeat.live_workers(conn)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the Celery worker did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


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
