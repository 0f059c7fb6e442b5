"""Every rule a profile must satisfy, in one place.

Forms, the admin and `import_profile` all call these functions; none of them
re-implements a rule. Each validator raises ``django.core.exceptions.ValidationError``
whose message says what a valid value looks like; callers add the field's name
(a form shows it under the field, the YAML importer prefixes the field's path).

Grammars follow the upstream definitions:
- DNS-1123 label / DNS-1035 label: k8s.io/apimachinery/pkg/util/validation
- ConfigMap keys: same package, IsConfigMapKey
- image references: the OCI distribution spec (deployments/image_references.py)
- quantities: k8s.io/apimachinery/pkg/api/resource (the serialized form)
"""

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from deployments.image_references import IMAGE_TAG, parse_image_reference

RELEASE_NAME_MAX = 53  # Helm stores the release name in a label value plus a suffix
NAMESPACE_MAX = 63
COMPONENT_NAME_MAX = 40  # leaves room for "-service" and the pod-template hash in names
NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767
REPLICAS_MAX = 50
CONFIG_KEY_MAX = 253
CONFIG_VALUE_MAX = 64 * 1024
SECRET_VALUE_MAX = 64 * 1024

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IMAGE_REPOSITORY_MAX = 255  # Helmdeck's column (Component.image); the spec has no domain cap
# resource.Quantity's serialized form: a signed decimal number then a suffix,
# either binary (Ki..Ei), decimal (n u m k M G T P E) or an exponent (e3, E-2).
_QUANTITY = re.compile(
    r"^(?P<number>[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_RELATIVE_PATH = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?$")
_PROBE_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")


def _require_text(value, example):
    if not isinstance(value, str) or not value:
        raise ValidationError(f"is required, e.g. {example}")
    if value != value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(f"must not contain spaces or control characters, e.g. {example}")


def validate_dns1123_label(value, *, max_length=63, example="todo-app"):
    _require_text(value, example)
    if len(value) > max_length:
        raise ValidationError(f"must be at most {max_length} characters (it has {len(value)})")
    if not _DNS1123_LABEL.match(value):
        raise ValidationError(
            "must be lowercase letters, digits and '-', starting and ending with a letter or "
            f"digit, e.g. {example}"
        )


# Words the panel's URLs use under /profiles/ (profiles/new/, profiles/import/, ...).
RESERVED_NAMES = frozenset({"new", "import", "validate", "rows"})


def validate_release_name(value):
    validate_dns1123_label(value, max_length=RELEASE_NAME_MAX, example="todo-app")
    if value in RESERVED_NAMES:
        raise ValidationError(
            f"is reserved by Helmdeck's pages ({', '.join(sorted(RESERVED_NAMES))}); "
            f"pick another, e.g. {value}-app"
        )


def validate_namespace(value):
    validate_dns1123_label(value, max_length=NAMESPACE_MAX, example="todo-app")


def validate_component_name(value):
    """A component names a Deployment and `<name>-service`: a DNS-1035 label."""
    _require_text(value, "backend")
    if len(value) > COMPONENT_NAME_MAX:
        raise ValidationError(
            f"must be at most {COMPONENT_NAME_MAX} characters (it has {len(value)})"
        )
    if not _DNS1035_LABEL.match(value):
        raise ValidationError(
            "must be lowercase letters, digits and '-', starting with a letter and ending with "
            "a letter or digit, e.g. backend"
        )


def validate_image_reference(value):
    """A whole reference, repository[:tag][@digest], as Docker accepts it."""
    example = "todo-backend:1.0.0 or registry.local:5000/team/app@sha256:<64 hex>"
    _require_text(value, example)
    try:
        parse_image_reference(value)
    except ValueError as exc:
        raise ValidationError(f"{exc}, e.g. {example}") from None


def validate_image_repository(value):
    """An image repository without tag or digest (the tag has a field of its own), exactly as
    Docker's reference grammar allows it, and short enough for Helmdeck's column."""
    example = "todo-backend or registry.local:5000/team/app"
    _require_text(value, example)
    if len(value) > IMAGE_REPOSITORY_MAX:
        raise ValidationError(f"must be at most {IMAGE_REPOSITORY_MAX} characters")
    try:
        reference = parse_image_reference(value)
    except ValueError as exc:
        raise ValidationError(f"{exc}, e.g. {example}") from None
    if reference.tag or reference.digest:
        raise ValidationError(
            "must be the repository only: put the tag in the tag field (and no '@digest'), "
            f"e.g. {example}"
        )


def validate_image_tag(value):
    _require_text(value, "1.0.0")
    if not IMAGE_TAG.fullmatch(value):
        raise ValidationError(
            "must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-', "
            "e.g. 1.0.0"
        )


