"""Deploy webhooks: per profile, a URL a CI job or a registry calls (signed with the
webhook's secret, which is stored encrypted like a profile's secrets: verifying a signature
needs it), and the deliveries it accepted (one per idempotency key: a retried call starts
one release)."""

from django.conf import settings
from django.db import models

from deployments.models.profiles import Profile
from deployments.models.releases import Release


class DeployWebhook(models.Model):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100)
    public_id = models.CharField(max_length=64, unique=True)  # in its URL; not a secret
    ciphertext = models.TextField(editable=False)  # the signing secret (deployments.crypto)
    build = models.BooleanField(default=False)  # build images first (a registry push: no)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.profile.name}: {self.name}"


class WebhookDelivery(models.Model):
    webhook = models.ForeignKey(DeployWebhook, on_delete=models.CASCADE, related_name="deliveries")
    key = models.CharField(max_length=200)  # Idempotency-Key, or the signature when none
    signature = models.CharField(max_length=100)  # the same signed call again is a replay
    body_digest = models.CharField(max_length=64)  # one key, one body
    release = models.ForeignKey(Release, null=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["webhook", "key"], name="webhook_delivery_once"),
            models.UniqueConstraint(
                fields=["webhook", "signature"], name="webhook_delivery_signature_once"
            ),
        ]

    def __str__(self):
        return f"{self.webhook_id}: {self.key[:40]} -> release {self.release_id}"
