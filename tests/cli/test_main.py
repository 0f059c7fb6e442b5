"""The remote CLI's own behaviour, against small loopback HTTP servers made here (the
end-to-end runs against the real panel are tests/e2e/test_remote_cli.py): what it does
with a redirect, an answer that is not the API's, a bad URL, half a configuration, a
panel on https."""

import contextlib
import http.server
import json
import ssl
import threading

import pytest
from helmdeck_cli.main import main


@contextlib.contextmanager
def server(respond, tls=None, host="127.0.0.1"):
    """A loopback HTTP server (HTTPS with the ssl.SSLContext `tls`) on `host`;
    `respond(handler)` answers each request. Yields (url, seen), seen being
    [(method, path, headers)]."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            seen.append((self.command, self.path, dict(self.headers)))
            respond(self)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://{host}:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def no_config(monkeypatch, tmp_path):
    monkeypatch.setenv("HELMDECK_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.delenv("HELMDECK_URL", raising=False)
    monkeypatch.delenv("HELMDECK_TOKEN", raising=False)


def test_a_redirect_is_refused_and_the_token_goes_nowhere_else(no_config, monkeypatch, capsys):
    with server(lambda h: (h.send_response(200), h.end_headers())) as (elsewhere, hit):

        def redirect(handler):
            handler.send_response(301)
            handler.send_header("Location", f"{elsewhere}/api/v1/profiles")
            handler.end_headers()

        with server(redirect) as (panel, seen):
            monkeypatch.setenv("HELMDECK_URL", panel)
            monkeypatch.setenv("HELMDECK_TOKEN", "hd_secret-token")
            assert main(["deploy", "todo-app"]) == 1
    err = capsys.readouterr().err
    assert f"redirected to {elsewhere}" in err and "log in with that address" in err
    assert [m for m, _, _ in seen] == ["POST"] and hit == []  # followed nowhere


def test_an_answer_that_is_not_the_apis_is_one_line_not_a_traceback(no_config, monkeypatch, capsys):
    def portal(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.end_headers()
        handler.wfile.write(b"<html>Sign in to the Wi-Fi</html>")

    with server(portal) as (url, _):
        monkeypatch.setenv("HELMDECK_URL", url)
        monkeypatch.setenv("HELMDECK_TOKEN", "hd_x")
        assert main(["profiles"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not answer as Helmdeck's API does" in err[0]


@pytest.mark.parametrize("url", ["http://[::1", "ftp://example.org", "http://h:99999", "x"])
def test_a_bad_url_is_exit_2_with_one_line(no_config, capsys, url):
    assert main(["login", url, "--token-stdin"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("helmdeck: ")


def test_half_a_configuration_in_the_environment_is_refused(no_config, monkeypatch, capsys):
    monkeypatch.setenv("HELMDECK_URL", "https://staging.example.org")
    assert main(["profiles"]) == 2
    assert "set both HELMDECK_URL and HELMDECK_TOKEN" in capsys.readouterr().err


def test_a_tag_without_a_component_is_exit_2_before_any_request(no_config, monkeypatch, capsys):
    with server(lambda h: (h.send_response(500), h.end_headers())) as (url, seen):
        monkeypatch.setenv("HELMDECK_URL", url)
        monkeypatch.setenv("HELMDECK_TOKEN", "hd_x")
        assert main(["deploy", "todo-app", "--tag", "1.2.3", "--tag", "=x"]) == 2
    assert seen == [] and capsys.readouterr().err.count("expected COMPONENT=TAG") == 2


def test_the_cli_knows_the_panels_ended_statuses():
    from helmdeck_cli.main import ENDED

    from deployments.models.releases import TERMINAL_RELEASE_STATUSES

    assert set(ENDED) == {str(s) for s in TERMINAL_RELEASE_STATUSES}


RELEASE = {
    "id": 7,
    "profile": "todo-app",
    "url": "/releases/7/",
    "status": "succeeded",
    "steps": [{"name": "upgrade", "status": "done"}],
    "started_at": "2026-12-05T04:00:00Z",
    "finished_at": "2026-12-05T04:00:12Z",
    "helm_revision": 3,
    "kind": "deploy",
    "reason": "",
}


def _follow_release(stream, monkeypatch):
    """`helmdeck deploy todo-app --wait` against a panel whose release #7 stream is
    `stream` and whose GET /releases/7 answers RELEASE; returns the GETs of the release."""

    def api(handler):
        if handler.path.endswith("/events"):
            body, kind = stream.encode(), "text/event-stream"
        else:
            queued = {**RELEASE, "status": "queued", "finished_at": None}
            body = json.dumps(queued if handler.command == "POST" else RELEASE).encode()
            kind = "application/json"
        handler.send_response(202 if handler.command == "POST" else 200)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with server(api) as (url, seen):
        monkeypatch.setenv("HELMDECK_URL", url)
        monkeypatch.setenv("HELMDECK_TOKEN", "hd_x")
        assert main(["deploy", "todo-app", "--wait"]) == 0
    return [path for method, path, _ in seen if method == "GET" and path.endswith("/releases/7")]


def test_deploy_wait_takes_steps_and_the_end_from_the_stream(no_config, monkeypatch, capsys):
    """Each `status` event carries the release: the CLI follows the steps and reports the
    end from the stream, with no call of its own (each was an API request, with its token
    check, at every status change of a deploy and once more at its end)."""
    running = {**RELEASE, "status": "upgrading", "finished_at": None}
    running["steps"] = [{"name": "upgrade", "status": "running"}]
    stream = (
        f"event: status\ndata: {json.dumps({'status': 'upgrading', 'release': running})}\n\n"
        'id: 1\nevent: log\ndata: {"sequence": 1, "step": "upgrade", "text": "helm says"}\n\n'
        f"event: status\ndata: {json.dumps({'status': 'succeeded', 'release': RELEASE})}\n\n"
        "event: done\ndata: succeeded\n\n"
    )
    assert _follow_release(stream, monkeypatch) == []
    out = capsys.readouterr()
    assert "helm says" in out.err + out.out
    assert "succeeded in 12s: helm revision 3, every pod Ready" in out.out


def test_deploy_wait_with_an_older_panel_reads_an_ended_release_once(
    no_config, monkeypatch, capsys
):
    """A panel whose `status` events carry no release: the steps are read at each status
    change, and the final state once, after `done`, not also for a bar about to go."""
    stream = (
        'event: status\ndata: {"status": "upgrading", "reason": ""}\n\n'
        'id: 1\nevent: log\ndata: {"sequence": 1, "step": "upgrade", "text": "helm says"}\n\n'
        'event: status\ndata: {"status": "succeeded", "reason": ""}\n\n'
        "event: done\ndata: succeeded\n\n"
    )
    assert len(_follow_release(stream, monkeypatch)) == 2  # after "upgrading"; after `done`
    assert "succeeded in 12s: helm revision 3, every pod Ready" in capsys.readouterr().out


@pytest.mark.parametrize(
    "event",
    [
        "event: status\ndata: not json\n\n",
        'event: status\ndata: ["upgrading"]\n\n',
        'id: 1\nevent: log\ndata: {"sequence": 1, "text": 7}\n\n',
    ],
)
def test_an_event_that_is_not_the_apis_is_one_line_not_a_traceback(
    no_config, monkeypatch, capsys, event
):
    stream = event + "event: done\ndata: succeeded\n\n"

    def api(handler):
        body = stream if handler.path.endswith("/events") else json.dumps(RELEASE)
        handler.send_response(202 if handler.command == "POST" else 200)
        handler.send_header("Content-Length", str(len(body.encode())))
        handler.end_headers()
        handler.wfile.write(body.encode())

    with server(api) as (url, _):
        monkeypatch.setenv("HELMDECK_URL", url)
        monkeypatch.setenv("HELMDECK_TOKEN", "hd_x")
        assert main(["deploy", "todo-app", "--wait"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("helmdeck:")]
    assert len(err) == 1 and "did not answer as Helmdeck's API does" in err[0]


def test_a_status_event_with_a_malformed_release_falls_back_to_a_call(
    no_config, monkeypatch, capsys
):
    broken = {**RELEASE, "steps": ["upgrade"]}
    stream = (
        f"event: status\ndata: {json.dumps({'status': 'succeeded', 'release': broken})}\n\n"
        "event: done\ndata: succeeded\n\n"
    )
    assert len(_follow_release(stream, monkeypatch)) == 1  # the final state, read
    assert "succeeded in 12s: helm revision 3" in capsys.readouterr().out


def _profiles(handler):
    body = json.dumps({"items": []}).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def tls_panel(tmp_path):
    """An https server for 127.0.0.1 whose certificate a fresh CA signed: (context, ca.pem)."""
    from tests.fixtures.faults import tls_material

    tls_material(tmp_path / "certs")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "certs/server-cert.pem", tmp_path / "certs/server-key.pem")
    return context, tmp_path / "certs/ca.pem"


def test_a_panel_on_https_is_verified_against_the_trusted_cas(
    no_config, tls_panel, monkeypatch, capsys
):
    """The TLS context is made at the first https request (not at start), and it still
    verifies: a CA the system (here SSL_CERT_FILE) trusts passes, any other is refused."""
    context, ca = tls_panel
    monkeypatch.setenv("HELMDECK_TOKEN", "hd_x")
    with server(_profiles, tls=context) as (url, seen):
        monkeypatch.setenv("HELMDECK_URL", url)
        assert main(["profiles"]) == 1  # this CA is nobody's
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "CERTIFICATE_VERIFY_FAILED" in err[0]
        assert seen == []  # the token never left over a connection it could not trust

    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setattr("helmdeck_cli.client._OPENER", _fresh_opener())
    with server(_profiles, tls=context) as (url, seen):
        monkeypatch.setenv("HELMDECK_URL", url)
        assert main(["profiles"]) == 0
    assert [(m, p.split("?")[0]) for m, p, _ in seen] == [("GET", "/api/v1/profiles")]
    assert seen[0][2]["Authorization"] == "Bearer hd_x"


def test_a_certificate_for_another_address_is_refused(no_config, tls_panel, monkeypatch, capsys):
    """The CA is trusted, but the certificate names 127.0.0.1 and localhost, and the panel
    is reached as 127.0.0.2: the host check still applies to the lazily made context."""
    context, ca = tls_panel
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setenv("HELMDECK_TOKEN", "hd_x")
    monkeypatch.setattr("helmdeck_cli.client._OPENER", _fresh_opener())
    with server(_profiles, tls=context, host="127.0.0.2") as (url, seen):
        monkeypatch.setenv("HELMDECK_URL", url)
        assert main(["profiles"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mismatch" in err[0].lower() and seen == []


def test_a_panel_on_plain_http_makes_no_tls_context(no_config, monkeypatch):
    """A fresh process (the context would be made at import) that calls a panel on http."""
    import subprocess
    import sys

    count = (
        "import ssl, sys\n"
        "made = []\n"
        "new = ssl.SSLContext.__new__\n"
        "ssl.SSLContext.__new__ = lambda cls, *a, **k: made.append(1) or new(cls, *a, **k)\n"
        "from helmdeck_cli.main import main\n"
        "code = main(['profiles'])\n"
        "print(code, len(made))\n"
    )
    monkeypatch.setenv("HELMDECK_TOKEN", "hd_x")
    with server(_profiles) as (url, seen):
        monkeypatch.setenv("HELMDECK_URL", url)
        done = subprocess.run(  # noqa: S603 - this interpreter
            [sys.executable, "-c", count], capture_output=True, text=True, timeout=60
        )
    assert done.stdout.split()[-2:] == ["0", "0"], done.stdout + done.stderr
    assert len(seen) == 1


def _fresh_opener():
    """The CLI's opener as a new process builds it (its TLS context not made yet)."""
    import urllib.request

    from helmdeck_cli import client

    return urllib.request.build_opener(client._NoRedirects, client._HTTPS)
