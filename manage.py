#!/usr/bin/env python
import atexit
import gc
import os
import sys


def main():
    # At exit, the interpreter's last garbage collection walks every object Django and the
    # client libraries made (~0.2 s here: a fifth of `manage.py help`, and of the end of
    # every deploy --wait). Frozen first, they are left to the process's end; the atexit
    # handlers registered after this one (logging's flush, temp files) run before it, and
    # stdout and stderr are flushed as always. Only __del__ of objects in reference cycles
    # is skipped (PostgreSQL's log shows no unclean disconnect either way).
    atexit.register(gc.freeze)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
    if sys.argv[1:2] != ["watch_cluster"]:
        # A command holds one connection at a time: no pool (settings.py), so a database
        # that cannot be reached fails at once with the driver's reason, not after the
        # pool's 10 s timeout. The long-running processes keep theirs: the watcher here,
        # uvicorn and Celery, which do not start through manage.py.
        os.environ.setdefault("HELMDECK_DB_POOL_SIZE", "0")
    from controlpanel.state import private_umask

    private_umask()  # the database, its journal and collected files: owner only
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except Exception as exc:
        if "--traceback" in sys.argv:
            raise
        from controlpanel.database import unreachable

        line = unreachable(exc)  # the database cannot be reached: one line that says why
        if line is None:
            raise
        sys.stderr.write(f"{line}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
