"""The notifications page (admins): a channel's URL goes in once and never comes back out
(not in the page, a refused form, the audit trail or the messages' reasons); a test message
is delivered and its attempt shown; rules are added and deleted after a confirmation."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments import crypto
from deployments.models import (
    AuditEvent,
    Notification,
    NotificationChannel,
    NotificationRule,
)
from deployments.services import notifications

pytestmark = pytest.mark.django_db

TOKEN = "T0k3n-q8Wz"


def _add(client, name, url):
    return client.post("/notifications/channels/", {"name": name, "url": url})


def test_an_admin_adds_a_channel_whose_url_is_never_shown_again(login, http_receiver):
    client = login("admin")
    url = http_receiver.url(f"hooks/{TOKEN}")
    response = _add(client, "ops", url)
    assert response.status_code == 302
    channel = NotificationChannel.objects.get(name="ops")
    assert channel.scheme == "json" and crypto.decrypt(channel.ciphertext) == url
    assert TOKEN not in channel.ciphertext
    page = client.get("/notifications/")
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert "ops" in html and "json://" in html and TOKEN not in html
    assert str(http_receiver.port) not in html
    audited = AuditEvent.objects.get(action="notification_channel.created")
    assert TOKEN not in str(audited.__dict__)


def test_a_url_apprise_cannot_use_is_refused_without_echoing_it(login):
    client = login("admin")
    response = _add(client, "ops", f"nosuchservice://user:{TOKEN}@example.test/x")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Apprise does not accept this nosuchservice:// URL" in html
    assert TOKEN not in html and not NotificationChannel.objects.exists()
    response = _add(client, "ops", "not a url")
    assert response.status_code == 400 and "Enter an Apprise URL" in response.content.decode()


def test_a_name_in_use_is_refused(login, http_receiver):
    client = login("admin")
    assert _add(client, "ops", http_receiver.url()).status_code == 302
    response = _add(client, "ops", http_receiver.url("other"))
    assert response.status_code == 400 and "exists already" in response.content.decode()
    assert NotificationChannel.objects.count() == 1


def test_send_test_delivers_and_the_page_shows_the_attempt(login, http_receiver):
    client = login("admin")
    _add(client, "ops", http_receiver.url(f"hooks/{TOKEN}"))
    channel = NotificationChannel.objects.get()
    http_receiver.statuses = [500]
    response = client.post(f"/notifications/channels/{channel.pk}/test/")
    assert response.status_code == 302
    (message,) = Notification.objects.all()
    assert notifications.notification_deliver(notification_id=message.pk).retry_in is not None
    Notification.objects.filter(pk=message.pk).update(next_attempt_at=None)  # due now
    assert notifications.notification_deliver(notification_id=message.pk).status == "delivered"
    (sent,) = http_receiver.delivered
    assert sent["title"] == "[Helmdeck] test message"
    assert f"A test of channel ops, sent by {client.user.username}" in sent["message"]
    html = client.get("/notifications/").content.decode()
    assert "[Helmdeck] test message" in html and "delivered" in html
    assert "failed" in html and "error=500" in html  # the first attempt, with its reason
    assert TOKEN not in html


def test_a_channel_turned_off_sends_nothing(login, http_receiver):
    client = login("admin")
    _add(client, "ops", http_receiver.url())
    channel = NotificationChannel.objects.get()
    client.post(f"/notifications/channels/{channel.pk}/toggle/")
    assert NotificationChannel.objects.get().enabled is False
    client.post(f"/notifications/channels/{channel.pk}/test/")
    (message,) = Notification.objects.all()
    assert notifications.notification_deliver(notification_id=message.pk).status == "failed"
    assert http_receiver.requests == []
    assert "the channel is turned off" in client.get("/notifications/").content.decode()


def test_rules_are_added_and_deleted_after_asking(login, http_receiver, todo_app):
    client = login("admin")
    _add(client, "ops", http_receiver.url())
    channel = NotificationChannel.objects.get()
    refused = client.post("/notifications/rules/", {"events": ["release.exploded"]})
    assert refused.status_code == 400 and not NotificationRule.objects.exists()
    added = client.post(
        "/notifications/rules/",
        {
            "profile": todo_app.pk,
            "events": ["release.failed", "health.degraded"],
            "channels": [channel.pk],
        },
    )
    assert added.status_code == 302
    rule = NotificationRule.objects.get()
    assert rule.profile == todo_app and rule.events == ["release.failed", "health.degraded"]
    html = client.get("/notifications/").content.decode()
    assert "release.failed, health.degraded" in html
    url = f"/notifications/rules/{rule.pk}/delete/"
    assert client.get(url).status_code == 200 and NotificationRule.objects.exists()
    assert client.post(url).status_code == 302 and not NotificationRule.objects.exists()


def test_deleting_a_channel_asks_first(login, http_receiver):
    client = login("admin")
    _add(client, "ops", http_receiver.url())
    channel = NotificationChannel.objects.get()
    url = f"/notifications/channels/{channel.pk}/delete/"
    assert "Delete channel ops?" in client.get(url).content.decode()
    assert NotificationChannel.objects.exists()
    assert client.post(url).status_code == 302 and not NotificationChannel.objects.exists()


def test_a_deleted_channels_messages_stay_listed(login, http_receiver):
    client = login("admin")
    _add(client, "ops", http_receiver.url())
    channel = NotificationChannel.objects.get()
    client.post(f"/notifications/channels/{channel.pk}/test/")
    client.post(f"/notifications/channels/{channel.pk}/delete/")
    (message,) = Notification.objects.all()
    assert message.channel is None and message.channel_name == "ops"
    assert notifications.notification_deliver(notification_id=message.pk).status == "failed"
    html = client.get("/notifications/").content.decode()
    assert "the channel was deleted" in html and "(deleted)" in html


@pytest.mark.parametrize("role", ["viewer", "deployer"])
def test_only_admins_see_the_page_or_the_menu_entry(login, role):
    client = login(role)
    assert client.get("/notifications/").status_code == 403
    assert b'href="/notifications/"' not in client.get("/").content
    assert b'href="/notifications/"' in login("admin").get("/").content


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    name=st.text(max_size=120),
    url=st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda scheme, rest: f"{scheme}://{rest}",
            st.sampled_from(["json", "jsons", "mailto", "slack", "ntfy", "file", "x", ""]),
            st.text(max_size=200),
        ),
    ),
)
def test_hostile_channel_input_is_a_field_error_or_a_channel(admin_session, name, url):
    """Never a 500, never a half-written channel; a refusal names fields, never the URL."""
    before = NotificationChannel.objects.count()
    response = admin_session.post("/notifications/channels/", {"name": name, "url": url})
    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert NotificationChannel.objects.count() == before
        # the scheme is named in the refusal; what follows it (credentials) never is
        secret, html = url.strip().split("://", 1)[-1], response.content.decode()
        # (a URL that is also the name, or words every page carries, proves nothing)
        if len(secret) >= 8 and secret not in name and secret not in FORM_PAGE:
            assert secret not in html
    else:
        channel = NotificationChannel.objects.get(name=name.strip())
        assert crypto.decrypt(channel.ciphertext) == url.strip()
        channel.delete()


@pytest.fixture
def admin_session(login):
    global FORM_PAGE
    client = login("admin")
    FORM_PAGE = client.get("/notifications/").content.decode()
    return client


FORM_PAGE = ""
