"""Account forms: the password change, with the old password counted like a login."""

import math

from django import forms
from django.contrib.auth.forms import PasswordChangeForm
from django.views.decorators.debug import sensitive_variables

from deployments.services.logins import PasswordLocked, password_check


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """Django's password change, but a wrong old password is a failed login for django-axes
    (same limit and cool-off), and a locked account is told so instead of checked."""

    error_messages = {
        **PasswordChangeForm.error_messages,
        "password_locked": (
            "Too many wrong passwords for this account: try again in %(wait)s, or ask an "
            "admin to unlock it (python manage.py axes_reset_username %(username)s)."
        ),
    }

    def __init__(self, user, *args, request, **kwargs):
        super().__init__(user, *args, **kwargs)
        self.request = request

    @sensitive_variables("old_password")
    def clean_old_password(self):
        old_password = self.cleaned_data["old_password"]
        try:
            right = password_check(request=self.request, user=self.user, password=old_password)
        except PasswordLocked as locked:
            minutes = math.ceil(locked.wait.total_seconds() / 60) if locked.wait else 0
            raise forms.ValidationError(
                self.error_messages["password_locked"],
                code="password_locked",
                params={
                    "wait": f"{minutes} minute{'s' * (minutes != 1)}" if minutes else "a while",
                    "username": self.user.get_username(),
                },
            ) from None
        if not right:
            raise forms.ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return old_password


class ThrottledAdminPasswordChangeForm(ThrottledPasswordChangeForm):
    required_css_class = "required"
