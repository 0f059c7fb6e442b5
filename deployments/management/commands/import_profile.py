import sys
from pathlib import Path

from django.core.management.base import CommandError

from deployments import profile_yaml
from deployments.management import ProfileCommand
from deployments.services.profiles import profile_import
from deployments.spec import SpecError


class Command(ProfileCommand):
    help = (
        "Create or replace a profile from a YAML file (README, Profiles). Atomic: a bad file "
        "exits 2, prints one line per bad field on stderr and writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="profile YAML file, or - for standard input")

    def handle(self, *args, file, **options):
        try:
            text = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"{file}: cannot read: {exc.strerror}", returncode=2) from None
        try:
            profile = profile_import(data=profile_yaml.load(text), actor=None)
        except SpecError as exc:
            for error in exc.errors:
                self.stderr.write(f"{file}: {error}")
            sys.exit(2)
        self.stdout.write(
            f"imported profile {profile.name} ({profile.components.count()} components)"
        )
