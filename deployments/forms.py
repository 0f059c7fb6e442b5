"""Forms for the profile pages. Every rule comes from deployments/validators.py (attached
from the model fields) or from the spec parser; nothing here re-implements one.

The edit page is one ProfileForm plus three formsets (components, config, secrets).
`ProfileForms` binds them together, builds the spec document the service parses, and maps
spec error paths (`components.web.service.nodePort`) back onto the form fields.
"""

from django import forms
from django.conf import settings
from django.urls import reverse

from deployments import validators as v
from deployments.models import Component, ConfigEntry, Profile, SecretEntry
from deployments.spec import DEFAULT_PROBES, MAX_COMPONENTS, MAX_ENTRIES, component_spec

COMPONENT_FIELDS = (
    "name",
    "image",
    "tag",
    "build_context",
    "dockerfile",
    "build_args",
    "pod_annotations",
    "port",
    "replicas",
    "service_type",
    "node_port",
    "cpu_request",
    "cpu_limit",
    "memory_request",
    "memory_limit",
    *(
        f"{kind}_{part}"
        for kind in DEFAULT_PROBES
        for part in ("path", "initial_delay", "period", "timeout", "failure_threshold")
    ),
)
# spec path below `components.<name>.` -> ComponentForm field
COMPONENT_PATHS = {
    "": "name",
    "image": "image",
    "tag": "tag",
    "build": "build_context",
    "build.context": "build_context",
    "build.dockerfile": "dockerfile",
    "port": "port",
    "build.args": "build_args",
    "podAnnotations": "pod_annotations",
    "replicas": "replicas",
    "service": "service_type",
    "service.type": "service_type",
    "service.nodePort": "node_port",
    "resources": "cpu_request",
    "resources.requests": "cpu_request",
    "resources.limits": "cpu_limit",
    "resources.requests.cpu": "cpu_request",
    "resources.limits.cpu": "cpu_limit",
    "resources.requests.memory": "memory_request",
    "resources.limits.memory": "memory_limit",
    **{
        f"probes.{kind}.{key}": f"{kind}_{field}"
        for kind in DEFAULT_PROBES
        for key, field in (
            ("path", "path"),
            ("initialDelaySeconds", "initial_delay"),
            ("periodSeconds", "period"),
            ("timeoutSeconds", "timeout"),
            ("failureThreshold", "failure_threshold"),
        )
    },
}
SOURCE_KEEP, SOURCE_VALUE, SOURCE_ENV = "keep", "value", "env"


