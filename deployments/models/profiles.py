"""Clusters, profiles and what a profile holds (components, config, secrets), and the audit
trail of changes to them."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from deployments import spec
from deployments import validators as v

# the profile document's defaults (deployments.spec) are the fields' defaults
_CPU, _MEMORY = spec.DEFAULT_RESOURCES["cpu"], spec.DEFAULT_RESOURCES["memory"]
_LIVE, _READY = spec.DEFAULT_PROBES["liveness"], spec.DEFAULT_PROBES["readiness"]


class Cluster(models.Model):
    """Where profiles deploy: a kube context and the Docker daemon images are built into."""

    name = models.SlugField(max_length=63, unique=True)
    kubeconfig_path = models.CharField(
        max_length=1024,
        blank=True,
        help_text="Empty: use $KUBECONFIG (or ~/.kube/config), as kubectl does.",
    )
    kube_context = models.CharField(
        max_length=253, blank=True, help_text="Empty: the kubeconfig's current context."
    )
    minikube_profile = models.CharField(
        max_length=63,
        blank=True,
        default="minikube",
        help_text="Builds use `minikube -p <profile> docker-env`. Empty: not a Minikube cluster.",
    )
    docker_host = models.CharField(
        max_length=1024,
        blank=True,
        help_text="Explicit DOCKER_HOST for builds; overrides the Minikube docker-env.",
    )
    DOCKER, CONTAINERD, REGISTRY = "docker", "containerd", "registry"
    IMAGE_DELIVERIES = [
        (DOCKER, "The cluster's Docker"),
        (CONTAINERD, "Load into the node's containerd"),
        (REGISTRY, "Push to a registry — not yet supported"),
    ]
    image_delivery = models.CharField(
        "how images reach the nodes",
        max_length=16,
        choices=IMAGE_DELIVERIES,
        default=DOCKER,
        validators=[v.validate_image_delivery],
        help_text=(
            "The cluster's Docker: images are built into the node's own daemon (Minikube's "
            "docker runtime, through docker-env). Load into the node's containerd: built on "
            "the Docker host (or the local daemon), then imported into containerd's k8s.io "
            "namespace (kind, Minikube with containerd)."
        ),
    )
    containerd_address = models.CharField(
        "containerd socket",
        max_length=1024,
        blank=True,
        validators=[v.validate_containerd_address],
        help_text=(
            "The node's containerd socket, as `ctr --address` takes it, e.g. "
            "/run/containerd/containerd.sock. Required when images are loaded into containerd."
        ),
    )
    capacity_cpus = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=4,
        help_text="Used for fit checks when the cluster cannot be asked (seed: 4 CPUs).",
    )
    capacity_memory = models.CharField(
        max_length=32,
        default="8Gi",
        validators=[v.validate_memory],
        help_text="Used for fit checks when the cluster cannot be asked (seed: 8Gi).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        if self.image_delivery == self.CONTAINERD and not self.containerd_address:
            raise ValidationError(
                {
                    "containerd_address": "Required when images are loaded into the node's "
                    "containerd: the path of its socket, e.g. /run/containerd/containerd.sock"
                }
            )

    @property
    def loads_into_containerd(self):
        return self.image_delivery == self.CONTAINERD


class Profile(models.Model):
    """A deployable app: its components, config and secrets; its name is the Helm release."""

    ENVIRONMENTS = [(e, e) for e in spec.ENVIRONMENTS]

    name = models.CharField(
        max_length=v.RELEASE_NAME_MAX, unique=True, validators=[v.validate_release_name]
    )
    namespace = models.CharField(max_length=v.NAMESPACE_MAX, validators=[v.validate_namespace])
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="profiles")
    environment = models.CharField(
        max_length=16, choices=ENVIRONMENTS, default=spec.DEFAULT_ENVIRONMENT
    )
    description = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Sleep (services/operations.py): when it went to sleep, by whom, and the replicas each
    # component ran with then ({component: n}), which wake restores. A deploy wakes it too.
    asleep_since = models.DateTimeField(null=True, blank=True, editable=False)
    asleep_by = models.CharField(max_length=150, blank=True, editable=False)
    sleep_replicas = models.JSONField(null=True, blank=True, editable=False)
    # Sleep on a schedule (services/operations.profiles_sleep_idle): after this many hours
    # without a deploy, an action on what runs or a visit of the profile's page (active_at,
    # kept only while a schedule is set); None: never, the default.
    sleep_after_hours = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    active_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        # deployers also restart, scale, delete pods, sleep and wake (services/operations.py)
        permissions = [
            ("deploy_profile", "Can deploy, roll back and cancel releases"),
            # admins: a shell in a pod's container, when HELMDECK_POD_EXEC is on
            ("exec_pod", "Can open a terminal in a pod"),
        ]

    def __str__(self):
        return self.name


class Component(models.Model):
    """One image of a profile: a Deployment plus its Service."""

    CLUSTER_IP, NODE_PORT = spec.CLUSTER_IP, spec.NODE_PORT
    SERVICE_TYPES = [
        (CLUSTER_IP, "ClusterIP (inside the cluster)"),
        (NODE_PORT, "NodePort (reachable from the host)"),
    ]

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="components")
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=v.COMPONENT_NAME_MAX, validators=[v.validate_component_name])
    image = models.CharField(max_length=255, validators=[v.validate_image_repository])
    tag = models.CharField(
        max_length=128, default=spec.DEFAULT_TAG, validators=[v.validate_image_tag]
    )
    build_context = models.CharField(
        max_length=512, blank=True, validators=[v.validate_relative_path]
    )
    dockerfile = models.CharField(
        max_length=512,
        blank=True,
        default=spec.DEFAULT_DOCKERFILE,
        validators=[v.validate_relative_path],
    )
    build_args = models.JSONField(
        default=dict,
        blank=True,
        help_text='Docker build arguments, e.g. {"BASE_IMAGE": "python:3.11-slim"}',
    )
    pod_annotations = models.JSONField(
        default=dict, blank=True, help_text="Extra pod annotations, e.g. prometheus.io/scrape"
    )
    port = models.PositiveIntegerField(validators=[v.validate_port])
    replicas = models.PositiveSmallIntegerField(
        default=spec.DEFAULT_REPLICAS, validators=[v.validate_replicas]
    )
    service_type = models.CharField(
        max_length=16, choices=SERVICE_TYPES, default=spec.DEFAULT_SERVICE_TYPE
    )
    node_port = models.PositiveIntegerField(
        null=True, blank=True, validators=[v.validate_node_port]
    )
    cpu_request = models.CharField(max_length=32, default=_CPU, validators=[v.validate_cpu])
    cpu_limit = models.CharField(max_length=32, default=_CPU, validators=[v.validate_cpu])
    memory_request = models.CharField(
        max_length=32, default=_MEMORY, validators=[v.validate_memory]
    )
    memory_limit = models.CharField(max_length=32, default=_MEMORY, validators=[v.validate_memory])
    liveness_path = models.CharField(
        max_length=1024, default=_LIVE["path"], validators=[v.validate_probe_path]
    )
    liveness_initial_delay = models.PositiveIntegerField(
        default=_LIVE["initialDelaySeconds"], validators=[v.validate_probe_delay]
    )
    liveness_period = models.PositiveIntegerField(
        default=_LIVE["periodSeconds"], validators=[v.validate_probe_positive]
    )
    liveness_timeout = models.PositiveIntegerField(
        default=_LIVE["timeoutSeconds"], validators=[v.validate_probe_positive]
    )
    liveness_failure_threshold = models.PositiveIntegerField(
        default=_LIVE["failureThreshold"], validators=[v.validate_probe_positive]
    )
    readiness_path = models.CharField(
        max_length=1024, default=_READY["path"], validators=[v.validate_probe_path]
    )
    readiness_initial_delay = models.PositiveIntegerField(
        default=_READY["initialDelaySeconds"], validators=[v.validate_probe_delay]
    )
    readiness_period = models.PositiveIntegerField(
        default=_READY["periodSeconds"], validators=[v.validate_probe_positive]
    )
    readiness_timeout = models.PositiveIntegerField(
        default=_READY["timeoutSeconds"], validators=[v.validate_probe_positive]
    )
    readiness_failure_threshold = models.PositiveIntegerField(
        default=_READY["failureThreshold"], validators=[v.validate_probe_positive]
    )
    # An Ingress in front of the Service (none while `ingress_host` is empty)
    ingress_host = models.CharField(
        max_length=253, blank=True, validators=[v.validate_ingress_host]
    )
    ingress_path = models.CharField(
        max_length=1024, default=spec.DEFAULT_INGRESS_PATH, validators=[v.validate_ingress_path]
    )
    ingress_class = models.CharField(
        max_length=253,
        default=spec.DEFAULT_INGRESS_CLASS,
        validators=[v.validate_ingress_class],
    )
    ingress_tls_secret = models.CharField(
        max_length=253, blank=True, validators=[v.validate_tls_secret_name]
    )
    # The replicas a Scale action set on the cluster (services/operations.py), until the next
    # deploy sets `replicas` again: the pages say when what runs differs from the profile.
    scaled_replicas = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["profile", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["profile", "name"], name="component_name_unique"),
            models.CheckConstraint(
                condition=Q(service_type="NodePort") | Q(node_port__isnull=True),
                name="node_port_only_for_nodeport",
                violation_error_message="A nodePort is only allowed with service type NodePort.",
            ),
        ]

    def __str__(self):
        return f"{self.profile.name}/{self.name}"

    @property
    def image_ref(self):
        return f"{self.image}:{self.tag}"


class ConfigEntry(models.Model):
    """A non-sensitive setting: rendered into the ConfigMap `<profile>-config`."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="config")
    key = models.CharField(max_length=v.CONFIG_KEY_MAX, validators=[v.validate_config_key])
    value = models.TextField(blank=True, validators=[v.validate_config_value])
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["profile", "key"]
        verbose_name_plural = "config entries"
        constraints = [models.UniqueConstraint(fields=["profile", "key"], name="config_key_unique")]

    def __str__(self):
        return self.key


