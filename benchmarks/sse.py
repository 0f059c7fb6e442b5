"""An asyncio SSE client (aiohttp, already in the venv) that timestamps what it receives.

Each `SSEClient` keeps every event as (perf_counter time, event name, data) and every
": heartbeat" comment's arrival time; a shared `Board` wakes whoever waits for "some client
received something" without polling. Arrival time is when the blank line ending the event
was read, as a browser's EventSource would dispatch it.
"""

import asyncio
import contextlib
import time

import aiohttp


class Board:
    """A change counter clients bump on every event; `wait_until(pred)` re-checks pred on
    each bump (or every `tick` seconds) until it holds or `timeout` passes."""

    def __init__(self):
        self._changed = asyncio.Event()

    def bump(self):
        self._changed.set()

    async def wait_until(self, predicate, timeout, tick=0.05):
        deadline = time.perf_counter() + timeout
        while not predicate():
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, tick))
        return True


class SSEClient:
    def __init__(self, session, url, board=None, name=""):
        self.session, self.url, self.board, self.name = session, url, board or Board(), name
        self.events = []  # (t, event, data)
        self.heartbeats = []  # t
        self.status = None
        self.error = ""
        self.opened_at = None
        self.task = None

    def start(self):
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self):
        self.opened_at = time.perf_counter()
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
            async with self.session.get(
                self.url, timeout=timeout, headers={"Accept": "text/event-stream"}
            ) as resp:
                self.status = resp.status
                self.board.bump()
                if resp.status != 200:
                    self.error = f"HTTP {resp.status}"
                    return
                await self._read(resp)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, the benchmark reports it
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.board.bump()

    async def _read(self, resp):
        event, data = "message", []
        async for raw in resp.content:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if data:
                    self.events.append((time.perf_counter(), event, "\n".join(data)))
                    self.board.bump()
                event, data = "message", []
            elif line.startswith(":"):
                if "heartbeat" in line:
                    self.heartbeats.append(time.perf_counter())
                    self.board.bump()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))

    def named(self, name, since=0.0):
        return [(t, d) for t, e, d in self.events if e == name and t >= since]

    async def close(self):
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


def session(cookies):
    """One aiohttp session for many clients: no connection limit, cookies sent to loopback."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    return aiohttp.ClientSession(connector=connector, cookies=cookies)


async def open_clients(sess, url, count, board, *, batch=50):
    """`count` clients, opened `batch` at a time, each waited for until its first event."""
    clients = []
    for start in range(0, count, batch):
        group = [
            SSEClient(sess, url, board, f"c{i}").start()
            for i in range(start, min(count, start + batch))
        ]
        clients += group
        ok = await board.wait_until(lambda g=group: all(c.events or c.error for c in g), 60)
        if not ok:
            break
    return clients


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients))
