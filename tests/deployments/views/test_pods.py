"""The profile page's Pods section, its live stream, and the status page's health badge."""

import asyncio
import threading

import pytest
from django.test import AsyncClient

from deployments.models import PodState
from tests.deployments.views.test_digest import opens_region
from tests.deployments.views.test_streams import in_own_loop, parse
from tests.factories import UserFactory, make_release, pod_state

pytestmark = pytest.mark.django_db


def test_it_lists_pods_with_their_diagnosis(login, todo_app):
    pod_state(todo_app, "backend-abc", last_event="Started: Started container backend")
    pod_state(
        todo_app,
        "frontend-xyz",
        component="frontend",
        ready=False,
        ready_containers=0,
        reason="CrashLoopBackOff",
        exit_code=137,
        restarts=3,
        last_log="listening on :3000\nError: <b>ECONNREFUSED</b> backend:8000",
    )
    pod_state(todo_app, "backend-old", deleted=True, ready=False, reason="Deleted")
    response = login("viewer").get("/profiles/todo-app/")
    body = response.content.decode()
    assert 'id="pods"' in body and 'sse-swap="pods"' in body
    assert 'sse-connect="/profiles/todo-app/stream/"' in body
    assert "backend-abc" in body and "frontend-xyz" in body and "backend-old" not in body
    assert "Started: Started container backend" in body and "node-1" in body
    assert "CrashLoopBackOff" in body and "(exit code 137)" in body and "0/1" in body
    assert "CrashLoopBackOff (exit code 137, 3 restarts)" in body
    assert "Fix: The container exits on start" in body
    assert "Error: &lt;b&gt;ECONNREFUSED&lt;/b&gt; backend:8000</pre>" in body  # last lines
    assert 'http-equiv="refresh" content="10"' in body  # a pod is not Ready


def test_it_shows_an_empty_state_and_no_refresh_without_pods(login, todo_app):
    body = login("viewer").get("/profiles/todo-app/").content.decode()
    assert "No pods yet: deploy the profile" in body and "watch_cluster" in body
    assert 'http-equiv="refresh"' not in body


def test_it_does_not_refresh_when_every_pod_is_ready(login, todo_app):
    pod_state(todo_app, "backend-abc")
    body = login("viewer").get("/profiles/todo-app/").content.decode()
    assert "backend-abc" in body and 'http-equiv="refresh"' not in body


def test_it_answers_htmx_with_the_pods_partial(login, todo_app):
    pod_state(todo_app, "backend-abc", phase="Pending", ready=False, ready_containers=0)
    response = login("viewer").get("/profiles/todo-app/", headers={"HX-Request": "true"})
    body = response.content.decode().strip()
    assert opens_region(body, "pods") and body.endswith("</section>")
    assert "backend-abc" in body and "Pending" in body and "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_it_shows_a_health_badge_on_the_status_page(login, todo_app):
    make_release(todo_app, revision=1)
    pod_state(todo_app, "backend-abc")
    pod_state(
        todo_app,
        "frontend-xyz",
        component="frontend",
        ready=False,
        ready_containers=0,
        reason="ImagePullBackOff",
    )
    body = login("viewer").get("/").content.decode()
    assert "health-degraded" in body and "1/2 pods ready" in body


def test_it_says_not_deployed_on_the_status_page(login, todo_app):
    body = login("viewer").get("/").content.decode()
    assert "health-not_deployed" in body and "Not deployed" in body


def test_it_answers_404_for_the_stream_of_an_unknown_profile(login, todo_app):
    assert login("viewer").get("/profiles/nope/stream/").status_code == 404


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_streams_the_pods_partial_after_each_pod_publish(todo_app, redis_url, settings):
    from deployments.services.pod_states import pod_state_publish

    settings.REDIS_URL = redis_url
    row = pod_state(todo_app, "backend-abc", phase="Pending", ready=False, ready_containers=0)
    user = UserFactory(role="viewer")
    aclient = AsyncClient()
    in_own_loop(aclient.aforce_login, user)  # alogin fails under AxesStandaloneBackend

    subscribed = threading.Event()

    def produce():
        from django.db import connection

        # the first `pods` event comes after the hub confirmed the subscription
        assert subscribed.wait(60), "the stream never sent the current rows"
        changed = PodState.objects.get(pk=row.pk)
        changed.phase, changed.ready, changed.ready_containers = "Running", True, 1
        changed.save()
        pod_state_publish(changed)
        connection.close()

    async def read():
        response = await aclient.get("/profiles/todo-app/stream/")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        chunks = []
        threading.Thread(target=produce).start()

        async def collect():
            async for chunk in response.streaming_content:
                chunks.append(chunk.decode())
                pods = sum(1 for m in parse(chunks) if m[0] == "pods")
                if pods >= 1:
                    subscribed.set()
                if pods >= 2:
                    return

        await asyncio.wait_for(collect(), timeout=30)
        return chunks

    pods = [
        (event_id, data) for event, event_id, data in parse(in_own_loop(read)) if event == "pods"
    ]
    assert len(pods) == 2
    assert "Pending" in pods[0][1] and opens_region(pods[0][1], "pods")
    assert "Running" in pods[1][1] and "1/1" in pods[1][1] and "Pending" not in pods[1][1]
    assert pods[1][0] is not None and int(pods[1][0]) > 0
