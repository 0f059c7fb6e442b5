"""A thin adapter over the helm CLI (Helm 3 and Helm 4).

Secrets reach helm only as paths of 0600 values files, never as arguments. Every call has
a timeout. Helm 4 renamed `--atomic` to `--rollback-on-failure` and made `--wait` take a
strategy; `Helm.version()` is read once per binary and the flags follow it.
"""

import base64
import contextlib
import ctypes
import functools
import gzip
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from deployments.integrations import IntegrationError

_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "unable to connect",
    "kubernetes cluster unreachable",
    "tls handshake timeout",
)


class HelmError(IntegrationError):
    pass


# What helm may see of the worker's environment: where to find things, its own settings,
# the kubeconfig and proxies. Not the rest: the worker's environment holds the secrets that
# profiles read `fromEnv`, the encryption keys and the database URL, and a process's
# environment is readable in /proc by its user.
_HELM_ENV_NAMES = {
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "KUBECONFIG",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
}


def helm_env():
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _HELM_ENV_NAMES or k.startswith(("HELM_", "XDG_"))
    }
    return {**env, "HELM_NO_PLUGINS": "1"}


def passed_fds(argv):
    """Descriptors named as /dev/fd/N in argv (deployments.services.values.secrets_file)."""
    return tuple(int(a[8:]) for a in argv if a.startswith("/dev/fd/") and a[8:].isdigit())


