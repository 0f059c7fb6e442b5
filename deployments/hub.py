"""One Redis pub/sub connection per web process, fanned out to every SSE client.

An SSE stream used to open its own Redis connection and subscription, and render its
partial for itself: 500 idle pages were 500 Redis connections, and one pod change was
rendered once per open page. The hub (one per event loop, so one per uvicorn process):

- keeps one Redis connection, subscribing channels and patterns with reference counts
  (the first listener subscribes and waits for Redis to confirm, the last unsubscribes);
- decodes each message once and hands it to every interested listener's bounded queue
  without waiting: a client too slow to keep up is dropped (it gets OVERFLOW, ends its
  stream with a retry hint, and its browser reconnects and replays), never the others;
- reconnects with capped, jittered exponential backoff when Redis goes away, subscribes
  everything again, then gives every listener RESET (messages may have been missed
  meanwhile, so each stream sends a fresh full render or replays its rows);
- shares renders (`Hub.shared`): all clients that need the same partial after the same
  message await one render.
"""

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from deployments.events import message_fields
from deployments.integrations.redis import RedisError, pubsub_client

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # messages a client may lag behind before it is dropped (shared objects:
# the queue holds references, so a long one costs little; a build log bursts)
CONFIRM_TIMEOUT = 5.0  # seconds to wait for Redis to confirm a new subscription
READ_TIMEOUT = 1.0
BACKOFF_FIRST, BACKOFF_CAP = 0.1, 5.0
RENDERS_KEPT = 256  # a whole status table is ~60 kB: at most ~15 MB
CLIENT_NAME = "helmdeck-hub"  # CLIENT LIST shows one per web process


class _Signal:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


RESET = _Signal("RESET")  # Redis reconnected: anything may have been missed
OVERFLOW = _Signal("OVERFLOW")  # this client fell QUEUE_SIZE messages behind: dropped


@dataclass(frozen=True)
class Message:
    seq: int  # the hub's count of messages received, for shared renders
    channel: str
    event: str | None
    data: Any
    id: Any


