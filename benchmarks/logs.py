"""4. Log streaming: a sandbox pod writes lines at a rising rate; lines per second
delivered to one SSE client and time to first line, against `kubectl logs -f`.

Contract of the endpoint (built on branch h/logs): GET
/profiles/<name>/logs/stream/?pod=<pod>&tail=N -> SSE events `line`, each carrying the HTML
of one or more `<div class="log-line">` lines. When the URL does not resolve here, the
Helmdeck rows say MISS "endpoint missing" and kubectl's figures are still measured.

Lines are appended to the kwok log file (CRI format, as scripts/sandbox/write-log does) in
10 ms batches at 200, 1,000, 5,000 and 20,000 lines/s; both readers are attached (with
tail=1: h/logs accepts 1..10000) before writing.
A phase's delivered rate is its lines received / max(phase length, last arrival - start).
"""

import asyncio
import contextlib
import re
import subprocess
import time
from datetime import UTC, datetime

from benchmarks import cluster, harness, sse
from benchmarks.report import Goal, Result, median, percentile

NAME = "logs"
TITLE = "Log streaming: lines/s and first line, vs kubectl logs -f"
POD = "bench-log-0"
LINE = re.compile(r"bench-line (\d+) (\d+)")


class Tally:
    """Arrival time of each (phase, seq) a reader saw, and when it saw its first line."""

    def __init__(self):
        self.seen, self.first = {}, None

    def take(self, text, now):
        if self.first is None and text.strip():
            self.first = now
        for phase, seq in LINE.findall(text):
            self.seen.setdefault((int(phase), int(seq)), now)


async def _kubectl(ns, tail, tally, stop):
    proc = await asyncio.create_subprocess_exec(
        cluster.kubectl_bin(),
        "logs",
        "-f",
        POD,
        "-n",
        ns,
        f"--tail={tail}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                raw = await asyncio.wait_for(proc.stdout.readline(), 0.2)
                if not raw:
                    break
                tally.take(raw.decode(), time.perf_counter())
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _sse(sess, url, tally, stop):
    board = sse.Board()
    client = sse.SSEClient(sess, url, board).start()
    done = 0
    while not stop.is_set() and not client.task.done():
        await board.wait_until(lambda n=done: len(client.events) > n or stop.is_set(), 0.5)
        for t, event, data in client.events[done:]:
            if event == "line":
                tally.take(data, t)
        done = len(client.events)
    await client.close()
    return client.status, client.error


def _append(path, lines):
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with path.open("a") as f:
        f.write("".join(f"{stamp} stdout F {line}\n" for line in lines))


def _writer(path, phases, seconds, written):
    """Write each phase's lines at its rate in 10 ms batches; record write times."""
    pad = "x" * 60
    for phase, rate in enumerate(phases, 1):
        start, seq = time.perf_counter(), 0
        while (now := time.perf_counter()) - start < seconds:
            due = int((now - start) * rate)
            if due > seq:
                _append(path, [f"bench-line {phase} {s} {pad}" for s in range(seq, due)])
                for s in range(seq, due):
                    written[(phase, s)] = now
                seq = due
            time.sleep(0.01)


async def _first_lines(url, cookies, ns, tries, endpoint):
    ours, theirs = [], []
    for _ in range(tries):
        tally, stop = Tally(), asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(_kubectl(ns, 10, tally, stop))
        await _until(lambda t=tally: t.first, 10)
        stop.set()
        await task
        if tally.first:
            theirs.append((tally.first - started) * 1000)
        if endpoint:
            tally, stop = Tally(), asyncio.Event()
            async with sse.session(cookies) as sess:
                started = time.perf_counter()
                task = asyncio.create_task(_sse(sess, url + "&tail=10", tally, stop))
                await _until(lambda t=tally, k=task: t.first or k.done(), 10)
                stop.set()
                await task
            if tally.first:
                ours.append((tally.first - started) * 1000)
    return ours, theirs


async def _until(predicate, timeout):
    deadline = time.perf_counter() + timeout
    while not predicate() and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)


