"""Release pages: Deploy (preview + confirm), a release's live page, cancel, history, the
diff of two releases and roll back.

Full pages render without JavaScript; htmx asks for one partial, named by the element it
targets (HX-Target). Writes go through deployments.services, reads through selectors.
"""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from deployments import selectors, selectors_history
from deployments.forms import DeployForm
from deployments.models import Profile, Release, Step
from deployments.services.preview import fingerprint, preview_request
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import (
    ReleaseRefused,
    release_cancel,
    release_request,
    release_rollback_request,
)
from deployments.views import once
from deployments.views.sse_htmx import whole_page

VIEW, DEPLOY = "deployments.view_profile", "deployments.deploy_profile"
HISTORY_PAGE = 50
SLOW_PREVIEW_POLLS = 30  # polls (about seconds) before the page asks whether a worker runs


def render_page(request, template, context, *, partials=None, status=200):
    """The whole page, or the partial `partials[HX-Target]` (`partials[None]` for any other
    htmx request) for an htmx request that is neither boosted nor a history restore."""
    partial = None
    if not whole_page(request) and partials:
        partial = partials.get(request.htmx.target, partials.get(None))
    response = render(
        request, f"{template}#{partial}" if partial else template, context, status=status
    )
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _release_url(release):
    return reverse("deployments:release_detail", args=[release.pk])


# ---- deploy ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def profile_deploy(request, name):
    """GET: the preview of what a deploy would change, and the confirm form.
    POST: queue the release and go to its page. A resubmitted form (same token) lands on the
    release it started; a profile changed since the preview is shown again first."""
    profile = get_object_or_404(selectors.profile_detail_queryset(), name=name)
    current = fingerprint(profile)
    build, refused, changed, status = True, "", False, 200
    if request.method == "POST":
        form = DeployForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            build = data["build"]
            started = once.acted(request, "deploy", data["token"])
            if started is not None:
                return redirect("deployments:release_detail", pk=started)
            if data["fingerprint"] and data["fingerprint"] != current:
                changed, status = True, 409
            else:
                try:
                    release = release_request(profile=profile, actor=request.user, build=build)
                except ReleaseRefused as exc:
                    refused, status = str(exc), 409
                else:
                    release_enqueue(release)
                    once.remember(request, "deploy", data["token"], release.pk)
                    messages.success(request, f"Release #{release.pk} of {profile.name} queued.")
                    return redirect(_release_url(release))
        else:  # a tampered or truncated confirmation: say so instead of a silent re-render
            refused, status = _form_problem(form), 400
    form = DeployForm(initial={"build": build, "token": once.new_token(), "fingerprint": current})
    context = {
        "profile": profile,
        "form": form,
        "refused": refused,
        "changed": changed,
        "active": selectors.active_release(profile=profile),
        **_preview_context(request, profile),
    }
    return render_page(
        request,
        "deployments/profile_deploy.html",
        context,
        partials={"preview": "preview"},
        status=status,
    )


def _form_problem(form):
    fields = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
    return f"the confirmation form was incomplete ({fields}); review and confirm again"


def _preview_context(request, profile):
    try:
        polls = max(0, min(int(request.GET.get("polls", 0)), 10_000))
    except ValueError:
        polls = 0
    preview = preview_request(profile)
    if preview is None:
        return {"preview": None, "polls": polls + 1, "slow": polls >= SLOW_PREVIEW_POLLS}
    resources = preview.get("resources") or {}
    diff = preview.get("diff") or {}
    rows = []
    for rid in sorted(set(resources) | set(diff)):
        if rid not in resources:
            state = "removed"
        elif rid not in diff:
            state = "unchanged"
        elif not preview.get("deployed"):
            state = "new"
        else:
            state = "changed"
        rows.append(
            {"id": rid, "state": state, "diff": diff.get(rid, ""), "yaml": resources.get(rid, "")}
        )
    checks = preview.get("checks") or []
    return {
        "preview": preview,
        "resources": rows,
        "changed_count": sum(1 for row in rows if row["state"] != "unchanged"),
        "errors": [c for c in checks if c.get("level") == "error"],
        "polls": 0,
        "slow": False,
    }


# ---- one release ----------------------------------------------------------------------------


def steps_context(release):
    """What the page's Steps section shows (its `steps` partial): the page renders it, and
    the release stream sends it with each status (views/streams.py)."""
    steps = list(release.steps.all())
    finished = sum(1 for s in steps if s.status in (Step.Status.DONE, Step.Status.SKIPPED))
    return {
        "release": release,
        "steps": steps,
        "steps_done": finished,
        "steps_percent": round(100 * finished / len(steps)) if steps else 0,
        "current_step": next((s for s in steps if s.status == Step.Status.RUNNING), None),
    }


