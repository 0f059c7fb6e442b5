"""A thin adapter over the Docker Engine API (the `docker` SDK).

Images are built into the cluster's own daemon, so they need no registry (research
section 8, `eval $(minikube docker-env)`). The daemon is, in order: the Cluster's explicit
DOCKER_HOST; Minikube's, from `minikube -p <profile> docker-env` when minikube is installed;
else the environment's (DOCKER_HOST or the local socket).
"""

import shlex
import shutil
import subprocess

import docker
from docker.errors import DockerException

from deployments.integrations import IntegrationError

TIMEOUT = 30


class DockerError(IntegrationError):
    pass


def minikube_docker_env(profile):
    """{DOCKER_HOST, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY} from minikube, or {} without it."""
    binary = shutil.which("minikube")
    if not binary or not profile:
        return {}
    try:
        out = subprocess.run(
            [binary, "-p", profile, "docker-env", "--shell", "bash"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise DockerError(
            f"`minikube -p {profile} docker-env` failed: {exc}", permanent=False
        ) from None
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def docker_env(cluster):
    if cluster.docker_host:
        return {"DOCKER_HOST": cluster.docker_host}
    return minikube_docker_env(cluster.minikube_profile)


def docker_client(cluster):
    try:
        env = docker_env(cluster)
        if env:
            return docker.from_env(environment=env, timeout=TIMEOUT)
        return docker.from_env(timeout=TIMEOUT)
    except DockerException as exc:
        raise DockerError(f"the Docker daemon is unreachable: {exc}", permanent=False) from None


def daemon_info(cluster):
    """(daemon name, server version, docker env used) or DockerError."""
    env = docker_env(cluster)
    client = docker_client(cluster)
    try:
        info = client.info()
        return info.get("Name", ""), info.get("ServerVersion", ""), env
    except DockerException as exc:
        raise DockerError(f"the Docker daemon is unreachable: {exc}", permanent=False) from None
    finally:
        client.close()
