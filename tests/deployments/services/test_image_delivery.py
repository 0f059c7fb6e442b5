"""A release's "load" steps: each built image loaded into the node's containerd, on real
parts (the shared dockerd builds, a private containerd is the node's, Debian's ctr runs
behind a wrapper that only records its arguments), and the pipeline's handling of a load
that fails (unit tests with a faked adapter)."""

import contextlib
import os
import secrets
import stat
import threading
import time

import docker
import pytest

from deployments.integrations.containerd import ContainerdError, image_id_on_node
from deployments.models import Cluster, LogLine, Release, Step
from deployments.services import release_stages, stage_run
from deployments.services.release_stages import release_build
from deployments.services.releases import release_cancel, release_request
from tests.factories import ClusterFactory, ComponentFactory, ProfileFactory, SecretEntryFactory

pytestmark = pytest.mark.django_db(transaction=True)
integration = pytest.mark.integration

RECORDING_CTR = """#!/bin/sh
echo "$*" >> {calls}
{delay}exec {ctr} "$@"
"""


def _ctr_wrapper(tmp_path, ctr, *, delay=0):
    """ctr behind a script that appends its arguments to `calls` (and, for an import,
    first waits `delay` seconds, so that a cancel finds it running)."""
    calls = tmp_path / f"ctr-calls-{secrets.token_hex(2)}"
    calls.touch()
    script = tmp_path / f"ctr-{secrets.token_hex(2)}"
    wait = f'case "$*" in *"images import"*) sleep {delay};; esac\n' if delay else ""
    script.write_text(RECORDING_CTR.format(calls=calls, ctr=ctr, delay=wait))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, calls


def _write_context(root, content, *, size=0):
    context = root / "app"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY . /data/\n")
    (context / "content.txt").write_text(content)
    if size:
        (context / "blob").write_bytes(os.urandom(size))


@pytest.fixture
def loading_profile(dockerd, containerd, tmp_path, settings):
    """A one-component profile on a cluster that loads images into the private containerd;
    builds on the shared dockerd from tmp_path/app (FROM scratch)."""
    settings.HELMDECK_PROJECT_DIR = str(tmp_path)
    settings.HELMDECK_SOURCE_ROOTS = ["."]
    settings.HELMDECK_TRANSIENT_RETRIES = 0
    settings.HELMDECK_CTR, calls = _ctr_wrapper(tmp_path, containerd.ctr_path)
    _write_context(tmp_path, "first")
    cluster = ClusterFactory(
        name="kind",
        minikube_profile="",
        docker_host=dockerd.base_url,
        image_delivery=Cluster.CONTAINERD,
        containerd_address=containerd.address,
    )
    profile = ProfileFactory(name=f"load-{secrets.token_hex(3)}", cluster=cluster)
    component = ComponentFactory(
        profile=profile,
        name="app",
        image="hd-test/loaded",
        tag=secrets.token_hex(4),
        build_context="app",
        dockerfile="Dockerfile",
    )
    profile.calls = calls
    profile.ref = component.image_ref
    yield profile
    containerd.remove_images(f"docker.io/{profile.ref}")
    with contextlib.suppress(docker.errors.ImageNotFound):  # a test that stopped before
        dockerd.images.remove(profile.ref, force=True)


def _build(profile):
    release = release_request(profile=profile, actor=None)
    ok = release_build(release.pk)
    release.refresh_from_db()
    return ok, release


def _settle(release):
    """Let the profile's next release start (one active release per profile)."""
    Release.objects.filter(pk=release.pk).update(status=Release.Status.SUCCEEDED)


def _log(release):
    return [line.text for line in LogLine.objects.filter(release=release).order_by("sequence")]


def _imports(profile):
    return [line for line in profile.calls.read_text().splitlines() if "images import" in line]


