"""A profile's deploy webhooks (admins): create one (its URL and secret shown once, with a
call to copy), list them with their last delivery, revoke one."""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from deployments.forms import WebhookForm
from deployments.models import DeployWebhook, Profile
from deployments.services.webhooks import webhook_create, webhook_revoke
from deployments.spec import SpecError

CHANGE = "deployments.change_profile"


def _url(request, hook):
    return request.build_absolute_uri(f"/api/v1/hooks/{hook.public_id}")


def _page(request, profile, form, *, created=None, status=200):
    hooks = [(hook, _url(request, hook)) for hook in profile.webhooks.all()]
    context = {"profile": profile, "form": form, "hooks": hooks, "created": created}
    response = render(request, "deployments/webhooks.html", context, status=status)
    add_never_cache_headers(response)  # the page may hold a secret shown once
    return response


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE, raise_exception=True)
def profile_webhooks(request, name):
    profile = get_object_or_404(Profile, name=name)
    if request.method != "POST":
        return _page(request, profile, WebhookForm())
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            hook, secret = webhook_create(
                profile=profile,
                name=form.cleaned_data["name"],
                build=form.cleaned_data["build"],
                actor=request.user,
            )
        except SpecError as exc:
            for error in exc.errors:
                form.add_error("name", error.message)
        else:
            created = {"hook": hook, "secret": secret, "url": _url(request, hook)}
            return _page(request, profile, WebhookForm(), created=created, status=201)
    return _page(request, profile, form, status=400)


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE, raise_exception=True)
def webhook_revoke_view(request, name, pk):
    hook = get_object_or_404(DeployWebhook, pk=pk, profile__name=name, revoked_at__isnull=True)
    if request.method == "POST":
        webhook_revoke(webhook=hook, actor=request.user)
        messages.success(request, f"Webhook {hook.name} revoked: calls to it now get 404.")
        return redirect("deployments:profile_webhooks", name=name)
    return render(
        request, "deployments/webhook_revoke.html", {"hook": hook, "profile": hook.profile}
    )
