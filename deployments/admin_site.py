from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.urls import reverse

ADMIN_GROUP = "admin"


class HelmdeckAdminSite(AdminSite):
    """The admin site is for the `admin` role: members of that group need no staff flag."""

    site_header = "Helmdeck administration"
    site_title = "Helmdeck admin"
    index_title = "Profiles, config and secrets"

    def has_permission(self, request):
        user = request.user
        return user.is_active and (
            user.is_superuser or user.is_staff or user.groups.filter(name=ADMIN_GROUP).exists()
        )

    def password_change(self, request, extra_context=None):
        """Django's, with the throttled view and form: a wrong old password here counts as a
        failed login too (deployments/services/logins.py)."""
        from deployments.account_forms import ThrottledAdminPasswordChangeForm
        from deployments.views.accounts import PasswordChangeView

        request.current_app = self.name
        return PasswordChangeView.as_view(
            form_class=ThrottledAdminPasswordChangeForm,
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)


class HelmdeckAdminConfig(AdminConfig):
    default_site = "deployments.admin_site.HelmdeckAdminSite"
