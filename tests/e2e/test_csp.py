"""The Content-Security-Policy in a real Chromium against the real ASGI app (uvicorn, static
files served by the app itself): the status page and the profile form load with no policy
violation, and htmx still works under it (a status row swapped in from the stream; the
form's blur validation, an added component row with its out-of-band counter, the focus after
a refused save). An inline script injected at run time is refused, so the watch for
violations works."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import free_port, stop_process, wait_for_js
from tests.factories import PASSWORD
from tests.fixtures.infra import wait_until

REPO = Path(__file__).resolve().parents[2]
WATCH = (
    "window.cspViolations = []; window.sseTypes = []; window.swapped = [];"
    "document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push("
    "  e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));"
    "document.addEventListener('htmx:sseBeforeMessage',"
    "  (e) => window.sseTypes.push(e.detail.type));"
    "document.addEventListener('htmx:afterSwap', (e) => window.swapped.push(e.target.id));"
)
CPU = "#id_components-0-cpu_request"


@pytest.fixture
def panel(tmp_path, redis_url):
    """uvicorn on a database of its own (a SQLite file, migrated and bootstrapped with the
    seed's todo-app profile and an admin): (base URL, admin user)."""
    from urllib.request import urlopen

    user = SimpleNamespace(username="csp-admin")
    env = {
        **os.environ,
        "HELMDECK_STATE_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "HELMDECK_SERVE_STATIC": "true",
        "HELMDECK_ADMIN_USER": user.username,
        "HELMDECK_ADMIN_PASSWORD": PASSWORD,
    }
    manage = [sys.executable, "manage.py"]
    seed = ["bootstrap", "--profile", "examples/profiles/todo-app.yaml"]
    for command in (["migrate", "--no-input"], seed):
        subprocess.run(
            manage + command, cwd=REPO, env=env, check=True, capture_output=True, timeout=600
        )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "controlpanel.asgi:application"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        with urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200

    wait_until(up, timeout=60, what="uvicorn to answer /health")
    yield url, user
    stop_process(proc, timeout=15)


def watched(page, path, base):
    """Load `path` afresh with the console watched; returns the console's CSP messages."""
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{base}{path}")
    page.wait_for_load_state("load")
    assert page.evaluate("typeof htmx") == "object"  # vendored htmx loaded under the policy
    assert page.evaluate("htmx.config.allowEval") is False
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    return console


def csp_messages(console):
    return [m for m in console if "Content Security Policy" in m or "Refused to" in m]


def assert_refuses_injected_script(page):
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.pwned = 1';"
        " document.head.appendChild(s); }"
    )
    wait_for_js(page, "window.cspViolations.length > 0")
    assert page.evaluate("window.pwned") is None
    assert any(v.startswith("script-src") for v in page.evaluate("window.cspViolations"))


@pytest.mark.integration
def test_the_status_page_loads_without_violations_and_htmx_swaps(
    panel, signed_in_page, redis_url, settings
):
    from deployments import events

    base, user = panel
    page = signed_in_page(base, user, "/", timeout=30_000, init_script=WATCH)
    console = watched(page, "/", base)
    # the stream's first event is the table the page shows: kept, not swapped
    wait_for_js(page, "window.sseTypes.includes('table')")
    # a pod change of todo-app: its row is swapped in by htmx + sse
    row = page.get_attribute("#status-profiles tr.status-row[data-profile=todo-app]", "id")
    settings.REDIS_URL = redis_url  # the panel's Redis database, so its channel
    events.publish(events.channel("profile", int(row.rpartition("-")[2])), "pod", {})
    wait_for_js(page, f"window.swapped.includes('{row}')")
    wait_for_js(page, "document.querySelector('#status-profiles').innerText.includes('todo-app')")
    assert page.evaluate("window.cspViolations") == []
    assert csp_messages(console) == []
    assert_refuses_injected_script(page)


@pytest.mark.integration
def test_the_profile_form_loads_without_violations_and_htmx_works(panel, signed_in_page):
    base, user = panel
    path = "/profiles/todo-app/edit/"
    page = signed_in_page(base, user, path, timeout=30_000, init_script=WATCH)
    console = watched(page, path, base)

    page.fill(CPU, "lots")
    page.press(CPU, "Tab")  # blur -> hx-post, the field's errors swapped in
    page.locator(f"{CPU}-errors").get_by_text("must be a CPU quantity").wait_for()

    page.click("text=Add component")  # hx-get appends a row, the counter swaps out of band
    page.locator("#id_components-2-name").wait_for()
    assert page.input_value("#id_components-TOTAL_FORMS") == "3"

    page.click("button.primary[type=submit]")  # refused: the form is swapped in again
    page.locator(".form-errors").get_by_text("The profile was not saved").wait_for()
    # profile-form.js (no longer an hx-on attribute) puts the focus on the invalid field
    wait_for_js(page, f"document.activeElement.id === '{CPU[1:]}'")
    assert page.url == f"{base}{path}"

    assert page.evaluate("window.cspViolations") == []
    assert csp_messages(console) == []
    assert_refuses_injected_script(page)
