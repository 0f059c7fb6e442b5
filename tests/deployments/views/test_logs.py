"""The log viewer's page, stream and download against a fake cluster: parameters,
permissions, membership of the pod or component, the server-rendered tail with its resume
token, the download, and the stream's replay under WSGI."""

import os

import pytest
from django.test import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.integrations.kube import KubeError
from tests.deployments.services.test_pod_logs import FakeCluster, ts
from tests.deployments.views.test_streams import in_own_loop, parse
from tests.factories import ComponentFactory, ProfileFactory, UserFactory

pytestmark = pytest.mark.django_db

URLS = ("/profiles/shop/logs/", "/profiles/shop/logs/stream/", "/profiles/shop/logs/download/")


@pytest.fixture
def shop():
    profile = ProfileFactory(name="shop", namespace="shop")
    ComponentFactory(profile=profile, name="web")
    ComponentFactory(profile=profile, name="db")
    return profile


@pytest.fixture
def cluster(monkeypatch):
    """The fake cluster every view talks to (pods web-1, web-2 of web; db-1 of db)."""
    fake = FakeCluster(**{"web-1": "web", "web-2": "web", "db-1": "db"})
    # the stream opens its client itself; the page and the download through pod_log_query
    monkeypatch.setattr("deployments.views.logs.Kube", lambda _cluster: fake)
    monkeypatch.setattr("deployments.services.pod_log_query.Kube", lambda _cluster: fake)
    return fake


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("pod=web-1&tail=abc", "tail must be a whole number of lines from 1 to 10000"),
        ("pod=web-1&tail=0", "tail must be from 1 to 10000 lines (got 0)"),
        ("pod=web-1&tail=10001", "tail must be from 1 to 10000 lines (got 10001)"),
        ("pod=web-1&previous=maybe", "previous must be 1"),
        ("pod=web-1&component=web", "give pod= or component=, not both"),
        ("pod=web-1&q=" + "x" * 201, "at most 200 characters"),
    ],
)
def test_it_answers_bad_parameters_with_a_400_that_says_why(login, shop, cluster, query, message):
    client = login("viewer")
    for url in URLS:
        response = client.get(f"{url}?{query}")
        assert response.status_code == 400, url
        assert message in response.content.decode()


def test_the_stream_and_download_need_a_pod_or_component(login, shop, cluster):
    client = login("viewer")
    for url in URLS[1:]:
        response = client.get(url)
        assert response.status_code == 400
        assert "give pod=<pod> or component=<component>" in response.content.decode()


def test_without_a_target_the_page_offers_the_components(login, shop, cluster):
    body = login("viewer").get("/profiles/shop/logs/").content.decode()
    assert "Whose log?" in body
    assert 'href="/profiles/shop/logs/?component=web"' in body
    assert 'href="/profiles/shop/logs/?component=db"' in body


def test_it_refuses_viewers_without_login_or_role(client, shop, cluster):
    assert client.get("/profiles/shop/logs/?pod=web-1").status_code == 302  # to the login
    assert client.get("/profiles/shop/logs/download/?pod=web-1").status_code == 302
    stream = in_own_loop(AsyncClient().get, "/profiles/shop/logs/stream/?pod=web-1")
    assert stream.status_code == 401 and stream.content == b"login required"
    client.force_login(UserFactory())  # logged in, no role
    assert client.get("/profiles/shop/logs/stream/?pod=web-1").status_code == 403
    assert client.get("/profiles/shop/logs/?pod=web-1").status_code == 403
    assert client.get("/profiles/shop/logs/download/?pod=web-1").status_code == 403


@pytest.mark.parametrize(
    "query", ["pod=other-pod", "component=cache", "pod=Not_A_Pod", "pod=../../etc"]
)
def test_a_pod_or_component_of_another_profile_is_not_found(login, shop, cluster, query):
    client = login("viewer")
    for url in URLS:
        assert client.get(f"{url}?{query}").status_code == 404, url
    assert client.get("/profiles/nope/logs/?pod=web-1").status_code == 404


def test_the_page_renders_the_tail_escaped_with_its_resume_token(login, shop, cluster):
    cluster.write("web-1", ts(1), "one", "<script>two</script>", "three")
    response = login("viewer").get("/profiles/shop/logs/?pod=web-1&tail=2")
    body = response.content.decode()
    assert response.status_code == 200
    assert '<div class="log-line">&lt;script&gt;two&lt;/script&gt;</div>' in body
    assert '<div class="log-line">three</div>' in body and ">one<" not in body
    token = f"web-1%40{ts(1).replace(':', '%3A')}%233"
    assert (
        f'sse-connect="/profiles/shop/logs/stream/?pod=web-1&amp;tail=2&amp;after={token}"' in body
    )
    assert 'sse-swap="line"' in body and 'sse-close="end"' in body
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in body
    assert 'href="/profiles/shop/logs/download/?pod=web-1&amp;tail=2"' in body


def test_a_component_page_merges_its_pods_with_their_names(login, shop, cluster):
    cluster.write("web-2", ts(1), "from two")
    cluster.write("web-1", ts(2), "from one")
    cluster.write("db-1", ts(3), "not web")
    body = login("viewer").get("/profiles/shop/logs/?component=web").content.decode()
    assert (
        '<div class="log-line"><span class="log-pod">web-2</span> from two</div>'
        '<div class="log-line"><span class="log-pod">web-1</span> from one</div>'
    ) in body
    assert "not web" not in body and "2 pods" in body


