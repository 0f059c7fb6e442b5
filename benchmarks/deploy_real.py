"""1b. Deploy overhead on the sandbox's real node: the todo-app profile's shape deployed
through Helmdeck (`--no-build`) against bare `helm upgrade --install --wait` of the same
chart and values, alternated, as deploy.py does on the kwok nodes (the same `measure`),
but with real containers started by a kubelet and probed for real.

What differs from the kwok variant, and why:
- The namespaces carry no SIMULATED_NODES annotations, so the pods run on the real node
  (kubelet + containerd, scripts/sandbox/node); after every run (untimed) the benchmark
  checks that they did, Ready, with containerd containers.
- Both components run the probe server of tests/integration/images/probe on port 8080
  (it answers 200 on /, /health and /ready), built by dockerd as helmdeck-bench/probe:1
  with images/probe.Dockerfile (the same, but it exits on SIGTERM, as a server does):
  the todo-app's own backend is Ready only with a PostgreSQL its pods can reach. The
  image is loaded into the node's containerd before anything is timed (pull policy
  Never: the sandbox has no registry). That load is measured beside, not inside, the
  deploy figures: Helmdeck's load step (image_deliver) against `docker save | ctr import`,
  after one untimed load (the first one copies the base layers too).
- Requests = limits of 250m CPU / 128Mi per component instead of the seed's 1.5 CPU /
  1.5 Gi in all: the node is this machine (2 CPUs), shared with the tests' real pods.
- Everything else is the profile's: NodePort frontend and ClusterIP backend, config and
  secrets, probe paths and timings (readiness from 10 s then every 5 s, liveness from
  30 s). The kubelet probes on its own 5 s period, counted from when it took the pod,
  so a pod is Ready at its first readiness probe after the 10 s delay (kwok: at 10 s).
- The profile is on a Cluster row that loads images into this node's containerd
  (bench-real-node), as a kind cluster or Minikube with containerd is set up.
"""

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass

from benchmarks import cluster, harness
from benchmarks.deploy import Variant, measure
from benchmarks.harness import ROOT, BenchError
from benchmarks.report import Result, median

NAME = "deploy_real"
TITLE = (
    "Deploy overhead on the real node: todo-app's shape --no-build through Helmdeck "
    "vs bare helm upgrade --install"
)
IMAGE, TAG, PORT = "helmdeck-bench/probe", "1", 8080
REF = f"{IMAGE}:{TAG}"
PROBE_DIR = ROOT / "tests" / "integration" / "images" / "probe"
DOCKERFILE = ROOT / "benchmarks" / "images" / "probe.Dockerfile"
CLUSTER = "bench-real-node"
RESOURCES = {"cpu": "250m", "memory": "128Mi"}


def spec(*, name, namespace, node_port):
    """The todo-app profile with the probe image on both components (see above)."""
    data = harness.todo_spec(name=name, namespace=namespace, node_port=node_port)
    data["cluster"] = CLUSTER
    data["description"] = f"todo-app's shape on the real node: {REF} in both components"
    data["config"]["BACKEND_URL"] = f"http://backend-service:{PORT}"
    for comp in data["components"].values():
        comp.pop("build", None)
        comp.update(image=IMAGE, tag=TAG, port=PORT)
        comp["resources"] = {"requests": dict(RESOURCES), "limits": dict(RESOURCES)}
    return data


def _build():
    """helmdeck-bench/probe:1 built by dockerd: the tests' probe server, exiting on SIGTERM."""
    import docker

    base = os.environ.get("HELMDECK_BASE_PYTHON", "helmdeck/python:3.11")
    client = docker.from_env(timeout=600)
    try:
        image, _ = client.images.build(
            path=str(PROBE_DIR),
            dockerfile=str(DOCKERFILE),  # outside the context: docker-py sends it along
            tag=REF,
            buildargs={"BASE": base},
            rm=True,
        )
    except docker.errors.DockerException as exc:
        raise BenchError(
            f"docker build of {REF} failed ({exc}); its base {base} comes from "
            "scripts/docker/base-images"
        ) from None
    finally:
        client.close()
    return image


