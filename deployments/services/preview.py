"""Preview: what a deploy of a profile would do, computed by a worker.

helm lint, helm template, strict schema validation, the research checks, and a per-resource
diff against what is deployed (`helm get manifest`). Secret values are compared in the
worker and reported only as added / changed / unchanged / removed.
"""

import hashlib
import json

import yaml

from deployments import crypto
from deployments.integrations import IntegrationError
from deployments.integrations.helm import Helm
from deployments.integrations.kube import kubeconfig_path
from deployments.services.checks import kube_for, profile_checks
from deployments.services.profiles import parse_spec_of
from deployments.services.rendering import diff_against_deployed, secret_changes, spec_render
from deployments.spec import spec_from_profile
from deployments.values import MissingSecret, secret_values


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
