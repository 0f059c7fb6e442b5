"""PostgreSQL access: one short-lived connection per request, plain SQL, the table made on demand.

Connections are per request (no pool) so the app recovers by itself when the database
comes back, which is what the readiness probe reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .config import redact

log = logging.getLogger("todo.db")

SCHEMA = """
CREATE TABLE IF NOT EXISTS todos (
    id         BIGSERIAL PRIMARY KEY,
    title      TEXT        NOT NULL,
    done       BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
COLUMNS = "id, title, done, created_at"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or is not configured; the message is safe to show."""


class Database:
    def __init__(self, url: str, *, connect_timeout: int = 2) -> None:
        self.url = url
        self.connect_timeout = connect_timeout  # libpq's minimum is 2s; the probe's timeout is 3s
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        if not self.url:
            raise DatabaseUnavailable("DATABASE_URL is not set")
        try:
            conn = psycopg.connect(
                self.url,
                connect_timeout=self.connect_timeout,
                autocommit=True,
                row_factory=dict_row,
            )
        except (psycopg.Error, ValueError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise DatabaseUnavailable(
                f"database unreachable: {redact(first_line, self.url)}"
            ) from None
        with conn:
            yield conn

    def ping(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT 1").fetchone()

    def ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock, self.connect() as conn:
            if not self._schema_ready:
                conn.execute(SCHEMA)
                self._schema_ready = True
                log.info("table todos is ready")

    # ---- todos -------------------------------------------------------------------

    def todo_list(self) -> list[dict[str, Any]]:
        self.ensure_schema()
        with self.connect() as conn:
            return conn.execute(f"SELECT {COLUMNS} FROM todos ORDER BY id").fetchall()

    def todo_create(self, *, title: str) -> dict[str, Any]:
        self.ensure_schema()
        with self.connect() as conn:
            return conn.execute(
                f"INSERT INTO todos (title) VALUES (%s) RETURNING {COLUMNS}", (title,)
            ).fetchone()

    def todo_update(
        self, todo_id: int, *, title: str | None, done: bool | None
    ) -> dict[str, Any] | None:
        self.ensure_schema()
        with self.connect() as conn:
            return conn.execute(
                f"UPDATE todos SET title = COALESCE(%s, title), done = COALESCE(%s, done)"
                f" WHERE id = %s RETURNING {COLUMNS}",
                (title, done, todo_id),
            ).fetchone()

    def todo_delete(self, todo_id: int) -> bool:
        self.ensure_schema()
        with self.connect() as conn:
            return conn.execute("DELETE FROM todos WHERE id = %s", (todo_id,)).rowcount == 1
