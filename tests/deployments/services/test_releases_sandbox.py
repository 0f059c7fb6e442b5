"""The deploy pipeline on real parts: dockerd builds from local bases, helm 4 and helm 3
upgrade into the sandbox cluster, the kubernetes client verifies. Releases that fail on
the node (crash loops, OOM kills, failing probes, images not on the node, from the CLI
too) run on the real one: test_releases_real_node.py."""

import os
import threading
import time

import pytest

from deployments.integrations.helm import Helm
from deployments.models import Cluster, Component, LogLine, Release, Step
from deployments.services.profiles import config_set
from deployments.services.releases import (
    ReleaseRefused,
    release_cancel,
    release_request,
    release_rollback_request,
    release_run,
)
from tests.deployments.services.conftest import SECRETS

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
BOTH_HELMS = pytest.mark.parametrize("helm_bin", ["v4", "v3"], indirect=True)


def deploy(profile, **kwargs):
    release = release_request(profile=profile, actor=None, **kwargs)
    return release_run(release.pk)


def images(sandbox):
    return {
        d.metadata.name: d.spec.template.spec.containers[0].image
        for d in sandbox.apps.list_namespaced_deployment(sandbox.namespace).items
    }


def pod_names(sandbox):
    return {
        p.metadata.name
        for p in sandbox.pods("app.kubernetes.io/instance=todo-app")
        if p.metadata.deletion_timestamp is None
    }


@BOTH_HELMS
def test_it_deploys_upgrades_and_rolls_back_the_todo_app(deployable, sandbox, helm_bin):
    first = deploy(deployable)
    assert first.status == Release.Status.SUCCEEDED, first.reason
    assert first.helm_revision == 1
    assert set(first.images) == {"frontend", "backend"}
    assert all(image["id"].startswith("sha256:") for image in first.images.values())
    assert list(first.steps.values_list("name", "status")) == [
        ("build frontend", "done"),
        ("build backend", "done"),
        ("render", "done"),
        ("upgrade", "done"),
        ("verify", "done"),
    ]
    lines = list(first.log_lines.values_list("text", flat=True))
    assert any("docker build todo-backend:1.0.0" in line for line in lines)
    assert any(
        "STATUS: deployed" in line or "has been upgraded" in line or 'Release "todo-app"' in line
        for line in lines
    ), lines[-20:]
    assert "http://$(minikube ip):30000" in first.notes
    # read from helm's own summary (release_summary), as `helm status` has them
    status = Helm(binary=helm_bin, kubeconfig=str(sandbox.kubeconfig)).status(
        "todo-app", sandbox.namespace
    )
    notes = status["info"]["notes"].strip()
    assert (first.helm_revision, first.notes) == (status["version"], notes)
    sequences = list(first.log_lines.values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))
    for value in SECRETS.values():
        assert not LogLine.objects.filter(text__contains=value).exists()
    before = pod_names(sandbox)

    Component.objects.filter(profile=deployable, name="backend").update(tag="1.0.1")
    second = deploy(deployable)
    assert second.status == Release.Status.SUCCEEDED, second.reason
    assert second.helm_revision == 2
    assert images(sandbox)["todo-app-backend"] == "todo-backend:1.0.1"
    assert not (pod_names(sandbox) & before) or len(pod_names(sandbox) - before) >= 1

    rolled = pod_names(sandbox)
    config_set(profile=deployable, key="LOG_LEVEL", value="debug", actor=None)
    # the new backend pod is Running but not Ready for 6 s, inside its probe's delay (the
    # annotation: whatever HELMDECK_SANDBOX_READY_SCALE is): no probe has run, so the
    # deploy's pod watch (every 2 s) calls nothing failing (issue 18)
    Component.objects.filter(profile=deployable, name="backend").update(
        pod_annotations={"helmdeck.dev/ready-delay": "6s"}
    )
    third = deploy(deployable, build=False)
    assert third.status == Release.Status.SUCCEEDED, third.reason
    third_lines = list(third.log_lines.values_list("text", flat=True))
    assert not [line for line in third_lines if "pod problem" in line], third_lines
    assert third.helm_revision == 3
    assert list(third.steps.values_list("name", flat=True)) == ["render", "upgrade", "verify"]
    assert pod_names(sandbox).isdisjoint(rolled)  # env comes from the ConfigMap: pods rolled

    back = release_run(release_rollback_request(profile=deployable, actor=None, revision=1).pk)
    assert back.status == Release.Status.SUCCEEDED, back.reason
    assert back.kind == Release.Kind.ROLLBACK
    assert back.rollback_of_id == first.pk
    assert back.helm_revision == 4
    assert images(sandbox)["todo-app-backend"] == "todo-backend:1.0.0"
    config = sandbox.core.read_namespaced_config_map("todo-app-config", sandbox.namespace)
    assert config.data["LOG_LEVEL"] == "info"


