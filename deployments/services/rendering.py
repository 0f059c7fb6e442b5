"""Render a profile through charts/app and check the result before anything is applied.

The pipeline a deploy runs first and the profile page shows as "Preview":
`helm lint --strict`, `helm template`, kubernetes-validate in strict mode for every version
in settings.HELMDECK_VALIDATE_KUBE_VERSIONS, and a diff against `helm get manifest`.
Secret values are rendered only when `secrets` is given (the worker, at deploy time); the
manifests this module returns always show them as <redacted>, and a diff reports a secret
key only as changed or unchanged.
"""

import base64
import copy
import difflib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import jsonschema
import kubernetes_validate
import yaml
from django.conf import settings
from django.core.cache import cache
from referencing import Registry, Resource

from deployments.integrations.helm import Helm
from deployments.services.profiles import parse_spec_of
from deployments.services.values import (
    CHART_DIR,
    secrets_file,
    value_files,
    values_file,
    values_for,
)

REDACTED = "<redacted>"
_PLACEHOLDER = "helmdeck-placeholder"  # rendered in place of values nobody decrypted
_CHECKSUM_SECRETS = "checksum/secrets"


@dataclass
class Rendered:
    spec: dict
    values: dict
    manifests: list  # dicts, Secret data redacted
    lint: str = ""
    problems: list = field(default_factory=list)  # "Kind/name (k8s 1.28): message"

    @property
    def ok(self):
        return not self.problems

    def text(self):
        """The manifests as one YAML stream, as `helm template` prints them (redacted)."""
        return yaml.safe_dump_all(self.manifests, sort_keys=False)

    def by_resource(self):
        return {resource_id(doc): yaml.safe_dump(doc, sort_keys=False) for doc in self.manifests}


def resource_id(doc):
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def profile_render(*, profile, helm=None, secrets=None):
    """Render and check a saved profile. `secrets`: real values, or None for placeholders."""
    spec = parse_spec_of(profile)
    return spec_render(spec=spec, keys=list(spec["secrets"]), helm=helm, secrets=secrets)


def spec_render(*, spec, keys, helm=None, secrets=None):
    helm = helm or Helm()
    values = values_for(spec)
    rendered_secrets = secrets if secrets is not None else dict.fromkeys(keys, _PLACEHOLDER)
    with values_file(values) as values_path, secrets_file(rendered_secrets) as secrets_path:
        files = [*value_files(spec), values_path, secrets_path]
        # Two helm processes side by side: the render step waits for the slower, not both.
        # A lint failure is still the error raised when both fail, as when lint ran first.
        with ThreadPoolExecutor(max_workers=1) as pool:
            linting = pool.submit(helm.lint, CHART_DIR, files)
            try:
                text, failed = (
                    helm.template(spec["name"], spec["namespace"], CHART_DIR, files),
                    None,
                )
            except Exception as exc:  # noqa: BLE001 - re-raised below, after lint's
                text, failed = "", exc
            lint = linting.result()
            if failed is not None:
                raise failed
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    problems = validate_manifests(docs)
    return Rendered(
        spec=spec,
        values=values,
        manifests=[redact(doc) for doc in docs],
        lint=lint,
        problems=problems,
    )


@dataclass(frozen=True)
class RenderCheck:
    """What a deploy keeps of a render: helm lint's output, how many resources, problems."""

    lint: str
    resources: int
    problems: list


RENDER_CHECK_TTL = 24 * 3600
_RENDER_CHECK_FORMAT = 1  # bump when what spec_render checks changes


def spec_render_check(*, spec, keys, helm=None):
    """A deploy's render (placeholder secrets), remembered by everything it depends on.

    A render is a function of the chart's files, the values Helmdeck writes for the spec,
    the secret keys (never their values: a deploy renders placeholders), the helm binary
    and the Kubernetes versions it is validated against. A deploy whose inputs are those
    of an earlier one reuses that result instead of running `helm lint` and `helm template`
    and the schema checks again (~0.17 s of a deploy), as Argo CD's repo server caches
    the manifests it generates by their inputs. Kept in the cache (Redis) for a day.
    """
    helm = helm or Helm()
    key = f"helmdeck:render:{render_inputs_digest(spec, keys, helm)}"
    found = cache.get(key)
    if _is_render_check(found):
        return RenderCheck(**found)
    rendered = spec_render(spec=spec, keys=keys, helm=helm)
    check = RenderCheck(rendered.lint, len(rendered.manifests), list(rendered.problems))
    cache.set(key, vars(check), RENDER_CHECK_TTL)
    return check


