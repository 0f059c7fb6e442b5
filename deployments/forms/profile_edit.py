"""`ProfileForms` binds the profile form and its three formsets (components, config,
secrets) as one unit, builds the spec document the service parses, and maps spec error
paths (`components.web.service.nodePort`) back onto the form fields."""

from django import forms

from deployments.forms.profile import (
    COMPONENT_FIELDS,
    SOURCE_ENV,
    SOURCE_KEEP,
    SOURCE_VALUE,
    ComponentForm,
    ComponentFormSetBase,
    ConfigForm,
    ProfileForm,
    SecretForm,
    UniqueKeyFormSet,
)
from deployments.spec import DEFAULT_PROBES, MAX_COMPONENTS, MAX_ENTRIES
from deployments.spec_rows import component_spec

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
    "ingress": "ingress_host",
    "ingress.host": "ingress_host",
    "ingress.path": "ingress_path",
    "ingress.className": "ingress_class",
    "ingress.tlsSecret": "ingress_tls_secret",
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