def test_the_page_shows_an_empty_state_and_a_filter(login, shop, cluster):
    cluster.write("web-1", ts(1), "GET /health", "POST /todos")
    body = login("viewer").get("/profiles/shop/logs/?pod=web-1&q=nothing").content.decode()
    assert "No lines containing “nothing” yet." in body
    body = login("viewer").get("/profiles/shop/logs/?pod=web-1&q=post").content.decode()
    assert ">POST /todos<" in body and "GET /health" not in body


def test_an_unreachable_cluster_reads_as_a_message_not_a_500(login, shop, monkeypatch):
    def unreachable(_cluster):
        raise KubeError("listing pods: the cluster is unreachable (MaxRetryError)",
                        permanent=False)  # fmt: skip

    monkeypatch.setattr("deployments.views.logs.Kube", unreachable)
    monkeypatch.setattr("deployments.services.pod_log_query.Kube", unreachable)
    client = login("viewer")
    response = client.get("/profiles/shop/logs/?pod=web-1")
    assert response.status_code == 503
    assert "The cluster did not answer" in response.content.decode()
    assert "the cluster is unreachable" in response.content.decode()
    download = client.get("/profiles/shop/logs/download/?pod=web-1")
    assert download.status_code == 503 and b"unreachable" in download.content
    stream = client.get("/profiles/shop/logs/stream/?pod=web-1")
    body = b"".join(stream).decode()
    assert parse([body.rsplit("retry:", 1)[0]])[0][0] == "notice" and "unreachable" in body
    assert body.endswith("retry: 5000\n\n")


def test_the_download_is_a_text_attachment_of_the_tail(login, shop, cluster):
    cluster.write("web-1", ts(1), "a <b>", "b")
    cluster.write("web-2", ts(2), "c")
    client = login("viewer")
    response = client.get("/profiles/shop/logs/download/?component=web")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="shop-web.log"'
    assert response.content.decode() == "[web-1] a <b>\n[web-1] b\n[web-2] c\n"
    one = client.get("/profiles/shop/logs/download/?pod=web-1&tail=1&previous=1")
    assert one["Content-Disposition"] == 'attachment; filename="shop-web-1-previous.log"'
    assert one.content.decode() == "b\n"


def test_under_wsgi_the_stream_sends_the_tail_and_a_retry_hint(login, shop, cluster):
    cluster.write("web-1", ts(1), "first", "second")
    client = login("viewer")
    body = b"".join(client.get("/profiles/shop/logs/stream/?pod=web-1")).decode()
    ((event, token, data),) = parse([body.rsplit("retry:", 1)[0]])
    assert event == "line" and token == f"web-1@{ts(1)}#2"
    assert data == '<div class="log-line">first</div><div class="log-line">second</div>'
    assert body.endswith("retry: 10000\n\n")
    cluster.write("web-1", ts(1), "third")
    again = client.get("/profiles/shop/logs/stream/?pod=web-1", headers={"Last-Event-ID": token})
    ((event, token, data),) = parse([b"".join(again).decode().rsplit("retry:", 1)[0]])
    assert data == '<div class="log-line">third</div>' and token == f"web-1@{ts(1)}#3"
    quiet = client.get("/profiles/shop/logs/stream/?pod=web-1", headers={"Last-Event-ID": token})
    ((event, same, data),) = parse([b"".join(quiet).decode().rsplit("retry:", 1)[0]])
    assert data == "" and same == token  # nothing new: the position still comes along


def test_the_previous_log_ends_after_its_lines(login, shop, cluster):
    cluster.write("web-1", ts(1), "crashed here")
    body = b"".join(login("viewer").get("/profiles/shop/logs/stream/?pod=web-1&previous=1"))
    messages = parse([body.decode()])
    assert [m[0] for m in messages] == ["line", "end"]
    assert "crashed here" in messages[0][2]


def test_the_profile_page_links_each_pod_and_component_to_its_logs(login, shop):
    from tests.factories import pod_state

    pod_state(shop, "web-1", component="web")
    body = login("viewer").get("/profiles/shop/").content.decode()
    assert 'href="/profiles/shop/logs/?pod=web-1"' in body
    assert 'href="/profiles/shop/logs/?component=web">web (all pods)</a>' in body
    assert 'href="/profiles/shop/logs/?component=db">db (all pods)</a>' in body


def test_a_refused_read_says_why_without_retrying(login, shop, cluster, monkeypatch):
    def refuse(*args, **kwargs):
        raise KubeError(
            'reading the log of shop/web-1: previous terminated container "web" in pod '
            '"web-1" not found',
            permanent=True,
        )

    monkeypatch.setattr(cluster, "pod_log", refuse)
    client = login("viewer")
    response = client.get("/profiles/shop/logs/?pod=web-1&previous=1")
    body = response.content.decode()
    assert response.status_code == 200
    assert "The log cannot be read:" in body and "previous terminated container" in body
    assert 'http-equiv="refresh"' not in body
    stream = client.get("/profiles/shop/logs/stream/?pod=web-1&previous=1")
    messages = parse([b"".join(stream).decode()])
    assert [m[0] for m in messages] == ["notice", "end"]


def test_any_query_is_answered_without_a_500(login, shop, cluster):
    client = login("viewer")  # once: hashing a password per example would dominate

    @given(
        query=st.dictionaries(
            st.sampled_from(["pod", "component", "tail", "previous", "q", "after"]),
            st.text(max_size=30).map(lambda v: v.replace("\x00", "")),
            max_size=6,
        )
    )
    @settings(
        max_examples=max(50, int(os.environ.get("HYPOTHESIS_EXAMPLES", 200)) // 10),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    def check(query):
        for url in URLS:
            response = client.get(url, query)
            assert response.status_code in (200, 400, 404), (url, query, response.status_code)

    check()
