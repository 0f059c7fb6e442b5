"""Content-Security-Policy on every page, no inline code in any template, and /static/ as an
attacker sees it: the real ASGI app (uvicorn) asked over a raw socket, so no client
normalises `..`, `%2e%2e` or backslashes away before the server sees them."""

import json
import re
import socket
import subprocess
import sys
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template import engines
from django.utils import timezone

from deployments.selectors_history import STEP_GROUPS
from tests.conftest import free_port, stop_process
from tests.deployments.test_permissions import (  # noqa: F401 - fixtures used by name
    client_for,
    fast_password_hashing,
    releases,
)
from tests.deployments.test_selectors_history import FULL, timed_release
from tests.fixtures.infra import wait_until
from tests.security import test_every_url as every
from tests.security.test_every_url import body, world  # noqa: F401 - fixture used by name

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {  # directive -> exactly these sources
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
PAGE_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "x-frame-options",
)


def policy(header):
    directives = [d.split() for d in header.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def policy_problems(header):
    if not header:
        return ["no Content-Security-Policy header"]
    parsed = policy(header)
    problems = [
        f"{name}: {parsed.get(name)} (want {want})"
        for name, want in REQUIRED.items()
        if parsed.get(name) != want
    ]
    style = parsed.get("style-src", [])
    if "'self'" not in style or "'unsafe-inline'" in style or "'unsafe-eval'" in style:
        problems.append(f"style-src: {style}")
    return problems


class InlineCode(HTMLParser):
    """Everything in rendered HTML that a strict policy would block or that runs as script:
    inline <script>, on*= handlers, hx-on*, javascript: URLs, htmx eval (js: values, trigger
    filters), style attributes, <style> without the response's nonce."""

    def __init__(self, nonce):
        super().__init__(convert_charrefs=True)
        self.nonce = nonce
        self.problems = []

    def handle_starttag(self, tag, attrs):
        attrs = [(name.lower(), value or "") for name, value in attrs]
        names = dict(attrs)
        where = self.get_starttag_text()[:120]
        data_block = names.get("type", "").strip().lower() == "application/json"
        if tag == "script" and not names.get("src") and not data_block:  # JSON: never run
            self.problems.append(f"inline script: {where}")
        if tag == "style" and (not self.nonce or names.get("nonce") != self.nonce):
            self.problems.append(f"<style> without the nonce: {where}")
        for name, value in attrs:
            plain = value.strip().lower().replace("\t", "").replace("\n", "")
            if name.startswith("on") or re.match(r"(data-)?hx-on", name):
                self.problems.append(f"inline handler {name}: {where}")
            elif name == "style":
                self.problems.append(f"style attribute: {where}")
            elif plain.startswith(("javascript:", "vbscript:")):
                self.problems.append(f"{name}= javascript: URL: {where}")
            elif name in ("hx-vals", "hx-vars", "hx-headers") and plain.startswith("js:"):
                self.problems.append(f"{name} evaluated by htmx: {where}")
            elif name == "hx-trigger" and "[" in value:
                self.problems.append(f"hx-trigger filter evaluated by htmx: {where}")


def inline_code(html, nonce=None):
    parser = InlineCode(nonce)
    parser.feed(html)
    return parser.problems


def nonce_of(header):
    for source in policy(header).get("style-src", []):
        if source.startswith("'nonce-"):
            return source[len("'nonce-") : -1]
    return None


# ---- every page ------------------------------------------------------------------------


def page_requests():
    """(role, method, url, data) for every GET row of the permission tables (pages, admin,
    accounts, streams) as the admin role and as an anonymous visitor, plus forms shown again
    after a refused POST, a 404 and a 403."""
    gets = [url for method, url in every._table_rows() if method == "get"]
    rows = [(role, "get", url, None) for url in gets for role in ("admin", None)]
    rows += [
        ("admin", "post", "/profiles/new/", {}),
        ("admin", "post", "/profiles/import/", {}),
        ("admin", "post", "/admin/deployments/profile/add/", {}),
        (None, "post", "/accounts/login/", {"username": "x", "password": "y"}),
        ("admin", "get", "/no-such-page/", None),
        ("viewer", "get", "/profiles/new/", None),
    ]
    return rows


def test_every_page_carries_the_policy_and_nosniff_and_no_inline_code(world):  # noqa: F811
    assert len(every._table_rows()) > 80  # the permission tables still list every page
    clients = {}
    problems = []
    checked = 0
    for role, method, url, data in page_requests():
        client = clients.get(role) or clients.setdefault(role, client_for(role))
        url = url.format(**world)
        response = client.post(url, data) if method == "post" else client.get(url)
        content = body(response)
        where = f"{role or 'anonymous'} {method} {url} ({response.status_code})"
        header = response.get("Content-Security-Policy", "")
        problems += [f"{where}: {p}" for p in policy_problems(header)]
        if response.get("X-Content-Type-Options") != "nosniff":
            problems.append(f"{where}: no X-Content-Type-Options: nosniff")
        if response.get("Content-Type", "").startswith("text/html"):
            html = content.decode()
            problems += [f"{where}: {p}" for p in inline_code(html, nonce_of(header))]
            checked += 1
    assert problems == []
    assert checked > 60  # the HTML pages were really rendered and read


def test_the_page_configures_htmx_without_eval_or_injected_styles(login, todo_app):
    html = login("admin").get("/profiles/todo-app/edit/").content.decode()
    match = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)
    assert match, "base.html has no htmx-config meta tag"
    config = json.loads(match.group(1))
    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False
    assert config["allowScriptTags"] is False
    # htmx's own indicator rules live in the stylesheet instead
    css = (REPO / "static/helmdeck.css").read_text()
    assert ".htmx-indicator { opacity: 0; }" in css


