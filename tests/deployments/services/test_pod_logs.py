"""Merging, positions and resuming of pod logs, against a fake cluster that serves logs
the way the kubelet does (timestamps, sinceTime truncated to whole seconds, tailLines,
follow streams that stay open)."""

import asyncio
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployments.integrations import IntegrationError
from deployments.integrations.kube import PodRef
from deployments.services import pod_logs
from deployments.services.pod_logs import (
    Cursor,
    LogTarget,
    PodNotFound,
    decode_token,
    encode_token,
    normalize_ts,
    read_tail,
    resolve_pods,
    split_line,
)
from deployments.services.pod_logs_follow import Followed


def ts(second, nanos=0):
    return f"2026-01-01T00:00:{second:02d}.{nanos:09d}Z"


class FakeStream:
    def __init__(self, cluster, pod, lines):
        self.cluster, self.pod = cluster, pod
        self.chunks = queue.Queue()
        self.closed = False
        if lines:
            self.chunks.put("".join(f"{s} {t}\n" for s, t in lines).encode())

    def __iter__(self):
        while not self.closed:
            try:
                chunk = self.chunks.get(timeout=0.05)
            except queue.Empty:
                continue
            if chunk is None:
                return
            yield chunk

    def interrupt(self):
        self.closed = True

    def close(self):
        self.closed = True


class FakeCluster:
    """log_pods / pod_log / pod_log_follow like deployments.integrations.kube.Kube."""

    def __init__(self, **pods):
        self.pods = {
            name: PodRef(name, component, "app", "Running") for name, component in pods.items()
        }
        self.logs = {name: [] for name in pods}
        self.streams = []
        self.lock = threading.Lock()
        self.fail_listing = False

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def write(self, pod, stamp, *texts):
        with self.lock:
            for text in texts:
                self.logs[pod].append((stamp, text))
            for stream in self.streams:
                if stream.pod == pod and not stream.closed:
                    stream.chunks.put("".join(f"{stamp} {t}\n" for t in texts).encode())

    def end_streams(self, pod):
        for stream in self.streams:
            if stream.pod == pod:
                stream.chunks.put(None)

    def log_pods(self, namespace, release, component=None):
        if self.fail_listing:
            raise IntegrationError("the cluster is unreachable", permanent=False)
        return [p for p in self.pods.values() if component in (None, p.component)]

    def _select(self, pod, tail, since_time):
        lines = self.logs[pod]
        if since_time:  # the kubelet compares with a whole-second sinceTime
            lines = [(s, t) for s, t in lines if s[:19] >= since_time[:19]]
        if tail is not None:
            lines = lines[-tail:]
        return list(lines)

    def pod_log(self, namespace, pod, *, container, tail=None, since_time=None, previous=False):
        with self.lock:
            lines = self._select(pod, tail, since_time)
        return "".join(f"{s} {t}\n" for s, t in lines).encode()

    def pod_log_follow(self, namespace, pod, *, container, tail=None, since_time=None):
        with self.lock:
            stream = FakeStream(self, pod, self._select(pod, tail, since_time))
            self.streams.append(stream)
        return stream


ONE = LogTarget("ns", "shop", pod="web-1")
ALL = LogTarget("ns", "shop", component="web")


def texts(tail):
    return [text for _pod, text in tail.lines]


def test_it_normalizes_timestamps_to_a_comparable_form():
    assert normalize_ts("2026-01-01T00:00:01.5Z") == "2026-01-01T00:00:01.500000000Z"
    assert normalize_ts("2026-01-01T00:00:01Z") == "2026-01-01T00:00:01.000000000Z"
    assert normalize_ts("2026-01-01T02:00:01.25+02:00") == "2026-01-01T00:00:01.250000000Z"
    assert normalize_ts(ts(1, 7)) == ts(1, 7)
    assert split_line(f"{ts(3)} hello  world") == (ts(3), "hello  world")
    assert split_line("no stamp here") == ("", "no stamp here")