@integration
def test_it_loads_each_built_image_after_its_build_step(loading_profile, containerd, dockerd):
    ok, release = _build(loading_profile)
    assert ok, release.reason
    steps = list(release.steps.order_by("position").values_list("name", "status", "detail"))
    image_id = dockerd.images.get(loading_profile.ref).id
    assert steps[:2] == [
        ("build app", Step.Status.DONE, image_id),
        ("load app", Step.Status.DONE, image_id),
    ]
    assert [name for name, _, _ in steps[2:]] == ["render", "upgrade", "verify"]
    assert release.images == {"app": {"ref": loading_profile.ref, "id": image_id}}
    log = _log(release)
    ref = loading_profile.ref
    assert f"Loading {ref} into the node's containerd… 0%" in log
    assert f"Loading {ref} into the node's containerd… 100%" in log
    assert log[-1] == f"Loaded {ref} into the node's containerd ({image_id})"
    assert LogLine.objects.filter(release=release, step__name="load app").count() <= 7
    assert image_id_on_node(containerd.address, ref) == image_id
    assert len(_imports(loading_profile)) == 1


@integration
def test_it_skips_an_image_the_node_has_and_loads_a_changed_one(
    loading_profile, containerd, dockerd, tmp_path
):
    ok, first = _build(loading_profile)
    assert ok, first.reason
    _settle(first)
    ok, second = _build(loading_profile)  # the same image id: docker's cache, no change
    assert ok, second.reason
    image_id = dockerd.images.get(loading_profile.ref).id
    assert second.images["app"]["id"] == image_id
    load_log = list(
        LogLine.objects.filter(release=second, step__name="load app").values_list("text", flat=True)
    )
    assert load_log == [f"{loading_profile.ref} already on the node ({image_id})"]
    assert second.steps.get(name="load app").status == Step.Status.DONE
    assert len(_imports(loading_profile)) == 1, "a second ctr import ran"

    _settle(second)
    _write_context(tmp_path, "changed")
    ok, third = _build(loading_profile)
    assert ok, third.reason
    changed = dockerd.images.get(loading_profile.ref).id
    assert changed != image_id
    assert len(_imports(loading_profile)) == 2
    assert image_id_on_node(containerd.address, loading_profile.ref) == changed
    assert f"Loaded {loading_profile.ref} into the node's containerd ({changed})" in _log(third)


@integration
def test_it_cancels_a_running_load(loading_profile, containerd, tmp_path, settings):
    settings.HELMDECK_CTR, loading_profile.calls = _ctr_wrapper(
        tmp_path, containerd.ctr_path, delay=30
    )
    release = release_request(profile=loading_profile, actor=None)
    done = threading.Event()

    def run():
        try:
            release_build(release.pk)
        finally:
            from django.db import connection

            connection.close()
            done.set()

    threading.Thread(target=run).start()
    deadline = time.monotonic() + 120
    while not LogLine.objects.filter(release=release, text__endswith="containerd… 0%").exists():
        assert time.monotonic() < deadline, _log(release)
        time.sleep(0.2)
    started = time.monotonic()
    assert release_cancel(release=release, actor=None)
    assert done.wait(30), "the load did not stop after cancel"
    assert time.monotonic() - started < 10
    release.refresh_from_db()
    assert release.status == Release.Status.CANCELLED
    assert "the load of" in release.reason and "was cancelled" in release.reason
    assert release.steps.get(name="load app").status == Step.Status.FAILED
    assert release.steps.get(name="render").status == Step.Status.SKIPPED
    assert image_id_on_node(containerd.address, loading_profile.ref) is None


@integration
def test_it_fails_with_a_readable_reason_when_the_socket_is_wrong(loading_profile, tmp_path):
    missing = str(tmp_path / "nowhere.sock")
    Cluster.objects.filter(pk=loading_profile.cluster_id).update(containerd_address=missing)
    ok, release = _build(loading_profile)
    assert not ok
    assert release.status == Release.Status.FAILED
    assert release.reason.startswith(f"containerd at {missing} is unreachable")
    assert "check the Cluster's containerd socket" in release.reason
    assert "Traceback" not in release.reason
    load = release.steps.get(name="load app")
    assert load.status == Step.Status.FAILED and load.detail == release.reason
    assert release.steps.get(name="build app").status == Step.Status.DONE


# ---- the pipeline around a load (the adapter faked: these test no load)


