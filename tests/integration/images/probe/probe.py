"""A test workload for the sandbox's real node.

GET /health -> 200; GET /ready -> 200, or 503 once /tmp/not-ready exists (or NOT_READY is
set); GET /env/NAME ->
that variable; GET /resolve/NAME -> the address NAME resolves to (cluster DNS).
Env: GREETING (printed at start), ALLOCATE_MB (allocate and touch that much at start),
EXIT_CODE (exit with it right after start), PORT (8080).
"""

import http.server
import os
import socket
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        status, body = 200, "ok"
        not_ready = os.environ.get("NOT_READY") or os.path.exists("/tmp/not-ready")
        if self.path == "/ready" and not_ready:
            status, body = 503, "not ready"
        elif self.path.startswith("/env/"):
            body = os.environ.get(self.path[5:], "")
        elif self.path.startswith("/resolve/"):
            try:
                body = socket.gethostbyname(self.path[9:])
            except OSError as error:
                status, body = 502, str(error)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("request", self.path, flush=True)


def main():
    print("probe starting:", os.environ.get("GREETING", "hello"), flush=True)
    if os.environ.get("SAY"):  # a last word before a crash, for `logs --previous`
        print(os.environ["SAY"], flush=True)
    if os.environ.get("ALLOCATE_MB"):
        hog = bytearray(int(os.environ["ALLOCATE_MB"]) * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        print("allocated", len(hog), flush=True)
    if os.environ.get("EXIT_CODE"):
        sys.exit(int(os.environ["EXIT_CODE"]))
    server = http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
