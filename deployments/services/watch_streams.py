"""List-then-watch streams of pods and events for one cluster (see cluster_watch.py).

Each stream lists its kind in all namespaces and brings the rows in line with the list,
then watches from the list's resourceVersion (with bookmarks), resuming from the last
resourceVersion it handled when the server ends the watch or the connection drops. It
relists on 410 Gone, after a database error, and on request (a new profile). Connection
errors back off exponentially (capped, jittered); the kubeconfig is reloaded on each try.
"""

import logging
import random
import threading
import time
from collections import OrderedDict

import urllib3
from django.db import Error as DatabaseError
from django.db import connection

from deployments.integrations import IntegrationError
from deployments.integrations.kube import INSTANCE_LABEL, TIMEOUT, api_client
from deployments.integrations.lazy import lazy
from deployments.metrics.watcher_lag import watcher_lag_observe
from deployments.services import pod_states as svc

client = lazy("kubernetes.client")
rest = lazy("kubernetes.client.rest")
watch = lazy("kubernetes.watch")
log = logging.getLogger("deployments.watcher")

WATCH_SECONDS = 240  # the server ends each watch after this; we resume from where we were
PAGE = 500
BACKOFF_BASE, BACKOFF_CAP = 0.5, 30.0
LAST_EVENTS_MAX = 10_000


class Backoff:
    """Exponential backoff with 'equal jitter': a delay in [d/2, d], d = base * 2^n <= cap."""

    def __init__(self, base=BACKOFF_BASE, cap=BACKOFF_CAP, rng=random.random):
        self.base, self.cap, self.rng, self.attempt = base, cap, rng, 0

    def next(self):
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return delay / 2 + self.rng() * delay / 2

    def reset(self):
        self.attempt = 0


class Registry:
    """What one cluster's streams share: its profiles and the newest event of each pod."""

    def __init__(self):
        self.profiles = {}  # (namespace, profile name) -> profile id; replaced whole
        self.namespaces: frozenset[str] = frozenset()
        self._events = OrderedDict()
        self._lock = threading.Lock()

    def set_profiles(self, profiles):
        """Returns True when a (namespace, name) appeared that the streams have not seen."""
        new = bool(set(profiles) - set(self.profiles))
        self.profiles = dict(profiles)
        self.namespaces = frozenset(ns for ns, _name in profiles)
        return new

    def remember(self, namespace, pod, text, at):
        key = (namespace, pod)
        with self._lock:
            old = self._events.get(key)
            if old is not None and old[1] and at and at < old[1]:
                return
            self._events[key] = (text, at)
            self._events.move_to_end(key)
            while len(self._events) > LAST_EVENTS_MAX:
                self._events.popitem(last=False)

    def last_event(self, namespace, pod):
        with self._lock:
            return self._events.get((namespace, pod))


