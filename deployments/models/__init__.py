"""The app's models, by what they hold: profiles.py (clusters, profiles and their parts, the
audit trail), releases.py (releases, steps, log lines), pods.py (the watcher's pod rows),
tokens.py (API tokens), webhooks.py (deploy webhooks and their deliveries), terminals.py (pod
terminal sessions), notifications.py (channels, rules, messages and their attempts)."""

from deployments.models.notifications import (
    CHANNEL_NAME_MAX,
    CHANNEL_URL_MAX,
    RULE_EVENTS,
    Notification,
    NotificationAttempt,
    NotificationChannel,
    NotificationEvent,
    NotificationRule,
    ProfileHealthWatch,
)
from deployments.models.pods import PodState
from deployments.models.profiles import (
    AuditEvent,
    Cluster,
    Component,
    ConfigEntry,
    Profile,
    SecretEntry,
)
from deployments.models.releases import (
    ACTIVE_RELEASE_STATUSES,
    TERMINAL_RELEASE_STATUSES,
    LogLine,
    Release,
    ReleaseStatus,
    Step,
)
from deployments.models.terminals import TerminalSession
from deployments.models.tokens import ApiToken
from deployments.models.webhooks import DeployWebhook, WebhookDelivery

__all__ = [
    "CHANNEL_NAME_MAX",
    "CHANNEL_URL_MAX",
    "RULE_EVENTS",
    "ACTIVE_RELEASE_STATUSES",
    "TERMINAL_RELEASE_STATUSES",
    "ApiToken",
    "AuditEvent",
    "Cluster",
    "Component",
    "ConfigEntry",
    "DeployWebhook",
    "LogLine",
    "Notification",
    "NotificationAttempt",
    "NotificationChannel",
    "NotificationEvent",
    "NotificationRule",
    "PodState",
    "Profile",
    "ProfileHealthWatch",
    "Release",
    "ReleaseStatus",
    "SecretEntry",
    "Step",
    "TerminalSession",
    "WebhookDelivery",
]
