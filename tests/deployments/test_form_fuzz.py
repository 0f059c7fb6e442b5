"""Hostile input to the profile form: never a 5xx, never a half-written or invalid profile.

HYPOTHESIS_EXAMPLES sets the number of examples (CI: 2000). Each example runs inside a
transaction that is rolled back, so examples do not see each other's writes.
"""

import io
import os

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from deployments.models import AuditEvent, Profile
from deployments.services.profiles import parse_spec_of
from tests.deployments.test_views import component_data, form_data

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 200)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SCRIPT = "<script>alert(1)</script>"
HOSTILE = [
    "",
    " ",
    "0",
    "-1",
    "1e999",
    "NaN",
    "inf",
    "-0",
    "0x1F",
    "１２３",
    "00000030000",
    "9" * 5000,
    "a" * 70_000,
    "lots",
    " 500m",
    "500m ",
    "1000000000000m",
    "1e30",
    "1Ei",
    "'; DROP TABLE deployments_profile; --",
    '" OR 1=1 --',
    SCRIPT,
    "<img src=x onerror=alert(1)>",
    "{{ 7*7 }}",
    "{% debug %}",
    "${HOME}",
    "$(reboot)",
    "\x00",
    "a\x00b",
    "\r\n",
    "\t",
    "\u202e",
    "\ufeff",
    "😀" * 50,
    "ＮodePort",
    "NodePort",
    "ClusterIP",
    "prod",
    "dev",
    "keep",
    "value",
    "env",
    "on",
    "minikube",
    "../../etc/passwd",
    "/abs/path",
    "C:\\x",
    "30000",
    "32767",
    "32768",
    "65536",
    "todo-app",
    "web",
    "BACKEND_URL",
]
text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=80)
values = st.one_of(
    st.sampled_from(HOSTILE),
    text,
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
)


def base_data():
    return form_data(
        components=[
            component_data(),
            component_data(name="api", image="demo-api", service_type="NodePort", node_port=31000),
        ],
        config={"LOG_LEVEL": "info", "BACKEND_URL": "http://api-service:8000"},
        secrets=[
            {"key": "API_KEY", "source": "value", "value": "s3cret"},
            {"key": "JWT", "source": "env", "from_env": "JWT_SECRET"},
        ],
    )


BASE_KEYS = sorted(base_data())


PLAUSIBLE = st.one_of(
    st.sampled_from(
        [
            "250m",
            "1",
            "0.5",
            "2Gi",
            "1e9",
            "256Mi",
            "NodePort",
            "ClusterIP",
            "prod",
            "dev",
            "keep",
            "env",
            "value",
            "on",
            "",
            "héllo wörld 😀",
            "a b\nc",
            "API_TOKEN",
            "x" * 2000,
            "/healthz",
            "registry.local:5000/team/app",
        ]
    ),
    st.integers(min_value=0, max_value=70000).map(str),
)


@st.composite
def gentle_posts(draw):
    """One or two plausible changes: mostly valid, so writes get fuzzed too."""
    data = base_data()
    for key in draw(st.lists(st.sampled_from(BASE_KEYS), min_size=1, max_size=2, unique=True)):
        data[key] = draw(PLAUSIBLE)
    return data


@st.composite
def hostile_posts(draw):
    data = base_data()
    for key in draw(st.lists(st.sampled_from(BASE_KEYS), max_size=10, unique=True)):
        data[key] = draw(values)
    for key in draw(st.lists(st.sampled_from(BASE_KEYS), max_size=3, unique=True)):
        data.pop(key, None)
    extra_keys = st.one_of(
        st.sampled_from(
            [
                "components-2-name",
                "components-9-cpu_request",
                "config-5-key",
                "secrets-3-DELETE",
                "components-0-DELETE",
                "_add_components",
                "_add_secrets",
                "components-TOTAL_FORMS",
                "csrfmiddlewaretoken",
                "id",
            ]
        ),
        st.text(
            alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
            min_size=1,
            max_size=30,
        ),
    )
    data.update(draw(st.dictionaries(extra_keys, values, max_size=4)))
    return data


