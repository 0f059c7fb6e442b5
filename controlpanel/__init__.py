"""The project package. The Celery app (controlpanel/celery.py) is not imported here, as
Celery's Django guide does, because every `manage.py` command would then pay ~0.4 s to
import Celery: `celery -A controlpanel` finds the `celery` submodule itself, and
deployments/tasks.py imports it before it defines a task, so sending a task always goes
through this project's app and its settings."""
