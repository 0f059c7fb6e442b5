"""/api/v1/clusters: the clusters, and one cluster's environment doctor."""

from collections import Counter

from django.shortcuts import get_object_or_404
from ninja import Router

from deployments import selectors
from deployments.api import schemas
from deployments.api.auth import named, require
from deployments.models import Profile
from deployments.services.api_tokens import api_token_profiles
from deployments.services.doctor import doctor_request

router = Router(tags=["clusters"])
VIEW_CLUSTER = "deployments.view_cluster"


@router.get(
    "/clusters", response=schemas.answers(list[schemas.ClusterOut]), summary="List clusters"
)
def list_clusters(request):
    require(request, VIEW_CLUSTER)
    counts = None
    if request.auth.narrowed:  # count only what the token may see
        reach = api_token_profiles(request.auth, Profile.objects.all())
        counts = Counter(reach.values_list("cluster_id", flat=True))
    return [
        {
            "name": c.name,
            "profiles": c.profile_count if counts is None else counts.get(c.pk, 0),
            "image_delivery": c.image_delivery,
        }
        for c in selectors.cluster_list()
    ]


@router.get(
    "/clusters/{name}/doctor",
    response=schemas.answers(schemas.DoctorOut),
    summary="Environment checks",
)
def doctor(request, name: str):
    """The doctor's results (docker, helm, kubectl, the kube context, Minikube's size and
    addons), computed by a worker and kept a minute or two; `ready` is false while it runs."""
    require(request, VIEW_CLUSTER)
    cluster = get_object_or_404(selectors.cluster_list(), name=named(name))
    results = doctor_request(cluster)
    return {"ready": results is not None, "checks": results or []}
