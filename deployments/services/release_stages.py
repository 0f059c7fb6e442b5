"""The stages of a release: build (and load into the node's containerd), render, upgrade,
verify.

Each stage takes a release id, moves the release into its status with a conditional
update (so a redelivered or duplicate task does nothing), does its work, and leaves the
release either in that status for the next stage or in a terminal one. The Celery chain in
tasks.py runs them in order; `releases.release_run` runs them in one process for the CLI.
Every line of build and helm output is a LogLine row, then a publish. Secret values exist
only inside `release_upgrade`, in a 0600 file helm reads.
"""

import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.exceptions import ValidationError

from deployments import crypto
from deployments.build_sources import build_source
from deployments.integrations import IntegrationError
from deployments.integrations.docker import build_image
from deployments.integrations.helm import release_summary
from deployments.integrations.kube import Kube
from deployments.models import Release, Step
from deployments.services.checks import ERROR, kube_for, profile_checks
from deployments.services.db_retry import db_retry
from deployments.services.diagnosis import pod_problems
from deployments.services.helm_undo import undo_pending
from deployments.services.image_delivery import image_deliver
from deployments.services.operations import profile_live_reset
from deployments.services.releases import step_kind_q, step_name
from deployments.services.rendering import spec_render_check
from deployments.services.stage_run import (
    StageRun,
    claim,
    fail,
    finish,
    helm_timeout,
    retry_or_fail,
)
from deployments.services.teardown import namespace_absent, namespace_mark_created
from deployments.services.upgrade_pod_watch import PodWatcher
from deployments.services.values import (
    CHART_DIR,
    MissingSecret,
    secret_values,
    secrets_file,
    value_files,
    values_file,
    values_for,
)

log = logging.getLogger(__name__)

# The last lines of helm's output kept in memory to read its summary from (every line is
# logged as it comes); our chart's summary and notes take ~30
HELM_OUTPUT_KEPT = 2000


def release_build(release_id, worker="", attempt=0):
    release = Release.objects.filter(pk=release_id).first()
    builds = 0
    if release is not None and release.build:
        builds = len([c for c in release.snapshot["components"].values() if c.get("build")])
    # a "load <component>" step follows each build when the release was requested for a
    # cluster that loads images into its node's containerd (image_delivery.py)
    loads = set(
        Step.objects.filter(step_kind_q("load"), release_id=release_id).values_list(
            "name", flat=True
        )
    )
    release = claim(
        release_id,
        (Release.Status.QUEUED,),
        Release.Status.BUILDING,
        worker=worker,
        budget=60 + (builds + len(loads)) * settings.HELMDECK_BUILD_TIMEOUT,
    )
    if release is None:
        return False
    run = StageRun(release)
    images = {}
    for comp in run.spec["components"]:
        ref = f"{comp['image']}:{comp['tag']}"
        if not (release.build and comp["build"]):
            images[comp["name"]] = {"ref": ref}
            continue
        run.begin(step_name("build", comp["name"]))
        try:  # checked when saved, and again now: the filesystem may have changed since
            source = build_source(
                comp["build"]["context"], comp["build"]["dockerfile"], must_exist=True
            )
        except ValidationError as exc:
            fail(
                run,
                f"{step_name('build', comp['name'])} refused: build.{exc.code} "
                f"{comp['build'][exc.code]!r} {' '.join(exc.messages)}",
            )
            return False
        run.log(f"docker build {ref} from {comp['build']['context']}")
        try:
            image_id = build_image(
                run.cluster,
                context=source.context,
                dockerfile=source.dockerfile,
                tag=ref,
                buildargs=comp["build"].get("args") or {},
                on_line=run.log,
                should_stop=run.cancelled,
            )
        except IntegrationError as exc:
            return _build_failed(run, exc, attempt)
        images[comp["name"]] = {"ref": ref, "id": image_id}
        run.end(detail=image_id)
        if step_name("load", comp["name"]) in loads and not _load(
            run, comp, ref, image_id, attempt
        ):
            return False
    db_retry(lambda: Release.objects.filter(pk=release_id).update(images=images))
    return True


