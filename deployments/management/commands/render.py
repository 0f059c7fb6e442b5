import sys

from django.core.management.base import CommandError

from deployments.integrations import IntegrationError
from deployments.management import ProfileCommand, profile_or_exit
from deployments.services.rendering import profile_render


class Command(ProfileCommand):
    help = (
        "Print the manifests a deploy of NAME would apply (helm template output, secret "
        "values redacted). Exit 2 with one line per problem when lint or schema checks fail."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        profile = profile_or_exit(name)
        try:
            rendered = profile_render(profile=profile)
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=2 if exc.permanent else 1) from None
        if not rendered.ok:
            for problem in rendered.problems:
                self.stderr.write(f"{name}: {problem}")
            sys.exit(2)
        self.stdout.write(rendered.text(), ending="")
