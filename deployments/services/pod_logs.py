"""Pod logs for the log viewer: one pod, or every pod of a component merged.

Lines are read with kube timestamps (`timestamps=true`), which makes a position in a
container's log expressible: `(ts, k)` = every line stamped before `ts` plus the first `k`
lines stamped exactly `ts` (several lines can share a stamp). A viewer's position is one
such pair per pod, encoded in the SSE `id:` (the resume token). Resuming asks the API for
`sinceTime` (which it truncates to whole seconds) and skips lines at or before the
position, so a reconnect shows no line twice and misses none.

Reading has two phases. The tail (last N lines, or everything after a token) is read
with plain requests, merged by timestamp across pods and cut to N. Then one follow stream
per pod is read in a worker thread (the kubernetes client is synchronous) from where the
tail ended; threads hand batches of rendered lines to an asyncio queue, and the consumer
sends what has piled up as one SSE event (batching is what keeps the line rate up). When
the consumer goes away every stream's socket is shut down and its thread ends.

Known limit: a container's stdout and stderr are stamped by separate readers, so a line
can be stamped a hair earlier than the one before it; if a reconnect lands between such a
pair, the later-stamped-earlier line is taken as already seen.
"""

import asyncio
import contextlib
import heapq
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils.html import escape

from deployments.integrations import IntegrationError

logger = logging.getLogger(__name__)

DEFAULT_TAIL = 200
MAX_TAIL = 10000
MAX_FILTER = 200
BATCH_LINES = 2000  # lines per SSE event when sending a tail
RELIST_SECONDS = 5.0  # how often a followed target's pods are listed again
RESTART_SECONDS = 1.0  # wait before following a pod again after its stream ended
HEARTBEAT_SECONDS = 15.0
MAX_PENDING = 256  # batches a follower thread may queue before it waits for the consumer
FINISHED_PHASES = ("Succeeded", "Failed")


class PodNotFound(Exception):
    """The pod or component is not one of the profile's (a 404)."""


@dataclass(frozen=True)
class LogTarget:
    """Whose log: one pod, or every pod of a component, of a profile's release."""

    namespace: str
    release: str
    pod: str = ""
    component: str = ""

    @property
    def merged(self):
        return not self.pod

    @property
    def label(self):
        return self.pod or f"{self.component} (all pods)"


# ---- lines and positions -----------------------------------------------------------------