def test_it_skips_lines_at_or_before_a_position_with_equal_timestamps():
    cursor = Cursor()
    lines = [ts(1, 5), ts(2), ts(2), ts(2), ts(3)]
    assert [cursor.take(s) for s in lines[:3]] == [True, True, True]
    assert cursor.position == (ts(2), 2)
    resumed = Cursor(*cursor.position)
    resumed.restart()  # a read from since_time(ts(2)): the whole second again
    assert [resumed.take(s) for s in lines[1:]] == [False, False, True, True]
    assert resumed.position == (ts(3), 1)


def test_it_keeps_the_position_for_a_line_stamped_out_of_order():
    cursor = Cursor()
    assert cursor.take(ts(5)) and cursor.take(ts(4))  # stderr stamped a hair earlier
    assert cursor.position == (ts(5), 1)


def test_it_round_trips_tokens_and_rejects_garbage():
    positions = {"web-1": (ts(2), 3), "web-2": (ts(9, 1), 1)}
    assert decode_token(encode_token(positions)) == positions
    assert encode_token({}) == "-" and decode_token("-") == {}
    assert decode_token("") is None and decode_token(None) is None
    assert decode_token("web-1@notatime#1") is None
    assert decode_token("web-1@" + ts(1) + "#x") is None
    # dates at the calendar's edges overflow when moved to UTC: unreadable, not a 500
    assert decode_token("x@0001-01-01T00:00:00+05:00#0") is None
    assert decode_token("x@9999-12-31T23:59:59.5-05:00#0") is None
    assert split_line("0001-01-01T00:00:00+05:00 hello") == ("", "0001-01-01T00:00:00+05:00 hello")
    assert decode_token("@" + ts(1) + "#1") is None


def test_it_finds_pods_by_label_and_refuses_a_stranger():
    cluster = FakeCluster(**{"web-1": "web", "web-2": "web", "db-1": "db"})
    assert [p.name for p in resolve_pods(cluster, ALL)] == ["web-1", "web-2"]
    assert [p.name for p in resolve_pods(cluster, ONE)] == ["web-1"]
    with pytest.raises(PodNotFound):
        resolve_pods(cluster, LogTarget("ns", "shop", pod="other-pod"))


def test_it_merges_pods_by_time_and_cuts_to_the_tail():
    cluster = FakeCluster(**{"web-1": "web", "web-2": "web"})
    cluster.write("web-1", ts(1), "a1")
    cluster.write("web-2", ts(2), "b2")
    cluster.write("web-1", ts(3), "a3")
    cluster.write("web-2", ts(4), "b4")
    pods = resolve_pods(cluster, ALL)
    tail = read_tail(cluster, ALL, pods, tail=3)
    assert tail.lines == [("web-2", "b2"), ("web-1", "a3"), ("web-2", "b4")]
    # the token covers both pods, so a resume shows only what comes after
    token = tail.batches[-1][1]
    assert decode_token(token) == {"web-1": (ts(3), 1), "web-2": (ts(4), 1)}
    cluster.write("web-1", ts(4), "a4")
    cluster.write("web-2", ts(5), "b5")
    resumed = read_tail(cluster, ALL, pods, positions=decode_token(token))
    assert resumed.lines == [("web-1", "a4"), ("web-2", "b5")]


def test_it_resumes_inside_a_group_of_equal_timestamps_without_loss_or_duplicates():
    cluster = FakeCluster(**{"web-1": "web"})
    cluster.write("web-1", ts(7, 100), "x", "y")
    pods = resolve_pods(cluster, ONE)
    first = read_tail(cluster, ONE, pods)
    cluster.write("web-1", ts(7, 100), "z")  # same nanosecond as y
    cluster.write("web-1", ts(8), "w")
    again = read_tail(cluster, ONE, pods, positions=decode_token(first.batches[-1][1]))
    assert texts(first) == ["x", "y"] and texts(again) == ["z", "w"]


