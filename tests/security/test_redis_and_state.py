"""Issue 12, items 6 and 7, attacked as a local user of the machine would.

6. Whoever can write to Redis must not run code in the panel: a pickle planted under any key
   Helmdeck reads (the preview, the doctor report, the usage answer, a Celery task) is never
   loaded; the page treats it as a miss (never a 500). And nobody can write to Redis without
   the password: every Redis the scripts start refuses a client that does not AUTH.
7. The embedded state (.helmdeck/: SQLite with sessions and password hashes) is the panel
   user's alone: folders 0700, files 0600 from the start, and an old loose one is tightened.
"""

import os
import pickle
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import redis

from tests.fixtures.faults import free_port
from tests.fixtures.infra import wait_until
from tests.scripts.make_run import read_until_up, start_make_run, stop_with_ctrl_c

ROOT = Path(__file__).resolve().parents[2]
HX = {"HX-Request": "true"}


class RunsCode:
    """What an attacker plants: unpickling it runs a command (here: creates a file)."""

    def __init__(self, how, marker):
        self.how, self.marker = how, str(marker)

    def __reduce__(self):
        if self.how == "os.system":
            return (os.system, (f"touch {self.marker}",))
        if self.how == "subprocess":
            return (subprocess.call, (["touch", self.marker],))
        return (eval, (f"open({self.marker!r}, 'w').close()",))  # noqa: S307 - the attack


def payloads(tmp_path):
    """(name, bytes, marker file): several gadgets, every pickle protocol (0 is plain ASCII),
    and one wrapped the way Django's own RedisCache writes (a pickled dict)."""
    found = []
    for how in ("os.system", "subprocess", "eval"):
        for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
            marker = tmp_path / f"pwned-{how}-{protocol}"
            found.append(
                (f"{how}/p{protocol}", pickle.dumps(RunsCode(how, marker), protocol), marker)
            )
    marker = tmp_path / "pwned-nested"
    found.append(("nested", pickle.dumps({"resources": RunsCode("os.system", marker)}), marker))
    return found


@pytest.fixture
def real_cache(private_redis, settings):
    """The settings' own cache backend and options, on a private Redis; returns a raw
    client of that Redis (the attacker's)."""
    from django.core.cache import cache

    configured = dict(settings.CACHES["default"])
    settings.CACHES = {"default": {**configured, "LOCATION": private_redis.url}}
    cache.clear()
    return redis.Redis.from_url(private_redis.url)


@pytest.fixture
def queued(monkeypatch):
    from deployments import tasks

    calls = []
    monkeypatch.setattr(tasks.render_preview, "delay_on_commit", lambda *a: calls.append(a))
    monkeypatch.setattr(tasks.run_doctor, "delay_on_commit", lambda *a: calls.append(a))
    return calls


def full_key(key):
    from django.core.cache import cache

    return cache.make_and_validate_key(key)


@pytest.mark.django_db
def test_it_never_unpickles_a_planted_preview_and_computes_it_afresh(
    login, todo_app, real_cache, queued, tmp_path
):
    from deployments.services.preview import fingerprint, preview_key

    client = login("deployer")
    key = full_key(preview_key(todo_app.pk, fingerprint(todo_app)))
    for name, payload, marker in payloads(tmp_path):
        queued.clear()
        real_cache.set(key, payload)
        for headers in ({}, {**HX, "HX-Target": "preview"}):
            response = client.get("/profiles/todo-app/deploy/", headers=headers)
            assert response.status_code == 200, name
            assert "Computing preview" in response.content.decode(), name
        assert not marker.exists(), f"{name}: the planted pickle ran inside the web process"
        assert len(queued) == 1, f"{name}: a miss queues the preview once ({queued})"
        assert real_cache.get(key) == b'"pending"', name  # the plant is gone
        real_cache.delete(key)


