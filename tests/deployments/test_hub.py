"""deployments.hub against real Redis: one connection and one subscription per process
whatever the number of clients, fan-out with event filters, a slow client dropped without
holding up the others, shared renders, and a reconnect (RESET) after Redis restarts."""

import asyncio
import json
import secrets
import shutil
import subprocess
import time

import pytest
import redis

from deployments.hub import CLIENT_NAME, OVERFLOW, RESET, Hub, Message
from tests.conftest import free_port, stop_process
from tests.deployments.views.test_streams import in_own_loop

pytestmark = pytest.mark.integration


def publish(url, channel, event, data=None, event_id=None):
    conn = redis.Redis.from_url(url)
    try:
        payload = json.dumps({"event": event, "data": data, "id": event_id})
        return conn.publish(channel, payload)
    finally:
        conn.close()


def hub_connections(url):
    conn = redis.Redis.from_url(url)
    try:
        return sum(1 for c in conn.client_list() if c.get("name") == CLIENT_NAME)
    finally:
        conn.close()


async def until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_it_fans_one_subscription_out_to_every_listener(redis_url):
    channel = f"helmdeck:test:{time.monotonic_ns()}"

    async def scenario():
        hub = Hub(redis_url)
        before = hub_connections(redis_url)
        async with contextlib_stack(hub, 50, channels=[channel]) as listeners:
            assert hub_connections(redis_url) - before == 1
            numsub = redis.Redis.from_url(redis_url).pubsub_numsub(channel)
            assert numsub == [(channel.encode(), 1)]
            assert publish(redis_url, channel, "pod", {"n": 1}, 7) == 1
            got = [await listener.get(30) for listener in listeners]
        assert all(isinstance(m, Message) for m in got)
        assert {(m.event, m.data["n"], m.id, m.channel) for m in got} == {("pod", 1, 7, channel)}
        # the last listener gone: unsubscribed
        await until(lambda: redis.Redis.from_url(redis_url).pubsub_numsub(channel)[0][1] == 0)

    in_own_loop(scenario)


def contextlib_stack(hub, count, **kwargs):
    import contextlib

    @contextlib.asynccontextmanager
    async def stack():
        async with contextlib.AsyncExitStack() as exits:
            yield [await exits.enter_async_context(hub.listen(**kwargs)) for _ in range(count)]

    return stack()


def test_it_filters_events_and_matches_patterns(redis_url):
    prefix = f"helmdeck:test{time.monotonic_ns()}"

    async def scenario():
        hub = Hub(redis_url)
        async with (
            hub.listen(patterns=[f"{prefix}:*"], events={"status"}) as status_only,
            hub.listen(channels=[f"{prefix}:1"]) as everything,
        ):
            publish(redis_url, f"{prefix}:1", "log", {"text": "a line"}, 1)
            publish(redis_url, f"{prefix}:1", "status", {"status": "failed"})
            first, second = await everything.get(30), await everything.get(30)
            assert (first.event, second.event) == ("log", "status")
            only = await status_only.get(30)
            assert (only.event, only.channel) == ("status", f"{prefix}:1")
            assert await status_only.get(0.3) is None

    in_own_loop(scenario)


def test_it_drops_a_client_that_falls_behind_and_serves_the_others(redis_url):
    channel = f"helmdeck:test:{time.monotonic_ns()}"

    async def scenario():
        hub = Hub(redis_url, queue_size=5)
        async with hub.listen(channels=[channel]) as slow, hub.listen(channels=[channel]) as fast:
            received = []

            async def consume():
                while len(received) < 20:
                    received.append(await fast.get(30))

            consumer = asyncio.ensure_future(consume())
            for n in range(20):
                publish(redis_url, channel, "log", None, n)
                await asyncio.sleep(0.01)
            await asyncio.wait_for(consumer, 10)
            assert [m.id for m in received] == list(range(20))
            assert slow.dropped and await slow.get(1) is OVERFLOW

    in_own_loop(scenario)