@functools.cache
def _version_of(binary):
    try:
        out = subprocess.run(
            [binary, "version", "--short"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise HelmError(f"cannot run {binary}: {exc}", permanent=True) from None
    match = _VERSION.search(out)
    if not match:
        raise HelmError(f"{binary} printed no version: {out.strip()[:200]}", permanent=True)
    return tuple(int(part) for part in match.groups())


@dataclass(frozen=True)
class Helm:
    binary: str = ""
    kubeconfig: str = ""
    context: str = ""

    def __post_init__(self):
        if not self.binary:
            object.__setattr__(self, "binary", settings.HELMDECK_HELM)

    def version(self):
        path = shutil.which(self.binary) or self.binary
        return _version_of(path)

    @property
    def major(self):
        return self.version()[0]

    def rollback_flags(self):
        """Wait for readiness and undo a failed upgrade, in this helm's dialect."""
        if self.major >= 4:
            return ["--rollback-on-failure", "--wait=watcher"]
        return ["--atomic", "--wait"]

    def _kube_args(self):
        args = []
        if self.kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        if self.context:
            args += ["--kube-context", self.context]
        return args

    def run(self, *args, timeout=120, cluster=True):
        return self._run_argv(
            [self.binary, *args, *(self._kube_args() if cluster else [])], timeout=timeout
        )

    def _run_argv(self, argv, *, timeout):
        what = argv[1]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=helm_env(),
                pass_fds=passed_fds(argv),
            )
        except subprocess.TimeoutExpired:
            raise HelmError(f"helm {what} took longer than {timeout}s", permanent=False) from None
        except OSError as exc:
            raise HelmError(f"cannot run {self.binary}: {exc.strerror}", permanent=True) from None
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            transient = any(marker in message.lower() for marker in _UNREACHABLE)
            raise HelmError(f"helm {what} failed: {message[-2000:]}", permanent=not transient)
        return result.stdout

    def lint(self, chart, value_files):
        return self.run("lint", chart, "--strict", *_files(value_files), cluster=False)

    def template(self, release, namespace, chart, value_files, *, kube_version=None):
        args = ["template", release, chart, "--namespace", namespace, *_files(value_files)]
        if kube_version:
            args += ["--kube-version", kube_version]
        return self.run(*args, cluster=False)

    def upgrade_install_argv(
        self, release, namespace, chart, value_files, *, timeout=300, wait=True
    ):
        """The command line of `helm upgrade --install`; with `wait`, one that waits for
        Ready and undoes a failure (rollback_flags): what a deploy runs, and what the
        benchmarks run bare."""
        return [
            self.binary,
            "upgrade",
            "--install",
            release,
            chart,
            "--namespace",
            namespace,
            "--create-namespace",
            "--timeout",
            f"{timeout}s",
            *_files(value_files),
            *(self.rollback_flags() if wait else []),
            *self._kube_args(),
        ]

    def upgrade_install(
        self,
        release,
        namespace,
        chart,
        value_files,
        *,
        timeout=300,
        wait=True,
        on_line=None,
        should_stop=None,
        on_tick=None,
        poll=0.5,
    ):
        """`helm upgrade --install`; with `wait`, waiting for Ready and undoing a failure. Without
        `on_line`: runs it through and returns its output (HelmError when it fails). With
        `on_line` (and `should_stop`, `on_tick`, every `poll` seconds): streams it (see
        `_stream`) and returns its exit code."""
        argv = self.upgrade_install_argv(
            release, namespace, chart, value_files, timeout=timeout, wait=wait
        )
        if on_line is None:
            return self._run_argv(argv, timeout=timeout + 60)
        return self._stream(
            argv,
            on_line=on_line,
            should_stop=should_stop or (lambda: False),
            on_tick=on_tick,
            timeout=timeout + 120,
            poll=poll,
        )

    def uninstall(self, release, namespace, *, timeout=120):
        """Remove a release and wait for its resources to go; absent releases are fine."""
        try:
            return self.run(
                "uninstall",
                release,
                "--namespace",
                namespace,
                "--wait",
                "--timeout",
                f"{timeout}s",
                timeout=timeout + 30,
            )
        except HelmError as exc:
            if "not found" in str(exc):
                return ""
            raise

    def _stream(self, argv, *, on_line, should_stop, on_tick=None, timeout=600, poll=0.5):
        """Run `argv` in its own process group, passing each output line to `on_line` (blank
        ones too: helm's NOTES keep their shape).

        Every `poll` seconds, however much helm prints meanwhile, `should_stop()` is asked
        (True: SIGTERM to the group, as Ctrl-C would) and `on_tick()` runs (the caller
        watches pods meanwhile). Returns the exit code; output lines are the caller's to keep.
        """
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env=helm_env(),
                pass_fds=passed_fds(argv),
            )
        except OSError as exc:
            raise HelmError(f"cannot run {self.binary}: {exc.strerror}", permanent=True) from None
        lines: queue.Queue[str | None] = queue.Queue()

        def pump():
            for line in proc.stdout or ():
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline, stopped = time.monotonic() + timeout, False
        next_poll = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + poll
                if not stopped and (should_stop() or now > deadline):
                    stopped = True
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
                if on_tick is not None:
                    on_tick()
            try:
                line = lines.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                continue
            if line is None:
                return proc.wait()
            on_line(line)

    def status(self, release, namespace):
        """`helm status` as a dict (info.status is e.g. deployed, pending-upgrade), or None."""
        try:
            out = self.run("status", release, "--namespace", namespace, "-o", "json", timeout=60)
        except HelmError as exc:
            if "release: not found" in str(exc):
                return None
            raise
        return json.loads(out)

    def rollback(self, release, namespace, revision=None, *, timeout=300):
        args = [
            "rollback",
            release,
            *([str(revision)] if revision else []),
            "--namespace",
            namespace,
            "--timeout",
            f"{timeout}s",
            "--wait",
        ]
        return self.run(*args, timeout=timeout + 60)

    def mark_failed(self, release, namespace, revision, description):
        """Record an interrupted revision (pending-*) as failed, as helm itself records an
        upgrade that fails. `helm rollback` leaves the pending record of the revision it
        rolled back from as it was, so `helm history` would show it pending for ever.

        Edits helm's storage record (the default Secrets driver: base64 of gzipped JSON)
        through kubectl's stdin: the record holds the values, secrets included, which must
        not reach a command line.
        """
        name = f"sh.helm.release.v1.{release}.v{revision}"
        secret = json.loads(self._kubectl("get", "secret", name, "-n", namespace, "-o", "json"))
        record = json.loads(
            gzip.decompress(base64.b64decode(base64.b64decode(secret["data"]["release"])))
        )
        record["info"]["status"] = "failed"
        record["info"]["description"] = description
        packed = base64.b64encode(gzip.compress(json.dumps(record).encode()))
        secret["data"]["release"] = base64.b64encode(packed).decode()
        secret["metadata"]["labels"]["status"] = "failed"
        self._kubectl("replace", "-f", "-", stdin=json.dumps(secret))

    def _kubectl(self, *args, stdin=None):
        argv = [settings.HELMDECK_KUBECTL, *args]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        if self.context:
            argv += ["--context", self.context]
        try:
            result = subprocess.run(
                argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HelmError(f"kubectl {args[0]} failed: {exc}", permanent=False) from None
        if result.returncode != 0:
            message = result.stderr.strip()[-1000:]
            transient = any(marker in message.lower() for marker in _UNREACHABLE)
            raise HelmError(f"kubectl {args[0]} failed: {message}", permanent=not transient)
        return result.stdout

    def get_manifest(self, release, namespace):
        """The manifest deployed now, or None when the release does not exist."""
        try:
            return self.run("get", "manifest", release, "--namespace", namespace, timeout=60)
        except HelmError as exc:
            if "release: not found" in str(exc):
                return None
            raise


def _die_with_parent():
    """In the child: get SIGKILL if the worker dies, so no helm outlives a killed worker
    unseen; the reaper then finds the release pending and rolls it back. (SIGTERM would
    start helm's own --rollback-on-failure, racing the reaper's.) Linux only; elsewhere
    the reaper still settles the release once helm ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _files(paths):
    return [arg for path in paths for arg in ("-f", path)]


_REVISION = re.compile(r"REVISION: (\d+)")


def release_summary(lines, release, namespace):
    """(revision, notes) from the summary `helm upgrade --install` prints when it succeeds,
    or None when `lines` (its output, one string per line) hold none.

    That summary is helm's status table (Helm 3 and 4 alike): `NAME:`, `LAST DEPLOYED:`,
    `NAMESPACE:`, `STATUS:`, `REVISION:`, (Helm 4: `DESCRIPTION:`), `TEST SUITE:`, then
    `NOTES:` and the notes, stripped, to the end. A deploy reads its revision and notes here
    instead of running `helm status` after helm (a second helm process, ~0.2 s);
    whoever gets None asks `helm status`.
    """
    head = f"NAME: {release}"
    # the last one: helm prints it at the very end, after anything (warnings) that might
    # echo a profile's text
    for start in reversed(range(len(lines))):
        if lines[start] != head:
            continue
        header = lines[start + 1 : start + 5]
        revision = next((m for m in map(_REVISION.fullmatch, header) if m), None)
        if (
            f"NAMESPACE: {namespace}" not in header
            or "STATUS: deployed" not in header
            or revision is None
        ):
            continue
        rest = lines[start + 1 :]
        notes = rest[rest.index("NOTES:") + 1 :] if "NOTES:" in rest else []
        return int(revision.group(1)), "\n".join(notes).strip()
    return None
