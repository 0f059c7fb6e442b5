"""How a built image reaches the cluster's nodes (Cluster.image_delivery).

- the cluster's Docker: it is built into the node's own daemon (Minikube's docker runtime,
  through `minikube docker-env`), so it is there once built;
- the node's containerd: it is built on the Docker host, then loaded into the node's
  containerd (`image_deliver` below, a release's "load <component>" step), unless the node
  already has that image id;
- a registry: not supported yet (the Cluster refuses the choice).
"""

from django.conf import settings

from deployments.integrations.containerd import ContainerdError, image_id_on_node, image_load
from deployments.integrations.docker import docker_client


def image_deliver(*, cluster, ref, image_id, log, should_stop):
    """Load the image `ref` (Docker's `image_id`) into `cluster`'s node containerd,
    writing what happens through `log` (the release's one writer, which redacts).

    Returns the image id the node has, or raises IntegrationError: ContainerdError from
    ctr (unreachable socket, a failed import, cancelled), DockerError from the daemon.
    """
    address = cluster.containerd_address
    if not address:
        raise ContainerdError(
            f"the cluster {cluster.name} loads images into containerd but has no containerd "
            "socket set (admin: Clusters)",
            permanent=True,
        )
    if image_id_on_node(address, ref) == image_id:
        log(f"{ref} already on the node ({image_id})")
        return image_id
    client = docker_client(cluster)
    try:
        image_load(
            address,
            docker_client=client,
            ref=ref,
            on_progress=lambda percent: log(
                f"Loading {ref} into the node's containerd… {percent}%"
            ),
            should_stop=should_stop,
            timeout=settings.HELMDECK_BUILD_TIMEOUT,
        )
    finally:
        client.close()
    on_node = image_id_on_node(address, ref)
    if on_node is None:
        raise ContainerdError(
            f"ctr imported {ref} but the node's containerd does not list it unpacked",
            permanent=True,
        )
    log(f"Loaded {ref} into the node's containerd ({on_node})")
    return on_node
