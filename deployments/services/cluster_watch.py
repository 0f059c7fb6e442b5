"""The loop behind `manage.py watch_cluster`: list, then watch, pods and events.

One `Watcher` (the command's main thread) re-reads profiles every `refresh` seconds and
keeps one `ClusterWatch` per Cluster that has profiles. A ClusterWatch runs two threads,
a `PodStream` and an `EventStream`, each of which:

1. lists its kind in all namespaces (pods: `-l app.kubernetes.io/instance`; events:
   `involvedObject.kind=Pod`) and brings the rows in line with the list,
2. watches from the list's resourceVersion (with bookmarks), and resumes from the last
   resourceVersion it handled when the server ends the watch or the connection drops,
3. relists on 410 Gone, on a database error (an event may be lost), and when a profile
   or namespace it did not know appears (its pods may already exist),
4. backs off on connection errors: exponential, capped (watch_streams.BACKOFF_CAP), jittered, and
   reloads the kubeconfig on each attempt (a fixed file is picked up without a restart).

Only pods whose instance label names a Profile with that pod's namespace get a row.
`stop()` interrupts blocked reads (Watch.stop shuts the socket down), so SIGTERM ends the
process within a second or two.
"""

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path

from django.db import Error as DatabaseError
from django.db import connection

from deployments.integrations.redis import RedisError, app_client
from deployments.models import Cluster, Profile
from deployments.services import pod_states as svc
from deployments.services.watch_streams import EventStream, PodStream, Registry

log = logging.getLogger("deployments.watcher")

HEARTBEAT_KEY = "helmdeck:watcher:"
HEARTBEAT_TTL = 30
PRUNE_EVERY = 60


def heartbeat_file():
    default = Path(os.environ.get("TMPDIR", "/tmp")) / "helmdeck-watcher.heartbeat"
    return Path(os.environ.get("HELMDECK_WATCHER_HEARTBEAT_FILE", default))


class ClusterWatch:
    """The pod and event streams of one cluster."""

    def __init__(self, cluster, profiles):
        self.cluster = cluster
        self.config = (cluster.kubeconfig_path, cluster.kube_context)
        self.stopped = threading.Event()
        # The pod and event streams both write a pod's row; writing and publishing under
        # one lock keeps a row's publishes in the order of its writes (and event ids).
        self.lock = threading.Lock()
        self.registry = Registry()
        self.registry.set_profiles(profiles)
        self.pods, self.events = PodStream(self), EventStream(self)
        self.streams = (self.pods, self.events)

    def start(self):
        for stream in self.streams:
            stream.start()

    def set_profiles(self, profiles):
        if self.registry.set_profiles(profiles):
            log.info("cluster %s: new profile or namespace; relisting", self.cluster.name)
            for stream in self.streams:
                stream.request_relist()

    def poke(self):
        """Re-interrupt streams whose relist is still pending (the first interrupt can land
        between two watch requests, where there is no socket to shut down)."""
        for stream in self.streams:
            if stream.relist_requested.is_set():
                stream.interrupt()

    def stop(self):
        self.stopped.set()
        for stream in self.streams:
            stream.interrupt()

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for stream in self.streams:
            stream.join(max(0.0, deadline - time.monotonic()))


class Watcher:
    """Keeps one ClusterWatch per Cluster that has profiles, re-reading profiles as it goes."""

    def __init__(self, *, refresh=2.0, heartbeat_path=None):
        self.refresh = refresh
        self.heartbeat_path = heartbeat_path
        self.clusters = {}  # cluster id -> ClusterWatch
        self.stopped = threading.Event()
        self._pruned = 0.0
        self._hostname = socket.gethostname()
        self._redis = None

    def tick(self):
        by_cluster: dict = {}
        for pk, name, namespace, cluster_id in Profile.objects.values_list(
            "pk", "name", "namespace", "cluster_id"
        ):
            by_cluster.setdefault(cluster_id, {})[(namespace, name)] = pk
        clusters = Cluster.objects.in_bulk(list(by_cluster))
        for cluster_id, current in list(self.clusters.items()):
            cluster = clusters.get(cluster_id)
            if cluster is None or (cluster.kubeconfig_path, cluster.kube_context) != current.config:
                log.info(
                    "cluster %s: no profiles or a new kubeconfig; stopping its watch",
                    current.cluster.name,
                )
                current.stop()
                del self.clusters[cluster_id]
        for cluster_id, cluster in clusters.items():
            current = self.clusters.get(cluster_id)
            if current is None:
                log.info(
                    "cluster %s: watching pods of %d profile(s)",
                    cluster.name,
                    len(by_cluster[cluster_id]),
                )
                current = self.clusters[cluster_id] = ClusterWatch(cluster, by_cluster[cluster_id])
                current.start()
            else:
                current.set_profiles(by_cluster[cluster_id])
                current.poke()
        if time.monotonic() - self._pruned > PRUNE_EVERY:
            self._pruned = time.monotonic()
            svc.pod_states_prune()
        self.beat()

    def redis(self):
        """A heartbeat key next to the workers' (helmdeck:worker:*), for pages to ask about."""
        if self._redis is None:
            self._redis = app_client()
        return self._redis

    def beat(self):
        if self.heartbeat_path is not None:
            try:
                self.heartbeat_path.write_text(f"{int(time.time())}\n")
            except OSError as exc:
                log.warning("cannot write the heartbeat file %s: %s", self.heartbeat_path, exc)
        with contextlib.suppress(RedisError):
            self.redis().set(f"{HEARTBEAT_KEY}{self._hostname}", int(time.time()), ex=HEARTBEAT_TTL)

    def run(self):
        """Until stop(): tick, then wait `refresh` seconds. Database trouble is logged and
        retried on the next tick; the streams keep watching meanwhile."""
        try:
            while not self.stopped.is_set():
                try:
                    self.tick()
                except DatabaseError as exc:
                    log.warning("reading profiles failed (%s); retrying", exc)
                    connection.close()
                except Exception:  # the supervisor must outlive its bugs; streams go on
                    log.exception("watcher tick failed; retrying")
                self.stopped.wait(self.refresh)
        finally:
            self.shutdown()

    def stop(self):
        self.stopped.set()

    def shutdown(self, timeout=5.0):
        for current in self.clusters.values():
            current.stop()
        deadline = time.monotonic() + timeout
        for current in self.clusters.values():
            current.join(max(0.0, deadline - time.monotonic()))
        self.clusters.clear()
        with contextlib.suppress(RedisError):
            self.redis().delete(f"{HEARTBEAT_KEY}{self._hostname}")
            self.redis().close()
        if self.heartbeat_path is not None:
            with contextlib.suppress(OSError):
                self.heartbeat_path.unlink()
        connection.close()