@pytest.fixture
def admin_client(login, todo_app):
    return login("admin")


@pytest.fixture(autouse=True)
def uninstrumented_templates(monkeypatch):
    """The test client copies the context of every template it renders (for
    response.context); with ~80 widgets a page that is 3/4 of each example's time."""
    from django.template.base import Template
    from django.test import utils

    original = getattr(getattr(utils._TestState, "saved_data", None), "template_render", None)
    if original is not None:
        monkeypatch.setattr(Template, "_render", original)


def _written(response):
    return response.status_code == 302 or "HX-Redirect" in response


@FUZZ
@given(
    data=st.one_of(hostile_posts(), gentle_posts()),
    url=st.sampled_from(["/profiles/new/", "/profiles/todo-app/edit/", "/profiles/validate/"]),
    htmx=st.booleans(),
    trigger=st.sampled_from(BASE_KEYS),
)
def test_it_survives_hostile_profile_posts(admin_client, data, url, htmx, trigger):
    headers = {"HX-Request": "true", "HX-Trigger-Name": trigger} if htmx else {}
    with transaction.atomic():
        profiles, events = Profile.objects.count(), AuditEvent.objects.count()
        before = parse_spec_of(Profile.objects.get(name="todo-app"))
        response = admin_client.post(url, data, headers=headers)
        event(f"{url} -> {'written' if _written(response) else response.status_code}")
        assert response.status_code < 500
        assert SCRIPT.encode() not in response.content
        if not _written(response):
            adding = any(key.startswith("_add_") for key in data)
            if url != "/profiles/validate/" and not adding:  # refused: the page says why
                assert b"The profile was not saved" in response.content
                assert b"has-error" in response.content or b"<li>" in response.content
            assert Profile.objects.count() == profiles
            assert AuditEvent.objects.count() == events
            assert parse_spec_of(Profile.objects.get(name="todo-app")) == before
        else:
            assert url != "/profiles/validate/"
            for profile in Profile.objects.all():
                parse_spec_of(profile)  # whatever was written is a valid profile
        transaction.set_rollback(True)


@FUZZ
@given(
    body=st.one_of(
        text,
        st.binary(max_size=200),
        st.sampled_from(
            [
                "name: x",
                "[]",
                "null",
                "name: a\ncomponents: {}",
                "name: a\ncomponents: {web: null}",
                "a: &a [*a, *a]",
                "name: !!python/object/apply:os.system ['id']",
                "name: a\ncomponents:\n  web: {port: 99999999999999999999999}",
                "name: todo-app\ncomponents:\n"
                "  web: {port: 80, service: {type: NodePort, nodePort: 30000}}",
                'name: a\ncomponents: {web: {port: 80}}\nconfig: {A: "x\\0y"}',
                'name: a\ncomponents: {web: {port: 80}}\ndescription: "x\\0y"',
                'name: a\ncomponents: {web: {port: 80}}\nconfig: {A: "x\\ud800y"}',
                'name: a\ncomponents: {web: {port: 80}}\nsecrets: {S: {value: "x\\ud800y"}}',
                'name: a\n"\\ud800": 1\ncomponents: {"\\ud800x": {port: 80}}',
            ]
        ),
    )
)
def test_it_survives_hostile_yaml_uploads(admin_client, body):
    upload = io.BytesIO(body.encode() if isinstance(body, str) else body)
    upload.name = "fuzz.yaml"
    with transaction.atomic():
        profiles = Profile.objects.count()
        response = admin_client.post("/profiles/import/", {"file": upload})
        assert response.status_code < 500
        if response.status_code != 302:
            assert Profile.objects.count() == profiles
        transaction.set_rollback(True)
