"""Builds reach the cluster's Docker through `minikube docker-env`, on real parts: a second
dockerd listening on TCP with TLS (tests/fixtures/faults.py `tls_dockerd`, as Minikube's
node does) and a stand-in `minikube` on PATH that prints exactly what the real
`minikube -p PROFILE docker-env` prints for it."""

import contextlib
import os
import secrets
import stat

import docker
import pytest

from deployments.integrations.docker import (
    DockerError,
    build_image,
    daemon_info,
    docker_env,
    parse_docker_env,
)
from deployments.models import Cluster

# `minikube -p demo docker-env` (v1.3x, bash) as printed for a docker-driver cluster
REAL_OUTPUT = """\
export DOCKER_TLS_VERIFY="1"
export DOCKER_HOST="tcp://127.0.0.1:32771"
export DOCKER_CERT_PATH="/home/dev/.minikube/certs"
export MINIKUBE_ACTIVE_DOCKERD="demo"

# To point your shell to minikube's docker-daemon, run:
# eval $(minikube -p demo docker-env)
"""

STAND_IN = """#!/bin/sh
# stand-in for `minikube -p PROFILE docker-env [--shell bash]`: prints what the real one does
echo "$*" >> {calls}
profile=minikube
command=
while [ $# -gt 0 ]; do
  case "$1" in
    -p|--profile) profile=$2; shift 2;;
    --shell) shift 2;;
    docker-env) command=docker-env; shift;;
    *) echo "unknown argument $1" >&2; exit 64;;
  esac
done
if [ "$command" != docker-env ]; then echo "only docker-env" >&2; exit 64; fi
if [ "$profile" = broken ]; then
  printf '%s%s\n' 'X Exiting due to MK_USAGE: The docker-env command is only compatible with' \
    ' the "docker" runtime, but this cluster was configured to use the "containerd" runtime.' >&2
  exit 14
fi
cat <<EOF
export DOCKER_TLS_VERIFY="1"
export DOCKER_HOST="{host}"
export DOCKER_CERT_PATH="{certs}"
export MINIKUBE_ACTIVE_DOCKERD="$profile"

# To point your shell to minikube's docker-daemon, run:
# eval \\$(minikube -p $profile docker-env)
EOF
"""


def test_it_reads_the_lines_the_real_minikube_docker_env_prints():
    assert parse_docker_env(REAL_OUTPUT) == {
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_HOST": "tcp://127.0.0.1:32771",
        "DOCKER_CERT_PATH": "/home/dev/.minikube/certs",
        "MINIKUBE_ACTIVE_DOCKERD": "demo",
    }


@pytest.fixture
def minikube(tls_dockerd, tmp_path, monkeypatch):
    """The stand-in `minikube`, first on PATH, answering for `tls_dockerd`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "minikube-calls"
    calls.touch()
    script = bin_dir / "minikube"
    script.write_text(
        STAND_IN.format(calls=calls, host=tls_dockerd.tcp_host, certs=tls_dockerd.cert_path)
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


@pytest.fixture
def context(tmp_path):
    folder = tmp_path / "ctx"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (folder / "hello.txt").write_text(secrets.token_hex(8))
    return folder


@pytest.mark.integration
def test_it_builds_into_minikubes_daemon_over_tls(
    minikube, tls_dockerd, dockerd, context, monkeypatch
):
    # a CA bundle for everything else must not replace the daemon's own CA (docker-py
    # lets requests do that: docker/docker-py#2433)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    cluster = Cluster(name="mk", minikube_profile="hd-mk", docker_host="")
    env = docker_env(cluster)
    assert env == {
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_HOST": tls_dockerd.tcp_host,
        "DOCKER_CERT_PATH": str(tls_dockerd.cert_path),
        "MINIKUBE_ACTIVE_DOCKERD": "hd-mk",
    }
    assert minikube.read_text().split("\n")[0] == "-p hd-mk docker-env --shell bash"
    # the daemon takes only TLS clients with a certificate of its CA on that port
    with pytest.raises(docker.errors.DockerException, match="HTTP request to an HTTPS"):
        docker.DockerClient(base_url=tls_dockerd.tcp_host, timeout=10)
    no_cert = docker.tls.TLSConfig(ca_cert=str(tls_dockerd.cert_path / "ca.pem"), verify=True)
    with pytest.raises(docker.errors.DockerException):
        docker.DockerClient(base_url=tls_dockerd.tcp_host, tls=no_cert, timeout=10)

    name, version, used = daemon_info(cluster)
    assert used == env and version == tls_dockerd.client.version()["Version"]
    tag = f"hd-test/docker-env:{secrets.token_hex(4)}"
    lines = []
    try:
        image_id = build_image(
            cluster,
            context=context,
            dockerfile="Dockerfile",
            tag=tag,
            buildargs={},
            on_line=lines.append,
            should_stop=lambda: False,
        )
        assert tls_dockerd.client.images.get(tag).id == image_id
        with pytest.raises(docker.errors.ImageNotFound):
            dockerd.images.get(tag)
        assert any("COPY hello.txt" in line for line in lines)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            tls_dockerd.client.images.remove(tag, force=True)


@pytest.mark.integration
def test_it_says_what_minikube_said_when_docker_env_fails(minikube):
    cluster = Cluster(name="mk", minikube_profile="broken", docker_host="")
    with pytest.raises(DockerError) as caught:
        docker_env(cluster)
    message = str(caught.value)
    assert message.startswith("`minikube -p broken docker-env` failed (exit 14): X Exiting")
    assert 'only compatible with the "docker" runtime' in message


@pytest.mark.integration
def test_it_builds_on_the_local_daemon_for_containerd_delivery(minikube):
    cluster = Cluster(
        name="kind",
        minikube_profile="minikube",
        docker_host="",
        image_delivery=Cluster.CONTAINERD,
        containerd_address="/run/containerd/containerd.sock",
    )
    assert docker_env(cluster) == {}
    assert minikube.read_text() == ""  # minikube docker-env refuses a containerd cluster
