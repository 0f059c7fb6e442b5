"""deployments.events against real Redis: two panels that share one Redis server, each with
its own database number, do not hear each other's events (Redis has one pub/sub namespace
for all of a server's databases; the channel names carry the database)."""

import time

import pytest
import redis

from deployments import events
from tests.fixtures.parallel import with_database

pytestmark = pytest.mark.integration


def heard(pubsub, timeout=1.0):
    deadline = time.monotonic() + timeout
    messages = []
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message:
            messages.append(message["data"])
    return messages


def test_a_panel_hears_only_its_own_database_s_events(redis_url, settings):
    panel_a, panel_b = with_database(redis_url, 14), with_database(redis_url, 15)
    settings.REDIS_URL = panel_b
    channel_b, pattern_b = events.channel("release", 1), events.pattern("release")
    settings.REDIS_URL = panel_a
    channel_a = events.channel("release", 1)
    assert channel_a != channel_b
    assert channel_a == "helmdeck:14:release:1"

    listener = redis.Redis.from_url(panel_b)
    pubsub = listener.pubsub()
    pubsub.subscribe(channel_b)
    pubsub.psubscribe(pattern_b)  # as the status page listens
    try:
        assert heard(pubsub, 0.3) == []  # subscribed
        events.publish(channel_a, "line", {"text": "from panel a"}, 1)  # settings: panel a
        assert heard(pubsub) == []

        settings.REDIS_URL = panel_b
        events.publish(events.channel("release", 1), "line", {"text": "from panel b"}, 1)
        got = heard(pubsub)
        assert len(got) == 2 and all(b"from panel b" in m for m in got)  # channel and pattern
    finally:
        pubsub.close()
        listener.close()
