from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from deployments import validators as v

HOSTILE = [
    "",
    " ",
    "a b",
    "\x00",
    "name\n",
    "\u202eevil",
    "ñame",
    "<script>alert(1)</script>",
    "'; DROP TABLE profiles; --",
    "../../etc/passwd",
    "a" * 10_000,
    "${HOME}",
    "$(reboot)",
]


def ok(validator, value):
    validator(value)


def bad(validator, value, *fragments):
    with pytest.raises(ValidationError) as info:
        validator(value)
    message = " ".join(info.value.messages)
    assert "e.g." in message or "at most" in message or "at least" in message, message
    for fragment in fragments:
        assert fragment in message
    return message


@pytest.mark.parametrize("value", ["todo-app", "a", "a1", "1a", "x" * 53, "app-2-b"])
def test_it_accepts_release_names(value):
    ok(v.validate_release_name, value)


@pytest.mark.parametrize("value", ["Todo", "-app", "app-", "app_1", "x" * 54, "app.x", *HOSTILE])
def test_it_rejects_bad_release_names_with_an_example(value):
    bad(v.validate_release_name, value)


def test_it_allows_63_character_namespaces_but_not_64():
    ok(v.validate_namespace, "n" * 63)
    assert "at most 63" in bad(v.validate_namespace, "n" * 64)


@pytest.mark.parametrize("value", ["backend", "web-1", "a"])
def test_it_accepts_component_names(value):
    ok(v.validate_component_name, value)


@pytest.mark.parametrize("value", ["1web", "web-", "Web", "w" * 41, *HOSTILE])
def test_it_rejects_component_names_that_cannot_name_a_service(value):
    bad(v.validate_component_name, value)


@pytest.mark.parametrize(
    "value",
    [
        "todo-backend",
        "team/app",
        "registry.local:5000/team/app",
        "localhost/app",
        "a.b/c__d/e-f",
        "docker.io/library/python",
        "x" * 100,
    ],
)
def test_it_accepts_oci_repositories(value):
    ok(v.validate_image_repository, value)


@pytest.mark.parametrize(
    "value",
    [
        "App",
        "app:1.0",
        "app@sha256:abc",
        "app/",
        "/app",
        "team//app",
        "app-",
        "-app",
        "a..b",
        "registry:port/app",
        *HOSTILE,
    ],
)
def test_it_rejects_bad_repositories(value):
    bad(v.validate_image_repository, value)


@pytest.mark.parametrize("value", ["1.0.0", "latest", "v2_rc-1", "A" * 128, "_x"])
def test_it_accepts_tags(value):
    ok(v.validate_image_tag, value)


@pytest.mark.parametrize("value", [".1", "-x", "A" * 129, "1.0:0", "a/b", *HOSTILE])
def test_it_rejects_bad_tags(value):
    bad(v.validate_image_tag, value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("1", Decimal(1)),
        ("0.5", Decimal("0.5")),
        ("1000m", Decimal(1)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("1e9", Decimal(10**9)),
        ("1G", Decimal(10**9)),
        ("128974848", Decimal(128974848)),
        ("1.5Gi", Decimal(3 * 2**29)),
        (".5", Decimal("0.5")),
        ("+1", Decimal(1)),
        ("2E3", Decimal(2000)),
    ],
)
def test_it_parses_kubernetes_quantities(text, expected):
    assert v.parse_quantity(text) == expected


@pytest.mark.parametrize("value", ["500m", "1", "0.5", "2", "100m", 1, 0.25])
def test_it_accepts_cpu(value):
    ok(v.validate_cpu, value)


@pytest.mark.parametrize(
    "value",
    [
        "lots",
        "500 m",
        "-1",
        "0",
        "0m",
        "1.2.3",
        "1mi",
        "1Mb",
        "1e",
        "513",
        "1Ki",
        "0.0001",
        True,
        None,
        [],
        *HOSTILE,
    ],
)
def test_it_rejects_bad_cpu_and_names_the_valid_shapes(value):
    message = bad(v.validate_cpu, value)
    assert "500m" in message or "1m" in message or "512" in message or "1" in message