def test_the_parser_finds_what_it_looks_for():
    """The checker itself, against markup an attacker or a careless edit would add."""
    bad = [
        "<script>alert(1)</script>",
        "<script nonce='x'>alert(1)</script>",
        "<script type='text/json-ish'>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<body onload='go()'>",
        "<form hx-on::after-request='go()'>",
        "<form hx-on:htmx:load='go()'>",
        "<div data-hx-on-click='go()'>",
        "<a href=' JavaScript:alert(1)'>x</a>",
        "<a href='java\tscript:alert(1)'>x</a>",
        "<iframe src='javascript:alert(1)'></iframe>",
        "<button formaction='javascript:go()'>",
        "<div hx-vals='js:{a: go()}'>",
        "<input hx-trigger=\"keyup[key=='Enter']\">",
        "<p style='color:red'>",
        "<style>p{}</style>",
    ]
    for markup in bad:
        assert inline_code(markup), markup
    good = (
        "<script src='/static/x.js' defer></script><style nonce='abc'>p{}</style>"
        "<a href='/x'>javascript: is text here</a><div hx-trigger='blur changed'></div>"
    )
    assert inline_code(good, nonce="abc") == []


# ---- every template --------------------------------------------------------------------

TAG = re.compile(r"<([a-zA-Z][\w:-]*)\b([^<>]*)>", re.S)
HANDLER = re.compile(r"(?:^|[\s\"'/])((?:data-)?hx-on[\w:.-]*|on[a-z]+)\s*=", re.I)
STYLE_ATTR = re.compile(r"(?:^|[\s\"'/])style\s*=", re.I)


def template_files():
    """Every .html template any engine or the form renderer can load: ours (templates/),
    every app's (the admin's included) and Django's form widgets."""
    import django

    dirs = {Path(d) for d in engines["django"].template_dirs}
    dirs.add(Path(django.__file__).parent / "forms/templates")
    files = sorted({f for d in dirs if d.is_dir() for f in d.rglob("*.html")})
    return files


COMMENT = re.compile(r"\{#.*?#\}|\{% comment[^%]*%\}.*?\{% endcomment %\}", re.S)


