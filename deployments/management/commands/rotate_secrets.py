from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from deployments import crypto
from deployments.models import DeployWebhook, NotificationChannel, SecretEntry


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (deploy webhook secrets and notification channel URLs "
        "too) with the first key of "
        "HELMDECK_SECRET_KEYS. Run after putting a new key first; then the old keys can be "
        "removed."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        rows = (
            [
                (entry, f"secret {entry.key} of profile {entry.profile.name}")
                for entry in SecretEntry.objects.select_for_update(of=("self",))
                .exclude(ciphertext="")
                .select_related("profile")
            ]
            + [
                (hook, f"webhook {hook.name} of profile {hook.profile.name}")
                for hook in DeployWebhook.objects.select_for_update(of=("self",)).select_related(
                    "profile"
                )
            ]
            + [
                (channel, f"notification channel {channel.name}")
                for channel in NotificationChannel.objects.select_for_update()
            ]
        )
        for row, what in rows:
            try:
                row.ciphertext = crypto.rotate(row.ciphertext)
            except crypto.SecretDecryptError:
                raise CommandError(
                    f"{what} cannot be decrypted with any configured key; nothing was changed "
                    "(keep the old key in the list)",
                    returncode=2,
                ) from None
            row.save(update_fields=["ciphertext"])
        self.stdout.write(f"re-encrypted {len(rows)} secrets with the first key")
