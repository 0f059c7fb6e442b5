"""services.app_links: which components get a link, to which address, with which note."""

from types import SimpleNamespace as Row

from deployments.services.app_links import (
    HOST_ONLY,
    AppLink,
    component_links,
    deployed_ingresses,
)


def component(name, service_type="NodePort", node_port=30000):
    return Row(name=name, service_type=service_type, node_port=node_port)


def pod(name, component, host_ip, *, ready=True, deleted=False):
    return Row(name=name, component=component, host_ip=host_ip, ready=ready, deleted=deleted)


def test_a_nodeport_links_to_a_ready_pods_node_first():
    links = component_links(
        [component("frontend"), component("backend", "ClusterIP", None)],
        [
            pod("frontend-a", "frontend", "203.0.113.7", ready=False),
            pod("frontend-b", "frontend", "192.0.2.10"),
            pod("backend-a", "backend", "192.0.2.10"),
        ],
    )
    # 192.0.2.0/24 is documentation space, not global: the note says so
    assert links == [AppLink("frontend", "http://192.0.2.10:30000", HOST_ONLY)]


def test_a_routable_address_has_no_note_and_ipv6_is_bracketed():
    assert component_links([component("web")], [pod("w", "web", "8.8.4.4")]) == [
        AppLink("web", "http://8.8.4.4:30000", "")
    ]
    (link,) = component_links([component("web")], [pod("w", "web", "fd00::5")])
    assert link.url == "http://[fd00::5]:30000" and link.note == HOST_ONLY


def test_no_link_without_a_placed_pod_or_a_fixed_node_port():
    assert component_links([component("web")], []) == []
    assert component_links([component("web")], [pod("w", "web", "")]) == []
    assert component_links([component("web")], [pod("w", "web", "10.0.0.1", deleted=True)]) == []
    assert component_links([component("web", node_port=None)], [pod("w", "web", "10.0.0.1")]) == []
    # the sandbox's real node (198.18.0.0/15) and Minikube's docker network: host only
    (link,) = component_links([component("web")], [pod("w", "web", "198.18.0.1")])
    assert link.note == HOST_ONLY


def test_a_deployed_ingress_links_to_its_host_and_path_https_with_tls():
    web = component("web", "ClusterIP", None)
    snapshot = {
        "components": {
            "web": {"ingress": {"host": "todo.example.test", "path": "/app"}},
            "api": {"port": 8000},
        }
    }
    (link,) = component_links([web], [], deployed_ingresses(snapshot))
    assert link.url == "http://todo.example.test/app"
    assert "todo.example.test resolves to the ingress controller" in link.note
    secure = {"web": {"host": "todo.example.test", "path": "/", "tlsSecret": "todo-tls"}}
    assert component_links([web], [], secure)[0].url == "https://todo.example.test/"
    # configured but not deployed (no release runs it): no link
    assert component_links([web], [], {}) == []
