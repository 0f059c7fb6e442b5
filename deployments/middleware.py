from django.contrib.auth.middleware import LoginRequiredMiddleware
from django_htmx.http import HttpResponseClientRedirect


class HtmxLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Django's login-required, but an htmx request from an expired session gets an
    HX-Redirect to the login page, not the login form swapped into a page fragment."""

    def handle_no_permission(self, request, view_func):
        response = super().handle_no_permission(request, view_func)
        if getattr(request, "htmx", False):
            return HttpResponseClientRedirect(response["Location"])
        return response
