"""Following pod logs live: one worker thread per pod, an awaitable mailbox to the stream.

The kubernetes client is synchronous, so each pod's follow stream
(`pods/<pod>/log?follow=true&timestamps=true`) is read in its own thread from the pod's
Cursor (see pod_logs.py). A thread turns each chunk it reads into one rendered batch and
drops it in a mailbox shared with the event loop: a list under a lock that wakes the loop
only when it goes from empty to non-empty. While the stream's consumer is busy sending,
batches pile up and the next wake-up takes them all as one SSE event; that batching is
what keeps up with `kubectl logs -f`. A full mailbox makes the threads wait (a slow
browser slows the reads, nothing is dropped). When the consumer goes away every stream's
socket is shut down and its thread ends.
"""

import asyncio
import contextlib
import logging
import threading

from deployments.integrations import IntegrationError
from deployments.services.pod_logs import (
    MAX_TAIL,
    Cursor,
    block_html,
    encode_token,
    since_time,
    split_block,
)

logger = logging.getLogger(__name__)

RELIST_SECONDS = 5.0  # how often a followed target's pods are listed again
RESTART_SECONDS = 1.0  # wait before following a pod again after its stream ended
HEARTBEAT_SECONDS = 15.0
MAX_PENDING_BYTES = 8 << 20  # rendered HTML waiting for the consumer before threads wait
FINISHED_PHASES = ("Succeeded", "Failed")


class _Mailbox:
    """Items from follower threads to the event loop, taken all at once."""

    def __init__(self, loop, limit=MAX_PENDING_BYTES):
        self._loop, self._limit = loop, limit
        self._items, self._size = [], 0
        self._cond = threading.Condition()
        self._ready = asyncio.Event()

    def put(self, item, size, follower):
        """From a thread: add an item, first waiting while the mailbox is full. False when
        the follower should stop (it was stopped, or the event loop is gone)."""
        with self._cond:
            while self._size > self._limit and not follower.stopped:
                self._cond.wait(0.5)
            if follower.stopped:
                return False
            wake = not self._items
            self._items.append(item)
            self._size += size
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # the event loop is closed
                return False
        return True

    async def take(self, timeout):
        """Every item there is, waiting up to `timeout` seconds for one ([] if none)."""
        if not self._items:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), max(timeout, 0))
        with self._cond:
            items, self._items, self._size = self._items, [], 0
            self._ready.clear()
            self._cond.notify_all()
        return items


class _Follower:
    """One pod's follow stream, read in its own thread from the pod's cursor."""

    def __init__(self, source, target, pod, cursor, *, q, prefix, mailbox, tail=MAX_TAIL):
        self.pod, self.cursor, self._tail = pod, cursor, tail
        self._source, self._target, self._mailbox = source, target, mailbox
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
        """From any thread: end the reads; the follower's own thread closes the stream."""
        with self._lock:
            self.stopped = True
            stream = self._stream
        if stream is not None:
            stream.interrupt()

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
            self._mailbox.put(outcome, 0, self)

    def _follow(self):
        cursor = self.cursor
        since = since_time(cursor.ts) if cursor.ts else None
        stream = self._source.pod_log_follow(
            self._target.namespace,
            self.pod.name,
            container=self.pod.container,
            tail=None if since else self._tail,
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
            data = partial + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                partial = data
                continue
            partial = data[cut + 1 :]
            pairs = split_block(data[:cut].decode("utf-8", "replace").replace("\r", ""))
            first = cursor.take_block([stamp for stamp, _ in pairs])
            if first >= len(pairs):
                continue  # all seen before (the overlap of a resumed read)
            texts = [text for _, text in pairs[first:]]
            if needle:
                texts = [text for text in texts if needle in text.lower()]
            html = block_html(name, texts, prefix=prefix) if texts else ""
            if not self._mailbox.put(("lines", name, html, cursor.position), len(html), self):
                return


class Followed:
    """Follows the target's pods from `cursors` and yields what the view turns into SSE:
    ("lines", html, token), ("notice", text), ("heartbeat",), ("end", reason).

    A pod without a position starts at its last `first_tail` lines (a fresh single-pod
    viewer needs no read_tail: one request, and the tail comes first on the stream), else
    at its first line: pods of a component that appear later, or a resumed pod that had
    no line yet. A pod whose stream ended (its container restarted) is followed again from
    its position; a named pod that is gone, or a component left without pods, ends it."""

    def __init__(
        self,
        source,
        target,
        pods,
        cursors,
        *,
        q="",
        relist=None,
        heartbeat=None,
        restart=None,
        first_tail=MAX_TAIL,
    ):
        self.source, self.target, self.q, self.first_tail = source, target, q, first_tail
        self.pods = {p.name: p for p in pods}
        self.cursors = cursors
        self.relist = RELIST_SECONDS if relist is None else relist
        self.heartbeat = HEARTBEAT_SECONDS if heartbeat is None else heartbeat
        self.restart = RESTART_SECONDS if restart is None else restart
        self.followers = {}
        self._notices = {}
        self._mailbox = None

    def _start(self, pod, tail=MAX_TAIL):
        cursor = self.cursors.setdefault(pod.name, Cursor())
        follower = _Follower(
            self.source,
            self.target,
            pod,
            cursor,
            q=self.q,
            prefix=self.target.merged,
            mailbox=self._mailbox,
            tail=tail,
        )
        self.followers[pod.name] = follower.start()

    def stop(self):
        for follower in self.followers.values():
            follower.stop()

    async def events(self):
        loop = asyncio.get_running_loop()
        self._mailbox = _Mailbox(loop)
        delivered = {name: c.position for name, c in self.cursors.items()}
        try:
            for pod in self.pods.values():
                if pod.phase not in FINISHED_PHASES or not self.target.merged:
                    self._start(pod, self.first_tail)
            now = loop.time()
            next_relist, last_sent = now + self.relist, now
            while True:
                wait = min(next_relist, last_sent + self.heartbeat) - loop.time()
                html = []
                for kind, pod, payload, position in await self._mailbox.take(wait):
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
                    ended = await self._relist()
                    if ended:
                        yield ("end", ended)
                        return
                    next_relist = loop.time() + self.relist
                if loop.time() - last_sent >= self.heartbeat:
                    yield ("heartbeat",)
                    last_sent = loop.time()
        finally:
            self.stop()

    async def _relist(self):
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
            self._start(pod)
        self.pods = current
        if not self.followers:
            if self.target.pod:
                return f"pod {self.target.pod} finished ({listed[0].phase})"
            if not current:
                return f"component {self.target.component} has no pods"
        return None
