from django.core.management.base import BaseCommand

from deployments import crypto


class Command(BaseCommand):
    help = "Print a new Fernet key for HELMDECK_SECRET_KEYS (put it first to rotate)."

    def handle(self, *args, **options):
        self.stdout.write(crypto.generate_key())
