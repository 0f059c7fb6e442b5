"""API tokens: a user's named credentials for the HTTP API and the remote CLI. Only a
SHA-256 digest of a token is stored (a token is 256 random bits: a slow hash adds nothing
against guessing, and a digest lookup is one indexed query); its first characters are kept
to tell tokens apart in lists."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from deployments.models.profiles import Profile


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)  # the token's first characters, shown in lists
    digest = models.CharField(max_length=64, unique=True)  # sha256 hex of the whole token
    read_only = models.BooleanField(default=False)
    # narrowed: only `profiles` (none left, once they are deleted: nothing); else every
    # profile its user may see. Set once, at creation: an emptied list never widens it.
    narrowed = models.BooleanField(default=False)
    profiles = models.ManyToManyField(Profile, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=models.Q(revoked_at__isnull=True),
                name="api_token_name_unique_per_user",
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def state(self):
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired else "active"
