"""2. Status latency: a pod's status changes in the sandbox -> the SSE `pods` event reaches
1, 10 and 100 clients of the profile stream, against `kubectl get pods -w` seeing it.

The harness owns the pod's readiness: the pod carries `helmdeck.dev/ready-delay: 1h`, so
kwok never flips it, and each change is a status patch (Ready condition and the
container's `ready`) sent from here. t0 is taken just before the patch; a client's
latency is when its `pods` event showing the new state ended (its HTML has
`class="pod pod-ready"` or `pod-not-ready`); kubectl's is when its line with the new
READY column arrived. Path: apiserver -> watch_cluster (PodState row, Redis publish) ->
uvicorn (re-render per client) -> client.
"""

import asyncio
import contextlib
import re
import time

from benchmarks import cluster, harness, sse
from benchmarks.report import Goal, Result, summary

NAME = "status_latency"
TITLE = "Status latency: pod change -> SSE `pods` event, vs kubectl get pods -w"
POD = "bench-web-0"
KUBECTL_LINE = re.compile(r"^(\S+)\s+(\d+)/(\d+)\s")


class KubectlWatch:
    """`kubectl get pods -w` as an asyncio subprocess; lines kept with arrival times."""

    def __init__(self, ns, board):
        self.ns, self.board, self.lines, self.proc = ns, board, [], None

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            cluster.kubectl_bin(),
            "get",
            "pods",
            "-n",
            self.ns,
            "-w",
            "--no-headers",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.task = asyncio.create_task(self._read())

    async def _read(self):
        async for raw in self.proc.stdout:
            match = KUBECTL_LINE.match(raw.decode())
            if match and match.group(1) == POD:
                self.lines.append((time.perf_counter(), match.group(2) == match.group(3)))
                self.board.bump()

    def seen(self, ready, since):
        return next((t for t, r in self.lines if t >= since and r == ready), None)

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 5)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


def _patcher(core, ns):
    """A function setting the pod Ready or not, as a kubelet's status update would."""
    from kubernetes import client

    pod = core.read_namespaced_pod(POD, ns)
    statuses = client.ApiClient().sanitize_for_serialization(pod.status.container_statuses)

    def patch(ready):
        patch.ready = ready
        flag = "True" if ready else "False"
        body = {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": flag},
                    {"type": "ContainersReady", "status": flag},
                ],
                "containerStatuses": [{**s, "ready": ready} for s in statuses],
            }
        }
        core.patch_namespaced_pod_status(POD, ns, body)

    patch.ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
    return patch


def _marker(ready):
    return f'id="pod-{POD}" class="pod {"pod-ready" if ready else "pod-not-ready"}"'


async def _round(url, cookies, count, changes, patch, kubectl, board):
    """Open `count` clients, make `changes` status changes; latencies in ms."""
    loop = asyncio.get_running_loop()
    async with sse.session(cookies) as sess:
        clients = await sse.open_clients(sess, url, count, board)
        errors = [c.error for c in clients if c.error]
        if errors:
            await sse.close_all(clients)
            raise harness.BenchError(f"{len(errors)} of {count} clients failed: {errors[0]}")
        ours, theirs, missed = [], [], 0
        for _ in range(changes):
            await asyncio.sleep(0.3)
            ready = not patch.ready
            marker = _marker(ready)
            t0 = time.perf_counter()
            await loop.run_in_executor(None, patch, ready)

            def arrivals(t0=t0, marker=marker):
                return [
                    next((t for t, d in c.named("pods", t0) if marker in d), None) for c in clients
                ]

            def done(ready=ready, t0=t0):
                return all(t is not None for t in arrivals()) and kubectl.seen(ready, t0)

            await board.wait_until(done, timeout=10)
            got = arrivals()
            missed += sum(t is None for t in got)
            ours += [(t - t0) * 1000 for t in got if t is not None]
            seen = kubectl.seen(ready, t0)
            if seen is not None:
                theirs.append((seen - t0) * 1000)
        await sse.close_all(clients)
    return ours, theirs, missed


async def _measure(url, cookies, ns, patch, scales, changes):
    board = sse.Board()
    kubectl = KubectlWatch(ns, board)
    await kubectl.start()
    try:
        await board.wait_until(lambda: kubectl.lines, timeout=15)
        return {n: await _round(url, cookies, n, changes, patch, kubectl, board) for n in scales}
    finally:
        await kubectl.stop()


def run(*, quick=False):
    from deployments.models import PodState

    changes = 5 if quick else 15
    scales = (1, 10, 100)
    result = Result(NAME, TITLE, bare_label="kubectl -w")
    core, _ = cluster.kube()
    with cluster.namespace(core, "status") as ns:
        profile = harness.import_profile(
            harness.todo_spec(name=ns, namespace=ns, node_port=cluster.free_node_port(core))
        )
        try:
            with harness.watcher(), harness.web_server() as (url, web):
                cluster.bare_pod(core, ns, POD, profile.name, ready_delay="1h")
                harness.wait_for(
                    lambda: PodState.objects.filter(
                        profile=profile, name=POD, phase="Running"
                    ).exists(),
                    timeout=30,
                    what="the watcher's PodState row",
                )
                time.sleep(1.5)  # let kwok's start-up events settle
                patch = _patcher(core, ns)
                stream = f"{url}/profiles/{profile.name}/stream/"
                found = asyncio.run(
                    _measure(stream, harness.session_cookie(), ns, patch, scales, changes)
                )
        finally:
            harness.delete_profiles(pk=profile.pk)
    for n, (ours, theirs, missed) in found.items():
        mine, bare = summary(ours), summary(theirs)
        goal = Goal("<=", 200, unit="ms") if n == 100 else None
        label = f"{n} client{'s' if n > 1 else ''}"
        result.add(f"{label}: p50", mine["p50"], bare=bare["p50"])
        result.add(f"{label}: p95", mine["p95"], bare=bare["p95"], goal=goal)
        result.add(f"{label}: max", mine["max"], bare=bare["max"])
        if missed:
            result.add(f"{label}: events not received in 10 s", missed, unit="", goal=Goal("==", 0))
    result.notes.append(
        f"{changes} status changes per client count; p50/p95/max over every client's "
        "receipt; kubectl -w is one watcher seeing the same change"
    )
    return result
