"""Deploy webhooks: creating and revoking them, and taking a delivery.

A delivery is `POST /api/v1/hooks/<public id>` with a JSON body ({"tags": {component:
tag}, "build": bool}, both optional), signed:

    X-Helmdeck-Timestamp: <unix seconds>
    X-Helmdeck-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    Idempotency-Key: <any id of this call>   (optional)

A timestamp more than TOLERANCE seconds away from now is refused (a captured call cannot be
replayed later); within that window the same signed call is recognised by its signature
(whatever Idempotency-Key it carries, or none), and a retry by its Idempotency-Key with the
same body; both are answered with the release they started. A key reused with another body
is refused (409).
"""

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from deployments import crypto
from deployments.models import DeployWebhook, WebhookDelivery
from deployments.services.profiles import audit_record
from deployments.services.release_queue import release_enqueue
from deployments.services.releases import release_request
from deployments.spec import FieldError, SpecError

TIMESTAMP_HEADER = "X-Helmdeck-Timestamp"
SIGNATURE_HEADER = "X-Helmdeck-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TOLERANCE = 300  # seconds a delivery's timestamp may differ from now
KEY_MAX = 200
REFUSALS_AUDITED_EVERY = 60  # seconds
NAME_MAX = 100


class WebhookRefused(Exception):
    """A delivery that is not taken: `status` 404 (no such webhook), 401 (not signed by
    it, or too old) or 503 (its secret unreadable with the panel's keys). The message says
    why without echoing what was sent."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class WebhookActor:
    """Who a release started by a webhook was requested by: `webhook <name>`."""

    username: str
    pk = None


def webhook_signature(secret, timestamp, body):
    """The X-Helmdeck-Signature value of `body` sent at `timestamp`."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_create(*, profile, name, build, actor):
    """A new webhook of `profile`: (DeployWebhook, its secret, shown once). SpecError for
    a bad name."""
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise SpecError([FieldError("name", f"1 to {NAME_MAX} printable characters")])
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook = DeployWebhook.objects.create(
        profile=profile,
        name=name,
        public_id=secrets.token_urlsafe(18),
        ciphertext=crypto.encrypt(secret),
        build=build,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(actor=actor, action="webhook.created", profile=profile, target=f"webhook {name}")
    return hook, secret


def webhook_revoke(*, webhook, actor):
    revoked = DeployWebhook.objects.filter(pk=webhook.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit_record(
            actor=actor,
            action="webhook.revoked",
            profile=webhook.profile,
            target=f"webhook {webhook.name}",
        )
    return bool(revoked)


def _refuse(hook, reason, address):
    """401, and an audit event: the first refusal of a webhook per REFUSALS_AUDITED_EVERY
    seconds (a flood of bad calls does not bury the profile's audit trail)."""
    if cache.add(f"helmdeck:webhook-refused:{hook.pk}", 1, REFUSALS_AUDITED_EVERY):
        audit_record(
            actor=WebhookActor(f"webhook {hook.name}"),
            action="webhook.refused",
            profile=hook.profile,
            target=f"webhook {hook.name}: {reason} (from {address or 'unknown'}; "
            f"more refusals within {REFUSALS_AUDITED_EVERY} s are not recorded)",
        )
    raise WebhookRefused(401, reason)


def _verified(hook, *, body, timestamp, signature, address):
    stamp = (timestamp or "").strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        _refuse(hook, f"no {TIMESTAMP_HEADER} (unix seconds)", address)
    sent_at = int(stamp)
    if abs(time.time() - sent_at) > TOLERANCE:
        _refuse(
            hook,
            f"timestamp more than {TOLERANCE} s from now (a replay, or a wrong clock)",
            address,
        )
    try:
        secret = crypto.decrypt(hook.ciphertext)
    except crypto.SecretDecryptError:
        # the panel's keys changed without rotate_secrets: the operator's problem to fix
        raise WebhookRefused(
            503,
            "this webhook's secret cannot be read with the panel's keys; an admin "
            "must create a new webhook (or restore the old key)",
        ) from None
    expected = webhook_signature(secret, sent_at, body)
    if not hmac.compare_digest(expected.encode(), (signature or "").encode()):
        _refuse(hook, "the signature does not match this webhook's secret", address)


def _request(body, hook):
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise SpecError([FieldError("body", "is not a JSON object")]) from None
    if not isinstance(data, dict):
        raise SpecError([FieldError("body", "is not a JSON object")])
    errors = [FieldError(key, "unknown field") for key in data if key not in ("tags", "build")]
    tags, build = data.get("tags") or {}, data.get("build", hook.build)
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        errors.append(FieldError("tags", "a mapping of component name to image tag"))
    if not isinstance(build, bool):
        errors.append(FieldError("build", "true or false"))
    if errors:
        raise SpecError(errors)
    return tags, build


def webhook_deliver(*, public_id, body, timestamp, signature, key, address):
    """Take a delivery: (the release it started, or the one the same call started before;
    whether it is that earlier one). Raises WebhookRefused (404, 401, 409 for a key reused
    with another body, 503), SpecError (a bad body) or ReleaseRefused (one is active)."""
    hook = (
        DeployWebhook.objects.select_related("profile__cluster")
        .filter(public_id=public_id, revoked_at__isnull=True)
        .first()
    )
    if hook is None:
        raise WebhookRefused(404, "no such webhook")
    _verified(hook, body=body, timestamp=timestamp, signature=signature, address=address)
    key = (key or "").strip()
    if len(key) > KEY_MAX or not key.isprintable():
        raise SpecError([FieldError(IDEMPOTENCY_HEADER, f"at most {KEY_MAX} printable characters")])
    digest = hashlib.sha256(body).hexdigest()
    earlier = _earlier(hook, signature=signature, key=key, digest=digest)
    if earlier is not None:
        return earlier.release, True
    tags, build = _request(body, hook)
    actor = WebhookActor(f"webhook {hook.name}")
    try:
        with transaction.atomic():
            # the delivery row first: of two calls with one key (or one signature), the
            # second waits here and then fails a unique constraint instead of deploying
            delivery = WebhookDelivery.objects.create(
                webhook=hook,
                key=key or f"signature:{signature}",
                signature=signature,
                body_digest=digest,
            )
            release = release_request(profile=hook.profile, actor=actor, build=build, tags=tags)
            delivery.release = release
            delivery.save(update_fields=["release"])
            DeployWebhook.objects.filter(pk=hook.pk).update(last_delivery_at=timezone.now())
            release_enqueue(release)
    except IntegrityError:
        earlier = _earlier(hook, signature=signature, key=key, digest=digest)
        if earlier is None:
            raise
        return earlier.release, True
    return release, False


def _earlier(hook, *, signature, key, digest):
    """The delivery this call repeats: the same signed call (a replay, whatever its key),
    or an earlier call with the same Idempotency-Key and body. WebhookRefused (409) for the
    key with another body: a new deploy needs a new key."""
    deliveries = WebhookDelivery.objects.filter(webhook=hook).select_related("release")
    same = deliveries.filter(signature=signature).first()
    if same is None and key:
        same = deliveries.filter(key=key).first()
        if same is not None and same.body_digest != digest:
            raise WebhookRefused(
                409,
                f"this {IDEMPOTENCY_HEADER} came with another body before; a new deploy "
                "needs a new key",
            )
    return same
