"""Actions on what runs, from the profile page: restart or scale a component, delete a pod,
put the profile to sleep and wake it (deployments.services.operations does them), and
tear it down (a release of kind teardown: services/teardown.py).

Each is a small form on the profile page that POSTs here. An action that stops pods
(deleting one, scaling to 0, sleep) first answers with a page that says what will stop;
its form acts. A GET shows the same page, so every action also works from a link without
JavaScript. Every form carries a token: the same form sent twice acts once.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from deployments.forms import ActionForm, ScaleForm, SleepScheduleForm, TeardownForm
from deployments.models import Profile
from deployments.services import operations as ops
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import ReleaseRefused, release_teardown_request
from deployments.spec import SpecError
from deployments.validators import validate_dns1123_subdomain
from deployments.views import once

DEPLOY = "deployments.deploy_profile"


@dataclass
class Action:
    """What the confirmation page says of one action, and how to run it."""

    title: str
    explain: str
    button: str
    run: Any  # cleaned form data -> services.operations.Done
    # True: it stops pods (its page is a confirmation); or, for an action that stops pods
    # only with some input (scale to 0), cleaned form data -> True when it does
    stops: Any = False
    form_class: type = ActionForm
    danger: bool = False


def _release_url(pk):
    return reverse("deployments:release_detail", args=[pk])


def _profile(name):
    return get_object_or_404(Profile.objects.select_related("cluster"), name=name)


def _act(request, profile, action, *, component=None):
    back = reverse("deployments:profile_detail", args=[profile.name])
    form = action.form_class(
        request.POST if request.method == "POST" else None,
        initial={
            "token": once.new_token(),
            "confirmed": action.stops is True,
            **_initial(component),
        },
    )
    refused, status = "", 200
    if request.method == "POST":
        if not form.is_valid():
            status = 400
        elif once.acted(request, "action", form.cleaned_data["token"]) is not None:
            return once.redirect_after_post(request, back)  # the same form again: it acted already
        elif _asks_first(action, form.cleaned_data):
            form = action.form_class(initial={**form.cleaned_data, "confirmed": True})
        elif not once.claim(request, "action", form.cleaned_data["token"]):
            return once.redirect_after_post(request, back)  # the same form, sent meanwhile
        else:
            try:
                message = action.run(form.cleaned_data).message
            except ops.ActionRefused as exc:
                once.release(request, "action", form.cleaned_data["token"])
                refused, status = str(exc), exc.status
            except SpecError as exc:
                once.release(request, "action", form.cleaned_data["token"])
                for error in exc.errors:
                    form.add_error(error.path if error.path in form.fields else None, error.message)
                status = 400
            except Exception:  # not acted: the same form may be sent again
                once.release(request, "action", form.cleaned_data["token"])
                raise
            else:
                once.remember(request, "action", form.cleaned_data["token"], message)
                messages.success(request, message)
                return once.redirect_after_post(request, back)
    context = {
        "profile": profile,
        "action": action,
        "form": form,
        "refused": refused,
        "back": back,
        "component": component,
    }
    return render(request, "deployments/operation_confirm.html", context, status=status)


def _asks_first(action, data):
    """An action that stops pods, not yet confirmed on its page: show the page first."""
    stops = action.stops(data) if callable(action.stops) else action.stops
    return bool(stops and not data["confirmed"])


def _initial(component):
    if component is None:
        return {}
    scaled = component.scaled_replicas
    return {"replicas": component.replicas if scaled is None else scaled}


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def component_restart_view(request, name, component):
    profile = _profile(name)
    component = get_object_or_404(profile.components, name=component)

    def run(data):
        return ops.component_restart(profile=profile, component=component, actor=request.user)

    action = Action(
        title=f"Restart {component.name} of {profile.name}",
        explain=(
            "A rolling restart, as kubectl rollout restart does: new pods start with the same "
            "image and config, and each old pod stops only when a new one is Ready."
        ),
        button=f"Restart {component.name}",
        run=run,
    )
    return _act(request, profile, action)


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def component_scale_view(request, name, component):
    profile = _profile(name)
    component = get_object_or_404(profile.components, name=component)

    def run(data):
        return ops.component_scale(
            profile=profile, component=component, replicas=data["replicas"], actor=request.user
        )

    action = Action(
        title=f"Scale {component.name} of {profile.name}",
        explain=(
            f"The profile says {component.replicas}. Scaling changes what runs now; the next "
            "deploy sets the profile's number again. At 0 every pod of the component stops "
            "and what it holds in memory is lost."
        ),
        button=f"Scale {component.name}",
        run=run,
        stops=lambda data: data.get("replicas") == 0,
        form_class=ScaleForm,
    )
    return _act(request, profile, action, component=component)


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def pod_delete_view(request, name, pod):
    profile = _profile(name)
    try:  # a pod's name is a DNS subdomain: anything else names no pod (and reaches no page)
        validate_dns1123_subdomain(pod)
    except ValidationError:
        raise Http404("no such pod") from None

    def run(data):
        return ops.pod_delete(profile=profile, pod=pod, actor=request.user)

    action = Action(
        title=f"Delete pod {pod}",
        explain=(
            "The pod stops (what it holds in memory is lost) and its Deployment starts a new "
            "one in its place: the usual cure for a pod stuck in a bad state."
        ),
        button=f"Delete pod {pod}",
        run=run,
        stops=True,
        danger=True,
    )
    return _act(request, profile, action)


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def profile_sleep_view(request, name):
    profile = _profile(name)

    def run(data):
        return ops.profile_sleep(profile=profile, actor=request.user)

    action = Action(
        title=f"Put {profile.name} to sleep",
        explain=(
            "Every component is scaled to 0 pods, which frees the cluster's CPU and memory "
            "for something else. Helmdeck remembers how many pods each ran; Wake (or the next "
            "deploy) brings them back. What the pods hold in memory is lost."
        ),
        button=f"Put {profile.name} to sleep",
        run=run,
        stops=True,
        danger=True,
    )
    return _act(request, profile, action)


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def profile_wake_view(request, name):
    profile = _profile(name)

    def run(data):
        return ops.profile_wake(profile=profile, actor=request.user)

    action = Action(
        title=f"Wake {profile.name}",
        explain="Every component is scaled back to the pods it ran when it went to sleep.",
        button=f"Wake {profile.name}",
        run=run,
    )
    return _act(request, profile, action)


@require_http_methods(["GET", "POST"])
@permission_required(DEPLOY, raise_exception=True)
def profile_sleep_schedule_view(request, name):
    """Deployers: sleep the profile after N hours without a deploy, an action or a visit
    of its page (or never). Setting a number twice is harmless: no token needed."""
    profile = _profile(name)
    back = reverse("deployments:profile_detail", args=[profile.name])
    data = request.POST if request.method == "POST" else None
    form = SleepScheduleForm(data, initial={"hours": profile.sleep_after_hours})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                done = ops.profile_sleep_schedule(
                    profile=profile, hours=form.cleaned_data["hours"], actor=request.user
                )
            except SpecError as exc:
                for error in exc.errors:
                    form.add_error("hours", error.message)
            else:
                messages.success(request, done.message)
                return once.redirect_after_post(request, back)
        status = 400
    context = {"profile": profile, "form": form, "back": back}
    return render(request, "deployments/profile_sleep_schedule.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required("deployments.delete_profile", raise_exception=True)
def profile_teardown_view(request, name):
    """Admins: `helm uninstall` of the profile's release (and its namespace when Helmdeck
    created it), after the profile's name is typed. The answer is the teardown's release
    page, live like a deploy's."""
    profile = _profile(name)
    data = request.POST if request.method == "POST" else None
    form = TeardownForm(data, profile_name=profile.name, initial={"token": once.new_token()})
    refused, status = "", 200
    if request.method == "POST":
        started = once.acted(request, "teardown", request.POST.get("token", ""))
        if started is not None:  # the same form again: its release's page
            return once.redirect_after_post(request, _release_url(started))
        if not form.is_valid():
            status = 400
        elif not once.claim(request, "teardown", form.cleaned_data["token"]):
            back = reverse("deployments:profile_detail", args=[profile.name])
            return once.redirect_after_post(request, back)  # the same form, sent meanwhile
        else:
            try:
                release = release_teardown_request(profile=profile, actor=request.user)
            except ReleaseRefused as exc:
                once.release(request, "teardown", form.cleaned_data["token"])
                refused, status = str(exc), 409
            else:
                release_enqueue(release)
                once.remember(request, "teardown", form.cleaned_data["token"], release.pk)
                messages.success(request, f"Teardown of {profile.name} queued: #{release.pk}.")
                return once.redirect_after_post(request, _release_url(release.pk))
    context = {"profile": profile, "form": form, "refused": refused}
    return render(request, "deployments/profile_teardown.html", context, status=status)
