"""/metrics: off by default, then only with the bearer token and/or from an allowed address;
what it answers parses with prometheus_client's own parser. The open SSE clients it counts
go up while a stream is open and down after, through a real uvicorn serving the panel."""

import threading
import time
from urllib.error import HTTPError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import ProfileFactory, UserFactory, make_release

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TOKEN = "s3cr3t-" + "x" * 40


@pytest.fixture
def with_token(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.HELMDECK_METRICS_TOKEN = TOKEN
    settings.HELMDECK_METRICS_ALLOW = []


def families(response):
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def test_it_is_off_by_default(client, settings):
    settings.HELMDECK_METRICS_TOKEN, settings.HELMDECK_METRICS_ALLOW = "", []
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    settings.HELMDECK_METRICS_ALLOW = [" ", ""]  # blank entries configure nothing
    assert client.get("/metrics").status_code == 404


def test_it_answers_the_token_with_metrics_that_parse(client, with_token):
    profile = ProfileFactory()
    make_release(profile, "failed")
    make_release(profile, "failed")
    for _ in range(3):
        make_release(profile, "succeeded")

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "no-cache" in response["Cache-Control"]
    found = families(response)
    results = {
        s.labels["result"]: s.value
        for s in found["helmdeck_releases"].samples
        if s.labels["kind"] == "deploy"
    }
    assert results["failed"] == 2 and results["succeeded"] == 3
    assert found["helmdeck_step_duration_seconds"].type == "histogram"
    assert found["helmdeck_release_queue_seconds"].type == "histogram"
    assert found["helmdeck_sse_clients"].type == "gauge"
    assert found["helmdeck_watcher_lag_seconds"].type == "histogram"


def test_it_speaks_openmetrics_when_asked(client, with_token):
    response = client.get(
        "/metrics",
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/openmetrics-text"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.endswith(b"# EOF\n")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer \u00e9\u00e8 not ascii",
        "Bearer " + "A" * 10_000,
        "\x00\x01",
    ],
    ids=lambda h: repr(h)[:24],
)
def test_it_refuses_a_missing_wrong_or_malformed_token(client, with_token, header):
    headers = {} if header is None else {"Authorization": header}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"helmdeck_" not in response.content


def test_it_takes_the_scheme_in_any_case(client, with_token):
    response = client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


def test_a_session_does_not_stand_in_for_the_token(client, with_token):
    client.force_login(UserFactory(role="admin", is_superuser=True))
    assert client.get("/metrics").status_code == 401


def test_it_answers_only_get(client, with_token):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/metrics", headers=auth).status_code == 405


def test_it_lets_allowed_addresses_in_by_remote_addr(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.HELMDECK_METRICS_TOKEN = ""
    settings.HELMDECK_METRICS_ALLOW = ["10.0.0.0/24", "2001:db8::1"]
    assert Client(REMOTE_ADDR="10.0.0.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="2001:db8::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::ffff:10.0.0.9").get("/metrics").status_code == 200
    refused = Client(REMOTE_ADDR="10.0.1.7")
    assert refused.get("/metrics").status_code == 403
    # what a client says about itself counts for nothing
    spoofed = {"X-Forwarded-For": "10.0.0.7", "X-Real-IP": "10.0.0.7", "Forwarded": "for=10.0.0.7"}
    assert refused.get("/metrics", headers=spoofed).status_code == 403
    assert Client(REMOTE_ADDR="not an address").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="").get("/metrics").status_code == 403


def test_it_refuses_everyone_when_the_allow_list_has_a_typo(settings, caplog):
    settings.HELMDECK_METRICS_TOKEN = ""
    settings.HELMDECK_METRICS_ALLOW = ["127.0.0.1", "10.0.0.0/33"]
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403
    assert "10.0.0.0/33" in caplog.text


def test_it_wants_both_when_both_are_set(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.HELMDECK_METRICS_TOKEN = TOKEN
    settings.HELMDECK_METRICS_ALLOW = ["127.0.0.1/32"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics", headers=auth).status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 401
    # a refused address learns nothing about the token: 403 with it or without it
    assert Client(REMOTE_ADDR="10.9.9.9").get("/metrics", headers=auth).status_code == 403
    assert Client(REMOTE_ADDR="10.9.9.9").get("/metrics").status_code == 403


# ---- open SSE clients, through a real server ----------------------------------------------


def _own_redis_db(url, number=13):
    """The test Redis, another database: the SSE client keys of other test runs on this
    Redis (other people's streams) are not in it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


@pytest.fixture
def metrics_server(child_env, settings, redis_url):
    """Before asgi_server copies the environment: the token, and a Redis database of this
    test's own."""
    import redis

    own = _own_redis_db(redis_url)
    conn = redis.Redis.from_url(own)
    for key in conn.scan_iter("helmdeck:sse-clients:*"):
        conn.delete(key)
    child_env.update(HELMDECK_METRICS_TOKEN=TOKEN, REDIS_URL=own, CELERY_BROKER_URL=own)
    settings.REDIS_URL = own
    yield conn
    conn.close()


def _sse_clients(base):
    request = Request(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urlopen(request, timeout=10) as response:
        text = response.read().decode()
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "helmdeck_sse_clients"
    ]
    return family.samples[0].value


def _until(predicate, what, timeout=15):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_it_counts_open_streams_while_they_are_open(metrics_server, asgi_server):
    base = asgi_server
    user = UserFactory(role="viewer")
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    assert _sse_clients(base) == 0
    with pytest.raises(HTTPError) as refused:
        urlopen(f"{base}/metrics", timeout=10)
    assert refused.value.code == 401

    opened, stop = [], threading.Event()

    def read(path):
        request = Request(f"{base}{path}", headers={"Cookie": cookie})
        with urlopen(request, timeout=30) as response:
            assert response.status == 200
            response.readline()  # the first message arrived: the stream is open
            opened.append(response)
            stop.wait(30)

    profile = ProfileFactory()
    readers = [
        threading.Thread(target=read, args=(path,), daemon=True)
        for path in ("/status/stream/", f"/profiles/{profile.name}/stream/")
    ]
    for reader in readers:
        reader.start()
    try:
        _until(lambda: len(opened) == 2, "two open streams")
        _until(lambda: _sse_clients(base) == 2, "helmdeck_sse_clients 2")
        keys = [k.decode() for k in metrics_server.scan_iter("helmdeck:sse-clients:*")]
        assert len(keys) == 1 and 0 < metrics_server.ttl(keys[0]) <= 45  # it expires
    finally:
        stop.set()  # the readers close their connections: the server sees the clients go
        for reader in readers:
            reader.join(10)
    _until(lambda: _sse_clients(base) == 0, "helmdeck_sse_clients 0")
    assert list(metrics_server.scan_iter("helmdeck:sse-clients:*")) == []
