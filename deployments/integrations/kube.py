"""A thin adapter over the Kubernetes API (the official `kubernetes` client).

A Cluster with no kubeconfig of its own uses $KUBECONFIG and its current context, as
kubectl does. Every call has a timeout; failures become IntegrationError, transient
(permanent=False) when the API could not be reached.
"""

import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from decimal import Decimal

import urllib3

from deployments.integrations import IntegrationError
from deployments.integrations.lazy import lazy

client = lazy("kubernetes.client")
config = lazy("kubernetes.config")
rest = lazy("kubernetes.client.rest")
config_exception = lazy("kubernetes.config.config_exception")

# The chart's labels (charts/app/templates/_helpers.tpl): the release a pod belongs to, and
# its component. Every reader of pods selects and groups by these two.
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"

# The pod template annotation `kubectl rollout restart` sets (its value: when, RFC 3339).
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

TIMEOUT = (3, 10)  # connect, read seconds


class KubeError(IntegrationError):
    def __init__(self, message, *, permanent, status=None):
        super().__init__(message, permanent=permanent)
        self.status = status  # the API's HTTP status when it answered, else None


def kubeconfig_path(cluster):
    return (
        cluster.kubeconfig_path
        or os.environ.get("KUBECONFIG", "")
        or os.path.expanduser("~/.kube/config")
    )


def api_client(cluster):
    try:
        return config.new_client_from_config(
            config_file=kubeconfig_path(cluster), context=cluster.kube_context or None
        )
    except (config_exception.ConfigException, OSError, TypeError) as exc:
        raise KubeError(
            f"cannot load kubeconfig {kubeconfig_path(cluster)}: {exc}", permanent=True
        ) from None


# One ApiClient per kubeconfig file, as that file reads now, and context, in this process: for
# the release stages, which run one after the other in a worker. A new client costs its
# kubeconfig's parse and, at its first call, a TLS handshake: ~16 ms here, twice on each
# deploy's path (the render step's checks, verify). Keyed by the process too, so a forked
# worker never shares its parent's sockets.
_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def _forget_shared():
    """In a forked child: none of the parent's clients (their sockets are the parent's), and
    a lock no thread of the parent may be holding."""
    global _SHARED_LOCK
    _SHARED.clear()
    _SHARED_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_shared)


def _shared_api_client(cluster):
    """The process's client for the cluster's kubeconfig, or None when the kubeconfig is not
    one readable file (a KUBECONFIG list, a file gone): then the caller makes its own."""
    path = kubeconfig_path(cluster)
    try:
        with open(path, "rb") as config_file:  # a few KB; its digest says it is unchanged
            stamp = hashlib.sha256(config_file.read()).digest()
    except OSError:
        return None
    key = (os.getpid(), path, cluster.kube_context or "")
    with _SHARED_LOCK:
        kept = _SHARED.get(key)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        # a changed file (new certificates, another cluster): a new client; the old one is
        # left to the threads that may still hold it, and closes when they let it go
        api = api_client(cluster)
        _SHARED[key] = (stamp, api)
        return api


