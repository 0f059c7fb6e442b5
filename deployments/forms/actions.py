"""Forms of the one-step actions: import a profile file, clone a profile, confirm a deploy."""

from django import forms
from django.conf import settings

from deployments.forms.fields import model_fields
from deployments.models import Profile


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