def parse_quantity(value):
    """Return a Kubernetes quantity as a Decimal in base units, or raise ValueError."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or len(value) > 32:
        raise ValueError(value)
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(value)
    suffix = match["suffix"] or ""
    try:
        number = Decimal(match["number"])
        if suffix in _BINARY:
            return number * _BINARY[suffix]
        if suffix in _DECIMAL:
            return number * _DECIMAL[suffix]
        exponent = int(suffix[1:])
        if abs(exponent) > 30:
            raise ValueError(value)
        return number.scaleb(exponent)
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(value) from exc


def validate_cpu(value):
    try:
        amount = parse_quantity(value)
    except ValueError:
        raise ValidationError(
            "must be a CPU quantity in millicores or cores, e.g. 500m, 1 or 0.5"
        ) from None
    if amount < Decimal("0.001"):
        raise ValidationError("must be at least 1m (one thousandth of a core), e.g. 500m")
    if amount > 512:
        raise ValidationError("must be at most 512 cores; a local cluster has far fewer, e.g. 1")


def validate_memory(value):
    try:
        amount = parse_quantity(value)
    except ValueError:
        raise ValidationError(
            "must be a memory quantity in bytes with an optional suffix, e.g. 512Mi, 1Gi or 1e9 "
            "(Mi/Gi are powers of two, M/G powers of ten)"
        ) from None
    if amount < 2**20:
        raise ValidationError("must be at least 1Mi, e.g. 512Mi")
    if amount > 2**40:
        raise ValidationError("must be at most 1Ti, e.g. 1Gi")
    if amount != amount.to_integral_value():
        raise ValidationError("must be a whole number of bytes, e.g. 512Mi")


def limit_errors(requests, limits):
    """Cross-field rule: each limit is at least its request. Returns {field: message}."""
    errors = {}
    for resource in ("cpu", "memory"):
        try:
            request = parse_quantity(requests.get(resource))
            limit = parse_quantity(limits.get(resource))
        except ValueError:
            continue  # the field's own validator reports the bad quantity
        if limit < request:
            errors[resource] = (
                f"limit {limits[resource]} is below the request {requests[resource]}; "
                f"set the limit to at least {requests[resource]} (requests=limits is the default)"
            )
    return errors


def _require_int(value, example):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"must be a whole number, e.g. {example}")


def validate_port(value):
    _require_int(value, 8000)
    if not 1 <= value <= 65535:
        raise ValidationError(f"must be between 1 and 65535 (got {value}), e.g. 8000")


def validate_node_port(value):
    _require_int(value, NODE_PORT_MIN)
    if not NODE_PORT_MIN <= value <= NODE_PORT_MAX:
        raise ValidationError(
            f"must be between {NODE_PORT_MIN} and {NODE_PORT_MAX}, the NodePort range "
            f"(got {value}), e.g. {NODE_PORT_MIN}"
        )


def validate_replicas(value):
    _require_int(value, 1)
    if not 0 <= value <= REPLICAS_MAX:
        raise ValidationError(f"must be between 0 and {REPLICAS_MAX} (got {value}), e.g. 1")


SLEEP_AFTER_MAX = 720  # hours (30 days): a profile's sleep schedule


def validate_sleep_after_hours(value):
    """A sleep schedule: whole hours without a deploy, an action or a visit (None: never)."""
    if value is None:
        return
    _require_int(value, 8)
    if not 1 <= value <= SLEEP_AFTER_MAX:
        raise ValidationError(
            f"must be between 1 and {SLEEP_AFTER_MAX} hours (got {value}), e.g. 8; empty for never"
        )


def validate_probe_path(value):
    _require_text(value, "/health")
    if len(value) > 1024 or not _PROBE_PATH.match(value):
        raise ValidationError("must be an HTTP path starting with '/', e.g. /health or /ready")


def validate_dns1123_subdomain(value, *, example="todo.example.test"):
    """Lowercase DNS labels joined by dots, at most 253 characters (a hostname, a Secret's or
    an IngressClass's name)."""
    _require_text(value, example)
    if len(value) > 253:
        raise ValidationError(f"must be at most 253 characters (it has {len(value)})")
    if not all(_DNS1123_LABEL.match(label) and len(label) <= 63 for label in value.split(".")):
        raise ValidationError(
            "must be lowercase letters, digits, '-' and '.', each part starting and ending "
            f"with a letter or digit, e.g. {example}"
        )


def validate_ingress_host(value):
    validate_dns1123_subdomain(value, example="todo.example.test")
    if "." not in value:
        raise ValidationError("must be a full hostname with a dot, e.g. todo.example.test")
    if all(part.isdigit() for part in value.split(".")):
        raise ValidationError("must be a DNS name, not an IP address, e.g. todo.example.test")


def validate_ingress_class(value):
    validate_dns1123_subdomain(value, example="nginx")


def validate_tls_secret_name(value):
    validate_dns1123_subdomain(value, example="todo-tls")


# What ingress-nginx's strict path check takes for pathType Prefix (its default since 1.12)
_INGRESS_PATH = re.compile(r"^/[A-Za-z0-9/_-]*$")


def validate_ingress_path(value):
    _require_text(value, "/")
    if len(value) > 1024 or not _INGRESS_PATH.match(value) or "//" in value:
        raise ValidationError(
            "must be a path starting with '/' of letters, digits, '/', '_' and '-' "
            "(what ingress-nginx accepts), e.g. / or /api"
        )


def validate_probe_delay(value):
    _require_int(value, 10)
    if not 0 <= value <= 3600:
        raise ValidationError(f"must be between 0 and 3600 seconds (got {value}), e.g. 10")


def validate_probe_positive(value):
    _require_int(value, 5)
    if not 1 <= value <= 3600:
        raise ValidationError(f"must be a positive number between 1 and 3600 (got {value}), e.g. 5")


def validate_config_key(value):
    """A ConfigMap/Secret data key that is also a safe environment variable name.

    Helmdeck injects every config entry and secret as an environment variable (the
    chart's `env:` list), so a key must satisfy both IsConfigMapKey and the POSIX env-name rule.
    """
    _require_text(value, "LOG_LEVEL")
    if len(value) > CONFIG_KEY_MAX or not _CONFIG_KEY.match(value) or value in (".", ".."):
        raise ValidationError(
            "must be at most 253 letters, digits, '-', '_' or '.', e.g. LOG_LEVEL"
        )
    if not _ENV_KEY.match(value):
        raise ValidationError(
            "is injected as an environment variable, so it must start with a letter or '_' "
            "and hold only letters, digits and '_', e.g. LOG_LEVEL"
        )


def validate_env_var_name(value):
    _require_text(value, "TODO_JWT_SECRET")
    if len(value) > 255 or not _ENV_KEY.match(value):
        raise ValidationError(
            "must be an environment variable name: letters, digits and '_', not starting "
            "with a digit, e.g. TODO_JWT_SECRET"
        )


def validate_storable_text(value):
    """Text every database can store: no NUL and no lone surrogates (YAML "\\0", "\\ud800")."""
    if "\x00" in value:
        raise ValidationError("must not contain NUL characters (\\0)")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValidationError("must be valid Unicode text (no lone surrogates)") from None


_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")


def validate_annotation_key(value):
    """An annotation key: [DNS-1123 subdomain prefix/]name, name at most 63 characters."""
    _require_text(value, "prometheus.io/scrape")
    prefix, _, name = value.rpartition("/")
    if (
        len(name) > 63
        or not _QUALIFIED_NAME.match(name)
        or len(prefix) > 253
        or (prefix and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", prefix))
    ):
        raise ValidationError(
            "must be an optional DNS prefix and '/', then a name of at most 63 letters, digits, "
            "'-', '_' or '.', e.g. prometheus.io/scrape"
        )


def validate_config_value(value):
    if not isinstance(value, str):
        raise ValidationError('must be text; quote numbers and booleans in YAML, e.g. "8000"')
    validate_storable_text(value)
    if len(value.encode()) > CONFIG_VALUE_MAX:
        raise ValidationError("must be at most 64 KiB")


def validate_secret_value(value):
    if not isinstance(value, str) or not value:
        raise ValidationError("must be a non-empty text value")
    validate_storable_text(value)
    if len(value.encode()) > SECRET_VALUE_MAX:
        raise ValidationError("must be at most 64 KiB")


def validate_image_delivery(value):
    """How built images reach a cluster's nodes: the cluster's Docker or its containerd.
    Pushing to a registry is a choice the model lists but Helmdeck cannot do yet."""
    if value == "registry":
        raise ValidationError(
            'Pushing to a registry is not supported yet: choose "The cluster\'s Docker" '
            "(Minikube's docker runtime) or \"Load into the node's containerd\" (kind, "
            "Minikube with containerd)"
        )


_SOCKET_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")


def validate_containerd_address(value):
    """containerd's socket, as `ctr --address` takes it: an absolute path."""
    if value and (len(value) > 1024 or not _SOCKET_PATH.match(value) or ".." in value.split("/")):
        raise ValidationError(
            "must be the absolute path of containerd's socket (letters, digits, '.', '_', "
            "'-', '/'), e.g. /run/containerd/containerd.sock"
        )


def validate_relative_path(value, *, example="examples/todo-app/backend"):
    """Build contexts and Dockerfiles are paths inside the project, never absolute or '..'."""
    _require_text(value, example)
    if len(value) > 512 or not _RELATIVE_PATH.match(value) or ".." in value.split("/"):
        raise ValidationError(
            "must be a relative path inside the project (letters, digits, '.', '_', '-', '/'), "
            f"e.g. {example}"
        )
