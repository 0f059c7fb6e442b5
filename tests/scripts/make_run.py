"""`make run` (scripts/dev/run) read as a user reads it: until it says the panel is up."""

import time

UP = "Helmdeck is up"


def read_until_up(proc, timeout):
    """`proc`'s output up to the line saying the panel is up; fails with the output so far
    if the process ends first or `timeout` seconds pass."""
    lines = []
    deadline = time.monotonic() + timeout
    while not any(UP in line for line in lines):
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "".join(lines)
        lines.append(line)
        assert time.monotonic() < deadline, "".join(lines)
    return "".join(lines)
