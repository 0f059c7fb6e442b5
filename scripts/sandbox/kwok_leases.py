"""Release the leases of simulated nodes that a kwok-controller which is gone still holds.

    python3 scripts/sandbox/kwok_leases.py KUBECTL KUBECONFIG KWOK_CONTROLLER_PID_FILE

Why: a simulated node is Ready while its Lease (kube-node-lease/<node>) is renewed. The
sandbox keeps its etcd across a restart, and with it each Lease, held by the previous
kwok-controller (its identity is the hostname plus a random id, new for every process). The
new kwok-controller takes a Lease only once it has expired: 200 s after the last renewal
(kwokctl's --node-lease-duration-seconds), plus up to 50 s until it looks again. The new
kube-controller-manager allows 200 s from its own start (--node-monitor-grace-period), so the
node went NotReady, was tainted unreachable, and every deploy to it was refused meanwhile ("0
of 2 nodes take pods": CI, 2026-12-04). A Lease last renewed before the running
kwok-controller started belongs to a process that is gone: its holder is removed (a JSON patch
that first tests the holder, so a Lease taken meanwhile is left alone), and the running
kwok-controller takes it at its next look, well inside the grace period.

Prints one line per Lease released; exits 0 when there is nothing to do (no running
kwok-controller, no simulated node).
"""

import json
import os
import subprocess
import sys
from datetime import datetime

SIMULATED = ("kwok.x-k8s.io/node", "fake")  # the annotation kwok-controller selects nodes by


def started_at(pid):
    """When process `pid` started, in seconds since the epoch; None if it is not running."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime


def kubectl(kubectl_path, kubeconfig, *args):
    result = subprocess.run(  # noqa: S603
        [kubectl_path, "--kubeconfig", kubeconfig, "--request-timeout=10s", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def stale_leases(leases, nodes, since):
    """(name, holder) of each simulated node's Lease held by someone and last renewed
    before `since` (seconds since the epoch)."""
    simulated = {
        n["metadata"]["name"]
        for n in nodes
        if (n["metadata"].get("annotations") or {}).get(SIMULATED[0]) == SIMULATED[1]
    }
    found = []
    for lease in leases:
        spec = lease.get("spec") or {}
        holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
        if lease["metadata"]["name"] not in simulated or not holder or not renewed:
            continue
        if datetime.fromisoformat(renewed.replace("Z", "+00:00")).timestamp() < since:
            found.append((lease["metadata"]["name"], holder))
    return found


def main(kubectl_path, kubeconfig, pid_file):
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return 0
    since = started_at(pid)
    if since is None:
        return 0
    nodes = json.loads(kubectl(kubectl_path, kubeconfig, "get", "nodes", "-o", "json"))["items"]
    leases = json.loads(
        kubectl(kubectl_path, kubeconfig, "-n", "kube-node-lease", "get", "leases", "-o", "json")
    )["items"]
    for name, holder in stale_leases(leases, nodes, since):
        patch = [
            {"op": "test", "path": "/spec/holderIdentity", "value": holder},
            {"op": "remove", "path": "/spec/holderIdentity"},
        ]
        try:
            kubectl(
                kubectl_path, kubeconfig, "-n", "kube-node-lease", "patch", "lease", name,
                "--type=json", "-p", json.dumps(patch),
            )  # fmt: skip
        except subprocess.CalledProcessError:
            now = json.loads(
                kubectl(kubectl_path, kubeconfig, "-n", "kube-node-lease", "get", "lease", name,
                        "-o", "json")
            )  # fmt: skip
            if (now.get("spec") or {}).get("holderIdentity") != holder:
                continue  # taken meanwhile (the test op failed): not ours to release
            raise
        print(
            f"released the lease of node {name}, held by {holder}, a kwok-controller that is gone"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    sys.exit(main(*sys.argv[1:]))
