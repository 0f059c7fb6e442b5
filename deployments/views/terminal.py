"""The pod terminal: its page, and the WebSocket (Django Channels) that carries a shell in
a container between xterm.js in the browser and Kubernetes exec.

Who may: services/terminals.py (HELMDECK_POD_EXEC on, the exec_pod permission). The socket
is refused before any upgrade (uvicorn answers 403) unless the request comes from a page of
this panel (Origin equal to the panel's own scheme, host and port, or one of
CSRF_TRUSTED_ORIGINS: a page of another site, or of another port on the same machine,
would otherwise ride on the browser's session cookie) and its session's user may.

On the socket, binary frames are bytes (typed by the browser, printed by the shell) and
text frames are JSON: the browser sends {"resize": {"cols": C, "rows": R}}; the server
says {"status": "open", ...} once the shell is there and {"status": "closed", "reason":
...} just before it closes. While it is open the session's user is checked again every
HELMDECK_POD_EXEC_RECHECK_SECONDS (a sign-out, a deactivated user, a removed role end it)
and it ends after HELMDECK_POD_EXEC_IDLE_SECONDS without a keystroke.
"""

import asyncio
import contextlib
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host
from django.shortcuts import get_object_or_404, render
from django.urls import path, re_path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET

from deployments.integrations.kube import Kube, KubeError
from deployments.models import Profile
from deployments.services import terminals
from deployments.services.operations import ActionRefused
from deployments.views.sse_htmx import db, session_user

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 25  # seconds for the API server to open the shell (its handshake: 20)
READ_WAIT = 0.25  # the reading thread's poll: also how soon it sees a stop
MAX_INPUT = 64 * 1024  # bytes in one frame from the browser (a paste); larger ones close it
MAX_CONTROL = 200  # characters of a text (control) frame: {"resize": ...} is ~40
MAX_COLS, MAX_ROWS = 1000, 500

# xterm.js writes its measurements and theme into <style> elements it makes itself, with no
# nonce: this page alone lets inline styles in (every script is still from /static/ only).
TERMINAL_CSP = {**settings.SECURE_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE]}


def socket_path(profile_name, pod):
    return f"/profiles/{profile_name}/pods/{pod}/terminal/socket"


@require_GET
@permission_required(terminals.EXEC_PERMISSION, raise_exception=True)
def pod_terminal(request, name, pod):
    """The terminal's page: the pod's containers to choose from and the terminal itself.
    The shell opens when the page's script connects (static/terminal.js)."""
    profile = get_object_or_404(Profile.objects.select_related("cluster"), name=name)
    context = {"profile": profile, "pod": pod, "enabled": terminals.terminal_enabled()}
    status = 200
    if not context["enabled"]:
        status = 404
    else:
        try:
            target = terminals.terminal_target(
                profile=profile, pod=pod, container=request.GET.get("container", "")
            )
        except ActionRefused as exc:
            context["refused"], status = str(exc), exc.status
        else:
            context.update(
                target=target,
                socket=socket_path(profile.name, pod),
                idle_minutes=max(1, round(settings.HELMDECK_POD_EXEC_IDLE_SECONDS / 60)),
                records_input=settings.HELMDECK_POD_EXEC_RECORD_INPUT,
            )
            return _terminal_page(request, context)
    return render(request, "deployments/pod_terminal.html", context, status=status)


@csp_override(TERMINAL_CSP)
def _terminal_page(request, context):
    """The page with the terminal on it: the only one whose policy lets inline styles in
    (a refusal or the "off" page keeps the strict one)."""
    return render(request, "deployments/pod_terminal.html", context)


# ---- the socket --------------------------------------------------------------------------


