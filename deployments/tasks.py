"""Celery tasks: thin. Load by id, call a service, store or publish the result."""

import hashlib

from celery import chain, shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from deployments import heartbeat
from deployments.models import Cluster, Profile
from deployments.services import release_stages
from deployments.services.doctor import cluster_doctor
from deployments.services.preview import fingerprint, profile_preview
from deployments.services.reaper import release_reap

PREVIEW_TTL = 15 * 60


def preview_key(profile_id, print_):
    return f"helmdeck:preview:{profile_id}:{print_}"


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def render_preview(profile_id, print_):
    """Compute a profile's preview in the worker (the web process never runs helm)."""
    profile = Profile.objects.select_related("cluster").filter(pk=profile_id).first()
    if profile is None or fingerprint(profile) != print_:
        return  # deleted or changed since the request: a newer preview will be asked for
    cache.set(preview_key(profile_id, print_), profile_preview(profile=profile), PREVIEW_TTL)


def _cached_or_queued(key, pending_ttl, task, *args):
    """A worker's cached result under `key`, or None after queueing `task(*args)` to make it.

    A `pending` marker (set with add(), so only the first caller enqueues) keeps a page that
    polls from queueing the same work again.
    """
    report = cache.get(key)
    if report is not None and report != "pending":
        return report
    if cache.add(key, "pending", pending_ttl):
        task.delay_on_commit(*args)
    return None


def preview_request(profile):
    """The cached preview of a profile as it is now, or None after queueing its computation."""
    print_ = fingerprint(profile)
    return _cached_or_queued(
        preview_key(profile.pk, print_), PREVIEW_TTL, render_preview, profile.pk, print_
    )


DOCTOR_TTL = 120  # results: a minute or two old at most
DOCTOR_PENDING_TTL = 300  # longer than the task's time limit: asked once while it runs


def doctor_key(cluster):
    """Changes when the cluster's settings change, so an edited cluster is checked again."""
    settings_ = (
        cluster.kubeconfig_path,
        cluster.kube_context,
        cluster.minikube_profile,
        cluster.docker_host,
        str(cluster.capacity_cpus),
        cluster.capacity_memory,
    )
    digest = hashlib.sha256(repr(settings_).encode()).hexdigest()[:12]
    return f"helmdeck:doctor:{cluster.pk}:{digest}"


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def run_doctor(cluster_id, key):
    """The environment doctor for a cluster, in the worker (it runs docker, helm, kubectl)."""
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None or doctor_key(cluster) != key:
        cache.delete(key)
        return
    cache.set(key, [vars(result) for result in cluster_doctor(cluster=cluster)], DOCTOR_TTL)


def doctor_request(cluster):
    """The cached doctor results ([{name, ok, detail, fix}]) of a cluster, or None after
    queueing the checks; poll it as the preview is polled."""
    key = doctor_key(cluster)
    return _cached_or_queued(key, DOCTOR_PENDING_TTL, run_doctor, cluster.pk, key)


def doctor_forget(cluster):
    """Drop a cluster's cached results, so the next request runs the checks again."""
    cache.delete(doctor_key(cluster))


# ---- releases: one task per stage, chained; each claims its row, so a redelivery is a no-op


def _stage_task(stage):
    @shared_task(
        name=f"deployments.tasks.{stage.__name__}",
        bind=True,
        acks_late=True,
        time_limit=settings.HELMDECK_BUILD_TIMEOUT * 4,
        ignore_result=True,
    )
    def task(self, release_id, attempt=0):
        try:
            return stage(release_id, self.request.hostname or "", attempt)
        except release_stages.RetryLater as retry:
            # Same task, same chain links: the next stages still follow it.
            raise self.retry(
                kwargs={"attempt": attempt + 1}, countdown=retry.delay, max_retries=None
            ) from None

    return task


build_release = _stage_task(release_stages.release_build)
render_release = _stage_task(release_stages.release_render)
upgrade_release = _stage_task(release_stages.release_upgrade)
verify_release = _stage_task(release_stages.release_verify)


def release_enqueue(release):
    """Start a requested release's chain once its row is committed."""
    stages = chain(
        build_release.si(release.pk),
        render_release.si(release.pk),
        upgrade_release.si(release.pk),
        verify_release.si(release.pk),
    )
    transaction.on_commit(stages.apply_async)


@shared_task(ignore_result=True, time_limit=600)
def reap_releases():
    return release_reap(live_workers=heartbeat.live_workers(heartbeat.client()))
