from deployments import profile_yaml
from deployments.management import ProfileCommand, profile_or_exit


class Command(ProfileCommand):
    help = "Print a profile as YAML. Secret values are never written, only their source."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        profile = profile_or_exit(name)
        self.stdout.write(profile_yaml.dump(profile), ending="")
