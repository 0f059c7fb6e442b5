"""6. Chart render + validation per profile, against bare `helm template`.

Helmdeck's render step (deployments/services/rendering.py: `helm lint --strict`, `helm
template`, kubernetes-validate strict for each Kubernetes version) on the todo-app profile,
N times, against `helm template` alone with the same values files. The parts are timed too,
so a slow render says which part is slow. Then the render with the research checks that ask
the cluster (services/checks.py: capacity from its nodes and pods, nodePorts from its
Services), through the process's shared client as a deploy's render step asks
(Kube(shared=True)): one after the other, where the step runs them side by side, so an upper
bound (goal: p95 <= 300 ms, issue 18). Last, the checks alone with OTHER_PODS pods running
elsewhere in the cluster (a Minikube's system pods and a few apps' worth, on the kwok
nodes): the capacity check lists every pod of the cluster, so its cost grows with them.
"""

import subprocess
import time

import yaml

from benchmarks import cluster, harness
from benchmarks.report import Goal, Result, median, percentile

NAME = "render"
TITLE = "Chart render + validation per profile (todo-app), vs bare helm template"
CHECKS_GOAL = Goal("<=", 300, unit="ms")
OTHER_PODS = 30


def _timed(fn, n):
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _answers(cluster):
    from deployments.integrations import IntegrationError
    from deployments.services.checks import kube_for

    kube = kube_for(cluster)
    if kube is None:
        return False
    try:
        kube.nodes()
        return True
    except IntegrationError:
        return False
    finally:
        kube.close()


def _other_pods(core, ns, count):
    """`count` pods Running in `ns` (kwok starts them; no image is pulled)."""
    from kubernetes import client

    for i in range(count):
        core.create_namespaced_pod(
            ns,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=f"other-{i}", labels={"app": "other"}),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="c",
                            image="bench/other:1",
                            resources=client.V1ResourceRequirements(
                                requests={"cpu": "10m", "memory": "16Mi"}
                            ),
                        )
                    ],
                    termination_grace_period_seconds=0,
                ),
            ),
        )

    def running():
        pods = core.list_namespaced_pod(ns).items
        return sum(p.status.phase == "Running" for p in pods) == count

    harness.wait_for(running, timeout=120, what=f"{count} pods Running in {ns}", interval=0.5)


def run(*, quick=False):
    from django.conf import settings

    from deployments.integrations.helm import Helm, passed_fds
    from deployments.services.checks import kube_for, profile_checks
    from deployments.services.profiles import parse_spec_of
    from deployments.services.rendering import profile_render, validate_manifests
    from deployments.services.values import (
        CHART_DIR,
        secrets_file,
        value_files,
        values_file,
        values_for,
    )

    n = 5 if quick else 20
    result = Result(NAME, TITLE, bare_label="helm template")
    name = f"{harness.PREFIX}render"
    profile = harness.import_profile(harness.todo_spec(name=name, namespace=name))
    try:
        profile_render(profile=profile)  # warm: helm's version, schemas loaded once
        full = _timed(lambda: profile_render(profile=profile), n)
        spec = parse_spec_of(profile)

        def checks():
            kube = kube_for(profile.cluster, shared=True)
            profile_checks(spec=spec, cluster=profile.cluster, profile=profile, kube=kube)

        def render_and_checks():
            profile_render(profile=profile)
            checks()

        # timed only when the cluster answers: else the checks fall back to the Cluster's
        # configured size, and the figure would be that
        answers = _answers(profile.cluster)
        with_checks = _timed(render_and_checks, n) if answers else None
        checks_crowded = None
        if answers:
            core, api = cluster.kube()
            try:
                with cluster.namespace(core, "render-pods") as ns:
                    _other_pods(core, ns, OTHER_PODS)
                    checks()
                    checks_crowded = _timed(checks, n)
            finally:
                api.close()
        helm = Helm()
        secrets = dict.fromkeys(spec["secrets"], "x")
        with values_file(values_for(spec)) as vpath, secrets_file(secrets) as spath:
            files = [*value_files(spec), vpath, spath]
            argv = [helm.binary, "template", name, CHART_DIR, "--namespace", name]
            argv += [a for f in files for a in ("-f", f)]

            def bare():
                subprocess.run(
                    argv, capture_output=True, check=True, timeout=60, pass_fds=passed_fds(argv)
                )

            bare()
            template = _timed(bare, n)
            lint = _timed(lambda: helm.lint(CHART_DIR, files), n)
            text = helm.template(name, name, CHART_DIR, files)
            docs = [d for d in yaml.safe_load_all(text) if d]
            validate = _timed(lambda: validate_manifests(docs), n)
    finally:
        harness.delete_profiles(name=name)
    versions = ", ".join(settings.HELMDECK_VALIDATE_KUBE_VERSIONS)
    result.add("render + validate p50", median(full), bare=median(template))
    result.add("render + validate p95", percentile(full, 95), bare=percentile(template, 95))
    result.add(
        "render + research checks, the cluster reachable, p95",
        percentile(with_checks, 95) if with_checks else None,
        goal=CHECKS_GOAL,
        note="" if with_checks else "the cluster did not answer: not timed",
    )
    result.add("render + research checks p50", median(with_checks) if with_checks else None)
    result.add(
        f"research checks alone, {OTHER_PODS} other pods in the cluster, p95",
        percentile(checks_crowded, 95) if checks_crowded else None,
        note="" if checks_crowded else "the cluster did not answer: not timed",
    )
    result.add("  helm lint --strict p50", median(lint))
    result.add("  kubernetes-validate p50", median(validate), note=versions)
    result.notes.append(
        f"{n} renders each; {len(docs)} manifests validated for Kubernetes {versions}; the "
        "render is lint + template + validation, the bare figure is `helm template` alone "
        "(no goal: shown for the ratio); after each render the checks asked the cluster "
        "$KUBECONFIG names (the sandbox) for its nodes, pods and Services in all namespaces"
    )
    return result