def _load(run, comp, ref, image_id, attempt):
    """The "load <component>" step: the built image into the node's containerd (a cluster
    whose images reach the nodes that way), unless the node has that image id already.
    Failures end or retry the stage as a build's do."""
    run.begin(step_name("load", comp["name"]))
    try:
        on_node = image_deliver(
            cluster=run.cluster,
            ref=ref,
            image_id=image_id,
            log=run.log,
            should_stop=run.cancelled,
        )
    except IntegrationError as exc:
        return _build_failed(run, exc, attempt)
    run.end(detail=on_node)
    return True


def _build_failed(run, exc, attempt):
    """A build or load step failed: the end of a cancelled release, else the stage again."""
    if run.cancelled():
        fail(run, str(exc))
        return False
    return retry_or_fail(run, exc, back_to=Release.Status.QUEUED, attempt=attempt)


def release_render(release_id, worker="", attempt=0):
    release = claim(
        release_id, (Release.Status.BUILDING,), Release.Status.RENDERING, worker=worker, budget=300
    )
    if release is None:
        return False
    run = StageRun(release)
    run.begin("render")
    spec = run.spec
    # helm renders (two processes, or a cached result; no database) while this thread asks
    # the cluster and the database for the checks: the step takes the longer, not the sum
    with ThreadPoolExecutor(max_workers=1) as pool:
        rendering = pool.submit(
            spec_render_check, spec=spec, keys=list(spec["secrets"]), helm=run.helm()
        )
        kube = kube_for(run.cluster, shared=True)
        try:
            findings = profile_checks(
                spec=spec, cluster=run.cluster, profile=run.profile, kube=kube
            )
        finally:
            if kube is not None:
                kube.close()
        try:
            rendered, render_failed = rendering.result(), None
        except IntegrationError as exc:
            rendered, render_failed = None, exc
    for finding in findings:
        run.log(f"check {finding.level}: {finding.subject}: {finding.message}")
    errors = [f for f in findings if f.level == ERROR]
    if errors:
        fail(run, "; ".join(f"{f.subject}: {f.message} (fix: {f.fix})" for f in errors))
        return False
    if render_failed is not None:
        fail(run, str(render_failed))
        return False
    for line in rendered.lint.splitlines():
        run.log(line)
    if rendered.problems:
        fail(run, "; ".join(rendered.problems))
        return False
    run.log(
        f"rendered {rendered.resources} resources; schemas valid for Kubernetes "
        f"{', '.join(settings.HELMDECK_VALIDATE_KUBE_VERSIONS)}"
    )
    run.end()
    return True


def release_upgrade(release_id, worker="", attempt=0):
    release = claim(
        release_id,
        (Release.Status.RENDERING,),
        Release.Status.UPGRADING,
        worker=worker,
        budget=helm_timeout() + 180,
    )
    if release is None:
        return False
    run = StageRun(release)
    run.begin("upgrade")
    try:
        secrets = secret_values(run.profile)
    except (MissingSecret, crypto.SecretDecryptError) as exc:
        fail(run, str(exc))
        return False
    helm, spec = run.helm(), run.spec
    watcher = PodWatcher(run)
    creates_namespace = namespace_absent(run)  # helm creates it: then it is Helmdeck's
    with values_file(values_for(spec)) as values_path, secrets_file(secrets) as secrets_path:
        run.log(
            f"helm upgrade --install {spec['name']} (helm v{helm.major}, "
            f"{' '.join(helm.rollback_flags())}, timeout {helm_timeout()}s)"
        )
        # helm's summary comes last; a chart whose hooks or warnings print without end
        # must not fill the worker's memory (a summary cut short: helm status is asked)
        output: deque[str] = deque(maxlen=HELM_OUTPUT_KEPT)

        def on_line(line):
            output.append(line)
            if line.strip():
                run.log(line)

        try:
            started = time.monotonic()
            code = helm.upgrade_install(
                spec["name"],
                spec["namespace"],
                CHART_DIR,
                [*value_files(spec), values_path, secrets_path],
                timeout=helm_timeout(),
                on_line=on_line,
                should_stop=run.cancelled,
                on_tick=watcher.tick,
            )
        except IntegrationError as exc:
            fail(run, str(exc))
            return False
    if creates_namespace:
        namespace_mark_created(run)
    # helm applied the chart's replicas (or, failing, rolled back to a revision's): the
    # profile is awake and unscaled now, whatever the upgrade's outcome
    db_retry(lambda: profile_live_reset(profile_id=run.profile.pk))
    if code != 0:
        timed_out = time.monotonic() - started >= helm_timeout()
        return _settle_failed_upgrade(run, helm, watcher, attempt, timed_out=timed_out)
    summary = release_summary(list(output), spec["name"], spec["namespace"])
    if summary is None:  # not helm's usual summary: ask helm
        try:
            status = helm.status(spec["name"], spec["namespace"]) or {}
        except IntegrationError as exc:
            fail(run, f"helm succeeded but its status cannot be read: {exc}")
            return False
        summary = status.get("version"), ((status.get("info") or {}).get("notes") or "").strip()
    revision, notes = summary
    db_retry(
        lambda: Release.objects.filter(pk=release_id).update(helm_revision=revision, notes=notes)
    )
    run.end(detail=f"revision {revision}")
    return True


