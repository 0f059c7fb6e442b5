"""Account pages Django provides, with Helmdeck's throttled password change."""

from django.contrib.auth import views as auth_views

from deployments.account_forms import ThrottledPasswordChangeForm


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's view with the throttled form; 429 while the account is locked out."""

    form_class = ThrottledPasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error("old_password", "password_locked"):
            response.status_code = 429
        return response
