"""The log viewer against the sandbox cluster: pods found by the chart's labels, lines
written after the stream opened, a reconnect with Last-Event-ID that repeats and loses
nothing, every follow connection and thread gone when the client goes, the previous
container's log, a deleted pod ending the stream, and an unreachable cluster."""

import asyncio
import re
import threading
import time

import pytest
from kubernetes import client

from deployments.models import Cluster
from tests.deployments.views.test_streams import in_own_loop, parse
from tests.factories import ComponentFactory, ProfileFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LINE = re.compile(r'<div class="log-line">(?:<span class="log-pod">([^<]*)</span> )?([^<]*)</div>')


@pytest.fixture
def shop(sandbox):
    cluster = Cluster.objects.create(
        name=f"sandbox-{sandbox.namespace[-6:]}",
        kubeconfig_path=str(sandbox.kubeconfig),
        minikube_profile="",
    )
    profile = ProfileFactory(name="shop", namespace=sandbox.namespace, cluster=cluster)
    ComponentFactory(profile=profile, name="web")
    return profile


def make_pod(sandbox, name, *, instance="shop", component="web"):
    """A pod as the chart labels it (container named after the component), once Running."""
    container = client.V1Container(
        name=component,
        image=f"{component}:1.0.0",
        resources=client.V1ResourceRequirements(
            requests={"cpu": "10m", "memory": "16Mi"}, limits={"cpu": "10m", "memory": "16Mi"}
        ),
    )
    labels = {"app.kubernetes.io/instance": instance, "app.kubernetes.io/component": component}
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=0),
    )
    sandbox.core.create_namespaced_pod(sandbox.namespace, body)
    sandbox.wait_until(
        lambda: sandbox.pod(name).status.phase == "Running", timeout=60, what=f"{name} Running"
    )
    return name


def established(ports):
    """Whether this machine has an ESTABLISHED TCP connection from local port to peer port
    `ports` (both: after a close, the local port alone may serve another connection)."""
    local, peer = ports
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                fields = row.split()
                port = (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16))
                if fields[3] == "01" and port == (local, peer):
                    return True
    return False


def lines_of(messages):
    found = (m.groups() for e, _, data in messages if e == "line" for m in LINE.finditer(data))
    return [(pod or "", text) for pod, text in found]


def read_stream(aclient, url, until, *, headers=None, during=None, timeout=30):
    """Open the stream, run `during()` in a thread, read until `until(messages)`, then go
    away the way a browser does (the ASGI handler cancels the response task)."""

    async def run():
        response = await aclient.get(url, headers=headers or {})
        assert response.status_code == 200, response.content
        chunks = []
        reached = asyncio.Event()

        async def consume():
            async for chunk in response.streaming_content:
                chunks.append(chunk.decode())
                if until(parse(chunks)):
                    reached.set()

        task = asyncio.create_task(consume())
        if during is not None:
            threading.Thread(target=during, daemon=True).start()
        try:
            try:
                await asyncio.wait_for(reached.wait(), timeout)
            except TimeoutError:
                raise AssertionError(f"not reached; got {chunks}") from None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return parse(chunks)

    return in_own_loop(run)


def wait_for_cleanup(follow_streams):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        threads = [t for t in threading.enumerate() if t.name.startswith("pod-log ")]
        if not threads and not any(established(ports) for _, ports in follow_streams):
            return
        time.sleep(0.1)
    pytest.fail(f"left open: threads {threads}, streams {follow_streams}")


def test_it_streams_new_lines_and_resumes_after_last_event_id_exactly(
    sandbox, shop, viewer_client, follow_streams
):
    pod = make_pod(sandbox, "shop-web-1")
    sandbox.write_log(pod, "web", *[f"before {n}" for n in range(3)])
    url = f"/profiles/shop/logs/stream/?pod={pod}"

    def write_live():
        time.sleep(0.5)
        for n in range(5):
            sandbox.write_log(pod, "web", f"live {n} <b>")

    first = read_stream(
        viewer_client, url, lambda m: ("", "live 4 &lt;b&gt;") in lines_of(m), during=write_live
    )
    assert [text for _, text in lines_of(first)] == [f"before {n}" for n in range(3)] + [
        f"live {n} &lt;b&gt;" for n in range(5)
    ]
    assert follow_streams, "the stream followed the pod's log"
    wait_for_cleanup(follow_streams)

    token = [event_id for event, event_id, _ in first if event == "line"][-1]
    sandbox.write_log(pod, "web", "after 0", "after 1")
    again = read_stream(
        viewer_client,
        url,
        lambda m: ("", "after 1") in lines_of(m),
        headers={"Last-Event-ID": token},
    )
    assert [text for _, text in lines_of(again)] == ["after 0", "after 1"]
    wait_for_cleanup(follow_streams)