def render_inputs_digest(spec, keys, helm):
    inputs = {
        "format": _RENDER_CHECK_FORMAT,
        "release": [spec["name"], spec["namespace"], spec["environment"]],
        "values": values_for(spec),
        "secret_keys": sorted(keys),
        "helm": [os.path.realpath(helm.binary), helm.version()],
        "kubernetes": list(settings.HELMDECK_VALIDATE_KUBE_VERSIONS),
        "kubernetes_validate": importlib.metadata.version("kubernetes-validate"),
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode())
    for root, dirs, files in os.walk(CHART_DIR):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, CHART_DIR).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def _is_render_check(value):
    return (
        isinstance(value, dict)
        and set(value) == {"lint", "resources", "problems"}
        and isinstance(value["lint"], str)
        and isinstance(value["resources"], int)
        and isinstance(value["problems"], list)
        and all(isinstance(p, str) for p in value["problems"])
    )


@functools.lru_cache(maxsize=128)
def _strict_validator(version, kind, api_version):
    """kubernetes-validate's strict validator for one kind, built once per process.

    `kubernetes_validate.validate()` reads and parses its JSON schemas (the large
    `_definitions.json` among them) and builds a new registry on every call: 12 calls per
    render of the todo-app, 0.18 s of it. This keeps the validator it would build; the
    schema lookup below is the library's own (utils.validate, kubernetes-validate 1.37).
    """
    utils = kubernetes_validate.utils
    version = version.removeprefix("v")
    wanted = utils.major_minor(version)
    if wanted > utils.latest_version():
        raise utils.VersionNotSupportedError(version=wanted)
    schema_version = [v for v in utils.all_versions() if utils.major_minor(v) <= wanted][-1]
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{schema_version}-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(
            version=wanted, kind=kind, api_version=api_version
        ) from None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _validate(doc, version):
    """kubernetes_validate.validate(doc, version, strict=True), with cached validators."""
    try:
        validator = _strict_validator(version, str(doc.get("kind")), str(doc.get("apiVersion")))
    except (TypeError, AttributeError):
        return kubernetes_validate.validate(doc, version, strict=True)
    try:
        validator.validate(doc)
    except jsonschema.ValidationError as exc:
        raise kubernetes_validate.ValidationError(exc, version=version) from None


def validate_manifests(docs, versions=None):
    """kubernetes-validate, strict (unknown fields are errors), for each Kubernetes version."""
    problems = []
    for version in versions or settings.HELMDECK_VALIDATE_KUBE_VERSIONS:
        for doc in docs:
            try:
                _validate(doc, version)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path) or "(document)"
                problems.append(
                    f"{resource_id(doc)} (Kubernetes {version}): {where}: {exc.message}"
                )
            except (
                kubernetes_validate.SchemaNotFoundError,
                kubernetes_validate.InvalidSchemaError,
            ) as exc:
                problems.append(f"{resource_id(doc)} (Kubernetes {version}): {exc}")
    return problems


def redact(doc):
    """A copy of a manifest with Secret values and the secrets checksum hidden."""
    doc = copy.deepcopy(doc)
    if doc.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if doc.get(key):
                doc[key] = dict.fromkeys(doc[key], REDACTED)
    annotations = (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "annotations"
    ) or {}
    if _CHECKSUM_SECRETS in annotations:
        annotations[_CHECKSUM_SECRETS] = REDACTED
    return doc


def secret_changes(deployed_docs, secrets, name):
    """{key: "added" | "changed" | "unchanged" | "removed"} for Secret `name`; no values."""
    deployed = next(
        (d for d in deployed_docs if d.get("kind") == "Secret" and d["metadata"]["name"] == name),
        None,
    )
    before = {}
    for key, value in ((deployed or {}).get("data") or {}).items():
        before[key] = base64.b64decode(value).decode(errors="replace")
    changes = {}
    for key in sorted(set(before) | set(secrets)):
        if key not in before:
            changes[key] = "added"
        elif key not in secrets:
            changes[key] = "removed"
        else:
            changes[key] = "unchanged" if before[key] == secrets[key] else "changed"
    return changes


def diff_against_deployed(rendered, deployed_text):
    """Unified diffs per resource between what is deployed and what would be applied.

    Returns {resource id: diff text}; resources equal on both sides are left out. Secret
    data and the secrets checksum are redacted on both sides before comparing.
    """
    deployed = {
        resource_id(doc): yaml.safe_dump(redact(doc), sort_keys=False)
        for doc in yaml.safe_load_all(deployed_text or "")
        if doc
    }
    wanted = rendered.by_resource()
    diffs = {}
    for rid in sorted(set(deployed) | set(wanted)):
        before, after = deployed.get(rid, ""), wanted.get(rid, "")
        if before != after:
            diffs[rid] = "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=f"deployed/{rid}",
                    tofile=f"new/{rid}",
                )
            )
    return diffs
