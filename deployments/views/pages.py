"""Pages: the status page, profile list/detail and the profile create/edit form.

One view renders the whole page, or only its `#partial` when htmx asks (request.htmx).
Writes go through deployments.services; reads through deployments.selectors.
"""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from deployments import selectors, selectors_history
from deployments.forms import ProfileForms, profile_initial
from deployments.services.profile_health import DEGRADED, PROGRESSING
from deployments.services.profiles import profile_apply_spec, profile_touch
from deployments.services.releases import release_installed
from deployments.spec import MAX_COMPONENTS, MAX_ENTRIES, SpecError, parse_spec
from deployments.views.sse_htmx import render_page_or_partial, role_of, whole_page

EDIT_PERMISSIONS = ("deployments.add_profile", "deployments.change_profile")
ROW_KINDS = {"components": MAX_COMPONENTS, "config": MAX_ENTRIES, "secrets": MAX_ENTRIES}


def _require_any(user, perms):
    if not any(user.has_perm(perm) for perm in perms):
        raise PermissionDenied


@require_GET
@permission_required("deployments.view_profile", raise_exception=True)
def status(request):
    """The team status page: one page of profiles (filtered by text and health), live over
    one SSE stream (views.streams.status_stream) and refreshed by a meta refresh without JS."""
    view = selectors.StatusView.from_params(request.GET)
    page = selectors.status_page(view)
    context = status_context(page, role=role_of(request.user))
    if whole_page(request):  # the delivery keys too (the stream never sends them)
        context["keys"] = selectors_history.delivery_keys(profiles=page.profiles)
    return render_page_or_partial(request, "deployments/status.html", "table", context)


def status_context(page, *, role):
    """What status.html and its partials need (the page and its stream)."""
    busy = (PROGRESSING, DEGRADED)
    return {
        "status": page,
        "can_edit": role.can_edit,
        "can_add": role.can_add,
        "refresh_fast": any(p.health.status in busy for p in page.profiles),
    }


@require_GET
@permission_required("deployments.view_profile", raise_exception=True)
def profile_list(request):
    query = request.GET.get("q", "")
    context = {"profiles": selectors.profile_list(query=query), "query": query}
    return render_page_or_partial(request, "deployments/profile_list.html", "rows", context)


@require_GET
@permission_required("deployments.view_profile", raise_exception=True)
def profile_detail(request, name):
    profile = get_object_or_404(selectors.profile_page_queryset(), name=name)
    if profile.sleep_after_hours and not request.htmx:  # a visit: its schedule counts anew
        profile_touch(profile_id=profile.pk, active_at=profile.active_at)
    context = {
        "profile": profile,
        "audit": selectors.profile_audit(profile=profile),
        "last_release": selectors.last_release(profile),
        # what is installed (None before the first deploy and after a teardown): the actions
        # on what runs need it
        "current": release_installed(profile=profile),
        "findings": selectors.profile_findings(profile=profile),
        **pods_context(profile, role=role_of(request.user)),
    }
    return render_page_or_partial(request, "deployments/profile_detail.html", "pods", context)


def pods_context(profile, *, role):
    """What the `#pods` partial of the profile page needs (the page and its SSE stream):
    `role.can_edit` adds the link to the form field a diagnosis names, `role.can_deploy`
    the pods' Delete links and Wake, `role.can_exec` their Terminal links."""
    pods = selectors.profile_pods(profile=profile)
    live, scaled = selectors.profile_live_state(profile=profile)
    links = selectors.profile_links(profile=profile, pods=[pod for pod, _ in pods])
    return {
        "links": links,
        "profile": profile,
        "pods": pods,
        "pods_waiting": any(not r.ready for r, _ in pods),
        "can_edit": role.can_edit,
        "can_deploy": role.can_deploy,
        "can_exec": role.can_exec,
        "live": live,
        "scaled": scaled,
    }


@require_http_methods(["GET", "POST"])
@permission_required("deployments.add_profile", raise_exception=True)
def profile_create(request):
    return _profile_form(request, profile=None)


@require_http_methods(["GET", "POST"])
@permission_required("deployments.change_profile", raise_exception=True)
def profile_edit(request, name):
    profile = get_object_or_404(selectors.profile_detail_queryset(), name=name)
    return _profile_form(request, profile=profile)


def _profile_form(request, *, profile):
    names = selectors.cluster_names()
    if profile is not None:
        initial = profile_initial(profile)
    else:
        default = "minikube" if "minikube" in names else (names[0] if names else None)
        initial = {"profile": {"cluster": default, "environment": "dev"}}
    forms = ProfileForms(profile=profile, initial=initial, cluster_names=names)
    if request.method == "POST":
        adding = next((kind for kind in ROW_KINDS if f"_add_{kind}" in request.POST), None)
        data = _with_one_more_row(request.POST, adding) if adding else request.POST
        forms = ProfileForms(data, profile=profile, initial=initial, cluster_names=names)
        if not adding and forms.is_valid():
            try:
                spec = parse_spec(forms.spec_document(), cluster_names=set(names))
                saved = profile_apply_spec(spec=spec, profile=profile, actor=request.user)
            except SpecError as exc:
                forms.add_spec_errors(exc.errors)
            else:
                verb = "created" if profile is None else "saved"
                messages.success(request, f"Profile {saved.name} {verb}.")
                url = reverse("deployments:profile_detail", args=[saved.name])
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    context = {"forms": forms, "profile": profile}
    return render_page_or_partial(request, "deployments/profile_form.html", "form", context)


def _total(data, kind):
    try:
        return int(data.get(f"{kind}-TOTAL_FORMS", "0"))
    except ValueError:
        return 0


def _with_one_more_row(data, kind):
    """The no-JS "Add ..." buttons: the same form with one more empty row of `kind`."""
    data = data.copy()
    data[f"{kind}-TOTAL_FORMS"] = str(max(0, min(_total(data, kind) + 1, ROW_KINDS[kind])))
    return data


@require_POST
def profile_validate(request):
    """Blur validation: the message (or none) for the one field that lost focus."""
    _require_any(request.user, EDIT_PERMISSIONS)
    trigger = (request.htmx.trigger_name if request.htmx else None) or request.POST.get("_field")
    forms = ProfileForms(request.POST, cluster_names=selectors.cluster_names())
    field = forms.bound_field(trigger or "")
    if field is None:
        return HttpResponse(status=204)
    return render(request, "deployments/profile_form.html#field_errors", {"field": field})


@require_GET
def formset_row(request, kind):
    """One more empty row of a formset (the htmx "Add component/config/secret" buttons)."""
    _require_any(request.user, EDIT_PERMISSIONS)
    if kind not in ROW_KINDS:
        raise Http404
    index = _total(request.GET, kind)
    if not 0 <= index < ROW_KINDS[kind]:
        return HttpResponse(status=204)
    forms = ProfileForms(cluster_names=(), extra={kind: index + 1})
    formset = getattr(forms, kind)
    context = {"form": formset.forms[index], "kind": kind, "total": index + 1}
    return render(request, f"deployments/profile_form.html#new_{kind}_row", context)
