"""Database writes that outlive a PostgreSQL restart.

A stage spends minutes in docker or helm and writes a row per output line. If the database
restarts meanwhile, Django's connection is dead and every write raises; without a retry the
stage would crash with helm still running and the release would sit until the reaper's
deadline. `db_retry` closes the dead connection and tries again (Django reconnects on the
next query) for up to `budget` seconds, so the lines are kept, late but in order.
"""

import contextlib
import logging
import time

from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)

BUDGET = 120  # seconds: longer than a restart, shorter than any stage's deadline


def db_retry(write, *, budget=BUDGET, done=None):
    """Run `write()`; on a lost connection retry until `budget` seconds have passed.

    `done()`, when given, is asked after an IntegrityError on a retry: the first try may
    have committed before its answer was lost, and a retry then collides with its own row.
    """
    deadline, delay, retried = time.monotonic() + budget, 0.5, False
    while True:
        try:
            return write()
        except IntegrityError:
            if retried and done is not None and done():
                return None
            raise
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            log.warning("database unreachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            _close_quietly()
            time.sleep(delay)
            delay, retried = min(delay * 2, 5.0), True


def db_read_or(read, default):
    """`read()`, or `default` while the database is unreachable (a poll that must not stop
    the work it polls for, e.g. "was this release cancelled?")."""
    try:
        return read()
    except (OperationalError, InterfaceError):
        _close_quietly()
        return default


def _close_quietly():
    with contextlib.suppress(DatabaseError):
        connection.close()
