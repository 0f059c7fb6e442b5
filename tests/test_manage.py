"""`manage.py` against a database it cannot reach: one line that says which database and
why (the driver's reason), exit 1; no traceback, no password, no wait for the pool's timeout.
"""

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db.utils import OperationalError

from controlpanel.database import unreachable
from tests.conftest import free_port

ROOT = Path(__file__).parent.parent
PASSWORD = "Wr0ng-pa55word-7f3a"


def command_env(database_url, **env):
    """This process's environment for a `manage.py` child, with `database_url` and `env`,
    and without HELMDECK_DB_POOL_SIZE: the child picks its pool as a user's command would."""
    environ = {k: v for k, v in os.environ.items() if k != "HELMDECK_DB_POOL_SIZE"}
    return {**environ, "DATABASE_URL": database_url, **env}


def manage(*argv, database_url, **env):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=command_env(database_url, **env),
        timeout=120,
    )


def postgres(url, *, password=None, port=None, name=None):
    """`url` (PostgreSQL) with another password, port or database name."""
    parts = urlsplit(url)
    user = parts.username or "helmdeck"
    netloc = f"{user}:{password or parts.password or ''}@{parts.hostname}:{port or parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{name or parts.path[1:]}"))


def assert_one_line(result, where, reason):
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines == [f"cannot reach the database {where}: {lines[0].split(': ', 1)[1]}"], lines
    assert reason in lines[0], lines
    assert "Traceback" not in result.stderr and PASSWORD not in result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("command", [("deploy", "todo-app"), ("migrate", "--check")])
def test_a_missing_database_a_wrong_password_and_no_server_each_give_one_line(
    database_url, command
):
    port = free_port()
    cases = [
        (
            postgres(database_url, name="helmdeck_missing_db"),
            "helmdeck_missing_db",
            "does not exist",
        ),
        (postgres(database_url, password=PASSWORD), "", "password authentication failed"),
        (postgres(database_url, port=port), f":{port}/", "Connection refused"),
    ]
    for url, where_part, reason in cases:
        result = manage(*command, database_url=url)
        target = urlsplit(url)
        where = f"{target.username}@{target.hostname}:{target.port}{target.path}"
        assert where_part in where
        assert_one_line(result, where, reason)
        assert "psycopg.pool" not in result.stderr  # a command opens no pool: no 10 s wait


def test_an_sqlite_file_that_cannot_be_opened_gives_one_line(tmp_path):
    path = tmp_path / "no-such-dir" / "db.sqlite3"
    result = manage("deploy", "todo-app", database_url=f"sqlite:///{path}")
    assert_one_line(result, str(path), "unable to open database file")


@pytest.mark.integration
def test_the_watcher_keeps_its_pool_and_retries(database_url):
    """watch_cluster is long-running: it keeps the pool (which waits out a restarting
    database) and retries; SIGTERM still stops it cleanly."""
    import signal

    url = postgres(database_url, name="helmdeck_missing_db")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "watch_cluster"],
        cwd=ROOT,
        env=command_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "reading profiles failed" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    stderr = "".join(lines) + rest
    assert "psycopg.pool error connecting" in stderr and 'database "helmdeck_missing_db"' in stderr
    assert "reading profiles failed (couldn't get a connection" in stderr
    assert proc.returncode == 0 and "Traceback" not in stderr


@pytest.mark.integration
def test_with_traceback_the_traceback_stays(database_url):
    url = postgres(database_url, name="helmdeck_missing_db")
    result = manage("deploy", "todo-app", "--traceback", database_url=url)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "does not exist" in result.stderr


@pytest.mark.django_db
def test_an_error_while_the_database_answers_is_not_called_unreachable():
    """The command's own error is left to show as it is: one on a live connection (a
    deadlock), even when a fresh connection would fail now; one while connecting to a
    database that answers the fresh attempt; one that is not the database's."""
    from django.db import connection

    connection.ensure_connection()
    with mock.patch("controlpanel.database._connect_error", return_value="too many clients"):
        assert unreachable(OperationalError("deadlock detected")) is None
    connection.close()
    assert connection.connection is None
    assert unreachable(OperationalError("connection failed")) is None  # it answers now
    assert unreachable(ValueError("not a database error")) is None
