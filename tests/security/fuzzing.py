"""Shared pieces of the endpoint fuzz tests (test_post_fuzz*.py): example budgets, hostile
values, a snapshot of everything a request could write, the checks every example makes.
The fixtures are in tests/security/conftest.py."""

import os
from html.parser import HTMLParser

from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from deployments.models import (
    AuditEvent,
    Cluster,
    Component,
    ConfigEntry,
    LogLine,
    Profile,
    Release,
    SecretEntry,
    Step,
)
from tests.factories import PASSWORD, UserFactory

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", 200))


def budget(share):
    """Hypothesis settings for a test that takes `share` of HYPOTHESIS_EXAMPLES (CI: 2000)."""
    return settings(
        max_examples=max(int(EXAMPLES * share), 10),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


HOSTILE = [
    "",
    " ",
    "0",
    "-1",
    "1e999",
    "NaN",
    "９",
    "9" * 5000,
    "a" * 5000,
    "\x00",
    "a\x00b",
    "\r\n",
    "\u202e",
    "\ufeff",
    "\ud7ff",
    "😀",
    "<script>alert(1)</script>",
    "'; DROP TABLE x; --",
    "{{ 7*7 }}",
    "{% debug %}",
    "$(touch /tmp/pwn)",
    "`id`",
    "../../etc/passwd",
    "//evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "todo-app",
    "minikube",
    "on",
    "true",
    "None",
    "[" * 3000,
    '{"a": ' * 2000,
    "a: b\n- c",
    "%00",
    "%2e%2e%2f",
]
text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
value = st.one_of(st.sampled_from(HOSTILE), text, st.integers(-(10**30), 10**30).map(str))
field_names = st.one_of(
    st.sampled_from(
        [
            "name",
            "namespace",
            "token",
            "fingerprint",
            "build",
            "next",
            "username",
            "password",
            "email",
            "_field",
            "csrfmiddlewaretoken",
            "post",
            "_save",
        ]
    ),
    st.text(
        alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
        min_size=1,
        max_size=20,
    ),
)
extra_fields = st.dictionaries(field_names, value, max_size=4)

MODELS = (
    Profile,
    Component,
    ConfigEntry,
    SecretEntry,
    Release,
    Step,
    LogLine,
    AuditEvent,
    Cluster,
    User,
    Group,
    Session,
)
FIELD_MESSAGE = (b"has-error", b"form-errors", b"errorlist", b"errornote")


def snapshot():
    """A digest of every row of every table (PostgreSQL, as in CI: one query), or the row
    counts and the rows that matter elsewhere."""
    if connection.vendor == "postgresql":
        tables = connection.introspection.table_names()
        quote = connection.ops.quote_name
        digests = ", ".join(
            f"(SELECT md5(coalesce(string_agg(CAST(t AS text), ',' ORDER BY CAST(t AS text)),"
            f" '')) FROM {quote(table)} t)"
            for table in tables
        )
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {digests}")  # noqa: S608 - table names from the database
            return dict(zip(tables, cursor.fetchone(), strict=True))
    return {
        "counts": {model.__name__: model.objects.count() for model in MODELS},
        "profiles": list(Profile.objects.values().order_by("pk")),
        "config": list(ConfigEntry.objects.values("key", "value").order_by("pk")),
        "secrets": list(SecretEntry.objects.values("key", "ciphertext", "from_env")),
        "clusters": list(Cluster.objects.values().order_by("pk")),
        "releases": list(Release.objects.values("pk", "status", "cancel_requested")),
        "users": list(User.objects.values("pk", "password", "is_active").order_by("pk")),
    }


def changed(before, after):
    return sorted(key for key in before if before[key] != after.get(key))


def assert_rejected(response, before, *, queued):
    """An invalid request: a 4xx with a reason, or the form again with a field message;
    nothing written and no task queued."""
    assert response.status_code < 500
    if not response.streaming:
        assert b"<script>alert(1)</script>" not in response.content  # escaped if echoed
    if response.status_code == 200:
        assert any(marker in response.content for marker in FIELD_MESSAGE), response.content[:300]
    elif response.status_code >= 400 and not response.streaming:
        assert response.content.strip(), "a refusal says why"
    after = snapshot()
    assert after == before, f"written: {changed(before, after)}"
    assert queued == []


class FormFields(HTMLParser):
    """The fields of the first <form method="post"> on a page, as a browser would send them."""

    def __init__(self, html):
        super().__init__()
        self.data, self._select, self._textarea, self._in_form = {}, None, None, False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("method", "").lower() == "post":
            self._in_form = True
        if not self._in_form:
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "file", "button"):
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.data[name] = attrs.get("value") or (
                "on" if attrs.get("type") == "checkbox" else ""
            )
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select] = attrs.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += (
                data.lstrip("\n") if not self.data[self._textarea] else data
            )


def signed_in(role, **fields):
    client = Client()
    user = UserFactory(role=role, **fields)
    assert client.login(username=user.username, password=PASSWORD)
    assert client.raise_request_exception  # a view's exception fails the example
    client.user = user
    return client


def rolled_back(check, queued):
    """Run `check` in a transaction that is undone afterwards (examples stay independent)."""
    queued.clear()
    with transaction.atomic():
        check()
        transaction.set_rollback(True)


slug_or_hostile = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z"),
    value,
    st.sampled_from(["todo-app", "todo-app-copy", "new", "import", "a" * 54, "Todo-App"]),
)