class FakeDelivery:
    """Stands in for image_deliver: records its calls, raises `error` when set."""

    def __init__(self):
        self.calls, self.error = [], None

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        kwargs["log"](f"{kwargs['ref']} already on the node ({kwargs['image_id']})")
        return kwargs["image_id"]


BUILT = "sha256:" + "1" * 64


@pytest.fixture
def delivery(monkeypatch, settings):
    settings.HELMDECK_TRANSIENT_RETRIES = 0
    monkeypatch.setattr(release_stages, "build_image", lambda cluster, **kw: BUILT)
    fake = FakeDelivery()
    monkeypatch.setattr(release_stages, "image_deliver", fake)
    return fake


def _profile(delivery, tmp_path, settings):
    settings.HELMDECK_PROJECT_DIR = str(tmp_path)
    settings.HELMDECK_SOURCE_ROOTS = ["."]
    _write_context(tmp_path, "unit")
    cluster = ClusterFactory(
        name=delivery, image_delivery=delivery, containerd_address="/run/containerd.sock"
    )
    profile = ProfileFactory(cluster=cluster)
    ComponentFactory(profile=profile, name="app", build_context="app")
    ComponentFactory(profile=profile, name="prebuilt")
    return profile


def _step_names(release):
    return list(release.steps.order_by("position").values_list("name", flat=True))


def test_it_adds_load_steps_only_for_containerd_clusters(tmp_path, settings):
    docker = release_request(profile=_profile("docker", tmp_path, settings), actor=None)
    assert _step_names(docker) == ["build app", "render", "upgrade", "verify"]
    profile = _profile("containerd", tmp_path, settings)
    loading = release_request(profile=profile, actor=None)
    assert _step_names(loading) == ["build app", "load app", "render", "upgrade", "verify"]
    _settle(loading)
    no_build = release_request(profile=profile, actor=None, build=False)
    assert _step_names(no_build) == ["render", "upgrade", "verify"]


def test_it_loads_with_the_release_writer_and_cancel_check(delivery, tmp_path, settings):
    profile = _profile("containerd", tmp_path, settings)
    ok, release = _build(profile)
    assert ok
    (call,) = delivery.calls
    assert call["ref"] == profile.components.get(name="app").image_ref
    assert call["image_id"] == BUILT
    assert call["cluster"].pk == profile.cluster_id
    assert call["should_stop"]() is False
    assert release.steps.get(name="load app").status == Step.Status.DONE
    assert LogLine.objects.get(release=release, step__name="load app").text == (
        f"{call['ref']} already on the node ({BUILT})"
    )


def test_it_fails_the_release_on_a_load_error_without_secrets(delivery, tmp_path, settings):
    profile = _profile("containerd", tmp_path, settings)
    SecretEntryFactory(profile=profile, key="TOKEN", value="tok-9f3e-secret")
    delivery.error = ContainerdError(
        "ctr images import of app failed: unexpected EOF near tok-9f3e-secret", permanent=True
    )
    ok, release = _build(profile)
    assert not ok
    assert release.status == Release.Status.FAILED
    assert "tok-9f3e-secret" not in release.reason and "<redacted>" in release.reason
    assert release.reason.startswith("ctr images import of app failed")
    assert release.steps.get(name="load app").status == Step.Status.FAILED
    assert release.steps.get(name="render").status == Step.Status.SKIPPED
    assert "tok-9f3e-secret" not in " ".join(_log(release))


def test_it_retries_an_unreachable_node_like_an_unreachable_daemon(delivery, tmp_path, settings):
    settings.HELMDECK_TRANSIENT_RETRIES = 1
    profile = _profile("containerd", tmp_path, settings)
    delivery.error = ContainerdError("containerd at /x is unreachable", permanent=False)
    release = release_request(profile=profile, actor=None)
    with pytest.raises(stage_run.RetryLater):
        release_build(release.pk)
    release.refresh_from_db()
    assert release.status == Release.Status.QUEUED
    assert release.steps.get(name="load app").status == Step.Status.PENDING
    assert not release_build(release.pk, attempt=1)
    release.refresh_from_db()
    assert release.status == Release.Status.FAILED
    assert release.reason == "containerd at /x is unreachable (after 2 attempts)"
