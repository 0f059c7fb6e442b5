"""The link under a diagnosis: the profile form field to change, or the crashed container's
previous log (the usual fixes, made one click away)."""

from urllib.parse import urlencode

from django import template
from django.urls import reverse

register = template.Library()

LINK_LABELS = {
    "image": "Change the image or tag of {component}",
    "oom": "Raise the memory limit of {component}",
    "pending": "Lower the CPU and memory requests of {component}",
    "not-ready": "Check the readiness probe path of {component}",
}


def logs_url(profile_name, pod):
    """The log viewer of one pod, its previous (crashed) container."""
    base = reverse("deployments:pod_logs", args=[profile_name])
    return f"{base}?{urlencode({'pod': pod, 'previous': 1})}"


def field_anchor(component, field):
    """The id the profile form gives a component's field (profile_form.html, `field`)."""
    return f"component-{component}-{field}"


@register.simple_tag
def fix_link(problem, profile_name, can_edit=True):
    """(url, label) of the place to fix `problem`, or ("", "") when there is none for this
    user (only editors get the form; everyone gets logs)."""
    if problem.kind == "crash":
        return logs_url(profile_name, problem.pod), "Read the previous container's log"
    if not can_edit:
        return "", ""
    url = reverse("deployments:profile_edit", args=[profile_name])
    component = problem.component or "the component"
    if problem.component and problem.field:
        url += "#" + field_anchor(problem.component, problem.field)
    return url, LINK_LABELS[problem.kind].format(component=component)
