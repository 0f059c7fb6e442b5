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
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from deployments import crypto, events
from deployments.integrations import IntegrationError
from deployments.integrations.docker import build_image
from deployments.integrations.helm import Helm, release_summary
from deployments.integrations.kube import Kube, kubeconfig_path
from deployments.models import LogLine, Release, Step
from deployments.redaction import redactor_for
from deployments.services.checks import ERROR, kube_for, profile_checks
from deployments.services.db_retry import db_read_or, db_retry
from deployments.services.diagnosis import pod_problems
from deployments.services.helm_undo import undo_pending
from deployments.services.image_delivery import image_deliver
from deployments.services.rendering import spec_render_check
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
from deployments.spec import parse_spec
from deployments.validators import build_source

log = logging.getLogger(__name__)

# The last lines of helm's output kept in memory to read its summary from (every line is
# logged as it comes); our chart's summary and notes take ~30
HELM_OUTPUT_KEPT = 2000


class RetryLater(Exception):
    """A stage met a transient failure and put the release back; run it again after
    `delay` seconds with attempt + 1 (the Celery task retries, the CLI sleeps)."""

    def __init__(self, delay):
        super().__init__(f"retry in {delay}s")
        self.delay = delay


def _retry_or_fail(run, exc, *, back_to, attempt):
    """After a transient error (cluster or daemon unreachable) retry with exponential
    backoff, at most HELMDECK_TRANSIENT_RETRIES times; then, or for a permanent error, fail
    the release with the reason."""
    retries = settings.HELMDECK_TRANSIENT_RETRIES
    if exc.permanent or attempt >= retries:
        tried = f" (after {attempt + 1} attempts)" if not exc.permanent and attempt else ""
        _fail(run, f"{exc}{tried}")
        return False
    delay = settings.HELMDECK_RETRY_BACKOFF * 2**attempt
    run.log(f"{exc}; retrying in {delay:g}s (attempt {attempt + 2} of {retries + 1})")
    if run.step is not None:
        db_retry(
            lambda: Step.objects.filter(pk=run.step.pk).update(
                status=Step.Status.PENDING, started_at=None
            )
        )
    db_retry(
        lambda: Release.objects.filter(pk=run.release.pk, status__in=Release.ACTIVE).update(
            status=back_to
        )
    )
    raise RetryLater(delay)


def helm_timeout():
    return settings.HELMDECK_HELM_TIMEOUT


class StageRun:
    """What a stage needs: the release, its spec, and a way to log lines and steps."""

    def __init__(self, release):
        self.release = release
        self.profile = release.profile
        self.cluster = self.profile.cluster
        self.spec = parse_spec(release.snapshot, cluster_names={self.cluster.name})
        self._next = (
            release.log_lines.order_by("-sequence").values_list("sequence", flat=True).first() or 0
        )
        self._lock = threading.Lock()
        self.step = None
        # Every text this run stores goes through it: no secret value in a log or a reason.
        self.redact = redactor_for(self.profile)

    def log(self, text):
        """The one writer of LogLine rows: a redacted row, then a publish. The write waits
        out a database restart (the lock keeps lines in order meanwhile; helm's output
        waits in its pipe)."""
        with self._lock:
            self._next += 1
            sequence, text = self._next, self.redact(text)[:4000]
            db_retry(
                lambda: LogLine.objects.create(
                    release=self.release, step=self.step, sequence=sequence, text=text
                ),
                done=lambda: LogLine.objects.filter(
                    release=self.release, sequence=sequence
                ).exists(),
            )
        events.publish(
            events.channel("release", self.release.pk),
            "log",
            {"step": self.step.name if self.step else "", "text": text},
            event_id=sequence,
        )

    def begin(self, name):
        self.step = db_retry(lambda: self.release.steps.get(name=name))
        db_retry(
            lambda: Step.objects.filter(pk=self.step.pk).update(
                status=Step.Status.RUNNING, started_at=timezone.now()
            )
        )
        release_publish_status(self.release.pk)

    def end(self, status=Step.Status.DONE, detail=""):
        db_retry(
            lambda: Step.objects.filter(pk=self.step.pk).update(
                status=status, finished_at=timezone.now(), detail=self.redact(detail)[:2000]
            )
        )
        release_publish_status(self.release.pk)

    def cancelled(self):
        """Polled every half second while helm or docker runs: an unreachable database
        means "not cancelled", never an exception that would orphan the child process."""
        return db_read_or(
            lambda: Release.objects.filter(pk=self.release.pk, cancel_requested=True).exists(),
            False,
        )

    def helm(self):
        return Helm(kubeconfig=kubeconfig_path(self.cluster), context=self.cluster.kube_context)


