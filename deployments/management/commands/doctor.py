import sys

from django.core.management.base import BaseCommand, CommandError

from deployments.management import profile_or_exit
from deployments.models import Cluster
from deployments.services.doctor import cluster_doctor
from deployments.services.profiles import parse_spec_of


class Command(BaseCommand):  # every system check first: it diagnoses the set-up
    help = (
        "Check docker, helm, kubectl, the kube context, the cluster's size and addons; "
        "print a fix for each failure. Exit 0 only when all pass."
    )

    def add_arguments(self, parser):
        parser.add_argument("--cluster", default=None, help="a Cluster name (default: minikube)")
        parser.add_argument("--profile", default=None, help="also check this profile fits")

    def handle(self, *args, cluster, profile, **options):
        spec = None
        if profile:
            found = profile_or_exit(profile)
            spec, cluster = parse_spec_of(found), cluster or found.cluster.name
        cluster_row = Cluster.objects.filter(name=cluster or "minikube").first()
        if cluster_row is None:
            raise CommandError(f"no cluster named {cluster!r}", returncode=2)
        results = cluster_doctor(cluster=cluster_row, spec=spec)
        for result in results:
            mark = "ok  " if result.ok else "FAIL"
            self.stdout.write(f"{mark} {result.name}: {result.detail}")
            if not result.ok and result.fix:
                self.stdout.write(f"     fix: {result.fix}")
        failed = sum(not r.ok for r in results)
        self.stdout.write(f"{len(results) - failed} passed, {failed} failed")
        sys.exit(1 if failed else 0)
