"""1. Deploy overhead: the todo-app profile through Helmdeck (`--no-build`) against bare
`helm upgrade --install --wait` of the same chart and values, alternated.

Helmdeck's run is what Deploy (or `manage.py deploy todo-app --no-build`) does: a release
row and its steps (release_request), the Celery chain queued (release_enqueue), then a
worker renders (lint, template, schema checks, research checks), runs helm and verifies
Ready. The render of the same inputs is reused (rendering.spec_render_check): the untimed
first round renders, the timed runs reuse it, as a redeploy of an unchanged profile does;
a changed profile renders again (the `render` benchmark measures that step). Its time is
click -> Release.finished_at. The bare run is helm alone, with the
values Helmdeck writes (deployments/services/values.py) and the same wait/rollback flags. Both
install fresh into their own bench-* namespace and are uninstalled (untimed) after each
run, so every run waits for new pods: the profile's readiness initialDelaySeconds of 10 s,
which the sandbox's kwok stages honour as a kubelet would.

This module is the kwok variant; deploy_real.py runs the same measurement (`measure`
below, with its own `Variant`) on the sandbox's real node.
"""

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import cluster, harness
from benchmarks.report import Goal, Result, median, percentile

NAME = "deploy"
TITLE = "Deploy overhead: todo-app --no-build through Helmdeck vs bare helm upgrade --install"
RELEASE = "todo-app"
GOAL = Goal("<=", 1.02, on="ratio")  # Helmdeck / bare helm, on the kwok nodes and the real node


@dataclass(frozen=True)
class Variant:
    """Where a deploy benchmark runs and what that changes."""

    kind: str  # the bench-<kind>-hd / bench-<kind>-helm namespaces
    pods: str  # how the pods become Ready, for the notes
    simulated: bool = True  # namespaces on the kwok nodes, else on the real node
    # (name=, namespace=, node_port=) -> the profile document
    spec: Callable = harness.todo_spec
    # (core, namespace) after each timed run, untimed: raises BenchError when the pods are
    # not what the variant claims (e.g. not on the real node); returns a note or ""
    check: Callable | None = None


KWOK = Variant(
    kind="deploy",
    pods="pods Ready after the profile's 10 s readiness delay (kwok)",
)


def _ms(later, earlier):
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds() * 1000


def _helmdeck_once(profile):
    from deployments.models import Release
    from deployments.services.release_queue import release_enqueue
    from deployments.services.releases import release_request

    clicked = time.time()
    release = release_request(profile=profile, actor=None, build=False)
    release_enqueue(release)
    # The time is the row's finished_at, so how often this asks does not change it; asking
    # the database 20 times a second would only take CPU from the deploy (a bare run has
    # nothing beside it).
    harness.wait_for(
        lambda: Release.objects.filter(pk=release.pk, status__in=Release.TERMINAL).exists(),
        timeout=420,
        interval=0.5,
        what=f"release #{release.pk}",
    )
    release.refresh_from_db()
    if release.status != Release.Status.SUCCEEDED:
        raise harness.BenchError(f"release #{release.pk} {release.status}: {release.reason}")
    steps = {s.name: s for s in release.steps.all()}
    ran = sorted((s for s in steps.values() if s.started_at), key=lambda s: s.started_at)
    first = ran[0].started_at if ran else None
    handoffs = sum(_ms(b.started_at, a.finished_at) for a, b in zip(ran, ran[1:], strict=False))
    return {
        "handoffs": handoffs,
        "total": release.finished_at.timestamp() - clicked,
        "queue": _ms(first, release.created_at),
        "to_helm": _ms(steps["upgrade"].started_at, release.created_at),
        **{name: _ms(s.finished_at, s.started_at) / 1000 for name, s in steps.items()},
    }


