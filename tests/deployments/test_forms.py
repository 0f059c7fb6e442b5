import pytest
from django.core.exceptions import ValidationError

from deployments import validators as v
from deployments.forms import (
    CloneForm,
    ComponentForm,
    ProfileForms,
    SecretForm,
    profile_initial,
)
from deployments.spec import FieldError, parse_spec
from tests.deployments.test_views import component_data, form_data

pytestmark = pytest.mark.django_db

CLUSTERS = ("minikube",)


def bound(data, **kwargs):
    forms = ProfileForms(data, cluster_names=CLUSTERS, **kwargs)
    return forms, forms.is_valid()


def message_of(validator, value):
    with pytest.raises(ValidationError) as exc:
        validator(value)
    return exc.value.messages[0]


def test_it_builds_the_spec_document_from_valid_forms():
    data = form_data(
        components=[
            component_data(
                name="web", build_context="examples/app", service_type="NodePort", node_port=30080
            )
        ],
        config={"LOG_LEVEL": "info"},
        secrets=[
            {"key": "A", "source": "value", "value": "x"},
            {"key": "B", "source": "env", "from_env": "B_ENV"},
            {"key": "C", "source": "keep"},
        ],
    )
    forms, valid = bound(data)
    assert valid, [f.errors for f in forms.all_forms()]
    document = forms.spec_document()
    assert document["components"]["web"]["service"] == {"type": "NodePort", "nodePort": 30080}
    assert document["components"]["web"]["build"] == {
        "context": "examples/app",
        "dockerfile": "Dockerfile",
    }
    assert document["config"] == {"LOG_LEVEL": "info"}
    assert document["secrets"] == {
        "A": {"value": "x"},
        "B": {"fromEnv": "B_ENV"},
        "C": {"stored": True},
    }
    spec = parse_spec(document, cluster_names=set(CLUSTERS))
    assert spec["components"][0]["resources"]["limits"]["cpu"] == "500m"


def test_it_uses_the_messages_of_validators_py():
    data = form_data(
        name="Not_A_Label",
        components=[component_data(cpu_request="lots", image="UPPER", port=70000)],
    )
    forms, valid = bound(data)
    assert not valid
    component = forms.components.forms[0]
    assert forms.profile_form.errors["name"] == [message_of(v.validate_release_name, "Not_A_Label")]
    assert component.errors["cpu_request"] == [message_of(v.validate_cpu, "lots")]
    assert component.errors["image"] == [message_of(v.validate_image_repository, "UPPER")]
    assert message_of(v.validate_port, 70000) in component.errors["port"]


def test_it_puts_limit_below_request_under_the_limit_field():
    form = ComponentForm(component_data(cpu_request="1", cpu_limit="500m"))
    assert not form.is_valid()
    assert "below the request 1" in form.errors["cpu_limit"][0]
    assert "cpu_request" not in form.errors


def test_it_maps_spec_error_paths_back_to_fields():
    data = form_data(
        components=[component_data(name="web")],
        config={"MODE": "x"},
        secrets=[
            {"key": "TOKEN", "source": "keep"},
            {"key": "OTHER", "source": "env", "from_env": "X"},
        ],
    )
    forms, valid = bound(data)
    assert valid
    forms.add_spec_errors(
        [
            FieldError("name", "taken"),
            FieldError("components.web.service.nodePort", "port in use"),
            FieldError("components.web.resources.limits.memory", "too small"),
            FieldError("components.web.probes.readiness.timeoutSeconds", "bad timeout"),
            FieldError("config.MODE", "bad value"),
            FieldError("secrets.TOKEN", "has no stored value to keep"),
            FieldError("secrets.OTHER.fromEnv", "bad env"),
            FieldError("somewhere.else", "odd"),
        ]
    )
    component = forms.components.forms[0]
    assert forms.profile_form.errors["name"] == ["taken"]
    assert component.errors["node_port"] == ["port in use"]
    assert component.errors["memory_limit"] == ["too small"]
    assert component.errors["readiness_timeout"] == ["bad timeout"]
    assert forms.config.forms[0].errors["value"] == ["bad value"]
    assert forms.secrets.forms[0].errors["source"] == ["has no stored value to keep"]
    assert forms.secrets.forms[1].errors["from_env"] == ["bad env"]
    assert forms.errors == ["somewhere.else: odd"]
    assert forms.has_errors


