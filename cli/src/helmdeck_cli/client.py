"""Helmdeck's API over HTTP: JSON calls, and a release's server-sent events (resumed with
Last-Event-ID after a dropped connection or a retry hint). The standard library only."""

import http.client
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from helmdeck_cli import __version__

USER_AGENT = f"helmdeck-cli/{__version__}"
CALL_TIMEOUT = 30  # seconds
# a stream is silent at most a heartbeat (15 s) before a comment line; three missed: gone
STREAM_TIMEOUT = 50
RECONNECTS = 8


class ApiError(Exception):
    """A call the API refused (status >= 400, with its problems: [(path, message)]) or
    could not be made (status 0)."""

    def __init__(self, status, problems):
        self.status = status
        self.problems = problems
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in problems))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect with every header, the token too, to wherever it
    points (another host, plain http) and turn a POST into a GET: refuse it instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise ApiError(
            0,
            [("", f"the panel redirected to {newurl}; log in with that address instead")],
        )


class _HTTPS(urllib.request.HTTPSHandler):
    """urllib's HTTPS handler, its TLS context (the system's CA certificates, or
    SSL_CERT_FILE's) made when a request first needs it: urllib makes it with the opener,
    ~55 ms of every command's start, and a panel on plain http (a laptop's, on loopback)
    never needs it."""

    def __init__(self):
        urllib.request.AbstractHTTPHandler.__init__(self)
        self._tls = None

    def https_open(self, req):
        if self._tls is None:
            self._tls = ssl.create_default_context()  # verifies the certificate and host
            self._tls.set_alpn_protocols(["http/1.1"])
        return self.do_open(http.client.HTTPSConnection, req, context=self._tls)


_OPENER = urllib.request.build_opener(_NoRedirects, _HTTPS)


class Client:
    def __init__(self, url, token):
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token

    def _request(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("User-Agent", USER_AGENT)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        return request

    def call(self, method, path, body=None, *, params=None):
        if params:
            path += "?" + urllib.parse.urlencode(params)
        request = self._request(method, path, body, {"Accept": "application/json"})
        try:
            with _OPENER.open(request, timeout=CALL_TIMEOUT) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, [("", f"cannot reach {self.base}: {reason}")]) from None
        try:
            return json.loads(text) if text else None
        except ValueError:
            raise ApiError(
                0, [("", f"{self.base} did not answer as Helmdeck's API does (not JSON)")]
            ) from None

    def events(self, release_id, after=0):
        """(event, id, data) of a release's stream from `after` until its `done` event,
        reconnecting (Last-Event-ID) when the connection drops or the server says retry."""
        last, failures = after, 0
        while True:
            request = self._request(
                "GET",
                f"/releases/{release_id}/events",
                headers={"Accept": "text/event-stream", "Last-Event-ID": str(last)},
            )
            wait = 1.0
            try:
                with _OPENER.open(request, timeout=STREAM_TIMEOUT) as response:
                    for event, event_id, data, retry in _messages(response):
                        failures = 0
                        if retry is not None:
                            wait = retry / 1000
                            continue
                        if event_id is not None and event_id.isdigit():
                            last = int(event_id)
                        yield event, event_id, data
                        if event in ("done", "login-required"):
                            return
            except urllib.error.HTTPError as exc:
                raise _refusal(exc) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                failures += 1
                if failures > RECONNECTS:
                    reason = getattr(exc, "reason", exc)
                    raise ApiError(
                        0, [("", f"lost the stream of release #{release_id}: {reason}")]
                    ) from None
                wait = min(2.0**failures / 4, 10.0)
            time.sleep(wait)


def _messages(response):
    """(event, id, data, retry ms) per message of an SSE response."""
    event, event_id, data, retry = "message", None, [], None
    for raw in response:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data or retry is not None:
                yield event, event_id, "\n".join(data), retry
            event, event_id, data, retry = "message", None, [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
        elif field == "retry" and value.isdigit():
            retry = int(value)


def _refusal(exc):
    try:
        body = json.loads(exc.read() or b"{}")
        problems = [(e.get("path", ""), e.get("message", "")) for e in body.get("errors", [])]
    except (ValueError, AttributeError, TypeError):
        problems = []
    return ApiError(exc.code, problems or [("", f"HTTP {exc.code} {exc.reason}")])