def bare_argv(profile, ns, workdir):
    """The command line Helmdeck's upgrade step runs (Helm.upgrade_install_argv), with the
    files Helmdeck writes, kept for the whole run."""
    import yaml

    from deployments.integrations.helm import Helm
    from deployments.services.profiles import parse_spec_of
    from deployments.services.values import CHART_DIR, secret_values, value_files, values_for

    spec = parse_spec_of(profile)
    values, secrets = workdir / "values.yaml", workdir / "secrets.yaml"
    values.write_text(yaml.safe_dump(values_for(spec), sort_keys=False))
    secrets.write_text(
        yaml.safe_dump({"secrets": secret_values(profile, environ=harness.TODO_SECRETS)})
    )
    secrets.chmod(0o600)
    files = [*value_files(spec), str(values), str(secrets)]
    return Helm().upgrade_install_argv(RELEASE, ns, CHART_DIR, files, timeout=300)


def bare_once(argv):
    started = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=420, check=False)
    took = time.time() - started
    if done.returncode != 0:
        raise harness.BenchError(f"bare helm failed: {(done.stderr or done.stdout)[-800:]}")
    return {"total": took}


def _uninstall(core, ns):
    """helm uninstall, then wait until the pods are gone: on a real node that is when the
    kubelet has stopped their containers (it deletes the pod object last)."""
    from deployments.integrations.helm import Helm

    Helm().uninstall(RELEASE, ns)
    harness.wait_for(
        lambda: not core.list_namespaced_pod(ns).items,
        timeout=120,
        what=f"pods in {ns} to go",
        interval=0.2,
    )


def fresh_install(core, ns, deploy, cleanups, *, check=None, checks=None):
    """One timed deploy into the empty `ns` (deploy() returns its figures), with the
    cluster's part ("cluster": first pod created -> last pod Ready) from a watch of the
    namespace; then, untimed, the variant's `check(core, ns)` if it has one (its note goes
    into the set `checks`), and the uninstall, whose seconds go to `cleanups`."""
    with cluster.pod_timeline(core, ns) as pods:
        figures = deploy()
    if pods["created"] is None:
        raise harness.BenchError(f"the pod watch of {ns} missed a pod or its Ready")
    figures["cluster"] = pods["ready"] - pods["created"]
    if check is not None:
        checks.add(check(core, ns))
    started = time.monotonic()
    _uninstall(core, ns)
    cleanups.append(time.monotonic() - started)
    return figures


def own_part(runs):
    """A tool's own part of its deploys: the median of total minus the cluster's part. The
    goal's rows add the median of all tools' cluster parts to it (the same for each)."""
    return median([r["total"] - r["cluster"] for r in runs])


def run(*, quick=False):
    return measure(Result(NAME, TITLE, bare_label="bare helm"), KWOK, quick=quick)


