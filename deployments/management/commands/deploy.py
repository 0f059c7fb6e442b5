import sys

from django.core.management.base import CommandError

from deployments.management import ProfileCommand, profile_or_exit
from deployments.models import Release
from deployments.services.releases import ReleaseRefused, release_request, release_run


class Command(ProfileCommand):
    help = (
        "Deploy a profile: build its images, helm upgrade --install, verify Ready. "
        "Exit 0 only when the release is deployed and Ready, else 1 with the reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="follow the release's log until it ends; exit 0 only when deployed and Ready "
            "(a running worker runs it; with none, or with --here, this process does)",
        )
        parser.add_argument(
            "--here", action="store_true", help="with --wait: run the release in this process"
        )
        parser.add_argument("--no-build", action="store_true", help="deploy existing images")

    def handle(self, *args, name, wait, here, no_build, **options):
        profile = profile_or_exit(name)
        try:
            release = release_request(profile=profile, actor=None, build=not no_build)
        except ReleaseRefused as exc:
            raise CommandError(str(exc), returncode=1) from None
        if wait and (here or not _worker_running()):
            report(self, release_run(release.pk))  # exits
            return
        from deployments.services.release_queue import release_enqueue

        release_enqueue(release)
        self.stdout.write(f"queued release #{release.pk} of {name}")
        if not wait:
            return
        from deployments.services.release_follow import release_follow, terminal_safe

        def line(step, text):
            self.stdout.write(terminal_safe(f"[{step}] {text}" if step else text))

        try:
            settled = release_follow(release_id=release.pk, on_line=line)
        except KeyboardInterrupt:
            from django.urls import reverse

            page = reverse("deployments:release_detail", args=[release.pk])
            self.stderr.write(
                f"stopped following; release #{release.pk} goes on in the worker: "
                f"its page, {page}, shows it and can cancel it"
            )
            sys.exit(130)
        report(self, settled)


def _worker_running():
    """A Celery worker's heartbeat is fresh (deployments.heartbeat): it will take the
    release at once, with everything it needs already loaded."""
    from deployments.heartbeat import live_workers
    from deployments.integrations.redis import RedisError, app_client

    try:
        return bool(live_workers(app_client()))
    except RedisError:
        return False


def report(command, release):
    """Print the release's outcome and exit 0 (succeeded) or 1."""
    took = f" in {release.duration.total_seconds():.0f}s" if release.duration else ""
    if release.status == Release.Status.SUCCEEDED:
        command.stdout.write(
            f"release #{release.pk} of {release.profile.name} succeeded{took}: "
            f"helm revision {release.helm_revision}"
        )
        if release.notes:
            command.stdout.write(release.notes)
        sys.exit(0)
    command.stderr.write(
        f"release #{release.pk} of {release.profile.name} "
        f"{release.status.replace('_', ' ')}{took}: {release.reason}"
    )
    sys.exit(1)
