"""Where to open a profile's app: a link per component with a deployed Ingress, to its host
and path (https with a TLS Secret), and per component with a fixed NodePort, to the address
of a node one of its pods runs on (the pod's hostIP: the node's InternalIP, which
for a Minikube cluster is `minikube ip`, the address NOTES.txt prints), as the watcher
last saw it. A pure function of rows the pages already read.

Any node answers a NodePort (kube-proxy); a Ready pod's node is chosen first, so the link
is the one most likely to answer now. An address no other machine can route to (private,
loopback, the benchmark range 198.18.0.0/15: a Minikube VM, a kind container, the
sandbox's node) gets a note: it answers from the machine the cluster runs on.
"""

import ipaddress
from dataclasses import dataclass

HOST_ONLY = "from the machine the cluster runs on"
RESOLVE = "when {host} resolves to the ingress controller (e.g. /etc/hosts: minikube ip)"


@dataclass(frozen=True)
class AppLink:
    component: str
    url: str
    note: str


def _note(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    return HOST_ONLY if not ip.is_global else ""


def _url(address, port):
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def deployed_ingresses(snapshot):
    """{component: ingress} of a release's snapshot (the export document's shape)."""
    components = (snapshot or {}).get("components") or {}
    return {name: body["ingress"] for name, body in components.items() if body.get("ingress")}


def component_links(components, pods, ingresses=None):
    """[AppLink]: each deployed Ingress (`ingresses`: deployed_ingresses of the release that
    runs: not what the profile says until it is deployed), and each NodePort component with
    a nodePort whose pods the watcher saw on a node; `pods` are PodState rows (deleted ones
    skipped)."""
    links = []
    ingresses = ingresses or {}
    for component in components:
        ingress = ingresses.get(component.name)
        if ingress:
            scheme = "https" if ingress.get("tlsSecret") else "http"
            url = f"{scheme}://{ingress['host']}{ingress.get('path') or '/'}"
            links.append(AppLink(component.name, url, RESOLVE.format(host=ingress["host"])))
        if component.service_type != "NodePort" or not component.node_port:
            continue
        placed = sorted(
            (not pod.ready, pod.name, pod.host_ip)
            for pod in pods
            if pod.component == component.name and pod.host_ip and not pod.deleted
        )
        if placed:
            address = placed[0][2]
            links.append(
                AppLink(component.name, _url(address, component.node_port), _note(address))
            )
    return links