def test_it_filters_lines_but_moves_past_the_hidden_ones():
    cluster = FakeCluster(**{"web-1": "web"})
    cluster.write("web-1", ts(1), "GET /health 200", "POST /todos 500", "GET /ready 200")
    pods = resolve_pods(cluster, ONE)
    tail = read_tail(cluster, ONE, pods, q="post")
    assert texts(tail) == ["POST /todos 500"]
    assert decode_token(tail.batches[-1][1]) == {"web-1": (ts(1), 3)}


def test_it_sends_a_long_catch_up_in_batches_each_with_its_position(monkeypatch):
    monkeypatch.setattr(pod_logs, "BATCH_LINES", 2)
    cluster = FakeCluster(**{"web-1": "web"})
    for second in range(5):
        cluster.write("web-1", ts(second), f"line {second}")
    tail = read_tail(cluster, ONE, resolve_pods(cluster, ONE), positions={})
    assert [len(lines) for lines, _ in tail.batches] == [2, 2, 1]
    assert [decode_token(token)["web-1"] for _, token in tail.batches] == [
        (ts(1), 1),
        (ts(3), 1),
        (ts(4), 1),
    ]


def test_a_token_of_an_empty_log_resumes_from_the_first_line():
    cluster = FakeCluster(**{"web-1": "web"})
    pods = resolve_pods(cluster, ONE)
    first = read_tail(cluster, ONE, pods)
    assert first.lines == [] and first.batches == [([], "-")]
    for second in range(300):
        cluster.write("web-1", ts(second % 60, second), f"l{second}")
    again = read_tail(cluster, ONE, pods, positions=decode_token("-"))
    assert len(again.lines) == 300  # not cut to the default tail of 200


# ---- following -------------------------------------------------------------------------------


def collect(followed, until, *, timeout=10):
    """Run followed.events() until `until(events)` holds; the events, in order."""

    async def run():
        seen = []
        agen = followed.events()
        try:
            async with asyncio.timeout(timeout):
                async for event in agen:
                    seen.append(event)
                    if until(seen):
                        return seen
        finally:
            await agen.aclose()
        return seen

    # a thread of its own: a session fixture (Playwright) may hold this thread's loop
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def shown(events):
    import re

    html = "".join(e[1] for e in events if e[0] == "lines")
    line = r'<div class="log-line">(?:<span class="log-pod">[^<]*</span> )?([^<]*)</div>'
    return re.findall(line, html)


def writer(cluster, pod, *lines, delay=0.2):
    def run():
        time.sleep(delay)
        for stamp, text in lines:
            cluster.write(pod, stamp, text)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def pod_log_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pod-log ")]


def test_it_follows_new_lines_and_its_last_token_resumes_exactly():
    cluster = FakeCluster(**{"web-1": "web"})
    cluster.write("web-1", ts(1), "old")
    pods = resolve_pods(cluster, ONE)
    tail = read_tail(cluster, ONE, pods)
    writer(cluster, "web-1", (ts(2), "new 1"), (ts(2), "new 2"), (ts(3), "new 3"))
    followed = Followed(cluster, ONE, pods, tail.cursors, relist=60)
    events = collect(followed, lambda ev: len(shown(ev)) >= 3)
    assert shown(events) == ["new 1", "new 2", "new 3"]
    token = [e for e in events if e[0] == "lines"][-1][2]
    cluster.write("web-1", ts(3), "new 4")
    resumed = read_tail(cluster, ONE, pods, positions=decode_token(token))
    assert texts(resumed) == ["new 4"]


def test_it_batches_lines_that_arrive_together_into_one_event():
    cluster = FakeCluster(**{"web-1": "web"})
    pods = resolve_pods(cluster, ONE)
    followed = Followed(cluster, ONE, pods, read_tail(cluster, ONE, pods).cursors, relist=60)
    writer(cluster, "web-1", *[(ts(1, n), f"burst {n}") for n in range(50)], delay=0.3)
    events = collect(followed, lambda ev: len(shown(ev)) >= 50)
    assert shown(events) == [f"burst {n}" for n in range(50)]
    assert len([e for e in events if e[0] == "lines"]) < 50