class Listener:
    """One SSE client's view of the hub: a bounded queue of Messages and signals."""

    def __init__(self, keys, events, size):
        self.keys = keys
        self.events = events
        self.queue: asyncio.Queue[Message | _Signal] = asyncio.Queue(size)
        self.dropped = False

    def deliver(self, item):
        if self.dropped:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)

    async def get(self, timeout):
        """The next Message, RESET or OVERFLOW; None after `timeout` seconds of silence."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


def _key_of(message):
    kind = message["type"]
    if kind in ("pmessage", "psubscribe", "punsubscribe"):
        name = message["pattern"] if kind == "pmessage" else message["channel"]
        return ("p", _text(name))
    return ("c", _text(message["channel"]))


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


class Hub:
    def __init__(self, url, *, queue_size=None):
        self.url = url
        self.queue_size = queue_size or QUEUE_SIZE
        # key ("c", channel) | ("p", pattern) -> {event filter (frozenset | None) -> listeners}
        self.listeners = {}
        self.confirmed = {}  # key -> asyncio.Event, set once Redis confirmed the subscription
        self.seq = 0
        self.connects = 0
        self._lock = asyncio.Lock()  # (un)subscribe commands and (re)connects, one at a time
        self._client = self._pubsub = None
        self._reader = None
        self._reset_pending = False
        self._renders = OrderedDict()  # key -> (seq, monotonic start, future)
        self._tasks = set()

    # ---- listeners ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def listen(self, *, channels=(), patterns=(), events=None):
        """A Listener for these channels and patterns (only `events`, if given), subscribed
        and confirmed by Redis when it is entered (or after CONFIRM_TIMEOUT when Redis is
        away: a RESET follows once it is back)."""
        keys = tuple([("c", c) for c in channels] + [("p", p) for p in patterns])
        listener = Listener(keys, frozenset(events) if events else None, self.queue_size)
        try:
            await self._add(listener)
            yield listener
        finally:
            self._remove(listener)

    async def _add(self, listener):
        async with self._lock:
            new = []
            for key in listener.keys:
                groups = self.listeners.setdefault(key, {})
                if not any(groups.values()):
                    new.append(key)
                    self.confirmed.setdefault(key, asyncio.Event())
                groups.setdefault(listener.events, set()).add(listener)
            if new:
                # Nothing was heard on these keys until now, so a render made before may
                # be stale (the last listener left, then a change came unheard): count a
                # message, and the listener's first shared render is a fresh one.
                self.seq += 1
            if new and self._pubsub is not None:
                try:
                    await self._subscribe(new)
                except (RedisError, OSError) as exc:
                    log.warning("subscribing failed (%s); reconnecting", type(exc).__name__)
            self._ensure_reader()
        waits = [self.confirmed[key].wait() for key in listener.keys]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), CONFIRM_TIMEOUT)

    def _remove(self, listener):
        """Synchronous, so it also runs in a stream cancelled by a disconnect; the
        unsubscribe itself happens in a task."""
        emptied = False
        for key in listener.keys:
            groups = self.listeners.get(key, {})
            members = groups.get(listener.events)
            if members is not None:
                members.discard(listener)
                if not members:
                    del groups[listener.events]
            emptied = emptied or not groups
        if emptied:
            self._spawn(self._unsubscribe_idle())

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unsubscribe_idle(self):
        async with self._lock:
            idle = [key for key, groups in self.listeners.items() if not groups]
            for key in idle:
                del self.listeners[key]
                self.confirmed.pop(key, None)
            if self._pubsub is None or not idle:
                return
            with contextlib.suppress(RedisError, OSError):
                channels = [name for kind, name in idle if kind == "c"]
                patterns = [name for kind, name in idle if kind == "p"]
                if channels:
                    await self._pubsub.unsubscribe(*channels)
                if patterns:
                    await self._pubsub.punsubscribe(*patterns)

    # ---- the connection -----------------------------------------------------------------

    async def _subscribe(self, keys):
        await self._subscribe_on(self._pubsub, keys)

    async def _connect(self):
        """A fresh connection with every current key subscribed; returns its pub/sub.
        (pubsub_client retries nothing on its own: after a reconnect the streams must know
        to re-render.)"""
        client = pubsub_client(self.url, client_name=CLIENT_NAME)
        pubsub = client.pubsub()
        try:
            keys = [key for key, groups in self.listeners.items() if groups]
            if keys:
                await self._subscribe_on(pubsub, keys)
            else:
                await pubsub.connect()
        except BaseException:
            await self._close(client, pubsub)
            raise
        self._client, self._pubsub = client, pubsub
        self.connects += 1
        self._reset_pending = self.connects > 1
        if self._reset_pending and not keys:
            self._reset_pending = False
        return pubsub

    async def _subscribe_on(self, pubsub, keys):
        channels = [name for kind, name in keys if kind == "c"]
        patterns = [name for kind, name in keys if kind == "p"]
        if channels:
            await pubsub.subscribe(*channels)
        if patterns:
            await pubsub.psubscribe(*patterns)

    @staticmethod
    async def _close(client, pubsub):
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        with contextlib.suppress(Exception):
            await client.aclose()

    async def _disconnect(self):
        async with self._lock:
            client, pubsub = self._client, self._pubsub
            self._client = self._pubsub = None
            for event in self.confirmed.values():
                event.clear()
        if client is not None:
            await self._close(client, pubsub)

    def _ensure_reader(self):
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read())

    async def _read(self):
        """Connect, read, dispatch; on a Redis error drop the connection and reconnect with
        backoff (kept growing while connections keep dying young, so a flapping Redis is
        not hammered). Runs while the event loop does (idle without listeners)."""
        backoff, connected_at = BACKOFF_FIRST, 0.0
        try:
            while True:
                pubsub = self._pubsub
                if pubsub is None:
                    try:
                        async with self._lock:
                            pubsub = await self._connect()
                        connected_at = time.monotonic()
                    except (RedisError, OSError) as exc:
                        log.warning("Redis unreachable (%s); retrying", type(exc).__name__)
                        await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                        backoff = min(BACKOFF_CAP, backoff * 2)
                        continue
                try:
                    message = await pubsub.get_message(timeout=READ_TIMEOUT)
                except (RedisError, OSError, RuntimeError) as exc:
                    log.warning("Redis connection lost (%s); reconnecting", type(exc).__name__)
                    await self._disconnect()
                    if time.monotonic() - connected_at < BACKOFF_CAP:
                        await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                        backoff = min(BACKOFF_CAP, backoff * 2)
                    else:
                        backoff = BACKOFF_FIRST
                    continue
                if message is not None:
                    try:
                        self._dispatch(message)
                    except Exception:  # one odd message must not end every stream
                        log.exception("dropping a message the hub could not dispatch")
        finally:
            client, pubsub = self._client, self._pubsub
            self._client = self._pubsub = None
            if client is not None:
                await self._close(client, pubsub)

    def _dispatch(self, message):
        kind = message["type"]
        key = _key_of(message)
        if kind in ("subscribe", "psubscribe"):
            if (event := self.confirmed.get(key)) is not None:
                event.set()
            if self._reset_pending and all(e.is_set() for e in self.confirmed.values()):
                self._reset_pending = False
                self._broadcast(RESET)
            return
        if kind not in ("message", "pmessage"):
            return
        groups = self.listeners.get(key)
        if not groups:
            return
        fields = message_fields(message["data"])
        if fields is None:
            return
        self.seq += 1
        item = Message(self.seq, _text(message["channel"]), *fields)
        for events, members in list(groups.items()):
            if events is None or item.event in events:
                for listener in list(members):
                    listener.deliver(item)

    def _broadcast(self, signal):
        for groups in self.listeners.values():
            for members in groups.values():
                for listener in list(members):
                    listener.deliver(signal)

    # ---- shared renders -----------------------------------------------------------------

    async def shared(self, key, seq, render, *, max_age=None):
        """`await render()` once for every client that needs `key` as of message `seq`: a
        render started after message `seq` arrived already shows it, and is reused (if it
        started less than `max_age` seconds ago, for what no message announces)."""
        entry = self._renders.get(key)
        now = time.monotonic()
        if entry is None or entry[0] < seq or (max_age is not None and now - entry[1] > max_age):
            future = asyncio.ensure_future(render())
            entry = self._renders[key] = (self.seq, now, future)

            def forget(done, key=key):
                if done.cancelled() or done.exception() is not None:
                    current = self._renders.get(key)
                    if current is not None and current[2] is done:
                        del self._renders[key]

            future.add_done_callback(forget)
            while len(self._renders) > RENDERS_KEPT:
                self._renders.popitem(last=False)
        else:
            self._renders.move_to_end(key)
        return await asyncio.shield(entry[2])


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> {url: Hub}


def get_hub():
    """This event loop's hub for settings.REDIS_URL."""
    loop = asyncio.get_running_loop()
    by_url = _hubs.setdefault(loop, {})
    hub = by_url.get(settings.REDIS_URL)
    if hub is None:
        hub = by_url[settings.REDIS_URL] = Hub(settings.REDIS_URL)
    return hub
