"""Start-up: how long each Helmdeck process takes before it can do its job, against the
interpreter alone (`python -c pass`, the floor of any Python process), each process
started anew N times, the kinds alternated.

- `manage.py help`: start -> exit (goal <= 1 s, issue 18);
- `manage.py deploy <a missing profile>`: start -> exit, what every command pays before
  and after its work (Django, its first query, the exit);
- the web process (`python -m controlpanel.serve`, as `make run` and the image start
  it): start -> the first `GET /health` answered (goal <= 1 s);
- a Celery worker (`celery -A controlpanel worker`, solo pool): start -> its heartbeat in
  Redis, written once the worker is ready to take a task (goal <= 1 s);
- the remote CLI (`helmdeck --version`, its console script with every module a command
  imports): start -> exit, what each `helmdeck` command pays before its first request.
"""

import subprocess
import sys
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.report import Goal, Result, median, percentile

NAME = "startup"
TITLE = "Start-up of each process: manage.py, the web process, a worker, vs the interpreter alone"
GOAL = Goal("<=", 1000, unit="ms")
MISSING = "bench-startup-missing"
HELMDECK = Path(sys.executable).with_name("helmdeck")  # the remote CLI's console script


def _exits(argv, *, expect):
    """Milliseconds from start to exit of `argv`, which must exit `expect`."""
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own argv
        argv, cwd=harness.ROOT, env=harness.child_env(), capture_output=True, timeout=60
    )
    took = (time.perf_counter() - started) * 1000
    if done.returncode != expect:
        raise harness.BenchError(f"{argv} exited {done.returncode}: {done.stderr[-800:]!r}")
    return took


def _web_ready():
    """Milliseconds from the web process's start to its first /health answer."""
    port = harness.free_port()
    argv = [harness.PY, "-m", "controlpanel.serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--log-level", "warning", "--no-access-log"]
    started = time.perf_counter()
    child = harness.Child("web", argv)
    try:
        harness.wait_for(
            lambda: harness.http_ok(f"http://127.0.0.1:{port}/health"),
            timeout=60,
            what="/health",
            child=child,
            interval=0.01,
        )
        return (time.perf_counter() - started) * 1000
    finally:
        child.stop(timeout=15)


def _worker_ready():
    """Milliseconds from a worker's start to its heartbeat."""
    started = time.perf_counter()
    with harness.celery_worker(interval=0.01):
        return (time.perf_counter() - started) * 1000


def run(*, quick=False):
    n = 3 if quick else 10
    py = harness.PY
    kinds = {
        "help": lambda: _exits([py, "manage.py", "help"], expect=0),
        "deploy": lambda: _exits([py, "manage.py", "deploy", MISSING], expect=2),
        "web": _web_ready,
        "worker": _worker_ready,
        "remote": lambda: _exits([str(HELMDECK), "--version"], expect=0),
        "bare": lambda: _exits([py, "-c", "pass"], expect=0),
    }
    for kind in kinds.values():  # untimed: the page cache, the database's first connection
        kind()
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(n):
        order = list(kinds)[i % len(kinds) :] + list(kinds)[: i % len(kinds)]
        for name in order:
            times[name].append(kinds[name]())
    bare = median(times["bare"])
    result = Result(NAME, TITLE, bare_label="python -c pass")
    result.add("manage.py help: start -> exit, median", median(times["help"]), bare=bare)
    result.add(
        "manage.py help: start -> exit, p95", percentile(times["help"], 95), bare=bare, goal=GOAL
    )
    result.add(
        "manage.py deploy <missing profile>: start -> exit, median",
        median(times["deploy"]),
        bare=bare,
    )
    result.add(
        "web process: start -> first /health answered, p95",
        percentile(times["web"], 95),
        bare=bare,
        goal=GOAL,
    )
    result.add(
        "worker: start -> heartbeat (ready for tasks), p95",
        percentile(times["worker"], 95),
        bare=bare,
        goal=GOAL,
    )
    result.add(
        "remote CLI: helmdeck --version, start -> exit, median",
        median(times["remote"]),
        bare=bare,
    )
    result.notes.append(
        f"{n} starts of each kind, alternated, after one untimed round; "
        "each figure is wall time seen from the starting process"
    )
    return result
