"""The profile page's "Resource usage" section: CPU and memory from metrics-server against
the components' requests and limits.

Asking the Metrics API can take seconds (or time out), so the profile page does not wait
for it: its section loads this view with htmx after the page is shown, and links to it
for browsers without JavaScript (then it is a page of its own that refreshes itself).
"""

from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from deployments.models import Profile
from deployments.services.usage import CACHE_SECONDS, ENABLE_HINT, profile_usage
from deployments.views.sse_htmx import whole_page


@require_GET
@permission_required("deployments.view_profile", raise_exception=True)
def profile_usage_view(request, name):
    profile = get_object_or_404(
        Profile.objects.select_related("cluster").prefetch_related("components"), name=name
    )
    context = {
        "profile": profile,
        "usage": profile_usage(profile=profile),
        "refresh": max(CACHE_SECONDS, 15),
        "enable_hint": ENABLE_HINT,
    }
    whole = whole_page(request)
    template = "deployments/profile_usage.html" if whole else "deployments/_usage.html"
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    response["Cache-Control"] = "no-store"
    return response