def test_it_merges_the_pods_of_a_component_with_their_names(sandbox, shop, viewer_client):
    make_pod(sandbox, "shop-web-a")
    make_pod(sandbox, "shop-web-b")
    make_pod(sandbox, "other-web-c", instance="other")  # another release's pod
    sandbox.write_log("shop-web-a", "web", "a: booted")
    sandbox.write_log("shop-web-b", "web")  # its log file exists before the stream opens
    sandbox.write_log("other-web-c", "web", "not ours")

    def write_live():
        time.sleep(0.5)
        sandbox.write_log("shop-web-b", "web", "b: live")

    messages = read_stream(
        viewer_client,
        "/profiles/shop/logs/stream/?component=web",
        lambda m: ("shop-web-b", "b: live") in lines_of(m),
        during=write_live,
    )
    assert lines_of(messages) == [("shop-web-a", "a: booted"), ("shop-web-b", "b: live")]

    # a reconnect of the merged stream resumes every pod after its own position
    token = [event_id for event, event_id, _ in messages if event == "line"][-1]
    sandbox.write_log("shop-web-a", "web", "a: later")
    sandbox.write_log("shop-web-b", "web", "b: later")
    again = read_stream(
        viewer_client,
        "/profiles/shop/logs/stream/?component=web",
        lambda m: len(lines_of(m)) >= 2,
        headers={"Last-Event-ID": token},
    )
    assert lines_of(again) == [("shop-web-a", "a: later"), ("shop-web-b", "b: later")]


def test_it_ends_the_stream_when_the_pod_is_deleted(sandbox, shop, viewer_client, monkeypatch):
    monkeypatch.setattr("deployments.services.pod_logs_follow.RELIST_SECONDS", 0.3)
    pod = make_pod(sandbox, "shop-web-gone")

    def delete():
        time.sleep(0.5)
        sandbox.core.delete_namespaced_pod(pod, sandbox.namespace, grace_period_seconds=0)

    messages = read_stream(
        viewer_client,
        f"/profiles/shop/logs/stream/?pod={pod}",
        lambda m: m and m[-1][0] == "end",
        during=delete,
    )
    assert messages[-1] == ("end", None, f"pod {pod} was deleted")


def test_the_page_and_download_show_the_previous_containers_log(login, sandbox, shop):
    pod = make_pod(sandbox, "shop-web-crashed")
    sandbox.write_log(pod, "web", "Traceback: boom", previous=True)
    sandbox.write_log(pod, "web", "restarted fine")
    client = login("viewer")
    body = client.get(f"/profiles/shop/logs/?pod={pod}&previous=1").content.decode()
    assert ">Traceback: boom<" in body and "restarted fine" not in body
    assert "previous container" in body and 'http-equiv="refresh"' not in body
    current = client.get(f"/profiles/shop/logs/?pod={pod}").content.decode()
    assert ">restarted fine<" in current and "Traceback" not in current
    download = client.get(f"/profiles/shop/logs/download/?pod={pod}&previous=1")
    assert download.content.decode() == "Traceback: boom\n"
    assert download["Content-Disposition"] == f'attachment; filename="shop-{pod}-previous.log"'


def test_a_pod_outside_the_release_is_not_found(login, sandbox, shop):
    make_pod(sandbox, "intruder", instance="other")
    assert login("viewer").get("/profiles/shop/logs/?pod=intruder").status_code == 404


def test_an_unreachable_cluster_is_a_message_in_the_page(login, shop, unreachable_kubeconfig):
    Cluster.objects.filter(pk=shop.cluster_id).update(kubeconfig_path=str(unreachable_kubeconfig))
    response = login("viewer").get("/profiles/shop/logs/?component=web")
    assert response.status_code == 503
    assert "the cluster is unreachable" in response.content.decode()
