from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from deployments import crypto
from deployments.models import DeployWebhook, SecretEntry


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (and deploy webhook secret) with the first key of "
        "HELMDECK_SECRET_KEYS. "
        "Run after putting a new key first; then the old keys can be removed."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        entries = SecretEntry.objects.select_for_update().exclude(ciphertext="")
        rotated = 0
        for entry in entries:
            try:
                entry.ciphertext = crypto.rotate(entry.ciphertext)
            except crypto.SecretDecryptError:
                raise CommandError(
                    f"secret {entry.key} of profile {entry.profile.name} cannot be decrypted with "
                    "any configured key; nothing was changed (keep the old key in the list)",
                    returncode=2,
                ) from None
            entry.save(update_fields=["ciphertext"])
            rotated += 1
        hooks = DeployWebhook.objects.select_for_update().select_related("profile")
        for hook in hooks:
            try:
                hook.ciphertext = crypto.rotate(hook.ciphertext)
            except crypto.SecretDecryptError:
                raise CommandError(
                    f"webhook {hook.name} of profile {hook.profile.name} cannot be decrypted with "
                    "any configured key; nothing was changed (keep the old key in the list)",
                    returncode=2,
                ) from None
            hook.save(update_fields=["ciphertext"])
            rotated += 1
        self.stdout.write(f"re-encrypted {rotated} secrets with the first key")
