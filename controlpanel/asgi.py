import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")

application = get_asgi_application()
if settings.HELMDECK_SERVE_STATIC:
    # A self-hosted panel has a handful of small static files: Django serves them itself,
    # so `make run` and the container need no separate web server.
    application = ASGIStaticFilesHandler(application)
