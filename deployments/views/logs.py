"""The pod log viewer: the page, its SSE stream and the download.

All three take the same query: `pod=<pod>` or `component=<component>` (every pod of it,
lines prefixed with the pod's name), `tail=N` (1..10000, default 200), `previous=1` (the
log of the container before its last restart), `q=<text>` (lines containing it, any case).
The stream resumes after `Last-Event-ID` (or `after=`, which the page fills in with the
position of the lines it rendered), so a reload or a reconnect shows no line twice.
"""

import asyncio
import contextlib

from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET

from deployments import selectors
from deployments.integrations import IntegrationError
from deployments.integrations.kube import Kube
from deployments.models import Profile
from deployments.services import pod_logs, pod_logs_follow
from deployments.services.pod_log_query import BadParams, log_target, parse_params, read_now
from deployments.services.pod_logs import PodNotFound
from deployments.views.sse_htmx import (
    HEARTBEAT,
    NO_FOLLOW_RETRY,
    follows,
    heartbeat_seconds,
    sse,
    sse_view,
    stream_response,
)

UNREACHABLE_RETRY = "retry: 5000\n\n"


# ---- the page -----------------------------------------------------------------------------


@require_GET
@permission_required("deployments.view_profile", raise_exception=True)
def pod_logs_page(request, name):
    profile = get_object_or_404(selectors.profile_detail_queryset(), name=name)
    components = [c.name for c in profile.components.all()]
    context = {"profile": profile, "components": components}
    try:
        params = parse_params(request.GET)
    except BadParams as exc:
        return render(request, "deployments/pod_logs.html", {**context, "bad": exc}, status=400)
    context["params"] = params
    if not (params.pod or params.component):
        context["pods"] = selectors.profile_pods(profile=profile)
        return render(request, "deployments/pod_logs.html", context)
    target = log_target(profile, params, components)
    context.update(target=target, lines=[], token="-")
    status = 200
    try:
        pods, tail = read_now(profile, target, params)
    except PodNotFound as exc:
        raise Http404(str(exc)) from None
    except IntegrationError as exc:
        # unreachable: 503 and the page tries again; refused (e.g. no previous container
        # to show): the API's reason, nothing to retry
        context.update(error=str(exc), retry=not exc.permanent)
        status = 200 if exc.permanent else 503
    else:
        context.update(pods=pods, lines=tail.lines, token=tail.batches[-1][1])
    base = reverse("deployments:pod_logs", args=[profile.name])
    context.update(
        prefix=target.merged,
        stream_url=reverse("deployments:pod_log_stream", args=[profile.name])
        + "?"
        + params.query(after=context["token"]),
        download_url=reverse("deployments:pod_log_download", args=[profile.name])
        + "?"
        + params.query(),
        live=not params.previous,
        self_url=f"{base}?{params.query()}",
    )
    return render(request, "deployments/pod_logs.html", context, status=status)


# ---- the download -------------------------------------------------------------------------


@require_GET
@permission_required("deployments.view_profile", raise_exception=True)
def pod_log_download(request, name):
    profile = get_object_or_404(Profile.objects.select_related("cluster"), name=name)
    try:
        params = _required(parse_params(request.GET))
    except BadParams as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    components = list(profile.components.values_list("name", flat=True))
    target = log_target(profile, params, components)
    try:
        pods, tail = read_now(profile, target, params)
    except PodNotFound as exc:
        raise Http404(str(exc)) from None
    except IntegrationError as exc:
        return HttpResponse(str(exc), status=503, content_type="text/plain; charset=utf-8")
    body = "".join(
        pod_logs.line_text(pod, text, prefix=target.merged) + "\n" for pod, text in tail.lines
    )
    response = HttpResponse(body, content_type="text/plain; charset=utf-8")
    filename = f"{profile.name}-{params.pod or params.component}"
    filename += "-previous.log" if params.previous else ".log"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _required(params):
    if not (params.pod or params.component):
        raise BadParams("give pod=<pod> or component=<component>")
    return params


# ---- the stream ---------------------------------------------------------------------------


@sse_view
async def pod_log_stream(request, name):
    """SSE: `line` events (HTML of one or more log lines, each event with its resume token
    as `id:`), `notice` (a readable problem), heartbeats, and `end` when the log is over."""
    profile = await Profile.objects.select_related("cluster").filter(name=name).afirst()
    if profile is None:
        raise Http404("no such profile")
    try:
        params = _required(parse_params(request.GET))
    except BadParams as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    components = [c async for c in profile.components.values_list("name", flat=True)]
    target = log_target(profile, params, components)
    token = request.headers.get("Last-Event-ID") or request.GET.get("after")
    positions = pod_logs.decode_token(token)
    try:
        kube = await asyncio.to_thread(Kube, profile.cluster)
    except IntegrationError as exc:
        return stream_response(_unreachable(str(exc)))
    try:
        pods = await asyncio.to_thread(pod_logs.resolve_pods, kube, target)
    except PodNotFound as exc:
        kube.close()
        raise Http404(str(exc)) from None
    except IntegrationError as exc:
        kube.close()
        return stream_response(_unreachable(str(exc)))
    events = _log_events(kube, target, pods, positions, params, follow=follows(request))
    return stream_response(events)


def _notice(text):
    return f'<p class="log-notice">{escape(text)}</p>'


async def _unreachable(message):
    yield sse("notice", _notice(message))
    yield UNREACHABLE_RETRY


async def _log_events(kube, target, pods, positions, params, *, follow):
    followed = None
    try:
        if follow and not params.previous and not target.merged:
            # one pod, followed: its follow stream brings the tail first (one request
            # instead of a read and then a follow that re-reads the same second)
            names = {pod.name for pod in pods}
            cursors = {p: pod_logs.Cursor(*at) for p, at in (positions or {}).items() if p in names}
            first_tail = params.tail if positions is None else pod_logs.MAX_TAIL
            followed = pod_logs_follow.Followed(
                kube,
                target,
                pods,
                cursors,
                q=params.q,
                first_tail=first_tail,
                heartbeat=heartbeat_seconds(),
            )
        else:
            try:
                tail = await asyncio.to_thread(
                    pod_logs.read_tail,
                    kube,
                    target,
                    pods,
                    tail=params.tail,
                    positions=positions,
                    previous=params.previous,
                    q=params.q,
                )
            except IntegrationError as exc:
                yield sse("notice", _notice(str(exc)))
                yield sse("end", str(exc)) if exc.permanent else UNREACHABLE_RETRY
                return
            for lines, token in tail.batches:
                html = "".join(pod_logs.line_html(p, t, prefix=target.merged) for p, t in lines)
                yield sse("line", html, token)
        if params.previous:
            yield sse("end", "the previous container's log is complete")
            return
        if not follow:
            yield NO_FOLLOW_RETRY
            return
        if followed is None:
            followed = pod_logs_follow.Followed(
                kube, target, pods, tail.cursors, q=params.q, heartbeat=heartbeat_seconds()
            )
        async with contextlib.aclosing(followed.events()) as events:
            async for event in events:
                if event[0] == "lines":
                    yield sse("line", event[1], event[2])
                elif event[0] == "heartbeat":
                    yield HEARTBEAT
                elif event[0] == "notice":
                    yield sse("notice", _notice(event[1]))
                else:
                    yield sse("end", event[1])
                    return
    finally:
        # however the stream ends (a client gone mid-wait or mid-yield): shut every follow
        # stream's socket so its thread ends, then drop the connection pool
        if followed is not None:
            followed.stop()
        kube.close()