def connection_failure(exc):
    """One line for a connection failure: urllib3's own text repeats the whole URL."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        # "HTTPSConnection(host=..., port=...): Failed to establish ...: [Errno 111] ..."
        return f"the cluster is unreachable ({str(exc).rsplit(': ', 1)[-1]})"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return f"the connection broke ({exc.args[0] if exc.args else type(exc).__name__})"
    return str(exc) or type(exc).__name__


class Relist(Exception):  # noqa: N818 - a signal, not an error
    """Leave the watch and list again."""


class Stream(threading.Thread):
    """List then watch one kind for one cluster, until stopped. Subclasses say what."""

    kind = ""
    list_method = ""
    selector: dict[str, str] = {}

    def __init__(self, cluster_watch):
        super().__init__(daemon=True, name=f"{self.kind}@{cluster_watch.cluster.name}")
        self.cw = cluster_watch
        self.registry = cluster_watch.registry
        self.resource_version = None
        self.relist_requested = threading.Event()
        self.lists = 0  # completed lists, for tests and logs
        self._watch = None

    # ---- control (any thread) ----

    def request_relist(self):
        self.relist_requested.set()
        self.interrupt()

    def interrupt(self):
        current = self._watch
        if current is not None:
            current.stop()

    def stopping(self):
        return self.cw.stopped.is_set()

    # ---- the loop (this thread) ----

    def run(self):
        try:
            self.loop()
        finally:
            connection.close()

    def loop(self):
        backoff = Backoff()
        name = f"{self.kind} watch on cluster {self.cw.cluster.name}"
        while not self.stopping():
            try:
                core = self.core = client.CoreV1Api(api_client(self.cw.cluster))
                try:
                    if self.resource_version is None or self.relist_requested.is_set():
                        self.relist(core)
                        self._answered(backoff)
                    self.watch(core, backoff)
                finally:
                    core.api_client.close()
            except Relist:
                continue
            except rest.ApiException as exc:
                if self.stopping():
                    break
                if exc.status == 410:
                    log.info(
                        "%s: resourceVersion %s is gone (410); relisting",
                        name,
                        self.resource_version,
                    )
                    self.resource_version = None
                    continue
                self._retry(backoff, name, f"the API answered {exc.status} {exc.reason}")
            except (IntegrationError, urllib3.exceptions.HTTPError, OSError) as exc:
                if self.stopping():
                    break
                if self.relist_requested.is_set():  # our own interrupt, not a failure
                    continue
                self._retry(backoff, name, connection_failure(exc))
            except DatabaseError as exc:
                connection.close()
                self.resource_version = None  # an event may not have been written: relist
                self._retry(backoff, name, f"database error ({type(exc).__name__}: {exc})")
            except Exception:  # a bug must not end the watch for good
                log.exception("%s failed; relisting", name)
                self.resource_version = None
                self._retry(backoff, name, "unexpected error")

    def _answered(self, backoff):
        """The API answered (a list, or a watch's first event): the next failure backs off
        from the start again. Says so after failures, so a log shows the reconnect."""
        if backoff is None:
            return
        if backoff.attempt:
            log.info(
                "%s: the API answers again after %d failed attempt(s)", self.name, backoff.attempt
            )
        backoff.reset()

    def _retry(self, backoff, name, why):
        delay = backoff.next()
        # a cluster that stays down (no Minikube yet) is logged now and then, not every 30s
        level = (
            logging.WARNING if backoff.attempt <= 5 or backoff.attempt % 20 == 0 else logging.DEBUG
        )
        log.log(
            level, "%s: %s; reconnecting in %.1fs (attempt %d)", name, why, delay, backoff.attempt
        )
        self.cw.stopped.wait(delay)

    def relist(self, core):
        self.relist_requested.clear()
        items, version, token = [], None, None
        list_all = getattr(core, self.list_method)
        while True:
            page = list_all(limit=PAGE, _continue=token, _request_timeout=TIMEOUT, **self.selector)
            version = version or page.metadata.resource_version
            items.extend(page.items)
            token = page.metadata._continue
            if not token:
                break
        with self.cw.lock:
            self.apply_list(items)
        self.resource_version = version
        self.lists += 1
        log.info(
            "%s@%s: listed %d, watching from resourceVersion %s",
            self.kind,
            self.cw.cluster.name,
            len(items),
            version,
        )

    def watch(self, core, backoff=None):
        """Watch from self.resource_version until the server ends the watch (returns), a
        relist is due (Relist), or an error; resets `backoff` once events arrive."""
        w = watch.Watch()
        self._watch = w
        try:
            if self.relist_requested.is_set() or self.stopping():
                raise Relist
            stream = w.stream(
                getattr(core, self.list_method),
                resource_version=self.resource_version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
                _request_timeout=(TIMEOUT[0], WATCH_SECONDS + 30),
                **self.selector,
            )
            answered, began = False, time.monotonic()
            for item in stream:
                if not answered:
                    self._answered(backoff)
                answered = True
                if self.relist_requested.is_set() or self.stopping():
                    raise Relist
                if item is None:  # the stream was closed under us (interrupt()): it ended
                    break
                if item["type"] == "BOOKMARK":
                    self.resource_version = w.resource_version or self.resource_version
                    continue
                obj = item["object"]
                with self.cw.lock:  # one writer (and publisher) per row at a time: in order
                    self.apply(item["type"], obj)
                self.resource_version = obj.metadata.resource_version
            if self.relist_requested.is_set():
                raise Relist
            if not answered and time.monotonic() - began < 1 and backoff is not None:
                self.cw.stopped.wait(backoff.next())  # an empty watch at once: do not spin
        finally:
            self._watch = None

    def apply_list(self, items):
        raise NotImplementedError

    def apply(self, kind, obj):
        raise NotImplementedError


class PodStream(Stream):
    kind = "pods"
    list_method = "list_pod_for_all_namespaces"
    selector = {"label_selector": INSTANCE_LABEL}

    def profile_id(self, pod):
        labels = pod.metadata.labels or {}
        return self.registry.profiles.get((pod.metadata.namespace, labels.get(INSTANCE_LABEL)))

    def apply(self, kind, pod):
        meta = pod.metadata
        profile_id = self.profile_id(pod)
        if profile_id is None:
            return
        if kind == "DELETED":
            row = svc.pod_state_mark_deleted(namespace=meta.namespace, name=meta.name)
            if row is not None:
                svc.pod_state_publish(row)
            return
        row, changed = svc.pod_state_apply(
            profile_id=profile_id,
            fields=svc.pod_state_fields(pod),
            last_event=self.registry.last_event(meta.namespace, meta.name),
        )
        if changed and (container := svc.crashed_container(pod)) is not None:
            svc.pod_state_set_last_log(row, self.previous_log(meta, container))
        if changed:
            svc.pod_state_publish(row)

    def previous_log(self, meta, container):
        """The last lines the crashed container wrote before it exited (`kubectl logs
        --previous --tail`); "" when the API cannot say (the diagnosis then has none)."""
        try:
            return self.core.read_namespaced_pod_log(
                meta.name,
                meta.namespace,
                container=container,
                previous=True,
                tail_lines=svc.CRASH_LOG_LINES,
                _request_timeout=(2, 3),
            )
        except (rest.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            log.debug("no previous log for %s/%s: %s", meta.namespace, meta.name, exc)
            return ""

    def apply_list(self, pods):
        seen = set()
        for pod in pods:
            if self.profile_id(pod) is not None:
                seen.add((pod.metadata.namespace, pod.metadata.name))
                self.apply("ADDED", pod)
        for row in svc.pod_states_reconcile(
            profile_ids=set(self.registry.profiles.values()), seen=seen
        ):
            svc.pod_state_publish(row)


class EventStream(Stream):
    kind = "events"
    list_method = "list_event_for_all_namespaces"
    selector = {"field_selector": "involvedObject.kind=Pod"}

    def apply(self, kind, event):
        if kind == "DELETED":  # events expire (1h); the pod's last event stays on its row
            return
        fields = svc.event_fields(event)
        if fields is None or fields[0] not in self.registry.namespaces:
            return
        namespace, pod, text, at = fields
        self.registry.remember(namespace, pod, text, at)
        row = svc.pod_state_event(namespace=namespace, name=pod, text=text, at=at)
        if row is not None:
            if at is not None:  # helmdeck_watcher_lag_seconds: the event's time to its row
                watcher_lag_observe((row.updated_at - at).total_seconds())
            svc.pod_state_publish(row)

    def apply_list(self, events):
        newest: dict = {}
        for event in events:
            fields = svc.event_fields(event)
            if fields is None or fields[0] not in self.registry.namespaces:
                continue
            key = fields[:2]
            if key not in newest or (fields[3] and newest[key][3] and fields[3] >= newest[key][3]):
                newest[key] = fields
        for event_fields in newest.values():
            self.registry.remember(*event_fields)
            namespace, pod, text, at = event_fields
            row = svc.pod_state_event(namespace=namespace, name=pod, text=text, at=at)
            if row is not None:
                svc.pod_state_publish(row)
