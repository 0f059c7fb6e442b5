"""A real deploy on the sandbox, scanned for its secret values everywhere they must not be:
the Celery messages while queued, the helm process's argv and environment while it runs
(/proc), the file helm reads the secrets from (in memory, never on disk), the Redis pub/sub
messages and cache, LogLine and every other row (each PostgreSQL table dumped as text), log
records, the pages and the exported YAML. Each value is looked for as written and in base64
(any alignment), since Kubernetes Secrets and helm both base64 values.

The secrets: one stored encrypted in Helmdeck and three read from the worker's environment,
each a fresh random canary so no other test's values can match.
"""

import base64
import contextlib
import json
import logging
import os
import threading
import uuid

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client

from deployments import events
from deployments.models import Component, LogLine, Release
from deployments.services.profiles import secret_set
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request, release_run
from tests.deployments.services.conftest import SECRETS, deployable  # noqa: F401
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def forms_of(value):
    """The value as written, base64 (standard and URL-safe), and the middle of its base64 at
    each of the three alignments it can have inside a longer encoded text."""
    raw = value.encode()
    found = {value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        found.add(encoded[4:-4] if offset else encoded[:-4])
    return found


class Canaries:
    def __init__(self, values):
        self.values = values
        self.forms = {form: value for value in values for form in forms_of(value)}

    def leaks(self, text, where):
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return [
            f"{where}: {value[:6]}... as {form[:10]}..."
            for form, value in self.forms.items()
            if form in text
        ]


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class ProcScan(threading.Thread):
    """Reads every process's argv until stopped; keeps the helm ones and any that holds a
    canary; of our helm processes also reads the environment (canaries must not be in it)
    and what each /dev/fd/N values file of its argv is (`targets`)."""

    def __init__(self, canaries):
        super().__init__(daemon=True)
        self.canaries, self.stop, self.helm, self.leaks = canaries, False, [], []
        self.targets = {}

    def run(self):
        while not self.stop:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        argv = handle.read().split(b"\0")
                except OSError:
                    continue
                self.leaks += self.canaries.leaks(b" ".join(argv), f"argv of pid {pid}")
                if (
                    argv
                    and argv[0].endswith((b"helm", b"helm3"))
                    and b"upgrade" in argv
                    and _parent(pid) == os.getpid()
                ):  # ours, not another test run's
                    self.helm.append([a.decode() for a in argv if a])
                    with contextlib.suppress(OSError):
                        with open(f"/proc/{pid}/environ", "rb") as handle:
                            environ = handle.read()
                        self.leaks += self.canaries.leaks(environ, f"environment of helm {pid}")
                    for path in (a.decode() for a in argv if a.startswith(b"/dev/fd/")):
                        with contextlib.suppress(OSError):
                            target = os.readlink(f"/proc/{pid}/fd/{path[8:]}")
                            self.targets[path] = target


class Published(threading.Thread):
    """Every message published on the release's and the profile's channels."""

    def __init__(self, channels):
        super().__init__(daemon=True)
        self.pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
        self.pubsub.subscribe(*channels)
        self.messages, self.stop = [], False

    def run(self):
        while not self.stop:
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message:
                self.messages.append(message["data"])
        self.pubsub.close()


def queued_messages(conn):
    """The kombu messages waiting in the Redis broker, bodies decoded (base64 JSON)."""
    out = []
    for raw in conn.lrange("celery", 0, -1):
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        out.append((raw, envelope, json.loads(body)))
    return out


def dump_database():
    """Every row of every table as text (PostgreSQL's row-to-text cast)."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT CAST(t AS text) FROM "{table}" t')  # noqa: S608
            rows += [f"{table}: {row}" for (row,) in cursor.fetchall()]
    return rows


def test_it_keeps_secret_values_out_of_everything_but_the_cluster(
    deployable,  # noqa: F811 - the fixture imported above
    sandbox,
    monkeypatch,
    caplog,
):
    assert connection.vendor == "postgresql"
    caplog.set_level(logging.DEBUG)
    values = {}
    for key in ("TODO_JWT_SECRET", "OPENAI_API_KEY", "TODO_DATABASE_URL"):
        values[key] = f"env-canary-{uuid.uuid4().hex}"
        monkeypatch.setenv(key, values[key])
    # the sandbox is shared with other test runs: let Kubernetes pick a free NodePort
    Component.objects.filter(profile=deployable).update(node_port=None)
    stored = f"stored-canary-{uuid.uuid4().hex}"
    secret_set(profile=deployable, key="STORED_TOKEN", value=stored, actor=None)
    canaries = Canaries([stored, *values.values()])
    assert set(SECRETS) == set(values)  # every secret of the profile has a fresh value

    # 1. queued: the Celery message carries ids only
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = {raw for raw, _, _ in queued_messages(broker)}
    release = release_request(profile=deployable, actor=None, build=False)
    release_enqueue(release)  # autocommit: on_commit sends at once
    mine = [(raw, env, body) for raw, env, body in queued_messages(broker) if raw not in before]
    try:
        assert mine, "the release's task message is in the broker"
        args, kwargs, embed = mine[0][2]
        assert args == [release.pk] and kwargs == {}
        assert [link["args"] for link in embed["chain"]] == [[release.pk]] * 3
        leaks = [
            leak
            for raw, _, body in mine
            for leak in canaries.leaks(raw + json.dumps(body).encode(), "Celery message")
        ]
    finally:
        for raw, _, _ in mine:
            broker.lrem("celery", 0, raw)  # no worker here: this process runs the release
    assert leaks == []

    # 2. running: argv of every process, the values files, the published messages
    scan = ProcScan(canaries)
    published = Published(
        [events.channel("release", release.pk), events.channel("profile", deployable.pk)]
    )
    scan.start()
    published.start()
    try:
        result = release_run(release.pk)
    finally:
        scan.stop = published.stop = True
        scan.join(10)
        published.join(10)
    assert result.status == Release.Status.SUCCEEDED, result.reason
    assert scan.helm, "the scan saw helm upgrade running"
    assert scan.leaks == []
    # the secrets reach helm as an in-memory file (memfd), never a file on disk
    assert scan.targets, "helm was given its secrets as /dev/fd/N"
    assert all(t.startswith("/memfd:helmdeck-secrets") for t in scan.targets.values())
    assert not any("helmdeck-secrets" in p for argv in scan.helm for p in argv if "/tmp" in p)
    assert published.messages, "log lines were published"
    assert [leak for m in published.messages for leak in canaries.leaks(m, "pub/sub")] == []

    # 3. afterwards: rows, every table, the cache, log records, pages, export
    assert LogLine.objects.filter(release=release).exists()
    found = [leak for row in dump_database() for leak in canaries.leaks(row, row[:40])]
    cache = redis.Redis.from_url(settings.REDIS_URL)
    for key in cache.scan_iter(count=500):
        kind = cache.type(key)
        data = (
            cache.get(key)
            if kind == b"string"
            else b" ".join(cache.lrange(key, 0, -1))
            if kind == b"list"
            else b""
        )
        found += canaries.leaks(data or b"", f"redis key {key!r}")
    found += canaries.leaks(caplog.text, "log records")
    client = Client()
    admin = UserFactory(role="admin", is_superuser=True, is_staff=True)
    assert client.login(username=admin.username, password=PASSWORD)
    for url in (
        f"/releases/{release.pk}/",
        "/profiles/todo-app/",
        "/profiles/todo-app/releases/",
        "/profiles/todo-app/export.yaml",
        "/",
        f"/admin/deployments/profile/{deployable.pk}/change/",
        "/admin/deployments/auditevent/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        found += canaries.leaks(response.content, url)
    # the API, with an admin's token: every read operation about this profile and release
    from deployments.services.api_tokens import api_token_create

    _, token = api_token_create(user=admin, name="leak scan")
    api = Client(headers={"Authorization": f"Bearer {token}"})
    for url in (
        "/api/v1/profiles",
        "/api/v1/profiles/todo-app",
        "/api/v1/profiles/todo-app/status",
        "/api/v1/profiles/todo-app/releases",
        f"/api/v1/releases/{release.pk}",
        f"/api/v1/releases/{release.pk}/log",
    ):
        response = api.get(url)
        assert response.status_code == 200, url
        found += canaries.leaks(response.content, url)
    assert found == []
    # the scan can see: the ciphertext row exists, and the cluster's Secret has the value
    assert deployable.secrets.get(key="STORED_TOKEN").ciphertext
    secret = sandbox.core.read_namespaced_secret("todo-app-secrets", sandbox.namespace)
    assert base64.b64decode(secret.data["STORED_TOKEN"]).decode() == stored
