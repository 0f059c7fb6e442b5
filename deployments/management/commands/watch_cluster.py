import logging
import signal
import sys
import time

from django.core.management.base import BaseCommand

from deployments.services import cluster_watch


class Command(BaseCommand):
    help = (
        "Watch the pods and events of every profile's release and keep PodState rows (and "
        "the status pages) current. Runs until SIGTERM or Ctrl-C. --check exits 0 when a "
        "watcher on this machine beat within --max-age seconds (the container healthcheck)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--refresh", type=float, default=2.0, help="seconds between re-reads of profiles"
        )
        parser.add_argument("--check", action="store_true", help="healthcheck, then exit")
        parser.add_argument("--max-age", type=float, default=30.0)

    def handle(self, *args, refresh, check, max_age, **options):
        path = cluster_watch.heartbeat_file()
        if check:
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                self.stderr.write(f"no watcher heartbeat at {path}")
                sys.exit(1)
            if age > max_age:
                self.stderr.write(f"the watcher's last heartbeat is {age:.0f}s old")
                sys.exit(1)
            self.stdout.write(f"watcher alive (heartbeat {age:.0f}s ago)")
            return
        logging.getLogger("deployments.watcher").setLevel(logging.INFO)
        watcher = cluster_watch.Watcher(refresh=refresh, heartbeat_path=path)

        def _stop(signum, frame):
            cluster_watch.log.info("signal %d: stopping", signum)
            watcher.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        cluster_watch.log.info("watching clusters (profiles re-read every %.1fs)", refresh)
        watcher.run()
        cluster_watch.log.info("stopped")