def test_it_requires_a_value_or_an_env_name_for_a_secret():
    assert "value" in SecretForm({"key": "A", "source": "value", "value": ""}).errors
    assert "from_env" in SecretForm({"key": "A", "source": "env", "from_env": ""}).errors
    assert "from_env" in SecretForm({"key": "A", "source": "env", "from_env": "1BAD"}).errors
    assert SecretForm({"key": "A", "source": "keep"}).is_valid()


def test_it_never_renders_a_secret_value_back():
    form = SecretForm({"key": "A", "source": "value", "value": "typed-secret"})
    form.is_valid()
    assert "typed-secret" not in str(form["value"])
    assert 'type="password"' in str(form["value"])


def test_it_rejects_duplicate_keys_and_names():
    data = form_data(
        components=[component_data(name="web"), component_data(name="web")], config={"A": "1"}
    )
    data.update({"config-TOTAL_FORMS": "2", "config-1-key": "A", "config-1-value": "2"})
    forms, valid = bound(data)
    assert not valid
    assert "used twice" in forms.components.forms[1].errors["name"][0]
    assert "used twice" in forms.config.forms[1].errors["key"][0]


def test_it_needs_at_least_one_component():
    forms, valid = bound(form_data(components=[]))
    assert not valid
    assert "at least one component" in forms.components.non_form_errors()[0]


def test_it_skips_untouched_extra_rows_and_deleted_rows():
    data = form_data(
        components=[component_data(name="web"), component_data(name="old")], config={"A": "1"}
    )
    data["components-1-DELETE"] = "on"
    data.update({"config-TOTAL_FORMS": "2"})  # an untouched extra config row
    forms, valid = bound(data)
    assert valid
    assert list(forms.spec_document()["components"]) == ["web"]
    assert forms.spec_document()["config"] == {"A": "1"}


def test_it_is_invalid_without_management_data_and_does_not_raise():
    forms, valid = bound({"name": "x"})
    assert not valid
    assert forms.components.non_form_errors()


def test_it_caps_the_number_of_forms():
    data = form_data()
    data["components-TOTAL_FORMS"] = "100000000"
    forms, valid = bound(data)
    assert not valid
    assert len(forms.components.forms) <= 20


def test_it_wires_each_input_to_blur_validation():
    widget = ComponentForm(prefix="components-3")["cpu_limit"].field.widget.attrs
    assert widget["hx-post"] == "/profiles/validate/"
    assert widget["hx-trigger"] == "blur changed"
    assert widget["hx-target"] == "#id_components-3-cpu_limit-errors"
    assert ProfileForms(cluster_names=CLUSTERS).bound_field("no-such-field") is None
    forms, _ = bound(form_data())
    assert forms.bound_field("components-0-cpu_limit").name == "cpu_limit"


def test_it_prefills_an_edit_without_secret_values(todo_app):
    initial = profile_initial(todo_app)
    assert {c["name"] for c in initial["components"]} == {"frontend", "backend"}
    assert all(set(s) == {"key", "source", "from_env"} for s in initial["secrets"])
    assert initial["secrets"][0]["source"] == "env"


def test_it_validates_clone_names_with_the_release_rules():
    form = CloneForm({"name": "x" * 60, "namespace": "ok"})
    assert not form.is_valid()
    assert "at most" in form.errors["name"][0]


def test_it_reports_an_undecodable_json_number_as_a_field_error():
    from deployments.forms import ComponentForm

    form = ComponentForm(data={"build_args": "9" * 5000})
    assert not form.is_valid()
    assert "build_args" in form.errors


def test_an_ingress_from_the_form_needs_a_host_and_loses_nothing_typed():
    typed = ComponentForm(component_data(ingress_host="", ingress_path="/shop"))
    assert not typed.is_valid()
    assert typed.errors["ingress_host"] == ["set a host for the Ingress, or clear its other fields"]
    empty = ComponentForm(component_data(ingress_host="", ingress_path="", ingress_class=""))
    assert empty.is_valid(), empty.errors  # no Ingress; the defaults fill in
    assert (empty.cleaned_data["ingress_path"], empty.cleaned_data["ingress_class"]) == (
        "/",
        "nginx",
    )
    data = form_data(
        components=[
            component_data(ingress_host="shop.example.test", ingress_path="", ingress_class="")
        ]
    )
    forms, valid = bound(data)
    assert valid, [f.errors for f in forms.all_forms()]
    assert forms.spec_document()["components"]["web"]["ingress"] == {
        "host": "shop.example.test",
        "path": "/",
        "className": "nginx",
    }