def normalize_ts(stamp):
    """A timestamp as fixed-width UTC RFC3339 with nanoseconds, so strings compare in time
    order (kube's own fixed format passes through untouched)."""
    if len(stamp) == 30 and stamp[19] == "." and stamp[-1] == "Z":
        return stamp
    head, _, rest = stamp.partition(".")
    digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    zone = rest[len(digits) :]
    if not rest:  # no fraction: the zone follows the seconds
        head, zone = stamp[:19], stamp[19:]
    moment = datetime.fromisoformat(head + (zone or "Z").replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (digits + "0" * 9)[:9] + "Z"


def split_line(raw):
    """`2026-01-01T00:00:00.000000000Z text` -> (normalized stamp, text); a line without a
    readable stamp (should not happen with timestamps=true) gets an empty stamp."""
    stamp, _, text = raw.partition(" ")
    try:
        return normalize_ts(stamp), text
    except ValueError:
        return "", raw


def since_time(stamp):
    """The API's sinceTime for a position: whole seconds, as the apiserver truncates it."""
    return stamp[:19] + "Z"


class Cursor:
    """One pod's position, and the skipping of lines at or before it when a read restarts
    from its (whole-second) sinceTime."""

    def __init__(self, ts=None, k=0):
        self.ts, self.k = ts, k
        self._skipping, self._seen = False, 0

    @property
    def position(self):
        return (self.ts, self.k)

    def restart(self):
        """A new read from since_time(self.ts) begins."""
        self._skipping, self._seen = self.ts is not None, 0

    def take(self, ts):
        """True when the line stamped `ts` is new (and advance), False when already seen."""
        if self._skipping:
            if ts < self.ts:
                return False
            if ts == self.ts:
                self._seen += 1
                if self._seen <= self.k:
                    return False
            self._skipping = False
        if self.ts is None or ts > self.ts:
            self.ts, self.k = ts, 1
        elif ts == self.ts:
            self.k += 1
        # an out-of-order (earlier) stamp keeps the position: it is at or before it
        return True


def encode_token(positions):
    """{pod: (ts, k)} -> the SSE id; "-" means "nothing read yet" (not "no token")."""
    parts = [f"{pod}@{ts}#{k}" for pod, (ts, k) in sorted(positions.items()) if ts]
    return ",".join(parts) or "-"


def decode_token(token):
    """The positions in a token, or None when it is missing or unreadable (read a fresh tail)."""
    token = (token or "").strip()
    if not token:
        return None
    if token == "-":
        return {}
    positions = {}
    try:
        for part in token.split(","):
            pod, _, rest = part.partition("@")
            ts, _, k = rest.rpartition("#")
            if not pod or not ts or len(pod) > 253:
                return None
            positions[pod] = (normalize_ts(ts), int(k))
    except ValueError:
        return None
    return positions


def line_html(pod, text, *, prefix):
    pod_span = f'<span class="log-pod">{escape(pod)}</span> ' if prefix else ""
    return f'<div class="log-line">{pod_span}{escape(text)}</div>'


def line_text(pod, text, *, prefix):
    return f"[{pod}] {text}" if prefix else text


def _matches(text, needle):
    return not needle or needle in text.lower()


# ---- the tail ------------------------------------------------------------------------------


def resolve_pods(source, target):
    """The target's pods (PodRef), found by the chart's labels; PodNotFound when a named pod
    is not one of the release's."""
    if target.pod:
        pods = [
            p for p in source.log_pods(target.namespace, target.release) if p.name == target.pod
        ]
        if not pods:
            raise PodNotFound(f"no pod {target.pod} in this profile's release")
        return pods
    return source.log_pods(target.namespace, target.release, target.component)


@dataclass
class Tail:
    """What a viewer shows first: (pod, text) lines, and each pod's cursor after them."""

    lines: list = field(default_factory=list)
    cursors: dict = field(default_factory=dict)
    batches: list = field(default_factory=list)  # [(lines, token)] in order


def read_tail(source, target, pods, *, tail=DEFAULT_TAIL, positions=None, previous=False, q=""):
    """The last `tail` lines of the pods merged in time order (fresh), or every line after
    `positions` (a resume token's). Lines filtered out by `q` still move the positions."""
    cursors = {p.name: Cursor(*(positions or {}).get(p.name, (None, 0))) for p in pods}
    running = {name: cursor.position for name, cursor in cursors.items()}
    resume = positions is not None

    def fetch(pod, *, tail=None, since=None):
        raw = source.pod_log(
            target.namespace,
            pod.name,
            container=pod.container,
            previous=previous,
            tail=tail,
            since_time=since,
        )
        return [split_line(line) for line in raw.decode("utf-8", "replace").splitlines()]

    def read(pod):
        cursor = cursors[pod.name]
        if cursor.ts:
            lines = fetch(pod, since=since_time(cursor.ts))
        else:
            lines = fetch(pod, tail=MAX_TAIL if resume else tail)
            if len(lines) >= tail and lines[0][0] and lines[0][0] == lines[-1][0]:
                # every line of the window has one stamp, so more lines with it may lie
                # before the window and the position's count would be short: read that
                # whole second instead (the same lines and more, so no race either)
                lines = fetch(pod, since=since_time(lines[-1][0]))
        cursor.restart()
        taken = []
        for ts, text in lines:
            if cursor.take(ts):
                taken.append((ts, cursor.position, pod.name, text))
        return taken

    if len(pods) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(pods))) as pool:
            per_pod = list(pool.map(read, pods))
    else:
        per_pod = [read(p) for p in pods]
    merged = list(heapq.merge(*per_pod, key=lambda line: line[0]))
    shown_from = 0 if resume else max(0, len(merged) - tail)
    needle = q.lower()
    result = Tail(cursors=cursors)
    batch = []
    for index, (_ts, position, pod, text) in enumerate(merged):
        running[pod] = position
        if index >= shown_from and _matches(text, needle):
            result.lines.append((pod, text))
            batch.append((pod, text))
        if len(batch) >= BATCH_LINES:
            result.batches.append((batch, encode_token(running)))
            batch = []
    # pods already read up to a token keep that position even if nothing new came
    final = {n: c.position for n, c in cursors.items()}
    if batch or not result.batches:
        result.batches.append((batch, encode_token(final)))
    else:
        result.batches[-1] = (result.batches[-1][0], encode_token(final))
    return result


# ---- following ----------------------------------------------------------------------------


class _Follower:
    """One pod's follow stream, read in its own thread from the pod's cursor; each chunk's
    new lines go to `emit` as one rendered batch."""

    def __init__(self, source, target, pod, cursor, *, q, prefix, emit):
        self.pod, self.cursor = pod, cursor
        self._source, self._target, self._emit = source, target, emit
        self._needle, self._prefix = q.lower(), prefix
        self._stream, self._lock, self.stopped = None, threading.Lock(), False
        self.thread = threading.Thread(target=self._run, name=f"pod-log {pod.name}", daemon=True)

    def start(self):
        self.thread.start()
        return self

    @property
    def running(self):
        return self.thread.is_alive()

    def stop(self):
        with self._lock:
            self.stopped = True
            stream = self._stream
        if stream is not None:
            stream.close()

    def _run(self):
        outcome = ("end", self.pod.name, "", None)
        try:
            self._follow()
        except IntegrationError as exc:
            outcome = ("error", self.pod.name, str(exc), None)
        except Exception:  # a bug must not leave the page waiting silently
            logger.exception("following the log of %s failed", self.pod.name)
            outcome = ("error", self.pod.name, "reading the log failed", None)
        finally:
            with self._lock:
                stream, self._stream = self._stream, None
            if stream is not None:
                stream.close()
        if not self.stopped:
            self._emit(outcome, self)

    def _follow(self):
        cursor = self.cursor
        since = since_time(cursor.ts) if cursor.ts else None
        stream = self._source.pod_log_follow(
            self._target.namespace,
            self.pod.name,
            container=self.pod.container,
            tail=None if since else MAX_TAIL,
            since_time=since,
        )
        with self._lock:
            if self.stopped:
                stream.close()
                return
            self._stream = stream
        cursor.restart()
        partial = b""
        name, prefix, needle = self.pod.name, self._prefix, self._needle
        for chunk in stream:
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            html = []
            fresh = False
            for raw in lines:
                ts, text = split_line(raw.decode("utf-8", "replace").rstrip("\r"))
                if cursor.take(ts):
                    fresh = True
                    if _matches(text, needle):
                        html.append(line_html(name, text, prefix=prefix))
            if fresh and not self._emit(("lines", name, "".join(html), cursor.position), self):
                return


