"""The remote CLI, `helmdeck` (cli/), end to end: the installed console script against a
live uvicorn and a Celery worker on the sandbox, with a real token. Deploy with a tag
override -> Ready (exit 0) -> deploy again -> roll back to the first revision; Ctrl-C while
it follows leaves the release going; bad input is exit 2 with one line per problem."""

# ruff: noqa: F811 - fault_env and fault_profile are the fault tests' fixtures, imported

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.models import Release
from deployments.services.api_tokens import api_token_create
from tests.deployments.services.conftest import SECRETS
from tests.factories import UserFactory
from tests.faults.conftest import (  # noqa: F401  (fault_env, fault_profile: fixtures)
    assert_helm_settled,
    fault_env,
    fault_profile,
    wait_for,
    wait_terminal,
)
from tests.fixtures.faults import start_web, start_worker, stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HELMDECK = Path(sys.executable).with_name("helmdeck")  # the console script uv installed


@pytest.fixture
def panel(fault_env):
    worker = start_worker(fault_env, "remote-cli")
    web, url = start_web(fault_env)
    yield url
    stop(web)
    stop(worker)


@pytest.fixture
def cli_env(panel, tmp_path):
    _, token = api_token_create(user=UserFactory(role="deployer"), name="e2e")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HELMDECK_URL": panel,
        "HELMDECK_TOKEN": token,
    }


def helmdeck(env, *args, timeout=180):
    return subprocess.run(  # noqa: S603
        [str(HELMDECK), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_it_deploys_with_a_tag_then_rolls_back(cli_env, fault_profile):
    assert HELMDECK.exists(), "uv sync installs the helmdeck console script (cli/)"
    first = helmdeck(
        cli_env, "deploy", "todo-app", "--tag", "backend=1.0.1", "--no-build", "--wait"
    )
    assert first.returncode == 0, first.stderr
    assert "succeeded" in first.stdout and "every pod Ready" in first.stdout
    assert "[upgrade]" in first.stderr or "[upgrade]" in first.stdout  # the log, live
    release = Release.objects.get()
    assert release.snapshot["components"]["backend"]["tag"] == "1.0.1"
    assert release.requested_by_name.startswith("user")

    second = helmdeck(cli_env, "--output", "json", "deploy", "todo-app", "--no-build", "--wait")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("{"), second.stdout[:300]
    settled = json.loads(second.stdout)
    assert settled["status"] == "succeeded" and settled["images"]["backend"] == "todo-backend:1.0.0"

    shown = helmdeck(cli_env, "status", "todo-app", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)  # (no watcher here: the pods are the watcher's rows)
    assert status["current_release"]["id"] == settled["id"] and status["active_release"] is None

    back = helmdeck(cli_env, "rollback", "todo-app", "--revision", "1", "--wait")
    assert back.returncode == 0, back.stderr
    rollback = Release.objects.latest("created_at")
    assert rollback.kind == "rollback" and rollback.rollback_of_id == release.pk
    assert rollback.snapshot["components"]["backend"]["tag"] == "1.0.1"
    assert_helm_settled(fault_profile, revisions=3)
    # the secrets the worker read (fromEnv) reached the cluster, and none of the CLI's output
    printed = "".join(run.stdout + run.stderr for run in (first, second, shown, back))
    assert SECRETS and not [key for key, value in SECRETS.items() if value in printed]


def test_ctrl_c_while_following_leaves_the_release_going(cli_env, fault_profile):
    from deployments.models import Component

    # Ready only after 8 s: the release is still going when Ctrl-C comes (on a kwok node)
    Component.objects.filter(profile=fault_profile, name="backend").update(
        pod_annotations={"helmdeck.dev/ready-delay": "8s"}
    )
    proc = subprocess.Popen(  # noqa: S603
        [str(HELMDECK), "deploy", "todo-app", "--no-build", "--wait"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a pytest-xdist worker ignores SIGINT, and a child would inherit that (Python then
        # keeps ignoring it): the CLI starts as from a terminal, Ctrl-C at its default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(
            lambda: Release.objects.filter(status=Release.Status.UPGRADING).exists(),
            90,
            "the CLI's release to reach helm",
        )
        proc.send_signal(signal.SIGINT)  # while it follows: helm waits for the pods
        out, err = proc.communicate(timeout=30)
    except BaseException:
        proc.kill()  # a failed wait leaves no CLI behind, and shows what it said
        print("the CLI printed:", *proc.communicate(timeout=10), sep="\n")
        raise
    assert proc.returncode == 130, (out, err)
    release = Release.objects.get()
    assert f"release #{release.pk} goes on in the panel" in err
    assert f"/releases/{release.pk}/" in err
    release, _ = wait_terminal(release, 120)
    assert release.status == Release.Status.SUCCEEDED, release.reason


def test_bad_input_is_exit_2_with_one_line_per_problem(cli_env, fault_profile):
    tags = helmdeck(cli_env, "deploy", "todo-app", "--tag", "nope", "--tag", "backend=")
    assert tags.returncode == 2
    assert tags.stderr.count("expected COMPONENT=TAG") == 2 and not Release.objects.exists()
    refused = helmdeck(cli_env, "deploy", "todo-app", "--tag", "ghost=1.0", "--tag", "backend=a b")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert any("tags.ghost" in line for line in lines), lines
    assert any("tags.backend" in line for line in lines)
    assert not Release.objects.exists()
    missing = helmdeck(cli_env, "status", "no-such-profile")
    assert missing.returncode == 2 and "Not Found" in missing.stderr
    wrong = helmdeck({**cli_env, "HELMDECK_TOKEN": "hd_wrong"}, "profiles")
    assert wrong.returncode == 2 and "log in again" in wrong.stderr


def test_login_saves_the_token_0600_and_the_next_command_uses_it(cli_env, todo_app, tmp_path):
    config = tmp_path / "conf" / "helmdeck.json"
    env = {"PATH": cli_env["PATH"], "HOME": str(tmp_path), "HELMDECK_CONFIG": str(config)}
    login = subprocess.run(  # noqa: S603
        [str(HELMDECK), "login", cli_env["HELMDECK_URL"], "--token-stdin"],
        env=env,
        input=cli_env["HELMDECK_TOKEN"] + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert oct(config.parent.stat().st_mode & 0o777) == "0o700"
    listed = helmdeck(env, "profiles", "-o", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["items"][0]["name"] == "todo-app"
    config.chmod(0o644)  # another user could read the token: refused until fixed
    refused = helmdeck(env, "profiles")
    assert refused.returncode == 2 and "chmod 600" in refused.stderr
    wrong = subprocess.run(  # noqa: S603
        [str(HELMDECK), "login", cli_env["HELMDECK_URL"], "--token-stdin"],
        env={**env, "HELMDECK_CONFIG": str(tmp_path / "other.json")},
        input="hd_not-a-token\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2 and not (tmp_path / "other.json").exists()
