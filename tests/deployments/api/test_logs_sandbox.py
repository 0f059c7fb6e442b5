"""Pod logs through the API and `helmdeck logs`, against the sandbox: a pod's lines, then
only the lines written after (`after`), and a component's pods merged."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deployments.api.conftest import ApiClient, token_for
from tests.deployments.views.test_logs_sandbox import make_pod, shop  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_it_reads_a_pod_log_then_only_what_came_after(shop, sandbox):  # noqa: F811
    pod = make_pod(sandbox, "shop-web-1")
    sandbox.write_log(pod, "web", "boot 1", "boot 2")
    client = ApiClient(token_for("viewer")[1])
    first = client.get("/api/v1/profiles/shop/logs", {"pod": pod})
    assert first.status_code == 200, first.content
    body = first.json()
    assert [line["text"] for line in body["lines"]] == ["boot 1", "boot 2"]
    sandbox.write_log(pod, "web", "later 3")
    rest = client.get("/api/v1/profiles/shop/logs", {"pod": pod, "after": body["after"]}).json()
    assert [line["text"] for line in rest["lines"]] == ["later 3"]
    assert client.get("/api/v1/profiles/shop/logs", {"pod": "nope"}).status_code == 404
    bad = client.get("/api/v1/profiles/shop/logs", {"pod": pod, "component": "web"})
    assert bad.status_code == 400 and "not both" in bad.json()["errors"][0]["message"]


def test_helmdeck_logs_prints_a_components_pods_merged(shop, sandbox, asgi_server):  # noqa: F811
    pods = [make_pod(sandbox, f"shop-web-{n}") for n in (1, 2)]
    for n, pod in enumerate(pods):
        sandbox.write_log(pod, "web", f"hello from {n}")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    env.update(HELMDECK_URL=asgi_server, HELMDECK_TOKEN=token_for("viewer")[1])
    helmdeck = Path(sys.executable).with_name("helmdeck")
    shown = subprocess.run(  # noqa: S603
        [str(helmdeck), "logs", "shop", "--component", "web", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sorted((line["pod"], line["text"]) for line in lines) == [
        ("shop-web-1", "hello from 0"),
        ("shop-web-2", "hello from 1"),
    ]