def test_it_retries_an_unreachable_cluster_then_fails_with_the_reason(
    deployable, unreachable_kubeconfig, settings
):
    settings.HELMDECK_RETRY_BACKOFF = 0.2
    Cluster.objects.filter(pk=deployable.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig)
    )
    deployable.refresh_from_db()
    release = deploy(deployable, build=False)
    assert release.status == Release.Status.FAILED
    assert "unreachable" in release.reason.lower()
    assert release.reason.endswith("(after 4 attempts)")
    retries = release.log_lines.filter(text__contains="retrying in").count()
    assert retries == 3
    assert release.steps.get(name="upgrade").status == Step.Status.FAILED


def test_it_recovers_when_the_cluster_comes_back_during_the_retries(
    deployable, unreachable_kubeconfig, sandbox, settings
):
    settings.HELMDECK_RETRY_BACKOFF = 1
    Cluster.objects.filter(pk=deployable.cluster_id).update(
        kubeconfig_path=str(unreachable_kubeconfig)
    )
    release = release_request(profile=deployable, actor=None, build=False)

    def heal():
        from django.db import connection

        deadline = time.monotonic() + 120
        while not LogLine.objects.filter(release=release, text__contains="retrying in").exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        Cluster.objects.filter(pk=deployable.cluster_id).update(
            kubeconfig_path=str(sandbox.kubeconfig)
        )
        connection.close()

    healer = threading.Thread(target=heal)
    healer.start()
    result = release_run(release.pk)
    healer.join()
    assert result.status == Release.Status.SUCCEEDED, result.reason
    assert result.helm_revision == 1


def test_it_runs_one_release_per_profile_at_a_time(deployable):
    results = []

    def request():
        try:
            results.append(release_request(profile=deployable, actor=None, build=False).pk)
        except ReleaseRefused as exc:
            results.append(str(exc))
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, str)]
    assert len(started) == 1, results
    assert len(refused) == 3
    assert all("already has release #" in r for r in refused)
    assert release_run(started[0]).status == Release.Status.SUCCEEDED
    assert (
        release_request(profile=deployable, actor=None, build=False).status == Release.Status.QUEUED
    )


def test_it_cancels_a_release_mid_build(deployable, tmp_path, settings, dockerd):
    settings.HELMDECK_PROJECT_DIR = str(tmp_path)
    settings.HELMDECK_SOURCE_ROOTS = ["."]
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG NONCE\n"
        "RUN echo start $NONCE && sleep 60\nUSER 1001\n"
    )
    Component.objects.filter(profile=deployable, name="backend").update(
        build_context="slow",
        build_args={"BASE_IMAGE": dockerd.python_base, "NONCE": str(time.time_ns())},
    )
    Component.objects.filter(profile=deployable, name="frontend").delete()
    release = release_request(profile=deployable, actor=None)
    done = threading.Event()

    def run():
        try:
            release_run(release.pk)
        finally:
            from django.db import connection

            connection.close()
            done.set()

    threading.Thread(target=run).start()
    deadline = time.monotonic() + 120
    while not LogLine.objects.filter(release=release, text__contains="start").exists():
        assert time.monotonic() < deadline, list(release.log_lines.values_list("text", flat=True))
        time.sleep(0.2)
    assert release_cancel(release=release, actor=None)
    assert done.wait(60), "the build did not stop after cancel"
    release.refresh_from_db()
    assert release.status == Release.Status.CANCELLED
    assert release.steps.get(name="build backend").status == Step.Status.FAILED
    assert release.steps.get(name="upgrade").status == Step.Status.SKIPPED
    assert os.environ.get("TODO_JWT_SECRET") not in release.reason


def test_it_deploys_and_rolls_back_from_the_cli_with_exit_codes(deployable, capsys):
    from django.core.management import call_command

    def command(*args):
        with pytest.raises(SystemExit) as exited:
            call_command(*args)
        out, err = capsys.readouterr()
        return exited.value.code, out, err

    code, out, _ = command("deploy", "todo-app", "--wait", "--no-build")
    assert code == 0
    assert "succeeded" in out and "helm revision 1" in out
    assert "http://$(minikube ip):30000" in out  # NOTES.txt
    Component.objects.filter(profile=deployable, name="backend").update(tag="2.0.0")
    assert command("deploy", "todo-app", "--wait", "--no-build")[0] == 0
    code, out, _ = command("rollback", "todo-app", "--revision", "1")
    assert code == 0
    assert "helm revision 3" in out