def test_it_closes_every_stream_and_ends_its_threads_when_the_client_goes():
    cluster = FakeCluster(**{"web-1": "web", "web-2": "web"})
    pods = resolve_pods(cluster, ALL)
    followed = Followed(cluster, ALL, pods, read_tail(cluster, ALL, pods).cursors, relist=60)
    writer(cluster, "web-2", (ts(1), "hello"))
    events = collect(followed, lambda ev: shown(ev) == ["hello"])
    assert "web-2</span> hello" in events[0][1]  # merged lines carry their pod's name
    assert len(cluster.streams) == 2 and all(s.closed for s in cluster.streams)
    deadline = time.monotonic() + 10
    while pod_log_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pod_log_threads() == []


def test_it_follows_a_restarted_container_from_where_it_was():
    cluster = FakeCluster(**{"web-1": "web"})
    cluster.write("web-1", ts(1), "before")
    pods = resolve_pods(cluster, ONE)
    tail = read_tail(cluster, ONE, pods)
    followed = Followed(cluster, ONE, pods, tail.cursors, relist=60, restart=0.05)

    def restart():
        time.sleep(0.2)
        cluster.write("web-1", ts(2), "first run")
        time.sleep(0.2)
        cluster.end_streams("web-1")  # the container exited; the kubelet ends the stream
        cluster.write("web-1", ts(3), "second run")

    threading.Thread(target=restart, daemon=True).start()
    events = collect(followed, lambda ev: "second run" in shown(ev))
    assert shown(events) == ["first run", "second run"]
    assert len(cluster.streams) == 2


def test_it_ends_when_the_pod_is_deleted():
    cluster = FakeCluster(**{"web-1": "web"})
    pods = resolve_pods(cluster, ONE)
    followed = Followed(cluster, ONE, pods, read_tail(cluster, ONE, pods).cursors, relist=0.1)
    del cluster.pods["web-1"]
    events = collect(followed, lambda ev: ev[-1][0] == "end")
    assert events[-1] == ("end", "pod web-1 was deleted")


def test_it_picks_up_a_new_pod_of_the_component_from_its_first_line():
    cluster = FakeCluster(**{"web-1": "web"})
    pods = resolve_pods(cluster, ALL)
    followed = Followed(cluster, ALL, pods, read_tail(cluster, ALL, pods).cursors, relist=0.1)
    cluster.pods["web-2"] = PodRef("web-2", "web", "app", "Running")
    cluster.logs["web-2"] = [(ts(1), "boot 1"), (ts(2), "boot 2")]
    events = collect(followed, lambda ev: len(shown(ev)) >= 2)
    assert shown(events) == ["boot 1", "boot 2"]


def test_it_keeps_following_while_the_cluster_does_not_answer_a_relist():
    cluster = FakeCluster(**{"web-1": "web"})
    pods = resolve_pods(cluster, ONE)
    followed = Followed(cluster, ONE, pods, read_tail(cluster, ONE, pods).cursors, relist=0.05)
    cluster.fail_listing = True
    writer(cluster, "web-1", (ts(1), "still here"), delay=0.4)
    events = collect(followed, lambda ev: shown(ev) == ["still here"])
    assert not [e for e in events if e[0] == "end"]


def test_it_sends_heartbeats_while_quiet_and_hides_filtered_lines():
    cluster = FakeCluster(**{"web-1": "web"})
    pods = resolve_pods(cluster, ONE)
    followed = Followed(
        cluster,
        ONE,
        pods,
        read_tail(cluster, ONE, pods).cursors,
        q="ERROR",
        relist=60,
        heartbeat=0.1,
    )
    writer(cluster, "web-1", (ts(1), "info: fine"), (ts(2), "error: broken"))
    events = collect(followed, lambda ev: shown(ev) and ev[-1][0] == "heartbeat")
    assert shown(events) == ["error: broken"]
    assert ("heartbeat",) in events


