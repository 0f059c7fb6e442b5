"""A Celery worker is SIGKILLed in the middle of a release (during a build, during helm's
upgrade). Two workers run; the one that claimed the release dies; the survivor's reaper
notices the missing heartbeat, undoes what helm left pending and ends the release with a
reason. The profile can be deployed again at once.

Also the restart case (a container or service restart): the only worker is killed and
started again under the same `-n name@host`. Its heartbeat names the new process, not the
node, so the release is settled as fast as with a survivor of another name."""

import contextlib
import os
import signal
import time

import pytest
import redis

from deployments import heartbeat
from deployments.models import Component, Release
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request
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
    assert again.status == Release.Status.SUCCEEDED, again.reason
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
    assert release.status == Release.Status.FAILED
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
    assert release.status == Release.Status.ROLLED_BACK, list(
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


def test_it_rolls_back_an_upgrade_whose_worker_was_killed_and_started_again_under_its_name(
    fault_profile, fault_env, sandbox
):
    name = "faults-restart"
    worker = start_worker(fault_env, name)
    try:
        deploy_again(fault_profile)  # revision 1
        Component.objects.filter(profile=fault_profile, name="backend").update(
            tag="1.0.9", pod_annotations={"helmdeck.dev/simulate": "never-ready"}
        )
        release = release_request(profile=fault_profile, actor=None, build=False)
        release_enqueue(release)
        wait_for(
            lambda: helm_history(fault_profile)[-1]["status"] == "pending-upgrade",
            90,
            "helm to record the upgrade as pending",
            release,
        )
        assert helm_processes(sandbox.namespace)
        release.refresh_from_db()
        assert release.status == Release.Status.UPGRADING
        assert release.worker.startswith(f"{name}@")

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        stop(worker)  # gone already: removes its log
        killed_at = time.time()  # the dead process beats no more after this
        # what a restart does: the same command line, so the same node name
        worker = start_worker(fault_env, name)
        conn = redis.Redis.from_url(fault_env["REDIS_URL"], socket_timeout=2)
        wait_for(
            lambda: any(
                int(conn.get(f"{heartbeat.KEY_PREFIX}{w}") or 0) >= killed_at
                for w in heartbeat.live_workers(conn)
                if w.startswith(f"{name}@")
            ),
            30,
            f"the restarted {name}@ to beat",
        )

        # settled by the heartbeat (TTL + reaper period + helm settling), not the deadline
        ttl = int(fault_env["HELMDECK_WORKER_HEARTBEAT_TTL"])
        period = int(fault_env["HELMDECK_REAP_SECONDS"])
        budget = ttl + period + 40
        assert (release.deadline.timestamp() - killed_at) > budget + 60
        release, took = wait_terminal(release, budget)
        assert release.status == Release.Status.ROLLED_BACK, list(
            release.log_lines.values_list("text", flat=True)
        )
        assert release.reason == (
            "the worker running it stopped during upgrading; the previous revision was restored"
        )
        wait_for(lambda: not helm_processes(sandbox.namespace), 30, "the orphaned helm to end")
        history = assert_helm_settled(fault_profile, revisions=3)
        assert [h["status"] for h in history] == ["superseded", "failed", "deployed"]
        assert "the worker running it stopped during upgrading" in release_page(release)
        lines = assert_log_complete(release)

        # the restarted worker deploys as any other
        Component.objects.filter(profile=fault_profile, name="backend").update(
            tag="1.0.0", pod_annotations={}
        )
        again = deploy_again(fault_profile)
        assert again.worker.startswith(f"{name}@") and again.worker != release.worker
        assert_helm_settled(fault_profile, revisions=4)
        measure(
            "worker SIGKILL during helm upgrade, restarted under the same name",
            to_terminal_s=took,
            status=release.status,
            log_lines=lines,
            helm_revisions=[h["status"] for h in history],
            next_deploy="succeeded",
        )
    finally:
        stop(worker)


def _children(pid):
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def test_it_ends_a_build_held_by_a_prefork_worker_killed_and_started_again_under_its_name(
    todo_app, fault_env, unreachable_kubeconfig
):
    """No cluster needed: the build stage of a release without builds is claimed by a pool
    child of a prefork worker (the id it records is its parent's), the worker is SIGKILLed
    with its children and started again with the same command line. The release is ended
    within heartbeat TTL + reaper period + margin, not at its stage deadline."""
    from deployments.models import Cluster
    from deployments.services.release_queue import QUEUED_KEY
    from deployments.tasks import build_release

    Cluster.objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig), minikube_profile="", docker_host=""
    )
    name = "faults-prefork"
    worker = start_worker(fault_env, name, pool="prefork")
    try:
        release = release_request(profile=todo_app, actor=None, build=False)
        conn = redis.Redis.from_url(fault_env["REDIS_URL"], socket_timeout=2)
        conn.set(f"{QUEUED_KEY}{release.pk}", 1, ex=600)  # sent: the reaper must not resend
        build_release.delay(release.pk)  # this stage alone: the row stays `building`, held
        wait_for(
            lambda: Release.objects.filter(pk=release.pk, status=Release.Status.BUILDING).exists(),
            60,
            "the build stage to claim the release",
        )
        release.refresh_from_db()
        assert release.worker in heartbeat.live_workers(conn)  # the parent's beat, same id
        assert release.worker.startswith(f"{name}@")

        children = _children(worker.pid)
        assert children  # the pool's processes, one of which claimed the release
        os.kill(worker.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        worker.wait(timeout=10)
        stop(worker)  # gone already: removes its log
        killed_at = time.time()
        worker = start_worker(fault_env, name, pool="prefork")
        wait_for(
            lambda: any(
                int(conn.get(f"{heartbeat.KEY_PREFIX}{w}") or 0) >= killed_at
                for w in heartbeat.live_workers(conn)
                if w.startswith(f"{name}@")
            ),
            30,
            f"the restarted {name}@ to beat",
        )
        ttl = int(fault_env["HELMDECK_WORKER_HEARTBEAT_TTL"])
        period = int(fault_env["HELMDECK_REAP_SECONDS"])
        budget = ttl + period + 20  # helm status against a closed port fails at once
        assert (release.deadline.timestamp() - killed_at) > budget + 20  # 60 s build budget
        release, took = wait_terminal(release, budget)
        assert release.status == Release.Status.FAILED
        assert release.reason.startswith("the worker running it stopped during building")
        assert_log_complete(release)
        measure(
            "prefork worker SIGKILL holding a build, restarted under the same name",
            to_terminal_s=took,
            status=release.status,
        )
    finally:
        stop(worker)
