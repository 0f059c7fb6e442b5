"""doctor_request: queue the doctor once, hand back what the worker stored, recheck on an
edited cluster. (A real worker: tests/deployments/views/test_release_pages_worker.py.)"""

import pytest
from django.core.cache import cache

from deployments import tasks
from deployments.models import Cluster
from deployments.services import doctor
from deployments.services.doctor import Result

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(settings, monkeypatch):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "doctor-tests",
        }
    }
    cache.clear()  # a locmem cache outlives the test that filled it
    calls = []
    monkeypatch.setattr(tasks.run_doctor, "delay_on_commit", lambda *args: calls.append(args))
    return calls


def test_it_queues_the_doctor_once_and_returns_what_the_worker_stored(queued, monkeypatch):
    cluster = Cluster.objects.get(name="minikube")
    assert doctor.doctor_request(cluster) is None
    assert doctor.doctor_request(cluster) is None  # pending: not queued again
    assert len(queued) == 1
    monkeypatch.setattr(
        doctor,
        "cluster_doctor",
        lambda cluster: [Result("helm", False, "not found", "install helm")],
    )
    tasks.run_doctor(*queued[0])
    assert doctor.doctor_request(cluster) == [
        {"name": "helm", "ok": False, "detail": "not found", "fix": "install helm"}
    ]


def test_it_checks_again_when_the_cluster_changed_or_was_forgotten(queued):
    cluster = Cluster.objects.get(name="minikube")
    doctor.doctor_request(cluster)
    cluster.kube_context = "other"
    cluster.save()
    doctor.doctor_request(cluster)
    doctor.doctor_forget(cluster)
    doctor.doctor_request(cluster)
    assert len(queued) == 3
    assert len({key for _, key in queued}) == 2


def test_it_checks_again_when_the_image_delivery_changed(queued):
    cluster = Cluster.objects.get(name="minikube")
    doctor.doctor_request(cluster)
    cluster.image_delivery, cluster.containerd_address = "containerd", "/run/containerd.sock"
    cluster.save()
    doctor.doctor_request(cluster)
    assert len({key for _, key in queued}) == 2
