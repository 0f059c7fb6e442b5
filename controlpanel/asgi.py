import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from controlpanel.static_files import StaticFilesHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")

http = get_asgi_application()
if settings.HELMDECK_SERVE_STATIC:
    # A self-hosted panel has a handful of small static files: Django serves them itself,
    # so `make run` and the container need no separate web server. Every static response
    # carries the pages' security headers; a path outside the static roots is a 404.
    http = StaticFilesHandler(http)


def _application():
    """HTTP for everything; WebSocket only for the pod terminal (deployments/views/
    terminal.py), and refused before any upgrade unless HELMDECK_POD_EXEC is on."""
    from channels.routing import ProtocolTypeRouter

    from deployments.views.terminal import websocket_application

    return ProtocolTypeRouter({"http": http, "websocket": websocket_application()})


application = _application()
