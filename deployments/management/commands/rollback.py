from django.core.management.base import CommandError

from deployments.management import ProfileCommand, profile_or_exit
from deployments.management.commands.deploy import report
from deployments.services.releases import ReleaseRefused, release_rollback_request, release_run


class Command(ProfileCommand):
    help = (
        "Roll a profile back to an earlier successful release (its images and config), "
        "recorded as a new release. Exit 0 only when it is deployed and Ready."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--revision",
            type=int,
            default=None,
            help="the helm revision to restore (default: the previous one)",
        )

    def handle(self, *args, name, revision, **options):
        profile = profile_or_exit(name)
        try:
            release = release_rollback_request(profile=profile, actor=None, revision=revision)
        except ReleaseRefused as exc:
            raise CommandError(str(exc), returncode=1) from None
        report(self, release_run(release.pk))
