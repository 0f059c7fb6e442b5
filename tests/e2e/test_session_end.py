"""A live page whose access ends in a real Chromium against uvicorn: its
stream's `login-required` event takes the page to the login form (next= the page), and a
viewer who lost only the role lands on the 403 page, without any inline script."""

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session

from tests.conftest import SSE_OPENED_SCRIPT, wait_for_js
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def short_heartbeat(child_env):
    """Before asgi_server copies the environment: a 1 s stream heartbeat and re-check."""
    child_env["HELMDECK_SSE_HEARTBEAT_SECONDS"] = "1"


def _deactivate(user):
    User.objects.filter(pk=user.pk).update(is_active=False)


def test_a_page_whose_session_ends_goes_to_the_login_form(
    short_heartbeat, asgi_server, signed_in_page, todo_app
):
    for path, end in [
        ("/", lambda user: Session.objects.all().delete()),
        (f"/profiles/{todo_app.name}/", _deactivate),
    ]:
        user = UserFactory(role="viewer")
        page = signed_in_page(asgi_server, user, path, init_script=SSE_OPENED_SCRIPT)
        wait_for_js(page, "window.sseOpened >= 1")
        end(user)
        login = f"{asgi_server}/accounts/login/?next={path}"
        page.wait_for_url(lambda url, login=login: url == login, timeout=15_000)
        assert page.is_visible("#id_username")


def test_a_viewer_removed_from_the_role_lands_on_the_403_page(
    short_heartbeat, asgi_server, signed_in_page, todo_app
):
    user = UserFactory(role="viewer")
    page = signed_in_page(asgi_server, user, "/", init_script=SSE_OPENED_SCRIPT)
    wait_for_js(page, "window.sseOpened >= 1")
    responses = []
    page.on("response", lambda r: responses.append((r.url, r.status)))
    User.objects.get(pk=user.pk).groups.clear()
    wait_for_js(page, "document.querySelector('#status-live') === null", timeout=15)
    assert (f"{asgi_server}/", 403) in responses
