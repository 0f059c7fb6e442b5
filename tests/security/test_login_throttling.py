"""Login throttling as an attacker tries to get round it.

- Forwarded headers (X-Forwarded-For, X-Real-IP, Forwarded, mixtures) rotated on every
  request, so that each wrong password looks like a new client: against the real served
  app (uvicorn started as `make run` starts it, on a free loopback port, over HTTP), they
  are ignored unless the peer is a proxy named in HELMDECK_TRUSTED_PROXIES.
- Many addresses against one username: the per-username limit locks it all the same.
- The password-change forms (the site's and the admin's): a wrong old password is a
  failed login, with the same limit and cool-off, and a form error, never a 500.
"""

import http.client
import importlib.util
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
from axes.helpers import get_client_ip_address
from axes.models import AccessAttempt
from django.test import Client, RequestFactory

from tests.factories import PASSWORD, UserFactory
from tests.fixtures.faults import _terminate, free_port
from tests.fixtures.infra import wait_until

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 5
WRONG = 30  # wrong passwords per attack: six times the limit


def spoofed_headers(variant: str, n: int) -> dict[str, str]:
    """Headers claiming the n-th made-up client address, as each variant writes them."""
    v4, v6 = f"203.0.{n // 250}.{n % 250 + 1}", f"2001:db8::{n + 1:x}"
    return {
        "xff": {"X-Forwarded-For": v4},
        "xff-chain": {"X-Forwarded-For": f"{v4}, 198.51.100.{n % 250 + 1}"},
        "xff-v6": {"X-Forwarded-For": v6},
        "x-real-ip": {"X-Real-IP": v4},
        "forwarded": {"Forwarded": f'for={v4};proto=https, for="[{v6}]"'},
        "mixture": {
            "X-Forwarded-For": v4,
            "X-Real-IP": v6,
            "Forwarded": f"for={v4}",
            "True-Client-IP": v4,
            "CF-Connecting-IP": v6,
            "X-Client-IP": v4,
        },
    }[variant]


VARIANTS = ["xff", "xff-chain", "xff-v6", "x-real-ip", "forwarded", "mixture"]


def meta(headers: dict[str, str]) -> dict[str, str]:
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


@pytest.fixture
def axes_on(settings):
    settings.AXES_ENABLED = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def login(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


# ---- django-axes' configuration (test client) ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("variant", VARIANTS)
def test_it_locks_a_username_whatever_forwarded_headers_claim(axes_on, variant):
    client = Client()
    user = UserFactory(role="viewer")
    for n in range(WRONG):
        response = login(client, user.username, "wrong", **meta(spoofed_headers(variant, n)))
        assert response.status_code in (200, 429)
    locked = login(client, user.username, PASSWORD, **meta(spoofed_headers(variant, WRONG)))
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # every failure was counted against the peer, never a claimed address
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_it_takes_the_client_address_from_the_peer_even_with_ipware(settings, variant):
    """django-ipware is not installed today; if it ever arrives (a transitive dependency),
    axes must still not read forwarded headers: the client address is REMOTE_ADDR."""
    settings.AXES_ENABLED = True
    request = RequestFactory().post(
        "/accounts/login/", REMOTE_ADDR="192.0.2.10", **meta(spoofed_headers(variant, 7))
    )
    assert get_client_ip_address(request) == "192.0.2.10"
    assert get_client_ip_address(request, use_ipware=True) == "192.0.2.10"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "addresses",
    [
        [f"198.51.100.{n + 1}" for n in range(WRONG)],  # a new IPv4 address each time
        [f"2001:db8:{n:x}::1" for n in range(WRONG)],  # IPv6, one /48 each
        ["192.0.2.1"] * (LIMIT - 1) + ["192.0.2.2"],  # the limit spread over two addresses
    ],
    ids=["ipv4", "ipv6", "split"],
)
def test_it_locks_a_username_attacked_from_many_addresses(axes_on, addresses):
    user = UserFactory(role="viewer")
    for address in addresses:
        response = login(Client(), user.username, "wrong", REMOTE_ADDR=address)
        assert response.status_code in (200, 429)
    for address in ("203.0.113.99", addresses[0]):  # a fresh address, and one of the attacker's
        locked = login(Client(), user.username, PASSWORD, REMOTE_ADDR=address)
        assert locked.status_code == 429
        assert "Too many failed logins" in locked.content.decode()
    # another account from the attacker's own address still logs in (no per-address lock)
    other = UserFactory(role="viewer")
    assert login(Client(), other.username, PASSWORD, REMOTE_ADDR=addresses[-1]).status_code == 302


