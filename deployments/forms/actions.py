"""Forms of the one-step actions: import a profile file, clone a profile, confirm a deploy,
confirm an action on what runs (restart, scale, delete a pod, sleep, wake)."""

from django import forms
from django.conf import settings

from deployments.forms.fields import model_fields
from deployments.models import Profile
from deployments.validators import (
    REPLICAS_MAX,
    SLEEP_AFTER_MAX,
    validate_replicas,
    validate_sleep_after_hours,
)


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Profile YAML file", widget=forms.ClearableFileInput(attrs={"accept": ".yaml,.yml"})
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.PROFILE_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(f"is larger than {limit // 1024} KiB")
        return upload


class CloneForm(forms.Form):
    name = model_fields(Profile, ["name"])["name"]
    namespace = model_fields(Profile, ["namespace"])["namespace"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].label = "New name"
        self.fields["name"].widget.attrs["autofocus"] = True


class DeployForm(forms.Form):
    """The Deploy confirmation. `token` makes a resubmitted form land on the release it
    already started; `fingerprint` is the profile as the preview showed it."""

    build = forms.BooleanField(
        required=False,
        initial=True,
        label="Build images",
        help_text="Build each component with a build context into the cluster's Docker "
        "before the upgrade. Off: deploy the image tags as they are.",
    )
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    fingerprint = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False)


class ActionForm(forms.Form):
    """The confirm form of an action on what runs (views/operations.py): `token` makes a
    resubmitted form act once; `confirmed` is set by the confirmation page of an action that
    stops pods, so that its form acts rather than asking again."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    confirmed = forms.BooleanField(widget=forms.HiddenInput, required=False)


class ScaleForm(ActionForm):
    replicas = forms.IntegerField(
        label="Replicas",
        min_value=0,
        max_value=REPLICAS_MAX,
        validators=[validate_replicas],
        help_text="Until the next deploy, which sets the profile's number again.",
    )


class SleepScheduleForm(forms.Form):
    """A profile's sleep schedule (views/operations.py; the rule: validators)."""

    hours = forms.IntegerField(
        label="Sleep on its own after (hours)",
        required=False,
        validators=[validate_sleep_after_hours],  # the one rule (its message alone)
        help_text=(
            "Hours without a deploy, an action on what runs or a visit of the profile's page; "
            "empty: never. Wake (or a deploy) brings it back."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hours"].widget.attrs.update(
            min=1, max=SLEEP_AFTER_MAX, step=1, inputmode="numeric", autofocus=True
        )


class TeardownForm(forms.Form):
    """Teardown's confirmation: the profile's name, typed (views/operations.py)."""

    name = forms.CharField(label="Type the profile's name to confirm", max_length=253)
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, profile_name, **kwargs):
        super().__init__(*args, **kwargs)
        self.profile_name = profile_name
        self.fields["name"].widget.attrs.update(autocomplete="off", autofocus=True)

    def clean_name(self):
        typed = self.cleaned_data["name"].strip()
        if typed != self.profile_name:
            raise forms.ValidationError(f"type {self.profile_name} exactly to tear it down")
        return typed
