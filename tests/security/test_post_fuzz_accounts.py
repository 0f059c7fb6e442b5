"""Hypothesis over the accounts pages (login with a hostile `next`, password change)
and the admin site's profile and cluster forms; the same checks as test_post_fuzz.py.
"""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils.http import url_has_allowed_host_and_scheme
from hypothesis import event, given
from hypothesis import strategies as st

from deployments.models import AuditEvent, Cluster, Profile
from deployments.services.profiles import parse_spec_of
from tests.factories import PASSWORD, UserFactory
from tests.security.fuzzing import (
    FormFields,
    assert_rejected,
    budget,
    extra_fields,
    rolled_back,
    slug_or_hostile,
    snapshot,
    value,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("fast_password_hashing", "uninstrumented_templates"),
]


# ---- accounts --------------------------------------------------------------------------------

hostile_next = st.sampled_from(
    [
        "/",
        "/profiles/",
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        "%2F%2Fevil",
    ]
)


@budget(0.5)
@given(
    username=st.one_of(st.just("REAL"), value),
    password=st.one_of(st.just(PASSWORD), value),
    next_=hostile_next,
    extra=extra_fields,
)
def test_login(fuzz_world, queued, username, password, next_, extra):
    def check():
        user = UserFactory(role="viewer")
        client = Client()
        name = user.username if username == "REAL" else username
        before = snapshot()
        response = client.post(
            "/accounts/login/", {**extra, "username": name, "password": password, "next": next_}
        )
        event(f"login -> {response.status_code}")
        if response.status_code == 302:
            assert name == user.username and password == PASSWORD
            # never to another site: relative, or this host only
            assert url_has_allowed_host_and_scheme(response["Location"], {"testserver"})
        else:
            assert_rejected(response, before, queued=queued)  # no session row either
            assert "sessionid" not in response.cookies

    rolled_back(check, queued)


@budget(0.1)
@given(
    old=st.one_of(st.just(PASSWORD), value),
    new1=st.one_of(st.just("N3w-pass-phrase!"), value),
    same=st.booleans(),
    extra=extra_fields,
)
def test_password_change(viewer_client, queued, old, new1, same, extra):
    client = viewer_client
    # a change cycles the session key; the rollback brings back the old session's row
    client.cookies["sessionid"] = viewer_client.session_key

    def check():
        before = snapshot()
        new2 = new1 if same else new1 + "x"
        response = client.post(
            "/accounts/password_change/",
            {**extra, "old_password": old, "new_password1": new1, "new_password2": new2},
        )
        event(f"password change -> {response.status_code}")
        if response.status_code == 302:
            assert old == PASSWORD and same
            assert User.objects.get(pk=client.user.pk).check_password(new1)
        else:
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


# ---- the admin site --------------------------------------------------------------------------


@pytest.fixture
def profile_admin_form(admin_client, fuzz_world):
    url = f"/admin/deployments/profile/{fuzz_world['profile'].pk}/change/"
    return url, FormFields(admin_client.get(url).content.decode()).data


@budget(0.05)
@given(changes=st.data())
def test_admin_profile_change(admin_client, fuzz_world, queued, profile_admin_form, changes):
    url, base = profile_admin_form
    keys = sorted(k for k in base if k != "csrfmiddlewaretoken")
    data = dict(base)
    for key in changes.draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        data[key] = changes.draw(value)
    data.update(changes.draw(extra_fields))

    def check():
        before, events = snapshot(), AuditEvent.objects.count()
        spec = parse_spec_of(fuzz_world["profile"])
        response = admin_client.post(url, data)
        event(f"admin profile -> {response.status_code}")
        if response.status_code == 302:
            profile = Profile.objects.get(pk=fuzz_world["profile"].pk)
            if parse_spec_of(profile) != spec:
                assert AuditEvent.objects.count() > events
        else:
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)


@budget(0.1)
@given(
    name=slug_or_hostile,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "kube_context",
                "kubeconfig_path",
                "minikube_profile",
                "docker_host",
                "capacity_cpus",
                "capacity_memory",
                "image_delivery",
                "containerd_address",
            ]
        ),
        value,
        max_size=4,
    ),
    extra=extra_fields,
)
def test_admin_cluster_add(admin_client, queued, name, fields, extra):
    def check():
        before = snapshot()
        response = admin_client.post(
            "/admin/deployments/cluster/add/",
            {
                "capacity_cpus": "4",
                "capacity_memory": "8Gi",
                "image_delivery": "docker",
                **extra,
                **fields,
                "name": name,
            },
        )
        event(f"admin cluster -> {response.status_code}")
        if response.status_code == 302:
            assert Cluster.objects.filter(name=name).exists()
            assert AuditEvent.objects.filter(action="cluster.created", target=name).exists()
        else:
            assert_rejected(response, before, queued=queued)

    rolled_back(check, queued)