def _claim(release_id, from_statuses, to_status, *, budget, worker="", **extra):
    """Move a release into a stage. Returns the release, or None when another run has it.

    The stage's deadline (now + budget) is when the reaper may assume its worker died;
    before it, a `worker` id whose heartbeat is gone (heartbeat.py) tells it so. The claim
    always names who holds the release now ("" when no heartbeat speaks for it), never the
    previous stage's worker.
    """
    now = timezone.now()
    if Release.Status.QUEUED in from_statuses:
        extra.setdefault("started_at", Coalesce(F("started_at"), Value(now)))
    extra["worker"] = worker
    extra["deadline"] = now + timedelta(seconds=budget)
    updated = Release.objects.filter(
        pk=release_id, status__in=from_statuses, cancel_requested=False
    ).update(status=to_status, **extra)
    if not updated:
        _settle_cancel(release_id)
        return None
    release_publish_status(release_id, to_status)
    return Release.objects.select_related("profile__cluster").get(pk=release_id)


def _settle_cancel(release_id):
    Release.objects.filter(pk=release_id, status__in=Release.ACTIVE, cancel_requested=True).update(
        status=Release.Status.CANCELLED, finished_at=timezone.now(), reason="cancelled"
    )


def _finish(run, status, reason=""):
    reason = run.redact(reason)
    db_retry(
        lambda: Release.objects.filter(pk=run.release.pk, status__in=Release.ACTIVE).update(
            status=status, reason=reason[:4000], finished_at=timezone.now()
        )
    )
    if reason:
        run.log(f"{status.replace('_', ' ')}: {reason}")
    db_retry(
        lambda: Step.objects.filter(release=run.release, status=Step.Status.PENDING).update(
            status=Step.Status.SKIPPED
        )
    )
    release_publish_status(run.release.pk)


def _fail(run, reason, status=Release.Status.FAILED):
    if run.step is not None:
        run.end(Step.Status.FAILED, reason)
    if run.cancelled():
        status, reason = Release.Status.CANCELLED, f"cancelled: {reason}"
    _finish(run, status, reason)


