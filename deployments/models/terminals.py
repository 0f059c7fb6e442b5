"""The pod terminal's audit rows: one per session, from the moment its shell is open."""

from django.conf import settings
from django.db import models

from deployments import validators as v
from deployments.models.profiles import Profile


class TerminalSession(models.Model):
    """Who opened a shell in which container, from where, when it ended and why. What was
    typed is kept only when HELMDECK_POD_EXEC_RECORD_INPUT is set (`input`, at most
    INPUT_KEPT bytes); what the container printed never is."""

    INPUT_KEPT = 64 * 1024

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_name = models.CharField(max_length=150)
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    profile_name = models.CharField(max_length=v.RELEASE_NAME_MAX)
    namespace = models.CharField(max_length=v.NAMESPACE_MAX)
    pod = models.CharField(max_length=253)
    container = models.CharField(max_length=63)
    address = models.CharField(max_length=45, blank=True)  # the browser's, as REMOTE_ADDR
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)
    bytes_in = models.PositiveBigIntegerField(default=0)  # typed (and pasted)
    bytes_out = models.PositiveBigIntegerField(default=0)  # printed
    input = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        # read-only everywhere: the admin site shows them, nothing edits them
        default_permissions = ("view",)

    def __str__(self):
        return (
            f"{self.user_name} in {self.pod}/{self.container} at {self.started_at:%Y-%m-%d %H:%M}"
        )
