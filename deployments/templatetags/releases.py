"""Template helpers for release pages: durations, diff lines, status badges."""

from datetime import timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html

from deployments.models import ReleaseStatus

register = template.Library()


@register.filter
def duration(value):
    """A timedelta as 850ms, 4.2s, 2m 05s or 1h 02m ("" for None)."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@register.simple_tag
def elapsed(start, end=None):
    """How long from `start` to `end` (or to now, for something still running)."""
    if start is None:
        return ""
    return duration((end or timezone.now()) - start)


@register.filter
def diff_lines(text):
    """[(css class, line)] of a unified diff, for colouring."""
    lines = []
    for line in (text or "").splitlines():
        if line.startswith(("+++", "---")):
            kind = "diff-file"
        elif line.startswith("@@"):
            kind = "diff-hunk"
        elif line.startswith("+"):
            kind = "diff-add"
        elif line.startswith("-"):
            kind = "diff-del"
        else:
            kind = "diff-ctx"
        lines.append((kind, line))
    return lines


@register.simple_tag
def status_badge(status, reason=""):
    """A release's status as a badge, its reason after it when given: the markup of every
    page and of the release stream's `status` events (views.streams) alike."""
    known = status in ReleaseStatus.values
    label = ReleaseStatus(status).label if known else (status or "").replace("_", " ")
    badge = format_html('<span class="badge badge-{}">{}</span>', status, label)
    if reason:
        badge += format_html(' <span class="reason">{}</span>', reason)
    return badge