@pytest.mark.django_db
def test_it_ends_a_username_lockout_after_the_cool_off_however_long_the_attack(axes_on, settings):
    user = UserFactory(role="viewer")
    for n in range(LIMIT):
        login(Client(), user.username, "wrong", REMOTE_ADDR=f"198.51.100.{n + 1}")
    last_counted = max(AccessAttempt.objects.values_list("attempt_time", flat=True))
    for n in range(WRONG):  # the attack goes on during the lockout, from new addresses
        response = login(Client(), user.username, "wrong", REMOTE_ADDR=f"203.0.113.{n + 1}")
        assert response.status_code == 429
    # failures during a lockout are not recorded, so they do not extend it
    assert max(AccessAttempt.objects.values_list("attempt_time", flat=True)) == last_counted
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == LIMIT
    assert login(Client(), user.username, PASSWORD, REMOTE_ADDR="192.0.2.50").status_code == 429
    # one cool-off after the last counted failure, the owner logs in
    cool_off = timedelta(hours=settings.AXES_COOLOFF_TIME)
    assert cool_off <= timedelta(minutes=15)
    AccessAttempt.objects.update(attempt_time=last_counted - cool_off - timedelta(seconds=1))
    assert login(Client(), user.username, PASSWORD, REMOTE_ADDR="192.0.2.50").status_code == 302


# ---- the password-change forms ---------------------------------------------------------------


def signed_in_client(settings, user, address="192.0.2.77"):
    settings.AXES_ENABLED = False  # force_login's request has no address; axes comes back on
    client = Client(REMOTE_ADDR=address)
    client.force_login(user)
    settings.AXES_ENABLED = True
    return client


PASSWORD_FORMS = {
    "site": ("/accounts/password_change/", "viewer"),
    "admin": ("/admin/password_change/", "admin"),
}


def change(client, url, old, new="n3w-Pa55word-for-helmdeck", **extra):
    return client.post(
        url, {"old_password": old, "new_password1": new, "new_password2": new}, **extra
    )


@pytest.mark.django_db
@pytest.mark.parametrize("form", PASSWORD_FORMS)
def test_it_throttles_the_old_password_on_the_password_change_form(axes_on, settings, form):
    url, role = PASSWORD_FORMS[form]
    user = UserFactory(role=role)
    client = signed_in_client(settings, user)
    statuses = []
    for n in range(10):  # ten wrong, with forwarded headers that change nothing
        response = change(client, url, f"guess-{n}", **meta(spoofed_headers("mixture", n)))
        statuses.append(response.status_code)
    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)
    assert statuses[LIMIT - 1 :] == [429] * (10 - LIMIT + 1)
    right = change(client, url, PASSWORD)  # the eleventh, right: refused all the same
    assert right.status_code == 429
    page = right.content.decode()
    assert "Too many wrong passwords for this account" in page
    assert re.search(r"try again in 15 minutes", page)
    assert "<form" in page  # the form with its error, not the login lockout page
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert client.get("/").status_code == 200  # still signed in: the lockout is not a logout


