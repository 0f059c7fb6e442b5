from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig

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


class HelmdeckAdminConfig(AdminConfig):
    default_site = "deployments.admin_site.HelmdeckAdminSite"
