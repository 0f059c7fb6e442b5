"""helm's --wait runs out of time: an upgrade whose pod never becomes Ready, with a 10 s
timeout, through a real worker. The pod runs on the sandbox's real node and its kubelet's
readiness probe really fails (the probe image's NOT_READY=1). helm rolls back
(--rollback-on-failure); the release says why, in the kubelet's words, and that the
previous revision runs again."""

import pytest

from deployments.models import Release
from deployments.services.profiles import config_set
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request
from tests.faults.conftest import (
    assert_helm_settled,
    assert_log_complete,
    measure,
    release_page,
    wait_terminal,
)
from tests.fixtures.faults import start_worker, stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TIMEOUT = 10


def test_it_rolls_back_an_upgrade_that_outlives_the_helm_timeout(
    probe_profile, fault_env, settings
):
    settings.HELMDECK_HELM_TIMEOUT = TIMEOUT
    worker = start_worker({**fault_env, "HELMDECK_HELM_TIMEOUT": str(TIMEOUT)}, "faults-timeout")
    try:
        first = release_request(profile=probe_profile, actor=None, build=False)
        release_enqueue(first)
        first, _ = wait_terminal(first, 90)
        assert first.status == Release.Status.SUCCEEDED, first.reason
        config_set(profile=probe_profile, key="NOT_READY", value="1", actor=None)
        release = release_request(profile=probe_profile, actor=None, build=False)
        release_enqueue(release)
        release, took = wait_terminal(release, TIMEOUT + 90)
    finally:
        stop(worker)
    assert release.status == Release.Status.ROLLED_BACK, release.reason
    assert release.reason.startswith(f"not Ready within the helm timeout ({TIMEOUT}s): "), (
        release.reason
    )
    assert "the readiness probe fails" in release.reason
    assert release.reason.endswith("the previous revision was restored")
    history = assert_helm_settled(probe_profile, revisions=3)
    assert [h["status"] for h in history] == ["superseded", "failed", "deployed"]
    assert release.steps.get(name="upgrade").status == "failed"
    assert release.steps.get(name="verify").status == "skipped"
    lines = assert_log_complete(release)
    page = release_page(release)
    assert "Why it rolled back" in page and "not Ready within the helm timeout" in page
    measure(
        "helm timeout (readiness probe failing on the real node, 10 s timeout)",
        to_terminal_s=took,
        status=release.status,
        log_lines=lines,
        helm_revisions=[h["status"] for h in history],
    )
