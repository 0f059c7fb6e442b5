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
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import jsonschema
import kubernetes_validate
import yaml
from django.conf import settings
from referencing import Registry, Resource

from deployments.integrations.helm import Helm
from deployments.services.profiles import parse_spec_of
from deployments.values import CHART_DIR, secrets_file, value_files, values_file, values_for

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
