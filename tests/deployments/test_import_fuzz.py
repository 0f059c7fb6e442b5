"""Hypothesis fuzzing of import: any document either imports or fails with field errors,
never with another exception, and a failed import writes nothing."""

import os

import pytest
import yaml
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments import profile_yaml
from deployments.models import AuditEvent, Component, ConfigEntry, Profile, SecretEntry
from deployments.services.profiles import profile_import
from deployments.spec import SpecError

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "200"))
CANARY = "canary-secret-9f3b"

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "../../x",
            "<b>x</b>",
            "'; DROP TABLE x;--",
            "1e99",
            "500m",
            "1Gi",
            "NodePort",
            "ClusterIP",
            "/health",
            "todo-app",
            "∞",
            "-1",
        ]
    ),
)
scalar = st.one_of(
    hostile_text,
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
)
anything = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)
    ),
    max_leaves=8,
)


def maybe(strategy):
    return st.one_of(strategy, anything)


quantity = st.sampled_from(["500m", "1", "0.5", "512Mi", "1Gi", "1e9", "lots", "-1", "0", "2Ti"])
probe = st.fixed_dictionaries(
    {},
    optional={
        "path": maybe(st.sampled_from(["/", "/health", "health"])),
        "initialDelaySeconds": maybe(st.integers(-5, 4000)),
        "periodSeconds": maybe(st.integers(-1, 10)),
        "timeoutSeconds": maybe(st.integers(0, 10)),
        "failureThreshold": maybe(st.integers(0, 5)),
    },
)
component = st.fixed_dictionaries(
    {},
    optional={
        "image": maybe(st.sampled_from(["app", "Bad Image", "reg:5000/a/b"])),
        "tag": maybe(st.sampled_from(["1.0.0", 1.0, "", "-x"])),
        "build": maybe(st.fixed_dictionaries({"context": hostile_text})),
        "port": maybe(st.integers(-1, 70000)),
        "replicas": maybe(st.integers(-1, 60)),
        "service": maybe(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"])},
                optional={"nodePort": st.integers(29990, 32770)},
            )
        ),
        "resources": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "requests": st.fixed_dictionaries(
                        {}, optional={"cpu": quantity, "memory": quantity}
                    ),
                    "limits": st.fixed_dictionaries(
                        {}, optional={"cpu": quantity, "memory": quantity}
                    ),
                },
            )
        ),
        "probes": maybe(
            st.fixed_dictionaries({}, optional={"liveness": probe, "readiness": probe})
        ),
        "unknown": anything,
    },
)
document = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(st.sampled_from(["fuzz-app", "Fuzz", "x" * 60, "todo-app"])),
        "namespace": maybe(st.sampled_from(["fuzz", "bad_ns"])),
        "cluster": maybe(st.sampled_from(["minikube", "elsewhere"])),
        "environment": maybe(st.sampled_from(["dev", "prod", "staging"])),
        "components": maybe(
            st.dictionaries(
                st.sampled_from(["web", "api", "Bad", "1x"]), maybe(component), max_size=3
            )
        ),
        "config": maybe(st.dictionaries(hostile_text, maybe(hostile_text), max_size=3)),
        "secrets": maybe(
            st.dictionaries(
                hostile_text,
                maybe(
                    st.one_of(
                        st.fixed_dictionaries({"value": st.just(CANARY)}),
                        st.fixed_dictionaries({"fromEnv": hostile_text}),
                        st.fixed_dictionaries({"stored": st.booleans()}),
                        st.just(CANARY),
                    )
                ),
                max_size=3,
            )
        ),
    },
)


def counts():
    return [m.objects.count() for m in (Profile, Component, ConfigEntry, SecretEntry, AuditEvent)]


@pytest.mark.django_db
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=st.one_of(document, anything))
def test_it_imports_or_reports_field_errors_and_never_crashes(doc, todo_app):
    before = counts()
    with transaction.atomic():
        try:
            profile = profile_import(data=doc, actor=None)
        except SpecError as exc:
            assert exc.errors, "a SpecError always names at least one field"
            assert all(e.path and e.message for e in exc.errors)
            assert CANARY not in str(exc)
            assert counts() == before
        else:
            assert profile.components.exists()
            assert CANARY not in profile_yaml.dump(profile)
        transaction.set_rollback(True)


@pytest.mark.django_db
@settings(
    max_examples=max(EXAMPLES // 4, 50),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.sampled_from(
            [
                "a: " + "9" * 5000,
                "d: 2023-02-30",
                "x: &a [*a]",
                "k: !!python/object:os.system ls",
                "{a: 1, a: 2}",
            ]
        ),
        document.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    )
)
def test_it_loads_any_bytes_or_reports_the_file(text, db):
    try:
        profile_yaml.load(text)
    except SpecError as exc:
        assert exc.errors[0].path == "file"
