"""Teardown: a release of kind "teardown" whose one stage runs `helm uninstall` of the
profile's release, then deletes its namespace when Helmdeck created it. The profile stays
(deploy it again at will) and the release history records the teardown.

Which namespaces are Helmdeck's: a deploy that finds the profile's namespace absent lets
helm create it (`--create-namespace`) and then annotates it `helmdeck.dev/created-for:
<profile>`. A namespace that was there before, that carries another profile's name, that
another profile deploys into, where helm has another release, or that holds Secrets,
ConfigMaps or volume claims helm does not manage (a TLS Secret made by hand), is kept.
"""

from django.utils import timezone

from deployments.integrations import IntegrationError
from deployments.integrations.kube import Kube
from deployments.models import Profile, Release
from deployments.services.operations import profile_live_reset
from deployments.services.stage_run import (
    StageRun,
    claim,
    finish,
    helm_timeout,
    retry_or_fail,
)

CREATED_FOR = "helmdeck.dev/created-for"


def namespace_absent(run):
    """True when the release's namespace does not exist yet (helm is about to create it);
    False when it exists or the cluster cannot say (then it is never claimed as ours)."""
    try:
        with Kube(run.cluster, shared=True) as kube:  # the worker's client, as verify's
            return kube.namespace(run.spec["namespace"]) is None
    except IntegrationError:
        return False


def namespace_mark_created(run):
    """Annotate the namespace helm just created as this profile's (best effort: a
    namespace left unmarked is only never deleted by a teardown)."""
    namespace = run.spec["namespace"]
    try:
        with Kube(run.cluster, shared=True) as kube:
            if kube.namespace(namespace) is not None:
                kube.namespace_annotate(namespace, {CREATED_FOR: run.profile.name})
                run.log(f"namespace {namespace} created for {run.profile.name}")
    except IntegrationError as exc:
        run.log(f"namespace {namespace} not marked as Helmdeck's ({exc}); teardown keeps it")


def _shared(run, namespace):
    """Who else uses the namespace ("profile shop, helm release x"), or "": another profile
    of the cluster deploys into it, or helm has another release there."""
    profiles = (
        Profile.objects.filter(cluster=run.cluster, namespace=namespace)
        .exclude(pk=run.profile.pk)
        .values_list("name", flat=True)
    )
    states = ("--deployed", "--failed", "--pending", "--superseded")  # helm 3 and 4 alike
    listed = run.helm().run("list", "--namespace", namespace, *states, "--short")
    releases = [r for r in map(str.strip, listed.splitlines()) if r and r != run.spec["name"]]
    users = [f"profile {p}" for p in profiles] + [f"helm release {r}" for r in releases]
    return ", ".join(users)


def release_teardown(release_id, worker="", attempt=0):
    release = claim(
        release_id,
        (Release.Status.QUEUED,),
        Release.Status.UPGRADING,
        worker=worker,
        budget=helm_timeout() + 180,
    )
    if release is None:
        return False
    run = StageRun(release)
    run.begin("uninstall")
    name, namespace = run.spec["name"], run.spec["namespace"]
    run.log(f"helm uninstall {name} --namespace {namespace} --wait")
    try:
        output = run.helm().uninstall(name, namespace, timeout=helm_timeout())
        for line in (output or "").splitlines():
            if line.strip():
                run.log(line)
        if not output:
            run.log(f"no helm release {name} in {namespace}: nothing to uninstall")
        with Kube(run.cluster) as kube:
            found = kube.namespace(namespace)
            owner = ((found.metadata.annotations or {}) if found else {}).get(CREATED_FOR)
            if found is None:
                run.log(f"namespace {namespace} is already gone")
            elif owner == run.profile.name and (shared := _shared(run, namespace)):
                run.log(f"namespace {namespace} kept: in use by {shared}")
            elif owner == run.profile.name and (foreign := kube.namespace_foreign(namespace)):
                run.log(
                    f"namespace {namespace} kept: it holds what helm does not manage "
                    f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''})"
                )
            elif owner == run.profile.name:
                kube.namespace_delete(namespace)
                run.log(f"namespace {namespace} deleted: Helmdeck created it for {name}")
            else:
                run.log(
                    f"namespace {namespace} kept: it was there before {name}'s first deploy"
                    + (f" (created for {owner})" if owner else "")
                )
    except IntegrationError as exc:  # the cluster away: again later; else the reason
        return retry_or_fail(run, exc, back_to=Release.Status.QUEUED, attempt=attempt)
    run.end(detail=f"uninstalled at {timezone.now():%H:%M:%S}")
    profile_live_reset(profile_id=run.profile.pk)  # nothing runs: neither asleep nor scaled
    finish(run, Release.Status.SUCCEEDED)
    return True
