"""Fixtures for the reference workload (examples/todo-app): its two images built on the
test Docker daemon from the local base images, containers started from them, and a
throwaway PostgreSQL database for the backend.

Images are tagged todo-backend:test / todo-frontend:test and built with BuildKit through
the Debian docker CLI, so repeat runs reuse the layer cache. Build times are printed in
the terminal summary.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.fixtures.infra import REPO, missing, wait_until

TODO_APP = REPO / "examples" / "todo-app"
BACKEND = TODO_APP / "backend"
FRONTEND = TODO_APP / "frontend"
BACKEND_TAG = "todo-backend:test"
FRONTEND_TAG = "todo-frontend:test"

BUILD_TIMES: list[tuple[str, float, bool]] = []  # (tag, seconds, all steps cached)


@dataclass
class BuiltImage:
    tag: str
    context: Path
    base: str
    seconds: float
    output: str


def docker_build(dockerd: Any, *, context: Path, tag: str, base: str) -> BuiltImage:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - the docker CLI on our own build contexts
        [
            dockerd.docker,
            "build",
            "--progress=plain",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            tag,
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        check=False,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"docker build {tag} failed:\n{result.stderr[-4000:]}"
    output = result.stdout + result.stderr
    BUILD_TIMES.append((tag, seconds, not uncached_steps(output)))
    return BuiltImage(tag=tag, context=context, base=base, seconds=seconds, output=output)


def uncached_steps(build_output: str) -> list[str]:
    """The Dockerfile RUN/COPY steps BuildKit executed instead of taking from its cache."""
    steps: dict[str, str] = {}
    cached: set[str] = set()
    for line in build_output.splitlines():
        number, _, rest = line.partition(" ")
        if not number.startswith("#"):
            continue
        if rest.startswith("[") and ("] RUN " in rest or "] COPY " in rest):
            steps[number] = rest
        elif rest.strip() == "CACHED":
            cached.add(number)
    return [step for number, step in steps.items() if number not in cached]


@pytest.fixture(scope="session")
def backend_image(dockerd: Any) -> BuiltImage:
    return docker_build(dockerd, context=BACKEND, tag=BACKEND_TAG, base=dockerd.python_base)


@pytest.fixture(scope="session")
def frontend_image(dockerd: Any) -> BuiltImage:
    return docker_build(dockerd, context=FRONTEND, tag=FRONTEND_TAG, base=dockerd.node_base)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not BUILD_TIMES:
        return
    terminalreporter.section("todo-app image builds")
    for tag, seconds, cached in BUILD_TIMES:
        terminalreporter.write_line(
            f"{tag:<22} {seconds:6.1f}s  {'fully cached' if cached else 'built'}"
        )


# ---- PostgreSQL ------------------------------------------------------------------


@pytest.fixture(scope="session")
def todo_database_url(database_url: str) -> Iterator[str]:
    """A fresh database todo_it_<pid> next to DATABASE_URL's, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"todo_it_{os.getpid()}"
    try:
        admin = psycopg.connect(database_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        missing(f"PostgreSQL at DATABASE_URL ({error})")
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# ---- containers and HTTP ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(dockerd: Any, image: str, **kwargs: Any) -> Iterator[Any]:
    """A detached container, force-removed afterwards; its logs are printed on failure."""
    container = dockerd.containers.run(image, detach=True, **kwargs)
    try:
        yield container
    except BaseException:
        print(f"--- logs of {image} ---\n{container.logs().decode(errors='replace')}")
        raise
    finally:
        container.remove(force=True)


def published_port(container: Any, port: str) -> int:
    def lookup() -> int | None:
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(port)
        return int(bindings[0]["HostPort"]) if bindings else None

    return wait_until(lookup, timeout=20, what=f"published port {port}")


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(
    method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """One request with urllib; 4xx/5xx and redirects are returned, not raised or followed."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=10) as response:
            return Reply(response.status, response.read().decode(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read().decode(errors="replace"), dict(error.headers))


def wait_for_http(url: str, *, timeout: float = 60) -> Reply:
    """Poll until the server answers at all (any status), then return that answer."""

    def attempt() -> Reply | None:
        try:
            return http("GET", url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    return wait_until(attempt, timeout=timeout, interval=0.5, what=f"an answer from {url}")
