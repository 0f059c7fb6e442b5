"""A thin adapter over containerd's `ctr`: images built by Docker are loaded into a
Kubernetes node's containerd, in the namespace the kubelet's CRI reads (`k8s.io`). It is
what `kind load docker-image` and `minikube image load` do: `docker save REF | ctr -n k8s.io
images import --all-platforms -`, unpacked into containerd's default snapshotter
(overlayfs; `CONTAINERD_SNAPSHOTTER` in the worker's environment picks another).

Why `ctr` in a subprocess: there is no maintained Python client for containerd's gRPC API
(PyPI's `containerd` is generated stubs last released in 2021, for containerd 1.5), and
`ctr` ships with every containerd. HELMDECK_CTR names the binary (default `ctr` from PATH);
it may be a wrapper that runs ctr on the node, e.g. `exec docker exec -i kind-control-plane
ctr "$@"`, with the address then the node's own socket.
"""

import contextlib
import json
import os
import platform
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from django.conf import settings
from requests.exceptions import RequestException
from urllib3.exceptions import HTTPError

from deployments.image_references import parse_image_reference
from deployments.integrations import IntegrationError
from deployments.integrations.lazy import lazy

docker_errors = lazy("docker.errors")

NAMESPACE = "k8s.io"  # the kubelet's CRI plugin reads images from this namespace only
CONNECT_TIMEOUT = 10  # seconds ctr waits for the socket
QUERY_TIMEOUT = 60  # one `images check` or `content get`
CHUNK = 1 << 20  # bytes of `docker save` per read
MARKS = (25, 50, 75)  # progress is reported when it passes these percentages

_INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}
# What ctr may see of the worker's environment (not its secrets, keys or database URL).
_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CONTAINERD_SNAPSHOTTER")


class ContainerdError(IntegrationError):
    pass


def node_ref(ref):
    """The name containerd stores an image under, which is the one the kubelet looks up:
    Docker's normalized reference (`todo-backend:1.0.0` ->
    `docker.io/library/todo-backend:1.0.0`)."""
    try:
        parsed = parse_image_reference(ref)
    except ValueError as exc:
        raise ContainerdError(f"{ref!r} {exc}", permanent=True) from None
    name = f"{parsed.domain}/{parsed.path}" if parsed.domain else parsed.path
    if parsed.digest:
        return f"{name}@{parsed.digest}"
    return f"{name}:{parsed.tag or 'latest'}"


def _argv(address, *args):
    return [
        settings.HELMDECK_CTR,
        "--address",
        address,
        "--connect-timeout",
        f"{CONNECT_TIMEOUT}s",
        "--namespace",
        NAMESPACE,
        *args,
    ]


def _env():
    return {name: os.environ[name] for name in _ENV_NAMES if name in os.environ}


def _not_installed():
    return ContainerdError(
        f"{settings.HELMDECK_CTR} (containerd's ctr) is not installed on the worker; install "
        "containerd's client or set HELMDECK_CTR",
        permanent=True,
    )