def test_it_renders_once_for_all_clients_of_the_same_message(redis_url):
    async def scenario():
        hub = Hub(redis_url)
        calls = []

        async def render():
            calls.append(1)
            await asyncio.sleep(0.05)
            return f"html {len(calls)}"

        first = await asyncio.gather(*[hub.shared("row", 0, render) for _ in range(100)])
        assert set(first) == {"html 1"} and len(calls) == 1
        hub.seq = 1  # a message arrived after that render started: render again, once
        second = await asyncio.gather(*[hub.shared("row", 1, render) for _ in range(100)])
        assert set(second) == {"html 2"} and len(calls) == 2
        assert await hub.shared("row", 1, render, max_age=60) == "html 2"  # still fresh
        await asyncio.sleep(0.05)
        assert await hub.shared("row", 1, render, max_age=0.01) == "html 3"  # too old

    in_own_loop(scenario)


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own, which it may stop and start (never the shared one)."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    assert binary, "redis-server is installed with the system packages"
    port = free_port()
    password = secrets.token_hex(16)  # as every Redis Helmdeck starts: required, on stdin
    procs = []

    def start():
        proc = subprocess.Popen(
            [binary, "-", "--port", str(port), "--save", "", "--appendonly", "no"]
            + ["--dir", str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc.stdin.write(f"requirepass {password}\n".encode())
        proc.stdin.close()
        procs.append(proc)
        conn = redis.Redis(port=port, password=password, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                conn.ping()
                return proc
            except redis.RedisError:
                assert time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)

    start()
    yield {"url": f"redis://:{password}@127.0.0.1:{port}/0", "start": start, "procs": procs}
    for proc in procs:
        stop_process(proc, timeout=5)


def test_it_reconnects_after_redis_restarts_and_tells_listeners_to_start_over(private_redis):
    url = private_redis["url"]
    channel = "helmdeck:profile:1"

    async def scenario():
        hub = Hub(url)
        async with hub.listen(channels=[channel]) as listener:
            publish(url, channel, "pod", None, 1)
            assert (await listener.get(30)).id == 1
            stop_process(private_redis["procs"][-1], timeout=5)  # Redis goes away
            await asyncio.sleep(0.5)
            await asyncio.to_thread(private_redis["start"])  # and comes back
            assert await listener.get(15) is RESET
            assert hub.connects >= 2
            publish(url, channel, "pod", None, 2)
            assert (await listener.get(30)).id == 2

    in_own_loop(scenario)


def test_it_skips_a_message_it_cannot_read_and_keeps_going(redis_url):
    channel = f"helmdeck:test:{time.monotonic_ns()}"

    async def scenario():
        hub = Hub(redis_url)
        async with hub.listen(channels=[channel]) as listener:
            conn = redis.Redis.from_url(redis_url)
            conn.publish(channel, b"not json")
            conn.publish(channel, b"[1, 2]")
            conn.close()
            publish(redis_url, channel, "pod", None, 3)
            assert (await listener.get(30)).id == 3

    in_own_loop(scenario)


def test_a_render_made_before_a_gap_without_listeners_is_not_reused(redis_url):
    """The last listener of a channel leaves (the hub unsubscribes), a change is published
    unheard, a new listener comes: its first render must be fresh, not the one cached
    before the gap (a profile page opened after Sleep showed the pods from before it)."""
    channel = f"helmdeck:test:{time.monotonic_ns()}"

    async def scenario():
        hub = Hub(redis_url)
        state = {"pods": "3 pods"}

        async def render():
            return state["pods"]

        async with hub.listen(channels=[channel]):
            assert await hub.shared("pods", hub.seq, render) == "3 pods"
        await until(lambda: redis.Redis.from_url(redis_url).pubsub_numsub(channel)[0][1] == 0)
        state["pods"] = "no pods"
        assert publish(redis_url, channel, "pod") == 0  # nobody heard it
        async with hub.listen(channels=[channel]):
            assert await hub.shared("pods", hub.seq, render) == "no pods"

    in_own_loop(scenario)
