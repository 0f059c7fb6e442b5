from django.urls import path

from deployments.views import (
    actions,
    clusters,
    logs,
    notifications,
    operations,
    pages,
    releases,
    streams,
    terminal,
    tokens,
    webhooks,
)
from deployments.views import usage as usage_views
from deployments.views.status_stream import status_stream

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
    path("profiles/<slug:name>/deploy/", releases.profile_deploy, name="profile_deploy"),
    path("profiles/<slug:name>/releases/", releases.profile_releases, name="profile_releases"),
    path("profiles/<slug:name>/stream/", streams.profile_stream, name="profile_stream"),
    path(
        "profiles/<slug:name>/components/<slug:component>/restart/",
        operations.component_restart_view,
        name="component_restart",
    ),
    path(
        "profiles/<slug:name>/components/<slug:component>/scale/",
        operations.component_scale_view,
        name="component_scale",
    ),
    path(
        "profiles/<slug:name>/pods/<str:pod>/delete/",
        operations.pod_delete_view,
        name="pod_delete",
    ),
    path(
        "profiles/<slug:name>/pods/<str:pod>/terminal/",
        terminal.pod_terminal,
        name="pod_terminal",
    ),
    path("profiles/<slug:name>/sleep/", operations.profile_sleep_view, name="profile_sleep"),
    path(
        "profiles/<slug:name>/sleep/schedule/",
        operations.profile_sleep_schedule_view,
        name="profile_sleep_schedule",
    ),
    path("profiles/<slug:name>/wake/", operations.profile_wake_view, name="profile_wake"),
    path(
        "profiles/<slug:name>/teardown/", operations.profile_teardown_view, name="profile_teardown"
    ),
    path("releases/<int:pk>/", releases.release_detail, name="release_detail"),
    path("releases/<int:pk>/cancel/", releases.release_cancel_view, name="release_cancel"),
    path("releases/<int:pk>/rollback/", releases.release_rollback, name="release_rollback"),
    path("releases/<int:pk>/diff/<int:other>/", releases.release_diff, name="release_diff"),
    path("releases/<int:pk>/stream/", streams.release_stream, name="release_stream"),
    path("clusters/", clusters.cluster_list, name="cluster_list"),
    path("clusters/<slug:name>/", clusters.cluster_detail, name="cluster_detail"),
    path("clusters/<slug:name>/check/", clusters.cluster_check, name="cluster_check"),
    path("status/stream/", status_stream, name="status_stream"),
    path("tokens/", tokens.api_tokens, name="api_tokens"),
    path("notifications/", notifications.notifications, name="notifications"),
    path(
        "notifications/channels/",
        notifications.channel_create_view,
        name="notification_channel_create",
    ),
    path(
        "notifications/channels/<int:pk>/test/",
        notifications.channel_test_view,
        name="notification_channel_test",
    ),
    path(
        "notifications/channels/<int:pk>/toggle/",
        notifications.channel_toggle_view,
        name="notification_channel_toggle",
    ),
    path(
        "notifications/channels/<int:pk>/delete/",
        notifications.channel_delete_view,
        name="notification_channel_delete",
    ),
    path("notifications/rules/", notifications.rule_create_view, name="notification_rule_create"),
    path(
        "notifications/rules/<int:pk>/delete/",
        notifications.rule_delete_view,
        name="notification_rule_delete",
    ),
    path("profiles/<slug:name>/webhooks/", webhooks.profile_webhooks, name="profile_webhooks"),
    path(
        "profiles/<slug:name>/webhooks/<int:pk>/revoke/",
        webhooks.webhook_revoke_view,
        name="webhook_revoke",
    ),
    path("tokens/<int:pk>/revoke/", tokens.api_token_revoke_view, name="api_token_revoke"),
    path("profiles/<slug:name>/usage/", usage_views.profile_usage_view, name="profile_usage"),
    path("profiles/<slug:name>/logs/", logs.pod_logs_page, name="pod_logs"),
    path("profiles/<slug:name>/logs/stream/", logs.pod_log_stream, name="pod_log_stream"),
    path("profiles/<slug:name>/logs/download/", logs.pod_log_download, name="pod_log_download"),
]
