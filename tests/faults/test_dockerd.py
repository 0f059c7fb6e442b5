"""The Docker daemon stops in the middle of a build (a private dockerd; the shared one is
never touched): the build step retries once the daemon is back, or the release fails
saying the daemon is unreachable. Either way nothing is left half-done."""

import pytest

from deployments.models import LogLine, Release
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request
from tests.faults.conftest import (
    assert_helm_settled,
    assert_log_complete,
    measure,
    release_page,
    slow_build,
    wait_for,
    wait_terminal,
)
from tests.fixtures.faults import start_worker, stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def logged(release, text):
    return LogLine.objects.filter(release=release, text__contains=text).exists()


def test_it_builds_again_when_dockerd_comes_back_after_a_stop(
    fault_profile, fault_env, docker_up, tmp_path
):
    context = slow_build(fault_profile, docker_up, tmp_path / "builds", lines=60, every=0.4)
    worker = start_worker(fault_env, "faults-dockerd-stop")
    try:
        release = release_request(profile=fault_profile, actor=None, build=True)
        release_enqueue(release)
        wait_for(lambda: logged(release, "build line 3"), 90, "the build to print", release)
        docker_up.stop()  # SIGTERM, as `systemctl stop docker`: the build step is killed
        wait_for(lambda: logged(release, "retrying in"), 60, "the build to be retried", release)
        (context / "lines").write_text("3\n")  # the second attempt is quick
        docker_up.start()
        release, took = wait_terminal(release, 150)
    finally:
        stop(worker)
    assert release.status == Release.Status.SUCCEEDED, release.reason
    assert release.images["backend"]["id"].startswith("sha256:")
    assert_helm_settled(fault_profile, revisions=1)
    lines = assert_log_complete(release)
    retry = LogLine.objects.filter(release=release, text__contains="retrying in").first().text
    assert "Docker daemon" in retry, retry
    page = release_page(release)
    assert "succeeded" in page and "retrying in" in page
    measure(
        "dockerd SIGTERM mid-build",
        to_terminal_after_restart_s=took,
        status=release.status,
        log_lines=lines,
        helm_revisions=1,
    )


def test_it_fails_with_a_reason_when_dockerd_dies_and_stays_down(
    fault_profile, fault_env, docker_up, tmp_path
):
    slow_build(fault_profile, docker_up, tmp_path / "builds", lines=30, every=0.4)
    worker = start_worker(fault_env, "faults-dockerd-kill")
    try:
        release = release_request(profile=fault_profile, actor=None, build=True)
        release_enqueue(release)
        wait_for(lambda: logged(release, "build line 2"), 90, "the build to print", release)
        docker_up.kill()  # SIGKILL: the API stream breaks off mid-chunk
        release, took = wait_terminal(release, 90)
    finally:
        stop(worker)
    assert release.status == Release.Status.FAILED
    assert "Docker daemon" in release.reason and "attempts" in release.reason, release.reason
    assert release.steps.get(name="build backend").status == "failed"
    assert set(release.steps.exclude(name="build backend").values_list("status", flat=True)) == {
        "skipped"
    }
    assert_helm_settled(fault_profile, revisions=0)  # helm never ran
    assert_log_complete(release)
    page = release_page(release)
    assert "Why it failed" in page and "Docker daemon" in page
    measure(
        "dockerd SIGKILL mid-build, stays down",
        to_terminal_s=took,
        status=release.status,
        reason=release.reason[:80],
    )
