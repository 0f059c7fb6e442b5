"""Login throttling: who the client is, and password checks outside the login form.

django-axes counts failed logins (limits and lockouts: controlpanel/settings.py). Two
things it does not do by itself live here: it must take the client's address from the
server's peer only (never from headers a client can write), and the password-change
forms check the old password with `check_password`, which axes never sees, so they go
through `password_check` instead.
"""

from datetime import timedelta

from axes.conf import settings  # django's, with axes' defaults (AXES_*) filled in
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.contrib.auth.signals import user_login_failed


class PasswordLocked(Exception):
    """Too many wrong passwords for this account: refused before the password is checked."""

    def __init__(self, wait: timedelta | None):
        super().__init__("too many wrong passwords")
        self.wait = wait


def login_client_address(request) -> str | None:
    """The address axes counts failures against (AXES_CLIENT_IP_CALLABLE). REMOTE_ADDR is
    the ASGI server's peer, or the client a proxy in HELMDECK_TRUSTED_PROXIES forwarded
    (controlpanel/serve.py decides); X-Forwarded-For, X-Real-IP and Forwarded are never
    read here."""
    return request.META.get("REMOTE_ADDR") or None


def password_check(*, request, user, password: str) -> bool:
    """Whether `password` is `user`'s, counted like a login: refused (PasswordLocked) while
    the account is locked out, a wrong one is a failed login for axes (same limit, same
    cool-off, per username and per address), a right one forgets the failures as a
    successful login does."""
    if not settings.AXES_ENABLED:
        return user.check_password(password)
    credentials = {settings.AXES_USERNAME_FORM_FIELD: user.get_username()}
    if not AxesProxyHandler.is_allowed(request, credentials):
        raise PasswordLocked(get_cool_off(request))
    if user.check_password(password):
        if settings.AXES_RESET_ON_SUCCESS:
            AxesProxyHandler.get_implementation().reset_user_attempts(request, credentials)
        return True
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    if getattr(request, "axes_locked_out", False):
        # This failure reached the limit. The form says so itself: clear axes' flag, or its
        # middleware would swap the page for the login lockout page.
        request.axes_locked_out = False
        raise PasswordLocked(get_cool_off(request))
    return False
