"""The watcher's rows: one per pod of a profile's release."""

from django.db import models

from deployments import validators as v
from deployments.models.profiles import Profile


class PodState(models.Model):
    """The watcher's view of one pod of a profile's release, kept current from the
    Kubernetes watch (manage.py watch_cluster). Pages read these rows, never the API."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="pods")
    namespace = models.CharField(max_length=v.NAMESPACE_MAX)
    name = models.CharField(max_length=253)
    component = models.CharField(max_length=v.COMPONENT_NAME_MAX, blank=True)
    phase = models.CharField(max_length=32, blank=True)
    ready = models.BooleanField(default=False)
    ready_containers = models.PositiveSmallIntegerField(default=0)
    total_containers = models.PositiveSmallIntegerField(default=0)
    restarts = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=128, blank=True)  # e.g. CrashLoopBackOff, OOMKilled
    message = models.TextField(blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    node = models.CharField(max_length=253, blank=True)
    # the node's address as the pod sees it (status.hostIP): where a NodePort answers
    host_ip = models.CharField(max_length=45, blank=True)
    image = models.CharField(max_length=512, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_event = models.TextField(blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    # the crashed container's last log lines (its previous instance), read by the watcher
    # when the pod goes into CrashLoopBackOff: what the diagnosis shows beside the exit code
    last_log = models.TextField(blank=True)
    resource_version = models.CharField(max_length=64, blank=True)
    deleted = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["profile", "component", "name"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name"], name="pod_state_unique")
        ]

    def __str__(self):
        return f"{self.namespace}/{self.name} {self.phase}"

    @property
    def ready_label(self):
        return f"{self.ready_containers}/{self.total_containers}"
