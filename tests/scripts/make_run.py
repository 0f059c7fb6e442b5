"""`make run` (scripts/dev/run) read as a user reads it: until it says the panel is up,
and then on in the background, as a terminal would.

The rest is read because the panel's children (worker, watcher, web) write to the same
pipe: once its 64 KiB were full they would block on their next log line, and so would
`make run`'s own "stopping ..." lines. (The CI timeouts stopping `make run` had another
cause: SIGINT inherited as ignored, see scripts/dev/run.py's main.)"""

import threading
import time

UP = "Helmdeck is up"


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