async def _throughput(url, cookies, ns, path, phases, seconds, endpoint):
    ours, theirs, stop, written = Tally(), Tally(), asyncio.Event(), {}
    async with sse.session(cookies) as sess:
        tasks = [asyncio.create_task(_kubectl(ns, 1, theirs, stop))]
        if endpoint:
            tasks.append(asyncio.create_task(_sse(sess, url + "&tail=1", ours, stop)))
        await asyncio.sleep(1.5)  # both readers attached and following
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _writer, path, phases, seconds, written)
        total = len(written)
        await _until(
            lambda: len(theirs.seen) >= total and (not endpoint or len(ours.seen) >= total), 10
        )
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return written, ours, theirs


def _rates(written, tally, phases, seconds):
    rates, lags = [], []
    for phase in range(1, len(phases) + 1):
        keys = [k for k in written if k[0] == phase]
        got = [k for k in keys if k in tally.seen]
        if not keys or not got:
            rates.append(0.0)
            continue
        start = min(written[k] for k in keys)
        last = max(tally.seen[k] for k in got)
        rates.append(len(got) / max(seconds, last - start))
        lags += [(tally.seen[k] - written[k]) * 1000 for k in got]
    return rates, lags


def _endpoint_exists(name):
    from django.urls import Resolver404, resolve

    try:
        resolve(f"/profiles/{name}/logs/stream/")
    except Resolver404:
        return False
    return True


def run(*, quick=False):
    phases = (200, 1000) if quick else (200, 1000, 5000, 20000)
    seconds, tries = (2.0, 3) if quick else (3.0, 5)
    result = Result(NAME, TITLE, bare_label="kubectl logs -f")
    core, _ = cluster.kube()
    with cluster.namespace(core, "logs") as ns:
        profile = harness.import_profile(
            harness.todo_spec(name=ns, namespace=ns, node_port=cluster.free_node_port(core))
        )
        try:
            with harness.watcher(), harness.web_server() as (url, web):
                cluster.bare_pod(core, ns, POD, profile.name)
                subprocess.run(
                    [
                        str(harness.ROOT / "scripts/sandbox/write-log"),
                        ns,
                        POD,
                        "web",
                        *[f"bench-line 0 {i} before" for i in range(20)],
                    ],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
                path = cluster.sandbox_logs() / ns / POD / "web.log"
                time.sleep(1)  # kwok picks the Logs object up through a watch
                endpoint = _endpoint_exists(profile.name)
                stream = f"{url}/profiles/{profile.name}/logs/stream/?pod={POD}"
                cookies = harness.session_cookie()
                first_ours, first_theirs = asyncio.run(
                    _first_lines(stream, cookies, ns, tries, endpoint)
                )
                written, ours, theirs = asyncio.run(
                    _throughput(stream, cookies, ns, path, phases, seconds, endpoint)
                )
        finally:
            harness.delete_profiles(pk=profile.pk)
    missing = "endpoint missing: /profiles/<name>/logs/stream/ is 404 on this branch"
    result.add(
        "time to first line p50 (tail=10)",
        median(first_ours) if endpoint else None,
        bare=median(first_theirs),
        goal=Goal("<=", 300, unit="ms"),
    )
    rates_theirs, lag_theirs = _rates(written, theirs, phases, seconds)
    rates_ours, lag_ours = _rates(written, ours, phases, seconds) if endpoint else ([], [])
    for i, rate in enumerate(phases):
        result.add(
            f"lines/s delivered at {rate:,}/s written",
            rates_ours[i] if endpoint else None,
            unit="lines/s",
            bare=rates_theirs[i],
            goal=Goal(">=", 0.8, on="ratio"),
        )
    result.add(
        "line latency p50 (written -> received)",
        median(lag_ours) if endpoint else None,
        bare=median(lag_theirs),
    )
    result.add(
        "line latency p95",
        percentile(lag_ours, 95) if endpoint else None,
        bare=percentile(lag_theirs, 95),
    )
    if not endpoint:
        for row in result.rows:
            if row.goal:
                row.status, row.note = "MISS", missing
        result.notes.append(f"MISS: {missing} (merge h/logs to measure it)")
    result.notes.append(
        f"{len(written):,} lines written in {len(phases)} phases of {seconds:g}s; first line "
        f"over {tries} fresh connections each; kubectl received {len(theirs.seen):,}"
        + (f", Helmdeck {len(ours.seen):,}" if endpoint else "")
    )
    return result