def template_problems(text):
    """What a template's source would render that the policy blocks (comments aside)."""
    text = COMMENT.sub("", text)
    problems = []
    if re.search(r"javascript\s*:", text, re.I):
        problems.append("javascript: URL")
    for match in TAG.finditer(text):
        name, attrs = match.group(1).lower(), match.group(2)
        where = match.group(0)[:120]
        data_block = re.search(r"""(?:^|\s)type\s*=\s*["']application/json["']""", attrs)
        if name == "script" and "src=" not in attrs and not data_block:  # JSON: never run
            problems.append(f"inline script: {where}")
        if name == "style" and "csp_nonce_attr" not in attrs:
            problems.append(f"<style> without {{% csp_nonce_attr %}}: {where}")
        problems += [f"inline handler {h}: {where}" for h in HANDLER.findall(attrs)]
        if STYLE_ATTR.search(attrs):
            problems.append(f"style attribute: {where}")
    return problems


def test_no_template_has_inline_script_handlers_or_javascript_urls():
    files = template_files()
    ours = [f for f in files if f.is_relative_to(REPO / "templates")]
    assert len(ours) >= 25 and any("admin/change_list.html" in str(f) for f in files)
    problems = [
        f"{f}: {p}" for f in files for p in template_problems(f.read_text(errors="replace"))
    ]
    assert problems == []


def test_the_template_scan_finds_what_it_looks_for():
    for markup in (
        '<form hx-post="/x"\n      hx-on::load="if (x) y()">',
        "<a onclick=\"go()\" href='#'>",
        '<a href="javascript:void(0)">',
        "<script>var a = 1;</script>",
        '<script type="module">import x</script>',
        "<style>p{}</style>",
        '<div{% if x %} class="a"{% endif %} style="color:red">',
        "{# a comment #}<script>go()</script>",
        '<script type="text/javascript">go()</script>',
        '<script type="module" data-x="application/json">go()</script>',
    ):
        assert template_problems(markup), markup
    assert template_problems('<script type="application/json" id="s">{"a": 1}</script>') == []
    assert (
        template_problems(
            "<script src=\"{% static 'x.js' %}\"\n {% csp_nonce_attr %} defer></script>"
            "<style {% csp_nonce_attr %}>p{}</style>{# not <script>go()</script> #}"
        )
        == []
    )


# ---- /static/ on the real ASGI app ---------------------------------------------------


@pytest.fixture(scope="module")
def outside_file(tmp_path_factory):
    """A file outside every static root, with a marker that must never be served."""
    path = tmp_path_factory.mktemp("outside") / "secret.txt"
    path.write_text("HELMDECK-OUTSIDE-MARKER\n")
    return path


