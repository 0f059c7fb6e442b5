"""API tokens: creating, revoking and checking them. A token is shown once, when it is
created; only its SHA-256 digest is stored (deployments/models/tokens.py says why that
is enough for 256 random bits)."""

import hashlib
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from deployments.models import ApiToken
from deployments.services.profiles import audit_record
from deployments.spec import FieldError, SpecError

TOKEN_PREFIX = "hd_"  # lets secret scanners and people tell a Helmdeck token apart
NAME_MAX = 100
EXPIRY_DAYS_MAX = 3650
# last_used_at/_address are written at most this often per token: a busy CI job does
# not turn every API call into a write
LAST_USED_EVERY = timedelta(seconds=60)


def _digest(raw):
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def api_token_create(*, user, name, read_only=False, profiles=(), expires_in_days=None):
    """A new token for `user`: (ApiToken, the token itself, which is never stored).
    Raises SpecError (fields name, expires_in_days, profiles) and writes nothing then."""
    name = (name or "").strip()
    errors = []
    if not name:
        errors.append(
            FieldError("name", "give the token a name (where it is used: a CI job, a laptop)")
        )
    elif len(name) > NAME_MAX or not name.isprintable():
        errors.append(FieldError("name", f"at most {NAME_MAX} printable characters"))
    if expires_in_days is not None and not 1 <= expires_in_days <= EXPIRY_DAYS_MAX:
        errors.append(
            FieldError("expires_in_days", f"between 1 and {EXPIRY_DAYS_MAX} days, or none")
        )
    if errors:
        raise SpecError(errors)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = (
        timezone.now() + timedelta(days=expires_in_days) if expires_in_days is not None else None
    )
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=user,
                name=name,
                prefix=raw[: len(TOKEN_PREFIX) + 6],
                digest=_digest(raw),
                read_only=read_only,
                narrowed=bool(profiles),
                expires_at=expires_at,
            )
            token.profiles.set(profiles)
            audit_record(
                actor=user,
                action="api_token.created",
                target=f"token {name}",
                after={
                    "read_only": read_only,
                    "profiles": sorted(p.name for p in profiles),
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
    except IntegrityError:
        raise SpecError([FieldError("name", f"you already have a token named {name}")]) from None
    return token, raw


def api_token_revoke(*, token, actor):
    """Revoke `token` (its owner's or, for an admin, anyone's); True when it was active."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit_record(
            actor=actor,
            action="api_token.revoked",
            target=f"token {token.name} of {token.user.get_username()}",
        )
    return bool(revoked)


def api_token_authenticate(*, raw, address):
    """The active token `raw` is, with its user loaded, or None (unknown, revoked, expired,
    or its user deactivated). Records when and from where it was last used."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=_digest(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or token.expired or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_address=address)
        token.last_used_at, token.last_used_address = now, address
    return token


def api_token_allows(token, profile):
    """Whether `token` may act on `profile` (a token narrowed to some profiles)."""
    allowed = _allowed_ids(token)
    return allowed is None or profile.pk in allowed


def api_token_profiles(token, profiles):
    """`profiles` (a queryset) narrowed to what `token` may see."""
    allowed = _allowed_ids(token)
    return profiles if allowed is None else profiles.filter(pk__in=allowed)


def _allowed_ids(token):
    """None (every profile) or the ids a narrowed token reaches (maybe none: its profiles
    were deleted)."""
    if not token.narrowed:
        return None
    cached = getattr(token, "_allowed_ids", None)
    if cached is None:
        cached = token._allowed_ids = set(token.profiles.values_list("pk", flat=True))
    return cached


def api_token_active(token_pk, permission):
    """Whether the token is still good for `permission` (an open stream asks this every
    heartbeat): not revoked or expired, its user active and still allowed."""
    token = (
        ApiToken.objects.select_related("user").filter(pk=token_pk, revoked_at__isnull=True).first()
    )
    return (
        token is not None
        and not token.expired
        and token.user.is_active
        and token.user.has_perm(permission)
    )
