"""A restarted sandbox gets its simulated nodes' leases back (scripts/sandbox/kwok_leases.py).

The sandbox keeps its etcd across a restart; a simulated node's Lease is then still held by
the kwok-controller that is gone, the new one waits for it to expire (200 s), and the
controller-manager, which allows 200 s from its own start, marked the node NotReady and
tainted it meanwhile (CI, 2026-12-04: deploys refused, "0 of 2 nodes take pods"). Shown on
this session's private kwok cluster, whose kwok-controller the test restarts.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.infra import wait_until

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sandbox" / "kwok_leases.py"


def _holder(cluster) -> str | None:
    lease = json.loads(
        cluster.kubectl("-n", "kube-node-lease", "get", "lease", "node-0", "-o", "json")
    )
    return lease["spec"].get("holderIdentity")


def _release(cluster) -> str:
    result = subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(SCRIPT),
            str(cluster.kubectl_path),
            str(cluster.kubeconfig),
            str(cluster.pids / "kwok-controller.pid"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    return result.stdout


@pytest.fixture
def restored(private_cluster):
    """The session's private cluster, left with node-0's lease held and the node Ready
    however the test ends (its next tests need a Ready node)."""
    yield private_cluster
    if not (private_cluster.pids / "kwok-controller.pid").exists():
        private_cluster.start()
    _release(private_cluster)
    wait_until(lambda: _holder(private_cluster), timeout=90, interval=1, what="a lease holder")
    private_cluster.kubectl("wait", "--for=condition=Ready", "node/node-0", "--timeout=60s")


def test_a_new_kwok_controller_gets_the_lease_its_predecessor_held(restored):
    private_cluster = restored
    before = wait_until(lambda: _holder(private_cluster), timeout=90, what="node-0's lease")
    assert _release(private_cluster) == ""  # held by the running kwok-controller: left alone

    private_cluster.stop_component("kwok-controller")
    private_cluster.start()
    # the new kwok-controller cannot take it: held by the one that is gone, for 200 s more
    assert _holder(private_cluster) == before

    out = _release(private_cluster)
    assert out.strip() == (
        f"released the lease of node node-0, held by {before}, a kwok-controller that is gone"
    )
    # the new one takes it at its next look (a quarter of the lease's 200 s)
    after = wait_until(
        lambda: (holder := _holder(private_cluster)) and holder != before and holder,
        timeout=90,
        interval=1,
        what="the new kwok-controller to hold node-0's lease",
    )
    assert after.startswith(before.split("_", 1)[0] + "_")  # this host, another process
    assert _release(private_cluster) == ""  # renewed since it started: nothing to release
    private_cluster.kubectl("wait", "--for=condition=Ready", "node/node-0", "--timeout=30s")


def _script():
    spec = importlib.util.spec_from_file_location("kwok_leases", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_simulated_nodes_leases_renewed_before_the_controller_started_are_stale():
    def node(name, simulated):
        annotations = {"kwok.x-k8s.io/node": "fake"} if simulated else {}
        return {"metadata": {"name": name, "annotations": annotations}}

    def lease(name, holder, renewed):
        return {
            "metadata": {"name": name},
            "spec": {"holderIdentity": holder, "renewTime": renewed},
        }

    started = 1_800_000_000.5  # 2027-01-15T08:00:00.5Z
    nodes = [node("sim-a", True), node("sim-b", True), node("sim-c", True), node("real", False)]
    leases = [
        lease("sim-a", "gone_1", "2027-01-15T07:59:59.000000Z"),  # before the start: stale
        lease("sim-b", "new_2", "2027-01-15T08:00:00.600000Z"),  # after it: the running one's
        lease("sim-c", None, "2027-01-15T07:00:00.000000Z"),  # no holder: nothing to release
        lease("real", "real", "2027-01-15T07:00:00.000000Z"),  # a kubelet's: never touched
        lease("other", "x", "2027-01-15T07:00:00.000000Z"),  # not a node of this cluster
    ]
    assert _script().stale_leases(leases, nodes, started) == [("sim-a", "gone_1")]
