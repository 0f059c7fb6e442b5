"""Cluster pages: the clusters, and one cluster with the environment doctor's results.

The doctor runs docker, helm and kubectl, so a worker computes it (deployments.tasks); the
page polls (htmx every second, a meta refresh without JavaScript) until the result is in.
"""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from deployments import selectors
from deployments.services.doctor import doctor_forget, doctor_request
from deployments.views.releases import render_page

SLOW_DOCTOR_POLLS = 30


@require_GET
@permission_required("deployments.view_cluster", raise_exception=True)
def cluster_list(request):
    return render(request, "deployments/cluster_list.html", {"clusters": selectors.cluster_list()})


@require_GET
@permission_required("deployments.view_cluster", raise_exception=True)
def cluster_detail(request, name):
    cluster = get_object_or_404(selectors.cluster_detail_queryset(), name=name)
    try:
        polls = max(0, min(int(request.GET.get("polls", 0)), 10_000))
    except ValueError:
        polls = 0
    results = doctor_request(cluster)
    context = {
        "cluster": cluster,
        "results": results,
        "failed": [r for r in results or [] if not r["ok"]],
        "polls": polls + 1,
        "slow": results is None and polls >= SLOW_DOCTOR_POLLS,
        "profiles": [(p, selectors.last_release(p)) for p in cluster.profiles.all()],
    }
    return render_page(
        request, "deployments/cluster_detail.html", context, partials={None: "doctor"}
    )


@require_POST
@permission_required("deployments.deploy_profile", raise_exception=True)
def cluster_check(request, name):
    """Check again: forget the cached results; the page then asks a worker for new ones."""
    cluster = get_object_or_404(selectors.cluster_list(), name=name)
    doctor_forget(cluster)
    messages.info(request, f"Checking {cluster.name} again.")
    return redirect("deployments:cluster_detail", name=cluster.name)
