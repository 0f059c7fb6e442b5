"""`make run` for real: the embedded default comes up, answers, and Ctrl-C stops it all."""

import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.faults import free_port
from tests.scripts.make_run import read_until_up, rest_of_output, start_make_run, stop_with_ctrl_c

ROOT = Path(__file__).parents[2]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.integration
def test_it_brings_up_the_embedded_default_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    # Ctrl-C must stop it all even when SIGINT was inherited as ignored
    proc = start_make_run(
        tmp_path,
        port=port,
        sigint_ignored=True,
        HELMDECK_EMBEDDED_REDIS="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    try:
        output = read_until_up(proc, 120)
        assert "started valkey-server on 127.0.0.1:" in output
        assert "admin login: admin / from HELMDECK_ADMIN_PASSWORD" in output
        assert "imported profile todo-app" in output
        assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
        redis_port = int(output.split("started valkey-server on 127.0.0.1:")[1].split()[0])
        assert "REDIS_PASSWORD=" in (tmp_path / ".env").read_text()
        with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as sock:
            sock.sendall(b"PING\r\n")  # a client without the password
            assert sock.recv(100).startswith(b"-NOAUTH")

        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # uvicorn binds and the worker's first heartbeat lands
            try:
                status, body = get(f"{base}/ready")
            except OSError:
                status, body = None, ""
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 200, body
        assert get(f"{base}/health") == (200, '{"status": "healthy"}')
        status, body = get(f"{base}/accounts/login/")
        assert status == 200 and 'name="username"' in body
        assert get(f"{base}/static/vendor/htmx-2.0.11.min.js")[0] == 200
    finally:
        stop_with_ctrl_c(proc, 45)
    assert proc.returncode == 0, rest_of_output(proc)
    for stopped in (port, redis_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", stopped)) != 0, f"port {stopped} still open"


@pytest.mark.integration
def test_ctrl_c_while_it_starts_stops_what_it_started(tmp_path):
    """A Ctrl-C during the start (here: once Redis is up, while the database is migrated)
    ends it after that step: exit 0, Redis stopped, nothing else started."""
    proc = start_make_run(
        tmp_path,
        HELMDECK_EMBEDDED_REDIS="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    lines = []
    try:
        while not any("started valkey-server on 127.0.0.1:" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the migrate gets it too
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "stopping redis" in output and "Helmdeck is up" not in output, output
    assert "stopping worker" not in output and "stopping web" not in output, output
    redis_port = int(output.split("started valkey-server on 127.0.0.1:")[1].split()[0])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", redis_port)) != 0, "Redis still answers"
