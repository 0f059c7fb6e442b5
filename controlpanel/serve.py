"""Serve the panel: `python -m controlpanel.serve [uvicorn options]`.

uvicorn on its own believes X-Forwarded-For from 127.0.0.1 and ::1 (its
--forwarded-allow-ips default), so any local client (or a local proxy that passes the
header through) could claim a new address with every request, and the login limit per
address would count nothing. Every way the panel is served (`make run`, the image,
compose) starts uvicorn through here: X-Forwarded-For (and X-Forwarded-Proto) count only
from the proxies named in HELMDECK_TRUSTED_PROXIES (addresses or CIDR networks, from the
environment or .env; none by default). X-Real-IP and Forwarded are never read.
"""

import ipaddress
import os
import sys

APP = "controlpanel.asgi:application"
WS_MAX_SIZE = 128 * 1024
OWNED = ("--proxy-headers", "--no-proxy-headers", "--forwarded-allow-ips")


def trusted_proxies() -> list[str]:
    """HELMDECK_TRUSTED_PROXIES as settings read it, each entry checked: an address or a
    network, never a name or `*` (uvicorn would take those silently)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
    from django.conf import settings

    proxies = [entry.strip() for entry in settings.HELMDECK_TRUSTED_PROXIES if entry.strip()]
    for entry in proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SystemExit(
                f"helmdeck: HELMDECK_TRUSTED_PROXIES: {entry!r} is not an IP address or "
                "network (e.g. 10.0.0.5 or 10.0.0.0/24)"
            ) from None
    return proxies


def proxy_options(proxies: list[str]) -> list[str]:
    if not proxies:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", ",".join(proxies)]


def main(argv: list[str]) -> None:
    for arg in argv:
        if arg.split("=", 1)[0] in OWNED:
            raise SystemExit(f"helmdeck: {arg} is not accepted here; set HELMDECK_TRUSTED_PROXIES")
    import uvicorn.main

    # WebSocket frames (the pod terminal's) of at most 128 KiB, not uvicorn's 16 MiB: the
    # terminal takes 64 KiB of input at a time (static/terminal.js splits a longer paste)
    uvicorn.main.main(
        [APP, "--ws-max-size", str(WS_MAX_SIZE), *argv, *proxy_options(trusted_proxies())],
        prog_name="controlpanel.serve",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
