"""A throw-away PostgreSQL server for the benchmarks (see private_postgres)."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from benchmarks.harness import BenchError, free_port, wait_for

PGBIN = Path(os.environ.get("HELMDECK_PGBIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(argv):
    """PostgreSQL refuses to run as root: run its tools as `postgres` when we are root."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def private_postgres(max_connections=1200):
    """A throw-away PostgreSQL server on a free loopback port, stopped (by the postmaster's
    PID) and removed afterwards. Yields its DATABASE_URL.

    Why: every open SSE stream holds a database connection in the web process (Django runs
    each ASGI request's sync parts in a thread of its own, and a thread keeps its connection
    until its request ends), so 500 idle clients need 500 connections. The machine's shared
    server allows 100 for everyone; exhausting it would fail other people's runs.
    """
    top = Path(tempfile.mkdtemp(prefix="helmdeck-bench-pg-"))
    data, sock = top / "data", top / "sock"
    sock.mkdir()
    top.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(top, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    quiet = {"capture_output": True, "text": True, "timeout": 120}
    init = subprocess.run(
        _as_postgres(
            [
                str(PGBIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "helmdeck",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        ),
        **quiet,
        check=False,
    )
    if init.returncode != 0:
        raise BenchError(f"initdb failed: {init.stderr[-1000:]}")
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off "
        f"-c synchronous_commit=off -c full_page_writes=off "
        f"-c max_connections={max_connections} -c shared_buffers=128MB"
    )
    start = subprocess.run(
        _as_postgres(
            [
                str(PGBIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(top / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        ),
        **quiet,
        check=False,
    )
    pid = None
    try:
        if start.returncode != 0:
            raise BenchError(f"postgres did not start: {start.stderr[-1000:]}")
        pid = int((data / "postmaster.pid").read_text().split()[0])
        subprocess.run(
            _as_postgres(
                [
                    str(PGBIN.parent / "bin" / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "helmdeck",
                    "helmdeck_bench",
                ]
            ),
            **quiet,
            check=True,
        )
        yield f"postgres://helmdeck@127.0.0.1:{port}/helmdeck_bench"
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # fast shutdown
            with contextlib.suppress(BenchError):
                wait_for(
                    lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="postgres to stop"
                )
        shutil.rmtree(top, ignore_errors=True)
