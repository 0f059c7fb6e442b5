"""Release the leases of simulated nodes that a kwok-controller which is gone still holds.

    python3 scripts/sandbox/kwok_leases.py KUBECTL KUBECONFIG KWOK_CONTROLLER_PID_FILE

Why: a simulated node is Ready while its Lease (kube-node-lease/<node>) is renewed. The
sandbox keeps its etcd across a restart, and with it each Lease, held by the previous
kwok-controller (its identity is the hostname plus a random id, new for every process). The
new kwok-controller takes a Lease only once it has expired: 200 s after the last renewal
(kwokctl's --node-lease-duration-seconds), plus up to 52 s until it looks again. The new
kube-controller-manager allows 200 s from its own start (--node-monitor-grace-period), so the
node went NotReady, was tainted unreachable, and every deploy to it was refused meanwhile ("0
of 2 nodes take pods": CI, 2026-12-04). A Lease last renewed before the running
kwok-controller started belongs to a process that is gone: its holder is removed (a JSON patch
that first tests the holder, so a Lease taken meanwhile is left alone), and the running
kwok-controller takes it at its next look, well inside the grace period.

Prints one line per Lease released. Best effort, and always exit 0: a kubectl that fails
or times out is reported on stderr and the sandbox starts anyway (the Lease then comes back
when it expires, as before). Nothing to do without a running kwok-controller.
"""

import json
import os
import subprocess
import sys
import time
from datetime import datetime

SIMULATED = ("kwok.x-k8s.io/node", "fake")  # the annotation kwok-controller selects nodes by


def started_at(pid):
    """When the kwok-controller `pid` started, in seconds since the epoch; None if that pid
    is not a running kwok-controller (gone, a zombie, or reused by another program)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            if not f.read().startswith("kwok"):
                return None
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # exited, not reaped yet
        return None
    # field 22, starttime: clock ticks after boot; the boot time to the sub-second (btime
    # in /proc/stat is whole seconds, which could put the start up to 1 s early)
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


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


def release(kubectl_path, kubeconfig, name, holder):
    """Remove `holder` from Lease `name`, unless someone else holds it by now. True when
    released."""
    patch = [
        {"op": "test", "path": "/spec/holderIdentity", "value": holder},
        {"op": "remove", "path": "/spec/holderIdentity"},
    ]
    try:
        kubectl(
            kubectl_path, kubeconfig, "-n", "kube-node-lease", "patch", "lease", name,
            "--type=json", "-p", json.dumps(patch),
        )  # fmt: skip
        return True
    except subprocess.CalledProcessError:
        now = kubectl(
            kubectl_path, kubeconfig, "-n", "kube-node-lease", "get", "lease", name,
            "--ignore-not-found", "-o", "json",
        )  # fmt: skip
        if not now.strip() or (json.loads(now).get("spec") or {}).get("holderIdentity") != holder:
            return False  # gone, or taken meanwhile (the test op failed): not ours
        raise


def main(kubectl_path, kubeconfig, pid_file):
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return 0
    since = started_at(pid)
    if since is None:
        return 0
    try:
        nodes = json.loads(kubectl(kubectl_path, kubeconfig, "get", "nodes", "-o", "json"))
        leases = json.loads(
            kubectl(
                kubectl_path, kubeconfig, "-n", "kube-node-lease", "get", "leases", "-o", "json"
            )
        )
        for name, holder in stale_leases(leases["items"], nodes["items"], since):
            if release(kubectl_path, kubeconfig, name, holder):
                print(
                    f"released the lease of node {name}, held by {holder}, "
                    "a kwok-controller that is gone"
                )
    except (subprocess.SubprocessError, ValueError) as error:
        detail = getattr(error, "stderr", None) or error
        print(f"could not release the simulated nodes' leases: {detail}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    sys.exit(main(*sys.argv[1:]))