class MappingField(forms.JSONField):
    """A JSON object field that reports any undecodable input as a field error.

    forms.JSONField lets ValueError escape for input json refuses to convert (an integer
    with more than 4300 digits): a 500 on a hostile POST, found by the form fuzz test. The
    json module recurses once per nesting level, so 100,000 "[" raise RecursionError (a 500
    too; tests/security/test_hostile_yaml.py).
    """

    def to_python(self, value):
        try:
            return super().to_python(value)
        except (ValueError, RecursionError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except (ValueError, RecursionError):
            return forms.fields.InvalidJSONInput(data)


def model_fields(model, names, **overrides):
    """Form fields for model fields, carrying the model's validators.py rules along."""
    fields = forms.fields_for_model(
        model,
        fields=names,
        field_classes={
            n: MappingField
            for n in names
            if model._meta.get_field(n).get_internal_type() == "JSONField"
        },
    )
    for name, field in fields.items():
        rules = [
            rule
            for rule in model._meta.get_field(name).validators
            if getattr(rule, "__module__", "") == v.__name__
        ]
        field.validators = [*field.validators, *rules]
        for attr, value in overrides.get(name, {}).items():
            setattr(field, attr, value)
    return fields


class LiveValidationMixin:
    """Every visible input validates itself on blur through the validation endpoint."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        url = reverse("deployments:profile_validate")
        for name, field in self.fields.items():
            widget = field.widget
            if widget.is_hidden or isinstance(widget, forms.CheckboxInput):
                continue
            html_id = f"id_{self.add_prefix(name)}"
            widget.attrs.update(
                {
                    "hx-post": url,
                    "hx-trigger": "blur changed",
                    "hx-target": f"#{html_id}-errors",
                    "hx-swap": "outerHTML",
                    "aria-describedby": f"{html_id}-errors",
                }
            )


class ProfileForm(LiveValidationMixin, forms.Form):
    name = model_fields(Profile, ["name"])["name"]
    namespace = model_fields(Profile, ["namespace"])["namespace"]
    cluster = forms.ChoiceField(choices=())
    environment = model_fields(Profile, ["environment"])["environment"]
    description = model_fields(Profile, ["description"])["description"]

    def __init__(self, *args, cluster_names=(), editing=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cluster"].choices = [(name, name) for name in sorted(cluster_names)]
        self.fields["description"].required = False
        self.fields["description"].widget.attrs["rows"] = 2
        self.fields["name"].help_text = "Lowercase DNS label; also the Helm release name."
        self.fields["namespace"].help_text = "Kubernetes namespace the release goes into."
        if editing:
            # The name is the Helm release: renaming would orphan the running release.
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "The Helm release name; clone to use another."
            self.fields["namespace"].widget.attrs["autofocus"] = True
        else:
            self.fields["name"].widget.attrs["autofocus"] = True


COMPONENT_LABELS = {
    "name": "Name",
    "image": "Image repository",
    "tag": "Tag",
    "port": "Container port",
    "service_type": "Service type",
    "node_port": "NodePort",
    "cpu_request": "CPU request",
    "cpu_limit": "CPU limit",
    "memory_request": "Memory request",
    "memory_limit": "Memory limit",
    "build_context": "Build context",
    "dockerfile": "Dockerfile",
    "build_args": "Build arguments (JSON)",
    "pod_annotations": "Pod annotations (JSON)",
    **{
        f"{kind}_{part}": label
        for kind in DEFAULT_PROBES
        for part, label in (
            ("path", "Path"),
            ("initial_delay", "Initial delay (s)"),
            ("period", "Period (s)"),
            ("timeout", "Timeout (s)"),
            ("failure_threshold", "Failure threshold"),
        )
    },
}


class ComponentFormBase(LiveValidationMixin, forms.Form):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in COMPONENT_LABELS.items():
            self.fields[name].label = label
        self.fields["node_port"].help_text = "30000-32767, NodePort only; empty: any free port."
        self.fields["build_context"].help_text = (
            "Folder to build, relative to the project, inside a source root "
            "(HELMDECK_SOURCE_ROOTS; examples/ by default)."
        )
        for name, example in (
            ("build_args", '{"BASE_IMAGE": "python:3.11-slim"}'),
            ("pod_annotations", '{"prometheus.io/scrape": "true"}'),
        ):
            self.fields[name].required = False
            self.fields[name].widget.attrs["rows"] = 1
            self.fields[name].help_text = f"Optional, e.g. {example}"

    def clean(self):
        data = super().clean()
        requests = {"cpu": data.get("cpu_request"), "memory": data.get("memory_request")}
        limits = {"cpu": data.get("cpu_limit"), "memory": data.get("memory_limit")}
        for resource, message in v.limit_errors(requests, limits).items():
            self.add_error(f"{resource}_limit", message)
        return data


ComponentForm = type(
    "ComponentForm", (ComponentFormBase,), model_fields(Component, COMPONENT_FIELDS)
)


class ConfigForm(LiveValidationMixin, forms.Form):
    key = model_fields(ConfigEntry, ["key"])["key"]
    value = forms.CharField(
        required=False,
        strip=False,
        validators=[v.validate_config_value],
        widget=forms.Textarea(attrs={"rows": 1}),
    )


class SecretForm(LiveValidationMixin, forms.Form):
    """A saved secret value is never rendered back; choosing "keep" keeps it."""

    SOURCES = [
        (SOURCE_KEEP, "keep current value"),
        (SOURCE_VALUE, "new value"),
        (SOURCE_ENV, "from environment variable"),
    ]
    key = model_fields(SecretEntry, ["key"])["key"]
    source = forms.ChoiceField(choices=SOURCES, initial=SOURCE_VALUE)
    value = forms.CharField(
        required=False,
        strip=False,
        max_length=v.SECRET_VALUE_MAX,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted, never shown again.",
    )
    from_env = model_fields(SecretEntry, ["from_env"])["from_env"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from_env"].label = "Environment variable"
        self.fields["from_env"].required = False

    def clean(self):
        data = super().clean()
        source = data.get("source")
        if source == SOURCE_VALUE and "value" not in self.errors:
            try:
                v.validate_secret_value(data.get("value"))
            except forms.ValidationError as exc:
                self.add_error("value", exc)
        if source == SOURCE_ENV and not data.get("from_env") and "from_env" not in self.errors:
            try:
                v.validate_env_var_name(data.get("from_env"))
            except forms.ValidationError as exc:
                self.add_error("from_env", exc)
        return data


class UniqueKeyFormSet(forms.BaseFormSet):
    """A formset whose rows are keyed by one field (component name, config/secret key)."""

    key_field = "key"
    noun = "key"

    def live_forms(self):
        """Rows that take part: valid-looking, not deleted, not an untouched extra row."""
        return [
            form
            for form in self.forms
            if form.has_changed() or form in self.initial_forms
            if not (self.can_delete and self._should_delete_form(form))
        ]

    def clean(self):
        seen = {}
        for form in self.live_forms():
            key = getattr(form, "cleaned_data", {}).get(self.key_field)
            if not key:
                continue
            if key in seen:
                form.add_error(self.key_field, f"is used twice; each {self.noun} must be unique")
            seen[key] = form

    def form_for(self, key):
        for form in self.live_forms():
            if getattr(form, "cleaned_data", {}).get(self.key_field) == key:
                return form
        return None


class ComponentFormSetBase(UniqueKeyFormSet):
    key_field = "name"
    noun = "component name"

    def clean(self):
        super().clean()
        if not self.live_forms():
            raise forms.ValidationError("Add at least one component, e.g. backend.")


def _formset(form, base, *, extra, max_num):
    return forms.formset_factory(
        form,
        formset=base,
        extra=extra,
        can_delete=True,
        max_num=max_num,
        validate_max=True,
        absolute_max=max_num,
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


class ProfileForms:
    """The profile form and its three formsets, bound or unbound, as one unit."""

    def __init__(self, data=None, *, profile=None, initial=None, cluster_names=(), extra=None):
        initial = initial or {}
        editing = profile is not None
        extra = extra or {}
        self.profile = profile
        self.profile_form = ProfileForm(
            data, initial=initial.get("profile"), cluster_names=cluster_names, editing=editing
        )
        self.components = _formset(
            ComponentForm,
            ComponentFormSetBase,
            extra=extra.get("components", 0 if editing else 1),
            max_num=MAX_COMPONENTS,
        )(data, initial=initial.get("components"), prefix="components")
        self.config = _formset(
            ConfigForm, UniqueKeyFormSet, extra=extra.get("config", 1), max_num=MAX_ENTRIES
        )(data, initial=initial.get("config"), prefix="config")
        secret_set = _formset(
            SecretForm, UniqueKeyFormSet, extra=extra.get("secrets", 1), max_num=MAX_ENTRIES
        )
        self.secrets = secret_set(data, initial=initial.get("secrets"), prefix="secrets")
        self.errors = []  # spec errors that belong to no field

    @property
    def formsets(self):
        return (self.components, self.config, self.secrets)

    def all_forms(self):
        yield self.profile_form
        for formset in self.formsets:
            yield from formset.forms

    def bound_field(self, html_name):
        """The bound field whose input is named `html_name` (e.g. components-0-cpu_limit)."""
        for form in self.all_forms():
            for name in form.fields:
                if form.add_prefix(name) == html_name:
                    return form[name]
        return None

    @property
    def has_errors(self):
        """True when a bound submission has any error, anywhere (drives the summary)."""
        if not self.profile_form.is_bound:
            return False
        return (
            bool(self.errors)
            or any(form.errors for form in self.all_forms())
            or any(formset.non_form_errors() for formset in self.formsets)
        )

    def is_valid(self):
        results = [self.profile_form.is_valid()] + [fs.is_valid() for fs in self.formsets]
        return all(results)

    def spec_document(self):
        """The profile document (the profile YAML's shape) the valid forms describe."""
        data = self.profile_form.cleaned_data
        name = self.profile.name if self.profile else data["name"]
        secrets = {}
        for form in self.secrets.live_forms():
            row = form.cleaned_data
            if row["source"] == SOURCE_VALUE:
                secrets[row["key"]] = {"value": row["value"]}
            elif row["source"] == SOURCE_ENV:
                secrets[row["key"]] = {"fromEnv": row["from_env"]}
            else:
                secrets[row["key"]] = {"stored": True}
        return {
            "name": name,
            "namespace": data["namespace"],
            "cluster": data["cluster"],
            "environment": data["environment"],
            "description": data.get("description") or "",
            "components": {
                form.cleaned_data["name"]: component_spec(form.cleaned_data)
                for form in self.components.live_forms()
            },
            "config": {
                form.cleaned_data["key"]: form.cleaned_data["value"]
                for form in self.config.live_forms()
            },
            "secrets": secrets,
        }

    def add_spec_errors(self, errors):
        """Put each spec FieldError under its field; the rest go to `self.errors`."""
        for error in errors:
            if not self._place(error.path, error.message):
                self.errors.append(str(error))

    def _place(self, path, message):
        head, _, rest = path.partition(".")
        if head in self.profile_form.fields and not rest:
            self.profile_form.add_error(head, message)
            return True
        if head == "components" and rest:
            name, _, sub = rest.partition(".")
            form = self.components.form_for(name)
            field = COMPONENT_PATHS.get(sub)
            if form is not None and field:
                form.add_error(field, message)
                return True
        if head in ("config", "secrets") and rest:
            formset = self.config if head == "config" else self.secrets
            for form in formset.live_forms():
                key = getattr(form, "cleaned_data", {}).get("key")
                if key and (rest == key or rest.startswith(f"{key}.")):
                    form.add_error(self._entry_field(head, rest[len(key) + 1 :], form), message)
                    return True
        return False

    @staticmethod
    def _entry_field(head, sub, form):
        if head == "config":
            return "value"
        if sub in ("value", "fromEnv"):
            return "value" if sub == "value" else "from_env"
        return "source" if form.cleaned_data.get("source") == SOURCE_KEEP else "key"


def profile_initial(profile):
    """Initial data for editing a saved profile (secret values are never included)."""
    return {
        "profile": {
            "name": profile.name,
            "namespace": profile.namespace,
            "cluster": profile.cluster.name,
            "environment": profile.environment,
            "description": profile.description,
        },
        "components": [
            {name: getattr(c, name) for name in COMPONENT_FIELDS} for c in profile.components.all()
        ],
        "config": [{"key": e.key, "value": e.value} for e in profile.config.all()],
        "secrets": [
            {
                "key": e.key,
                "source": SOURCE_ENV if e.from_env else SOURCE_KEEP,
                "from_env": e.from_env,
            }
            for e in profile.secrets.all()
        ],
    }


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
