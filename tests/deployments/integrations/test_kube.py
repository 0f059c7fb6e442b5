"""The Kubernetes adapter's client sharing (no server is asked: a client is made from the
kubeconfig alone; the stages' calls through it run against the sandbox elsewhere)."""

import os

import pytest

from deployments.integrations.kube import Kube, KubeError
from deployments.models import Cluster

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {{token: not-a-real-token}}
contexts:
- name: ctx
  context: {{cluster: c, user: u}}
current-context: ctx
"""


@pytest.fixture
def cluster(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(port=6443))
    return Cluster(name="c", kubeconfig_path=str(path), kube_context="")


def client_of(cluster, **kwargs):
    kube = Kube(cluster, **kwargs)
    kube.close()  # a shared client stays open for the next caller
    return kube.core.api_client


def test_shared_kubes_of_one_kubeconfig_share_one_client(cluster):
    first = client_of(cluster, shared=True)
    assert client_of(cluster, shared=True) is first
    assert client_of(cluster) is not first  # a plain Kube has its own, closed with it
    assert (
        client_of(
            Cluster(name="c2", kubeconfig_path=cluster.kubeconfig_path, kube_context="ctx"),
            shared=True,
        )
        is not first
    )


def test_a_rewritten_kubeconfig_gets_a_new_client(cluster):
    first = client_of(cluster, shared=True)
    path = cluster.kubeconfig_path
    with open(path, "w") as changed:
        changed.write(KUBECONFIG.format(port=6444))
    second = client_of(cluster, shared=True)
    assert second is not first
    assert second.configuration.host == "https://127.0.0.1:6444"
    assert client_of(cluster, shared=True) is second


def test_a_missing_kubeconfig_is_the_adapters_error(tmp_path):
    gone = Cluster(name="gone", kubeconfig_path=str(tmp_path / "nope"), kube_context="")
    with pytest.raises(KubeError, match="cannot load kubeconfig"):
        Kube(gone, shared=True)
    assert not os.path.exists(gone.kubeconfig_path)
