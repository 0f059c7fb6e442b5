import os
import secrets
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from deployments import profile_yaml
from deployments.models import Profile
from deployments.services.profiles import profile_import
from deployments.spec import SpecError


class Command(BaseCommand):
    help = "First-run setup for `make run`: an admin user and the example profile, once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("HELMDECK_ADMIN_USER", "admin"))
        parser.add_argument("--profile", help="profile YAML to import when no profile exists")

    @transaction.atomic
    def handle(self, *args, username, profile, **options):
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"admin login: {username} (existing user; password unchanged)")
        else:
            password = os.environ.get("HELMDECK_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username=username, password=password, email="")
            user.groups.add(Group.objects.get(name="admin"))
            shown = (
                "from HELMDECK_ADMIN_PASSWORD"
                if "HELMDECK_ADMIN_PASSWORD" in os.environ
                else f"{password}  (shown once; change it in the admin)"
            )
            self.stdout.write(f"admin login: {username} / {shown}")
        if profile and not Profile.objects.exists():
            try:
                imported = profile_import(
                    data=profile_yaml.load(Path(profile).read_bytes()), actor=None
                )
            except SpecError as exc:
                self.stderr.write(f"{profile}: not imported:\n{exc}")
            else:
                self.stdout.write(f"imported profile {imported.name} from {profile}")
