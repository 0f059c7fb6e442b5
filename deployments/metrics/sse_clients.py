"""How many SSE clients are open, summed over the web processes.

Each web (uvicorn) process counts the streams it holds open (`opened()` / `closed()`, called
by sse_htmx.revocable, the one wrapper every followed stream goes through: pages and the
API). A reporter task on the process's event loop writes that count to a Redis key of the
process's own, `helmdeck:sse-clients:<host>:<pid>`, at once after a change (coalesced) and
again every REFRESH_SECONDS while streams stay open, with an expiry of TTL_SECONDS; at zero
it deletes the key and stops. `sse_clients_total(conn)` sums the keys for /metrics. A
process that dies without closing its streams is counted for at most TTL_SECONDS more: its
key expires; nothing is counted forever.

The Redis writes run in a thread (asyncio.to_thread, the per-process pooled client): a slow
or absent Redis never holds up the event loop that serves the streams.
"""

import asyncio
import contextlib
import functools
import logging
import os
import socket

from deployments.integrations.redis import RedisError, shared_client

KEY_PREFIX = "helmdeck:sse-clients:"
REFRESH_SECONDS = 15.0
TTL_SECONDS = 45
log = logging.getLogger(__name__)

_open = 0  # streams this process holds open
# event loop -> (reporter task, "changed" event); one loop per uvicorn process (tests have more)
_reporters: dict = {}


def process_key():
    return f"{KEY_PREFIX}{socket.gethostname()}:{os.getpid()}"


def open_here():
    """The streams this process holds open now."""
    return _open


def opened():
    """A stream of this process opened (call on the event loop that serves it)."""
    global _open
    _open += 1
    _wake()


def closed():
    global _open
    _open = max(0, _open - 1)
    _wake()


def _wake():
    loop = asyncio.get_running_loop()
    entry = _reporters.get(loop)
    if entry is None or entry[0].done():
        changed = asyncio.Event()
        task = loop.create_task(_report(changed))
        entry = _reporters[loop] = (task, changed)
        task.add_done_callback(functools.partial(_forget, loop))
    entry[1].set()


def _forget(loop, task):
    entry = _reporters.get(loop)
    if entry is not None and entry[0] is task:
        del _reporters[loop]


def _write(key, count):
    conn = shared_client()
    if count:
        conn.set(key, count, ex=TTL_SECONDS)
    else:
        conn.delete(key)


async def _report(changed):
    key = process_key()
    while True:
        changed.clear()
        count = _open
        try:
            await asyncio.to_thread(_write, key, count)
        except RedisError as exc:  # counted again at the next change or refresh
            log.debug("could not record the SSE client count (%s)", type(exc).__name__)
        if count == 0 and not changed.is_set():
            return  # nothing open: the key is gone; the next stream starts a reporter again
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), REFRESH_SECONDS)


def sse_clients_total(conn):
    """The open SSE clients of every live web process (their keys' sum); raises RedisError."""
    keys = list(conn.scan_iter(f"{KEY_PREFIX}*", count=100))
    if not keys:
        return 0
    total = 0
    for value in conn.mget(keys):
        # a key that expired between the scan and the read is None: not counted
        with contextlib.suppress(TypeError, ValueError):
            total += int(value)
    return total
