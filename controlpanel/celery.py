import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
# Celery's Django fixup runs every system check as a worker starts and drops what they find
# (celery/fixups/django.py, validate_models). The URL check alone imports every view and
# the API's schemas, ~0.3 s of the worker's start (`python -X importtime`), for a process
# that serves no URL. `manage.py check`, `migrate` (make run, each deploy of the panel) and
# `doctor` run them all and report. CELERY_SKIP_CHECKS= (empty) brings them back. A task
# that needs the URLconf (a notification's links) imports it at its first reverse().
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

# DjangoTask adds delay_on_commit(): enqueue only once the transaction that made the row commits.
app = Celery("controlpanel", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The worker's heartbeat, on the worker's own signals (deployments.heartbeat itself imports
# no Celery: the web process reads heartbeats for /ready).
from celery.signals import worker_init, worker_ready, worker_shutdown  # noqa: E402

from deployments import heartbeat  # noqa: E402

worker_init.connect(heartbeat.worker_incarnate, weak=False)
worker_ready.connect(heartbeat.worker_heartbeat_start, weak=False)
worker_shutdown.connect(heartbeat.worker_heartbeat_stop, weak=False)
