"""The notifications page's forms: a channel (its Apprise URL, never shown again) and a rule
(the checks themselves: services/notification_channels.py)."""

from django import forms

from deployments.models import (
    CHANNEL_NAME_MAX,
    CHANNEL_URL_MAX,
    RULE_EVENTS,
    NotificationChannel,
    NotificationEvent,
    Profile,
)


class ChannelForm(forms.Form):
    name = forms.CharField(
        max_length=CHANNEL_NAME_MAX,
        help_text="Who it reaches, e.g. “#deploys on Slack” or “on-call email”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    url = forms.CharField(
        label="Apprise URL",
        max_length=CHANNEL_URL_MAX,
        strip=True,
        # a password field: the browser does not keep it, the page never shows it back
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=(
            "Any URL Apprise understands: slack://…, discord://…, msteams://…, tgram://…, "
            "ntfy://…, mailtos://user:password@smtp.example.com, json://host/path (a "
            "JSON POST). It holds credentials: it is stored encrypted and never shown again."
        ),
    )


class RuleForm(forms.Form):
    profile = forms.ModelChoiceField(
        queryset=Profile.objects.order_by("name"),
        required=False,
        empty_label="Team default (every profile without rules of its own)",
    )
    events = forms.MultipleChoiceField(
        choices=[(e, NotificationEvent(e).label) for e in RULE_EVENTS],
        widget=forms.CheckboxSelectMultiple,
    )
    channels = forms.ModelMultipleChoiceField(
        queryset=NotificationChannel.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
    )
