from decimal import Decimal

import pytest

from benchmarks.cluster import SIMULATED_NODES
from deployments.integrations.kube import Resources
from deployments.services.checks import (
    capacity_fit,
    dockerfile_user,
    format_cpu,
    format_memory,
    profile_checks,
)
from deployments.services.profiles import parse_spec_of
from deployments.spec import parse_spec
from tests.deployments.services.test_capacity import REAL, SIMULATED, FakeKube, namespace, pod

pytestmark = pytest.mark.django_db


def checks_of(doc, cluster):
    spec = parse_spec(doc, cluster_names={"minikube"})
    return {(f.check, f.subject): f for f in profile_checks(spec=spec, cluster=cluster)}


@pytest.fixture
def cluster(db):
    from deployments.models import Cluster

    return Cluster.objects.get(name="minikube")


def test_it_finds_nothing_wrong_with_the_seed_profile(todo_app, cluster):
    spec = parse_spec_of(todo_app)
    assert profile_checks(spec=spec, cluster=cluster, profile=todo_app) == []


def test_it_reproduces_the_seeds_worked_capacity_example(todo_app, cluster):
    capacity = capacity_fit(spec=parse_spec_of(todo_app), cluster=cluster)
    assert capacity.needed == Resources(Decimal("1.5"), Decimal(1536 * 2**20))
    assert capacity.total == Resources(Decimal(4), Decimal(8 * 2**30))
    assert capacity.source == "configured"
    assert capacity.fits
    assert (format_cpu(capacity.needed.cpu), format_memory(capacity.needed.memory)) == (
        "1.5 CPU",
        "1.5Gi",
    )


def test_it_says_a_profile_does_not_fit_with_numbers_and_the_seeds_fix(cluster):
    found = checks_of(
        {
            "name": "big",
            "components": {
                "api": {
                    "port": 80,
                    "replicas": 3,
                    "resources": {"requests": {"cpu": "2", "memory": "3Gi"}},
                }
            },
        },
        cluster,
    )
    finding = found[("capacity", "profile")]
    assert finding.level == "error"
    assert finding.message == (
        "needs 6 CPU and 9Gi but the cluster has 4 CPU and 8Gi free (configured)"
    )
    assert "minikube start --cpus=4 --memory=8192" in finding.fix


def test_it_warns_when_requests_and_limits_differ(cluster):
    found = checks_of(
        {
            "name": "burst",
            "components": {
                "api": {
                    "port": 80,
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                }
            },
        },
        cluster,
    )
    finding = found[("guaranteed-qos", "api")]
    assert finding.level == "warning"
    assert "cpu" in finding.message and "memory" not in finding.message
    assert "Guaranteed" in finding.reason


def test_it_warns_about_odd_probes_and_latest_tags(cluster):
    found = checks_of(
        {
            "name": "odd",
            "components": {
                "api": {
                    "port": 80,
                    "tag": "latest",
                    "probes": {
                        "liveness": {
                            "path": "/ready",
                            "initialDelaySeconds": 5,
                            "timeoutSeconds": 10,
                            "periodSeconds": 10,
                        },
                        "readiness": {"path": "/ready", "initialDelaySeconds": 10},
                    },
                }
            },
        },
        cluster,
    )
    assert {check for check, _ in found} == {
        "probe-delays",
        "probe-paths",
        "probe-timeout",
        "latest-tag",
    }


def test_it_refuses_a_nodeport_another_profile_holds(todo_app, cluster):
    found = checks_of(
        {
            "name": "other",
            "components": {"web": {"port": 80, "service": {"type": "NodePort", "nodePort": 30000}}},
        },
        cluster,
    )
    assert found[("node-port-taken", "web")].message == (
        "nodePort 30000 is already used by todo-app/frontend"
    )


@pytest.mark.parametrize(
    ("dockerfile", "user"),
    [
        ("FROM a AS b\nUSER 1001\nFROM c\nCMD x\n", ""),
        ("FROM a\nRUN x\nUSER appuser\n", "appuser"),
        ("FROM a\nUSER 0:0\n", "0"),
        ("FROM a\nUSER root\nUSER nextjs\n", "nextjs"),
    ],
)
def test_it_reads_the_user_of_the_final_stage(dockerfile, user, tmp_path, settings):
    settings.HELMDECK_PROJECT_DIR = tmp_path
    settings.HELMDECK_SOURCE_ROOTS = ["."]
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(dockerfile)
    assert dockerfile_user({"build": {"context": "app", "dockerfile": "Dockerfile"}}) == user


def test_it_flags_a_root_image_as_an_error(tmp_path, settings, cluster):
    settings.HELMDECK_PROJECT_DIR = tmp_path
    settings.HELMDECK_SOURCE_ROOTS = ["."]
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM python:3.11-slim\nCMD python\n")
    found = checks_of(
        {"name": "rooty", "components": {"api": {"port": 80, "build": {"context": "app"}}}}, cluster
    )
    assert found[("root-user", "api")].level == "error"
    assert "USER appuser" in found[("root-user", "api")].fix


class NamespaceKube(FakeKube):
    def node_ports(self):
        return {}


def test_it_counts_only_the_nodes_the_profiles_namespace_can_use(cluster):
    kube = NamespaceKube(
        namespaces={"shop": namespace(SIMULATED_NODES)},
        nodes=[REAL, SIMULATED],
        pods=[pod("elsewhere", "real", cpu="1"), pod("beside", "sim", cpu="1")],
    )
    spec = parse_spec(
        {
            "name": "shop",
            "namespace": "shop",
            "components": {
                "api": {
                    "port": 80,
                    "replicas": 2,
                    "resources": {"requests": {"cpu": "2", "memory": "1Gi"}},
                }
            },
        },
        cluster_names={"minikube"},
    )
    capacity = capacity_fit(spec=spec, cluster=cluster, kube=kube)
    assert capacity.total == Resources(Decimal(4), Decimal(8 * 2**30))
    assert capacity.free == Resources(Decimal(3), Decimal(7.5 * 2**30))
    assert not capacity.fits
    (finding,) = [
        f for f in profile_checks(spec=spec, cluster=cluster, kube=kube) if f.check == "capacity"
    ]
    assert finding.message == (
        "needs 4 CPU and 2Gi but the cluster has 3 CPU and 7.5Gi free "
        "(cluster: 1 of 2 nodes take pods of namespace shop)"
    )