class SecretEntry(models.Model):
    """A credential: rendered into the Secret `<profile>-secrets`.

    Either a value stored encrypted (`ciphertext`, MultiFernet: deployments.crypto) or the
    name of an environment variable read by the worker at deploy time (`from_env`).
    The plaintext never leaves `deployments.crypto` except on its way to Helm.
    """

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="secrets")
    key = models.CharField(max_length=v.CONFIG_KEY_MAX, validators=[v.validate_config_key])
    ciphertext = models.TextField(blank=True, editable=False)
    from_env = models.CharField(max_length=255, blank=True, validators=[v.validate_env_var_name])
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["profile", "key"]
        verbose_name_plural = "secret entries"
        constraints = [
            models.UniqueConstraint(fields=["profile", "key"], name="secret_key_unique"),
            models.CheckConstraint(
                condition=~Q(ciphertext="") | ~Q(from_env=""),
                name="secret_has_a_source",
                violation_error_message="A secret needs a value or an environment variable.",
            ),
        ]

    def __str__(self):
        return self.key

    @property
    def source_label(self):
        return f"from ${self.from_env}" if self.from_env else "stored value"


class AuditEvent(models.Model):
    """Who changed what. Config changes keep before/after; secret changes never keep values."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    profile_name = models.CharField(max_length=v.RELEASE_NAME_MAX, blank=True)
    target = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'} {self.action} {self.target}"
