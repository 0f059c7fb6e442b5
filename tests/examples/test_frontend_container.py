"""The frontend's standalone server in its image, with the backend down and up."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse

import pytest

from .conftest import free_port, http, published_port, running, wait_for_http

pytestmark = pytest.mark.integration


def test_it_serves_the_page_when_the_backend_is_down(dockerd, frontend_image):
    # The image's own CMD and defaults (HOSTNAME=0.0.0.0, PORT=3000), published on a random port.
    with running(
        dockerd,
        frontend_image.tag,
        ports={"3000/tcp": ("127.0.0.1", None)},
        environment={"BACKEND_URL": "http://127.0.0.1:8000"},  # nothing listens there
    ) as container:
        base = f"http://127.0.0.1:{published_port(container, '3000/tcp')}"
        page = wait_for_http(f"{base}/")
        api = http("GET", f"{base}/api/todos")
        static = http("GET", f"{base}/robots.txt")
    assert page.status == 200
    assert "Could not load todos" in page.body
    assert "backend unreachable at http://127.0.0.1:8000: ECONNREFUSED" in page.body
    assert api.status == 502
    assert static.status == 200


def test_it_answers_within_the_probe_timeout_when_the_backend_hangs(dockerd, frontend_image):
    # A "backend" that accepts connections (the kernel completes the handshake) and never
    # answers: the page must still answer inside the readiness probe's 3-second timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = free_port()
        with running(
            dockerd,
            frontend_image.tag,
            network_mode="host",
            environment={
                "BACKEND_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
                "PORT": str(port),
                "HOSTNAME": "127.0.0.1",
            },
        ):
            wait_for_http(f"http://127.0.0.1:{port}/robots.txt")
            started = time.monotonic()
            page = http("GET", f"http://127.0.0.1:{port}/")
            elapsed = time.monotonic() - started
    assert page.status == 200
    assert "no answer in 2000 ms" in page.body
    # without the 2 s deadline the request would hang on the silent backend; the bound is
    # loose so a loaded machine does not fail it
    assert elapsed < 15


def test_it_lists_and_adds_todos_through_a_running_backend(
    dockerd, backend_image, frontend_image, todo_database_url
):
    backend_port, frontend_port = free_port(), free_port()
    backend = f"http://127.0.0.1:{backend_port}"
    frontend = f"http://127.0.0.1:{frontend_port}"
    with (
        running(
            dockerd,
            backend_image.tag,
            command=["uvicorn", "src.main:app", "--host", "127.0.0.1", "--port", str(backend_port)],
            network_mode="host",
            environment={"DATABASE_URL": todo_database_url},
        ),
        running(
            dockerd,
            frontend_image.tag,
            network_mode="host",
            environment={
                "BACKEND_URL": backend,
                "PORT": str(frontend_port),
                "HOSTNAME": "127.0.0.1",
            },
        ),
    ):
        wait_for_http(f"{backend}/health")
        seeded = http(
            "POST",
            f"{backend}/todos",
            data=json.dumps({"title": "seeded in the backend"}).encode(),
            headers={"content-type": "application/json"},
        )
        assert seeded.status == 201
        page = wait_for_http(f"{frontend}/")
        form = urllib.parse.urlencode({"title": "added through the page"}).encode()
        added = http(
            "POST",
            f"{frontend}/api/todos",
            data=form,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        page_after = http("GET", f"{frontend}/")
        in_backend = http("GET", f"{backend}/todos").json()
    assert page.status == 200
    assert "seeded in the backend" in page.body
    assert (added.status, added.headers.get("location")) == (303, "/")
    assert "added through the page" in page_after.body
    assert [t["title"] for t in in_backend] == ["seeded in the backend", "added through the page"]
