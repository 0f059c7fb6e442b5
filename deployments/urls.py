from django.urls import path

from deployments.views import actions, pages, streams

app_name = "deployments"

urlpatterns = [
    path("", pages.status, name="status"),
    path("profiles/", pages.profile_list, name="profile_list"),
    path("profiles/new/", pages.profile_create, name="profile_create"),
    path("profiles/validate/", pages.profile_validate, name="profile_validate"),
    path("profiles/rows/<slug:kind>/", pages.formset_row, name="formset_row"),
    path("profiles/import/", actions.profile_import_view, name="profile_import"),
    path("profiles/<slug:name>/", pages.profile_detail, name="profile_detail"),
    path("profiles/<slug:name>/edit/", pages.profile_edit, name="profile_edit"),
    path("profiles/<slug:name>/clone/", actions.profile_clone_view, name="profile_clone"),
    path("profiles/<slug:name>/delete/", actions.profile_delete_view, name="profile_delete"),
    path("profiles/<slug:name>/export.yaml", actions.profile_export, name="profile_export"),
    path("releases/<int:pk>/stream/", streams.release_stream, name="release_stream"),
]