@pytest.mark.django_db
@pytest.mark.parametrize("form", PASSWORD_FORMS)
def test_it_counts_wrong_old_passwords_and_wrong_logins_together(axes_on, settings, form):
    url, role = PASSWORD_FORMS[form]
    user = UserFactory(role=role)
    client = signed_in_client(settings, user)
    for n in range(LIMIT - 1):  # from other addresses: the login form
        login(Client(), user.username, "wrong", REMOTE_ADDR=f"198.51.100.{n + 1}")
    assert change(client, url, "one-more-guess").status_code == 429  # the limit-th failure
    # and the login is locked by the password-change failure too
    assert login(Client(), user.username, PASSWORD, REMOTE_ADDR="203.0.113.5").status_code == 429
    # one cool-off later the owner changes the password
    AccessAttempt.objects.update(
        attempt_time=max(AccessAttempt.objects.values_list("attempt_time", flat=True))
        - timedelta(hours=settings.AXES_COOLOFF_TIME, seconds=1)
    )
    assert change(client, url, PASSWORD).status_code == 302
    user.refresh_from_db()
    assert user.check_password("n3w-Pa55word-for-helmdeck")


@pytest.mark.django_db
def test_it_forgets_old_password_failures_once_the_right_one_is_given(axes_on, settings):
    user = UserFactory(role="viewer")
    client = signed_in_client(settings, user)
    url = PASSWORD_FORMS["site"][0]
    for n in range(LIMIT - 1):
        assert change(client, url, f"typo-{n}").status_code == 200
    assert change(client, url, PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username=user.username).exists()


# ---- the real served app ---------------------------------------------------------------------


def load_run_py():
    spec = importlib.util.spec_from_file_location("helmdeck_run", ROOT / "scripts/dev/run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SERVED_USERS = [
    *[f"default-{variant}" for variant in VARIANTS],
    "default-bystander",
    *["proxied-xff", "proxied-real-ip", "proxied-forwarded", "elsewhere-xff"],
]


@pytest.fixture(scope="module")
def served_env(tmp_path_factory):
    """A private SQLite database, migrated, with one account per attack."""
    home = tmp_path_factory.mktemp("served")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FORWARDED_ALLOW_IPS")
        and not k.startswith("HELMDECK_")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{home / 'db.sqlite3'}",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing answers: logins need no Redis
        HELMDECK_ENV_FILE=str(home / "absent.env"),
        HELMDECK_STATE_DIR=str(home / "state"),
        SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_SETTINGS_MODULE="controlpanel.settings",
        HELMDECK_LOGIN_FAILURE_LIMIT=str(LIMIT),
    )
    manage = [sys.executable, "manage.py"]
    create = (
        "from django.contrib.auth.models import User\n"
        f"for name in {SERVED_USERS!r}: User.objects.create_user(name, password={PASSWORD!r})"
    )
    for command in (["migrate", "--no-input", "-v", "0"], ["shell", "-c", create]):
        subprocess.run([*manage, *command], cwd=ROOT, env=env, check=True, timeout=300)
    return home, env


def recorded_addresses(served, username) -> set[str]:
    home, _ = served
    with sqlite3.connect(home / "db.sqlite3") as db:
        rows = db.execute(
            "SELECT ip_address FROM axes_accessattempt WHERE username = ?", (username,)
        ).fetchall()
    return {row[0] for row in rows}


class Served:
    """The panel served as `make run` serves it (scripts/dev/run.py's web command)."""

    def __init__(self, served, trusted_proxies=None):
        self.port = free_port()
        self.log = served[0] / f"web-{self.port}.log"  # a file: a full pipe would block uvicorn
        self.log_file = self.log.open("wb")
        env = dict(served[1])
        if trusted_proxies is not None:
            env["HELMDECK_TRUSTED_PROXIES"] = trusted_proxies
        self.proc = subprocess.Popen(
            load_run_py().web_command("127.0.0.1", self.port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
        )
        wait_until(self.healthy, timeout=60, what="the served panel")

    def healthy(self):
        if self.proc.poll() is not None:
            pytest.fail(f"the panel did not start: {self.log.read_text()[-2000:]}")
        return self.request("GET", "/health")[0] == 200

    def request(self, method, path, body=None, headers=()):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path)
            for name, value in headers:
                conn.putheader(name, value)
            data = body.encode() if body else b""
            if body is not None:
                conn.putheader("Content-Type", "application/x-www-form-urlencoded")
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data or None)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read().decode()
        finally:
            conn.close()

    def login(self, username, password, headers=()):
        """The login form as a browser posts it: its CSRF cookie and token first."""
        status, response_headers, page = self.request("GET", "/accounts/login/")
        assert status == 200
        cookie = SimpleCookie()
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                cookie.load(value)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        body = urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password})
        status, _, _ = self.request(
            "POST",
            "/accounts/login/",
            body,
            [("Cookie", f"csrftoken={cookie['csrftoken'].value}"), *headers],
        )
        return status

    def stop(self):
        _terminate(self.proc, timeout=15)
        self.log_file.close()