def _ctr(address, *args, stdin=None, timeout=120):
    ctr = shutil.which("ctr")
    if ctr is None:
        raise BenchError("ctr (containerd's client) is not installed")
    return subprocess.run(  # noqa: S603 - our own argv
        [ctr, "--address", address, "--namespace", "k8s.io", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _remove(address):
    """The image off the node (and, with --sync, its layers no other image holds)."""
    from deployments.integrations.containerd import node_ref

    done = _ctr(address, "images", "rm", "--sync", node_ref(REF))
    if done.returncode != 0 and "not found" not in done.stderr:
        raise BenchError(f"ctr images rm {REF} failed: {done.stderr.strip()[-500:]}")


def _bare_load(address):
    """What `kind load docker-image` does, with the flags of Helmdeck's import."""
    docker = os.environ.get("DOCKER") or shutil.which("docker") or "docker"
    with subprocess.Popen([docker, "save", REF], stdout=subprocess.PIPE) as save:  # noqa: S603
        done = _ctr(address, "images", "import", "--all-platforms", "-", stdin=save.stdout)
    if save.returncode or done.returncode:
        raise BenchError(f"docker save {REF} | ctr import failed: {done.stderr.strip()[-500:]}")


def _deliver(row, image, pairs):
    """Alternated fresh loads of the image into the node's containerd: Helmdeck's load
    step (image_deliver: is it there already, docker save -> ctr import, check it is
    unpacked) against the bare pipe, after one untimed bare load (which may have to copy
    the base layers too). Leaves the image on the node. Returns the untimed load's seconds
    and both lists of seconds."""
    from deployments.integrations.containerd import image_id_on_node
    from deployments.services.image_delivery import image_deliver

    address = row.containerd_address
    _remove(address)
    started = time.monotonic()
    _bare_load(address)
    first = time.monotonic() - started
    ours, theirs = [], []
    for i in range(pairs):
        for who in ("helmdeck", "bare") if i % 2 == 0 else ("bare", "helmdeck"):
            _remove(address)
            started = time.monotonic()
            if who == "helmdeck":
                image_deliver(
                    cluster=row,
                    ref=REF,
                    image_id=image.id,
                    log=lambda text: None,
                    should_stop=lambda: False,
                )
                ours.append(time.monotonic() - started)
            else:
                _bare_load(address)
                theirs.append(time.monotonic() - started)
    if image_id_on_node(address, REF) != image.id:
        raise BenchError(f"the node's containerd does not hold {REF} ({image.id}) after loading")
    return first, ours, theirs


def _on_real_node(node):
    name = node.metadata.name
    runtime = node.status.node_info.container_runtime_version

    def check(core, ns):
        """Every pod of the run on `node`, Ready, its containers started by containerd."""
        pods = core.list_namespaced_pod(ns).items
        wrong = [
            f"{p.metadata.name} on {p.spec.node_name}"
            for p in pods
            if p.spec.node_name != name
            or not p.status.container_statuses
            or not all(
                c.ready and (c.container_id or "").startswith("containerd://")
                for c in p.status.container_statuses
            )
        ]
        if not pods or wrong:
            raise BenchError(
                f"the pods of {ns} are not Ready containers on the real node {name}: "
                + (", ".join(wrong) or "none")
            )
        return (
            f"every run's {len(pods)} pods ran on node {name} ({runtime}): image "
            f"{REF} from the node's containerd, readiness and liveness probed by its kubelet"
        )

    return check


def _cluster_row(address):
    from deployments.models import Cluster

    row, _ = Cluster.objects.update_or_create(
        name=CLUSTER,
        defaults={
            "minikube_profile": "",
            "image_delivery": Cluster.CONTAINERD,
            "containerd_address": address,
            "kubeconfig_path": "",
            "kube_context": "",
        },
    )
    return row


@dataclass
class Delivery:
    """The image's loads into the node, measured before the deploys (the notes' figures)."""

    image: object
    built: float  # seconds docker build took
    first: float  # the untimed bare load
    ours: list  # Helmdeck's load step, seconds each
    theirs: list  # docker save | ctr import, seconds each


@contextlib.contextmanager
def real_node_variant(*, loads):
    """The real node made ready for deploy benchmarks: the probe image built and loaded
    into its containerd (after the untimed load, `loads` alternated pairs of timed ones), a
    Cluster row that loads images there. Yields (the Variant deploys of todo-app's shape on
    the real node, the Delivery); the row is deleted afterwards."""
    from deployments.models import Cluster

    core, _ = cluster.kube()
    node = cluster.real_node(core)
    address = cluster.node_containerd()
    if not address.exists():
        raise BenchError(f"no {address}: the real node is down (scripts/sandbox/node up)")
    row = _cluster_row(str(address))
    try:
        started = time.monotonic()
        image = _build()
        built = time.monotonic() - started
        first, ours, theirs = _deliver(row, image, loads)
        timed = (
            "; loads: Helmdeck "
            + ", ".join(f"{s:.2f}s" for s in ours)
            + ", bare "
            + ", ".join(f"{s:.2f}s" for s in theirs)
            if ours
            else ""
        )
        print(f"   image built in {built:.1f}s; untimed load {first:.2f}s{timed}", flush=True)
        variant = Variant(
            kind="realdeploy",
            pods=(
                "pods on the real node, Ready at the kubelet's first readiness probe after "
                "the profile's 10 s delay (period 5 s)"
            ),
            simulated=False,
            spec=spec,
            check=_on_real_node(node),
        )
        yield variant, Delivery(image, built, first, ours, theirs)
    finally:
        try:
            Cluster.objects.filter(name=CLUSTER).delete()
        except Exception as exc:  # noqa: BLE001 - the benchmark's result matters more
            print(f"   could not delete the Cluster row {CLUSTER}: {exc}", flush=True)


def profile_note():
    return (
        f"the profile as examples/profiles/todo-app.yaml but both components run {REF} on "
        f"port {PORT} with requests = limits {RESOURCES['cpu']} / {RESOURCES['memory']} "
        "(the node is this machine)"
    )


def run(*, quick=False):
    result = Result(NAME, TITLE, bare_label="bare helm")
    with real_node_variant(loads=1 if quick else 3) as (variant, delivery):
        measure(result, variant, quick=quick)
    ours, theirs = delivery.ours, delivery.theirs
    result.add(
        "image load into the node (outside the deploy figures), median",
        median(ours),
        unit="s",
        bare=median(theirs),
    )
    size = delivery.image.attrs.get("Size") or 0
    result.notes.append(
        f"image {REF} ({size / 2**20:.0f} MiB) built by dockerd in {delivery.built:.1f} s; "
        f"one untimed load ({delivery.first:.1f} s), then {len(ours)} alternated pair(s) of "
        "fresh loads (removed from the node first; layers the node holds for other images, "
        "the base's among them, are not copied again): Helmdeck's load step "
        "(image_deliver) "
        + ", ".join(f"{s:.2f}" for s in ours)
        + " s; docker save | ctr import "
        + ", ".join(f"{s:.2f}" for s in theirs)
        + " s"
    )
    result.notes.append(profile_note())
    return result