def same_origin(scope):
    """True when the handshake comes from a page of this panel: a Host the settings allow,
    and an Origin that is exactly this scheme, host and port (or a CSRF_TRUSTED_ORIGINS
    entry). Channels' AllowedHostsOriginValidator ignores the port, which on one machine
    would let any local server's page in."""
    headers: dict[bytes, str] = {}
    for key, value in scope.get("headers", []):
        headers.setdefault(key.lower(), value.decode("latin-1"))
    origin, host = headers.get(b"origin", ""), headers.get(b"host", "")
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (
        [".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []
    )
    if not origin or not domain or not validate_host(domain, allowed):
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return origin == f"{scheme}://{host}" or origin in settings.CSRF_TRUSTED_ORIGINS


def _still_allowed(session_key, user_pk):
    """ "" while the session's user may keep the terminal, else why not."""
    user = session_user(session_key, user_pk)
    if user is None:
        return "you signed out (or your session ended)"
    if not terminals.terminal_allowed(user):
        return "your role no longer allows a terminal"
    return ""


def _target(name, pod, container):
    profile = Profile.objects.select_related("cluster").filter(name=name).first()
    if profile is None:
        raise ActionRefused(f"there is no profile {name}", status=404)
    return terminals.terminal_target(profile=profile, pod=pod, container=container)


def _open(target):
    with Kube(target.profile.cluster) as kube:
        return kube.pod_exec(target.namespace, target.pod, container=target.container)


def _closing(fn):
    """`fn` for a thread of its own: its database connection goes back when it returns."""

    def run(*args):
        try:
            return fn(*args)
        finally:
            close_old_connections()

    return run


class _Opening:
    """A shell being opened in a thread of its own, which the socket may stop waiting for
    (the timeout, the browser gone): one that opens after that is closed, unused, by
    whichever of the two comes second."""

    def __init__(self, target):
        self.target = target
        self._lock = threading.Lock()
        self._stream = None
        self._abandoned = False

    def run(self):
        stream = _open(self.target)
        with self._lock:
            if not self._abandoned:
                self._stream = stream
                return stream
        stream.close()
        return None

    def abandon(self):
        with self._lock:
            self._abandoned = True
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()


def _start(user, target, address):
    return terminals.terminal_session_start(user=user, target=target, address=address).pk


def _end(session_id, reason, bytes_in, bytes_out, typed):
    terminals.terminal_session_end(
        session_id=session_id, reason=reason, bytes_in=bytes_in, bytes_out=bytes_out, typed=typed
    )


# close codes (4000-4999 are the application's own); the page shows the reason sent before
CLOSE_SHELL_ENDED = 1000
CLOSE_REFUSED = 4003
CLOSE_NOT_FOUND = 4004
CLOSE_IDLE = 4008
CLOSE_CLUSTER = 4502
CLOSE_BAD_INPUT = 4400


class TerminalSocket(AsyncWebsocketConsumer):
    async def connect(self):
        self.stream = None
        self.session_id = None
        self.ended = False
        self.bytes_in = self.bytes_out = 0
        self.typed = bytearray()
        self.watching = None
        self.reading = False  # the reading thread runs: it closes the stream
        self.accepted = False
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="terminal-write")
        user = self.scope.get("user")
        if (
            not same_origin(self.scope)
            or user is None
            or not user.is_authenticated
            or not await db(terminals.terminal_allowed)(user)
        ):
            await self.close()  # before accept: the server answers 403, nothing is upgraded
            return
        self.user = user
        self.session_key = self.scope["session"].session_key
        await self.accept()
        self.accepted = True
        try:
            await self._open_shell()
        except asyncio.CancelledError:
            await asyncio.shield(self._end("the terminal stopped while opening", CLOSE_CLUSTER))
            raise
        except Exception as exc:  # the browser left meanwhile (the send failed), the database
            log.info("pod terminal: ended while opening (%s)", type(exc).__name__)
            await self._end(
                f"the terminal stopped while opening ({type(exc).__name__})", CLOSE_CLUSTER
            )

    async def _open_shell(self):
        """Where, then the audit row, then the shell (a shell is never open without its
        row), then "open" to the browser and the reading thread."""
        route = self.scope["url_route"]["kwargs"]
        container = _query(self.scope).get("container", "")
        try:  # database reads and a cluster call: not on the live pages' database threads
            target = await asyncio.to_thread(
                _closing(_target), route["name"], route["pod"], container
            )
        except ActionRefused as exc:
            code = {404: CLOSE_NOT_FOUND, 502: CLOSE_CLUSTER}.get(exc.status, CLOSE_REFUSED)
            await self._end(str(exc), code)
            return
        client = self.scope.get("client") or ("", 0)
        self.session_id = await db(_start)(self.user, target, client[0])
        opening = _Opening(target)
        try:
            self.stream = await asyncio.wait_for(asyncio.to_thread(opening.run), OPEN_TIMEOUT)
        except (KubeError, TimeoutError) as exc:
            opening.abandon()  # should it open after all, it is closed
            reason = str(exc) or f"the cluster did not open a shell within {OPEN_TIMEOUT}s"
            await self._end(reason, CLOSE_CLUSTER)
            return
        except asyncio.CancelledError:
            opening.abandon()
            raise
        self.last_input = asyncio.get_running_loop().time()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=self._read, args=(self.stream, loop), daemon=True, name="terminal-read"
        ).start()
        self.reading = True
        self.watching = asyncio.ensure_future(self._watch())
        await self.send(
            text_data=json.dumps(
                {
                    "status": "open",
                    "pod": target.pod,
                    "container": target.container,
                    "idle_seconds": settings.HELMDECK_POD_EXEC_IDLE_SECONDS,
                }
            )
        )

    # -- the shell's output, in a thread of its own ----------------------------------------

    def _read(self, stream, loop):
        reason, code = "the connection to the pod closed", CLOSE_CLUSTER
        try:
            while True:
                out = stream.read(READ_WAIT)
                if out is None:
                    status = stream.end_status()
                    reason = _ended_reason(status)
                    code = CLOSE_SHELL_ENDED if status.startswith("exit code") else CLOSE_CLUSTER
                    break
                if out:
                    # wait for each send: a flood of output (`yes`) waits for the browser
                    # instead of piling up in memory
                    asyncio.run_coroutine_threadsafe(self._output(out), loop).result(timeout=60)
        except KubeError as exc:
            reason = str(exc)
        except Exception as exc:  # the loop is gone, or the browser stalled for a minute
            reason = f"the terminal stopped ({type(exc).__name__})"
        finally:
            stream.close()
        ending = self._end(reason, code)
        try:
            asyncio.run_coroutine_threadsafe(ending, loop)
        except RuntimeError:  # the loop has closed (the server stopped): nothing to tell
            ending.close()

    async def _output(self, data):
        if self.ended:
            return
        self.bytes_out += len(data)
        await self.send(bytes_data=data)

    # -- the browser's input --------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.stream is None or self.ended:
            return
        loop = asyncio.get_running_loop()
        if bytes_data is not None:
            if len(bytes_data) > MAX_INPUT:
                await self._end(
                    f"one message of {len(bytes_data)} bytes: at most {MAX_INPUT} at a time",
                    CLOSE_BAD_INPUT,
                )
                return
            self.last_input = loop.time()
            self.bytes_in += len(bytes_data)
            if settings.HELMDECK_POD_EXEC_RECORD_INPUT and len(self.typed) < MAX_INPUT:
                self.typed += bytes_data
            await self._in_writer(self.stream.write, bytes_data)
            return
        size = _resize(text_data) if len(text_data or "") <= MAX_CONTROL else None
        if size is None:
            log.info("pod terminal: ignored a text message that is not a resize")
            return
        await self._in_writer(self.stream.resize, *size)

    async def _in_writer(self, fn, *args):
        """One thread writes, in the order the browser sent (keystrokes stay in order)."""
        try:
            await asyncio.get_running_loop().run_in_executor(self.writer, fn, *args)
        except KubeError as exc:
            await self._end(str(exc), CLOSE_CLUSTER)

    # -- the checks while it is open --------------------------------------------------------

    async def _watch(self):
        loop = asyncio.get_running_loop()
        every = settings.HELMDECK_POD_EXEC_RECHECK_SECONDS
        idle = settings.HELMDECK_POD_EXEC_IDLE_SECONDS
        due = loop.time() + every
        while not self.ended:
            await asyncio.sleep(min(0.5, every))
            if loop.time() - self.last_input >= idle:
                said = _duration(idle)
                await self._end(f"no keystroke for {said}", CLOSE_IDLE)
                return
            if loop.time() >= due:
                due = loop.time() + every
                try:
                    why = await db(_still_allowed)(self.session_key, self.user.pk)
                except Exception as exc:  # the database is away: nobody vouches for the user
                    why = f"the panel could not check your session ({type(exc).__name__})"
                if why:
                    await self._end(why, CLOSE_REFUSED)
                    return

    # -- the end ------------------------------------------------------------------------

    async def _end(self, reason, code):
        """Once: stop the shell, close the audit row, tell the browser why, close."""
        if self.ended:
            return
        self.ended = True
        if self.stream is not None:
            self.stream.stop()
            if not self.reading:  # else the reading thread closes it, once out of its read
                self.stream.close()
        if self.watching is not None and self.watching is not asyncio.current_task():
            self.watching.cancel()
        if self.session_id is not None:
            try:
                await db(_end)(
                    self.session_id, reason, self.bytes_in, self.bytes_out, bytes(self.typed)
                )
            except Exception:  # the database is away: the row stays open, the shell ends
                log.exception(
                    "pod terminal: could not record the end of session %s", self.session_id
                )
        if self.accepted:  # a refused socket was closed before the upgrade
            with contextlib.suppress(Exception):  # the browser may be gone already
                await self.send(text_data=json.dumps({"status": "closed", "reason": reason}))
                await self.close(code)
        self.writer.shutdown(wait=False)

    async def disconnect(self, code):
        await self._end("the browser closed the terminal", CLOSE_SHELL_ENDED)


