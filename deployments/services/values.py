"""Profile -> Helm values for charts/app.

`values_for(spec)` is a pure function of a profile spec (deployments/spec.py shape), so a
release can be rendered again from its frozen snapshot. Secret values never enter it:
`secret_values(profile)` resolves them separately and `secrets_file()` hands them to helm
in an anonymous in-memory file (never on disk, gone with the last process holding it).
"""

import contextlib
import os
import tempfile
from pathlib import Path

import yaml

from deployments import crypto

# the repository's chart: <repo>/charts/app (this file is <repo>/deployments/services/values.py)
CHART_DIR = str(Path(__file__).resolve().parents[2] / "charts" / "app")


def values_for(spec):
    """The values file Helmdeck writes for a profile spec (no secret values: only keys)."""
    components = {}
    for comp in spec["components"]:
        service = {"type": comp["service"]["type"]}
        if comp["service"]["type"] == "NodePort":
            service["nodePort"] = comp["service"]["nodePort"]
        components[comp["name"]] = {
            "image": {"repository": comp["image"], "tag": str(comp["tag"])},
            "port": comp["port"],
            "replicas": comp["replicas"],
            "service": service,
            "resources": {
                "requests": dict(comp["resources"]["requests"]),
                "limits": dict(comp["resources"]["limits"]),
            },
            "probes": {kind: dict(probe) for kind, probe in comp["probes"].items()},
        }
        if comp.get("podAnnotations"):
            components[comp["name"]]["podAnnotations"] = dict(comp["podAnnotations"])
        if comp.get("ingress"):
            components[comp["name"]]["ingress"] = {
                key: value for key, value in comp["ingress"].items() if value is not None
            }
    return {"config": dict(spec["config"]), "components": components}


def value_files(spec):
    """The -f files helm gets, in order, before the secrets file."""
    return [
        os.path.join(CHART_DIR, "values.yaml"),
        os.path.join(CHART_DIR, f"values-{spec['environment']}.yaml"),
    ]


class MissingSecret(Exception):
    """A secret's source has no value (says which key and which variable, never a value)."""


def secret_values(profile, *, environ=None, available_only=False):
    """Decrypt stored secrets and read `fromEnv` ones. Raises MissingSecret (or, for a value
    no key decrypts, SecretDecryptError); `available_only` skips those instead."""
    environ = os.environ if environ is None else environ
    values = {}
    for entry in profile.secrets.all():
        if entry.from_env:
            if entry.from_env in environ:
                values[entry.key] = environ[entry.from_env]
            elif not available_only:
                raise MissingSecret(
                    f"secret {entry.key} reads ${entry.from_env}, which is not set in the "
                    "worker's environment; set it or store a value in the admin"
                )
        else:
            try:
                values[entry.key] = crypto.decrypt(entry.ciphertext)
            except crypto.SecretDecryptError:
                if not available_only:
                    raise
    return values


@contextlib.contextmanager
def secrets_file(secrets):
    """A values file holding {secrets: ...} for helm, as a `/dev/fd/N` path.

    On Linux it is a memfd: it exists only in memory, no other user can open it, and
    nothing is left behind even when the worker is SIGKILLed mid-deploy (a temporary file
    would stay). Helm is given the descriptor (deployments.integrations.helm passes every
    /dev/fd/N of its argv). Elsewhere, a 0600 temporary file removed when the block ends.
    """
    document = yaml.safe_dump({"secrets": secrets}).encode()
    if not hasattr(os, "memfd_create"):
        fd, path = tempfile.mkstemp(prefix="helmdeck-secrets-", suffix=".yaml")
        try:
            with os.fdopen(fd, "wb") as handle:  # mkstemp creates it 0600
                handle.write(document)
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return
    fd = os.memfd_create("helmdeck-secrets")
    try:
        os.write(fd, document)
        yield f"/dev/fd/{fd}"
    finally:
        os.close(fd)


@contextlib.contextmanager
def values_file(values):
    """The profile's (non-secret) values as a temporary file for helm."""
    fd, path = tempfile.mkstemp(prefix="helmdeck-values-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(values, handle, sort_keys=False)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
