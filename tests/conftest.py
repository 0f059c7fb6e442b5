import os
from pathlib import Path

import pytest

from tests.factories import PASSWORD, UserFactory

pytest_plugins = ["tests.fixtures.infra"]

ROLES = ("viewer", "deployer", "admin")


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
