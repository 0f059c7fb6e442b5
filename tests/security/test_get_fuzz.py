"""Hypothesis over the query strings and headers of every page and stream a viewer or an
admin can open: hostile `q`, `page`, `polls`, `a`/`b`, `after`, `Last-Event-ID`, HX-Target,
admin ordering and filters. Never a server error, never a write."""

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.deployments import test_permissions as table
from tests.security.fuzzing import budget, rolled_back, snapshot, value
from tests.security.test_every_url import STREAMS, body

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("fast_password_hashing", "uninstrumented_templates"),
]

PAGES = sorted(
    {
        url.split("?")[0]
        for method, url, *_ in table.PAGES + table.RELEASE_PAGES + STREAMS
        if method == "get"
    }
    | {
        "/admin/deployments/profile/",
        "/admin/deployments/auditevent/",
        "/admin/deployments/cluster/",
    }
)
PARAMS = [
    "q",
    "page",
    "polls",
    "a",
    "b",
    "after",
    "o",
    "p",
    "e",
    "all",
    "q-l",
    "next",
    "action__exact",
    "profile__id__exact",
    "at__gte",
    "_changelist_filters",
    "components-TOTAL_FORMS",
]
HEADERS = [
    "Last-Event-ID",
    "HX-Request",
    "HX-Target",
    "HX-Trigger-Name",
    "HX-Boosted",
    "HX-History-Restore-Request",
    "Accept",
]
numbers = st.one_of(st.integers(-(2**70), 2**70).map(str), value)


@budget(0.1)
@given(
    url=st.sampled_from(PAGES),
    params=st.dictionaries(st.sampled_from(PARAMS), numbers, max_size=4),
    headers=st.dictionaries(
        st.sampled_from(HEADERS),
        st.one_of(st.just("true"), st.sampled_from(["preview", "release-live", "pods"]), numbers),
        max_size=3,
    ),
)
def test_it_answers_any_query_string_and_headers(
    admin_client, fuzz_world, queued, url, params, headers
):
    url = url.format(
        **{k: v.pk for k, v in fuzz_world.items()},
        queued=fuzz_world["active"].pk,
        succeeded=fuzz_world["second"].pk,
    )
    headers = {k: v.replace("\r", "").replace("\n", "") for k, v in headers.items()}

    def check():
        before = snapshot()
        response = admin_client.get(url, params, headers=headers)
        event(f"{url.split('/')[1]} -> {response.status_code}")
        assert response.status_code < 500
        body(response)
        assert snapshot() == before

    rolled_back(check, queued)
