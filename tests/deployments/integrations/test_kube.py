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


def test_a_kubeconfig_list_gets_a_client_of_its_own_each_time(cluster, tmp_path):
    """KUBECONFIG may name several files (a:b), which the client merges: no one file to
    fingerprint, so each Kube makes its own client (and closes it), as a plain one does."""
    other = tmp_path / "other"
    other.write_text(KUBECONFIG.format(port=6445).replace("ctx", "other"))
    listed = Cluster(
        name="l", kubeconfig_path=f"{cluster.kubeconfig_path}:{other}", kube_context="ctx"
    )
    first = client_of(listed, shared=True)
    assert first.configuration.host == "https://127.0.0.1:6443"
    assert client_of(listed, shared=True) is not first


def test_close_closes_only_a_client_of_the_kubes_own(cluster, tmp_path, monkeypatch):
    from kubernetes import client

    closed = []
    real_close = client.ApiClient.close

    def recorded(api):
        closed.append(api)
        real_close(api)

    monkeypatch.setattr(client.ApiClient, "close", recorded)
    shared = client_of(cluster, shared=True)
    assert shared not in closed  # the next stage's Kube takes it, open
    own = client_of(cluster)
    listed = Cluster(
        name="l", kubeconfig_path=f"{cluster.kubeconfig_path}:{tmp_path / 'x'}", kube_context=""
    )
    listed_own = client_of(listed, shared=True)  # no one file: a client of its own
    assert closed == [own, listed_own]
