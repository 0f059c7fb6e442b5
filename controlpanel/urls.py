from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from deployments.api.urls import api_urls
from deployments.views import accounts, health, metrics

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", metrics.metrics, name="metrics"),
    # django.contrib.auth.urls without the password-reset pages: Helmdeck sends no mail, so
    # a reset link could never arrive; an admin sets a forgotten password (admin or
    # `manage.py changepassword`).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/", accounts.PasswordChangeView.as_view(), name="password_change"
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", api_urls()),
    path("", include("deployments.urls")),
]
