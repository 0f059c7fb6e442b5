"""PostgreSQL restarts in the middle of a deploy (a private cluster: the test database on
the shared server is never touched). The worker's writes wait for it to come back, so the
release ends as it would have, with every log line kept."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from deployments.models import Component, LogLine, Release
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request
from tests.faults.conftest import (
    assert_helm_settled,
    assert_log_complete,
    helm_processes,
    measure,
    release_page,
    wait_for,
    wait_terminal,
)
from tests.fixtures.faults import start_worker, stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def private_db(transactional_db, private_postgres):
    """This test's Django connection, moved to a migrated database on the private cluster
    (and moved back afterwards); returns its URL for child processes."""
    private_postgres.create_database("helmdeck_faults")
    saved = dict(connection.settings_dict)
    connection.close()
    connection.close_pool()  # the pool holds connections to the old address
    connection.settings_dict.update(
        HOST="127.0.0.1",
        PORT=str(private_postgres.port),
        NAME="helmdeck_faults",
        USER="helmdeck",
        PASSWORD="",
    )
    ContentType.objects.clear_cache()
    call_command("migrate", verbosity=0, interactive=False)
    yield private_postgres.url("helmdeck_faults")
    connection.close()
    connection.close_pool()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)
    ContentType.objects.clear_cache()


def test_it_finishes_a_deploy_when_postgres_restarts_while_helm_waits(
    private_db, private_postgres, fault_profile, fault_env, sandbox
):
    # Ready after 6 s: helm waits, the worker logs pod problems meanwhile
    Component.objects.filter(profile=fault_profile, name="backend").update(
        pod_annotations={"helmdeck.dev/ready-delay": "6s"}
    )
    worker = start_worker({**fault_env, "DATABASE_URL": private_db}, "faults-postgres")
    try:
        release = release_request(profile=fault_profile, actor=None, build=False)
        release_enqueue(release)
        wait_for(
            lambda: any(" upgrade " in argv for argv in helm_processes(sandbox.namespace)),
            90,
            "helm upgrade to run",
            release,
        )
        private_postgres.restart(down=3)  # every connection is cut; 3 s without a server
        connection.close()  # this test's own connection died too
        release, took = wait_terminal(release, 120)
    finally:
        stop(worker)
    assert release.status == Release.Status.SUCCEEDED, release.reason
    assert release.helm_revision == 1
    lines = assert_log_complete(release)
    assert LogLine.objects.filter(release=release, text__contains="deployments Ready").exists()
    assert_helm_settled(fault_profile, revisions=1)
    assert "succeeded" in release_page(release)
    measure(
        "PostgreSQL restarted mid-deploy (helm waiting)",
        to_terminal_s=took,
        status=release.status,
        log_lines=lines,
        lines_lost=0,
        helm_revisions=1,
    )
