"""/static/ served by the ASGI app itself (HELMDECK_SERVE_STATIC), with the pages' headers.

Django's ASGIStaticFilesHandler answers outside the middleware stack, so its responses had
none of the security headers the pages get, and a path that normalised outside the static
roots (`/static/../.env`, `/static/%2e%2e/...`) raised SuspiciousFileOperation: a 500. Here:

- every static response (file, 304, 404) passes through the same header middleware the
  pages do (SecurityMiddleware, ContentSecurityPolicyMiddleware, XFrameOptionsMiddleware,
  taken from settings.MIDDLEWARE in its order, configured by the same SECURE_* settings);
- the path is taken as the server decoded it, once (no second unquote: `%252e` stays
  `%2e`), and anything that is not a plain relative path of normal segments is a 404
  before the file system is asked: `..` or `.` segments, empty segments (`//etc/passwd`),
  backslashes, NUL and other control characters, over-long paths;
- the file found must lie, after resolving symlinks, inside one of the static roots.
"""

import os

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.exception import response_for_exception
from django.http import Http404
from django.utils.module_loading import import_string
from django.views import static

# The middleware that only adds response headers (and the HTTPS redirect): everything a
# static response needs, nothing that reads a session or the database.
HEADER_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
MAX_PATH = 512


def with_page_headers(get_response):
    """get_response wrapped in the header middleware of settings.MIDDLEWARE, in its order."""
    for dotted in reversed([m for m in settings.MIDDLEWARE if m in HEADER_MIDDLEWARE]):
        get_response = import_string(dotted)(get_response)
    return get_response


def static_file(relative):
    """The absolute path of the static file `relative` names, or Http404."""
    segments = relative.split("/")
    if (
        not relative
        or len(relative) > MAX_PATH
        or "\\" in relative
        or any(ord(c) < 0x20 or c == "\x7f" for c in relative)
        or any(s in ("", ".", "..") for s in segments)
    ):
        raise Http404("not a static file path")
    found = finders.find(relative)
    if not found:
        raise Http404("no such static file")
    real = os.path.realpath(found)
    roots = [
        os.path.realpath(storage.location)
        for finder in finders.get_finders()
        for storage in getattr(finder, "storages", {}).values()
    ]
    if not any(real.startswith(root + os.sep) for root in roots) or not os.path.isfile(real):
        raise Http404("no such static file")
    return real


class StaticFilesHandler(ASGIStaticFilesHandler):
    def __init__(self, application):
        super().__init__(application)
        self._respond = with_page_headers(self._file_or_404)

    def serve(self, request):
        return self._respond(request)

    def _file_or_404(self, request):
        try:
            path = static_file(request.path.removeprefix(self.base_url.path))
            directory, name = os.path.split(path)
            return static.serve(request, name, document_root=directory)
        except (Http404, SuspiciousOperation, ValueError, OSError):
            return response_for_exception(request, Http404("no such static file"))
