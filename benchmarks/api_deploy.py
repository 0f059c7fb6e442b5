"""API deploy call: `POST /api/v1/profiles/{name}/releases` (a token, Build off) -> the
release row is written and the 202 has arrived, on a new connection each time as a CLI or a
CI job makes it; against `GET /health` on the same server and connection kind (the web
server's own floor: Django, the middleware, one round trip).

No worker runs: each release stays queued and is cancelled through the API (untimed)
before the next call; the queued Celery messages are purged at the end.
"""

import http.client
import json
import time
from urllib.parse import urlsplit

from benchmarks import harness
from benchmarks.report import Goal, Result, percentile

NAME = "api_deploy"
TITLE = "API deploy call: POST -> release row and 202, vs GET /health on the same server"
GOAL = Goal("<=", 50, unit="ms")
PROFILE, NAMESPACE, NODE_PORT = "bench-api", "bench-api", 32123


def _call(url, method, path, token=None, body=None):
    """(status, parsed body, milliseconds) of one request on a new connection."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    took = (time.perf_counter() - started) * 1000
    return response.status, (json.loads(data) if data else None), took


def run(*, quick=False):
    from deployments.models import Release

    calls = 30 if quick else 200
    result = Result(NAME, TITLE, bare_label="GET /health")
    profile = harness.import_profile(
        harness.todo_spec(name=PROFILE, namespace=NAMESPACE, node_port=NODE_PORT)
    )
    deploy_ms, health_ms = [], []
    try:
        token = harness.api_token()
        with harness.web_server() as (url, _server):
            for i in range(calls + 5):  # 5 untimed: the first imports and schemas
                status, body, took = _call(
                    url, "POST", f"/api/v1/profiles/{PROFILE}/releases", token, {"build": False}
                )
                if status != 202:
                    raise harness.BenchError(f"deploy call answered {status}: {body}")
                if not Release.objects.filter(pk=body["id"], status="queued").exists():
                    raise harness.BenchError(f"release #{body['id']} is not in the database")
                _, _, floor = _call(url, "GET", "/health")
                status, body, _ = _call(url, "POST", f"/api/v1/releases/{body['id']}/cancel", token)
                if status != 200 or not body["cancelled"]:
                    raise harness.BenchError(f"cancel answered {status}: {body}")
                if i >= 5:
                    deploy_ms.append(took)
                    health_ms.append(floor)
    finally:
        harness.delete_profiles(pk=profile.pk)
        from controlpanel.celery import app

        app.control.purge()  # the queued chains of the cancelled releases
    result.add(
        "deploy call -> 202 (release row written), p95",
        percentile(deploy_ms, 95),
        bare=percentile(health_ms, 95),
        goal=GOAL,
    )
    result.add(
        "deploy call -> 202, median", percentile(deploy_ms, 50), bare=percentile(health_ms, 50)
    )
    result.notes.append(
        f"{calls} calls after 5 untimed, each on a new connection with a token (Build off), "
        "each release cancelled through the API before the next (untimed); uvicorn, one "
        "process, no worker"
    )
    return result
