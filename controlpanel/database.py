"""The one line a `manage.py` command prints when it cannot reach its database.

Without it, a command against a database that is down, missing or refusing the password
ended in a traceback; with the connection pool (PostgreSQL, settings.py) its last line was
psycopg_pool's "couldn't get a connection after 10.00 sec", which hides why. The reason is
the driver's own error from one fresh connection attempt, made only once a command has
failed (a command that works pays nothing).
"""

import re

CONNECT_TIMEOUT = 5  # seconds, for the one attempt that finds the reason
MAX_REASON = 500


def unreachable(exc):
    """The line "cannot reach the database <where>: <reason>" when `exc` is a database error
    raised while connecting (the command holds no connection) and a fresh attempt fails too
    (its error is the reason); else None: an error on a live connection (a deadlock, a
    timeout) or from a database that answers now keeps its traceback."""
    from django.db.utils import InterfaceError, OperationalError

    if not isinstance(exc, OperationalError | InterfaceError):
        return None
    from django.db import connection

    if connection.connection is not None:
        return None
    reason = _connect_error(connection)
    if reason is None:
        return None
    return f"cannot reach the database {_where(connection.settings_dict)}: {reason}"


def _connect_error(connection):
    """The error of one direct connection attempt (no pool), as one line; None if it works."""
    params = connection.get_connection_params()
    if connection.vendor == "postgresql":
        params["connect_timeout"] = CONNECT_TIMEOUT
    try:
        raw = connection.Database.connect(**params)
    except connection.Database.Error as exc:
        text = re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__
        return text[:MAX_REASON]
    raw.close()
    return None


def _where(settings_dict):
    """The database as a user configured it, without its password: PostgreSQL's
    user@host:port/name, SQLite's file."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return str(settings_dict["NAME"])
    user = settings_dict.get("USER") or ""
    host = settings_dict.get("HOST") or "localhost"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"{user}{'@' if user else ''}{host}{port}/{settings_dict.get('NAME') or ''}"
