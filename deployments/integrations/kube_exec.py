"""A shell in a container: Kubernetes exec with a terminal, for the pod terminal
(services/terminals.py, views/terminal.py). The `kubernetes` client opens the exec
WebSocket (its `stream`, channel protocol v5/v4); frames are then read here one at a time
(websocket-client's recv_data_frame), so output that never stops (`yes`) is handed on
frame by frame instead of piling up in the client's buffers, and `stop` is seen between
any two frames.

One thread reads (`read`), another writes (`write`, `resize`; websocket-client sends under
its own lock). The socket has a timeout once open, so neither waits forever on an API
server that stopped reading or sending; `stop` (any thread) shuts the socket down, which
wakes both; the reading thread closes it (`close`). Failures are KubeError, like the rest
of the Kubernetes adapter; their text never carries what the server sent beyond its
status.
"""

import contextlib
import json
import re
import select
import ssl
import threading

from deployments.integrations.kube import KubeError, client
from deployments.integrations.lazy import lazy

kube_stream = lazy("kubernetes.stream")
websocket = lazy("websocket")

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
V5_CLOSE = 255  # channel protocol v5: "this channel is closed"
HANDSHAKE_TIMEOUT = 20  # seconds to connect and open the exec WebSocket
SOCKET_TIMEOUT = 15  # seconds a send, or the rest of a frame, may take once open
ERROR_KEPT = 4096  # bytes of the error channel kept (the exit status is a small JSON)

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
        self._ws = ws  # the client's WSClient: its socket, ws.sock, is read here directly
        self._sock = ws.sock
        self._sock.settimeout(SOCKET_TIMEOUT)
        self._stop = threading.Event()
        self._open = True
        self._error = b""

    @classmethod
    def open(cls, api, namespace, pod, *, container, command=SHELL):
        core = client.CoreV1Api(api)
        # the client opens its WebSocket with websocket-client's default timeout (none: a
        # server that accepts and never answers would hold this thread forever); only the
        # exec stream uses websocket-client in this process
        websocket.setdefaulttimeout(HANDSHAKE_TIMEOUT)
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
        except Exception as exc:  # ApiException(status=0) wrapping what the socket said
            raise KubeError(
                f"opening a shell in {pod}/{container}: {_said(exc)}", permanent=False
            ) from None
        return cls(ws)

    def read(self, timeout):
        """The bytes of the next output frame (b"" when none came within `timeout` seconds,
        or the frame was not output), or None once the stream has ended (the shell exited,
        the pod went, `stop`)."""
        if self._stop.is_set() or not self._open:
            return None
        try:
            if not self._ready(timeout):
                return b""
            opcode, frame = self._sock.recv_data_frame(True)
        except Exception as exc:
            if self._stop.is_set():
                return None
            raise KubeError(
                f"the shell's connection broke ({type(exc).__name__})", permanent=False
            ) from None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self._open = False
            return None
        data_frames = (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT)
        data = frame.data if opcode in data_frames else b""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return b""
        channel, payload = data[0], data[1:]
        if channel in (STDOUT, STDERR):
            return payload
        if channel == ERROR:
            self._error = (self._error + payload)[:ERROR_KEPT]
        return b""

    def _ready(self, timeout):
        raw = self._sock.sock
        if raw is None:
            raise OSError("the socket is closed")
        if isinstance(raw, ssl.SSLSocket) and raw.pending():
            return True  # a TLS record already decrypted: poll would not see it
        poll = select.poll()
        poll.register(raw, select.POLLIN)
        return bool(poll.poll(timeout * 1000))

    def write(self, data: bytes):
        self._send(bytes([STDIN]) + data, "typing into the shell")

    def resize(self, cols: int, rows: int):
        size = json.dumps({"Width": cols, "Height": rows}).encode()
        self._send(bytes([RESIZE]) + size, "resizing the terminal")

    def _send(self, frame, doing):
        try:
            self._sock.send(frame, websocket.ABNF.OPCODE_BINARY)
        except Exception as exc:
            raise KubeError(f"{doing} failed ({type(exc).__name__})", permanent=False) from None

    def end_status(self):
        """How the shell ended, in words: "exit code N", or the API's message (a container
        without /bin/sh says so), or "" when it has not said."""
        if not self._error:
            return ""
        try:
            status = json.loads(self._error)
        except ValueError:
            return _first_line(self._error.decode("utf-8", "replace"))
        if not isinstance(status, dict):
            return ""
        if status.get("status") == "Success":
            return "exit code 0"
        for cause in (status.get("details") or {}).get("causes") or []:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                return f"exit code {cause.get('message')}"
        return _first_line(str(status.get("message") or status.get("reason") or ""))

    def stop(self):
        """End the stream from any thread: a read or a send in progress returns at once."""
        self._stop.set()
        with contextlib.suppress(Exception):
            self._sock.abort()

    def close(self):
        self._stop.set()
        with contextlib.suppress(Exception):
            self._ws.close()


def _said(exc):
    """What a failed handshake said, without the response's headers or body (an auth proxy
    in front of the API server may set cookies there): its HTTP status, or the error's kind."""
    text = str(getattr(exc, "reason", "") or exc)
    status = re.search(r"Handshake status (\d{3})", text)
    if status:
        return f"the API answered {status.group(1)}"
    return f"the cluster could not be reached ({_first_line(text, 200) or type(exc).__name__})"


def _first_line(text, limit=300):
    text = str(text).strip()
    return text.splitlines()[0][:limit] if text else ""
