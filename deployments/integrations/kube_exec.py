"""A shell in a container: Kubernetes exec with a terminal (the `kubernetes` client's
WebSocket stream, channel protocol v5/v4), for the pod terminal (services/terminals.py).

One thread reads (`read`), any thread writes (`write`, `resize`: websocket-client sends
under its own lock); the reading thread closes it (`close`) once `stop` was asked or the
stream ended, so a socket is never closed under a read in progress. Failures are
KubeError, like the rest of the Kubernetes adapter.
"""

import contextlib
import json
import threading

from deployments.integrations.kube import KubeError, client
from deployments.integrations.lazy import lazy

kube_stream = lazy("kubernetes.stream")
ws_client = lazy("kubernetes.stream.ws_client")

STDOUT, STDERR, ERROR, RESIZE = 1, 2, 3, 4

# The shell: bash where the image has one, else sh; TERM for the browser's xterm.js (exec
# sets none). A fixed command: nothing a user sends becomes part of it.
SHELL = [
    "/bin/sh",
    "-c",
    "TERM=xterm-256color; export TERM; "
    "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi",
]


class ExecStream:
    def __init__(self, ws):
        self._ws = ws
        # stream() always keeps a copy of every byte read (its capture_all is not passed
        # through): a terminal open for hours would hold all its output in memory
        ws._all = ws_client._IgnoredIO()
        self._stop = threading.Event()

    @classmethod
    def open(cls, api, namespace, pod, *, container, command=SHELL):
        core = client.CoreV1Api(api)
        try:
            ws = kube_stream.stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=command,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=True,
                binary=True,
                _preload_content=False,
            )
        except Exception as exc:  # ApiException(status=0) wrapping whatever the socket said
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise KubeError(
                f"opening a shell in {pod}/{container}: {_first_line(reason)}", permanent=False
            ) from None
        return cls(ws)

    def read(self, timeout):
        """Bytes printed since the last read (b"" when none within `timeout` seconds), or
        None once the stream has ended (the shell exited, the pod went, `stop`)."""
        if self._stop.is_set() or not self._ws.is_open():
            return None
        try:
            self._ws.update(timeout=timeout)
        except Exception as exc:
            if self._stop.is_set():
                return None
            raise KubeError(
                f"the shell's connection broke ({type(exc).__name__})", permanent=False
            ) from None
        out = self._ws.read_channel(STDOUT) + self._ws.read_channel(STDERR)
        if out or self._ws.is_open():
            return out
        return None

    def write(self, data: bytes):
        try:
            self._ws.write_channel(0, data)
        except Exception as exc:
            raise KubeError(
                f"typing into the shell failed ({type(exc).__name__})", permanent=False
            ) from None

    def resize(self, cols: int, rows: int):
        try:
            self._ws.write_channel(RESIZE, json.dumps({"Width": cols, "Height": rows}))
        except Exception as exc:
            raise KubeError(
                f"resizing the terminal failed ({type(exc).__name__})", permanent=False
            ) from None

    def end_status(self):
        """How the shell ended, in words: "exit code N", or the API's message (a container
        without /bin/sh says so), or "" when it has not said."""
        raw = self._ws.read_channel(ERROR)
        if not raw:
            return ""
        try:
            status = json.loads(raw)
        except ValueError:
            return _first_line(raw.decode("utf-8", "replace"))
        if status.get("status") == "Success":
            return "exit code 0"
        causes = (status.get("details") or {}).get("causes") or []
        for cause in causes:
            if cause.get("reason") == "ExitCode":
                return f"exit code {cause.get('message')}"
        return _first_line(str(status.get("message") or status.get("reason") or ""))

    def stop(self):
        """Ask the reading thread to end; any thread may."""
        self._stop.set()

    def close(self):
        self._stop.set()
        with contextlib.suppress(Exception):  # already gone
            self._ws.close()


def _first_line(text, limit=300):
    return str(text).strip().splitlines()[0][:limit] if str(text).strip() else ""
