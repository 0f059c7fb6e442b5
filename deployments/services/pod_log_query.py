"""What a request for pod logs asks (the log page, its stream and download, and the API
share it): the query's parameters and their checks, the LogTarget they name, and the tail
read now."""

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import Http404

from deployments.integrations.kube import Kube
from deployments.services import pod_logs
from deployments.services.pod_logs import LogTarget

POD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
TRUE, FALSE = ("1", "true", "on", "yes"), ("", "0", "false", "off", "no")


class BadParams(ValueError):
    pass


@dataclass(frozen=True)
class LogParams:
    pod: str = ""
    component: str = ""
    tail: int = pod_logs.DEFAULT_TAIL
    previous: bool = False
    q: str = ""

    def query(self, **extra):
        """The query string of these parameters (plus `extra`), defaults left out."""
        given = {"pod": self.pod, "component": self.component, "q": self.q}
        items: dict[str, str | int] = {k: v for k, v in given.items() if v}
        if self.tail != pod_logs.DEFAULT_TAIL:
            items["tail"] = self.tail
        if self.previous:
            items["previous"] = 1
        return urlencode({**items, **extra})


def parse_params(query):
    """LogParams from a request's GET, or BadParams with a message for the user."""
    raw_tail = query.get("tail", "").strip()
    try:
        tail = int(raw_tail) if raw_tail else pod_logs.DEFAULT_TAIL
    except ValueError:
        raise BadParams(
            f"tail must be a whole number of lines from 1 to {pod_logs.MAX_TAIL}"
        ) from None
    if not 1 <= tail <= pod_logs.MAX_TAIL:
        raise BadParams(f"tail must be from 1 to {pod_logs.MAX_TAIL} lines (got {tail})")
    raw_previous = query.get("previous", "").strip().lower()
    if raw_previous not in TRUE + FALSE:
        raise BadParams("previous must be 1 (the log before the last restart) or 0")
    q = query.get("q", "").replace("\x00", "")
    if len(q) > pod_logs.MAX_FILTER:
        raise BadParams(f"the filter may have at most {pod_logs.MAX_FILTER} characters")
    pod, component = query.get("pod", "").strip(), query.get("component", "").strip()
    if pod and component:
        raise BadParams("give pod= or component=, not both")
    return LogParams(pod, component, tail, raw_previous in TRUE, q)


def log_target(profile, params, component_names):
    """The LogTarget of a request; Http404 when it cannot be one of this profile's."""
    if params.component and params.component not in component_names:
        raise Http404(f"{profile.name} has no component {params.component}")
    if params.pod and not POD_NAME.match(params.pod):
        raise Http404("no such pod")
    return LogTarget(profile.namespace, profile.name, params.pod, params.component)


def read_now(profile, target, params, positions=None):
    """(pods, tail) of the target as the page, the download and the API show it, read now
    (after `positions`, a resume token's, when given)."""
    with Kube(profile.cluster) as kube:
        pods = pod_logs.resolve_pods(kube, target)
        return pods, pod_logs.read_tail(
            kube,
            target,
            pods,
            tail=params.tail,
            positions=positions,
            previous=params.previous,
            q=params.q,
        )
