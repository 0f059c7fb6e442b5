"""Releases through real Celery workers: the chain, a worker killed mid-upgrade, and what
travels through Redis and process arguments."""

import base64
import json
import os
import signal
import time

import pytest
import redis

from deployments import heartbeat
from deployments.integrations.helm import Helm
from deployments.integrations.redis import app_client
from deployments.models import Component, Release
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request
from tests.deployments.services.conftest import SECRETS
from tests.faults.conftest import helm_processes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return result


def test_it_deploys_through_the_worker_and_sends_only_ids(deployable, redis_url, request):
    release = release_request(profile=deployable, actor=None, build=False)
    conn = redis.Redis.from_url(redis_url)
    conn.delete("celery")
    release_enqueue(release)  # on_commit runs at once: this test is not in a transaction
    (raw,) = conn.lrange("celery", 0, -1)  # no worker yet: the message waits in the queue
    for value in SECRETS.values():
        assert value.encode() not in raw
    message = json.loads(raw)
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([release.pk], {})
    assert message["headers"]["task"] == "deployments.tasks.release_build"

    request.getfixturevalue("celery_worker")
    wait_for(
        lambda: Release.objects.get(pk=release.pk).status in Release.TERMINAL,
        180,
        "the release to finish",
    )
    release.refresh_from_db()
    assert release.status == Release.Status.SUCCEEDED, release.reason
    assert "@" in release.worker


def test_a_stage_run_inline_that_must_retry_goes_back_to_the_queue(
    deployable, sandbox, helm_bin, tmp_path, monkeypatch, settings, request
):
    """The task that takes a release runs its next stages itself (tasks.INLINE_WITHIN).
    When one of those meets a transient failure (here helm: the cluster unreachable once,
    for the upgrade and for the status that follows), that stage is queued again with the
    rest of the chain after it, and the release still ends deployed and verified."""
    failed = tmp_path / "failed"
    stand_in = tmp_path / "helm"
    stand_in.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = upgrade ] || [ "$1" = status ]; then\n'
        f'  if [ ! -e "{failed}.$1" ]; then\n'
        f'    : > "{failed}.$1"\n'
        '    echo "Error: Kubernetes cluster unreachable: connection refused" >&2\n'
        "    exit 1\n"
        "  fi\n"
        "fi\n"
        f'exec "{helm_bin}" "$@"\n'
    )
    stand_in.chmod(0o755)
    settings.HELMDECK_HELM = str(stand_in)
    monkeypatch.setenv("HELMDECK_HELM", str(stand_in))
    monkeypatch.setenv("HELMDECK_RETRY_BACKOFF", "0.5")
    release = release_request(profile=deployable, actor=None, build=False)
    release_enqueue(release)
    request.getfixturevalue("celery_worker")
    wait_for(
        lambda: Release.objects.get(pk=release.pk).status in Release.TERMINAL,
        180,
        "the release to finish",
    )
    release.refresh_from_db()
    assert release.status == Release.Status.SUCCEEDED, release.reason
    assert (tmp_path / "failed.upgrade").exists() and (tmp_path / "failed.status").exists()
    lines = list(release.log_lines.values_list("text", flat=True))
    assert any("cluster unreachable" in line and "retrying in" in line for line in lines), lines
    assert list(release.steps.values_list("name", "status")) == [
        ("render", "done"),
        ("upgrade", "done"),
        ("verify", "done"),
    ]


def test_it_settles_a_release_whose_worker_was_killed_mid_upgrade(
    deployable, sandbox, redis_url, celery_worker, helm_bin
):
    first = release_request(profile=deployable, actor=None, build=False)
    release_enqueue(first)
    wait_for(
        lambda: Release.objects.get(pk=first.pk).status in Release.TERMINAL,
        180,
        "the first release",
    )
    # The next upgrade waits on pods that never become Ready: helm sits in --wait.
    Component.objects.filter(profile=deployable, name="backend").update(
        tag="1.0.9", pod_annotations={"helmdeck.dev/simulate": "never-ready"}
    )
    second = release_request(profile=deployable, actor=None, build=False)
    release_enqueue(second)
    wait_for(
        lambda: Release.objects.get(pk=second.pk).status == Release.Status.UPGRADING,
        120,
        "the upgrade to start",
    )
    commands = wait_for(lambda: helm_processes(sandbox.namespace), 30, "helm to run")
    for command in commands:  # secrets reach helm as a file path, never as arguments
        for value in SECRETS.values():
            assert value not in command
    worker_name = Release.objects.get(pk=second.pk).worker

    os.kill(celery_worker.pid, signal.SIGKILL)
    celery_worker.wait(timeout=10)
    conn = app_client()
    wait_for(
        lambda: worker_name not in heartbeat.live_workers(conn),
        45,
        "the dead worker's heartbeat to expire",
    )
    conn.delete("helmdeck:reaper")
    settled = heartbeat.reap_if_due(conn)
    assert settled == [second.pk]
    second.refresh_from_db()
    assert second.status in (Release.Status.ROLLED_BACK, Release.Status.FAILED)
    assert "the worker running it stopped during upgrading" in second.reason
    status = Helm(binary=helm_bin, kubeconfig=str(sandbox.kubeconfig)).status(
        "todo-app", sandbox.namespace
    )
    assert not status["info"]["status"].startswith("pending-")
    assert not helm_processes(sandbox.namespace)  # the killed worker's helm went with it


def test_the_cli_follows_the_release_a_worker_runs_and_exits_with_its_result(
    deployable, child_env, celery_worker
):
    """`manage.py deploy NAME --wait` with a worker running: the worker (its imports and
    connections long warm) runs the release; the command prints its log lines live, in
    order, from the release's own stream, and exits 0 once it is deployed and Ready."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "manage.py", "deploy", deployable.name, "--wait", "--no-build"],
        cwd=Path(__file__).parents[3],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    release = Release.objects.filter(profile=deployable).latest("pk")
    assert release.status == Release.Status.SUCCEEDED
    assert release.worker.startswith("test-")  # the worker ran it, not the command
    out = done.stdout.splitlines()
    assert out[0] == f"queued release #{release.pk} of {deployable.name}"
    result = f"release #{release.pk} of {deployable.name} succeeded"
    (end,) = [i for i, text in enumerate(out) if text.startswith(result)]
    rows = [
        f"[{line.step.name}] {line.text}" if line.step else line.text
        for line in release.log_lines.select_related("step").order_by("sequence")
    ]
    assert any(row.startswith("[upgrade] ") for row in rows)
    assert out[1:end] == rows  # every line, once, in order, then the result
    for value in SECRETS.values():
        assert value not in done.stdout + done.stderr
