"""The sleep schedule's page (its API: tests/deployments/api/test_operations.py):
deployers set it (or turn it off), bad numbers are field errors that change nothing, the
profile page says what is set, and a visit of it moves the schedule."""

import pytest

from deployments.models import AuditEvent, Profile
from tests.factories import ComponentFactory, ProfileFactory

pytestmark = pytest.mark.django_db

URL = "/profiles/shop/sleep/schedule/"


@pytest.fixture
def shop():
    profile = ProfileFactory(name="shop")
    ComponentFactory(profile=profile, name="web")
    return profile


def test_a_deployer_sets_and_turns_off_the_schedule(login, shop):
    client = login("deployer")
    page = client.get(URL)
    assert page.status_code == 200
    assert b"Now: never (the default)." in page.content
    assert b'name="hours"' in page.content and b'max="720"' in page.content

    response = client.post(URL, {"hours": "8"}, follow=True)
    assert response.redirect_chain == [("/profiles/shop/", 302)]
    assert b"shop goes to sleep after 8 hours without a deploy" in response.content
    assert b"Sleeps on its own after 8 hours without a deploy, an action or a visit." in (
        response.content
    )
    assert Profile.objects.get(pk=shop.pk).sleep_after_hours == 8

    client.post(URL, {"hours": ""})
    assert Profile.objects.get(pk=shop.pk).sleep_after_hours is None
    assert AuditEvent.objects.filter(action="profile.sleep_schedule").count() == 2


@pytest.mark.parametrize("hours", ["0", "721", "eight", "1.5"])
def test_a_bad_number_is_a_field_error(login, shop, hours):
    response = login("deployer").post(URL, {"hours": hours})
    assert response.status_code == 400
    assert b'class="field has-error"' in response.content
    assert Profile.objects.get(pk=shop.pk).sleep_after_hours is None


def test_a_visit_of_the_profile_page_moves_the_schedule(login, shop):
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(hours=3)
    Profile.objects.filter(pk=shop.pk).update(sleep_after_hours=4, active_at=old)
    client = login("viewer")
    client.get("/profiles/shop/", headers={"HX-Request": "true"})  # the live partial: no
    assert Profile.objects.get(pk=shop.pk).active_at == old
    client.get("/profiles/shop/")
    assert Profile.objects.get(pk=shop.pk).active_at > old
    assert b"Sleeps on its own after 4 hours" in client.get("/profiles/shop/").content
    assert URL.encode() not in client.get("/profiles/shop/").content  # viewers: no link
