"""Sending one message through an Apprise URL (Slack, Discord, Teams, Telegram, email over
SMTP, ntfy, a JSON webhook, ...): Apprise does the sending; this adapter turns its result
into our one error type, with a reason that never holds the URL.

Apprise is imported on first use (~0.5 s of imports: every plugin), in the worker.

Apprise logs the URL's path and query at DEBUG (and urllib3 the request line): settings'
LOGGING keeps both loggers at WARNING, and the reason of a failure is taken from the
result's own log entries, with every part of the URL masked.
"""

import re

from deployments.integrations import IntegrationError
from deployments.integrations.lazy import lazy
from deployments.redaction import REDACTED, Redactor

apprise = lazy("apprise")

SCHEME = re.compile(r"^([a-z][a-z0-9+.-]{0,31})://", re.IGNORECASE)
REASON_MAX = 500


def url_scheme(url):
    """The URL's scheme ("slack", "mailto", "json"), or "" when it has none."""
    match = SCHEME.match(url.strip())
    return match.group(1).lower() if match else ""


def url_problem(url):
    """Why Apprise cannot use `url`, in words that do not repeat it; None when it can."""
    scheme = url_scheme(url)
    if not scheme:
        return "Enter an Apprise URL, like json://host/path or mailtos://user:pass@host"
    if not apprise.Apprise().add(url.strip()):
        return (
            f"Apprise does not accept this {scheme}:// URL: check the service's URL format "
            "at https://github.com/caronc/apprise/wiki"
        )
    return None


def url_masker(url):
    """A Redactor for the URL and each part of it (user, password, host, tokens in the path
    or the query) of 4 characters or more."""
    parts = [part for part in re.split(r"[/:@?&=#,]+", url) if len(part) >= 4]
    return Redactor([url, *parts[1:]])  # parts[0] is the scheme


def send(url, *, title, body, timeout):
    """Send one message. Raises IntegrationError: permanent when Apprise cannot use the URL,
    transient when the service did not take the message (it may later)."""
    problem = url_problem(url)
    if problem is not None:
        raise IntegrationError(problem, permanent=True)
    client = apprise.Apprise()
    client.add(url.strip())
    result = client.notify(body=body, title=title, body_format="text", timeout=timeout)
    if result:
        return
    entries = [
        entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")
    ]
    reason = url_masker(url)("; ".join(entries)) or "the service did not take the message"
    reason = reason.replace(REDACTED, "…")
    raise IntegrationError(reason[:REASON_MAX], permanent=False)
