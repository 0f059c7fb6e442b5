"""Preview: what a deploy of a profile would do, computed by a worker.

helm lint, helm template, strict schema validation, the research checks, and a per-resource
diff against what is deployed (`helm get manifest`). Secret values are compared in the
worker and reported only as added / changed / unchanged / removed.
"""

import contextlib
import hashlib
import json

import yaml
from django.core.cache import cache

from deployments import crypto
from deployments.integrations import IntegrationError
from deployments.integrations.helm import Helm
from deployments.integrations.kube import kubeconfig_path
from deployments.services.checks import kube_for, profile_checks
from deployments.services.profiles import parse_spec_of
from deployments.services.rendering import (
    diff_against_deployed,
    secret_changes,
    spec_render,
    spec_render_check,
)
from deployments.services.values import MissingSecret, secret_values
from deployments.services.worker_cache import cached_or_queued
from deployments.spec_rows import spec_from_profile


def helm_for(cluster):
    return Helm(kubeconfig=kubeconfig_path(cluster), context=cluster.kube_context)


def fingerprint(profile):
    """Changes whenever the profile, its config or its secrets change (no secret inside)."""
    secrets = [(key, str(at)) for key, at in profile.secrets.values_list("key", "updated_at")]
    document = json.dumps([spec_from_profile(profile), secrets], sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()[:16]


def profile_preview(*, profile, helm=None):
    """A JSON-ready report. Never raises for outside failures: they become `problems`."""
    spec = parse_spec_of(profile)
    helm = helm or helm_for(profile.cluster)
    report = {
        "profile": profile.name,
        "problems": [],
        "checks": [],
        "resources": {},
        "diff": {},
        "secrets": {},
        "deployed": False,
        "lint": "",
    }
    try:
        secrets = secret_values(profile)
    except MissingSecret as exc:
        report["problems"].append(str(exc))
        secrets = None
    except crypto.SecretDecryptError as exc:
        report["problems"].append(str(exc))
        secrets = None
    try:
        rendered = spec_render(spec=spec, keys=list(spec["secrets"]), helm=helm, secrets=secrets)
    except IntegrationError as exc:
        report["problems"].append(str(exc))
        return report
    report["lint"] = rendered.lint
    report["problems"] += rendered.problems
    # What a deploy of this profile renders (placeholders for the secrets), put in the cache
    # while the user reads the preview: the Confirm click's render step finds it there.
    with contextlib.suppress(IntegrationError):  # then the deploy renders, and says why
        spec_render_check(spec=spec, keys=list(spec["secrets"]), helm=helm)
    report["resources"] = rendered.by_resource()
    try:
        deployed = helm.get_manifest(spec["name"], spec["namespace"])
    except IntegrationError as exc:
        report["problems"].append(f"cannot read what is deployed now: {exc}")
        deployed = None
    report["deployed"] = deployed is not None
    report["diff"] = diff_against_deployed(rendered, deployed or "")
    if secrets is not None:
        deployed_docs = [d for d in yaml.safe_load_all(deployed or "") if d]
        report["secrets"] = secret_changes(deployed_docs, secrets, f"{spec['name']}-secrets")
    kube = kube_for(profile.cluster)
    try:
        report["checks"] = [
            vars(f)
            for f in profile_checks(spec=spec, cluster=profile.cluster, profile=profile, kube=kube)
        ]
    finally:
        if kube is not None:
            kube.close()
    return report


# ---- the page asks, a worker computes (tasks.render_preview), the cache keeps ------------
PREVIEW_TTL = 15 * 60


def preview_key(profile_id, print_):
    return f"helmdeck:preview:{profile_id}:{print_}"


def preview_request(profile):
    """The cached preview of a profile as it is now, or None after queueing its computation."""
    from deployments.tasks import render_preview  # the worker's side (tasks import services)

    print_ = fingerprint(profile)
    return cached_or_queued(
        preview_key(profile.pk, print_),
        PREVIEW_TTL,
        render_preview,
        profile.pk,
        print_,
        valid=_is_preview,
    )


def _is_preview(value):
    return (
        isinstance(value, dict)
        and all(isinstance(value.get(k, {}), dict) for k in ("resources", "diff", "secrets"))
        and isinstance(value.get("checks", []), list)
        and all(isinstance(c, dict) for c in value.get("checks", []))
        and isinstance(value.get("problems", []), list)
    )


def preview_store(*, profile, print_):
    """The worker's side of preview_request: compute the preview and keep it, unless the
    profile changed since it was asked for (a newer preview will be asked for)."""
    if fingerprint(profile) == print_:
        cache.set(preview_key(profile.pk, print_), profile_preview(profile=profile), PREVIEW_TTL)
