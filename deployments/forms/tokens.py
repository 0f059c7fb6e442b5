"""The forms that create an API token and a deploy webhook (the rules themselves:
services/api_tokens.py, services/webhooks.py)."""

from django import forms

from deployments.models import Profile
from deployments.services.api_tokens import NAME_MAX

EXPIRY_CHOICES = [
    ("", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
]


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX,
        help_text="Where it is used, e.g. “CI deploy job” or “my laptop”.",
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}),
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires",
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        initial="90",
    )
    read_only = forms.BooleanField(
        required=False,
        label="Read-only",
        help_text="It can list and watch, never deploy or change anything.",
    )
    profiles = forms.ModelMultipleChoiceField(
        queryset=Profile.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Only these profiles",
        help_text="None ticked: every profile your role reaches.",
    )


class WebhookForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Who calls it, e.g. “GitHub Actions” or “registry”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    build = forms.BooleanField(
        required=False,
        label="Build the images first",
        help_text="Off: deploy the tag the call names, as a registry push does.",
    )
