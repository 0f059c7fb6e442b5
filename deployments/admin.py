"""The admin site (deployments.admin_site.HelmdeckAdminSite) for the `admin` role.

A profile and its inlines are saved as one spec through `profile_apply_spec`, the same
service the pages and `import_profile` use: config changes are audited before/after by
`config_set`, secrets by `secret_set` ("changed", never a value), components and profile
fields by `profile.changed`. The whole spec is validated by `parse_spec` before anything is
written, and its errors are shown under the inline field they belong to.

Secret values are write-only: the inline has a `new_value` password field that is never
rendered back; the ciphertext is not a form field at all.
"""

from collections.abc import Sequence

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from deployments import validators as v
from deployments.forms import (
    COMPONENT_FIELDS,
    COMPONENT_LABELS,
    COMPONENT_PATHS,
    MappingField,
    marked_deleted,
)
from deployments.models import (
    ApiToken,
    AuditEvent,
    Cluster,
    Component,
    ConfigEntry,
    Profile,
    SecretEntry,
    TerminalSession,
)
from deployments.services import profiles as services
from deployments.services.api_tokens import api_token_revoke
from deployments.spec import SpecError, parse_spec
from deployments.spec_rows import component_spec


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kube_context",
        "minikube_profile",
        "image_delivery",
        "capacity_cpus",
        "capacity_memory",
    )
    search_fields = ("name", "kube_context")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.audit_record(
            actor=request.user,
            action="cluster.changed" if change else "cluster.created",
            target=obj.name,
            after={f: str(form.cleaned_data.get(f)) for f in form.changed_data},
        )

    def delete_model(self, request, obj):
        services.audit_record(actor=request.user, action="cluster.deleted", target=obj.name)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class SpecFormSet(forms.BaseInlineFormSet):
    """An inline formset of the profile; the last one validates the whole profile spec.

    ProfileAdmin._create_formsets links the formsets (`siblings`) so the last one can build
    the spec from all of them and place each spec error under its field.
    """

    siblings: Sequence["SpecFormSet"] = ()

    def live_forms(self):
        return [
            form
            for form in self.forms
            if (form.has_changed() or form.instance.pk)
            and not (self.can_delete and marked_deleted(form))
        ]

    def clean(self):
        super().clean()
        siblings = list(self.siblings)
        if not siblings or self is not siblings[-1] or any(self.errors):
            return
        if not all(formset.is_valid() for formset in siblings if formset is not self):
            return
        try:
            spec = parse_spec(
                spec_document(self.instance, siblings), cluster_names=services.cluster_names()
            )
            existing = Profile.objects.filter(pk=self.instance.pk).first()
            services.profile_check_conflicts(
                spec=spec, cluster=Cluster.objects.get(name=spec["cluster"]), profile=existing
            )
        except SpecError as exc:
            unplaced = [str(e) for e in exc.errors if not place_error(e, siblings)]
            components = _by_model(siblings)[Component]
            if components is not self:  # "components: needs at least one" belongs there
                for message in [m for m in unplaced if m.startswith("components")]:
                    components.non_form_errors().append(message)
                    unplaced.remove(message)
            raise ValidationError(
                unplaced or "The profile has errors; see the fields above."
            ) from None


def _by_model(formsets):
    return {formset.model: formset for formset in formsets}


def spec_document(profile, formsets):
    """The profile document that the admin form and its inlines describe."""
    by_model = _by_model(formsets)
    return {
        "name": profile.name,
        "namespace": profile.namespace,
        "cluster": profile.cluster.name if profile.cluster_id else "",
        "environment": profile.environment,
        "description": profile.description,
        "components": {
            form.cleaned_data["name"]: component_spec(form.cleaned_data)
            for form in by_model[Component].live_forms()
        },
        "config": {
            form.cleaned_data["key"]: form.cleaned_data["value"]
            for form in by_model[ConfigEntry].live_forms()
        },
        "secrets": {
            form.cleaned_data["key"]: form.secret_source()
            for form in by_model[SecretEntry].live_forms()
        },
    }