@pytest.mark.django_db
def test_it_treats_planted_doctor_and_usage_answers_as_misses(
    login, todo_app, real_cache, queued, tmp_path, monkeypatch
):
    from deployments.models import Cluster
    from deployments.services import usage
    from deployments.services.doctor import doctor_key

    monkeypatch.setattr(usage, "pod_metrics", lambda cluster, **kw: [])
    client = login("admin")
    doctor = full_key(doctor_key(Cluster.objects.get(name="minikube")))
    usage_key = full_key(usage.usage_cache_key(todo_app))
    for name, payload, marker in payloads(tmp_path):
        queued.clear()
        real_cache.set(doctor, payload)
        real_cache.set(usage_key, payload)
        page = client.get("/clusters/minikube/")
        assert page.status_code == 200, name
        assert len(queued) == 1, name
        assert client.get("/profiles/todo-app/usage/").status_code == 200, name
        assert not marker.exists(), f"{name}: the planted pickle ran"
        assert real_cache.get(usage_key).startswith(b"{"), name  # the real answer, as JSON
        real_cache.delete(doctor, usage_key)


@pytest.mark.django_db
def test_it_treats_json_of_the_wrong_shape_as_a_miss_not_a_500(login, todo_app, real_cache, queued):
    from deployments.models import Cluster
    from deployments.services import usage
    from deployments.services.doctor import doctor_key
    from deployments.services.preview import fingerprint, preview_key

    preview = full_key(preview_key(todo_app.pk, fingerprint(todo_app)))
    doctor = full_key(doctor_key(Cluster.objects.get(name="minikube")))
    usage_key = full_key(usage.usage_cache_key(todo_app))
    client = login("admin")
    for planted in (b"12", b'"x"', b"[1, 2]", b'{"a": 1}', b"null", b'{"items": [1]}', b"\xff"):
        queued.clear()
        real_cache.set(preview, planted)
        real_cache.set(doctor, planted)
        real_cache.set(usage_key, planted)
        assert client.get("/profiles/todo-app/deploy/").status_code == 200, planted
        assert client.get("/clusters/minikube/").status_code == 200, planted
        assert client.get("/profiles/todo-app/usage/").status_code in (200,), planted
        real_cache.delete(preview, doctor, usage_key)


def test_the_cache_reads_a_planted_pickle_as_a_miss_through_every_read(real_cache, tmp_path):
    from django.core.cache import cache

    for name, payload, marker in payloads(tmp_path):
        real_cache.set(full_key("k1"), payload)
        assert cache.get("k1") is None and cache.get("k1", "dflt") == "dflt", name
        real_cache.set(full_key("k1"), payload)
        cache.set("k2", {"ok": [1, "two"]})
        assert cache.get_many(["k1", "k2"]) == {"k2": {"ok": [1, "two"]}}, name
        real_cache.set(full_key("k1"), payload)
        assert cache.get_or_set("k1", "fresh") == "fresh", name
        assert not marker.exists(), name
    cache.set("n", 1)
    assert cache.incr("n") == 2  # integers stay plain, as Django's own serializer keeps them
    assert real_cache.get(full_key("k2")) == b'{"ok":[1,"two"]}'  # stored as JSON
    with pytest.raises(TypeError):
        cache.set("obj", object())  # nothing that is not JSON goes in either


def test_celery_accepts_json_only_in_every_direction():
    from kombu.exceptions import ContentDisallowed
    from kombu.serialization import dumps, loads

    from controlpanel.celery import app

    assert list(app.conf.accept_content) == ["json"]
    assert list(app.conf.result_accept_content) == ["json"]
    assert (app.conf.task_serializer, app.conf.result_serializer) == ("json", "json")
    assert app.conf.event_serializer == "json"
    content_type, encoding, body = dumps(RunsCode("os.system", "/nonexistent/x"), "pickle")
    with pytest.raises(ContentDisallowed):
        loads(body, content_type, encoding, accept=app.conf.accept_content)