def _failed(address, what, output):
    """A readable error from ctr's output ("ctr: failed to dial ...: context deadline ...")."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1].removeprefix("ctr: ") if lines else "no output"
    if "failed to dial" in output or "connection refused" in output:
        hint = (
            f"; {address} does not exist on the worker's machine"
            if not Path(address).exists()
            else ""
        )
        return ContainerdError(
            f"containerd at {address} is unreachable (no answer within {CONNECT_TIMEOUT}s"
            f"{hint}): check the Cluster's containerd socket and that containerd runs",
            permanent=False,
        )
    return ContainerdError(f"{what} failed: {last[:500]}", permanent=True)


def _query(address, *args):
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            _argv(address, *args),
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT,
            env=_env(),
            check=False,
        )
    except FileNotFoundError:
        raise _not_installed() from None
    except subprocess.TimeoutExpired:
        raise ContainerdError(
            f"containerd at {address} did not answer `ctr {' '.join(args[:2])}` within "
            f"{QUERY_TIMEOUT}s",
            permanent=False,
        ) from None
    if result.returncode != 0:
        raise _failed(address, f"ctr {' '.join(args[:2])}", result.stderr + result.stdout)
    return result.stdout


def server_version(address):
    """containerd's version at `address` (`ctr version`'s Server section), or ContainerdError."""
    out = _query(address, "version")
    server = out.partition("Server:")[2]
    for line in server.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Version":
            return value.strip()
    return "(unknown version)"


def image_id_on_node(address, ref):
    """The image id (sha256 of its config, as `docker image inspect` says it) of `ref` in
    the node's containerd, or None when the node has no complete, unpacked image by that
    name. `ctr images ls` shows the manifest's digest, not the config's: the manifest is
    read from the content store for its `config.digest`."""
    name = node_ref(ref)
    out = _query(address, "images", "check", f'name=="{name}"')
    # REF TYPE DIGEST STATUS SIZE UNPACKED; STATUS is "complete (2/2)", SIZE "3 KiB/3 KiB"
    for row in (line.split() for line in out.splitlines()[1:]):
        if len(row) >= 5 and row[0] == name:
            if row[3] != "complete" or row[-1] != "true":
                return None
            return _config_digest(address, row[2])
    return None


def _config_digest(address, digest, depth=0):
    try:
        document = json.loads(_query(address, "content", "get", digest))
    except ValueError:
        raise ContainerdError(f"containerd's {digest} is not JSON", permanent=True) from None
    if document.get("mediaType") in _INDEX_TYPES or "manifests" in document:
        manifests = document.get("manifests") or []
        arch = _ARCH.get(platform.machine(), platform.machine())
        chosen = next(
            (
                m
                for m in manifests
                if (m.get("platform") or {}).get("os") == "linux"
                and (m.get("platform") or {}).get("architecture") == arch
            ),
            manifests[0] if manifests else None,
        )
        if chosen is None or depth:
            return None
        return _config_digest(address, chosen["digest"], depth + 1)
    return (document.get("config") or {}).get("digest")


def image_load(address, *, docker_client, ref, on_progress, should_stop, timeout=1800):
    """Stream `docker save REF` from `docker_client`'s daemon into the node's containerd.

    Returns Docker's image id of what was loaded. `on_progress(percent)` is called a few
    times: at 0, when the bytes sent pass 25, 50 and 75% of the image's size, and at 100
    once ctr has imported and unpacked it. `should_stop()` is asked every half second;
    True kills ctr (containerd drops what it had not committed) and raises.
    """
    try:
        image = docker_client.images.get(ref)
        wanted = node_ref(ref)
        named = next((tag for tag in image.tags if node_ref(tag) == wanted), None)
        if named is None:
            raise ContainerdError(f"Docker has no image tagged {ref}", permanent=True)
        total = int(image.attrs.get("Size") or 0)
        chunks = image.save(chunk_size=CHUNK, named=named)
    except docker_errors.ImageNotFound:
        raise ContainerdError(f"Docker has no image {ref} to load", permanent=True) from None
    except (docker_errors.DockerException, RequestException, HTTPError) as exc:
        raise ContainerdError(
            f"the Docker daemon could not save {ref} ({type(exc).__name__}); is it running?",
            permanent=False,
        ) from None
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            _argv(address, "images", "import", "--all-platforms", "-"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True,  # killed as a group on cancel
        )
    except FileNotFoundError:
        chunks.close()
        raise _not_installed() from None
    pump = _Pump(chunks, proc)
    on_progress(0)
    marks = list(MARKS)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if should_stop():
                raise ContainerdError(f"the load of {ref} was cancelled", permanent=True)
            if time.monotonic() > deadline:
                raise ContainerdError(
                    f"loading {ref} into containerd took longer than {timeout}s",
                    permanent=False,
                )
            percent = min(99, pump.sent * 100 // total) if total else 0
            if marks and percent >= marks[0]:
                on_progress(percent)
                marks = [m for m in marks if m > percent]
    finally:
        if proc.poll() is None:
            _kill(proc)
    pump.join()
    if pump.error is not None:
        raise ContainerdError(
            f"the Docker daemon broke off `docker save {ref}` ({type(pump.error).__name__}); "
            "is it running?",
            permanent=False,
        )
    if proc.returncode != 0:
        raise _failed(address, f"ctr images import of {ref}", pump.output())
    on_progress(100)
    return image.id


def _kill(proc):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


class _Pump:
    """Two threads: one writes the `docker save` chunks into ctr's stdin (counting bytes),
    one reads ctr's output so that a full pipe never blocks it."""

    def __init__(self, chunks, proc):
        self.chunks, self.proc = chunks, proc
        self.sent, self.error = 0, None
        self._lines: queue.Queue = queue.Queue()
        self._writer = threading.Thread(target=self._write, daemon=True, name="ctr-import-in")
        self._reader = threading.Thread(target=self._read, daemon=True, name="ctr-import-out")
        self._writer.start()
        self._reader.start()

    def _write(self):
        chunks = iter(self.chunks)
        try:
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                except Exception as exc:  # the daemon broke off the stream
                    self.error = exc
                    return
                try:
                    self.proc.stdin.write(chunk)
                except (OSError, ValueError):
                    return  # ctr exited (or was killed): its exit code says why
                self.sent += len(chunk)
        finally:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            with contextlib.suppress(ValueError, RuntimeError):
                self.chunks.close()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            self._lines.put(line.decode(errors="replace"))
        self.proc.stdout.close()

    def join(self):
        self._reader.join(timeout=10)
        self._writer.join(timeout=10)

    def output(self):
        lines = []
        while not self._lines.empty():
            lines.append(self._lines.get_nowait())
        return "".join(lines)
