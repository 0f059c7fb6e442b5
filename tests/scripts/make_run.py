"""`make run` (scripts/dev/run) read as a user reads it: until it says the panel is up,
and then on in the background, as a terminal would.

The rest is read because the panel's children (worker, watcher, web) write to the same
pipe: once its 64 KiB were full they would block on their next log line, and so would
`make run`'s own "stopping ..." lines. (The CI timeouts stopping `make run` had another
cause: SIGINT inherited as ignored, see scripts/dev/run.py's main.)"""

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.fixtures.faults import free_port

ROOT = Path(__file__).parents[2]

UP = "Helmdeck is up"


def start_make_run(tmp_path, *, port=None, sigint_ignored=False, **extra):
    """scripts/dev/run (what `make run` runs) with its .env and state under `tmp_path`, none
    of the caller's Helmdeck, database or Redis settings, and `extra` on top; in a process
    group of its own, so a test can stop every process it started. `sigint_ignored`: started
    the way a background job of a non-interactive shell is (some CI runners), with SIGINT
    ignored, which Python keeps unless told otherwise."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "REDIS_PASSWORD")
        and not k.startswith("HELMDECK_")
    }
    env.update(
        HELMDECK_PORT=str(port or free_port()),
        HELMDECK_ENV_FILE=str(tmp_path / ".env"),
        HELMDECK_STATE_DIR=str(tmp_path / "state"),
        HELMDECK_ADMIN_PASSWORD="make-run-test-pw",
        **extra,
    )
    return spawn_read(
        [str(ROOT / "scripts/dev/run")], cwd=ROOT, env=env, sigint_ignored=sigint_ignored
    )


def spawn_read(argv, *, cwd, env, sigint_ignored=False):
    """`make run` (or what it runs) started to be read as a terminal reads it: stdout and
    stderr in one pipe, decoded so that a byte that is not UTF-8 cannot end the reading (a
    full pipe blocks every child), in a session of its own that stop_with_ctrl_c signals."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=(  # noqa: PLW1509 - only a signal disposition, before exec
            (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        ),
    )


def read_until_up(proc, timeout):
    """`proc`'s output up to the line saying the panel is up; fails with the output so far
    if the process ends first or `timeout` seconds pass. From then on a thread reads the
    rest (rest_of_output returns it)."""
    lines = []
    deadline = time.monotonic() + timeout
    while not any(UP in line for line in lines):
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "".join(lines)
        lines.append(line)
        assert time.monotonic() < deadline, "".join(lines)
    rest = []
    reader = threading.Thread(target=lambda: rest.extend(proc.stdout), daemon=True)
    reader.start()
    proc.helmdeck_rest = (reader, rest)
    return "".join(lines)


def rest_of_output(proc, timeout=10):
    """What `proc` printed after it was up, once it has ended (or `timeout` seconds)."""
    reader, rest = proc.helmdeck_rest
    reader.join(timeout)
    return "".join(rest)


def stop_with_ctrl_c(proc, timeout):
    """Ctrl-C as a terminal sends it (to `proc`'s process group), then wait
    `timeout` seconds. If it is still running, the failure shows its process tree and what it
    printed after it was up, so a stop that hangs says where; then every process of that
    tree is killed (the panel's children have sessions of their own)."""
    if proc.poll() is not None:  # reaped already: its pid may be another process's now
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    tree, pids = _process_tree(proc.pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)
    printed = "".join(getattr(proc, "helmdeck_rest", (None, []))[1])
    # raised outside the except: called from a test's `finally`, the test's own failure
    # stays attached to this one as its context
    raise AssertionError(
        f"still running {timeout}s after Ctrl-C\n--- its processes\n{tree}\n"
        f"--- printed after it was up\n{printed}"
    )


def _process_tree(root):
    """`ps` lines of `root` and all its descendants (children in sessions of their own too),
    and their pids."""
    rows = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,pgid=,stat=,wchan:24=,etime=,args="],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    parent = {int(r.split()[0]): int(r.split()[1]) for r in rows}
    keep, pids = [], []
    for row in rows:
        pid = first = int(row.split()[0])
        while pid not in (root, 0, 1) and pid in parent:
            pid = parent[pid]
        if pid == root:
            keep.append(row)
            pids.append(first)
    return "PID PPID PGID STAT WCHAN ELAPSED COMMAND\n" + "\n".join(keep), pids
