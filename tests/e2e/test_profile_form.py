"""The profile form in a real Chromium: inline validation on blur (htmx), errors after submit,
an htmx-added component row, then a fixed form that saves and shows up in the list."""

import pytest

from deployments.models import Profile
from tests.conftest import wait_for_js
from tests.factories import ClusterFactory, UserFactory

CPU = "#id_components-0-cpu_request"
CPU_ERRORS = "#id_components-0-cpu_request-errors"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_it_validates_saves_and_lists_a_profile_in_a_browser(live_server, signed_in_page):
    ClusterFactory(name="minikube")
    user = UserFactory(role="admin")
    page = signed_in_page(live_server.url, user, "/profiles/new/")
    assert page.evaluate("typeof htmx") == "object"  # vendored htmx loaded
    assert page.evaluate("document.activeElement.id") == "id_name"  # autofocus

    page.fill("#id_name", "e2e-app")
    page.fill("#id_namespace", "e2e-app")
    page.fill("#id_components-0-name", "web")
    page.fill("#id_components-0-image", "e2e-web")
    page.fill("#id_components-0-tag", "1.0.0")
    page.fill("#id_components-0-port", "8000")
    page.fill(CPU, "lots")
    page.press(CPU, "Tab")  # blur -> hx-post to the validation endpoint
    page.locator(CPU_ERRORS).get_by_text("must be a CPU quantity").wait_for()
    assert page.locator(".form-errors").count() == 0  # nothing submitted yet

    page.click("button.primary[type=submit]")
    page.locator(".form-errors").get_by_text("The profile was not saved").wait_for()
    assert "must be a CPU quantity" in page.locator(CPU_ERRORS).inner_text()
    wait_for_js(page, f"document.activeElement.id === '{CPU[1:]}'")  # focus moved
    assert page.url == f"{live_server.url}/profiles/new/"
    assert not Profile.objects.filter(name="e2e-app").exists()

    page.click("text=Add component")  # htmx appends a row and bumps TOTAL_FORMS (oob)
    page.locator("#id_components-1-name").wait_for()
    assert page.input_value("#id_components-TOTAL_FORMS") == "2"
    page.fill("#id_components-1-name", "worker")
    page.fill("#id_components-1-image", "e2e-worker")
    page.fill("#id_components-1-port", "9000")

    page.fill(CPU, "250m")
    page.press(CPU, "Tab")
    wait_for_js(page, f"document.querySelector('{CPU_ERRORS}').textContent.trim() === ''")
    page.click("button.primary[type=submit]")
    page.wait_for_url(f"{live_server.url}/profiles/e2e-app/")
    assert "Profile e2e-app created." in page.content()

    page.click("nav >> text=Profiles")
    page.wait_for_url(f"{live_server.url}/profiles/")
    row = page.locator("#profile-rows tr", has_text="e2e-app")
    assert row.count() == 1
    assert "e2e-web:1.0.0" in row.inner_text()
    components = Profile.objects.get(name="e2e-app").components.order_by("position")
    assert [(c.name, c.cpu_request) for c in components] == [
        ("web", "250m"),
        ("worker", "500m"),
    ]
