"""/api/v1/profiles/{name}/logs: a pod's log, or a component's pods merged, as the log page
reads it (deployments.services.pod_log_query); `after` (the answer's own) continues where
the last answer ended, which is how `helmdeck logs -f` follows."""

from django.http import Http404
from ninja import Query, Router, Schema, Status
from pydantic import Field

from deployments.api import schemas
from deployments.api.auth import VIEW, profile_or_404
from deployments.integrations import IntegrationError
from deployments.models import Profile
from deployments.services import pod_logs
from deployments.services.pod_log_query import BadParams, log_target, parse_params, read_now
from deployments.services.pod_logs import PodNotFound

router = Router(tags=["logs"])


class LogQuery(Schema):
    component: str = Field("", max_length=63, description="every pod of this component")
    pod: str = Field("", max_length=253, description="or one pod")
    tail: int = Field(pod_logs.DEFAULT_TAIL, ge=1, le=pod_logs.MAX_TAIL)
    previous: bool = Field(False, description="the container before its last restart")
    q: str = Field("", max_length=pod_logs.MAX_FILTER, description="lines containing this")
    after: str = Field("", max_length=4000, description="the `after` of the last answer")


class PodLine(Schema):
    pod: str
    text: str


class PodLogOut(Schema):
    lines: list[PodLine]
    after: str = Field(description="pass it back as `after` for the lines that follow")


@router.get(
    "/profiles/{name}/logs",
    response=schemas.answers(PodLogOut) | {503: schemas.Errors},
    summary="Pod logs (a pod, or a component's pods merged in time order)",
)
def pod_log(request, name: str, query: Query[LogQuery]):
    profile = profile_or_404(request, Profile.objects.select_related("cluster"), name, VIEW)
    given = {
        "component": query.component,
        "pod": query.pod,
        "tail": str(query.tail),
        "previous": "1" if query.previous else "0",
        "q": query.q,
    }
    try:
        params = parse_params(given)
    except BadParams as exc:
        return Status(400, {"errors": [{"path": "", "message": str(exc)}]})
    if not (params.pod or params.component):
        component = profile.components.order_by("position", "name").first()
        params = parse_params({**given, "component": component.name if component else ""})
    components = list(profile.components.values_list("name", flat=True))
    target = log_target(profile, params, components)
    try:
        _pods, tail = read_now(profile, target, params, pod_logs.decode_token(query.after))
    except PodNotFound as exc:
        raise Http404(str(exc)) from None
    except IntegrationError as exc:
        status = 400 if exc.permanent else 503
        return Status(status, {"errors": [{"path": "", "message": str(exc)}]})
    return {
        "lines": [{"pod": pod, "text": text} for pod, text in tail.lines],
        "after": tail.batches[-1][1],
    }