def place_error(error, formsets):
    """Put a spec FieldError under its inline field. Returns False when it has no field."""
    by_model = _by_model(formsets)
    head, _, rest = error.path.partition(".")
    if head == "components":
        name, _, sub = rest.partition(".")
        for form in by_model[Component].live_forms():
            if form.cleaned_data.get("name") == name and sub in COMPONENT_PATHS:
                form.add_error(COMPONENT_PATHS[sub], error.message)
                return True
    if head in ("config", "secrets"):
        model = ConfigEntry if head == "config" else SecretEntry
        for form in by_model[model].live_forms():
            key = form.cleaned_data.get("key")
            if key and (rest == key or rest.startswith(f"{key}.")):
                sub = rest[len(key) + 1 :]
                field = (
                    "value"
                    if head == "config"
                    else {"value": "new_value", "fromEnv": "from_env"}.get(sub, "key")
                )
                form.add_error(field, error.message)
                return True
    return False


class ComponentForm(forms.ModelForm):
    class Meta:
        model = Component
        fields = COMPONENT_FIELDS
        field_classes = {"build_args": MappingField, "pod_annotations": MappingField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in COMPONENT_LABELS.items():
            self.fields[name].label = label

    def validate_constraints(self):
        """Left to parse_spec: it says which field is wrong and why (names are unique per
        profile through the formset's validate_unique)."""


class ComponentInline(admin.StackedInline):
    model = Component
    form = ComponentForm
    formset = SpecFormSet
    extra = 0
    fieldsets = [
        (
            None,
            {
                "fields": [
                    ("name", "image", "tag"),
                    ("port", "replicas"),
                    ("service_type", "node_port"),
                ]
            },
        ),
        (
            "Resources",
            {"fields": [("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")]},
        ),
        (
            "Build",
            {
                "classes": ["collapse"],
                "fields": [("build_context", "dockerfile"), ("build_args", "pod_annotations")],
            },
        ),
        (
            "Ingress",
            {
                "classes": ["collapse"],
                "fields": [
                    ("ingress_host", "ingress_path"),
                    ("ingress_class", "ingress_tls_secret"),
                ],
            },
        ),
        (
            "Probes",
            {
                "classes": ["collapse"],
                "fields": [
                    (
                        "liveness_path",
                        "liveness_initial_delay",
                        "liveness_period",
                        "liveness_timeout",
                        "liveness_failure_threshold",
                    ),
                    (
                        "readiness_path",
                        "readiness_initial_delay",
                        "readiness_period",
                        "readiness_timeout",
                        "readiness_failure_threshold",
                    ),
                ],
            },
        ),
    ]


class ConfigEntryInline(admin.TabularInline):
    model = ConfigEntry
    formset = SpecFormSet
    extra = 0
    fields = ("key", "value", "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")
    formfield_overrides = {
        ConfigEntry._meta.get_field("value").__class__: {
            "widget": forms.Textarea(attrs={"rows": 1, "cols": 60})
        },
    }


class SecretEntryForm(forms.ModelForm):
    new_value = forms.CharField(
        label="New value",
        required=False,
        strip=False,
        max_length=v.SECRET_VALUE_MAX,
        validators=[v.validate_secret_value],
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep what is stored.",
    )

    class Meta:
        model = SecretEntry
        fields = ("key", "from_env", "new_value")

    def clean(self):
        data = super().clean() or {}
        value, from_env = data.get("new_value"), data.get("from_env")
        if value and from_env:
            self.add_error(
                "new_value",
                "give either a new value or an environment variable, not "
                "both (clear the variable to store a value)",
            )
        elif (
            not value
            and not from_env
            and not self.instance.ciphertext
            and "new_value" not in self.errors
            and "from_env" not in self.errors
        ):
            self.add_error(
                "new_value",
                "is required: a value to store encrypted, or the name of an environment variable",
            )
        return data

    def secret_source(self):
        data = self.cleaned_data
        if data.get("new_value"):
            return {"value": data["new_value"]}
        if data.get("from_env"):
            return {"fromEnv": data["from_env"]}
        return {"stored": True}


class SecretEntryInline(admin.TabularInline):
    model = SecretEntry
    form = SecretEntryForm
    formset = SpecFormSet
    extra = 0
    fields = ("key", "source_label", "from_env", "new_value", "updated_at", "updated_by")
    readonly_fields = ("source_label", "updated_at", "updated_by")

    @admin.display(description="Source")
    def source_label(self, obj):
        return obj.source_label if obj.pk else "-"


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "namespace", "cluster", "environment", "updated_at", "updated_by")
    list_filter = ("cluster", "environment")
    search_fields = ("name", "namespace")
    fields = (
        "name",
        "namespace",
        "cluster",
        "environment",
        "description",
        "updated_at",
        "updated_by",
    )
    inlines = [ComponentInline, ConfigEntryInline, SecretEntryInline]

    def get_readonly_fields(self, request, obj=None):
        # The name is the Helm release; renaming would orphan a running release.
        return ("name", "updated_at", "updated_by") if obj else ("updated_at", "updated_by")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("cluster", "updated_by")

    def _create_formsets(self, request, obj, change):
        # ModelAdmin's own hook (no public one hands over the formsets themselves)
        formsets, inline_instances = super()._create_formsets(request, obj, change)  # type: ignore[misc]
        for formset in formsets:
            formset.siblings = formsets
        return formsets, inline_instances

    def save_model(self, request, obj, form, change):
        """Nothing yet: save_related writes the profile and its inlines as one spec."""

    def save_related(self, request, form, formsets, change):
        spec = parse_spec(
            spec_document(form.instance, formsets), cluster_names=services.cluster_names()
        )
        existing = Profile.objects.get(pk=form.instance.pk) if change else None
        saved = services.profile_apply_spec(spec=spec, profile=existing, actor=request.user)
        form.instance.pk = saved.pk
        for formset in formsets:  # what construct_change_message reads
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request, obj):
        services.profile_delete(profile=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.profile_delete(profile=obj, actor=request.user)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records nobody adds, changes or deletes here (the audit trail, terminal sessions)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor_name", "action", "profile_name", "target")
    list_filter = ("action", "profile")
    search_fields = ("target", "actor_name", "profile_name")
    date_hierarchy = "at"
    readonly_fields = (
        "at",
        "actor",
        "actor_name",
        "action",
        "profile",
        "profile_name",
        "target",
        "before",
        "after",
    )


@admin.register(TerminalSession)
class TerminalSessionAdmin(ReadOnlyAdmin):
    """Every pod terminal session (services/terminals.py): read-only, for admins."""

    list_display = (
        "started_at",
        "user_name",
        "profile_name",
        "pod",
        "container",
        "ended_at",
        "end_reason",
        "address",
    )
    list_filter = ("profile_name", "user_name")
    search_fields = ("pod", "user_name", "profile_name", "address")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in TerminalSession._meta.fields]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Everyone's API tokens: read-only, with one action, revoke (audited). Tokens are
    created by their users on the Tokens page, where the token is shown once."""

    list_display = (
        "name",
        "user",
        "prefix",
        "state",
        "read_only",
        "created_at",
        "last_used_at",
        "last_used_address",
        "expires_at",
    )
    list_filter = ("read_only", "revoked_at")
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = (
        "user",
        "name",
        "prefix",
        "read_only",
        "narrowed",
        "profiles",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_address",
        "revoked_at",
    )
    exclude = ("digest",)
    actions = ("revoke",)

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = sum(
            api_token_revoke(token=token, actor=request.user)
            for token in queryset.select_related("user")
        )
        self.message_user(request, f"{revoked} token(s) revoked.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
