"""The edit page's forms, one row each: the profile, a component, a config entry, a secret;
and the formsets that keep their keys unique."""

from typing import cast

from django import forms

from deployments import validators as v
from deployments.forms.fields import LiveValidationMixin, marked_deleted, model_fields
from deployments.models import Component, ConfigEntry, Profile, SecretEntry
from deployments.spec import DEFAULT_INGRESS_CLASS, DEFAULT_INGRESS_PATH, DEFAULT_PROBES

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
    "ingress_host",
    "ingress_path",
    "ingress_class",
    "ingress_tls_secret",
    *(
        f"{kind}_{part}"
        for kind in DEFAULT_PROBES
        for part in ("path", "initial_delay", "period", "timeout", "failure_threshold")
    ),
)

SOURCE_KEEP, SOURCE_VALUE, SOURCE_ENV = "keep", "value", "env"


class ProfileForm(LiveValidationMixin, forms.Form):
    name = model_fields(Profile, ["name"])["name"]
    namespace = model_fields(Profile, ["namespace"])["namespace"]
    cluster = forms.ChoiceField(choices=())
    environment = model_fields(Profile, ["environment"])["environment"]
    description = model_fields(Profile, ["description"])["description"]

    def __init__(self, *args, cluster_names=(), editing=False, **kwargs):
        super().__init__(*args, **kwargs)
        cluster = cast(forms.ChoiceField, self.fields["cluster"])
        cluster.choices = [(name, name) for name in sorted(cluster_names)]
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
    "ingress_host": "Ingress host",
    "ingress_path": "Ingress path",
    "ingress_class": "Ingress class",
    "ingress_tls_secret": "TLS Secret",
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


INGRESS_DEFAULTS = {"ingress_path": DEFAULT_INGRESS_PATH, "ingress_class": DEFAULT_INGRESS_CLASS}


class ComponentFormBase(LiveValidationMixin, forms.Form):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in COMPONENT_LABELS.items():
            self.fields[name].label = label
        self.fields[
            "node_port"
        ].help_text = f"{v.NODE_PORT_MIN}-{v.NODE_PORT_MAX}, NodePort only; empty: any free port."
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

        self.fields["ingress_host"].required = False
        self.fields["ingress_host"].help_text = (
            "Optional: a hostname routed to this component, e.g. todo.example.test "
            "(map it to `minikube ip` in /etc/hosts)."
        )
        self.fields["ingress_path"].help_text = "Path prefix, e.g. / or /api (default /)."
        self.fields["ingress_class"].help_text = "Default nginx: Minikube's ingress addon."
        for name in ("ingress_path", "ingress_class"):  # their defaults fill in when empty
            self.fields[name].required = False
        self.fields["ingress_tls_secret"].required = False
        self.fields[
            "ingress_tls_secret"
        ].help_text = "Optional: a kubernetes.io/tls Secret in the namespace, for https."

    def clean(self):
        data = super().clean() or {}
        self._clean_ingress(data)
        requests = {"cpu": data.get("cpu_request"), "memory": data.get("memory_request")}
        limits = {"cpu": data.get("cpu_limit"), "memory": data.get("memory_limit")}
        for resource, message in v.limit_errors(requests, limits).items():
            self.add_error(f"{resource}_limit", message)
        return data

    def _clean_ingress(self, data):
        """Empty path and class take their defaults; without a host, a path, class or TLS
        Secret typed would be dropped unseen: said instead."""
        for name, default in INGRESS_DEFAULTS.items():
            if name in data and not data[name]:
                data[name] = default
        if data.get("ingress_host") or "ingress_host" in self.errors:
            return
        typed = [
            name
            for name in ("ingress_path", "ingress_class", "ingress_tls_secret")
            if data.get(name) and data[name] != INGRESS_DEFAULTS.get(name)
        ]
        if typed:
            self.add_error("ingress_host", "set a host for the Ingress, or clear its other fields")


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
        data = super().clean() or {}
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
            if not (self.can_delete and marked_deleted(form))
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