def test_take_block_agrees_with_taking_line_by_line():
    import random

    rng = random.Random(5)
    for _ in range(500):
        stamps = sorted(ts(rng.randint(1, 4), rng.randint(0, 2)) for _ in range(rng.randint(0, 12)))
        if stamps and rng.random() < 0.3:  # now and then a line stamped out of order
            stamps.insert(rng.randrange(len(stamps)), ts(rng.randint(1, 4)))
        start = (ts(rng.randint(1, 4), rng.randint(0, 2)), rng.randint(1, 3))
        at = start if rng.random() < 0.7 else (None, 0)
        one, block = Cursor(*at), Cursor(*at)
        one.restart()
        block.restart()
        taken = [n for n, stamp in enumerate(stamps) if one.take(stamp)]
        first = block.take_block(stamps)
        assert taken == list(range(first, len(stamps))), (stamps, at)
        assert block.position == one.position, (stamps, at)


def test_split_block_and_block_html_match_the_line_by_line_forms():
    block = f'{ts(1, 1)} a <b>\n{ts(1, 2)} \n{ts(1, 3)} it\'s "quoted"'
    assert pod_logs.split_block(block) == [
        (ts(1, 1), "a <b>"),
        (ts(1, 2), ""),
        (ts(1, 3), 'it\'s "quoted"'),
    ]
    texts = [text for _, text in pod_logs.split_block(block)]
    for prefix in (False, True):
        expected = "".join(pod_logs.line_html("web-1", t, prefix=prefix) for t in texts)
        assert pod_logs.block_html("web-1", texts, prefix=prefix) == expected
    odd = f"{ts(1)} fixed\n2026-01-01T00:00:02.5Z short stamp\nno stamp"
    assert pod_logs.split_block(odd) == [
        (ts(1), "fixed"),
        ("2026-01-01T00:00:02.500000000Z", "short stamp"),
        ("", "no stamp"),
    ]


def test_a_line_with_unusual_separators_stays_one_line_on_both_paths():
    cluster = FakeCluster(**{"web-1": "web"})
    cluster.write("web-1", ts(1), "a\u2028b\x1cc", "next")
    pods = resolve_pods(cluster, ONE)
    assert texts(read_tail(cluster, ONE, pods)) == ["a\u2028b\x1cc", "next"]
    followed = Followed(cluster, ONE, pods, {}, relist=60)
    events = collect(followed, lambda ev: len(shown(ev)) >= 2)
    assert shown(events) == ["a\u2028b\x1cc", "next"]


@given(st.text(max_size=80))
@settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 200)), deadline=None)
def test_decode_token_never_raises_and_round_trips(token):
    positions = decode_token(token)
    assert positions is None or decode_token(encode_token(positions)) in (positions, None)


def test_a_full_mailbox_makes_the_reader_wait_and_loses_nothing():
    from types import SimpleNamespace

    from deployments.services.pod_logs_follow import _Mailbox

    async def run():
        mailbox = _Mailbox(asyncio.get_running_loop(), limit=10)
        follower = SimpleNamespace(stopped=False)
        done = []

        def reader():
            for n in range(3):
                mailbox.put(("lines", "web-1", f"batch {n}", None), 8, follower)
                done.append(n)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while len(done) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # nothing taken yet: two fit, the third waits for room
        assert done == [0, 1]
        first = await mailbox.take(5)
        rest = []
        while len(first) + len(rest) < 3:
            rest += await mailbox.take(5)
        thread.join(5)
        return [item[2] for item in first + rest], done

    with ThreadPoolExecutor(max_workers=1) as pool:
        items, done = pool.submit(asyncio.run, run()).result()
    assert items == ["batch 0", "batch 1", "batch 2"] and done == [0, 1, 2]
