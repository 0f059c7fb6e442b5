from django.core.management.base import BaseCommand, CommandError

from deployments import profile_yaml
from deployments.models import Profile


class Command(BaseCommand):
    help = "Print a profile as YAML. Secret values are never written, only their source."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        profile = Profile.objects.filter(name=name).first()
        if profile is None:
            raise CommandError(f"no profile named {name!r}", returncode=2)
        self.stdout.write(profile_yaml.dump(profile), ending="")
