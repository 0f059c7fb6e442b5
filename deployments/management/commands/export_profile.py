from django.core.management.base import BaseCommand

from deployments import profile_yaml
from deployments.management import profile_or_exit


class Command(BaseCommand):
    help = "Print a profile as YAML. Secret values are never written, only their source."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        profile = profile_or_exit(name)
        self.stdout.write(profile_yaml.dump(profile), ending="")
