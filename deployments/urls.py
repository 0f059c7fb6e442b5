from django.urls import path

from deployments.views import pages

app_name = "deployments"

urlpatterns = [
    path("", pages.status, name="status"),
]
