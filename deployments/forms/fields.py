"""Form building blocks: model fields with their validators.py rules attached, a JSON
mapping field that turns any undecodable input into a field error, and live validation."""

from django import forms
from django.urls import reverse

from deployments import validators as v


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


class LiveValidationMixin(forms.BaseForm):
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


def marked_deleted(form):
    """The row's Delete box is ticked (what BaseFormSet._should_delete_form reads)."""
    return bool(getattr(form, "cleaned_data", {}).get(forms.formsets.DELETION_FIELD_NAME))
