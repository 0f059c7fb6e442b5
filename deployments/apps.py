from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployments"

    def ready(self):
        from deployments import heartbeat  # noqa: F401  (connects the worker signals)