def _release_context(release, *, with_log=True):
    context = {
        **steps_context(release),
        "profile": release.profile,
        "images": selectors.release_images(release),
    }
    if with_log:
        lines = list(selectors.release_log(release=release))
        context["log"] = lines
        context["last_sequence"] = lines[-1].sequence if lines else 0
    return context


@require_GET
@permission_required(VIEW, raise_exception=True)
def release_detail(request, pk):
    release = get_object_or_404(selectors.release_detail_queryset(), pk=pk)
    context = _release_context(release)
    if release.status == Release.Status.SUCCEEDED:
        last = selectors.current_release(profile=release.profile)
        context["is_last_success"] = last is not None and last.pk == release.pk
    return render_page(request, "deployments/release_detail.html", context, partials={None: "live"})


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def release_cancel_view(request, pk):
    release = get_object_or_404(selectors.release_detail_queryset(), pk=pk)
    if request.method == "POST":
        if release_cancel(release=release, actor=request.user):
            messages.success(request, f"Release #{release.pk}: cancel requested.")
        else:
            messages.info(request, f"Release #{release.pk} had already finished.")
        return once.redirect_after_post(request, _release_url(release))
    if not release.is_active:
        messages.info(request, f"Release #{release.pk} has finished: nothing to cancel.")
        return redirect(_release_url(release))
    return render(
        request, "deployments/release_cancel.html", _release_context(release, with_log=False)
    )


# ---- history, diff, roll back ---------------------------------------------------------------


@require_GET
@permission_required(VIEW, raise_exception=True)
def profile_releases(request, name):
    profile = get_object_or_404(Profile.objects.select_related("cluster"), name=name)
    older, newer = request.GET.get("a", ""), request.GET.get("b", "")
    if older.isdigit() and newer.isdigit():
        return redirect("deployments:release_diff", pk=int(older), other=int(newer))
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page = 1
    start = (page - 1) * HISTORY_PAGE
    # one more than a page: the newest release of the next page is the previous of our last
    chunk = list(selectors.profile_releases(profile=profile)[start : start + HISTORY_PAGE + 1])
    if page > 1 and not chunk:
        raise Http404("no such page")
    current = selectors.current_release(profile=profile)
    rows = [
        {
            "release": release,
            "previous": chunk[i + 1] if i + 1 < len(chunk) else None,
            "images": selectors.release_images(release),
            "is_current": current is not None and current.pk == release.pk,
        }
        for i, release in enumerate(chunk[:HISTORY_PAGE])
    ]
    context = {
        "profile": profile,
        "rows": rows,
        "page": page,
        "has_next": len(chunk) > HISTORY_PAGE,
        "active": selectors.active_release(profile=profile),
    }
    if page == 1 and whole_page(request):  # the last releases' chart heads page 1
        context["chart"] = selectors_history.release_history(profile=profile)
    return render_page(request, "deployments/release_list.html", context, partials={None: "rows"})


@require_GET
@permission_required(VIEW, raise_exception=True)
def release_diff(request, pk, other):
    releases = Release.objects.select_related("profile").in_bulk([pk, other])
    if pk not in releases or other not in releases:
        raise Http404("no such release")
    older, newer = releases[pk], releases[other]
    context = {
        "older": older,
        "newer": newer,
        "diff": selectors.release_diff(older=older, newer=newer),
        "older_images": selectors.release_images(older),
        "newer_images": selectors.release_images(newer),
    }
    return render(request, "deployments/release_diff.html", context)


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def release_rollback(request, pk):
    """Confirm, then queue a release that deploys this release's snapshot again."""
    target = get_object_or_404(selectors.release_detail_queryset(), pk=pk)
    profile = target.profile
    refused, status = "", 200
    if target.status != Release.Status.SUCCEEDED or target.helm_revision is None:
        refused, status = (
            ("Only a release that succeeded (and so has a Helm revision) can be rolled back to."),
            409,
        )
    elif request.method == "POST":
        try:
            release = release_rollback_request(profile=profile, actor=request.user, target=target)
        except ReleaseRefused as exc:
            refused, status = str(exc), 409
        else:
            release_enqueue(release)
            messages.success(
                request,
                f"Release #{release.pk}: rolling {profile.name} back to "
                f"release #{target.pk} (revision {target.helm_revision}).",
            )
            return once.redirect_after_post(request, _release_url(release))
    current = selectors.current_release(profile=profile)
    context = {
        "target": target,
        "profile": profile,
        "current": current,
        "diff": selectors.release_diff(older=current, newer=target) if current else "",
        "images": selectors.release_images(target),
        "refused": refused,
        "active": selectors.active_release(profile=profile),
    }
    return render(request, "deployments/release_rollback.html", context, status=status)