def _settle_failed_upgrade(run, helm, watcher, attempt, *, timed_out=False):
    """helm exited non-zero: say why, and make sure no release is left pending. When even
    `helm status` cannot reach the cluster, the upgrade is retried from rendering."""
    spec = run.spec
    reason = watcher.reason() or "helm upgrade failed (see its output above)"
    if timed_out:
        reason = f"not Ready within the helm timeout ({helm_timeout()}s): {reason}"
    try:
        status = helm.status(spec["name"], spec["namespace"])
    except IntegrationError as exc:
        if not exc.permanent and not run.cancelled():
            return retry_or_fail(run, exc, back_to=Release.Status.RENDERING, attempt=attempt)
        fail(run, f"{reason}; and helm status failed: {exc}")
        return False
    state = ((status or {}).get("info") or {}).get("status", "")
    if state.startswith("pending-"):
        state = undo_pending(run, helm, status, "helm stopped")
    if run.cancelled():
        fail(
            run,
            f"helm was stopped; {state or 'no release'} is what runs now",
            status=Release.Status.CANCELLED,
        )
    elif state == "deployed":
        fail(
            run, f"{reason}; the previous revision was restored", status=Release.Status.ROLLED_BACK
        )
    else:
        fail(run, reason)
    return False


def release_verify(release_id, worker="", attempt=0):
    release = claim(
        release_id, (Release.Status.UPGRADING,), Release.Status.VERIFYING, worker=worker, budget=120
    )
    if release is None:
        return False
    run = StageRun(release)
    run.begin("verify")
    spec = run.spec
    try:
        with Kube(run.cluster, shared=True) as kube:
            deployments = kube.release_deployments(spec["namespace"], spec["name"])
            unready = [
                d.metadata.name
                for d in deployments
                if (d.status.ready_replicas or 0) < (d.spec.replicas or 0)
                or (d.status.updated_replicas or 0) < (d.spec.replicas or 0)
            ]
            # pods and events only when something is to be explained
            problems = (
                pod_problems(
                    kube.release_pods(spec["namespace"], spec["name"]),
                    kube.events(spec["namespace"]),
                )
                if unready
                else []
            )
    except IntegrationError as exc:
        return retry_or_fail(run, exc, back_to=Release.Status.UPGRADING, attempt=attempt)
    if unready:
        fail(
            run,
            f"not Ready: {', '.join(unready)}"
            + (f" ({'; '.join(map(str, problems))})" if problems else ""),
        )
        return False
    ready = sum(d.status.ready_replicas or 0 for d in deployments)
    run.log(f"{len(deployments)} deployments Ready, {ready} pods")
    run.end()
    finish(run, Release.Status.SUCCEEDED)
    return True
