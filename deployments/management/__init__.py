from django.core.management.base import CommandError


def profile_or_exit(name):
    """The profile named `name` (with its cluster), or exit 2 saying there is none."""
    from deployments.models import Profile

    profile = Profile.objects.select_related("cluster").filter(name=name).first()
    if profile is None:
        raise CommandError(f"no profile named {name!r}", returncode=2)
    return profile
