"""Forms for the profile pages, by what they hold: fields.py (building blocks), profile.py
(one form per row of the edit page and the formsets), profile_edit.py (`ProfileForms`, the
edit page's forms as one unit, and `profile_initial`), actions.py (import, clone, deploy),
notifications.py (a notification channel, a rule).

Every rule comes from deployments/validators.py (attached from the model fields) or from the
spec parser; nothing here re-implements one.
"""

from deployments.forms.actions import (
    ActionForm,
    CloneForm,
    DeployForm,
    ImportForm,
    ScaleForm,
    SleepScheduleForm,
    TeardownForm,
)
from deployments.forms.fields import LiveValidationMixin, MappingField, marked_deleted, model_fields
from deployments.forms.notifications import ChannelForm, RuleForm
from deployments.forms.profile import (
    COMPONENT_FIELDS,
    COMPONENT_LABELS,
    ComponentForm,
    ConfigForm,
    ProfileForm,
    SecretForm,
)
from deployments.forms.profile_edit import COMPONENT_PATHS, ProfileForms, profile_initial
from deployments.forms.tokens import ApiTokenForm, WebhookForm

__all__ = [
    "ActionForm",
    "ScaleForm",
    "SleepScheduleForm",
    "TeardownForm",
    "ApiTokenForm",
    "ChannelForm",
    "RuleForm",
    "COMPONENT_FIELDS",
    "COMPONENT_LABELS",
    "COMPONENT_PATHS",
    "CloneForm",
    "ComponentForm",
    "ConfigForm",
    "DeployForm",
    "ImportForm",
    "LiveValidationMixin",
    "MappingField",
    "ProfileForm",
    "ProfileForms",
    "SecretForm",
    "WebhookForm",
    "marked_deleted",
    "model_fields",
    "profile_initial",
]
