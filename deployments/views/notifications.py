"""The notifications page (admins): channels (created with their Apprise URL, which is never
shown again; a test message; turned off or on; deleted after a confirmation), rules (which
events of which profile go to which channels), and the messages sent with every attempt."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from deployments.forms import ChannelForm, RuleForm
from deployments.models import (
    Notification,
    NotificationAttempt,
    NotificationChannel,
    NotificationRule,
)
from deployments.services.notification_channels import (
    channel_create,
    channel_delete,
    channel_send_test,
    channel_set_enabled,
    rule_create,
    rule_delete,
)
from deployments.services.notifications import retry_delay
from deployments.spec import SpecError

MANAGE = "deployments.change_notificationchannel"
RECENT = 50


def _page(request, *, channel_form=None, rule_form=None, status=200):
    recent = Notification.objects.prefetch_related(
        Prefetch("attempt_rows", queryset=NotificationAttempt.objects.order_by("at", "id"))
    ).order_by("-created_at", "-id")[:RECENT]
    context = {
        "channels": NotificationChannel.objects.all(),
        "rules": NotificationRule.objects.select_related("profile").prefetch_related("channels"),
        "recent": recent,
        "channel_form": channel_form or ChannelForm(),
        "rule_form": rule_form or RuleForm(),
        "retries": settings.HELMDECK_NOTIFY_RETRIES,
        "backoff": [f"{retry_delay(n):g}" for n in (1, 2, 3)],
    }
    response = render(request, "deployments/notifications.html", context, status=status)
    add_never_cache_headers(response)  # a refused form comes back: no URL in any cache
    return response


def _errors_to(form, exc):
    for error in exc.errors:
        form.add_error(error.path if error.path in form.fields else None, error.message)


@require_http_methods(["GET"])
@permission_required(MANAGE, raise_exception=True)
def notifications(request):
    return _page(request)


@require_POST
@permission_required(MANAGE, raise_exception=True)
def channel_create_view(request):
    form = ChannelForm(request.POST)
    if form.is_valid():
        try:
            channel = channel_create(
                name=form.cleaned_data["name"], url=form.cleaned_data["url"], actor=request.user
            )
        except SpecError as exc:
            _errors_to(form, exc)
        else:
            messages.success(
                request, f"Channel {channel.name} added. Send it a test message to check it."
            )
            return redirect("deployments:notifications")
    return _page(request, channel_form=form, status=400)


@require_POST
@permission_required(MANAGE, raise_exception=True)
def channel_test_view(request, pk):
    channel = get_object_or_404(NotificationChannel, pk=pk)
    channel_send_test(channel=channel, actor=request.user)
    messages.success(
        request,
        f"A test message to {channel.name} is on its way: its delivery shows under Messages.",
    )
    return redirect("deployments:notifications")


@require_POST
@permission_required(MANAGE, raise_exception=True)
def channel_toggle_view(request, pk):
    channel = get_object_or_404(NotificationChannel, pk=pk)
    channel_set_enabled(channel=channel, enabled=not channel.enabled, actor=request.user)
    state = "off" if channel.enabled else "on"
    messages.success(request, f"Channel {channel.name} turned {state}.")
    return redirect("deployments:notifications")


@require_http_methods(["GET", "POST"])
@permission_required(MANAGE, raise_exception=True)
def channel_delete_view(request, pk):
    channel = get_object_or_404(NotificationChannel, pk=pk)
    if request.method == "POST":
        channel_delete(channel=channel, actor=request.user)
        messages.success(request, f"Channel {channel.name} deleted.")
        return redirect("deployments:notifications")
    return render(
        request, "deployments/notification_delete.html", {"what": f"channel {channel.name}"}
    )


@require_POST
@permission_required(MANAGE, raise_exception=True)
def rule_create_view(request):
    form = RuleForm(request.POST)
    if form.is_valid():
        try:
            rule_create(
                profile=form.cleaned_data["profile"],
                events=form.cleaned_data["events"],
                channels=list(form.cleaned_data["channels"]),
                actor=request.user,
            )
        except SpecError as exc:
            _errors_to(form, exc)
        else:
            messages.success(request, "Rule added.")
            return redirect("deployments:notifications")
    return _page(request, rule_form=form, status=400)


@require_http_methods(["GET", "POST"])
@permission_required(MANAGE, raise_exception=True)
def rule_delete_view(request, pk):
    rule = get_object_or_404(NotificationRule.objects.select_related("profile"), pk=pk)
    if request.method == "POST":
        rule_delete(rule=rule, actor=request.user)
        messages.success(request, "Rule deleted.")
        return redirect("deployments:notifications")
    return render(request, "deployments/notification_delete.html", {"what": f"the rule {rule}"})
