"""/metrics for Prometheus, behind a bearer token, an address allow-list, or both.

- Neither HELMDECK_METRICS_TOKEN nor HELMDECK_METRICS_ALLOW set (the default): 404, as if
  there were no such page. Metrics are off until someone decides who may read them; a 404
  tells a scanner nothing, and a scrape job pointed at a panel without them says "off",
  not "wrong token".
- HELMDECK_METRICS_ALLOW (addresses or CIDR networks): the client's address must be in one,
  else 403. The address is REMOTE_ADDR: the peer, or the client a proxy named in
  HELMDECK_TRUSTED_PROXIES forwarded (controlpanel/serve.py decides); X-Forwarded-For is
  never read here. An entry that is not an address or network refuses every scrape (and
  says so in the log): a typo never opens the page.
- HELMDECK_METRICS_TOKEN: `Authorization: Bearer <token>`, else 401 with WWW-Authenticate.
  Compared in constant time (of two digests, so neither its length shows). A session cookie
  counts for nothing here.
- Both set: both are required (the address is checked first: a refused address learns
  nothing about tokens).
"""

import hashlib
import hmac
import ipaddress
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)
REALM = 'Bearer realm="helmdeck metrics"'


class BadAllowList(ValueError):
    pass


def allow_networks(entries):
    """The allow-list's networks; BadAllowList for an entry that is not an address or one."""
    networks = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise BadAllowList(entry) from None
    return networks


def address_allowed(address, networks):
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.5 from a dual-stack socket is 10.0.0.5
    return any(ip.version == net.version and ip in net for net in networks)


def _digest(value):
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


def bearer_matches(header, token):
    """Whether an Authorization header carries `token` as a Bearer token."""
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(_digest(given.strip()), _digest(token))


def _refusal(request):
    """None when the request may read the metrics, else the response that refuses it."""
    token = settings.HELMDECK_METRICS_TOKEN
    entries = settings.HELMDECK_METRICS_ALLOW
    if not token and not any(entry.strip() for entry in entries):
        raise Http404("metrics are off (set HELMDECK_METRICS_TOKEN or HELMDECK_METRICS_ALLOW)")
    if entries:
        try:
            networks = allow_networks(entries)
        except BadAllowList as exc:
            log.error("HELMDECK_METRICS_ALLOW: %r is not an IP address or network", str(exc))
            return HttpResponse("forbidden", status=403, content_type="text/plain")
        if networks and not address_allowed(request.META.get("REMOTE_ADDR"), networks):
            return HttpResponse("forbidden", status=403, content_type="text/plain")
    if token and not bearer_matches(request.headers.get("Authorization"), token):
        response = HttpResponse("unauthorized", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = REALM
        return response
    return None


@login_not_required
@never_cache
@require_GET
def metrics(request):
    if (refusal := _refusal(request)) is not None:
        return refusal
    # prometheus_client is imported by the first scrape, not at the web process's start
    # (~0.25 s cold: the startup benchmark's budget is 1 s)
    from deployments.metrics.exposition import metrics_exposition

    body, content_type = metrics_exposition(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
