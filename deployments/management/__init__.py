from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError


class ProfileCommand(BaseCommand):
    """The everyday commands (deploy, rollback, render, export and import of a profile):
    Django's system checks before each are the models' only. The URL check
    imports every view and the API's schemas, ~1.1 s of a 2.7 s start (`manage.py check
    --tag urls` against `--tag models`), for commands that serve no URL; `manage.py check`,
    `migrate` (make run, each deploy of the panel) and `doctor` run them all."""

    requires_system_checks = [Tags.models]


def profile_or_exit(name):
    """The profile named `name` (with its cluster), or exit 2 saying there is none."""
    from deployments.models import Profile

    profile = Profile.objects.select_related("cluster").filter(name=name).first()
    if profile is None:
        raise CommandError(f"no profile named {name!r}", returncode=2)
    return profile
