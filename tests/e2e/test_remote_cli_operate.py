"""The remote CLI's actions on what runs, end to end: the installed console script against a
live uvicorn, a deployed profile on the sandbox and the watcher. Scale, sleep, wake --wait
(exit 0 once every pod is Ready again), and refusals: exit 1 with the reason for a state
that forbids it, exit 2 with one line per problem for bad input."""

# ruff: noqa: F811 - fault_env is the fault tests' fixture, imported

import json
import os
import subprocess

import pytest

from deployments.models import AuditEvent
from deployments.services.api_tokens import api_token_create
from tests.e2e.test_remote_cli import HELMDECK
from tests.factories import UserFactory
from tests.faults.conftest import fault_env  # noqa: F401 - a fixture
from tests.fixtures.faults import start_web, stop
from tests.fixtures.profiles import replicas_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cli_env(fault_env, small_deployed, watcher, tmp_path):
    watcher()
    web, url = start_web(fault_env)
    _, token = api_token_create(user=UserFactory(role="deployer"), name="e2e")
    yield {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HELMDECK_URL": url,
        "HELMDECK_TOKEN": token,
    }
    stop(web)


def helmdeck(env, *args, timeout=120):
    return subprocess.run(  # noqa: S603
        [str(HELMDECK), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_scale_sleep_and_wake_from_the_command_line(cli_env, sandbox):
    scaled = helmdeck(cli_env, "scale", "small", "web", "2")
    assert scaled.returncode == 0, scaled.stderr
    assert scaled.stdout.startswith("Scaled web to 2 pods.")
    assert replicas_of(sandbox) == {"api": 1, "web": 2}

    slept = helmdeck(cli_env, "sleep", "small", "-o", "json")
    assert slept.returncode == 0, slept.stderr
    assert json.loads(slept.stdout)["replicas"] == {"api": 1, "web": 2}
    again = helmdeck(cli_env, "sleep", "small")
    assert (again.returncode, again.stderr) == (1, "helmdeck: small is already asleep\n")
    assert replicas_of(sandbox) == {"api": 0, "web": 0}

    woke = helmdeck(cli_env, "wake", "small", "--wait", "--timeout", "60")
    assert woke.returncode == 0, woke.stderr
    assert "Waking small: api 1, web 2." in woke.stderr
    assert woke.stdout == "small is awake: 3 pods Ready\n"
    ready = [
        p
        for p in sandbox.pods()
        if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    assert len(ready) >= 3
    actions = AuditEvent.objects.filter(
        action__in=["component.scale", "profile.sleep", "profile.wake"]
    ).count()
    assert actions == 3


def test_bad_input_is_exit_2_with_one_line_per_problem(cli_env, sandbox):
    for args, expected in [
        (("scale", "small", "web", "51"), "helmdeck: replicas: "),
        (("scale", "small", "web", "-1"), "helmdeck: replicas: "),
        (("scale", "small", "ghost", "1"), "helmdeck: small has no component ghost"),
        (("delete-pod", "small", "no-such-pod"), "helmdeck: small has no pod no-such-pod"),
        (("restart", "nope", "web"), "helmdeck: Not Found"),
    ]:
        result = helmdeck(cli_env, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(expected), (args, lines)
    confirm = helmdeck(cli_env, "teardown", "small", "--confirm", "smal")
    assert confirm.returncode == 2 and "--confirm: type the profile's name" in confirm.stderr
    typo = helmdeck(cli_env, "scale", "small", "web", "two")
    assert typo.returncode == 2 and "invalid int value: 'two'" in typo.stderr
    hours = helmdeck(cli_env, "sleep", "small", "--after", "0")
    assert hours.returncode == 2 and "'0': hours from 1 to 720, or never" in hours.stderr
    assert replicas_of(sandbox) == {"api": 1, "web": 1}


def test_the_sleep_schedule_from_the_command_line(cli_env, sandbox):
    from deployments.models import Profile

    scheduled = helmdeck(cli_env, "sleep", "small", "--after", "6")
    assert scheduled.returncode == 0, scheduled.stderr
    assert scheduled.stdout == (
        "small goes to sleep after 6 hours without a deploy, an action or a visit of its page.\n"
    )
    assert Profile.objects.get(name="small").sleep_after_hours == 6
    assert replicas_of(sandbox) == {"api": 1, "web": 1}  # a schedule, not a sleep now
    off = helmdeck(cli_env, "sleep", "small", "--after", "never", "-o", "json")
    assert json.loads(off.stdout)["hours"] is None
    assert Profile.objects.get(name="small").sleep_after_hours is None
