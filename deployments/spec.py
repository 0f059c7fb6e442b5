"""The profile spec: the shape of profile YAML (README, Profiles), parsed and checked in full.

`parse_spec(data)` turns a YAML document into a normalized spec with every default filled,
or returns one error per bad field ("components.frontend.port: must be ..."). It never
touches the database except to read which clusters exist; the write lives in
services/profiles.py. Between a spec and the model rows: spec_rows.py.
"""

import json
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from deployments import validators as v

TOP_KEYS = {
    "name",
    "namespace",
    "cluster",
    "environment",
    "description",
    "components",
    "config",
    "secrets",
}
COMPONENT_KEYS = {
    "image",
    "tag",
    "build",
    "port",
    "replicas",
    "service",
    "resources",
    "probes",
    "podAnnotations",
    "ingress",
}
BUILD_KEYS = {"context", "dockerfile", "args"}
MAX_BUILD_ARGS = 20
SERVICE_KEYS = {"type", "nodePort"}
INGRESS_KEYS = {"host", "path", "className", "tlsSecret"}
# Minikube's ingress addon (`minikube addons enable ingress`, research section 8) registers
# the IngressClass "nginx"
DEFAULT_INGRESS_CLASS = "nginx"
DEFAULT_INGRESS_PATH = "/"
PROBE_KEYS = {"path", "initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"}
ENVIRONMENTS = ("dev", "prod")
CLUSTER_IP, NODE_PORT = SERVICE_TYPES = ("ClusterIP", "NodePort")

# The defaults for anything a profile document leaves out; the model fields' defaults
# (deployments.models) are these too, so a form and a file start from the same profile.
DEFAULT_ENVIRONMENT = "dev"
DEFAULT_TAG = "latest"
DEFAULT_DOCKERFILE = "Dockerfile"
DEFAULT_REPLICAS = 1
DEFAULT_SERVICE_TYPE = CLUSTER_IP
DEFAULT_RESOURCES = {"cpu": "500m", "memory": "512Mi"}
DEFAULT_PROBES = {
    "liveness": {
        "path": "/health",
        "initialDelaySeconds": 30,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    },
    "readiness": {
        "path": "/ready",
        "initialDelaySeconds": 10,
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 2,
    },
}
PROBE_VALIDATORS = {
    "path": v.validate_probe_path,
    "initialDelaySeconds": v.validate_probe_delay,
    "periodSeconds": v.validate_probe_positive,
    "timeoutSeconds": v.validate_probe_positive,
    "failureThreshold": v.validate_probe_positive,
}
MAX_COMPONENTS = 20
MAX_ENTRIES = 500


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def key_path(base, key):
    """`base.key`, with a key that is empty or holds odd characters quoted and escaped,
    so an error stays on one line and shows exactly which key it means."""
    shown = key if _PLAIN_KEY.match(key) else json.dumps(key)
    return f"{base}.{shown}" if base else shown


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self):
        return f"{self.path}: {self.message}"