def attack(server, username, variant):
    """WRONG wrong passwords, a new claimed address each time, then the right one."""
    for n in range(WRONG):
        assert server.login(username, "wrong", spoofed_headers(variant, n).items()) in (200, 429)
    return server.login(username, PASSWORD, spoofed_headers(variant, WRONG).items())


@pytest.mark.integration
def test_the_served_panel_ignores_forwarded_headers_by_default(served_env):
    server = Served(served_env)
    try:
        for variant in VARIANTS:
            username = f"default-{variant}"
            assert attack(server, username, variant) == 429, variant
            assert recorded_addresses(served_env, username) == {"127.0.0.1"}, variant
        # another account from the same address still logs in
        assert server.login("default-bystander", PASSWORD) == 302
    finally:
        server.stop()


@pytest.mark.integration
def test_the_served_panel_honours_x_forwarded_for_only_from_a_named_proxy(served_env):
    # we are the named proxy: X-Forwarded-For names the client, X-Real-IP and Forwarded never
    server = Served(served_env, trusted_proxies="127.0.0.1, ::1")
    try:
        assert attack(server, "proxied-xff", "xff-chain") == 429  # the per-username limit
        claimed = recorded_addresses(served_env, "proxied-xff")
        assert len(claimed) == LIMIT  # one row per forwarded client, until the lockout
        assert claimed <= {f"198.51.100.{n + 1}" for n in range(WRONG)}  # the rightmost one
        for username, variant in (
            ("proxied-real-ip", "x-real-ip"),
            ("proxied-forwarded", "forwarded"),
        ):
            assert attack(server, username, variant) == 429
            assert recorded_addresses(served_env, username) == {"127.0.0.1"}
    finally:
        server.stop()
    # a proxy is named, but it is not us: our X-Forwarded-For counts for nothing
    server = Served(served_env, trusted_proxies="10.9.9.9,192.0.2.0/24")
    try:
        assert attack(server, "elsewhere-xff", "xff") == 429
        assert recorded_addresses(served_env, "elsewhere-xff") == {"127.0.0.1"}
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["*", "proxy.example", "10.0.0.0/33", "127.0.0.1,*"])
def test_the_served_panel_refuses_a_trusted_proxy_that_is_not_an_address(value):
    env = {**os.environ, "HELMDECK_TRUSTED_PROXIES": value, "HELMDECK_ENV_FILE": "/nonexistent"}
    result = subprocess.run(
        load_run_py().web_command("127.0.0.1", free_port()),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "HELMDECK_TRUSTED_PROXIES" in result.stderr
    assert "is not an IP address or network" in result.stderr


def test_every_way_the_panel_is_served_goes_through_controlpanel_serve():
    assert load_run_py().web_command("127.0.0.1", 8000)[1:3] == ["-m", "controlpanel.serve"]
    assert '"python", "-m", "controlpanel.serve"' in (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "exec python -m controlpanel.serve" in compose
    assert "uvicorn" not in compose
    assert not re.search(r"CMD \[\"uvicorn\"", (ROOT / "Dockerfile").read_text())


def test_nobody_is_locked_out_for_long():
    from django.conf import settings

    assert timedelta(hours=settings.AXES_COOLOFF_TIME) <= timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"], ["username"]]
