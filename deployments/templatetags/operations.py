"""Template helpers for the action forms on the profile page."""

from django import template

from deployments.views import once

register = template.Library()


@register.simple_tag
def action_token():
    """A fresh token for one action form (views/once.py: the form sent twice acts once)."""
    return once.new_token()