class SpecError(Exception):
    """A spec with one or more bad fields; `errors` holds one FieldError per field."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class _Checker:
    def __init__(self):
        self.errors = []

    def add(self, path, message):
        self.errors.append(FieldError(path, message))

    def check(self, path, validator, value):
        """Run one validator; record its message under `path`. Returns True when valid."""
        try:
            validator(value)
        except ValidationError as exc:
            self.add(path, " ".join(exc.messages))
            return False
        return True

    def mapping(self, path, value, allowed=None, required=False):
        """Return `value` if it is a mapping (reporting unknown keys), else {}."""
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            self.add(path, "must be a mapping of keys to values")
            return {}
        for key in value:
            if not isinstance(key, str):
                self.add(path, f"has a key that is not text: {key!r}")
            elif allowed is not None and key not in allowed:
                self.add(
                    key_path(path, key),
                    f"is not a known key; known keys: {', '.join(sorted(allowed))}",
                )
        return {k: val for k, val in value.items() if isinstance(k, str)}


def parse_spec(data, *, cluster_names):
    """Validate a profile document. Returns the normalized spec or raises SpecError."""
    if data is None:
        raise SpecError([FieldError("file", "is empty; a profile needs a name and components")])
    if not isinstance(data, dict):
        raise SpecError([FieldError("file", "must be a mapping with name, components, ...")])
    c = _Checker()
    doc = c.mapping("", data, TOP_KEYS, required=True)

    spec = {
        "name": doc.get("name"),
        "namespace": doc.get("namespace", doc.get("name")),
        "cluster": doc.get("cluster", "minikube"),
        "environment": doc.get("environment", DEFAULT_ENVIRONMENT),
        "description": doc.get("description", ""),
    }
    if spec["name"] is None:
        c.add("name", "is required: the Helm release name, e.g. todo-app")
    else:
        c.check("name", v.validate_release_name, spec["name"])
    c.check("namespace", v.validate_namespace, spec["namespace"])
    if not isinstance(spec["cluster"], str) or spec["cluster"] not in cluster_names:
        known = ", ".join(sorted(cluster_names)) or "none yet (add one in the admin)"
        c.add("cluster", f"names no known cluster; known clusters: {known}")
    if spec["environment"] not in ENVIRONMENTS:
        c.add("environment", f"must be one of {', '.join(ENVIRONMENTS)}, e.g. dev")
    if not isinstance(spec["description"], str) or len(spec["description"]) > 2000:
        c.add("description", "must be text of at most 2000 characters")
    else:
        c.check("description", v.validate_storable_text, spec["description"])

    spec["components"] = _components(c, doc.get("components"))
    spec["config"] = _config(c, doc.get("config"))
    spec["secrets"] = _secrets(c, doc.get("secrets"))
    for key in sorted(set(spec["config"]) & set(spec["secrets"])):
        c.add(key_path("secrets", key), "is also a config key; a key is either config or a secret")
    if c.errors:
        raise SpecError(c.errors)
    return spec


def _components(c, raw):
    if raw is None:
        c.add("components", "is required: at least one component, e.g. backend")
        return []
    components = c.mapping("components", raw, required=True)
    if isinstance(raw, dict) and not raw:
        c.add("components", "needs at least one component, e.g. backend")
    if len(components) > MAX_COMPONENTS:
        c.add("components", f"has {len(components)} components; at most {MAX_COMPONENTS}")
        return []
    result: list[dict] = []
    node_ports: dict[int, str] = {}
    routes: dict[tuple[str, str], str] = {}
    for name, body in components.items():
        base = key_path("components", name)
        c.check(base, v.validate_component_name, name)
        comp = _component(c, base, name, c.mapping(base, body, COMPONENT_KEYS, required=True))
        port = comp["service"]["nodePort"]
        if isinstance(port, int) and port in node_ports:
            c.add(
                f"{base}.service.nodePort",
                f"{port} is already used by component {node_ports[port]}",
            )
        node_ports.setdefault(port, name)
        ingress = comp["ingress"]
        if ingress and isinstance(ingress["host"], str) and isinstance(ingress["path"], str):
            # /api and /api/ are one route to the controller
            route = (ingress["host"], ingress["path"].rstrip("/") or "/")
            if route in routes:
                c.add(
                    f"{base}.ingress.path",
                    f"{route[0]}{route[1]} is already routed to component {routes[route]}",
                )
            routes.setdefault(route, name)
        result.append(comp)
    return result


def _component(c, base, name, body):
    build = body.get("build")
    if build is not None:
        build = c.mapping(f"{base}.build", build, BUILD_KEYS)
        build = {
            "context": build.get("context"),
            "dockerfile": build.get("dockerfile", DEFAULT_DOCKERFILE),
            "args": _build_args(c, f"{base}.build.args", build.get("args")),
        }
        for key in ("context", "dockerfile"):
            c.check(f"{base}.build.{key}", v.validate_relative_path, build[key])
    service = c.mapping(f"{base}.service", body.get("service"), SERVICE_KEYS)
    comp = {
        "name": name,
        "image": body.get("image", name),
        "tag": str(body["tag"])
        if isinstance(body.get("tag"), int | float)
        else body.get("tag", DEFAULT_TAG),
        "build": build,
        "port": body.get("port"),
        "replicas": body.get("replicas", DEFAULT_REPLICAS),
        "service": {
            "type": service.get("type", DEFAULT_SERVICE_TYPE),
            "nodePort": service.get("nodePort"),
        },
        "resources": _resources(c, f"{base}.resources", body.get("resources")),
        "probes": _probes(c, f"{base}.probes", body.get("probes")),
        "podAnnotations": _annotations(c, f"{base}.podAnnotations", body.get("podAnnotations")),
        "ingress": _ingress(c, f"{base}.ingress", body.get("ingress")),
    }
    c.check(f"{base}.image", v.validate_image_repository, comp["image"])
    c.check(f"{base}.tag", v.validate_image_tag, comp["tag"])
    if comp["port"] is None:
        c.add(f"{base}.port", "is required: the container port, e.g. 8000")
    else:
        c.check(f"{base}.port", v.validate_port, comp["port"])
    c.check(f"{base}.replicas", v.validate_replicas, comp["replicas"])
    stype, node_port = comp["service"]["type"], comp["service"]["nodePort"]
    if stype not in SERVICE_TYPES:
        c.add(f"{base}.service.type", "must be ClusterIP (internal) or NodePort (from the host)")
    elif node_port is not None:
        if stype != "NodePort":
            c.add(f"{base}.service.nodePort", "is only allowed with service type NodePort")
        else:
            c.check(f"{base}.service.nodePort", v.validate_node_port, node_port)
    return comp


def _ingress(c, base, raw):
    """An Ingress in front of the component's Service, or None: host (required), path,
    IngressClass and the name of a TLS Secret (optional)."""
    if raw is None:
        return None
    body = c.mapping(base, raw, INGRESS_KEYS, required=True)
    ingress = {
        "host": body.get("host"),
        "path": body.get("path", DEFAULT_INGRESS_PATH),
        "className": body.get("className", DEFAULT_INGRESS_CLASS),
        "tlsSecret": body.get("tlsSecret"),
    }
    if ingress["host"] is None:
        c.add(f"{base}.host", "is required: the hostname it answers, e.g. todo.example.test")
    else:
        c.check(f"{base}.host", v.validate_ingress_host, ingress["host"])
    c.check(f"{base}.path", v.validate_ingress_path, ingress["path"])
    c.check(f"{base}.className", v.validate_ingress_class, ingress["className"])
    if ingress["tlsSecret"] is not None:
        c.check(f"{base}.tlsSecret", v.validate_tls_secret_name, ingress["tlsSecret"])
    return ingress


def _build_args(c, path, raw):
    """Docker build arguments (e.g. BASE_IMAGE): env-style names, text values."""
    args = c.mapping(path, raw)
    if len(args) > MAX_BUILD_ARGS:
        c.add(path, f"has {len(args)} arguments; at most {MAX_BUILD_ARGS}")
        return {}
    result = {}
    for key, value in args.items():
        arg_path = key_path(path, key)
        ok = c.check(arg_path, v.validate_env_var_name, key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > 1024:
            c.add(arg_path, "must be text of at most 1024 characters, e.g. python:3.11-slim")
        elif ok:
            result[key] = value
    return result


def _annotations(c, path, raw):
    annotations = c.mapping(path, raw)
    result = {}
    for key, value in annotations.items():
        ok = c.check(key_path(path, key), v.validate_annotation_key, key)
        if not isinstance(value, str) or len(value) > 4096:
            c.add(key_path(path, key), 'must be text of at most 4096 characters, e.g. "true"')
        elif ok:
            result[key] = value
    return result


def _resources(c, base, raw):
    body = c.mapping(base, raw, {"requests", "limits"})
    requests = c.mapping(f"{base}.requests", body.get("requests"), {"cpu", "memory"})
    limits = c.mapping(f"{base}.limits", body.get("limits"), {"cpu", "memory"})
    result: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for resource, validator in (("cpu", v.validate_cpu), ("memory", v.validate_memory)):
        # requests=limits is the seed's rule: a side left out copies the other.
        request = requests.get(resource, limits.get(resource, DEFAULT_RESOURCES[resource]))
        limit = limits.get(resource, request)
        request, limit = (
            str(x) if isinstance(x, int | float) and not isinstance(x, bool) else x
            for x in (request, limit)
        )
        ok = True  # a side copied from the other is reported once, where it was written
        if resource in requests or resource not in limits:
            ok &= c.check(f"{base}.requests.{resource}", validator, request)
        if resource in limits:
            ok &= c.check(f"{base}.limits.{resource}", validator, limit)
        result["requests"][resource], result["limits"][resource] = request, limit
        if ok:
            for field, message in v.limit_errors({resource: request}, {resource: limit}).items():
                c.add(f"{base}.limits.{field}", message)
    return result


def _probes(c, base, raw):
    body = c.mapping(base, raw, set(DEFAULT_PROBES))
    result = {}
    for kind, defaults in DEFAULT_PROBES.items():
        probe = c.mapping(f"{base}.{kind}", body.get(kind), PROBE_KEYS)
        result[kind] = {key: probe.get(key, default) for key, default in defaults.items()}
        for key, validator in PROBE_VALIDATORS.items():
            c.check(f"{base}.{kind}.{key}", validator, result[kind][key])
    return result


def _config(c, raw):
    config = c.mapping("config", raw)
    if len(config) > MAX_ENTRIES:
        c.add("config", f"has {len(config)} keys; at most {MAX_ENTRIES}")
        return {}
    result = {}
    for key, value in config.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        path = key_path("config", key)
        c.check(path, v.validate_config_key, key)
        if c.check(path, v.validate_config_value, value):
            result[key] = value
    return result


def _secrets(c, raw):
    secrets = c.mapping("secrets", raw)
    if len(secrets) > MAX_ENTRIES:
        c.add("secrets", f"has {len(secrets)} keys; at most {MAX_ENTRIES}")
        return {}
    result = {}
    for key, body in secrets.items():
        path = key_path("secrets", key)
        c.check(path, v.validate_config_key, key)
        if not isinstance(body, dict) or len(body) != 1 or not isinstance(next(iter(body)), str):
            # Never echo the body: it may be the secret itself, written inline by mistake.
            c.add(path, 'must be one of {value: "..."}, {fromEnv: ENV_NAME} or {stored: true}')
            continue
        ((source, value),) = body.items()
        if source == "value" and c.check(f"{path}.value", v.validate_secret_value, value):
            result[key] = {"value": value}
        elif source == "fromEnv" and c.check(f"{path}.fromEnv", v.validate_env_var_name, value):
            result[key] = {"fromEnv": value}
        elif source == "stored":
            if value is True:
                result[key] = {"stored": True}
            else:
                c.add(f"{path}.stored", "must be true (keep the value stored in Helmdeck)")
        elif source not in ("value", "fromEnv"):
            c.add(path, 'must be one of {value: "..."}, {fromEnv: ENV_NAME} or {stored: true}')
    return result