def release_build(release_id, worker="", attempt=0):
    release = Release.objects.filter(pk=release_id).first()
    builds = (
        sum(
            1
            for c in (release.snapshot["components"].values() if release else [])
            if c.get("build")
        )
        if release and release.build
        else 0
    )
    # a "load <component>" step follows each build when the release was requested for a
    # cluster that loads images into its node's containerd (image_delivery.py)
    loads = set(
        Step.objects.filter(release_id=release_id, name__startswith="load ").values_list(
            "name", flat=True
        )
    )
    release = _claim(
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
        run.begin(f"build {comp['name']}")
        try:  # checked when saved, and again now: the filesystem may have changed since
            source = build_source(
                comp["build"]["context"], comp["build"]["dockerfile"], must_exist=True
            )
        except ValidationError as exc:
            _fail(
                run,
                f"build {comp['name']} refused: build.{exc.code} "
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
        if f"load {comp['name']}" in loads and not _load(run, comp, ref, image_id, attempt):
            return False
    db_retry(lambda: Release.objects.filter(pk=release_id).update(images=images))
    return True


def _load(run, comp, ref, image_id, attempt):
    """The "load <component>" step: the built image into the node's containerd (a cluster
    whose images reach the nodes that way), unless the node has that image id already.
    Failures end or retry the stage as a build's do."""
    run.begin(f"load {comp['name']}")
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
        _fail(run, str(exc))
        return False
    return _retry_or_fail(run, exc, back_to=Release.Status.QUEUED, attempt=attempt)


def release_render(release_id, worker="", attempt=0):
    release = _claim(
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
        kube = kube_for(run.cluster)
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
        _fail(run, "; ".join(f"{f.subject}: {f.message} (fix: {f.fix})" for f in errors))
        return False
    if render_failed is not None:
        _fail(run, str(render_failed))
        return False
    for line in rendered.lint.splitlines():
        run.log(line)
    if rendered.problems:
        _fail(run, "; ".join(rendered.problems))
        return False
    run.log(
        f"rendered {rendered.resources} resources; schemas valid for Kubernetes "
        f"{', '.join(settings.HELMDECK_VALIDATE_KUBE_VERSIONS)}"
    )
    run.end()
    return True


def release_upgrade(release_id, worker="", attempt=0):
    release = _claim(
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
        _fail(run, str(exc))
        return False
    helm, spec = run.helm(), run.spec
    watcher = PodWatcher(run)
    with values_file(values_for(spec)) as values_path, secrets_file(secrets) as secrets_path:
        run.log(
            f"helm upgrade --install {spec['name']} (helm v{helm.major}, "
            f"{' '.join(helm.rollback_flags())}, timeout {helm_timeout()}s)"
        )
        # helm's summary comes last; a chart whose hooks or warnings print without end
        # must not fill the worker's memory (a summary cut short: helm status is asked)
        output = deque(maxlen=HELM_OUTPUT_KEPT)

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
            _fail(run, str(exc))
            return False
    if code != 0:
        timed_out = time.monotonic() - started >= helm_timeout()
        return _settle_failed_upgrade(run, helm, watcher, attempt, timed_out=timed_out)
    summary = release_summary(list(output), spec["name"], spec["namespace"])
    if summary is None:  # not helm's usual summary: ask helm
        try:
            status = helm.status(spec["name"], spec["namespace"]) or {}
        except IntegrationError as exc:
            _fail(run, f"helm succeeded but its status cannot be read: {exc}")
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
            return _retry_or_fail(run, exc, back_to=Release.Status.RENDERING, attempt=attempt)
        _fail(run, f"{reason}; and helm status failed: {exc}")
        return False
    state = ((status or {}).get("info") or {}).get("status", "")
    if state.startswith("pending-"):
        state = undo_pending(run, helm, status, "helm stopped")
    if run.cancelled():
        _fail(
            run,
            f"helm was stopped; {state or 'no release'} is what runs now",
            status=Release.Status.CANCELLED,
        )
    elif state == "deployed":
        _fail(
            run, f"{reason}; the previous revision was restored", status=Release.Status.ROLLED_BACK
        )
    else:
        _fail(run, reason)
    return False


def release_verify(release_id, worker="", attempt=0):
    release = _claim(
        release_id, (Release.Status.UPGRADING,), Release.Status.VERIFYING, worker=worker, budget=120
    )
    if release is None:
        return False
    run = StageRun(release)
    run.begin("verify")
    spec = run.spec
    try:
        with Kube(run.cluster) as kube:
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
        return _retry_or_fail(run, exc, back_to=Release.Status.UPGRADING, attempt=attempt)
    if unready:
        _fail(
            run,
            f"not Ready: {', '.join(unready)}"
            + (f" ({'; '.join(map(str, problems))})" if problems else ""),
        )
        return False
    ready = sum(d.status.ready_replicas or 0 for d in deployments)
    run.log(f"{len(deployments)} deployments Ready, {ready} pods")
    run.end()
    _finish(run, Release.Status.SUCCEEDED)
    return True


STAGES = (release_build, release_render, release_upgrade, release_verify)


def release_publish_status(release_id, status=None):
    """A "status" event with the release's status: `status` when the caller has just
    written it, else read."""
    if status is None:
        status = db_read_or(
            lambda: Release.objects.filter(pk=release_id).values_list("status", flat=True).first(),
            None,
        )
    if status is not None:  # else the database is away: pages catch up when they reconnect
        events.publish(events.channel("release", release_id), "status", {"status": status})