def measure(result, variant, *, quick=False):
    """Alternated pairs of Helmdeck and bare helm deploys of `variant`'s profile; the rows
    and notes go into `result`, which is returned."""
    import tempfile
    from pathlib import Path

    from deployments.integrations.helm import Helm

    pairs = 2 if quick else 5
    core, _ = cluster.kube()
    ours, theirs, checks, cleanups = [], [], set(), []
    with (
        cluster.namespace(core, f"{variant.kind}-hd", simulated=variant.simulated) as hd_ns,
        cluster.namespace(core, f"{variant.kind}-helm", simulated=variant.simulated) as bare_ns,
        tempfile.TemporaryDirectory(prefix="helmdeck-bench-deploy-") as tmp,
    ):
        node_port = cluster.free_node_port(core)
        profile = harness.import_profile(
            variant.spec(name=RELEASE, namespace=hd_ns, node_port=node_port)
        )
        argv = bare_argv(profile, bare_ns, Path(tmp))

        def once(who, timed=True):
            ns = hd_ns if who == "helmdeck" else bare_ns

            def deploy():
                return _helmdeck_once(profile) if who == "helmdeck" else bare_once(argv)

            figures = fresh_install(core, ns, deploy, cleanups, check=variant.check, checks=checks)
            if timed:
                (ours if who == "helmdeck" else theirs).append(figures)
            return figures

        try:
            with harness.celery_worker():
                # One untimed round each first: the worker's first release imports the
                # Kubernetes client and loads schemas, which a running panel did long ago.
                first = once("helmdeck", timed=False)["total"], once("bare", timed=False)["total"]
                print(
                    f"   untimed round: Helmdeck {first[0]:.2f}s, bare helm {first[1]:.2f}s "
                    f"(cleanups {cleanups[0]:.1f}s, {cleanups[1]:.1f}s)",
                    flush=True,
                )
                for i in range(pairs):
                    order = ("helmdeck", "bare") if i % 2 == 0 else ("bare", "helmdeck")
                    for who in order:
                        once(who)
                    print(
                        f"   pair {i + 1}/{pairs}: Helmdeck {ours[-1]['total']:.2f}s, "
                        f"bare helm {theirs[-1]['total']:.2f}s (cleanups "
                        + ", ".join(f"{s:.1f}s" for s in cleanups[-2:])
                        + ")",
                        flush=True,
                    )
        finally:
            harness.delete_profiles(pk=profile.pk)

    def med(runs, key):
        return median([r.get(key) for r in runs])

    total, bare = med(ours, "total"), med(theirs, "total")
    # The cluster's part (first pod created -> last pod Ready) is the kubelet's, the same
    # for both tools but for its jitter: on the real node Ready comes at the first readiness
    # probe after the delay, on the kubelet's 5 s period, so it varies by seconds from run
    # to run. Both tools' figures are rebuilt on the median of all runs' cluster parts: what
    # stays is each tool's own part (to the pods, and from Ready to done), measured per run.
    shared = median([r["cluster"] for r in ours + theirs])
    hd_own, bare_own = own_part(ours), own_part(theirs)
    result.add(
        "click -> deployed and Ready, the cluster's part shared",
        hd_own + shared,
        unit="s",
        bare=bare_own + shared,
        goal=GOAL,
    )
    result.add("click -> deployed and Ready, median", total, unit="s", bare=bare)
    result.add(
        "click -> deployed and Ready, p90",
        percentile([r["total"] for r in ours], 90),
        unit="s",
        bare=percentile([r["total"] for r in theirs], 90),
    )
    result.add("overhead (median difference)", total - bare, unit="s")
    result.add("overhead, the cluster's part shared", hd_own - bare_own, unit="s")
    result.add(
        "  the cluster's part: first pod created -> last pod Ready, median",
        med(ours, "cluster"),
        unit="s",
        bare=med(theirs, "cluster"),
    )
    result.add("queue latency: click -> worker's first step", med(ours, "queue"))
    result.add("click -> helm upgrade starts", med(ours, "to_helm"))
    result.add("  render step (checks; lint, template reused)", med(ours, "render"), unit="s")
    result.add("  upgrade step (helm --wait)", med(ours, "upgrade"), unit="s", bare=bare)
    result.add("  verify step", med(ours, "verify"), unit="s")
    result.add("  hand-offs between steps (Celery chain)", med(ours, "handoffs"))
    cleanup = f"uninstalled untimed between runs, {median(cleanups):.1f} s each"
    result.notes.append(
        f"{pairs} alternated pairs after one untimed round each, fresh install each "
        f"({cleanup}); {variant.pods}; one Celery worker "
        "(solo pool); the same helm command line (Helm.upgrade_install_argv), flags "
        + " ".join(Helm().rollback_flags())
    )
    result.notes += sorted(note for note in checks if note)
    result.notes.append(
        "render: the untimed round rendered (helm lint beside helm template, schema checks); "
        "the timed runs have the same inputs and reuse that result (spec_render_check), as a "
        "redeploy of an unchanged profile does, and run only the research checks against the "
        "cluster; a changed profile renders again (the `render` benchmark measures that step)"
    )
    result.notes.append(
        "Helmdeck runs (s, total = render + upgrade + verify + the rest): "
        + ", ".join(
            f"{r['total']:.2f} = {r['render']:.2f} + {r['upgrade']:.2f} + {r['verify']:.2f} "
            f"+ {r['total'] - r['render'] - r['upgrade'] - r['verify']:.2f}"
            for r in ours
        )
        + "; bare: "
        + ", ".join(f"{r['total']:.2f}" for r in theirs)
    )
    result.notes.append(
        "the cluster's part of each run (s, first pod created -> last pod Ready, from a "
        "watch of the namespace): Helmdeck "
        + ", ".join(f"{r['cluster']:.2f}" for r in ours)
        + "; bare "
        + ", ".join(f"{r['cluster']:.2f}" for r in theirs)
        + f"; the goal's row adds their median ({shared:.2f} s) to each tool's own part"
    )
    return result
