"""5. Connections: 100, 250 and 500 idle SSE clients on one uvicorn process.

Clients of the profile stream are added in steps (100, +150, +250) and held idle for a few
heartbeat periods. For each step: whether every client's ": heartbeat" comments came on
time (no gap longer than the period + 1 s), the largest gap, and the web process's
resident memory (VmRSS from /proc/<pid>/status). Heartbeats come every 15 s in
production; HELMDECK_SSE_HEARTBEAT (read by benchmarks/asgi.py) makes them 2 s here so the
benchmark takes a minute, not five.
"""

import asyncio
import time

from benchmarks import cluster, harness, sse
from benchmarks.report import Goal, Result

NAME = "connections"
TITLE = "Connections: idle SSE clients on one uvicorn process (profile stream)"
STEPS = (100, 250, 500)


def _gaps(client, since, until):
    beats = [t for t in client.heartbeats if since <= t <= until]
    points = [since, *beats]
    return [b - a for a, b in zip(points, points[1:], strict=False)] + [until - points[-1]]


async def _hold(url, cookies, web, period, holds):
    board = sse.Board()
    found, clients = [], []
    async with sse.session(cookies) as sess:
        try:
            for target in STEPS:
                started = time.perf_counter()
                more = await sse.open_clients(sess, url, target - len(clients), board)
                clients += more
                connect_s = time.perf_counter() - started
                failed = [c for c in clients if c.error or not c.events]
                since = time.perf_counter()
                await asyncio.sleep(period * holds)
                until = time.perf_counter()
                worst = [max(_gaps(c, since, until)) for c in clients if not c.error]
                db = await asyncio.get_running_loop().run_in_executor(None, _db_connections)
                late = sum(g > period + 1.0 for g in worst) + len(failed)
                found.append(
                    {
                        "clients": target,
                        "failed": len(failed),
                        "late": late,
                        "max_gap": max(worst) if worst else None,
                        "connect_s": connect_s,
                        "rss_mib": web.rss_kib() / 1024,
                        "db": db,
                        "error": next((c.error for c in failed if c.error), ""),
                    }
                )
        finally:
            await sse.close_all(clients)
    return found


def _db_connections():
    """Connections to the benchmark database other than this process's own."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        count = cursor.fetchone()[0]
    connection.close()
    return count


def run(*, quick=False):
    period = 2.0
    holds = 3 if quick else 5
    result = Result(NAME, TITLE)
    name = f"{harness.PREFIX}conn"
    core, _ = cluster.kube()
    profile = harness.import_profile(
        harness.todo_spec(name=name, namespace=name, node_port=cluster.free_node_port(core))
    )
    try:
        with harness.web_server(HELMDECK_SSE_HEARTBEAT=period) as (url, web):
            idle = web.rss_kib() / 1024
            found = asyncio.run(
                _hold(
                    f"{url}/profiles/{name}/stream/", harness.session_cookie(), web, period, holds
                )
            )
            peak = web.rss_kib("VmHWM") / 1024
    finally:
        harness.delete_profiles(pk=profile.pk)
    result.add("web process RSS, no clients", idle, unit="MiB")
    for step in found:
        n = step["clients"]
        result.add(
            f"{n} clients: heartbeats late or missing",
            step["late"],
            unit="clients",
            goal=Goal("==", 0, unit="clients"),
        )
        result.add(
            f"{n} clients: longest heartbeat gap",
            step["max_gap"],
            unit="s",
            goal=Goal("<=", period + 1.0, unit="s"),
        )
        result.add(
            f"{n} clients: web process RSS",
            step["rss_mib"],
            unit="MiB",
            goal=Goal("<", 400, unit="MiB") if n == 500 else None,
        )
        result.add(f"{n} clients: database connections held", step["db"], unit="")
        result.notes.append(
            f"{n} clients: {step['failed']} failed to connect"
            + (f" ({step['error']})" if step["error"] else "")
            + f"; the step's clients connected in {step['connect_s']:.1f}s"
        )
    result.add("web process peak RSS (VmHWM)", peak, unit="MiB")
    result.notes.append(
        f"heartbeat every {period:g}s (HELMDECK_SSE_HEARTBEAT; 15 s in production), each "
        f"step held {holds} periods; the profile has no pods (a small `pods` partial)"
    )
    return result