@pytest.mark.integration
def test_a_real_worker_refuses_a_pickled_task_message(private_redis, tmp_path):
    """An attacker with the broker's password still cannot make the worker unpickle."""
    import uuid

    from kombu import Connection

    from tests.fixtures.faults import start_worker

    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)},
        "REDIS_URL": private_redis.url,
        "CELERY_BROKER_URL": private_redis.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "HELMDECK_STATE_DIR": str(tmp_path / "state"),
    }
    worker = start_worker(env, "pickle-target")
    try:
        markers = []
        with Connection(private_redis.url) as conn:
            producer = conn.Producer(serializer="pickle")
            for how in ("os.system", "subprocess", "eval"):
                marker = tmp_path / f"pwned-worker-{how}"
                markers.append(marker)
                task_id = str(uuid.uuid4())
                producer.publish(
                    ((RunsCode(how, marker),), {}, {}),
                    routing_key="celery",
                    headers={
                        "lang": "py",
                        "task": "deployments.tasks.render_preview",
                        "id": task_id,
                        "root_id": task_id,
                        "parent_id": None,
                        "group": None,
                        "retries": 0,
                        "argsrepr": "",
                        "kwargsrepr": "",
                    },
                )
        log = Path(worker.log_path)
        wait_until(
            lambda: log.read_text(errors="replace").count("untrusted content") >= 3,
            timeout=60,
            what="the worker to refuse the three pickled messages",
        )
        assert worker.poll() is None, "the worker survives the refused messages"
        assert not [m for m in markers if m.exists()], "a pickled task ran in the worker"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


# ---- every Redis the scripts start requires a password -----------------------------------