def _call(what, fn, *args, **kwargs):
    try:
        return fn(*args, _request_timeout=TIMEOUT, **kwargs)
    except rest.ApiException as exc:
        raise KubeError(
            f"{what}: the API answered {exc.status} {exc.reason}",
            permanent=exc.status in (400, 401, 403, 404, 422),
            status=exc.status,
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(what, exc) from None


def _unreachable(what, exc):
    """The transient error of a call whose connection failed or broke."""
    return KubeError(f"{what}: the cluster is unreachable ({type(exc).__name__})", permanent=False)


def _items(what, fn, *args, **kwargs):
    """The `items` of a list call, as the API's own JSON (dicts, camelCase keys), not the
    client's model objects, whose building costs more than the call: listing 30 pods took
    24.5 ms as models and 12.4 ms as JSON here, and the capacity check lists every pod of
    the cluster at each deploy."""
    response = _call(what, fn, *args, _preload_content=False, **kwargs)
    try:
        return json.loads(response.data)["items"] or []
    except (ValueError, KeyError, TypeError) as exc:
        raise KubeError(
            f"{what}: the API's answer is not a list ({exc})", permanent=False
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # the body cut off
        raise _unreachable(what, exc) from None
    finally:
        response.release_conn()


@dataclass
class Resources:
    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)

    def __add__(self, other):
        return Resources(self.cpu + other.cpu, self.memory + other.memory)

    def __sub__(self, other):
        return Resources(self.cpu - other.cpu, self.memory - other.memory)


class Kube:
    def __init__(self, cluster, *, shared=False):
        """`shared`: this process's client for the cluster's kubeconfig (close() leaves it
        open), for short calls in a worker; not for streams a web process holds open by
        the hundred, which need their own pools."""
        self.cluster = cluster
        api = _shared_api_client(cluster) if shared else None
        self._shared = api is not None
        self._api = api or api_client(cluster)
        self.core = client.CoreV1Api(self._api)

    def close(self):
        if not self._shared:
            self._api.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def server_version(self):
        info = _call("reading the server version", client.VersionApi(self._api).get_code)
        return info.git_version

    def nodes(self):
        """Every Node, as the API's JSON."""
        return _items("listing nodes", self.core.list_node)

    def namespace(self, name):
        """The Namespace object, or None when it does not exist (yet)."""
        try:
            return _call(f"reading namespace {name}", self.core.read_namespace, name)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def namespace_annotate(self, name, annotations):
        _call(
            f"annotating namespace {name}",
            self.core.patch_namespace,
            name,
            {"metadata": {"annotations": annotations}},
        )

    def namespace_foreign(self, namespace):
        """["Secret x", ...]: the Secrets, ConfigMaps and PersistentVolumeClaims of a
        namespace that helm does not manage (a TLS Secret made by hand, a data volume):
        what deleting the namespace would lose besides releases' own objects."""
        found = []
        for kind, method in (
            ("Secret", self.core.list_namespaced_secret),
            ("ConfigMap", self.core.list_namespaced_config_map),
            ("PersistentVolumeClaim", self.core.list_namespaced_persistent_volume_claim),
        ):
            for item in _call(f"listing {kind}s of {namespace}", method, namespace).items:
                labels = item.metadata.labels or {}
                if (
                    labels.get("app.kubernetes.io/managed-by") == "Helm"
                    or labels.get("owner") == "helm"
                ):
                    continue
                if kind == "ConfigMap" and item.metadata.name == "kube-root-ca.crt":
                    continue  # every namespace has it
                if kind == "Secret" and item.type == "kubernetes.io/service-account-token":
                    continue
                found.append(f"{kind} {item.metadata.name}")
        return found

    def namespace_delete(self, name):
        """Delete a namespace (everything in it goes with it, in the background)."""
        _call(f"deleting namespace {name}", self.core.delete_namespace, name)

    def active_pods(self):
        """Pods of every namespace that hold resources (not Succeeded or Failed), as the
        API's JSON."""
        return _items(
            "listing pods",
            self.core.list_pod_for_all_namespaces,
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        )

    def deployment_available(self, namespace, name):
        """True when the Deployment exists and has an available replica; False if absent."""
        apps = client.AppsV1Api(self._api)
        try:
            deployment = apps.read_namespaced_deployment(name, namespace, _request_timeout=TIMEOUT)
        except rest.ApiException as exc:
            if exc.status == 404:
                return False
            raise KubeError(
                f"reading deployment {namespace}/{name}: the API answered "
                f"{exc.status} {exc.reason}",
                permanent=False,
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(f"reading deployment {namespace}/{name}", exc) from None
        return bool(deployment.status and deployment.status.available_replicas)

    def api_service(self, name):
        """(available, reason) of an APIService (e.g. v1beta1.metrics.k8s.io, what
        `kubectl top` asks): its Available condition; None when it is not registered."""
        api = client.ApiregistrationV1Api(self._api)
        try:
            service = _call(f"reading APIService {name}", api.read_api_service, name)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        for condition in (service.status and service.status.conditions) or []:
            if condition.type == "Available":
                reason = ": ".join(p for p in (condition.reason, condition.message) if p)
                return condition.status == "True", reason
        return False, "no Available condition yet"

    def node_ports(self):
        """{nodePort: "namespace/service"} for every NodePort in the cluster."""
        services = _items("listing services", self.core.list_service_for_all_namespaces)
        return {
            port["nodePort"]: f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
            for svc in services
            for port in (svc.get("spec") or {}).get("ports") or []
            if port.get("nodePort")
        }

    def ingress_hosts(self):
        """{host: "namespace/name"} of every Ingress rule in the cluster."""
        api = client.NetworkingV1Api(self._api)
        ingresses = _items("listing ingresses", api.list_ingress_for_all_namespaces)
        return {
            rule["host"]: f"{ing['metadata']['namespace']}/{ing['metadata']['name']}"
            for ing in ingresses
            for rule in (ing.get("spec") or {}).get("rules") or []
            if rule.get("host")
        }

    def release_pods(self, namespace, release):
        return _call(
            "listing pods",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=f"{INSTANCE_LABEL}={release}",
        ).items

    def pod(self, namespace, name):
        """The Pod, or None when there is none."""
        try:
            return _call(f"reading pod {name}", self.core.read_namespaced_pod, name, namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def pod_exec(self, namespace, pod, *, container):
        """A shell in the container, with a terminal (integrations/kube_exec.py)."""
        from deployments.integrations.kube_exec import ExecStream

        return ExecStream.open(self._api, namespace, pod, container=container)

    def events(self, namespace):
        return _call("listing events", self.core.list_namespaced_event, namespace).items

    def release_deployments(self, namespace, release):
        apps = client.AppsV1Api(self._api)
        return _call(
            "listing deployments",
            apps.list_namespaced_deployment,
            namespace,
            label_selector=f"{INSTANCE_LABEL}={release}",
        ).items

    # ---- actions on what runs (services/operations.py) -------------------------------------

    def deployment_restart(self, deployment, *, at):
        """Roll a Deployment's pods the way `kubectl rollout restart` does: a new
        `restartedAt` annotation on its pod template. The patch carries the resourceVersion
        the caller read, so of two restarts raced from one read the second gets 409."""
        meta = deployment.metadata
        body = {
            "metadata": {"resourceVersion": meta.resource_version},
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}},
        }
        apps = client.AppsV1Api(self._api)
        _call(
            f"restarting deployment {meta.namespace}/{meta.name}",
            apps.patch_namespaced_deployment,
            meta.name,
            meta.namespace,
            body,
        )

    def deployment_scale(self, namespace, name, replicas):
        """Set a Deployment's replicas through its scale subresource (`kubectl scale`)."""
        apps = client.AppsV1Api(self._api)
        _call(
            f"scaling deployment {namespace}/{name}",
            apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
        )

    def pod_delete(self, namespace, name):
        """Delete one pod (its Deployment's ReplicaSet makes a new one)."""
        _call(f"deleting pod {namespace}/{name}", self.core.delete_namespaced_pod, name, namespace)

    # ---- pod logs (the profile page's log viewer; helpers below the class) ----------------

    def log_pods(self, namespace, release, component=None):
        """Pods of a release (the chart's instance label), of one component if given."""
        selector = f"{INSTANCE_LABEL}={release}"
        if component:
            selector += f",{COMPONENT_LABEL}={component}"
        pods = _call(
            "listing pods", self.core.list_namespaced_pod, namespace, label_selector=selector
        ).items
        return [_pod_ref(p) for p in sorted(pods, key=lambda p: p.metadata.name)]

    def pod_log(self, namespace, pod, *, container, tail=None, since_time=None, previous=False):
        """The container's log as it is now (bytes), each line prefixed with its
        RFC3339Nano timestamp."""
        response = self._log_request(
            namespace,
            pod,
            container=container,
            follow=False,
            tail=tail,
            since_time=since_time,
            previous=previous,
            timeout=(TIMEOUT[0], LOG_READ_TIMEOUT),
        )
        try:
            return response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(
                f"reading the log of {namespace}/{pod}: the stream broke ({type(exc).__name__})",
                permanent=False,
            ) from None
        finally:
            response.release_conn()

    def pod_log_follow(self, namespace, pod, *, container, tail=None, since_time=None):
        """A LogStream of the container's log that stays open for new lines. It has no read
        timeout (a quiet container is not an error); the caller closes it."""
        response = self._log_request(
            namespace,
            pod,
            container=container,
            follow=True,
            tail=tail,
            since_time=since_time,
            previous=False,
            timeout=(TIMEOUT[0], None),
        )
        return LogStream(response)

    def _log_request(
        self, namespace, pod, *, container, follow, tail, since_time, previous, timeout
    ):
        # The same GET as read_namespaced_pod_log(..., _preload_content=False), built with
        # the client's own serializer because that method has no since_time parameter (the
        # generated signature lacks sinceTime); auth, TLS and the pool stay the client's.
        query = [("container", container), ("timestamps", True)]
        if follow:
            query.append(("follow", True))
        if previous:
            query.append(("previous", True))
        if tail is not None:
            query.append(("tailLines", tail))
        if since_time:
            query.append(("sinceTime", since_time))
        request = self._api.param_serialize(
            method="GET",
            resource_path=LOG_PATH,
            path_params={"namespace": namespace, "name": pod},
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        what = f"reading the log of {namespace}/{pod}"
        try:
            response = self._api.call_api(*request, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(what, exc) from None
        if not 200 <= response.status <= 299:
            response.read()
            error = rest.ApiException.from_response(http_resp=response, body=None, data=None)
            raise KubeError(
                f"{what}: {_api_message(error)}", permanent=error.status in (400, 401, 403, 404)
            ) from None
        return response.response


LOG_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/log"
LOG_READ_TIMEOUT = 30  # seconds a whole non-follow read may take
LOG_CHUNK = 65536


@dataclass(frozen=True)
class PodRef:
    """A pod whose log can be read: its name, component label, log container and phase."""

    name: str
    component: str
    container: str
    phase: str = ""


def _pod_ref(pod):
    labels = pod.metadata.labels or {}
    component = labels.get(COMPONENT_LABEL, "")
    names = [c.name for c in pod.spec.containers]
    # the chart names a component's container after the component
    container = component if component in names else names[0]
    phase = (pod.status and pod.status.phase) or ""
    return PodRef(pod.metadata.name, component, container, phase)


def _api_message(exc):
    """The API's own reason ("previous terminated container ... not found") if it sent one."""
    try:
        return json.loads(exc.body or "{}").get("message") or exc.reason
    except (ValueError, AttributeError):
        return exc.reason


class LogStream:
    """A followed container log: iterating yields raw byte chunks as the API sends them.

    interrupt() may be called from any thread: it shuts the socket's reading side down,
    which ends a read blocked in the iterating thread. close() releases the connection
    (closed, not pooled: a half-read stream cannot be reused); the iterating thread calls
    it, so a socket is never closed under a read in progress (its descriptor could be
    reused by another connection meanwhile)."""

    def __init__(self, response):
        self._response = response
        self.closed = False  # interrupted or closed: a failing read is then expected

    def __iter__(self):
        while not self.closed:
            try:
                chunk = self._response.read1(LOG_CHUNK)
            except Exception as exc:
                if self.closed:
                    return
                if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
                    raise KubeError(
                        f"the log stream broke ({type(exc).__name__})", permanent=False
                    ) from None
                raise
            if not chunk:
                return
            yield chunk

    def interrupt(self):
        self.closed = True
        with contextlib.suppress(Exception):  # the read side may be gone already
            self._response.shutdown()

    def close(self):
        self.interrupt()
        with contextlib.suppress(Exception):
            self._response.close()