def _duration(seconds):
    amount, unit = (seconds / 60, "minute") if seconds >= 60 else (seconds, "second")
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"


def _ended_reason(status):
    if status.startswith("exit code"):
        return f"the shell exited ({status})"
    if "executable file not found" in status or "no such file" in status.lower():
        return "this container has no /bin/sh: a shell cannot open in it"
    return f"the shell ended: {status}" if status else "the connection to the pod closed"


def _query(scope):
    from urllib.parse import parse_qsl

    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def _resize(text):
    """(cols, rows) from {"resize": {"cols": C, "rows": R}}, within bounds; else None."""
    try:
        size = json.loads(text)["resize"]
        cols, rows = size["cols"], size["rows"]
    except (ValueError, TypeError, KeyError):
        return None
    if not all(type(n) is int for n in (cols, rows)):
        return None
    if not (1 <= cols <= MAX_COLS and 1 <= rows <= MAX_ROWS):
        return None
    return cols, rows


class NoSocket(AsyncWebsocketConsumer):
    """Any other WebSocket path: refused before the upgrade (403), not an error (500)."""

    async def connect(self):
        await self.close()


websocket_urlpatterns = [
    path("profiles/<slug:name>/pods/<str:pod>/terminal/socket", TerminalSocket.as_asgi()),
    re_path(r"", NoSocket.as_asgi()),
]


def websocket_application():
    """The ASGI app for WebSocket connections (controlpanel/asgi.py): the session and user
    from the session cookie, then the route; an unknown path is refused."""
    from channels.routing import URLRouter

    return AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
