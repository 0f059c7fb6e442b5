"""The embedded state folder (.helmdeck/: the SQLite database, the Redis `make run` starts,
collected static files) belongs to the panel's user alone: folders 0700, files 0600.

`make run` and manage.py set umask 077, so what they create is private from the start;
settings call `state_dir_secure` when every process starts, which creates the folder 0700
and tightens what an older version left readable (0644 files in a 0755 folder), saying so
on stderr. A folder the process cannot tighten (another user's) stops the start-up with
ImproperlyConfigured rather than run with sessions and password hashes readable by all.
"""

import os
import stat
import sys
from pathlib import Path

PRIVATE_UMASK = 0o077
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_umask():
    """Files and folders this process (and its children) creates: owner only."""
    os.umask(PRIVATE_UMASK)


def _tree(path):
    yield path
    for folder, dirs, files in os.walk(path):  # never follows symbolic links
        for name in (*dirs, *files):
            yield Path(folder, name)


def state_dir_secure(path):
    """Create `path` 0700 if missing; tighten it and everything under it (folders 0700,
    files 0600, group/other bits only). Returns the paths it tightened."""
    from django.core.exceptions import ImproperlyConfigured

    path = Path(path)
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    tightened = []
    try:
        for entry in _tree(path):
            try:
                info = entry.lstat()
            except FileNotFoundError:  # a temporary file (Redis' dump) gone meanwhile
                continue
            if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
                continue
            mode = FOLDER_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
            entry.chmod(stat.S_IMODE(info.st_mode) & mode)
            tightened.append(entry)
    except PermissionError as exc:
        raise ImproperlyConfigured(
            f"the state folder {path} is readable by other users and cannot be made private "
            f"({exc.strerror}: {exc.filename}); run as its owner, or "
            f"`chmod -R go-rwx {path}`"
        ) from None
    if tightened:
        print(
            f"helmdeck: {path} was readable by other users (made by an older version): "
            f"tightened {len(tightened)} entries (folders 0700, files 0600)",
            file=sys.stderr,
            flush=True,
        )
    return tightened