def raw_command(port, line):
    """One inline command on a bare connection, as `nc` or a planted script would send it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line.encode() + b"\r\n")
        return sock.recv(4096).decode()


def refuses_without_password(port):
    for line in (
        "PING",
        "SET helmdeck:1:helmdeck:preview:1:x planted",
        "CONFIG GET requirepass",
        "KEYS *",
        "SUBSCRIBE helmdeck:release:1",
    ):
        assert raw_command(port, line).startswith("-NOAUTH"), line
    with pytest.raises(redis.RedisError):
        redis.Redis(port=port, socket_timeout=2).set("helmdeck:planted", "x")
    with pytest.raises(redis.RedisError):
        redis.Redis(port=port, password="guess", socket_timeout=2).ping()
    with pytest.raises(redis.RedisError):
        redis.Redis(port=port, password="", socket_timeout=2).ping()


@pytest.mark.integration
def test_the_ci_redis_script_requires_its_kept_password(tmp_path):
    """scripts/services/redis on a private port and cache folder (never the shared 6379)."""
    cache = tmp_path / "cache"
    port = free_port()
    env = {**os.environ, "HELMDECK_CACHE": str(cache), "HELMDECK_REDIS_PORT": str(port)}
    script = [str(ROOT / "scripts/services/redis")]

    def run(*args):
        return subprocess.run(
            [*script, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    try:
        started = run("start")
        assert started.returncode == 0, started.stdout + started.stderr
        password_file = cache / "redis.password"
        password = password_file.read_text().strip()
        assert len(password) >= 32 and stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert password not in started.stdout + started.stderr  # never printed
        refuses_without_password(port)
        url = run("url").stdout.strip()
        assert url == f"redis://:{password}@127.0.0.1:{port}/0"
        assert redis.Redis.from_url(url).ping()
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
        assert password not in ps.stdout  # not on any command line
        again = run("start")  # a re-run keeps the server and its password
        assert again.returncode == 0 and "already up" in again.stdout, again.stdout
        assert password_file.read_text().strip() == password
    finally:
        run("stop")
    restarted = run("start")  # a new server, the same kept password
    try:
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert password_file.read_text().strip() == password
        refuses_without_password(port)
    finally:
        run("stop")


@pytest.mark.integration
def test_the_ci_redis_script_does_not_take_a_redis_that_needs_no_password(tmp_path):
    cache = tmp_path / "cache"
    port = free_port()
    env = {**os.environ, "HELMDECK_CACHE": str(cache), "HELMDECK_REDIS_PORT": str(port)}
    open_one = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: redis.Redis(port=port).ping(), timeout=20, what="open redis")
        result = subprocess.run(
            [str(ROOT / "scripts/services/redis"), "start"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0 and "requires our password" in result.stderr
        status = subprocess.run(
            [str(ROOT / "scripts/services/redis"), "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode != 0  # an open Redis is not "up" for us
    finally:
        open_one.terminate()
        open_one.wait(timeout=30)


def test_ci_prepare_writes_the_password_into_a_private_env_sh():
    text = (ROOT / "scripts/ci/prepare").read_text()
    assert 'REDIS_URL="$("$S/services/redis" url)"' in text
    assert 'export REDIS_URL="$REDIS_URL"' in text and "redis://127.0.0.1:6379" not in text
    assert 'chmod 600 "$ENV_SH"' in text


def test_compose_requires_a_redis_password_and_hands_it_to_the_panel():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    redis_service = compose["services"]["redis"]
    assert "requirepass" in " ".join(redis_service["command"])
    assert "REDIS_PASSWORD:?" in redis_service["environment"]["REDIS_PASSWORD"]
    for name in ("web", "worker", "watcher"):
        url = compose["services"][name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?"), (name, url)
    assert "redis-cli" in " ".join(redis_service["healthcheck"]["test"])


# ---- make run: its Redis and its state ---------------------------------------------------


def wait_up(proc):
    return read_until_up(proc, 180)


def env_values(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.mark.integration
def test_make_run_starts_a_redis_that_refuses_clients_without_the_password(tmp_path):
    proc = start_make_run(tmp_path, HELMDECK_EMBEDDED_REDIS="1")
    try:
        output = wait_up(proc)
        env_file = tmp_path / ".env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        password = env_values(env_file)["REDIS_PASSWORD"]
        assert len(password) >= 32 and password not in output
        redis_port = int(output.split("started valkey-server on 127.0.0.1:")[1].split()[0])
        refuses_without_password(redis_port)
        assert redis.Redis(port=redis_port, password=password).ping()
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
        assert password not in ps.stdout  # the password is on no command line

        state = tmp_path / "state"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for entry in [*state.rglob("*")]:
            mode = stat.S_IMODE(entry.lstat().st_mode)
            assert not mode & 0o077, f"{entry} is {oct(mode)}"
        assert (state / "db.sqlite3").exists() and (state / "redis").is_dir()
    finally:
        stop_with_ctrl_c(proc, 45)


@pytest.mark.integration
def test_make_run_adds_a_redis_password_to_an_old_env_and_refuses_an_open_redis_url(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=old-install-key\n")  # an .env of an older version, 0644
    env_file.chmod(0o644)
    open_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing there: never the shared one
    proc = start_make_run(tmp_path, REDIS_URL=open_url)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        stop_with_ctrl_c(proc, 45)
    assert proc.returncode != 0, output
    assert f"REDIS_URL ({open_url}) has no password" in output
    values = env_values(env_file)
    assert values["SECRET_KEY"] == "old-install-key" and len(values["REDIS_PASSWORD"]) >= 32
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


# ---- the state folder at start-up --------------------------------------------------------


def loose_state(tmp_path):
    """What an older version left: 0755 folders, 0644 files (database, journal, a dump)."""
    state = tmp_path / "state"
    (state / "redis").mkdir(parents=True)
    for name in ("db.sqlite3", "db.sqlite3-wal", "redis/dump.rdb"):
        (state / name).write_text("x")
        (state / name).chmod(0o644)
    for folder in (state, state / "redis"):
        folder.chmod(0o755)
    return state


def test_settings_tighten_a_loose_state_folder_and_say_so(tmp_path):
    state = loose_state(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(HELMDECK_STATE_DIR=str(state), HELMDECK_ENV_FILE=str(tmp_path / "none.env"))
    result = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", "import controlpanel.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"{state} was readable by other users" in result.stderr
    assert "tightened 5 entries" in result.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "redis").stat().st_mode) == 0o700
    for name in ("db.sqlite3", "db.sqlite3-wal", "redis/dump.rdb"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    again = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", "import controlpanel.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0 and "readable by other users" not in again.stderr


def test_a_new_state_folder_and_database_are_private_from_the_start(tmp_path):
    state = tmp_path / "new-state"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(HELMDECK_STATE_DIR=str(state), HELMDECK_ENV_FILE=str(tmp_path / "none.env"))
    result = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "readable by other users" not in result.stderr  # nothing to tighten: made private
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "db.sqlite3").stat().st_mode) == 0o600


def test_it_refuses_to_start_on_a_loose_state_folder_it_cannot_tighten(tmp_path, monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from controlpanel import state as state_module

    state = loose_state(tmp_path)

    def not_owner(self, mode):
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "chmod", not_owner)
    with pytest.raises(ImproperlyConfigured, match="readable by other users and cannot be made"):
        state_module.state_dir_secure(state)