class Followed:
    """Follows the target's pods from `cursors` (after read_tail) and yields what the view
    turns into SSE: ("lines", html, token), ("notice", text), ("heartbeat",), ("end", reason).

    Pods of a component that appear later are followed from their first line; a pod whose
    stream ended (its container restarted) is followed again from its position; a named pod
    that is gone, or a component left without pods, ends the stream."""

    def __init__(
        self,
        source,
        target,
        pods,
        cursors,
        *,
        q="",
        relist=RELIST_SECONDS,
        heartbeat=HEARTBEAT_SECONDS,
        restart=RESTART_SECONDS,
    ):
        self.source, self.target, self.q = source, target, q
        self.pods = {p.name: p for p in pods}
        self.cursors = cursors
        self.relist, self.heartbeat, self.restart = relist, heartbeat, restart
        self.followers = {}
        self._notices = {}

    def _emitter(self, loop, queue, slots):
        def emit(item, follower):
            """From a follower thread: queue one item, waiting while MAX_PENDING are queued
            (the client is slower than the log); False when the follower should stop."""
            while not slots.acquire(timeout=0.5):
                if follower.stopped:
                    return False
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone
                return False
            return not follower.stopped

        return emit

    def _start(self, pod, emit):
        cursor = self.cursors.setdefault(pod.name, Cursor())
        follower = _Follower(
            self.source, self.target, pod, cursor, q=self.q, prefix=self.target.merged, emit=emit
        )
        self.followers[pod.name] = follower.start()

    def stop(self):
        for follower in self.followers.values():
            follower.stop()

    async def events(self):
        loop = asyncio.get_running_loop()
        queue, slots = asyncio.Queue(), threading.Semaphore(MAX_PENDING)
        emit = self._emitter(loop, queue, slots)
        delivered = {name: c.position for name, c in self.cursors.items()}
        try:
            for pod in self.pods.values():
                if pod.phase not in FINISHED_PHASES or not self.target.merged:
                    self._start(pod, emit)
            now = loop.time()
            next_relist, last_sent = now + self.relist, now
            while True:
                wait = min(next_relist, last_sent + self.heartbeat) - loop.time()
                items = []
                with contextlib.suppress(TimeoutError):
                    items.append(await asyncio.wait_for(queue.get(), max(wait, 0)))
                while not queue.empty():
                    items.append(queue.get_nowait())
                html = []
                for kind, pod, payload, position in items:
                    slots.release()
                    if kind == "lines":
                        delivered[pod] = position
                        html.append(payload)
                        self._notices.pop(pod, None)
                    elif kind == "end":
                        next_relist = min(next_relist, loop.time() + self.restart)
                    elif kind == "error" and self._notices.get(pod) != payload:
                        self._notices[pod] = payload
                        yield ("notice", payload)
                if any(html):
                    yield ("lines", "".join(html), encode_token(delivered))
                    last_sent = loop.time()
                if loop.time() >= next_relist:
                    ended = await self._relist(emit)
                    if ended:
                        yield ("end", ended)
                        return
                    next_relist = loop.time() + self.relist
                if loop.time() - last_sent >= self.heartbeat:
                    yield ("heartbeat",)
                    last_sent = loop.time()
        finally:
            self.stop()

    async def _relist(self, emit):
        """Start, restart or drop followers after listing the pods; a reason when it is over."""
        try:
            listed = await asyncio.to_thread(
                self.source.log_pods,
                self.target.namespace,
                self.target.release,
                self.target.component or None,
            )
        except IntegrationError:
            return None  # the cluster is away for now: keep the streams we have, try later
        if self.target.pod:
            listed = [p for p in listed if p.name == self.target.pod]
            if not listed:
                return f"pod {self.target.pod} was deleted"
        current = {p.name: p for p in listed}
        for name in set(self.followers) - set(current):
            self.followers.pop(name).stop()
        for name, pod in current.items():
            follower = self.followers.get(name)
            if follower is not None and follower.running:
                continue
            if pod.phase in FINISHED_PHASES:
                self.followers.pop(name, None)
                continue
            self._start(pod, emit)
        self.pods = current
        if not self.followers:
            if self.target.pod:
                return f"pod {self.target.pod} finished ({listed[0].phase})"
            if not current:
                return f"component {self.target.component} has no pods"
        return None
