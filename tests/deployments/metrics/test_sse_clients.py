"""Each web process's open SSE clients in a Redis key of its own, refreshed while streams
are open, deleted at zero, expiring when the process dies; /metrics sums them.
(tests/deployments/views/test_metrics.py counts real streams through uvicorn.)"""

import asyncio

import pytest

from deployments.metrics import sse_clients

pytestmark = pytest.mark.integration


async def _settled(conn, want, timeout=5.0):
    """The process's key once it says `want` (None: gone)."""
    key = sse_clients.process_key()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(conn.get, key)
        value = None if value is None else int(value)
        if value == want:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"key is {value}, not {want}"
        await asyncio.sleep(0.02)


def test_it_writes_this_process_count_and_deletes_it_at_zero(metrics_redis):
    async def run():
        sse_clients.opened()
        sse_clients.opened()
        await _settled(metrics_redis, 2)
        assert 0 < metrics_redis.ttl(sse_clients.process_key()) <= sse_clients.TTL_SECONDS
        sse_clients.closed()
        await _settled(metrics_redis, 1)
        sse_clients.closed()
        await _settled(metrics_redis, None)
        assert sse_clients.open_here() == 0

    asyncio.run(run())


def test_it_refreshes_the_expiry_while_streams_stay_open(metrics_redis, monkeypatch):
    monkeypatch.setattr(sse_clients, "REFRESH_SECONDS", 0.2)
    monkeypatch.setattr(sse_clients, "TTL_SECONDS", 1)

    async def run():
        sse_clients.opened()
        try:
            await _settled(metrics_redis, 1)
            await asyncio.sleep(2.5)  # more than the TTL: only a refresh keeps the key
            assert await asyncio.to_thread(metrics_redis.get, sse_clients.process_key()) == b"1"
        finally:
            sse_clients.closed()
        await _settled(metrics_redis, None)

    asyncio.run(run())


def test_a_dead_process_is_not_counted_once_its_key_expires(metrics_redis):
    live = f"{sse_clients.KEY_PREFIX}web-a:1"
    dead = f"{sse_clients.KEY_PREFIX}web-b:2"
    metrics_redis.set(live, 4, ex=30)
    metrics_redis.set(dead, 3, px=300)  # its last refresh, before it was killed
    assert sse_clients.sse_clients_total(metrics_redis) == 7
    asyncio.run(asyncio.sleep(0.5))
    assert sse_clients.sse_clients_total(metrics_redis) == 4


def test_a_redis_outage_costs_the_count_not_the_stream(metrics_redis, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there

    async def run():
        sse_clients.opened()
        await asyncio.sleep(0.3)  # the reporter tried and failed, quietly
        sse_clients.closed()
        assert sse_clients.open_here() == 0
        await asyncio.sleep(0.3)

    asyncio.run(run())
