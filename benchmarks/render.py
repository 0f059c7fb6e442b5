"""6. Chart render + validation per profile, against bare `helm template`.

Helmdeck's render step (deployments/services/rendering.py: `helm lint --strict`,
`helm template`, kubernetes-validate strict for each Kubernetes version) on the todo-app
profile, N times, against `helm template` alone with the same values files. The parts are
timed too, so a slow render says which part is slow. No cluster, no network.
"""

import subprocess
import time

import yaml

from benchmarks import harness
from benchmarks.report import Result, median, percentile

NAME = "render"
TITLE = "Chart render + validation per profile (todo-app), vs bare helm template"


def _timed(fn, n):
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def run(*, quick=False):
    from django.conf import settings

    from deployments.integrations.helm import Helm, passed_fds
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
    result.add("  helm lint --strict p50", median(lint))
    result.add("  kubernetes-validate p50", median(validate), note=versions)
    result.notes.append(
        f"{n} renders each; {len(docs)} manifests validated for Kubernetes {versions}; the "
        "render is lint + template + validation, the bare figure is `helm template` alone "
        "(no goal in the issue: shown for the ratio)"
    )
    return result