@pytest.fixture(scope="module")
def static_server(tmp_path_factory):
    """uvicorn serving controlpanel.asgi:application with HELMDECK_SERVE_STATIC on; the
    requests here need no database or Redis."""
    import os

    state = tmp_path_factory.mktemp("state")
    port = free_port()
    env = {**os.environ, "HELMDECK_SERVE_STATIC": "true", "HELMDECK_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "controlpanel.asgi:application"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def up():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        return raw_get(port, b"/health")[0] == 200

    wait_until(up, timeout=60, what="uvicorn to answer /health")
    yield port
    stop_process(proc, timeout=15)


def raw_get(port, target):
    """(status, {header: value}, body) for `GET <target>` sent byte for byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, content = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, content


def traversal_targets(outside):
    """Request targets under /static/ that name something outside the static roots."""
    up = "../" * 12
    outside_rel = up + str(outside).lstrip("/")
    enc = outside_rel.replace("../", "%2e%2e%2f")
    return [
        b"/static/../.env",
        b"/static/../controlpanel/settings.py",
        b"/static/../../../../../../etc/passwd",
        b"/static/%2e%2e/.env",
        b"/static/%2E%2E/.env",
        b"/static/.%2e/.env",
        b"/static/..%2f.env",
        b"/static/..%2F..%2F..%2Fetc%2Fpasswd",
        b"/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        b"/static/%252e%252e/.env",
        b"/static/%252e%252e%252f.env",
        b"/static/..%252f.env",
        b"/static/..\\.env",
        b"/static/..%5c.env",
        b"/static/%2e%2e%5c%2e%2e%5cetc%5cpasswd",
        b"/static/..%00/.env",
        b"/static/%00",
        b"/static/helmdeck.css%00",
        b"/static/helmdeck.css%00.js",
        b"/static//etc/passwd",
        b"/static///etc/passwd",
        b"/static/%2fetc%2fpasswd",
        b"/static/admin/../../controlpanel/settings.py",
        b"/static/admin/css/../../../../../manage.py",
        b"/static/vendor/../../.env",
        b"/static/./helmdeck.css/../../.env",
        ("/static/admin/css/" + up + str(outside).lstrip("/")).encode(),
        ("/static/" + outside_rel).encode(),
        ("/static/" + enc).encode(),
        ("/static" + str(outside)).encode(),
        ("/static/" + "..%2f" * 12 + str(outside).lstrip("/").replace("/", "%2f")).encode(),
        b"/static/" + b"a" * 5000,
        b"/static/" + b"a/" * 2500 + b"helmdeck.css",
        b"/static/" + b"../" * 2000 + b"etc/passwd",
        b"/static/" + b"%2e%2e%2f" * 600 + b"etc/passwd",
    ]


def test_traversal_out_of_static_is_a_404_with_the_page_headers(static_server, outside_file):
    _, page, _ = raw_get(static_server, b"/accounts/login/")
    targets = traversal_targets(outside_file)
    answers = {}
    for target in targets:
        status, headers, content = raw_get(static_server, target)
        answers[target] = status
        assert b"HELMDECK-OUTSIDE-MARKER" not in content, target
        assert b"SECRET_KEY" not in content and b"root:" not in content, target
        if status == 404:
            assert {h: headers.get(h) for h in PAGE_HEADERS} == {
                h: page.get(h) for h in PAGE_HEADERS
            }, target
    assert {t[:90]: s for t, s in answers.items() if s != 404} == {}
    assert len(answers) == len(set(targets)) == len(targets) >= 30


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("helmdeck.css", "text/css"),
        ("vendor/htmx-2.0.11.min.js", "text/javascript"),
        ("vendor/htmx-ext-sse-2.2.4.min.js", "text/javascript"),
        ("profile-form.js", "text/javascript"),
        ("admin/css/base.css", "text/css"),
        ("admin/js/change_form.js", "text/javascript"),
    ],
)
def test_static_files_carry_the_same_security_headers_as_pages(static_server, path, content_type):
    _, page, _ = raw_get(static_server, b"/accounts/login/")
    assert not policy_problems(page.get("content-security-policy"))
    status, headers, content = raw_get(static_server, f"/static/{path}".encode())
    assert status == 200 and content
    assert headers["content-type"].startswith(content_type)  # nosniff needs the right type
    assert {h: headers.get(h) for h in PAGE_HEADERS} == {h: page.get(h) for h in PAGE_HEADERS}
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert policy(headers["content-security-policy"])["frame-ancestors"] == ["'none'"]
    # a directory, a missing file and a file's parent are 404s with the same headers
    for target in (b"/static/", b"/static/admin/", b"/static/admin", b"/static/nope.css"):
        status, headers, _ = raw_get(static_server, target)
        assert status == 404, target
        assert headers.get("content-security-policy") == page["content-security-policy"]


# ---- the history charts (server-rendered SVG) ------------------------------------------


def test_the_history_charts_draw_with_stylesheet_classes_and_no_inline_code(login, todo_app):
    """The SVG charts (_release_chart.html, _delivery_keys.html) colour every bar through a
    class that static/helmdeck.css styles: no style attribute, no <style>, no script."""
    now = timezone.now()
    timed_release(todo_app, at=now - timedelta(hours=2), steps=FULL)
    timed_release(todo_app, "rolled_back", at=now - timedelta(hours=1), steps=FULL)
    client = login("viewer")
    css = (REPO / "static/helmdeck.css").read_text()
    for url in ("/profiles/todo-app/releases/", "/"):
        response = client.get(url)
        html = response.content.decode()
        assert "<svg" in html and "<rect" in html, url
        assert inline_code(html, nonce_of(response["Content-Security-Policy"])) == [], url
        classes = set(re.findall(r'<rect class="([^"]+)"', html))
        for name in {c for value in classes for c in value.split()}:
            assert re.search(rf"\.{re.escape(name)}\b", css), f"{url}: .{name} has no rule"
    for group in STEP_GROUPS:
        assert f".chart .step-{group}" in css
