"""A Celery worker is SIGKILLed in the middle of a release (during a build, during helm's
upgrade). Two workers run; the one that claimed the release dies; the survivor's reaper
notices the missing heartbeat, undoes what helm left pending and ends the release with a
reason. The profile can be deployed again at once."""

import os
import signal

import pytest

from deployments.models import Component, Release
from deployments.services.releases import release_request
from deployments.tasks import release_enqueue
from tests.faults.conftest import (
    assert_helm_settled,
    assert_log_complete,
    helm_history,
    helm_processes,
    measure,
    release_page,
    slow_build,
    wait_for,
    wait_terminal,
)
from tests.fixtures.faults import start_worker, stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workers(fault_env):
    """{name: process} of two workers; whichever claims a release is the victim."""
    procs = {name: start_worker(fault_env, name) for name in ("faults-a", "faults-b")}
    yield procs
    for proc in procs.values():
        stop(proc)


def kill_claimer(release, workers):
    """SIGKILL the worker holding `release`; returns the survivor's name."""
    release.refresh_from_db()
    victim = release.worker.split("@")[0]
    os.kill(workers[victim].pid, signal.SIGKILL)
    workers[victim].wait(timeout=10)
    return next(name for name in workers if name != victim)


def deploy_again(profile):
    """A plain deploy after the fault: it must run, and succeed."""
    again = release_request(profile=profile, actor=None, build=False)
    release_enqueue(again)
    again, _ = wait_terminal(again, 120)
    assert again.status == Release.SUCCEEDED, again.reason
    return again


def test_it_ends_a_release_whose_worker_was_killed_during_the_build(
    fault_profile, fault_env, workers, docker_up, tmp_path
):
    slow_build(fault_profile, docker_up, tmp_path / "builds", lines=100, every=0.3)
    release = release_request(profile=fault_profile, actor=None, build=True)
    release_enqueue(release)
    wait_for(
        lambda: release.log_lines.filter(text="build line 3").exists(),
        90,
        "the build to print",
        release,
    )
    kill_claimer(release, workers)
    release, took = wait_terminal(release, 60)
    assert release.status == Release.FAILED
    assert release.reason == "the worker running it stopped during building"
    assert release.steps.get(name="build backend").status == "failed"
    # the daemon stopped the build when the dead worker's connection closed
    wait_for(lambda: not docker_up.client.containers.list(), 30, "the build container to go")
    assert_helm_settled(fault_profile, revisions=0)
    lines = assert_log_complete(release)
    page = release_page(release)
    assert "Why it failed" in page and "the worker running it stopped during building" in page
    deploy_again(fault_profile)
    assert_helm_settled(fault_profile, revisions=1)
    measure(
        "worker SIGKILL during build",
        to_terminal_s=took,
        status=release.status,
        log_lines=lines,
        helm_revisions=0,
        next_deploy="succeeded",
    )


def test_it_rolls_back_an_upgrade_whose_worker_was_killed_while_helm_waited(
    fault_profile, fault_env, workers, sandbox
):
    deploy_again(fault_profile)  # revision 1
    # The next upgrade waits on pods that never become Ready: helm sits in --wait.
    Component.objects.filter(profile=fault_profile, name="backend").update(
        tag="1.0.9", pod_annotations={"helmdeck.dev/simulate": "never-ready"}
    )
    release = release_request(profile=fault_profile, actor=None, build=False)
    release_enqueue(release)
    wait_for(
        lambda: release.log_lines.filter(text__startswith="helm upgrade --install").exists(),
        90,
        "helm to start",
        release,
    )
    wait_for(
        lambda: helm_history(fault_profile)[-1]["status"] == "pending-upgrade",
        30,
        "helm to record the upgrade as pending",
    )
    assert helm_processes(sandbox.namespace)
    kill_claimer(release, workers)
    release, took = wait_terminal(release, 90)
    assert release.status == Release.ROLLED_BACK, list(
        release.log_lines.values_list("text", flat=True)
    )
    assert release.reason == (
        "the worker running it stopped during upgrading; the previous revision was restored"
    )
    wait_for(lambda: not helm_processes(sandbox.namespace), 30, "the orphaned helm to end")
    history = assert_helm_settled(fault_profile, revisions=3)  # install, upgrade, rollback
    assert [h["status"] for h in history] == ["superseded", "failed", "deployed"]
    assert "Rollback to 1" in history[2]["description"]
    lines = assert_log_complete(release)
    page = release_page(release)
    assert "the worker running it stopped during upgrading" in page
    measure(
        "worker SIGKILL during helm upgrade",
        to_terminal_s=took,
        status=release.status,
        log_lines=lines,
        helm_revisions=[h["status"] for h in history],
    )
