"""Your API tokens (the user menu's Tokens page): create one (shown once), list them with
their last use, revoke one. Every user manages their own; a token acts with its user's
role, so creating one needs no permission beyond being signed in."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from deployments.forms import ApiTokenForm
from deployments.models import ApiToken
from deployments.services.api_tokens import api_token_create, api_token_revoke
from deployments.spec import SpecError


def _page(request, form, *, created=None, status=200):
    tokens = ApiToken.objects.filter(user=request.user).prefetch_related("profiles")
    context = {
        "form": form,
        "tokens": tokens,
        "created": created,
        "api_url": request.build_absolute_uri("/api/v1/"),
    }
    response = render(request, "deployments/api_tokens.html", context, status=status)
    add_never_cache_headers(response)  # the page may hold a token shown once
    return response


@require_http_methods(["GET", "POST"])
def api_tokens(request):
    if request.method != "POST":
        return _page(request, ApiTokenForm())
    form = ApiTokenForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            token, raw = api_token_create(
                user=request.user,
                name=data["name"],
                read_only=data["read_only"],
                profiles=list(data["profiles"]),
                expires_in_days=data["expires_in_days"],
            )
        except SpecError as exc:
            for error in exc.errors:
                form.add_error(error.path if error.path in form.fields else None, error.message)
        else:
            # shown on this response only: never stored, never in a redirect or a session
            return _page(request, ApiTokenForm(), created=(token, raw), status=201)
    return _page(request, form, status=400)


@require_http_methods(["GET", "POST"])
def api_token_revoke_view(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user, revoked_at__isnull=True)
    if request.method == "POST":
        api_token_revoke(token=token, actor=request.user)
        messages.success(request, f"Token {token.name} revoked: it no longer works.")
        return redirect("deployments:api_tokens")
    return render(request, "deployments/api_token_revoke.html", {"token": token})
