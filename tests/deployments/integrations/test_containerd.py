"""Loading Docker-built images into a node's containerd, on real parts: images built by the
shared dockerd, a private containerd (tests/fixtures/infra.py) with the CRI plugin the
kubelet talks to, and Debian's ctr."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path

import docker
import pytest

from deployments.integrations.containerd import (
    ContainerdError,
    image_id_on_node,
    image_load,
    node_ref,
)
from tests.fixtures.infra import wait_until

integration = pytest.mark.integration


def build_image(dockerd, tmp_path, tag, content, *, size=0):
    """FROM scratch plus a file: no base image, seconds to build."""
    context = tmp_path / secrets.token_hex(3)
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY . /data/\n")
    (context / "content.txt").write_text(content)
    if size:
        (context / "blob").write_bytes(os.urandom(size))
    image, _ = dockerd.images.build(path=str(context), tag=tag, rm=True, forcerm=True)
    return image


@pytest.fixture
def tag(dockerd, containerd):
    tag = f"helmdeck-test/load:{secrets.token_hex(4)}"
    yield tag
    containerd.remove_images(node_ref(tag))
    with contextlib.suppress(docker.errors.ImageNotFound):  # never built by some tests
        dockerd.images.remove(tag, force=True)


def config_digest(containerd, ref):
    """What the node has under `ref`, read with ctr alone: manifest -> config.digest."""
    rows = [line.split() for line in containerd.ctr("images", "ls").splitlines()[1:]]
    manifest = next(row[2] for row in rows if row[0] == ref)
    return json.loads(containerd.ctr("content", "get", manifest))["config"]["digest"]


def ctr_imports(address):
    """Running `ctr ... images import` processes aimed at `address`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if address.encode() in argv and b"import" in argv:
                found.append(int(proc.name))
    return found


@pytest.mark.parametrize(
    "ref, stored",
    [
        ("todo-backend:1.0.0", "docker.io/library/todo-backend:1.0.0"),
        ("team/app:2", "docker.io/team/app:2"),
        ("registry.local:5000/app", "registry.local:5000/app:latest"),
        ("localhost/app:1", "localhost/app:1"),
    ],
)
def test_it_names_images_as_containerd_and_the_kubelet_do(ref, stored):
    assert node_ref(ref) == stored


@integration
def test_it_loads_an_image_with_the_same_id_as_dockers(dockerd, containerd, tag, tmp_path):
    image = build_image(dockerd, tmp_path, tag, "one")
    assert image_id_on_node(containerd.address, tag) is None
    progress = []
    loaded = image_load(
        containerd.address,
        docker_client=dockerd.client,
        ref=tag,
        on_progress=progress.append,
        should_stop=lambda: False,
    )
    assert loaded == image.id
    assert progress[0] == 0 and progress[-1] == 100 and len(progress) <= 5
    stored = node_ref(tag)
    assert config_digest(containerd, stored) == image.id
    assert image_id_on_node(containerd.address, tag) == image.id
    # unpacked into the CRI's snapshotter, and the CRI plugin (what the kubelet asks)
    # has it under its image id
    check = containerd.ctr("images", "check", f"name=={stored}").splitlines()[1].split()
    assert check[3] == "complete" and check[-1] == "true"
    wait_until(
        lambda: image.id in containerd.image_refs(),
        timeout=10,
        what="the CRI plugin's image-id reference",
    )


@integration
def test_it_loads_a_changed_image_under_the_same_tag_again(dockerd, containerd, tag, tmp_path):
    first = build_image(dockerd, tmp_path, tag, "first")
    image_load(
        containerd.address,
        docker_client=dockerd.client,
        ref=tag,
        on_progress=lambda p: None,
        should_stop=lambda: False,
    )
    second = build_image(dockerd, tmp_path, tag, "second")
    assert second.id != first.id
    assert image_id_on_node(containerd.address, tag) == first.id
    assert (
        image_load(
            containerd.address,
            docker_client=dockerd.client,
            ref=tag,
            on_progress=lambda p: None,
            should_stop=lambda: False,
        )
        == second.id
    )
    assert image_id_on_node(containerd.address, tag) == second.id
    assert config_digest(containerd, node_ref(tag)) == second.id


@integration
def test_it_reports_progress_in_a_few_steps(dockerd, containerd, tag, tmp_path):
    build_image(dockerd, tmp_path, tag, "big", size=24 << 20)
    progress = []
    image_load(
        containerd.address,
        docker_client=dockerd.client,
        ref=tag,
        on_progress=progress.append,
        should_stop=lambda: False,
    )
    assert progress == sorted(progress) and progress[0] == 0 and progress[-1] == 100
    assert 2 <= len(progress) <= 5


@integration
def test_it_cancels_a_load_and_kills_ctr(dockerd, containerd, tag, tmp_path):
    build_image(dockerd, tmp_path, tag, "cancel me", size=64 << 20)
    asked = []

    def should_stop():
        asked.append(time.monotonic())
        return True

    started = time.monotonic()
    with pytest.raises(ContainerdError, match="cancelled") as caught:
        image_load(
            containerd.address,
            docker_client=dockerd.client,
            ref=tag,
            on_progress=lambda p: None,
            should_stop=should_stop,
        )
    assert caught.value.permanent
    assert time.monotonic() - started < 10 and asked
    assert ctr_imports(containerd.address) == []
    assert image_id_on_node(containerd.address, tag) is None


@integration
def test_it_says_when_the_containerd_socket_does_not_exist(dockerd, containerd, tag, tmp_path):
    build_image(dockerd, tmp_path, tag, "nowhere")
    missing_socket = str(tmp_path / "no" / "containerd.sock")
    with pytest.raises(ContainerdError) as caught:
        image_id_on_node(missing_socket, tag)
    message = str(caught.value)
    assert f"containerd at {missing_socket} is unreachable" in message
    assert "does not exist on the worker's machine" in message
    assert "Traceback" not in message and not caught.value.permanent
    with pytest.raises(ContainerdError, match="is unreachable"):
        image_load(
            missing_socket,
            docker_client=dockerd.client,
            ref=tag,
            on_progress=lambda p: None,
            should_stop=lambda: False,
        )


@integration
def test_it_says_when_ctr_is_not_installed(containerd, settings, tag):
    settings.HELMDECK_CTR = "/nonexistent/ctr"
    with pytest.raises(ContainerdError, match="is not installed on the worker") as caught:
        image_id_on_node(containerd.address, tag)
    assert caught.value.permanent