@pytest.mark.parametrize("value", ["512Mi", "1Gi", "1e9", "1G", "134217728", "0.5Gi"])
def test_it_accepts_memory(value):
    ok(v.validate_memory, value)


@pytest.mark.parametrize(
    "value",
    [
        "512MB",
        "1gi",
        "lots",
        "0",
        "1Ki",
        "2Ti",
        "1.5",
        "1e99",
        "-1Gi",
        "512m",
        *HOSTILE,
    ],
)
def test_it_rejects_bad_memory(value):
    bad(v.validate_memory, value)


def test_it_requires_limits_at_least_requests():
    assert (
        v.limit_errors({"cpu": "500m", "memory": "512Mi"}, {"cpu": "0.5", "memory": "512Mi"}) == {}
    )
    errors = v.limit_errors({"cpu": "1", "memory": "1Gi"}, {"cpu": "500m", "memory": "1023Mi"})
    assert set(errors) == {"cpu", "memory"}
    assert "below the request 1" in errors["cpu"]
    assert "at least 1Gi" in errors["memory"]


def test_it_leaves_unparseable_quantities_to_their_own_validator():
    assert v.limit_errors({"cpu": "x"}, {"cpu": "1"}) == {}


@pytest.mark.parametrize(
    ("validator", "good", "bad_values"),
    [
        (v.validate_port, [1, 8000, 65535], [0, 65536, -1, "80", True, 3.0]),
        (v.validate_node_port, [30000, 32767], [29999, 32768, 80, "30000"]),
        (v.validate_replicas, [0, 1, 50], [-1, 51, "1", None]),
        (v.validate_probe_delay, [0, 10, 3600], [-1, 3601, "10"]),
        (v.validate_probe_positive, [1, 5], [0, -3, 3601, 1.5]),
    ],
)
def test_it_checks_number_ranges(validator, good, bad_values):
    for value in good:
        ok(validator, value)
    for value in bad_values:
        bad(validator, value)


@pytest.mark.parametrize("value", ["LOG_LEVEL", "_X", "a1", "BACKEND_URL"])
def test_it_accepts_config_keys_that_are_env_safe(value):
    ok(v.validate_config_key, value)


def test_it_explains_why_a_configmap_key_is_not_enough():
    message = bad(v.validate_config_key, "log.level")
    assert "environment variable" in message


@pytest.mark.parametrize("value", ["1X", "A-B", "a b", "K" * 254, ".", *HOSTILE])
def test_it_rejects_bad_config_keys(value):
    bad(v.validate_config_key, value)


@pytest.mark.parametrize("value", ["/", "/health", "/ready?full=1", "/api/v1/x%20y"])
def test_it_accepts_probe_paths(value):
    ok(v.validate_probe_path, value)


@pytest.mark.parametrize("value", ["health", "http://x/", "/a b", "/\n", *HOSTILE])
def test_it_rejects_probe_paths(value):
    bad(v.validate_probe_path, value)


@pytest.mark.parametrize("value", ["/abs", "../up", "a/../../b", "a\\b", *HOSTILE])
def test_it_rejects_paths_outside_the_project(value):
    bad(v.validate_relative_path, value)


def test_it_accepts_relative_paths():
    ok(v.validate_relative_path, "examples/todo-app/backend")


def test_it_never_echoes_a_secret_value_in_its_message():
    secret = "sk-" + "Z" * (70 * 1024)
    message = " ".join(
        pytest.raises(ValidationError, v.validate_secret_value, secret).value.messages
    )
    assert "sk-Z" not in message


@pytest.mark.parametrize("value", sorted(v.RESERVED_NAMES))
def test_it_reserves_the_words_the_profile_urls_use(value):
    assert "reserved" in bad(v.validate_release_name, value)
