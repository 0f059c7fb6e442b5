"""A thin adapter over the Docker Engine API (the `docker` SDK).

Images are built into the cluster's own daemon, so they need no registry (as
`eval $(minikube docker-env)` does). The daemon is, in order: the Cluster's explicit
DOCKER_HOST; Minikube's, from `minikube -p <profile> docker-env` when minikube is installed;
else the environment's (DOCKER_HOST or the local socket).
"""

import contextlib
import queue
import shlex
import shutil
import socket
import subprocess
import threading
import time

from requests.exceptions import RequestException
from urllib3.exceptions import HTTPError

from deployments.integrations import IntegrationError
from deployments.integrations.lazy import lazy

docker = lazy("docker")  # the docker SDK, imported at the first call (~0.15 s)
docker_constants = lazy("docker.constants")
docker_errors = lazy("docker.errors")

TIMEOUT = 30


class DockerError(IntegrationError):
    pass


def minikube_docker_env(profile):
    """{DOCKER_HOST, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY} from minikube, or {} without it."""
    binary = shutil.which("minikube")
    if not binary or not profile:
        return {}
    try:
        result = subprocess.run(
            [binary, "-p", profile, "docker-env", "--shell", "bash"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DockerError(
            f"`minikube -p {profile} docker-env` failed: {exc}", permanent=False
        ) from None
    if result.returncode != 0:
        said = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise DockerError(
            f"`minikube -p {profile} docker-env` failed (exit {result.returncode})"
            + (f": {said[-1][:300]}" if said else ""),
            permanent=False,
        )
    return parse_docker_env(result.stdout)


def parse_docker_env(out):
    """The variables of `minikube docker-env --shell bash`'s output: `export NAME="value"`
    lines (DOCKER_TLS_VERIFY, DOCKER_HOST, DOCKER_CERT_PATH, MINIKUBE_ACTIVE_DOCKERD), then
    an empty line and two `# ...` comments, which are skipped like anything else."""
    env = {}
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("export "):
            continue
        key, _, value = line[len("export ") :].partition("=")
        try:
            words = shlex.split(value)
        except ValueError:  # an unbalanced quote: not a line minikube writes
            continue
        env[key.strip()] = words[0] if words else ""
    return env


def docker_env(cluster):
    """The daemon builds use: the Cluster's DOCKER_HOST; else, when images reach the nodes
    through the cluster's Docker, Minikube's (docker-env); else {} (the local daemon: images
    loaded into a node's containerd are built there, and `minikube docker-env` refuses a
    cluster whose runtime is containerd)."""
    if cluster.docker_host:
        return {"DOCKER_HOST": cluster.docker_host}
    if getattr(cluster, "image_delivery", "docker") != "docker":
        return {}
    return minikube_docker_env(cluster.minikube_profile)


def docker_client(cluster):
    try:
        return _client_from_env(docker_env(cluster) or None)
    except docker_errors.DockerException as exc:
        raise DockerError(f"the Docker daemon is unreachable: {exc}", permanent=False) from None


def _client_from_env(env):
    """`docker.from_env(environment=env)` (None: the worker's environment), except that a
    daemon's own CA (DOCKER_CERT_PATH/ca.pem, as `minikube docker-env` sets it) is the one
    its certificate is checked against. docker-py lets requests replace it with
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE when either is set (docker/docker-py#2433, open),
    and then no TLS daemon verifies."""
    client = docker.from_env(
        environment=env, timeout=TIMEOUT, version=docker_constants.DEFAULT_DOCKER_API_VERSION
    )
    api = client.api
    if isinstance(api.verify, str):  # TLS, verified against the daemon's CA file
        merge = api.merge_environment_settings

        def keep_daemon_ca(url, proxies, stream, verify, cert):
            merged = merge(url, proxies, stream, verify, cert)
            merged["verify"] = api.verify
            return merged

        api.merge_environment_settings = keep_daemon_ca
    # what from_env's default version="auto" does, now that the CA is the right one
    api._version = api._retrieve_server_version()
    return client


def daemon_info(cluster):
    """(daemon name, server version, docker env used) or DockerError."""
    env = docker_env(cluster)
    client = docker_client(cluster)
    try:
        info = client.info()
        return info.get("Name", ""), info.get("ServerVersion", ""), env
    except docker_errors.DockerException as exc:
        raise DockerError(f"the Docker daemon is unreachable: {exc}", permanent=False) from None
    finally:
        client.close()


def build_image(cluster, *, context, dockerfile, tag, buildargs, on_line, should_stop):
    """Build `tag` from `context` on the cluster's daemon, streaming output lines.

    Returns the image id. `should_stop()` is asked between output chunks; True aborts
    the build (the daemon stops it when the connection closes). A daemon that stops or
    dies mid-build is a transient error (the stage retries once it is back); a Dockerfile
    step that fails while the daemon still answers is permanent.
    """
    client = docker_client(cluster)
    started = False
    responses = []
    helper = client.api._stream_helper

    def keep_response(response, decode=False):  # to hang up on it when cancelled
        responses.append(response)
        return helper(response, decode)

    client.api._stream_helper = keep_response
    try:
        stream = client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs or None,
            rm=True,
            forcerm=True,
            decode=True,
            timeout=3600,
        )
        image_id = None
        for chunk in _polled(stream, should_stop, lambda: _hang_up(responses)):
            started = True
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise _step_failed(client, tag, detail.strip())
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in text.splitlines():
                if line.strip():
                    on_line(line.rstrip())
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
        if image_id is None:
            image_id = client.images.get(tag).id
        return image_id
    except docker_errors.DockerException as exc:
        raise DockerError(f"docker build of {tag} failed: {exc}", permanent=False) from None
    except (RequestException, HTTPError) as exc:
        # The SDK lets the HTTP layer's errors through: a refused connection before the
        # build, a stream broken off when the daemon dies during it.
        what = "went away during the build of" if started else "is unreachable to build"
        raise DockerError(
            f"the Docker daemon {what} {tag} ({type(exc).__name__}); is it running?",
            permanent=False,
        ) from None
    finally:
        client.close()


_END = object()


def _polled(stream, should_stop, hang_up):
    """The stream's chunks, read in a thread so that `should_stop()` is asked every half
    second even while a build step prints nothing (a quiet `RUN` can last minutes). On
    stop the connection is hung up, which makes the daemon abort the build."""
    chunks: queue.Queue = queue.Queue()

    def pump():
        try:
            for chunk in stream:
                chunks.put(chunk)
            chunks.put(_END)
        except Exception as exc:  # handed to the reading thread, which raises it
            chunks.put(exc)

    threading.Thread(target=pump, daemon=True, name="docker-build").start()
    while True:
        try:
            item = chunks.get(timeout=0.5)
        except queue.Empty:
            item = None
        if should_stop():
            hang_up()
            raise DockerError("the build was cancelled", permanent=True)
        if item is _END:
            return
        if isinstance(item, Exception):
            raise item
        if item is not None:
            yield item


def _hang_up(responses):
    for response in responses:
        connection = getattr(response.raw, "connection", None) or getattr(
            response.raw, "_connection", None
        )
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


KILLED = "non-zero code: 137"


def _step_failed(client, tag, detail):
    """The error for a failed build step. A step killed (exit 137) by a daemon that then
    stops answering was the daemon shutting down, not the Dockerfile: worth a retry."""
    if KILLED in detail and not _answers(client):
        return DockerError(
            f"the Docker daemon stopped during the build of {tag} (its build step was "
            "killed); is it running?",
            permanent=False,
        )
    if KILLED in detail:
        detail += " (the step was killed: out of memory, or the daemon stopped it)"
    return DockerError(f"docker build of {tag} failed: {detail}", permanent=True)


def _answers(client, tries=3):
    """True when the daemon answers a ping within about a second (a daemon shutting down
    may still answer the first)."""
    for _ in range(tries):
        try:
            client.ping()
        except (docker_errors.DockerException, RequestException, HTTPError):
            return False
        time.sleep(0.3)
    return True
